//! Faults caused on purpose. PostgreSQL stopping under a running server: a
//! PostgreSQL instance of the test's own (initdb + pg_ctl on a free port, so
//! the shared one is never touched) is stopped and started again.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use storage::Backend;
use support::own_postgres::OwnPostgres;
use support::*;

#[tokio::test]
async fn postgres_going_away_answers_503_and_service_resumes_by_itself() {
    let postgres = Arc::new(
        tokio::task::spawn_blocking(OwnPostgres::start)
            .await
            .unwrap(),
    );
    let url = postgres.url();
    let app = spawn_app_with(
        Backend::Sqlite, // only for the key folder; the database is ours
        &[
            ("AUTH_DATABASE_URL", url.as_str()),
            ("AUTH_DB_POOL_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    app.create_user("ada@example.test", Some("ada")).await;
    let session = app.login("ada").await;
    let access = session["access_token"].as_str().unwrap().to_owned();
    // Several connections open and idle in the pool when PostgreSQL goes away.
    assert!(
        readiness_burst(&app)
            .await
            .iter()
            .all(|s| *s == StatusCode::OK)
    );

    let pg = postgres.clone();
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .unwrap();

    // Database work: 503 problem+json with Retry-After, promptly, never a hang or a 500.
    let started = Instant::now();
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"login": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "hung for {:?}",
        started.elapsed()
    );
    assert_eq!(response.headers()["retry-after"], "2");
    let (status, body) = problem(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("service_unavailable"))
    );
    let (status, body) = problem(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready"))
    );
    // Liveness and token checks need no database.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.me(&access).await.0, StatusCode::OK);

    // PostgreSQL comes back: the server recovers without being touched.
    let pg = postgres.clone();
    tokio::task::spawn_blocking(move || pg.pg_ctl_start())
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let status = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The connections opened before the restart are never handed out again:
    // once one failed, the others are tested before use and replaced.
    let statuses = readiness_burst(&app).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    app.login("ada").await;
}

/// Eight concurrent readiness checks (each one a database round trip).
async fn readiness_burst(app: &TestApp) -> Vec<StatusCode> {
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url) = (app.http.clone(), app.url("/readyz"));
        burst.spawn(async move { http.get(url).send().await.unwrap().status() });
    }
    burst.join_all().await
}

/// Status and problem+json body of an answer that is meant to be a 5xx
/// (`support::read` treats any 5xx as a bug).
async fn problem(response: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    (status, response.json().await.unwrap())
}

//! `GET /metrics` scraped as Prometheus would: request counters by route
//! pattern, login outcomes, throttling, the outbox while SMTP is down, the
//! pool, and the optional scrape token.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use storage::Backend;
use support::*;

async fn scrape(app: &TestApp, token: Option<&str>) -> (StatusCode, String) {
    let mut request = app.http.get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text"),
        );
    }
    (status, response.text().await.unwrap())
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_logins_throttling_and_queued_mail() {
    // SMTP points at a port nobody listens on: mail stays queued.
    let closed_port = free_port().to_string();
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("AUTH_MAIL_TRANSPORT", "smtp"),
            ("AUTH_SMTP_HOST", "127.0.0.1"),
            ("AUTH_SMTP_PORT", closed_port.as_str()),
            ("AUTH_SMTP_SECURITY", "none"),
            ("AUTH_THROTTLE_LOGIN_ACCOUNT", "2/1h"),
        ],
    )
    .await;
    app.create_user("ada@example.test", Some("ada")).await;
    let session = app.login("ada").await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(app.me(access).await.0, StatusCode::OK);
    for _ in 0..3 {
        app.post_json(
            "/api/v1/auth/login",
            json!({"login": "ada", "password": "wrong"}),
        )
        .await;
    }
    let (status, _) = app
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{}", uuid::Uuid::new_v4()),
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post_json(
            "/api/v1/auth/password/forgot",
            json!({"email": "ada@example.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The reset mail is queued after the answer (its timing must not tell
    // known from unknown addresses): scrape until it shows, at most 10 s.
    let pending = r#"auth_outbox_messages{status="pending"}"#;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = scrape(&app, None).await;
        assert_eq!(status, StatusCode::OK);
        if value(&metrics, pending) == Some(1.0) || tokio::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let series = |s: &str| value(&metrics, s).unwrap_or_else(|| panic!("{s} missing:\n{metrics}"));
    assert_eq!(
        series(
            r#"auth_http_requests_total{route="/api/v1/auth/login",method="POST",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        series(
            r#"auth_http_requests_total{route="/api/v1/auth/login",method="POST",status="401"}"#
        ),
        2.0
    );
    assert_eq!(
        series(
            r#"auth_http_requests_total{route="/api/v1/auth/login",method="POST",status="429"}"#
        ),
        1.0
    );
    assert_eq!(
        series(r#"auth_http_requests_total{route="/api/v1/auth/me",method="GET",status="200"}"#),
        1.0
    );
    // The id in the path is not a label: the pattern is.
    assert_eq!(
        series(
            r#"auth_http_requests_total{route="/api/v1/tokens/{id}",method="DELETE",status="404"}"#
        ),
        1.0
    );
    assert!(series(r#"auth_http_request_duration_seconds_count{route="/api/v1/auth/me"}"#) >= 1.0);
    assert_eq!(series(r#"auth_logins_total{outcome="success"}"#), 1.0);
    assert_eq!(
        series(r#"auth_logins_total{outcome="invalid_credentials"}"#),
        2.0
    );
    assert_eq!(series(r#"auth_logins_total{outcome="throttled"}"#), 1.0);
    assert_eq!(
        series(r#"auth_throttled_requests_total{kind="login"}"#),
        1.0
    );
    // SMTP is down: the reset mail waits in the outbox, and it shows.
    assert_eq!(series(r#"auth_outbox_messages{status="pending"}"#), 1.0);
    assert_eq!(series(r#"auth_outbox_messages{status="dead"}"#), 0.0);
    assert_eq!(series("auth_db_pool_max_connections"), 4.0);
    assert!(metrics.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn a_metrics_token_guards_the_scrape() {
    let app = spawn_app_with(Backend::Sqlite, &[("AUTH_METRICS_TOKEN", "scrape-secret")]).await;
    for token in [None, Some("wrong"), Some("scrape-secre")] {
        let (status, _) = scrape(&app, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let (status, metrics) = scrape(&app, Some("scrape-secret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("auth_db_pool_connections"), "{metrics}");
    // The scheme's name is case-insensitive; anything but the token is not.
    for (authorization, expected) in [
        ("bearer scrape-secret", StatusCode::OK),
        ("BEARER scrape-secret", StatusCode::OK),
        ("Basic scrape-secret", StatusCode::UNAUTHORIZED),
        ("Bearer SCRAPE-SECRET", StatusCode::UNAUTHORIZED),
    ] {
        let response = app
            .http
            .get(app.url("/metrics"))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{authorization}");
    }
}

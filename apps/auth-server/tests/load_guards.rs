//! What the performance work must not break: a token remembered by the
//! verified-token cache is still refused once revoked (here or on another
//! instance), and a full password-hashing queue answers 503 with
//! `Retry-After` instead of queueing without bound.
//!
//! No timing is asserted here: speed is measured by `cargo xtask bench`.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use storage::Backend;
use support::*;

backend_tests!(
    a_cached_token_is_refused_after_logout,
    a_cached_token_is_refused_after_a_revocation_elsewhere,
);

async fn a_cached_token_is_refused_after_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("cache@example.com", None).await;
    let tokens = app.login("cache@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();

    // The first check verifies and caches the token; the next ones are hits.
    for _ in 0..3 {
        let (status, body) = app.me(access).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = app.post_bearer("/api/v1/auth/logout", access).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.me(access).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
}

async fn a_cached_token_is_refused_after_a_revocation_elsewhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_id = app.create_user("elsewhere@example.com", None).await;
    let tokens = app.login("elsewhere@example.com").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app.me(&access).await;
    assert_eq!(status, StatusCode::OK);

    // Another instance (here: the accounts service directly) revokes the
    // session; this server learns it from the revocations table.
    let accounts = app.accounts.clone();
    let revoked = tokio::task::spawn_blocking(move || {
        accounts.revoke_all_sessions(&user_id, "test_elsewhere")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(revoked.len(), 1);

    let mut last = None;
    for _ in 0..100 {
        let (status, body) = app.me(&access).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["code"], "token_revoked");
            return;
        }
        last = Some((status, body));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cached token was still accepted after the revocation: {last:?}");
}

/// One hashing thread, no queue, and a cost that keeps the thread busy for a
/// while: of several simultaneous logins some must be turned away with 503.
#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("AUTH_ARGON2_MAX_CONCURRENT", "1"),
            ("AUTH_ARGON2_QUEUE_LIMIT", "0"),
            ("AUTH_ARGON2_MEMORY_KIB", "65536"),
            ("AUTH_ARGON2_ITERATIONS", "3"),
            // A password guess holds its place in the per-account limit
            // until the hash is checked, so eight parallel logins for one
            // account may meet 429 instead of 503; this test is about the
            // hashing queue only.
            ("AUTH_THROTTLE_LOGIN_ACCOUNT", "off"),
        ],
    )
    .await;
    app.create_user("flood@example.com", None).await;

    let attempts = (0..8).map(|_| {
        app.http
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"login": "flood@example.com", "password": PASSWORD}))
            .send()
    });
    let responses = futures_join_all(attempts).await;
    let mut busy = 0;
    let mut ok = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after: u32 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["code"], "busy");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1, "at least the first login gets the hashing thread");
    assert!(
        busy >= 1,
        "simultaneous logins beyond the thread are refused"
    );

    // Once the flood is over a login works again.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "flood@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `join_all` without a dependency on the futures crate.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

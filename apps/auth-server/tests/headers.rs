//! Headers every response carries: security headers and a request id.

mod support;

use storage::Backend;
use support::*;

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, status) in [
        ("/healthz", 200),
        ("/nowhere", 404),
        ("/api/v1/auth/me", 401),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("content-security-policy", "frame-ancestors 'none'"),
        ] {
            assert_eq!(
                headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{path} {name}"
            );
        }
        // Plain HTTP: HSTS would be meaningless (and is ignored by browsers).
        assert!(headers.get("strict-transport-security").is_none(), "{path}");
        let id = headers["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{path}: {id}");
    }

    // A caller's plausible id is kept (one id across a chain of services);
    // anything else is replaced, never echoed.
    let with_id = |id: &'static str| {
        app.http
            .get(app.url("/healthz"))
            .header("x-request-id", id)
            .send()
    };
    let echoed = with_id("trace-42.a_b").await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42.a_b");
    for junk in ["has space", "<script>", &*"x".repeat(65)] {
        let junk: &'static str = Box::leak(junk.to_owned().into_boxed_str());
        let replaced = with_id(junk).await.unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{junk} -> {id}");
    }
}

//! Headers every response carries: security headers and a request id.

mod support;

use reqwest::StatusCode;
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

/// HEAD is answered wherever GET is: the same status and headers, no body
/// (RFC 9110 §9.3.2).
#[tokio::test]
async fn head_is_get_without_the_body() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, status) in [("/healthz", 200), ("/login", 200), ("/api/v1/auth/me", 401)] {
        let get = app.http.get(app.url(path)).send().await.unwrap();
        let head = app.http.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status().as_u16(), status, "HEAD {path}");
        assert_eq!(get.status(), head.status(), "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert_eq!(head.headers()["x-frame-options"], "DENY", "{path}");
        assert!(!get.bytes().await.unwrap().is_empty(), "GET {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }
}

/// CORS (`cors_allowed_origins`): a listed origin gets preflights and
/// answers on the API, without credentials (tokens travel in headers);
/// other origins and the pages get nothing, and with no list CORS is off.
#[tokio::test]
async fn cors_answers_listed_origins_on_the_api_only() {
    use reqwest::Method;
    const APP: &str = "https://app.example";
    let app = spawn_app_with(Backend::Sqlite, &[("AUTH_CORS_ALLOWED_ORIGINS", APP)]).await;
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let preflight = |path: &str, origin: &str| {
        app.http
            .request(Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };

    for (path, methods) in [
        ("/api/v1/auth/login", "POST"),
        ("/api/v1/tokens", "GET, HEAD, POST"),
        ("/oauth/token", "POST"),
    ] {
        let response = preflight(path, APP).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&response, "access-control-allow-origin"), APP);
        assert_eq!(header(&response, "access-control-allow-methods"), methods);
        let allowed = header(&response, "access-control-allow-headers");
        assert!(allowed.contains("Authorization") && allowed.contains("Content-Type"));
        assert_eq!(header(&response, "access-control-max-age"), "600");
        assert_eq!(header(&response, "access-control-allow-credentials"), "");
        assert!(header(&response, "vary").contains("Origin"), "{path}");
    }
    let answer = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("origin", APP)
        .json(&serde_json::json!({"login": "nobody@example.com", "password": "wrong password 42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&answer, "access-control-allow-origin"), APP);
    assert!(header(&answer, "access-control-expose-headers").contains("Retry-After"));
    assert_eq!(header(&answer, "access-control-allow-credentials"), "");

    // Another origin: nothing, and the preflight stays a 405.
    let response = preflight("/api/v1/auth/login", "https://evil.example")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "access-control-allow-origin"), "");
    let response = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "access-control-allow-origin"), "");
    assert!(header(&response, "vary").contains("Origin"));

    // Pages never answer CORS, even to a listed origin.
    let response = app
        .http
        .get(app.url("/login"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "access-control-allow-origin"), "");
    let response = preflight("/login", APP).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Nor do the native routes a browser navigates to, or any HTML answer.
    for path in ["/oauth/authorize", "/oauth/logout", "/docs"] {
        let response = preflight(path, APP).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    // Nor a profile's unknown path, even under the one with a policy of its
    // own.
    let response = preflight("/compat/buzzbook/api/auth/nope", APP)
        .await
        .unwrap();
    assert_eq!(header(&response, "access-control-allow-origin"), "");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Nor the operator's metrics (open here: no `metrics_token`).
    let response = preflight("/metrics", APP).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Nor anything that is not one of the API's routes (a profile's
    // unknown paths included, even the one with a CORS policy of its own).
    for path in [
        "/compat/buzzbook/nope",
        "/compat/buzzbook/api/auth/nope",
        "/metrics",
        "/oauth/authorize?client_id=nobody",
        "/docs/",
        "/docs/swagger-ui.css",
        "/nowhere",
    ] {
        let response = app
            .http
            .get(app.url(path))
            .header("origin", APP)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            "",
            "{path}"
        );
    }

    // An answer a shared cache may keep says it depends on `Origin` even
    // to a request without one, so a cache never hands it to a browser app.
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(
        header(&response, "cache-control").contains("max-age"),
        "{}",
        header(&response, "cache-control")
    );
    assert!(header(&response, "vary").contains("Origin"));
    assert_eq!(header(&response, "access-control-allow-origin"), "");

    // No list: CORS is off.
    let off = spawn_app(Backend::Sqlite).await;
    let response = off
        .http
        .request(Method::OPTIONS, off.url("/api/v1/auth/login"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "access-control-allow-origin"), "");
}

//! Compatibility profiles 000 (company-portal), 001 (token-validity) and
//! 002 (envelope), over HTTP on both backends, with the seeds' own request
//! shapes (including JSON bodies labelled as forms, as `curl -d` sends them).

mod support;

use auth_core::{AccessClaims, SigningAlgorithm};
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

/// POSTs a JSON text the way the seeds' curl examples do: no Content-Type,
/// so curl labels it `application/x-www-form-urlencoded`.
async fn curl_d(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(!status.is_server_error(), "{status}: {text}");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The key set of a JSON object, sorted: conformance means no missing,
/// renamed or unexplained extra keys.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn expired_copy(app: &TestApp, token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: AccessClaims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims.iat -= 7200;
    claims.nbf -= 7200;
    claims.exp -= 7200;
    claims.jti = uuid::Uuid::new_v4().to_string();
    let keys = accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .load_or_create(
            SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
            4000,
        )
        .unwrap();
    keys.sign(auth_core::ACCESS_TOKEN_TYP, &claims).unwrap()
}

backend_tests!(
    company_portal_tokens_renew_once_even_when_expired,
    company_portal_login_and_renewal,
    token_validity_check_and_refresh,
    envelope_login_redirect_and_refresh
);

async fn company_portal_login_and_renewal(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("user@example.com", None).await;
    let base = "/compat/company-portal";
    let (status, body) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/login"),
        json!({"email": "user@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["expires", "token"]);
    assert_seed_types(&body, &[("/token", "string"), ("/expires", "string")]);
    let expires = body["expires"].as_str().unwrap();
    assert!(
        expires.len() == 24 && expires.ends_with('Z') && expires.as_bytes()[19] == b'.',
        "{expires}"
    );
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.me(&token).await.0,
        StatusCode::OK,
        "a native access token"
    );

    let (status, body) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/login"),
        json!({"email": "user@example.com", "password": "nope"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );

    // Renewal: the new token works, the old one is revoked and can't be renewed twice.
    let (status, renewed) = curl_d(
        &app,
        &format!("{base}/refresh_token"),
        json!({ "token": token }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(keys(&renewed), ["expires", "new_token"]);
    let new_token = renewed["new_token"].as_str().unwrap().to_owned();
    assert!(renewed["expires"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.me(&new_token).await.0, StatusCode::OK);
    assert_eq!(app.me(&token).await.1["code"], "token_revoked");
    let (status, _) = curl_d(
        &app,
        &format!("{base}/refresh_token"),
        json!({ "token": token }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An expired token of a live session renews (the seed allows it)…
    let expired = expired_copy(&app, &new_token);
    assert_eq!(app.me(&expired).await.1["code"], "token_expired");
    let (status, body) = curl_d(
        &app,
        &format!("{base}/refresh_token"),
        json!({ "token": expired }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // …but not once the session is over.
    let latest = body["new_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post_bearer("/api/v1/auth/logout", &latest).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = curl_d(
        &app,
        &format!("{base}/refresh_token"),
        json!({ "token": expired_copy(&app, &latest) }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = curl_d(
        &app,
        &format!("{base}/refresh_token"),
        json!({ "token": "garbage" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = curl_d(&app, &format!("{base}/refresh_token"), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn token_validity_check_and_refresh(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_REFRESH_REUSE_GRACE", "0"),
            ("AUTH_COMPAT_TIME_ZONE", "+09:00"),
        ],
    )
    .await;
    app.create_user("user@example.com", None).await;
    let base = "/compat/token-validity";
    let (status, login) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/login"),
        json!({"email": "user@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(keys(&login), ["refreshToken", "token"]);
    let token = login["token"].as_str().unwrap();
    let refresh = login["refreshToken"].as_str().unwrap();

    let (status, valid) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/checkTokenValidity"),
        json!({ "token": token }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{valid}");
    assert_eq!(keys(&valid), ["token", "valid-until"]);
    assert_seed_types(&valid, &[("/token", "string"), ("/valid-until", "string")]);
    assert_eq!(valid["token"], token);
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let kst = chrono::FixedOffset::east_opt(9 * 3600).unwrap();
    let expected = chrono::DateTime::from_timestamp(claims["exp"].as_i64().unwrap(), 0)
        .unwrap()
        .with_timezone(&kst)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert_eq!(valid["valid-until"], expected.as_str());
    let (status, _) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/checkTokenValidity"),
        json!({"token": "x.y.z"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, rotated) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/tokenRefresh"),
        json!({ "refreshToken": refresh }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(keys(&rotated), ["refreshToken", "token"]);
    assert_ne!(rotated["refreshToken"], login["refreshToken"]);
    let (status, body) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/tokenRefresh"),
        json!({ "refreshToken": refresh }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("refresh_token_reused"))
    );
    let (status, _) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/checkTokenValidity"),
        json!({"token": rotated["token"]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the reuse revoked the whole session"
    );
}

async fn envelope_login_redirect_and_refresh(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_id = app.create_user("env@example.com", Some("testuser")).await;
    let base = "/compat/envelope";
    let (status, login) = app
        .post_json(
            &format!("{base}/api/v1/auth/login"),
            json!({"user": "testuser", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(keys(&login), ["code", "result"]);
    assert_eq!(
        keys(&login["result"]),
        [
            "access_token",
            "access_token_expires_in",
            "refresh_token",
            "refresh_token_expires_in",
            "token_type"
        ]
    );
    // Seed 002's result model.
    assert_seed_types(
        &login,
        &[
            ("/code", "integer"),
            ("/result", "object"),
            ("/result/token_type", "string"),
            ("/result/access_token", "string"),
            ("/result/access_token_expires_in", "integer"),
            ("/result/refresh_token", "string"),
            ("/result/refresh_token_expires_in", "integer"),
        ],
    );
    assert_eq!(login["code"], 0);
    assert_eq!(login["result"]["token_type"], "Bearer");
    assert_eq!(login["result"]["access_token_expires_in"], 1800);
    assert_eq!(login["result"]["refresh_token_expires_in"], 14400);
    assert!(login.get("redirect").is_none(), "{login}");

    let response = app
        .http
        .post(app.url(&format!("{base}/api/v1/auth/login")))
        .json(&json!({"user": "testuser", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let failed: Value = response.json().await.unwrap();
    assert_eq!(
        (failed["code"].as_u64(), failed["error"].as_str()),
        (Some(1001), Some("invalid_credentials"))
    );

    // The seed's misspelt header, an access token of the same session.
    let access = login["result"]["access_token"].as_str().unwrap();
    let refresh = login["result"]["refresh_token"].as_str().unwrap();
    let other = app.login("env@example.com").await;
    let mismatched = app
        .http
        .post(app.url(&format!("{base}/api/v1/auth/refresh")))
        .header(
            "Athorization",
            format!("Bearer {}", other["access_token"].as_str().unwrap()),
        )
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    let body: Value = mismatched.json().await.unwrap();
    assert_eq!(
        body["result"]["code"], 2002,
        "another session's access token: {body}"
    );
    let missing = app
        .http
        .post(app.url(&format!("{base}/api/v1/auth/refresh")))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["result"]["code"],
        2001
    );
    let ok = app
        .http
        .post(app.url(&format!("{base}/api/v1/auth/refresh")))
        .header(
            "Athorization",
            format!("Bearer {}", expired_copy(&app, access)),
        )
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        (
            body["result"]["code"].as_u64(),
            body["result"]["desc"].as_str()
        ),
        (Some(0), Some("Ok")),
        "{body}"
    );
    assert!(
        body["result"]["refresh_token"].is_string() && body["result"]["access_token"].is_string()
    );

    // An administrator asks for a new password: login says so.
    let accounts = app.accounts.clone();
    tokio::task::spawn_blocking(move || {
        let update = accounts::UserUpdate {
            must_change_password: Some(true),
            ..Default::default()
        };
        accounts
            .update_user(&accounts::Actor::operator(), &user_id, update)
            .unwrap();
    })
    .await
    .unwrap();
    let (_, login) = app
        .post_json(
            &format!("{base}/api/v1/auth/login"),
            json!({"user": "testuser", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login["redirect"], "pw/reset");
}

#[tokio::test]
async fn every_native_route_is_routed_and_profiles_can_move() {
    let app = spawn_app(Backend::Sqlite).await;
    for (method, path) in auth_http::http::NATIVE_ROUTES {
        let path = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .http
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let unrouted = status == StatusCode::NOT_FOUND && body["detail"] == "no such resource";
        assert!(
            !unrouted && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not routed: {status} {body}"
        );
    }
    let moved = spawn_app_with(
        Backend::Sqlite,
        &[("AUTH_MOUNTS", "token-validity=/,native=/native")],
    )
    .await;
    moved.create_user("user@example.com", None).await;
    let (status, body) = curl_d(
        &moved,
        "/api/v1/auth/login",
        json!({"email": "user@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["refreshToken"].is_string(),
        "the token-validity login answered: {body}"
    );
    let (status, _) = read(
        moved
            .http
            .get(moved.url("/native/healthz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_input_stays_in_each_profiles_envelope() {
    let app = spawn_app(Backend::Sqlite).await;
    let big = format!("{{\"email\": \"{}\"}}", "a".repeat(100 * 1024));
    type Shape = fn(&Value) -> bool;
    let plain: Shape = |v| keys(v) == ["error", "message"];
    let envelope: Shape =
        |v| keys(v) == ["code", "desc", "error"] && v["code"].as_u64().is_some_and(|c| c > 0);
    let envelope_result: Shape = |v| keys(&v["result"]) == ["code", "desc", "error"];
    let buzzbook: Shape = |v| keys(v) == ["error", "message"];
    let campus: Shape =
        |v| matches!(v["status"].as_u64(), Some(1 | 2)) && v["error_msg"].is_string();
    let cases: Vec<(&str, Shape)> = vec![
        ("/compat/company-portal/api/v1/auth/login", plain),
        ("/compat/company-portal/refresh_token", plain),
        ("/compat/token-validity/api/v1/auth/login", plain),
        (
            "/compat/token-validity/api/v1/auth/checkTokenValidity",
            plain,
        ),
        ("/compat/token-validity/api/v1/auth/tokenRefresh", plain),
        ("/compat/envelope/api/v1/auth/login", envelope),
        ("/compat/envelope/api/v1/auth/refresh", envelope_result),
        ("/compat/buzzbook/api/auth/token", buzzbook),
        ("/compat/campus/users/login", campus),
        ("/compat/campus/users/signup", campus),
    ];
    for (path, shape) in cases {
        for body in ["{oops", "", "[]", "{\"email\": 5}", big.as_str()] {
            let response = app
                .http
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let text = response.text().await.unwrap();
            assert!(
                status.is_client_error(),
                "{path} {:.20}: {status} {text}",
                body
            );
            assert_ne!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{path}: native shape leaked"
            );
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
            assert!(shape(&value), "{path} {:.20}: {text}", body);
        }
    }
    for (path, shape) in [
        ("/compat/company-portal/nope", plain),
        ("/compat/token-validity/nope", plain),
        ("/compat/envelope/nope", envelope),
        ("/compat/buzzbook/nope", buzzbook),
        ("/compat/campus/nope", campus),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let value: Value = response.json().await.unwrap();
        assert!(shape(&value), "{path}: {value}");
    }
}

/// Each company-portal token renews once, whether or not it has expired
/// (an expired one used to renew forever).
async fn company_portal_tokens_renew_once_even_when_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("user@example.com", None).await;
    let base = "/compat/company-portal";
    let (status, body) = curl_d(
        &app,
        &format!("{base}/api/v1/auth/login"),
        json!({"email": "user@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let live = body["token"].as_str().unwrap().to_owned();
    let expired = expired_copy(&app, &live);
    let path = format!("{base}/refresh_token");
    for token in [live, expired] {
        let renew = || curl_d(&app, &path, json!({"token": token}));
        let (status, body) = renew().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for _ in 0..2 {
            let (status, body) = renew().await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"], "token_revoked", "{body}");
        }
    }
}

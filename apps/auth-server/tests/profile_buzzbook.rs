//! Profile `buzzbook` (seed 003) over HTTP on both backends: a registered
//! client vouches for its user and gets tokens in response headers; `/info`
//! renews expired access tokens with the refresh token; logout; CORS.

mod support;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

const BASE: &str = "/compat/buzzbook";

async fn client(app: &TestApp) -> (String, String) {
    let accounts = app.accounts.clone();
    let created =
        tokio::task::spawn_blocking(move || accounts.create_client("buzzbook backend").unwrap())
            .await
            .unwrap();
    (
        created.client_id,
        secrecy::ExposeSecret::expose_secret(created.client_secret.as_ref().unwrap()).to_owned(),
    )
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn issue(app: &TestApp, id: &str, secret: &str, user_id: Value) -> reqwest::Response {
    app.http
        .post(app.url(&format!("{BASE}/api/auth/token")))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        )
        .json(&json!({"loginId": "reader01", "role": "USER", "userId": user_id}))
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

/// The same token re-signed with `exp` in the past.
fn expired(app: &TestApp, token: &str) -> String {
    let mut body = claims(token);
    body["iat"] = json!(body["iat"].as_i64().unwrap() - 7200);
    body["exp"] = json!(body["exp"].as_i64().unwrap() - 7200);
    let keys = accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .load_or_create(
            auth_core::SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
            4000,
        )
        .unwrap();
    keys.sign("JWT", &body).unwrap()
}

backend_tests!(service_to_service_tokens_info_and_logout);

async fn service_to_service_tokens_info_and_logout(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_REFRESH_REUSE_GRACE", "0"),
            ("AUTH_CORS_ALLOWED_ORIGINS", "https://app.buzz.example"),
        ],
    )
    .await;
    let (id, secret) = client(&app).await;

    // Never open: no, or wrong, client credentials.
    let open = app
        .http
        .post(app.url(&format!("{BASE}/api/auth/token")))
        .json(&json!({"loginId": "x", "role": "USER", "userId": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::UNAUTHORIZED);
    // Refused from a browser, still under the profile's own CORS policy.
    let refused = app
        .http
        .post(app.url(&format!("{BASE}/api/auth/token")))
        .header("origin", "https://app.buzz.example")
        .json(&json!({"loginId": "x", "role": "USER", "userId": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&refused, "access-control-allow-credentials"), "true");
    assert!(header(&refused, "access-control-expose-headers").contains("Refresh-Token"));
    assert_eq!(
        issue(&app, &id, "wrong", json!(42)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        issue(&app, "nobody", &secret, json!(42)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The client is checked before the body: a wrong secret with a body
    // that is not even JSON is refused as a client, not as a request; the
    // right client with that body gets the body's error.
    let garbled = |secret: &str| {
        app.http
            .post(app.url(&format!("{BASE}/api/auth/token")))
            .basic_auth(&id, Some(secret))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
    };
    let refused = garbled("wrong").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert_eq!(
        garbled(&secret).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    let response = issue(&app, &id, &secret, json!(42)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (access, refresh) = (
        header(&response, "authorization"),
        header(&response, "refresh-token"),
    );
    let access_claims = claims(&access);
    assert_eq!(access_claims["sub"], "access_token");
    assert_eq!(claims(&refresh)["sub"], "refresh_token");
    let user_id = access_claims["user_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&user_id).is_ok());
    assert!(access_claims["iat"].is_i64() && access_claims["exp"].is_i64());
    // Stable per userId; another userId is another user.
    // The seed's userId is a long: "42", "042" and 42.0 are that user too.
    for same in [json!("42"), json!("042"), json!(42.0)] {
        let again = issue(&app, &id, &secret, same.clone()).await;
        assert_eq!(
            claims(&header(&again, "authorization"))["user_id"],
            user_id.as_str(),
            "{same}"
        );
    }
    // Ids of letters are case-sensitive: two people, two accounts.
    let upper = issue(&app, &id, &secret, json!("Zed1")).await;
    let lower = issue(&app, &id, &secret, json!("zed1")).await;
    assert_eq!(
        (upper.status(), lower.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_ne!(
        claims(&header(&upper, "authorization"))["user_id"],
        claims(&header(&lower, "authorization"))["user_id"]
    );
    let other = issue(&app, &id, &secret, json!(43)).await;
    assert_ne!(
        claims(&header(&other, "authorization"))["user_id"],
        user_id.as_str()
    );
    // Not a native token, and a native token is not one of these.
    assert_eq!(app.me(&access).await.0, StatusCode::UNAUTHORIZED);

    let info = |access: Option<String>, refresh: Option<String>| {
        let mut request = app
            .http
            .get(app.url(&format!("{BASE}/api/auth/info")))
            .header("origin", "https://app.buzz.example");
        if let Some(a) = access {
            request = request.header("authorization", a);
        }
        if let Some(r) = refresh {
            request = request.header("refresh-token", r);
        }
        async move { request.send().await.unwrap() }
    };
    let response = info(Some(access.clone()), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        "https://app.buzz.example"
    );
    assert!(header(&response, "access-control-expose-headers").contains("Refresh-Token"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (
            body["userId"].clone(),
            body["loginId"].clone(),
            body["role"].clone()
        ),
        (json!("42"), json!("reader01"), json!("USER"))
    );
    // Seed 003's /info table: userId string, loginId string, role string,
    // iat number, exp number, sub string.
    assert_seed_types(
        &body,
        &[
            ("/userId", "string"),
            ("/loginId", "string"),
            ("/role", "string"),
            ("/iat", "number"),
            ("/exp", "number"),
            ("/sub", "string"),
        ],
    );
    assert_eq!(body["sub"], "access_token");

    // Expired access + valid refresh: new tokens in the headers (rotation).
    let response = info(Some(expired(&app, &access)), Some(refresh.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (new_access, new_refresh) = (
        header(&response, "authorization"),
        header(&response, "refresh-token"),
    );
    assert_ne!(new_refresh, refresh);
    assert_eq!(claims(&new_access)["user_id"], user_id.as_str());
    // The spent refresh token again: reuse, the session dies.
    let response = info(None, Some(refresh.clone())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "다시 로그인해주세요.");
    assert_eq!(body["error"], "refresh_token_reused");
    assert_eq!(
        info(Some(new_access.clone()), None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Logout: both headers required, both valid, then the tokens are dead.
    let fresh = issue(&app, &id, &secret, json!(42)).await;
    let (access, refresh) = (
        header(&fresh, "authorization"),
        header(&fresh, "refresh-token"),
    );
    let logout = |a: Option<&str>, r: Option<&str>| {
        let mut request = app.http.get(app.url(&format!("{BASE}/api/auth/logout")));
        if let Some(a) = a {
            request = request.header("authorization", a);
        }
        if let Some(r) = r {
            request = request.header("refresh-token", r);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(logout(Some(&access), None).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        logout(Some(&access), Some("garbage")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(logout(Some(&access), Some(&refresh)).await, StatusCode::OK);
    assert_eq!(
        info(Some(access.clone()), None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        info(None, Some(refresh.clone())).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Preflight from an allowed origin; nothing for others.
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("{BASE}/api/auth/info")),
        )
        .header("origin", "https://app.buzz.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(header(&preflight, "access-control-allow-headers").contains("Refresh-Token"));
    let stranger = app
        .http
        .get(app.url(&format!("{BASE}/api/auth/info")))
        .header("origin", "https://evil.example")
        .header(
            "authorization",
            header(&issue(&app, &id, &secret, json!(42)).await, "authorization"),
        )
        .send()
        .await
        .unwrap();
    assert!(
        stranger
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

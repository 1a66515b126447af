//! The security rules of `accounts` hold the same on every front-end that
//! reaches them: the native API, each profile, the pages and the OAuth
//! endpoints (both backends). The rules themselves are tested at the crate
//! boundary (`crates/accounts/tests/rules.rs`); here each front-end shows it
//! applies them, in its own wire shape.

mod support;

use base64::Engine;
use mailer::test_smtp::six_digit_code;
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

backend_tests!(
    failed_logins_count_per_account_on_every_front_end,
    client_tokens_are_introspected_and_revoked_by_oauth,
    nothing_in_a_client_token_works_elsewhere,
    password_reset_refuses_the_username_on_api_and_page,
    every_signup_counts_against_the_mail_limits,
    quoted_local_parts_are_refused_before_any_mail,
    tokens_not_valid_yet_are_refused_on_every_front_end,
);

/// Status and body of any answer (profiles don't speak problem+json).
async fn raw(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(!status.is_server_error(), "{status}: {text}");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    raw(app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap())
    .await
}

fn is_throttled_code(code: &Value) -> bool {
    matches!(
        code.as_str(),
        Some("too_many_requests" | "too_many_attempts")
    )
}

/// Defect 2, per front-end: three failures under three spellings of one
/// account use its whole budget; the right password under a fourth is 429.
async fn failed_logins_count_per_account_on_every_front_end(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_THROTTLE_LOGIN_ACCOUNT", "3/15m"),
            ("AUTH_THROTTLE_LOGIN_IP", "off"),
        ],
    )
    .await;
    type Attempt = fn(&str, &str) -> (&'static str, Value);
    let front_ends: [(&str, Attempt); 5] = [
        ("native", |login, password| {
            (
                "/api/v1/auth/login",
                json!({"login": login, "password": password}),
            )
        }),
        ("company-portal", |login, password| {
            (
                "/compat/company-portal/api/v1/auth/login",
                json!({"email": login, "password": password}),
            )
        }),
        ("token-validity", |login, password| {
            (
                "/compat/token-validity/api/v1/auth/login",
                json!({"email": login, "password": password}),
            )
        }),
        ("envelope", |login, password| {
            (
                "/compat/envelope/api/v1/auth/login",
                json!({"user": login, "password": password}),
            )
        }),
        ("campus", |login, password| {
            (
                "/compat/campus/users/login",
                json!({"username": login, "password": password}),
            )
        }),
    ];
    for (i, (name, attempt)) in front_ends.iter().enumerate() {
        let email = format!("kim{i}@example.com");
        let username = format!("kimuser{i}");
        app.create_user(&email, Some(&username)).await;
        let spellings = [
            email.clone(),
            email.replace("example", "exam\u{AD}ple"),
            email.replace("example.com", "ｅｘａｍｐｌｅ.com"),
        ];
        for spelling in &spellings {
            let (path, body) = attempt(spelling, "not the password at all");
            let (status, body) = post(&app, path, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{name} {spelling}: {body}"
            );
        }
        let (path, body) = attempt(&username, PASSWORD);
        let response = app
            .http
            .post(app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().contains_key("retry-after"),
            "{name}: a 429 says when to come back"
        );
        let (status, body) = raw(response).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{name}: {body}");
        let code = body
            .get("error")
            .or_else(|| body.get("code"))
            .or_else(|| body.pointer("/result/error"))
            .cloned()
            .unwrap_or_default();
        assert!(is_throttled_code(&code), "{name}: {body}");
    }
    // The sign-in page too.
    app.create_user("page@example.com", Some("pageuser")).await;
    for spelling in ["page@example.com", "PAGE@exam\u{AD}ple.com", "pageuser"] {
        let (status, _) = post(
            &app,
            "/api/v1/auth/login",
            json!({"login": spelling, "password": "wrong password here"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let csrf_page = app.http.get(app.url("/login")).send().await.unwrap();
    let cookies: Vec<String> = csrf_page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let html = csrf_page.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let answer = app
        .http
        .post(app.url("/login"))
        .header("cookie", cookies.join("; "))
        .form(&[
            ("csrf", csrf),
            ("login", "page@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers().contains_key("retry-after"));
}

async fn client_pair(app: &TestApp, user_id: u64) -> (String, String, String) {
    let accounts = app.accounts.clone();
    let client = tokio::task::spawn_blocking(move || accounts.create_client("buzzbook").unwrap())
        .await
        .unwrap();
    use secrecy::ExposeSecret;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        client.client_id,
        client.client_secret.as_ref().unwrap().expose_secret()
    ));
    let response = app
        .http
        .post(app.url("/compat/buzzbook/api/auth/token"))
        .header("authorization", format!("Basic {basic}"))
        .json(&json!({"loginId": "reader", "role": "USER", "userId": user_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    (header("authorization"), header("refresh-token"), basic)
}

/// Defect 3: `/oauth/revoke` answered 200 to client tokens and revoked
/// nothing; introspection called live ones inactive.
async fn client_tokens_are_introspected_and_revoked_by_oauth(backend: Backend) {
    let app = spawn_app(backend).await;
    for revoke_refresh in [true, false] {
        let (access, refresh, basic) = client_pair(&app, 42).await;
        let oauth = |path: &'static str, token: String| {
            app.http
                .post(app.url(path))
                .header("authorization", format!("Basic {basic}"))
                .form(&[("token", token)])
                .send()
        };
        for token in [&access, &refresh] {
            let (status, body) =
                raw(oauth("/oauth/introspect", token.clone()).await.unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["active"], true, "{body}");
        }
        let revoke = if revoke_refresh { &refresh } else { &access };
        let (status, _) = raw(oauth("/oauth/revoke", revoke.clone()).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        for token in [&access, &refresh] {
            let (_, body) = raw(oauth("/oauth/introspect", token.clone()).await.unwrap()).await;
            assert_eq!(body["active"], false, "{body}");
        }
        // The profile itself refuses both at once.
        let (status, body) = raw(app
            .http
            .get(app.url("/compat/buzzbook/api/auth/info"))
            .header("authorization", &access)
            .header("refresh-token", &refresh)
            .send()
            .await
            .unwrap())
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "token_revoked", "{body}");
    }
}

/// Defect 4: the client refresh token carried a native refresh token in
/// clear. Nothing in either client token works on any other front-end.
async fn nothing_in_a_client_token_works_elsewhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh, _) = client_pair(&app, 7).await;
    let payload = |token: &str| -> Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    let mut candidates = vec![access.clone(), refresh.clone()];
    for claims in [payload(&access), payload(&refresh)] {
        for value in claims.as_object().unwrap().values() {
            if let Some(text) = value.as_str() {
                candidates.push(text.to_owned());
            }
        }
    }
    type Body = fn(&str) -> Value;
    let refresh_endpoints: [(&str, Body); 4] = [
        ("/api/v1/auth/refresh", |t| json!({"refresh_token": t})),
        (
            "/compat/token-validity/api/v1/auth/tokenRefresh",
            |t| json!({"refreshToken": t}),
        ),
        (
            "/compat/envelope/api/v1/auth/refresh",
            |t| json!({"refresh_token": t}),
        ),
        ("/compat/campus/users/login", |t| json!({"refresh": t})),
    ];
    for candidate in &candidates {
        for (path, body) in &refresh_endpoints {
            let (status, answer) = post(&app, path, body(candidate)).await;
            assert!(
                status.is_client_error(),
                "{path} accepted a piece of a client token: {status} {answer}"
            );
        }
        for path in ["/api/v1/auth/me", "/api/v1/tokens"] {
            let response = app
                .http
                .get(app.url(path))
                .bearer_auth(candidate)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        }
    }
    // The pair itself still renews through its own profile.
    let expired_access = "";
    let (status, body) = raw(app
        .http
        .get(app.url("/compat/buzzbook/api/auth/info"))
        .header("refresh-token", &refresh)
        .header("authorization", expired_access)
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Defect 5: password reset accepted the username as the new password.
async fn password_reset_refuses_the_username_on_api_and_page(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    app.create_user("kim@example.com", Some("kimminjun2026"))
        .await;
    let (status, _) = app
        .post_json(
            "/api/v1/auth/password/forgot",
            json!({"email": "kim@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = sink.wait_for("kim@example.com", MAIL_WAIT).await.unwrap();
    let code = six_digit_code(&mail.text_body()).unwrap();
    let (status, body) = app
        .post_json(
            "/api/v1/auth/password/reset",
            json!({"email": "kim@example.com", "code": code, "new_password": "kimminjun2026"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "weak_password");
    // The page's reset form answers the same, and the code still works.
    let page = app
        .http
        .get(app.url("/reset-password"))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let html = page.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[start..start + html[start..].find('"').unwrap()].to_owned();
    let page_reset = |password: &'static str| {
        app.http
            .post(app.url("/reset-password"))
            .header("cookie", cookies.join("; "))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", "kim@example.com"),
                ("code", code.as_str()),
                ("password", password),
                ("password_confirm", password),
            ])
            .send()
    };
    let refused = page_reset("kimminjun2026").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let done = page_reset("a brand new private phrase").await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let (status, _) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "kimminjun2026", "password": "a brand new private phrase"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Defect 7: campus signup skipped the mail limits (per address and per IP).
async fn every_signup_counts_against_the_mail_limits(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_THROTTLE_MAIL_ADDRESS", "1/1h"),
            ("AUTH_THROTTLE_MAIL_IP", "3/1h"),
        ],
    )
    .await;
    let campus_signup = |email: &str| {
        post(
            &app,
            "/compat/campus/users/signup",
            json!({"username": format!("u{}", email.len()), "password": PASSWORD,
                   "email": email, "organization": uuid::Uuid::new_v4().to_string()}),
        )
    };
    // One mail-sending request for this address (native signup), then the
    // campus signup for the same address is refused by the address limit.
    let (status, _) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "lee@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = campus_signup("lee@example.com").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(is_throttled_code(&body["code"]), "{body}");
    // The IP's budget (3) is spent by two more campus signups.
    for email in ["a@example.com", "b@example.com"] {
        let (status, body) = campus_signup(email).await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{email}: {body}");
    }
    let (status, body) = campus_signup("c@example.com").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

/// Defect 8: a quoted local part passed the edge and failed (500) when mailed.
async fn quoted_local_parts_are_refused_before_any_mail(backend: Backend) {
    let app = spawn_app(backend).await;
    let accounts = app.accounts.clone();
    let org = tokio::task::spawn_blocking(move || {
        accounts
            .create_organization(
                "ACME",
                None,
                &[accounts::Domain::parse("acme.example").unwrap()],
                false,
            )
            .unwrap()
    })
    .await
    .unwrap();
    let quoted = r#""x@evil.com"@acme.example"#;
    let (status, body) = app
        .post_json(
            &format!("/api/v1/organizations/{}/email-verification", org.id),
            json!({"email": quoted}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = post(
        &app,
        "/compat/campus/users/organization/send_auth_email",
        json!({"organization_id": org.id, "email": quoted}),
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
    for (path, body) in [
        (
            "/api/v1/auth/signup",
            json!({"email": quoted, "password": PASSWORD}),
        ),
        ("/api/v1/auth/password/forgot", json!({"email": quoted})),
    ] {
        let (status, answer) = app.post_json(path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
    }
}

/// Re-signs a token's claims with the server's keys after `change`.
fn resigned(app: &TestApp, token: &str, typ: &str, change: impl FnOnce(&mut Value)) -> String {
    let part = token.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap();
    change(&mut claims);
    let keys = accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .load_or_create(
            auth_core::SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
            4000,
        )
        .unwrap();
    keys.sign(typ, &claims).unwrap()
}

/// `nbf` in the future (beyond the leeway): refused by the one verifier,
/// whichever front-end asks, even where an expired token is accepted.
async fn tokens_not_valid_yet_are_refused_on_every_front_end(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let tokens = app.login("kim@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    let later = chrono::Utc::now().timestamp() + 3600;
    let future = resigned(&app, access, auth_core::ACCESS_TOKEN_TYP, |c| {
        c["nbf"] = json!(later);
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
    });
    let (status, body) = app.me(&future).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_token");
    let (status, body) = post(
        &app,
        "/compat/token-validity/api/v1/auth/checkTokenValidity",
        json!({"token": future}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = post(
        &app,
        "/compat/company-portal/refresh_token",
        json!({"token": future}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = raw(app
        .http
        .post(app.url("/compat/envelope/api/v1/auth/refresh"))
        .bearer_auth(&future)
        .json(&json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Nothing was spent by the refusal.
    let (status, _) = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    // The client tokens of the buzzbook profile, and introspection.
    let (client_access, _, basic) = client_pair(&app, 9).await;
    let future_client = resigned(&app, &client_access, auth_core::CLIENT_TOKEN_TYP, |c| {
        c["nbf"] = json!(later);
    });
    let (status, body) = raw(app
        .http
        .get(app.url("/compat/buzzbook/api/auth/info"))
        .header("authorization", &future_client)
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    for token in [&future, &future_client] {
        let (_, body) = raw(app
            .http
            .post(app.url("/oauth/introspect"))
            .header("authorization", format!("Basic {basic}"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap())
        .await;
        assert_eq!(body["active"], false, "{body}");
    }
}

//! Seed 004 and the mail-driven flows, end to end: the server sends real
//! mail over SMTP to a listener in the test, the test reads the code out of
//! the received message and completes the flow over HTTP. Both backends.

mod support;

use mailer::test_smtp::{SmtpSink, six_digit_code};
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

async fn code_for(sink: &SmtpSink, to: &str) -> String {
    let mail = sink
        .wait_for(to, MAIL_WAIT)
        .await
        .unwrap_or_else(|| panic!("no mail to {to}"));
    six_digit_code(&mail.text_body()).unwrap_or_else(|| panic!("no code in: {}", mail.text_body()))
}

async fn create_school(app: &TestApp, name: &str, domains: &[&str]) -> String {
    let accounts = app.accounts.clone();
    let name = name.to_owned();
    let domains: Vec<accounts::Domain> = domains
        .iter()
        .map(|d| accounts::Domain::parse(d).unwrap())
        .collect();
    tokio::task::spawn_blocking(move || {
        accounts.create_organization(&name, Some("Seoul"), &domains, false)
    })
    .await
    .unwrap()
    .unwrap()
    .id
}

backend_tests!(
    seed_004_verify_then_signup_then_login,
    organization_code_rejections,
    signup_pending_until_email_verified,
    signup_with_a_taken_email_reveals_nothing,
    password_reset_revokes_sessions,
    password_change_keeps_this_session_only,
    mail_language_follows_the_request,
    expired_codes_are_refused,
);

async fn seed_004_verify_then_signup_then_login(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let org_id = create_school(&app, "서울대학교", &["snu.ac.kr", "snu.kr"]).await;

    let (status, orgs) = read(
        app.http
            .get(app.url("/api/v1/organizations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let org = orgs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == org_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(org["name"], "서울대학교");
    assert_eq!(org["region"], "Seoul");
    assert_eq!(org["email_domains"], json!(["snu.ac.kr", "snu.kr"]));

    let (status, body) = app
        .post_json(
            &format!("/api/v1/organizations/{org_id}/email-verification"),
            json!({"email": "Kim@SNU.ac.kr"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mail = sink
        .wait_for("kim@snu.ac.kr", MAIL_WAIT)
        .await
        .expect("organization code mail");
    assert!(
        mail.text_body().contains("서울대학교"),
        "{}",
        mail.text_body()
    );
    let code = six_digit_code(&mail.text_body()).unwrap();

    let (status, body) = app
        .post_json(
            "/api/v1/organizations/email-verification/confirm",
            json!({"email": "kim@snu.ac.kr", "code": code}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"verified": true, "organization_id": org_id}));

    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "kim@snu.ac.kr", "password": PASSWORD, "username": "kim", "name": "김민준", "organization_id": org_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "active");

    let tokens = app.login("kim").await;
    let (status, me) = app.me(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["organization_id"], org_id.as_str());
    assert_eq!(me["name"], "김민준");

    // The verification was spent by the signup.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "kim@snu.ac.kr", "password": PASSWORD, "organization_id": org_id}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("email_not_verified"))
    );
}

async fn organization_code_rejections(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let org_id = create_school(&app, "KAIST", &["kaist.ac.kr"]).await;
    let ask = |email: &str, org: &str| {
        let path = format!("/api/v1/organizations/{org}/email-verification");
        let body = json!({ "email": email });
        let app = &app;
        async move { app.post_json(&path, body).await }
    };
    let unknown = uuid::Uuid::new_v4().to_string();
    for (email, org, status, code) in [
        (
            "lee@kaist.ac.kr",
            unknown.as_str(),
            StatusCode::NOT_FOUND,
            "organization_not_found",
        ),
        (
            "lee@kaist.ac.kr",
            "not-a-uuid",
            StatusCode::NOT_FOUND,
            "organization_not_found",
        ),
        (
            "lee@evil-kaist.ac.kr",
            org_id.as_str(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email_domain_not_allowed",
        ),
        (
            "lee@mail.kaist.ac.kr",
            org_id.as_str(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email_domain_not_allowed",
        ),
        (
            "lee@kaist.ac.kr.evil.com",
            org_id.as_str(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email_domain_not_allowed",
        ),
        (
            "not an email",
            org_id.as_str(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let (got, body) = ask(email, org).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{email} {org}: {body}"
        );
    }

    assert_eq!(
        ask("lee@kaist.ac.kr", &org_id).await.0,
        StatusCode::ACCEPTED
    );
    let code = code_for(&sink, "lee@kaist.ac.kr").await;
    let response = app
        .http
        .post(app.url(&format!(
            "/api/v1/organizations/{org_id}/email-verification"
        )))
        .json(&json!({"email": "lee@kaist.ac.kr"}))
        .send()
        .await
        .unwrap();
    let retry_after: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts"))
    );

    // Signing up before confirming: refused, and nothing is created.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "lee@kaist.ac.kr", "password": PASSWORD, "organization_id": org_id}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("email_not_verified"))
    );
    let (status, _) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "lee@kaist.ac.kr", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let confirm = |code: &str| {
        let body = json!({"email": "lee@kaist.ac.kr", "code": code});
        let app = &app;
        async move {
            app.post_json("/api/v1/organizations/email-verification/confirm", body)
                .await
        }
    };
    for _ in 0..4 {
        let (status, body) = confirm(wrong).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_code"))
        );
    }
    let (status, body) = confirm("12ab").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts"))
    );
    // The code is dead now, even the right one.
    let (status, body) = confirm(&code).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code"))
    );
}

async fn signup_pending_until_email_verified(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "park@example.com", "password": PASSWORD, "username": "park"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "pending_verification");
    assert!(uuid::Uuid::parse_str(body["user_id"].as_str().unwrap()).is_ok());

    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "park", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_not_active"))
    );

    let code = code_for(&sink, "park@example.com").await;
    let (status, body) = app
        .post_json(
            "/api/v1/auth/email/verify",
            json!({"email": "park@example.com", "code": code}),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"verified": true})));
    app.login("park").await;
    let (status, body) = app
        .post_json(
            "/api/v1/auth/email/verify",
            json!({"email": "park@example.com", "code": code}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code")),
        "codes are single-use"
    );

    // Bad input: every field problem at once, nothing created.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "nope", "password": "short", "username": "x!"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "validation_failed");
    for field in ["email", "password", "username"] {
        assert!(
            body["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["field"] == field)),
            "{field} missing in {body}"
        );
    }
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "weak@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "same@example.com", "password": "same@example.com"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "long@example.com", "password": PASSWORD, "name": "n".repeat(500)}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "taken-name@example.com", "password": PASSWORD, "username": "PARK"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken"))
    );
    assert_eq!(
        sink.count_to("weak@example.com") + sink.count_to("taken-name@example.com"),
        0
    );
}

async fn signup_with_a_taken_email_reveals_nothing(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    app.create_user("owner@example.com", None).await;
    let fresh = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "new@example.com", "password": PASSWORD}),
        )
        .await;
    let taken = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "owner@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (fresh.0, taken.0),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(fresh.1["status"], taken.1["status"]);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&fresh.1), keys(&taken.1));
    let warning = sink
        .wait_for("owner@example.com", MAIL_WAIT)
        .await
        .expect("warning to the owner");
    assert!(
        warning
            .text_body()
            .contains("https://auth.example.com/forgot-password"),
        "{}",
        warning.text_body()
    );
    // The owner's password is unchanged.
    app.login("owner@example.com").await;

    let (revealing, _sink2) = app_with_smtp(backend, &[("AUTH_REVEAL_EMAIL_TAKEN", "true")]).await;
    revealing.create_user("owner@example.com", None).await;
    let (status, body) = revealing
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "owner@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("email_taken"))
    );
}

async fn password_reset_revokes_sessions(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    app.create_user("reset@example.com", None).await;
    let session = app.login("reset@example.com").await;

    let known = app
        .post_json(
            "/api/v1/auth/password/forgot",
            json!({"email": "reset@example.com"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/v1/auth/password/forgot",
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(known.0, StatusCode::ACCEPTED);
    assert_eq!(
        known, unknown,
        "same answer whether or not the account exists"
    );
    let mail = sink.wait_for("reset@example.com", MAIL_WAIT).await.unwrap();
    let code = six_digit_code(&mail.text_body()).unwrap();
    assert!(
        mail.text_body()
            .contains("https://auth.example.com/reset-password?email=reset%40example.com")
    );

    let reset = |code: &str, password: &str| {
        let body = json!({"email": "reset@example.com", "code": code, "new_password": password});
        let app = &app;
        async move { app.post_json("/api/v1/auth/password/reset", body).await }
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = reset(wrong, "a brand new passphrase 77").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code"))
    );
    let (status, body) = reset(&code, "qwerty123").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (status, _) = reset(&code, "a brand new passphrase 77").await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "a weak password must not burn the code"
    );

    let (status, body) = app.me(session["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
    assert_eq!(
        app.refresh(session["refresh_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "reset@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "reset@example.com", "password": "a brand new passphrase 77"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = reset(&code, "yet another passphrase 88").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code")),
        "the code died"
    );
    assert_eq!(sink.count_to("ghost@example.com"), 0);
}

async fn password_change_keeps_this_session_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("change@example.com", None).await;
    let here = app.login("change@example.com").await;
    let elsewhere = app.login("change@example.com").await;
    let change = |current: &str, new: &str| {
        let request = app
            .http
            .post(app.url("/api/v1/auth/password/change"))
            .bearer_auth(here["access_token"].as_str().unwrap())
            .json(&json!({"current_password": current, "new_password": new}));
        async move { read(request.send().await.unwrap()).await }
    };
    let (status, body) = change("wrong current password", "a brand new passphrase 77").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (status, body) = change(PASSWORD, "change@example.com").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (status, _) = change(PASSWORD, "a brand new passphrase 77").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.me(here["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.me(elsewhere["access_token"].as_str().unwrap()).await.1["code"],
        "token_revoked"
    );
    let (status, _) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "change@example.com", "password": "a brand new passphrase 77"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn mail_language_follows_the_request(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let signup = |email: &str, language: Option<&str>| {
        let mut request = app
            .http
            .post(app.url("/api/v1/auth/signup"))
            .json(&json!({"email": email, "password": PASSWORD}));
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        async move { read(request.send().await.unwrap()).await }
    };
    assert_eq!(
        signup("en@example.com", Some("en-US,en;q=0.9")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(signup("ko@example.com", None).await.0, StatusCode::CREATED);
    assert_eq!(
        signup("ko2@example.com", Some("ko-KR,ko;q=0.9,en;q=0.5"))
            .await
            .0,
        StatusCode::CREATED
    );
    let hangul = |s: &str| s.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c));
    let en = sink.wait_for("en@example.com", MAIL_WAIT).await.unwrap();
    let ko = sink.wait_for("ko@example.com", MAIL_WAIT).await.unwrap();
    let ko2 = sink.wait_for("ko2@example.com", MAIL_WAIT).await.unwrap();
    assert!(
        !hangul(&en.subject()) && !hangul(&en.text_body()),
        "{}",
        en.subject()
    );
    assert!(
        hangul(&ko.subject()) && hangul(&ko.text_body()),
        "{}",
        ko.subject()
    );
    assert!(hangul(&ko2.subject()), "{}", ko2.subject());
    // An explicit locale in the body wins over the header.
    let request = app
        .http
        .post(app.url("/api/v1/auth/signup"))
        .header("accept-language", "ko")
        .json(&json!({"email": "body-en@example.com", "password": PASSWORD, "locale": "en"}));
    assert_eq!(
        read(request.send().await.unwrap()).await.0,
        StatusCode::CREATED
    );
    assert!(!hangul(
        &sink
            .wait_for("body-en@example.com", MAIL_WAIT)
            .await
            .unwrap()
            .subject()
    ));
}

async fn expired_codes_are_refused(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let org_id = create_school(&app, "POSTECH", &["postech.ac.kr"]).await;
    let (status, _) = app
        .post_json(
            &format!("/api/v1/organizations/{org_id}/email-verification"),
            json!({"email": "old@postech.ac.kr"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = code_for(&sink, "old@postech.ac.kr").await;
    // Eleven minutes later, as far as the database is concerned.
    let url = app.db.url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use storage::schema::email_codes;
        let pool = storage::connect(&url, &storage::PoolOptions::default()).unwrap();
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(1);
        diesel::update(email_codes::table)
            .set(email_codes::expires_at.eq(past))
            .execute(&mut pool.get().unwrap())
            .unwrap();
    })
    .await
    .unwrap();
    let (status, body) = app
        .post_json(
            "/api/v1/organizations/email-verification/confirm",
            json!({"email": "old@postech.ac.kr", "code": code}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code"))
    );
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "old@postech.ac.kr", "password": PASSWORD, "organization_id": org_id}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("email_not_verified"))
    );
}

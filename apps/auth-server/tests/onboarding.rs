//! Seed 000, end to end over HTTP with a real SMTP listener, on both
//! backends: a company registers, an operator approves it with `sms:send`,
//! the contact activates from the mailed link, logs in, creates an API token
//! whose claims carry the permission, can't grant itself `fame:write`,
//! revokes the token (which then fails and appears in `/revocations`), and
//! loses access at once when the operator removes the permission. The audit
//! log records it all, and tampering with it is detected.

mod support;

use std::process::Command;

use accounts::{EmailAddress, Password};
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storage::Backend;
use support::*;

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

async fn admin_token(app: &TestApp) -> String {
    let accounts = app.accounts.clone();
    tokio::task::spawn_blocking(move || {
        let email = EmailAddress::parse("ops@operator.test").unwrap();
        accounts
            .create_admin(&email, Some(&Password::parse(PASSWORD.into()).unwrap()))
            .unwrap();
    })
    .await
    .unwrap();
    app.login("ops@operator.test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn activation_token(text: &str) -> String {
    let start = text
        .find("/activate?token=")
        .expect("activation link in mail")
        + "/activate?token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

backend_tests!(
    seed_000_register_review_activate_and_use_api_tokens,
    rejection_is_final_and_mailed,
    org_admins_manage_only_their_organization_within_their_permissions
);

async fn seed_000_register_review_activate_and_use_api_tokens(backend: Backend) {
    let (app, sink) =
        app_with_smtp(backend, &[("AUTH_OPERATOR_EMAILS", "review@operator.test")]).await;
    let admin = admin_token(&app).await;

    // 1. The company registers.
    let form = json!({"company_name": "에이크미 주식회사", "contact_name": "홍길동",
                      "contact_email": "Hong@Acme.co.kr", "contact_phone": "010-1234-5678"});
    let (status, body) = app.post_json("/api/v1/registrations", form.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "pending_review");
    let registration_id = body["registration_id"].as_str().unwrap().to_owned();
    let notice = sink
        .wait_for("review@operator.test", MAIL_WAIT)
        .await
        .expect("operators are told");
    assert!(notice.text_body().contains("에이크미 주식회사"));
    let (status, body) = app.post_json("/api/v1/registrations", form).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("registration_pending"))
    );
    let (status, body) = app
        .post_json("/api/v1/registrations", json!({"company_name": "", "contact_name": "x", "contact_email": "nope", "contact_phone": "12"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    for field in ["company_name", "contact_email", "contact_phone"] {
        assert!(
            body["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["field"] == field)),
            "{field}: {body}"
        );
    }

    // 2. Only operators see the queue.
    let (status, body) = read(
        app.http
            .get(app.url("/api/v1/admin/registrations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    app.create_user("member@example.com", None).await;
    let member = app.login("member@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app.get_bearer("/api/v1/admin/registrations", &member).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = app
        .get_bearer("/api/v1/admin/registrations?status=pending_review", &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let item = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == registration_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["contact_phone"], "+821012345678");
    assert_eq!(item["contact_email"], "hong@acme.co.kr");

    // 3. Approve with sms:send; a decision is final.
    let approve = format!("/api/v1/admin/registrations/{registration_id}/approve");
    let (status, body) = app
        .send_json(
            Method::POST,
            &approve,
            Some(&admin),
            json!({"permissions": ["sms:nope"]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("sms:send"),
        "lists the valid permissions: {body}"
    );
    let (status, body) = app
        .send_json(
            Method::POST,
            &approve,
            Some(&member),
            json!({"permissions": ["sms:send"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, approved) = app
        .send_json(
            Method::POST,
            &approve,
            Some(&admin),
            json!({"permissions": ["sms:send"], "note": "KYC ok"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decision_note"], "KYC ok");
    let (status, body) = app
        .send_json(
            Method::POST,
            &approve,
            Some(&admin),
            json!({"permissions": ["sms:send"]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_decided"))
    );
    let reject = format!("/api/v1/admin/registrations/{registration_id}/reject");
    let (status, body) = app
        .send_json(
            Method::POST,
            &reject,
            Some(&admin),
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_decided"))
    );

    // 4. The activation mail; login is impossible before activating.
    let mail = sink
        .wait_for("hong@acme.co.kr", MAIL_WAIT)
        .await
        .expect("activation mail");
    let token = activation_token(&mail.text_body());
    assert!(
        mail.text_body()
            .contains("https://auth.example.com/activate?token=")
    );
    let (status, _) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "hong@acme.co.kr", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .post_json(
            "/api/v1/auth/activate",
            json!({"token": token, "password": "password1"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (status, session) = app
        .post_json(
            "/api/v1/auth/activate",
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a weak password must not spend the link: {session}"
    );
    let (status, body) = app
        .post_json(
            "/api/v1/auth/activate",
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_activation_token"))
    );
    let (status, body) = app
        .post_json(
            "/api/v1/auth/activate",
            json!({"token": "forged", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_activation_token"))
    );

    let access = session["access_token"].as_str().unwrap().to_owned();
    let access_claims = claims(&access);
    assert_eq!(access_claims["perms"], json!(["sms:send"]));
    assert_eq!(access_claims["roles"], json!(["org_admin"]));
    assert_eq!(access_claims["org"], approved["organization_id"]);
    let login = app.login("hong@acme.co.kr").await;
    assert_eq!(
        claims(login["access_token"].as_str().unwrap())["perms"],
        json!(["sms:send"])
    );

    // 5. API tokens.
    let (status, created) = app
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(&access),
            json!({"name": "SMS sender", "permissions": ["sms:send"], "expires_in_days": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let api_token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(header(&api_token)["typ"], "api+jwt");
    let api_claims = claims(&api_token);
    assert_eq!(api_claims["perms"], json!(["sms:send"]));
    assert_eq!(api_claims["jti"], created["id"]);
    assert_eq!(
        api_claims["exp"].as_i64().unwrap() - api_claims["iat"].as_i64().unwrap(),
        30 * 86_400
    );
    let (status, me) = app.get_bearer("/api/v1/auth/me", &api_token).await;
    assert_eq!(
        (status, me["permissions"].clone()),
        (StatusCode::OK, json!(["sms:send"]))
    );

    for (body, code) in [
        (
            json!({"name": "fame", "permissions": ["fame:write"]}),
            "permission_not_held",
        ),
        (
            json!({"name": "x".repeat(101), "permissions": ["sms:send"]}),
            "validation_failed",
        ),
        (
            json!({"name": "dup", "permissions": ["sms:send", "sms:send"]}),
            "validation_failed",
        ),
        (
            json!({"name": "unknown", "permissions": ["sms:delete"]}),
            "validation_failed",
        ),
        (
            json!({"name": "too long", "permissions": ["sms:send"], "expires_in_days": 366}),
            "validation_failed",
        ),
    ] {
        let (status, problem) = app
            .send_json(Method::POST, "/api/v1/tokens", Some(&access), body.clone())
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}"
        );
    }
    let (status, _) = app
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(&api_token),
            json!({"name": "n", "permissions": []}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an API token can't mint tokens"
    );
    let (status, list) = app.get_bearer("/api/v1/tokens", &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(
        list["items"][0].get("token").is_none(),
        "secrets are shown once"
    );
    assert_eq!(list["items"][0]["name"], "SMS sender");

    let (status, _) = app
        .send_json(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created["id"].as_str().unwrap()),
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get_bearer("/api/v1/auth/me", &api_token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
    let (status, feed) = read(
        app.http
            .get(app.url("/api/v1/revocations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "jti" && i["id"] == created["id"]),
        "{feed}"
    );
    let cursor = feed["next_cursor"].as_str().unwrap();
    let (_, later) = read(
        app.http
            .get(app.url(&format!("/api/v1/revocations?since={cursor}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(later["items"], json!([]));
    let (status, body) = read(
        app.http
            .get(app.url("/api/v1/revocations?since=abc"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_cursor"))
    );

    // 6. The operator takes sms:send away: the old access token and an API token holding it die at once.
    let (_, second) = app
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(&access),
            json!({"name": "second", "permissions": ["sms:send"]}),
        )
        .await;
    let second = second["token"].as_str().unwrap().to_owned();
    let user_id = access_claims["sub"].as_str().unwrap();
    let (status, user) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{user_id}"),
            Some(&admin),
            json!({"permissions": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["permissions"], json!([]));
    assert_eq!(user["permission_version"], 2);
    for token in [&access, &second] {
        let (status, body) = app.get_bearer("/api/v1/auth/me", token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("token_revoked"))
        );
    }
    let fresh = app.login("hong@acme.co.kr").await;
    let fresh_claims = claims(fresh["access_token"].as_str().unwrap());
    assert_eq!(fresh_claims["perms"], json!([]));
    assert_eq!(fresh_claims["pv"], 2);
    let (status, body) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{user_id}"),
            Some(&admin),
            json!({"permissions": ["x:y"]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );

    // The only operator can't lock everyone out by disabling or demoting itself.
    let admin_id = claims(&admin)["sub"].as_str().unwrap().to_owned();
    for change in [json!({"disabled": true}), json!({"roles": []})] {
        let (status, body) = app
            .send_json(
                Method::PATCH,
                &format!("/api/v1/admin/users/{admin_id}"),
                Some(&admin),
                change,
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("last_admin")),
            "{body}"
        );
    }

    // 7. The audit log tells the story, and only operators read it.
    let (status, audit) = app.get_bearer("/api/v1/admin/audit", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event"].as_str().unwrap())
        .collect();
    for expected in [
        "registration.submitted",
        "registration.approved",
        "account.activated",
        "api_token.created",
        "api_token.revoked",
        "permissions.changed",
        "login.succeeded",
    ] {
        assert!(
            events.contains(&expected),
            "{expected} missing from {events:?}"
        );
    }
    let (status, filtered) = app
        .get_bearer("/api/v1/admin/audit?event=permissions.changed", &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        filtered["items"][0]["details"]["before"],
        json!(["sms:send"])
    );
    assert_eq!(
        app.get_bearer("/api/v1/admin/audit", &member).await.0,
        StatusCode::FORBIDDEN
    );

    // 8. Tampering with a row is detected by `auth-server audit verify`.
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_auth-server"))
            .args(["audit", "verify"])
            .env("AUTH_DATABASE_URL", app.db.url_string())
            .env("AUTH_KEYS_DIR", app.db.dir.join("keys"))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let intact = verify();
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact"));
    let url = app.db.url.clone();
    let tampered_id = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use storage::schema::audit_log;
        let pool = storage::connect(&url, &storage::PoolOptions::default()).unwrap();
        let mut conn = pool.get().unwrap();
        let id: i64 = audit_log::table
            .filter(audit_log::event.eq("permissions.changed"))
            .select(audit_log::id)
            .first(&mut conn)
            .unwrap();
        diesel::update(audit_log::table.find(id))
            .set(audit_log::details.eq(r#"{"after":["sms:send"],"before":["sms:send"]}"#))
            .execute(&mut conn)
            .unwrap();
        id
    })
    .await
    .unwrap();
    let broken = verify();
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains(&format!("row {tampered_id}")), "{stderr}");
}

async fn rejection_is_final_and_mailed(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let admin = admin_token(&app).await;
    let (status, body) = app
        .post_json(
            "/api/v1/registrations",
            json!({"company_name": "Shady Ltd", "contact_name": "Kim", "contact_email": "kim@shady.example", "contact_phone": "+1 650 253 0000", "locale": "en"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["registration_id"].as_str().unwrap();
    let reject = format!("/api/v1/admin/registrations/{id}/reject");
    let (status, body) = app
        .send_json(Method::POST, &reject, Some(&admin), json!({"reason": ""}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (status, body) = app
        .send_json(Method::POST, &reject, Some(&admin), json!({"reason": "We could not verify the business registration number.", "locale": "en"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "rejected");
    assert!(body["decided_by"].is_string() && body["decided_at"].is_string());
    let mail = sink
        .wait_for("kim@shady.example", MAIL_WAIT)
        .await
        .expect("rejection mail");
    assert!(
        mail.text_body()
            .contains("We could not verify the business registration number.")
    );
    let approve = format!("/api/v1/admin/registrations/{id}/approve");
    let (status, body) = app
        .send_json(
            Method::POST,
            &approve,
            Some(&admin),
            json!({"permissions": []}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_decided"))
    );
    let (status, _) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "kim@shady.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A new registration for the same address is possible once the old one is decided.
    let (status, _) = app
        .post_json("/api/v1/registrations", json!({"company_name": "Shady Ltd", "contact_name": "Kim", "contact_email": "kim@shady.example", "contact_phone": "+1 650 253 0000"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

async fn org_admins_manage_only_their_organization_within_their_permissions(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = admin_token(&app).await;
    // Two companies, approved with different permissions.
    let mut orgs = Vec::new();
    for (company, email, perms) in [
        (
            "Alpha",
            "boss@alpha.example",
            json!(["sms:send", "sms:read"]),
        ),
        ("Beta", "boss@beta.example", json!(["fame:read"])),
    ] {
        let (_, reg) = app
            .post_json("/api/v1/registrations", json!({"company_name": company, "contact_name": "Boss", "contact_email": email, "contact_phone": "02-880-5114"}))
            .await;
        let path = format!(
            "/api/v1/admin/registrations/{}/approve",
            reg["registration_id"].as_str().unwrap()
        );
        let (status, approved) = app
            .send_json(
                Method::POST,
                &path,
                Some(&admin),
                json!({"permissions": perms}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{approved}");
        orgs.push(approved);
    }
    // Alpha's boss gets a password the way the operator CLI sets one.
    let accounts = app.accounts.clone();
    tokio::task::spawn_blocking(move || {
        let email = EmailAddress::parse("boss@alpha.example").unwrap();
        accounts
            .set_password(&email, &Password::parse(PASSWORD.into()).unwrap())
            .unwrap();
    })
    .await
    .unwrap();
    let beta_boss = orgs[1]["user_id"].as_str().unwrap().to_owned();
    let alpha_boss = orgs[0]["user_id"].as_str().unwrap().to_owned();
    // Invited accounts can't log in: mark the account active, as activation would.
    let url = app.db.url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use storage::schema::users;
        let pool = storage::connect(&url, &storage::PoolOptions::default()).unwrap();
        diesel::update(users::table.filter(users::email.eq("boss@alpha.example")))
            .set(users::status.eq("active"))
            .execute(&mut pool.get().unwrap())
            .unwrap();
    })
    .await
    .unwrap();
    let boss = app.login("boss@alpha.example").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, listed) = app.get_bearer("/api/v1/admin/users", &boss).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let emails: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["boss@alpha.example"],
        "only their own organization"
    );
    let (status, _) = app
        .get_bearer(&format!("/api/v1/admin/users/{beta_boss}"), &boss)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{beta_boss}"),
            Some(&boss),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{alpha_boss}"),
            Some(&boss),
            json!({"permissions": ["fame:write"]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("permission_not_held")
        )
    );
    let (status, body) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{alpha_boss}"),
            Some(&boss),
            json!({"roles": ["admin"]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{alpha_boss}"),
            Some(&boss),
            json!({"colour": "blue"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {body}"
    );
    // Within their permissions it works (and, being their own account, ends their session).
    let (status, body) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{alpha_boss}"),
            Some(&boss),
            json!({"permissions": ["sms:read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.get_bearer("/api/v1/auth/me", &boss).await.1["code"],
        "token_revoked"
    );
    // An operator disables Beta's boss.
    let (status, body) = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/admin/users/{beta_boss}"),
            Some(&admin),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("disabled"))
    );
}

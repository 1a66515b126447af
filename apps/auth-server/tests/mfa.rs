//! Second factors over HTTP on both databases: TOTP enrolment, the login's
//! `mfa_required` → `/mfa/verify` step, `/me` showing `amr` and
//! `auth_time`, recovery codes once only, the `mfa_token` dead after five
//! wrong codes, `step_up_required` on sensitive operations and the step-up
//! itself, and the policy that admins enrol first. Codes come from
//! `totp-rs` and the secret the enrolment showed, as an app would make them.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storage::Backend;
use support::totp::{App, enrol};
use support::*;

backend_tests!(
    enrol_then_log_in_with_a_code_and_with_a_recovery_code,
    the_mfa_token_dies_after_five_wrong_codes,
    sensitive_operations_answer_step_up_required_until_the_user_steps_up,
    role_and_permission_changes_answer_step_up_required,
    admins_reach_only_their_enrolment_until_they_have_a_second_factor,
    profiles_refuse_second_factor_users_unless_allowed_password_only,
);

/// Password → `mfa_required` with its token and methods.
async fn mfa_token(app: &TestApp, login: &str) -> String {
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": login, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "mfa_required", "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]), "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, token: &str, method: &str, code: &str) -> (StatusCode, Value) {
    app.post_json(
        "/api/v1/auth/mfa/verify",
        json!({"mfa_token": token, "method": method, "code": code}),
    )
    .await
}

async fn enrol_then_log_in_with_a_code_and_with_a_recovery_code(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let first = app.login("kim@example.com").await;
    let access = first["access_token"].as_str().unwrap();
    let (_, me) = app.me(access).await;
    assert_eq!(me["amr"], json!(["pwd"]), "{me}");
    assert!(me["auth_time"].is_i64(), "{me}");
    let (status, none) = app.get_bearer("/api/v1/auth/mfa", access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        none,
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": []})
    );

    // A wrong first code enrols nothing.
    let (status, enrolment) = app.post_bearer("/api/v1/auth/mfa/totp", access).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let authenticator = App::new(enrolment["secret"].as_str().unwrap());
    let right = authenticator.code(App::step_now());
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (status, body) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Some(access),
            json!({"code": wrong}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_code"))
    );
    let (authenticator, codes) = enrol(&app, access).await;
    assert_eq!(codes.len(), 10);
    let (_, status_body) = app.get_bearer("/api/v1/auth/mfa", access).await;
    assert_eq!(status_body["totp"], true);
    assert_eq!(status_body["recovery_codes_left"], 10);
    let (status, again) = app.post_bearer("/api/v1/auth/mfa/totp", access).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_enrolled"))
    );

    // Password, then code. The code is kept, not recomputed, for the replay
    // below: recomputed after a step boundary it would be the next step's
    // code, which is rightly accepted.
    let token = mfa_token(&app, "kim@example.com").await;
    let used = authenticator.code(App::step_now() + 1);
    let (status, tokens) = verify(&app, &token, "totp", &used).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, me) = app.me(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(me["amr"], json!(["pwd", "otp", "mfa"]), "{me}");
    assert!(me["auth_time"].as_i64().unwrap() >= chrono::Utc::now().timestamp() - 60);
    // The token is spent; the code too.
    let (status, body) = verify(&app, &token, "totp", &authenticator.code(App::step_now())).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_mfa_token"))
    );
    let token = mfa_token(&app, "kim@example.com").await;
    let (status, body) = verify(&app, &token, "totp", &used).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_code")),
        "replay"
    );

    // A recovery code, once.
    let (status, tokens) = verify(&app, &token, "recovery_code", &codes[3]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = mfa_token(&app, "kim@example.com").await;
    let (status, body) = verify(&app, &token, "recovery_code", &codes[3]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_code"))
    );
    let (_, status_body) = app
        .get_bearer("/api/v1/auth/mfa", tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status_body["recovery_codes_left"], 9);

    // Malformed second steps are 4xx.
    let (status, _) = app
        .post_json(
            "/api/v1/auth/mfa/verify",
            json!({"mfa_token": token, "method": "sms", "code": "1"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post_json(
            "/api/v1/auth/mfa/verify",
            json!({"mfa_token": token, "method": "totp", "code": "1".repeat(100)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn the_mfa_token_dies_after_five_wrong_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let first = app.login("kim@example.com").await;
    let (authenticator, _) = enrol(&app, first["access_token"].as_str().unwrap()).await;
    let token = mfa_token(&app, "kim@example.com").await;
    for _ in 0..5 {
        let (status, body) = verify(&app, &token, "totp", "0000000").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_code"))
        );
    }
    let right = authenticator.code(App::step_now() + 1);
    let (status, body) = verify(&app, &token, "totp", &right).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_mfa_token"))
    );
    let token = mfa_token(&app, "kim@example.com").await;
    let (status, _) = verify(&app, &token, "totp", &right).await;
    assert_eq!(status, StatusCode::OK);
}

/// Moves the session's last authentication an hour back.
fn age_session(app: &TestApp, session_id: &str, amr: &str) {
    let mut conn = app.pool.get().unwrap();
    let at = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).naive_utc();
    assert!(storage::repo::sessions::set_authentication(&mut conn, session_id, amr, at).unwrap());
}

async fn sensitive_operations_answer_step_up_required_until_the_user_steps_up(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let tokens = app.login("kim@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    let sid = tokens["session_id"].as_str().unwrap();
    let new_token = json!({"name": "ci", "permissions": []});
    let change_password =
        json!({"current_password": PASSWORD, "new_password": "another long pass phrase 42"});
    age_session(&app, sid, "pwd");
    let (status, problem) = app
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(access),
            new_token.clone(),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );
    let (status, problem) = app.post_bearer("/api/v1/auth/mfa/totp", access).await;
    assert_eq!(problem["code"], "step_up_required", "{status}");
    // The password change asks for the current password: without a second
    // factor, that is the fresh authentication (another user, whose
    // password may change).
    app.create_user("lee@example.com", None).await;
    let lee = app.login("lee@example.com").await;
    age_session(&app, lee["session_id"].as_str().unwrap(), "pwd");
    let (status, body) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password/change",
            lee["access_token"].as_str(),
            change_password.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Neither shape: a bad request, not a server error.
    let (status, _) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/step-up",
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The password again (no second factor yet).
    let (status, problem) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/step-up",
            Some(access),
            json!({"password": "not it"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (status, stepped) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/step-up",
            Some(access),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    let access = stepped["access_token"].as_str().unwrap().to_owned();
    let (status, created) = app
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(&access),
            new_token.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // With a second factor, only the factor steps up.
    let (authenticator, _) = enrol(&app, &access).await;
    age_session(&app, sid, "pwd otp mfa");
    let (status, problem) = app
        .post_bearer("/api/v1/auth/mfa/recovery-codes", &access)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );
    // Now the current password is not enough to change it.
    let (status, problem) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password/change",
            Some(&access),
            change_password,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );
    let (status, problem) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/step-up",
            Some(&access),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );
    let (status, stepped) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/step-up",
            Some(&access),
            json!({"method": "totp", "code": authenticator.code(App::step_now() + 1)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    let access = stepped["access_token"].as_str().unwrap();
    let (_, me) = app.me(access).await;
    assert_eq!(me["amr"], json!(["pwd", "otp", "mfa"]));
    let (status, codes) = app
        .post_bearer("/api/v1/auth/mfa/recovery-codes", access)
        .await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    let (status, _) = app
        .send_json(
            Method::DELETE,
            "/api/v1/auth/mfa/totp",
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Back to the password alone.
    app.login("kim@example.com").await;
}

/// Granting permissions or roles through the admin API is sensitive too
/// (the rule is `update_user`'s; the handler only hands it the token's
/// session); a change that grants nothing is not.
async fn role_and_permission_changes_answer_step_up_required(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_admin("root@example.com").await;
    let kim = app.create_user("kim@example.com", None).await;
    let tokens = app.login("root@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    age_session(&app, tokens["session_id"].as_str().unwrap(), "pwd");
    let path = format!("/api/v1/admin/users/{kim}");
    for change in [
        json!({"permissions": ["sms:send"]}),
        json!({"roles": ["org_admin"]}),
    ] {
        let (status, problem) = app
            .send_json(Method::PATCH, &path, Some(access), change.clone())
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("step_up_required")),
            "{change}"
        );
    }
    let (status, user) = app
        .send_json(
            Method::PATCH,
            &path,
            Some(access),
            json!({"must_change_password": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["permissions"], json!([]));
    let (status, stepped) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/step-up",
            Some(access),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    let (status, user) = app
        .send_json(
            Method::PATCH,
            &path,
            stepped["access_token"].as_str(),
            json!({"permissions": ["sms:send"], "roles": ["org_admin"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["permissions"], json!(["sms:send"]));
    assert_eq!(user["roles"], json!(["org_admin"]));
}

async fn admins_reach_only_their_enrolment_until_they_have_a_second_factor(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_MFA_REQUIRED_ROLES", "admin")]).await;
    app.create_admin("root@example.com").await;
    let tokens = app.login("root@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    for path in [
        "/api/v1/admin/users",
        "/api/v1/tokens",
        "/api/v1/auth/sessions",
    ] {
        let (status, problem) = app.get_bearer(path, access).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("mfa_enrollment_required")),
            "{path}"
        );
    }
    let (status, _) = app.me(access).await;
    assert_eq!(status, StatusCode::OK);
    let (authenticator, _) = enrol(&app, access).await;
    // The enrolling session now counts as having the factor: refresh.
    let (status, refreshed) = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, users) = app
        .get_bearer(
            "/api/v1/admin/users",
            refreshed["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{users}");
    // And the next login goes through the second step.
    let token = mfa_token(&app, "root@example.com").await;
    let (status, tokens) = verify(
        &app,
        &token,
        "totp",
        &authenticator.code(App::step_now() + 1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .get_bearer(
            "/api/v1/admin/users",
            tokens["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn profiles_refuse_second_factor_users_unless_allowed_password_only(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_COMPAT_PASSWORD_ONLY", "campus")]).await;
    app.create_user("kim@example.com", Some("kim")).await;
    let first = app.login("kim@example.com").await;
    enrol(&app, first["access_token"].as_str().unwrap()).await;

    // company-portal: refused in its own shape, with the native code.
    let response = app
        .http
        .post(app.url("/compat/company-portal/api/v1/auth/login"))
        .json(&json!({"email": "kim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required", "{body}");
    assert!(body.get("mfa_token").is_none(), "{body}");

    // envelope: its own code for it (not 5000, which means a server fault).
    let response = app
        .http
        .post(app.url("/compat/envelope/api/v1/auth/login"))
        .json(&json!({"user": "kim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["code"].as_u64(), body["error"].as_str()),
        (Some(1004), Some("mfa_required")),
        "{body}"
    );

    // campus is listed in compat_password_only: the password alone.
    let response = app
        .http
        .post(app.url("/compat/campus/users/login"))
        .json(&json!({"username": "kim", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 0, "{body}");
    let (_, me) = app.me(body["tokens"]["access"].as_str().unwrap()).await;
    assert_eq!(me["amr"], json!(["pwd"]), "{me}");
    // The native API still asks for the second factor.
    mfa_token(&app, "kim@example.com").await;
}

//! Passkeys over HTTP on both databases, answered by a software passkey
//! (`support::passkey`, an ES256 key as a platform authenticator would hold
//! it): registration with a name, `GET /mfa` listing it, sign-in with the
//! passkey alone, as the login's second step and for a step-up; answers
//! replayed, of another account, from another origin, not user-verified, or
//! to a registration that already happened are refused; removal; the
//! operator's reset; and no passkeys when the public URL is an IP address.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storage::Backend;
use support::passkey::SoftPasskey;
use support::*;

backend_tests!(
    register_then_sign_in_with_the_passkey_alone_and_as_a_second_step,
    answers_that_must_not_work_do_not,
    removal_and_step_up_with_a_passkey,
);

/// Registers a passkey named `name` for the session of `access`.
async fn register(app: &TestApp, access: &str, name: &str) -> (SoftPasskey, Value) {
    let (status, options) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", access)
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"], "required",
        "{options}"
    );
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"], "required",
        "{options}"
    );
    let (passkey, credential) = SoftPasskey::create(&options);
    let (status, body) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/passkeys/register",
            Some(access),
            json!({"challenge_id": options["challenge_id"], "name": name, "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], name.trim());
    (passkey, body)
}

/// Sign-in options (`{}` or `{"login"}`).
async fn sign_in_options(app: &TestApp, body: Value) -> Value {
    let (status, options) = app
        .post_json("/api/v1/auth/passkeys/login/options", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert!(options["challenge_id"].is_string(), "{options}");
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "discoverable: no list of credentials: {options}"
    );
    options
}

async fn sign_in(app: &TestApp, options: &Value, credential: Value) -> (StatusCode, Value) {
    app.post_json(
        "/api/v1/auth/passkeys/login",
        json!({"challenge_id": options["challenge_id"], "credential": credential}),
    )
    .await
}

async fn amr(app: &TestApp, tokens: &Value) -> Value {
    let (status, me) = app.me(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["amr"].clone()
}

async fn register_then_sign_in_with_the_passkey_alone_and_as_a_second_step(backend: Backend) {
    let app = spawn_app(backend).await;
    let kim = app.create_user("kim@example.com", Some("kim")).await;
    let first = app.login("kim@example.com").await;
    let access = first["access_token"].as_str().unwrap();
    let (mut laptop, registered) = register(&app, access, "  laptop ").await;
    assert_eq!(registered["name"], "laptop", "names are trimmed");

    let (status, status_body) = app.get_bearer("/api/v1/auth/mfa", access).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &status_body["passkeys"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{status_body}");
    assert_eq!(listed[0]["id"], registered["id"]);
    assert_eq!(listed[0]["name"], "laptop");
    assert!(listed[0]["created_at"].is_string());
    assert_eq!(listed[0]["last_used_at"], Value::Null);

    // The passkey alone, discoverable: no login name at all.
    let options = sign_in_options(&app, json!({})).await;
    let (status, tokens) = sign_in(&app, &options, laptop.assert(&options)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(amr(&app, &tokens).await, json!(["hwk", "user", "mfa"]));
    // Narrowed to the account's own login: the same.
    let options = sign_in_options(&app, json!({"login": "kim"})).await;
    let (status, tokens) = sign_in(&app, &options, laptop.assert(&options)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // The password now asks for the second step, and the passkey is one.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "kim@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("mfa_required")),
        "{body}"
    );
    assert_eq!(body["methods"], json!(["webauthn"]), "{body}");
    let mfa_token = body["mfa_token"].as_str().unwrap();
    let options = sign_in_options(&app, json!({})).await;
    let (status, tokens) = app
        .post_json(
            "/api/v1/auth/mfa/verify",
            json!({"mfa_token": mfa_token, "method": "webauthn",
                   "challenge_id": options["challenge_id"], "credential": laptop.assert(&options)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        amr(&app, &tokens).await,
        json!(["pwd", "hwk", "user", "mfa"])
    );
    // Refreshed tokens keep saying so.
    let (status, refreshed) = app
        .post_json(
            "/api/v1/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(
        amr(&app, &refreshed).await,
        json!(["pwd", "hwk", "user", "mfa"])
    );

    let (_, status_body) = app.get_bearer("/api/v1/auth/mfa", access).await;
    assert!(
        status_body["passkeys"][0]["last_used_at"].is_string(),
        "{status_body}"
    );
    // What is stored: the public key and flags (the `hwk`/`swk` choice
    // reads `backup_eligible` from it), never anything secret.
    let mut conn = app.pool.get().unwrap();
    let stored = storage::repo::passkeys::for_user(&mut conn, &kim).unwrap();
    let credential: Value = serde_json::from_str(&stored[0].credential).unwrap();
    assert_eq!(credential["cred"]["backup_eligible"], false, "{credential}");
    assert!(
        credential["cred"]["counter"].as_u64().unwrap() >= 3,
        "{credential}"
    );
}

async fn answers_that_must_not_work_do_not(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    app.create_user("lee@example.com", None).await;
    let kim = app.login("kim@example.com").await;
    let kim_access = kim["access_token"].as_str().unwrap();
    let (mut kims, _) = register(&app, kim_access, "phone").await;
    let refused = |status: StatusCode, body: &Value| {
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credential")),
            "{body}"
        );
    };

    // Replayed: a ceremony is finished once.
    let options = sign_in_options(&app, json!({})).await;
    let answer = kims.assert(&options);
    let (status, _) = sign_in(&app, &options, answer.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = sign_in(&app, &options, answer).await;
    refused(status, &body);

    // A ceremony narrowed to another account, or to nobody: refused, and
    // the options look the same as for a real account.
    for login in ["lee@example.com", "nobody@example.com"] {
        let options = sign_in_options(&app, json!({"login": login})).await;
        let (status, body) = sign_in(&app, &options, kims.assert(&options)).await;
        refused(status, &body);
    }

    // Another origin (a phishing site relaying the challenge).
    let options = sign_in_options(&app, json!({})).await;
    kims.origin = "http://localhost.evil.test:8080".into();
    let (status, body) = sign_in(&app, &options, kims.assert(&options)).await;
    refused(status, &body);
    kims.origin = support::passkey::ORIGIN.into();

    // No user verification: a passkey must verify its user.
    let options = sign_in_options(&app, json!({})).await;
    let flags = kims.flags;
    kims.flags = 0x01;
    let (status, body) = sign_in(&app, &options, kims.assert(&options)).await;
    refused(status, &body);
    kims.flags = flags;

    // A tampered signature, a made-up challenge, garbage.
    let options = sign_in_options(&app, json!({})).await;
    let mut answer = kims.assert(&options);
    answer["response"]["signature"] = json!("MEUCIQ");
    let (status, body) = sign_in(&app, &options, answer).await;
    refused(status, &body);
    let (status, body) = sign_in(
        &app,
        &json!({"challenge_id": "made-up"}),
        kims.assert(&options),
    )
    .await;
    refused(status, &body);
    for garbage in [json!({}), json!("x"), json!([1, 2]), json!({"response": 7})] {
        let options = sign_in_options(&app, json!({})).await;
        let (status, body) = sign_in(&app, &options, garbage).await;
        refused(status, &body);
    }

    // Lee can't register Kim's authenticator's credential: one account
    // per credential id.
    let lee = app.login("lee@example.com").await;
    let lee_access = lee["access_token"].as_str().unwrap();
    let (_, options) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", lee_access)
        .await;
    let credential = kims.attest(&options);
    let (status, body) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/passkeys/register",
            Some(lee_access),
            json!({"challenge_id": options["challenge_id"], "name": "stolen", "credential": credential}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_credential")),
        "{body}"
    );
    // Kim's registration options can't be finished by Lee either.
    let (_, options) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", kim_access)
        .await;
    let (_, credential) = SoftPasskey::create(&options);
    let (status, body) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/passkeys/register",
            Some(lee_access),
            json!({"challenge_id": options["challenge_id"], "name": "x", "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Names: empty, too long, control characters.
    for name in ["  ", &"x".repeat(65), "a\u{7}b"] {
        let (status, body) = app
            .send_json(
                Method::POST,
                "/api/v1/auth/passkeys/register",
                Some(kim_access),
                json!({"challenge_id": "x", "name": name, "credential": {}}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{name:?}: {body}"
        );
    }
    // An API token is not a login session.
    let (status, _) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", "not-a-token")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Two accounts registering one credential at the same moment: one
    // wins, the other is refused (400, never a server error).
    let (_, kim_options) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", kim_access)
        .await;
    let (_, lee_options) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", lee_access)
        .await;
    let (mut twin, kim_answer) = SoftPasskey::create(&kim_options);
    let lee_answer = twin.attest(&lee_options);
    let body = |options: &Value, answer: Value| json!({"challenge_id": options["challenge_id"], "name": "twin", "credential": answer});
    let path = "/api/v1/auth/passkeys/register";
    let (a, b) = tokio::join!(
        app.send_json(
            Method::POST,
            path,
            Some(kim_access),
            body(&kim_options, kim_answer)
        ),
        app.send_json(
            Method::POST,
            path,
            Some(lee_access),
            body(&lee_options, lee_answer)
        )
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::BAD_REQUEST],
        "{a:?} {b:?}"
    );

    // An instance on the same database whose public URL can't be a relying
    // party still counts Kim's passkeys: the password alone doesn't do.
    let mut settings = app.settings.clone();
    settings.public_url = "http://10.1.2.3:8080".into();
    let other = auth_server::start(settings)
        .await
        .expect("a second instance");
    let other_base = other.base_url();
    let other_server = other.server.handle();
    tokio::spawn(other.server);
    let answer = app
        .http
        .post(format!("{other_base}/api/v1/auth/login"))
        .json(&json!({"login": "kim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(answer).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("mfa_required")),
        "{body}"
    );
    other_server.stop(true).await;

    // One registration at a time per account: asking again replaces the
    // unfinished ceremony, whose answer is then refused.
    let (_, first) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", kim_access)
        .await;
    let (_, second) = app
        .post_bearer("/api/v1/auth/passkeys/register/options", kim_access)
        .await;
    for (options, expected) in [(&first, false), (&second, true)] {
        let (_, credential) = SoftPasskey::create(options);
        let (status, body) = app
            .send_json(
                Method::POST,
                "/api/v1/auth/passkeys/register",
                Some(kim_access),
                json!({"challenge_id": options["challenge_id"], "name": "tablet", "credential": credential}),
            )
            .await;
        assert_eq!(status == StatusCode::CREATED, expected, "{status} {body}");
    }

    // A server whose public URL is an IP address has no relying party.
    let ip = spawn_app_with(backend, &[("AUTH_PUBLIC_URL", "http://10.1.2.3:8080")]).await;
    let (status, body) = ip
        .post_json("/api/v1/auth/passkeys/login/options", json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("passkeys_unavailable")),
        "{body}"
    );
}

async fn removal_and_step_up_with_a_passkey(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let first = app.login("kim@example.com").await;
    let (mut laptop, registered) =
        register(&app, first["access_token"].as_str().unwrap(), "laptop").await;
    let (mut phone, _) = register(&app, first["access_token"].as_str().unwrap(), "phone").await;

    let options = sign_in_options(&app, json!({})).await;
    let (_, tokens) = sign_in(&app, &options, laptop.assert(&options)).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let sid = tokens["session_id"].as_str().unwrap().to_owned();

    // An hour later, removal needs a step-up; the other passkey gives it.
    {
        let mut conn = app.pool.get().unwrap();
        let at = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).naive_utc();
        storage::repo::sessions::set_authentication(&mut conn, &sid, "hwk user mfa", at).unwrap();
    }
    let path = format!(
        "/api/v1/auth/passkeys/{}",
        registered["id"].as_str().unwrap()
    );
    let (status, body) = app
        .send_json(Method::DELETE, &path, Some(&access), json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required")),
        "{body}"
    );
    let options = sign_in_options(&app, json!({})).await;
    let (status, stepped) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/step-up",
            Some(&access),
            json!({"challenge_id": options["challenge_id"], "credential": phone.assert(&options)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    let access = stepped["access_token"].as_str().unwrap();
    // No password was typed in this session, and its token says so.
    let (_, me) = app.me(access).await;
    assert_eq!(me["amr"], json!(["hwk", "user", "mfa"]), "{me}");
    let (status, _) = app
        .send_json(Method::DELETE, &path, Some(access), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .send_json(Method::DELETE, &path, Some(access), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The removed passkey signs in no more; the other one does.
    let options = sign_in_options(&app, json!({})).await;
    let (status, _) = sign_in(&app, &options, laptop.assert(&options)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let options = sign_in_options(&app, json!({})).await;
    let (status, _) = sign_in(&app, &options, phone.assert(&options)).await;
    assert_eq!(status, StatusCode::OK);

    // The operator's reset removes passkeys too.
    let email = accounts::EmailAddress::parse("kim@example.com").unwrap();
    let accounts = app.accounts.clone();
    tokio::task::spawn_blocking(move || {
        accounts.reset_mfa(&email, &accounts::AuditContext::default())
    })
    .await
    .unwrap()
    .unwrap();
    let options = sign_in_options(&app, json!({})).await;
    let (status, _) = sign_in(&app, &options, phone.assert(&options)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("kim@example.com").await["token_type"], "Bearer");
}

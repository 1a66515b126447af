//! The native API, end to end over HTTP, on SQLite and on PostgreSQL.

mod support;

use accounts::UserStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

backend_tests!(
    health_readiness_and_jwks,
    login_me_refresh_logout,
    login_by_username_with_form_body,
    wrong_password_and_unknown_user_look_the_same,
    inactive_account_is_refused_after_the_password,
    refresh_rotates_and_reuse_after_grace_revokes_the_session,
    second_refresh_within_grace_succeeds,
    a_spent_sibling_is_reuse_once_its_forks_window_has_passed,
    a_refresh_storm_never_leaves_two_live_chains,
    logout_all_revokes_every_session,
    refresh_rereads_the_user,
    refresh_touches_the_session_only_when_it_succeeds,
);

async fn health_readiness_and_jwks(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = read(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _) = read(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, jwks) = read(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(
        key.get("d").is_none(),
        "private key material published: {key}"
    );
}

fn decode_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

async fn login_me_refresh_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_id = app.create_user("Kim@Example.com", Some("kim")).await;

    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"login": "kim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, tokens) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 1800);
    assert_eq!(tokens["refresh_expires_in"], 14400);
    assert!(tokens["expires_at"].as_str().unwrap().ends_with('Z'));
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(
        refresh.len() >= 43 && !refresh.contains('.'),
        "refresh token must be opaque"
    );

    let header = decode_part(access, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    let claims = decode_part(access, 1);
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["sid"], tokens["session_id"]);
    assert_eq!(claims["iss"], "http://auth.test");
    assert_eq!(claims["aud"], "auth-server");
    assert_eq!(claims["email"], "kim@example.com");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1800
    );

    let (status, me) = app.me(access).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["email"], "kim@example.com");
    assert_eq!(me["username"], "kim");
    assert_eq!(me["name"], "Test User");
    assert_eq!(me["session_id"], tokens["session_id"]);
    assert_eq!(me["roles"], json!([]));

    let (status, rotated) = app.refresh(refresh).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    assert_eq!(rotated["session_id"], tokens["session_id"]);
    let new_access = rotated["access_token"].as_str().unwrap();

    let (status, _) = app.post_bearer("/api/v1/auth/logout", new_access).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Both access tokens of the session die at once, and so does the refresh token.
    for token in [access, new_access] {
        let (status, body) = app.me(token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("token_revoked"))
        );
    }
    let (status, body) = app
        .refresh(rotated["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_refresh_token"))
    );
    let (status, _) = app.post_bearer("/api/v1/auth/logout", new_access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn login_by_username_with_form_body(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("lee@example.com", Some("lee")).await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .form(&[("login", "LEE"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let (status, tokens) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let response = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .form(&[("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(read(response).await.0, StatusCode::OK);
}

async fn wrong_password_and_unknown_user_look_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("park@example.com", None).await;
    let wrong = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "park@example.com", "password": "not the password"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "nobody@example.com", "password": "not the password"}),
        )
        .await;
    let nonsense = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "!!", "password": "x"}),
        )
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.1["code"], "invalid_credentials");
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, nonsense);
}

async fn inactive_account_is_refused_after_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user_with_status("choi@example.com", None, UserStatus::PendingVerification)
        .await;
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "choi@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_not_active"))
    );
    // A wrong password must not reveal the account state.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "choi@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
}

async fn refresh_rotates_and_reuse_after_grace_revokes_the_session(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_REFRESH_REUSE_GRACE", "0")]).await;
    app.create_user("jung@example.com", None).await;
    let first = app.login("jung@example.com").await;
    let (status, second) = app.refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    // The spent token comes back: theft is assumed and the session dies.
    let (status, body) = app.refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("refresh_token_reused"))
    );
    let (status, body) = app.refresh(second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_refresh_token"))
    );
    for token in [&first, &second] {
        let (status, body) = app.me(token["access_token"].as_str().unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("token_revoked"))
        );
    }
    // Other sessions of the same user are untouched.
    let other = app.login("jung@example.com").await;
    assert_eq!(
        app.me(other["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
}

async fn second_refresh_within_grace_succeeds(backend: Backend) {
    let app = spawn_app(backend).await; // default grace: 10 s
    app.create_user("yoon@example.com", None).await;
    let first = app.login("yoon@example.com").await;
    let token = first["refresh_token"].as_str().unwrap();
    let (a, b) = tokio::join!(app.refresh(token), app.refresh(token));
    assert_eq!(
        (a.0, b.0),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.1,
        b.1
    );
    assert_ne!(a.1["refresh_token"], b.1["refresh_token"]);
    let (c_status, c) = app.refresh(token).await;
    assert_eq!(c_status, StatusCode::OK, "{c}");
    // Each sibling is itself single-use and works.
    for sibling in [&a.1, &b.1, &c] {
        let (status, next) = app
            .refresh(sibling["refresh_token"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::OK, "{next}");
    }
}

/// A token refreshed twice at once gives two siblings: a client's duplicate
/// request, or a thief's copy racing the owner's. They don't rotate on as two
/// chains (where reuse would never be seen): the first one rotated spends
/// the other, and that one presented after the grace window of the fork is
/// reuse — even right after the owner's rotation spent it: a window counted
/// from that moment would let a thief watching the owner's rotations present
/// its copy right after each and keep a chain of its own forever.
async fn a_spent_sibling_is_reuse_once_its_forks_window_has_passed(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_REFRESH_REUSE_GRACE", "1")]).await;
    app.create_user("han@example.com", None).await;
    let first = app.login("han@example.com").await;
    let token = first["refresh_token"].as_str().unwrap();
    let ((owner_status, owner), (thief_status, thief)) =
        tokio::join!(app.refresh(token), app.refresh(token));
    assert_eq!(
        (owner_status, thief_status),
        (StatusCode::OK, StatusCode::OK),
        "{owner} {thief}"
    );
    // Past the fork's window, the owner refreshes on; that spends the
    // thief's sibling, which the thief presents at once.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, owner) = app.refresh(owner["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{owner}");
    let (status, body) = app.refresh(thief["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("refresh_token_reused")),
        "{body}"
    );
    // The whole session ended, the owner's chain with it.
    let (status, body) = app.refresh(owner["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_refresh_token"))
    );
}

/// 50 clients refresh the same token at once, outside any grace window:
/// at most one wins, the reuse by the others is theft and ends the session,
/// so no chain survives — and nothing answers 5xx.
async fn a_refresh_storm_never_leaves_two_live_chains(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_REFRESH_REUSE_GRACE", "0"),
            // 50 requests queue for 4 connections; a slow CI box must not turn
            // the wait into 503s.
            ("AUTH_DB_POOL_TIMEOUT_MS", "60000"),
        ],
    )
    .await;
    app.create_user("storm@example.com", None).await;
    let session = app.login("storm@example.com").await;
    let token = session["refresh_token"].as_str().unwrap().to_owned();
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/v1/auth/refresh"),
            token.clone(),
        );
        storm.spawn(async move {
            read(
                http.post(url)
                    .json(&json!({ "refresh_token": token }))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = storm.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            StatusCode::OK => winners.push(body),
            StatusCode::UNAUTHORIZED => assert!(
                ["refresh_token_reused", "invalid_refresh_token"]
                    .contains(&body["code"].as_str().unwrap()),
                "{body}"
            ),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(winners.len() <= 1, "{} refreshes won", winners.len());
    // Whoever won holds a dead chain: the concurrent reuse revoked the session.
    for winner in &winners {
        let (status, _) = app.refresh(winner["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = app.me(winner["access_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = app.me(session["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn logout_all_revokes_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("han@example.com", None).await;
    app.create_user("other@example.com", None).await;
    let phone = app.login("han@example.com").await;
    let laptop = app.login("han@example.com").await;
    let someone_else = app.login("other@example.com").await;
    let (status, _) = app
        .post_bearer(
            "/api/v1/auth/logout/all",
            phone["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for session in [&phone, &laptop] {
        assert_eq!(
            app.me(session["access_token"].as_str().unwrap()).await.1["code"],
            "token_revoked"
        );
        assert_eq!(
            app.refresh(session["refresh_token"].as_str().unwrap())
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.me(someone_else["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
}

async fn refresh_rereads_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("seo@example.com", None).await;
    let session = app.login("seo@example.com").await;
    // Disable the account behind the session's back.
    let url = app.db.url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        let pool = storage::connect(&url, &storage::PoolOptions::default()).unwrap();
        let mut conn = pool.get().unwrap();
        diesel::update(storage::schema::users::table)
            .set(storage::schema::users::status.eq("disabled"))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    let (status, body) = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_refresh_token"))
    );
}

/// The session's `last_used_at` moves with every successful refresh,
/// including a duplicate within the grace window, and never with a refused
/// one: revoked session, disabled account, reuse after the grace window.
async fn refresh_touches_the_session_only_when_it_succeeds(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_REFRESH_REUSE_GRACE", "2")]).await;
    app.create_user("kang@example.com", None).await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(20));

    let first = app.login("kang@example.com").await;
    let at_login = last_used(&app, &first).await;
    pause().await;
    let second = refresh_ok(&app, &first).await;
    assert_eq!(second["session_id"], first["session_id"]);
    let rotated = last_used(&app, &first).await;
    assert!(rotated > at_login, "{rotated} after {at_login}");
    // The same token again within the grace window: a sibling, and a use.
    pause().await;
    let sibling = refresh_ok(&app, &first).await;
    let duplicate = last_used(&app, &first).await;
    assert!(duplicate > rotated, "{duplicate} after {rotated}");
    // After the grace window: theft, the session dies, and that is no use.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused(&app, &first).await;
    assert_eq!(last_used(&app, &first).await, duplicate);
    refused(&app, &sibling).await;
    assert_eq!(last_used(&app, &first).await, duplicate);

    // A logged-out session's unused token: refused, not a use.
    let other = app.login("kang@example.com").await;
    let at_login = last_used(&app, &other).await;
    let access = other["access_token"].as_str().unwrap();
    assert_eq!(
        app.post_bearer("/api/v1/auth/logout", access).await.0,
        StatusCode::NO_CONTENT
    );
    pause().await;
    refused(&app, &other).await;
    assert_eq!(last_used(&app, &other).await, at_login);

    // A disabled account's session: refused, not a use.
    let third = app.login("kang@example.com").await;
    let at_login = last_used(&app, &third).await;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        diesel::update(storage::schema::users::table)
            .set(storage::schema::users::status.eq("disabled"))
            .execute(&mut pool.get().unwrap())
            .unwrap();
    })
    .await
    .unwrap();
    pause().await;
    refused(&app, &third).await;
    assert_eq!(last_used(&app, &third).await, at_login);
}

/// `last_used_at` of the session of a login or refresh answer.
async fn last_used(app: &TestApp, tokens: &Value) -> chrono::NaiveDateTime {
    let pool = app.pool.clone();
    let id = tokens["session_id"].as_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        storage::repo::sessions::find(&mut pool.get().unwrap(), &id)
            .unwrap()
            .unwrap()
            .last_used_at
    })
    .await
    .unwrap()
}

async fn refresh_ok(app: &TestApp, tokens: &Value) -> Value {
    let (status, body) = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refused(app: &TestApp, tokens: &Value) {
    let (status, body) = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

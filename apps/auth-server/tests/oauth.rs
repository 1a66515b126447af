//! RFC 7662 introspection and RFC 7009 revocation for registered clients,
//! on both backends.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

async fn client(app: &TestApp, name: &str) -> (String, String) {
    let accounts = app.accounts.clone();
    let name = name.to_owned();
    let created = tokio::task::spawn_blocking(move || accounts.create_client(&name).unwrap())
        .await
        .unwrap();
    (
        created.client_id,
        secrecy::ExposeSecret::expose_secret(created.client_secret.as_ref().unwrap()).to_owned(),
    )
}

async fn call(
    app: &TestApp,
    path: &str,
    credentials: Option<(&str, &str)>,
    token: &str,
) -> (StatusCode, Value) {
    let mut request = app.http.post(app.url(path)).form(&[("token", token)]);
    if let Some((id, secret)) = credentials {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(!status.is_server_error(), "{text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

backend_tests!(introspection_and_revocation);

async fn introspection_and_revocation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("svc-user@example.com", Some("svcuser"))
        .await;
    let (id, secret) = client(&app, "billing").await;
    let (other_id, other_secret) = client(&app, "reports").await;
    let session = app.login("svc-user@example.com").await;
    let access = session["access_token"].as_str().unwrap();
    let refresh = session["refresh_token"].as_str().unwrap();
    let creds = Some((id.as_str(), secret.as_str()));

    // Client authentication.
    for credentials in [
        None,
        Some((id.as_str(), "wrong")),
        Some(("nobody", secret.as_str())),
        Some((other_id.as_str(), secret.as_str())),
    ] {
        let (status, body) = call(&app, "/oauth/introspect", credentials, access).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
    }

    let (status, body) = call(&app, "/oauth/introspect", creds, access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "access_token");
    assert_eq!(body["sid"], session["session_id"]);
    assert_eq!(body["username"], "svcuser");
    let (_, body) = call(&app, "/oauth/introspect", creds, refresh).await;
    assert_eq!(
        (body["active"].clone(), body["token_type"].clone()),
        (json!(true), json!("refresh_token"))
    );
    // Another registered client sees the same truth about the same token.
    let (_, body) = call(
        &app,
        "/oauth/introspect",
        Some((&other_id, &other_secret)),
        access,
    )
    .await;
    assert_eq!(body["active"], true);
    for garbage in ["", "nope", "a.b.c", &"x".repeat(10_000)] {
        let (status, body) = call(&app, "/oauth/introspect", creds, garbage).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"active": false})),
            "{garbage:.10}"
        );
    }

    // Revocation: always 200; the session dies for every kind of check.
    let (status, _) = call(&app, "/oauth/revoke", creds, "unknown-token").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, "/oauth/revoke", None, access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, "/oauth/revoke", creds, refresh).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        call(&app, "/oauth/introspect", creds, access).await.1,
        json!({"active": false})
    );
    assert_eq!(
        call(&app, "/oauth/introspect", creds, refresh).await.1,
        json!({"active": false})
    );
    assert_eq!(app.me(access).await.1["code"], "token_revoked");
    // The audit row names the client and where the call came from.
    let pool = app.pool.clone();
    let logout = tokio::task::spawn_blocking(move || {
        let filter = storage::audit::AuditFilter {
            event: Some("logout".into()),
            ..Default::default()
        };
        storage::audit::page(&mut pool.get().unwrap(), &filter, None, 1).unwrap()
    })
    .await
    .unwrap()
    .pop()
    .expect("a logout row");
    assert_eq!(logout.actor, Some(format!("client:{id}")));
    assert_eq!(logout.ip.as_deref(), Some("127.0.0.1"));

    // A removed client can't call anymore.
    let accounts = app.accounts.clone();
    let removed = tokio::task::spawn_blocking(move || {
        accounts
            .remove_client(&other_id, &Default::default())
            .unwrap()
    })
    .await
    .unwrap();
    assert!(removed);
    let second = app.login("svc-user@example.com").await;
    let (status, _) = call(
        &app,
        "/oauth/introspect",
        Some((&client_id_of(&app, "reports").await, &other_secret)),
        second["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn client_id_of(app: &TestApp, name: &str) -> String {
    let accounts = app.accounts.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        accounts
            .list_clients()
            .unwrap()
            .into_iter()
            .find(|c| c.relying_party.name == name)
            .unwrap()
            .relying_party
            .id
    })
    .await
    .unwrap()
}

//! `keys rotate` on a running server: the new key signs within the reload
//! interval, no restart; tokens of the retired key keep verifying; the JWKS
//! shows both. The RSA key made for relying parties' RS256 ID tokens is
//! rotated with the others.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use storage::Backend;
use support::*;

async fn jwks(app: &TestApp) -> Vec<serde_json::Value> {
    let (_, jwks) = read(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    jwks["keys"].as_array().unwrap().clone()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    jwks(app)
        .await
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The kids of the published RSA keys.
async fn rsa_kids(app: &TestApp) -> Vec<String> {
    jwks(app)
        .await
        .iter()
        .filter(|k| k["kty"] == "RSA")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// `keys rotate` on the app's key folder; answers the new kid once the
/// server publishes it.
async fn rotate(app: &TestApp) -> String {
    let new_kid = accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .rotate(
            auth_core::SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    published(app, &new_kid).await;
    new_kid
}

/// Waits until the published JWKS holds `kid` (or, with `held` false, no
/// longer does): the server has reloaded its keys.
async fn published_until(app: &TestApp, kid: &str, held: bool) {
    let started = Instant::now();
    while jwks_kids(app).await.iter().any(|k| k == kid) != held {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the key {kid} never {}",
            if held { "appeared" } else { "left the JWKS" }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn published(app: &TestApp, kid: &str) {
    published_until(app, kid, true).await;
}

/// A server reloading its keys every second, and an access token of ada's.
async fn reloading_app_with_a_token() -> (TestApp, String) {
    let app = spawn_app_with(Backend::Sqlite, &[("AUTH_KEY_RELOAD", "1")]).await;
    app.create_user("ada@example.test", Some("ada")).await;
    let token = app.login("ada").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, token)
}

#[tokio::test]
async fn a_rotation_takes_effect_without_a_restart() {
    let (app, before) = reloading_app_with_a_token().await;
    let old_kid = token_kid(&before);
    assert_eq!(jwks_kids(&app).await, std::slice::from_ref(&old_kid));

    let new_kid = rotate(&app).await;
    let mut kids = jwks_kids(&app).await;
    kids.sort();
    let mut expected = vec![old_kid.clone(), new_kid.clone()];
    expected.sort();
    assert_eq!(
        kids, expected,
        "the retired key stays published while its tokens live"
    );

    let after = app.login("ada").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token_kid(&after), new_kid);
    assert_eq!(
        app.me(&before).await.0,
        StatusCode::OK,
        "the retired key still verifies"
    );
    assert_eq!(app.me(&after).await.0, StatusCode::OK);
}

/// A revoked key's tokens are refused from the reload on, also those the
/// server has already seen (and cached as verified).
#[tokio::test]
async fn a_revoked_key_stops_its_cached_tokens() {
    use accounts::keys::KeyStore;
    let (app, token) = reloading_app_with_a_token().await;
    let old_kid = token_kid(&token);
    // Seen, so cached as verified.
    assert_eq!(app.me(&token).await.0, StatusCode::OK);
    assert_eq!(app.me(&token).await.0, StatusCode::OK);
    rotate(&app).await;
    assert_eq!(
        app.me(&token).await.0,
        StatusCode::OK,
        "retired, not revoked"
    );

    accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .revoke(&old_kid)
        .unwrap();
    published_until(&app, &old_kid, false).await;
    let (status, body) = app.me(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_token", "{body}");
}

#[tokio::test]
async fn the_rsa_key_for_relying_parties_is_made_once_and_rotated_with_the_others() {
    let app = spawn_app_with(Backend::Sqlite, &[("AUTH_KEY_RELOAD", "1")]).await;
    assert!(
        rsa_kids(&app).await.is_empty(),
        "no RSA key before a client needs one"
    );
    let register = |name: &'static str| {
        let accounts = app.accounts.clone();
        tokio::task::spawn_blocking(move || {
            accounts.register_client(accounts::NewClient {
                name: name.into(),
                redirect_uris: vec!["https://notes.example/callback".into()],
                ..Default::default()
            })
        })
    };
    // Registered by another instance (the test's own services), as the CLI
    // does: the server picks the key up at its next reload.
    register("Notes").await.unwrap().unwrap();
    let made = app.accounts.keys();
    let rsa_kid = made.kids()[1].to_owned();
    published(&app, &rsa_kid).await;
    let first_rsa = rsa_kids(&app).await;
    assert_eq!(
        first_rsa,
        [rsa_kid],
        "OpenID Connect's default, RS256, got a key"
    );
    register("Calendar").await.unwrap().unwrap();
    assert_eq!(
        rsa_kids(&app).await,
        first_rsa,
        "one key for every RS256 client"
    );
    let keys = app.accounts.keys();
    assert_eq!(
        keys.signing_algorithms(),
        [
            auth_core::SigningAlgorithm::EdDSA,
            auth_core::SigningAlgorithm::RS256
        ],
        "the RSA key signs only what asks for RS256"
    );

    rotate(&app).await;
    app.accounts.replace_keys(
        app.accounts
            .key_source()
            .unwrap()
            .load(chrono::Utc::now().timestamp())
            .unwrap(),
    );
    let rsa = rsa_kids(&app).await;
    assert_eq!(
        rsa.len(),
        2,
        "a new RSA key, the old one still verifying: {rsa:?}"
    );
    let rsa_signer = app
        .accounts
        .keys()
        .sign_as(
            auth_core::SigningAlgorithm::RS256,
            auth_core::ID_TOKEN_TYP,
            &serde_json::json!({"sub": "x"}),
        )
        .unwrap();
    let signer_kid = token_kid(&rsa_signer);
    assert!(
        rsa.contains(&signer_kid) && !first_rsa.contains(&signer_kid),
        "ID tokens are signed with the new RSA key"
    );
}

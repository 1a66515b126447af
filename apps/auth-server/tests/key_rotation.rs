//! `keys rotate` on a running server: the new key signs within the reload
//! interval, no restart; tokens of the retired key keep verifying; the JWKS
//! shows both.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use storage::Backend;
use support::*;

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let (_, jwks) = read(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_rotation_takes_effect_without_a_restart() {
    let app = spawn_app_with(Backend::Sqlite, &[("AUTH_KEY_RELOAD", "1")]).await;
    app.create_user("ada@example.test", Some("ada")).await;
    let before = app.login("ada").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = token_kid(&before);
    assert_eq!(jwks_kids(&app).await, std::slice::from_ref(&old_kid));

    let new_kid = accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .rotate(
            auth_core::SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    let started = Instant::now();
    while !jwks_kids(&app).await.contains(&new_kid) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new key never appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

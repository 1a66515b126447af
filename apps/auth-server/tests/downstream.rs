//! The embedding story end to end: `examples/downstream-service`, protected
//! by `auth-actix` and auth-core's `remote` verifier, next to a real auth
//! server. Logs in, calls protected routes, revokes, rotates keys.

mod support;

use std::time::{Duration, Instant};

use accounts::admin::{Actor, UserUpdate};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storage::Backend;
use support::*;

/// The downstream service polls revocations this often.
const REVOCATION_POLL: Duration = Duration::from_secs(1);

struct Downstream {
    base: String,
    http: reqwest::Client,
}

impl Downstream {
    async fn start(auth_server: &TestApp) -> Downstream {
        let settings = downstream_service::Settings {
            auth_server_url: auth_server.base.clone(),
            issuer: auth_server.settings.issuer.clone(),
            audience: auth_server.settings.audience.clone(),
            revocation_poll: REVOCATION_POLL,
        };
        let verifier = settings.verifier().await.expect("verifier connects");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(downstream_service::serve(listener, verifier).unwrap());
        Downstream {
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    /// Calls until the answer is `expected`, at most `within`; returns how long it took.
    async fn wait_for(
        &self,
        path: &str,
        token: &str,
        expected: StatusCode,
        within: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let (status, body) = self.call(Method::GET, path, Some(token)).await;
            if status == expected {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "still {status} {body} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn code(body: &Value) -> Option<&str> {
    body["code"].as_str()
}

#[tokio::test]
async fn a_downstream_service_accepts_our_tokens_and_honours_revocation_and_rotation() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let user_id = app.create_user("ada@example.test", Some("ada")).await;
    let accounts = app.accounts.clone();
    tokio::task::spawn_blocking(move || {
        let grant = UserUpdate {
            permissions: Some(vec!["sms:send".into()]),
            ..UserUpdate::default()
        };
        accounts.update_user(&Actor::operator(), &user_id, grant)
    })
    .await
    .unwrap()
    .unwrap();
    let downstream = Downstream::start(&app).await;

    // Without a token, or with garbage: 401 problem+json, never a 5xx.
    let (status, body) = downstream.call(Method::GET, "/hello", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    for garbage in ["x", "a.b.c", &"A".repeat(9000)] {
        let (status, _) = downstream.call(Method::GET, "/hello", Some(garbage)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{garbage:.20}");
    }

    // A user's access token: allowed where it holds the permission, 403 elsewhere.
    let session = app.login("ada@example.test").await;
    let access = session["access_token"].as_str().unwrap().to_owned();
    let (status, hello) = downstream.call(Method::GET, "/hello", Some(&access)).await;
    assert_eq!(status, StatusCode::OK, "{hello}");
    assert_eq!(hello["permissions"], json!(["sms:send"]));
    let (status, body) = downstream
        .call(Method::POST, "/sms/send", Some(&access))
        .await;
    assert_eq!(
        (status, body["sent"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (status, body) = downstream.call(Method::POST, "/fame", Some(&access)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = downstream.call(Method::POST, "/sms/send", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );

    // A personal API token works the same way until it is revoked; then the
    // downstream service refuses it within its revocation poll interval.
    let (status, created) = app
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(&access),
            json!({"name": "sms robot", "permissions": ["sms:send"], "expires_in_days": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let api_token = created["token"].as_str().unwrap().to_owned();
    let (status, _) = downstream
        .call(Method::POST, "/sms/send", Some(&api_token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = downstream
        .call(Method::POST, "/fame", Some(&api_token))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = downstream
        .call(Method::GET, "/reports", Some(&api_token))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("second_factor_required")),
        "no one signed in for an API token"
    );
    let (status, _) = app
        .send_json(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created["id"].as_str().unwrap()),
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let took = downstream
        .wait_for(
            "/hello",
            &api_token,
            StatusCode::UNAUTHORIZED,
            REVOCATION_POLL * 5,
        )
        .await;
    let (_, body) = downstream
        .call(Method::GET, "/hello", Some(&api_token))
        .await;
    assert_eq!(code(&body), Some("token_revoked"));
    eprintln!("revoked API token refused downstream after {took:?}");

    // Logging out ends the session downstream too.
    let (status, _) = app.post_bearer("/api/v1/auth/logout", &access).await;
    assert!(status.is_success(), "{status}");
    downstream
        .wait_for(
            "/hello",
            &access,
            StatusCode::UNAUTHORIZED,
            REVOCATION_POLL * 5,
        )
        .await;

    // Key rotation: the operator rotates and restarts the auth server. Tokens
    // signed with the new key are accepted at once (the unknown kid makes the
    // verifier refetch the JWK Set); tokens of the retired key still verify.
    let before = app.login("ada").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = token_kid(&before);
    let new_kid = accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .rotate(
            auth_core::SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    app.restart().await;
    let after = app.login("ada").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token_kid(&after), new_kid);
    assert_ne!(new_kid, old_kid);
    let (status, body) = downstream.call(Method::GET, "/hello", Some(&after)).await;
    assert_eq!(status, StatusCode::OK, "new key accepted at once: {body}");
    let (status, body) = downstream
        .call(Method::POST, "/sms/send", Some(&before))
        .await;
    assert_eq!(status, StatusCode::OK, "retired key still verifies: {body}");

    // Routes for second-factor sign-ins: a password-only token is refused,
    // the token of a sign-in with a code is let through.
    app.create_user("grace@example.test", None).await;
    let password_only = app.login("grace@example.test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = downstream
        .call(Method::GET, "/reports", Some(&password_only))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, Some("second_factor_required"))
    );
    let (authenticator, _) = totp::enrol(&app, &password_only).await;
    let (_, challenge) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"login": "grace@example.test", "password": PASSWORD}),
        )
        .await;
    let (status, tokens) = app
        .post_json(
            "/api/v1/auth/mfa/verify",
            json!({
                "mfa_token": challenge["mfa_token"],
                "method": "totp",
                // The enrolment spent this step's code: the next one.
                "code": authenticator.code(totp::App::step_now() + 1),
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, body) = downstream
        .call(Method::GET, "/reports", tokens["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_downstream_service_starts_only_when_it_can_fetch_the_keys() {
    // Nothing listens on this port once the listener is dropped.
    let port = free_port();
    let settings = downstream_service::Settings {
        auth_server_url: format!("http://127.0.0.1:{port}"),
        issuer: "http://auth.test".into(),
        audience: "auth-server".into(),
        revocation_poll: REVOCATION_POLL,
    };
    let error = settings
        .verifier()
        .await
        .err()
        .expect("no auth server, no verifier");
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_cooldown_and_an_outage_keeps_the_cached_keys() {
    use auth_core::TokenError;
    use auth_core::remote::{RemoteConfig, RemoteVerifier};

    let mut app = spawn_app(Backend::Sqlite).await;
    app.create_user("ada@example.test", Some("ada")).await;
    let policy = auth_core::TokenPolicy {
        issuer: app.settings.issuer.clone(),
        audience: app.settings.audience.clone(),
        ..auth_core::TokenPolicy::default()
    };
    let mut config = RemoteConfig::new(&app.base, policy);
    config.unknown_kid_cooldown = Duration::from_secs(3600);
    let verifier = RemoteVerifier::connect(config).await.unwrap();
    let token = app.login("ada").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verifier.verify(&token).await.unwrap().user_id().len(), 36);

    // A flood of tokens naming invented keys costs the auth server one fetch.
    for n in 0..50 {
        let forged = auth_core::KeySet::new(
            auth_core::SigningKey::generate(auth_core::SigningAlgorithm::EdDSA, format!("kid-{n}"))
                .unwrap(),
            vec![],
        )
        .unwrap()
        .sign(auth_core::ACCESS_TOKEN_TYP, &json!({"sub": "x"}))
        .unwrap();
        assert_eq!(verifier.verify(&forged).await, Err(TokenError::UnknownKid));
    }
    assert_eq!(verifier.jwks_fetches(), 1);

    // The auth server goes away: tokens still verify on the cached keys,
    // and polling fails without forgetting anything.
    app.server.stop(true).await;
    assert!(verifier.poll_revocations().await.is_err());
    assert!(verifier.refresh_keys().await.is_err());
    assert!(verifier.verify(&token).await.is_ok());

    // Back with a rotated key: inside the cooldown the new kid is not
    // fetched; a scheduled refresh (here: an explicit one) brings it in.
    accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .rotate(
            auth_core::SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    app.restart().await;
    let fresh = app.login("ada").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verifier.verify(&fresh).await, Err(TokenError::UnknownKid));
    verifier.refresh_keys().await.unwrap();
    assert!(verifier.verify(&fresh).await.is_ok());
    assert!(
        verifier.verify(&token).await.is_ok(),
        "the retired key still verifies"
    );
}

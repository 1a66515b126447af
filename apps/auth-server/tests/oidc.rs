//! The OpenID Connect provider as a real relying party sees it, on both
//! backends: the `openidconnect` crate (not our own code) discovers the
//! provider, builds the authorization requests, exchanges codes and checks
//! the ID tokens, so what passes here works for an RP written by someone else.
//!
//! 1. Headless Chromium signs in through the login page and lands on the
//!    RP's callback (a listener the test runs); code with PKCE, the ID token
//!    verified (RS256 signature by default, EdDSA for the RP that asked for
//!    it; nonce, at_hash), userinfo, refresh; a second RP gets a code with
//!    no login page (single sign-on); RP-initiated logout ends both RPs'
//!    sessions.
//! 2. The refusals, over plain HTTP: unregistered redirect URIs, missing or
//!    `plain` PKCE, `prompt=none` without a session, reused and expired
//!    codes, wrong client credentials, verifier or redirect URI, unknown
//!    grant types, another client's ID token as a logout hint.
//! 3. The same code flow with ES256 keys (a different at_hash hash), and
//!    on a server whose own tokens are HS256 (RS256 ID tokens).
//! 4. `examples/sso-client`, a whole "Sign in with …" application, in
//!    Chromium: its sign-in link, our login page, back at the application
//!    showing the user; its sign-out ends our browser session too.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::SigningAlgorithm;
use base64::Engine;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdToken,
    CoreJwsSigningAlgorithm, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::url::Url;
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardErrorResponse, TokenResponse,
};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use serde_json::Value;
use storage::Backend;
use support::browser::{Browser, Options};
use support::visitor::Visitor;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

backend_tests!(
    sign_in_single_sign_on_and_logout_in_the_browser,
    the_provider_refuses_what_it_must,
    es256_id_tokens_verify_too,
    the_sso_client_example_signs_in_and_out_in_the_browser,
);

/// A client as `from_provider_metadata` leaves it: authorization endpoint
/// known, token and userinfo endpoints as discovery said.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider on a port chosen before it starts: the issuer, and so every
/// endpoint in the discovery document, is an address the RP can reach.
async fn provider(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let bind = format!("127.0.0.1:{}", free_port());
    let issuer = format!("http://{bind}");
    let mut overrides = vec![
        ("AUTH_BIND", bind.as_str()),
        ("AUTH_ISSUER", issuer.as_str()),
    ];
    overrides.extend_from_slice(extra);
    let app = spawn_app_with(backend, &overrides).await;
    assert_eq!(app.base, issuer, "the server listens where its issuer says");
    app
}

struct Registered {
    id: String,
    secret: Option<String>,
}

async fn register(
    app: &TestApp,
    name: &str,
    redirect_uri: &str,
    post_logout_redirect_uris: &[&str],
    public: bool,
    id_token_alg: Option<SigningAlgorithm>,
) -> Registered {
    let accounts = app.accounts.clone();
    let client = accounts::NewClient {
        name: name.to_owned(),
        redirect_uris: vec![redirect_uri.to_owned()],
        post_logout_redirect_uris: post_logout_redirect_uris
            .iter()
            .map(|u| (*u).to_owned())
            .collect(),
        // openid, profile and email need no grant; only extras would.
        scopes: Vec::new(),
        public,
        first_party: true,
        backchannel_logout_uri: None,
        id_token_alg,
    };
    let created = tokio::task::spawn_blocking(move || accounts.register_client(client))
        .await
        .unwrap()
        .expect("client registered");
    // The registration ran in another instance (as `client add` does) and
    // may have made an RSA key: wait until the server publishes every key
    // published there, as a relying party would have to.
    let signing: Vec<String> = app.accounts.keys().jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    let started = std::time::Instant::now();
    loop {
        let jwks = get_json(app, "/.well-known/jwks.json").await;
        let published = jwks["keys"].as_array().unwrap();
        if signing
            .iter()
            .all(|kid| published.iter().any(|k| k["kid"] == kid.as_str()))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never published {signing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        created.client_secret.is_none(),
        public,
        "secrets only for confidential clients"
    );
    Registered {
        id: created.client_id,
        secret: created
            .client_secret
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned()),
    }
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    response.json().await.unwrap()
}

async fn discover(app: &TestApp) -> ProviderMetadataWithLogout {
    ProviderMetadataWithLogout::discover_async(
        IssuerUrl::new(app.settings.issuer.clone()).unwrap(),
        // Redirects off (as openidconnect asks: following them invites SSRF).
        &app.http,
    )
    .await
    .unwrap_or_else(|e| panic!("discovery: {e} ({e:?})"))
}

fn relying_party(metadata: &ProviderMetadataWithLogout, client: &Registered, redirect: &str) -> Rp {
    CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).unwrap())
}

/// An authorization request as an RP sends it, and what the RP keeps to
/// check the answer.
struct Authorization {
    url: Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn authorization(rp: &Rp) -> Authorization {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    Authorization {
        url,
        state,
        nonce,
        verifier,
    }
}

/// A second verifier with the same secret (the type is not `Clone`).
fn copy(verifier: &PkceCodeVerifier) -> PkceCodeVerifier {
    PkceCodeVerifier::new(verifier.secret().clone())
}

async fn exchange(
    app: &TestApp,
    rp: &Rp,
    code: &str,
    verifier: PkceCodeVerifier,
) -> Result<CoreTokenResponse, TokenError> {
    rp.exchange_code(AuthorizationCode::new(code.to_owned()))
        .expect("discovery gave a token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&app.http)
        .await
}

async fn refresh(
    app: &TestApp,
    rp: &Rp,
    token: &RefreshToken,
) -> Result<CoreTokenResponse, TokenError> {
    rp.exchange_refresh_token(token)
        .expect("discovery gave a token endpoint")
        .request_async(&app.http)
        .await
}

type TokenError = RequestTokenError<
    openidconnect::HttpClientError<reqwest::Error>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

/// The RFC 6749 error code of a refused token request.
fn refused(result: Result<CoreTokenResponse, TokenError>) -> CoreErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(e)) => e.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

/// The ID token of a token response, checked as an RP must (signature with
/// the discovered keys, issuer, audience, expiry, nonce) and its at_hash
/// against the access token beside it.
fn verified_id_token(
    rp: &Rp,
    tokens: &CoreTokenResponse,
    nonce: &Nonce,
    alg: CoreJwsSigningAlgorithm,
) -> CoreIdToken {
    let id_token = tokens.id_token().expect("an ID token").clone();
    let verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&verifier, nonce)
        .unwrap_or_else(|e| panic!("ID token rejected: {e} ({e:?})"));
    assert_eq!(id_token.signing_alg().unwrap(), &alg);
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims.access_token_hash(),
        Some(&expected),
        "at_hash must bind the ID token to the access token issued with it"
    );
    id_token
}

/// The ID token's payload as JSON, for claims the library has no field for
/// (`sid`). Only read after the library verified the token.
fn payload(id_token: &CoreIdToken) -> Value {
    let jwt = id_token.to_string();
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// The query of a URL as a map (the last of a repeated name wins).
fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// An RP's web server as far as the browser sees it: every request gets
/// 200 "ok", and its target (path and query) is kept so the test reads what
/// the provider sent the browser back with.
struct Callbacks {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Callbacks {
    async fn start() -> Callbacks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    if let Some(target) = head.lines().next().and_then(|l| l.split(' ').nth(1)) {
                        record.lock().unwrap().push(target.to_owned());
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                              content-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Callbacks { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The query of the first request to `path` not taken yet, waiting up
    /// to 15 s; `None` if the browser never came.
    async fn take(&self, path: &str) -> Option<HashMap<String, String>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            {
                let mut seen = self.seen.lock().unwrap();
                let found = seen.iter().position(|t| t.split('?').next() == Some(path));
                if let Some(i) = found {
                    let target = seen.remove(i);
                    return Some(query(&Url::parse(&self.url(&target)).unwrap()));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Signs in at the login page the provider sent Chromium to, and waits for
/// the browser to land on `callback`: its query.
async fn sign_in_and_land(
    browser: &Browser,
    callbacks: &Callbacks,
    login: &str,
    callback: &str,
) -> HashMap<String, String> {
    browser.wait_for("#f-login").await;
    assert!(
        browser.url().await.contains("/login?next="),
        "sent to the login page, with the way back: {}",
        browser.url().await
    );
    browser.screenshot("login-for-rp").await;
    browser.fill("#f-login", login).await;
    browser.fill("#f-password", PASSWORD).await;
    browser.click("#submit").await;
    match callbacks.take(callback).await {
        Some(query) => query,
        None => panic!(
            "the browser did not come back to {callback}; it is at {}",
            browser.url().await
        ),
    }
}

fn label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

async fn sign_in_single_sign_on_and_logout_in_the_browser(backend: Backend) {
    let started = chrono::Utc::now();
    let app = provider(backend, &[]).await;
    let issuer = app.settings.issuer.clone();
    let user_id = app.create_user("mina@example.com", Some("mina")).await;
    let callbacks = Callbacks::start().await;
    let (a_callback, a_logged_out, b_callback) = ("/a/callback", "/a/logged-out", "/b/callback");
    let a = register(
        &app,
        "Notes",
        &callbacks.url(a_callback),
        &[&callbacks.url(a_logged_out)],
        false,
        None,
    )
    .await;
    // A signs with OpenID Connect's default, RS256 (a key made for it);
    // B asked for EdDSA, the server's own algorithm.
    let b = register(
        &app,
        "Calendar",
        &callbacks.url(b_callback),
        &[],
        false,
        Some(SigningAlgorithm::EdDSA),
    )
    .await;

    // Discovery: what the library needs, and what the contract promises.
    let metadata = discover(&app).await;
    assert_eq!(
        metadata.authorization_endpoint().as_str(),
        format!("{issuer}/oauth/authorize")
    );
    assert_eq!(
        metadata.token_endpoint().map(|u| u.as_str().to_owned()),
        Some(format!("{issuer}/oauth/token"))
    );
    assert_eq!(
        metadata.userinfo_endpoint().map(|u| u.as_str().to_owned()),
        Some(format!("{issuer}/oauth/userinfo"))
    );
    assert_eq!(
        metadata.jwks_uri().as_str(),
        format!("{issuer}/.well-known/jwks.json")
    );
    let end_session = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .expect("an end_session_endpoint");
    assert_eq!(end_session.as_str(), format!("{issuer}/oauth/logout"));
    let raw = get_json(&app, "/.well-known/openid-configuration").await;
    assert_eq!(
        raw["code_challenge_methods_supported"],
        serde_json::json!(["S256"]),
        "{raw}"
    );
    assert_eq!(
        raw["response_types_supported"],
        serde_json::json!(["code"]),
        "{raw}"
    );
    for (field, value) in [
        ("grant_types_supported", "authorization_code"),
        ("grant_types_supported", "refresh_token"),
        (
            "token_endpoint_auth_methods_supported",
            "client_secret_basic",
        ),
        (
            "token_endpoint_auth_methods_supported",
            "client_secret_post",
        ),
        ("token_endpoint_auth_methods_supported", "none"),
        ("id_token_signing_alg_values_supported", "RS256"),
        ("id_token_signing_alg_values_supported", "EdDSA"),
    ] {
        assert!(
            raw[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == value)),
            "{field} lacks {value}: {raw}"
        );
    }

    // RP A: authorization code with PKCE, signing in on the way.
    let rp_a = relying_party(&metadata, &a, &callbacks.url(a_callback));
    let auth = authorization(&rp_a);
    let browser = Browser::start(&format!("oidc_{}", label(backend)), Options::default()).await;
    browser.goto(auth.url.as_str()).await;
    let back = sign_in_and_land(&browser, &callbacks, "mina@example.com", a_callback).await;
    assert_eq!(
        back.get("state"),
        Some(auth.state.secret()),
        "state comes back unchanged: {back:?}"
    );
    assert!(!back.contains_key("error"), "{back:?}");
    let code = back.get("code").expect("a code");

    let tokens = exchange(&app, &rp_a, code, auth.verifier)
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e:?}"));
    let id_token_a = verified_id_token(
        &rp_a,
        &tokens,
        &auth.nonce,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    );
    let claims = id_token_a
        .claims(&rp_a.id_token_verifier(), &auth.nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), user_id);
    assert_eq!(
        claims
            .audiences()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        [a.id.as_str()]
    );
    let auth_time = claims.auth_time().expect("auth_time");
    assert!(
        auth_time >= started - chrono::Duration::seconds(1) && auth_time <= chrono::Utc::now(),
        "auth_time is this sign-in: {auth_time}"
    );
    let amr = claims.auth_method_refs().expect("amr");
    assert!(
        amr.iter().any(|m| m.as_str() == "pwd"),
        "a password sign-in: {amr:?}"
    );
    assert!(claims.auth_context_ref().is_some(), "acr");
    let sid = payload(&id_token_a)["sid"].as_str().map(str::to_owned);
    assert!(sid.as_deref().is_some_and(|s| !s.is_empty()), "sid");
    assert!(tokens.expires_in().is_some_and(|d| d > Duration::ZERO));
    let granted: Vec<&str> = tokens
        .scopes()
        .map(|s| s.iter().map(|s| s.as_str()).collect())
        .unwrap_or_default();
    for scope in ["openid", "email", "profile"] {
        assert!(
            granted.contains(&scope),
            "scope {scope} granted: {granted:?}"
        );
    }

    // Userinfo with the access token; the library checks `sub` matches.
    let info: CoreUserInfoClaims = rp_a
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&app.http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e} ({e:?})"));
    assert_eq!(info.email().map(|e| e.as_str()), Some("mina@example.com"));
    assert!(
        info.email_verified().is_some(),
        "email_verified with the email scope"
    );
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("mina"));
    assert_eq!(
        info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Test User")
    );

    // Refresh: a new pair; the new access token works.
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = refresh(&app, &rp_a, &first_refresh)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));
    let refresh_a = refreshed
        .refresh_token()
        .expect("a new refresh token")
        .clone();
    assert_ne!(
        refresh_a.secret(),
        first_refresh.secret(),
        "refresh tokens rotate"
    );
    if let Some(id_token) = refreshed.id_token() {
        // A refreshed ID token is about the same person and needs no nonce.
        let again = id_token
            .claims(&rp_a.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
            .unwrap_or_else(|e| panic!("refreshed ID token rejected: {e}"));
        assert_eq!(again.subject(), claims.subject());
    }
    let _: CoreUserInfoClaims = rp_a
        .user_info(
            refreshed.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&app.http)
        .await
        .unwrap_or_else(|e| panic!("userinfo after refresh: {e} ({e:?})"));

    // RP B in the same browser: a code straight away, no login page.
    let rp_b = relying_party(&metadata, &b, &callbacks.url(b_callback));
    let auth_b = authorization(&rp_b);
    browser.goto(auth_b.url.as_str()).await;
    let Some(back) = callbacks.take(b_callback).await else {
        panic!(
            "single sign-on: no code for the second RP; the browser is at {}",
            browser.url().await
        )
    };
    assert_eq!(back.get("state"), Some(auth_b.state.secret()));
    let tokens_b = exchange(
        &app,
        &rp_b,
        back.get("code").expect("a code"),
        auth_b.verifier,
    )
    .await
    .unwrap_or_else(|e| panic!("code exchange for the second RP: {e:?}"));
    let id_token_b = verified_id_token(
        &rp_b,
        &tokens_b,
        &auth_b.nonce,
        CoreJwsSigningAlgorithm::EdDsa,
    );
    let claims_b = id_token_b
        .claims(&rp_b.id_token_verifier(), &auth_b.nonce)
        .unwrap();
    assert_eq!(claims_b.subject(), claims.subject());
    assert_eq!(
        claims_b.auth_time(),
        claims.auth_time(),
        "no new sign-in happened"
    );
    // A's ID token is not B's: the library refuses the wrong audience.
    assert!(
        id_token_a
            .claims(&rp_b.id_token_verifier(), &auth.nonce)
            .is_err()
    );
    let refresh_b = tokens_b.refresh_token().expect("a refresh token").clone();

    // RP-initiated logout from A, in the browser.
    let logout_state = CsrfToken::new_random();
    let logout = LogoutRequest::from(end_session)
        .set_id_token_hint(&id_token_a)
        .set_post_logout_redirect_uri(
            PostLogoutRedirectUrl::new(callbacks.url(a_logged_out)).unwrap(),
        )
        .set_state(logout_state.clone())
        .http_get_url();
    browser.goto(logout.as_str()).await;
    let Some(back) = callbacks.take(a_logged_out).await else {
        panic!(
            "logout did not return to the RP; the browser is at {}",
            browser.url().await
        )
    };
    assert_eq!(back.get("state"), Some(logout_state.secret()));

    // Every RP session of that browser session ended, and the browser
    // session itself: the next authorization asks for a login again.
    assert_eq!(
        refused(refresh(&app, &rp_a, &refresh_a).await),
        CoreErrorResponseType::InvalidGrant
    );
    assert_eq!(
        refused(refresh(&app, &rp_b, &refresh_b).await),
        CoreErrorResponseType::InvalidGrant
    );
    browser.goto(authorization(&rp_a).url.as_str()).await;
    browser.wait_for("#f-login").await;
    browser.close().await;
}

/// The code flow over plain HTTP, on the tests' own cookie-keeping visitor.
trait CodeFlow {
    async fn sign_in(&mut self, app: &TestApp, login: &str);
    async fn authorize(&mut self, app: &TestApp, url: &Url) -> Url;
    async fn code(&mut self, app: &TestApp, auth: &Authorization, callback: &str) -> String;
}

impl CodeFlow for Visitor {
    async fn sign_in(&mut self, app: &TestApp, login: &str) {
        let response = self.log_in(app, login).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
    }

    /// Follows an authorization URL one step: where the provider redirects
    /// the browser (absolute), or panics with what it answered instead.
    async fn authorize(&mut self, app: &TestApp, url: &Url) -> Url {
        let response = self.get_response(app, url.as_str()).await;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        match location {
            Some(location) if status == StatusCode::SEE_OTHER || status == StatusCode::FOUND => {
                Url::parse(&app.base).unwrap().join(&location).unwrap()
            }
            _ => panic!(
                "authorize: {status} {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }

    /// A code for `auth` (signed in already); checks `state` on the way.
    async fn code(&mut self, app: &TestApp, auth: &Authorization, callback: &str) -> String {
        let to = self.authorize(app, &auth.url).await;
        assert!(to.as_str().starts_with(callback), "back at the RP: {to}");
        let back = query(&to);
        assert_eq!(back.get("state"), Some(auth.state.secret()), "{to}");
        back.get("code")
            .unwrap_or_else(|| panic!("a code: {to}"))
            .clone()
    }
}

/// A token-endpoint call by hand (for what the library can't show: the
/// status, the header, malformed requests): status, body, WWW-Authenticate.
async fn token_call(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value, Option<String>) {
    let mut request = app.http.post(app.url("/oauth/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert!(!status.is_server_error(), "{status} {text}");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, challenge)
}

async fn the_provider_refuses_what_it_must(backend: Backend) {
    let app = provider(backend, &[]).await;
    app.create_user("jun@example.com", None).await;
    // Nothing needs to listen here: the test reads redirects, it does not
    // follow them.
    let callback = format!("http://127.0.0.1:{}/callback", free_port());
    let client = register(&app, "Notes", &callback, &[], false, None).await;
    let public = register(&app, "Phone app", &callback, &[], true, None).await;
    let metadata = discover(&app).await;
    let rp = relying_party(&metadata, &client, &callback);

    // An unknown client or a redirect URI not registered exactly: an error
    // page, never a redirect (an open redirector otherwise), signed in or not.
    let mut visitor = Visitor::new();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    for signed_in in [false, true] {
        if signed_in {
            visitor.sign_in(&app, "jun@example.com").await;
        }
        for (client_id, redirect_uri) in [
            ("no-such-client", callback.clone()),
            (client.id.as_str(), format!("{callback}/elsewhere")),
            (client.id.as_str(), format!("{callback}/")),
            (client.id.as_str(), format!("{callback}?next=x")),
            (
                client.id.as_str(),
                callback.replace("127.0.0.1", "localhost"),
            ),
            (
                client.id.as_str(),
                "https://evil.example/callback".to_owned(),
            ),
        ] {
            let url = Url::parse_with_params(
                metadata.authorization_endpoint().as_str(),
                &[
                    ("response_type", "code"),
                    ("client_id", client_id),
                    ("redirect_uri", redirect_uri.as_str()),
                    ("scope", "openid"),
                    ("state", "s"),
                    ("nonce", "n"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ],
            )
            .unwrap();
            let response = visitor.get_response(&app, url.as_str()).await;
            assert_eq!(
                (response.status(), response.headers().get(LOCATION)),
                (StatusCode::BAD_REQUEST, None),
                "client {client_id}, redirect {redirect_uri}, signed in: {signed_in}"
            );
        }
        // A parameter given twice (OpenID Connect Core §3.1.2.1: not
        // allowed) is an error page too, in the page's language, not the
        // API's problem+json.
        let twice = format!(
            "/oauth/authorize?response_type=code&client_id={}&client_id=other\
             &redirect_uri={}&scope=openid&code_challenge={}&code_challenge_method=S256",
            client.id,
            openidconnect::url::form_urlencoded::byte_serialize(callback.as_bytes())
                .collect::<String>(),
            challenge.as_str(),
        );
        let response = visitor.get_response(&app, &twice).await;
        assert_eq!(
            (response.status(), response.headers().get(LOCATION)),
            (StatusCode::BAD_REQUEST, None),
            "signed in: {signed_in}"
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("id=\"form-error\""), "{page}");
        // So are the mailed links' pages.
        for path in [
            "/activate?token=a&token=b",
            "/reset-password?email=a%40b.c&email=d%40e.f",
        ] {
            let response = visitor.get_response(&app, path).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{path}"
            );
        }
    }

    // prompt=none without a session: login_required at the RP, with state.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, state, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .add_prompt(CoreAuthPrompt::None)
        .url();
    let to = Visitor::new().authorize(&app, &url).await;
    assert!(to.as_str().starts_with(&callback), "{to}");
    let back = query(&to);
    assert_eq!(
        back.get("error").map(String::as_str),
        Some("login_required"),
        "{to}"
    );
    assert_eq!(back.get("state"), Some(state.secret()));
    assert!(!back.contains_key("code"));
    // A state longer than we carry is refused, and not echoed back.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let long = "s".repeat(3000);
    let (url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            || CsrfToken::new("s".repeat(3000)),
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let to = Visitor::new().authorize(&app, &url).await;
    let back = query(&to);
    assert_eq!(
        back.get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert!(!back.contains_key("state") && !to.as_str().contains(&long));

    // PKCE is required, and only S256.
    let (url, state, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let plain_verifier = "p".repeat(43);
    let (plain_url, plain_state, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_extra_param("code_challenge", plain_verifier.as_str())
        .add_extra_param("code_challenge_method", "plain")
        .url();
    for (url, state, what) in [
        (url, state, "no code_challenge"),
        (plain_url, plain_state, "plain"),
    ] {
        let to = visitor.authorize(&app, &url).await;
        assert!(to.as_str().starts_with(&callback), "{what}: {to}");
        let back = query(&to);
        assert_eq!(
            back.get("error").map(String::as_str),
            Some("invalid_request"),
            "{what}: {to}"
        );
        assert_eq!(back.get("state"), Some(state.secret()), "{what}");
        assert!(!back.contains_key("code"), "{what}");
    }

    // A code is spent once; presented again, it is refused and what it
    // gave is revoked (RFC 6749 §4.1.2).
    let auth = authorization(&rp);
    let code = visitor.code(&app, &auth, &callback).await;
    let first = exchange(&app, &rp, &code, copy(&auth.verifier))
        .await
        .unwrap_or_else(|e| panic!("first exchange: {e:?}"));
    verified_id_token(
        &rp,
        &first,
        &auth.nonce,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    );
    assert_eq!(
        refused(exchange(&app, &rp, &code, auth.verifier).await),
        CoreErrorResponseType::InvalidGrant
    );
    assert_eq!(
        refused(refresh(&app, &rp, first.refresh_token().expect("a refresh token")).await),
        CoreErrorResponseType::InvalidGrant,
        "the tokens from a replayed code die with it"
    );

    // An ID token of this client is no hint for another client's logout
    // request, nor does it open that client's post-logout URIs: an error
    // page, nothing redirected, nobody signed out.
    let hint = first.id_token().expect("an ID token").to_string();
    for query in [
        vec![
            ("id_token_hint", hint.as_str()),
            ("client_id", public.id.as_str()),
        ],
        vec![
            ("id_token_hint", hint.as_str()),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
    ] {
        let url = Url::parse_with_params(&app.url("/oauth/logout"), &query).unwrap();
        let response = visitor.get_response(&app, url.as_str()).await;
        assert_eq!(
            (response.status(), response.headers().get(LOCATION)),
            (StatusCode::BAD_REQUEST, None),
            "{query:?}"
        );
    }
    let (status, _) = visitor.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK, "still signed in");

    // A code past its 60 s: invalid_grant (aged in the database rather
    // than waited for).
    let auth = authorization(&rp);
    let code = visitor.code(&app, &auth, &callback).await;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let past = (chrono::Utc::now() - chrono::TimeDelta::seconds(61)).naive_utc();
        diesel::sql_query(format!(
            "UPDATE authorization_codes SET expires_at = '{}'",
            past.format("%Y-%m-%d %H:%M:%S%.6f")
        ))
        .execute(&mut *pool.get().unwrap())
        .unwrap();
    })
    .await
    .unwrap();
    assert_eq!(
        refused(exchange(&app, &rp, &code, auth.verifier).await),
        CoreErrorResponseType::InvalidGrant,
        "an expired code"
    );

    // The wrong verifier, or another redirect URI than the code's.
    let auth = authorization(&rp);
    let code = visitor.code(&app, &auth, &callback).await;
    assert_eq!(
        refused(exchange(&app, &rp, &code, PkceCodeVerifier::new("w".repeat(43))).await),
        CoreErrorResponseType::InvalidGrant
    );
    let auth = authorization(&rp);
    let code = visitor.code(&app, &auth, &callback).await;
    let elsewhere = relying_party(&metadata, &client, &format!("{callback}/elsewhere"));
    assert_eq!(
        refused(exchange(&app, &elsewhere, &code, auth.verifier).await),
        CoreErrorResponseType::InvalidGrant
    );

    // Client authentication: a wrong secret (Basic or in the body), or
    // none for a confidential client, is 401 invalid_client; Basic
    // attempts get a challenge (RFC 6749 §5.2).
    let auth = authorization(&rp);
    let code = visitor.code(&app, &auth, &callback).await;
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", auth.verifier.secret().as_str()),
    ];
    let (status, body, challenge) =
        token_call(&app, Some((client.id.as_str(), "wrong")), &grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    assert!(
        challenge.is_some_and(|c| c.starts_with("Basic")),
        "WWW-Authenticate: Basic"
    );
    let mut post = grant.to_vec();
    post.extend([
        ("client_id", client.id.as_str()),
        ("client_secret", "wrong"),
    ]);
    let mut none = grant.to_vec();
    none.push(("client_id", client.id.as_str()));
    for (form, what) in [(post, "client_secret_post"), (none, "no secret")] {
        let (status, body, _) = token_call(&app, None, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{what}: {body}"
        );
    }

    // The methods discovery names work: client_secret_post, and none for a
    // public client (PKCE alone).
    let auth = authorization(&rp);
    let code = visitor.code(&app, &auth, &callback).await;
    let by_post = relying_party(&metadata, &client, &callback).set_auth_type(AuthType::RequestBody);
    let tokens = exchange(&app, &by_post, &code, auth.verifier)
        .await
        .unwrap_or_else(|e| panic!("client_secret_post: {e:?}"));
    verified_id_token(
        &by_post,
        &tokens,
        &auth.nonce,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    );
    let phone = relying_party(&metadata, &public, &callback);
    let auth = authorization(&phone);
    let code = visitor.code(&app, &auth, &callback).await;
    let tokens = exchange(&app, &phone, &code, auth.verifier)
        .await
        .unwrap_or_else(|e| panic!("public client: {e:?}"));
    verified_id_token(
        &phone,
        &tokens,
        &auth.nonce,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    );

    // Malformed requests.
    let secret = client.secret.as_deref().unwrap();
    let basic = Some((client.id.as_str(), secret));
    let (status, body, _) = token_call(
        &app,
        basic,
        &[
            ("grant_type", "password"),
            ("username", "jun@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")),
        "{body}"
    );
    let (status, body, _) = token_call(
        &app,
        basic,
        &[
            ("grant_type", "authorization_code"),
            ("redirect_uri", callback.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "missing code: {body}"
    );
}

async fn es256_id_tokens_verify_too(backend: Backend) {
    // at_hash here is half of a SHA-256, not of the SHA-512 EdDSA uses.
    id_tokens_verify(
        backend,
        "ES256",
        Some(SigningAlgorithm::ES256),
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    )
    .await;
    // A server whose own tokens are HS256 still serves relying parties:
    // their ID tokens are RS256, never signed with the server's secret.
    id_tokens_verify(
        backend,
        "HS256",
        None,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    )
    .await;
}

/// A code flow on a server signing with `server_alg`, for a client that
/// asked for `client_alg`, ending in an ID token signed with `expected`.
async fn id_tokens_verify(
    backend: Backend,
    server_alg: &str,
    client_alg: Option<SigningAlgorithm>,
    expected: CoreJwsSigningAlgorithm,
) {
    let app = provider(backend, &[("AUTH_SIGNING_ALG", server_alg)]).await;
    app.create_user("ara@example.com", None).await;
    let callback = format!("http://127.0.0.1:{}/callback", free_port());
    let client = register(&app, "Notes", &callback, &[], false, client_alg).await;
    let metadata = discover(&app).await;
    assert!(
        !metadata
            .id_token_signing_alg_values_supported()
            .contains(&CoreJwsSigningAlgorithm::HmacSha256),
        "relying parties can't check HS256 ID tokens"
    );
    let rp = relying_party(&metadata, &client, &callback);
    let mut visitor = Visitor::new();
    visitor.sign_in(&app, "ara@example.com").await;
    let auth = authorization(&rp);
    let code = visitor.code(&app, &auth, &callback).await;
    let tokens = exchange(&app, &rp, &code, auth.verifier)
        .await
        .unwrap_or_else(|e| panic!("code exchange ({server_alg} server): {e:?}"));
    verified_id_token(&rp, &tokens, &auth.nonce, expected);
}

/// The application's page after the browser came back from the provider:
/// panics with the example's error page, or where the browser is, unless
/// it shows a signed-in user within 15 s.
async fn signed_in_at_example(browser: &Browser) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if browser.has("#user-email").await {
            return;
        }
        if browser.has("#error").await {
            panic!(
                "the example refused the sign-in: {} ({})",
                browser.text("main").await,
                browser.url().await
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not signed in at the example; the browser is at {}",
            browser.url().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn the_sso_client_example_signs_in_and_out_in_the_browser(backend: Backend) {
    let app = provider(backend, &[]).await;
    let user_id = app.create_user("noa@example.com", Some("noa")).await;
    // The example under another host name than ours: its cookies and the
    // provider's stay apart, and going between them crosses sites, as
    // between two real domains (SameSite=Lax cookies must survive it).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_url = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let settings = sso_client::Settings {
        issuer: app.settings.issuer.clone(),
        client_id: String::new(),
        client_secret: None,
        app_url: app_url.clone(),
        provider_name: "Example Corp".into(),
    };
    // A first-party confidential client, as the README registers it.
    let client = register(
        &app,
        "SSO example",
        &settings.redirect_uri(),
        &[&settings.post_logout_redirect_uri()],
        false,
        None,
    )
    .await;
    let settings = sso_client::Settings {
        client_id: client.id.clone(),
        client_secret: client.secret.clone(),
        ..settings
    };
    tokio::spawn(sso_client::serve(listener, settings).unwrap());

    // Errors at the callback are a plain page, whatever arrives.
    for (query, expected) in [
        (
            "error=access_denied&error_description=the+user+declined&state=s",
            "access_denied",
        ),
        ("code=c&state=s", "not started in this browser"),
        ("state=a&state=b", "malformed"),
    ] {
        let response = app
            .http
            .get(format!("{app_url}/callback?{query}"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let page = response.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {page}");
        assert!(page.contains(expected), "{query}: {page}");
    }

    // Signed out, "Sign in with …", our login page, back at the example.
    let browser = Browser::start(
        &format!("oidc_example_{}", label(backend)),
        Options::default(),
    )
    .await;
    browser.goto(&format!("{app_url}/")).await;
    browser.wait_for("#sign-in").await;
    assert!(!browser.has("#user-email").await);
    assert_eq!(browser.text("#sign-in").await, "Sign in with Example Corp");
    browser.screenshot("example-signed-out").await;
    browser.click("#sign-in").await;
    browser.wait_for("#f-login").await;
    let at = browser.url().await;
    assert!(
        at.starts_with(&format!("{}/login?next=", app.base)),
        "the provider's login page: {at}"
    );
    browser.fill("#f-login", "noa@example.com").await;
    browser.fill("#f-password", PASSWORD).await;
    browser.click("#submit").await;
    signed_in_at_example(&browser).await;
    assert_eq!(browser.url().await, format!("{app_url}/"));
    assert_eq!(browser.text("#user-email").await, "noa@example.com");
    assert_eq!(browser.text("#user-name").await, "Test User");
    assert_eq!(browser.text("#user-sub").await, user_id);
    browser.screenshot("example-signed-in").await;

    // Sign out at the example: its session ends, then ours, and the
    // browser comes back to the example with the state it sent.
    browser.click("#sign-out").await;
    browser.wait_for("#signed-out").await;
    let at = browser.url().await;
    assert!(
        at.starts_with(&format!("{app_url}/?state=")),
        "back at the example from the provider's logout: {at}"
    );
    assert!(!browser.has("#user-email").await);
    assert!(browser.has("#sign-in").await);
    browser.screenshot("example-signed-out-everywhere").await;
    browser.goto(&format!("{app_url}/")).await;
    browser.wait_for("#sign-in").await;
    assert!(
        !browser.has("#user-email").await,
        "the example forgot the session"
    );

    // Our browser session ended with it: the dashboard asks for a login.
    browser.goto(&app.url("/dashboard")).await;
    browser.wait_for("#f-login").await;
    let at = browser.url().await;
    assert!(
        at.starts_with(&format!("{}/login", app.base)),
        "the provider's session ended: {at}"
    );
    browser.close().await;
}

//! OpenID Connect beyond the first-party code flow (tests/oidc.rs): the
//! consent page of third-party clients (asked, remembered, widened,
//! withdrawn on the dashboard) and the client credentials grant, on both
//! databases, over plain HTTP.

mod support;

use std::collections::HashMap;

use auth_core::SigningAlgorithm;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;
use storage::Backend;
use support::visitor::Visitor;
use support::*;

backend_tests!(
    third_party_clients_ask_for_consent_once_and_lose_it_when_withdrawn,
    the_consent_form_is_checked_like_the_request,
    service_clients_get_their_own_tokens_with_granted_scopes,
    logging_out_anywhere_posts_a_logout_token_to_the_client,
    max_age_zero_asks_once_then_gives_a_code,
    select_account_goes_on_as_the_user_or_signs_in_as_another,
    other_clients_neither_see_nor_end_a_relying_partys_tokens,
    a_relying_partys_session_ends_with_the_browser_session_it_came_from,
    a_device_signs_in_with_a_code_typed_in_the_browser,
    operators_see_and_remove_clients_on_the_admin_pages,
    a_logout_link_from_elsewhere_asks_before_it_signs_anyone_out,
);

const CALLBACK: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

struct Client {
    id: String,
    secret: Option<String>,
}

async fn register(app: &TestApp, first_party: bool, public: bool, scopes: &[&str]) -> Client {
    register_with(app, first_party, public, scopes, None, None).await
}

async fn register_with(
    app: &TestApp,
    first_party: bool,
    public: bool,
    scopes: &[&str],
    backchannel_logout_uri: Option<String>,
    id_token_alg: Option<SigningAlgorithm>,
) -> Client {
    let accounts = app.accounts.clone();
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let created = tokio::task::spawn_blocking(move || {
        accounts
            .register_client(accounts::NewClient {
                name: "Partner app".into(),
                redirect_uris: vec![CALLBACK.into()],
                post_logout_redirect_uris: Vec::new(),
                scopes,
                public,
                first_party,
                backchannel_logout_uri,
                id_token_alg,
            })
            .unwrap()
    })
    .await
    .unwrap();
    Client {
        id: created.client_id,
        secret: created
            .client_secret
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned()),
    }
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        VERIFIER.as_bytes(),
    ))
}

fn authorize_path(client: &Client, scope: &str, extra: &[(&str, &str)]) -> String {
    let challenge = challenge();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", scope),
        ("state", "st-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/oauth/authorize?{query}")
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    openidconnect::url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Where an answer sends the browser: a 303's Location, or the URL of the
/// page that goes on by itself after a form (meta refresh).
async fn destination(response: reqwest::Response) -> String {
    let status = response.status();
    if let Some(location) = response.headers().get(LOCATION) {
        return location.to_str().unwrap().to_owned();
    }
    let body = response.text().await.unwrap();
    let start = body
        .find("content=\"0;url=")
        .unwrap_or_else(|| panic!("{status}: no redirect in {body}"))
        + 15;
    unescape(&body[start..start + body[start..].find('"').unwrap()])
}

/// What a browser reads in an HTML attribute (minijinja escapes `/` too).
fn unescape(value: &str) -> String {
    value
        .replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the consent page, to post back.
fn consent_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let name = &rest[..rest.find('"').unwrap()];
            let value_at = rest.find("value=\"").unwrap() + 7;
            let value = &rest[value_at..value_at + rest[value_at..].find('"').unwrap()];
            (name.to_owned(), unescape(value))
        })
        .collect()
}

async fn consent(
    app: &TestApp,
    visitor: &mut Visitor,
    page: &str,
    decision: &str,
    change: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = consent_fields(page);
    for (name, value) in change {
        fields.retain(|(k, _)| k != name);
        fields.push(((*name).to_owned(), (*value).to_owned()));
    }
    fields.push(("decision".into(), decision.into()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    visitor.post(app, "/oauth/authorize/consent", &form).await
}

async fn token(app: &TestApp, client: &Client, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = form.to_vec();
    if client.secret.is_none() {
        form.push(("client_id", client.id.as_str()));
    }
    let mut request = app.http.post(app.url("/oauth/token")).form(&form);
    if let Some(secret) = &client.secret {
        request = request.basic_auth(&client.id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(!status.is_server_error(), "{status} {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn exchange(app: &TestApp, client: &Client, code: &str) -> (StatusCode, Value) {
    token(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn third_party_clients_ask_for_consent_once_and_lose_it_when_withdrawn(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", Some("kim")).await;
    let client = register(&app, false, false, &[]).await;
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;

    // Asked: the page names the client and what it will receive.
    let (status, page) = kim
        .get(
            &app,
            &authorize_path(&client, "openid email offline_access", &[]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Partner app")
            && page.contains("id=\"allow\"")
            && page.contains("내가 없을 때도 로그인 상태 유지"),
        "{page}"
    );
    let to = destination(consent(&app, &mut kim, &page, "allow", &[]).await).await;
    let back = query_of(&to);
    assert!(to.starts_with(CALLBACK), "{to}");
    assert_eq!(back["state"], "st-1");
    let (status, tokens) = exchange(&app, &client, &back["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // Remembered: the same scopes go straight back with a code.
    let response = kim
        .get_response(
            &app,
            &authorize_path(&client, "openid email offline_access", &[]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = destination(response).await;
    assert!(query_of(&to).contains_key("code"), "{to}");

    // Wider scopes, or prompt=consent, ask again; prompt=none can't ask.
    let (status, page) = kim
        .get(&app, &authorize_path(&client, "openid email profile", &[]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"allow\""));
    let (status, _) = kim
        .get(
            &app,
            &authorize_path(&client, "openid email", &[("prompt", "consent")]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = kim
        .get_response(
            &app,
            &authorize_path(&client, "openid email profile", &[("prompt", "none")]),
        )
        .await;
    let to = destination(response).await;
    assert_eq!(query_of(&to)["error"], "consent_required", "{to}");

    // Declined: access_denied, and nothing remembered for the wider scope.
    let (_, page) = kim
        .get(&app, &authorize_path(&client, "openid email profile", &[]))
        .await;
    let to = destination(consent(&app, &mut kim, &page, "deny", &[]).await).await;
    assert_eq!(query_of(&to)["error"], "access_denied", "{to}");
    assert_eq!(query_of(&to)["state"], "st-1");

    // The dashboard lists the client, and its session by the client's
    // name; withdrawing ends that session.
    let (_, dashboard) = kim.get(&app, "/dashboard").await;
    assert!(
        dashboard.contains("id=\"apps\"") && dashboard.contains("Partner app"),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("<strong class=\"application\">Partner app</strong>"),
        "{dashboard}"
    );
    let csrf = kim.csrf.clone();
    let response = kim
        .post(
            &app,
            &format!("/dashboard/apps/{}/revoke", client.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, body) = token(
        &app,
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, page) = kim
        .get(&app, &authorize_path(&client, "openid email", &[]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"allow\""), "asked again");
    let (_, dashboard) = kim.get(&app, "/dashboard").await;
    assert!(!dashboard.contains("id=\"apps\""));
    assert!(
        !dashboard.contains("class=\"application\""),
        "its session ended"
    );
}

async fn the_consent_form_is_checked_like_the_request(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let client = register(&app, false, false, &[]).await;
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    let (_, page) = kim
        .get(&app, &authorize_path(&client, "openid email", &[]))
        .await;

    // Without this browser's CSRF token: refused, no code.
    let response = consent(&app, &mut kim, &page, "allow", &[("csrf", "forged")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(LOCATION).is_none());

    // Another redirect URI: a page, nothing redirected.
    let response = consent(
        &app,
        &mut kim,
        &page,
        "allow",
        &[("redirect_uri", "https://evil.example/cb")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(LOCATION).is_none());
    let body = response.text().await.unwrap();
    assert!(!body.contains("evil.example"), "{body}");

    // A scope the client was not granted: refused at its redirect URI.
    let to = destination(
        consent(
            &app,
            &mut kim,
            &page,
            "allow",
            &[("scope", "openid permissions")],
        )
        .await,
    )
    .await;
    assert_eq!(query_of(&to)["error"], "invalid_scope", "{to}");

    // Signed out: the login page, no code.
    let mut stranger = Visitor::new();
    stranger.get(&app, "/login").await;
    let response = consent(&app, &mut stranger, &page, "allow", &[]).await;
    assert_ne!(response.status(), StatusCode::OK);
    let to = response
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(!to.contains("code="), "{to}");
}

async fn service_clients_get_their_own_tokens_with_granted_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let service = register(&app, false, false, &["sms:send", "sms:read"]).await;

    let (status, all) = token(&app, &service, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["scope"], "sms:send sms:read");
    assert!(all.get("refresh_token").is_none() && all.get("id_token").is_none());
    let (status, one) = token(
        &app,
        &service,
        &[("grant_type", "client_credentials"), ("scope", "sms:read")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["scope"], "sms:read");
    let (status, more) = token(
        &app,
        &service,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "fame:write"),
        ],
    )
    .await;
    assert_eq!(
        (status, more["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    // Its token is the client's own: no native API takes it, a resource
    // server checking relying-party tokens does, until the client goes.
    let access = all["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app.me(&access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let now = chrono::Utc::now().timestamp();
    let claims = app
        .accounts
        .verifier()
        .relying_party_access(&access, now)
        .unwrap();
    assert_eq!(claims.sub, service.id);
    assert_eq!(claims.perms, ["sms:send", "sms:read"]);
    // Its owner can introspect it; no other client can.
    assert_eq!(introspect(&app, &service, &access).await["active"], true);
    let other = register(&app, false, false, &[]).await;
    assert_eq!(introspect(&app, &other, &access).await["active"], false);
    let accounts = app.accounts.clone();
    let id = service.id.clone();
    assert!(
        tokio::task::spawn_blocking(move || accounts
            .remove_client(&id, &Default::default())
            .unwrap())
        .await
        .unwrap()
    );
    assert!(
        app.accounts
            .verifier()
            .relying_party_access(&access, now)
            .is_err(),
        "revoked with the client"
    );

    // A public client has no credentials to speak of.
    let app_client = register(&app, false, true, &["sms:send"]).await;
    let (status, body) = token(&app, &app_client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
}

/// A relying party's back-channel logout endpoint: answers 200 to every
/// request and hands over each request's body.
async fn logout_endpoint() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            let body = loop {
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some(body.to_owned());
                    }
                }
            };
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            if let Some(body) = body {
                let _ = tx.send(body);
            }
        }
    });
    (url, rx)
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn logging_out_anywhere_posts_a_logout_token_to_the_client(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_KEY_RELOAD", "1")]).await;
    let user_id = app.create_user("kim@example.com", None).await;
    let (endpoint, mut received) = logout_endpoint().await;
    // A client that asked for the server's own algorithm, EdDSA.
    let client = register_with(
        &app,
        true,
        false,
        &[],
        Some(endpoint),
        Some(SigningAlgorithm::EdDSA),
    )
    .await;
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    let to = destination(
        kim.get_response(&app, &authorize_path(&client, "openid offline_access", &[]))
            .await,
    )
    .await;
    let (status, tokens) = exchange(&app, &client, &query_of(&to)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let sid = claims_of(tokens["id_token"].as_str().unwrap())["sid"].clone();

    // The operator moves the server to ES256 meanwhile: the client's
    // EdDSA tokens must stay verifiable (an EdDSA key goes on signing
    // them), never fall back to another algorithm.
    let source = app.accounts.key_source().unwrap().clone();
    let new_kid = source
        .store
        .rotate(SigningAlgorithm::ES256, chrono::Utc::now().timestamp())
        .unwrap();
    let started = std::time::Instant::now();
    while !app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains(&new_kid)
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.accounts
        .replace_keys(source.load(chrono::Utc::now().timestamp()).unwrap());

    // Signing out on our own pages ends the relying party's session too,
    // and the relying party hears of it.
    let (_, _) = kim.get(&app, "/dashboard").await;
    let csrf = kim.csrf.clone();
    kim.post(&app, "/logout", &[("csrf", &csrf)]).await;
    let body = tokio::time::timeout(std::time::Duration::from_secs(15), received.recv())
        .await
        .expect("a logout token within 15 s")
        .unwrap();
    let form: HashMap<String, String> = openidconnect::url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let token = &form["logout_token"];
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA", "the client's algorithm");
    let claims: Value = app
        .accounts
        .keys()
        .verify(token, "logout+jwt")
        .expect("signed by the provider, typ logout+jwt");
    assert_eq!(claims["iss"], "http://auth.test");
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["sid"], sid, "the session the ID token named");
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
    let (status, body) =
        token_refresh(&app, &client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // One notice per ended session, not one per poll.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(received.try_recv().is_err(), "sent once");
}

async fn token_refresh(app: &TestApp, client: &Client, refresh: &str) -> (StatusCode, Value) {
    token(
        app,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await
}

async fn max_age_zero_asks_once_then_gives_a_code(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let client = register(&app, true, false, &[]).await;
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    let step_up = destination(
        kim.get_response(
            &app,
            &authorize_path(&client, "openid", &[("max_age", "0")]),
        )
        .await,
    )
    .await;
    assert!(step_up.starts_with("/step-up?next="), "{step_up}");
    let (_, _) = kim.get(&app, &step_up).await;
    let next = query_of(&step_up)["next"].clone();
    let csrf = kim.csrf.clone();
    let back = destination(
        kim.post(
            &app,
            "/step-up",
            &[("csrf", &csrf), ("next", &next), ("password", PASSWORD)],
        )
        .await,
    )
    .await;
    assert!(back.starts_with("/oauth/authorize?"), "{back}");
    // Authenticated just now: the request is answered, not asked again.
    let to = destination(kim.get_response(&app, &back).await).await;
    assert!(query_of(&to).contains_key("code"), "{to}");
}

async fn select_account_goes_on_as_the_user_or_signs_in_as_another(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let lee_id = app.create_user("lee@example.com", None).await;
    let client = register(&app, true, false, &[]).await;
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    let choose = authorize_path(&client, "openid", &[("prompt", "select_account")]);
    let (status, page) = kim.get(&app, &choose).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("kim@example.com") && page.contains("Partner app"),
        "{page}"
    );
    let href = |page: &str| {
        let link = page.split("id=\"continue\"").next().unwrap();
        let start = link.rfind("href=\"").unwrap() + "href=\"".len();
        unescape(link[start..].split('"').next().unwrap())
    };
    // Going on as kim: a code, the question answered (no prompt carried).
    let again = href(&page);
    assert!(
        again.starts_with("/oauth/authorize?") && !again.contains("prompt"),
        "{again}"
    );
    let to = destination(kim.get_response(&app, &again).await).await;
    assert!(query_of(&to).contains_key("code"), "{to}");

    // select_account with consent: the chooser answers only the first;
    // consent is still asked, even of a first-party client.
    let (_, page) = kim
        .get(
            &app,
            &authorize_path(&client, "openid", &[("prompt", "select_account consent")]),
        )
        .await;
    let again = href(&page);
    assert!(again.contains("prompt=consent"), "{again}");
    let (status, page) = kim.get(&app, &again).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"allow\""), "consent asked: {page}");

    // Another account: signed out here first, then the login page on the
    // way back to the relying party.
    let (_, page) = kim.get(&app, &choose).await;
    let next = page
        .split("name=\"next\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(unescape)
        .unwrap();
    let csrf = kim.csrf.clone();
    let login = destination(
        kim.post(&app, "/logout", &[("csrf", &csrf), ("next", &next)])
            .await,
    )
    .await;
    assert!(
        login.starts_with("/login?next=%2Foauth%2Fauthorize"),
        "{login}"
    );
    let (status, _) = kim.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "kim is signed out");
    let (_, _) = kim.get(&app, &login).await;
    let csrf = kim.csrf.clone();
    let back = destination(
        kim.post(
            &app,
            "/login",
            &[
                ("csrf", &csrf),
                ("login", "lee@example.com"),
                ("password", PASSWORD),
                ("next", &query_of(&login)["next"]),
            ],
        )
        .await,
    )
    .await;
    let to = destination(kim.get_response(&app, &back).await).await;
    let (status, tokens) = exchange(&app, &client, &query_of(&to)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        claims_of(tokens["id_token"].as_str().unwrap())["sub"],
        lee_id.as_str(),
        "signed in as the other account"
    );

    // Only the login page follows a logout: no open redirect through it.
    kim.get(&app, "/dashboard").await;
    let csrf = kim.csrf.clone();
    let to = destination(
        kim.post(
            &app,
            "/logout",
            &[("csrf", &csrf), ("next", "/admin/users")],
        )
        .await,
    )
    .await;
    assert_eq!(to, "/login");
}

async fn introspect(app: &TestApp, client: &Client, token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Black-box finding (2026-12-04): a relying party's session counted its
/// own 30 days from the code exchange, so with offline_access it outlived
/// the browser session it came from, whose end the README promises it
/// shares. Now its end is the browser session's at the latest.
async fn a_relying_partys_session_ends_with_the_browser_session_it_came_from(backend: Backend) {
    use diesel::prelude::*;
    use storage::schema::sessions;

    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let rp = register(&app, true, false, &[]).await;
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    // The browser session (the only one) ends in two minutes.
    let conn = &mut app.pool.get().unwrap();
    let browser_end = (chrono::Utc::now() + chrono::TimeDelta::minutes(2)).timestamp();
    let browser_end_at = chrono::DateTime::from_timestamp(browser_end, 0)
        .unwrap()
        .naive_utc();
    diesel::update(sessions::table)
        .set(sessions::expires_at.eq(browser_end_at))
        .execute(conn)
        .unwrap();

    let to = destination(
        kim.get_response(&app, &authorize_path(&rp, "openid offline_access", &[]))
            .await,
    )
    .await;
    let (status, tokens) = exchange(&app, &rp, &query_of(&to)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["expires_in"].as_i64().unwrap() <= 120, "{tokens}");
    assert!(
        claims_of(tokens["access_token"].as_str().unwrap())["exp"]
            .as_i64()
            .unwrap()
            <= browser_end
    );
    let ends: Vec<chrono::NaiveDateTime> = sessions::table
        .filter(sessions::client_id.is_not_null())
        .select(sessions::expires_at)
        .load(conn)
        .unwrap();
    assert_eq!(ends, [browser_end_at]);
    // Refreshed, it still ends then.
    let (status, refreshed) =
        token_refresh(&app, &rp, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(
        claims_of(refreshed["access_token"].as_str().unwrap())["exp"]
            .as_i64()
            .unwrap()
            <= browser_end
    );
}

async fn other_clients_neither_see_nor_end_a_relying_partys_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let rp = register(&app, true, false, &[]).await;
    let other = register(&app, false, false, &[]).await;
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    // Without offline_access: no refresh token (OpenID Connect Core §11).
    let to = destination(
        kim.get_response(&app, &authorize_path(&rp, "openid email", &[]))
            .await,
    )
    .await;
    let (status, online) = exchange(&app, &rp, &query_of(&to)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{online}");
    assert!(
        online.get("refresh_token").is_none() && online["id_token"].is_string(),
        "{online}"
    );
    let to = destination(
        kim.get_response(
            &app,
            &authorize_path(&rp, "openid email offline_access", &[]),
        )
        .await,
    )
    .await;
    let code = query_of(&to)["code"].clone();
    let (_, tokens) = exchange(&app, &rp, &code).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // Introspection: the relying party sees its own tokens, no one else does.
    let own = introspect(&app, &rp, access).await;
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["client_id"], rp.id.as_str());
    assert_eq!(own["scope"], "openid email offline_access");
    assert_eq!(introspect(&app, &rp, refresh).await["active"], true);
    assert_eq!(introspect(&app, &other, access).await["active"], false);
    assert_eq!(introspect(&app, &other, refresh).await["active"], false);

    // Revocation by another client is answered 200 and changes nothing.
    let response = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&other.id, other.secret.as_deref())
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A refresh may not widen the scope (RFC 6749 §6); refused before the
    // token is spent. Within the grant it is fine.
    let (status, body) = token(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("scope", "openid email profile"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    let (status, narrower) = token(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("scope", "openid email"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{narrower}");
    let refresh = narrower["refresh_token"].as_str().unwrap().to_owned();
    let (status, renewed) = token_refresh(&app, &rp, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let refresh = renewed["refresh_token"].as_str().unwrap().to_owned();

    // The code again without its verifier: refused, and the session lives.
    let (status, body) = token(
        &app,
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &"x".repeat(43)),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(introspect(&app, &rp, &refresh).await["active"], true);
    // With its verifier, a replay ends what the code gave.
    let (status, _) = exchange(&app, &rp, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(introspect(&app, &rp, &refresh).await["active"], false);
    // A dead token is invalid_grant whatever scope it asks for: a scope
    // probe tells nothing about it.
    let (status, body) = token(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "openid email profile"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn start_device(app: &TestApp, client: &Client) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/device_authorization"))
        .form(&[
            ("client_id", client.id.as_str()),
            ("scope", "openid email offline_access"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn poll(app: &TestApp, client: &Client, device: &Value) -> (StatusCode, Value) {
    let code = device["device_code"].as_str().unwrap();
    token(
        app,
        client,
        &[("grant_type", DEVICE_GRANT), ("device_code", code)],
    )
    .await
}

async fn a_device_signs_in_with_a_code_typed_in_the_browser(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_id = app.create_user("kim@example.com", None).await;
    // A command-line tool: public, no redirect URI.
    let cli = Client {
        id: {
            let accounts = app.accounts.clone();
            tokio::task::spawn_blocking(move || {
                accounts
                    .register_client(accounts::NewClient {
                        name: "kim's CLI".into(),
                        public: true,
                        ..Default::default()
                    })
                    .unwrap()
                    .client_id
            })
            .await
            .unwrap()
        },
        secret: None,
    };
    let device = start_device(&app, &cli).await;
    let user_code = device["user_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9, "{device}");
    assert_eq!(device["verification_uri"], "http://auth.test/device");
    assert_eq!(device["interval"], 5);

    // Polling before the user answers: pending, and too fast: slow down.
    let (_, body) = poll(&app, &cli, &device).await;
    assert_eq!(body["error"], "authorization_pending", "{body}");
    let (_, body) = poll(&app, &cli, &device).await;
    assert_eq!(body["error"], "slow_down", "{body}");

    // The user types the code (any case, spaces) and approves.
    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    let (status, page) = kim.get(&app, "/device").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"f-code\""), "{page}");
    let csrf = kim.csrf.clone();
    let response = kim
        .post(&app, "/device", &[("csrf", &csrf), ("code", "BCDF-GHJK")])
        .await;
    assert!(response.status().is_client_error(), "a wrong code");
    let typed = user_code.to_lowercase().replace('-', " ");
    let response = kim
        .post(&app, "/device", &[("csrf", &csrf), ("code", &typed)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("kim&#x27;s CLI") || page.contains("kim's CLI"),
        "{page}"
    );
    assert!(page.contains(&user_code), "{page}");
    let response = kim
        .post(
            &app,
            "/device/confirm",
            &[("csrf", &csrf), ("code", &user_code), ("decision", "allow")],
        )
        .await;
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("id=\"device-outcome\"")
    );

    // The device's next poll gets tokens, once.
    let (status, tokens) = poll(&app, &cli, &device).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], user_id.as_str());
    assert_eq!(id["aud"], cli.id.as_str());
    assert!(tokens["refresh_token"].is_string());
    let (_, again) = poll(&app, &cli, &device).await;
    assert_eq!(again["error"], "invalid_grant");
    // The code can't be answered twice either.
    let response = kim
        .post(
            &app,
            "/device/confirm",
            &[("csrf", &csrf), ("code", &user_code), ("decision", "deny")],
        )
        .await;
    assert!(response.status().is_client_error());

    // Denied: the device hears so.
    let denied = start_device(&app, &cli).await;
    let code = denied["user_code"].as_str().unwrap().to_owned();
    kim.post(
        &app,
        "/device/confirm",
        &[("csrf", &csrf), ("code", &code), ("decision", "deny")],
    )
    .await;
    let (_, body) = poll(&app, &cli, &denied).await;
    assert_eq!(body["error"], "access_denied", "{body}");

    // Another client can't poll with this device code.
    let other = register(&app, false, false, &[]).await;
    let third = start_device(&app, &cli).await;
    let (_, body) = poll(&app, &other, &third).await;
    assert_eq!(body["error"], "invalid_grant");
}

async fn operators_see_and_remove_clients_on_the_admin_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_admin("boss@example.com").await;
    app.create_user("kim@example.com", None).await;
    let rp = register(&app, true, false, &["organization"]).await;

    let mut kim = Visitor::new();
    kim.log_in(&app, "kim@example.com").await;
    let (status, _) = kim.get(&app, "/admin/clients").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operators only");
    let to = destination(
        kim.get_response(&app, &authorize_path(&rp, "openid offline_access", &[]))
            .await,
    )
    .await;
    let (_, tokens) = exchange(&app, &rp, &query_of(&to)["code"]).await;

    let mut boss = Visitor::new();
    boss.log_in(&app, "boss@example.com").await;
    let (status, page) = boss.get(&app, "/admin/clients").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Partner app") && unescape(&page).contains(CALLBACK) && page.contains(&rp.id),
        "{page}"
    );
    assert!(
        !page.contains(rp.secret.as_deref().unwrap()),
        "no secret shown"
    );
    let csrf = boss.csrf.clone();
    let response = boss
        .post(
            &app,
            &format!("/admin/clients/{}/remove", rp.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, _) = token_refresh(&app, &rp, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the client is gone");
    let (_, audit) = boss.get(&app, "/admin/audit?event=client.removed").await;
    assert!(audit.contains(&rp.id), "{audit}");
}

async fn a_logout_link_from_elsewhere_asks_before_it_signs_anyone_out(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    app.create_user("lee@example.com", None).await;
    let accounts = app.accounts.clone();
    let rp = tokio::task::spawn_blocking(move || {
        accounts
            .register_client(accounts::NewClient {
                name: "Partner app".into(),
                redirect_uris: vec![CALLBACK.into()],
                post_logout_redirect_uris: vec!["http://127.0.0.1:9/bye".into()],
                first_party: true,
                ..Default::default()
            })
            .unwrap()
    })
    .await
    .unwrap();
    let rp = Client {
        id: rp.client_id,
        secret: rp
            .client_secret
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned()),
    };
    // An anonymous logout link with a state longer than any relying party
    // may carry: on to the registered URI, the state not echoed.
    let long_state = "s".repeat(2000);
    let to = destination(
        Visitor::new()
            .get_response(
                &app,
                &format!(
                    "/oauth/logout?client_id={}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fbye&state={long_state}",
                    rp.id
                ),
            )
            .await,
    )
    .await;
    assert_eq!(to, "http://127.0.0.1:9/bye");
    let signed_in = async |login: &str| {
        let mut visitor = Visitor::new();
        visitor.log_in(&app, login).await;
        let to = destination(
            visitor
                .get_response(&app, &authorize_path(&rp, "openid offline_access", &[]))
                .await,
        )
        .await;
        let (_, tokens) = exchange(&app, &rp, &query_of(&to)["code"]).await;
        (visitor, tokens)
    };
    let (mut kim, kim_tokens) = signed_in("kim@example.com").await;
    let (mut lee, lee_tokens) = signed_in("lee@example.com").await;
    let logout = |hint: &str| {
        format!(
            "/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fbye&state=z"
        )
    };
    let lee_hint = lee_tokens["id_token"].as_str().unwrap();

    // A browser without a session has nothing to end, whatever the hint.
    let mut stranger = Visitor::new();
    let to = destination(stranger.get_response(&app, &logout(lee_hint)).await).await;
    assert_eq!(to, "http://127.0.0.1:9/bye?state=z");
    let (status, _) = lee.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK, "lee still signed in");

    // Kim's browser with Lee's hint: asked first, and only ever Kim's own
    // session ends.
    let (status, page) = kim.get(&app, &logout(lee_hint)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"logout\""), "{page}");
    let forged = kim
        .post(
            &app,
            "/oauth/logout",
            &[
                ("csrf", "forged"),
                ("id_token_hint", lee_hint),
                ("decision", "logout"),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let mut fields = consent_fields(&page);
    fields.push(("decision".into(), "stay".into()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    kim.post(&app, "/oauth/logout", &form).await;
    let (status, _) = kim.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK, "stayed");
    fields.pop();
    fields.push(("decision".into(), "logout".into()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let to = destination(kim.post(&app, "/oauth/logout", &form).await).await;
    assert_eq!(to, "http://127.0.0.1:9/bye?state=z");
    let (status, _) = kim.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "kim signed out");
    let refresh = |tokens: &Value| tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = token_refresh(&app, &rp, &refresh(&kim_tokens)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "kim's application session ended"
    );
    let (status, _) = token_refresh(&app, &rp, &refresh(&lee_tokens)).await;
    assert_eq!(status, StatusCode::OK, "lee's did not");
    let (status, _) = lee.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK, "lee still signed in");

    // Another client's redirect URI, or a hint that is not ours: a page.
    let (status, _) = lee
        .get(
            &app,
            &format!(
                "/oauth/logout?id_token_hint={lee_hint}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = lee.get(&app, "/oauth/logout?id_token_hint=a.b.c").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

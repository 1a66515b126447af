//! OpenID Connect beyond the first-party code flow (tests/oidc.rs): the
//! consent page of third-party clients (asked, remembered, widened,
//! withdrawn on the dashboard) and the client credentials grant, on both
//! databases, over plain HTTP.

mod support;

use std::collections::HashMap;

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
);

const CALLBACK: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

struct Client {
    id: String,
    secret: Option<String>,
}

async fn register(app: &TestApp, first_party: bool, public: bool, scopes: &[&str]) -> Client {
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
        .get(&app, &authorize_path(&client, "openid email", &[]))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Partner app") && page.contains("id=\"allow\""),
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
        .get_response(&app, &authorize_path(&client, "openid email", &[]))
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

    // The dashboard lists the client; withdrawing ends its session.
    let (_, dashboard) = kim.get(&app, "/dashboard").await;
    assert!(
        dashboard.contains("id=\"apps\"") && dashboard.contains("Partner app"),
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
    let accounts = app.accounts.clone();
    let id = service.id.clone();
    assert!(
        tokio::task::spawn_blocking(move || accounts.remove_client(&id).unwrap())
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

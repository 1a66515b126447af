//! "Sign in with <company>": an actix-web application whose users sign in
//! through the auth server's OpenID Connect provider, written with the
//! `openidconnect` crate as any relying party would be. The single sign-on
//! story of `docs/embedding.md`, runnable and tested in Chromium
//! (`apps/auth-server/tests/oidc.rs`).
//!
//! - `GET /`: who is signed in (email, name and `sub`, from the verified ID
//!   token and UserInfo) with a sign-out link, or a sign-in link;
//! - `GET /login`: discovery (once, then cached), then the browser goes to
//!   the provider's authorization endpoint with PKCE (S256), a nonce and a
//!   random `state`; what the answer will be checked with is kept here for
//!   ten minutes under that `state`, which a cookie binds to the browser;
//! - `GET /callback`: the `state` is checked, the code exchanged with the
//!   PKCE verifier, the ID token verified (signature with the discovered
//!   keys, issuer, audience, expiry, nonce, `at_hash`); a local session
//!   starts behind a random HttpOnly, SameSite=Lax cookie;
//! - `GET /logout`: the local session ends and the browser goes to the
//!   provider's `end_session_endpoint` with the ID token as `id_token_hint`,
//!   which ends the provider's session (and every other application's
//!   session from it) and comes back to `/`.
//!
//! Pending sign-ins and sessions live in this process's memory: one
//! instance, and a restart signs everyone out. A real application keeps
//! them where it keeps its other sessions. The local session lasts eight
//! hours whatever happens at the provider; an application that must notice
//! a sign-out elsewhere sooner registers a back-channel logout URI
//! (`client add --backchannel-logout-uri`), or asks the provider now and
//! then (UserInfo, or a refresh: both refuse once its session has ended).

use std::collections::HashMap;
use std::fmt;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use anyhow::Context;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndSessionUrl, EndUserName, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    LocalizedClaim, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::Deserialize;

/// Where the application is reached unless `APP_URL` says otherwise.
pub const DEFAULT_APP_URL: &str = "http://localhost:9200";

/// How long a sign-in may take between `/login` and `/callback`.
const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Sign-ins in progress at most (each holds a verifier and a nonce here).
const MAX_PENDING: usize = 10_000;
/// How long a local session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);

const SESSION_COOKIE: &str = "sso_client_session";
/// The `state` of the sign-in this browser started.
const STATE_COOKIE: &str = "sso_client_state";
/// The `state` of the sign-out this browser started.
const LOGOUT_COOKIE: &str = "sso_client_logout";

/// Who the application is to the provider, and where the provider is.
#[derive(Clone)]
pub struct Settings {
    /// The provider's issuer; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// From `auth-server client add`.
    pub client_id: String,
    /// From `auth-server client add` (a confidential client); `None` for a
    /// public client, whose proof is PKCE alone.
    pub client_secret: Option<String>,
    /// Where browsers reach this application: the redirect URI is
    /// `{app_url}/callback`, the post-logout redirect URI `{app_url}/`.
    pub app_url: String,
    /// Shown as "Sign in with {provider_name}".
    pub provider_name: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("app_url", &self.app_url)
            .field("provider_name", &self.provider_name)
            .finish()
    }
}

impl Settings {
    /// From `AUTH_ISSUER` (default `http://127.0.0.1:8080`, the auth
    /// server's own default), `CLIENT_ID` (required), `CLIENT_SECRET`
    /// (unset for a public client), `APP_URL` (default
    /// [`DEFAULT_APP_URL`]) and `PROVIDER_NAME` (default `auth-server`).
    pub fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let client_id = var("CLIENT_ID").ok_or_else(|| {
            anyhow::anyhow!(
                "CLIENT_ID is not set: register this application with \
                 `auth-server client add --name … --redirect-uri <APP_URL>/callback` \
                 and pass the client_id (and client_secret) it prints"
            )
        })?;
        Ok(Settings {
            issuer: var("AUTH_ISSUER").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            client_id,
            client_secret: var("CLIENT_SECRET"),
            app_url: var("APP_URL")
                .unwrap_or_else(|| DEFAULT_APP_URL.into())
                .trim_end_matches('/')
                .to_owned(),
            provider_name: var("PROVIDER_NAME").unwrap_or_else(|| "auth-server".into()),
        })
    }

    /// The redirect URI to register: `{app_url}/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.app_url)
    }

    /// The post-logout redirect URI to register: `{app_url}/`.
    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}/", self.app_url)
    }
}

/// A client as `from_provider_metadata` leaves it: the authorization
/// endpoint set, the token and UserInfo endpoints as discovery said.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What discovery gave: the client (endpoints and keys) and where to sign out.
struct Provider {
    client: Rp,
    end_session: Option<EndSessionUrl>,
}

/// A sign-in on its way: what its answer is checked with.
struct Pending {
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    started: Instant,
}

/// The signed-in user, as the provider vouched for them.
#[derive(Clone)]
struct User {
    sub: String,
    email: Option<String>,
    name: Option<String>,
}

struct Session {
    user: User,
    /// Sent back as `id_token_hint` at sign-out.
    id_token: CoreIdToken,
    started: Instant,
}

/// The application's state: settings, the provider once discovered, and
/// the sign-ins and sessions in memory.
pub struct SsoClient {
    settings: Settings,
    issuer: IssuerUrl,
    redirect_uri: RedirectUrl,
    post_logout_redirect_uri: PostLogoutRedirectUrl,
    secure_cookies: bool,
    http: reqwest::Client,
    provider: Mutex<Option<Arc<Provider>>>,
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// A lock whose holder panicked still guards plain maps: use it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SsoClient {
    /// Checks the settings' URLs; talks to nobody yet (discovery happens at
    /// the first sign-in, so the application may start before the provider).
    pub fn new(settings: Settings) -> anyhow::Result<SsoClient> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .with_context(|| format!("AUTH_ISSUER {:?} is not a URL", settings.issuer))?;
        let redirect_uri = RedirectUrl::new(settings.redirect_uri())
            .with_context(|| format!("APP_URL {:?} is not a URL", settings.app_url))?;
        let post_logout_redirect_uri =
            PostLogoutRedirectUrl::new(settings.post_logout_redirect_uri())
                .with_context(|| format!("APP_URL {:?} is not a URL", settings.app_url))?;
        // No redirects, as openidconnect asks: following them invites SSRF.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(SsoClient {
            secure_cookies: settings.app_url.starts_with("https://"),
            settings,
            issuer,
            redirect_uri,
            post_logout_redirect_uri,
            http,
            provider: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The provider, discovered at the first call and cached. Calls that
    /// arrive while the first discovery runs run one each; the last stays.
    async fn provider(&self) -> Result<Arc<Provider>, Failure> {
        let cached = lock(&self.provider).clone();
        match cached {
            Some(provider) => Ok(provider),
            None => self.discover().await,
        }
    }

    /// Discovery (and the provider's keys), replacing what was cached.
    async fn discover(&self) -> Result<Arc<Provider>, Failure> {
        let metadata = ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.settings.issuer, error = %e, "discovery failed");
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "{} can't be reached right now. Try again in a moment.",
                        self.settings.provider_name
                    ),
                )
            })?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect_uri.clone());
        let provider = Arc::new(Provider {
            client,
            end_session,
        });
        *lock(&self.provider) = Some(provider.clone());
        Ok(provider)
    }

    /// Keeps a sign-in under its `state`, dropping the stale ones.
    fn remember(&self, state: String, pending: Pending) -> Result<(), Failure> {
        let mut all = lock(&self.pending);
        all.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        if all.len() >= MAX_PENDING {
            return Err(Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins are in progress. Try again in a minute.",
            ));
        }
        all.insert(state, pending);
        Ok(())
    }

    /// The sign-in kept under `state`, once, if it is recent.
    fn take_pending(&self, state: &str) -> Option<Pending> {
        lock(&self.pending)
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_TTL)
    }

    /// Starts a local session: its id, for the cookie.
    fn start_session(&self, user: User, id_token: CoreIdToken) -> String {
        let id = CsrfToken::new_random_len(32).into_secret();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.started.elapsed() < SESSION_TTL);
        sessions.insert(
            id.clone(),
            Session {
                user,
                id_token,
                started: Instant::now(),
            },
        );
        id
    }

    /// The user of the request's session cookie, if the session is live.
    fn user(&self, req: &HttpRequest) -> Option<User> {
        let id = cookie(req, SESSION_COOKIE)?;
        let sessions = lock(&self.sessions);
        sessions
            .get(&id)
            .filter(|s| s.started.elapsed() < SESSION_TTL)
            .map(|s| s.user.clone())
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure over https.
    fn cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        )
    }

    fn forget_cookie(&self, name: &str) -> String {
        self.cookie(name, "", Duration::ZERO)
    }
}

/// The value of the request's cookie `name`.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The routes; an [`SsoClient`] must be registered as app data.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login))
        .route("/callback", web::get().to(callback))
        .route("/logout", web::get().to(logout));
}

/// The application on `listener`.
pub fn serve(listener: TcpListener, settings: Settings) -> anyhow::Result<Server> {
    let app = web::Data::new(SsoClient::new(settings)?);
    Ok(
        HttpServer::new(move || App::new().app_data(app.clone()).configure(routes))
            .workers(1)
            .listen(listener)?
            .run(),
    )
}

#[derive(Deserialize)]
struct HomeQuery {
    /// The `state` of a sign-out, when the provider sends the browser back.
    state: Option<String>,
}

async fn home(app: web::Data<SsoClient>, req: HttpRequest) -> HttpResponse {
    let provider = escape(&app.settings.provider_name);
    if let Some(user) = app.user(&req) {
        let or_none = |v: &Option<String>| v.as_deref().map_or_else(|| "—".to_owned(), escape);
        let body = format!(
            "<p>You are signed in with {provider}.</p>\n<dl>\n\
             <dt>Email</dt><dd id=\"user-email\">{}</dd>\n\
             <dt>Name</dt><dd id=\"user-name\">{}</dd>\n\
             <dt>Subject (<code>sub</code>)</dt><dd id=\"user-sub\">{}</dd>\n</dl>\n\
             <p><a id=\"sign-out\" href=\"/logout\">Sign out</a> (here and at {provider})</p>",
            or_none(&user.email),
            or_none(&user.name),
            escape(&user.sub),
        );
        return page(StatusCode::OK, "Welcome", &body, &[]);
    }
    // Back from the provider's sign-out, which this browser started?
    let query = web::Query::<HomeQuery>::from_query(req.query_string()).ok();
    let returned = query.and_then(|q| q.into_inner().state);
    let signed_out = matches!(
        (returned, cookie(&req, LOGOUT_COOKIE)),
        (Some(state), Some(expected)) if state == expected
    );
    let mut body = String::new();
    let mut cookies = Vec::new();
    if signed_out {
        body.push_str(&format!(
            "<p id=\"signed-out\" role=\"status\">You are signed out, here and at {provider}.</p>\n"
        ));
        cookies.push(app.forget_cookie(LOGOUT_COOKIE));
    }
    body.push_str(&format!(
        "<p>You are not signed in.</p>\n\
         <p><a id=\"sign-in\" href=\"/login\">Sign in with {provider}</a></p>"
    ));
    page(StatusCode::OK, "Welcome", &body, &cookies)
}

/// To the provider, with PKCE, a nonce and a random state.
async fn login(app: web::Data<SsoClient>) -> Result<HttpResponse, Failure> {
    let provider = app.provider().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = provider
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    app.remember(
        state.secret().clone(),
        Pending {
            nonce,
            verifier,
            started: Instant::now(),
        },
    )?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .append_header((
            header::SET_COOKIE,
            app.cookie(STATE_COOKIE, state.secret(), PENDING_TTL),
        ))
        .finish())
}

/// What the provider sends the browser back with (RFC 6749 §4.1.2, RFC 9207).
#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(app: web::Data<SsoClient>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let provider_name = &app.settings.provider_name;
    let query = web::Query::<CallbackQuery>::from_query(req.query_string())
        .map_err(|_| Failure::new(StatusCode::BAD_REQUEST, "This sign-in answer is malformed."))?
        .into_inner();
    // The sign-in this browser started: the state in its cookie, known
    // here (once, for ten minutes). Without the cookie, someone could send
    // a victim here with a code of their own and sign them in as someone else.
    let pending = match (&query.state, cookie(&req, STATE_COOKIE)) {
        (Some(state), Some(expected)) if *state == expected => app.take_pending(state),
        _ => None,
    };
    if let Some(error) = &query.error {
        let message = match error.as_str() {
            "access_denied" => "You did not allow this application to use your account.".into(),
            "login_required" | "consent_required" | "interaction_required" => {
                format!("{provider_name} needs you to sign in first.")
            }
            _ => format!("{provider_name} could not sign you in."),
        };
        let detail = match &query.error_description {
            Some(description) => format!("{error}: {description}"),
            None => error.clone(),
        };
        return Err(Failure::new(StatusCode::BAD_REQUEST, message).detail(detail));
    }
    let Some(pending) = pending else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, was finished already, \
             or took longer than ten minutes. Please sign in again.",
        ));
    };
    // RFC 9207: the answer names its issuer, which must be ours (a mix-up
    // between providers otherwise).
    if query
        .iss
        .as_ref()
        .is_some_and(|iss| *iss != app.settings.issuer)
    {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "This sign-in answer came from another provider.",
        ));
    }
    let Some(code) = query.code else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "This sign-in answer has no code.",
        ));
    };

    let provider = app.provider().await?;
    let refused = |what: &str, error: &dyn fmt::Display| {
        tracing::warn!(error = %error, "{what}");
        Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("{provider_name} did not complete the sign-in. Please sign in again."),
        )
    };
    let tokens = provider
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| refused("no token endpoint", &e))?
        .set_pkce_verifier(pending.verifier)
        .request_async(&app.http)
        .await
        .map_err(|e| refused("code exchange refused", &e))?;
    let Some(id_token) = tokens.id_token() else {
        return Err(refused("no ID token", &"the token response has none"));
    };
    let user = match verified_user(&provider.client, id_token, &tokens, &pending.nonce) {
        // Signed with a key discovery did not have: the provider rotated
        // its keys since. Discover again (keys included) and check once more.
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let fresh = app.discover().await?;
            verified_user(&fresh.client, id_token, &tokens, &pending.nonce)
        }
        checked => checked,
    }
    .map_err(|e| refused("ID token rejected", &e))?;
    let user = with_userinfo(&app, &provider, &tokens, user).await;

    let session = app.start_session(user, id_token.clone());
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .append_header((
            header::SET_COOKIE,
            app.cookie(SESSION_COOKIE, &session, SESSION_TTL),
        ))
        .append_header((header::SET_COOKIE, app.forget_cookie(STATE_COOKIE)))
        .finish())
}

/// The user an ID token names, once it is verified: signature with the
/// provider's keys and its algorithm, issuer, audience (this client),
/// expiry, the nonce of this sign-in; and its `at_hash` against the access
/// token that came with it.
fn verified_user(
    client: &Rp,
    id_token: &CoreIdToken,
    tokens: &CoreTokenResponse,
    nonce: &Nonce,
) -> Result<User, ClaimsVerificationError> {
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, nonce)?;
    if let Some(expected) = claims.access_token_hash() {
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token
                .signing_alg()
                .map_err(ClaimsVerificationError::SignatureVerification)?,
            id_token
                .signing_key(&verifier)
                .map_err(ClaimsVerificationError::SignatureVerification)?,
        )
        .map_err(|e| ClaimsVerificationError::Unsupported(e.to_string()))?;
        if actual != *expected {
            return Err(ClaimsVerificationError::Other(
                "at_hash does not match the access token".into(),
            ));
        }
    }
    Ok(User {
        sub: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        name: display_name(claims.name()),
    })
}

fn display_name(name: Option<&LocalizedClaim<EndUserName>>) -> Option<String> {
    name.and_then(|n| n.get(None)).map(|n| n.to_string())
}

/// The user's details as UserInfo has them now (the library checks that
/// its `sub` is the ID token's); the ID token's if UserInfo fails.
async fn with_userinfo(
    app: &SsoClient,
    provider: &Provider,
    tokens: &CoreTokenResponse,
    user: User,
) -> User {
    let request = provider.client.user_info(
        tokens.access_token().clone(),
        Some(openidconnect::SubjectIdentifier::new(user.sub.clone())),
    );
    let info: Result<CoreUserInfoClaims, String> = match request {
        Ok(request) => request
            .request_async(&app.http)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match info {
        Ok(info) => User {
            email: info.email().map(|e| e.to_string()).or(user.email),
            name: display_name(info.name()).or(user.name),
            sub: user.sub,
        },
        Err(error) => {
            tracing::warn!(%error, "userinfo failed; showing the ID token's claims");
            user
        }
    }
}

/// Ends the local session, then the provider's: to its end_session_endpoint
/// with the ID token as hint, back to `/` with a state.
async fn logout(app: web::Data<SsoClient>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let session = cookie(&req, SESSION_COOKIE).and_then(|id| lock(&app.sessions).remove(&id));
    let mut response = HttpResponse::SeeOther();
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .append_header((header::SET_COOKIE, app.forget_cookie(SESSION_COOKIE)));
    let Some(session) = session else {
        return Ok(response.insert_header((header::LOCATION, "/")).finish());
    };
    let provider = app.provider().await?;
    let Some(end_session) = provider.end_session.clone() else {
        // A provider without RP-initiated logout: only the local session ends.
        return Ok(response.insert_header((header::LOCATION, "/")).finish());
    };
    let state = CsrfToken::new_random();
    let url = LogoutRequest::from(end_session)
        .set_id_token_hint(&session.id_token)
        .set_post_logout_redirect_uri(app.post_logout_redirect_uri.clone())
        .set_state(state.clone())
        .http_get_url();
    Ok(response
        .insert_header((header::LOCATION, url.as_str()))
        .append_header((
            header::SET_COOKIE,
            app.cookie(LOGOUT_COOKIE, state.secret(), PENDING_TTL),
        ))
        .finish())
}

/// Something that stopped a sign-in or sign-out: a plain page saying what,
/// with a way back.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
    /// The provider's own words (its error code and description).
    detail: Option<String>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            detail: None,
        }
    }

    fn detail(mut self, detail: String) -> Failure {
        self.detail = Some(detail);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = format!("<p id=\"error\">{}</p>\n", escape(&self.message));
        if let Some(detail) = &self.detail {
            body.push_str(&format!(
                "<p>The provider said: <code id=\"error-detail\">{}</code></p>\n",
                escape(detail)
            ));
        }
        body.push_str("<p><a href=\"/\">Back to the start</a></p>");
        page(self.status, "That did not work", &body, &[])
    }
}

/// A whole HTML page (no script, no style) with `cookies` to set.
fn page(status: StatusCode, title: &str, body: &str, cookies: &[String]) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // The callback's URL holds a code: never send it on.
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; form-action 'none'; frame-ancestors 'none'",
        ));
    for cookie in cookies {
        response.append_header((header::SET_COOKIE, cookie.as_str()));
    }
    let title = escape(title);
    response.body(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · SSO example</title></head>\n\
         <body><main>\n<h1>{title}</h1>\n{body}\n</main></body></html>\n"
    ))
}

/// Text for HTML (element content and quoted attribute values).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape("<a href=\"x\">Kim & 'Lee'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Kim &amp; &#39;Lee&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::COOKIE, "x_sso_client_state=a; sso_client_state=b"))
            .to_http_request();
        assert_eq!(cookie(&req, STATE_COOKIE).as_deref(), Some("b"));
        assert_eq!(cookie(&req, SESSION_COOKIE), None);
    }
}

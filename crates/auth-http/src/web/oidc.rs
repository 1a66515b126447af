//! The browser side of OpenID Connect: the authorization endpoint, the
//! consent page and RP-initiated logout. The rules (which client, which
//! redirect URI, PKCE, when to sign in again, codes, logout) are
//! `accounts::oidc`'s; this module only turns them into pages and
//! redirects.

use accounts::{
    AuthorizationRequest, AuthorizeError, Authorized, LogoutRefused, ValidAuthorization,
};
use actix_web::http::StatusCode;
use actix_web::web;
use minijinja::context;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::public::posted;
use super::{Form, PageError, PageResult, SignedIn, Visitor};
use crate::http::error::ApiError;
use crate::http::extract::client_info;
use crate::http::run_blocking;

/// The parameters of an authorization request (query or consent form).
#[derive(Deserialize, Default)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
}

impl From<AuthorizeQuery> for AuthorizationRequest {
    fn from(q: AuthorizeQuery) -> Self {
        AuthorizationRequest {
            response_type: q.response_type,
            client_id: q.client_id,
            redirect_uri: q.redirect_uri,
            scope: q.scope,
            state: q.state,
            nonce: q.nonce,
            code_challenge: q.code_challenge,
            code_challenge_method: q.code_challenge_method,
            prompt: q.prompt,
            max_age: q.max_age,
            login_hint: q.login_hint,
        }
    }
}

/// What a step answers of the request's `prompt`: a sign-in answers
/// `login` and `select_account` (the user chose the account by signing
/// in), a step-up only `login`, the account chooser `select_account`. What
/// is left is carried on; `login` never is (nor `max_age`), or the user
/// would be sent round again for ever.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answered {
    SignIn,
    StepUp,
    AccountChosen,
}

/// The request's parameters, to carry through a form or a login: every
/// one except `max_age`, and of `prompt` only what the step taken does not
/// answer (`consent`, say, still to be asked after the account chooser).
fn carried(request: &ValidAuthorization, answered: Answered) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("response_type", "code".to_owned()),
        ("client_id", request.client.id.clone()),
        ("redirect_uri", request.redirect_uri.clone()),
        ("scope", request.scope.clone()),
        ("code_challenge", request.code_challenge.clone()),
        ("code_challenge_method", "S256".to_owned()),
    ];
    let mut prompts = Vec::new();
    if request.prompt_consent {
        prompts.push("consent");
    }
    if request.prompt_select_account && answered == Answered::StepUp {
        prompts.push("select_account");
    }
    let optional = [
        ("state", request.state.clone()),
        ("nonce", request.nonce.clone()),
        ("login_hint", request.login_hint.clone()),
        ("prompt", Some(prompts.join(" ")).filter(|p| !p.is_empty())),
    ];
    params.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    params
}

/// `/oauth/authorize?…` with the carried parameters: where to come back to.
fn authorize_path(request: &ValidAuthorization, answered: Answered) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(carried(request, answered))
        .finish();
    format!("/oauth/authorize?{query}")
}

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `uri` with `params` added to its query (it may have one already).
fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let extra: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{extra}")
}

/// The relying party's URL for an error (RFC 6749 §4.1.2.1), with
/// `state` and our `iss` (RFC 9207).
fn error_url(
    visitor: &Visitor,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> String {
    let issuer = visitor.state.token_policy.issuer.clone();
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", &issuer));
    with_params(redirect_uri, &params)
}

/// Back to the relying party with an error.
fn error_to_relying_party(
    visitor: &Visitor,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
    after_form: bool,
) -> actix_web::HttpResponse {
    let url = error_url(visitor, redirect_uri, state, error, description);
    visitor.to_relying_party(&url, after_form)
}

/// A refused request: the relying party's URL to send the error to when
/// its redirect URI is trusted, else a page for the user.
fn refused(visitor: &Visitor, error: AuthorizeError) -> Result<String, PageError> {
    match error {
        AuthorizeError::NoRedirect(code) => Err(visitor.failure(ApiError::new(
            StatusCode::BAD_REQUEST,
            match code {
                "unknown_client" => "oidc_unknown_client",
                _ => "oidc_invalid_redirect_uri",
            },
            "the sign-in request is not valid",
        ))),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => Ok(error_url(
            visitor,
            &redirect_uri,
            state.as_deref(),
            error,
            description,
        )),
    }
}

/// The request checked; a refusal is the page or redirect to answer.
async fn check(
    visitor: &Visitor,
    request: AuthorizationRequest,
) -> Result<ValidAuthorization, PageError> {
    let accounts = visitor.state.accounts.clone();
    let checked = run_blocking(move || accounts.check_authorization(&request))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    checked.map_err(|e| match refused(visitor, e) {
        Ok(location) => visitor.redirect_error(&location),
        Err(page) => page,
    })
}

/// The authorization endpoint (OpenID Connect Core §3.1.2): the browser
/// signs in on our pages if it must, then goes back to the relying party's
/// redirect URI with a code (or an error) and `state`.
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    tag = "oidc",
    params(
        ("response_type" = String, Query, description = "`code`"),
        ("client_id" = String, Query),
        ("redirect_uri" = String, Query, description = "Exactly as registered"),
        ("scope" = String, Query, description = "`openid`, and `profile`, `email`, `offline_access`; `organization`, `permissions` when granted"),
        ("state" = Option<String>, Query),
        ("nonce" = Option<String>, Query),
        ("code_challenge" = String, Query, description = "PKCE S256 challenge"),
        ("code_challenge_method" = String, Query, description = "`S256`"),
        ("prompt" = Option<String>, Query, description = "`none`, `login`, `consent`, `select_account`"),
        ("max_age" = Option<i64>, Query),
        ("login_hint" = Option<String>, Query),
    ),
    responses(
        (status = 303, description = "To the login, step-up or consent page, or to the redirect URI with `code` or `error`, `state` and `iss`"),
        (status = 200, description = "The consent page, or the account chooser for `prompt=select_account` (HTML)"),
        (status = 400, description = "Unknown client or unregistered redirect URI (HTML page; nothing is redirected)"),
    )
)]
pub async fn authorize(visitor: Visitor) -> PageResult {
    let query: AuthorizeQuery = visitor.query()?;
    let request = check(&visitor, query.into()).await?;
    let Some(user) = &visitor.user else {
        if request.prompt_none {
            return Ok(login_required(&visitor, &request));
        }
        let next = encoded(&authorize_path(&request, Answered::SignIn));
        return Ok(visitor.redirect(&format!("/login?next={next}")));
    };
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let accounts = visitor.state.accounts.clone();
    let decided = request.clone();
    let outcome = run_blocking(move || accounts.authorize(&decided, &user_id, &session_id))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    match outcome {
        Authorized::Code(code) => Ok(code_to_relying_party(
            &visitor,
            &request,
            code.expose_secret(),
            false,
        )),
        Authorized::Reauthenticate if request.prompt_none => Ok(login_required(&visitor, &request)),
        Authorized::Reauthenticate => {
            let next = encoded(&authorize_path(&request, Answered::StepUp));
            Ok(visitor.redirect(&format!("/step-up?next={next}")))
        }
        Authorized::ConsentRequired if request.prompt_none => Ok(error_to_relying_party(
            &visitor,
            &request.redirect_uri,
            request.state.as_deref(),
            "consent_required",
            "the user has not consented to this client",
            false,
        )),
        Authorized::ConsentRequired => consent_page(&visitor, &request),
        Authorized::SelectAccount => Ok(account_page(&visitor, user, &request)?),
    }
}

/// `prompt=select_account`: go on as the account signed in (the request
/// again, its `prompt` answered), or sign out here and sign in as another.
fn account_page(
    visitor: &Visitor,
    user: &super::visitor::WebUser,
    request: &ValidAuthorization,
) -> PageResult {
    let again = authorize_path(request, Answered::AccountChosen);
    let switch = format!(
        "/login?next={}",
        encoded(&authorize_path(request, Answered::SignIn))
    );
    visitor.page(
        "choose_account.html",
        context! {
            client => request.client.name.clone(),
            email => user.view.email.clone(),
            name => user.view.name.clone(),
            again => again,
            switch => switch,
        },
    )
}

fn login_required(visitor: &Visitor, request: &ValidAuthorization) -> actix_web::HttpResponse {
    error_to_relying_party(
        visitor,
        &request.redirect_uri,
        request.state.as_deref(),
        "login_required",
        "the user is not signed in",
        false,
    )
}

fn code_to_relying_party(
    visitor: &Visitor,
    request: &ValidAuthorization,
    code: &str,
    after_form: bool,
) -> actix_web::HttpResponse {
    let issuer = visitor.state.token_policy.issuer.clone();
    let mut params = vec![("code", code)];
    if let Some(state) = request.state.as_deref() {
        params.push(("state", state));
    }
    params.push(("iss", &issuer));
    visitor.to_relying_party(&with_params(&request.redirect_uri, &params), after_form)
}

fn consent_page(visitor: &Visitor, request: &ValidAuthorization) -> PageResult {
    let scopes: Vec<String> = request
        .scope
        .split_whitespace()
        .filter(|s| *s != "openid")
        .map(str::to_owned)
        .collect();
    // The consent form's answer is the consent itself: its handler reads
    // no prompt from it.
    let params: Vec<(String, String)> = carried(request, Answered::AccountChosen)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    visitor.page(
        "consent.html",
        context! { client => request.client.name.clone(), scopes => scopes, params => params },
    )
}

/// `POST /oauth/authorize/consent`: the user's answer on the consent page.
pub async fn consent(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let request = check(visitor, request_from_form(&form)).await?;
    if form.text("decision") != "allow" {
        return Ok(error_to_relying_party(
            visitor,
            &request.redirect_uri,
            request.state.as_deref(),
            "access_denied",
            "the user declined",
            true,
        ));
    }
    let user = signed_in.user();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let accounts = visitor.state.accounts.clone();
    let decided = request.clone();
    let code =
        run_blocking(move || accounts.authorize_with_consent(&decided, &user_id, &session_id))
            .await
            .and_then(|r| r.map_err(ApiError::from))
            .map_err(|e| visitor.failure(e))?;
    Ok(code_to_relying_party(
        visitor,
        &request,
        code.expose_secret(),
        true,
    ))
}

fn request_from_form(form: &Form) -> AuthorizationRequest {
    let field = |name: &str| Some(form.text(name)).filter(|v| !v.is_empty());
    AuthorizationRequest {
        response_type: field("response_type"),
        client_id: field("client_id"),
        redirect_uri: field("redirect_uri"),
        scope: field("scope"),
        state: field("state"),
        nonce: field("nonce"),
        code_challenge: field("code_challenge"),
        code_challenge_method: field("code_challenge_method"),
        prompt: None,
        max_age: field("max_age"),
        login_hint: field("login_hint"),
    }
}

#[derive(Deserialize, Default)]
pub struct LogoutQuery {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

impl LogoutQuery {
    fn request(&self) -> accounts::LogoutRequest {
        accounts::LogoutRequest {
            id_token_hint: self.id_token_hint.clone(),
            client_id: self.client_id.clone(),
            post_logout_redirect_uri: self.post_logout_redirect_uri.clone(),
        }
    }
}

/// The request checked, or the page that says why not.
async fn check_logout(
    visitor: &Visitor,
    query: &LogoutQuery,
) -> Result<accounts::CheckedLogout, PageError> {
    let accounts = visitor.state.accounts.clone();
    let request = query.request();
    let checked = run_blocking(move || accounts.check_logout(&request))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    checked.map_err(|refused| {
        visitor.failure(ApiError::new(
            StatusCode::BAD_REQUEST,
            match refused {
                LogoutRefused::InvalidHint => "oidc_invalid_logout",
                LogoutRefused::InvalidRedirectUri => "oidc_invalid_redirect_uri",
            },
            "the sign-out request is not valid",
        ))
    })
}

/// Where the browser goes after a logout (or a declined one).
fn after_logout(
    visitor: &Visitor,
    checked: &accounts::CheckedLogout,
    state: Option<&str>,
) -> String {
    // A state longer than a relying party may carry is not echoed.
    let state = state.filter(|s| s.len() <= accounts::MAX_STATE_BYTES);
    match (&checked.redirect_uri, state) {
        (Some(uri), Some(state)) => with_params(uri, &[("state", state)]),
        (Some(uri), None) => uri.clone(),
        (None, _) => visitor.pages.url("/login"),
    }
}

/// Ends the session and sends the browser on, clearing its cookie when it
/// was this browser's session.
async fn end_session(
    visitor: &Visitor,
    checked: &accounts::CheckedLogout,
    (user_id, session_id): (String, String),
    state: Option<&str>,
    after_form: bool,
) -> PageResult {
    let accounts = visitor.state.accounts.clone();
    let context = accounts::AuditContext::from(&client_info(&visitor.req));
    let client_id = checked.client_id.clone();
    let this_browser = visitor
        .user
        .as_ref()
        .is_some_and(|u| u.session_id == session_id);
    run_blocking(move || {
        accounts.end_relying_party_logout(&user_id, &session_id, client_id.as_deref(), &context)
    })
    .await
    .and_then(|r| r.map_err(ApiError::from))
    .map_err(|e| visitor.failure(e))?;
    let location = after_logout(visitor, checked, state);
    Ok(if this_browser {
        visitor.signed_out_to(&location)
    } else {
        visitor.to_relying_party(&location, after_form)
    })
}

/// RP-initiated logout. It only ever ends this browser's own session (and
/// every relying party's session from it): at once when the
/// `id_token_hint` names that session, after asking when it names another
/// one or there is none (a link must not sign anyone out behind their
/// back, and a hint — an ID token that travels in URLs and logs — must not
/// end somebody else's session). A browser that is not signed in has
/// nothing to end. The browser then goes to the registered
/// `post_logout_redirect_uri` (with `state`) or to the login page.
#[utoipa::path(
    get,
    path = "/oauth/logout",
    operation_id = "oidc_logout",
    tag = "oidc",
    params(
        ("id_token_hint" = Option<String>, Query, description = "An ID token we issued (it may have expired)"),
        ("client_id" = Option<String>, Query, description = "Without a hint: whose post-logout URI applies"),
        ("post_logout_redirect_uri" = Option<String>, Query, description = "Exactly as registered"),
        ("state" = Option<String>, Query),
    ),
    responses(
        (status = 303, description = "Signed out (or nothing to sign out): to the post-logout redirect URI (with `state`) or the login page"),
        (status = 200, description = "The page that asks the user to confirm (HTML)"),
        (status = 400, description = "A hint that is not ours, or an unregistered URI (HTML page; nothing ends)"),
    )
)]
pub async fn logout(visitor: Visitor) -> PageResult {
    let query: LogoutQuery = visitor.query()?;
    let checked = check_logout(&visitor, &query).await?;
    let Some(own) = own_session(&visitor) else {
        let location = after_logout(&visitor, &checked, query.state.as_deref());
        return Ok(visitor.to_relying_party(&location, false));
    };
    if checked
        .session
        .as_ref()
        .is_some_and(|hinted| hinted.1 == own.1)
    {
        return end_session(&visitor, &checked, own, query.state.as_deref(), false).await;
    }
    let fields: Vec<(&str, String)> = [
        ("id_token_hint", query.id_token_hint.clone()),
        ("client_id", query.client_id.clone()),
        (
            "post_logout_redirect_uri",
            query.post_logout_redirect_uri.clone(),
        ),
        ("state", query.state.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    visitor.page("logout_confirm.html", context! { params => fields })
}

/// This browser's user and session, if signed in.
fn own_session(visitor: &Visitor) -> Option<(String, String)> {
    visitor
        .user
        .as_ref()
        .map(|u| (u.view.id.clone(), u.session_id.clone()))
}

/// The user's answer on the logout confirmation page (a form of this
/// server's, with its CSRF token).
#[utoipa::path(
    post,
    path = "/oauth/logout",
    operation_id = "oidc_logout_confirm",
    tag = "oidc",
    responses(
        (status = 303, description = "Signed out (or not, when the user chose to stay): on to the post-logout redirect URI or the login page"),
        (status = 403, description = "Not this browser's form (CSRF)"),
    )
)]
pub async fn confirm_logout(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let field = |name: &str| Some(form.text(name)).filter(|v| !v.is_empty());
    let query = LogoutQuery {
        id_token_hint: field("id_token_hint"),
        client_id: field("client_id"),
        post_logout_redirect_uri: field("post_logout_redirect_uri"),
        state: field("state"),
    };
    let checked = check_logout(&visitor, &query).await?;
    if form.text("decision") != "logout" {
        return Ok(visitor.redirect("/"));
    }
    // This browser's own session, whatever the hint names.
    match own_session(&visitor) {
        Some(session) => {
            end_session(&visitor, &checked, session, query.state.as_deref(), true).await
        }
        None => {
            let location = after_logout(&visitor, &checked, query.state.as_deref());
            Ok(visitor.to_relying_party(&location, true))
        }
    }
}

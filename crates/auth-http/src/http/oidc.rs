//! OpenID Connect endpoints that speak JSON: discovery, the token endpoint
//! and UserInfo. The browser endpoints (authorization, consent, logout) are
//! pages (`web::oidc`). Every rule is `accounts::oidc`'s.

use accounts::{AccountsError, RelyingParty, RelyingPartyTokens};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::auth::no_store;
use super::error::ApiError;
use super::extract::client_info;
use super::oauth::{basic_credentials, invalid_client};
use super::openapi::bodies;
use crate::http::run_blocking;
use crate::state::AppState;

/// Where the OpenID Connect endpoints are, for relying parties.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "oidc",
    responses((status = 200, description = "OpenID Connect Discovery 1.0 provider metadata", body = Object))
)]
pub async fn discovery(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let issuer = state.token_policy.issuer.trim_end_matches('/');
    // The mount the native API is served under, from this very route.
    let path = req.path();
    let mount = path
        .strip_suffix("/.well-known/openid-configuration")
        .unwrap_or("");
    let at = |endpoint: &str| format!("{issuer}{mount}{endpoint}");
    let algorithms: Vec<&str> = accounts::ID_TOKEN_ALGORITHMS
        .iter()
        .map(|alg| alg.as_str())
        .collect();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({
            "issuer": state.token_policy.issuer,
            "authorization_endpoint": at("/oauth/authorize"),
            "token_endpoint": at("/oauth/token"),
            "userinfo_endpoint": at("/oauth/userinfo"),
            "jwks_uri": at("/.well-known/jwks.json"),
            "end_session_endpoint": at("/oauth/logout"),
            "revocation_endpoint": at("/oauth/revoke"),
            "introspection_endpoint": at("/oauth/introspect"),
            "scopes_supported": ["openid", "profile", "email", "offline_access", "organization", "permissions"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT],
            "device_authorization_endpoint": at("/oauth/device_authorization"),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                "at_hash", "sid", "email", "email_verified", "name", "preferred_username",
                "locale", "updated_at", "organization", "roles", "permissions"
            ],
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
        }))
}

/// `grant_type` of a device's poll (RFC 8628 §3.4).
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A device authorization request (RFC 8628 §3.1).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeviceRequest {
    /// Public clients, and `client_secret_post`.
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Must include `openid`; default `openid`.
    scope: Option<String>,
}

/// Starts the device authorization grant: a device code to poll with and
/// a user code for the user to type at `verification_uri`.
#[utoipa::path(
    post,
    path = "/oauth/device_authorization",
    tag = "oidc",
    request_body(content = DeviceRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`device_code`, `user_code`, `verification_uri`, `verification_uri_complete`, `expires_in`, `interval` (RFC 8628 §3.2)", body = Object),
        (status = 400, description = "`invalid_scope`, `invalid_request` (RFC 6749 error body)", body = bodies::OAuthError),
        (status = 401, description = "`invalid_client` (RFC 6749 error body)", body = bodies::OAuthError),
    )
)]
pub async fn device_authorization(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<DeviceRequest>,
) -> HttpResponse {
    let form = form.into_inner();
    let client = match token_client(&state, &req, &form.client_id, &form.client_secret).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let accounts = state.accounts.clone();
    let scope = form.scope;
    let started =
        run_blocking(move || accounts.start_device_authorization(&client, scope.as_deref())).await;
    let device = match started {
        Ok(Ok(device)) => device,
        Ok(Err(AccountsError::InvalidScope)) => {
            return oauth_error(
                "invalid_scope",
                "scope must include openid, and only scopes this client may ask for",
            );
        }
        Ok(Err(e)) => return actix_web::ResponseError::error_response(&ApiError::from(e)),
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let issuer = state.token_policy.issuer.trim_end_matches('/');
    let mount = req
        .path()
        .strip_suffix("/oauth/device_authorization")
        .unwrap_or("");
    let verification_uri = format!("{issuer}{mount}/device");
    let complete = format!("{verification_uri}?user_code={}", device.user_code);
    no_store(&mut HttpResponse::Ok()).json(json!({
        "device_code": device.device_code.expose_secret(),
        "user_code": device.user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": complete,
        "expires_in": device.expires_in,
        "interval": device.interval,
    }))
}

/// A token request (RFC 6749 §4.1.3, §6).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token`, `client_credentials` or the
    /// device code grant.
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    /// The PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    /// The device authorization grant (RFC 8628 §3.4).
    device_code: Option<String>,
    /// Public clients, and `client_secret_post`.
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Client credentials: the permission scopes wanted (default: all
    /// granted). On refresh: none beyond the grant (`invalid_scope`); the
    /// scope granted stays.
    scope: Option<String>,
}

/// An RFC 6749 §5.2 error answer.
fn oauth_error(error: &str, description: &str) -> HttpResponse {
    no_store(&mut HttpResponse::BadRequest()).json(json!({
        "error": error,
        "error_description": description,
    }))
}

/// The client making the request: Basic, or `client_id` (+ secret) in the
/// form, never both.
async fn token_client(
    state: &AppState,
    req: &HttpRequest,
    form_id: &Option<String>,
    form_secret: &Option<String>,
) -> Result<RelyingParty, HttpResponse> {
    let basic = basic_credentials(req);
    let (id, secret) = match (basic, form_id, form_secret) {
        (Some(_), _, Some(_)) => {
            return Err(oauth_error(
                "invalid_request",
                "authenticate with Basic or with client_secret, not both",
            ));
        }
        (Some((id, secret)), form_id, None) => {
            if form_id.as_ref().is_some_and(|f| *f != id) {
                return Err(invalid_client());
            }
            (id, Some(secret))
        }
        (None, Some(id), secret) => (id.clone(), secret.clone()),
        (None, None, _) => return Err(invalid_client()),
    };
    let accounts = state.accounts.clone();
    match run_blocking(move || accounts.authenticate_relying_party(&id, secret.as_deref())).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(AccountsError::InvalidClient)) => Err(invalid_client()),
        Ok(Err(e)) => Err(actix_web::ResponseError::error_response(&ApiError::from(e))),
        Err(e) => Err(actix_web::ResponseError::error_response(&e)),
    }
}

/// The token endpoint: a code for tokens (with PKCE), a refresh, or a
/// confidential client's own token (client credentials).
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oidc",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`access_token`, `token_type`, `expires_in`, `refresh_token` (when the scope has `offline_access`), `id_token` (code exchange, device grant), `scope`", body = Object),
        (status = 400, description = "`invalid_grant`, `invalid_request`, `invalid_scope`, `unauthorized_client`, `unsupported_grant_type` (RFC 6749 error body)", body = bodies::OAuthError),
        (status = 401, description = "`invalid_client` (RFC 6749 error body)", body = bodies::OAuthError),
    )
)]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenRequest>,
) -> HttpResponse {
    let form = form.into_inner();
    let client = match token_client(&state, &req, &form.client_id, &form.client_secret).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let info = client_info(&req);
    let answer = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri), Some(verifier)) =
                (form.code, form.redirect_uri, form.code_verifier)
            else {
                return oauth_error(
                    "invalid_request",
                    "code, redirect_uri and code_verifier are required",
                );
            };
            let accounts = state.accounts.clone();
            let exchanged = run_blocking(move || {
                accounts.exchange_code(&client, &code, &redirect_uri, &verifier, &info)
            })
            .await;
            match exchanged {
                Ok(answer) => answer,
                Err(e) => return actix_web::ResponseError::error_response(&e),
            }
        }
        Some("refresh_token") => {
            let Some(refresh) = form.refresh_token.filter(|t| t.len() <= 256) else {
                return oauth_error("invalid_request", "refresh_token is required");
            };
            state
                .accounts
                .relying_party_refresh(
                    &client,
                    &SecretString::from(refresh),
                    form.scope.as_deref(),
                    &info,
                )
                .await
        }
        Some(DEVICE_CODE_GRANT) => {
            let Some(device_code) = form.device_code.filter(|c| c.len() <= 256) else {
                return oauth_error("invalid_request", "device_code is required");
            };
            let accounts = state.accounts.clone();
            match run_blocking(move || accounts.device_token(&client, &device_code, &info)).await {
                Ok(answer) => answer,
                Err(e) => return actix_web::ResponseError::error_response(&e),
            }
        }
        Some("client_credentials") => {
            let accounts = state.accounts.clone();
            let scope = form.scope;
            match run_blocking(move || accounts.client_credentials(&client, scope.as_deref())).await
            {
                Ok(answer) => answer,
                Err(e) => return actix_web::ResponseError::error_response(&e),
            }
        }
        Some(_) => {
            return oauth_error(
                "unsupported_grant_type",
                "grant_type is authorization_code, refresh_token or client_credentials",
            );
        }
        None => return oauth_error("invalid_request", "grant_type is required"),
    };
    match answer {
        Ok(tokens) => tokens_response(tokens),
        Err(
            e @ (AccountsError::AuthorizationPending
            | AccountsError::SlowDown
            | AccountsError::ExpiredToken
            | AccountsError::AccessDenied),
        ) => {
            let problem = ApiError::from(e);
            oauth_error(problem.code, &problem.detail)
        }
        Err(AccountsError::UnauthorizedClient) => oauth_error(
            "unauthorized_client",
            "a public client can't use the client credentials grant",
        ),
        Err(AccountsError::InvalidScope) => oauth_error(
            "invalid_scope",
            "a scope asked for was not granted to this client",
        ),
        Err(AccountsError::InvalidGrant) => oauth_error(
            "invalid_grant",
            "the code or refresh token is invalid, expired, used, or not this client's",
        ),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::from(e)),
    }
}

fn tokens_response(tokens: RelyingPartyTokens) -> HttpResponse {
    let mut body = json!({
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "scope": tokens.scope,
    });
    if let Some(refresh) = &tokens.refresh_token {
        body["refresh_token"] = json!(refresh.expose_secret());
    }
    if let Some(id_token) = tokens.id_token {
        body["id_token"] = json!(id_token);
    }
    no_store(&mut HttpResponse::Ok()).json(body)
}

/// The access token of a UserInfo request: Bearer header, or (POST) the
/// `access_token` form field (RFC 6750 §2.2).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserInfoForm {
    access_token: Option<String>,
}

/// OpenID Connect UserInfo: the signed-in user's claims, by the scopes
/// granted to the relying party whose access token this is.
#[utoipa::path(
    get,
    path = "/oauth/userinfo",
    tag = "oidc",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`sub` and the claims of the granted scopes", body = Object),
        (status = 401, description = "`invalid_token` in `WWW-Authenticate`"),
    )
)]
pub async fn userinfo(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    answer_userinfo(&state, bearer_header(&req)).await
}

/// [`userinfo`] by POST.
#[utoipa::path(
    post,
    path = "/oauth/userinfo",
    tag = "oidc",
    security(("bearer" = [])),
    request_body(content = UserInfoForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`sub` and the claims of the granted scopes", body = Object),
        (status = 401, description = "`invalid_token` in `WWW-Authenticate`"),
    )
)]
pub async fn userinfo_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form_token = serde_urlencoded::from_bytes::<UserInfoForm>(&body)
        .ok()
        .and_then(|f| f.access_token);
    answer_userinfo(&state, bearer_header(&req).or(form_token)).await
}

/// The token of `Authorization: Bearer`, if there is one.
fn bearer_header(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth_core::bearer_token)
        .map(str::to_owned)
}

async fn answer_userinfo(state: &AppState, token: Option<String>) -> HttpResponse {
    let unauthorized = |error: &str| {
        HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!("Bearer realm=\"auth-server\", error=\"{error}\""),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    };
    let Some(token) = token.filter(|t| t.len() <= auth_core::MAX_TOKEN_LEN) else {
        return unauthorized("invalid_request");
    };
    let accounts = state.accounts.clone();
    match run_blocking(move || accounts.userinfo(&token)).await {
        Ok(Ok(claims)) => no_store(&mut HttpResponse::Ok()).json(claims),
        Ok(Err(AccountsError::Token(_) | AccountsError::TokenRevoked)) => {
            unauthorized("invalid_token")
        }
        // The database, not the token: its own answer (503 …), never a 401.
        Ok(Err(e)) => actix_web::ResponseError::error_response(&ApiError::from(e)),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

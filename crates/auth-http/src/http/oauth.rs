//! RFC 7662 token introspection and RFC 7009 revocation for registered
//! clients (other services), authenticated with HTTP Basic.
//!
//! Introspection answers `{"active": false}` for anything unknown, expired,
//! revoked or malformed, without saying which. Revocation answers 200 for
//! any token, valid or not (RFC 7009 §2.2), so it can't be used to probe.
//! Registered clients are the operator's own services: revoking an access or
//! refresh token ends its session, revoking an API token revokes that token.
//! Every kind of token we issue is known to `Accounts::introspect` (client
//! tokens of the buzzbook profile included); this module only speaks HTTP.

use accounts::{AuthenticatedClient, TokenInfo};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::no_store;
use super::error::ApiError;
use super::openapi::bodies;
use crate::http::run_blocking;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// Any token we issue: access, refresh, API or client token.
    token: String,
    /// Only a hint (RFC 7662 §2.1); every kind is tried.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

pub(super) fn invalid_client() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"auth-server\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        )
}

/// `client_id:client_secret` from `Authorization: Basic`, if well formed.
pub(super) fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, value)| scheme.eq_ignore_ascii_case("basic") && value.len() <= 512)
        .and_then(|(_, value)| {
            base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        })
}

/// The client behind `Authorization: Basic`, or the 401 to send.
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
) -> Result<AuthenticatedClient, HttpResponse> {
    let Some((id, secret)) = basic_credentials(req) else {
        return Err(invalid_client());
    };
    let accounts = state.accounts.clone();
    match run_blocking(move || accounts.authenticate_client(&id, &secret)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(accounts::AccountsError::InvalidClient)) => Err(invalid_client()),
        Ok(Err(e)) => Err(actix_web::ResponseError::error_response(&ApiError::from(e))),
        Err(e) => Err(actix_web::ResponseError::error_response(&e)),
    }
}

/// RFC 7662 token introspection for registered clients.
///
/// Anything unknown, expired, revoked or malformed is `{"active": false}`.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    security(("client_basic" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "What the token is, if it is live", body = bodies::Introspection),
        (status = 401, description = "`invalid_client` (RFC 6749 error body)", body = bodies::OAuthError),
    )
)]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let client = match authenticate(&state, &req).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let accounts = state.accounts.clone();
    let token = form.token.clone();
    let caller = client.id.clone();
    let answer: Value = match run_blocking(move || accounts.introspect_as(&caller, &token)).await {
        Ok(Ok(info)) => introspection(info),
        Ok(Err(e)) => return actix_web::ResponseError::error_response(&ApiError::from(e)),
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    tracing::debug!(client_id = %client.id, active = %answer["active"], "introspection");
    no_store(&mut HttpResponse::Ok()).json(answer)
}

/// RFC 7009 token revocation for registered clients: an access or refresh
/// token ends its session, an API token is revoked.
///
/// Any token, valid or not, is answered 200, so it can't be used to probe.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    security(("client_basic" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 401, description = "`invalid_client` (RFC 6749 error body)", body = bodies::OAuthError),
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let client = match authenticate(&state, &req).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let context = super::extract::audit_context(&req, Some(&format!("client:{}", client.id)));
    let accounts = state.accounts.clone();
    let token = form.token.clone();
    let caller = client.id.clone();
    match run_blocking(move || accounts.revoke_token_as(&caller, &token, &context)).await {
        Ok(Ok(_)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Ok(Err(e)) => actix_web::ResponseError::error_response(&ApiError::from(e)),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

/// The RFC 7662 answer for what a token stands for.
fn introspection(info: Option<TokenInfo>) -> Value {
    match info {
        Some(TokenInfo::Access(c)) => json!({
            "active": true, "token_type": "access_token",
            "scope": c.scope.clone().unwrap_or_else(|| c.perms.join(" ")), "client_id": c.client_id, "sub": c.sub,
            "username": c.preferred_username, "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "iss": c.iss, "aud": c.aud,
            "jti": c.jti, "sid": c.sid, "org": c.org, "roles": c.roles,
            "amr": c.amr, "auth_time": c.auth_time,
        }),
        Some(TokenInfo::Api(c)) => json!({
            "active": true, "token_type": "api_token", "scope": c.perms.join(" "), "sub": c.sub,
            "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "iss": c.iss, "aud": c.aud, "jti": c.jti, "org": c.org,
        }),
        Some(TokenInfo::Refresh(l)) => json!({
            "active": true, "token_type": "refresh_token", "sub": l.user_id, "sid": l.session_id,
            "iat": l.issued_at, "exp": l.expires_at,
        }),
        Some(TokenInfo::ClientAccess(c)) => json!({
            "active": true, "token_type": "client_access_token", "sub": c.user_id, "sid": c.sid,
            "username": c.login_id, "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "iss": c.iss, "aud": c.aud,
            "jti": c.jti,
        }),
        Some(TokenInfo::ClientRefresh { claims: c, live }) => json!({
            "active": true, "token_type": "client_refresh_token", "sub": c.user_id, "sid": c.sid,
            "username": c.login_id, "exp": live.expires_at, "iat": c.iat, "iss": c.iss, "aud": c.aud,
            "jti": c.jti,
        }),
        None => json!({"active": false}),
    }
}

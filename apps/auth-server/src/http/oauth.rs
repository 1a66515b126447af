//! RFC 7662 token introspection and RFC 7009 revocation for registered
//! clients (other services), authenticated with HTTP Basic.
//!
//! Introspection answers `{"active": false}` for anything unknown, expired,
//! revoked or malformed, without saying which. Revocation answers 200 for
//! any token, valid or not (RFC 7009 §2.2), so it can't be used to probe.
//! Registered clients are the operator's own services: revoking an access or
//! refresh token ends its session, revoking an API token revokes that token.

use accounts::{AuditContext, AuthenticatedClient};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::Bearer;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::no_store;
use super::error::ApiError;
use super::openapi::bodies;
use crate::blocking::run_blocking;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// An access, refresh or API token.
    token: String,
    /// Only a hint (RFC 7662 §2.1); every kind is tried.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

fn invalid_client() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"auth-server\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        )
}

/// The client behind `Authorization: Basic`, or the 401 to send.
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
) -> Result<AuthenticatedClient, HttpResponse> {
    let credentials = req
        .headers()
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
        });
    let Some((id, secret)) = credentials else {
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

/// What a presented token is, if it is live.
enum Live {
    Access(auth_core::AccessClaims),
    Api(auth_core::ApiTokenClaims),
    Refresh(accounts::LiveRefreshToken),
}

async fn classify(state: &AppState, token: &str) -> Result<Option<Live>, ApiError> {
    let now = chrono::Utc::now().timestamp();
    if token.len() > auth_core::MAX_TOKEN_LEN {
        return Ok(None);
    }
    // Opaque refresh tokens have no dots; our JWTs do.
    if token.contains('.') {
        let verified = state
            .token_policy
            .verify_bearer(&state.accounts.keys(), token, now);
        return Ok(match verified {
            Ok(Bearer::ApiToken(c)) if !state.revocations.is_revoked("", &c.jti) => {
                Some(Live::Api(c))
            }
            Ok(Bearer::Access(c)) if !state.revocations.is_revoked(&c.sid, &c.jti) => {
                Some(Live::Access(c))
            }
            _ => None,
        });
    }
    let accounts = state.accounts.clone();
    let presented = token.to_owned();
    let live = run_blocking(move || accounts.live_refresh_token(&presented)).await??;
    Ok(live.map(Live::Refresh))
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
    let answer: Value = match classify(&state, form.token.trim()).await {
        Ok(Some(Live::Access(c))) => json!({
            "active": true, "token_type": "access_token", "scope": c.perms.join(" "), "sub": c.sub,
            "username": c.preferred_username, "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "iss": c.iss, "aud": c.aud,
            "jti": c.jti, "sid": c.sid, "org": c.org, "roles": c.roles,
        }),
        Ok(Some(Live::Api(c))) => json!({
            "active": true, "token_type": "api_token", "scope": c.perms.join(" "), "sub": c.sub,
            "exp": c.exp, "iat": c.iat, "nbf": c.nbf, "iss": c.iss, "aud": c.aud, "jti": c.jti, "org": c.org,
        }),
        Ok(Some(Live::Refresh(l))) => json!({
            "active": true, "token_type": "refresh_token", "sub": l.user_id, "sid": l.session_id,
            "iat": l.issued_at, "exp": l.expires_at,
        }),
        Ok(None) => json!({"active": false}),
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
    let outcome = match classify(&state, form.token.trim()).await {
        Ok(Some(Live::Api(c))) => {
            let revoked =
                run_blocking(move || accounts.revoke_api_token(&c.sub, &c.jti, &context)).await;
            if let Ok(Ok(r)) = &revoked {
                state.revocations.revoke_token(r.jti.clone(), r.until);
            }
            revoked.map(|r| r.map(|_| ()))
        }
        Ok(Some(Live::Access(c))) => end_session(&state, accounts, c.sub, c.sid, context).await,
        Ok(Some(Live::Refresh(l))) => {
            end_session(&state, accounts, l.user_id, l.session_id, context).await
        }
        Ok(None) => Ok(Ok(())),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(Ok(())) | Ok(Err(accounts::AccountsError::ApiTokenNotFound)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Ok(Err(e)) => actix_web::ResponseError::error_response(&ApiError::from(e)),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

async fn end_session(
    state: &AppState,
    accounts: std::sync::Arc<accounts::Accounts>,
    user_id: String,
    session_id: String,
    context: AuditContext,
) -> Result<Result<(), accounts::AccountsError>, ApiError> {
    let sid = session_id.clone();
    let revoked = run_blocking(move || accounts.logout(&user_id, &sid, &context)).await?;
    Ok(revoked.map(|r| {
        if let Some(r) = r {
            state.revocations.revoke_session(r.session_id, r.until);
        }
    }))
}

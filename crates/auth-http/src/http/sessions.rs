//! A user's own login sessions ("signed in on these devices"), and the
//! read-only look at an activation link that the activation page shows.

use accounts::{ActivationPreview, SessionView};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::auth::no_store;
use super::error::{ApiError, Problem};
use super::extract::{Bearer, JsonOrForm, audit_context};
use super::paging::time;
use crate::http::run_blocking;
use crate::state::AppState;

/// A live login session.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub(crate) struct SessionJson {
    id: String,
    /// The session that made this request.
    current: bool,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    /// The application (OpenID Connect relying party) holding the session,
    /// by name; absent for sessions of this server's own pages and API.
    #[serde(skip_serializing_if = "Option::is_none")]
    application: Option<String>,
}

impl SessionJson {
    fn new(s: SessionView, current_sid: &str) -> Self {
        Self {
            current: s.id == current_sid,
            id: s.id,
            created_at: time(s.created_at),
            last_used_at: time(s.last_used_at),
            expires_at: time(s.expires_at),
            user_agent: s.user_agent,
            ip: s.ip,
            application: s.application,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionList {
    items: Vec<SessionJson>,
}

/// The caller's live sessions, most recently used first.
#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_sessions(
    state: web::Data<AppState>,
    Bearer(claims): Bearer,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let user_id = claims.sub.clone();
    let sessions = run_blocking(move || accounts.sessions_of(&user_id)).await??;
    let items = sessions
        .into_iter()
        .map(|s| SessionJson::new(s, &claims.sid))
        .collect();
    Ok(no_store(&mut HttpResponse::Ok()).json(SessionList { items }))
}

/// End one of the caller's sessions (sign that device out).
#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "auth",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "The session is revoked"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no live session of yours has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn end_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    Bearer(claims): Bearer,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    end_own_session(&state, &req, &claims.sub, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends a session of `user_id`. Shared with the dashboard page.
pub(crate) async fn end_own_session(
    state: &AppState,
    req: &HttpRequest,
    user_id: &str,
    session_id: String,
) -> Result<(), ApiError> {
    let accounts = state.accounts.clone();
    let context = audit_context(req, Some(user_id));
    let owner = user_id.to_owned();
    run_blocking(move || accounts.end_session(&owner, &session_id, &context)).await??;
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PreviewBody {
    /// From the activation link.
    #[schema(value_type = String)]
    token: SecretString,
}

/// Whose account an activation link opens.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ActivationPreviewJson {
    email: String,
    name: Option<String>,
    organization: Option<String>,
}

impl From<ActivationPreview> for ActivationPreviewJson {
    fn from(p: ActivationPreview) -> Self {
        Self {
            email: p.email,
            name: p.name,
            organization: p.organization,
        }
    }
}

/// Look at an activation link without spending it (what the activation page shows).
#[utoipa::path(
    post,
    path = "/api/v1/auth/activation/preview",
    tag = "accounts",
    request_body(content(
        (PreviewBody = "application/json"),
        (PreviewBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The account the link activates", body = ActivationPreviewJson),
        (status = 400, description = "`invalid_activation_token`: unknown, used or expired", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn preview_activation(
    state: web::Data<AppState>,
    JsonOrForm(body): JsonOrForm<PreviewBody>,
) -> Result<HttpResponse, ApiError> {
    let preview = activation_preview(&state, body.token).await?;
    Ok(no_store(&mut HttpResponse::Ok()).json(ActivationPreviewJson::from(preview)))
}

/// Shared with the activation page.
pub(crate) async fn activation_preview(
    state: &AppState,
    token: SecretString,
) -> Result<ActivationPreview, ApiError> {
    super::registrations::activation_token_shape(&token)?;
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.activation_preview(token.expose_secret()))
        .await??
        .ok_or_else(|| accounts::AccountsError::InvalidActivationToken.into())
}

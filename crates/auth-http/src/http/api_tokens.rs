//! Seed 000: personal API tokens (create, list, revoke).

use accounts::ApiTokenView;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::no_store;
use super::error::{ApiError, Problem};
use super::extract::{Bearer, JsonOrForm, audit_context};
use super::openapi::bodies;
use super::paging::time;
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

// ---- personal API tokens ----

/// A personal API token, without its secret.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiToken)]
pub(crate) struct ApiTokenJson {
    id: String,
    name: String,
    permissions: Vec<String>,
    created_at: String,
    expires_at: String,
    last_used_at: Option<String>,
}

impl From<ApiTokenView> for ApiTokenJson {
    fn from(t: ApiTokenView) -> Self {
        Self {
            id: t.id,
            name: t.name,
            permissions: t.permissions,
            created_at: time(t.created_at),
            expires_at: time(t.expires_at),
            last_used_at: t.last_used_at.map(time),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateTokenBody {
    #[schema(schema_with = schema::token_name)]
    name: String,
    /// A subset of the caller's own permissions.
    #[schema(schema_with = schema::permissions)]
    permissions: Vec<String>,
    /// Up to the deployment's maximum (its default when absent).
    #[serde(default, deserialize_with = "super::extract::optional_integer")]
    #[schema(schema_with = schema::api_token_days)]
    expires_in_days: Option<i64>,
}

/// Create a personal API token; its secret is shown only in this answer.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    // JSON only: a form can't carry a list.
    request_body(content((CreateTokenBody = "application/json"))),
    responses(
        (status = 201, description = "The token, with its secret", body = bodies::CreatedToken),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session; `step_up_required`: authenticate again first (POST /api/v1/auth/step-up)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`permission_not_held`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    Bearer(claims): Bearer,
    JsonOrForm(body): JsonOrForm<CreateTokenBody>,
) -> Result<HttpResponse, ApiError> {
    let context = audit_context(&req, Some(&claims.sub));
    let accounts = state.accounts.clone();
    let created = run_blocking(move || {
        accounts.create_api_token(
            &claims.sub,
            &claims.sid,
            &body.name,
            &body.permissions,
            body.expires_in_days,
            &context,
        )
    })
    .await??;
    let view = ApiTokenJson::from(created.view);
    Ok(no_store(&mut HttpResponse::Created()).json(json!({
        "id": view.id,
        "name": view.name,
        "token": created.token.expose_secret(),
        "permissions": view.permissions,
        "created_at": view.created_at,
        "expires_at": view.expires_at,
    })))
}

/// The caller's personal API tokens, without secrets.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens", body = bodies::TokenList),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_tokens(
    state: web::Data<AppState>,
    Bearer(claims): Bearer,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let tokens = run_blocking(move || accounts.list_api_tokens(&claims.sub)).await??;
    let items: Vec<ApiTokenJson> = tokens.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// Revoke one of the caller's personal API tokens.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The API token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    Bearer(claims): Bearer,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revoke_own_token(&state, &req, claims.sub, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes one of the user's API tokens (shared with the dashboard).
pub(crate) async fn revoke_own_token(
    state: &AppState,
    req: &HttpRequest,
    owner: String,
    id: String,
) -> Result<(), ApiError> {
    let context = audit_context(req, Some(&owner));
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.revoke_api_token(&owner, &id, &context)).await??;
    Ok(())
}

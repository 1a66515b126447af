//! Operators and managers: the public revocation feed, user administration
//! and the audit log.

use accounts::{UserUpdate, UserView};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, Problem};
use super::extract::{AdminActor, JsonOrForm, ManagerActor};
use super::openapi::bodies;
use super::paging::{PAGE, next_cursor, offset, time};
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

// ---- revocation feed ----

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevocationsQuery {
    /// `next_cursor` of the previous answer; from the start when absent.
    #[param(schema_with = schema::cursor)]
    since: Option<String>,
}

/// Public, like the JWKS: revoked API tokens (`jti`) and sessions (`sid`)
/// whose tokens have not expired yet, oldest first, for offline verifiers.
#[utoipa::path(
    get,
    path = "/api/v1/revocations",
    tag = "keys",
    params(RevocationsQuery),
    responses(
        (status = 200, description = "Up to 1000 revocations", body = bodies::RevocationFeed),
        (status = 400, description = "`invalid_cursor`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revocations(
    state: web::Data<AppState>,
    query: web::Query<RevocationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let cursor = offset(query.since.as_deref())?;
    let accounts = state.accounts.clone();
    let rows = run_blocking(move || accounts.revocation_feed(cursor, 1000)).await??;
    let next = rows.last().map_or(cursor, |r| r.cursor).to_string();
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| json!({"kind": r.kind, "id": r.id, "exp": r.exp}))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=5"))
        .json(json!({"items": items, "next_cursor": next})))
}

// ---- users ----

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub(crate) struct UserJson {
    id: String,
    email: String,
    username: Option<String>,
    name: Option<String>,
    status: String,
    organization_id: Option<String>,
    roles: Vec<String>,
    permissions: Vec<String>,
    permission_version: i64,
    must_change_password: bool,
    created_at: String,
}

impl From<UserView> for UserJson {
    fn from(u: UserView) -> Self {
        Self {
            id: u.id,
            email: u.email,
            username: u.username,
            name: u.name,
            status: u.status,
            organization_id: u.organization_id,
            roles: u.roles,
            permissions: u.permissions,
            permission_version: u.permission_version,
            must_change_password: u.must_change_password,
            created_at: time(u.created_at),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Part of an email address, username or name.
    #[param(schema_with = schema::search)]
    q: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = schema::cursor)]
    cursor: Option<String>,
}

/// Search users: every user for an operator, the own organization's for an organization admin.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    security(("bearer" = [])),
    params(UsersQuery),
    responses(
        (status = 200, description = "A page of users", body = bodies::UserPage),
        (status = 400, description = "`invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither an operator nor an organization admin with a login session", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `q` is too long", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(
    state: web::Data<AppState>,
    ManagerActor(actor): ManagerActor,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let start = offset(query.cursor.as_deref())?;
    let q = query.q.clone();
    if q.as_ref()
        .is_some_and(|q| q.chars().count() > schema::QUERY_MAX_CHARS)
    {
        return Err(ApiError::validation("q", "is too long"));
    }
    let accounts = state.accounts.clone();
    let users =
        run_blocking(move || accounts.search_users(&actor, q.as_deref(), start, PAGE)).await??;
    let next = next_cursor(start, users.len(), PAGE);
    let items: Vec<UserJson> = users.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next})))
}

/// One user.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = UserJson),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither an operator nor an organization admin with a login session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also for a user of another organization)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn show_user(
    state: web::Data<AppState>,
    ManagerActor(actor): ManagerActor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let accounts = state.accounts.clone();
    let user = run_blocking(move || accounts.user_view(&id))
        .await??
        .ok_or(accounts::AccountsError::UserNotFound)?;
    if !actor.may_see(user.organization_id.as_deref()) {
        return Err(accounts::AccountsError::UserNotFound.into());
    }
    Ok(HttpResponse::Ok().json(UserJson::from(user)))
}

/// Any of the fields; absent ones are left as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    #[schema(schema_with = schema::optional_roles)]
    roles: Option<Vec<String>>,
    #[schema(schema_with = schema::optional_permissions)]
    permissions: Option<Vec<String>>,
    disabled: Option<bool>,
    must_change_password: Option<bool>,
}

/// Change roles, permissions or status; sessions and tokens that lose rights are revoked.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    // JSON only: a form can't carry a list.
    request_body(content((PatchUserBody = "application/json"))),
    responses(
        (status = 200, description = "The user after the change", body = UserJson),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither an operator nor an organization admin with a login session; `step_up_required` for a change of roles or permissions without a recent authentication", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_admin`: the change would disable or demote the last active admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `permission_not_held`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_user(
    state: web::Data<AppState>,
    ManagerActor(actor): ManagerActor,
    path: web::Path<String>,
    JsonOrForm(body): JsonOrForm<PatchUserBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let update = UserUpdate {
        roles: body.roles,
        permissions: body.permissions,
        disabled: body.disabled,
        must_change_password: body.must_change_password,
    };
    let accounts = state.accounts.clone();
    let (user, _) = run_blocking(move || accounts.update_user(&actor, &id, update)).await??;
    Ok(HttpResponse::Ok().json(UserJson::from(user)))
}

// ---- audit ----

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this event name.
    event: Option<String>,
    /// Only events by this actor.
    actor: Option<String>,
    /// Only events about this subject.
    subject: Option<String>,
    organization_id: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = schema::cursor)]
    before: Option<String>,
}

/// Audit events, newest first, 50 a page.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events", body = bodies::AuditPage),
        (status = 400, description = "`invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an operator (`admin` role) with a login session", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn audit(
    state: web::Data<AppState>,
    AdminActor(_): AdminActor,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let before = match query.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(offset(Some(b))?),
    };
    let filter = accounts::AuditQuery {
        event: query.event.clone(),
        actor: query.actor.clone(),
        subject: query.subject.clone(),
        organization_id: query.organization_id.clone(),
    };
    let (rows, next) = audit_page(&state, filter, before).await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "at": time(r.at), "event": r.event, "actor": r.actor, "subject": r.subject,
                "organization_id": r.organization_id, "ip": r.ip, "user_agent": r.user_agent,
                "details": r.details,
                "hash": r.hash,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next})))
}

/// A page of the audit log, newest first, and the cursor of the next one
/// (shared with the audit page).
pub(crate) async fn audit_page(
    state: &AppState,
    filter: accounts::AuditQuery,
    before: Option<i64>,
) -> Result<(Vec<accounts::AuditEntry>, Option<String>), ApiError> {
    let accounts = state.accounts.clone();
    let rows = run_blocking(move || accounts.audit_log(&filter, before, PAGE)).await??;
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok((rows, next))
}

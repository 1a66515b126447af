//! Seed 000: company registration, operator review, activation, personal
//! API tokens, the public revocation feed, and user administration.

use accounts::{ApiTokenView, RegistrationForm, RegistrationView, UserUpdate, UserView};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDateTime, SecondsFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{no_store, token_response};
use super::error::{ApiError, FieldErrors, Problem};
use super::extract::{AdminActor, Bearer, JsonOrForm, ManagerActor, audit_context, client_info};
use super::flows::request_locale;
use super::openapi::bodies;
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

pub(crate) fn time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Offset cursors: opaque to clients, a plain number to us.
fn offset(cursor: Option<&str>) -> Result<i64, ApiError> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "the cursor is not one we issued",
            )
        }),
    }
}

pub(crate) fn next_cursor(offset: i64, returned: usize, limit: i64) -> Option<String> {
    (returned as i64 == limit).then(|| (offset + limit).to_string())
}

/// Items per page of every admin list (API and pages).
pub(crate) const PAGE: i64 = 50;

// ---- registrations ----

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegistrationBody {
    #[schema(schema_with = schema::company_name)]
    company_name: String,
    #[schema(schema_with = schema::display_name)]
    contact_name: String,
    #[schema(schema_with = schema::email)]
    contact_email: String,
    #[schema(schema_with = schema::phone)]
    contact_phone: String,
    #[schema(schema_with = schema::locale)]
    locale: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Registration)]
pub(crate) struct RegistrationJson {
    id: String,
    company_name: String,
    contact_name: String,
    contact_email: String,
    contact_phone: String,
    /// `pending_review`, `approved` or `rejected`.
    status: String,
    created_at: String,
    decided_at: Option<String>,
    decided_by: Option<String>,
    decision_note: Option<String>,
    organization_id: Option<String>,
    user_id: Option<String>,
}

impl From<RegistrationView> for RegistrationJson {
    fn from(r: RegistrationView) -> Self {
        Self {
            id: r.id,
            company_name: r.company_name,
            contact_name: r.contact_name,
            contact_email: r.contact_email,
            contact_phone: r.contact_phone,
            status: r.status,
            created_at: time(r.created_at),
            decided_at: r.decided_at.map(time),
            decided_by: r.decided_by,
            decision_note: r.decision_note,
            organization_id: r.organization_id,
            user_id: r.user_id,
        }
    }
}

/// Register a company for review by an operator.
#[utoipa::path(
    post,
    path = "/api/v1/registrations",
    tag = "registrations",
    request_body(content(
        (RegistrationBody = "application/json"),
        (RegistrationBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 202, description = "Waiting for review", body = bodies::RegistrationAccepted),
        (status = 409, description = "`registration_pending`, `email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` with per-field `errors`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`: too many mails to this address or from this client lately", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn submit_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<RegistrationBody>,
) -> Result<HttpResponse, ApiError> {
    let form = parse_registration(
        &state,
        &body.company_name,
        &body.contact_name,
        &body.contact_email,
        &body.contact_phone,
    )?;
    let locale = request_locale(&req, body.locale.as_deref());
    let view = register_company(&state, &req, form, locale).await?;
    Ok(HttpResponse::Accepted().json(json!({"registration_id": view.id, "status": view.status})))
}

/// Every field checked at once; problems name their fields.
pub(crate) fn parse_registration(
    state: &AppState,
    company_name: &str,
    contact_name: &str,
    contact_email: &str,
    contact_phone: &str,
) -> Result<RegistrationForm, ApiError> {
    RegistrationForm::parse(
        company_name,
        contact_name,
        contact_email,
        contact_phone,
        &state.phone_region,
    )
    .map_err(|problems| {
        let mut fields = FieldErrors::new();
        problems
            .iter()
            .for_each(|p| fields.refuse(p.field, p.reason));
        fields.into_error()
    })
}

/// Files the registration for review (shared with the registration page;
/// the mail limits are the operation's own).
pub(crate) async fn register_company(
    state: &AppState,
    req: &HttpRequest,
    form: RegistrationForm,
    locale: accounts::Locale,
) -> Result<RegistrationView, ApiError> {
    let context = audit_context(req, None);
    let accounts = state.accounts.clone();
    Ok(run_blocking(move || accounts.submit_registration(form, locale, &context)).await??)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegistrationsQuery {
    /// Only registrations in this state; empty for all.
    #[param(schema_with = schema::registration_status)]
    status: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = schema::cursor)]
    cursor: Option<String>,
}

/// Company registrations, oldest first, 50 a page.
#[utoipa::path(
    get,
    path = "/api/v1/admin/registrations",
    tag = "admin",
    security(("bearer" = [])),
    params(RegistrationsQuery),
    responses(
        (status = 200, description = "A page of registrations", body = bodies::RegistrationPage),
        (status = 400, description = "`invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an operator (`admin` role) with a login session", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown status", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_registrations(
    state: web::Data<AppState>,
    AdminActor(_): AdminActor,
    query: web::Query<RegistrationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = query.status.clone().filter(|s| !s.is_empty());
    if let Some(status) = &status
        && !["pending_review", "approved", "rejected"].contains(&status.as_str())
    {
        return Err(ApiError::validation(
            "status",
            "must be pending_review, approved or rejected",
        ));
    }
    let start = offset(query.cursor.as_deref())?;
    let accounts = state.accounts.clone();
    let items =
        run_blocking(move || accounts.list_registrations(status.as_deref(), start, PAGE)).await??;
    let next = next_cursor(start, items.len(), PAGE);
    let items: Vec<RegistrationJson> = items.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next})))
}

/// One company registration.
#[utoipa::path(
    get,
    path = "/api/v1/admin/registrations/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The registration's id")),
    responses(
        (status = 200, description = "The registration", body = RegistrationJson),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an operator (`admin` role) with a login session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn show_registration(
    state: web::Data<AppState>,
    AdminActor(_): AdminActor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let accounts = state.accounts.clone();
    let view = run_blocking(move || accounts.registration(&id)).await??;
    let view = view.ok_or(accounts::AccountsError::RegistrationNotFound)?;
    Ok(HttpResponse::Ok().json(RegistrationJson::from(view)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ApproveBody {
    /// Granted to the company's contact user (an organization admin).
    #[schema(schema_with = schema::permissions)]
    permissions: Vec<String>,
    note: Option<String>,
    #[schema(schema_with = schema::locale)]
    locale: Option<String>,
}

/// Approve: creates the organization and its contact user, and mails an activation link.
#[utoipa::path(
    post,
    path = "/api/v1/admin/registrations/{id}/approve",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The registration's id")),
    // JSON only: a form can't carry a list.
    request_body(content((ApproveBody = "application/json"))),
    responses(
        (status = 200, description = "The approved registration", body = RegistrationJson),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an operator (`admin` role) with a login session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_decided`, `email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (unknown permissions), `permission_not_held`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn approve_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    AdminActor(actor): AdminActor,
    path: web::Path<String>,
    JsonOrForm(body): JsonOrForm<ApproveBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let locale = request_locale(&req, body.locale.as_deref());
    let accounts = state.accounts.clone();
    let view = run_blocking(move || {
        accounts.approve_registration(&actor, &id, &body.permissions, body.note.as_deref(), locale)
    })
    .await??;
    Ok(HttpResponse::Ok().json(RegistrationJson::from(view)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RejectBody {
    #[schema(schema_with = schema::rejection_reason)]
    reason: String,
    #[schema(schema_with = schema::locale)]
    locale: Option<String>,
}

/// Reject, with a reason mailed to the contact.
#[utoipa::path(
    post,
    path = "/api/v1/admin/registrations/{id}/reject",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The registration's id")),
    request_body(content(
        (RejectBody = "application/json"),
        (RejectBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The rejected registration", body = RegistrationJson),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an operator (`admin` role) with a login session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_decided`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reject_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    AdminActor(actor): AdminActor,
    path: web::Path<String>,
    JsonOrForm(body): JsonOrForm<RejectBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let locale = request_locale(&req, body.locale.as_deref());
    let accounts = state.accounts.clone();
    let view =
        run_blocking(move || accounts.reject_registration(&actor, &id, &body.reason, locale))
            .await??;
    Ok(HttpResponse::Ok().json(RegistrationJson::from(view)))
}

// ---- activation ----

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ActivateBody {
    /// From the activation link.
    #[schema(value_type = String)]
    token: SecretString,
    #[schema(schema_with = schema::new_password)]
    password: SecretString,
}

/// Set the password of an invited account and log in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/activate",
    tag = "accounts",
    request_body(content(
        (ActivateBody = "application/json"),
        (ActivateBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "A new session", body = super::auth::TokenResponse),
        (status = 400, description = "`invalid_activation_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_not_active`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`weak_password`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn activate(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<ActivateBody>,
) -> Result<HttpResponse, ApiError> {
    activation_token_shape(&body.token)?;
    let password = accounts::Password::parse(body.password)
        .map_err(|e| ApiError::validation(e.field, e.reason))?;
    let tokens = activate_account(&state, &req, body.token, password).await?;
    Ok(token_response(&tokens))
}

/// Our activation tokens are short; a long one is refused unread.
pub(crate) fn activation_token_shape(token: &SecretString) -> Result<(), ApiError> {
    if token.expose_secret().len() > schema::OPAQUE_TOKEN_MAX_BYTES {
        return Err(accounts::AccountsError::InvalidActivationToken.into());
    }
    Ok(())
}

/// Spends the activation token, sets the password and starts a session
/// (shared with the activation page).
pub(crate) async fn activate_account(
    state: &AppState,
    req: &HttpRequest,
    token: SecretString,
    password: accounts::Password,
) -> Result<accounts::IssuedTokens, ApiError> {
    activation_token_shape(&token)?;
    let client = client_info(req);
    let context = audit_context(req, None);
    let accounts = state.accounts.clone();
    Ok(
        run_blocking(move || {
            accounts.activate(token.expose_secret(), &password, &client, &context)
        })
        .await??,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResendBody {
    #[schema(schema_with = schema::email)]
    email: String,
    #[schema(schema_with = schema::locale)]
    locale: Option<String>,
}

/// Mail a new activation link; the same answer whether or not the address is invited.
#[utoipa::path(
    post,
    path = "/api/v1/auth/activation/resend",
    tag = "accounts",
    request_body(content(
        (ResendBody = "application/json"),
        (ResendBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 202, description = "Accepted", body = bodies::Accepted),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend_activation(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<ResendBody>,
) -> Result<HttpResponse, ApiError> {
    let email = accounts::EmailAddress::parse(&body.email)
        .map_err(|e| ApiError::validation(e.field, e.reason))?;
    let locale = request_locale(&req, body.locale.as_deref());
    let origin = client_info(&req);
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.resend_activation(&email, locale, &origin)).await??;
    Ok(HttpResponse::Accepted().json(json!({
        "status": "accepted",
        "detail": "if an invited account uses this address, a new activation link has been sent to it"
    })))
}

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
        // Sensitive: a recent authentication (with the second factor, if any).
        accounts.check_step_up(&claims.sub, &claims.sid)?;
        accounts.create_api_token(
            &claims.sub,
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
        (status = 422, description = "`validation_failed`, `permission_not_held`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_user(
    state: web::Data<AppState>,
    ManagerActor(actor): ManagerActor,
    Bearer(claims): Bearer,
    path: web::Path<String>,
    JsonOrForm(body): JsonOrForm<PatchUserBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    // Changing authority is sensitive: a recent authentication (with the
    // second factor, if any).
    let authority = body.roles.is_some() || body.permissions.is_some();
    let update = UserUpdate {
        roles: body.roles,
        permissions: body.permissions,
        disabled: body.disabled,
        must_change_password: body.must_change_password,
    };
    let accounts = state.accounts.clone();
    let (user, _) = run_blocking(move || {
        if authority {
            accounts.check_step_up(&claims.sub, &claims.sid)?;
        }
        accounts.update_user(&actor, &id, update)
    })
    .await??;
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

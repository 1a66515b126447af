//! Seed 000: company registration, operator review, and activation of the
//! approved account (with the resent activation mail).

use accounts::{RegistrationForm, RegistrationView};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::token_response;
use super::error::{ApiError, FieldErrors, Problem};
use super::extract::{AdminActor, JsonOrForm, audit_context, client_info};
use super::flows::request_locale;
use super::openapi::bodies;
use super::paging::{PAGE, next_cursor, offset, time};
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

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
        (status = 403, description = "`forbidden`: not an operator (`admin` role) with a login session; `step_up_required`: approving grants permissions, so the session must have authenticated recently (POST /api/v1/auth/step-up)", body = Problem, content_type = "application/problem+json"),
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

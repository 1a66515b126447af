//! Signup, email verification, password reset and change, organizations.

use accounts::{DisplayName, EmailAddress, Locale, Password, SignupRequest, Username};
use actix_web::http::header::ACCEPT_LANGUAGE;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, FieldErrors, Problem};
use super::extract::{Bearer, JsonOrForm, client_info};
use super::openapi::bodies;
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

/// The locale the body asked for, else the `Accept-Language` header, else Korean.
pub fn request_locale(req: &HttpRequest, asked: Option<&str>) -> Locale {
    asked.and_then(Locale::parse).unwrap_or_else(|| {
        req.headers()
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Locale::from_accept_language)
            .unwrap_or_default()
    })
}

fn email(input: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(input).map_err(|e| ApiError::validation(e.field, e.reason))
}

fn password(field: &'static str, input: SecretString) -> Result<Password, accounts::ParseError> {
    Password::parse(input).map_err(|e| accounts::ParseError {
        field,
        reason: e.reason,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignupBody {
    #[schema(schema_with = schema::email)]
    email: String,
    #[schema(schema_with = schema::new_password)]
    password: SecretString,
    #[schema(schema_with = schema::optional_username)]
    username: Option<String>,
    #[schema(schema_with = schema::optional_display_name)]
    name: Option<String>,
    /// Join this organization; with an email verified for it the account is active at once.
    #[schema(schema_with = schema::optional_uuid)]
    organization_id: Option<String>,
    /// `ko` or `en` for the mail; else `Accept-Language`.
    #[schema(schema_with = schema::locale)]
    locale: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SignupResponse {
    user_id: String,
    /// `active` or `pending_verification` (a code was mailed).
    status: &'static str,
}

/// Create an account.
#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "accounts",
    request_body(content(
        (SignupBody = "application/json"),
        (SignupBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 201, description = "Created (also for a taken address unless the deployment reveals it)", body = SignupResponse),
        (status = 409, description = "`email_taken` (only where the deployment reveals it), `username_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`email_not_verified` for the organization", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`organization_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` with per-field `errors`, `weak_password`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`: too many mails to this address or from this client lately", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<SignupBody>,
) -> Result<HttpResponse, ApiError> {
    let mut fields = FieldErrors::new();
    let email = fields.take(EmailAddress::parse(&body.email));
    let password = fields.take(password("password", body.password));
    let username = body
        .username
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(|u| fields.take(Username::parse(u)));
    let name = body
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .map(|n| fields.take(DisplayName::parse(n)));
    // Forms send an empty field for "none".
    let organization_id = body.organization_id.filter(|id| !id.is_empty());
    if organization_id
        .as_ref()
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_err())
    {
        fields.take::<()>(Err(accounts::ParseError {
            field: "organization_id",
            reason: "is not a valid organization id",
        }));
    }
    let (email, password) = fields.finish((email, password))?;
    let request = SignupRequest {
        email,
        password,
        username: username.flatten(),
        name: name.flatten(),
        organization_id,
        locale: request_locale(&req, body.locale.as_deref()),
    };
    let outcome = sign_up(&state, &req, request).await?;
    Ok(HttpResponse::Created().json(SignupResponse {
        user_id: outcome.user_id,
        status: outcome.status.as_str(),
    }))
}

/// Signs up (shared with the signup page and the campus profile; the mail
/// limits are the operation's own).
pub(crate) async fn sign_up(
    state: &AppState,
    req: &HttpRequest,
    request: SignupRequest,
) -> Result<accounts::SignupOutcome, ApiError> {
    let origin = client_info(req);
    let accounts = state.accounts.clone();
    Ok(run_blocking(move || accounts.signup(request, &origin)).await??)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmailCodeBody {
    #[schema(schema_with = schema::email)]
    email: String,
    #[schema(schema_with = schema::email_code)]
    code: String,
}

pub(crate) fn check_code_shape(code: &str) -> Result<(), ApiError> {
    if code.chars().count() > schema::CODE_MAX_CHARS {
        return Err(ApiError::validation("code", "is too long"));
    }
    Ok(())
}

/// Confirm an email address with the mailed code.
#[utoipa::path(
    post,
    path = "/api/v1/auth/email/verify",
    tag = "accounts",
    request_body(content(
        (EmailCodeBody = "application/json"),
        (EmailCodeBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Verified", body = bodies::Verified),
        (status = 400, description = "`invalid_code`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<EmailCodeBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    check_code_shape(&body.code)?;
    let origin = client_info(&req);
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.verify_email(&email, body.code.trim(), &origin)).await??;
    Ok(HttpResponse::Ok().json(json!({"verified": true})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ForgotBody {
    #[schema(schema_with = schema::email)]
    email: String,
    #[schema(schema_with = schema::locale)]
    locale: Option<String>,
}

/// Ask for a password reset code by mail.
///
/// The answer is the same whether or not an account uses the address.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password/forgot",
    tag = "accounts",
    request_body(content(
        (ForgotBody = "application/json"),
        (ForgotBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 202, description = "Accepted", body = bodies::Accepted),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<ForgotBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    let locale = request_locale(&req, body.locale.as_deref());
    send_reset_code(&state, &req, email, locale).await?;
    Ok(HttpResponse::Accepted().json(json!({
        "status": "accepted",
        "detail": "if an account uses this address, a reset code has been sent to it"
    })))
}

/// Mails a reset code if the address has an account (shared with the
/// forgot-password page and the campus profile).
pub(crate) async fn send_reset_code(
    state: &AppState,
    req: &HttpRequest,
    email: EmailAddress,
    locale: Locale,
) -> Result<(), ApiError> {
    let origin = client_info(req);
    let accounts = state.accounts.clone();
    Ok(run_blocking(move || accounts.forgot_password(&email, locale, &origin)).await??)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetBody {
    #[schema(schema_with = schema::email)]
    email: String,
    #[schema(schema_with = schema::email_code)]
    code: String,
    #[schema(schema_with = schema::new_password)]
    new_password: SecretString,
}

/// Set a new password with the mailed code; every session of the user ends.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password/reset",
    tag = "accounts",
    request_body(content(
        (ResetBody = "application/json"),
        (ResetBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 204, description = "The password is changed"),
        (status = 400, description = "`invalid_code`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`weak_password`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    check_code_shape(&body.code)?;
    let new_password = password("new_password", body.new_password)
        .map_err(|e| ApiError::validation(e.field, e.reason))?;
    reset_with_code(&state, &req, email, body.code, new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Resets the password with a mailed code (shared with the reset page; the
/// code-attempt limit and the strength rule are the operation's own).
pub(crate) async fn reset_with_code(
    state: &AppState,
    req: &HttpRequest,
    email: EmailAddress,
    code: String,
    new_password: Password,
) -> Result<(), ApiError> {
    check_code_shape(&code)?;
    let origin = client_info(req);
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.reset_password(&email, code.trim(), &new_password, &origin))
        .await??;
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangeBody {
    #[schema(schema_with = schema::password)]
    current_password: SecretString,
    #[schema(schema_with = schema::new_password)]
    new_password: SecretString,
}

/// Change the password; the user's other sessions end.
///
/// For a user without a second factor the current password is the fresh
/// authentication this sensitive operation needs; a user with one must have
/// authenticated with it recently (else `step_up_required`).
#[utoipa::path(
    post,
    path = "/api/v1/auth/password/change",
    tag = "accounts",
    security(("bearer" = [])),
    request_body(content(
        (ChangeBody = "application/json"),
        (ChangeBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 204, description = "The password is changed"),
        (status = 401, description = "`invalid_token`, `token_expired`, `token_revoked`; `invalid_credentials` for a wrong current password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session; `step_up_required`: a user with a second factor whose session has not used it recently must authenticate again first (POST /api/v1/auth/step-up)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`weak_password`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn change_password(
    state: web::Data<AppState>,
    Bearer(claims): Bearer,
    JsonOrForm(body): JsonOrForm<ChangeBody>,
) -> Result<HttpResponse, ApiError> {
    let new_password = password("new_password", body.new_password)
        .map_err(|e| ApiError::validation(e.field, e.reason))?;
    change_own_password(
        &state,
        claims.sub,
        claims.sid,
        body.current_password,
        new_password,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Changes the password after checking the current one; the user's other
/// sessions end here at once (shared with the dashboard).
pub(crate) async fn change_own_password(
    state: &AppState,
    user_id: String,
    session_id: String,
    current: SecretString,
    new_password: Password,
) -> Result<(), ApiError> {
    if current.expose_secret().chars().count() > schema::PASSWORD_MAX_CHARS {
        return Err(ApiError::validation("current_password", "is too long"));
    }
    let accounts = state.accounts.clone();
    run_blocking(move || {
        accounts.change_password(
            &user_id,
            &session_id,
            current.expose_secret(),
            &new_password,
        )
    })
    .await??;
    Ok(())
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Organization)]
pub(crate) struct OrganizationView {
    id: String,
    name: String,
    region: Option<String>,
    email_domains: Vec<String>,
}

/// The active organizations one can sign up with.
#[utoipa::path(
    get,
    path = "/api/v1/organizations",
    tag = "organizations",
    responses(
        (status = 200, description = "Every active organization", body = Vec<OrganizationView>),
    )
)]
pub async fn list_organizations(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let organizations = run_blocking(move || accounts.list_organizations(true)).await??;
    let body: Vec<OrganizationView> = organizations
        .into_iter()
        .map(|o| OrganizationView {
            id: o.id,
            name: o.name,
            region: o.region,
            email_domains: o.email_domains,
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct OrganizationEmailBody {
    #[schema(schema_with = schema::email)]
    email: String,
    #[schema(schema_with = schema::locale)]
    locale: Option<String>,
}

/// Mail a code to an address under one of the organization's domains.
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{id}/email-verification",
    tag = "organizations",
    params(("id" = String, Path, description = "The organization's id (UUID); anything else is `organization_not_found`")),
    request_body(content(
        (OrganizationEmailBody = "application/json"),
        (OrganizationEmailBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 202, description = "A code was sent", body = bodies::CodeSent),
        (status = 404, description = "`organization_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`email_domain_not_allowed`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn request_organization_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    JsonOrForm(body): JsonOrForm<OrganizationEmailBody>,
) -> Result<HttpResponse, ApiError> {
    let organization_id = organization_id_shape(path.into_inner())?;
    let email = email(&body.email)?;
    let locale = request_locale(&req, body.locale.as_deref());
    send_organization_code(&state, &req, organization_id, email, locale).await?;
    Ok(HttpResponse::Accepted().json(json!({"status": "code_sent"})))
}

/// An organization id is a UUID; anything else is no organization.
fn organization_id_shape(id: String) -> Result<String, ApiError> {
    match uuid::Uuid::parse_str(&id) {
        Ok(_) => Ok(id),
        Err(_) => Err(accounts::AccountsError::OrganizationNotFound.into()),
    }
}

/// Mails a code to an address under the organization's domains (shared
/// with the signup page).
pub(crate) async fn send_organization_code(
    state: &AppState,
    req: &HttpRequest,
    organization_id: String,
    email: EmailAddress,
    locale: Locale,
) -> Result<(), ApiError> {
    let organization_id = organization_id_shape(organization_id)?;
    let origin = client_info(req);
    let accounts = state.accounts.clone();
    run_blocking(move || {
        accounts.request_organization_code(&organization_id, &email, locale, &origin)
    })
    .await??;
    Ok(())
}

/// Confirm the organization email code; valid for signing up for 24 hours.
#[utoipa::path(
    post,
    path = "/api/v1/organizations/email-verification/confirm",
    tag = "organizations",
    request_body(content(
        (EmailCodeBody = "application/json"),
        (EmailCodeBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Verified for the organization", body = bodies::OrganizationVerified),
        (status = 400, description = "`invalid_code`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm_organization_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<EmailCodeBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    let organization_id = confirm_organization_code_for(&state, &req, email, body.code).await?;
    Ok(HttpResponse::Ok().json(json!({"verified": true, "organization_id": organization_id})))
}

/// Confirms the organization code; returns the organization (shared with
/// the signup page and the campus profile).
pub(crate) async fn confirm_organization_code_for(
    state: &AppState,
    req: &HttpRequest,
    email: EmailAddress,
    code: String,
) -> Result<String, ApiError> {
    check_code_shape(&code)?;
    let origin = client_info(req);
    let accounts = state.accounts.clone();
    Ok(
        run_blocking(move || accounts.confirm_organization_code(&email, code.trim(), &origin))
            .await??,
    )
}

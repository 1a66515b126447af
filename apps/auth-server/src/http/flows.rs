//! Signup, email verification, password reset and change, organizations.

use accounts::{DisplayName, EmailAddress, Locale, Password, SignupRequest, Username};
use actix_web::http::header::ACCEPT_LANGUAGE;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, FieldErrors};
use super::extract::{Bearer, JsonOrForm};
use crate::blocking::run_blocking;
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

#[derive(Deserialize)]
pub struct SignupBody {
    email: String,
    password: SecretString,
    username: Option<String>,
    name: Option<String>,
    organization_id: Option<String>,
    locale: Option<String>,
}

#[derive(Serialize)]
struct SignupResponse {
    user_id: String,
    status: &'static str,
}

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
    if body
        .organization_id
        .as_ref()
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_err())
    {
        fields.take::<()>(Err(accounts::ParseError {
            field: "organization_id",
            reason: "is not a valid organization id",
        }));
    }
    fields.finish()?;
    let request = SignupRequest {
        email: email.expect("checked"),
        password: password.expect("checked"),
        username: username.flatten(),
        name: name.flatten(),
        organization_id: body.organization_id,
        locale: request_locale(&req, body.locale.as_deref()),
    };
    let accounts = state.accounts.clone();
    let outcome = run_blocking(move || accounts.signup(request)).await??;
    Ok(HttpResponse::Created().json(SignupResponse {
        user_id: outcome.user_id,
        status: outcome.status.as_str(),
    }))
}

#[derive(Deserialize)]
pub struct EmailCodeBody {
    email: String,
    code: String,
}

fn check_code_shape(code: &str) -> Result<(), ApiError> {
    if code.len() > 32 {
        return Err(ApiError::validation("code", "is too long"));
    }
    Ok(())
}

pub async fn verify_email(
    state: web::Data<AppState>,
    JsonOrForm(body): JsonOrForm<EmailCodeBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    check_code_shape(&body.code)?;
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.verify_email(&email, body.code.trim())).await??;
    Ok(HttpResponse::Ok().json(json!({"verified": true})))
}

#[derive(Deserialize)]
pub struct ForgotBody {
    email: String,
    locale: Option<String>,
}

pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<ForgotBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    let locale = request_locale(&req, body.locale.as_deref());
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.forgot_password(&email, locale)).await??;
    Ok(HttpResponse::Accepted().json(json!({
        "status": "accepted",
        "detail": "if an account uses this address, a reset code has been sent to it"
    })))
}

#[derive(Deserialize)]
pub struct ResetBody {
    email: String,
    code: String,
    new_password: SecretString,
}

pub async fn reset_password(
    state: web::Data<AppState>,
    JsonOrForm(body): JsonOrForm<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    check_code_shape(&body.code)?;
    let new_password = password("new_password", body.new_password)
        .map_err(|e| ApiError::validation(e.field, e.reason))?;
    let accounts = state.accounts.clone();
    let revoked =
        run_blocking(move || accounts.reset_password(&email, body.code.trim(), &new_password))
            .await??;
    for r in revoked {
        state.revocations.revoke_session(r.session_id, r.until);
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct ChangeBody {
    current_password: SecretString,
    new_password: SecretString,
}

pub async fn change_password(
    state: web::Data<AppState>,
    Bearer(claims): Bearer,
    JsonOrForm(body): JsonOrForm<ChangeBody>,
) -> Result<HttpResponse, ApiError> {
    let new_password = password("new_password", body.new_password)
        .map_err(|e| ApiError::validation(e.field, e.reason))?;
    if body.current_password.expose_secret().len() > 1024 {
        return Err(ApiError::validation("current_password", "is too long"));
    }
    let accounts = state.accounts.clone();
    let (user_id, session_id) = (claims.sub.clone(), claims.sid.clone());
    let revoked = run_blocking(move || {
        accounts.change_password(
            &user_id,
            &session_id,
            body.current_password.expose_secret(),
            &new_password,
        )
    })
    .await??;
    for r in revoked {
        state.revocations.revoke_session(r.session_id, r.until);
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct OrganizationView {
    id: String,
    name: String,
    region: Option<String>,
    email_domains: Vec<String>,
}

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

#[derive(Deserialize)]
pub struct OrganizationEmailBody {
    email: String,
    locale: Option<String>,
}

pub async fn request_organization_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    JsonOrForm(body): JsonOrForm<OrganizationEmailBody>,
) -> Result<HttpResponse, ApiError> {
    let organization_id = path.into_inner();
    if uuid::Uuid::parse_str(&organization_id).is_err() {
        return Err(accounts::AccountsError::OrganizationNotFound.into());
    }
    let email = email(&body.email)?;
    let locale = request_locale(&req, body.locale.as_deref());
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.request_organization_code(&organization_id, &email, locale))
        .await??;
    Ok(HttpResponse::Accepted().json(json!({"status": "code_sent"})))
}

pub async fn confirm_organization_code(
    state: web::Data<AppState>,
    JsonOrForm(body): JsonOrForm<EmailCodeBody>,
) -> Result<HttpResponse, ApiError> {
    let email = email(&body.email)?;
    check_code_shape(&body.code)?;
    let accounts = state.accounts.clone();
    let organization_id =
        run_blocking(move || accounts.confirm_organization_code(&email, body.code.trim()))
            .await??;
    Ok(HttpResponse::Ok().json(json!({"verified": true, "organization_id": organization_id})))
}

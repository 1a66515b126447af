//! Profile `campus` (seed 004): `/users/*` with the seed's envelope
//! `{"status": 0|1|2, "error_msg": …}` (0 success, 1 failure, 2 JWT
//! failure) — school list, the school's email domains, a mailed code that
//! proves the address, signup, login and refresh on one path, and the
//! password-reset mail. `error_msg` is Korean unless `Accept-Language` asks
//! for English; the native stable `code` rides along. HTTP statuses are the
//! native ones (200 on success). Decisions: `docs/profiles/campus.md`.

use std::fmt::Write as _;

use accounts::{EmailAddress, Locale, Password, SignupRequest, Username};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::http::auth::{no_store, profile_password_login, rotate_refresh_token};
use crate::http::error::{ApiError, FieldErrors};
use crate::http::flows;
use crate::http::flows::request_locale;
use crate::http::run_blocking;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/users/login"),
    ("POST", "/users/signup"),
    ("GET", "/users/organization/list"),
    ("POST", "/users/organization/emails"),
    ("POST", "/users/organization/send_auth_email"),
    ("POST", "/users/organization/check_auth_code"),
    ("POST", "/users/reset-password/send_auth_mail"),
];

/// The routes for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    login,
    signup,
    organization_list,
    organization_emails,
    send_auth_email,
    check_auth_code,
    reset_password_mail
))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/users/login").route(web::post().to(login)))
        .service(resource("/users/signup").route(web::post().to(signup)))
        .service(resource("/users/organization/list").route(web::get().to(organization_list)))
        .service(resource("/users/organization/emails").route(web::post().to(organization_emails)))
        .service(
            resource("/users/organization/send_auth_email").route(web::post().to(send_auth_email)),
        )
        .service(
            resource("/users/organization/check_auth_code").route(web::post().to(check_auth_code)),
        )
        .service(
            resource("/users/reset-password/send_auth_mail")
                .route(web::post().to(reset_password_mail)),
        );
}

/// A resource whose other methods answer 405 in the campus envelope.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|req: HttpRequest| async move {
        failure(locale(&req), &ApiError::method_not_allowed())
    }))
}

use super::{Body, parse_body as parse};

// ---------------------------------------------------------------------------
// The envelope

/// `Accept-Language`, else Korean (the seed's language).
fn locale(req: &HttpRequest) -> Locale {
    request_locale(req, None)
}

/// `{"status": 0, "error_msg": ""}` plus the endpoint's fields, HTTP 200.
fn success(fields: Value) -> HttpResponse {
    let mut body = Map::new();
    body.insert("status".into(), json!(0));
    body.insert("error_msg".into(), json!(""));
    if let Value::Object(fields) = fields {
        body.extend(fields);
    }
    no_store(&mut HttpResponse::Ok()).json(Value::Object(body))
}

/// Refresh-token failures are the seed's "JWT 인증 실패". (The access-token
/// codes are listed for completeness: no campus path takes an access token.)
fn is_jwt_failure(code: &str) -> bool {
    matches!(
        code,
        "invalid_refresh_token"
            | "refresh_token_reused"
            | "invalid_token"
            | "token_expired"
            | "token_revoked"
    )
}

/// `{"status": 1|2, "error_msg": <ko/en>, "code": <native code>}` with the
/// native HTTP status and headers (`Retry-After`, `WWW-Authenticate`).
fn failure(locale: Locale, error: &ApiError) -> HttpResponse {
    let status = if is_jwt_failure(error.code) { 2 } else { 1 };
    let mut response = HttpResponse::build(error.status);
    no_store(&mut response);
    if let Some(header) = error.retry_after_header() {
        response.insert_header(header);
    }
    if error.status == StatusCode::UNAUTHORIZED {
        response.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"auth-server\""),
        ));
    }
    response.json(json!({
        "status": status,
        "error_msg": message(locale, error),
        "code": error.code,
    }))
}

fn respond(locale: Locale, outcome: Result<Value, ApiError>) -> HttpResponse {
    match outcome {
        Ok(fields) => success(fields),
        Err(e) => failure(locale, &e),
    }
}

/// `error_msg`: a sentence per stable native code, in Korean or English.
fn message(locale: Locale, error: &ApiError) -> String {
    let ko = locale == Locale::Ko;
    let text = |ko_text: &str, en_text: &str| (if ko { ko_text } else { en_text }).to_owned();
    match error.code {
        "invalid_credentials" => text(
            "아이디 또는 비밀번호가 올바르지 않습니다.",
            "The username or password is wrong.",
        ),
        "account_not_active" => text(
            "사용할 수 없는 계정입니다. 이메일 인증을 마쳤는지 확인하세요.",
            "This account is not active; check that its email address was verified.",
        ),
        "invalid_refresh_token" => text(
            "refresh 토큰이 유효하지 않거나 만료되었습니다. 다시 로그인하세요.",
            "The refresh token is invalid, expired or revoked; log in again.",
        ),
        "refresh_token_reused" => text(
            "이미 사용된 refresh 토큰입니다. 보안을 위해 로그인 세션을 종료했으니 다시 로그인하세요.",
            "This refresh token was already used; the session has been ended for safety, log in again.",
        ),
        "invalid_token" | "token_revoked" => text(
            "JWT 토큰이 유효하지 않습니다. 다시 로그인하세요.",
            "The JWT token is invalid; log in again.",
        ),
        "token_expired" => text("JWT 토큰이 만료되었습니다.", "The JWT token has expired."),
        "invalid_code" => text(
            "인증 코드가 올바르지 않거나 만료되었습니다. 필요하면 새 코드를 요청하세요.",
            "The code is wrong, expired or already used; ask for a new one if needed.",
        ),
        // Every 429: a limit that passes (with `Retry-After`), or a code
        // that died of wrong guesses.
        "too_many_attempts" => match (error.retry_after, ko) {
            (Some(s), true) => format!("요청이 너무 많습니다. {s}초 후에 다시 시도하세요."),
            (Some(s), false) => format!("Too many attempts; try again in {s} s."),
            (None, _) => text(
                "잘못된 인증 코드를 너무 많이 입력했습니다. 새 코드를 요청하세요.",
                "Too many wrong codes; this code no longer works, ask for a new one.",
            ),
        },
        "email_domain_not_allowed" => text(
            "이 학교/단체의 인증용 이메일 주소가 아닙니다.",
            "The email address is not under one of the organization's domains.",
        ),
        "email_not_verified" => text(
            "먼저 이 학교/단체의 이메일 인증을 완료하세요. 인증은 24시간 동안 유효합니다.",
            "Verify the email address for this organization first; a verification is good for 24 hours.",
        ),
        "organization_not_found" => text("학교/단체를 찾을 수 없습니다.", "No such organization."),
        "weak_password" => {
            let reason = error.reason("password");
            match (ko, reason) {
                (true, _) => {
                    "비밀번호가 너무 쉽습니다. 더 길고 추측하기 어려운 비밀번호를 사용하세요."
                        .to_owned()
                }
                (false, Some(reason)) => {
                    format!(
                        "The password is too weak: {}.",
                        reason.trim_end_matches('.')
                    )
                }
                (false, None) => "The password is too weak.".to_owned(),
            }
        }
        "validation_failed" => {
            if ko {
                let fields = error.fields();
                format!("입력값이 올바르지 않습니다: {}", fields.join(", "))
            } else {
                let mut text = String::from("Some fields are invalid:");
                for (i, field) in error.fields().into_iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    let reasons: Vec<&str> = error
                        .errors
                        .iter()
                        .filter(|e| e.field == field)
                        .map(|e| e.reason.as_ref())
                        .collect();
                    let _ = write!(text, "{sep}{field} {}", reasons.join(", "));
                }
                text.push('.');
                text
            }
        }
        "username_taken" => text(
            "이미 사용 중인 아이디입니다.",
            "This username is already taken.",
        ),
        "email_taken" => text(
            "이미 가입된 이메일 주소입니다.",
            "This email address is already registered.",
        ),
        "invalid_request" => {
            if ko {
                "요청 형식이 올바르지 않습니다. JSON 본문을 보내세요.".to_owned()
            } else {
                // The seed's body has no `errors` list: name the fields here.
                let (what, fields) = error.without_errors_list();
                if fields.is_empty() {
                    format!("The request could not be read: {what}.")
                } else {
                    format!(
                        "The request could not be read: {what} ({}).",
                        fields.join("; ")
                    )
                }
            }
        }
        "payload_too_large" => text(
            "요청 본문이 너무 큽니다 (최대 64 KiB).",
            "The request body is larger than 64 KiB.",
        ),
        "method_not_allowed" => text(
            "이 경로에서 허용되지 않는 메서드입니다.",
            "This method is not allowed on this path.",
        ),
        "not_found" => text("찾을 수 없습니다.", "Not found."),
        "forbidden" => text("권한이 없습니다.", "You are not allowed to do this."),
        "service_unavailable" => text(
            "서비스를 일시적으로 사용할 수 없습니다. 잠시 후 다시 시도하세요.",
            "The service is temporarily unavailable; try again shortly.",
        ),
        "internal_error" => text(
            "서버 오류가 발생했습니다. 잠시 후 다시 시도하세요.",
            "The server failed to handle the request; try again shortly.",
        ),
        // A code no campus path produces today: the native sentence in
        // English, a general one in Korean.
        _ if ko => "요청을 처리하지 못했습니다.".to_owned(),
        _ => error.detail.clone(),
    }
}

// ---------------------------------------------------------------------------
// Request parsing

/// Organization ids are UUIDs; anything else names no organization (and is
/// not sent to the database).
fn organization_id(id: &str) -> Result<String, ApiError> {
    let id = id.trim();
    uuid::Uuid::parse_str(id)
        .map(|_| id.to_owned())
        .map_err(|_| accounts::AccountsError::OrganizationNotFound.into())
}

/// A code sent as a JSON number is read as its digits.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Code>::deserialize(d)?.map(|c| match c {
        Code::Text(s) => s,
        Code::Number(n) => n.to_string(),
    }))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, accounts::AccountsError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(run_blocking(work).await??)
}

// ---------------------------------------------------------------------------
// Handlers

/// One path, two bodies: `{username, password}` logs in, `{refresh}`
/// rotates the refresh token.
#[derive(Deserialize)]
struct LoginBody {
    username: Option<String>,
    password: Option<SecretString>,
    /// A refresh token: send it alone, without username and password.
    refresh: Option<SecretString>,
}

/// Log in with `username` and `password`, or rotate a `refresh` token.
#[utoipa::path(
    post,
    path = "/users/login",
    request_body = inline(wire::LoginRequest),
    responses(
        (status = 200, description = "`status` 0; `tokens` after a login, `access` and `refresh` after a refresh", body = inline(wire::Login)),
        (status = "4XX", description = "The native status; `status` 1 (2 for token failures), `code` is the native code", body = inline(wire::Failure)),
    )
)]
async fn login(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    respond(locale(&req), login_or_refresh(&state, &req, body).await)
}

async fn login_or_refresh(
    state: &AppState,
    req: &HttpRequest,
    body: Body,
) -> Result<Value, ApiError> {
    let body: LoginBody = parse(body)?;
    let credentials = body.username.is_some() || body.password.is_some();
    match (body.refresh, credentials) {
        (Some(_), true) => Err(ApiError::bad_request(
            "send either username and password, or refresh, not both",
        )),
        (Some(refresh), false) => {
            // A token too long to be one of ours is simply not valid.
            if refresh.expose_secret().len() > 256 {
                return Err(accounts::AccountsError::InvalidRefreshToken.into());
            }
            let tokens = rotate_refresh_token(state, req, refresh, None).await?;
            // The presented token is spent; the seed's client must keep the
            // new one (see the doc), so it is sent next to `access`.
            Ok(json!({
                "access": tokens.access_token,
                "refresh": tokens.refresh_token.expose_secret(),
            }))
        }
        (None, _) => {
            let mut fields = FieldErrors::new();
            let username = fields.require("username", body.username);
            let password = fields.require("password", body.password);
            let (username, password) = fields.finish((username, password))?;
            let tokens = profile_password_login(state, req, "campus", username, password).await?;
            Ok(json!({"tokens": {
                "refresh": tokens.refresh_token.expose_secret(),
                "access": tokens.access_token,
            }}))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SignupBody {
    #[schema(required = true, schema_with = crate::http::schema::username)]
    username: Option<String>,
    #[schema(required = true, schema_with = crate::http::schema::new_password)]
    password: Option<SecretString>,
    /// Verified for the organization first (`check_auth_code`).
    #[schema(required = true, schema_with = crate::http::schema::email)]
    email: Option<String>,
    /// The organization's id.
    #[schema(required = true, schema_with = crate::http::schema::uuid)]
    organization: Option<String>,
}

/// Sign up with an email address verified for the organization.
#[utoipa::path(
    post,
    path = "/users/signup",
    request_body = inline(SignupBody),
    responses(
        (status = 200, description = "`status` 0", body = inline(wire::Success)),
        (status = "4XX", description = "The native status; `status` 1 (2 for token failures), `code` is the native code", body = inline(wire::Failure)),
    )
)]
async fn signup(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let locale = locale(&req);
    respond(locale, signup_with(&state, &req, locale, body).await)
}

async fn signup_with(
    state: &AppState,
    req: &HttpRequest,
    locale: Locale,
    body: Body,
) -> Result<Value, ApiError> {
    let body: SignupBody = parse(body)?;
    let mut fields = FieldErrors::new();
    let username = fields
        .require("username", body.username)
        .and_then(|u| fields.take_as("username", Username::parse(&u)));
    let password = fields
        .require("password", body.password)
        .and_then(|p| fields.take_as("password", Password::parse(p)));
    let email = fields
        .require("email", body.email)
        .and_then(|e| fields.take_as("email", EmailAddress::parse(&e)));
    let organization = fields.require("organization", body.organization);
    let (username, password, email, organization) =
        fields.finish((username, password, email, organization))?;
    let request = SignupRequest {
        email,
        password,
        username: Some(username),
        name: None,
        organization_id: Some(organization_id(&organization)?),
        locale,
    };
    flows::sign_up(state, req, request).await?;
    Ok(json!({}))
}

/// The schools (organizations).
#[utoipa::path(
    get,
    path = "/users/organization/list",
    responses(
        (status = 200, description = "`status` 0 and the organizations", body = inline(wire::Organizations)),
        (status = "4XX", description = "The native status; `status` 1 (2 for token failures), `code` is the native code", body = inline(wire::Failure)),
    )
)]
async fn organization_list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let accounts = state.accounts.clone();
    let outcome = blocking(move || accounts.list_organizations(true))
        .await
        .map(|organizations| {
            let organizations: Vec<Value> = organizations
                .into_iter()
                .map(|o| {
                    json!({
                        "name": o.name,
                        // The seed types it string; an organization without one gets "".
                        "region": o.region.unwrap_or_default(),
                        "id": o.id,
                    })
                })
                .collect();
            json!({ "organizations": organizations })
        });
    respond(locale(&req), outcome)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EmailsBody {
    #[schema(required = true, schema_with = crate::http::schema::uuid)]
    org_id: Option<String>,
}

/// The email domains of an organization.
#[utoipa::path(
    post,
    path = "/users/organization/emails",
    request_body = inline(EmailsBody),
    responses(
        (status = 200, description = "`status` 0 and the domains", body = inline(wire::Emails)),
        (status = "4XX", description = "The native status; `status` 1 (2 for token failures), `code` is the native code", body = inline(wire::Failure)),
    )
)]
async fn organization_emails(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body,
) -> HttpResponse {
    respond(locale(&req), emails(&state, body).await)
}

async fn emails(state: &AppState, body: Body) -> Result<Value, ApiError> {
    let body: EmailsBody = parse(body)?;
    let mut fields = FieldErrors::new();
    let id = fields.require("org_id", body.org_id);
    let id = organization_id(&fields.finish(id)?)?;
    let accounts = state.accounts.clone();
    // Like the list (and the code request), only active organizations exist.
    let organization = blocking(move || accounts.organization(&id))
        .await?
        .filter(|o| o.active)
        .ok_or(accounts::AccountsError::OrganizationNotFound)?;
    // The seed's "emails" are the organization's email domains.
    Ok(json!({ "emails": organization.email_domains }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SendAuthEmailBody {
    #[schema(required = true, schema_with = crate::http::schema::uuid)]
    organization_id: Option<String>,
    #[schema(required = true, schema_with = crate::http::schema::email)]
    email: Option<String>,
}

/// Mail a code to an address under one of the organization's domains.
#[utoipa::path(
    post,
    path = "/users/organization/send_auth_email",
    request_body = inline(SendAuthEmailBody),
    responses(
        (status = 200, description = "`status` 0", body = inline(wire::Success)),
        (status = "4XX", description = "The native status; `status` 1 (2 for token failures), `code` is the native code", body = inline(wire::Failure)),
    )
)]
async fn send_auth_email(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let locale = locale(&req);
    respond(
        locale,
        send_organization_code(&state, &req, locale, body).await,
    )
}

async fn send_organization_code(
    state: &AppState,
    req: &HttpRequest,
    locale: Locale,
    body: Body,
) -> Result<Value, ApiError> {
    let body: SendAuthEmailBody = parse(body)?;
    let mut fields = FieldErrors::new();
    let organization = fields.require("organization_id", body.organization_id);
    let email = fields
        .require("email", body.email)
        .and_then(|e| fields.take_as("email", EmailAddress::parse(&e)));
    let (organization, email) = fields.finish((organization, email))?;
    let organization = organization_id(&organization)?;
    flows::send_organization_code(state, req, organization, email, locale).await?;
    Ok(json!({}))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CheckAuthCodeBody {
    #[schema(required = true, schema_with = crate::http::schema::email)]
    email: Option<String>,
    /// A string or a number.
    #[serde(default, deserialize_with = "string_or_number")]
    #[schema(required = true, schema_with = crate::http::schema::email_code_or_number)]
    code: Option<String>,
}

/// Confirm the mailed code; the address may then sign up for 24 hours.
#[utoipa::path(
    post,
    path = "/users/organization/check_auth_code",
    request_body = inline(CheckAuthCodeBody),
    responses(
        (status = 200, description = "`status` 0", body = inline(wire::Success)),
        (status = "4XX", description = "The native status; `status` 1 (2 for token failures), `code` is the native code", body = inline(wire::Failure)),
    )
)]
async fn check_auth_code(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    respond(
        locale(&req),
        confirm_organization_code(&state, &req, body).await,
    )
}

async fn confirm_organization_code(
    state: &AppState,
    req: &HttpRequest,
    body: Body,
) -> Result<Value, ApiError> {
    let body: CheckAuthCodeBody = parse(body)?;
    let mut fields = FieldErrors::new();
    let email = fields
        .require("email", body.email)
        .and_then(|e| fields.take_as("email", EmailAddress::parse(&e)));
    let code = fields.require("code", body.code);
    if code.as_ref().is_some_and(|c| c.len() > 32) {
        fields.refuse("code", "is too long");
    }
    let (email, code) = fields.finish((email, code))?;
    flows::confirm_organization_code_for(state, req, email, code).await?;
    Ok(json!({}))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ResetMailBody {
    #[schema(required = true, schema_with = crate::http::schema::email)]
    email: Option<String>,
}

/// Mail a password reset code; the same answer whether or not the address is known.
#[utoipa::path(
    post,
    path = "/users/reset-password/send_auth_mail",
    request_body = inline(ResetMailBody),
    responses(
        (status = 200, description = "`status` 0", body = inline(wire::Success)),
        (status = "4XX", description = "The native status; `status` 1 (2 for token failures), `code` is the native code", body = inline(wire::Failure)),
    )
)]
async fn reset_password_mail(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body,
) -> HttpResponse {
    let locale = locale(&req);
    respond(locale, forgot_password(&state, &req, locale, body).await)
}

/// The same answer whether or not an account uses the address (the native
/// flow does equivalent work for an unknown one).
async fn forgot_password(
    state: &AppState,
    req: &HttpRequest,
    locale: Locale,
    body: Body,
) -> Result<Value, ApiError> {
    let body: ResetMailBody = parse(body)?;
    let mut fields = FieldErrors::new();
    let email = fields
        .require("email", body.email)
        .and_then(|e| fields.take_as("email", EmailAddress::parse(&e)));
    let email = fields.finish(email)?;
    flows::send_reset_code(state, req, email, locale).await?;
    Ok(json!({}))
}

/// Paths the seed doesn't have, in the envelope.
pub async fn unmatched(req: HttpRequest) -> HttpResponse {
    failure(locale(&req), &ApiError::not_found())
}

/// Response schemas for `/openapi.json`; the bodies are built with `json!`.
#[allow(dead_code)]
mod wire {
    /// Every success: HTTP 200, `status` 0 and an empty `error_msg`, plus
    /// the endpoint's own fields.
    #[derive(utoipa::ToSchema)]
    pub struct Success {
        /// 0.
        status: u8,
        /// Empty.
        error_msg: String,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Tokens {
        access: String,
        refresh: String,
    }

    /// `{username, password}` logs in; `{refresh}` alone rotates the refresh token.
    pub struct LoginRequest;

    impl utoipa::PartialSchema for LoginRequest {
        fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
            crate::http::schema::campus_login()
        }
    }

    impl utoipa::ToSchema for LoginRequest {}

    #[derive(utoipa::ToSchema)]
    pub struct Login {
        status: u8,
        error_msg: String,
        /// After a login with username and password.
        #[schema(inline)]
        tokens: Option<Tokens>,
        /// After a refresh: the new access token.
        access: Option<String>,
        /// After a refresh: the new refresh token (the presented one is spent).
        refresh: Option<String>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Organization {
        id: String,
        name: String,
        /// `""` when the organization has none.
        region: String,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Organizations {
        status: u8,
        error_msg: String,
        #[schema(inline)]
        organizations: Vec<Organization>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Emails {
        status: u8,
        error_msg: String,
        /// The organization's email domains.
        emails: Vec<String>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Failure {
        /// 1, or 2 for a token failure.
        status: u8,
        /// Korean unless `Accept-Language` asks for English.
        error_msg: String,
        /// The native stable code.
        code: String,
    }
}

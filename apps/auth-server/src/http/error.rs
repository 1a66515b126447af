//! The one mapping from failures to RFC 9457 problem responses. Clients get a
//! status, a stable `code` and a human sentence we wrote; causes (SQL, library
//! messages, paths) go only to the log.

use std::collections::BTreeMap;

use accounts::AccountsError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use auth_core::TokenError;
use serde::Serialize;
use storage::StorageError;

/// An error on its way to the client. Kept small (it travels in every
/// `Result` of the HTTP layer): the `type` URI and `title` are derived from
/// `code` and `status` when the body is written.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, snake_case; clients switch on it.
    pub code: &'static str,
    pub detail: String,
    /// Per-field problems for `validation_failed`.
    pub errors: BTreeMap<String, Vec<String>>,
    pub www_authenticate: bool,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u32>,
}

/// An RFC 9457 problem (`application/problem+json`): every native error.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct Problem<'a> {
    /// `urn:auth-server:problem:<code>`.
    #[serde(rename = "type")]
    kind: String,
    /// The HTTP status's reason phrase.
    title: &'static str,
    /// The HTTP status code.
    status: u16,
    /// A sentence for people; it may change between versions.
    detail: &'a str,
    /// Stable, snake_case: what clients switch on.
    code: &'static str,
    /// Per-field problems (`validation_failed`, `weak_password`): field name to reasons.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    errors: &'a BTreeMap<String, Vec<String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: BTreeMap::new(),
            www_authenticate: false,
            retry_after: None,
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request; it has been logged",
        )
    }

    pub fn unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service is temporarily unavailable; try again shortly",
        );
        e.retry_after = Some(2);
        e
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this resource",
        )
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, code, detail);
        e.www_authenticate = true;
        e
    }

    pub fn validation(field: &str, reason: &str) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "some fields are invalid; see errors",
        );
        e.errors.insert(field.to_owned(), vec![reason.to_owned()]);
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.www_authenticate {
            let value = match self.code {
                "invalid_token" | "token_expired" | "token_revoked" => {
                    format!(
                        "Bearer realm=\"auth-server\", error=\"invalid_token\", error_description=\"{}\"",
                        self.code
                    )
                }
                _ => "Bearer realm=\"auth-server\"".to_owned(),
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.insert_header((header::WWW_AUTHENTICATE, value));
            }
        }
        let problem = Problem {
            kind: format!("urn:auth-server:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        };
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        use AccountsError as E;
        match e {
            E::InvalidCredentials => {
                Self::unauthorized("invalid_credentials", "the login or password is wrong")
            }
            E::AccountNotActive => Self::new(
                StatusCode::FORBIDDEN,
                "account_not_active",
                "the account is not active",
            ),
            E::InvalidRefreshToken => Self::unauthorized(
                "invalid_refresh_token",
                "the refresh token is invalid, expired or revoked",
            ),
            E::TokenRevoked => Self::unauthorized("token_revoked", "the token has been revoked"),
            E::RefreshTokenReused(_) => Self::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked, log in again",
            ),
            E::EmailTaken => Self::new(
                StatusCode::CONFLICT,
                "email_taken",
                "this email address is already registered",
            ),
            E::UsernameTaken => Self::new(
                StatusCode::CONFLICT,
                "username_taken",
                "this username is already taken",
            ),
            E::UserNotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "no such user"),
            E::InvalidCode => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_code",
                "the code is wrong, expired or already used; ask for a new one if needed",
            ),
            E::TooManyAttempts => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many wrong codes; this code no longer works, ask for a new one",
            ),
            E::Throttled { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!("too many requests; try again in {retry_after_secs} s"),
                );
                e.retry_after = Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX));
                e
            }
            E::TooManyRequests { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "a code was sent moments ago; you can ask again in {retry_after_secs} s"
                    ),
                );
                e.retry_after = Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX));
                e
            }
            E::WeakPassword(reason) => {
                let mut e = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "weak_password",
                    format!("the password is too weak: {reason}"),
                );
                e.errors.insert("password".to_owned(), vec![reason]);
                e
            }
            E::OrganizationNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "organization_not_found",
                "no such organization",
            ),
            E::EmailDomainNotAllowed => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "email_domain_not_allowed",
                "the email address is not under one of the organization's domains",
            ),
            E::EmailNotVerified => Self::new(
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "verify the email address for this organization first (it is valid for 24 hours)",
            ),
            E::DomainExists => Self::new(
                StatusCode::CONFLICT,
                "domain_exists",
                "the organization already has this domain",
            ),
            E::InvalidPermissions {
                unknown,
                duplicates,
                valid,
            } => {
                let mut e = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    format!("invalid permissions; valid ones are: {}", valid.join(", ")),
                );
                let mut problems: Vec<String> = unknown
                    .iter()
                    .map(|p| format!("unknown permission {p}"))
                    .collect();
                problems.extend(duplicates.iter().map(|p| format!("{p} is listed twice")));
                e.errors.insert("permissions".to_owned(), problems);
                e
            }
            E::UnknownRole(role) => {
                let mut e = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "valid roles are: admin, org_admin, member",
                );
                e.errors
                    .insert("roles".to_owned(), vec![format!("unknown role {role}")]);
                e
            }
            E::PermissionNotHeld(missing) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "permission_not_held",
                format!(
                    "you can only grant permissions you hold; missing: {}",
                    missing.join(", ")
                ),
            ),
            E::Forbidden => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "you are not allowed to do this",
            ),
            E::AlreadyDecided => Self::new(
                StatusCode::CONFLICT,
                "already_decided",
                "this registration has already been decided",
            ),
            E::RegistrationPending => Self::new(
                StatusCode::CONFLICT,
                "registration_pending",
                "a registration for this email address is already waiting for review; we will write to you soon",
            ),
            E::RegistrationNotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found", "no such registration")
            }
            E::InvalidActivationToken => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_activation_token",
                "the activation link is invalid, expired or already used; ask for a new one at POST /api/v1/auth/activation/resend",
            ),
            E::InvalidClient => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the client credentials are invalid",
            ),
            E::ApiTokenNotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found", "no such API token")
            }
            E::SessionNotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "no such session"),
            E::Mail(e) => {
                tracing::error!(error = %e, "mail could not be prepared");
                Self::internal()
            }
            E::Invalid(p) => Self::validation(p.field, p.reason),
            E::Storage(e) => e.into(),
            E::BackgroundTask => Self::internal(),
            E::Token(e) => {
                tracing::error!(error = %e, "token signing failed");
                Self::internal()
            }
            E::Hash(accounts::password::HashError::Busy { retry_after_secs }) => {
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many password checks are waiting; try again shortly",
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            E::Hash(e) => {
                tracing::error!(error = %e, "password hashing failed");
                Self::internal()
            }
        }
    }
}

/// The blocking task panicked or was cancelled (already logged).
impl From<accounts::BlockingTaskFailed> for ApiError {
    fn from(_: accounts::BlockingTaskFailed) -> Self {
        Self::internal()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidText(_) => {
                tracing::info!(error = %e, "input refused by the database");
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "a value contains characters that are not allowed (such as NUL)",
                )
            }
            StorageError::Pool(_) | StorageError::Connect(_) => {
                tracing::error!(error = %e, "database unavailable");
                Self::unavailable()
            }
            other => {
                tracing::error!(error = %other, "database error");
                Self::internal()
            }
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => {
                Self::unauthorized("token_expired", "the access token has expired")
            }
            TokenError::Revoked => {
                Self::unauthorized("token_revoked", "the token has been revoked")
            }
            TokenError::Signing => Self::internal(),
            _ => Self::unauthorized("invalid_token", "the access token is invalid"),
        }
    }
}

/// Collects every field problem of a request, so a client sees them all at
/// once (`validation_failed` with an `errors` map).
pub struct FieldErrors(ApiError);

impl Default for FieldErrors {
    fn default() -> Self {
        Self(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "some fields are invalid; see errors",
        ))
    }
}

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn refuse(&mut self, field: &str, reason: &str) {
        self.0
            .errors
            .entry(field.to_owned())
            .or_default()
            .push(reason.to_owned());
    }

    pub fn require<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.refuse(field, "is required");
        }
        value
    }

    /// A parsed value; its error is reported under the parser's field name.
    pub fn take<T>(&mut self, parsed: Result<T, accounts::ParseError>) -> Option<T> {
        parsed.map_err(|e| self.refuse(e.field, e.reason)).ok()
    }

    /// A parsed value; its error is reported under `field` (a seed's name).
    pub fn take_as<T>(
        &mut self,
        field: &str,
        parsed: Result<T, accounts::ParseError>,
    ) -> Option<T> {
        parsed.map_err(|e| self.refuse(field, e.reason)).ok()
    }

    /// The collected problems as one error (for callers that know there are some).
    pub fn into_error(self) -> ApiError {
        self.0
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.errors.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

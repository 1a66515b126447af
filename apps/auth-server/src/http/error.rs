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

#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    #[serde(rename = "status")]
    pub status_code: u16,
    pub detail: String,
    pub code: &'static str,
    /// Per-field problems for `validation_failed`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, Vec<String>>,
    #[serde(skip)]
    pub www_authenticate: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind: format!("urn:auth-server:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status_code: status.as_u16(),
            detail: detail.into(),
            code,
            errors: BTreeMap::new(),
            www_authenticate: false,
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
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service is temporarily unavailable; try again shortly",
        )
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
        write!(f, "{} {}: {}", self.status_code, self.code, self.detail)
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
        response.body(serde_json::to_string(self).unwrap_or_default())
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
            E::Invalid(p) => Self::validation(p.field, p.reason),
            E::Storage(e) => e.into(),
            E::Token(e) => {
                tracing::error!(error = %e, "token signing failed");
                Self::internal()
            }
            E::Hash(e) => {
                tracing::error!(error = %e, "password hashing failed");
                Self::internal()
            }
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
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
            TokenError::Signing => Self::internal(),
            _ => Self::unauthorized("invalid_token", "the access token is invalid"),
        }
    }
}

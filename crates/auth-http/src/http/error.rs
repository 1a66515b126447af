//! The one mapping from failures to RFC 9457 problem responses. Clients get a
//! status, a stable `code` and a human sentence we wrote; causes (SQL, library
//! messages, paths) go only to the log.

use std::borrow::Cow;

use accounts::{AccountsError, Locale};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use auth_core::TokenError;
use serde::Serialize;

/// An error on its way to the client. Kept small (it travels in every
/// `Result` of the HTTP layer): the `type` URI and `title` are derived from
/// `code` and `status` when the body is written.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, snake_case; clients switch on it.
    pub code: &'static str,
    pub detail: String,
    /// Per-field problems (`validation_failed`, `invalid_request`, `weak_password`).
    pub errors: Vec<FieldError>,
    pub www_authenticate: bool,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u32>,
    /// RFC 9457 extension members beside the standard ones (`mfa_token`,
    /// `methods` of `mfa_required`).
    pub extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
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
    /// Per-field problems (`validation_failed`, `invalid_request`, `weak_password`),
    /// ordered by field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ProblemField<'a>>,
    /// Members some problems add (`mfa_required`: `mfa_token`, `methods`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    extensions: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// One field's problem in a [`Problem`].
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ProblemField)]
pub(crate) struct ProblemField<'a> {
    /// The request field, as sent (`login`, `permissions[2]`).
    field: &'a str,
    /// Stable, snake_case: `required`, `expected_string`, `too_long`, `invalid_email`, …
    code: &'static str,
    /// A sentence for people, in the request's language (`Accept-Language`: Korean by
    /// default, or English).
    message: &'a str,
}

/// A field that was refused: where, a stable code, and what to tell people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// Stable, snake_case; clients switch on it.
    pub code: &'static str,
    /// What is wrong, in English, as a phrase after the field name ("is required").
    pub reason: Cow<'static, str>,
    /// The same in Korean.
    reason_ko: Cow<'static, str>,
}

impl FieldError {
    /// A problem whose code and Korean text come from the catalog of reasons
    /// ([`describe_reason`]); unknown reasons are the general `invalid`.
    pub fn from_reason(field: impl Into<String>, reason: impl Into<Cow<'static, str>>) -> Self {
        let reason = reason.into();
        let (code, ko) = describe_reason(&reason);
        Self {
            field: field.into(),
            code,
            reason,
            reason_ko: Cow::Borrowed(ko),
        }
    }

    /// A problem with a code of its own, in both languages.
    pub fn new(
        field: impl Into<String>,
        code: &'static str,
        reason: impl Into<Cow<'static, str>>,
        reason_ko: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            code,
            reason: reason.into(),
            reason_ko: reason_ko.into(),
        }
    }

    pub fn message(&self, locale: Locale) -> &str {
        match locale {
            Locale::Ko => &self.reason_ko,
            _ => &self.reason,
        }
    }
}

/// The stable code and the Korean sentence for each reason the domain types
/// and handlers give (in English, as a phrase after the field name). A test
/// checks that every reason written in `accounts` and in this crate is here.
pub fn describe_reason(reason: &str) -> (&'static str, &'static str) {
    match reason {
        "is required" => ("required", "필수 항목입니다."),
        "must be at most 64 characters" => ("too_long", "64자 이하여야 합니다."),
        "is incomplete" => ("incomplete", "입력이 완전하지 않습니다."),
        "is too long" => ("too_long", "너무 깁니다."),
        "is longer than 254 characters" => ("too_long", "254자를 넘을 수 없습니다."),
        "must be at least 8 characters" => ("too_short", "8자 이상이어야 합니다."),
        "must be at most 128 characters" => ("too_long", "128자 이하여야 합니다."),
        "must be 3 to 32 characters" => ("invalid_length", "3자 이상 32자 이하여야 합니다."),
        "must be 1 to 100 characters" => ("invalid_length", "1자 이상 100자 이하여야 합니다."),
        "must be 1 to 200 characters" => ("invalid_length", "1자 이상 200자 이하여야 합니다."),
        "must be 1 to 2000 characters" => ("invalid_length", "1자 이상 2000자 이하여야 합니다."),
        "must be 1 to 100 characters, without control characters" => (
            "invalid_length",
            "제어 문자 없이 1자 이상 100자 이하여야 합니다.",
        ),
        "must be 1 to 64 letters, digits, '-' or '_'" => (
            "invalid_characters",
            "영문자, 숫자, '-', '_'로 1자 이상 64자 이하여야 합니다.",
        ),
        "may contain only a-z, 0-9, '.', '_' and '-'" => (
            "invalid_characters",
            "a-z, 0-9, '.', '_', '-'만 쓸 수 있습니다.",
        ),
        "must not contain control characters" => {
            ("invalid_characters", "제어 문자를 쓸 수 없습니다.")
        }
        "is not a valid email address" => ("invalid_email", "올바른 이메일 주소가 아닙니다."),
        "needs a valid, fully qualified domain" => {
            ("invalid_email", "이메일 주소의 도메인이 올바르지 않습니다.")
        }
        "is not a valid domain name" => ("invalid_domain", "올바른 도메인 이름이 아닙니다."),
        "is not a valid phone number" => ("invalid_phone", "올바른 전화번호가 아닙니다."),
        "is not a valid organization id" => ("invalid_id", "올바른 단체 id가 아닙니다."),
        "is not an organization you can join" => {
            ("invalid_value", "가입할 수 있는 학교/단체가 아닙니다.")
        }
        "must be between 1 and the configured maximum" => {
            ("out_of_range", "1 이상, 설정된 최댓값 이하여야 합니다.")
        }
        "must be pending_review, approved or rejected" => (
            "invalid_value",
            "pending_review, approved, rejected 중 하나여야 합니다.",
        ),
        "must be a number" => ("expected_integer", "숫자여야 합니다."),
        "is not a number of days" => ("expected_integer", "일 수(숫자)여야 합니다."),
        "is not your password" => ("wrong_password", "현재 비밀번호와 다릅니다."),
        "does not match" => ("mismatch", "일치하지 않습니다."),
        "is not acceptable" => ("invalid_value", "사용할 수 없는 값입니다."),
        "must be RS256, ES256 or EdDSA (relying parties can't check HS256 without our secret)" => (
            "invalid_value",
            "RS256, ES256, EdDSA 중 하나여야 합니다 (HS256 토큰은 서버의 비밀 키 없이 검증할 수 없습니다).",
        ),
        "may be organization, permissions, and permission names of the catalog" => (
            "invalid_value",
            "organization, permissions, 또는 권한 목록의 권한 이름만 쓸 수 있습니다.",
        ),
        "must be an absolute URI" => ("invalid_uri", "절대 URI여야 합니다."),
        "must have no fragment and no user info" => (
            "invalid_uri",
            "프래그먼트(#)나 사용자 정보가 없어야 합니다.",
        ),
        "must be at most 2000 characters without spaces" => {
            ("invalid_uri", "공백 없이 2000자 이하여야 합니다.")
        }
        "must use https (http only on localhost)" => (
            "invalid_uri",
            "https를 써야 합니다(http는 localhost에서만).",
        ),
        "must use https, http on localhost, or (public clients) a reverse-domain scheme" => (
            "invalid_uri",
            "https, localhost의 http, 또는 (공개 클라이언트) 역도메인 스킴을 써야 합니다.",
        ),
        _ => ("invalid", "올바르지 않은 값입니다."),
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            www_authenticate: false,
            retry_after: None,
            extensions: None,
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

    pub fn validation(field: &str, reason: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "some fields are invalid; see errors",
        );
        e.errors.push(FieldError::from_reason(field, reason));
        e
    }

    /// The refused fields, each once, in order.
    pub fn fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = self.errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        fields.dedup();
        fields
    }

    /// The first reason given for `field`, in English.
    pub fn reason(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.reason.as_ref())
    }

    /// The response in `locale`: field messages (and the sentence that
    /// introduces them) in the request's language.
    pub fn render(&self, locale: Locale) -> HttpResponse {
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
        let mut errors: Vec<&FieldError> = self.errors.iter().collect();
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        let problem = Problem {
            kind: format!("urn:auth-server:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: self.localized_detail(locale),
            code: self.code,
            errors: errors
                .into_iter()
                .map(|e| ProblemField {
                    field: &e.field,
                    code: e.code,
                    message: e.message(locale),
                })
                .collect(),
            extensions: self.extensions.as_deref(),
        };
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }

    /// The sentence that introduces field problems, in Korean when asked;
    /// details that say more (which permissions exist, …) stay as written.
    fn localized_detail(&self, locale: Locale) -> &str {
        if locale != Locale::Ko || self.errors.is_empty() {
            return &self.detail;
        }
        match (self.code, self.detail.as_str()) {
            ("validation_failed", "some fields are invalid; see errors") => {
                "입력값이 올바르지 않습니다. errors를 확인하세요."
            }
            ("invalid_request", detail) if detail.ends_with("see errors") => {
                "요청을 읽을 수 없습니다. errors를 확인하세요."
            }
            ("weak_password", _) => {
                "비밀번호가 너무 쉽습니다. 더 길고 추측하기 어려운 비밀번호를 사용하세요."
            }
            _ => &self.detail,
        }
    }

    /// Whether [`render`](Self::render) depends on the language.
    pub fn is_localized(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The detail with the field problems written into it, for answers
    /// whose shape has no `errors` member (the compatibility profiles):
    /// "the JSON body does not have the expected fields: login must be a
    /// string". Without field problems, the detail as it is.
    pub fn summary(&self) -> String {
        let (detail, fields) = self.without_errors_list();
        if fields.is_empty() {
            return detail.to_owned();
        }
        format!("{detail}: {}", fields.join(", "))
    }

    /// The detail without its pointer to the `errors` list, and each field
    /// problem as a phrase ("login must be a string"): what an answer
    /// whose shape has no `errors` member is written from.
    pub fn without_errors_list(&self) -> (&str, Vec<String>) {
        let fields = self
            .errors
            .iter()
            .map(|e| format!("{} {}", e.field, e.reason))
            .collect();
        (self.detail.trim_end_matches("; see errors"), fields)
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

    /// Korean, the default; `http::finish_response` renders it again in the
    /// request's language when that differs.
    fn error_response(&self) -> HttpResponse {
        self.render(Locale::default())
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
                // The contract's one name for every 429 of the native API.
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many attempts; try again in {retry_after_secs} s"),
                );
                e.retry_after = Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX));
                e
            }
            E::TooManyRequests { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
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
                e.errors.push(FieldError::new(
                    "password",
                    "weak_password",
                    reason,
                    "너무 쉽습니다. 더 길고 추측하기 어려운 비밀번호를 사용하세요.",
                ));
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
                e.errors.extend(unknown.iter().map(|p| {
                    FieldError::new(
                        "permissions",
                        "unknown_permission",
                        format!("unknown permission {p}"),
                        format!("알 수 없는 권한입니다: {p}"),
                    )
                }));
                e.errors.extend(duplicates.iter().map(|p| {
                    FieldError::new(
                        "permissions",
                        "duplicate",
                        format!("{p} is listed twice"),
                        format!("{p}이(가) 두 번 들어 있습니다."),
                    )
                }));
                e
            }
            E::UnknownRole(role) => {
                let mut e = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "valid roles are: admin, org_admin, member",
                );
                e.errors.push(FieldError::new(
                    "roles",
                    "unknown_role",
                    format!("unknown role {role}"),
                    format!("알 수 없는 역할입니다: {role}"),
                ));
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
            E::LastAdmin => Self::new(
                StatusCode::CONFLICT,
                "last_admin",
                "this is the last active admin: make another admin first",
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
            E::InvalidGrant => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the code or refresh token is invalid, expired, used, or not this client's",
            ),
            E::UnauthorizedClient => Self::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "this client may not use this grant",
            ),
            E::InvalidScope => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "a scope asked for was not granted to this client",
            ),
            E::AuthorizationPending => Self::new(
                StatusCode::BAD_REQUEST,
                "authorization_pending",
                "the user has not answered yet",
            ),
            E::SlowDown => Self::new(
                StatusCode::BAD_REQUEST,
                "slow_down",
                "polled too often; wait 5 s longer between polls",
            ),
            E::ExpiredToken => Self::new(
                StatusCode::BAD_REQUEST,
                "expired_token",
                "the device code expired; start again",
            ),
            E::AccessDenied => Self::new(
                StatusCode::BAD_REQUEST,
                "access_denied",
                "the user denied the request",
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
            E::MfaRequired(challenge) => {
                let mut e = Self::unauthorized(
                    "mfa_required",
                    "the password is right; finish with a second factor at POST /api/v1/auth/mfa/verify",
                );
                let mut members = serde_json::Map::new();
                members.insert(
                    "mfa_token".to_owned(),
                    secrecy::ExposeSecret::expose_secret(&challenge.mfa_token).into(),
                );
                members.insert(
                    "methods".to_owned(),
                    challenge
                        .methods
                        .iter()
                        .map(|m| serde_json::Value::from(m.as_str()))
                        .collect(),
                );
                e.extensions = Some(Box::new(members));
                e
            }
            E::InvalidSecondFactor => {
                Self::unauthorized("invalid_code", "the code is wrong or was already used")
            }
            E::InvalidMfaToken => Self::unauthorized(
                "invalid_mfa_token",
                "the mfa_token is invalid, expired, used, or dead after too many wrong codes; log in again",
            ),
            E::StepUpRequired => Self::new(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "this needs a recent authentication: authenticate again (with your second factor, if you have one)",
            ),
            E::MfaEnrollmentRequired => Self::new(
                StatusCode::FORBIDDEN,
                "mfa_enrollment_required",
                "your role requires a second factor: enrol one at POST /api/v1/auth/mfa/totp first",
            ),
            E::AlreadyEnrolled => Self::new(
                StatusCode::CONFLICT,
                "already_enrolled",
                "an authenticator is already enrolled; remove it first",
            ),
            E::NotEnrolled => Self::new(
                StatusCode::CONFLICT,
                "not_enrolled",
                "no second factor is enrolled",
            ),
            E::PasskeysUnavailable => Self::new(
                StatusCode::CONFLICT,
                "passkeys_unavailable",
                "passkeys need the server's public URL to name a host (an IP address can't be a WebAuthn relying party)",
            ),
            E::InvalidPasskeyRegistration => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_credential",
                "the passkey's answer is invalid, expired, already used, or the passkey is registered already; start again",
            ),
            E::InvalidPasskey => Self::unauthorized(
                "invalid_credential",
                "the passkey's answer is invalid, expired or already used; start again",
            ),
            E::PasskeyNotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "no such passkey"),
            E::TooManyPasskeys => Self::new(
                StatusCode::CONFLICT,
                "too_many_passkeys",
                "this account has as many passkeys as it may; remove one first",
            ),
            E::Mail(e) => {
                tracing::error!(error = %e, "mail could not be prepared");
                Self::internal()
            }
            E::Invalid(p) => Self::validation(p.field, p.reason),
            E::Unavailable(reason) => {
                tracing::error!(reason, "database unavailable");
                Self::unavailable()
            }
            E::Storage(e) => {
                tracing::error!(error = %e, "database error");
                Self::internal()
            }
            E::BackgroundTask | E::KeyReloadWithoutSource => Self::internal(),
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

impl ApiError {
    /// `Retry-After` for a refusal that says when to come back (429, 503):
    /// every front-end's own error shape sends it too.
    pub fn retry_after_header(&self) -> Option<(actix_web::http::header::HeaderName, u32)> {
        self.retry_after
            .map(|seconds| (actix_web::http::header::RETRY_AFTER, seconds))
    }
}

/// The blocking task panicked or was cancelled (already logged).
impl From<accounts::BlockingTaskFailed> for ApiError {
    fn from(_: accounts::BlockingTaskFailed) -> Self {
        Self::internal()
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
            TokenError::Signing | TokenError::NoSigningKey => Self::internal(),
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

    pub fn refuse(&mut self, field: &str, reason: &'static str) {
        self.0.errors.push(FieldError::from_reason(field, reason));
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

    /// The values the fields were parsed into, all of them, or the
    /// collected problems: a validated request can't be half-used. Pass the
    /// `Option`s `require`/`take` returned, one or a tuple.
    pub fn finish<V: Required>(self, values: V) -> Result<V::Values, ApiError> {
        if !self.0.errors.is_empty() {
            return Err(self.0);
        }
        // `require` and `take` record a problem for every `None` they return.
        values
            .all()
            .ok_or_else(|| ApiError::validation("request", "is incomplete"))
    }
}

/// Parsed fields that must all be present (see [`FieldErrors::finish`]).
pub trait Required {
    type Values;
    fn all(self) -> Option<Self::Values>;
}

impl<A> Required for Option<A> {
    type Values = A;
    fn all(self) -> Option<A> {
        self
    }
}

macro_rules! required_tuple {
    ($($name:ident),+) => {
        impl<$($name),+> Required for ($(Option<$name>,)+) {
            type Values = ($($name,)+);
            #[allow(non_snake_case)]
            fn all(self) -> Option<Self::Values> {
                let ($($name,)+) = self;
                Some(($($name?,)+))
            }
        }
    };
}
required_tuple!(A, B);
required_tuple!(A, B, C);
required_tuple!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::*;

    /// The string literals given as a reason in `source`: after `reason:`,
    /// and as the second argument of `refuse(…)` and `validation(…)`.
    fn reasons(source: &str) -> Vec<String> {
        let literal = |rest: &str| -> Option<String> {
            let rest = rest.trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        };
        let mut found = Vec::new();
        for (i, _) in source.match_indices("reason:") {
            found.extend(literal(&source[i + "reason:".len()..]));
        }
        for call in ["refuse(", "validation("] {
            for (i, _) in source.match_indices(call) {
                let args = &source[i + call.len()..];
                // The second argument: after the first comma at depth 0.
                let mut depth = 0;
                let comma = args.char_indices().find_map(|(j, c)| match c {
                    '(' | '[' => {
                        depth += 1;
                        None
                    }
                    ')' | ']' if depth == 0 => Some(None),
                    ')' | ']' => {
                        depth -= 1;
                        None
                    }
                    ',' if depth == 0 => Some(Some(j)),
                    _ => None,
                });
                if let Some(Some(j)) = comma {
                    found.extend(literal(&args[j + 1..]));
                }
            }
        }
        found
    }

    /// Every reason the domain types and the server give has a stable code
    /// and a Korean sentence, so none reaches a client as the general `invalid`.
    #[test]
    fn every_reason_written_has_a_code_and_a_korean_sentence() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["../../crates/accounts/src", "src"] {
            let mut stack = vec![root.join(dir)];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        files.push(path);
                    }
                }
            }
        }
        let mut checked = 0;
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            // What the code says, not its tests.
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            for reason in reasons(code) {
                assert_ne!(
                    describe_reason(&reason).0,
                    "invalid",
                    "{}: the reason {reason:?} has no code in describe_reason",
                    file.display()
                );
                checked += 1;
            }
        }
        assert!(
            checked > 20,
            "found only {checked} reasons: is the scan broken?"
        );
        assert_eq!(describe_reason("something new").0, "invalid");
    }
}

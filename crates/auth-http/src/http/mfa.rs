//! `/api/v1/auth/mfa/*` and `/api/v1/auth/step-up`: the login's second
//! step, TOTP enrolment and removal, recovery codes, the user's second
//! factors, and authenticating again for sensitive operations. Every rule
//! is `accounts::mfa`'s; these parse and shape.

use accounts::{AccountsError, PasskeyAssertion, SecondFactor, StepUpProof};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::auth::{no_store, token_response};
use super::error::{ApiError, Problem};
use super::extract::{Enrolling, JsonOrForm, client_info};
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

/// Which second factor a code is.
#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethodName {
    Totp,
    RecoveryCode,
}

/// A passkey as the second factor.
#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyMethodName {
    Webauthn,
}

/// The login's second step: the `mfa_token` and a code, or a passkey's
/// answer (`challenge_id` from POST /api/v1/auth/passkeys/login/options and
/// the browser's `credential`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VerifyBody {
    Code {
        /// From the login's `mfa_required` answer.
        #[schema(value_type = String, max_length = 256)]
        mfa_token: SecretString,
        method: MfaMethodName,
        /// Six digits from the authenticator app, or a recovery code.
        #[schema(schema_with = schema::second_factor_code)]
        code: String,
    },
    Passkey {
        /// From the login's `mfa_required` answer.
        #[schema(value_type = String, max_length = 256)]
        mfa_token: SecretString,
        method: PasskeyMethodName,
        #[schema(max_length = 256)]
        challenge_id: String,
        /// The browser's `PublicKeyCredential` (`toJSON()` form).
        #[schema(value_type = Object)]
        credential: serde_json::Value,
    },
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConfirmBody {
    /// The app's current six-digit code.
    #[schema(schema_with = schema::second_factor_code)]
    code: String,
}

/// Authenticating again: `method` and `code`, or a passkey's
/// `challenge_id` and `credential`, for a user with a second factor; or
/// `password` for a user without one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum StepUpBody {
    Factor {
        method: MfaMethodName,
        #[schema(schema_with = schema::second_factor_code)]
        code: String,
    },
    Passkey {
        /// From POST /api/v1/auth/passkeys/login/options.
        #[schema(max_length = 256)]
        challenge_id: String,
        /// The browser's `PublicKeyCredential` (`toJSON()` form).
        #[schema(value_type = Object)]
        credential: serde_json::Value,
    },
    Password {
        #[schema(value_type = String, max_length = 1024)]
        password: SecretString,
    },
}

/// A pending TOTP enrolment.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TotpEnrolmentResponse<'a> {
    /// The secret in base32, for typing into the app.
    secret: &'a str,
    /// `otpauth://totp/…`, for a QR code.
    otpauth_uri: &'a str,
}

/// A set of recovery codes: shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecoveryCodesResponse {
    /// Ten single-use codes.
    recovery_codes: Vec<String>,
}

/// The caller's second factors.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MfaStatusResponse {
    totp: bool,
    recovery_codes_left: i64,
    passkeys: Vec<super::passkeys::PasskeyView>,
}

/// A new access token for the same session, after a step-up.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StepUpResponse<'a> {
    /// Always `Bearer`.
    token_type: &'static str,
    /// A JWT (`typ: at+jwt`) with fresh `auth_time` and `amr`.
    access_token: &'a str,
    /// Seconds until the access token expires.
    expires_in: i64,
}

fn code_too_long(code: &str) -> Result<(), ApiError> {
    if code.chars().count() > schema::CODE_MAX_CHARS {
        return Err(ApiError::validation("code", "is too long"));
    }
    Ok(())
}

fn factor(method: MfaMethodName, code: &str) -> SecondFactor<'_> {
    match method {
        MfaMethodName::Totp => SecondFactor::Totp(code),
        MfaMethodName::RecoveryCode => SecondFactor::RecoveryCode(code),
    }
}

fn recovery_codes(codes: Vec<SecretString>) -> HttpResponse {
    no_store(&mut HttpResponse::Ok()).json(RecoveryCodesResponse {
        recovery_codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
    })
}

/// The login's second step: the `mfa_token` and a code → the session's tokens.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/verify",
    tag = "auth",
    // JSON only: a passkey's answer is an object, which a form can't carry.
    request_body(content((VerifyBody = "application/json"))),
    responses(
        (status = 200, description = "A new session; its tokens carry `amr` and `auth_time`", body = super::auth::TokenResponse),
        (status = 400, description = "`invalid_request` (a field is missing or of the wrong type)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_code` (wrong or already used); `invalid_mfa_token` (unknown, expired, used, or dead after 5 wrong codes)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (the code is too long)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`: too many codes tried for this account lately", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<VerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let mfa_token = match &body {
        VerifyBody::Code {
            mfa_token, code, ..
        } => {
            code_too_long(code)?;
            mfa_token
        }
        VerifyBody::Passkey {
            mfa_token,
            challenge_id,
            ..
        } => {
            super::passkeys::challenge_id_checked(challenge_id)?;
            mfa_token
        }
    };
    if mfa_token.expose_secret().len() > schema::OPAQUE_TOKEN_MAX_BYTES {
        return Err(AccountsError::InvalidMfaToken.into());
    }
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let tokens = run_blocking(move || match &body {
        VerifyBody::Code {
            mfa_token,
            method,
            code,
        } => accounts.verify_mfa(mfa_token, factor(*method, code), &client),
        VerifyBody::Passkey {
            mfa_token,
            challenge_id,
            credential,
            ..
        } => accounts.verify_mfa(
            mfa_token,
            SecondFactor::Passkey(PasskeyAssertion {
                challenge_id,
                credential,
            }),
            &client,
        ),
    })
    .await??;
    state.metrics.record_login("success");
    tracing::info!(user_id = %tokens.claims.sub, session_id = %tokens.claims.sid, "login with a second factor");
    Ok(token_response(&tokens))
}

/// The caller's second factors.
#[utoipa::path(
    get,
    path = "/api/v1/auth/mfa",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "TOTP enrolled or not, recovery codes left, passkeys", body = MfaStatusResponse),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn status(
    state: web::Data<AppState>,
    Enrolling(claims): Enrolling,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let status = run_blocking(move || accounts.mfa_status(&claims.sub)).await??;
    Ok(no_store(&mut HttpResponse::Ok()).json(MfaStatusResponse {
        totp: status.totp,
        recovery_codes_left: status.recovery_codes_left,
        passkeys: status.passkeys.iter().map(Into::into).collect(),
    }))
}

/// Start a TOTP enrolment: a new secret, pending until confirmed.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The secret and its `otpauth://` URI (RFC 6238: SHA-1, 6 digits, 30 s)", body = TotpEnrolmentResponse),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`: authenticate again first (POST /api/v1/auth/step-up); `forbidden`: an API token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_enrolled`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn begin_totp(
    state: web::Data<AppState>,
    Enrolling(claims): Enrolling,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let enrolment = run_blocking(move || accounts.begin_totp(&claims.sub, &claims.sid)).await??;
    Ok(
        no_store(&mut HttpResponse::Ok()).json(TotpEnrolmentResponse {
            secret: enrolment.secret.expose_secret(),
            otpauth_uri: enrolment.otpauth_uri.expose_secret(),
        }),
    )
}

/// Confirm the TOTP enrolment with the app's first code.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp/confirm",
    tag = "auth",
    security(("bearer" = [])),
    request_body(content(
        (ConfirmBody = "application/json"),
        (ConfirmBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Enrolled; ten recovery codes, shown this once. This session now counts as authenticated with the app (refresh to get a token saying so)", body = RecoveryCodesResponse),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_code` (wrong, or no enrolment pending); `invalid_token`, `token_expired`, `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (the code is too long)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    Enrolling(claims): Enrolling,
    JsonOrForm(body): JsonOrForm<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    code_too_long(&body.code)?;
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let codes =
        run_blocking(move || accounts.confirm_totp(&claims.sub, &claims.sid, &body.code, &client))
            .await??;
    Ok(recovery_codes(codes))
}

/// Remove the TOTP authenticator.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/mfa/totp",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed (or there was none)"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`; `forbidden`: an API token; `mfa_enrollment_required`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn remove_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    super::extract::Bearer(claims): super::extract::Bearer,
) -> Result<HttpResponse, ApiError> {
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    run_blocking(move || accounts.remove_totp(&claims.sub, &claims.sid, &client)).await??;
    Ok(HttpResponse::NoContent().finish())
}

/// A new set of recovery codes; the old set stops working.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/recovery-codes",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Ten new single-use codes, shown this once", body = RecoveryCodesResponse),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`; `forbidden`: an API token; `mfa_enrollment_required`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_enrolled`: no second factor to recover", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn regenerate_recovery_codes(
    state: web::Data<AppState>,
    req: HttpRequest,
    super::extract::Bearer(claims): super::extract::Bearer,
) -> Result<HttpResponse, ApiError> {
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let codes =
        run_blocking(move || accounts.regenerate_recovery_codes(&claims.sub, &claims.sid, &client))
            .await??;
    Ok(recovery_codes(codes))
}

/// Authenticate again within the session (after `step_up_required`): the
/// second factor for users who have one, else the password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/step-up",
    tag = "auth",
    security(("bearer" = [])),
    // JSON only: the body is one of two shapes.
    request_body(content((StepUpBody = "application/json"))),
    responses(
        (status = 200, description = "A new access token for this session with a fresh `auth_time` (refreshes keep it)", body = StepUpResponse),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials` (wrong password); `invalid_code`; `invalid_token`, `token_expired`, `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`: this user must use the second factor; `forbidden`: an API token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_enrolled`: a code for a user without a second factor", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a field too long", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn step_up(
    state: web::Data<AppState>,
    req: HttpRequest,
    Enrolling(claims): Enrolling,
    JsonOrForm(body): JsonOrForm<StepUpBody>,
) -> Result<HttpResponse, ApiError> {
    match &body {
        StepUpBody::Factor { code, .. } => code_too_long(code)?,
        StepUpBody::Passkey { challenge_id, .. } => {
            super::passkeys::challenge_id_checked(challenge_id)?;
        }
        StepUpBody::Password { password } => {
            if password.expose_secret().chars().count() > schema::PASSWORD_MAX_CHARS {
                return Err(ApiError::validation("password", "is too long"));
            }
        }
    }
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let issued = run_blocking(move || {
        let proof = match &body {
            StepUpBody::Factor { method, code } => StepUpProof::Factor(factor(*method, code)),
            StepUpBody::Passkey {
                challenge_id,
                credential,
            } => StepUpProof::Factor(SecondFactor::Passkey(PasskeyAssertion {
                challenge_id,
                credential,
            })),
            StepUpBody::Password { password } => StepUpProof::Password(password),
        };
        accounts.step_up(&claims.sub, &claims.sid, proof, &client)
    })
    .await??;
    Ok(no_store(&mut HttpResponse::Ok()).json(StepUpResponse {
        token_type: "Bearer",
        access_token: &issued.access_token,
        expires_in: issued.claims.exp - issued.claims.iat,
    }))
}

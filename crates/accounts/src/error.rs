//! What an account operation can answer; the server maps each to a status
//! and a stable code.

use auth_core::TokenError;
use storage::StorageError;

use crate::password::HashError;
use crate::types::ParseError;

/// What an account operation can answer. The server maps each variant to one
/// HTTP status and stable `code`; the texts here are for logs.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// Unknown login or wrong password: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password was right but the account can't log in (pending, invited, disabled).
    #[error("account is not active")]
    AccountNotActive,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The token was spent (renewed once already) or revoked, or its
    /// session was.
    #[error("token revoked")]
    TokenRevoked,
    /// A rotated-out refresh token came back after the grace window; the whole
    /// session has been revoked.
    #[error("refresh token reused; session revoked")]
    RefreshTokenReused(Option<crate::service::RevokedSession>),
    #[error("email address already registered")]
    EmailTaken,
    #[error("username already taken")]
    UsernameTaken,
    #[error("user not found")]
    UserNotFound,
    /// The code is wrong, expired, already used or superseded.
    #[error("invalid or expired code")]
    InvalidCode,
    /// Five wrong codes: this code is dead; ask for a new one.
    #[error("too many wrong attempts")]
    TooManyAttempts,
    /// A new code was asked for before the resend cooldown ended.
    #[error("too many requests; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: i64 },
    /// A rate limit (`throttle`) is exhausted for now.
    #[error("rate limited; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: i64 },
    #[error("weak password: {0}")]
    WeakPassword(String),
    #[error("organization not found")]
    OrganizationNotFound,
    #[error("the email address is not under one of the organization's domains")]
    EmailDomainNotAllowed,
    /// Signup with an organization needs the address verified for it first.
    #[error("email address not verified for this organization")]
    EmailNotVerified,
    #[error("the organization already has this domain")]
    DomainExists,
    #[error("invalid permissions: unknown {unknown:?}, duplicated {duplicates:?}")]
    InvalidPermissions {
        unknown: Vec<String>,
        duplicates: Vec<String>,
        valid: Vec<String>,
    },
    #[error("unknown role: {0}")]
    UnknownRole(String),
    /// Asked for permissions the asker does not hold.
    #[error("permission not held: {0:?}")]
    PermissionNotHeld(Vec<String>),
    /// Disabling or demoting the last active admin would leave nobody to
    /// administer the server from the API or the pages.
    #[error("the last active admin can't be disabled or lose the admin role")]
    LastAdmin,
    #[error("forbidden")]
    Forbidden,
    #[error("registration already decided")]
    AlreadyDecided,
    #[error("a registration for this email is already waiting for review")]
    RegistrationPending,
    #[error("registration not found")]
    RegistrationNotFound,
    #[error("invalid or expired activation token")]
    InvalidActivationToken,
    #[error("invalid client credentials")]
    InvalidClient,
    /// An authorization code or a relying party's refresh token that is
    /// unknown, expired, used, or bound to another client, redirect URI or
    /// PKCE verifier (RFC 6749 `invalid_grant`, which says no more).
    #[error("invalid grant")]
    InvalidGrant,
    /// The client may not use this grant (a public client asking for
    /// client credentials).
    #[error("unauthorized client")]
    UnauthorizedClient,
    /// A scope the client was not granted.
    #[error("invalid scope")]
    InvalidScope,
    /// Device grant: the user has not answered yet (RFC 8628 §3.5).
    #[error("authorization pending")]
    AuthorizationPending,
    /// Device grant: polled sooner than the interval, which grew by 5 s.
    #[error("slow down")]
    SlowDown,
    /// Device grant: the device code expired.
    #[error("expired token")]
    ExpiredToken,
    /// Device grant: the user said no.
    #[error("access denied")]
    AccessDenied,
    #[error("API token not found")]
    ApiTokenNotFound,
    #[error("session not found")]
    SessionNotFound,
    /// The password was right; a second factor must follow
    /// ([`Accounts::verify_mfa`](crate::Accounts::verify_mfa)) with the
    /// challenge's token.
    #[error("a second factor is required")]
    MfaRequired(Box<crate::mfa::MfaChallenge>),
    /// A second-factor code (TOTP or recovery code) that is wrong, spent
    /// or replayed.
    #[error("invalid second-factor code")]
    InvalidSecondFactor,
    /// The `mfa_token` is unknown, expired, used, or dead after too many
    /// wrong codes.
    #[error("invalid or expired mfa token")]
    InvalidMfaToken,
    /// A sensitive operation needs a recent authentication (with the
    /// user's second factor, if any).
    #[error("step-up authentication required")]
    StepUpRequired,
    /// The user's role requires a second factor they haven't enrolled.
    #[error("second factor enrolment required")]
    MfaEnrollmentRequired,
    /// A TOTP authenticator is already confirmed for this user.
    #[error("already enrolled")]
    AlreadyEnrolled,
    /// The user has no second factor for this to apply to.
    #[error("no second factor enrolled")]
    NotEnrolled,
    /// Passkeys can't be used: the public URL is an IP address (WebAuthn
    /// needs a host name; a loopback address serves as `localhost`).
    #[error("passkeys are not available")]
    PasskeysUnavailable,
    /// A passkey registration's answer that is wrong, foreign, expired,
    /// used, or names a credential registered already.
    #[error("invalid passkey registration")]
    InvalidPasskeyRegistration,
    /// A passkey sign-in's answer that is wrong, foreign, expired or used.
    #[error("invalid passkey")]
    InvalidPasskey,
    #[error("passkey not found")]
    PasskeyNotFound,
    /// The account has as many passkeys as it may.
    #[error("too many passkeys")]
    TooManyPasskeys,
    /// A background task (a blocking job it started) failed; logged.
    #[error("a background task failed")]
    BackgroundTask,
    /// The background key reload was asked for, but the accounts were
    /// built without a key source to reload from.
    #[error("key reload asked for without a key source (Accounts::with_key_source)")]
    KeyReloadWithoutSource,
    #[error("mail could not be prepared: {0}")]
    Mail(#[from] mailer::MailError),
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// The database can't be reached (down, restarting, pool exhausted):
    /// try again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other persistence failure: a fault of ours, logged.
    #[error(transparent)]
    Storage(StorageError),
    #[error("token signing failed: {0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<crate::types::WeakPassword> for AccountsError {
    fn from(weak: crate::types::WeakPassword) -> Self {
        AccountsError::WeakPassword(weak.0)
    }
}

/// Sorts storage failures by what the caller should do: retry later (the
/// database is unavailable), fix the input (a value the database can't
/// hold), or nothing (a fault, logged by whoever answers).
impl From<StorageError> for AccountsError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Pool(reason) | StorageError::Connect(reason) => {
                AccountsError::Unavailable(reason)
            }
            StorageError::InvalidText(_) => AccountsError::Invalid(ParseError {
                field: "input",
                reason: "must not contain control characters",
            }),
            other => AccountsError::Storage(other),
        }
    }
}

/// Transactions report commit/rollback failures as diesel errors; they are
/// sorted like any storage failure (a connection lost at `COMMIT` is the
/// database being away: 503, not a fault).
impl From<diesel::result::Error> for AccountsError {
    fn from(e: diesel::result::Error) -> Self {
        StorageError::from(e).into()
    }
}

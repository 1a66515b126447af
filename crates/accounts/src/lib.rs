//! Accounts: users, sessions and refresh-token rotation, on top of
//! `storage` (persistence) and `auth-core` (tokens).
//!
//! Everything here is synchronous and may block on the database or on
//! Argon2 — an async caller must run it on a blocking pool. Values from the
//! outside world enter through the parsing types in [`types`].

pub mod admin;
pub mod api_tokens;
pub mod audit;
pub mod background;
pub mod blocking;
pub mod client_tokens;
pub mod clients;
pub mod codes;
pub mod device;
pub mod error;
pub mod flows;
mod group_commit;
pub mod introspection;
pub mod keys;
pub mod mfa;
pub mod oidc;
pub mod organizations;
pub mod passkeys;
pub mod password;
pub mod permissions;
pub mod registrations;
pub mod revocations;
mod rotation;
pub mod secrets;
pub mod service;
pub mod sessions;
mod step_up;
pub mod throttle;
pub mod types;

pub use admin::{Actor, Revoked, RevokedToken, UserUpdate, UserView};
pub use api_tokens::{ApiTokenView, CreatedApiToken};
pub use audit::{AuditContext, AuditEntry, AuditQuery};
pub use background::{Background, BackgroundConfig, KeyReload};
pub use blocking::{BlockingTaskFailed, run_blocking};
pub use client_tokens::{ClientTokenState, ClientTokens};
pub use clients::{AuthenticatedClient, ClientView, CreatedClient, LiveRefreshToken, VouchedUser};
pub use codes::CodeKey;
pub use device::{DeviceAuthorization, PendingDevice};
pub use error::AccountsError;
pub use flows::{SignupOutcome, SignupRequest};
pub use introspection::TokenInfo;
pub use mailer::Locale;
pub use mfa::{
    MfaChallenge, MfaMethod, MfaPolicy, MfaStatus, SecondFactor, StepUpProof, TotpEnrolment,
};
pub use oidc::{
    AuthorizationRequest, AuthorizeError, Authorized, CheckedLogout, ConsentView,
    DEFAULT_ID_TOKEN_ALG, ID_TOKEN_ALGORITHMS, LogoutNotice, LogoutRefused, LogoutRequest,
    LogoutSender, MAX_STATE_BYTES, NewClient, RelyingParty, RelyingPartyTokens, ValidAuthorization,
};
pub use organizations::Organization;
pub use passkeys::{PasskeyAssertion, PasskeyCeremony, PasskeyName, PasskeySignIn, PasskeySummary};
pub use password::{HashCost, PasswordHasher};
pub use permissions::{PermissionCatalog, Role};
pub use registrations::{RegistrationForm, RegistrationView};
pub use secrets::SealingKey;
pub use service::{
    Accounts, AccountsConfig, Channel, ClientInfo, Health, IssuedAccess, IssuedTokens, NewAccount,
    OutboxCounts, RevokedSession, SessionPolicy,
};
pub use sessions::{ActivationPreview, BrowserSession, ENDED_SESSION_RETENTION, SessionView};
pub use throttle::{Limit, Rate, Throttle, ThrottleRates};
pub use types::{
    DisplayName, Domain, EmailAddress, LoginId, ParseError, Password, PhoneNumber, UserStatus,
    Username,
};

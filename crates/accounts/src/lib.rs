//! Accounts: users, sessions and refresh-token rotation, on top of
//! `storage` (persistence) and `auth-core` (tokens).
//!
//! Everything here is synchronous and may block on the database or on
//! Argon2 — an async caller must run it on a blocking pool. Values from the
//! outside world enter through the parsing types in [`types`].

pub mod codes;
pub mod error;
pub mod flows;
pub mod organizations;
pub mod password;
pub mod secrets;
pub mod service;
pub mod types;

pub use codes::CodeKey;
pub use error::AccountsError;
pub use flows::{SignupOutcome, SignupRequest};
pub use mailer::Locale;
pub use organizations::Organization;
pub use password::{HashCost, PasswordHasher};
pub use service::{
    Accounts, AccountsConfig, ClientInfo, IssuedTokens, NewAccount, RevokedSession, SessionPolicy,
};
pub use types::{
    DisplayName, Domain, EmailAddress, LoginId, ParseError, Password, UserStatus, Username,
};

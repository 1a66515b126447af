//! Accounts: users, sessions and refresh-token rotation, on top of
//! `storage` (persistence) and `auth-core` (tokens).
//!
//! Everything here is synchronous and may block on the database or on
//! Argon2 — an async caller must run it on a blocking pool. Values from the
//! outside world enter through the parsing types in [`types`].

pub mod error;
pub mod password;
pub mod secrets;
pub mod service;
pub mod types;

pub use error::AccountsError;
pub use password::{HashCost, PasswordHasher};
pub use service::{Accounts, ClientInfo, IssuedTokens, NewAccount, RevokedSession, SessionPolicy};
pub use types::{DisplayName, EmailAddress, LoginId, ParseError, Password, UserStatus, Username};

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
    #[error(transparent)]
    Invalid(#[from] ParseError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("token signing failed: {0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Transactions report commit/rollback failures as diesel errors.
impl From<diesel::result::Error> for AccountsError {
    fn from(e: diesel::result::Error) -> Self {
        AccountsError::Storage(e.into())
    }
}

//! Everything that can go wrong in persistence, for the log (never a client).

use thiserror::Error;

/// Everything that can go wrong below the domain. The server maps all of these
/// to a 5xx/503 without showing the text; only the log sees it.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("unsupported database url (expected postgres://…, sqlite://… or a file path)")]
    UnsupportedUrl,
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("connection pool: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// A UNIQUE constraint refused the row; callers turn this into a domain error.
    #[error("unique constraint violated")]
    UniqueViolation,
    #[error("row not found")]
    NotFound,
    /// A text value the database can't store (PostgreSQL refuses NUL
    /// characters in text): bad input, not a fault of ours.
    #[error("text the database cannot hold: {0}")]
    InvalidText(String),
    #[error("database error: {0}")]
    Query(#[source] diesel::result::Error),
}

impl From<diesel::result::Error> for StorageError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => StorageError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StorageError::UniqueViolation
            }
            // The server went away mid-query, or before the query could be
            // sent on a pooled connection: the database is unavailable, not
            // the query wrong (callers answer 503, not 500).
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => StorageError::Connect(info.message().to_owned()),
            // PostgreSQL: 22021 character_not_in_repertoire (a NUL byte in a
            // text parameter). SQLite stores such text; PostgreSQL can't.
            Error::DatabaseError(_, info) if info.message().contains("invalid byte sequence") => {
                StorageError::InvalidText(info.message().to_owned())
            }
            other => StorageError::Query(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StorageError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StorageError::Pool(e.to_string())
    }
}

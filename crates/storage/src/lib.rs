//! Persistence for the auth server: one diesel code path over SQLite (the
//! embedded, zero-configuration default) and PostgreSQL (production).
//!
//! - [`DatabaseUrl::parse`] picks the backend from the URL;
//! - [`connect`] builds an r2d2 pool (SQLite connections get WAL,
//!   `busy_timeout` and `foreign_keys=ON`);
//! - [`migrations::run_pending`] applies the embedded migrations;
//! - [`repo`] holds the queries, table by table.
//!
//! Everything here blocks: call it from a blocking thread pool, never from an
//! async executor's worker.

pub mod audit;
pub mod connection;
pub mod error;
pub mod migrations;
pub mod models;
mod prepared;
pub mod repo;
pub mod schema;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use connection::{
    AnyConnection, Backend, ChangeListener, Changes, DatabaseUrl, DbConn, DbPool, PoolOptions,
    connect,
};
pub use diesel::Connection;
pub use error::StorageError;

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
mod checkpoint;
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

/// Lowercase hex, the stored text form of hashes and secrets. Two table
/// lookups per byte: this runs for every token hashed (a `format!` per
/// byte was ≈ 7 % of the server's CPU under refresh load).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa0, 0xff, 0x5c]), "000fa0ff5c");
        assert_eq!(super::hex(&[]), "");
    }
}

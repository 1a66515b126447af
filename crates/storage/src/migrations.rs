//! Embedded migrations, one folder per backend (see `build.rs` for why edits
//! rebuild this crate).

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::connection::AnyConnection;
use crate::error::StorageError;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Applies every pending migration; returns the versions applied.
pub fn run_pending(conn: &mut AnyConnection) -> Result<Vec<String>, StorageError> {
    let applied = match conn {
        AnyConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES),
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE),
    }
    .map_err(|e| StorageError::Migration(e.to_string()))?;
    Ok(applied.into_iter().map(|v| v.to_string()).collect())
}

/// True when migrations are still pending (the server refuses to serve then,
/// unless it runs them itself).
pub fn has_pending(conn: &mut AnyConnection) -> Result<bool, StorageError> {
    let pending = match conn {
        AnyConnection::Postgresql(c) => c.has_pending_migration(POSTGRES),
        AnyConnection::Sqlite(c) => c.has_pending_migration(SQLITE),
    }
    .map_err(|e| StorageError::Migration(e.to_string()))?;
    Ok(pending)
}

//! Embedded migrations, one folder per backend (see `build.rs` for why edits
//! rebuild this crate).

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::connection::AnyConnection;
use crate::error::StorageError;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Applies every pending migration; returns the versions applied.
///
/// On PostgreSQL, instances starting together would each try the same
/// migration (and all but one fail on the tables the first created): a
/// session advisory lock makes them take turns, and the later ones find
/// nothing pending. SQLite's write lock serializes them already.
pub fn run_pending(conn: &mut AnyConnection) -> Result<Vec<String>, StorageError> {
    let names = |applied: Vec<diesel::migration::MigrationVersion<'_>>| {
        applied.into_iter().map(|v| v.to_string()).collect()
    };
    let applied = match conn {
        AnyConnection::Postgresql(c) => {
            use diesel::connection::SimpleConnection;
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let applied = c.run_pending_migrations(POSTGRES).map(names);
            let unlocked = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            // A migration's own error says more than a failed unlock.
            if applied.is_ok() {
                unlocked?;
            }
            applied
        }
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE).map(names),
    };
    applied.map_err(|e| StorageError::Migration(e.to_string()))
}

/// The advisory lock migrations take on PostgreSQL (an arbitrary constant
/// of ours: "auth" in ASCII).
const MIGRATION_LOCK: i64 = 0x6175_7468;

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

/// Reverts the last applied migration (tests of a data migration: revert
/// it, write the rows it is for, apply it again).
#[cfg(feature = "test-support")]
pub fn revert_last(conn: &mut AnyConnection) -> Result<String, StorageError> {
    let reverted = match conn {
        AnyConnection::Postgresql(c) => c.revert_last_migration(POSTGRES).map(|v| v.to_string()),
        AnyConnection::Sqlite(c) => c.revert_last_migration(SQLITE).map(|v| v.to_string()),
    };
    reverted.map_err(|e| StorageError::Migration(e.to_string()))
}

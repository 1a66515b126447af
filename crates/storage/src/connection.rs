//! One connection type over both backends, and the pool that hands them out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool};
use diesel::{PgConnection, SqliteConnection};

use crate::error::StorageError;

/// A connection to whichever backend the URL chose. PostgreSQL is listed first:
/// diesel tries variants in order, and SQLite would accept any string as a path.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// The connection pool shared by the server and the CLI.
pub type DbPool = Pool<ConnectionManager>;
/// A connection checked out of [`DbPool`].
pub type DbConn = diesel::r2d2::PooledConnection<ConnectionManager>;

/// Which backend a configured URL selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://` or `postgresql://`, passed to libpq unchanged.
    Postgres(String),
    /// `sqlite://PATH` or a bare path.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// `postgres://…` selects PostgreSQL; `sqlite://PATH` or a plain path selects
    /// SQLite. In-memory SQLite is refused: every pooled connection would see a
    /// different, empty database.
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = match url.strip_prefix("sqlite://") {
            Some(path) => path,
            None if url.contains("://") => return Err(StorageError::UnsupportedUrl),
            None => url,
        };
        if path.is_empty() || path == ":memory:" || path.contains("mode=memory") {
            return Err(StorageError::UnsupportedUrl);
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Opens connections for the pool. We pick the variant by URL ourselves rather
/// than using diesel's `MultiConnection::establish`, which replaces libpq's
/// real message ("connection refused", "database does not exist") with a
/// generic one.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

/// Why a connection could not be opened (libpq's or SQLite's own words).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// SQLite settings applied to every connection: WAL lets readers run beside
/// the one writer, `busy_timeout` makes writers queue instead of failing with
/// SQLITE_BUSY, and foreign keys are off by default in SQLite.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA busy_timeout = 10000;
PRAGMA foreign_keys = ON;
PRAGMA synchronous = NORMAL;";

fn establish(url: &DatabaseUrl) -> Result<AnyConnection, ConnectError> {
    match url {
        DatabaseUrl::Postgres(url) => PgConnection::establish(url)
            .map(AnyConnection::Postgresql)
            .map_err(|e| ConnectError(e.to_string())),
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                .map_err(|e| ConnectError(e.to_string()))?;
            conn.batch_execute(SQLITE_PRAGMAS)
                .map_err(|e| ConnectError(e.to_string()))?;
            Ok(AnyConnection::Sqlite(conn))
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        establish(&self.url)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// Pool sizing and timeouts.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connection_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds the pool. For SQLite the parent folder is created first, so the
/// zero-configuration default `./var/auth.db` works on a fresh checkout.
/// Fails (with the backend's own message) when the database can't be reached.
pub fn connect(url: &DatabaseUrl, options: &PoolOptions) -> Result<DbPool, StorageError> {
    if let DatabaseUrl::Sqlite(path) = url {
        create_parent_dir(path)?;
    }
    // Fail fast with the real cause instead of r2d2's "timed out" after retries.
    establish(url).map_err(|e| StorageError::Connect(e.0))?;
    if let DatabaseUrl::Sqlite(path) = url {
        restrict_to_owner(path);
    }
    Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(1))
        .connection_timeout(options.connection_timeout)
        .build(ConnectionManager { url: url.clone() })
        .map_err(|e| StorageError::Connect(e.to_string()))
}

/// The database holds password hashes and session data: owner-only, like
/// the key files. SQLite gives its `-wal` and `-shm` files the same mode.
/// Best effort: a file owned by someone else keeps its mode, with a warning.
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "could not make the database file owner-only");
    }
}

fn create_parent_dir(path: &Path) -> Result<(), StorageError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .map_err(|e| StorageError::Connect(format!("{}: {e}", parent.display()))),
        _ => Ok(()),
    }
}

impl AnyConnection {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgresql(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }
}

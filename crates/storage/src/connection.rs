//! One connection type over both backends, and the pool that hands them out.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, R2D2Connection};
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
///
/// Checking out a connection costs no round trip (r2d2's default would send
/// `SELECT 1` first, one extra statement per request). Instead every
/// connection watches its own queries ([`Health`]): one that lost its server
/// is dropped when it goes back to the pool, and once any connection lost
/// its server, the connections opened before that are tested with
/// `SELECT 1` at their next checkout, so after a database restart the pool
/// does not hand out its stale connections one failing request at a time.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    /// Connection losses seen so far, by any connection of this pool.
    losses: Arc<AtomicU64>,
    /// A connection idle this long is tested before it is handed out: the
    /// server, a proxy or a firewall may have closed it meanwhile without
    /// any query of ours failing (`idle_session_timeout`, PgBouncer's
    /// `server_idle_timeout`, NAT timeouts).
    idle_check_after: Duration,
    /// SQLite: one transaction at a time (see [`WriterGate`]).
    gate: Option<Arc<WriterGate>>,
    /// SQLite: a checkpoint thread serves the pool ([`crate::checkpoint`]).
    checkpointing: bool,
}

/// Per-connection instrumentation: notices when a query fails because the
/// server is gone. Any default instrumentation diesel was given
/// (`set_default_instrumentation`) still sees every event.
struct Health {
    /// `losses` when the connection was opened or last tested.
    checked_at: u64,
    /// When its last query finished (or it was opened).
    last_used: Instant,
    /// A query failed because the connection to the server is gone.
    lost: bool,
    /// The checkout test is running: its failure is this connection's own
    /// and must not make the whole pool re-test.
    probing: bool,
    losses: Arc<AtomicU64>,
    /// SQLite: the pool's one-writer gate, and what this connection does
    /// with it (see [`WriterGate`]).
    gate: Option<Arc<WriterGate>>,
    gate_state: GateState,
    inner: Option<Box<dyn Instrumentation>>,
}

/// Where a SQLite connection stands with the pool's [`WriterGate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GateState {
    Free,
    /// Holds the gate; its `BEGIN` is running.
    Beginning,
    /// Holds the gate for its open transaction.
    Held,
    /// Its `COMMIT` or `ROLLBACK` is running; the gate is released when
    /// that statement has finished.
    Ending,
}

/// SQLite's one writer, in-process: every transaction on the pool's
/// connections passes this gate at `BEGIN` and leaves it after its `COMMIT`
/// or `ROLLBACK` has finished, so transactions queue here, woken the moment
/// the previous one ends, instead of colliding on SQLite's write lock,
/// whose busy handler sleeps and polls (a lock convoy under load: writers
/// asleep while the lock is free). `busy_timeout` remains for other
/// processes (the CLI) and statements outside transactions.
///
/// First come, first served (a ticket queue): a thread that writes batch
/// after batch, like the refresh-token writer, can't starve a login's
/// transaction or the checkpoint thread, which would otherwise lose every
/// race for the freed gate to the thread that just freed it.
///
/// Re-entrant per thread: a thread that holds it and opens a transaction on
/// a second connection passes (SQLite itself then decides, as before).
#[derive(Debug, Default)]
pub struct WriterGate {
    state: Mutex<GateQueue>,
    released: Condvar,
}

#[derive(Debug, Default)]
struct GateQueue {
    /// The holder and how many times it entered.
    owner: Option<(ThreadId, u32)>,
    /// The next ticket to hand out, and the ticket whose turn it is.
    next_ticket: u64,
    serving: u64,
}

/// The gate held outside any transaction ([`WriterGate::hold`]).
pub(crate) struct GateHeld<'a>(&'a WriterGate);

impl Drop for GateHeld<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl WriterGate {
    /// Holds the gate until the guard is dropped: no transaction of the
    /// pool begins meanwhile (the checkpoint thread's restart).
    pub(crate) fn hold(&self) -> GateHeld<'_> {
        self.acquire();
        GateHeld(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateQueue> {
        // Consistent whenever the lock is released, panic or not.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn acquire(&self) {
        let me = std::thread::current().id();
        let mut state = self.lock();
        if let Some((owner, depth)) = &mut state.owner
            && *owner == me
        {
            *depth += 1;
            return;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while state.owner.is_some() || state.serving != ticket {
            state = self.released.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.owner = Some((me, 1));
    }

    fn release(&self) {
        let mut state = self.lock();
        if let Some((_, depth)) = &mut state.owner {
            *depth -= 1;
            if *depth == 0 {
                state.owner = None;
                state.serving += 1;
                // Only the next ticket's thread may go on; it is one of
                // the waiters (rarely more than a few).
                self.released.notify_all();
            }
        }
    }
}

impl Drop for Health {
    /// A connection dropped inside a transaction (broken, or its thread
    /// panicked) must not keep the gate.
    fn drop(&mut self) {
        if let Some(gate) = &self.gate
            && self.gate_state != GateState::Free
        {
            gate.release();
        }
    }
}

impl Health {
    /// Follows top-level transactions through the SQLite writer gate.
    fn follow_transaction(&mut self, event: &InstrumentationEvent<'_>) {
        let Some(gate) = &self.gate else { return };
        match event {
            InstrumentationEvent::BeginTransaction { depth, .. }
                if depth.get() == 1 && self.gate_state == GateState::Free =>
            {
                gate.acquire();
                self.gate_state = GateState::Beginning;
            }
            InstrumentationEvent::CommitTransaction { depth, .. }
            | InstrumentationEvent::RollbackTransaction { depth, .. }
                if depth.get() == 1 && self.gate_state == GateState::Held =>
            {
                self.gate_state = GateState::Ending;
            }
            InstrumentationEvent::FinishQuery { error, .. } => match self.gate_state {
                GateState::Ending => {
                    gate.release();
                    self.gate_state = GateState::Free;
                }
                // `BEGIN` itself failed: no transaction to wait for.
                GateState::Beginning if error.is_some() => {
                    gate.release();
                    self.gate_state = GateState::Free;
                }
                GateState::Beginning => self.gate_state = GateState::Held,
                GateState::Held | GateState::Free => {}
            },
            _ => {}
        }
    }
}

impl Instrumentation for Health {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        self.follow_transaction(&event);
        if let InstrumentationEvent::FinishQuery { error, .. } = &event {
            self.last_used = Instant::now();
            if let Some(error) = error
                && is_connection_loss(error)
                && !self.lost
            {
                self.lost = true;
                if !self.probing {
                    self.losses.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        if let Some(inner) = &mut self.inner {
            inner.on_connection_event(event);
        }
    }
}

/// Errors after which the connection is useless: the server closed it, or
/// libpq could not send (or get an answer to) a command on it.
fn is_connection_loss(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        error,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        )
    )
}

fn health(conn: &mut AnyConnection) -> Option<&mut Health> {
    conn.instrumentation().downcast_mut::<Health>()
}

/// Why a connection could not be opened (libpq's or SQLite's own words).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// SQLite settings applied to every connection: WAL lets readers run beside
/// the one writer, `busy_timeout` makes writers queue instead of failing with
/// SQLITE_BUSY, and foreign keys are off by default in SQLite. The writers'
/// automatic checkpoint is only a backstop: a pool's checkpoint thread does
/// it ([`crate::checkpoint`]).
/// `journal_size_limit` trims the log file back when it is started over
/// after a burst took it past the restart size.
fn sqlite_pragmas(checkpointing: bool) -> String {
    let autocheckpoint = if checkpointing {
        crate::checkpoint::BACKSTOP_PAGES
    } else {
        SQLITE_DEFAULT_AUTOCHECKPOINT
    };
    format!(
        "PRAGMA journal_mode = WAL;
PRAGMA busy_timeout = 10000;
PRAGMA foreign_keys = ON;
PRAGMA synchronous = NORMAL;
PRAGMA wal_autocheckpoint = {autocheckpoint};
PRAGMA journal_size_limit = {};",
        crate::checkpoint::LOG_SIZE_LIMIT_BYTES
    )
}

/// SQLite's own automatic checkpoint (pages), for pools without a
/// checkpoint thread.
const SQLITE_DEFAULT_AUTOCHECKPOINT: i32 = 1000;

/// `checkpointing`: a checkpoint thread serves the pool (SQLite).
fn establish(url: &DatabaseUrl, checkpointing: bool) -> Result<AnyConnection, ConnectError> {
    match url {
        DatabaseUrl::Postgres(url) => PgConnection::establish(url)
            .map(AnyConnection::Postgresql)
            .map_err(|e| ConnectError(e.to_string())),
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                .map_err(|e| ConnectError(e.to_string()))?;
            conn.batch_execute(&sqlite_pragmas(checkpointing))
                .map_err(|e| ConnectError(e.to_string()))?;
            Ok(AnyConnection::Sqlite(conn))
        }
    }
}

impl ConnectionManager {
    fn new(
        url: DatabaseUrl,
        idle_check_after: Duration,
        gate: Option<Arc<WriterGate>>,
        checkpointing: bool,
    ) -> Self {
        Self {
            checkpointing,
            url,
            losses: Arc::new(AtomicU64::new(0)),
            idle_check_after,
            gate,
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        // Read before connecting: a loss seen while this connection is being
        // opened may predate it, and then it gets tested once.
        let checked_at = self.losses.load(Ordering::SeqCst);
        let mut conn = establish(&self.url, self.checkpointing)?;
        let inner = diesel::connection::get_default_instrumentation();
        conn.set_instrumentation(Health {
            checked_at,
            last_used: Instant::now(),
            lost: false,
            probing: false,
            losses: self.losses.clone(),
            gate: self.gate.clone(),
            gate_state: GateState::Free,
            inner,
        });
        Ok(conn)
    }

    /// Called at checkout. Free for a connection in use lately, unless a
    /// connection lost its server since this one was last known good; then,
    /// or after `idle_check_after` unused, one `SELECT 1`.
    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        let losses = self.losses.load(Ordering::SeqCst);
        match health(conn) {
            Some(h) if h.lost => return Err(ConnectError("connection lost".to_owned())),
            Some(h) if h.checked_at == losses && h.last_used.elapsed() < self.idle_check_after => {
                return Ok(());
            }
            Some(h) => h.probing = true,
            None => {}
        }
        let tested = conn.batch_execute("SELECT 1");
        if let Some(h) = health(conn) {
            h.probing = false;
            h.checked_at = losses;
        }
        tested.map_err(|e| ConnectError(e.to_string()))
    }

    /// Called when a connection goes back to the pool: it is dropped if it
    /// lost its server, or if diesel considers it broken (a transaction left
    /// open or a failed rollback).
    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        // A connection still holding the writer gate (SQLite rolled back by
        // itself and diesel saw no rollback of ours) would keep every other
        // writer out: dropped here, it releases the gate.
        health(conn).is_some_and(|h| h.lost || h.gate_state != GateState::Free)
            || R2D2Connection::is_broken(conn)
    }
}

/// Pool sizing and timeouts.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connection_timeout: Duration,
    /// Connections unused this long are tested (`SELECT 1`) at checkout.
    pub idle_check_after: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connection_timeout: Duration::from_secs(5),
            idle_check_after: Duration::from_secs(30),
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
    establish(url, false).map_err(|e| StorageError::Connect(e.0))?;
    let (gate, checkpointing) = match url {
        DatabaseUrl::Sqlite(path) => {
            restrict_to_owner(path);
            let gate = Arc::new(WriterGate::default());
            let checkpointing = crate::checkpoint::start(path, &gate);
            (Some(gate), checkpointing)
        }
        DatabaseUrl::Postgres(_) => (None, false),
    };
    Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(1))
        // Cheap: see `ConnectionManager::is_valid`.
        .test_on_check_out(true)
        .connection_timeout(options.connection_timeout)
        .build(ConnectionManager::new(
            url.clone(),
            options.idle_check_after,
            gate,
            checkpointing,
        ))
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

/// The channel on which PostgreSQL announces new revocations (a trigger on
/// the `revocations` table, so every inserting path notifies).
pub const REVOCATIONS_CHANNEL: &str = "auth_revocations";
/// The channel on which PostgreSQL announces a change of the signing keys
/// kept in the database (a trigger on `signing_keys`).
pub const KEYS_CHANNEL: &str = "auth_keys";

/// What a [`ChangeListener`] heard of since it was last asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub revocations: bool,
    pub keys: bool,
}

/// A connection of its own, outside the pool, that `LISTEN`s for new
/// revocations and key changes, so other instances hear of a logout or a
/// rotation as it commits instead of at their next poll. PostgreSQL only:
/// SQLite has one process.
pub struct ChangeListener {
    conn: PgConnection,
}

impl ChangeListener {
    /// `None` on SQLite.
    pub fn connect(url: &DatabaseUrl) -> Result<Option<Self>, StorageError> {
        let DatabaseUrl::Postgres(url) = url else {
            return Ok(None);
        };
        let mut conn =
            PgConnection::establish(url).map_err(|e| StorageError::Connect(e.to_string()))?;
        conn.batch_execute(&format!(
            "LISTEN {REVOCATIONS_CHANNEL}; LISTEN {KEYS_CHANNEL}"
        ))?;
        Ok(Some(Self { conn }))
    }

    /// What arrived since the last call. Never waits: it reads what the
    /// socket already holds. An error means the connection is gone; connect
    /// again.
    pub fn arrived(&mut self) -> Result<Changes, StorageError> {
        let mut changes = Changes::default();
        for notice in self.conn.notifications_iter() {
            match notice?.channel.as_str() {
                KEYS_CHANNEL => changes.keys = true,
                _ => changes.revocations = true,
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn the_writer_gate_is_first_come_first_served() {
        // A thread that takes the gate again as soon as it leaves it must
        // not keep a waiting thread out: the waiter goes next.
        let gate = WriterGate::default();
        let turns = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            gate.acquire();
            scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    gate.acquire();
                    turns.fetch_add(1, Ordering::SeqCst);
                    gate.release();
                }
            });
            // The busy thread is queued behind us before the waiter is.
            while gate.lock().next_ticket < 2 {
                std::thread::yield_now();
            }
            let waiter = scope.spawn(|| {
                let _held = gate.hold();
                turns.load(Ordering::SeqCst)
            });
            while gate.lock().next_ticket < 3 {
                std::thread::yield_now();
            }
            gate.release();
            let turns_before_waiter = waiter.join().unwrap();
            stop.store(true, Ordering::SeqCst);
            assert_eq!(turns_before_waiter, 1, "the waiter was overtaken");
        });
    }

    #[test]
    fn the_writer_gate_is_reentrant_per_thread() {
        let gate = WriterGate::default();
        gate.acquire();
        gate.acquire();
        gate.release();
        assert!(gate.lock().owner.is_some());
        gate.release();
        assert!(gate.lock().owner.is_none());
    }
}

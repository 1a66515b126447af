//! SQLite checkpoints off the writers' path.
//!
//! In WAL mode every commit appends the pages it changed to the log, and a
//! checkpoint copies them back into the database file. SQLite's automatic
//! checkpoint runs inside the commit that fills the log (1000 pages by
//! default): the writer holding the write lock copies and syncs the whole
//! log while every other writer waits. Under a refresh load that was ≈ 40 %
//! of the writer's time (the refresh statements alone: 7.5–8k rotations/s
//! with it, 15.5k/s with checkpoints off) and the whole p99 (a batch that
//! checkpointed took 20–50 ms against a median of 2 ms).
//!
//! Here one background thread per pool does it instead, on its own
//! connection: a `PASSIVE` checkpoint every few milliseconds while the log
//! grows copies pages beside the writers without blocking them. When a
//! pass finds every frame copied, the next writer starts the log over by
//! itself; but under a steady stream of commits a pass never catches up
//! (frames are appended while it copies), and the log would grow until the
//! backstop below. So when the log passes [`RESTART_PAGES`], the thread
//! repeats passive passes until little was appended since the previous one,
//! then takes the pool's [`WriterGate`] (no transaction of this process
//! begins meanwhile) for a `RESTART` checkpoint: it copies those last
//! frames, waits at most 10 ms for readers still on the log, and the next
//! writer starts the log over. Writers wait for that step only, once per
//! 32 MiB of log. If the passes can't catch up, or a reader (a backup,
//! another process) keeps the log, the restart waits: for new frames, and
//! after each refusal twice as many passes as before.
//!
//! The writers' own automatic checkpoint stays, raised to
//! [`BACKSTOP_PAGES`], for when this thread falls that far behind; a pool
//! whose thread could not start keeps SQLite's default.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;

use crate::connection::WriterGate;

/// Log size (pages) at which the log is checkpointed completely and
/// started over: 32 MiB of 4 KiB pages. Larger means rarer waits for
/// writers (at 2 000 pages the refresh p99 was 17–20 ms, at 8 000 it is
/// 3.5–5 ms).
pub(crate) const RESTART_PAGES: i32 = 8000;
/// The writers' automatic checkpoint, a backstop only: 128 MiB.
pub(crate) const BACKSTOP_PAGES: i32 = 32_000;
/// The log file is trimmed to this when it is started over, so a burst
/// that took it to the backstop does not keep 128 MiB on disk; above the
/// restart size, so the steady state does not shrink and regrow it.
pub(crate) const LOG_SIZE_LIMIT_BYTES: i64 = 40 << 20;
/// Before the restart, passive passes are repeated (at most this often)
/// until one finds at most this many frames appended since the previous.
const CATCH_UP_PASSES: usize = 8;
const CAUGHT_UP_PAGES: i32 = 128;
/// Pause between passes while the log grows, and while it does not.
const BUSY_PAUSE: Duration = Duration::from_millis(20);
const IDLE_PAUSE: Duration = Duration::from_millis(250);
/// How long the restarting checkpoint waits for readers on the log while
/// it holds the writer gate; if they are not done by then, the log is
/// restarted at a later pass.
const RESTART_BUSY_TIMEOUT_MS: u32 = 10;

/// What `PRAGMA wal_checkpoint` answers.
#[derive(QueryableByName, Debug)]
struct Checkpointed {
    /// 1 when the checkpoint could not finish (a writer or reader in the way).
    #[diesel(sql_type = Integer)]
    busy: i32,
    /// Frames in the log.
    #[diesel(sql_type = Integer)]
    log: i32,
    /// Frames of the log copied into the database file.
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> QueryResult<Checkpointed> {
    diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")).get_result(conn)
}

/// Starts the checkpoint thread of the pool whose gate is `gate`; it ends
/// at its next pass after the pool (and so the gate) is dropped. False
/// when it could not start: the writers then checkpoint as SQLite does by
/// default.
pub(crate) fn start(path: &Path, gate: &Arc<WriterGate>) -> bool {
    let opened = SqliteConnection::establish(&path.to_string_lossy()).and_then(|mut conn| {
        conn.batch_execute(&format!("PRAGMA busy_timeout = {RESTART_BUSY_TIMEOUT_MS};"))
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    });
    let conn = match opened {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "no SQLite checkpoint thread: writers checkpoint themselves");
            return false;
        }
    };
    let gate = Arc::downgrade(gate);
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".to_owned())
        .spawn(move || run(conn, &gate));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no SQLite checkpoint thread: writers checkpoint themselves");
        return false;
    }
    true
}

fn run(mut conn: SqliteConnection, gate: &Weak<WriterGate>) {
    let mut pacing = Pacing::default();
    loop {
        // Only while copying: a dropped pool ends the thread.
        let Some(gate) = gate.upgrade() else { return };
        let pause = match pass(&mut conn, &gate, &mut pacing) {
            Ok(()) => pacing.pause(),
            Err(e) => {
                tracing::warn!(error = %e, "SQLite checkpoint failed; trying again");
                IDLE_PAUSE
            }
        };
        drop(gate);
        std::thread::sleep(pause);
    }
}

/// What the thread remembers between passes.
#[derive(Default)]
struct Pacing {
    /// The log's size at the last pass, and whether it had grown since the
    /// pass before.
    last_log: i32,
    growing: bool,
    /// The log's size when it was last restarted (or found busy): no
    /// restart again until writers have appended to it.
    restarted_at: i32,
    /// Restarts refused by readers in a row: each one doubles the wait
    /// before the next try (a long reader, such as a backup, keeps the log).
    refused: u32,
    /// Passes to skip before trying to restart again.
    restart_after: u32,
}

impl Pacing {
    fn pause(&self) -> Duration {
        if self.growing { BUSY_PAUSE } else { IDLE_PAUSE }
    }
}

/// One pass (see the module doc).
fn pass(conn: &mut SqliteConnection, gate: &WriterGate, pacing: &mut Pacing) -> QueryResult<()> {
    let mut passive = checkpoint(conn, "PASSIVE")?;
    pacing.growing = passive.log != pacing.last_log;
    pacing.last_log = passive.log;
    pacing.restart_after = pacing.restart_after.saturating_sub(1);
    if passive.log < RESTART_PAGES || passive.log == pacing.restarted_at || pacing.restart_after > 0
    {
        return Ok(());
    }
    // Catch up first: what writers appended while the last pass copied,
    // until little is left for the step that makes them wait. If the
    // writers outpace the passes, no restart this time (the backstop
    // bounds the log).
    let mut caught_up = false;
    for _ in 0..CATCH_UP_PASSES {
        let before = passive.log;
        passive = checkpoint(conn, "PASSIVE")?;
        if passive.log < before || passive.log - before <= CAUGHT_UP_PAGES {
            caught_up = true;
            break;
        }
    }
    if !caught_up {
        return Ok(());
    }
    let restart = {
        let _held = gate.hold();
        checkpoint(conn, "RESTART")?
    };
    pacing.restarted_at = restart.log;
    if restart.busy == 0 {
        pacing.refused = 0;
    } else {
        pacing.refused = (pacing.refused + 1).min(6);
        pacing.restart_after = 1 << pacing.refused;
        tracing::debug!(
            log = restart.log,
            checkpointed = restart.checkpointed,
            "SQLite log not restarted: readers still on it"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_frames(conn: &mut SqliteConnection) -> i32 {
        // A checkpoint answers the log's size; nothing is left to copy here.
        checkpoint(conn, "PASSIVE").unwrap().log
    }

    /// Writes `pages` pages of log in transactions of 100 pages.
    fn write_pages(conn: &mut SqliteConnection, pages: usize) {
        for _ in 0..pages / 100 {
            conn.transaction(|c| {
                c.batch_execute(
                    "INSERT INTO filler SELECT randomblob(3900) FROM \
                     (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                     WHERE i < 100) SELECT i FROM n)",
                )
            })
            .unwrap();
        }
    }

    #[test]
    fn a_pass_copies_the_log_and_the_next_writer_starts_it_over() {
        let dir = std::env::temp_dir().join(format!("auth-ckpt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let open = || {
            let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
                .unwrap();
            conn
        };
        let (mut writer, mut checkpointer) = (open(), open());
        writer
            .batch_execute("CREATE TABLE filler (data BLOB)")
            .unwrap();
        let gate = WriterGate::default();

        // With no checkpoint (the writers' own is off here) the log grows.
        write_pages(&mut writer, RESTART_PAGES as usize);
        write_pages(&mut writer, 100);
        let wal = std::fs::metadata(dir.join("db.sqlite-wal")).unwrap().len();
        assert!(wal >= RESTART_PAGES as u64 * 4096, "{wal} bytes of log");

        let mut pacing = Pacing::default();
        pass(&mut checkpointer, &gate, &mut pacing).unwrap();
        assert!(pacing.last_log >= RESTART_PAGES);
        write_pages(&mut writer, 100);
        let frames = log_frames(&mut checkpointer);
        assert!(
            frames < 500,
            "the log was not started over: {frames} frames"
        );
        drop((writer, checkpointer));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

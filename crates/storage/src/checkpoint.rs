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
//! frames, waits briefly for readers still on the log, and the next writer
//! starts the log over. Writers wait for that step only, a few times a
//! second at most under full load.
//!
//! The writers' own automatic checkpoint stays, raised to
//! [`BACKSTOP_PAGES`], for when this thread can't keep up or is gone.

use std::path::PathBuf;
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
/// at its next pass after the pool (and so the gate) is dropped.
pub(crate) fn spawn(path: PathBuf, gate: &Arc<WriterGate>) {
    let gate = Arc::downgrade(gate);
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".to_owned())
        .spawn(move || run(&path, &gate));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no SQLite checkpoint thread: writers checkpoint themselves");
    }
}

fn run(path: &std::path::Path, gate: &Weak<WriterGate>) {
    let opened = SqliteConnection::establish(&path.to_string_lossy()).and_then(|mut conn| {
        conn.batch_execute(&format!("PRAGMA busy_timeout = {RESTART_BUSY_TIMEOUT_MS};"))
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    });
    let mut conn = match opened {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "no SQLite checkpoint thread: writers checkpoint themselves");
            return;
        }
    };
    let mut last_log = 0;
    loop {
        // Only while copying: a dropped pool ends the thread.
        let Some(gate) = gate.upgrade() else { return };
        let pause = match pass(&mut conn, &gate) {
            // The log grew since the last pass: writers are busy.
            Ok(log) if log != last_log => {
                last_log = log;
                BUSY_PAUSE
            }
            Ok(_) => IDLE_PAUSE,
            Err(e) => {
                tracing::warn!(error = %e, "SQLite checkpoint failed; trying again");
                IDLE_PAUSE
            }
        };
        drop(gate);
        std::thread::sleep(pause);
    }
}

/// One pass; answers the log's size (frames) it found.
fn pass(conn: &mut SqliteConnection, gate: &WriterGate) -> QueryResult<i32> {
    let mut passive = checkpoint(conn, "PASSIVE")?;
    let found = passive.log;
    if found >= RESTART_PAGES {
        // Catch up first: what writers appended while the last pass copied,
        // until little is left for the step that makes them wait.
        for _ in 0..CATCH_UP_PASSES {
            let before = passive.log;
            passive = checkpoint(conn, "PASSIVE")?;
            if passive.log < before || passive.log - before <= CAUGHT_UP_PAGES {
                break;
            }
        }
        let _held = gate.hold();
        let restart = checkpoint(conn, "RESTART")?;
        if restart.busy != 0 {
            tracing::debug!(
                log = restart.log,
                checkpointed = restart.checkpointed,
                "SQLite log not restarted: readers still on it"
            );
        }
    }
    Ok(found)
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

        assert!(pass(&mut checkpointer, &gate).unwrap() >= RESTART_PAGES);
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

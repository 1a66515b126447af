//! SQLite's one writer, in-process: transactions on the pool's connections
//! queue at the pool's writer gate, so they never collide on SQLite's write
//! lock, and nothing depends on `busy_timeout` (here set to 0, so a
//! collision would fail at once with "database is locked").

use diesel::connection::SimpleConnection;
use storage::test_support::MigratedDatabase;
use storage::{Backend, StorageError};

const THREADS: usize = 8;
const TRANSACTIONS: usize = 40;

#[test]
fn concurrent_write_transactions_never_meet_the_sqlite_lock() {
    let db = MigratedDatabase::create(Backend::Sqlite, THREADS as u32);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let pool = db.pool.clone();
            scope.spawn(move || {
                let mut conn = pool.get().unwrap();
                conn.batch_execute("PRAGMA busy_timeout = 0").unwrap();
                for i in 0..TRANSACTIONS {
                    let key = format!("gate-{thread}-{i}");
                    let result = diesel::Connection::transaction(&mut *conn, |c| {
                        // Read first, write later: the shape that fails with
                        // SQLITE_BUSY(_SNAPSHOT) when two such transactions overlap.
                        storage::repo::throttles::tat_for_update(c, &key)?;
                        storage::repo::throttles::set_tat(c, &key, i as i64)?;
                        if i % 10 == 9 {
                            // A rolled-back transaction leaves the gate too.
                            return Err(StorageError::NotFound);
                        }
                        Ok(())
                    });
                    match result {
                        Ok(()) => {}
                        Err(StorageError::NotFound) if i % 10 == 9 => {}
                        Err(e) => panic!("thread {thread}, transaction {i}: {e}"),
                    }
                }
            });
        }
    });
    let mut conn = db.pool.get().unwrap();
    for thread in 0..THREADS {
        for i in 0..TRANSACTIONS {
            let stored =
                storage::repo::throttles::tat_for_update(&mut conn, &format!("gate-{thread}-{i}"))
                    .unwrap();
            assert_eq!(stored, (i % 10 != 9).then_some(i as i64), "{thread} {i}");
        }
    }
}

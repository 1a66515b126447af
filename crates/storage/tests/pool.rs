//! The pool checks connections out without a test query, yet never keeps
//! handing out connections whose server side is gone: PostgreSQL backends
//! are killed under an idle pool (what a database restart does to it).

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Integer;
use storage::test_support::{TestDatabase, postgres_admin_url};
use storage::{AnyConnection, Backend, PoolOptions, StorageError};

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn backend_pid(conn: &mut AnyConnection) -> Result<i32, StorageError> {
    Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)?
        .pid)
}

/// Kills these PostgreSQL backends and waits until they are gone.
fn terminate(pids: &[i32]) {
    let mut admin = PgConnection::establish(&postgres_admin_url()).unwrap();
    for pid in pids {
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(&mut admin)
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = pids
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let alive = format!("SELECT pid FROM pg_stat_activity WHERE pid IN ({list})");
    while !diesel::sql_query(&alive)
        .load::<Pid>(&mut admin)
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "backends still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connections_killed_under_the_pool_fail_once_then_are_replaced() {
    let db = TestDatabase::create(Backend::Postgres);
    let pool = storage::connect(
        &db.url,
        &PoolOptions {
            max_size: 4,
            connection_timeout: Duration::from_secs(10),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    // Four connections, all open and idle in the pool.
    let mut held: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    let pids: Vec<i32> = held.iter_mut().map(|c| backend_pid(c).unwrap()).collect();
    drop(held);

    terminate(&pids);

    // Nothing tells the pool before a query fails: the first use of a dead
    // connection fails, as "the database is unavailable", and the
    // connection is dropped.
    let first = backend_pid(&mut pool.get().unwrap());
    assert!(matches!(first, Err(StorageError::Connect(_))), "{first:?}");
    // From then on the pool tests its older connections before handing
    // them out: the three other dead ones are replaced, not used.
    let mut held: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    for conn in &mut held {
        let pid = backend_pid(conn).expect("a live connection");
        assert!(!pids.contains(&pid));
    }
    drop(held);
    drop(pool);
}

/// A connection closed while idle (an idle timeout on the server or a
/// proxy) fails no query of ours, so no loss is ever seen; it is tested
/// because it sat unused, and replaced instead of failing a request.
#[test]
fn connections_closed_while_idle_are_tested_before_use() {
    let db = TestDatabase::create(Backend::Postgres);
    let pool = storage::connect(
        &db.url,
        &PoolOptions {
            max_size: 2,
            idle_check_after: Duration::from_millis(200),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let mut held: Vec<_> = (0..2).map(|_| pool.get().unwrap()).collect();
    let pids: Vec<i32> = held.iter_mut().map(|c| backend_pid(c).unwrap()).collect();
    drop(held);
    terminate(&pids);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..2 {
        let pid = backend_pid(&mut pool.get().unwrap()).expect("a live connection");
        assert!(!pids.contains(&pid));
    }
    drop(pool);
}

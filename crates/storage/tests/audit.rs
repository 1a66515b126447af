//! The hash-chained audit log on both backends: appends chain correctly,
//! edits and deletions are found, pages come newest first, and concurrent
//! writers still produce one unbroken chain.

use chrono::{NaiveDate, NaiveDateTime, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use ring::digest::{SHA256, digest};
use storage::audit::{self, AuditEntry, AuditFilter, ChainCheck, GENESIS};
use storage::models::AuditRow;
use storage::schema::audit_log;
use storage::test_support::MigratedDatabase;
use storage::{AnyConnection, Backend, StorageError};

const HASH_MISMATCH: &str = "hash does not match its contents";
const LINK_MISMATCH: &str = "prev_hash does not match the previous row";

fn migrated(backend: Backend) -> MigratedDatabase {
    MigratedDatabase::create(backend, 4)
}

fn now() -> NaiveDateTime {
    Utc::now().trunc_subsecs(6).naive_utc()
}

fn entry(event: &str, n: usize) -> AuditEntry {
    AuditEntry {
        at: now(),
        actor: Some("admin".to_owned()),
        subject: Some(format!("user-{n}")),
        organization_id: None,
        ip: Some("192.0.2.1".to_owned()),
        user_agent: Some("test/1.0".to_owned()),
        event: event.to_owned(),
        details: format!(r#"{{"n":{n}}}"#),
    }
}

fn append(conn: &mut AnyConnection, entry: AuditEntry) -> AuditRow {
    conn.transaction(|c| {
        storage::repo::write_lock(c)?;
        audit::append(c, entry)
    })
    .unwrap()
}

fn append_numbered(conn: &mut AnyConnection, count: usize) -> Vec<AuditRow> {
    (0..count)
        .map(|n| append(conn, entry("login.succeeded", n)))
        .collect()
}

fn broken(row_id: i64, reason: &str) -> ChainCheck {
    ChainCheck::Broken {
        row_id,
        reason: reason.to_owned(),
    }
}

#[test]
fn canonical_hash_is_sha256_of_prev_hash_and_json_array() {
    let at = NaiveDate::from_ymd_opt(2026, 1, 2)
        .unwrap()
        .and_hms_micro_opt(3, 4, 5, 120_000)
        .unwrap();
    let entry = AuditEntry {
        at,
        actor: Some("admin".to_owned()),
        subject: Some("u1".to_owned()),
        organization_id: None,
        ip: Some("192.0.2.1".to_owned()),
        user_agent: None,
        event: "login.succeeded".to_owned(),
        details: r#"{"method":"password"}"#.to_owned(),
    };
    let input = format!(
        "{GENESIS}\n{}",
        r#"["2026-01-02T03:04:05.120000Z","admin","u1",null,"192.0.2.1",null,"login.succeeded","{\"method\":\"password\"}"]"#
    );
    let expected: String = digest(&SHA256, input.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(audit::canonical_hash(GENESIS, &entry), expected);
    assert_eq!(GENESIS.len(), 64);
    assert!(GENESIS.bytes().all(|b| b == b'0'));
}

fn appends_link_into_one_verified_chain(backend: Backend) {
    let fx = migrated(backend);
    let mut conn = fx.pool.get().unwrap();
    let rows = append_numbered(&mut conn, 5);

    assert_eq!(rows[0].prev_hash, GENESIS);
    for pair in rows.windows(2) {
        assert!(pair[0].id < pair[1].id);
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for row in &rows {
        assert_eq!(row.hash.len(), 64);
        assert!(row.hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    // What was returned is what was stored.
    let mut stored = audit::page(&mut conn, &AuditFilter::default(), None, 10).unwrap();
    stored.reverse();
    assert_eq!(stored, rows);
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        ChainCheck::Intact { rows: 5 }
    );
}

fn empty_log_is_intact(backend: Backend) {
    let fx = migrated(backend);
    let mut conn = fx.pool.get().unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        ChainCheck::Intact { rows: 0 }
    );
}

fn append_outside_a_transaction_is_refused(backend: Backend) {
    let fx = migrated(backend);
    let mut conn = fx.pool.get().unwrap();
    let err = audit::append(&mut conn, entry("logout", 0)).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Query(diesel::result::Error::NotInTransaction)
        ),
        "{err:?}"
    );
    assert!(
        audit::page(&mut conn, &AuditFilter::default(), None, 10)
            .unwrap()
            .is_empty()
    );
}

fn edits_and_deletions_are_detected(backend: Backend) {
    let fx = migrated(backend);
    let mut conn = fx.pool.get().unwrap();
    let rows = append_numbered(&mut conn, 5);
    let third = &rows[2];

    conn.batch_execute(&format!(
        r#"UPDATE audit_log SET details = '{{"n":99}}' WHERE id = {}"#,
        third.id
    ))
    .unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        broken(third.id, HASH_MISMATCH)
    );

    diesel::update(audit_log::table.find(third.id))
        .set(audit_log::details.eq(&third.details))
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        ChainCheck::Intact { rows: 5 }
    );

    conn.batch_execute(&format!("DELETE FROM audit_log WHERE id = {}", rows[3].id))
        .unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        broken(rows[4].id, LINK_MISMATCH)
    );

    // Deleting the oldest row leaves the next one not chained onto GENESIS,
    // and the first bad row is reported, not the later one.
    conn.batch_execute(&format!("DELETE FROM audit_log WHERE id = {}", rows[0].id))
        .unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        broken(rows[1].id, LINK_MISMATCH)
    );
}

fn rewriting_prev_hash_is_detected(backend: Backend) {
    let fx = migrated(backend);
    let mut conn = fx.pool.get().unwrap();
    let rows = append_numbered(&mut conn, 3);
    diesel::update(audit_log::table.find(rows[1].id))
        .set(audit_log::prev_hash.eq(GENESIS))
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        broken(rows[1].id, HASH_MISMATCH)
    );
}

/// The walk goes in batches of 1000; the link from one batch to the next
/// must be checked like any other.
fn verification_spans_batches(backend: Backend) {
    let fx = migrated(backend);
    let mut conn = fx.pool.get().unwrap();
    let rows: Vec<AuditRow> = conn
        .transaction(|c| {
            storage::repo::write_lock(c)?;
            (0..1003)
                .map(|n| audit::append(c, entry("login.failed", n)))
                .collect::<Result<_, StorageError>>()
        })
        .unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        ChainCheck::Intact { rows: 1003 }
    );
    conn.batch_execute(&format!(
        "DELETE FROM audit_log WHERE id = {}",
        rows[1000].id
    ))
    .unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        broken(rows[1001].id, LINK_MISMATCH)
    );
}

fn pages_filter_newest_first_with_a_cursor(backend: Backend) {
    let fx = migrated(backend);
    let mut conn = fx.pool.get().unwrap();
    let specs = [
        ("login.succeeded", "alice", "u1", Some("org-a")),
        ("login.failed", "bob", "u2", None),
        ("login.succeeded", "alice", "u2", Some("org-a")),
        ("logout", "alice", "u1", Some("org-b")),
        ("login.succeeded", "bob", "u1", None),
        ("login.failed", "alice", "u1", Some("org-a")),
    ];
    let rows: Vec<AuditRow> = specs
        .iter()
        .map(|(event, actor, subject, org)| {
            append(
                &mut conn,
                AuditEntry {
                    actor: Some((*actor).to_owned()),
                    subject: Some((*subject).to_owned()),
                    organization_id: org.map(str::to_owned),
                    ..entry(event, 0)
                },
            )
        })
        .collect();
    let ids = |found: Vec<AuditRow>| found.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let newest_first = |picks: &[usize]| picks.iter().map(|&i| rows[i].id).collect::<Vec<_>>();
    let all = AuditFilter::default();

    assert_eq!(
        ids(audit::page(&mut conn, &all, None, 100).unwrap()),
        newest_first(&[5, 4, 3, 2, 1, 0])
    );

    // Walking with the cursor visits every row once, newest first.
    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = audit::page(&mut conn, &all, before, 4).unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        walked.extend(ids(page));
    }
    assert_eq!(walked, newest_first(&[5, 4, 3, 2, 1, 0]));

    let by_event = AuditFilter {
        event: Some("login.succeeded".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        ids(audit::page(&mut conn, &by_event, None, 100).unwrap()),
        newest_first(&[4, 2, 0])
    );
    assert_eq!(
        ids(audit::page(&mut conn, &by_event, Some(rows[4].id), 1).unwrap()),
        newest_first(&[2])
    );

    let by_actor = AuditFilter {
        actor: Some("bob".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        ids(audit::page(&mut conn, &by_actor, None, 100).unwrap()),
        newest_first(&[4, 1])
    );

    let by_subject = AuditFilter {
        subject: Some("u2".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        ids(audit::page(&mut conn, &by_subject, None, 100).unwrap()),
        newest_first(&[2, 1])
    );

    let by_org = AuditFilter {
        organization_id: Some("org-a".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        ids(audit::page(&mut conn, &by_org, None, 100).unwrap()),
        newest_first(&[5, 2, 0])
    );

    let combined = AuditFilter {
        event: Some("login.succeeded".to_owned()),
        actor: Some("alice".to_owned()),
        subject: Some("u1".to_owned()),
        organization_id: Some("org-a".to_owned()),
    };
    assert_eq!(
        ids(audit::page(&mut conn, &combined, None, 100).unwrap()),
        newest_first(&[0])
    );

    let nothing = AuditFilter {
        event: Some("no.such.event".to_owned()),
        ..Default::default()
    };
    assert!(
        audit::page(&mut conn, &nothing, None, 100)
            .unwrap()
            .is_empty()
    );
}

fn concurrent_appends_form_one_chain(backend: Backend) {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 10;
    let fx = migrated(backend);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let pool = &fx.pool;
            scope.spawn(move || {
                for n in 0..PER_THREAD {
                    let mut conn = pool.get().unwrap();
                    append(&mut conn, entry("login.succeeded", t * PER_THREAD + n));
                }
            });
        }
    });
    let mut conn = fx.pool.get().unwrap();
    assert_eq!(
        audit::verify_chain(&mut conn).unwrap(),
        ChainCheck::Intact {
            rows: (THREADS * PER_THREAD) as u64
        }
    );
    let mut subjects: Vec<String> = audit::page(&mut conn, &AuditFilter::default(), None, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.subject.unwrap())
        .collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..THREADS * PER_THREAD)
        .map(|n| format!("user-{n}"))
        .collect();
    expected.sort();
    assert_eq!(subjects, expected);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(storage::Backend::Sqlite);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(storage::Backend::Postgres);
            })*
        }
    };
}

on_both_backends!(
    appends_link_into_one_verified_chain,
    empty_log_is_intact,
    append_outside_a_transaction_is_refused,
    edits_and_deletions_are_detected,
    rewriting_prev_hash_is_detected,
    verification_spans_batches,
    pages_filter_newest_first_with_a_cursor,
    concurrent_appends_form_one_chain,
);

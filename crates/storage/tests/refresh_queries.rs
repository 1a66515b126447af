//! The hand-written statements of the refresh path (`storage::prepared`)
//! answer exactly what the diesel queries they replace answered, on both
//! backends.

use chrono::TimeDelta;
use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use storage::models::{NewUser, RefreshTokenRow, SessionRow};
use storage::repo::{refresh_tokens, sessions, users};
use storage::test_support::MigratedDatabase;
use storage::{AnyConnection, Backend};

fn migrated(backend: Backend) -> MigratedDatabase {
    MigratedDatabase::create(backend, 2)
}

fn now() -> NaiveDateTime {
    Utc::now().trunc_subsecs(6).naive_utc()
}

fn add_user(conn: &mut AnyConnection, id: &str, status: &str) {
    let at = now();
    users::insert(
        conn,
        &NewUser {
            id,
            email: &format!("{id}@example.test"),
            username: None,
            name: None,
            password_hash: None,
            status,
            organization_id: None,
            permission_version: 1,
            created_at: at,
            updated_at: at,
            locale: None,
            must_change_password: false,
            password_changed_at: None,
        },
    )
    .unwrap();
}

fn roles_and_permissions_match_the_two_queries(backend: Backend) {
    let fixture = migrated(backend);
    let conn = &mut fixture.pool.get().unwrap();
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    add_user(conn, "both", "active");
    add_user(conn, "roles-only", "active");
    add_user(conn, "perms-only", "active");
    add_user(conn, "none", "active");
    // Inserted out of order, with names that sort differently as bytes and
    // case-insensitively, and a role and a permission with the same name.
    let roles = names(&["operator", "Admin", "auditor", "admin"]);
    let perms = names(&["users:write", "audit", "Users:read", "admin", "users:read"]);
    users::replace_roles(conn, "both", &roles, now()).unwrap();
    users::replace_permissions(conn, "both", &perms, now()).unwrap();
    users::replace_roles(conn, "roles-only", &roles[..2], now()).unwrap();
    users::replace_permissions(conn, "perms-only", &perms[..3], now()).unwrap();
    for id in ["both", "roles-only", "perms-only", "none", "unknown"] {
        let expected = (
            users::roles(conn, id).unwrap(),
            users::permissions(conn, id).unwrap(),
        );
        assert_eq!(
            users::roles_and_permissions(conn, id).unwrap(),
            expected,
            "{id}"
        );
    }
    let (roles, perms) = users::roles_and_permissions(conn, "both").unwrap();
    assert_eq!((roles.len(), perms.len()), (4, 5));
}

fn add_session(conn: &mut AnyConnection, id: &str, user_id: &str) -> SessionRow {
    let at = now() - TimeDelta::minutes(5);
    let session = SessionRow {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        created_at: at,
        last_used_at: at,
        expires_at: at + TimeDelta::days(1),
        revoked_at: None,
        revoke_reason: None,
        user_agent: None,
        ip: None,
        client_id: None,
        amr: Some("pwd".to_owned()),
        auth_time: Some(at),
        scope: None,
        sso_session_id: None,
        forked_at: None,
    };
    sessions::insert(conn, &session).unwrap();
    session
}

fn token(id: &str, session_id: &str, parent_id: Option<&str>) -> RefreshTokenRow {
    let at = now();
    RefreshTokenRow {
        id: id.to_owned(),
        session_id: session_id.to_owned(),
        token_hash: format!("hash-{id}"),
        parent_id: parent_id.map(str::to_owned),
        created_at: at,
        expires_at: at + TimeDelta::hours(4),
        used_at: None,
    }
}

fn refresh_token_insert_claim_and_touch(backend: Backend) {
    let fixture = migrated(backend);
    let conn = &mut fixture.pool.get().unwrap();
    add_user(conn, "u", "active");
    let one = add_session(conn, "s1", "u");
    let two = add_session(conn, "s2", "u");

    // Inserted rows read back whole, with and without a parent.
    let first = token("t1", "s1", None);
    let second = token("t2", "s1", Some("t1"));
    refresh_tokens::insert(conn, &first).unwrap();
    refresh_tokens::insert(conn, &second).unwrap();
    for row in [&first, &second] {
        assert_eq!(
            refresh_tokens::find_by_hash(conn, &row.token_hash)
                .unwrap()
                .as_ref(),
            Some(row)
        );
    }
    // A duplicate hash is refused as before.
    let mut duplicate = token("t3", "s1", None);
    duplicate.token_hash = first.token_hash.clone();
    assert!(matches!(
        refresh_tokens::insert(conn, &duplicate),
        Err(storage::StorageError::UniqueViolation)
    ));

    // Claiming: once, and never an unknown hash.
    let at = now();
    assert!(refresh_tokens::claim_by_hash(conn, "hash-t1", at).unwrap());
    assert!(!refresh_tokens::claim_by_hash(conn, "hash-t1", at + TimeDelta::seconds(1)).unwrap());
    assert!(!refresh_tokens::claim_by_hash(conn, "hash-nope", at).unwrap());
    let claimed = refresh_tokens::find_by_hash(conn, "hash-t1")
        .unwrap()
        .unwrap();
    assert_eq!(claimed.used_at, Some(at));
    let untouched = refresh_tokens::find_by_hash(conn, "hash-t2")
        .unwrap()
        .unwrap();
    assert_eq!(untouched.used_at, None);

    // Touching moves one session's last use, nothing else.
    sessions::touch(conn, "s1", at).unwrap();
    let after = sessions::find(conn, "s1").unwrap().unwrap();
    assert_eq!(
        after,
        SessionRow {
            last_used_at: at,
            ..one
        }
    );
    assert_eq!(sessions::find(conn, "s2").unwrap().unwrap(), two);
}

/// The group commit's statements for many rows answer what the one-row
/// statements answer, row for row.
fn batch_statements_match_the_single_ones(backend: Backend) {
    let fixture = migrated(backend);
    let conn = &mut fixture.pool.get().unwrap();
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    add_user(conn, "a", "active");
    add_user(conn, "b", "disabled");
    users::replace_roles(conn, "a", &names(&["operator", "Admin"]), now()).unwrap();
    users::replace_permissions(conn, "a", &names(&["users:write", "audit"]), now()).unwrap();
    users::replace_permissions(conn, "b", &names(&["users:read"]), now()).unwrap();
    let grants = users::roles_and_permissions_many(conn, &names(&["a", "b", "none"])).unwrap();
    for id in ["a", "b"] {
        assert_eq!(
            grants[id],
            users::roles_and_permissions(conn, id).unwrap(),
            "{id}"
        );
    }
    assert!(!grants.contains_key("none"));

    add_session(conn, "sa", "a");
    add_session(conn, "sb", "b");
    let rows = [
        token("t1", "sa", None),
        token("t2", "sa", None),
        token("t3", "sb", None),
    ];
    refresh_tokens::insert_many(conn, &rows).unwrap();
    let hashes = names(&["hash-t1", "hash-t2", "hash-t3", "hash-unknown"]);
    let locked = conn
        .transaction(|c| refresh_tokens::lock_many_with_session_and_user(c, &hashes))
        .unwrap();
    assert_eq!(locked.len(), 3);
    for row in &locked {
        let single = refresh_tokens::find_with_session_and_user(conn, &row.0.token_hash)
            .unwrap()
            .unwrap();
        assert_eq!(row, &single);
    }

    let at = now();
    let claimed =
        refresh_tokens::claim_many(conn, &names(&["hash-t1", "hash-t3", "hash-x"]), at).unwrap();
    assert_eq!(claimed, 2);
    // Claimed once only: the second time nothing is unused any more.
    assert_eq!(
        refresh_tokens::claim_many(conn, &names(&["hash-t1", "hash-t2"]), at).unwrap(),
        1
    );
    sessions::touch_many(conn, &names(&["sa", "sb", "gone"]), at).unwrap();
    for id in ["sa", "sb"] {
        assert_eq!(sessions::find(conn, id).unwrap().unwrap().last_used_at, at);
    }
}

/// A batch's writes in one call (one statement on PostgreSQL): claims only
/// what is unused, touches the sessions, inserts the new tokens, and reads
/// the grants the single query reads.
fn batch_writes_claim_touch_insert_and_read_grants(backend: Backend) {
    let fixture = migrated(backend);
    let conn = &mut fixture.pool.get().unwrap();
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    add_user(conn, "a", "active");
    add_user(conn, "b", "active");
    users::replace_roles(conn, "a", &names(&["operator", "Admin"]), now()).unwrap();
    users::replace_permissions(conn, "a", &names(&["users:write", "audit"]), now()).unwrap();
    add_session(conn, "sa", "a");
    add_session(conn, "sb", "b");
    refresh_tokens::insert_many(conn, &[token("t1", "sa", None), token("t2", "sb", None)]).unwrap();
    let at = now();
    refresh_tokens::claim_many(conn, &names(&["hash-t2"]), at).unwrap();

    let inserts = [token("n1", "sa", Some("t1")), token("n2", "sb", Some("t2"))];
    let (claimed, grants) = conn
        .transaction(|c| {
            refresh_tokens::lock_many_with_session_and_user(c, &names(&["hash-t1", "hash-t2"]))?;
            refresh_tokens::write_rotations(
                c,
                &names(&["hash-t1", "hash-t2", "hash-unknown"]),
                &names(&["sa", "sb"]),
                &inserts,
                &names(&["a", "b"]),
                at,
            )
        })
        .unwrap();
    // t2 was spent already: only t1 is claimed now.
    assert_eq!(claimed, 1);
    assert_eq!(
        grants["a"],
        users::roles_and_permissions(conn, "a").unwrap()
    );
    assert!(!grants.contains_key("b"), "b has no roles or permissions");
    for id in ["sa", "sb"] {
        assert_eq!(sessions::find(conn, id).unwrap().unwrap().last_used_at, at);
    }
    for row in &inserts {
        let (stored, _, _) = refresh_tokens::find_with_session_and_user(conn, &row.token_hash)
            .unwrap()
            .unwrap();
        assert_eq!(&stored, row);
    }
    let (t1, _, _) = refresh_tokens::find_with_session_and_user(conn, "hash-t1")
        .unwrap()
        .unwrap();
    assert_eq!(t1.used_at, Some(at));
}

/// The batch's transaction commits what its closure wrote when it
/// succeeds, nothing when it fails, and on PostgreSQL plans without
/// sequential scans inside it only.
fn rotation_transaction_commits_or_rolls_back(backend: Backend) {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        enable_seqscan: String,
    }
    let seqscan = |c: &mut AnyConnection| {
        diesel::sql_query("SHOW enable_seqscan")
            .get_result::<Setting>(c)
            .map(|s| s.enable_seqscan)
    };
    let fixture = migrated(backend);
    let conn = &mut fixture.pool.get().unwrap();
    add_user(conn, "a", "active");
    add_session(conn, "sa", "a");

    let failed: Result<(), diesel::result::Error> =
        refresh_tokens::rotation_transaction(conn, |c| {
            refresh_tokens::insert(c, &token("gone", "sa", None))
                .map_err(|_| diesel::result::Error::RollbackTransaction)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
    assert!(failed.is_err());
    assert!(
        refresh_tokens::find_with_session_and_user(conn, "hash-gone")
            .unwrap()
            .is_none()
    );

    let inside = refresh_tokens::rotation_transaction(conn, |c| {
        refresh_tokens::insert(c, &token("kept", "sa", None))
            .map_err(|_| diesel::result::Error::RollbackTransaction)?;
        match backend {
            Backend::Postgres => seqscan(c).map(Some),
            Backend::Sqlite => Ok(None),
        }
    })
    .unwrap();
    assert!(
        refresh_tokens::find_with_session_and_user(conn, "hash-kept")
            .unwrap()
            .is_some()
    );
    if backend == Backend::Postgres {
        assert_eq!(inside.as_deref(), Some("off"));
        assert_eq!(seqscan(conn).unwrap(), "on", "only inside the transaction");
    }
}

/// Migration 16: relying parties' sessions started before their end was
/// capped at their browser session's end are brought back to it; every
/// other session keeps its end.
fn migration_16_ends_relying_party_sessions_with_their_browser_session(backend: Backend) {
    use storage::schema::sessions as table;
    let fixture = migrated(backend);
    let conn = &mut fixture.pool.get().unwrap();
    let reverted = storage::migrations::revert_last(conn).unwrap();
    assert!(reverted.contains("000016"), "{reverted}");
    add_user(conn, "u", "active");
    let browser = add_session(conn, "browser", "u");
    let follow = |conn: &mut AnyConnection, id: &str, sso: &str, end: NaiveDateTime| {
        add_session(conn, id, "u");
        diesel::update(table::table.find(id))
            .set((table::sso_session_id.eq(sso), table::expires_at.eq(end)))
            .execute(conn)
            .unwrap();
    };
    follow(
        conn,
        "late",
        "browser",
        browser.expires_at + TimeDelta::days(29),
    );
    follow(
        conn,
        "early",
        "browser",
        browser.expires_at - TimeDelta::hours(1),
    );
    follow(
        conn,
        "orphan",
        "gone",
        browser.expires_at + TimeDelta::days(29),
    );
    let ends = |conn: &mut AnyConnection| -> Vec<(String, NaiveDateTime)> {
        table::table
            .select((table::id, table::expires_at))
            .order(table::id)
            .load(conn)
            .unwrap()
    };
    let before = ends(conn);

    let applied = storage::migrations::run_pending(conn).unwrap();
    assert_eq!(applied, [reverted]);
    let after = ends(conn);
    for ((id, was), (_, now)) in before.iter().zip(&after) {
        let expected = if id == "late" {
            browser.expires_at
        } else {
            *was
        };
        assert_eq!(*now, expected, "{id}");
    }
    assert_eq!(after.len(), 4);
}

macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(storage::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(storage::Backend::Postgres) })*
        }
    };
}

backend_tests!(
    roles_and_permissions_match_the_two_queries,
    refresh_token_insert_claim_and_touch,
    batch_statements_match_the_single_ones,
    batch_writes_claim_touch_insert_and_read_grants,
    rotation_transaction_commits_or_rolls_back,
    migration_16_ends_relying_party_sessions_with_their_browser_session,
);

//! The hand-written statements of the refresh path (`storage::prepared`)
//! answer exactly what the diesel queries they replace answered, on both
//! backends.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use storage::models::NewUser;
use storage::repo::users;
use storage::test_support::TestDatabase;
use storage::{AnyConnection, Backend, DbPool, PoolOptions};

/// Fields drop in order: the pool lets go of its connections before the
/// database is dropped.
struct Fixture {
    pool: DbPool,
    _db: TestDatabase,
}

fn migrated(backend: Backend) -> Fixture {
    let db = TestDatabase::create(backend);
    let pool = storage::connect(
        &db.url,
        &PoolOptions {
            max_size: 2,
            ..Default::default()
        },
    )
    .unwrap();
    storage::migrations::run_pending(&mut pool.get().unwrap()).unwrap();
    Fixture { pool, _db: db }
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

backend_tests!(roles_and_permissions_match_the_two_queries);

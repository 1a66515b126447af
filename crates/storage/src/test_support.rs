//! Real databases for tests: a fresh SQLite file in a temporary folder, or a
//! uniquely named PostgreSQL database that is dropped afterwards. Enabled by
//! the `test-support` feature; never part of a production build.

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use crate::connection::{Backend, DatabaseUrl};

/// Where the PostgreSQL test databases are created. Any database on the
/// server works as the administrative connection; `test` exists on CI.
pub fn postgres_admin_url() -> String {
    std::env::var("AUTH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database that exists for the lifetime of this value.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    /// Folder for the SQLite file and anything else the test writes
    /// (keys, mail); removed on drop.
    pub dir: PathBuf,
    pg_name: Option<String>,
}

impl TestDatabase {
    /// Creates an empty database. Panics with a clear message when PostgreSQL
    /// is unreachable: the PostgreSQL suite must fail, not skip.
    pub fn create(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("auth-test-{id}"));
        std::fs::create_dir_all(&dir).expect("create test folder");
        match backend {
            Backend::Sqlite => Self {
                url: DatabaseUrl::Sqlite(dir.join("auth.db")),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("auth_test_{id}");
                let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for the postgres test suite and is unreachable at {admin}: {e}. \
                         Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                    )
                });
                conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .expect("create test database");
                let url = match admin.rfind('/') {
                    Some(slash)
                        if admin[..slash].contains("://")
                            && slash > admin.find("://").unwrap() + 2 =>
                    {
                        format!("{}/{name}", &admin[..slash])
                    }
                    _ => format!("{admin}/{name}"),
                };
                Self {
                    url: DatabaseUrl::Postgres(url),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// The URL as a configuration string (`postgres://…` or a file path).
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Postgres(url) => url.clone(),
            DatabaseUrl::Sqlite(path) => path.to_string_lossy().into_owned(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::establish(&postgres_admin_url())
        {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = conn.batch_execute(&drop);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh database with every migration applied and a pool on it. Fields
/// drop in order: the pool lets go of its connections before the database
/// is dropped.
pub struct MigratedDatabase {
    pub pool: crate::DbPool,
    pub db: TestDatabase,
}

impl MigratedDatabase {
    pub fn create(backend: Backend, pool_size: u32) -> Self {
        let db = TestDatabase::create(backend);
        let pool = crate::connect(
            &db.url,
            &crate::PoolOptions {
                max_size: pool_size,
                ..Default::default()
            },
        )
        .expect("pool on the test database");
        crate::migrations::run_pending(&mut pool.get().expect("a connection"))
            .expect("migrations apply");
        Self { pool, db }
    }
}

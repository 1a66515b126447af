//! The hand-kept `schema.rs` must describe exactly what the migrations create,
//! on both backends: same tables, same columns in the same order, same types
//! and nullability. A drift here would compile and then fail at run time.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use storage::test_support::TestDatabase;
use storage::{AnyConnection, Backend, PoolOptions};

/// table → [(column, type as written in schema.rs)]
type Tables = BTreeMap<String, Vec<(String, String)>>;

fn tables_in_schema_rs() -> Tables {
    let source = include_str!("../src/schema.rs");
    let mut tables = Tables::new();
    let mut current: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some(name) = current.as_ref() {
            if line == "}" {
                current = None;
            } else if let Some((column, ty)) = line.split_once(" -> ") {
                let ty = ty.trim_end_matches(',').to_owned();
                tables.get_mut(name).unwrap().push((column.to_owned(), ty));
            }
        } else if line.ends_with('{') && line.contains(" (") && !line.starts_with("diesel::") {
            let name = line.split(' ').next().unwrap().to_owned();
            tables.insert(name.clone(), Vec::new());
            current = Some(name);
        }
    }
    assert!(
        tables.len() >= 7,
        "schema.rs parse found too few tables: {tables:?}"
    );
    tables
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    r#type: String,
    #[diesel(sql_type = BigInt)]
    notnull: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

fn diesel_type(sql_type: &str) -> String {
    match sql_type.to_ascii_lowercase().as_str() {
        "text" => "Text",
        "boolean" => "Bool",
        "timestamp" | "timestamp without time zone" => "Timestamp",
        // SQLite's `INTEGER PRIMARY KEY` is a 64-bit rowid alias.
        "bigint" | "integer" => "BigInt",
        other => panic!("migration uses a column type schema.rs can't express portably: {other}"),
    }
    .to_owned()
}

fn nullable(ty: String, is_nullable: bool) -> String {
    if is_nullable {
        format!("Nullable<{ty}>")
    } else {
        ty
    }
}

fn tables_in_database(conn: &mut AnyConnection) -> Tables {
    let mut tables = Tables::new();
    match conn {
        AnyConnection::Sqlite(c) => {
            let names: Vec<TableName> = diesel::sql_query(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'",
            )
            .load(c)
            .unwrap();
            for TableName { name } in names {
                let columns: Vec<SqliteColumn> = diesel::sql_query(
                    "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)",
                )
                .bind::<Text, _>(&name)
                .load(c)
                .unwrap();
                let columns = columns
                    .into_iter()
                    .map(|col| {
                        let is_nullable = col.notnull == 0 && col.pk == 0;
                        (col.name, nullable(diesel_type(&col.r#type), is_nullable))
                    })
                    .collect();
                tables.insert(name, columns);
            }
        }
        AnyConnection::Postgresql(c) => {
            let names: Vec<TableName> = diesel::sql_query(
                "SELECT table_name::text AS name FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
            )
            .load(c)
            .unwrap();
            for TableName { name } in names {
                let columns: Vec<PgColumn> = diesel::sql_query(
                    "SELECT column_name::text, data_type::text, is_nullable::text \
                     FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind::<Text, _>(&name)
                .load(c)
                .unwrap();
                let columns = columns
                    .into_iter()
                    .map(|col| {
                        let ty = diesel_type(&col.data_type);
                        (col.column_name, nullable(ty, col.is_nullable == "YES"))
                    })
                    .collect();
                tables.insert(name, columns);
            }
        }
    }
    tables
}

fn check(backend: Backend) {
    let db = TestDatabase::create(backend);
    let pool = storage::connect(&db.url, &PoolOptions::default()).unwrap();
    if let storage::DatabaseUrl::Sqlite(path) = &db.url {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the SQLite file holds password hashes: owner-only"
        );
    }
    let mut conn = pool.get().unwrap();
    storage::migrations::run_pending(&mut conn).unwrap();
    assert!(!storage::migrations::has_pending(&mut conn).unwrap());
    let migrated = tables_in_database(&mut conn);
    let declared = tables_in_schema_rs();
    assert_eq!(
        migrated, declared,
        "schema.rs (right) differs from the {backend:?} migrations (left)"
    );
}

mod sqlite {
    #[test]
    fn schema_rs_matches_migrations() {
        super::check(storage::Backend::Sqlite);
    }
}

mod postgres {
    #[test]
    fn schema_rs_matches_migrations() {
        super::check(storage::Backend::Postgres);
    }
}

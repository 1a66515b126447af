//! Statements of the refresh path written out by hand, for what diesel's
//! query builder does not give: fewer round trips, and statements that are
//! prepared once per connection.
//!
//! Each type has fixed SQL and a static query id, so diesel prepares it once
//! per connection and afterwards only binds and executes it. Placeholders
//! come from the backend's own query builder (`$n` or `?`), so one
//! definition serves both backends unless noted. The callers in
//! [`crate::repo`] say what each one replaces.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use crate::models::RefreshTokenRow;

/// `QueryId` (static: the cache key is the type) and `RunQueryDsl`.
macro_rules! statement {
    ($name:ident) => {
        impl QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl<Conn> RunQueryDsl<Conn> for $name<'_> {}
    };
}

/// `refresh_tokens::claim_by_hash`: marks the token used if it is unused.
pub(crate) struct ClaimToken<'a> {
    pub hash: &'a str,
    pub now: NaiveDateTime,
}
statement!(ClaimToken);

impl<DB: Backend> QueryFragment<DB> for ClaimToken<'_>
where
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE refresh_tokens SET used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE token_hash = ");
        out.push_bind_param::<Text, _>(self.hash)?;
        out.push_sql(" AND used_at IS NULL");
        Ok(())
    }
}

/// PostgreSQL only (a data-modifying `WITH`; SQLite has none):
/// `sessions::touch`.
pub(crate) struct TouchSession<'a> {
    pub id: &'a str,
    pub now: NaiveDateTime,
}
statement!(TouchSession);

impl<DB: Backend> QueryFragment<DB> for TouchSession<'_>
where
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE sessions SET last_used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(self.id)?;
        Ok(())
    }
}

/// `refresh_tokens::insert`: every column bound (a `None` is bound as
/// `NULL`, which is also what the columns' default would give).
pub(crate) struct InsertRefreshToken<'a> {
    pub row: &'a RefreshTokenRow,
}
statement!(InsertRefreshToken);

impl<DB: Backend> QueryFragment<DB> for InsertRefreshToken<'_>
where
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    Option<String>: ToSql<Nullable<Text>, DB>,
    Option<NaiveDateTime>: ToSql<Nullable<Timestamp>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let row = self.row;
        out.push_sql(
            "INSERT INTO refresh_tokens \
             (id, session_id, token_hash, parent_id, created_at, expires_at, used_at) VALUES (",
        );
        out.push_bind_param::<Text, _>(row.id.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(row.session_id.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(row.token_hash.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.parent_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&row.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&row.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&row.used_at)?;
        out.push_sql(")");
        Ok(())
    }
}

/// `users::roles_and_permissions`: `(0, role)` and `(1, permission)` rows,
/// ordered by kind, then by name as the database sorts them (the order
/// `users::roles` and `users::permissions` return).
pub(crate) struct RolesAndPermissions<'a> {
    pub user_id: &'a str,
}
statement!(RolesAndPermissions);

impl Query for RolesAndPermissions<'_> {
    type SqlType = (Integer, Text);
}

impl<DB: Backend> QueryFragment<DB> for RolesAndPermissions<'_>
where
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT 0, role FROM user_roles WHERE user_id = ");
        out.push_bind_param::<Text, _>(self.user_id)?;
        out.push_sql(" UNION ALL SELECT 1, permission FROM user_permissions WHERE user_id = ");
        out.push_bind_param::<Text, _>(self.user_id)?;
        out.push_sql(" ORDER BY 1, 2");
        Ok(())
    }
}

/// PostgreSQL only (a data-modifying `WITH`): the writes of a batch of
/// rotations, and the reads that follow them, in one statement and one
/// round trip: claim the spent tokens (`used_at = now` where still unused),
/// touch their sessions, insert the new tokens (one array per column,
/// `unnest`ed into rows, so the SQL and its prepared plan are the same
/// whatever the batch's size), and read the roles and permissions of the
/// users the new access tokens are for. Answers a first row `(claimed,
/// NULL, NULL, NULL)`, then `(NULL, user_id, kind, name)` rows, by user
/// and then as [`RolesAndPermissions`] orders them.
///
/// Replaced four statements, each prepared anew per batch (their SQL
/// changed with the batch's size): eleven round trips per batch became
/// four (`BEGIN` with its `SET LOCAL`, the locking read, this, `COMMIT`).
/// Under load each round trip waits for the database's process to be
/// scheduled, so their number, more than the work in them, set the batch's
/// time. The caller holds the row locks already
/// (`refresh_tokens::lock_many_with_session_and_user`, in
/// `refresh_tokens::rotation_transaction`, which keeps the plans on the
/// indexes), so the updates wait for nobody and take no lock in an order of
/// their own.
pub(crate) struct RotationWrites<'a> {
    pub now: NaiveDateTime,
    pub claims: &'a [String],
    pub touched: &'a [String],
    pub user_ids: &'a [String],
    pub ids: Vec<&'a str>,
    pub session_ids: Vec<&'a str>,
    pub token_hashes: Vec<&'a str>,
    pub parent_ids: Vec<Option<&'a str>>,
    pub created_at: Vec<NaiveDateTime>,
    pub expires_at: Vec<NaiveDateTime>,
    pub used_at: Vec<Option<NaiveDateTime>>,
}
statement!(RotationWrites);

impl<'a> RotationWrites<'a> {
    pub fn new(
        now: NaiveDateTime,
        claims: &'a [String],
        touched: &'a [String],
        inserts: &'a [RefreshTokenRow],
        user_ids: &'a [String],
    ) -> Self {
        Self {
            now,
            claims,
            touched,
            user_ids,
            ids: inserts.iter().map(|r| r.id.as_str()).collect(),
            session_ids: inserts.iter().map(|r| r.session_id.as_str()).collect(),
            token_hashes: inserts.iter().map(|r| r.token_hash.as_str()).collect(),
            parent_ids: inserts.iter().map(|r| r.parent_id.as_deref()).collect(),
            created_at: inserts.iter().map(|r| r.created_at).collect(),
            expires_at: inserts.iter().map(|r| r.expires_at).collect(),
            used_at: inserts.iter().map(|r| r.used_at).collect(),
        }
    }
}

impl Query for RotationWrites<'_> {
    type SqlType = (
        Nullable<BigInt>,
        Nullable<Text>,
        Nullable<Integer>,
        Nullable<Text>,
    );
}

impl QueryFragment<Pg> for RotationWrites<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH claimed AS (UPDATE refresh_tokens SET used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE token_hash = ANY(");
        out.push_bind_param::<Array<Text>, _>(self.claims)?;
        out.push_sql(
            ") AND used_at IS NULL RETURNING 1), touched AS (UPDATE sessions SET last_used_at = ",
        );
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE id = ANY(");
        out.push_bind_param::<Array<Text>, _>(self.touched)?;
        out.push_sql(
            ")), inserted AS (INSERT INTO refresh_tokens \
             (id, session_id, token_hash, parent_id, created_at, expires_at, used_at) \
             SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.session_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.token_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.parent_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.used_at)?;
        out.push_sql(
            ")) SELECT count(*), NULL::text, NULL::integer, NULL::text FROM claimed \
             UNION ALL SELECT NULL, user_id, 0, role FROM user_roles WHERE user_id = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(self.user_ids)?;
        out.push_sql(
            ") UNION ALL SELECT NULL, user_id, 1, permission FROM user_permissions \
             WHERE user_id = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(self.user_ids)?;
        out.push_sql(") ORDER BY 2 NULLS FIRST, 3, 4");
        Ok(())
    }
}

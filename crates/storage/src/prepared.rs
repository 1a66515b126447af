//! Statements of the refresh path written out by hand, for what diesel's
//! query builder does not give: fewer round trips, and statements that are
//! prepared once per connection.
//!
//! Each type has fixed SQL and a static query id, so diesel prepares it once
//! per connection and afterwards only binds and executes it. Placeholders
//! come from the backend's own query builder (`$n` or `?`), so one
//! definition serves both backends unless noted. The callers in
//! [`crate::repo`] say what each one replaces.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Integer, Text};
use diesel::{QueryResult, RunQueryDsl};

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

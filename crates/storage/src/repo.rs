//! Queries, grouped by table. Every function takes a connection so callers can
//! compose several in one transaction (`conn.transaction(|c| …)`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::connection::AnyConnection;
use crate::error::StorageError;
use crate::models::*;
use crate::schema;

type Result<T> = std::result::Result<T, StorageError>;

pub mod users {
    use super::*;
    use schema::{user_permissions, user_roles, users};

    pub fn insert(conn: &mut AnyConnection, user: &NewUser<'_>) -> Result<()> {
        diesel::insert_into(users::table)
            .values(user)
            .execute(conn)?;
        Ok(())
    }

    pub fn find_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<UserRow>> {
        Ok(users::table
            .find(id)
            .select(UserRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// `email` must already be in canonical form (see `accounts::EmailAddress`).
    pub fn find_by_email(conn: &mut AnyConnection, email: &str) -> Result<Option<UserRow>> {
        Ok(users::table
            .filter(users::email.eq(email))
            .select(UserRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// `username` must already be lowercased.
    pub fn find_by_username(conn: &mut AnyConnection, username: &str) -> Result<Option<UserRow>> {
        Ok(users::table
            .filter(users::username.eq(username))
            .select(UserRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn set_password_hash(
        conn: &mut AnyConnection,
        id: &str,
        hash: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::update(users::table.find(id))
            .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(())
    }

    /// Roles, sorted.
    pub fn roles(conn: &mut AnyConnection, id: &str) -> Result<Vec<String>> {
        Ok(user_roles::table
            .filter(user_roles::user_id.eq(id))
            .select(user_roles::role)
            .order(user_roles::role)
            .load(conn)?)
    }

    /// Permissions, sorted.
    pub fn permissions(conn: &mut AnyConnection, id: &str) -> Result<Vec<String>> {
        Ok(user_permissions::table
            .filter(user_permissions::user_id.eq(id))
            .select(user_permissions::permission)
            .order(user_permissions::permission)
            .load(conn)?)
    }

    pub fn add_role(conn: &mut AnyConnection, id: &str, role: &str) -> Result<()> {
        diesel::insert_into(user_roles::table)
            .values((user_roles::user_id.eq(id), user_roles::role.eq(role)))
            .execute(conn)?;
        Ok(())
    }

    pub fn count(conn: &mut AnyConnection) -> Result<i64> {
        Ok(users::table.count().get_result(conn)?)
    }
}

pub mod sessions {
    use super::*;
    use schema::sessions;

    pub fn insert(conn: &mut AnyConnection, session: &SessionRow) -> Result<()> {
        diesel::insert_into(sessions::table)
            .values(session)
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<SessionRow>> {
        Ok(sessions::table
            .find(id)
            .select(SessionRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn touch(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<()> {
        diesel::update(sessions::table.find(id))
            .set(sessions::last_used_at.eq(now))
            .execute(conn)?;
        Ok(())
    }

    /// Revokes one session; false when it was already revoked (or missing).
    pub fn revoke(
        conn: &mut AnyConnection,
        id: &str,
        now: NaiveDateTime,
        reason: &str,
    ) -> Result<bool> {
        let changed = diesel::update(
            sessions::table
                .find(id)
                .filter(sessions::revoked_at.is_null()),
        )
        .set((
            sessions::revoked_at.eq(now),
            sessions::revoke_reason.eq(reason),
        ))
        .execute(conn)?;
        Ok(changed == 1)
    }

    /// Revokes the user's sessions that are neither revoked nor expired;
    /// returns their ids.
    pub fn revoke_live_for_user(
        conn: &mut AnyConnection,
        user_id: &str,
        now: NaiveDateTime,
        reason: &str,
    ) -> Result<Vec<String>> {
        Ok(diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now)),
        )
        .set((
            sessions::revoked_at.eq(now),
            sessions::revoke_reason.eq(reason),
        ))
        .returning(sessions::id)
        .get_results(conn)?)
    }
}

pub mod refresh_tokens {
    use super::*;
    use schema::refresh_tokens;

    pub fn insert(conn: &mut AnyConnection, token: &RefreshTokenRow) -> Result<()> {
        diesel::insert_into(refresh_tokens::table)
            .values(token)
            .execute(conn)?;
        Ok(())
    }

    pub fn find_by_hash(conn: &mut AnyConnection, hash: &str) -> Result<Option<RefreshTokenRow>> {
        Ok(refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(hash))
            .select(RefreshTokenRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Marks the token with this hash used. Conditional on it being unused,
    /// so of two racing refreshes exactly one wins; false for the loser (and
    /// for unknown tokens).
    pub fn claim_by_hash(conn: &mut AnyConnection, hash: &str, now: NaiveDateTime) -> Result<bool> {
        let changed = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(hash))
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn)?;
        Ok(changed == 1)
    }
}

pub mod revocations {
    use super::*;
    use schema::revocations;

    pub fn insert(conn: &mut AnyConnection, revocation: &NewRevocation<'_>) -> Result<()> {
        diesel::insert_into(revocations::table)
            .values(revocation)
            .execute(conn)?;
        Ok(())
    }

    /// Everything that still matters at `now`, for a cold start.
    pub fn unexpired(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<Vec<RevocationRow>> {
        Ok(revocations::table
            .filter(revocations::expires_at.gt(now))
            .order(revocations::id)
            .select(RevocationRow::as_select())
            .load(conn)?)
    }

    /// Rows after the cursor, plus rows created since `recent_since`. The
    /// second half covers ids that become visible out of order: on PostgreSQL
    /// a transaction holding a lower id can commit after a higher one was read.
    pub fn poll(
        conn: &mut AnyConnection,
        cursor: i64,
        recent_since: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<RevocationRow>> {
        Ok(revocations::table
            .filter(
                revocations::id
                    .gt(cursor)
                    .or(revocations::created_at.ge(recent_since)),
            )
            .order(revocations::id)
            .limit(limit)
            .select(RevocationRow::as_select())
            .load(conn)?)
    }

    /// Rows after the cursor whose tokens may still be valid, oldest first
    /// (the public `/revocations` feed).
    pub fn page_after(
        conn: &mut AnyConnection,
        cursor: i64,
        now: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<RevocationRow>> {
        Ok(revocations::table
            .filter(revocations::id.gt(cursor))
            .filter(revocations::expires_at.gt(now))
            .order(revocations::id)
            .limit(limit)
            .select(RevocationRow::as_select())
            .load(conn)?)
    }
}

/// A trivial round trip, for readiness checks.
pub fn ping(conn: &mut AnyConnection) -> Result<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")?;
    Ok(())
}

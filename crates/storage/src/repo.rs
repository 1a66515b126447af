//! Queries, grouped by table. Every function takes a connection so callers can
//! compose several in one transaction (`conn.transaction(|c| …)`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::connection::AnyConnection;
use crate::error::StorageError;
use crate::models::*;
use crate::{prepared, schema};

type Result<T> = std::result::Result<T, StorageError>;

/// Runs `$body` with `$c` bound to the backend's own connection, for the
/// statements in [`prepared`], which are written per backend.
macro_rules! per_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            AnyConnection::Postgresql($c) => $body,
            AnyConnection::Sqlite($c) => $body,
        }
    };
}

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
            .set((
                users::password_hash.eq(hash),
                users::password_changed_at.eq(now),
                users::must_change_password.eq(false),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Active users holding `role`, other than `except`.
    pub fn count_active_with_role(
        conn: &mut AnyConnection,
        role: &str,
        except: &str,
    ) -> Result<i64> {
        Ok(user_roles::table
            .inner_join(users::table)
            .filter(user_roles::role.eq(role))
            .filter(users::status.eq("active"))
            .filter(users::id.ne(except))
            .count()
            .get_result(conn)?)
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

    /// [`roles`] and [`permissions`] in one query instead of two (the
    /// login and refresh paths need both).
    pub fn roles_and_permissions(
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let query = prepared::RolesAndPermissions { user_id: id };
        let rows: Vec<(i32, String)> = per_backend!(conn, c => query.load(c))?;
        // Roles (kind 0) come first, each kind sorted by name.
        let split = rows.partition_point(|(kind, _)| *kind == 0);
        let mut roles: Vec<String> = rows.into_iter().map(|(_, name)| name).collect();
        let permissions = roles.split_off(split);
        Ok((roles, permissions))
    }

    /// Roles and permissions (as [`roles_and_permissions`] answers them)
    /// by user id.
    pub type Grants = std::collections::HashMap<String, (Vec<String>, Vec<String>)>;

    /// Files a `(user_id, kind, name)` grant row of
    /// [`prepared::RotationWrites`]: kind 0 is a role, 1 a permission.
    pub(crate) fn add_grant(grants: &mut Grants, user_id: String, kind: i32, name: String) {
        let entry = grants.entry(user_id).or_default();
        if kind == 0 {
            entry.0.push(name);
        } else {
            entry.1.push(name);
        }
    }

    /// [`roles_and_permissions`] for many users, by user id; users without
    /// any are absent. (The rotation batch on PostgreSQL reads them inside
    /// its write statement: [`super::refresh_tokens::write_rotations`].)
    pub fn roles_and_permissions_many(conn: &mut AnyConnection, ids: &[String]) -> Result<Grants> {
        let mut grants = Grants::new();
        for id in ids {
            let (roles, permissions) = roles_and_permissions(conn, id)?;
            if !roles.is_empty() || !permissions.is_empty() {
                grants.insert(id.clone(), (roles, permissions));
            }
        }
        Ok(grants)
    }

    pub fn add_role(conn: &mut AnyConnection, id: &str, role: &str) -> Result<()> {
        diesel::insert_into(user_roles::table)
            .values((user_roles::user_id.eq(id), user_roles::role.eq(role)))
            .execute(conn)?;
        Ok(())
    }

    pub fn set_status(
        conn: &mut AnyConnection,
        id: &str,
        status: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::update(users::table.find(id))
            .set((users::status.eq(status), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(())
    }

    /// Replaces the user's permissions and bumps `permission_version`.
    pub fn replace_permissions(
        conn: &mut AnyConnection,
        id: &str,
        permissions: &[String],
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::delete(user_permissions::table.filter(user_permissions::user_id.eq(id)))
            .execute(conn)?;
        for permission in permissions {
            diesel::insert_into(user_permissions::table)
                .values((
                    user_permissions::user_id.eq(id),
                    user_permissions::permission.eq(permission),
                ))
                .execute(conn)?;
        }
        bump_permission_version(conn, id, now)
    }

    /// Replaces the user's roles and bumps `permission_version`.
    pub fn replace_roles(
        conn: &mut AnyConnection,
        id: &str,
        roles: &[String],
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::delete(user_roles::table.filter(user_roles::user_id.eq(id))).execute(conn)?;
        for role in roles {
            add_role(conn, id, role)?;
        }
        bump_permission_version(conn, id, now)
    }

    fn bump_permission_version(
        conn: &mut AnyConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::update(users::table.find(id))
            .set((
                users::permission_version.eq(users::permission_version + 1),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    }

    pub fn set_must_change_password(
        conn: &mut AnyConnection,
        id: &str,
        value: bool,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::update(users::table.find(id))
            .set((
                users::must_change_password.eq(value),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Users whose email, username or name contains `query` (case-insensitive
    /// for ASCII), optionally only of one organization; by email.
    pub fn search(
        conn: &mut AnyConnection,
        query: Option<&str>,
        organization_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<UserRow>> {
        let mut select = users::table
            .select(UserRow::as_select())
            .order(users::email)
            .offset(offset)
            .limit(limit)
            .into_boxed();
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            let escaped = query
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pattern = format!("%{escaped}%");
            select = select.filter(
                users::email
                    .like(pattern.clone())
                    .escape('\\')
                    .or(users::username.like(pattern.clone()).escape('\\'))
                    .or(users::name.like(pattern).escape('\\')),
            );
        }
        if let Some(org) = organization_id {
            select = select.filter(users::organization_id.eq(org));
        }
        Ok(select.load(conn)?)
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

    /// `last_used_at = now` (a prepared statement: see [`prepared`]).
    pub fn touch(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<()> {
        let statement = prepared::TouchSession { id, now };
        per_backend!(conn, c => statement.execute(c))?;
        Ok(())
    }

    /// [`touch`] for many sessions, one prepared statement each. (The
    /// rotation batch on PostgreSQL touches its sessions inside its write
    /// statement: [`super::refresh_tokens::write_rotations`].)
    pub fn touch_many(conn: &mut AnyConnection, ids: &[String], now: NaiveDateTime) -> Result<()> {
        for id in ids {
            touch(conn, id, now)?;
        }
        Ok(())
    }

    /// Deletes at most `limit` sessions whose absolute end is before
    /// `before`, their refresh tokens with them (the foreign key cascades);
    /// returns how many sessions. Bounded, so that one call holds SQLite's
    /// write lock only briefly.
    pub fn delete_ended_before(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
        limit: i64,
    ) -> Result<usize> {
        let ended: Vec<String> = sessions::table
            .filter(sessions::expires_at.lt(before))
            .select(sessions::id)
            .limit(limit)
            .load(conn)?;
        if ended.is_empty() {
            return Ok(0);
        }
        Ok(diesel::delete(sessions::table.filter(sessions::id.eq_any(&ended))).execute(conn)?)
    }

    /// Sets (`Some`) or clears (`None`) `forked_at` on these sessions: whether
    /// they may hold more than one live refresh token (see
    /// [`super::refresh_tokens::spend_other_branches`]).
    pub fn set_forked(
        conn: &mut AnyConnection,
        ids: &[String],
        forked_at: Option<NaiveDateTime>,
    ) -> Result<()> {
        if !ids.is_empty() {
            diesel::update(sessions::table.filter(sessions::id.eq_any(ids)))
                .set(sessions::forked_at.eq(forked_at))
                .execute(conn)?;
        }
        Ok(())
    }

    /// The user's sessions that are neither revoked nor expired, most
    /// recently used first.
    pub fn live_for_user(
        conn: &mut AnyConnection,
        user_id: &str,
        now: NaiveDateTime,
    ) -> Result<Vec<SessionRow>> {
        Ok(sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .order((sessions::last_used_at.desc(), sessions::id))
            .select(SessionRow::as_select())
            .load(conn)?)
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

    /// Revokes the user's sessions that are neither revoked nor expired,
    /// except `except` and the relying parties' sessions from it; returns
    /// their ids.
    pub fn revoke_live_for_user(
        conn: &mut AnyConnection,
        user_id: &str,
        except: Option<&str>,
        now: NaiveDateTime,
        reason: &str,
    ) -> Result<Vec<String>> {
        Ok(diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::id.ne(except.unwrap_or("")))
                // Relying parties' sessions from the kept one stay with it.
                .filter(
                    sessions::sso_session_id
                        .ne(except.unwrap_or(""))
                        .or(sessions::sso_session_id.is_null()),
                )
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

    /// Records a fresh interactive authentication in the session: how
    /// (`amr`, space-separated) and when (a step-up, or a second factor
    /// added to the session that enrolled it). False when the session is
    /// unknown, revoked, or ended by `auth_time`.
    pub fn set_authentication(
        conn: &mut AnyConnection,
        id: &str,
        amr: &str,
        auth_time: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            sessions::table
                .find(id)
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(auth_time)),
        )
        .set((sessions::amr.eq(amr), sessions::auth_time.eq(auth_time)))
        .execute(conn)?;
        Ok(changed == 1)
    }

    /// Revokes every live session started for a registered client.
    pub fn revoke_live_for_client(
        conn: &mut AnyConnection,
        client_id: &str,
        now: NaiveDateTime,
        reason: &str,
    ) -> Result<Vec<String>> {
        Ok(diesel::update(
            sessions::table
                .filter(sessions::client_id.eq(client_id))
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

    /// Revokes the user's live sessions held by the relying party
    /// `client_id` (a consent withdrawn); returns their ids.
    pub fn revoke_live_for_user_and_client(
        conn: &mut AnyConnection,
        user_id: &str,
        client_id: &str,
        now: NaiveDateTime,
        reason: &str,
    ) -> Result<Vec<String>> {
        Ok(diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::client_id.eq(client_id))
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

    /// Revokes the live sessions relying parties hold from the browser
    /// session `sso_session_id` (single sign-on: ending one ends them all);
    /// returns their ids.
    pub fn revoke_live_from(
        conn: &mut AnyConnection,
        sso_session_id: &str,
        now: NaiveDateTime,
        reason: &str,
    ) -> Result<Vec<String>> {
        Ok(diesel::update(
            sessions::table
                .filter(sessions::sso_session_id.eq(sso_session_id))
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

pub mod authorization_codes {
    use super::*;
    use schema::authorization_codes as codes;

    pub fn insert(conn: &mut AnyConnection, row: &AuthorizationCodeRow) -> Result<()> {
        diesel::insert_into(codes::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut AnyConnection, hash: &str) -> Result<Option<AuthorizationCodeRow>> {
        Ok(codes::table
            .find(hash)
            .select(AuthorizationCodeRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Marks the code used by the exchange that starts `session_id`.
    /// Conditional on it being unused: of two racing exchanges one wins.
    pub fn claim(
        conn: &mut AnyConnection,
        hash: &str,
        session_id: &str,
        now: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(codes::table.find(hash).filter(codes::used_at.is_null()))
            .set((codes::used_at.eq(now), codes::session_id.eq(session_id)))
            .execute(conn)?;
        Ok(changed == 1)
    }

    /// Forgets codes that expired before `before`.
    pub fn delete_expired(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize> {
        Ok(diesel::delete(codes::table.filter(codes::expires_at.lt(before))).execute(conn)?)
    }
}

pub mod logout_notifications {
    use super::*;
    use schema::logout_notifications as notices;

    pub fn insert(conn: &mut AnyConnection, row: &LogoutNotificationRow) -> Result<()> {
        diesel::insert_into(notices::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    /// Up to `limit` notifications due at `now`, each leased until `lease`
    /// (another worker, or this one after a crash, takes it again then).
    /// Call it in a transaction holding the write lock.
    pub fn lease_due(
        conn: &mut AnyConnection,
        now: NaiveDateTime,
        lease: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<LogoutNotificationRow>> {
        let due: Vec<LogoutNotificationRow> = notices::table
            .filter(notices::done_at.is_null())
            .filter(notices::next_attempt_at.le(now))
            .order(notices::next_attempt_at)
            .limit(limit)
            .select(LogoutNotificationRow::as_select())
            .load(conn)?;
        let ids: Vec<&str> = due.iter().map(|n| n.id.as_str()).collect();
        diesel::update(notices::table.filter(notices::id.eq_any(&ids)))
            .set(notices::next_attempt_at.eq(lease))
            .execute(conn)?;
        Ok(due)
    }

    /// Records an attempt: done (delivered or given up), or due again at
    /// `next`.
    pub fn attempted(
        conn: &mut AnyConnection,
        id: &str,
        delivered: bool,
        next: Option<NaiveDateTime>,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::update(notices::table.find(id))
            .set((
                notices::attempts.eq(notices::attempts + 1),
                notices::delivered.eq(delivered),
                notices::done_at.eq(if next.is_none() { Some(now) } else { None }),
                notices::next_attempt_at.eq(next.unwrap_or(now)),
            ))
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<LogoutNotificationRow>> {
        Ok(notices::table
            .find(id)
            .select(LogoutNotificationRow::as_select())
            .first(conn)
            .optional()?)
    }
}

pub mod device_codes {
    use super::*;
    use schema::device_codes as codes;

    pub fn insert(conn: &mut AnyConnection, row: &DeviceCodeRow) -> Result<()> {
        diesel::insert_into(codes::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    pub fn by_device_code(conn: &mut AnyConnection, hash: &str) -> Result<Option<DeviceCodeRow>> {
        Ok(codes::table
            .find(hash)
            .select(DeviceCodeRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn by_user_code(conn: &mut AnyConnection, hash: &str) -> Result<Option<DeviceCodeRow>> {
        Ok(codes::table
            .filter(codes::user_code_hash.eq(hash))
            .select(DeviceCodeRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Approves or denies a pending code, once. False when it was decided
    /// already.
    pub fn decide(
        conn: &mut AnyConnection,
        device_code_hash: &str,
        user_id: &str,
        sso_session_id: &str,
        approved: bool,
        now: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            codes::table
                .find(device_code_hash)
                .filter(codes::approved_at.is_null())
                .filter(codes::denied_at.is_null()),
        )
        .set((
            codes::user_id.eq(user_id),
            codes::sso_session_id.eq(sso_session_id),
            codes::approved_at.eq(approved.then_some(now)),
            codes::denied_at.eq((!approved).then_some(now)),
        ))
        .execute(conn)?;
        Ok(changed == 1)
    }

    /// Records a poll and the interval the device must keep from now on.
    pub fn polled(
        conn: &mut AnyConnection,
        device_code_hash: &str,
        interval_secs: i64,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::update(codes::table.find(device_code_hash))
            .set((
                codes::last_polled_at.eq(now),
                codes::interval_secs.eq(interval_secs),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Marks an approved code consumed, once: of two racing polls one wins.
    pub fn consume(
        conn: &mut AnyConnection,
        device_code_hash: &str,
        now: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            codes::table
                .find(device_code_hash)
                .filter(codes::consumed_at.is_null()),
        )
        .set(codes::consumed_at.eq(now))
        .execute(conn)?;
        Ok(changed == 1)
    }
}

pub mod consents {
    use super::*;
    use schema::consents;

    pub fn find(
        conn: &mut AnyConnection,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRow>> {
        Ok(consents::table
            .find((user_id, client_id))
            .select(ConsentRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Records the consent, replacing the scopes of an earlier one. Call
    /// it in a transaction holding the write lock ([`super::write_lock`]).
    pub fn put(conn: &mut AnyConnection, row: &ConsentRow) -> Result<()> {
        let updated = diesel::update(consents::table.find((&row.user_id, &row.client_id)))
            .set((
                consents::scope.eq(&row.scope),
                consents::updated_at.eq(row.updated_at),
            ))
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(consents::table)
                .values(row)
                .execute(conn)?;
        }
        Ok(())
    }

    /// The user's consents with the client's name, newest first.
    pub fn for_user(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<(ConsentRow, String)>> {
        use schema::clients;
        Ok(consents::table
            .inner_join(clients::table)
            .filter(consents::user_id.eq(user_id))
            .filter(clients::revoked_at.is_null())
            .order(consents::updated_at.desc())
            .select((ConsentRow::as_select(), clients::name))
            .load(conn)?)
    }

    /// False when there was none.
    pub fn delete(conn: &mut AnyConnection, user_id: &str, client_id: &str) -> Result<bool> {
        Ok(diesel::delete(consents::table.find((user_id, client_id))).execute(conn)? == 1)
    }
}

pub mod refresh_tokens {
    use super::*;
    use schema::refresh_tokens;

    /// Inserts the row (a prepared statement: see [`prepared`]).
    pub fn insert(conn: &mut AnyConnection, token: &RefreshTokenRow) -> Result<()> {
        let statement = prepared::InsertRefreshToken { row: token };
        per_backend!(conn, c => statement.execute(c))?;
        Ok(())
    }

    /// Moves the expiry of the unused token with this hash to `until`;
    /// false when it was spent (or is gone) meanwhile.
    pub fn extend(conn: &mut AnyConnection, hash: &str, until: NaiveDateTime) -> Result<bool> {
        let changed = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(hash))
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::expires_at.eq(until))
        .execute(conn)?;
        Ok(changed == 1)
    }

    pub fn find_by_hash(conn: &mut AnyConnection, hash: &str) -> Result<Option<RefreshTokenRow>> {
        Ok(refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(hash))
            .select(RefreshTokenRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// The token with this hash, its session and the session's user, in one
    /// indexed read (unique `token_hash`, then primary keys): the refresh
    /// path's lookups in a single round trip.
    ///
    /// `load`, not `first`: `first` binds `LIMIT ?`, and the bundled SQLite
    /// (built with STAT4) treats a bound LIMIT as able to change the plan,
    /// so it re-prepared the cached statement on every run (≈ 35 % of the
    /// refresh ceiling's CPU in `sqlite3Reprepare`). The hash is unique:
    /// at most one row.
    pub fn find_with_session_and_user(
        conn: &mut AnyConnection,
        hash: &str,
    ) -> Result<Option<(RefreshTokenRow, SessionRow, UserRow)>> {
        use schema::{sessions, users};
        // Per backend, not through `AnyConnection`: a query run through the
        // multi-connection has no static query id, so diesel built its SQL
        // text (≈ 40 quoted identifiers) on every run to find the cached
        // statement (≈ 15 % of the SQLite refresh ceiling).
        let mut rows: Vec<Rotating> = per_backend!(conn, c => refresh_tokens::table
            .inner_join(sessions::table.inner_join(users::table))
            .filter(refresh_tokens::token_hash.eq(hash))
            .select((
                RefreshTokenRow::as_select(),
                SessionRow::as_select(),
                UserRow::as_select(),
            ))
            .load(c))?;
        Ok(rows.pop())
    }

    /// Runs `f` in the transaction of a batch of rotations. On PostgreSQL its
    /// statements plan with index scans only (`SET LOCAL enable_seqscan =
    /// off`, sent with the `BEGIN` in the same round trip): they find rows
    /// by unique keys, but a young table (a new deployment, every bench)
    /// has statistics that say "tiny", and the plans PostgreSQL cached from
    /// them scanned `refresh_tokens` whole, costing more with every row
    /// (measured: 5 million rows read in a 5 s run, batches 2× slower). On
    /// SQLite, a plain transaction. Commits when `f` succeeds, else rolls
    /// back, as [`Connection::transaction`] does; transactions `f` opens
    /// become savepoints. Not itself nestable: inside another transaction
    /// it answers [`diesel::result::Error::AlreadyInTransaction`].
    pub fn rotation_transaction<T, E>(
        conn: &mut AnyConnection,
        f: impl FnOnce(&mut AnyConnection) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
        type Manager = AnsiTransactionManager;
        let AnyConnection::Postgresql(pg) = conn else {
            return conn.transaction(f);
        };
        if let Err(e) = Manager::begin_transaction_sql(pg, "BEGIN; SET LOCAL enable_seqscan = off")
        {
            // `BEGIN` may have run and the `SET` failed (a cancel): diesel
            // then counts no transaction, so end the one the server may
            // hold, or the pooled connection stays in an aborted one.
            let _ = pg.batch_execute("ROLLBACK");
            return Err(e.into());
        }
        let done = f(conn);
        let AnyConnection::Postgresql(pg) = conn else {
            return done;
        };
        match done {
            Ok(value) => {
                <Manager as TransactionManager<PgConnection>>::commit_transaction(pg)?;
                Ok(value)
            }
            Err(error) => {
                match <Manager as TransactionManager<PgConnection>>::rollback_transaction(pg) {
                    Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                    Err(rollback) => Err(rollback.into()),
                }
            }
        }
    }

    /// A token, its session and the session's user: what a rotation reads.
    pub type Rotating = (RefreshTokenRow, SessionRow, UserRow);

    /// For a batch of rotations (group commit): the tokens with these
    /// hashes, each with its session and user ([`find_with_session_and_user`]
    /// for many). On PostgreSQL the rows are locked (`FOR NO KEY UPDATE`,
    /// in hash order, so two batches on different instances take their
    /// locks in the same order) and the read waits for, then sees, any
    /// racing claim; on SQLite the caller's transaction already holds the
    /// write lock ([`super::write_lock`]), so nothing can change under it.
    /// Unknown hashes are simply absent.
    pub fn lock_many_with_session_and_user(
        conn: &mut AnyConnection,
        hashes: &[String],
    ) -> Result<Vec<Rotating>> {
        use schema::{sessions, users};
        match conn {
            AnyConnection::Postgresql(pg) => Ok(refresh_tokens::table
                .inner_join(sessions::table.inner_join(users::table))
                .filter(refresh_tokens::token_hash.eq_any(hashes))
                .order(refresh_tokens::token_hash)
                .select((
                    RefreshTokenRow::as_select(),
                    SessionRow::as_select(),
                    UserRow::as_select(),
                ))
                .for_no_key_update()
                .load(pg)?),
            AnyConnection::Sqlite(_) => {
                let mut rows = Vec::with_capacity(hashes.len());
                for hash in hashes {
                    rows.extend(find_with_session_and_user(conn, hash)?);
                }
                Ok(rows)
            }
        }
    }

    /// [`claim_by_hash`] for many tokens, one prepared statement each.
    /// Returns how many were claimed.
    pub fn claim_many(
        conn: &mut AnyConnection,
        hashes: &[String],
        now: NaiveDateTime,
    ) -> Result<usize> {
        let mut claimed = 0;
        for hash in hashes {
            claimed += usize::from(claim_by_hash(conn, hash, now)?);
        }
        Ok(claimed)
    }

    /// The writes of a batch of rotations, after
    /// [`lock_many_with_session_and_user`] in the same transaction: claims
    /// the tokens with the hashes `claims` ([`claim_many`]), touches the
    /// sessions `touched` ([`sessions::touch_many`]), inserts `inserts`
    /// ([`insert_many`]), then reads the grants of `user_ids`
    /// ([`users::roles_and_permissions_many`]). One statement on PostgreSQL
    /// (see [`prepared::RotationWrites`]), those functions (one prepared
    /// statement per row) on SQLite. Returns how many tokens were claimed, and the grants.
    pub fn write_rotations(
        conn: &mut AnyConnection,
        claims: &[String],
        touched: &[String],
        inserts: &[RefreshTokenRow],
        user_ids: &[String],
        now: NaiveDateTime,
    ) -> Result<(usize, users::Grants)> {
        match conn {
            AnyConnection::Postgresql(_)
                if claims.is_empty()
                    && touched.is_empty()
                    && inserts.is_empty()
                    && user_ids.is_empty() =>
            {
                // Every rotation of the batch was refused: nothing to send.
                Ok((0, users::Grants::new()))
            }
            AnyConnection::Postgresql(pg) => {
                type Row = (Option<i64>, Option<String>, Option<i32>, Option<String>);
                let rows: Vec<Row> =
                    prepared::RotationWrites::new(now, claims, touched, inserts, user_ids)
                        .load(pg)?;
                let mut claimed = 0;
                let mut grants = users::Grants::new();
                for row in rows {
                    match row {
                        (Some(count), ..) => claimed = usize::try_from(count).unwrap_or_default(),
                        (None, Some(user_id), Some(kind), Some(name)) => {
                            users::add_grant(&mut grants, user_id, kind, name)
                        }
                        _ => {}
                    }
                }
                Ok((claimed, grants))
            }
            AnyConnection::Sqlite(_) => {
                let claimed = claim_many(conn, claims, now)?;
                super::sessions::touch_many(conn, touched, now)?;
                insert_many(conn, inserts)?;
                Ok((claimed, users::roles_and_permissions_many(conn, user_ids)?))
            }
        }
    }

    /// `used_at` of a branch spent by [`spend_other_branches`] whose
    /// parent is unknown: the Unix epoch, outside every grace window.
    pub const BRANCH_SPENT_AT: NaiveDateTime = chrono::DateTime::UNIX_EPOCH.naive_utc();

    /// When the branch that `parent` began was forked, i.e. when `parent`
    /// was spent: the `used_at` a branch of it gets when another branch's
    /// rotation spends it. Presented afterwards it then gets a sibling only
    /// within the grace window of that fork (a client repeating its own
    /// refresh), never one counted from the moment it was spent: a second
    /// holder presenting its copy right after each of the owner's rotations
    /// would otherwise fork the session again and again and never be caught.
    /// [`BRANCH_SPENT_AT`] when the parent is not known (or not spent).
    pub fn branch_spent_at(
        conn: &mut AnyConnection,
        parents: &[&str],
    ) -> Result<std::collections::HashMap<String, NaiveDateTime>> {
        if parents.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let spent: Vec<(String, Option<NaiveDateTime>)> = refresh_tokens::table
            .filter(refresh_tokens::id.eq_any(parents))
            .select((refresh_tokens::id, refresh_tokens::used_at))
            .load(conn)?;
        Ok(spent
            .into_iter()
            .filter_map(|(id, used_at)| Some((id, used_at?)))
            .collect())
    }

    /// Spends every unspent token of `sessions` except those with a hash in
    /// `keep` (the tokens the calling batch claims itself), each as of when
    /// its branch was forked ([`branch_spent_at`]): what makes a forked
    /// session one chain again. Returns the sessions that still hold an
    /// unspent token outside `keep` (none, once this has run: they stay
    /// marked forked if ever there are).
    ///
    /// On PostgreSQL a token locked by another transaction (a rotation of
    /// the other branch on another instance, at the same instant) is waited
    /// for, not skipped: skipped, both branches rotated on and the session
    /// kept two chains until its next rotation. The two rotations may wait
    /// on each other (each holds its token and the session's row the other
    /// wants); PostgreSQL then ends one, and its rotations are written
    /// again (`accounts::rotation`), finding the other's committed: its
    /// branch spent, as one instance would have decided.
    pub fn spend_other_branches(
        conn: &mut AnyConnection,
        sessions: &[String],
        keep: &[String],
    ) -> Result<Vec<String>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let unspent = || {
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq_any(sessions))
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::token_hash.ne_all(keep))
        };
        let columns = (refresh_tokens::id, refresh_tokens::parent_id);
        let branches: Vec<(String, Option<String>)> = match conn {
            AnyConnection::Postgresql(pg) => {
                unspent().select(columns).for_no_key_update().load(pg)?
            }
            // The caller holds SQLite's write lock: nothing is locked apart.
            AnyConnection::Sqlite(_) => unspent().select(columns).load(conn)?,
        };
        let parents: Vec<&str> = branches.iter().filter_map(|b| b.1.as_deref()).collect();
        let forked_at = branch_spent_at(conn, &parents)?;
        // A few rows: only forked sessions get here.
        for (id, parent) in &branches {
            let spent_at = parent
                .as_ref()
                .and_then(|p| forked_at.get(p))
                .copied()
                .unwrap_or(BRANCH_SPENT_AT);
            diesel::update(refresh_tokens::table.find(id))
                .set(refresh_tokens::used_at.eq(spent_at))
                .execute(conn)?;
        }
        Ok(unspent()
            .select(refresh_tokens::session_id)
            .distinct()
            .load(conn)?)
    }

    /// [`insert`] for many rows, one prepared statement each.
    pub fn insert_many(conn: &mut AnyConnection, rows: &[RefreshTokenRow]) -> Result<()> {
        for row in rows {
            insert(conn, row)?;
        }
        Ok(())
    }

    /// Marks the token with this hash used. Conditional on it being unused,
    /// so of two racing refreshes exactly one wins; false for the loser (and
    /// for unknown tokens).
    pub fn claim_by_hash(conn: &mut AnyConnection, hash: &str, now: NaiveDateTime) -> Result<bool> {
        let statement = prepared::ClaimToken { hash, now };
        let changed = per_backend!(conn, c => statement.execute(c))?;
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

    /// Whether `subject` has a revocation of `kind` (expired or not).
    pub fn exists(conn: &mut AnyConnection, kind: &str, subject: &str) -> Result<bool> {
        use diesel::dsl::exists;
        Ok(diesel::select(exists(
            revocations::table
                .filter(revocations::subject.eq(subject))
                .filter(revocations::kind.eq(kind)),
        ))
        .get_result(conn)?)
    }

    /// What a cold start keeps in memory, as cheaply as possible: `(id,
    /// kind, subject, expiry as unix seconds)` of every unexpired row. The
    /// expiry is converted by the database, because parsing two text
    /// timestamps per row on SQLite dominated a start with 100k revocations.
    pub fn unexpired_compact(
        conn: &mut AnyConnection,
        now: NaiveDateTime,
    ) -> Result<Vec<(i64, String, String, i64)>> {
        use diesel::dsl::sql;
        use diesel::sql_types::BigInt;
        let epoch = match conn {
            AnyConnection::Sqlite(_) => "CAST(strftime('%s', expires_at) AS INTEGER)",
            AnyConnection::Postgresql(_) => "CAST(EXTRACT(EPOCH FROM expires_at) AS BIGINT)",
        };
        Ok(revocations::table
            .filter(revocations::expires_at.gt(now))
            .select((
                revocations::id,
                revocations::kind,
                revocations::subject,
                sql::<BigInt>(epoch),
            ))
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

/// Takes the database write lock at the start of a transaction.
///
/// SQLite in WAL mode runs a transaction that reads first and writes later
/// on a snapshot; if another connection wrote in between, the write fails at
/// once with SQLITE_BUSY_SNAPSHOT instead of waiting on `busy_timeout`. A
/// no-op write as the first statement makes SQLite take the write lock (and
/// wait for it) up front. PostgreSQL needs nothing: row locks and MVCC cover it.
pub fn write_lock(conn: &mut AnyConnection) -> Result<()> {
    if let AnyConnection::Sqlite(c) = conn {
        use diesel::connection::SimpleConnection;
        c.batch_execute("UPDATE users SET id = id WHERE 0 = 1")?;
    }
    Ok(())
}

/// Serializes the transactions that lock the same `key` until they end: a
/// PostgreSQL transaction-scoped advisory lock on a hash of it; on SQLite
/// the database write lock ([`write_lock`]) already serializes writers.
/// For check-then-insert rules on rows that may not exist yet (one code per
/// address and cooldown).
pub fn lock_key(conn: &mut AnyConnection, key: &str) -> Result<()> {
    match conn {
        AnyConnection::Sqlite(_) => write_lock(conn),
        AnyConnection::Postgresql(c) => {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(key)
                .execute(c)?;
            Ok(())
        }
    }
}

/// A trivial round trip, for readiness checks.
pub fn ping(conn: &mut AnyConnection) -> Result<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")?;
    Ok(())
}

pub mod outbox {
    //! The durable mail queue. Rows are inserted by the transaction that
    //! causes the mail; workers claim due rows with a lease, so several
    //! instances can run workers without sending a mail twice (a worker that
    //! dies mid-send lets the lease lapse and the mail is retried).
    use super::*;
    use schema::outbox;

    pub const PENDING: &str = "pending";
    pub const SENT: &str = "sent";
    pub const DEAD: &str = "dead";

    /// How many mails are pending and dead, by status (sent ones are left
    /// out: that count only grows and needs no watching).
    pub fn unsent_counts(conn: &mut AnyConnection) -> Result<Vec<(String, i64)>> {
        Ok(outbox::table
            .filter(outbox::status.ne(SENT))
            .group_by(outbox::status)
            .select((outbox::status, diesel::dsl::count_star()))
            .load(conn)?)
    }

    pub fn insert(conn: &mut AnyConnection, mail: &OutboxRow) -> Result<()> {
        diesel::insert_into(outbox::table)
            .values(mail)
            .execute(conn)?;
        Ok(())
    }

    /// Ids of pending mails whose time has come, oldest first.
    pub fn due(conn: &mut AnyConnection, now: NaiveDateTime, limit: i64) -> Result<Vec<String>> {
        Ok(outbox::table
            .filter(outbox::status.eq(PENDING))
            .filter(outbox::next_attempt_at.le(now))
            .order(outbox::next_attempt_at)
            .limit(limit)
            .select(outbox::id)
            .load(conn)?)
    }

    /// Takes one due mail for sending: counts the attempt and pushes
    /// `next_attempt_at` to `lease_until`. None when another worker was faster.
    pub fn claim(
        conn: &mut AnyConnection,
        id: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
    ) -> Result<Option<OutboxRow>> {
        let claimed = diesel::update(
            outbox::table
                .find(id)
                .filter(outbox::status.eq(PENDING))
                .filter(outbox::next_attempt_at.le(now)),
        )
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::next_attempt_at.eq(lease_until),
        ))
        .execute(conn)?;
        if claimed == 0 {
            return Ok(None);
        }
        find(conn, id)
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<OutboxRow>> {
        Ok(outbox::table
            .find(id)
            .select(OutboxRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Delivered: the bodies are dropped (they may hold codes or links).
    pub fn mark_sent(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<()> {
        diesel::update(outbox::table.find(id))
            .set((
                outbox::status.eq(SENT),
                outbox::sent_at.eq(now),
                outbox::text_body.eq(""),
                outbox::html_body.eq(""),
                outbox::last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Failed: try again at `retry_at`, or give up (`dead`) when `retry_at` is None.
    pub fn mark_failed(
        conn: &mut AnyConnection,
        id: &str,
        error: &str,
        retry_at: Option<NaiveDateTime>,
    ) -> Result<()> {
        let error: String = error.chars().take(1000).collect();
        match retry_at {
            Some(at) => diesel::update(outbox::table.find(id))
                .set((outbox::next_attempt_at.eq(at), outbox::last_error.eq(error)))
                .execute(conn)?,
            None => diesel::update(outbox::table.find(id))
                .set((outbox::status.eq(DEAD), outbox::last_error.eq(error)))
                .execute(conn)?,
        };
        Ok(())
    }

    /// Puts a dead (or pending) mail back in the queue now, with a fresh
    /// attempt count. False when there is no such mail or it was sent.
    pub fn retry(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<bool> {
        let changed = diesel::update(outbox::table.find(id).filter(outbox::status.ne(SENT)))
            .set((
                outbox::status.eq(PENDING),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
            ))
            .execute(conn)?;
        Ok(changed == 1)
    }

    /// When a mail of this template was last queued for this recipient.
    pub fn last_queued_at(
        conn: &mut AnyConnection,
        recipient: &str,
        template: &str,
    ) -> Result<Option<NaiveDateTime>> {
        Ok(outbox::table
            .filter(outbox::recipient.eq(recipient))
            .filter(outbox::template.eq(template))
            .select(diesel::dsl::max(outbox::created_at))
            .first(conn)?)
    }

    /// Newest first.
    pub fn list(conn: &mut AnyConnection, limit: i64) -> Result<Vec<OutboxRow>> {
        Ok(outbox::table
            .order(outbox::created_at.desc())
            .limit(limit)
            .select(OutboxRow::as_select())
            .load(conn)?)
    }
}

pub mod organizations {
    use super::*;
    use schema::{email_verifications, organization_domains, organizations};

    pub fn insert(conn: &mut AnyConnection, org: &OrganizationRow) -> Result<()> {
        diesel::insert_into(organizations::table)
            .values(org)
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<OrganizationRow>> {
        Ok(organizations::table
            .find(id)
            .select(OrganizationRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Every organization, by name.
    pub fn list(conn: &mut AnyConnection, only_active: bool) -> Result<Vec<OrganizationRow>> {
        let mut query = organizations::table
            .select(OrganizationRow::as_select())
            .order((organizations::name, organizations::id))
            .into_boxed();
        if only_active {
            query = query.filter(organizations::active.eq(true));
        }
        Ok(query.load(conn)?)
    }

    pub fn domains(conn: &mut AnyConnection, id: &str) -> Result<Vec<OrganizationDomainRow>> {
        Ok(organization_domains::table
            .filter(organization_domains::organization_id.eq(id))
            .order(organization_domains::domain)
            .select(OrganizationDomainRow::as_select())
            .load(conn)?)
    }

    /// Domains of all organizations, for listing without one query per organization.
    pub fn all_domains(conn: &mut AnyConnection) -> Result<Vec<OrganizationDomainRow>> {
        Ok(organization_domains::table
            .order((
                organization_domains::organization_id,
                organization_domains::domain,
            ))
            .select(OrganizationDomainRow::as_select())
            .load(conn)?)
    }

    pub fn add_domain(conn: &mut AnyConnection, domain: &OrganizationDomainRow) -> Result<()> {
        diesel::insert_into(organization_domains::table)
            .values(domain)
            .execute(conn)?;
        Ok(())
    }

    /// False when the organization had no such domain.
    pub fn remove_domain(conn: &mut AnyConnection, id: &str, domain: &str) -> Result<bool> {
        let removed = diesel::delete(
            organization_domains::table
                .filter(organization_domains::organization_id.eq(id))
                .filter(organization_domains::domain.eq(domain)),
        )
        .execute(conn)?;
        Ok(removed == 1)
    }

    /// Records (or refreshes) that `email` proved it belongs to the organization.
    pub fn record_verified_email(
        conn: &mut AnyConnection,
        email: &str,
        organization_id: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::delete(
            email_verifications::table
                .filter(email_verifications::email.eq(email))
                .filter(email_verifications::organization_id.eq(organization_id)),
        )
        .execute(conn)?;
        diesel::insert_into(email_verifications::table)
            .values((
                email_verifications::email.eq(email),
                email_verifications::organization_id.eq(organization_id),
                email_verifications::verified_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// When `email` was last verified for the organization, if ever.
    pub fn email_verified_at(
        conn: &mut AnyConnection,
        email: &str,
        organization_id: &str,
    ) -> Result<Option<NaiveDateTime>> {
        Ok(email_verifications::table
            .filter(email_verifications::email.eq(email))
            .filter(email_verifications::organization_id.eq(organization_id))
            .select(email_verifications::verified_at)
            .first(conn)
            .optional()?)
    }

    pub fn forget_verified_email(
        conn: &mut AnyConnection,
        email: &str,
        organization_id: &str,
    ) -> Result<()> {
        diesel::delete(
            email_verifications::table
                .filter(email_verifications::email.eq(email))
                .filter(email_verifications::organization_id.eq(organization_id)),
        )
        .execute(conn)?;
        Ok(())
    }
}

pub mod email_codes {
    use super::*;
    use schema::email_codes;

    pub fn insert(conn: &mut AnyConnection, code: &EmailCodeRow) -> Result<()> {
        diesel::insert_into(email_codes::table)
            .values(code)
            .execute(conn)?;
        Ok(())
    }

    /// The newest code for this purpose and address (any state).
    pub fn latest(
        conn: &mut AnyConnection,
        purpose: &str,
        email: &str,
    ) -> Result<Option<EmailCodeRow>> {
        Ok(email_codes::table
            .filter(email_codes::purpose.eq(purpose))
            .filter(email_codes::email.eq(email))
            .order(email_codes::created_at.desc())
            .select(EmailCodeRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Kills every unused code for this purpose and address (a new one supersedes them).
    pub fn supersede(
        conn: &mut AnyConnection,
        purpose: &str,
        email: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        diesel::update(
            email_codes::table
                .filter(email_codes::purpose.eq(purpose))
                .filter(email_codes::email.eq(email))
                .filter(email_codes::consumed_at.is_null()),
        )
        .set(email_codes::consumed_at.eq(now))
        .execute(conn)?;
        Ok(())
    }

    pub fn count_attempt(conn: &mut AnyConnection, id: &str) -> Result<()> {
        diesel::update(email_codes::table.find(id))
            .set(email_codes::attempts.eq(email_codes::attempts + 1))
            .execute(conn)?;
        Ok(())
    }

    pub fn consume(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<()> {
        diesel::update(email_codes::table.find(id))
            .set(email_codes::consumed_at.eq(now))
            .execute(conn)?;
        Ok(())
    }
}

pub mod registrations {
    use super::*;
    use schema::registrations;

    pub const PENDING: &str = "pending_review";
    pub const APPROVED: &str = "approved";
    pub const REJECTED: &str = "rejected";

    pub fn insert(conn: &mut AnyConnection, row: &RegistrationRow) -> Result<()> {
        diesel::insert_into(registrations::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<RegistrationRow>> {
        Ok(registrations::table
            .find(id)
            .select(RegistrationRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn pending_for_email(
        conn: &mut AnyConnection,
        email: &str,
    ) -> Result<Option<RegistrationRow>> {
        Ok(registrations::table
            .filter(registrations::contact_email.eq(email))
            .filter(registrations::status.eq(PENDING))
            .select(RegistrationRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Oldest first (a review queue), optionally of one status.
    pub fn list(
        conn: &mut AnyConnection,
        status: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RegistrationRow>> {
        let mut query = registrations::table
            .select(RegistrationRow::as_select())
            .order((registrations::created_at, registrations::id))
            .offset(offset)
            .limit(limit)
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(registrations::status.eq(status));
        }
        Ok(query.load(conn)?)
    }

    /// Records a decision; false when the registration was already decided
    /// (the condition makes two racing decisions impossible).
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        conn: &mut AnyConnection,
        id: &str,
        status: &str,
        by: &str,
        note: Option<&str>,
        organization_id: Option<&str>,
        user_id: Option<&str>,
        now: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            registrations::table
                .find(id)
                .filter(registrations::status.eq(PENDING)),
        )
        .set((
            registrations::status.eq(status),
            registrations::decided_by.eq(by),
            registrations::decided_at.eq(now),
            registrations::decision_note.eq(note),
            registrations::organization_id.eq(organization_id),
            registrations::user_id.eq(user_id),
        ))
        .execute(conn)?;
        Ok(changed == 1)
    }
}

pub mod activation_tokens {
    use super::*;
    use schema::activation_tokens;

    pub fn insert(conn: &mut AnyConnection, row: &ActivationTokenRow) -> Result<()> {
        diesel::insert_into(activation_tokens::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    /// Spends the token with this hash if it is unused and unexpired;
    /// returns its user. Conditional, so a token works exactly once.
    pub fn consume(
        conn: &mut AnyConnection,
        hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<String>> {
        let changed = diesel::update(
            activation_tokens::table
                .filter(activation_tokens::token_hash.eq(hash))
                .filter(activation_tokens::used_at.is_null())
                .filter(activation_tokens::expires_at.gt(now)),
        )
        .set(activation_tokens::used_at.eq(now))
        .execute(conn)?;
        if changed == 0 {
            return Ok(None);
        }
        Ok(activation_tokens::table
            .filter(activation_tokens::token_hash.eq(hash))
            .select(activation_tokens::user_id)
            .first(conn)
            .optional()?)
    }

    /// The user of an unused, unexpired token, without spending it.
    pub fn find_live(
        conn: &mut AnyConnection,
        hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<String>> {
        Ok(activation_tokens::table
            .filter(activation_tokens::token_hash.eq(hash))
            .filter(activation_tokens::used_at.is_null())
            .filter(activation_tokens::expires_at.gt(now))
            .select(activation_tokens::user_id)
            .first(conn)
            .optional()?)
    }

    /// Kills the user's unused tokens (a new link supersedes them).
    pub fn supersede(conn: &mut AnyConnection, user_id: &str, now: NaiveDateTime) -> Result<()> {
        diesel::update(
            activation_tokens::table
                .filter(activation_tokens::user_id.eq(user_id))
                .filter(activation_tokens::used_at.is_null()),
        )
        .set(activation_tokens::used_at.eq(now))
        .execute(conn)?;
        Ok(())
    }
}

pub mod api_tokens {
    use super::*;
    use schema::api_tokens;

    pub fn insert(conn: &mut AnyConnection, row: &ApiTokenRow) -> Result<()> {
        diesel::insert_into(api_tokens::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    /// The user's tokens that are neither revoked nor expired, newest first.
    pub fn live_for_user(
        conn: &mut AnyConnection,
        user_id: &str,
        now: NaiveDateTime,
    ) -> Result<Vec<ApiTokenRow>> {
        Ok(api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .filter(api_tokens::revoked_at.is_null())
            .filter(api_tokens::expires_at.gt(now))
            .order(api_tokens::created_at.desc())
            .select(ApiTokenRow::as_select())
            .load(conn)?)
    }

    /// Revokes one token of the user; None when there is no such live token.
    pub fn revoke(
        conn: &mut AnyConnection,
        user_id: &str,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<Option<ApiTokenRow>> {
        let changed = diesel::update(
            api_tokens::table
                .find(id)
                .filter(api_tokens::user_id.eq(user_id))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(now))
        .execute(conn)?;
        if changed == 0 {
            return Ok(None);
        }
        Ok(api_tokens::table
            .find(id)
            .select(ApiTokenRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<ApiTokenRow>> {
        Ok(api_tokens::table
            .find(id)
            .select(ApiTokenRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn touch(conn: &mut AnyConnection, id: &str, at: NaiveDateTime) -> Result<()> {
        diesel::update(api_tokens::table.find(id))
            .set(api_tokens::last_used_at.eq(at))
            .execute(conn)?;
        Ok(())
    }
}

pub mod clients {
    use super::*;
    use schema::{clients, external_identities};

    pub fn insert(conn: &mut AnyConnection, row: &ClientRow) -> Result<()> {
        diesel::insert_into(clients::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<ClientRow>> {
        Ok(clients::table
            .find(id)
            .select(ClientRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn list(conn: &mut AnyConnection) -> Result<Vec<ClientRow>> {
        Ok(clients::table
            .order(clients::created_at)
            .select(ClientRow::as_select())
            .load(conn)?)
    }

    pub fn identity(
        conn: &mut AnyConnection,
        client_id: &str,
        external_id: &str,
    ) -> Result<Option<ExternalIdentityRow>> {
        Ok(external_identities::table
            .find((client_id, external_id))
            .select(ExternalIdentityRow::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn insert_identity(conn: &mut AnyConnection, row: &ExternalIdentityRow) -> Result<()> {
        diesel::insert_into(external_identities::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    /// Revokes a client: its credentials stop working. False when unknown
    /// or already revoked.
    pub fn revoke(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<bool> {
        let changed = diesel::update(
            clients::table
                .find(id)
                .filter(clients::revoked_at.is_null()),
        )
        .set(clients::revoked_at.eq(now))
        .execute(conn)?;
        Ok(changed == 1)
    }

    /// Whether the user exists only for a client (a vouched identity).
    pub fn is_client_user(conn: &mut AnyConnection, user_id: &str) -> Result<bool> {
        use diesel::dsl::exists;
        Ok(diesel::select(exists(
            external_identities::table.filter(external_identities::user_id.eq(user_id)),
        ))
        .get_result(conn)?)
    }

    /// Keeps the client's latest login id and role for the user.
    pub fn update_identity(
        conn: &mut AnyConnection,
        client_id: &str,
        external_id: &str,
        login_id: &str,
        role: &str,
    ) -> Result<()> {
        diesel::update(external_identities::table.find((client_id, external_id)))
            .set((
                external_identities::login_id.eq(login_id),
                external_identities::role.eq(role),
            ))
            .execute(conn)?;
        Ok(())
    }
}

pub mod mfa {
    //! Second factors: the TOTP secret, recovery codes and the login's
    //! second-step challenges. Every rule about them is in
    //! `accounts::mfa`; the conditional updates here are what make them
    //! hold under concurrency (each answers whether it changed a row).
    use super::*;
    use schema::{mfa_challenges, recovery_codes, totp_credentials};

    pub fn totp(conn: &mut AnyConnection, user_id: &str) -> Result<Option<TotpRow>> {
        Ok(totp_credentials::table
            .find(user_id)
            .select(TotpRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Replaces a pending (unconfirmed) secret or creates one; a confirmed
    /// one stays and false is answered.
    pub fn put_pending_totp(conn: &mut AnyConnection, row: &TotpRow) -> Result<bool> {
        diesel::delete(
            totp_credentials::table
                .find(&row.user_id)
                .filter(totp_credentials::confirmed_at.is_null()),
        )
        .execute(conn)?;
        if totp(conn, &row.user_id)?.is_some() {
            return Ok(false);
        }
        diesel::insert_into(totp_credentials::table)
            .values(row)
            .execute(conn)?;
        Ok(true)
    }

    /// Marks the secret confirmed with the code of time step `step` (which
    /// counts as used). False when there was no pending secret.
    pub fn confirm_totp(
        conn: &mut AnyConnection,
        user_id: &str,
        step: i64,
        at: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            totp_credentials::table
                .find(user_id)
                .filter(totp_credentials::confirmed_at.is_null()),
        )
        .set((
            totp_credentials::confirmed_at.eq(at),
            totp_credentials::last_used_step.eq(step),
        ))
        .execute(conn)?;
        Ok(changed == 1)
    }

    /// Spends time step `step` of a confirmed secret: true only if no code
    /// of this step or a later one was accepted before (one statement, so
    /// two requests with one code can't both pass).
    pub fn use_totp_step(conn: &mut AnyConnection, user_id: &str, step: i64) -> Result<bool> {
        let changed = diesel::update(
            totp_credentials::table
                .find(user_id)
                .filter(totp_credentials::confirmed_at.is_not_null())
                .filter(
                    totp_credentials::last_used_step
                        .is_null()
                        .or(totp_credentials::last_used_step.lt(step)),
                ),
        )
        .set(totp_credentials::last_used_step.eq(step))
        .execute(conn)?;
        Ok(changed == 1)
    }

    pub fn delete_totp(conn: &mut AnyConnection, user_id: &str) -> Result<bool> {
        Ok(diesel::delete(totp_credentials::table.find(user_id)).execute(conn)? == 1)
    }

    /// Replaces the user's recovery codes with these hashes.
    pub fn replace_recovery_codes(
        conn: &mut AnyConnection,
        user_id: &str,
        hashes: &[String],
        at: NaiveDateTime,
    ) -> Result<()> {
        delete_recovery_codes(conn, user_id)?;
        for hash in hashes {
            diesel::insert_into(recovery_codes::table)
                .values((
                    recovery_codes::id.eq(uuid_v4()),
                    recovery_codes::user_id.eq(user_id),
                    recovery_codes::code_hash.eq(hash),
                    recovery_codes::created_at.eq(at),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    pub fn delete_recovery_codes(conn: &mut AnyConnection, user_id: &str) -> Result<usize> {
        Ok(
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
                .execute(conn)?,
        )
    }

    /// Spends the user's unused code with this hash: true exactly once.
    pub fn use_recovery_code(
        conn: &mut AnyConnection,
        user_id: &str,
        hash: &str,
        at: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user_id))
                .filter(recovery_codes::code_hash.eq(hash))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(at))
        .execute(conn)?;
        Ok(changed == 1)
    }

    pub fn recovery_codes_left(conn: &mut AnyConnection, user_id: &str) -> Result<i64> {
        Ok(recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(conn)?)
    }

    pub fn insert_challenge(conn: &mut AnyConnection, row: &MfaChallengeRow) -> Result<()> {
        diesel::insert_into(mfa_challenges::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    /// The challenge, in whatever state.
    pub fn challenge(
        conn: &mut AnyConnection,
        token_hash: &str,
    ) -> Result<Option<MfaChallengeRow>> {
        Ok(mfa_challenges::table
            .find(token_hash)
            .select(MfaChallengeRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// The challenge if it can still be answered: unused, unexpired and
    /// with fewer than `max_failures` wrong codes.
    pub fn live_challenge(
        conn: &mut AnyConnection,
        token_hash: &str,
        max_failures: i64,
        now: NaiveDateTime,
    ) -> Result<Option<MfaChallengeRow>> {
        Ok(mfa_challenges::table
            .find(token_hash)
            .filter(mfa_challenges::used_at.is_null())
            .filter(mfa_challenges::expires_at.gt(now))
            .filter(mfa_challenges::failures.lt(max_failures))
            .select(MfaChallengeRow::as_select())
            .first(conn)
            .optional()?)
    }

    /// Counts a wrong code against a live challenge: true if it was still
    /// live (one statement: of many parallel wrong codes exactly
    /// `max_failures` are counted, the rest find it dead).
    pub fn fail_challenge(
        conn: &mut AnyConnection,
        token_hash: &str,
        max_failures: i64,
        now: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            mfa_challenges::table
                .find(token_hash)
                .filter(mfa_challenges::used_at.is_null())
                .filter(mfa_challenges::expires_at.gt(now))
                .filter(mfa_challenges::failures.lt(max_failures)),
        )
        .set(mfa_challenges::failures.eq(mfa_challenges::failures + 1))
        .execute(conn)?;
        Ok(changed == 1)
    }

    /// Spends a live challenge: true exactly once.
    pub fn claim_challenge(
        conn: &mut AnyConnection,
        token_hash: &str,
        max_failures: i64,
        now: NaiveDateTime,
    ) -> Result<bool> {
        let changed = diesel::update(
            mfa_challenges::table
                .find(token_hash)
                .filter(mfa_challenges::used_at.is_null())
                .filter(mfa_challenges::expires_at.gt(now))
                .filter(mfa_challenges::failures.lt(max_failures)),
        )
        .set(mfa_challenges::used_at.eq(now))
        .execute(conn)?;
        Ok(changed == 1)
    }

    /// Forgets challenges that expired before `before`.
    pub fn delete_expired_challenges(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
    ) -> Result<usize> {
        Ok(
            diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(before)))
                .execute(conn)?,
        )
    }

    /// Ends every challenge of the user (second factors were reset).
    pub fn delete_challenges_for_user(conn: &mut AnyConnection, user_id: &str) -> Result<usize> {
        Ok(
            diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
                .execute(conn)?,
        )
    }

    fn uuid_v4() -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

pub mod passkeys {
    //! Passkeys and the WebAuthn ceremonies between options and answer.
    //! The rules are `accounts::passkeys`'; the statements here answer
    //! whether they changed a row, so single use holds under concurrency.
    use super::*;
    use schema::{passkeys, webauthn_ceremonies};

    pub fn for_user(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<PasskeyRow>> {
        Ok(passkeys::table
            .filter(passkeys::user_id.eq(user_id))
            .order(passkeys::created_at.asc())
            .select(PasskeyRow::as_select())
            .load(conn)?)
    }

    pub fn count_for_user(conn: &mut AnyConnection, user_id: &str) -> Result<i64> {
        Ok(passkeys::table
            .filter(passkeys::user_id.eq(user_id))
            .count()
            .get_result(conn)?)
    }

    pub fn by_credential_id(
        conn: &mut AnyConnection,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>> {
        Ok(passkeys::table
            .filter(passkeys::credential_id.eq(credential_id))
            .select(PasskeyRow::as_select())
            .load(conn)?
            .pop())
    }

    /// Stores a new passkey; false when its credential id is registered
    /// already (to anyone).
    pub fn insert(conn: &mut AnyConnection, row: &PasskeyRow) -> Result<bool> {
        if by_credential_id(conn, &row.credential_id)?.is_some() {
            return Ok(false);
        }
        diesel::insert_into(passkeys::table)
            .values(row)
            .execute(conn)?;
        Ok(true)
    }

    /// After a use: the credential's new counter and flags, and when.
    pub fn record_use(
        conn: &mut AnyConnection,
        id: &str,
        credential: Option<&str>,
        at: NaiveDateTime,
    ) -> Result<()> {
        match credential {
            Some(credential) => diesel::update(passkeys::table.find(id))
                .set((
                    passkeys::credential.eq(credential),
                    passkeys::last_used_at.eq(at),
                ))
                .execute(conn)?,
            None => diesel::update(passkeys::table.find(id))
                .set(passkeys::last_used_at.eq(at))
                .execute(conn)?,
        };
        Ok(())
    }

    /// Removes the user's passkey `id`: false when the user has none such.
    pub fn delete(conn: &mut AnyConnection, user_id: &str, id: &str) -> Result<bool> {
        Ok(diesel::delete(
            passkeys::table
                .find(id)
                .filter(passkeys::user_id.eq(user_id)),
        )
        .execute(conn)?
            == 1)
    }

    pub fn delete_for_user(conn: &mut AnyConnection, user_id: &str) -> Result<usize> {
        Ok(diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)?)
    }

    pub fn insert_ceremony(conn: &mut AnyConnection, row: &WebauthnCeremonyRow) -> Result<()> {
        diesel::insert_into(webauthn_ceremonies::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    /// Forgets a user's unfinished ceremonies of one purpose.
    pub fn delete_ceremonies_of(
        conn: &mut AnyConnection,
        user_id: &str,
        purpose: &str,
    ) -> Result<usize> {
        Ok(diesel::delete(
            webauthn_ceremonies::table
                .filter(webauthn_ceremonies::user_id.eq(user_id))
                .filter(webauthn_ceremonies::purpose.eq(purpose)),
        )
        .execute(conn)?)
    }

    /// Takes the unexpired ceremony: `Some` exactly once, however many ask
    /// at the same time (the row is deleted; only one delete finds it).
    pub fn claim_ceremony(
        conn: &mut AnyConnection,
        challenge_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<WebauthnCeremonyRow>> {
        let Some(row) = webauthn_ceremonies::table
            .find(challenge_hash)
            .select(WebauthnCeremonyRow::as_select())
            .load(conn)?
            .pop()
        else {
            return Ok(None);
        };
        let deleted =
            diesel::delete(webauthn_ceremonies::table.find(challenge_hash)).execute(conn)?;
        Ok((deleted == 1 && row.expires_at > now).then_some(row))
    }

    /// Forgets ceremonies that expired before `before`.
    pub fn delete_expired_ceremonies(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
    ) -> Result<usize> {
        Ok(diesel::delete(
            webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.lt(before)),
        )
        .execute(conn)?)
    }
}

pub mod throttles {
    //! Rows of the shared rate limiter (`accounts::throttle`): one
    //! theoretical arrival time per key.
    use super::*;
    use schema::throttles;

    /// The key's arrival time, locking the row until the transaction ends
    /// (PostgreSQL; SQLite holds the database write lock via [`write_lock`]).
    pub fn tat_for_update(conn: &mut AnyConnection, key: &str) -> Result<Option<i64>> {
        let query = throttles::table.find(key).select(throttles::tat);
        Ok(match conn {
            AnyConnection::Postgresql(pg) => query.for_update().first(pg).optional()?,
            AnyConnection::Sqlite(sqlite) => query.first(sqlite).optional()?,
        })
    }

    /// Sets the key's arrival time, creating the row if needed. Two
    /// instances creating the same row at once: one gets
    /// [`StorageError::UniqueViolation`] and should retry.
    pub fn set_tat(conn: &mut AnyConnection, key: &str, tat: i64) -> Result<()> {
        let updated = diesel::update(throttles::table.find(key))
            .set(throttles::tat.eq(tat))
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(throttles::table)
                .values((throttles::key.eq(key), throttles::tat.eq(tat)))
                .execute(conn)?;
        }
        Ok(())
    }

    /// Forgets keys with no recent events (their arrival time has passed).
    pub fn delete_idle(conn: &mut AnyConnection, now_ms: i64) -> Result<usize> {
        Ok(diesel::delete(throttles::table.filter(throttles::tat.lt(now_ms))).execute(conn)?)
    }
}

pub mod server_keys {
    //! Signing keys and named server secrets for `key_store = database`.
    //! Values arrive sealed; the rules (one active key, rotation, what a
    //! retired key is still good for) are `accounts::keys`'.
    use super::*;
    use schema::{server_secrets, signing_keys};

    pub fn all_keys(conn: &mut AnyConnection) -> Result<Vec<SigningKeyRow>> {
        Ok(signing_keys::table
            .order(signing_keys::created_at.asc())
            .select(SigningKeyRow::as_select())
            .load(conn)?)
    }

    /// Deletes a key; false when there was none with that kid.
    pub fn delete_key(conn: &mut AnyConnection, kid: &str) -> Result<bool> {
        Ok(diesel::delete(signing_keys::table.find(kid)).execute(conn)? > 0)
    }

    pub fn insert_key(conn: &mut AnyConnection, row: &SigningKeyRow) -> Result<()> {
        diesel::insert_into(signing_keys::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }

    /// Marks a key retired: `row` is the key re-sealed with its
    /// retirement in the document too (so clearing the column can't bring
    /// the key back), and the same time in `retired_at`.
    pub fn retire(conn: &mut AnyConnection, row: &SigningKeyRow) -> Result<()> {
        diesel::update(signing_keys::table.find(&row.kid))
            .set((
                signing_keys::document.eq(&row.document),
                signing_keys::retired_at.eq(row.retired_at),
            ))
            .execute(conn)?;
        Ok(())
    }

    pub fn secret(conn: &mut AnyConnection, name: &str) -> Result<Option<ServerSecretRow>> {
        Ok(server_secrets::table
            .find(name)
            .select(ServerSecretRow::as_select())
            .load(conn)?
            .pop())
    }

    pub fn all_secrets(conn: &mut AnyConnection) -> Result<Vec<ServerSecretRow>> {
        Ok(server_secrets::table
            .order(server_secrets::name.asc())
            .select(ServerSecretRow::as_select())
            .load(conn)?)
    }

    pub fn insert_secret(conn: &mut AnyConnection, row: &ServerSecretRow) -> Result<()> {
        diesel::insert_into(server_secrets::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    }
}

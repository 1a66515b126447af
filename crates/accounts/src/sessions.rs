//! A user's view of their own login sessions ("where am I signed in"), and
//! what an activation link stands for before it is spent.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;
use storage::repo::{activation_tokens, organizations, refresh_tokens, sessions, users};

use crate::admin::UserView;
use crate::audit::{AuditContext, AuditEvent, events};
use crate::error::AccountsError;
use crate::secrets::token_hash;
use crate::service::{Accounts, Channel, ClientInfo, RevokedSession, now};
use crate::types::UserStatus;

type Result<T> = std::result::Result<T, AccountsError>;

/// A live login session, as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The application (OpenID Connect relying party) holding it, by name;
    /// `None` for a session of our own pages or API.
    pub application: Option<String>,
}

/// A browser signed in by its session cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowserSession {
    pub user: UserView,
    pub session_id: String,
    /// The cookie's token got a later deadline, this many seconds ahead.
    pub extended_for: Option<i64>,
}

/// Whose account an unspent activation link opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationPreview {
    pub email: String,
    pub name: Option<String>,
    pub organization: Option<String>,
}

/// How long a session is kept after its absolute end (revoked ones too,
/// until then): long enough to look into what happened in it. Its refresh
/// tokens go with it; presented afterwards they are unknown, which is
/// answered as an ended session's are (`invalid_refresh_token`).
pub const ENDED_SESSION_RETENTION: TimeDelta = TimeDelta::days(7);

/// Sessions deleted per statement by [`Accounts::forget_ended_sessions`].
const FORGET_BATCH: i64 = 500;

impl Accounts {
    /// Deletes the sessions that ended more than
    /// [`ENDED_SESSION_RETENTION`] ago, with their refresh tokens, a batch
    /// at a time (the background work does this every few minutes, so the
    /// tables hold what can still matter, not every session ever started).
    /// Returns how many sessions were deleted.
    pub fn forget_ended_sessions(&self) -> Result<usize> {
        let before = (now() - ENDED_SESSION_RETENTION).naive_utc();
        let mut deleted = 0;
        loop {
            let mut conn = self.conn()?;
            let batch = sessions::delete_ended_before(&mut conn, before, FORGET_BATCH)?;
            deleted += batch;
            if batch < FORGET_BATCH as usize {
                return Ok(deleted);
            }
        }
    }

    /// The user's live sessions, most recently used first.
    pub fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionView>> {
        let mut conn = self.conn()?;
        let rows = sessions::live_for_user(&mut conn, user_id, now().naive_utc())?;
        let mut names = std::collections::HashMap::new();
        let mut views = Vec::with_capacity(rows.len());
        for s in rows {
            let application = match (&s.client_id, &s.scope) {
                (Some(client_id), Some(_)) => {
                    if !names.contains_key(client_id) {
                        let name =
                            storage::repo::clients::find(&mut conn, client_id)?.map(|c| c.name);
                        names.insert(client_id.clone(), name);
                    }
                    names.get(client_id).cloned().flatten()
                }
                _ => None,
            };
            views.push(SessionView {
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
                application,
            });
        }
        Ok(views)
    }

    /// Ends one of the user's own sessions ("sign out that device"). Another
    /// user's session is [`AccountsError::SessionNotFound`], as is one
    /// already ended.
    pub fn end_session(
        &self,
        user_id: &str,
        session_id: &str,
        context: &AuditContext,
    ) -> Result<RevokedSession> {
        let at = now();
        let mut conn = self.conn()?;
        let revoked = conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            let owned = sessions::find(c, session_id)?.is_some_and(|s| s.user_id == user_id);
            if !owned {
                return Err(AccountsError::SessionNotFound);
            }
            let revoked = self.revoke_session_in(c, session_id, "logout", at)?;
            if revoked.is_empty() {
                return Err(AccountsError::SessionNotFound);
            }
            AuditEvent::new(events::LOGOUT)
                .subject(user_id)
                .detail("session_id", session_id)
                .record(c, context)?;
            Ok::<_, AccountsError>(revoked)
        })?;
        self.published(revoked)
            .into_iter()
            .next()
            .ok_or(AccountsError::SessionNotFound)
    }

    /// The account an activation token would activate; `None` when the
    /// token is unknown, spent or expired. Reading does not spend it.
    pub fn activation_preview(&self, token: &str) -> Result<Option<ActivationPreview>> {
        let mut conn = self.conn()?;
        let Some(user_id) =
            activation_tokens::find_live(&mut conn, &token_hash(token), now().naive_utc())?
        else {
            return Ok(None);
        };
        let Some(user) = users::find_by_id(&mut conn, &user_id)? else {
            return Ok(None);
        };
        let organization = match &user.organization_id {
            Some(id) => organizations::find(&mut conn, id)?.map(|o| o.name),
            None => None,
        };
        Ok(Some(ActivationPreview {
            email: user.email,
            name: user.name,
            organization,
        }))
    }

    /// The signed-in user behind a browser's session cookie, which holds its
    /// login session's refresh token; reading it does not spend it. `None`
    /// when the token is unknown, expired, of an ended session, of a client's
    /// session ([`Channel::Client`](crate::Channel)), or its user may not log in.
    ///
    /// Pages never rotate this token, so a spent one means a copy was used
    /// at the refresh endpoint: it was stolen. As at refresh, the session is
    /// revoked and the answer is [`AccountsError::RefreshTokenReused`] — the
    /// grace window for a client's duplicate refresh does not apply, since
    /// no page ever sends one.
    ///
    /// The session slides with use: a token past half its idle life gets a
    /// new idle deadline (never past its session's end) instead of being
    /// rotated, so pages loading at the same moment with the same cookie all
    /// stay signed in; `extended_for` then says for how many seconds.
    pub fn browser_session(
        &self,
        token: &str,
        origin: &ClientInfo,
    ) -> Result<Option<BrowserSession>> {
        let at = now();
        let hash = token_hash(token);
        let mut conn = self.conn()?;
        let Some((row, session, user)) =
            refresh_tokens::find_with_session_and_user(&mut conn, &hash)?
        else {
            return Ok(None);
        };
        if !Channel::Native.admits(&session) {
            return Ok(None);
        }
        let live_session = session.revoked_at.is_none() && session.expires_at > at.naive_utc();
        if row.used_at.is_some() {
            if !live_session {
                return Ok(None);
            }
            let revoked = conn.transaction(|c| {
                storage::repo::write_lock(c)?;
                let revoked = self.revoke_session_in(c, &session.id, "refresh_token_reused", at)?;
                AuditEvent::new(events::REFRESH_REUSED)
                    .subject(&session.user_id)
                    .detail("session_id", &session.id)
                    .detail("via", "browser_session")
                    .record(c, &AuditContext::from(origin))?;
                Ok::<_, AccountsError>(revoked)
            })?;
            return Err(AccountsError::RefreshTokenReused(
                self.published(revoked).into_iter().next(),
            ));
        }
        let active = UserStatus::parse(&user.status) == Some(UserStatus::Active);
        if !live_session || !active || row.expires_at <= at.naive_utc() {
            return Ok(None);
        }
        let idle = TimeDelta::seconds(self.sessions.refresh_idle_ttl_secs);
        let left = row.expires_at - at.naive_utc();
        let extended_for = if left > idle / 2 {
            None
        } else {
            let until = (at.naive_utc() + idle).min(session.expires_at);
            let extended = conn.transaction(|c| -> Result<bool> {
                let extended = refresh_tokens::extend(c, &hash, until)?;
                if extended {
                    sessions::touch(c, &session.id, at.naive_utc())?;
                }
                Ok(extended)
            })?;
            extended.then(|| (until - at.naive_utc()).num_seconds())
        };
        drop(conn);
        let Some(user) = self.user_view(&user.id)? else {
            return Ok(None);
        };
        Ok(Some(BrowserSession {
            user,
            session_id: session.id,
            extended_for,
        }))
    }
}

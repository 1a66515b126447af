//! A user's view of their own login sessions ("where am I signed in"), and
//! what an activation link stands for before it is spent.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;
use storage::repo::{activation_tokens, organizations, refresh_tokens, sessions, users};

use crate::audit::{AuditContext, AuditEvent, events};
use crate::clients::LiveRefreshToken;
use crate::error::AccountsError;
use crate::secrets::token_hash;
use crate::service::{Accounts, RevokedSession, now};

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
}

/// Whose account an unspent activation link opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationPreview {
    pub email: String,
    pub name: Option<String>,
    pub organization: Option<String>,
}

impl Accounts {
    /// The user's live sessions, most recently used first.
    pub fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionView>> {
        let mut conn = self.conn()?;
        let rows = sessions::live_for_user(&mut conn, user_id, now().naive_utc())?;
        Ok(rows
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect())
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
        conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            let owned = sessions::find(c, session_id)?.is_some_and(|s| s.user_id == user_id);
            if !owned {
                return Err(AccountsError::SessionNotFound);
            }
            let revoked = self
                .revoke_session_in(c, session_id, "logout", at)?
                .ok_or(AccountsError::SessionNotFound)?;
            AuditEvent::new(events::LOGOUT)
                .subject(user_id)
                .detail("session_id", session_id)
                .record(c, context)?;
            Ok(revoked)
        })
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

    /// Keeps a browser session going while it is used: a live refresh
    /// token past half its idle life gets a new idle deadline (never past
    /// its session's end) instead of being rotated, so pages loading at the
    /// same moment with the same cookie all stay signed in. Returns the
    /// token's remaining seconds when it was extended. The token stays what
    /// it was: single use, and spent by a refresh like any other.
    ///
    /// `live` is what [`Accounts::live_refresh_token`] just found for
    /// `token`: a token with more than half its idle life left costs no
    /// database work here.
    pub fn keep_alive(&self, token: &str, live: &LiveRefreshToken) -> Result<Option<i64>> {
        let at = now().naive_utc();
        let idle = TimeDelta::seconds(self.sessions.refresh_idle_ttl_secs);
        if live.expires_at - at.and_utc().timestamp() > idle.num_seconds() / 2 {
            return Ok(None);
        }
        let mut conn = self.conn()?;
        let Some(session) = sessions::find(&mut conn, &live.session_id)? else {
            return Ok(None);
        };
        let until = (at + idle).min(session.expires_at);
        let extended = conn.transaction(|c| -> Result<bool> {
            let extended = refresh_tokens::extend(c, &token_hash(token), until)?;
            if extended {
                sessions::touch(c, &session.id, at)?;
            }
            Ok(extended)
        })?;
        Ok(extended.then(|| (until - at).num_seconds()))
    }
}

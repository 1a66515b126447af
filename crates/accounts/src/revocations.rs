//! How revocations leave an operation: every operation that revokes a
//! session or a token records it in the `revocations` table (in its own
//! transaction, for other instances and the public feed) and, once that has
//! committed, adds it to this instance's [`RevocationSet`] — so a front-end
//! never has to remember to tell anyone.
//!
//! [`Accounts::load_revocations`] and [`Accounts::poll_revocations`] fill the
//! same set from the table: everything still relevant at start, then what
//! other instances revoked since.

use auth_core::{Revocation, RevocationKind, RevocationSet};
use chrono::{TimeDelta, Utc};
use storage::repo::revocations;

use crate::admin::{Revoked, RevokedToken};
use crate::error::AccountsError;
use crate::service::{Accounts, RevokedSession};

/// Rows are re-read for this long after creation, because on PostgreSQL an id
/// can become visible after a higher one was already read (see
/// `storage::repo::revocations::poll`).
const LATE_VISIBILITY_WINDOW: TimeDelta = TimeDelta::seconds(10);

/// One entry of the public revocation feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    pub cursor: i64,
    /// `sid` or `jti`.
    pub kind: String,
    pub id: String,
    /// Unix seconds after which the entry no longer matters.
    pub exp: i64,
}

/// Values that stand for revocations just committed.
pub(crate) trait Revokes {
    fn each(&self, out: &mut Vec<Revocation>);
}

impl Revokes for RevokedSession {
    fn each(&self, out: &mut Vec<Revocation>) {
        out.push(Revocation {
            kind: RevocationKind::Session,
            id: self.session_id.clone(),
            until: self.until,
        });
    }
}

impl Revokes for RevokedToken {
    fn each(&self, out: &mut Vec<Revocation>) {
        out.push(Revocation {
            kind: RevocationKind::Token,
            id: self.jti.clone(),
            until: self.until,
        });
    }
}

impl Revokes for Revoked {
    fn each(&self, out: &mut Vec<Revocation>) {
        self.sessions.each(out);
        self.tokens.each(out);
    }
}

impl<T: Revokes> Revokes for Option<T> {
    fn each(&self, out: &mut Vec<Revocation>) {
        if let Some(value) = self {
            value.each(out);
        }
    }
}

impl<T: Revokes> Revokes for Vec<T> {
    fn each(&self, out: &mut Vec<Revocation>) {
        for value in self {
            value.each(out);
        }
    }
}

impl Accounts {
    /// The sessions and tokens this instance knows to be revoked: its own
    /// revocations at once, other instances' after the next poll.
    pub fn revocations(&self) -> &RevocationSet {
        self.verifier.revocations()
    }

    /// Adds what `value` revoked to the in-memory set. Call it after the
    /// transaction that recorded the revocations has committed, and pass the
    /// value on.
    pub(crate) fn published<T: Revokes>(&self, value: T) -> T {
        let mut entries = Vec::new();
        value.each(&mut entries);
        self.verifier.revocations().extend(entries);
        value
    }

    /// Cold start: loads every revocation still relevant. Returns the cursor
    /// to poll from.
    pub fn load_revocations(&self) -> Result<i64, AccountsError> {
        let mut conn = self.conn()?;
        let rows = revocations::unexpired_compact(&mut conn, Utc::now().naive_utc())?;
        let cursor = rows.iter().map(|r| r.0).max().unwrap_or(0);
        let sessions = rows.iter().filter(|r| r.1 == "sid").count();
        self.verifier
            .revocations()
            .reserve(sessions, rows.len() - sessions);
        self.verifier
            .revocations()
            .extend(rows.into_iter().filter_map(|(_, kind, id, until)| {
                Some(Revocation {
                    kind: RevocationKind::parse(&kind)?,
                    id,
                    until,
                })
            }));
        Ok(cursor)
    }

    /// The public revocation feed (`/api/v1/revocations`): revocations after
    /// `cursor` whose tokens may still be valid, oldest first, at most
    /// `limit`. Each entry's `cursor` is where the next page starts.
    pub fn revocation_feed(
        &self,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<FeedEntry>, AccountsError> {
        let mut conn = self.conn()?;
        let rows = revocations::page_after(&mut conn, cursor, Utc::now().naive_utc(), limit)?;
        Ok(rows
            .into_iter()
            .map(|r| FeedEntry {
                cursor: r.id,
                kind: r.kind,
                id: r.subject,
                exp: r.expires_at.and_utc().timestamp(),
            })
            .collect())
    }

    /// Reads what was revoked since `cursor` (by any instance), adds it, and
    /// forgets entries whose tokens have all expired. Returns the new cursor.
    pub fn poll_revocations(&self, cursor: i64) -> Result<i64, AccountsError> {
        let mut conn = self.conn()?;
        let rows = revocations::poll(
            &mut conn,
            cursor,
            Utc::now().naive_utc() - LATE_VISIBILITY_WINDOW,
            10_000,
        )?;
        drop(conn);
        let next = rows
            .iter()
            .map(|r| r.id)
            .max()
            .unwrap_or(cursor)
            .max(cursor);
        self.verifier
            .revocations()
            .extend(rows.into_iter().filter_map(|row| {
                Some(Revocation {
                    kind: RevocationKind::parse(&row.kind)?,
                    until: row.expires_at.and_utc().timestamp(),
                    id: row.subject,
                })
            }));
        self.verifier
            .revocations()
            .forget_expired(Utc::now().timestamp());
        Ok(next)
    }
}

//! Which sessions and tokens are revoked, known in memory so that checking a
//! bearer token costs no database round trip.
//!
//! Entries come from this instance's own logouts (added at once) and from the
//! `revocations` table, polled every `revocation_poll_ms` so revocations made
//! on other instances arrive within that interval. An entry is forgotten when
//! every token it covers has expired anyway.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use storage::DbPool;
use storage::models::RevocationRow;
use storage::repo::revocations;

use crate::blocking::run_blocking;

#[derive(Default)]
pub struct RevocationCache {
    /// id → unix time after which the entry no longer matters.
    sessions: RwLock<HashMap<String, i64>>,
    tokens: RwLock<HashMap<String, i64>>,
}

impl RevocationCache {
    pub fn is_revoked(&self, session_id: &str, jti: &str) -> bool {
        read(&self.sessions).contains_key(session_id) || read(&self.tokens).contains_key(jti)
    }

    pub fn revoke_session(&self, session_id: String, until: i64) {
        write(&self.sessions).insert(session_id, until);
    }

    pub fn revoke_token(&self, jti: String, until: i64) {
        write(&self.tokens).insert(jti, until);
    }

    fn apply(&self, row: RevocationRow) {
        let until = row.expires_at.and_utc().timestamp();
        self.apply_parts(&row.kind, row.subject, until);
    }

    fn apply_parts(&self, kind: &str, subject: String, until: i64) {
        match kind {
            "sid" => self.revoke_session(subject, until),
            "jti" => self.revoke_token(subject, until),
            other => tracing::warn!(kind = other, "unknown revocation kind ignored"),
        }
    }

    fn forget_expired(&self, now: i64) {
        write(&self.sessions).retain(|_, until| *until > now);
        write(&self.tokens).retain(|_, until| *until > now);
    }

    /// Cold start: everything still relevant. Returns the cursor to poll from.
    pub fn load(&self, pool: &DbPool) -> Result<i64, storage::StorageError> {
        let mut conn = pool.get()?;
        let rows = revocations::unexpired_compact(&mut conn, Utc::now().naive_utc())?;
        let cursor = rows.iter().map(|r| r.0).max().unwrap_or(0);
        {
            // One allocation per map instead of repeated growth.
            let sessions = rows.iter().filter(|r| r.1 == "sid").count();
            write(&self.sessions).reserve(sessions);
            write(&self.tokens).reserve(rows.len() - sessions);
        }
        for (_, kind, subject, until) in rows {
            self.apply_parts(&kind, subject, until);
        }
        Ok(cursor)
    }
}

// A poisoned lock only means another thread panicked mid-insert; the map is
// still usable, and refusing to check revocations would be worse.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Rows are re-read for this long after creation, because on PostgreSQL an id
/// can become visible after a higher one was already read (see
/// `storage::repo::revocations::poll`).
const LATE_VISIBILITY_WINDOW: TimeDelta = TimeDelta::seconds(10);

/// Polls the revocations table forever; run it as a background task.
pub async fn poll_forever(
    cache: std::sync::Arc<RevocationCache>,
    pool: DbPool,
    mut cursor: i64,
    every: Duration,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let pool = pool.clone();
        let polled = run_blocking(
            move || -> Result<Vec<RevocationRow>, storage::StorageError> {
                let mut conn = pool.get()?;
                revocations::poll(
                    &mut conn,
                    cursor,
                    Utc::now().naive_utc() - LATE_VISIBILITY_WINDOW,
                    10_000,
                )
            },
        )
        .await;
        match polled {
            Ok(Ok(rows)) => {
                if let Some(max) = rows.iter().map(|r| r.id).max() {
                    cursor = cursor.max(max);
                }
                rows.into_iter().for_each(|row| cache.apply(row));
                cache.forget_expired(Utc::now().timestamp());
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "polling revocations failed; retrying"),
            Err(_) => tracing::warn!("polling revocations failed; retrying"),
        }
    }
}

//! The delivery worker: takes due rows from the `outbox` table and sends them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, TimeDelta, Utc};
use storage::repo::outbox as repo;
use storage::{AnyConnection, DbPool, StorageError};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::error::MailError;
use crate::transport::Mailer;

/// Retry delays stop growing here: a mail that failed for an hour is retried
/// hourly until `max_attempts`, rather than at ever longer intervals.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Worker tuning.
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// How often to look for due mail when nobody calls the notifier.
    pub poll_interval: Duration,
    /// Attempts after which a mail is marked dead.
    pub max_attempts: i64,
    /// Delay after the first failure; it doubles with every further failure
    /// (`base * 2^(attempts-1)`), capped at one hour.
    pub base_backoff: Duration,
    /// How long a claimed mail belongs to this worker. Sending is abandoned
    /// (and counted as a failure) when it takes longer, so that no other
    /// worker can claim a mail this one is still sending.
    pub lease: Duration,
    /// Rows claimed per query.
    pub batch: i64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            max_attempts: 8,
            base_backoff: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            batch: 20,
        }
    }
}

/// Delivers the mail queued in the `outbox` table.
pub struct OutboxWorker {
    pool: DbPool,
    mailer: Arc<Mailer>,
    config: OutboxConfig,
    notify: Arc<Notify>,
}

/// Now, in UTC, at the microsecond precision PostgreSQL keeps (SQLite would
/// keep nanoseconds, and the two backends must store the same values).
pub(crate) fn now() -> NaiveDateTime {
    Utc::now().trunc_subsecs(6).naive_utc()
}

/// `at + delay`, saturating instead of panicking on absurd configuration.
fn after(at: NaiveDateTime, delay: Duration) -> NaiveDateTime {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delay| at.checked_add_signed(delay))
        .unwrap_or(NaiveDateTime::MAX)
        .trunc_subsecs(6)
}

/// The wait before the next attempt, after `attempts` failed ones.
fn backoff(base: Duration, attempts: i64) -> Duration {
    // 2^31 times any non-zero base is far beyond the cap already.
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 31)).unwrap_or(31);
    base.checked_mul(1 << exponent)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// Runs a storage call on the blocking thread pool (diesel and r2d2 block),
/// inside the caller's tracing span so its logs keep their context.
async fn blocking<T, F>(pool: &DbPool, f: F) -> Result<T, MailError>
where
    T: Send + 'static,
    F: FnOnce(&mut AnyConnection) -> Result<T, StorageError> + Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
    })
    .await
    .map_err(|e| MailError::Task(e.to_string()))?
    .map_err(MailError::from)
}

impl OutboxWorker {
    pub fn new(pool: DbPool, mailer: Arc<Mailer>, config: OutboxConfig) -> OutboxWorker {
        OutboxWorker {
            pool,
            mailer,
            config,
            notify: Arc::new(Notify::new()),
        }
    }

    /// Wakes the worker now (call after committing a mail) instead of waiting
    /// for the next poll. Use `notify_one()`: it is remembered if the worker
    /// is busy sending, whereas `notify_waiters()` would be lost.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// One pass: claim every due mail, send it, mark sent / schedule retry /
    /// mark dead. Returns how many were sent. A storage error ends the pass
    /// (mails already claimed are retried when their lease lapses).
    pub async fn deliver_due(&self) -> Result<usize, MailError> {
        let batch = self.config.batch.max(1);
        // A mail that fails with a zero backoff is due again at once; without
        // this set one pass would keep retrying it until it is dead.
        let mut seen = HashSet::new();
        let mut sent = 0;
        loop {
            let ids = blocking(&self.pool, move |conn| repo::due(conn, now(), batch)).await?;
            let full = ids.len() as i64 >= batch;
            let fresh: Vec<String> = ids
                .into_iter()
                .filter(|id| seen.insert(id.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for id in fresh {
                let span = tracing::info_span!("outbox_mail", id = %id);
                if self.deliver_one(id).instrument(span).await? {
                    sent += 1;
                }
            }
            if !full {
                break;
            }
        }
        Ok(sent)
    }

    /// Claims, sends and records one mail; true when it was sent.
    async fn deliver_one(&self, id: String) -> Result<bool, MailError> {
        let lease = self.config.lease;
        let claim_id = id.clone();
        let claimed = blocking(&self.pool, move |conn| {
            let now = now();
            repo::claim(conn, &claim_id, now, after(now, lease))
        })
        .await?;
        let Some(mail) = claimed else {
            // Another worker took it between `due` and `claim`.
            return Ok(false);
        };

        let sending = self.mailer.send(
            &mail.recipient,
            &mail.subject,
            &mail.text_body,
            &mail.html_body,
            &mail.id,
        );
        let result = match tokio::time::timeout(lease, sending).await {
            Ok(result) => result,
            Err(_) => Err(MailError::Send(format!(
                "not sent within the lease of {lease:?}"
            ))),
        };

        match result {
            Ok(()) => {
                blocking(&self.pool, move |conn| repo::mark_sent(conn, &id, now())).await?;
                tracing::info!(template = %mail.template, attempts = mail.attempts, "mail sent");
                Ok(true)
            }
            Err(error) => {
                let give_up = error.is_permanent() || mail.attempts >= self.config.max_attempts;
                let retry_in = backoff(self.config.base_backoff, mail.attempts);
                let retry_at = (!give_up).then(|| after(now(), retry_in));
                let message = error.to_string();
                blocking(&self.pool, move |conn| {
                    repo::mark_failed(conn, &id, &message, retry_at)
                })
                .await?;
                if give_up {
                    tracing::error!(
                        template = %mail.template, attempts = mail.attempts, %error,
                        "mail delivery failed; giving up (status dead)"
                    );
                } else {
                    tracing::warn!(
                        template = %mail.template, attempts = mail.attempts, %error, ?retry_in,
                        "mail delivery failed; will retry"
                    );
                }
                Ok(false)
            }
        }
    }

    /// Forever: `deliver_due`, then wait for the poll interval or a
    /// notification. Errors are logged and retried at the next poll, never
    /// fatal: a database or SMTP outage must not stop mail for good.
    pub async fn run(self) {
        tracing::info!(poll_interval = ?self.config.poll_interval, "outbox worker started");
        loop {
            match self.deliver_due().await {
                Ok(0) => {}
                Ok(sent) => tracing::debug!(sent, "outbox pass done"),
                Err(error) => {
                    tracing::error!(%error, "outbox pass failed; retrying at the next poll")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = self.notify.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 3), Duration::from_secs(8));
        assert_eq!(backoff(base, 11), Duration::from_secs(2048));
        assert_eq!(backoff(base, 12), MAX_BACKOFF);
        assert_eq!(backoff(base, i64::MAX), MAX_BACKOFF);
        assert_eq!(backoff(base, 0), base);
        assert_eq!(backoff(base, -5), base);
        assert_eq!(backoff(Duration::ZERO, 40), Duration::ZERO);
        assert_eq!(backoff(Duration::from_secs(7200), 1), MAX_BACKOFF);
    }

    #[test]
    fn times_are_microsecond_precise() {
        let t = after(now(), Duration::from_nanos(1_234_567));
        assert_eq!(t.and_utc().timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(
            after(now(), Duration::MAX),
            NaiveDateTime::MAX.trunc_subsecs(6)
        );
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = OutboxConfig::default();
        assert_eq!(config.poll_interval, Duration::from_secs(1));
        assert_eq!(config.max_attempts, 8);
        assert_eq!(config.base_backoff, Duration::from_secs(2));
        assert_eq!(config.lease, Duration::from_secs(60));
        assert_eq!(config.batch, 20);
    }
}

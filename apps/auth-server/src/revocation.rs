//! Keeps this instance's revocation set (`Accounts::revocations`) current
//! with what other instances revoked: the `revocations` table is polled every
//! `revocation_poll_ms`. This instance's own revocations reach the set at once
//! (the account operations add them after their commit).

use std::sync::Arc;
use std::time::Duration;

use accounts::Accounts;

use crate::blocking::run_blocking;

/// Polls the revocations table forever; run it as a background task.
pub async fn poll_forever(accounts: Arc<Accounts>, mut cursor: i64, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let accounts = accounts.clone();
        match run_blocking(move || accounts.poll_revocations(cursor)).await {
            Ok(Ok(next)) => cursor = next,
            Ok(Err(e)) => tracing::warn!(error = %e, "polling revocations failed; retrying"),
            Err(_) => tracing::warn!("polling revocations failed; retrying"),
        }
    }
}

//! The work that runs beside the requests, started by one call
//! ([`start`]) that the server makes and an embedder makes too:
//!
//! - revocation polling: what other instances revoked reaches this
//!   instance's [`RevocationSet`](auth_core::RevocationSet) within
//!   `revocation_poll` (its own revocations arrive at once); on PostgreSQL,
//!   with `revocation_push`, a listening connection wakes the poll as soon
//!   as another instance commits one, and the interval is only the
//!   fallback while that connection is down;
//! - key reload: the key store is re-read every `every`, so a rotation on
//!   any instance applies without a restart; on PostgreSQL the listening
//!   connection also wakes it as soon as a rotation in the database commits;
//! - API-token last use, collected in memory, written every 10 s;
//! - idle rate-limit rows, expired second-step challenges and sessions
//!   ended a week ago deleted every 10 minutes;
//! - mail delivery from the outbox, when a worker is given;
//! - back-channel logout tokens POSTed to relying parties, when a sender
//!   is given.
//!
//! Everything runs on the current tokio runtime; database work goes
//! through [`run_blocking`](crate::blocking::run_blocking).

use std::sync::{Arc, Weak};
use std::time::Duration;

use mailer::OutboxWorker;
use storage::{ChangeListener, DatabaseUrl};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::blocking::run_blocking;
use crate::error::AccountsError;
use crate::keys::KeySource;
use crate::oidc::LogoutSender;
use crate::service::Accounts;

/// How often the signing keys are re-read from the accounts' key source
/// ([`Accounts::with_key_source`]).
pub struct KeyReload {
    pub every: Duration,
}

pub struct BackgroundConfig {
    /// How often revocations made by other instances are read.
    pub revocation_poll: Duration,
    /// `None`: the keys given at start are kept.
    pub key_reload: Option<KeyReload>,
    /// `None`: queued mail waits for a process that delivers it.
    pub outbox: Option<OutboxWorker>,
    /// The database to `LISTEN` on for revocations and key changes made
    /// elsewhere (PostgreSQL; ignored for SQLite). `None`: polling only.
    pub revocation_push: Option<DatabaseUrl>,
    /// `None`: logout tokens wait for a process that sends them.
    pub logout_sender: Option<Arc<dyn LogoutSender>>,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            revocation_poll: Duration::from_millis(500),
            key_reload: None,
            outbox: None,
            revocation_push: None,
            logout_sender: None,
        }
    }
}

/// The running tasks. They run until [`stop`](Self::stop) or the end of
/// the runtime; dropping this handle leaves them running.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Stops every task (a mail being sent is abandoned; its lease lapses
    /// and it is sent again later).
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Loads the revocations still relevant (before the first request is
/// answered), then starts every background task on the current runtime.
pub async fn start(
    accounts: Arc<Accounts>,
    config: BackgroundConfig,
) -> Result<Background, AccountsError> {
    let cursor = {
        let accounts = accounts.clone();
        run_blocking(move || accounts.load_revocations())
            .await
            .map_err(|_| AccountsError::BackgroundTask)??
    };
    let wake = Arc::new(Notify::new());
    let keys_changed = Arc::new(Notify::new());
    if let Some(url) = config.revocation_push {
        let wakes = Wakes {
            revocations: Arc::downgrade(&wake),
            keys: Arc::downgrade(&keys_changed),
        };
        std::thread::Builder::new()
            .name("change-listener".into())
            .spawn(move || listen_for_changes(&url, &wakes))
            .map_err(|_| AccountsError::BackgroundTask)?;
    }
    let mut tasks = vec![
        tokio::spawn(poll_revocations(
            accounts.clone(),
            cursor,
            config.revocation_poll,
            wake,
        )),
        tokio::spawn(flush_api_token_use(accounts.clone())),
        tokio::spawn(forget_stale_rows(accounts.clone())),
    ];
    if let Some(reload) = config.key_reload {
        let Some(source) = accounts.key_source().cloned() else {
            return Err(AccountsError::KeyReloadWithoutSource);
        };
        tasks.push(tokio::spawn(reload_keys(
            accounts.clone(),
            source,
            reload.every,
            keys_changed,
        )));
    }
    if let Some(outbox) = config.outbox {
        tasks.push(tokio::spawn(outbox.run()));
    }
    if let Some(sender) = config.logout_sender {
        tasks.push(tokio::spawn(send_logout_tokens(accounts.clone(), sender)));
    }
    Ok(Background { tasks })
}

/// Reads what other instances revoked, forever: every `every`, and at once
/// when the listener hears of a new revocation.
async fn poll_revocations(
    accounts: Arc<Accounts>,
    mut cursor: i64,
    every: Duration,
    wake: Arc<Notify>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = wake.notified() => {}
        }
        let accounts = accounts.clone();
        match run_blocking(move || accounts.poll_revocations(cursor)).await {
            Ok(Ok(next)) => cursor = next,
            Ok(Err(e)) => tracing::warn!(error = %e, "polling revocations failed; retrying"),
            Err(_) => tracing::warn!("polling revocations failed; retrying"),
        }
    }
}

/// POSTs queued logout tokens to relying parties, every second: all due
/// ones at once (up to 20), each within 5 s, so one slow or dead endpoint
/// can't hold up another client's notices (a batch ends within 5 s, well
/// inside its 60 s lease); each attempt is recorded (see
/// [`Accounts::logout_notice_attempted`]).
async fn send_logout_tokens(accounts: Arc<Accounts>, sender: Arc<dyn LogoutSender>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let leasing = accounts.clone();
        let due = match run_blocking(move || leasing.lease_logout_notices(20)).await {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading logout tokens to send failed; retrying");
                continue;
            }
            Err(_) => continue,
        };
        let mut sending = tokio::task::JoinSet::new();
        for notice in due {
            let sent = sender.send(&notice.uri, &notice.logout_token);
            let accounts = accounts.clone();
            sending.spawn(async move {
                let delivered = tokio::time::timeout(Duration::from_secs(5), sent)
                    .await
                    .unwrap_or(false);
                let recorded =
                    run_blocking(move || accounts.logout_notice_attempted(&notice, delivered))
                        .await;
                if !matches!(recorded, Ok(Ok(()))) {
                    tracing::warn!("recording a back-channel logout attempt failed");
                }
            });
        }
        while sending.join_next().await.is_some() {}
    }
}

/// How often the listening connection's socket is read: a non-blocking
/// read of what has arrived (libpq's `PQconsumeInput`), no round trip.
const LISTEN_EVERY: Duration = Duration::from_millis(10);

/// The tasks a [`ChangeListener`] wakes; weak, so the listener ends
/// with them.
struct Wakes {
    revocations: Weak<Notify>,
    keys: Weak<Notify>,
}

impl Wakes {
    /// Wakes both (after a reconnection, for what was missed); false when
    /// the revocation poll, which lives as long as the background work, is
    /// gone.
    fn all(&self) -> bool {
        if let Some(keys) = self.keys.upgrade() {
            keys.notify_one();
        }
        match self.revocations.upgrade() {
            Some(poll) => {
                poll.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The listening connection's loop, on a thread of its own (the read never
/// blocks, but it is database work all the same). It wakes the revocation
/// poll or the key reload on every notice, reconnects after a loss (waking
/// both then too, for what was missed) and ends when the poll task is gone.
fn listen_for_changes(url: &DatabaseUrl, wakes: &Wakes) {
    let mut was_down = false;
    while wakes.revocations.strong_count() > 0 {
        let mut listener = match ChangeListener::connect(url) {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                if !was_down {
                    tracing::warn!(error = %e, "cannot listen for revocations and key changes; polling until it can");
                    was_down = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if was_down {
            tracing::info!("listening for revocations and key changes again");
        }
        if !wakes.all() {
            return;
        }
        loop {
            std::thread::sleep(LISTEN_EVERY);
            let Some(poll) = wakes.revocations.upgrade() else {
                return;
            };
            match listener.arrived() {
                Ok(changes) => {
                    if changes.revocations {
                        poll.notify_one();
                    }
                    if changes.keys
                        && let Some(keys) = wakes.keys.upgrade()
                    {
                        keys.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the change listener; reconnecting");
                    was_down = true;
                    break;
                }
            }
        }
    }
}

/// Writes API tokens' last-use times every 10 s: a database write per
/// authenticated request would make token checks cost a round trip.
async fn flush_api_token_use(accounts: Arc<Accounts>) {
    let mut interval = tokio::time::interval(Duration::from_secs(10));
    loop {
        interval.tick().await;
        let accounts = accounts.clone();
        let written = run_blocking(move || accounts.flush_api_token_use()).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!("could not record API token use; will try with the next batch");
        }
    }
}

/// Deletes rate-limit rows with no recent events every 10 minutes, so the
/// table holds only what is being limited now; second-step challenges
/// (`mfa_token`s) that expired over an hour ago; and sessions that ended a
/// week ago ([`Accounts::forget_ended_sessions`]).
async fn forget_stale_rows(accounts: Arc<Accounts>) {
    let mut interval = tokio::time::interval(Duration::from_secs(600));
    loop {
        interval.tick().await;
        forget(&accounts, "idle rate-limit rows", |a| {
            a.throttle().forget_idle()
        })
        .await;
        forget(&accounts, "expired second-step challenges", |a| {
            a.forget_expired_mfa_challenges()
        })
        .await;
        forget(&accounts, "ended sessions", Accounts::forget_ended_sessions).await;
    }
}

/// Runs one deletion of [`forget_stale_rows`] off the runtime and logs
/// how it went; a failure waits for the next round.
async fn forget(
    accounts: &Arc<Accounts>,
    what: &'static str,
    delete: fn(&Accounts) -> Result<usize, AccountsError>,
) {
    let accounts = accounts.clone();
    match run_blocking(move || delete(&accounts)).await {
        Ok(Ok(deleted)) => tracing::debug!(deleted, "{what} deleted"),
        _ => tracing::warn!("could not delete {what}; will try again"),
    }
}

/// Re-reads the key store every `every`, and at once when told of a
/// change: the new key signs, retired keys verify until their tokens have
/// expired and then leave the JWKS. A store that cannot be read keeps the
/// keys in use.
async fn reload_keys(
    accounts: Arc<Accounts>,
    source: KeySource,
    every: Duration,
    changed: Arc<Notify>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await; // the first tick is immediate; the keys are fresh
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = changed.notified() => {}
        }
        let source = source.clone();
        let loaded = run_blocking(move || source.load(chrono::Utc::now().timestamp())).await;
        match loaded {
            Ok(Ok(keys)) => {
                let current = accounts.keys();
                if keys.active_created_at() < current.active_created_at() {
                    // Rotation only ever moves to a newer key: an older one
                    // signing again is a store rolled back or tampered with.
                    tracing::error!(
                        active = current.active_kid(),
                        offered = keys.active_kid(),
                        "the key store names an older signing key than the one in use; keeping the current keys"
                    );
                    continue;
                }
                if keys.kids() != current.kids() {
                    tracing::info!(
                        active = keys.active_kid(),
                        kids = ?keys.kids(),
                        "signing keys reloaded"
                    );
                    accounts.replace_keys(keys);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot reload the signing keys; keeping the current ones")
            }
            Err(_) => {
                tracing::warn!("reloading the signing keys failed; keeping the current ones")
            }
        }
    }
}

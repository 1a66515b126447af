//! Verifying our tokens in another service (feature `remote`).
//!
//! [`RemoteVerifier`] fetches the auth server's JWK Set, keeps it in memory
//! and refreshes it in the background; a token signed with a key it has not
//! seen yet makes it refetch at once (rate-limited, so a stream of garbage
//! tokens with invented `kid`s cannot make it hammer the server). It polls
//! `/api/v1/revocations` so that logged-out sessions and revoked API tokens
//! are refused within `revocation_poll` (default 30 s) without a request to
//! the auth server per token. When the auth server is briefly unreachable it
//! keeps verifying with what it has.
//!
//! This module is the one place in `auth-core` that does I/O and reads the
//! clock; without the feature the crate has neither.
//!
//! ```no_run
//! use auth_core::TokenPolicy;
//! use auth_core::remote::{RemoteConfig, RemoteVerifier};
//!
//! # async fn example(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let policy = TokenPolicy {
//!     issuer: "https://auth.example.com".into(),
//!     audience: "auth-server".into(),
//!     ..TokenPolicy::default()
//! };
//! let verifier = RemoteVerifier::connect(RemoteConfig::new("https://auth.example.com", policy)).await?;
//! let bearer = verifier.verify(token).await?;
//! println!("{} may send SMS: {}", bearer.user_id(), bearer.has_permission("sms:send"));
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::claims::{Bearer, TokenPolicy};
use crate::error::TokenError;
use crate::jwks::PublicKeySet;
use crate::revocation::{Revocation, RevocationKind};
use crate::verifier::Verifier;

/// Where the auth server is and how often to ask it.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// Base URL of the auth server's native API, e.g. `https://auth.example.com`.
    pub server_url: String,
    /// The `iss` and `aud` our tokens must carry, and the clock leeway.
    pub policy: TokenPolicy,
    /// How often the JWK Set is refetched anyway (default 5 min).
    pub jwks_refresh: Duration,
    /// At most one refetch for an unknown `kid` per this interval (default 10 s).
    pub unknown_kid_cooldown: Duration,
    /// How often revocations are polled: the longest a revoked token is
    /// still accepted here (default 30 s).
    pub revocation_poll: Duration,
    /// Timeout of each request to the auth server (default 5 s).
    pub request_timeout: Duration,
}

impl RemoteConfig {
    /// The defaults above for the server at `server_url`.
    pub fn new(server_url: impl Into<String>, policy: TokenPolicy) -> RemoteConfig {
        RemoteConfig {
            server_url: server_url.into(),
            policy,
            jwks_refresh: Duration::from_secs(300),
            unknown_kid_cooldown: Duration::from_secs(10),
            revocation_poll: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Talking to the auth server failed. Verification keeps working on the
/// cached keys and revocations; only [`RemoteVerifier::connect`] fails on it.
#[derive(thiserror::Error, Debug)]
pub enum RemoteError {
    /// `server_url` is not an `http://` or `https://` URL.
    #[error("the auth server URL must start with http:// or https://: {0:?}")]
    InvalidUrl(String),
    /// The HTTP client could not be built (e.g. no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The request failed or timed out, or the answer was not a success.
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
    /// The answer was not the document we asked for.
    #[error("{url} did not answer with a usable {what}")]
    BadDocument { url: String, what: &'static str },
}

/// Verifies bearer tokens of one auth server; see the [module docs](self).
///
/// Cheap to clone: clones share the keys, the revocations and one
/// background task, which ends when the last clone is dropped.
#[derive(Clone)]
pub struct RemoteVerifier {
    shared: Arc<Shared>,
}

struct Shared {
    config: RemoteConfig,
    client: reqwest::Client,
    jwks_url: String,
    revocations_url: String,
    /// The keys from the JWKS, the policy and the polled revocations.
    verifier: Verifier<PublicKeySet>,
    cursors: RwLock<Cursors>,
    /// Serialises unknown-`kid` refetches and remembers when the last began.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    /// JWK Set requests made after the first, successful or not.
    jwks_fetches: AtomicU64,
}

/// Where the last poll ended, and where the one before it ended. Each poll
/// starts from the older one: on PostgreSQL a revocation can become visible
/// after a newer one was already read, and re-reading one interval catches
/// it (applying an entry twice is harmless).
#[derive(Default)]
struct Cursors {
    cursor: String,
    previous_cursor: String,
}

#[derive(Deserialize)]
struct RevocationPage {
    items: Vec<RevocationItem>,
    next_cursor: String,
}

#[derive(Deserialize)]
struct RevocationItem {
    kind: String,
    id: String,
    exp: i64,
}

/// Bounds one poll, so a misbehaving server cannot keep us paging forever.
const MAX_REVOCATION_PAGES: usize = 100;

impl RemoteVerifier {
    /// Fetches the keys and the current revocations, then starts the
    /// background refresh on the current tokio runtime.
    ///
    /// Fails when the auth server cannot be reached now: a service that
    /// starts without keys could verify nothing. Retry, or start later.
    pub async fn connect(config: RemoteConfig) -> Result<RemoteVerifier, RemoteError> {
        let base = config.server_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(RemoteError::InvalidUrl(config.server_url));
        }
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| RemoteError::Client(e.to_string()))?;
        let jwks_url = format!("{base}/.well-known/jwks.json");
        let keys = fetch_keys(&client, &jwks_url).await?;
        let verifier = RemoteVerifier {
            shared: Arc::new(Shared {
                client,
                jwks_url,
                revocations_url: format!("{base}/api/v1/revocations"),
                verifier: Verifier::new(config.policy.clone(), keys),
                cursors: RwLock::default(),
                last_refetch: tokio::sync::Mutex::new(None),
                jwks_fetches: AtomicU64::new(0),
                config,
            }),
        };
        verifier.poll_revocations().await?;
        tokio::spawn(refresh_forever(Arc::downgrade(&verifier.shared)));
        Ok(verifier)
    }

    /// Verifies an access token or a personal API token: signature, `typ`,
    /// issuer, audience, expiry, and that neither the token nor its session
    /// has been revoked (as of the last poll).
    pub async fn verify(&self, token: &str) -> Result<Bearer, TokenError> {
        let verifier = &self.shared.verifier;
        match verifier.bearer(token, unix_now()) {
            Err(TokenError::UnknownKid) => {
                self.refetch_for_unknown_kid().await;
                verifier.bearer(token, unix_now())
            }
            verified => verified,
        }
    }

    /// The keys in use now.
    pub fn keys(&self) -> PublicKeySet {
        self.shared.verifier.keys()
    }

    /// Whether the token or its session is known to be revoked.
    pub fn is_revoked(&self, bearer: &Bearer) -> bool {
        self.shared.verifier.check_revocation(bearer).is_err()
    }

    /// Fetches the JWK Set now and replaces the keys. On failure the
    /// current keys stay.
    pub async fn refresh_keys(&self) -> Result<(), RemoteError> {
        self.shared.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        let keys = fetch_keys(&self.shared.client, &self.shared.jwks_url).await?;
        self.shared.verifier.replace_keys(keys);
        Ok(())
    }

    /// How many times the JWK Set was requested since [`connect`](Self::connect)
    /// (scheduled refreshes and unknown-`kid` refetches): for metrics, and to
    /// see the refetch rate limit at work.
    pub fn jwks_fetches(&self) -> u64 {
        self.shared.jwks_fetches.load(Ordering::Relaxed)
    }

    /// Reads the revocations made since the last poll (and re-reads the
    /// interval before it), then forgets entries whose tokens have expired.
    pub async fn poll_revocations(&self) -> Result<(), RemoteError> {
        let url = &self.shared.revocations_url;
        let mut cursor = read(&self.shared.cursors).previous_cursor.clone();
        for _ in 0..MAX_REVOCATION_PAGES {
            let page: RevocationPage = get_json(
                self.shared
                    .client
                    .get(url)
                    .query(&[("since", cursor.as_str())]),
                url,
                "revocation page",
            )
            .await?;
            // A kind a newer server added is not ours to judge: skipped.
            self.shared
                .verifier
                .revocations()
                .extend(page.items.iter().filter_map(|item| {
                    Some(Revocation {
                        kind: RevocationKind::parse(&item.kind)?,
                        id: item.id.clone(),
                        until: item.exp,
                    })
                }));
            cursor = page.next_cursor;
            if page.items.is_empty() {
                break;
            }
        }
        {
            let mut cursors = write(&self.shared.cursors);
            cursors.previous_cursor = std::mem::replace(&mut cursors.cursor, cursor);
        }
        // The policy's leeway keeps tokens alive a little past `exp`: so must
        // their revocations.
        let horizon = unix_now() - self.shared.config.policy.leeway_secs.max(0);
        self.shared.verifier.revocations().forget_expired(horizon);
        Ok(())
    }

    /// A token names a key we do not have: perhaps the server rotated. Refetch
    /// unless another refetch began within the cooldown. Concurrent callers
    /// wait for the one refetch in flight instead of starting their own.
    async fn refetch_for_unknown_kid(&self) {
        let mut last = self.shared.last_refetch.lock().await;
        let cooldown = self.shared.config.unknown_kid_cooldown;
        if last.is_some_and(|at| at.elapsed() < cooldown) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.refresh_keys().await {
            tracing::warn!(error = %e, "refetching the JWK Set for an unknown kid failed");
        }
    }
}

/// Polls revocations and refreshes keys until every [`RemoteVerifier`] clone
/// is gone. Failures are logged and retried on the next tick.
async fn refresh_forever(shared: Weak<Shared>) {
    let Some(config) = shared.upgrade().map(|s| s.config.clone()) else {
        return;
    };
    let tick = config.revocation_poll.min(config.jwks_refresh);
    let mut last_poll = Instant::now();
    let mut last_refresh = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let verifier = RemoteVerifier { shared };
        if last_poll.elapsed() >= config.revocation_poll {
            match verifier.poll_revocations().await {
                Ok(()) => last_poll = Instant::now(),
                Err(e) => {
                    tracing::warn!(error = %e, "polling revocations failed; keeping the cached ones")
                }
            }
        }
        if last_refresh.elapsed() >= config.jwks_refresh {
            match verifier.refresh_keys().await {
                Ok(()) => last_refresh = Instant::now(),
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the JWK Set failed; keeping the cached keys")
                }
            }
        }
    }
}

async fn fetch_keys(client: &reqwest::Client, url: &str) -> Result<PublicKeySet, RemoteError> {
    let bad = || RemoteError::BadDocument {
        url: url.to_owned(),
        what: "JWK Set",
    };
    let body = send(client.get(url), url)
        .await?
        .bytes()
        .await
        .map_err(|_| bad())?;
    let keys = PublicKeySet::from_jwks(&body).map_err(|_| bad())?;
    if keys.ignored() > 0 {
        tracing::warn!(
            url,
            ignored = keys.ignored(),
            "JWK Set has keys we cannot verify with"
        );
    }
    Ok(keys)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
    what: &'static str,
) -> Result<T, RemoteError> {
    let body = send(request, url).await?.bytes().await;
    body.ok()
        .and_then(|body| serde_json::from_slice(&body).ok())
        .ok_or_else(|| RemoteError::BadDocument {
            url: url.to_owned(),
            what,
        })
}

async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<reqwest::Response, RemoteError> {
    let failed = |reason: String| RemoteError::Request {
        url: url.to_owned(),
        reason,
    };
    let response = request.send().await.map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    Ok(response)
}

fn unix_now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

// A poisoned lock only means a thread panicked while holding it; the maps
// are still consistent enough, and refusing every token would be worse.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

//! What every HTTP worker shares: the account service and the server's own
//! caches and settings.

use std::sync::Arc;

use accounts::Accounts;
use auth_core::TokenPolicy;

use crate::http::extract::Principal;
use crate::token_cache::TokenCache;

/// Shared by every worker.
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub token_policy: TokenPolicy,
    /// Bearer tokens that passed verification (revocation is checked apart,
    /// on every request).
    pub token_cache: TokenCache<Arc<Principal>>,
    /// Region for phone numbers without a country code.
    pub phone_region: String,
    /// Offset for the naive local times some seed contracts use.
    pub compat_time_zone: chrono::FixedOffset,
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose forwarding headers name the client (see `http::extract::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub forwarded_header: crate::http::extract::ForwardedHeader,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<secrecy::SecretString>,
    /// Profiles whose logins skip users' second factors (see
    /// `FrontEndConfig::compat_password_only`).
    pub compat_password_only: Vec<String>,
    /// Set when the server is about to stop: `/readyz` answers 503 so a
    /// balancer sends nothing new, while requests still get answers.
    pub draining: Drain,
}

/// The "stopping soon" flag of a server ([`crate::FrontEnd::drain`]).
#[derive(Clone, Debug, Default)]
pub struct Drain(Arc<std::sync::atomic::AtomicBool>);

impl Drain {
    /// From now on `/readyz` answers 503 `draining`.
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

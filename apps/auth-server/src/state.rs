use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use accounts::Accounts;
use auth_core::TokenPolicy;
use chrono::NaiveDateTime;

use crate::http::extract::Principal;
use crate::token_cache::TokenCache;

/// Shared by every worker.
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub token_policy: TokenPolicy,
    /// Bearer tokens that passed verification (revocation is checked apart,
    /// on every request).
    pub token_cache: TokenCache<Arc<Principal>>,
    pub api_token_usage: Arc<ApiTokenUsage>,
    /// Region for phone numbers without a country code.
    pub phone_region: String,
    /// Offset for the naive local times some seed contracts use.
    pub compat_time_zone: chrono::FixedOffset,
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose forwarding headers name the client (see `http::extract::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<secrecy::SecretString>,
}

/// When each API token was last used, collected in memory and written in
/// batches: a database write per authenticated request would make token
/// checks cost a round trip, which they must not.
#[derive(Default)]
pub struct ApiTokenUsage {
    last_used: Mutex<HashMap<String, NaiveDateTime>>,
}

impl ApiTokenUsage {
    pub fn record(&self, jti: &str) {
        let now = chrono::Utc::now().naive_utc();
        let mut map = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(jti.to_owned(), now);
    }

    pub fn drain(&self) -> Vec<(String, NaiveDateTime)> {
        let mut map = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        map.drain().collect()
    }
}

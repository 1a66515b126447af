use std::sync::Arc;

use accounts::Accounts;
use auth_core::{KeySet, TokenPolicy};

use crate::revocation::RevocationCache;

/// Shared by every worker.
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub keys: KeySet,
    pub token_policy: TokenPolicy,
    pub revocations: Arc<RevocationCache>,
}

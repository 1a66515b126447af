//! Which sessions and token ids are revoked: the one in-memory set that the
//! server, every front-end, introspection and the remote verifier consult.
//!
//! An entry carries the unix time after which no token it covers can be
//! valid anyway; [`RevocationSet::forget_expired`] drops it then. Filling the
//! set (from the issuer's own revocations, a database poll or an HTTP feed)
//! is the caller's business: this type does no I/O.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a revocation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationKind {
    /// Every token of a session (`sid`).
    Session,
    /// One token (`jti`).
    Token,
}

impl RevocationKind {
    /// The wire and database name: `sid` or `jti`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "sid",
            Self::Token => "jti",
        }
    }

    /// `sid` or `jti`; `None` for a kind this version does not know.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "sid" => Some(Self::Session),
            "jti" => Some(Self::Token),
            _ => None,
        }
    }
}

/// One revoked session or token, and until when it matters (unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub id: String,
    pub until: i64,
}

/// Revoked sessions and token ids. Reads take a shared lock; revocations
/// are rare next to checks.
#[derive(Default, Debug)]
pub struct RevocationSet {
    sessions: RwLock<HashMap<String, i64>>,
    tokens: RwLock<HashMap<String, i64>>,
}

impl RevocationSet {
    /// Whether the session `session_id` or the token `token_id` is revoked.
    /// Pass `""` for a token without a session (API tokens).
    pub fn is_revoked(&self, session_id: &str, token_id: &str) -> bool {
        (!session_id.is_empty() && read(&self.sessions).contains_key(session_id))
            || (!token_id.is_empty() && read(&self.tokens).contains_key(token_id))
    }

    pub fn insert(&self, revocation: Revocation) {
        let map = match revocation.kind {
            RevocationKind::Session => &self.sessions,
            RevocationKind::Token => &self.tokens,
        };
        let mut map = write(map);
        // Two revocations of one id (a re-read poll, a longer-lived one):
        // keep the later end.
        let until = map.entry(revocation.id).or_insert(revocation.until);
        *until = (*until).max(revocation.until);
    }

    pub fn extend(&self, revocations: impl IntoIterator<Item = Revocation>) {
        for revocation in revocations {
            self.insert(revocation);
        }
    }

    /// Makes room for `sessions` and `tokens` more entries at once (a cold
    /// start loading many).
    pub fn reserve(&self, sessions: usize, tokens: usize) {
        write(&self.sessions).reserve(sessions);
        write(&self.tokens).reserve(tokens);
    }

    /// Drops the entries whose `until` is at or before `now`.
    pub fn forget_expired(&self, now: i64) {
        write(&self.sessions).retain(|_, until| *until > now);
        write(&self.tokens).retain(|_, until| *until > now);
    }

    /// Entries held (sessions, tokens).
    pub fn len(&self) -> (usize, usize) {
        (read(&self.sessions).len(), read(&self.tokens).len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

// A poisoned lock only means another thread panicked mid-insert; the map is
// still usable, and refusing to check revocations would be worse.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: RevocationKind, id: &str, until: i64) -> Revocation {
        Revocation {
            kind,
            id: id.to_owned(),
            until,
        }
    }

    #[test]
    fn sessions_and_tokens_are_separate_and_expire() {
        let set = RevocationSet::default();
        set.insert(entry(RevocationKind::Session, "s1", 100));
        set.insert(entry(RevocationKind::Token, "t1", 200));
        assert!(set.is_revoked("s1", "other"));
        assert!(set.is_revoked("other", "t1"));
        assert!(!set.is_revoked("t1", "s1"), "kinds must not mix");
        assert!(!set.is_revoked("", ""));
        set.forget_expired(100);
        assert!(!set.is_revoked("s1", ""));
        assert!(set.is_revoked("", "t1"));
        set.forget_expired(200);
        assert!(set.is_empty());
    }

    #[test]
    fn a_second_revocation_keeps_the_later_end() {
        let set = RevocationSet::default();
        set.insert(entry(RevocationKind::Token, "t", 500));
        set.insert(entry(RevocationKind::Token, "t", 100));
        set.forget_expired(300);
        assert!(set.is_revoked("", "t"));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [RevocationKind::Session, RevocationKind::Token] {
            assert_eq!(RevocationKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(RevocationKind::parse("user"), None);
    }
}

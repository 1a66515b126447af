//! The one check every token we accept goes through: a key set (the
//! issuer's own, or one read from its JWKS), the [`TokenPolicy`] (`iss`,
//! `aud`, `exp`/`nbf` with leeway, and per kind its `typ`) and the
//! [`RevocationSet`]. The server's bearer extractor, every compatibility
//! profile, introspection and [`remote::RemoteVerifier`](crate::remote) all
//! verify through a `Verifier`, so a rule added here holds everywhere.
//!
//! Callers that accept an expired token (a seed contract renews them) ask
//! for it by name ([`Verifier::access_or_expired`]): everything but `exp` is
//! still enforced, revocation included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use crate::claims::{AccessClaims, Bearer, TokenPolicy};
use crate::client_token::{ClientTokenClaims, ClientTokenKind};
use crate::error::TokenError;
use crate::revocation::RevocationSet;
use crate::verify::VerificationKeys;

/// A verified token that may have expired: for the few callers that renew
/// expired tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freshness<C> {
    Valid(C),
    Expired(C),
}

impl<C> Freshness<C> {
    pub fn claims(&self) -> &C {
        match self {
            Self::Valid(c) | Self::Expired(c) => c,
        }
    }

    pub fn into_claims(self) -> C {
        match self {
            Self::Valid(c) | Self::Expired(c) => c,
        }
    }
}

/// Keys, policy and revocations, checked together. `K` is the issuer's
/// [`KeySet`](crate::KeySet) or a [`PublicKeySet`](crate::PublicKeySet);
/// cloning it must be cheap (both share their keys).
#[derive(Debug)]
pub struct Verifier<K> {
    policy: TokenPolicy,
    keys: RwLock<K>,
    /// Counts [`replace_keys`](Self::replace_keys) calls: see
    /// [`key_generation`](Self::key_generation).
    key_generation: AtomicU64,
    revoked: RevocationSet,
}

impl<K: VerificationKeys + Clone> Verifier<K> {
    pub fn new(policy: TokenPolicy, keys: K) -> Self {
        Verifier {
            policy,
            keys: RwLock::new(keys),
            key_generation: AtomicU64::new(0),
            revoked: RevocationSet::default(),
        }
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// The keys in use now.
    pub fn keys(&self) -> K {
        read(&self.keys).clone()
    }

    /// Swaps in new keys (rotation): tokens of keys no longer held stop
    /// verifying at once.
    pub fn replace_keys(&self, keys: K) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        self.key_generation.fetch_add(1, Ordering::Release);
    }

    /// Which key set is in use: it changes with every
    /// [`replace_keys`](Self::replace_keys). Whoever remembers that a token
    /// verified must remember with which generation, and verify again once
    /// it changed: a key may have been revoked. Read it before verifying,
    /// so keys replaced during the check count as a change.
    pub fn key_generation(&self) -> u64 {
        self.key_generation.load(Ordering::Acquire)
    }

    /// Revoked sessions and token ids, as far as this process knows.
    pub fn revocations(&self) -> &RevocationSet {
        &self.revoked
    }

    /// An access token or a personal API token, valid at `now` and not
    /// revoked.
    pub fn bearer(&self, token: &str, now: i64) -> Result<Bearer, TokenError> {
        let bearer = self.policy.verify_bearer(&self.keys(), token, now)?;
        self.check_revocation(&bearer)?;
        Ok(bearer)
    }

    /// An access token, valid at `now` and not revoked.
    pub fn access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let claims = self.policy.verify_access(&self.keys(), token, now)?;
        self.refuse_revoked(&claims.sid, &claims.jti)?;
        Ok(claims)
    }

    /// An access token issued to a relying party, valid at `now` and not
    /// revoked ([`TokenPolicy::verify_relying_party_access`]).
    pub fn relying_party_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let claims = self
            .policy
            .verify_relying_party_access(&self.keys(), token, now)?;
        self.refuse_revoked(&claims.sid, &claims.jti)?;
        Ok(claims)
    }

    /// An access token that may have expired, otherwise fully checked
    /// (signature, `typ`, `iss`, `aud`, `nbf`, not revoked).
    pub fn access_or_expired(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Freshness<AccessClaims>, TokenError> {
        let claims = self
            .policy
            .verify_access_allowing_expiry(&self.keys(), token, now)?;
        self.refuse_revoked(&claims.sid, &claims.jti)?;
        Ok(self.freshness(claims.exp, now, claims))
    }

    /// A client token of `kind` that may have expired, otherwise fully
    /// checked, revocation included.
    pub fn client_token(
        &self,
        token: &str,
        kind: ClientTokenKind,
        now: i64,
    ) -> Result<Freshness<ClientTokenClaims>, TokenError> {
        let claims =
            self.policy
                .verify_client_token_allowing_expiry(&self.keys(), token, kind, now)?;
        self.refuse_revoked(&claims.sid, &claims.jti)?;
        Ok(self.freshness(claims.exp, now, claims))
    }

    /// [`TokenError::Revoked`] when a token verified earlier (a cached one)
    /// or its session has been revoked since.
    pub fn check_revocation(&self, bearer: &Bearer) -> Result<(), TokenError> {
        self.refuse_revoked(bearer.session_id().unwrap_or(""), bearer.token_id())
    }

    fn refuse_revoked(&self, session_id: &str, token_id: &str) -> Result<(), TokenError> {
        if self.revoked.is_revoked(session_id, token_id) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }

    fn freshness<C>(&self, exp: i64, now: i64, claims: C) -> Freshness<C> {
        if now >= exp.saturating_add(self.policy.leeway_secs.max(0)) {
            Freshness::Expired(claims)
        } else {
            Freshness::Valid(claims)
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ACCESS_TOKEN_TYP, KeySet, Revocation, RevocationKind, SigningAlgorithm, SigningKey, Subject,
    };

    fn setup() -> (Verifier<KeySet>, KeySet) {
        let keys = KeySet::new(
            SigningKey::generate(SigningAlgorithm::EdDSA, "k".into()).unwrap(),
            vec![],
        )
        .unwrap();
        (Verifier::new(TokenPolicy::default(), keys.clone()), keys)
    }

    fn token(keys: &KeySet, policy: &TokenPolicy, now: i64, sid: &str) -> (String, AccessClaims) {
        let claims = policy.access_claims(
            Subject {
                user_id: "u".into(),
                session_id: sid.into(),
                ..Subject::default()
            },
            now,
        );
        (keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap(), claims)
    }

    #[test]
    fn revocation_and_expiry_are_part_of_every_check() {
        let (verifier, keys) = setup();
        let now = 1_700_000_000;
        let (live, claims) = token(&keys, verifier.policy(), now, "s1");
        assert_eq!(verifier.access(&live, now).unwrap(), claims);
        assert!(matches!(verifier.bearer(&live, now), Ok(Bearer::Access(_))));
        let later = now + 7200;
        assert_eq!(verifier.access(&live, later), Err(TokenError::Expired));
        assert!(matches!(
            verifier.access_or_expired(&live, later),
            Ok(Freshness::Expired(_))
        ));
        verifier.revocations().insert(Revocation {
            kind: RevocationKind::Session,
            id: "s1".into(),
            until: later + 10,
        });
        assert_eq!(verifier.access(&live, now), Err(TokenError::Revoked));
        assert_eq!(verifier.bearer(&live, now), Err(TokenError::Revoked));
        assert_eq!(
            verifier.access_or_expired(&live, later),
            Err(TokenError::Revoked),
            "an expired token of a revoked session is refused too"
        );
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_even_when_expiry_is_ignored() {
        let (verifier, keys) = setup();
        let now = 1_700_000_000;
        let (future, _) = token(&keys, verifier.policy(), now + 3600, "s2");
        assert_eq!(verifier.access(&future, now), Err(TokenError::NotYetValid));
        assert_eq!(
            verifier.access_or_expired(&future, now),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(verifier.bearer(&future, now), Err(TokenError::NotYetValid));
    }

    #[test]
    fn replaced_keys_apply_at_once() {
        let (verifier, keys) = setup();
        let now = 1_700_000_000;
        let (live, _) = token(&keys, verifier.policy(), now, "s3");
        let other = KeySet::new(
            SigningKey::generate(SigningAlgorithm::EdDSA, "k2".into()).unwrap(),
            vec![],
        )
        .unwrap();
        verifier.replace_keys(other);
        assert_eq!(verifier.access(&live, now), Err(TokenError::UnknownKid));
    }
}

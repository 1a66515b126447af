//! The issuer's keys by `kid`: one active signer, the others verifying until
//! retired, exported as the JWKS.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::algorithm::SigningAlgorithm;
use crate::error::{KeyError, TokenError};
use crate::key::SigningKey;
use crate::verify::{PreparedKey, VerificationKeys, verify_with};

/// The keys a server signs and verifies with: exactly one active key signs,
/// every key (active or retired) verifies tokens that name it by `kid`.
///
/// Cheap to clone (the keys sit behind an `Arc`) and `Send + Sync`, so one
/// instance can be shared by all request handlers. The jsonwebtoken key
/// objects are built once here, because verification runs on every request.
#[derive(Clone)]
pub struct KeySet {
    inner: Arc<Keys>,
}

struct Keys {
    /// The active key is always first.
    entries: Vec<KeyEntry>,
    active_encoding_key: EncodingKey,
    jwks: serde_json::Value,
}

struct KeyEntry {
    key: SigningKey,
    verifier: PreparedKey,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("active_kid", &self.active_kid())
            .field("kids", &self.kids())
            .finish()
    }
}

impl KeySet {
    /// Builds a key set where `active` signs and `others` (typically retired
    /// keys whose tokens may still be live) only verify.
    ///
    /// Every key is tested with a sign-then-verify round trip, so a broken key
    /// fails here at startup instead of on the first request.
    pub fn new(active: SigningKey, others: Vec<SigningKey>) -> Result<KeySet, KeyError> {
        let active_encoding_key = active.encoding_key()?;
        let mut entries: Vec<KeyEntry> = Vec::with_capacity(1 + others.len());
        for key in std::iter::once(active).chain(others) {
            if entries.iter().any(|entry| entry.key.kid() == key.kid()) {
                return Err(KeyError::DuplicateKid(key.kid().to_owned()));
            }
            let entry = KeyEntry {
                verifier: PreparedKey::new(key.algorithm(), key.decoding_key()?),
                key,
            };
            entry.self_test()?;
            entries.push(entry);
        }
        let jwks = json!({
            "keys": entries.iter().filter_map(|entry| entry.key.public_jwk()).collect::<Vec<_>>(),
        });
        Ok(KeySet {
            inner: Arc::new(Keys {
                entries,
                active_encoding_key,
                jwks,
            }),
        })
    }

    /// Key id of the key that signs new tokens.
    pub fn active_kid(&self) -> &str {
        self.active().key.kid()
    }

    /// When the key that signs new tokens was created (unix seconds).
    pub fn active_created_at(&self) -> i64 {
        self.active().key.created_at()
    }

    /// Algorithm of the key that signs new tokens.
    pub fn active_algorithm(&self) -> SigningAlgorithm {
        self.active().key.algorithm()
    }

    /// All key ids, the active one first.
    pub fn kids(&self) -> Vec<&str> {
        self.inner
            .entries
            .iter()
            .map(|entry| entry.key.kid())
            .collect()
    }

    /// The public JWK Set (`{"keys": [...]}`) of every key; HS256 keys are
    /// left out because their only key is the secret.
    pub fn jwks(&self) -> serde_json::Value {
        self.inner.jwks.clone()
    }

    /// Signs `claims` with the active key. The header carries the active key's
    /// `alg`, its `kid`, and `typ`.
    pub fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, TokenError> {
        let active = &self.active().key;
        let mut header = Header::new(active.algorithm().jws_algorithm());
        header.typ = Some(typ.to_owned());
        header.kid = Some(active.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.inner.active_encoding_key)
            .map_err(|_| TokenError::Signing)
    }

    /// Verifies the signature and header of `token` and decodes its claims.
    ///
    /// The key is looked up by the header `kid` and that key alone decides the
    /// algorithm; `jwk`, `jku`, `x5u` and `x5c` headers are ignored. The header
    /// `typ` must equal `expected_typ` (compared as RFC 7515 says: ignoring case
    /// and an `application/` prefix).
    ///
    /// Does NOT check time, issuer or audience: that is
    /// [`TokenPolicy`](crate::TokenPolicy)'s job, with the caller's `now`.
    pub fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &str,
    ) -> Result<C, TokenError> {
        verify_with(token, expected_typ, |kid| {
            self.entry(kid).map(|entry| &entry.verifier)
        })
    }

    fn active(&self) -> &KeyEntry {
        &self.inner.entries[0]
    }

    fn entry(&self, kid: &str) -> Option<&KeyEntry> {
        self.inner
            .entries
            .iter()
            .find(|entry| entry.key.kid() == kid)
    }
}

impl VerificationKeys for KeySet {
    fn verify_token<C: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &str,
    ) -> Result<C, TokenError> {
        self.verify(token, expected_typ)
    }
}

impl KeyEntry {
    /// Proves the private key and the derived public key belong together and
    /// that jsonwebtoken accepts both.
    fn self_test(&self) -> Result<(), KeyError> {
        let failed =
            || KeyError::InvalidKey(format!("key {:?} failed its self-test", self.key.kid()));
        let encoding_key = self.key.encoding_key()?;
        let header = Header::new(self.key.algorithm().jws_algorithm());
        let token = jsonwebtoken::encode(&header, &json!({ "self_test": true }), &encoding_key)
            .map_err(|_| failed())?;
        jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &self.verifier.decoding_key,
            &self.verifier.validation,
        )
        .map_err(|_| failed())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: SigningAlgorithm, kid: &str) -> SigningKey {
        SigningKey::generate(alg, kid.to_owned()).unwrap()
    }

    #[test]
    fn key_set_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<KeySet>();
        let keys = KeySet::new(key(SigningAlgorithm::EdDSA, "a"), Vec::new()).unwrap();
        let clone = keys.clone();
        assert!(Arc::ptr_eq(&keys.inner, &clone.inner));
    }

    #[test]
    fn duplicate_kid_is_refused() {
        let error = KeySet::new(
            key(SigningAlgorithm::EdDSA, "same"),
            vec![
                key(SigningAlgorithm::ES256, "other"),
                key(SigningAlgorithm::HS256, "same"),
            ],
        )
        .unwrap_err();
        assert_eq!(error, KeyError::DuplicateKid("same".into()));
    }

    #[test]
    fn kids_list_active_first() {
        let keys = KeySet::new(
            key(SigningAlgorithm::EdDSA, "new"),
            vec![
                key(SigningAlgorithm::ES256, "old"),
                key(SigningAlgorithm::HS256, "older"),
            ],
        )
        .unwrap();
        assert_eq!(keys.active_kid(), "new");
        assert_eq!(keys.active_algorithm(), SigningAlgorithm::EdDSA);
        assert_eq!(keys.kids(), ["new", "old", "older"]);
    }

    #[test]
    fn debug_shows_kids_only() {
        let hs = key(SigningAlgorithm::HS256, "hs");
        let secret = hs.to_document().private_key;
        let keys = KeySet::new(hs, Vec::new()).unwrap();
        let debug = format!("{keys:?}");
        assert!(debug.contains("hs"));
        assert!(!debug.contains(&secret));
    }
}

//! The issuer's keys by `kid`: one active signer (plus at most one signer
//! per other algorithm, for clients that need it), the others verifying
//! until retired, exported as the JWKS.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::algorithm::SigningAlgorithm;
use crate::error::{KeyError, TokenError};
use crate::key::{RingKeyPair, SigningKey};
use crate::verify::{PreparedKey, VerificationKeys, verify_with};

/// The keys a server signs and verifies with: exactly one active key signs
/// by default, every key (active or retired) verifies tokens that name it by
/// `kid`.
///
/// Alternate signers sign only when asked for their algorithm
/// ([`KeySet::sign_as`]): OpenID Connect relying parties that accept only
/// RS256 ID tokens while the server's own tokens use EdDSA.
///
/// Cheap to clone (the keys sit behind an `Arc`) and `Send + Sync`, so one
/// instance can be shared by all request handlers. The jsonwebtoken key
/// objects are built once here, because verification runs on every request.
#[derive(Clone)]
pub struct KeySet {
    inner: Arc<Keys>,
}

struct Keys {
    /// The active key first, then the alternate signers, then the keys that
    /// only verify.
    entries: Vec<KeyEntry>,
    /// One per algorithm, the active key's first; index into `entries`.
    signers: Vec<(usize, Signer)>,
    jwks: serde_json::Value,
}

struct KeyEntry {
    key: SigningKey,
    verifier: PreparedKey,
}

/// What makes a key's signatures: ring's key pair, or for HS256
/// jsonwebtoken's key.
enum Signer {
    /// HS256: jsonwebtoken's HMAC.
    Jwt(EncodingKey),
    /// Every asymmetric algorithm: ring (see [`SigningKey::ring_key_pair`]).
    Ring(RingKeyPair),
}

impl Signer {
    fn for_key(key: &SigningKey) -> Result<Signer, KeyError> {
        match key.ring_key_pair() {
            Some(pair) => Ok(Signer::Ring(pair?)),
            None => Ok(Signer::Jwt(key.encoding_key()?)),
        }
    }

    /// A compact JWS of `claims` under `header` (RFC 7515 §7.1): what
    /// jsonwebtoken's `encode` makes, with ring signing the asymmetric ones.
    fn sign<C: Serialize>(&self, header: &Header, claims: &C) -> Result<String, TokenError> {
        let pair = match self {
            Signer::Jwt(key) => {
                return jsonwebtoken::encode(header, claims, key).map_err(|_| TokenError::Signing);
            }
            Signer::Ring(pair) => pair,
        };
        let header = serde_json::to_vec(header).map_err(|_| TokenError::Signing)?;
        let claims = serde_json::to_vec(claims).map_err(|_| TokenError::Signing)?;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = pair.sign(message.as_bytes()).ok_or(TokenError::Signing)?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
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
        Self::with_alternates(active, Vec::new(), others)
    }

    /// Like [`KeySet::new`], with `alternates` signing for their own
    /// algorithms ([`KeySet::sign_as`]). Each algorithm has one signer: an
    /// alternate of the active key's algorithm, or two of one algorithm, is
    /// [`KeyError::DuplicateSigner`].
    pub fn with_alternates(
        active: SigningKey,
        alternates: Vec<SigningKey>,
        others: Vec<SigningKey>,
    ) -> Result<KeySet, KeyError> {
        let signer_count = 1 + alternates.len();
        let mut entries: Vec<KeyEntry> = Vec::with_capacity(signer_count + others.len());
        let mut signers: Vec<(usize, Signer)> = Vec::with_capacity(signer_count);
        for key in std::iter::once(active).chain(alternates).chain(others) {
            if entries.iter().any(|entry| entry.key.kid() == key.kid()) {
                return Err(KeyError::DuplicateKid(key.kid().to_owned()));
            }
            let index = entries.len();
            if index < signer_count {
                let alg = key.algorithm();
                if signers
                    .iter()
                    .any(|&(i, _)| entries[i].key.algorithm() == alg)
                {
                    return Err(KeyError::DuplicateSigner(alg.to_string()));
                }
            }
            // Built once, for signing and for the self-test alike (parsing
            // a key pair validates it, which for RSA is not free; the key
            // set is rebuilt at every key reload).
            let signer = Signer::for_key(&key)?;
            let entry = KeyEntry {
                verifier: PreparedKey::new(key.algorithm(), key.decoding_key()?),
                key,
            };
            entry.self_test(&signer)?;
            entries.push(entry);
            if index < signer_count {
                signers.push((index, signer));
            }
        }
        let jwks = json!({
            "keys": entries.iter().filter_map(|entry| entry.key.public_jwk()).collect::<Vec<_>>(),
        });
        Ok(KeySet {
            inner: Arc::new(Keys {
                entries,
                signers,
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

    /// The algorithms this set signs with, the active key's first.
    pub fn signing_algorithms(&self) -> Vec<SigningAlgorithm> {
        self.inner
            .signers
            .iter()
            .map(|&(i, _)| self.inner.entries[i].key.algorithm())
            .collect()
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
        let (index, signer) = &self.inner.signers[0];
        self.sign_with(*index, signer, typ, claims)
    }

    /// Signs `claims` with the key that signs `alg` (the active key, or an
    /// alternate); [`TokenError::NoSigningKey`] when no key does.
    pub fn sign_as<C: Serialize>(
        &self,
        alg: SigningAlgorithm,
        typ: &str,
        claims: &C,
    ) -> Result<String, TokenError> {
        let (index, signer) = self
            .inner
            .signers
            .iter()
            .find(|&&(i, _)| self.inner.entries[i].key.algorithm() == alg)
            .ok_or(TokenError::NoSigningKey)?;
        self.sign_with(*index, signer, typ, claims)
    }

    fn sign_with<C: Serialize>(
        &self,
        index: usize,
        signer: &Signer,
        typ: &str,
        claims: &C,
    ) -> Result<String, TokenError> {
        let key = &self.inner.entries[index].key;
        let mut header = Header::new(key.algorithm().jws_algorithm());
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid().to_owned());
        signer.sign(&header, claims)
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
    /// `signer` is this key's.
    fn self_test(&self, signer: &Signer) -> Result<(), KeyError> {
        let failed =
            || KeyError::InvalidKey(format!("key {:?} failed its self-test", self.key.kid()));
        let header = Header::new(self.key.algorithm().jws_algorithm());
        let token = signer
            .sign(&header, &json!({ "self_test": true }))
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
    fn alternates_sign_their_own_algorithm_only_when_asked() {
        let keys = KeySet::with_alternates(
            key(SigningAlgorithm::EdDSA, "ed"),
            vec![key(SigningAlgorithm::ES256, "ec")],
            vec![key(SigningAlgorithm::EdDSA, "old")],
        )
        .unwrap();
        assert_eq!(
            keys.signing_algorithms(),
            [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256]
        );
        assert_eq!(keys.kids(), ["ed", "ec", "old"]);
        let header = |token: &str| jsonwebtoken::decode_header(token).unwrap();
        let default = keys.sign("JWT", &json!({"a": 1})).unwrap();
        assert_eq!(header(&default).kid.as_deref(), Some("ed"));
        let asked = keys
            .sign_as(SigningAlgorithm::ES256, "JWT", &json!({"a": 1}))
            .unwrap();
        assert_eq!(header(&asked).kid.as_deref(), Some("ec"));
        assert_eq!(header(&asked).alg, jsonwebtoken::Algorithm::ES256);
        let active = keys
            .sign_as(SigningAlgorithm::EdDSA, "JWT", &json!({"a": 1}))
            .unwrap();
        assert_eq!(header(&active).kid.as_deref(), Some("ed"));
        for token in [default, asked] {
            keys.verify::<serde_json::Value>(&token, "JWT").unwrap();
        }
        assert_eq!(
            keys.sign_as(SigningAlgorithm::HS256, "JWT", &json!({}))
                .unwrap_err(),
            TokenError::NoSigningKey
        );
        // "old" is EdDSA too, but only verifies: no conflict.
        let duplicate = KeySet::with_alternates(
            key(SigningAlgorithm::EdDSA, "a"),
            vec![key(SigningAlgorithm::EdDSA, "b")],
            vec![],
        );
        assert_eq!(
            duplicate.unwrap_err(),
            KeyError::DuplicateSigner("EdDSA".into())
        );
    }

    #[test]
    fn tokens_signed_with_ring_are_what_jsonwebtoken_makes() {
        // PKCS#1 v1.5 and Ed25519 signatures are deterministic: ring's must
        // equal jsonwebtoken's byte for byte. ECDSA's are randomized: ours
        // must verify, with the same header and claims.
        let claims = json!({"sub": "u", "n": [1, 2]});
        for (alg, jwt_alg) in [
            (SigningAlgorithm::RS256, jsonwebtoken::Algorithm::RS256),
            (SigningAlgorithm::EdDSA, jsonwebtoken::Algorithm::EdDSA),
            (SigningAlgorithm::ES256, jsonwebtoken::Algorithm::ES256),
        ] {
            let signing = key(alg, "r");
            let keys = KeySet::new(signing.clone(), vec![]).unwrap();
            let ours = keys.sign("JWT", &claims).unwrap();
            let mut header = Header::new(jwt_alg);
            header.typ = Some("JWT".into());
            header.kid = Some("r".into());
            let theirs =
                jsonwebtoken::encode(&header, &claims, &signing.encoding_key().unwrap()).unwrap();
            if alg == SigningAlgorithm::ES256 {
                let signed_part = |token: &str| token.rsplit_once('.').unwrap().0.to_owned();
                assert_eq!(signed_part(&ours), signed_part(&theirs));
                assert_ne!(ours, theirs, "ECDSA signatures are randomized");
            } else {
                assert_eq!(ours, theirs, "{alg}");
            }
            assert_eq!(
                keys.verify::<serde_json::Value>(&ours, "JWT").unwrap(),
                claims,
                "{alg}"
            );
        }
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

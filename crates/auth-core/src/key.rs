//! One signing key: generated (ring; RSA with the `rsa` crate, since ring
//! cannot generate RSA keys) or imported, its public half as a JWK, and the
//! serializable [`KeyDocument`] a caller persists it as.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::algorithm::SigningAlgorithm;
use crate::der::pkcs8_private_key_octets;
use crate::error::KeyError;

/// A private key as ring holds it, ready to sign ([`SigningKey::ring_key_pair`]).
pub(crate) enum RingKeyPair {
    Rsa(Box<RsaKeyPair>),
    Ed25519(Box<Ed25519KeyPair>),
    P256(Box<EcdsaKeyPair>),
}

impl RingKeyPair {
    /// The JWS signature of `message` (RFC 7518 §3: PKCS#1 v1.5 with
    /// SHA-256, Ed25519, or P-256 `r || s`).
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            RingKeyPair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )
                .ok()?;
                Some(signature)
            }
            RingKeyPair::Ed25519(pair) => Some(pair.sign(message).as_ref().to_vec()),
            RingKeyPair::P256(pair) => pair
                .sign(&rng, message)
                .ok()
                .map(|signature| signature.as_ref().to_vec()),
        }
    }
}

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
const MIN_HMAC_SECRET_LEN: usize = 32;
const GENERATED_HMAC_SECRET_LEN: usize = 32;
/// Generated RSA keys: what RFC 7518 §3.3 requires and relying parties
/// expect; larger keys cost every signature without a practical gain here.
const GENERATED_RSA_BITS: usize = 2048;
const ED25519_PUBLIC_KEY_LEN: usize = 32;
const P256_COORDINATE_LEN: usize = 32;
/// SEC1 marker byte for an uncompressed elliptic-curve point.
const UNCOMPRESSED_POINT_TAG: u8 = 0x04;

/// One signing key: key id, algorithm and private material, plus the
/// public half derived from it.
///
/// Creation and import validate the material with ring, so a `SigningKey`
/// always holds a usable key. `Debug` never shows the private material.
///
/// `created_at` / `retired_at` are bookkeeping for the caller's rotation
/// policy (unix seconds). This crate never reads the clock, so generated keys
/// start with `created_at == 0`; set it with [`SigningKey::with_created_at`].
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    created_at: i64,
    retired_at: Option<i64>,
    alternate: bool,
    /// PKCS#8 DER for asymmetric keys, the raw shared secret for HS256.
    private_key: Vec<u8>,
    public_key: PublicKey,
}

/// The public half, in the shape that both JWKs and jsonwebtoken want.
#[derive(Clone)]
enum PublicKey {
    Ed25519 {
        x: [u8; ED25519_PUBLIC_KEY_LEN],
    },
    P256 {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    /// HS256 has no public half: verifying needs the secret itself.
    SharedSecretOnly,
}

/// The persistent form of a [`SigningKey`]: a stable JSON document.
///
/// `private_key` is base64url without padding: PKCS#8 DER for EdDSA, ES256 and
/// RS256, the raw secret bytes for HS256. `Debug` redacts it; the serialized
/// form of course contains it, so store it like any secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDocument {
    /// Key id, as it appears in token headers and the JWKS.
    pub kid: String,
    /// Algorithm this key signs with.
    pub alg: SigningAlgorithm,
    /// When the key was created (unix seconds).
    pub created_at: i64,
    /// When the key stopped signing (unix seconds); `None` while it may still sign.
    pub retired_at: Option<i64>,
    /// Signs only what asks for its algorithm (see [`SigningKey::is_alternate`]).
    /// Absent in documents written before alternates existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alternate: bool,
    /// Private key material, base64url without padding.
    pub private_key: String,
}

impl fmt::Debug for KeyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDocument")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("alternate", &self.alternate)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh key from the operating system's random source.
    ///
    /// RS256 keys are 2048-bit and take a noticeable moment (tens to
    /// hundreds of milliseconds: a prime search); generate them off any
    /// latency-sensitive path.
    pub fn generate(alg: SigningAlgorithm, kid: String) -> Result<SigningKey, KeyError> {
        let rng = SystemRandom::new();
        let private_key = match alg {
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::RandomSourceFailed)?
                .as_ref()
                .to_vec(),
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::RandomSourceFailed)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlgorithm::RS256 => generate_rsa_pkcs8()?,
            SigningAlgorithm::HS256 => {
                let mut secret = vec![0u8; GENERATED_HMAC_SECRET_LEN];
                rng.fill(&mut secret)
                    .map_err(|_| KeyError::RandomSourceFailed)?;
                secret
            }
        };
        Self::from_private_key(kid, alg, private_key)
    }

    /// Imports an RS256 key from PKCS#8 DER. Keys under 2048 bits, and
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`) encodings, are refused; convert with
    /// `openssl pkcs8 -topk8 -nocrypt -outform DER`.
    pub fn from_rsa_pkcs8_der(kid: String, der: &[u8]) -> Result<SigningKey, KeyError> {
        Self::from_private_key(kid, SigningAlgorithm::RS256, der.to_vec())
    }

    /// Restores a key from its persisted document, re-validating the material.
    pub fn from_document(doc: &KeyDocument) -> Result<SigningKey, KeyError> {
        let private_key = URL_SAFE_NO_PAD
            .decode(doc.private_key.trim())
            .map_err(|_| KeyError::InvalidKey("private_key is not unpadded base64url".into()))?;
        Ok(
            Self::from_private_key(doc.kid.clone(), doc.alg, private_key)?
                .with_created_at(doc.created_at)
                .with_retired_at(doc.retired_at)
                .with_alternate(doc.alternate),
        )
    }

    /// The persistent form of this key, private material included.
    pub fn to_document(&self) -> KeyDocument {
        KeyDocument {
            kid: self.kid.clone(),
            alg: self.algorithm,
            created_at: self.created_at,
            retired_at: self.retired_at,
            alternate: self.alternate,
            private_key: URL_SAFE_NO_PAD.encode(&self.private_key),
        }
    }

    /// Sets the creation time (unix seconds).
    pub fn with_created_at(mut self, created_at: i64) -> SigningKey {
        self.created_at = created_at;
        self
    }

    /// Sets or clears the retirement time (unix seconds).
    pub fn with_retired_at(mut self, retired_at: Option<i64>) -> SigningKey {
        self.retired_at = retired_at;
        self
    }

    /// Marks the key as an alternate signer: kept for clients that ask for
    /// its algorithm (RS256 ID tokens), never the key that signs by default.
    /// Bookkeeping for the caller's key store, like the times.
    pub fn with_alternate(mut self, alternate: bool) -> SigningKey {
        self.alternate = alternate;
        self
    }

    /// Whether the key is an alternate signer ([`SigningKey::with_alternate`]).
    pub fn is_alternate(&self) -> bool {
        self.alternate
    }

    /// Key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Algorithm this key signs with; tokens claiming any other are refused.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Creation time (unix seconds); 0 unless set.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Retirement time (unix seconds), if the key has been retired.
    pub fn retired_at(&self) -> Option<i64> {
        self.retired_at
    }

    /// The public key as a JWK (RFC 7517) with `kid`, `alg` and `"use": "sig"`:
    /// OKP for EdDSA, EC for ES256, RSA for RS256. `None` for HS256, whose
    /// only key is the secret.
    pub fn public_jwk(&self) -> Option<serde_json::Value> {
        let (kid, alg) = (&self.kid, self.algorithm.as_str());
        match &self.public_key {
            PublicKey::Ed25519 { x } => Some(json!({
                "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(x),
                "kid": kid, "alg": alg, "use": "sig",
            })),
            PublicKey::P256 { x, y } => Some(json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
                "kid": kid, "alg": alg, "use": "sig",
            })),
            PublicKey::Rsa { modulus, exponent } => Some(json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(modulus), "e": URL_SAFE_NO_PAD.encode(exponent),
                "kid": kid, "alg": alg, "use": "sig",
            })),
            PublicKey::SharedSecretOnly => None,
        }
    }

    /// The jsonwebtoken signing key: what signs HS256 tokens. ring signs
    /// the others ([`Self::ring_key_pair`]); their arms here let the tests
    /// check that ring's tokens are jsonwebtoken's.
    pub(crate) fn encoding_key(&self) -> Result<EncodingKey, KeyError> {
        Ok(match self.algorithm {
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&self.private_key),
            SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&self.private_key),
            SigningAlgorithm::RS256 => {
                let pkcs1 = pkcs8_private_key_octets(&self.private_key)
                    .ok_or_else(|| KeyError::InvalidKey("RSA key is not PKCS#8".into()))?;
                EncodingKey::from_rsa_der(pkcs1)
            }
            SigningAlgorithm::HS256 => EncodingKey::from_secret(&self.private_key),
        })
    }

    /// ring's key pair for the asymmetric algorithms, which ring signs
    /// (HS256 keys have none: jsonwebtoken's HMAC serves). Built once per
    /// key set. RSA with ring because the `rsa` crate's private-key
    /// arithmetic is not constant-time (RUSTSEC-2023-0071); Ed25519 and
    /// P-256 because jsonwebtoken re-reads the PKCS#8 document and
    /// re-derives the key pair at every signature (for Ed25519 that doubled
    /// the cost of signing an access token; for P-256 ring is ≈ 20× faster
    /// than the `p256` crate).
    pub(crate) fn ring_key_pair(&self) -> Option<Result<RingKeyPair, KeyError>> {
        let rejected = |_| KeyError::InvalidKey(format!("{} key rejected by ring", self.algorithm));
        match self.algorithm {
            SigningAlgorithm::RS256 => Some(
                RsaKeyPair::from_pkcs8(&self.private_key)
                    .map(|pair| RingKeyPair::Rsa(Box::new(pair)))
                    .map_err(rejected),
            ),
            SigningAlgorithm::EdDSA => Some(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.private_key)
                    .map(|pair| RingKeyPair::Ed25519(Box::new(pair)))
                    .map_err(rejected),
            ),
            SigningAlgorithm::ES256 => Some(
                EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &self.private_key,
                    &SystemRandom::new(),
                )
                .map(|pair| RingKeyPair::P256(Box::new(pair)))
                .map_err(rejected),
            ),
            SigningAlgorithm::HS256 => None,
        }
    }

    /// The jsonwebtoken verification key. Built once per key set, not per token.
    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        Ok(match &self.public_key {
            // Exactly 32 bytes by construction: jsonwebtoken panics on shorter keys.
            PublicKey::Ed25519 { x } => DecodingKey::from_ed_der(x),
            PublicKey::P256 { x, y } => DecodingKey::from_ec_components(
                &URL_SAFE_NO_PAD.encode(x),
                &URL_SAFE_NO_PAD.encode(y),
            )
            .map_err(|_| KeyError::InvalidKey("EC public key unusable".into()))?,
            PublicKey::Rsa { modulus, exponent } => {
                DecodingKey::from_rsa_raw_components(modulus, exponent)
            }
            PublicKey::SharedSecretOnly => DecodingKey::from_secret(&self.private_key),
        })
    }

    /// Validates `private_key` for `alg` with ring and derives the public half.
    fn from_private_key(
        kid: String,
        alg: SigningAlgorithm,
        private_key: Vec<u8>,
    ) -> Result<SigningKey, KeyError> {
        if kid.is_empty() {
            return Err(KeyError::EmptyKid);
        }
        let rejected = |reason: ring::error::KeyRejected| {
            KeyError::InvalidKey(format!("{alg} private key rejected: {reason}"))
        };
        let public_key = match alg {
            SigningAlgorithm::EdDSA => {
                // "maybe_unchecked" only relaxes PKCS#8 v1 (no embedded public
                // key); v2 documents still get their public key checked.
                let key_pair =
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&private_key).map_err(rejected)?;
                let x = key_pair
                    .public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| KeyError::InvalidKey("Ed25519 public key length".into()))?;
                PublicKey::Ed25519 { x }
            }
            SigningAlgorithm::ES256 => {
                let key_pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &private_key,
                    &SystemRandom::new(),
                )
                .map_err(rejected)?;
                let point = key_pair.public_key().as_ref();
                match point.split_first() {
                    Some((&UNCOMPRESSED_POINT_TAG, coordinates))
                        if coordinates.len() == 2 * P256_COORDINATE_LEN =>
                    {
                        let (x, y) = coordinates.split_at(P256_COORDINATE_LEN);
                        PublicKey::P256 {
                            x: x.to_vec(),
                            y: y.to_vec(),
                        }
                    }
                    _ => return Err(KeyError::InvalidKey("P-256 public key encoding".into())),
                }
            }
            SigningAlgorithm::RS256 => {
                let key_pair = RsaKeyPair::from_pkcs8(&private_key).map_err(rejected)?;
                if pkcs8_private_key_octets(&private_key).is_none() {
                    return Err(KeyError::InvalidKey("RSA key is not PKCS#8".into()));
                }
                let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key_pair.public());
                PublicKey::Rsa {
                    modulus: components.n,
                    exponent: components.e,
                }
            }
            SigningAlgorithm::HS256 => {
                if private_key.len() < MIN_HMAC_SECRET_LEN {
                    return Err(KeyError::InvalidKey(format!(
                        "HS256 secret must be at least {MIN_HMAC_SECRET_LEN} bytes"
                    )));
                }
                PublicKey::SharedSecretOnly
            }
        };
        Ok(SigningKey {
            kid,
            algorithm: alg,
            created_at: 0,
            retired_at: None,
            alternate: false,
            private_key,
            public_key,
        })
    }
}

/// A fresh RSA key as PKCS#8 DER. ring, which validates and signs with it
/// afterwards, has no RSA key generation; the `rsa` crate is already here
/// (jsonwebtoken's RSA backend).
fn generate_rsa_pkcs8() -> Result<Vec<u8>, KeyError> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, GENERATED_RSA_BITS)
        .map_err(|_| KeyError::RandomSourceFailed)?;
    let der = key
        .to_pkcs8_der()
        .map_err(|_| KeyError::InvalidKey("generated RSA key does not encode".into()))?;
    Ok(der.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_2048: &[u8] = include_bytes!("../tests/data/rsa2048.pk8.der");
    const RSA_1024: &[u8] = include_bytes!("../tests/data/rsa1024.pk8.der");

    fn all_keys() -> Vec<SigningKey> {
        vec![
            SigningKey::generate(SigningAlgorithm::EdDSA, "ed".into()).unwrap(),
            SigningKey::generate(SigningAlgorithm::ES256, "ec".into()).unwrap(),
            SigningKey::from_rsa_pkcs8_der("rsa".into(), RSA_2048).unwrap(),
            SigningKey::generate(SigningAlgorithm::HS256, "hs".into()).unwrap(),
        ]
    }

    #[test]
    fn generate_sets_kid_and_algorithm() {
        for key in all_keys() {
            assert!(!key.kid().is_empty());
            assert_eq!(key.created_at(), 0);
            assert_eq!(key.retired_at(), None);
        }
        let key = SigningKey::generate(SigningAlgorithm::ES256, "k".into()).unwrap();
        assert_eq!((key.kid(), key.algorithm()), ("k", SigningAlgorithm::ES256));
    }

    #[test]
    fn generated_keys_differ() {
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::HS256,
        ] {
            let a = SigningKey::generate(alg, "a".into()).unwrap().to_document();
            let b = SigningKey::generate(alg, "a".into()).unwrap().to_document();
            assert_ne!(a.private_key, b.private_key, "{alg}");
        }
    }

    #[test]
    fn rsa_keys_are_generated_at_2048_bits() {
        let key = SigningKey::generate(SigningAlgorithm::RS256, "r".into()).unwrap();
        let jwk = key.public_jwk().unwrap();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["e"].as_str()),
            (Some("RSA"), Some("AQAB"))
        );
        // 256 bytes of modulus, base64url without padding.
        assert_eq!(jwk["n"].as_str().unwrap().len(), 342);
        let again = SigningKey::from_document(&key.to_document()).unwrap();
        assert_eq!(again.public_jwk(), Some(jwk));
        let other = SigningKey::generate(SigningAlgorithm::RS256, "r".into()).unwrap();
        assert_ne!(
            other.to_document().private_key,
            key.to_document().private_key
        );
    }

    #[test]
    fn empty_kid_is_refused() {
        assert_eq!(
            SigningKey::generate(SigningAlgorithm::EdDSA, String::new()).unwrap_err(),
            KeyError::EmptyKid
        );
        assert_eq!(
            SigningKey::from_rsa_pkcs8_der(String::new(), RSA_2048).unwrap_err(),
            KeyError::EmptyKid
        );
    }

    #[test]
    fn weak_or_foreign_rsa_keys_are_refused() {
        assert!(matches!(
            SigningKey::from_rsa_pkcs8_der("r".into(), RSA_1024),
            Err(KeyError::InvalidKey(_))
        ));
        let pkcs1 = pkcs8_private_key_octets(RSA_2048).unwrap();
        assert!(matches!(
            SigningKey::from_rsa_pkcs8_der("r".into(), pkcs1),
            Err(KeyError::InvalidKey(_))
        ));
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA, "e".into()).unwrap();
        assert!(matches!(
            SigningKey::from_rsa_pkcs8_der("r".into(), &ed.private_key),
            Err(KeyError::InvalidKey(_))
        ));
        assert!(matches!(
            SigningKey::from_rsa_pkcs8_der("r".into(), b"junk"),
            Err(KeyError::InvalidKey(_))
        ));
    }

    #[test]
    fn document_round_trip_keeps_everything() {
        for key in all_keys() {
            let key = key
                .with_created_at(1_700_000_000)
                .with_retired_at(Some(1_800_000_000));
            let document = key.to_document();
            let json = serde_json::to_string(&document).unwrap();
            let parsed: KeyDocument = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed, document);
            let restored = SigningKey::from_document(&parsed).unwrap();
            assert_eq!(restored.kid(), key.kid());
            assert_eq!(restored.algorithm(), key.algorithm());
            assert_eq!(restored.created_at(), 1_700_000_000);
            assert_eq!(restored.retired_at(), Some(1_800_000_000));
            assert_eq!(restored.private_key, key.private_key);
            assert_eq!(restored.public_jwk(), key.public_jwk());
        }
    }

    #[test]
    fn document_field_names_are_stable() {
        let document = all_keys()[0].to_document();
        let value = serde_json::to_value(&document).unwrap();
        let mut names: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            ["alg", "created_at", "kid", "private_key", "retired_at"]
        );
        assert_eq!(value["alg"], "EdDSA");
    }

    #[test]
    fn document_with_wrong_algorithm_or_bad_material_is_refused() {
        let ed_document = all_keys()[0].to_document();
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::RS256] {
            let mislabelled = KeyDocument {
                alg,
                ..ed_document.clone()
            };
            assert!(
                matches!(
                    SigningKey::from_document(&mislabelled),
                    Err(KeyError::InvalidKey(_))
                ),
                "{alg}"
            );
        }
        let not_base64 = KeyDocument {
            private_key: "***".into(),
            ..ed_document.clone()
        };
        assert!(matches!(
            SigningKey::from_document(&not_base64),
            Err(KeyError::InvalidKey(_))
        ));
        let short_secret = KeyDocument {
            alg: SigningAlgorithm::HS256,
            private_key: URL_SAFE_NO_PAD.encode([7u8; MIN_HMAC_SECRET_LEN - 1]),
            ..ed_document.clone()
        };
        assert!(matches!(
            SigningKey::from_document(&short_secret),
            Err(KeyError::InvalidKey(_))
        ));
        let no_kid = KeyDocument {
            kid: String::new(),
            ..ed_document
        };
        assert_eq!(
            SigningKey::from_document(&no_kid).unwrap_err(),
            KeyError::EmptyKid
        );
    }

    #[test]
    fn debug_never_shows_private_material() {
        for key in all_keys() {
            let document = key.to_document();
            let secret_b64 = &document.private_key;
            let secret_bytes = format!("{:?}", key.private_key);
            for debug in [
                format!("{key:?}"),
                format!("{key:#?}"),
                format!("{document:?}"),
            ] {
                assert!(!debug.contains(secret_b64.as_str()), "{debug}");
                assert!(!debug.contains(&secret_bytes), "{debug}");
                assert!(!debug.contains(&secret_b64[..16]), "{debug}");
                assert!(debug.contains("[redacted]"));
                assert!(debug.contains(key.kid()));
            }
        }
    }

    #[test]
    fn key_errors_do_not_echo_material() {
        let document = KeyDocument {
            kid: "k".into(),
            alg: SigningAlgorithm::EdDSA,
            created_at: 0,
            retired_at: None,
            alternate: false,
            private_key: URL_SAFE_NO_PAD.encode(b"super-secret-but-not-a-key-abcdef"),
        };
        let message = SigningKey::from_document(&document)
            .unwrap_err()
            .to_string();
        assert!(!message.contains(&document.private_key), "{message}");
        assert!(!message.contains("super-secret"), "{message}");
    }

    #[test]
    fn jwk_shapes() {
        let keys = all_keys();
        let ed = keys[0].public_jwk().unwrap();
        assert_eq!(
            (ed["kty"].as_str(), ed["crv"].as_str(), ed["alg"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
        );
        assert_eq!(ed["x"].as_str().unwrap().len(), 43);
        assert_eq!(ed["kid"], "ed");
        assert_eq!(ed["use"], "sig");

        let ec = keys[1].public_jwk().unwrap();
        assert_eq!(
            (ec["kty"].as_str(), ec["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        assert_eq!(ec["x"].as_str().unwrap().len(), 43);
        assert_eq!(ec["y"].as_str().unwrap().len(), 43);
        assert_eq!(ec["alg"], "ES256");

        let rsa = keys[2].public_jwk().unwrap();
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["e"], "AQAB");
        // 2048-bit modulus = 256 bytes = 342 unpadded base64url characters.
        assert_eq!(rsa["n"].as_str().unwrap().len(), 342);
        assert_eq!(rsa["alg"], "RS256");

        assert_eq!(keys[3].public_jwk(), None);

        for jwk in [ed, ec, rsa] {
            for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(
                    jwk.get(private_member).is_none(),
                    "{private_member} in {jwk}"
                );
            }
        }
    }

    #[test]
    fn ed25519_jwk_matches_ring_public_key() {
        let key = &all_keys()[0];
        let ring_key = Ed25519KeyPair::from_pkcs8(&key.private_key).unwrap();
        let x = URL_SAFE_NO_PAD.encode(ring_key.public_key().as_ref());
        assert_eq!(key.public_jwk().unwrap()["x"], x);
    }
}

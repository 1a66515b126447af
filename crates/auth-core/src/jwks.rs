//! A resource server's view of the issuer's keys: a JWK Set parsed into
//! verification keys, ignoring unusable entries (RFC 7517 §5).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::algorithm::SigningAlgorithm;
use crate::error::{KeyError, TokenError};
use crate::verify::{PreparedKey, VerificationKeys, verify_with};

/// RSA keys below this modulus size are refused (NIST SP 800-131A).
const MIN_RSA_MODULUS_BYTES: usize = 2048 / 8;
const ED25519_PUBLIC_KEY_LEN: usize = 32;
const P256_COORDINATE_LEN: usize = 32;

/// The public keys of an issuer, read from its JWK Set (RFC 7517): what a
/// resource server verifies tokens with, without any private material.
///
/// Keys it cannot use are left out rather than failing the whole set, as
/// RFC 7517 §5 asks: unknown `kty`, symmetric (`oct`) keys (a published
/// symmetric key would let anyone sign), keys whose `use` is not `sig`,
/// `alg`/curve combinations we do not verify, wrong lengths, RSA moduli
/// under 2048 bits. [`ignored`](Self::ignored) counts them for logging.
///
/// Cheap to clone (`Arc` inside), `Send + Sync`.
#[derive(Clone)]
pub struct PublicKeySet {
    inner: Arc<PublicKeys>,
}

struct PublicKeys {
    entries: Vec<(String, PreparedKey)>,
    ignored: usize,
}

impl fmt::Debug for PublicKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKeySet")
            .field("kids", &self.kids())
            .field("ignored", &self.inner.ignored)
            .finish()
    }
}

/// The members of a JWK we read; everything else is ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    public_key_use: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<serde_json::Value>,
}

impl PublicKeySet {
    /// Parses a JWK Set document (`{"keys": [...]}`) as served at
    /// `/.well-known/jwks.json`.
    ///
    /// Fails only when the document itself is not a JWK Set or two usable
    /// keys share a `kid` (which key would verify would be ambiguous).
    pub fn from_jwks(document: &[u8]) -> Result<PublicKeySet, KeyError> {
        let document: JwkSetDocument = serde_json::from_slice(document)
            .map_err(|_| KeyError::InvalidKey("not a JWK Set document".into()))?;
        let mut entries: Vec<(String, PreparedKey)> = Vec::with_capacity(document.keys.len());
        let mut ignored = 0;
        for value in document.keys {
            let Some((kid, verifier)) = serde_json::from_value::<Jwk>(value)
                .ok()
                .and_then(|jwk| usable_key(&jwk))
            else {
                ignored += 1;
                continue;
            };
            if entries.iter().any(|(known, _)| *known == kid) {
                return Err(KeyError::DuplicateKid(kid));
            }
            entries.push((kid, verifier));
        }
        Ok(PublicKeySet {
            inner: Arc::new(PublicKeys { entries, ignored }),
        })
    }

    /// Key ids of the usable keys, in document order.
    pub fn kids(&self) -> Vec<&str> {
        self.inner
            .entries
            .iter()
            .map(|(kid, _)| kid.as_str())
            .collect()
    }

    /// Whether a usable key has this id.
    pub fn contains(&self, kid: &str) -> bool {
        self.inner.entries.iter().any(|(known, _)| known == kid)
    }

    /// How many keys of the document were left out as unusable.
    pub fn ignored(&self) -> usize {
        self.inner.ignored
    }

    /// Verifies signature and header exactly as [`KeySet::verify`](crate::KeySet::verify)
    /// does. Time, issuer and audience are [`TokenPolicy`](crate::TokenPolicy)'s job.
    pub fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &str,
    ) -> Result<C, TokenError> {
        verify_with(token, expected_typ, |kid| {
            self.inner
                .entries
                .iter()
                .find(|(known, _)| known == kid)
                .map(|(_, verifier)| verifier)
        })
    }
}

impl VerificationKeys for PublicKeySet {
    fn verify_token<C: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &str,
    ) -> Result<C, TokenError> {
        self.verify(token, expected_typ)
    }
}

/// The key id and a prepared verifier, or `None` when the JWK is not one we
/// can safely verify with.
fn usable_key(jwk: &Jwk) -> Option<(String, PreparedKey)> {
    let kid = jwk.kid.clone().filter(|kid| !kid.is_empty())?;
    if jwk.public_key_use.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    // A JWK's `alg` is optional; when present it must match the key type.
    let alg_is = |expected: &str| jwk.alg.as_deref().is_none_or(|alg| alg == expected);
    let (algorithm, decoding_key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("OKP", Some("Ed25519")) if alg_is("EdDSA") => {
            let x = decode_exact(jwk.x.as_deref()?, ED25519_PUBLIC_KEY_LEN)?;
            // Exactly 32 bytes: jsonwebtoken panics on a shorter Ed25519 key.
            (SigningAlgorithm::EdDSA, DecodingKey::from_ed_der(&x))
        }
        ("EC", Some("P-256")) if alg_is("ES256") => {
            let (x, y) = (jwk.x.as_deref()?, jwk.y.as_deref()?);
            decode_exact(x, P256_COORDINATE_LEN)?;
            decode_exact(y, P256_COORDINATE_LEN)?;
            (
                SigningAlgorithm::ES256,
                DecodingKey::from_ec_components(x, y).ok()?,
            )
        }
        ("RSA", _) if alg_is("RS256") => {
            let modulus = URL_SAFE_NO_PAD.decode(jwk.n.as_deref()?).ok()?;
            let exponent = URL_SAFE_NO_PAD.decode(jwk.e.as_deref()?).ok()?;
            let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES || exponent.is_empty() {
                return None;
            }
            (
                SigningAlgorithm::RS256,
                DecodingKey::from_rsa_raw_components(&modulus, &exponent),
            )
        }
        // `oct` (a published shared secret) and everything unknown.
        _ => return None,
    };
    Some((kid, PreparedKey::new(algorithm, decoding_key)))
}

fn decode_exact(b64: &str, len: usize) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(b64)
        .ok()
        .filter(|bytes| bytes.len() == len)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{ACCESS_TOKEN_TYP, KeySet, SigningKey};

    fn key(alg: SigningAlgorithm, kid: &str) -> SigningKey {
        SigningKey::generate(alg, kid.to_owned()).unwrap()
    }

    fn public(keys: &KeySet) -> PublicKeySet {
        PublicKeySet::from_jwks(keys.jwks().to_string().as_bytes()).unwrap()
    }

    #[test]
    fn verifies_what_the_issuer_signed_with_every_published_algorithm() {
        let keys = KeySet::new(
            key(SigningAlgorithm::EdDSA, "ed"),
            vec![key(SigningAlgorithm::ES256, "ec")],
        )
        .unwrap();
        let public = public(&keys);
        assert_eq!(public.kids(), ["ed", "ec"]);
        let claims = json!({"sub": "u"});
        let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
        assert_eq!(
            public
                .verify::<serde_json::Value>(&token, ACCESS_TOKEN_TYP)
                .unwrap(),
            claims
        );
        let ec_signed = KeySet::new(key(SigningAlgorithm::ES256, "ec"), vec![]).unwrap();
        let other = ec_signed.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
        // Same kid, different key material: the published key must not verify it.
        assert_eq!(
            public.verify::<serde_json::Value>(&other, ACCESS_TOKEN_TYP),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn refuses_unknown_kids_and_wrong_types_like_the_issuer() {
        let keys = KeySet::new(key(SigningAlgorithm::EdDSA, "ed"), vec![]).unwrap();
        let public = public(&keys);
        let token = keys.sign("api+jwt", &json!({"sub": "u"})).unwrap();
        assert_eq!(
            public.verify::<serde_json::Value>(&token, ACCESS_TOKEN_TYP),
            Err(TokenError::WrongType)
        );
        let stranger = KeySet::new(key(SigningAlgorithm::EdDSA, "other"), vec![]).unwrap();
        let token = stranger
            .sign(ACCESS_TOKEN_TYP, &json!({"sub": "u"}))
            .unwrap();
        assert_eq!(
            public.verify::<serde_json::Value>(&token, ACCESS_TOKEN_TYP),
            Err(TokenError::UnknownKid)
        );
    }

    #[test]
    fn symmetric_short_and_unknown_keys_are_ignored_not_fatal() {
        let document = json!({"keys": [
            {"kty": "oct", "kid": "hs", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": URL_SAFE_NO_PAD.encode([7u8; 32])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "mislabelled", "alg": "RS256",
             "x": URL_SAFE_NO_PAD.encode([7u8; 32])},
            {"kty": "RSA", "kid": "rsa-1024", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128]), "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 32])},
            {"kty": 5},
            {"kty": "OKP", "crv": "Ed25519", "kid": "good", "x": URL_SAFE_NO_PAD.encode([7u8; 32])},
        ]});
        let public = PublicKeySet::from_jwks(document.to_string().as_bytes()).unwrap();
        assert_eq!(public.kids(), ["good"]);
        assert_eq!(public.ignored(), 8);
        assert!(public.contains("good") && !public.contains("hs"));
    }

    #[test]
    fn a_broken_document_or_duplicate_kids_fail() {
        for document in [&b"not json"[..], b"{}", b"{\"keys\": {}}", b"[]"] {
            assert!(PublicKeySet::from_jwks(document).is_err());
        }
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let twice = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": x},
        ]});
        assert_eq!(
            PublicKeySet::from_jwks(twice.to_string().as_bytes()).unwrap_err(),
            KeyError::DuplicateKid("k".into())
        );
    }

    #[test]
    fn a_forged_hs256_token_naming_a_public_key_is_refused() {
        let keys = KeySet::new(key(SigningAlgorithm::EdDSA, "ed"), vec![]).unwrap();
        let public = public(&keys);
        // Sign with HS256 using the published key bytes as the "secret".
        let x = keys.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("ed".into());
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        let forged = jsonwebtoken::encode(
            &header,
            &json!({"sub": "u"}),
            &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            public.verify::<serde_json::Value>(&forged, ACCESS_TOKEN_TYP),
            Err(TokenError::AlgorithmMismatch)
        );
    }
}

//! The signature-and-header check shared by the issuer's [`KeySet`] and a
//! resource server's [`PublicKeySet`]: one code path, so both refuse exactly
//! the same tokens.
//!
//! [`KeySet`]: crate::KeySet
//! [`PublicKeySet`]: crate::PublicKeySet

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::de::DeserializeOwned;

use crate::algorithm::SigningAlgorithm;
use crate::error::TokenError;

/// Anything that can check a token's signature and header: the issuer's
/// [`KeySet`](crate::KeySet) or a [`PublicKeySet`](crate::PublicKeySet) read
/// from its JWKS. [`TokenPolicy`](crate::TokenPolicy) verifies with either.
pub trait VerificationKeys {
    /// Verifies signature and header of `token` and decodes its claims; see
    /// [`KeySet::verify`](crate::KeySet::verify) for the rules.
    fn verify_token<C: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &str,
    ) -> Result<C, TokenError>;
}

/// One verification key, prepared once: jsonwebtoken's key object and a
/// validation that checks nothing but the signature algorithm.
pub(crate) struct PreparedKey {
    pub(crate) algorithm: SigningAlgorithm,
    pub(crate) decoding_key: DecodingKey,
    pub(crate) validation: Validation,
}

impl PreparedKey {
    pub(crate) fn new(algorithm: SigningAlgorithm, decoding_key: DecodingKey) -> PreparedKey {
        PreparedKey {
            algorithm,
            decoding_key,
            validation: signature_only_validation(algorithm),
        }
    }
}

/// The key is looked up by the header `kid` (through `lookup`) and that key
/// alone decides the algorithm; `jwk`, `jku`, `x5u` and `x5c` headers are
/// ignored. The header `typ` must equal `expected_typ`.
pub(crate) fn verify_with<'a, C: DeserializeOwned>(
    token: &str,
    expected_typ: &str,
    lookup: impl FnOnce(&str) -> Option<&'a PreparedKey>,
) -> Result<C, TokenError> {
    // The header is unauthenticated until the signature checks out: it is
    // used only to pick one of our keys, never to supply key material.
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    // RFC 7515 §4.1.11: critical extensions we do not implement (we
    // implement none) make the token invalid.
    if header.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    let kid = header
        .kid
        .as_deref()
        .filter(|kid| !kid.is_empty())
        .ok_or(TokenError::MissingKid)?;
    let verifier = lookup(kid).ok_or(TokenError::UnknownKid)?;
    // The key dictates the algorithm. jsonwebtoken would also refuse via
    // `Validation::algorithms`, but this must not hinge on its internals.
    if header.alg != verifier.algorithm.jws_algorithm() {
        return Err(TokenError::AlgorithmMismatch);
    }
    let decoded = jsonwebtoken::decode::<C>(token, &verifier.decoding_key, &verifier.validation)
        .map_err(classify_decode_error)?;
    // Checked after the signature so that WrongType means "a genuine token
    // of ours, but of another kind" (e.g. a refresh token used as access token).
    if !token_type_matches(decoded.header.typ.as_deref(), expected_typ) {
        return Err(TokenError::WrongType);
    }
    Ok(decoded.claims)
}

/// Signature and algorithm checks only: time, issuer and audience are
/// checked by the policy with the caller's clock, never jsonwebtoken's.
fn signature_only_validation(algorithm: SigningAlgorithm) -> Validation {
    let mut validation = Validation::new(algorithm.jws_algorithm());
    validation.algorithms = vec![algorithm.jws_algorithm()];
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}

fn classify_decode_error(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch,
        _ => TokenError::Malformed,
    }
}

/// RFC 7515 §4.1.9: `typ` compares case-insensitively and producers may drop
/// the `application/` prefix.
fn token_type_matches(actual: Option<&str>, expected: &str) -> bool {
    fn normalize(media_type: &str) -> String {
        let lower = media_type.to_ascii_lowercase();
        match lower.strip_prefix("application/") {
            Some(short) => short.to_owned(),
            None => lower,
        }
    }
    actual.is_some_and(|actual| normalize(actual) == normalize(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_checks_nothing_but_the_signature_algorithm() {
        let validation = signature_only_validation(SigningAlgorithm::ES256);
        assert_eq!(validation.algorithms, [jsonwebtoken::Algorithm::ES256]);
        assert!(validation.required_spec_claims.is_empty());
        assert!(!validation.validate_exp && !validation.validate_nbf && !validation.validate_aud);
        assert!(validation.iss.is_none() && validation.aud.is_none() && validation.sub.is_none());
    }

    #[test]
    fn token_type_comparison_follows_rfc_7515() {
        assert!(token_type_matches(Some("at+jwt"), "at+jwt"));
        assert!(token_type_matches(Some("AT+JWT"), "at+jwt"));
        assert!(token_type_matches(Some("application/at+jwt"), "at+jwt"));
        assert!(!token_type_matches(Some("JWT"), "at+jwt"));
        assert!(!token_type_matches(Some(""), "at+jwt"));
        assert!(!token_type_matches(None, "at+jwt"));
        assert!(!token_type_matches(Some("at+jwt+extra"), "at+jwt"));
    }
}

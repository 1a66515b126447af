//! Token machinery of the auth server: signing keys, key sets, JWT signing and
//! verification, access-token claims and the policy that issues and checks them.
//!
//! This crate does no I/O. It reads no files, environment or network, and never
//! looks at the clock: every time-dependent call takes `now` as unix seconds
//! from the caller, so behaviour is deterministic and testable. Persisting keys
//! is the caller's job — [`SigningKey::to_document`] / [`SigningKey::from_document`]
//! convert to and from a serializable [`KeyDocument`].
//!
//! Cryptography is never implemented here: `ring` generates and validates key
//! material, `jsonwebtoken` produces and checks the JWS signatures.
//!
//! Verification is deliberately strict ([`KeySet::verify`]): the key found by
//! the header `kid` dictates the algorithm, `alg: none` and algorithm-confusion
//! tokens are refused, and header-supplied keys (`jwk`, `jku`, `x5u`, `x5c`) are
//! ignored.
//!
//! Key ids are plain `String`s: they are opaque labels chosen by the caller,
//! and a newtype would add conversions without preventing any real mistake.
//!
//! ```
//! use auth_core::{KeySet, SigningAlgorithm, SigningKey, Subject, TokenPolicy};
//!
//! let key = SigningKey::generate(SigningAlgorithm::EdDSA, "key-1".to_owned())?;
//! let keys = KeySet::new(key, Vec::new())?;
//! let policy = TokenPolicy::default();
//! let now = 1_700_000_000;
//! let subject = Subject {
//!     user_id: "7d5b3f5e-0000-4000-8000-000000000001".to_owned(),
//!     session_id: "7d5b3f5e-0000-4000-8000-000000000002".to_owned(),
//!     ..Subject::default()
//! };
//! let claims = policy.access_claims(subject, now);
//! let token = keys.sign(auth_core::ACCESS_TOKEN_TYP, &claims)?;
//! assert_eq!(policy.verify_access(&keys, &token, now + 60)?, claims);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod algorithm;
mod claims;
mod client_token;
mod der;
mod error;
mod jwks;
mod key;
mod keyset;
mod oidc;
#[cfg(feature = "remote")]
pub mod remote;
mod revocation;
mod verifier;
mod verify;

pub use algorithm::SigningAlgorithm;
pub use claims::{
    ACCESS_TOKEN_TYP, API_TOKEN_TYP, AccessClaims, ApiTokenClaims, ApiTokenSubject, Bearer,
    SECOND_FACTOR_AMR, Subject, TokenPolicy,
};
pub use client_token::{CLIENT_TOKEN_TYP, ClientTokenClaims, ClientTokenKind};
pub use error::{KeyError, TokenError};
pub use jwks::PublicKeySet;
pub use key::{KeyDocument, SigningKey};
pub use keyset::KeySet;
pub use oidc::{ACR_SINGLE_FACTOR, ACR_TWO_FACTORS, ID_TOKEN_TYP, IdTokenClaims, at_hash};
pub use revocation::{Revocation, RevocationKind, RevocationSet};
pub use verifier::{Freshness, Verifier};
pub use verify::VerificationKeys;

/// Longer than any token the auth server issues; longer `Authorization`
/// values are refused unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The token of an `Authorization: Bearer <token>` header value (RFC 6750:
/// the scheme is case-insensitive), or `None` for any other shape, an empty
/// token or one longer than [`MAX_TOKEN_LEN`].
///
/// ```
/// assert_eq!(auth_core::bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
/// assert_eq!(auth_core::bearer_token("bearer  abc "), Some("abc"));
/// assert_eq!(auth_core::bearer_token("Basic dXNlcjpwdw=="), None);
/// assert_eq!(auth_core::bearer_token("Bearer "), None);
/// ```
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_TOKEN_LEN)
        .then_some(token)
}

/// The `typ` header of a token, read WITHOUT verifying anything: only for
/// choosing which verification to run (access token or API token). Never
/// trust a token on the strength of this.
pub fn unverified_typ(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.typ
}

//! OpenID Connect: the ID token ([`IdTokenClaims`]), `at_hash`, and the
//! checks a provider runs on tokens it issued to relying parties: their
//! access tokens (audience = the client) and `id_token_hint`s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::algorithm::SigningAlgorithm;
use crate::claims::{ACCESS_TOKEN_TYP, AccessClaims, TokenPolicy};
use crate::error::TokenError;
use crate::verify::VerificationKeys;

/// `typ` header of ID tokens: plain `JWT`, which relying parties expect.
/// Access tokens (`at+jwt`) and API tokens (`api+jwt`) can't pass as one.
pub const ID_TOKEN_TYP: &str = "JWT";

/// Claims of an ID token (OpenID Connect Core §2, §3.1.3.6).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The user's UUID.
    pub sub: String,
    /// The client the token is for.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// When the user last authenticated interactively (unix seconds).
    pub auth_time: i64,
    /// The relying party's `nonce`, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// How the user authenticated (RFC 8176).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// [`ACR_SINGLE_FACTOR`] or [`ACR_TWO_FACTORS`].
    pub acr: String,
    /// Left half of the access token's hash ([`at_hash`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The provider's browser session (the single sign-on session).
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// `acr` of a sign-in with one factor.
pub const ACR_SINGLE_FACTOR: &str = "urn:auth-server:acr:1fa";
/// `acr` of a sign-in with a second factor (or a passkey with user
/// verification, itself two factors).
pub const ACR_TWO_FACTORS: &str = "urn:auth-server:acr:2fa";

/// `at_hash` (OpenID Connect Core §3.1.3.6): base64url of the left half of
/// the hash of the access token's ASCII, with the hash of the ID token's
/// algorithm: SHA-256 for ES256, RS256 and HS256, SHA-512 for EdDSA
/// (Ed25519 hashes with SHA-512, as relying-party libraries expect).
pub fn at_hash(access_token: &str, alg: SigningAlgorithm) -> String {
    let digest = match alg {
        SigningAlgorithm::EdDSA => {
            ring::digest::digest(&ring::digest::SHA512, access_token.as_bytes())
        }
        SigningAlgorithm::ES256 | SigningAlgorithm::RS256 | SigningAlgorithm::HS256 => {
            ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes())
        }
    };
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

impl TokenPolicy {
    /// Fully checks an access token issued to a relying party at `now`:
    /// signature and `typ` as [`verify_access`](Self::verify_access), then
    /// `iss`, `exp`, `nbf` with leeway, a non-empty `sub`, and `aud` equal
    /// to its `client_id` claim. A native access token (no `client_id`) is
    /// [`TokenError::WrongAudience`].
    pub fn verify_relying_party_access(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = keys.verify_token(token, ACCESS_TOKEN_TYP)?;
        self.check_registered_for(&claims.iss, &claims.sub, claims.exp, claims.nbf, now)?;
        if claims.client_id.as_deref() != Some(claims.aud.as_str()) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }

    /// Checks an `id_token_hint` (RP-initiated logout): our signature, the
    /// ID token `typ` and our `iss`. Its expiry is not checked: a relying
    /// party logs out with the ID token it got at sign-in, often expired.
    pub fn verify_id_token_hint(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
    ) -> Result<IdTokenClaims, TokenError> {
        let claims: IdTokenClaims = keys.verify_token(token, ID_TOKEN_TYP)?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.sub.is_empty() || claims.sid.is_empty() || claims.aud.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_openid_example() {
        // OpenID Connect Core, Appendix A.3 (RS256, so SHA-256).
        assert_eq!(
            at_hash(
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
                SigningAlgorithm::RS256
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        // SHA-512's left half is 32 bytes: 43 characters.
        assert_eq!(at_hash("token", SigningAlgorithm::EdDSA).len(), 43);
    }
}

//! Tokens issued to a registered client's users (the seed-003 "buzzbook"
//! contract): plain `typ: JWT` tokens with the seed's claims (`user_id`,
//! `iat`, `exp`, `sub` = `access_token` / `refresh_token`) plus ours. Their
//! `typ` differs from access and API tokens, so neither can pass as the
//! other, and they are checked by the same registered-claim rules
//! ([`TokenPolicy::verify_client_token`]): signature, `typ`, `iss`, `aud`,
//! `exp` and `nbf` with leeway.

use serde::{Deserialize, Serialize};

use crate::claims::TokenPolicy;
use crate::error::TokenError;
use crate::verify::VerificationKeys;

/// `typ` header of client tokens: the plain JWT of the seed.
pub const CLIENT_TOKEN_TYP: &str = "JWT";

/// Which of the pair a client token is (its `sub` claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTokenKind {
    Access,
    Refresh,
}

impl ClientTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access_token",
            Self::Refresh => "refresh_token",
        }
    }
}

/// Claims of a client token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClientTokenClaims {
    /// Our user id (UUID v4), stable per client `userId`.
    pub user_id: String,
    pub iat: i64,
    /// Tokens issued before `nbf` was added have none: they count as valid
    /// from the start of time, which their `iat` bounds anyway.
    #[serde(default)]
    pub nbf: i64,
    pub exp: i64,
    /// [`ClientTokenKind::as_str`].
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    /// The session the pair belongs to.
    pub sid: String,
    /// The client's own id for the user.
    #[serde(rename = "userId")]
    pub external_id: String,
    #[serde(rename = "loginId")]
    pub login_id: String,
    pub role: String,
    /// Refresh tokens only: the session's refresh credential, sealed by the
    /// issuer (opaque to every holder, usable only through the issuer's
    /// client-token renewal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt: Option<String>,
}

impl TokenPolicy {
    /// Fully checks a client token of `kind` at `now`: signature and header
    /// (`typ` [`CLIENT_TOKEN_TYP`]), `sub` naming `kind`, `iss`, `aud`,
    /// `exp` and `nbf` with `leeway_secs`.
    pub fn verify_client_token(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
        kind: ClientTokenKind,
        now: i64,
    ) -> Result<ClientTokenClaims, TokenError> {
        let claims = self.verify_client_token_allowing_expiry(keys, token, kind, now)?;
        if now >= claims.exp.saturating_add(self.leeway_secs.max(0)) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Like [`verify_client_token`](Self::verify_client_token) without the
    /// `exp` check: an expired access token still names its session when a
    /// refresh token renews the pair. Everything else is enforced.
    pub fn verify_client_token_allowing_expiry(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
        kind: ClientTokenKind,
        now: i64,
    ) -> Result<ClientTokenClaims, TokenError> {
        let claims: ClientTokenClaims = keys.verify_token(token, CLIENT_TOKEN_TYP)?;
        if claims.sub != kind.as_str() || claims.sid.is_empty() || claims.jti.is_empty() {
            return Err(TokenError::Malformed);
        }
        self.check_registered(
            &claims.iss,
            &claims.aud,
            &claims.user_id,
            i64::MAX,
            claims.nbf,
            now,
        )?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeySet, SigningAlgorithm, SigningKey};

    fn claims(kind: ClientTokenKind, policy: &TokenPolicy, now: i64) -> ClientTokenClaims {
        ClientTokenClaims {
            user_id: "u".to_owned(),
            iat: now,
            nbf: now,
            exp: now + 60,
            sub: kind.as_str().to_owned(),
            iss: policy.issuer.clone(),
            aud: policy.audience.clone(),
            jti: "j".to_owned(),
            sid: "s".to_owned(),
            external_id: "42".to_owned(),
            login_id: "reader".to_owned(),
            role: "USER".to_owned(),
            rt: None,
        }
    }

    #[test]
    fn kind_time_and_type_are_enforced() {
        let keys = KeySet::new(
            SigningKey::generate(SigningAlgorithm::EdDSA, "k".into()).unwrap(),
            vec![],
        )
        .unwrap();
        let policy = TokenPolicy::default();
        let now = 1_700_000_000;
        let access = keys
            .sign(
                CLIENT_TOKEN_TYP,
                &claims(ClientTokenKind::Access, &policy, now),
            )
            .unwrap();
        let verify = |token: &str, kind, at| policy.verify_client_token(&keys, token, kind, at);
        assert!(verify(&access, ClientTokenKind::Access, now).is_ok());
        assert_eq!(
            verify(&access, ClientTokenKind::Refresh, now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&access, ClientTokenKind::Access, now + 3600),
            Err(TokenError::Expired)
        );
        assert!(
            policy
                .verify_client_token_allowing_expiry(
                    &keys,
                    &access,
                    ClientTokenKind::Access,
                    now + 3600
                )
                .is_ok()
        );
        // Not valid before its nbf, expired or not.
        assert_eq!(
            policy.verify_client_token_allowing_expiry(
                &keys,
                &access,
                ClientTokenKind::Access,
                now - 3600
            ),
            Err(TokenError::NotYetValid)
        );
        // An access token of ours is not a client token, and vice versa.
        let mut native = claims(ClientTokenKind::Access, &policy, now);
        native.sub = "access_token".into();
        let at = keys.sign(crate::ACCESS_TOKEN_TYP, &native).unwrap();
        assert_eq!(
            verify(&at, ClientTokenKind::Access, now),
            Err(TokenError::WrongType)
        );
        let other = TokenPolicy {
            issuer: "https://elsewhere".into(),
            ..TokenPolicy::default()
        };
        assert_eq!(
            other.verify_client_token(&keys, &access, ClientTokenKind::Access, now),
            Err(TokenError::WrongIssuer)
        );
    }
}

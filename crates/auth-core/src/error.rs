//! Why a token was refused or a key unusable, with the stable codes clients see.

/// Why a token was refused (or could not be produced).
///
/// Variants carry no detail on purpose: the reason is for logs and metrics,
/// while clients only ever see [`TokenError::code`].
#[derive(thiserror::Error, Debug, PartialEq, Eq, Clone, Copy)]
pub enum TokenError {
    /// Not a well-formed JWS, or its header/claims do not parse.
    #[error("token is malformed")]
    Malformed,
    /// The header has no `kid`, so no key can be chosen.
    #[error("token header has no key id")]
    MissingKid,
    /// The `kid` names no key in the key set.
    #[error("token was signed with an unknown key")]
    UnknownKid,
    /// The header `alg` is not the algorithm of the key named by `kid`.
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify with the key named by `kid`.
    #[error("token signature is invalid")]
    BadSignature,
    /// The header `typ` is not the expected token type.
    #[error("token has the wrong type")]
    WrongType,
    /// The `iss` claim is not this server.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// The `aud` claim is not this audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// `exp` has passed, even allowing for clock leeway.
    #[error("token has expired")]
    Expired,
    /// `nbf` is still in the future, even allowing for clock leeway.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The token, or the session it belongs to, has been revoked. Only
    /// callers that know revocations report it (`remote::RemoteVerifier`).
    #[error("token has been revoked")]
    Revoked,
    /// Producing a token failed; a server fault, not the client's.
    #[error("token could not be signed")]
    Signing,
    /// No loaded key signs with the algorithm asked for (a client that wants
    /// ID tokens in an algorithm the server no longer keeps a key for).
    #[error("no key signs with the requested algorithm")]
    NoSigningKey,
}

impl TokenError {
    /// The OAuth-style error code to show clients.
    ///
    /// Everything except expiry and revocation collapses to `invalid_token` so that clients
    /// (and attackers) learn nothing about which check failed; expiry is
    /// distinguished because it tells well-behaved clients to refresh.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::Revoked => "token_revoked",
            Self::Signing | Self::NoSigningKey => "internal_error",
            Self::Malformed
            | Self::MissingKid
            | Self::UnknownKid
            | Self::AlgorithmMismatch
            | Self::BadSignature
            | Self::WrongType
            | Self::WrongIssuer
            | Self::WrongAudience
            | Self::NotYetValid => "invalid_token",
        }
    }
}

/// Problems creating, importing or assembling signing keys.
///
/// Messages never contain key material.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The system random source failed while generating a key.
    #[error("random number generator failed while generating a key")]
    RandomSourceFailed,
    /// The key material is unusable; the text says why, never what.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A key id must not be empty.
    #[error("key id is empty")]
    EmptyKid,
    /// Two keys in one key set share this key id.
    #[error("duplicate key id {0:?}")]
    DuplicateKid(String),
    /// Two keys would sign with the same algorithm.
    #[error("two signing keys for {0}: one key signs per algorithm")]
    DuplicateSigner(String),
    /// An algorithm name that is not one of [`SigningAlgorithm`](crate::SigningAlgorithm).
    #[error("unsupported signing algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expiry_revocation_and_signing_have_their_own_codes() {
        let all = [
            TokenError::Malformed,
            TokenError::MissingKid,
            TokenError::UnknownKid,
            TokenError::AlgorithmMismatch,
            TokenError::BadSignature,
            TokenError::WrongType,
            TokenError::WrongIssuer,
            TokenError::WrongAudience,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::Revoked,
            TokenError::Signing,
            TokenError::NoSigningKey,
        ];
        for error in all {
            let expected = match error {
                TokenError::Expired => "token_expired",
                TokenError::Revoked => "token_revoked",
                TokenError::Signing | TokenError::NoSigningKey => "internal_error",
                _ => "invalid_token",
            };
            assert_eq!(error.code(), expected, "{error:?}");
        }
    }
}

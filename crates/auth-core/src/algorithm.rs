//! The JWS algorithms we sign with, by their JOSE names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::KeyError;

/// The JWS algorithms this server can sign with.
///
/// Serialized with the JOSE names (`"EdDSA"`, `"ES256"`, `"RS256"`, `"HS256"`),
/// which is also what [`Display`](fmt::Display) prints. [`FromStr`] is more
/// forgiving for configuration: it ignores case and accepts `"ed25519"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// Ed25519 signatures (RFC 8037). The recommended default.
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: OpenID Connect's default for ID tokens.
    RS256,
    /// HMAC-SHA-256 with a shared secret. Never published in the JWKS.
    HS256,
}

impl SigningAlgorithm {
    /// The JOSE name, as used in the `alg` header and JWK `alg` member.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::HS256 => "HS256",
        }
    }

    pub(crate) fn jws_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = KeyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "eddsa" | "ed25519" => Ok(Self::EdDSA),
            "es256" => Ok(Self::ES256),
            "rs256" => Ok(Self::RS256),
            "hs256" => Ok(Self::HS256),
            _ => Err(KeyError::UnsupportedAlgorithm(name.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [SigningAlgorithm; 4] = [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
        SigningAlgorithm::HS256,
    ];

    #[test]
    fn serde_uses_jose_names() {
        for alg in ALL {
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.as_str()));
            assert_eq!(
                serde_json::from_str::<SigningAlgorithm>(&json).unwrap(),
                alg
            );
        }
    }

    #[test]
    fn display_round_trips_through_from_str() {
        for alg in ALL {
            assert_eq!(alg.to_string().parse::<SigningAlgorithm>().unwrap(), alg);
        }
    }

    #[test]
    fn from_str_ignores_case_and_knows_ed25519() {
        assert_eq!(
            "eddsa".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::EdDSA
        );
        assert_eq!(
            "Ed25519".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::EdDSA
        );
        assert_eq!(
            "es256".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::ES256
        );
        assert_eq!(
            "Rs256".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::RS256
        );
        assert_eq!(
            "hs256".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::HS256
        );
    }

    #[test]
    fn from_str_rejects_unknown_and_none() {
        for name in ["none", "", "HS512", "PS256"] {
            assert!(matches!(
                name.parse::<SigningAlgorithm>(),
                Err(KeyError::UnsupportedAlgorithm(_))
            ));
        }
    }

    #[test]
    fn maps_to_the_matching_jws_algorithm() {
        for alg in ALL {
            assert_eq!(format!("{:?}", alg.jws_algorithm()), alg.as_str());
        }
    }
}

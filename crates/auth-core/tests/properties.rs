//! Properties of signing and verification over generated inputs: claims
//! survive a round trip unchanged, and no single-character change to a
//! signed token verifies.

use auth_core::{
    ACCESS_TOKEN_TYP, AccessClaims, KeySet, PublicKeySet, SigningAlgorithm, SigningKey, Subject,
    TokenPolicy,
};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000;

fn keys(alg: SigningAlgorithm) -> KeySet {
    KeySet::new(SigningKey::generate(alg, "k1".into()).unwrap(), vec![]).unwrap()
}

fn algorithm() -> impl Strategy<Value = SigningAlgorithm> {
    prop_oneof![
        Just(SigningAlgorithm::EdDSA),
        Just(SigningAlgorithm::ES256),
        Just(SigningAlgorithm::HS256),
    ]
}

fn subject() -> impl Strategy<Value = Subject> {
    (
        "[a-f0-9-]{1,40}",
        "[a-f0-9-]{1,40}",
        proptest::option::of("\\PC{0,20}"),
        proptest::collection::vec("[a-z_]{1,12}", 0..4),
        proptest::collection::vec("[a-z]{1,8}:[a-z]{1,8}", 0..6),
        any::<i64>(),
        proptest::option::of("\\PC{0,40}"),
        proptest::option::of("\\PC{0,20}"),
        proptest::option::of("\\PC{0,20}"),
    )
        .prop_map(
            |(user_id, session_id, org, roles, perms, pv, email, preferred_username, name)| {
                Subject {
                    user_id,
                    session_id,
                    org,
                    roles,
                    perms,
                    pv,
                    email,
                    preferred_username,
                    name,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn claims_round_trip_unchanged(alg in algorithm(), subject in subject()) {
        let keys = keys(alg);
        let policy = TokenPolicy::default();
        let claims = policy.access_claims(subject, NOW);
        let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
        let verified: AccessClaims = policy.verify_access(&keys, &token, NOW + 1).unwrap();
        prop_assert_eq!(&verified, &claims);
        // A resource server holding only the JWKS reads the same claims.
        if alg != SigningAlgorithm::HS256 {
            let public = PublicKeySet::from_jwks(keys.jwks().to_string().as_bytes()).unwrap();
            prop_assert_eq!(policy.verify_access(&public, &token, NOW + 1).unwrap(), claims);
        }
    }

    #[test]
    fn any_single_character_change_fails(
        alg in algorithm(),
        subject in subject(),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
                .chars()
                .collect::<Vec<_>>(),
        ),
    ) {
        let keys = keys(alg);
        let policy = TokenPolicy::default();
        let token = keys
            .sign(ACCESS_TOKEN_TYP, &policy.access_claims(subject, NOW))
            .unwrap();
        let mut chars: Vec<char> = token.chars().collect();
        let at = position.index(chars.len());
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let tampered: String = chars.into_iter().collect();
        prop_assert!(policy.verify_access(&keys, &tampered, NOW + 1).is_err(), "{tampered}");
    }

    #[test]
    fn arbitrary_input_is_refused_without_panicking(input in "\\PC{0,300}") {
        let keys = keys(SigningAlgorithm::EdDSA);
        prop_assert!(TokenPolicy::default().verify_access(&keys, &input, NOW).is_err());
    }
}

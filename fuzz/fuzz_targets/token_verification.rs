//! Any byte string presented as a bearer token: verification must refuse it
//! (or, for the one genuine token the corpus may mutate into, accept it)
//! without panicking, through the issuer's key set and a JWKS-built one.
#![no_main]

use std::sync::LazyLock;

use auth_core::{KeySet, PublicKeySet, SigningAlgorithm, SigningKey, TokenPolicy};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    KeySet::new(
        SigningKey::generate(SigningAlgorithm::EdDSA, "ed".into()).unwrap(),
        vec![
            SigningKey::generate(SigningAlgorithm::ES256, "ec".into()).unwrap(),
            SigningKey::generate(SigningAlgorithm::HS256, "hs".into()).unwrap(),
        ],
    )
    .unwrap()
});

static PUBLIC: LazyLock<PublicKeySet> =
    LazyLock::new(|| PublicKeySet::from_jwks(KEYS.jwks().to_string().as_bytes()).unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let policy = TokenPolicy::default();
    let _ = policy.verify_bearer(&*KEYS, token, 1_700_000_000);
    let _ = policy.verify_bearer(&*PUBLIC, token, 1_700_000_000);
    let _ = policy.verify_access_allowing_expiry(&*KEYS, token, 1_700_000_000);
    let _ = auth_core::unverified_typ(token);
});

//! A JWK Set from a server we do not control: parsing must never panic
//! (jsonwebtoken panics on short Ed25519 keys, so lengths are checked first),
//! and whatever parses must verify tokens without panicking.
#![no_main]

use auth_core::{PublicKeySet, TokenPolicy};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str =
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImsiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = PublicKeySet::from_jwks(data) {
        let _ = keys.kids();
        let _ = TokenPolicy::default().verify_bearer(&keys, TOKEN, 0);
    }
});

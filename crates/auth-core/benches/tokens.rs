//! Micro-benchmarks of what every request or token issue pays: signing and
//! verifying an access token with each algorithm, and encoding / decoding
//! the claims. Run with `cargo bench -p auth-core`; numbers only, no targets
//! (the performance budget is `cargo xtask bench`).

use std::hint::black_box;

use auth_core::{
    ACCESS_TOKEN_TYP, AccessClaims, KeySet, SigningAlgorithm, SigningKey, Subject, TokenPolicy,
};
use criterion::{Criterion, criterion_group, criterion_main};

const RSA_2048: &[u8] = include_bytes!("../tests/data/rsa2048.pk8.der");
const NOW: i64 = 1_700_000_000;

fn key_set(alg: SigningAlgorithm) -> KeySet {
    let key = match alg {
        SigningAlgorithm::RS256 => SigningKey::from_rsa_pkcs8_der("bench".into(), RSA_2048),
        other => SigningKey::generate(other, "bench".into()),
    }
    .expect("bench key");
    KeySet::new(key, Vec::new()).expect("bench key set")
}

/// Claims shaped like a real session's: a few roles and permissions, profile fields.
fn claims(policy: &TokenPolicy) -> AccessClaims {
    policy.access_claims(
        Subject {
            user_id: "7d5b3f5e-0000-4000-8000-000000000001".into(),
            session_id: "7d5b3f5e-0000-4000-8000-000000000002".into(),
            org: Some("7d5b3f5e-0000-4000-8000-000000000003".into()),
            roles: vec!["member".into()],
            perms: vec!["fame:read".into(), "sms:read".into(), "sms:send".into()],
            pv: 3,
            email: Some("kim@example.com".into()),
            preferred_username: Some("kim".into()),
            name: Some("Kim Example".into()),
        },
        NOW,
    )
}

fn sign_and_verify(c: &mut Criterion) {
    let policy = TokenPolicy::default();
    let claims = claims(&policy);
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::HS256,
        SigningAlgorithm::RS256,
    ] {
        let keys = key_set(alg);
        let token = keys.sign(ACCESS_TOKEN_TYP, &claims).expect("sign");
        let mut group = c.benchmark_group(format!("access token {}", alg.as_str()));
        group.bench_function("sign", |b| {
            b.iter(|| keys.sign(ACCESS_TOKEN_TYP, black_box(&claims)).unwrap())
        });
        group.bench_function("verify", |b| {
            b.iter(|| {
                policy
                    .verify_access(&keys, black_box(&token), NOW + 60)
                    .unwrap()
            })
        });
        group.finish();
    }
}

fn claims_encoding(c: &mut Criterion) {
    let policy = TokenPolicy::default();
    let claims = claims(&policy);
    let json = serde_json::to_vec(&claims).unwrap();
    let mut group = c.benchmark_group("access claims");
    group.bench_function("encode (serde_json)", |b| {
        b.iter(|| serde_json::to_vec(black_box(&claims)).unwrap())
    });
    group.bench_function("decode (serde_json)", |b| {
        b.iter(|| serde_json::from_slice::<AccessClaims>(black_box(&json)).unwrap())
    });
    group.bench_function("build (policy.access_claims)", |b| {
        b.iter(|| {
            policy.access_claims(
                Subject {
                    user_id: claims.sub.clone(),
                    session_id: claims.sid.clone(),
                    perms: claims.perms.clone(),
                    ..Subject::default()
                },
                black_box(NOW),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, sign_and_verify, claims_encoding);
criterion_main!(benches);

//! Attacks and edge cases against token verification, through the public API.
//!
//! Hostile tokens are assembled by hand (header JSON, payload JSON, signature)
//! so that each test controls exactly what an attacker controls.

use auth_core::{
    ACCESS_TOKEN_TYP, AccessClaims, KeySet, SigningAlgorithm, SigningKey, Subject, TokenError,
    TokenPolicy,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const RSA_2048: &[u8] = include_bytes!("data/rsa2048.pk8.der");
const NOW: i64 = 1_700_000_000;
const KID: &str = "key-1";

fn generate(alg: SigningAlgorithm, kid: &str) -> SigningKey {
    SigningKey::generate(alg, kid.to_owned()).unwrap()
}

fn key_set(alg: SigningAlgorithm) -> KeySet {
    let key = match alg {
        SigningAlgorithm::RS256 => SigningKey::from_rsa_pkcs8_der(KID.into(), RSA_2048).unwrap(),
        _ => generate(alg, KID),
    };
    KeySet::new(key, Vec::new()).unwrap()
}

fn subject() -> Subject {
    Subject {
        user_id: "0b8c1f5e-8a5d-4c1e-9a57-3f1f3c1d2e01".into(),
        session_id: "0b8c1f5e-8a5d-4c1e-9a57-3f1f3c1d2e02".into(),
        perms: vec!["users:write".into(), "users:read".into()],
        ..Subject::default()
    }
}

fn claims() -> AccessClaims {
    TokenPolicy::default().access_claims(subject(), NOW)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(value: &Value) -> String {
    b64(&serde_json::to_vec(value).unwrap())
}

/// Assembles `header.payload.signature`, signing with `key` as `alg` says.
fn forge(header: &Value, payload: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    let message = format!("{}.{}", b64_json(header), b64_json(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// The private key of an EdDSA `SigningKey`, as a jsonwebtoken signing key.
fn ed_encoding_key(key: &SigningKey) -> EncodingKey {
    assert_eq!(key.algorithm(), SigningAlgorithm::EdDSA);
    let pkcs8 = URL_SAFE_NO_PAD
        .decode(key.to_document().private_key)
        .unwrap();
    EncodingKey::from_ed_der(&pkcs8)
}

fn access_header(alg: &str, kid: &str) -> Value {
    json!({ "alg": alg, "typ": ACCESS_TOKEN_TYP, "kid": kid })
}

fn verify(keys: &KeySet, token: &str) -> Result<AccessClaims, TokenError> {
    TokenPolicy::default().verify_access(keys, token, NOW)
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

// ---------------------------------------------------------------- happy paths

#[test]
fn every_algorithm_signs_and_verifies() {
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
        SigningAlgorithm::HS256,
    ] {
        let keys = key_set(alg);
        let claims = claims();
        let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg.to_string());
        assert_eq!(header.kid.as_deref(), Some(KID));
        assert_eq!(header.typ.as_deref(), Some(ACCESS_TOKEN_TYP));
        assert_eq!(verify(&keys, &token), Ok(claims), "{alg}");
    }
}

#[test]
fn verify_without_policy_decodes_arbitrary_claims() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let token = keys
        .sign("custom+jwt", &json!({ "anything": [1, 2, 3] }))
        .unwrap();
    let value: Value = keys.verify(&token, "custom+jwt").unwrap();
    assert_eq!(value, json!({ "anything": [1, 2, 3] }));
}

#[test]
fn restored_key_verifies_tokens_of_the_original() {
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::HS256,
    ] {
        let original = generate(alg, KID);
        let restored = SigningKey::from_document(&original.to_document()).unwrap();
        let token = KeySet::new(original, Vec::new())
            .unwrap()
            .sign(ACCESS_TOKEN_TYP, &claims())
            .unwrap();
        let keys = KeySet::new(restored, Vec::new()).unwrap();
        assert!(verify(&keys, &token).is_ok(), "{alg}");
    }
}

// ------------------------------------------------------ algorithm confusion

#[test]
fn header_alg_must_match_the_key_algorithm() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    // A genuine ES256 signature, but our key with this kid is EdDSA.
    let es_key = generate(SigningAlgorithm::ES256, KID);
    let es_token = KeySet::new(es_key, Vec::new())
        .unwrap()
        .sign(ACCESS_TOKEN_TYP, &claims())
        .unwrap();
    assert_eq!(verify(&keys, &es_token), Err(TokenError::AlgorithmMismatch));
}

#[test]
fn each_key_keeps_its_own_algorithm_in_a_mixed_set() {
    let hs = generate(SigningAlgorithm::HS256, "hs");
    let hs_secret = URL_SAFE_NO_PAD
        .decode(hs.to_document().private_key)
        .unwrap();
    let keys = KeySet::new(generate(SigningAlgorithm::EdDSA, "ed"), vec![hs]).unwrap();
    let payload = serde_json::to_value(claims()).unwrap();
    let hmac = EncodingKey::from_secret(&hs_secret);

    // Valid HMAC over the token, but it names the EdDSA key.
    let token = forge(
        &access_header("HS256", "ed"),
        &payload,
        Algorithm::HS256,
        &hmac,
    );
    assert_eq!(verify(&keys, &token), Err(TokenError::AlgorithmMismatch));

    // Same signature naming the HS256 key is genuine and verifies.
    let token = forge(
        &access_header("HS256", "hs"),
        &payload,
        Algorithm::HS256,
        &hmac,
    );
    assert!(verify(&keys, &token).is_ok());
}

#[test]
fn hs256_signed_with_the_ed25519_public_key_is_refused() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let jwk = &keys.jwks()["keys"][0];
    let public_key = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let payload = serde_json::to_value(claims()).unwrap();
    // The public key in all forms an attacker might try as HMAC secret.
    for secret in [
        public_key.clone(),
        jwk["x"].as_str().unwrap().as_bytes().to_vec(),
        jwk.to_string().into_bytes(),
    ] {
        let token = forge(
            &access_header("HS256", KID),
            &payload,
            Algorithm::HS256,
            &EncodingKey::from_secret(&secret),
        );
        assert_eq!(verify(&keys, &token), Err(TokenError::AlgorithmMismatch));
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let keys = key_set(SigningAlgorithm::RS256);
    let jwk = &keys.jwks()["keys"][0];
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let payload = serde_json::to_value(claims()).unwrap();
    let token = forge(
        &access_header("HS256", KID),
        &payload,
        Algorithm::HS256,
        &EncodingKey::from_secret(&modulus),
    );
    assert_eq!(verify(&keys, &token), Err(TokenError::AlgorithmMismatch));
}

#[test]
fn alg_none_never_verifies() {
    for alg in [SigningAlgorithm::EdDSA, SigningAlgorithm::HS256] {
        let keys = key_set(alg);
        let payload = b64_json(&serde_json::to_value(claims()).unwrap());
        for none in ["none", "None", "NONE", "nOnE"] {
            let header = b64_json(&access_header(none, KID));
            for signature in ["", "AAAA"] {
                let token = format!("{header}.{payload}.{signature}");
                let result = verify(&keys, &token);
                assert!(
                    matches!(
                        result,
                        Err(TokenError::Malformed | TokenError::AlgorithmMismatch)
                    ),
                    "{none}/{signature:?}: {result:?}"
                );
            }
        }
    }
}

// --------------------------------------------------------------- key lookup

#[test]
fn missing_or_empty_kid_is_refused() {
    let key = generate(SigningAlgorithm::EdDSA, KID);
    let signer = ed_encoding_key(&key);
    let keys = KeySet::new(key, Vec::new()).unwrap();
    let payload = serde_json::to_value(claims()).unwrap();

    let no_kid = json!({ "alg": "EdDSA", "typ": ACCESS_TOKEN_TYP });
    let token = forge(&no_kid, &payload, Algorithm::EdDSA, &signer);
    assert_eq!(verify(&keys, &token), Err(TokenError::MissingKid));

    let token = forge(
        &access_header("EdDSA", ""),
        &payload,
        Algorithm::EdDSA,
        &signer,
    );
    assert_eq!(verify(&keys, &token), Err(TokenError::MissingKid));
}

#[test]
fn unknown_kid_is_refused() {
    let key = generate(SigningAlgorithm::EdDSA, KID);
    let signer = ed_encoding_key(&key);
    let keys = KeySet::new(key, Vec::new()).unwrap();
    let payload = serde_json::to_value(claims()).unwrap();
    // Signed by our own key, so only the kid lookup can refuse it.
    let token = forge(
        &access_header("EdDSA", "key-2"),
        &payload,
        Algorithm::EdDSA,
        &signer,
    );
    assert_eq!(verify(&keys, &token), Err(TokenError::UnknownKid));
}

#[test]
fn embedded_jwk_jku_and_x5u_do_not_supply_keys() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let attacker = generate(SigningAlgorithm::EdDSA, KID);
    let attacker_jwk = attacker.public_jwk().unwrap();
    let attacker_signer = ed_encoding_key(&attacker);
    let payload = serde_json::to_value(claims()).unwrap();

    let mut headers = Vec::new();
    for (name, value) in [
        ("jwk", attacker_jwk.clone()),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
    ] {
        let mut header = access_header("EdDSA", KID);
        header[name] = value;
        headers.push(header);
    }
    for header in headers {
        let token = forge(&header, &payload, Algorithm::EdDSA, &attacker_signer);
        assert_eq!(
            verify(&keys, &token),
            Err(TokenError::BadSignature),
            "{header}"
        );
    }
}

#[test]
fn extra_jku_header_still_verifies_only_against_our_key() {
    let key = generate(SigningAlgorithm::EdDSA, KID);
    let signer = ed_encoding_key(&key);
    let keys = KeySet::new(key, Vec::new()).unwrap();
    let mut header = access_header("EdDSA", KID);
    header["jku"] = json!("https://attacker.example/jwks.json");
    let claims = claims();
    let token = forge(
        &header,
        &serde_json::to_value(&claims).unwrap(),
        Algorithm::EdDSA,
        &signer,
    );
    assert_eq!(verify(&keys, &token), Ok(claims));
}

#[test]
fn critical_header_extensions_are_refused() {
    let key = generate(SigningAlgorithm::EdDSA, KID);
    let signer = ed_encoding_key(&key);
    let keys = KeySet::new(key, Vec::new()).unwrap();
    let mut header = access_header("EdDSA", KID);
    header["crit"] = json!(["exp-policy"]);
    header["exp-policy"] = json!(true);
    let token = forge(
        &header,
        &serde_json::to_value(claims()).unwrap(),
        Algorithm::EdDSA,
        &signer,
    );
    assert_eq!(verify(&keys, &token), Err(TokenError::Malformed));
}

// ------------------------------------------------------------ token type

#[test]
fn wrong_or_missing_typ_is_refused() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    for typ in ["JWT", "refresh+jwt", "", "at+jwt2"] {
        let token = keys.sign(typ, &claims()).unwrap();
        assert_eq!(verify(&keys, &token), Err(TokenError::WrongType), "{typ:?}");
    }

    let key = generate(SigningAlgorithm::EdDSA, KID);
    let signer = ed_encoding_key(&key);
    let keys = KeySet::new(key, Vec::new()).unwrap();
    let no_typ = json!({ "alg": "EdDSA", "kid": KID });
    let token = forge(
        &no_typ,
        &serde_json::to_value(claims()).unwrap(),
        Algorithm::EdDSA,
        &signer,
    );
    assert_eq!(verify(&keys, &token), Err(TokenError::WrongType));
}

#[test]
fn typ_accepts_rfc_7515_spellings() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    for typ in ["AT+JWT", "application/at+jwt"] {
        let token = keys.sign(typ, &claims()).unwrap();
        assert!(verify(&keys, &token).is_ok(), "{typ}");
    }
}

// ---------------------------------------------------------- integrity

#[test]
fn tampered_payload_is_refused() {
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
        SigningAlgorithm::HS256,
    ] {
        let keys = key_set(alg);
        let token = keys.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
        let mut escalated = claims();
        escalated.perms.push("admin:everything".into());
        let [header, _, signature] = <[String; 3]>::try_from(parts(&token)).unwrap();
        let forged = format!(
            "{header}.{}.{signature}",
            b64_json(&serde_json::to_value(escalated).unwrap())
        );
        assert_eq!(
            verify(&keys, &forged),
            Err(TokenError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn tampered_header_or_signature_is_refused() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
    let [_, payload, signature] = <[String; 3]>::try_from(parts(&token)).unwrap();

    let mut header = access_header("EdDSA", KID);
    header["extra"] = json!("x");
    let forged = format!("{}.{payload}.{signature}", b64_json(&header));
    assert_eq!(verify(&keys, &forged), Err(TokenError::BadSignature));

    let mut signature_bytes = URL_SAFE_NO_PAD.decode(&signature).unwrap();
    signature_bytes[10] ^= 1;
    let header = parts(&token)[0].clone();
    let forged = format!("{header}.{payload}.{}", b64(&signature_bytes));
    assert_eq!(verify(&keys, &forged), Err(TokenError::BadSignature));

    let forged = format!("{header}.{payload}.{}", b64(&signature_bytes[..32]));
    assert_eq!(verify(&keys, &forged), Err(TokenError::BadSignature));
}

#[test]
fn token_of_another_key_set_with_the_same_kid_is_refused() {
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::HS256,
    ] {
        let ours = key_set(alg);
        let theirs = key_set(alg);
        let token = theirs.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
        assert_eq!(
            verify(&ours, &token),
            Err(TokenError::BadSignature),
            "{alg}"
        );
    }
}

// -------------------------------------------------------------- garbage

#[test]
fn garbage_is_malformed_and_never_panics() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let valid = keys.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
    let header = parts(&valid)[0].clone();
    let junk = "x".repeat(10 * 1024);
    let dotted_junk = format!("{junk}.{junk}.{junk}");
    let garbage = [
        "",
        ".",
        "..",
        "....",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJ.eyJ.eyJ",
        "e30.e30.",
        "bnVsbA.bnVsbA.",
        "\u{0}\u{1}.\u{2}.\u{3}",
        "Ω.Ω.Ω",
        junk.as_str(),
        dotted_junk.as_str(),
    ];
    for token in garbage {
        assert_eq!(
            verify(&keys, token),
            Err(TokenError::Malformed),
            "{token:.40?}"
        );
    }
    for payload_and_signature in ["!!!.sig", "e30.!!!", "e30", "bm90IGpzb24.AAAA"] {
        let token = format!("{header}.{payload_and_signature}");
        assert!(verify(&keys, &token).is_err(), "{token}");
    }
}

#[test]
fn correctly_signed_non_claims_payloads_are_malformed() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    for payload in [
        json!("a string"),
        json!([1, 2]),
        json!({ "sub": 5 }),
        json!(null),
    ] {
        let token = keys.sign(ACCESS_TOKEN_TYP, &payload).unwrap();
        assert_eq!(
            verify(&keys, &token),
            Err(TokenError::Malformed),
            "{payload}"
        );
    }
}

#[test]
fn no_prefix_or_mutation_of_a_valid_token_panics_or_verifies() {
    let keys = key_set(SigningAlgorithm::ES256);
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
    for end in 0..token.len() {
        assert!(verify(&keys, &token[..end]).is_err(), "prefix {end}");
    }
    let bytes = token.as_bytes();
    for position in 0..bytes.len() {
        let mut mutated = bytes.to_vec();
        mutated[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        let mutated = String::from_utf8(mutated).unwrap();
        // Flipping the last base64 character may only touch padding bits, so
        // the decoded signature can be unchanged: that must still verify.
        if let Ok(claims) = verify(&keys, &mutated) {
            assert_eq!(
                position,
                bytes.len() - 1,
                "mutation at {position} verified: {claims:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- policy

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
    let other_issuer = TokenPolicy {
        issuer: "https://elsewhere.example".into(),
        ..TokenPolicy::default()
    };
    assert_eq!(
        other_issuer.verify_access(&keys, &token, NOW),
        Err(TokenError::WrongIssuer)
    );
    let other_audience = TokenPolicy {
        audience: "billing".into(),
        ..TokenPolicy::default()
    };
    assert_eq!(
        other_audience.verify_access(&keys, &token, NOW),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn expiry_honours_leeway() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let policy = TokenPolicy::default();
    let claims = claims();
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
    let exp = claims.exp;
    let leeway = policy.leeway_secs;
    assert!(policy.verify_access(&keys, &token, exp - 1).is_ok());
    assert!(
        policy.verify_access(&keys, &token, exp + 10).is_ok(),
        "within leeway"
    );
    assert!(
        policy
            .verify_access(&keys, &token, exp + leeway - 1)
            .is_ok()
    );
    assert_eq!(
        policy.verify_access(&keys, &token, exp + leeway),
        Err(TokenError::Expired)
    );
    assert_eq!(
        policy.verify_access(&keys, &token, exp + 3600),
        Err(TokenError::Expired)
    );

    let strict = TokenPolicy {
        leeway_secs: 0,
        ..TokenPolicy::default()
    };
    assert_eq!(
        strict.verify_access(&keys, &token, exp),
        Err(TokenError::Expired)
    );
}

#[test]
fn not_before_honours_leeway() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let policy = TokenPolicy::default();
    let claims = claims();
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
    let nbf = claims.nbf;
    assert!(policy.verify_access(&keys, &token, nbf).is_ok());
    assert!(
        policy.verify_access(&keys, &token, nbf - 10).is_ok(),
        "within leeway"
    );
    assert!(
        policy
            .verify_access(&keys, &token, nbf - policy.leeway_secs)
            .is_ok()
    );
    assert_eq!(
        policy.verify_access(&keys, &token, nbf - policy.leeway_secs - 1),
        Err(TokenError::NotYetValid)
    );
    assert_eq!(
        policy.verify_access(&keys, &token, nbf - 3600),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn extreme_times_do_not_overflow() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let policy = TokenPolicy::default();
    let mut claims = claims();
    claims.exp = i64::MAX;
    claims.nbf = i64::MIN;
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
    assert!(policy.verify_access(&keys, &token, NOW).is_ok());
    assert!(policy.verify_access(&keys, &token, i64::MAX).is_err());

    claims.exp = i64::MIN;
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
    assert_eq!(
        policy.verify_access(&keys, &token, NOW),
        Err(TokenError::Expired)
    );

    claims.exp = i64::MAX;
    claims.nbf = i64::MAX;
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
    for now in [i64::MIN, NOW, i64::MAX - 31] {
        assert_eq!(
            policy.verify_access(&keys, &token, now),
            Err(TokenError::NotYetValid)
        );
    }
}

#[test]
fn empty_subject_is_refused() {
    let keys = key_set(SigningAlgorithm::EdDSA);
    let mut claims = claims();
    claims.sub = String::new();
    let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
    assert_eq!(verify(&keys, &token), Err(TokenError::Malformed));
}

// --------------------------------------------------------------- rotation

#[test]
fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
    let old = generate(SigningAlgorithm::EdDSA, "2024-01");
    let before = KeySet::new(old.clone(), Vec::new()).unwrap();
    let old_token = before.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();

    let new = generate(SigningAlgorithm::ES256, "2024-02");
    let after = KeySet::new(new, vec![old.with_retired_at(Some(NOW))]).unwrap();
    assert_eq!(after.active_kid(), "2024-02");
    assert!(verify(&after, &old_token).is_ok());

    let new_token = after.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
    let header = jsonwebtoken::decode_header(&new_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("2024-02"));
    assert_eq!(header.alg, Algorithm::ES256);
    assert!(verify(&after, &new_token).is_ok());
    assert_eq!(verify(&before, &new_token), Err(TokenError::UnknownKid));

    let old_dropped =
        KeySet::new(generate(SigningAlgorithm::EdDSA, "2024-03"), Vec::new()).unwrap();
    assert_eq!(
        verify(&old_dropped, &old_token),
        Err(TokenError::UnknownKid)
    );
}

// ------------------------------------------------------------------- jwks

#[test]
fn jwks_publishes_public_keys_only() {
    let ed = generate(SigningAlgorithm::EdDSA, "ed");
    let es = generate(SigningAlgorithm::ES256, "es");
    let rs = SigningKey::from_rsa_pkcs8_der("rs".into(), RSA_2048).unwrap();
    let hs = generate(SigningAlgorithm::HS256, "hs");
    let hs_secret = hs.to_document().private_key;
    let keys = KeySet::new(ed, vec![es, rs, hs]).unwrap();
    let jwks = keys.jwks();
    let published = jwks["keys"].as_array().unwrap();

    let kids: Vec<&str> = published
        .iter()
        .map(|jwk| jwk["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["ed", "es", "rs"], "HS256 must not be published");

    let okp = &published[0];
    assert_eq!(okp["kty"], "OKP");
    assert_eq!(okp["crv"], "Ed25519");
    assert_eq!(okp["alg"], "EdDSA");
    assert_eq!(okp["use"], "sig");
    assert_eq!(okp["x"].as_str().unwrap().len(), 43);

    for jwk in published {
        for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                jwk.get(private_member).is_none(),
                "{private_member} in {jwk}"
            );
        }
    }
    assert!(!jwks.to_string().contains(&hs_secret));
}

#[test]
fn jwks_keys_verify_our_tokens() {
    // What a resource server would do: verify with jsonwebtoken from the JWKS alone.
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
    ] {
        let keys = key_set(alg);
        let token = keys.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(keys.jwks()["keys"][0].clone()).unwrap();
        let decoding_key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg.to_string().parse().unwrap());
        validation.validate_exp = false;
        validation.set_audience(&["auth-server"]);
        let decoded = jsonwebtoken::decode::<AccessClaims>(&token, &decoding_key, &validation);
        assert!(decoded.is_ok(), "{alg}: {decoded:?}");
    }
}

//! A software passkey for the API tests: an ES256 key made with `ring`,
//! answering WebAuthn options as a browser and a platform authenticator
//! would (`none` attestation, user present and verified, discoverable: the
//! user handle comes back on every sign-in). The CBOR it writes is the
//! handful of fixed shapes WebAuthn needs, encoded by hand. The browser
//! tests use Chromium's own virtual authenticator instead.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// The origin the tests' "browser" reports: the loopback server is the
/// relying party `localhost` on any port.
pub const ORIGIN: &str = "http://localhost:8080";

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

pub struct SoftPasskey {
    key: EcdsaKeyPair,
    pub credential_id: Vec<u8>,
    user_handle: Vec<u8>,
    rp_id: String,
    counter: u32,
    /// Flags every answer sets (user present and verified by default).
    pub flags: u8,
    /// The origin answers claim.
    pub origin: String,
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.len() {
        n if n < 24 => out.push(0x40 | n as u8),
        n if n < 256 => out.extend([0x58, n as u8]),
        n => out.extend([0x59, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() < 24);
    out.push(0x60 | text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

fn b64(value: &Value) -> Vec<u8> {
    B64.decode(value.as_str().expect("a base64url string"))
        .expect("base64url")
}

impl SoftPasskey {
    /// Answers registration options (`{"publicKey": ...}` or the inner
    /// object): the new passkey and the credential JSON to send.
    pub fn create(options: &Value) -> (SoftPasskey, Value) {
        let options = options.get("publicKey").unwrap_or(options);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut passkey = SoftPasskey {
            key,
            credential_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
            user_handle: b64(&options["user"]["id"]),
            rp_id: options["rp"]["id"].as_str().unwrap().to_owned(),
            counter: 0,
            flags: UP | UV,
            origin: ORIGIN.to_owned(),
        };
        let credential = passkey.attest(options);
        (passkey, credential)
    }

    /// A registration answer for `options` from this same key (to try
    /// registering one credential twice).
    pub fn attest(&mut self, options: &Value) -> Value {
        let options = options.get("publicKey").unwrap_or(options);
        let client_data = self.client_data("webauthn.create", &options["challenge"]);
        let public = self.key.public_key().as_ref(); // 0x04 ‖ x ‖ y
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&mut cose, &public[1..33]);
        cose.push(0x22);
        cbor_bytes(&mut cose, &public[33..65]);
        let mut auth_data = self.auth_data_head(self.flags | AT);
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(cose);
        let mut attestation = vec![0xa3];
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        attestation.push(0xa0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        let id = B64.encode(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data),
                "attestationObject": B64.encode(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// Answers sign-in options: the credential JSON to send.
    pub fn assert(&mut self, options: &Value) -> Value {
        let options = options.get("publicKey").unwrap_or(options);
        self.counter += 1;
        let client_data = self.client_data("webauthn.get", &options["challenge"]);
        let auth_data = self.auth_data_head(self.flags);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, &client_data).as_ref());
        let signature = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        let id = B64.encode(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data),
                "authenticatorData": B64.encode(auth_data),
                "signature": B64.encode(signature.as_ref()),
                "userHandle": B64.encode(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    fn client_data(&self, kind: &str, challenge: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    fn auth_data_head(&self, flags: u8) -> Vec<u8> {
        let mut data = digest(&SHA256, self.rp_id.as_bytes()).as_ref().to_vec();
        data.push(flags);
        data.extend(self.counter.to_be_bytes());
        data
    }
}

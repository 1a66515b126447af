//! Opaque bearer secrets (refresh tokens now; reset and activation tokens
//! later): 256 random bits shown to the client once, stored as SHA-256.
//!
//! A fast hash is right here, unlike for passwords: the input has 256 bits of
//! entropy, so there is nothing to brute-force, and lookups stay one index probe.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;

/// A fresh random token, 43 URL-safe characters.
pub fn new_opaque_token() -> SecretString {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source failed");
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token: lowercase hex SHA-256.
pub fn token_hash(token: &str) -> String {
    hex(digest(&SHA256, token.as_bytes()).as_ref())
}

pub(crate) use storage::hex;

/// The bytes of [`hex`] text; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// A 32-byte AES-256-GCM key that seals small values (key files at rest,
/// the refresh credential inside a client's refresh token). Never printed.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    pub fn new(bytes: [u8; 32]) -> SealingKey {
        SealingKey(bytes)
    }

    /// Exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<SealingKey> {
        Some(SealingKey(bytes.try_into().ok()?))
    }

    /// 32 bytes in standard or URL-safe base64, padded or not.
    pub fn parse(text: &str) -> Option<SealingKey> {
        use base64::engine::general_purpose::STANDARD;
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .ok()?;
        Self::from_bytes(&bytes)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES-256 key"))
    }

    /// `nonce ‖ ciphertext ‖ tag`, base64url, with a fresh random nonce.
    /// `label` is authenticated, so a value sealed for one purpose can't be
    /// passed off as another.
    pub fn seal(&self, label: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the operating system's random source failed");
        let mut sealed = plain.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any input shorter than 64 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plain bytes, or `None` when `sealed` was not sealed by this key
    /// with this label (or was altered).
    pub fn open(&self, label: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed.trim()).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let mut buffer = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut buffer)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = new_opaque_token();
        let b = new_opaque_token();
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(token_hash("abc"), token_hash("abc"));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_label() {
        let key = SealingKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = key.seal("label", b"secret value");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            key.open("label", &sealed).as_deref(),
            Some(&b"secret value"[..])
        );
        assert_eq!(key.open("other", &sealed), None);
        let other = SealingKey::from_bytes(&[8u8; 32]).unwrap();
        assert_eq!(other.open("label", &sealed), None);
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.open("label", &String::from_utf8(altered).unwrap()),
            None
        );
        assert_ne!(
            key.seal("label", b"x"),
            key.seal("label", b"x"),
            "nonces are fresh"
        );
        assert!(SealingKey::from_bytes(&[0u8; 31]).is_none());
        assert!(format!("{key:?}").contains("redacted"));
    }
}

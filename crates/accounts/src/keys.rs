//! Signing keys on disk: one JSON document per key in `keys_dir`, written with
//! 0600 permissions (the folder 0700). The newest key that is not retired
//! signs; retired keys keep verifying until every token they signed has
//! expired, then they are no longer loaded. The folder also holds the
//! server's named secrets (code HMACs, rate-limit keys, CSRF, token sealing).
//!
//! A running server re-reads it ([`KeyStore::load`]) so a rotation made by
//! `auth-server keys rotate` on any instance sharing the folder applies
//! without a restart (see [`crate::background`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use auth_core::{KeyDocument, KeySet, SigningAlgorithm, SigningKey};

pub use crate::secrets::SealingKey;

/// What went wrong with the key folder; the message names the file and
/// what to do (it is for operators, never for clients).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyStoreError(String);

type Result<T> = std::result::Result<T, KeyStoreError>;

impl From<std::io::Error> for KeyStoreError {
    fn from(e: std::io::Error) -> Self {
        KeyStoreError(format!("key folder: {e}"))
    }
}

impl From<serde_json::Error> for KeyStoreError {
    fn from(e: serde_json::Error) -> Self {
        KeyStoreError(format!("key document: {e}"))
    }
}

impl From<auth_core::KeyError> for KeyStoreError {
    fn from(e: auth_core::KeyError) -> Self {
        KeyStoreError(format!("signing key: {e}"))
    }
}

/// `anyhow`-style context for the few fallible calls here.
trait Context<T> {
    fn context(self, message: impl std::fmt::Display) -> Result<T>;
    fn with_context<M: std::fmt::Display>(self, message: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, message: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| KeyStoreError(format!("{message}: {e}")))
    }

    fn with_context<M: std::fmt::Display>(self, message: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| KeyStoreError(format!("{}: {e}", message())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, message: impl std::fmt::Display) -> Result<T> {
        self.ok_or_else(|| KeyStoreError(message.to_string()))
    }

    fn with_context<M: std::fmt::Display>(self, message: impl FnOnce() -> M) -> Result<T> {
        self.ok_or_else(|| KeyStoreError(message().to_string()))
    }
}

macro_rules! bail {
    ($($arg:tt)*) => { return Err(KeyStoreError(format!($($arg)*))) };
}

/// Where a running server re-reads its signing keys from.
pub trait KeyStore: Send + Sync {
    /// The key set as stored now, creating nothing.
    fn load(&self, now: i64, verify_window_secs: i64) -> Result<KeySet>;
}

impl KeyStore for KeyDir {
    fn load(&self, now: i64, verify_window_secs: i64) -> Result<KeySet> {
        KeyDir::load(self, now, verify_window_secs)
    }
}

/// The key set from the keys on disk: retired keys only while tokens they
/// signed may live (`verify_window_secs`), the newest unretired key signing.
fn assemble(mut keys: Vec<SigningKey>, now: i64, verify_window_secs: i64) -> Result<KeySet> {
    keys.retain(|k| {
        k.retired_at()
            .is_none_or(|retired| retired + verify_window_secs > now)
    });
    keys.sort_by_key(|k| (k.retired_at().is_none(), k.created_at()));
    let active = keys.pop().context("no unretired signing key")?;
    Ok(KeySet::new(active, keys)?)
}

pub struct KeyDir {
    dir: PathBuf,
    /// When set, key and secret files are sealed with it (AES-256-GCM).
    sealing: Option<SealingKey>,
}

fn open(key: &SealingKey, label: &str, sealed: &str) -> Result<Vec<u8>> {
    key.open(label, sealed).ok_or_else(|| {
        KeyStoreError(format!(
            "{label} cannot be decrypted: AUTH_KEY_ENCRYPTION_KEY is not the key it was sealed with"
        ))
    })
}

/// Marks a sealed file's contents.
const SEALED_PREFIX: &str = "sealed:v1:";

/// A key as listed by `keys list`.
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl KeyDir {
    /// Key files in `dir`, in plain JSON (protected by 0600 only).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            sealing: None,
        }
    }

    /// A key folder whose files are sealed with `sealing` (the
    /// `key_encryption_key`). Plain files found there are read and
    /// re-written sealed.
    pub fn sealed(dir: impl Into<PathBuf>, sealing: Option<SealingKey>) -> Self {
        Self {
            dir: dir.into(),
            sealing,
        }
    }

    /// Loads the key set, generating the first key when the folder has none.
    /// `verify_window_secs` is how long a retired key must keep verifying
    /// (the longest lifetime of anything it signed, plus leeway).
    pub fn load_or_create(
        &self,
        alg: SigningAlgorithm,
        now: i64,
        verify_window_secs: i64,
    ) -> Result<KeySet> {
        let mut keys = self.read_all()?;
        if !keys.iter().any(|k| k.retired_at().is_none()) {
            let key = self.generate(alg, now)?;
            tracing::info!(kid = key.kid(), alg = %alg, dir = %self.dir.display(), "generated a signing key");
            keys.push(key);
        }
        assemble(keys, now, verify_window_secs)
    }

    /// Loads the key set as it is on disk now, creating nothing: what a
    /// running server re-reads to pick up `keys rotate` without a restart.
    pub fn load(&self, now: i64, verify_window_secs: i64) -> Result<KeySet> {
        let keys = self.read_all()?;
        if !keys.iter().any(|k| k.retired_at().is_none()) {
            bail!("{} has no unretired signing key", self.dir.display());
        }
        assemble(keys, now, verify_window_secs)
    }

    /// Generates a new signing key and retires the current ones.
    pub fn rotate(&self, alg: SigningAlgorithm, now: i64) -> Result<String> {
        let current = self.read_all()?;
        let key = self.generate(alg, now)?;
        for old in current.into_iter().filter(|k| k.retired_at().is_none()) {
            self.write(&old.with_retired_at(Some(now)))?;
        }
        Ok(key.kid().to_owned())
    }

    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut keys: Vec<KeyInfo> = self
            .read_all()?
            .into_iter()
            .map(|k| KeyInfo {
                kid: k.kid().to_owned(),
                alg: k.algorithm(),
                created_at: k.created_at(),
                retired_at: k.retired_at(),
            })
            .collect();
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    /// A named 32-byte server secret (e.g. the key of email-code HMACs),
    /// generated on first use and stored next to the signing keys.
    pub fn load_or_create_secret(&self, name: &str) -> Result<Vec<u8>> {
        let file_name = format!("{name}.secret");
        let path = self.dir.join(&file_name);
        if path.exists() {
            check_private(&path)?;
            let hex = self.read_private(&file_name)?;
            let hex = String::from_utf8(hex)
                .with_context(|| format!("{} is not a hex secret", path.display()))?;
            let bytes: Option<Vec<u8>> = (0..hex.trim().len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect();
            return match bytes {
                Some(bytes) if bytes.len() == 32 => Ok(bytes),
                _ => bail!("{} is not a 32-byte hex secret", path.display()),
            };
        }
        let mut secret = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| KeyStoreError("the system random source failed".to_owned()))?;
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        self.write_private(&file_name, hex.as_bytes())?;
        Ok(secret)
    }

    fn generate(&self, alg: SigningAlgorithm, now: i64) -> Result<SigningKey> {
        let kid = format!("k{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let key = SigningKey::generate(alg, kid)?.with_created_at(now);
        self.write(&key)?;
        Ok(key)
    }

    fn read_all(&self) -> Result<Vec<SigningKey>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                keys.push(self.read_key(&path)?);
            }
        }
        Ok(keys)
    }

    fn write(&self, key: &SigningKey) -> Result<()> {
        let json = serde_json::to_vec_pretty(&key.to_document())?;
        self.write_private(&format!("{}.json", key.kid()), &json)
    }

    fn read_key(&self, path: &Path) -> Result<SigningKey> {
        check_private(path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable file name", path.display()))?;
        let text = self.read_private(name)?;
        let doc: KeyDocument = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a key document", path.display()))?;
        SigningKey::from_document(&doc)
            .with_context(|| format!("{} holds an unusable key", path.display()))
    }

    /// A private file's contents, opened if sealed. With a sealing key, a
    /// plain file is re-written sealed (turning encryption on needs no other
    /// step); without one, a sealed file is an error that says what to set.
    fn read_private(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(name);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let sealed = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.strip_prefix(SEALED_PREFIX));
        match (sealed, &self.sealing) {
            (Some(sealed), Some(key)) => open(key, name, sealed),
            (Some(_), None) => bail!(
                "{} is encrypted; set AUTH_KEY_ENCRYPTION_KEY to the key it was sealed with",
                path.display()
            ),
            (None, Some(_)) => {
                self.write_private(name, &bytes)?;
                tracing::info!(file = %path.display(), "key file encrypted at rest");
                Ok(bytes)
            }
            (None, None) => Ok(bytes),
        }
    }

    /// Writes a 0600 file atomically (temp file + rename) so a crash never
    /// leaves half a key; sealed when a sealing key is configured.
    fn write_private(&self, name: &str, contents: &[u8]) -> Result<()> {
        let sealed;
        let contents = match &self.sealing {
            Some(key) => {
                sealed = format!("{SEALED_PREFIX}{}", key.seal(name, contents));
                sealed.as_bytes()
            }
            None => contents,
        };
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        Ok(())
    }
}

/// Secrets readable by other users are refused rather than used.
fn check_private(path: &Path) -> Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_persists_0600_and_rotates() {
        let dir = std::env::temp_dir().join(format!("auth-keys-{}", uuid::Uuid::new_v4().simple()));
        let keys = KeyDir::new(&dir);
        let first = keys
            .load_or_create(SigningAlgorithm::EdDSA, 1000, 1830)
            .unwrap();
        let again = keys
            .load_or_create(SigningAlgorithm::EdDSA, 1001, 1830)
            .unwrap();
        assert_eq!(
            first.active_kid(),
            again.active_kid(),
            "key must be reused on restart"
        );
        let file = dir.join(format!("{}.json", first.active_kid()));
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let new_kid = keys.rotate(SigningAlgorithm::EdDSA, 2000).unwrap();
        let rotated = keys
            .load_or_create(SigningAlgorithm::EdDSA, 2001, 1830)
            .unwrap();
        assert_eq!(rotated.active_kid(), new_kid);
        assert!(
            rotated.kids().contains(&first.active_kid()),
            "old key keeps verifying"
        );
        let later = keys
            .load_or_create(SigningAlgorithm::EdDSA, 2000 + 1831, 1830)
            .unwrap();
        assert!(
            !later.kids().contains(&first.active_kid()),
            "expired key is dropped"
        );

        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            keys.load_or_create(SigningAlgorithm::EdDSA, 2002, 1830)
                .is_err()
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sealed_key_files_hold_no_plain_key_and_need_the_right_key() {
        let dir = std::env::temp_dir().join(format!("auth-keys-{}", uuid::Uuid::new_v4().simple()));
        let plain = KeyDir::new(&dir);
        let first = plain
            .load_or_create(SigningAlgorithm::EdDSA, 1000, 1830)
            .unwrap();
        let secret = plain.load_or_create_secret("code-hmac").unwrap();
        let file = dir.join(format!("{}.json", first.active_kid()));
        assert!(fs::read_to_string(&file).unwrap().contains("private_key"));

        // Turning encryption on re-writes the plain files sealed.
        let key = SealingKey::parse(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [7u8; 32],
        ))
        .unwrap();
        let sealed = KeyDir {
            dir: dir.clone(),
            sealing: Some(key),
        };
        let again = sealed
            .load_or_create(SigningAlgorithm::EdDSA, 1001, 1830)
            .unwrap();
        assert_eq!(again.active_kid(), first.active_kid());
        assert_eq!(sealed.load_or_create_secret("code-hmac").unwrap(), secret);
        for name in [
            format!("{}.json", first.active_kid()),
            "code-hmac.secret".to_owned(),
        ] {
            let text = fs::read_to_string(dir.join(&name)).unwrap();
            assert!(text.starts_with(SEALED_PREFIX), "{name}: {text}");
            assert!(!text.contains("private_key"), "{name}");
            assert_eq!(
                fs::metadata(dir.join(&name)).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let rotated = sealed.rotate(SigningAlgorithm::EdDSA, 2000).unwrap();
        assert!(
            fs::read_to_string(dir.join(format!("{rotated}.json")))
                .unwrap()
                .starts_with(SEALED_PREFIX)
        );

        // Without the key, or with another, nothing loads, and the error says what to do.
        let error = plain.load(2001, 1830).unwrap_err().to_string();
        assert!(error.contains("AUTH_KEY_ENCRYPTION_KEY"), "{error}");
        let other = KeyDir {
            dir: dir.clone(),
            sealing: SealingKey::parse(&"A".repeat(43)),
        };
        let error = format!("{:#}", other.load(2001, 1830).unwrap_err());
        assert!(error.contains("cannot be decrypted"), "{error}");
        // A sealed file renamed to pass for another key is refused too.
        fs::copy(
            dir.join(format!("{rotated}.json")),
            dir.join("k-forged.json"),
        )
        .unwrap();
        fs::set_permissions(dir.join("k-forged.json"), fs::Permissions::from_mode(0o600)).unwrap();
        let key = SealingKey::parse(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [7u8; 32],
        ));
        let error = format!(
            "{:#}",
            KeyDir {
                dir: dir.clone(),
                sealing: key
            }
            .load(2001, 1830)
            .unwrap_err()
        );
        assert!(error.contains("k-forged.json"), "{error}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn sealing_keys_parse_from_base64_only_at_32_bytes() {
        use base64::Engine;
        let bytes = [9u8; 32];
        for text in [
            base64::engine::general_purpose::STANDARD.encode(bytes),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ] {
            assert!(SealingKey::parse(&text).is_some(), "{text}");
        }
        assert!(SealingKey::parse("c2hvcnQ=").is_none());
        assert!(SealingKey::parse("not base64 at all!").is_none());
        assert_eq!(
            format!("{:?}", SealingKey::parse(&"A".repeat(43)).unwrap()),
            "SealingKey([redacted])"
        );
    }
}

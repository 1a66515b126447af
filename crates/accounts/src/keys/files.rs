//! The key folder: one JSON document per key, one hex file per secret,
//! written with 0600 permissions (the folder 0700), sealed with the
//! key-encryption key when one is configured.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use auth_core::{KeyDocument, SigningAlgorithm, SigningKey};

use super::{
    Context, Imported, KeyBundle, KeyStore, Result, SEALED_PREFIX, SealingKey, bail, check_import,
    check_revocable, has_active, has_signer, new_alternate, new_key, new_secret, open,
    renewed_alternates,
};
use crate::secrets::{hex, unhex};

/// The key folder.
pub struct KeyDir {
    dir: PathBuf,
    /// When set, key and secret files are sealed with it (AES-256-GCM).
    sealing: Option<SealingKey>,
}

impl KeyStore for KeyDir {
    fn describe(&self) -> String {
        format!("the key folder {}", self.dir.display())
    }

    fn keys(&self) -> Result<Vec<SigningKey>> {
        self.read_all()
    }

    fn keys_with_active(&self, alg: SigningAlgorithm, now: i64) -> Result<Vec<SigningKey>> {
        let mut keys = self.read_all()?;
        if !has_active(&keys) {
            let key = self.write_new(new_key(alg, now)?)?;
            tracing::info!(kid = key.kid(), alg = %alg, dir = %self.dir.display(), "generated a signing key");
            keys.push(key);
        }
        Ok(keys)
    }

    fn ensure_signer(&self, alg: SigningAlgorithm, now: i64) -> Result<bool> {
        if has_signer(&self.read_all()?, alg) {
            return Ok(false);
        }
        // Two processes racing here may both write one: the newest signs,
        // the other verifies what it signed. Nothing is lost.
        let key = self.write_new(new_alternate(alg, now)?)?;
        tracing::info!(kid = key.kid(), alg = %alg, dir = %self.dir.display(), "generated an alternate signing key");
        Ok(true)
    }

    fn rotate(&self, alg: SigningAlgorithm, now: i64) -> Result<String> {
        let current = self.read_all()?;
        let key = self.write_new(new_key(alg, now)?)?;
        for other in renewed_alternates(&current, alg) {
            self.write_new(new_alternate(other, now)?)?;
        }
        for old in current.into_iter().filter(|k| k.retired_at().is_none()) {
            self.write(&old.with_retired_at(Some(now)))?;
        }
        Ok(key.kid().to_owned())
    }

    fn revoke(&self, kid: &str) -> Result<()> {
        check_revocable(&self.describe(), &self.read_all()?, kid)?;
        let path = self.dir.join(format!("{kid}.json"));
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    fn load_or_create_secrets(&self, names: &[&str]) -> Result<Vec<Vec<u8>>> {
        names
            .iter()
            .map(|name| {
                if let Some(secret) = self.read_secret(name)? {
                    return Ok(secret);
                }
                let secret = new_secret()?;
                self.write_secret(name, &secret)?;
                Ok(secret)
            })
            .collect()
    }

    fn secrets(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut secrets = BTreeMap::new();
        for name in self.file_names()? {
            if let Some(name) = name.strip_suffix(SECRET_SUFFIX) {
                let secret = self
                    .read_secret(name)?
                    .context("a secret file vanished while it was read")?;
                secrets.insert(name.to_owned(), secret);
            }
        }
        Ok(secrets)
    }

    fn import(&self, bundle: &KeyBundle) -> Result<Imported> {
        if let Some(outcome) = check_import(
            &self.describe(),
            &self.read_all()?,
            &self.secrets()?,
            bundle,
        )? {
            return Ok(outcome);
        }
        let keys = bundle.signing_keys()?;
        let secrets = bundle.secrets()?;
        for key in &keys {
            self.write(key)?;
        }
        for (name, value) in &secrets {
            self.write_secret(name, value)?;
        }
        Ok(Imported::Written {
            keys: keys.len(),
            secrets: secrets.len(),
        })
    }
}

/// A secret's file is its name and this.
const SECRET_SUFFIX: &str = ".secret";

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

    /// A named secret's bytes, `None` when it has no file yet.
    fn read_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let file_name = format!("{name}{SECRET_SUFFIX}");
        let path = self.dir.join(&file_name);
        if !path.exists() {
            return Ok(None);
        }
        check_private(&path)?;
        let text = self.read_private(&file_name)?;
        match std::str::from_utf8(&text)
            .ok()
            .and_then(|t| unhex(t.trim()))
        {
            Some(bytes) if bytes.len() == 32 => Ok(Some(bytes)),
            _ => bail!("{} is not a 32-byte hex secret", path.display()),
        }
    }

    fn write_secret(&self, name: &str, value: &[u8]) -> Result<()> {
        self.write_private(&format!("{name}{SECRET_SUFFIX}"), hex(value).as_bytes())
    }

    /// The names of the files in the folder (none when it does not exist).
    fn file_names(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut names = Vec::new();
        for entry in entries {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn write_new(&self, key: SigningKey) -> Result<SigningKey> {
        self.write(&key)?;
        Ok(key)
    }

    fn read_all(&self) -> Result<Vec<SigningKey>> {
        let mut keys = Vec::new();
        for name in self.file_names()? {
            if name.ends_with(".json") {
                keys.push(self.read_key(&self.dir.join(name))?);
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
    check_private_mode(path, fs::metadata(path)?.permissions().mode())
}

/// The rule of [`check_private`] for a file whose `mode` the caller read
/// itself (e.g. from the handle it then reads the file through).
pub fn check_private_mode(path: &Path, mode: u32) -> Result<()> {
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
    fn alternate_signers() {
        let dir = std::env::temp_dir().join(format!("auth-keys-{}", uuid::Uuid::new_v4().simple()));
        super::super::check_alternate_signers(&KeyDir::new(&dir));
        let _ = fs::remove_dir_all(dir);
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

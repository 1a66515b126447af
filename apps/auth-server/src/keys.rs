//! Signing keys on disk: one JSON document per key in `keys_dir`, written with
//! 0600 permissions (the folder 0700). The newest key that is not retired
//! signs; retired keys keep verifying until every token they signed has
//! expired, then they are no longer loaded.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use auth_core::{KeyDocument, KeySet, SigningAlgorithm, SigningKey};

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
}

/// A key as listed by `keys list`.
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl KeyDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
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
        let path = self.dir.join(format!("{name}.secret"));
        if path.exists() {
            check_private(&path)?;
            let hex =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
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
            .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        self.write_private(&format!("{name}.secret"), hex.as_bytes())?;
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
                keys.push(read_key(&path)?);
            }
        }
        Ok(keys)
    }

    fn write(&self, key: &SigningKey) -> Result<()> {
        let json = serde_json::to_vec_pretty(&key.to_document())?;
        self.write_private(&format!("{}.json", key.kid()), &json)
    }

    /// Writes a 0600 file atomically (temp file + rename) so a crash never
    /// leaves half a key.
    fn write_private(&self, name: &str, contents: &[u8]) -> Result<()> {
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

fn read_key(path: &Path) -> Result<SigningKey> {
    check_private(path)?;
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: KeyDocument = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a key document", path.display()))?;
    SigningKey::from_document(&doc)
        .with_context(|| format!("{} holds an unusable key", path.display()))
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
}

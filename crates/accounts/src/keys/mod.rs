//! Signing keys and the server's named secrets (code HMACs, rate-limit keys,
//! CSRF, token sealing), kept in one of two stores:
//!
//! - [`KeyDir`]: a folder of 0600 files (the zero-configuration default),
//!   optionally sealed with the key-encryption key;
//! - [`DbKeys`]: the database, every value sealed with the key-encryption
//!   key, so instances that share nothing but PostgreSQL share their keys.
//!
//! The newest key that is not retired signs; alternate keys (one per other
//! algorithm, made when a client first needs one:
//! [`KeyStore::ensure_signer`]) sign only what asks for their algorithm,
//! RS256 ID tokens for relying parties that accept nothing else, and are
//! renewed by every rotation. Retired keys keep verifying until every token
//! they signed has expired, then they are no longer loaded. A running server re-reads its store ([`KeyStore::load`]) so a
//! rotation made anywhere applies without a restart (see
//! [`crate::background`]; on PostgreSQL a notice makes that immediate).
//! [`KeyBundle`] moves keys and secrets between stores (`keys export` /
//! `keys import`).

mod database;
mod files;

use std::collections::BTreeMap;
use std::sync::Arc;

use auth_core::{KeyDocument, KeySet, SigningAlgorithm, SigningKey};
use serde::{Deserialize, Serialize};

pub use self::database::DbKeys;
pub use self::files::{KeyDir, check_private_mode};
pub use crate::secrets::SealingKey;
use crate::secrets::{hex, unhex};

/// What went wrong with a key store; the message names the place and what
/// to do (it is for operators, never for clients).
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

impl From<storage::StorageError> for KeyStoreError {
    fn from(e: storage::StorageError) -> Self {
        KeyStoreError(format!("key store in the database: {e}"))
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
    ($($arg:tt)*) => { return Err($crate::keys::KeyStoreError(format!($($arg)*))) };
}
use bail;

/// Where a running server's keys come from: the store, and how long a
/// retired key keeps verifying.
#[derive(Clone)]
pub struct KeySource {
    pub store: Arc<dyn KeyStore>,
    /// The longest lifetime of anything a key signed, plus leeway.
    pub verify_window_secs: i64,
}

impl KeySource {
    /// The key set as stored now ([`KeyStore::load`]).
    pub fn load(&self, now: i64) -> Result<KeySet> {
        self.store.load(now, self.verify_window_secs)
    }
}

/// A key as listed by `keys list`.
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// Signs only what asks for its algorithm (ID tokens).
    pub alternate: bool,
}

/// What [`KeyStore::import`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// The keys and secrets were written.
    Written { keys: usize, secrets: usize },
    /// The store already held exactly these keys and secrets.
    AlreadyThere,
}

/// Where the server keeps its signing keys and secrets. The primitives are
/// each store's; the rules built on them (which key signs, what is listed,
/// what an import may overwrite) are written once, here.
pub trait KeyStore: Send + Sync {
    /// Where the keys are, for operators' messages.
    fn describe(&self) -> String;

    /// Every stored key, retired ones included.
    fn keys(&self) -> Result<Vec<SigningKey>>;

    /// Every stored key, after generating one with `alg` when none is
    /// unretired. Atomic in the database: instances starting together on
    /// an empty database agree on one key.
    fn keys_with_active(&self, alg: SigningAlgorithm, now: i64) -> Result<Vec<SigningKey>>;

    /// Generates an alternate key of `alg` when no unretired key of `alg`
    /// exists; true when it did. Atomic in the database (instances agree on
    /// one key).
    fn ensure_signer(&self, alg: SigningAlgorithm, now: i64) -> Result<bool>;

    /// Generates a key of `alg` that signs from now on, a new alternate for
    /// each alternate there is ([`renewed_alternates`]), and retires every
    /// other key; answers the new `alg` key's kid.
    fn rotate(&self, alg: SigningAlgorithm, now: i64) -> Result<String>;

    /// Deletes a retired key, so it verifies nothing any more (a key that
    /// leaked: its tokens are refused from the next reload on, instead of
    /// at the end of its verify window). The key that signs can't be
    /// revoked: rotate first.
    fn revoke(&self, kid: &str) -> Result<()>;

    /// Named 32-byte secrets, in the order of `names`. The folder makes a
    /// missing one on first use. The database makes them all together, in
    /// one locked step (so every instance gets the same ones), and only
    /// into a store that holds no key and none of them: a secret missing
    /// beside keys or other secrets is a store damaged or tampered with,
    /// and a new one would silently void what the old one protected
    /// (TOTP enrolments, codes, sessions), so that is an error.
    fn load_or_create_secrets(&self, names: &[&str]) -> Result<Vec<Vec<u8>>>;

    /// One of [`load_or_create_secrets`](Self::load_or_create_secrets).
    fn load_or_create_secret(&self, name: &str) -> Result<Vec<u8>> {
        self.load_or_create_secrets(&[name])?
            .pop()
            .context("the key store answered no secret")
    }

    /// Every stored secret, by name.
    fn secrets(&self) -> Result<BTreeMap<String, Vec<u8>>>;

    /// Writes `bundle` into the store if it holds no keys and no secrets
    /// (checked and written as one step); otherwise see [`check_import`].
    fn import(&self, bundle: &KeyBundle) -> Result<Imported>;

    /// The key set as stored now, creating nothing: what a running server
    /// re-reads to pick up a rotation without a restart.
    fn load(&self, now: i64, verify_window_secs: i64) -> Result<KeySet> {
        let keys = self.keys()?;
        if !has_active(&keys) {
            bail!("{} has no unretired signing key", self.describe());
        }
        assemble(keys, now, verify_window_secs)
    }

    /// Loads the key set, generating the first key when the store has none.
    /// `verify_window_secs` is how long a retired key must keep verifying
    /// (the longest lifetime of anything it signed, plus leeway).
    fn load_or_create(
        &self,
        alg: SigningAlgorithm,
        now: i64,
        verify_window_secs: i64,
    ) -> Result<KeySet> {
        assemble(self.keys_with_active(alg, now)?, now, verify_window_secs)
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut keys: Vec<KeyInfo> = self
            .keys()?
            .into_iter()
            .map(|k| KeyInfo {
                kid: k.kid().to_owned(),
                alg: k.algorithm(),
                created_at: k.created_at(),
                retired_at: k.retired_at(),
                alternate: k.is_alternate(),
            })
            .collect();
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    /// Everything the store holds, to move it elsewhere.
    fn export(&self) -> Result<KeyBundle> {
        Ok(KeyBundle {
            format: BUNDLE_FORMAT.to_owned(),
            keys: self.keys()?.iter().map(SigningKey::to_document).collect(),
            secrets: self
                .secrets()?
                .into_iter()
                .map(|(name, value)| (name, hex(&value)))
                .collect(),
        })
    }
}

/// Whether `bundle` may go into a store holding `keys` and `secrets`: into
/// an empty store (`None`: write it), or already there. A store with other
/// keys or secrets is refused: merging two key sets would silently change
/// which key signs and which code or CSRF key is in force.
fn check_import(
    describe: &str,
    keys: &[SigningKey],
    secrets: &BTreeMap<String, Vec<u8>>,
    bundle: &KeyBundle,
) -> Result<Option<Imported>> {
    if keys.is_empty() && secrets.is_empty() {
        return Ok(None);
    }
    let mut held: Vec<&str> = keys.iter().map(SigningKey::kid).collect();
    let mut given: Vec<&str> = bundle.keys.iter().map(|k| k.kid.as_str()).collect();
    held.sort_unstable();
    given.sort_unstable();
    let same_secrets = bundle.secrets()? == *secrets;
    if held == given && same_secrets {
        return Ok(Some(Imported::AlreadyThere));
    }
    bail!(
        "{describe} already holds other keys or secrets; import only into an empty store \
         (a merge would change which key signs and invalidate codes and sessions)"
    )
}

/// The key set from the stored keys: retired keys only while tokens they
/// signed may live (`verify_window_secs`); the newest unretired key that is
/// not an alternate signs by default, the newest unretired alternate of
/// each other algorithm signs what asks for it.
fn assemble(mut keys: Vec<SigningKey>, now: i64, verify_window_secs: i64) -> Result<KeySet> {
    keys.retain(|k| {
        k.retired_at()
            .is_none_or(|retired| retired + verify_window_secs > now)
    });
    // Ties (keys made in the same second by instances racing) are broken
    // by kid, so every instance picks the same signer.
    keys.sort_by(|a, b| {
        let rank = |k: &SigningKey| (k.retired_at().is_none(), !k.is_alternate(), k.created_at());
        rank(a).cmp(&rank(b)).then_with(|| a.kid().cmp(b.kid()))
    });
    let active = keys.pop().context("no unretired signing key")?;
    let mut alternates: Vec<SigningKey> = Vec::new();
    let mut others: Vec<SigningKey> = Vec::new();
    // Newest first.
    for key in keys.into_iter().rev() {
        let signs = key.retired_at().is_none()
            && key.is_alternate()
            && key.algorithm() != active.algorithm()
            && !alternates.iter().any(|a| a.algorithm() == key.algorithm());
        if signs {
            alternates.push(key);
        } else {
            others.push(key);
        }
    }
    Ok(KeySet::with_alternates(active, alternates, others)?)
}

/// Whether `kid` may be revoked among `keys`: known, and retired.
fn check_revocable(describe: &str, keys: &[SigningKey], kid: &str) -> Result<()> {
    match keys.iter().find(|k| k.kid() == kid) {
        None => bail!("{describe} holds no key {kid:?}"),
        Some(key) if key.retired_at().is_none() => {
            bail!("{kid} signs new tokens: run `auth-server keys rotate` first, then revoke it")
        }
        Some(_) => Ok(()),
    }
}

/// A name that is safe as a file name in the key folder.
fn is_plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh signing key created `now`; its id is the creation time and a
/// random part.
fn new_key(alg: SigningAlgorithm, now: i64) -> Result<SigningKey> {
    let kid = format!("k{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    Ok(SigningKey::generate(alg, kid)?.with_created_at(now))
}

/// A fresh alternate signing key ([`SigningKey::with_alternate`]).
fn new_alternate(alg: SigningAlgorithm, now: i64) -> Result<SigningKey> {
    Ok(new_key(alg, now)?.with_alternate(true))
}

/// Whether one of `keys` may sign by default (is neither retired nor an
/// alternate).
fn has_active(keys: &[SigningKey]) -> bool {
    keys.iter()
        .any(|k| k.retired_at().is_none() && !k.is_alternate())
}

/// The algorithms a rotation to `alg` makes new alternates for: those of
/// the unretired alternates, and the old default key's when the default
/// algorithm changes (clients may have asked for it: their ID and logout
/// tokens must stay verifiable), but never `alg` itself (the new default
/// key signs it) nor HS256 (a shared secret signs nothing for others).
fn renewed_alternates(keys: &[SigningKey], alg: SigningAlgorithm) -> Vec<SigningAlgorithm> {
    let unretired = || keys.iter().filter(|k| k.retired_at().is_none());
    let old_default = unretired()
        .filter(|k| !k.is_alternate())
        .max_by_key(|k| (k.created_at(), k.kid().to_owned()));
    let mut algorithms: Vec<SigningAlgorithm> = Vec::new();
    for key in unretired().filter(|k| k.is_alternate()).chain(old_default) {
        let algorithm = key.algorithm();
        if algorithm != alg
            && algorithm != SigningAlgorithm::HS256
            && !algorithms.contains(&algorithm)
        {
            algorithms.push(algorithm);
        }
    }
    algorithms
}

/// Whether one of `keys` may sign with `alg` (is unretired).
fn has_signer(keys: &[SigningKey], alg: SigningAlgorithm) -> bool {
    keys.iter()
        .any(|k| k.retired_at().is_none() && k.algorithm() == alg)
}

/// A fresh 32-byte secret.
fn new_secret() -> Result<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| KeyStoreError("the system random source failed".to_owned()))?;
    Ok(secret)
}

fn open(key: &SealingKey, label: &str, sealed: &str) -> Result<Vec<u8>> {
    key.open(label, sealed).ok_or_else(|| {
        KeyStoreError(format!(
            "{label} cannot be decrypted: AUTH_KEY_ENCRYPTION_KEY is not the key it was sealed with"
        ))
    })
}

/// Marks sealed contents (a key file, an exported bundle).
const SEALED_PREFIX: &str = "sealed:v1:";

const BUNDLE_FORMAT: &str = "auth-server-keys/1";
/// The label an exported bundle is sealed under.
const BUNDLE_LABEL: &str = "key-bundle";

/// Every key and secret of a store, as `keys export` writes it and
/// `keys import` reads it. Never printed: it holds private keys.
#[derive(Serialize, Deserialize)]
pub struct KeyBundle {
    format: String,
    keys: Vec<KeyDocument>,
    /// name → hex
    secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for KeyBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBundle")
            .field("keys", &self.keys.len())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyBundle {
    /// The file's text: sealed with `sealing` when given, plain JSON
    /// otherwise (then the file is as secret as the keys themselves).
    pub fn to_text(&self, sealing: Option<&SealingKey>) -> Result<String> {
        let json = serde_json::to_string_pretty(self)?;
        Ok(match sealing {
            Some(key) => format!(
                "{SEALED_PREFIX}{}\n",
                key.seal(BUNDLE_LABEL, json.as_bytes())
            ),
            None => json + "\n",
        })
    }

    /// Reads what [`to_text`](Self::to_text) wrote, checking every key and
    /// secret before anything is stored.
    pub fn parse(text: &str, sealing: Option<&SealingKey>) -> Result<KeyBundle> {
        let json = match (text.trim().strip_prefix(SEALED_PREFIX), sealing) {
            (Some(sealed), Some(key)) => key.open(BUNDLE_LABEL, sealed).context(
                "the key bundle cannot be decrypted: AUTH_KEY_ENCRYPTION_KEY is not the key it was sealed with",
            )?,
            (Some(_), None) => {
                bail!("the key bundle is encrypted; set AUTH_KEY_ENCRYPTION_KEY to the key it was sealed with")
            }
            (None, _) => text.as_bytes().to_vec(),
        };
        let bundle: KeyBundle =
            serde_json::from_slice(&json).context("the file is not a key bundle")?;
        if bundle.format != BUNDLE_FORMAT {
            bail!(
                "the key bundle's format is {:?}, expected {BUNDLE_FORMAT:?}",
                bundle.format
            );
        }
        // Names become file names in a key folder: nothing that could
        // leave it.
        for name in bundle
            .keys
            .iter()
            .map(|k| &k.kid)
            .chain(bundle.secrets.keys())
        {
            if !is_plain_name(name) {
                bail!("the key bundle names {name:?}: names are 1–64 of A–Z, a–z, 0–9, - and _");
            }
        }
        let mut kids: Vec<&str> = bundle.keys.iter().map(|k| k.kid.as_str()).collect();
        kids.sort_unstable();
        if let Some(pair) = kids.windows(2).find(|pair| pair[0] == pair[1]) {
            bail!("the key bundle holds the key {} twice", pair[0]);
        }
        for doc in &bundle.keys {
            SigningKey::from_document(doc)
                .with_context(|| format!("the bundle's key {} is unusable", doc.kid))?;
        }
        if !bundle.keys.iter().any(|k| k.retired_at.is_none()) {
            bail!("the key bundle has no unretired signing key");
        }
        bundle.secrets()?;
        Ok(bundle)
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        self.keys
            .iter()
            .map(|doc| Ok(SigningKey::from_document(doc)?))
            .collect()
    }

    fn secrets(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        self.secrets
            .iter()
            .map(|(name, value)| match unhex(value) {
                Some(bytes) if bytes.len() == 32 => Ok((name.clone(), bytes)),
                _ => bail!("the bundle's secret {name} is not 32 bytes of hex"),
            })
            .collect()
    }
}

/// What every store must do with alternate signers; run by each store's
/// tests.
#[cfg(test)]
pub(crate) fn check_alternate_signers(store: &dyn KeyStore) {
    use SigningAlgorithm::{ES256, EdDSA, RS256};
    let first = store.load_or_create(EdDSA, 1000, 1830).unwrap();
    assert_eq!(first.signing_algorithms(), [EdDSA]);
    assert!(store.ensure_signer(RS256, 1100).unwrap());
    assert!(!store.ensure_signer(RS256, 1101).unwrap(), "made once");
    assert!(!store.ensure_signer(EdDSA, 1101).unwrap());
    let both = store.load(1200, 1830).unwrap();
    // The newer RSA key does not take over: the configured algorithm signs
    // by default.
    assert_eq!(both.active_kid(), first.active_kid());
    assert_eq!(both.signing_algorithms(), [EdDSA, RS256]);
    let old_rsa = both.kids()[1].to_owned();

    // A rotation renews the alternate with the default key; the old ones
    // verify until their window ends.
    let new_kid = store.rotate(EdDSA, 2000).unwrap();
    let rotated = store.load(2001, 1830).unwrap();
    assert_eq!(rotated.active_kid(), new_kid);
    assert_eq!(rotated.signing_algorithms(), [EdDSA, RS256]);
    let signers = &rotated.kids()[..2];
    assert!(!signers.contains(&old_rsa.as_str()), "{signers:?}");
    assert!(rotated.kids().contains(&old_rsa.as_str()));
    assert!(rotated.kids().contains(&first.active_kid()));
    let later = store.load(3831, 1830).unwrap();
    assert_eq!(later.kids().len(), 2, "{:?}", later.kids());

    // A rotation to another algorithm replaces the default key with one of
    // it; the old default's algorithm goes on as an alternate (clients may
    // have asked for it), renewed too.
    let sorted = |keys: &KeySet| {
        let mut algorithms = keys.signing_algorithms();
        algorithms[1..].sort_by_key(|a| a.as_str());
        algorithms
    };
    store.rotate(ES256, 4000).unwrap();
    let switched = store.load(4001, 1830).unwrap();
    assert_eq!(sorted(&switched), [ES256, EdDSA, RS256]);
    // An HS256 default is never kept as an alternate: it signs nothing for
    // anyone else.
    store.rotate(SigningAlgorithm::HS256, 5000).unwrap();
    store.rotate(ES256, 6000).unwrap();
    let back = store.load(6001, 1830).unwrap();
    assert_eq!(sorted(&back), [ES256, EdDSA, RS256]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealing(byte: u8) -> SealingKey {
        SealingKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_bundle_moves_keys_and_secrets_and_refuses_to_merge() {
        let dir = std::env::temp_dir().join(format!("auth-keys-{}", uuid::Uuid::new_v4().simple()));
        let from = KeyDir::new(dir.join("from"));
        let set = from
            .load_or_create(SigningAlgorithm::EdDSA, 1000, 1830)
            .unwrap();
        let secret = from.load_or_create_secret("code-hmac").unwrap();
        from.rotate(SigningAlgorithm::EdDSA, 1500).unwrap();

        let text = from.export().unwrap().to_text(Some(&sealing(3))).unwrap();
        assert!(text.starts_with(SEALED_PREFIX) && !text.contains("private_key"));
        assert!(KeyBundle::parse(&text, None).is_err());
        assert!(KeyBundle::parse(&text, Some(&sealing(4))).is_err());
        let bundle = KeyBundle::parse(&text, Some(&sealing(3))).unwrap();
        assert_eq!(bundle.key_count(), 2);
        assert!(!format!("{bundle:?}").contains("private"));

        let into = KeyDir::sealed(dir.join("into"), Some(sealing(5)));
        assert_eq!(
            into.import(&bundle).unwrap(),
            Imported::Written {
                keys: 2,
                secrets: 1
            }
        );
        assert_eq!(into.import(&bundle).unwrap(), Imported::AlreadyThere);
        assert_eq!(into.load_or_create_secret("code-hmac").unwrap(), secret);
        let loaded = into.load(1600, 1830).unwrap();
        assert_eq!(loaded.kids(), from.load(1600, 1830).unwrap().kids());
        assert!(loaded.kids().contains(&set.active_kid()));

        let other = KeyDir::new(dir.join("other"));
        other
            .load_or_create(SigningAlgorithm::EdDSA, 1000, 1830)
            .unwrap();
        let error = other.import(&bundle).unwrap_err().to_string();
        assert!(error.contains("empty store"), "{error}");

        let mut escaping: serde_json::Value =
            serde_json::from_str(&from.export().unwrap().to_text(None).unwrap()).unwrap();
        escaping["secrets"]["../../escape"] = escaping["secrets"]["code-hmac"].clone();
        let error = KeyBundle::parse(&escaping.to_string(), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("names are"), "{error}");

        for bad in ["", "{}", "not json", "sealed:v1:AAAA"] {
            assert!(KeyBundle::parse(bad, Some(&sealing(3))).is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

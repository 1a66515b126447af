//! Keys and secrets in the database (`key_store = database`), for
//! instances that share nothing but it. Every value is sealed with the
//! key-encryption key under a label naming the row, so a value copied onto
//! another row does not open. First creation and rotation run under one
//! lock, so instances starting together on an empty database agree on one
//! key and one of each secret.

use std::collections::BTreeMap;

use auth_core::{KeyDocument, SigningAlgorithm, SigningKey};
use diesel::Connection;
use storage::models::{ServerSecretRow, SigningKeyRow};
use storage::repo::{self, server_keys};
use storage::{AnyConnection, DbConn, DbPool};

use super::{
    Context, Imported, KeyBundle, KeyStore, KeyStoreError, Result, SealingKey, check_import,
    check_revocable, has_active, has_signer, new_alternate, new_key, new_secret, open,
    renewed_alternates,
};

/// The lock every change of keys or secrets takes (an advisory lock on
/// PostgreSQL, the write lock on SQLite).
const LOCK: &str = "server-keys";

impl From<diesel::result::Error> for KeyStoreError {
    fn from(e: diesel::result::Error) -> Self {
        storage::StorageError::from(e).into()
    }
}

/// The database as a key store.
pub struct DbKeys {
    pool: DbPool,
    sealing: SealingKey,
}

impl DbKeys {
    /// Keys in the database behind `pool`, sealed with `sealing` (the
    /// key-encryption key: without it the database holds nothing usable).
    pub fn new(pool: DbPool, sealing: SealingKey) -> DbKeys {
        DbKeys { pool, sealing }
    }

    fn conn(&self) -> Result<DbConn> {
        self.pool
            .get()
            .map_err(|e| KeyStoreError(format!("cannot reach the database for the keys: {e}")))
    }

    /// Runs `f` in a transaction holding the key lock.
    fn locked<T>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<T>) -> Result<T> {
        self.conn()?.transaction(|c| {
            repo::lock_key(c, LOCK)?;
            f(c)
        })
    }

    fn open_key(&self, row: &SigningKeyRow) -> Result<SigningKey> {
        let json = open(&self.sealing, &key_label(&row.kid), &row.document)?;
        let doc: KeyDocument = serde_json::from_slice(&json)
            .with_context(|| format!("the stored key {} is not a key document", row.kid))?;
        if doc.kid != row.kid {
            return Err(KeyStoreError(format!(
                "the stored key {} holds the document of {}",
                row.kid, doc.kid
            )));
        }
        // Rotation seals the retirement into the document too. The clear
        // column can only retire a key earlier, never bring one back: a
        // database write can't make a retired (perhaps leaked) key sign.
        let retired_at = match (doc.retired_at, row.retired_at) {
            (Some(sealed), Some(column)) => Some(sealed.min(column)),
            (sealed, column) => sealed.or(column),
        };
        Ok(SigningKey::from_document(&doc)
            .with_context(|| format!("the stored key {} is unusable", row.kid))?
            .with_retired_at(retired_at))
    }

    fn seal_key(&self, key: &SigningKey) -> Result<SigningKeyRow> {
        let doc = key.to_document();
        let json = serde_json::to_vec(&doc)?;
        Ok(SigningKeyRow {
            document: self.sealing.seal(&key_label(&doc.kid), &json),
            kid: doc.kid,
            created_at: doc.created_at,
            retired_at: doc.retired_at,
        })
    }

    fn open_secret(&self, row: &ServerSecretRow) -> Result<Vec<u8>> {
        let value = open(&self.sealing, &secret_label(&row.name), &row.sealed_value)?;
        if value.len() != 32 {
            return Err(KeyStoreError(format!(
                "the stored secret {} is not 32 bytes",
                row.name
            )));
        }
        Ok(value)
    }

    fn seal_secret(&self, name: &str, value: &[u8], now: i64) -> ServerSecretRow {
        ServerSecretRow {
            name: name.to_owned(),
            sealed_value: self.sealing.seal(&secret_label(name), value),
            created_at: now,
        }
    }

    /// Every stored key. When some open and others don't, the message
    /// names those rows as damaged (the key-encryption key is right, or
    /// none would open); when none opens, it blames the key.
    fn read_keys(&self, conn: &mut AnyConnection) -> Result<Vec<SigningKey>> {
        let rows = server_keys::all_keys(conn)?;
        let mut keys = Vec::with_capacity(rows.len());
        let mut damaged = Vec::new();
        let mut first_error = None;
        for row in &rows {
            match self.open_key(row) {
                Ok(key) => keys.push(key),
                Err(e) => {
                    damaged.push(row.kid.as_str());
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(keys),
            Some(e) if keys.is_empty() => Err(e),
            Some(_) => Err(KeyStoreError(format!(
                "the stored key(s) {damaged:?} do not open, though the others do: the rows are \
                 damaged or were tampered with; delete them or restore a backup"
            ))),
        }
    }

    fn read_secrets(&self, conn: &mut AnyConnection) -> Result<BTreeMap<String, Vec<u8>>> {
        server_keys::all_secrets(conn)?
            .iter()
            .map(|row| Ok((row.name.clone(), self.open_secret(row)?)))
            .collect()
    }

    fn insert_new_key(&self, conn: &mut AnyConnection, key: SigningKey) -> Result<SigningKey> {
        server_keys::insert_key(conn, &self.seal_key(&key)?)?;
        Ok(key)
    }
}

fn key_label(kid: &str) -> String {
    format!("signing-key:{kid}")
}

fn secret_label(name: &str) -> String {
    format!("server-secret:{name}")
}

impl KeyStore for DbKeys {
    fn describe(&self) -> String {
        "the database".to_owned()
    }

    fn keys(&self) -> Result<Vec<SigningKey>> {
        self.read_keys(&mut *self.conn()?)
    }

    fn keys_with_active(&self, alg: SigningAlgorithm, now: i64) -> Result<Vec<SigningKey>> {
        // Most starts find a key: read without the lock first.
        let keys = self.keys()?;
        if has_active(&keys) {
            return Ok(keys);
        }
        self.locked(|c| {
            let mut keys = self.read_keys(c)?;
            if !has_active(&keys) {
                let key = self.insert_new_key(c, new_key(alg, now)?)?;
                tracing::info!(kid = key.kid(), alg = %alg, "generated a signing key in the database");
                keys.push(key);
            }
            Ok(keys)
        })
    }

    fn ensure_signer(&self, alg: SigningAlgorithm, now: i64) -> Result<bool> {
        if has_signer(&self.keys()?, alg) {
            return Ok(false);
        }
        self.locked(|c| {
            if has_signer(&self.read_keys(c)?, alg) {
                return Ok(false);
            }
            let key = self.insert_new_key(c, new_alternate(alg, now)?)?;
            tracing::info!(kid = key.kid(), alg = %alg, "generated an alternate signing key in the database");
            Ok(true)
        })
    }

    fn rotate(&self, alg: SigningAlgorithm, now: i64) -> Result<String> {
        self.locked(|c| {
            let current = self.read_keys(c)?;
            for old in &current {
                if old.retired_at().is_none() {
                    server_keys::retire(
                        c,
                        &self.seal_key(&old.clone().with_retired_at(Some(now)))?,
                    )?;
                }
            }
            let key = self.insert_new_key(c, new_key(alg, now)?)?;
            for other in renewed_alternates(&current, alg) {
                self.insert_new_key(c, new_alternate(other, now)?)?;
            }
            Ok(key.kid().to_owned())
        })
    }

    fn revoke(&self, kid: &str) -> Result<()> {
        self.locked(|c| {
            check_revocable(&self.describe(), &self.read_keys(c)?, kid)?;
            server_keys::delete_key(c, kid)?;
            Ok(())
        })
    }

    fn load_or_create_secrets(&self, names: &[&str]) -> Result<Vec<Vec<u8>>> {
        let found = |secrets: &BTreeMap<String, Vec<u8>>| -> Option<Vec<Vec<u8>>> {
            names
                .iter()
                .map(|name| secrets.get(*name).cloned())
                .collect()
        };
        if let Some(values) = found(&self.secrets()?) {
            return Ok(values);
        }
        self.locked(|c| {
            let secrets = self.read_secrets(c)?;
            if let Some(values) = found(&secrets) {
                return Ok(values);
            }
            if !secrets.is_empty() || !server_keys::all_keys(c)?.is_empty() {
                let missing: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|name| !secrets.contains_key(*name))
                    .collect();
                return Err(KeyStoreError(format!(
                    "the database holds keys but not the server secret(s) {missing:?}: restore them \
                     (a backup, or `auth-server keys import`); a new one would void the TOTP \
                     enrolments, codes and sessions the old one protected"
                )));
            }
            let now = chrono::Utc::now().timestamp();
            names
                .iter()
                .map(|name| {
                    let value = new_secret()?;
                    server_keys::insert_secret(c, &self.seal_secret(name, &value, now))?;
                    Ok(value)
                })
                .collect()
        })
    }

    fn secrets(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        self.read_secrets(&mut *self.conn()?)
    }

    fn import(&self, bundle: &KeyBundle) -> Result<Imported> {
        self.locked(|c| {
            let (keys, secrets) = (self.read_keys(c)?, self.read_secrets(c)?);
            if let Some(outcome) = check_import(&self.describe(), &keys, &secrets, bundle)? {
                return Ok(outcome);
            }
            let keys = bundle.signing_keys()?;
            let secrets = bundle.secrets()?;
            for key in &keys {
                server_keys::insert_key(c, &self.seal_key(key)?)?;
            }
            let now = chrono::Utc::now().timestamp();
            for (name, value) in &secrets {
                server_keys::insert_secret(c, &self.seal_secret(name, value, now))?;
            }
            Ok(Imported::Written {
                keys: keys.len(),
                secrets: secrets.len(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl;
    use storage::Backend;
    use storage::test_support::MigratedDatabase;

    use super::*;

    fn store(db: &MigratedDatabase, byte: u8) -> DbKeys {
        DbKeys::new(
            db.pool.clone(),
            SealingKey::from_bytes(&[byte; 32]).unwrap(),
        )
    }

    fn keys_and_secrets_are_sealed_shared_and_rotated(backend: Backend) {
        let db = &MigratedDatabase::create(backend, 2);
        let a = store(db, 1);
        let b = store(db, 1);
        // Secrets first, as the server asks: all at once, before any key.
        let secret = a.load_or_create_secrets(&["code-hmac"]).unwrap().remove(0);
        assert_eq!(b.load_or_create_secret("code-hmac").unwrap(), secret);
        let first = a
            .load_or_create(SigningAlgorithm::EdDSA, 1000, 1830)
            .unwrap();
        assert_eq!(
            b.load_or_create(SigningAlgorithm::EdDSA, 1001, 1830)
                .unwrap()
                .active_kid(),
            first.active_kid(),
            "a second instance uses the stored key"
        );
        // A secret gone from beside the keys is not made again.
        let error = a
            .load_or_create_secret("csrf-hmac")
            .unwrap_err()
            .to_string();
        assert!(error.contains("csrf-hmac"), "{error}");

        let rows = server_keys::all_keys(&mut a.conn().unwrap()).unwrap();
        assert!(rows.iter().all(|r| !r.document.contains("private_key")));
        let hex_secret = crate::secrets::hex(&secret);
        let secret_rows = server_keys::all_secrets(&mut a.conn().unwrap()).unwrap();
        assert!(
            secret_rows
                .iter()
                .all(|r| !r.sealed_value.contains(&hex_secret))
        );

        let new_kid = b.rotate(SigningAlgorithm::EdDSA, 2000).unwrap();
        let after = a.load(2001, 1830).unwrap();
        assert_eq!(after.active_kid(), new_kid);
        assert!(after.kids().contains(&first.active_kid()));
        assert!(
            !a.load(3831, 1830)
                .unwrap()
                .kids()
                .contains(&first.active_kid())
        );

        // Only a retired key can be revoked; then it verifies nothing.
        assert!(
            a.revoke(&new_kid)
                .unwrap_err()
                .to_string()
                .contains("signs new tokens")
        );
        assert!(a.revoke("k-unknown").is_err());
        let spare = a.rotate(SigningAlgorithm::EdDSA, 2000).unwrap();
        a.revoke(&new_kid).unwrap();
        assert!(
            !a.load(2001, 1830)
                .unwrap()
                .kids()
                .contains(&new_kid.as_str())
        );
        let new_kid = spare;

        // The retirement is sealed: clearing the clear column changes nothing.
        diesel::sql_query("UPDATE signing_keys SET retired_at = NULL")
            .execute(&mut *a.conn().unwrap())
            .unwrap();
        assert_eq!(a.load(2001, 1830).unwrap().active_kid(), new_kid);
        assert!(
            !a.load(3831, 1830)
                .unwrap()
                .kids()
                .contains(&first.active_kid())
        );

        // A row that doesn't open beside ones that do is named as damaged.
        diesel::sql_query(
            "INSERT INTO signing_keys (kid, document, created_at, retired_at) \
             VALUES ('k-forged', 'sealed garbage', 9999999999, NULL)",
        )
        .execute(&mut *a.conn().unwrap())
        .unwrap();
        let error = a.load(2001, 1830).unwrap_err().to_string();
        assert!(
            error.contains("k-forged") && error.contains("damaged"),
            "{error}"
        );
        diesel::sql_query("DELETE FROM signing_keys WHERE kid = 'k-forged'")
            .execute(&mut *a.conn().unwrap())
            .unwrap();

        // Another key-encryption key opens nothing, and says what to set.
        let error = store(db, 2).load(2001, 1830).unwrap_err().to_string();
        assert!(error.contains("AUTH_KEY_ENCRYPTION_KEY"), "{error}");

        // An export imports into an empty folder, and not back over keys.
        let bundle = a.export().unwrap();
        let dir = db.db.dir.join("imported");
        assert!(matches!(
            super::super::KeyDir::new(&dir).import(&bundle).unwrap(),
            Imported::Written {
                keys: 2,
                secrets: 1
            }
        ));
        assert_eq!(a.import(&bundle).unwrap(), Imported::AlreadyThere);
    }

    #[test]
    fn sqlite_alternate_signers() {
        let db = MigratedDatabase::create(Backend::Sqlite, 2);
        super::super::check_alternate_signers(&store(&db, 1));
    }

    #[test]
    fn postgres_alternate_signers() {
        let db = MigratedDatabase::create(Backend::Postgres, 2);
        super::super::check_alternate_signers(&store(&db, 1));
    }

    #[test]
    fn sqlite_keys_and_secrets_are_sealed_shared_and_rotated() {
        keys_and_secrets_are_sealed_shared_and_rotated(Backend::Sqlite);
    }

    #[test]
    fn postgres_keys_and_secrets_are_sealed_shared_and_rotated() {
        keys_and_secrets_are_sealed_shared_and_rotated(Backend::Postgres);
    }
}

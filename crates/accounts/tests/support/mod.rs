//! `Accounts` over a real, freshly migrated database (a SQLite file or a
//! PostgreSQL database of its own), with cheap Argon2 settings and every
//! rate limit off unless a test sets it.

#![allow(dead_code)]

use std::sync::Arc;

use accounts::{
    Accounts, AccountsConfig, ClientInfo, CodeKey, HashCost, NewAccount, PasswordHasher,
    SealingKey, SessionPolicy, ThrottleRates, UserStatus,
};
use auth_core::{KeySet, SigningAlgorithm, SigningKey, TokenPolicy};
use secrecy::SecretString;
use storage::Backend;
use storage::test_support::MigratedDatabase;

/// Runs each listed test as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(storage::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(storage::Backend::Postgres) })*
        }
    };
}

pub const PASSWORD: &str = "correct horse battery staple";
pub const SEALING_KEY: [u8; 32] = [42; 32];

pub struct World {
    pub accounts: Arc<Accounts>,
    pub db: MigratedDatabase,
    keys: KeySet,
    rates: ThrottleRates,
}

pub fn off() -> ThrottleRates {
    ThrottleRates {
        login_failures_per_account: accounts::Rate::OFF,
        login_failures_per_ip: accounts::Rate::OFF,
        code_attempts_per_ip: accounts::Rate::OFF,
        mail_per_address: accounts::Rate::OFF,
        mail_per_ip: accounts::Rate::OFF,
        mfa_attempts_per_account: accounts::Rate::OFF,
        passkey_ceremonies_per_ip: accounts::Rate::OFF,
    }
}

impl World {
    pub fn new(backend: Backend) -> World {
        World::with_rates(backend, off())
    }

    pub fn with_rates(backend: Backend, rates: ThrottleRates) -> World {
        let db = MigratedDatabase::create(backend, 4);
        let keys = KeySet::new(
            SigningKey::generate(SigningAlgorithm::EdDSA, "test-key".to_owned()).unwrap(),
            Vec::new(),
        )
        .unwrap();
        let accounts = instance(&db, &keys, rates);
        World {
            accounts,
            db,
            keys,
            rates,
        }
    }

    /// `claims` signed with this world's key as a token of type `typ` (to
    /// make tokens the operations never issue, such as expired ones).
    pub fn sign<C: serde::Serialize>(&self, typ: &str, claims: &C) -> String {
        self.keys.sign(typ, claims).unwrap()
    }

    /// Another instance on the same database (its own memory, same keys).
    pub fn second_instance(&self) -> Arc<Accounts> {
        instance(&self.db, &self.keys, self.rates)
    }

    pub fn user(&self, email: &str, username: Option<&str>) -> String {
        self.user_with_roles(email, username, Vec::new())
    }

    pub fn user_with_roles(
        &self,
        email: &str,
        username: Option<&str>,
        roles: Vec<String>,
    ) -> String {
        self.accounts
            .create_user(NewAccount {
                email: accounts::EmailAddress::parse(email).unwrap(),
                username: username.map(|u| accounts::Username::parse(u).unwrap()),
                name: None,
                password: Some(accounts::Password::parse(PASSWORD.into()).unwrap()),
                status: UserStatus::Active,
                roles,
                organization_id: None,
                locale: None,
            })
            .unwrap()
    }

    /// The newest mail to `to`, text body.
    pub fn last_mail_to(&self, to: &str) -> String {
        let mut conn = self.db.pool.get().unwrap();
        storage::repo::outbox::list(&mut conn, 100)
            .unwrap()
            .into_iter()
            .find(|m| m.recipient == to)
            .unwrap_or_else(|| panic!("no mail to {to}"))
            .text_body
    }

    /// The six-digit code in the newest mail to `to`.
    pub fn code_mailed_to(&self, to: &str) -> String {
        let body = self.last_mail_to(to);
        body.split(|c: char| !c.is_ascii_digit())
            .find(|word| word.len() == 6)
            .unwrap_or_else(|| panic!("no code in {body}"))
            .to_owned()
    }
}

fn instance(db: &MigratedDatabase, keys: &KeySet, rates: ThrottleRates) -> Arc<Accounts> {
    let hasher = PasswordHasher::new(
        HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        2,
        64,
    )
    .unwrap();
    Arc::new(Accounts::new(
        db.pool.clone(),
        Arc::new(hasher),
        keys.clone(),
        AccountsConfig {
            tokens: TokenPolicy::default(),
            sessions: SessionPolicy::default(),
            code_key: CodeKey::new(&[7; 32]),
            sealing_key: SealingKey::from_bytes(&SEALING_KEY).unwrap(),
            public_url: "http://auth.test".to_owned(),
            reveal_email_taken: false,
            on_mail_queued: Arc::new(|| {}),
            catalog: accounts::PermissionCatalog::default(),
            api_token_max_days: 365,
            operator_emails: Vec::new(),
            password_max_age_days: None,
            throttle_key: vec![9; 32],
            throttle_rates: rates,
            on_throttled: Arc::new(|_| {}),
            mfa: accounts::MfaPolicy::default(),
        },
    ))
}

pub fn origin(ip: &str) -> ClientInfo {
    ClientInfo {
        user_agent: Some("rules-test".to_owned()),
        ip: Some(ip.to_owned()),
    }
}

pub fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

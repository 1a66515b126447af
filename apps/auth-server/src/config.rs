//! Configuration: built-in defaults, then an optional TOML file, then
//! `AUTH_*` environment variables. Each setting has one name: `bind` in the
//! file is `AUTH_BIND` in the environment. Bad values stop the start with one
//! line that names the setting, where it came from, and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use auth_core::SigningAlgorithm;
use storage::DatabaseUrl;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, typed.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub db_pool_size: u32,
    pub db_pool_timeout_ms: u64,
    pub migrate_on_start: bool,
    pub keys_dir: PathBuf,
    /// Where the signing keys and server secrets live.
    pub key_store: KeyStoreKind,
    /// `key_store` was left to `auto` (so a choice of the folder may be a
    /// forgotten key-encryption key: see [`Settings::key_store`]).
    pub key_store_auto: bool,
    /// Seals the key files, and every key and secret in the database.
    pub key_encryption_key: Option<accounts::SealingKey>,
    /// How often the key store is re-read (seconds).
    pub key_reload_secs: u64,
    pub signing_algorithm: SigningAlgorithm,
    pub issuer: String,
    /// Neither `issuer` nor `public_url` was set: the issuer is this
    /// instance's bind address, which other instances don't share.
    pub issuer_from_bind: bool,
    pub audience: String,
    pub access_ttl_secs: i64,
    pub leeway_secs: i64,
    pub refresh_idle_ttl_secs: i64,
    pub session_ttl_secs: i64,
    pub refresh_reuse_grace_secs: i64,
    pub revocation_poll_ms: u64,
    /// After SIGTERM, how long `/readyz` says 503 while requests are still
    /// served, before the server stops accepting.
    pub drain_delay_ms: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashes that may run at once: the hashing threads, each keeping one
    /// 19 MiB buffer.
    pub argon2_max_concurrent: usize,
    /// Hashes that may wait for a hashing thread; beyond that, 503.
    pub argon2_queue_limit: usize,
    /// Verified bearer tokens remembered (0 = verify every request).
    pub token_cache_size: usize,
    pub workers: usize,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Base URL of the web pages that mails link to.
    pub public_url: String,
    pub reveal_email_taken: bool,
    pub mail: MailSettings,
    pub permissions: accounts::PermissionCatalog,
    pub operator_emails: Vec<accounts::EmailAddress>,
    /// Region for phone numbers written without a country code (ISO 3166).
    pub phone_region: String,
    pub api_token_max_days: i64,
    pub mounts: auth_http::Mounts,
    pub compat_time_zone: chrono::FixedOffset,
    pub password_max_age_days: Option<i64>,
    /// Origins whose browsers may call the API (CORS); empty = CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// Rates of the limits shared through the database.
    pub throttle: accounts::ThrottleRates,
    /// Peers whose forwarding headers are believed about the client's IP.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Which header of a trusted proxy names the client.
    pub forwarded_header: auth_http::ForwardedHeader,
    pub metrics_token: Option<secrecy::SecretString>,
    /// Second factors: required roles, step-up age, authenticator issuer.
    pub mfa: accounts::MfaPolicy,
    /// Profiles whose logins skip second factors (a documented risk).
    pub compat_password_only: Vec<String>,
}

/// Where mail goes.
#[derive(Clone, Debug)]
pub struct MailSettings {
    pub from: String,
    pub transport: mailer::TransportConfig,
    pub outbox_poll_ms: u64,
    pub max_attempts: i64,
}

/// Where the signing keys and server secrets live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStoreKind {
    /// `keys_dir`.
    Files,
    /// The database, sealed with the key-encryption key.
    Database,
}

impl Settings {
    /// The key folder, sealed when `key_encryption_key` is set.
    pub fn key_dir(&self) -> accounts::keys::KeyDir {
        accounts::keys::KeyDir::sealed(self.keys_dir.clone(), self.key_encryption_key.clone())
    }

    /// The configured key store; `pool` reaches the (migrated) database
    /// when the keys are kept there. Every path that opens the database
    /// store comes here first, so the folder is adopted before anything —
    /// a `keys rotate` run first included — writes a key of its own.
    pub fn key_store(
        &self,
        pool: &storage::DbPool,
    ) -> anyhow::Result<Arc<dyn accounts::keys::KeyStore>> {
        match (self.key_store, &self.key_encryption_key) {
            (KeyStoreKind::Files, _) => {
                // `auto` picked the folder for want of a key-encryption key:
                // if the database already holds sealed keys, the key was
                // forgotten, and this instance would sign with keys of its
                // own that no other instance accepts.
                if self.key_store_auto
                    && self.database_url.backend() == storage::Backend::Postgres
                    && !storage::repo::server_keys::all_keys(&mut *pool.get()?)?.is_empty()
                {
                    anyhow::bail!(
                        "the database holds the signing keys, sealed: set AUTH_KEY_ENCRYPTION_KEY \
                         (or AUTH_KEY_ENCRYPTION_KEY_FILE) to the key they were sealed with \
                         (AUTH_KEY_STORE=files to use a key folder anyway)"
                    );
                }
                Ok(Arc::new(self.key_dir()))
            }
            (KeyStoreKind::Database, Some(kek)) => {
                let store = accounts::keys::DbKeys::new(pool.clone(), kek.clone());
                self.adopt_key_folder(&store)?;
                Ok(Arc::new(store))
            }
            (KeyStoreKind::Database, None) => {
                anyhow::bail!("key_store = database needs key_encryption_key")
            }
        }
    }

    /// Keys moving into the database: while it holds no keys, it adopts
    /// the key folder's keys and secrets, if there are any, so tokens,
    /// pending codes and sessions issued before stay valid. (Instances
    /// adopting at once: the import is one locked step, and a second,
    /// different folder is refused.)
    fn adopt_key_folder(&self, store: &dyn accounts::keys::KeyStore) -> anyhow::Result<()> {
        use accounts::keys::KeyStore;
        use anyhow::Context;
        let folder = self.key_dir();
        if !store.keys()?.is_empty() || folder.keys()?.is_empty() {
            return Ok(());
        }
        let imported = store
            .import(&folder.export()?)
            .context("cannot move the key folder's keys into the database")?;
        tracing::info!(?imported, dir = %self.keys_dir.display(), "adopted the key folder's keys and secrets into the database");
        Ok(())
    }

    /// How long a retired signing key must keep verifying: the longest
    /// lifetime of anything it signed (access or API token) plus leeway.
    pub fn key_verify_window_secs(&self) -> i64 {
        self.access_ttl_secs.max(self.api_token_max_days * 86_400) + self.leeway_secs
    }
}

/// One setting: its name, default, and what it means (for `--help` and the README).
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// The catalogue; `AUTH_` + upper-case name is the environment variable.
pub const KEYS: &[Key] = &[
    Key {
        name: "bind",
        default: "127.0.0.1:8080",
        help: "address and port to listen on",
    },
    Key {
        name: "database_url",
        default: "./var/auth.db",
        help: "postgres://… for PostgreSQL; a path or sqlite://path for SQLite",
    },
    Key {
        name: "db_pool_size",
        default: "8",
        help: "database connections kept open",
    },
    Key {
        name: "db_pool_timeout_ms",
        default: "2000",
        help: "how long a request waits for a database connection before answering 503",
    },
    Key {
        name: "migrate_on_start",
        default: "true",
        help: "apply pending migrations when serve starts",
    },
    Key {
        name: "keys_dir",
        default: "./var/keys",
        help: "signing keys, one 0600 JSON file each",
    },
    Key {
        name: "key_store",
        default: "auto",
        help: "where signing keys and server secrets live: files (keys_dir), database (sealed with key_encryption_key), or auto: database on PostgreSQL when key_encryption_key is set, files otherwise",
    },
    Key {
        name: "key_encryption_key",
        default: "",
        help: "32 bytes, base64: encrypts keys and secrets at rest (AES-256-GCM); give it in the environment",
    },
    Key {
        name: "key_encryption_key_file",
        default: "",
        help: "a file (0600) holding key_encryption_key, instead of the environment",
    },
    Key {
        name: "key_reload",
        default: "10",
        help: "how often the key store is re-read so a rotation takes effect without restart (at once on PostgreSQL with keys in the database), seconds",
    },
    Key {
        name: "signing_alg",
        default: "EdDSA",
        help: "algorithm for newly generated keys: EdDSA, ES256, RS256 (2048-bit; slower to sign) or HS256",
    },
    Key {
        name: "issuer",
        default: "<public_url>",
        help: "the iss claim; every instance on one database must use the same",
    },
    Key {
        name: "audience",
        default: "auth-server",
        help: "the aud claim",
    },
    Key {
        name: "access_ttl",
        default: "1800",
        help: "access-token lifetime, seconds (never past the end of its session)",
    },
    Key {
        name: "leeway",
        default: "30",
        help: "clock skew tolerated on exp/nbf, seconds",
    },
    Key {
        name: "refresh_idle_ttl",
        default: "14400",
        help: "a refresh token unused this long expires, seconds",
    },
    Key {
        name: "session_ttl",
        default: "2592000",
        help: "absolute session lifetime, seconds",
    },
    Key {
        name: "refresh_reuse_grace",
        default: "10",
        help: "a spent refresh token re-sent within this window is a duplicate, not theft, seconds",
    },
    Key {
        name: "revocation_poll_ms",
        default: "500",
        help: "how often revocations from other instances are read",
    },
    Key {
        name: "drain_delay_ms",
        default: "5000",
        help: "after SIGTERM, how long /readyz answers 503 while requests are still served",
    },
    Key {
        name: "argon2_memory_kib",
        default: "19456",
        help: "Argon2id memory cost",
    },
    Key {
        name: "argon2_iterations",
        default: "2",
        help: "Argon2id time cost",
    },
    Key {
        name: "argon2_parallelism",
        default: "1",
        help: "Argon2id lanes",
    },
    Key {
        name: "argon2_max_concurrent",
        default: "<cores>",
        help: "password hashes running at once (hashing threads, 19 MiB of memory each)",
    },
    Key {
        name: "argon2_queue_limit",
        default: "<16 × argon2_max_concurrent>",
        help: "password hashes that may wait for a hashing thread; more answer 503 with Retry-After",
    },
    Key {
        name: "token_cache_size",
        default: "10000",
        help: "verified bearer tokens remembered (about 1 KiB each) so repeated checks skip the signature; 0 = off",
    },
    Key {
        name: "workers",
        default: "<cores>",
        help: "HTTP worker threads",
    },
    Key {
        name: "tls_cert",
        default: "",
        help: "PEM certificate chain; serves HTTPS when set with tls_key",
    },
    Key {
        name: "tls_key",
        default: "",
        help: "PEM private key",
    },
    Key {
        name: "log_format",
        default: "text",
        help: "text or json (RUST_LOG sets the level)",
    },
    Key {
        name: "public_url",
        default: "http://<bind>",
        help: "base URL of the web pages that mails link to",
    },
    Key {
        name: "reveal_email_taken",
        default: "false",
        help: "answer 409 email_taken to signups with a registered address",
    },
    Key {
        name: "mail_from",
        default: "Auth Server <no-reply@localhost>",
        help: "sender of every mail",
    },
    Key {
        name: "mail_transport",
        default: "file",
        help: "file (one .eml per mail in mail_dir) or smtp",
    },
    Key {
        name: "mail_dir",
        default: "./var/mail",
        help: "folder of the file transport",
    },
    Key {
        name: "smtp_host",
        default: "",
        help: "SMTP relay host (mail_transport = smtp)",
    },
    Key {
        name: "smtp_port",
        default: "587",
        help: "SMTP port",
    },
    Key {
        name: "smtp_security",
        default: "starttls",
        help: "starttls, tls (implicit, port 465) or none",
    },
    Key {
        name: "smtp_username",
        default: "",
        help: "SMTP login, when the relay needs one",
    },
    Key {
        name: "smtp_password",
        default: "",
        help: "SMTP password",
    },
    Key {
        name: "outbox_poll_ms",
        default: "1000",
        help: "how often the mail outbox is checked for due mail",
    },
    Key {
        name: "permissions",
        default: "sms:send,sms:read,fame:read,fame:write",
        help: "the permission catalog: comma-separated category:action names",
    },
    Key {
        name: "operator_emails",
        default: "",
        help: "comma-separated addresses told about new registrations",
    },
    Key {
        name: "phone_region",
        default: "KR",
        help: "region of phone numbers written without +country code",
    },
    Key {
        name: "api_token_max_days",
        default: "365",
        help: "longest lifetime of a personal API token, days",
    },
    Key {
        name: "mounts",
        default: "",
        help: "name=prefix overrides: native=/, company-portal=/compat/company-portal, …; name=off disables",
    },
    Key {
        name: "password_max_age_days",
        default: "0",
        help: "passwords older than this must be changed (reported at login); 0 = never",
    },
    Key {
        name: "cors_allowed_origins",
        default: "",
        help: "comma-separated origins allowed to call from browsers (CORS off when empty)",
    },
    Key {
        name: "compat_time_zone",
        default: "+00:00",
        help: "UTC offset of the naive times some seed contracts print (e.g. +09:00)",
    },
    Key {
        name: "throttle_login_account",
        default: "5/15m",
        help: "failed logins per login name, shared by all instances (events/period: s, m, h, d; or off)",
    },
    Key {
        name: "throttle_login_ip",
        default: "50/15m",
        help: "failed logins per client IP",
    },
    Key {
        name: "throttle_code_ip",
        default: "30/15m",
        help: "email-code and reset-code attempts per client IP",
    },
    Key {
        name: "throttle_mail_address",
        default: "5/1h",
        help: "mail-sending requests (signup, codes, reset, registration, activation) per address",
    },
    Key {
        name: "throttle_mail_ip",
        default: "30/1h",
        help: "mail-sending requests per client IP",
    },
    Key {
        name: "throttle_mfa_account",
        default: "10/15m",
        help: "second-factor codes (TOTP, recovery codes) tried per account",
    },
    Key {
        name: "throttle_passkey_ip",
        default: "60/15m",
        help: "passkey sign-ins begun (options asked for) per client IP",
    },
    Key {
        name: "mfa_required_roles",
        default: "admin",
        help: "comma-separated roles that must enrol a second factor before anything else (empty = nobody)",
    },
    Key {
        name: "step_up_max_age",
        default: "600",
        help: "seconds since the last authentication within which sensitive operations need no step-up",
    },
    Key {
        name: "compat_password_only",
        default: "",
        help: "comma-separated profiles (e.g. campus) whose logins let users with a second factor in with the password alone; a risk: those logins are only as strong as the password",
    },
    Key {
        name: "metrics_token",
        default: "",
        help: "when set, GET /metrics needs Authorization: Bearer <this token>",
    },
    Key {
        name: "trusted_proxies",
        default: "",
        help: "comma-separated proxy IPs or CIDRs whose forwarding header names the client",
    },
    Key {
        name: "forwarded_header",
        default: "x-forwarded-for",
        help: "the one header trusted proxies name the client in: x-forwarded-for or forwarded (the other is ignored: clients can send it through)",
    },
    Key {
        name: "mail_max_attempts",
        default: "8",
        help: "delivery attempts before a mail is marked dead",
    },
];

/// A rejected setting.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `AUTH_BIND`, `bind (in FILE)`, or the file itself.
    pub setting: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Where a raw value came from, for error messages.
#[derive(Clone, Debug)]
enum Origin {
    Default,
    File(PathBuf),
    Env,
}

struct Raw {
    value: String,
    origin: Origin,
}

fn env_name(key: &str) -> String {
    format!("AUTH_{}", key.to_ascii_uppercase())
}

impl Settings {
    /// Defaults → file (if any) → environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut raw: BTreeMap<&'static str, Raw> = KEYS
            .iter()
            .map(|k| {
                let raw = Raw {
                    value: k.default.to_owned(),
                    origin: Origin::Default,
                };
                (k.name, raw)
            })
            .collect();
        if let Some(path) = file {
            for (key, value) in read_file(path)? {
                let origin = Origin::File(path.to_owned());
                raw.insert(key, Raw { value, origin });
            }
        }
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for key in KEYS {
            if let Some(value) = env.get(&env_name(key.name)) {
                raw.insert(
                    key.name,
                    Raw {
                        value: value.clone(),
                        origin: Origin::Env,
                    },
                );
            }
        }
        Reader { raw }.settings()
    }
}

fn read_file(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let file_error = |problem: String| ConfigError {
        setting: format!("config file {}", path.display()),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.message().to_owned()))?;
    let mut values = Vec::new();
    for (name, value) in table {
        let key = KEYS
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| ConfigError {
                setting: format!("{name} (in {})", path.display()),
                problem: "unknown setting".to_owned(),
            })?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError {
                    setting: format!("{name} (in {})", path.display()),
                    problem: format!(
                        "expected a string, integer or boolean, found {}",
                        other.type_str()
                    ),
                });
            }
        };
        values.push((key.name, value));
    }
    Ok(values)
}

struct Reader {
    raw: BTreeMap<&'static str, Raw>,
}

impl Reader {
    /// The key-encryption key, from the setting or from the file it names
    /// (which, like a key file, must not be readable by others).
    fn key_encryption_key(&self) -> Result<Option<accounts::SealingKey>, ConfigError> {
        let (key, text) = match (
            self.str("key_encryption_key"),
            self.str("key_encryption_key_file"),
        ) {
            ("", "") => return Ok(None),
            (text, "") => ("key_encryption_key", text.to_owned()),
            ("", path) => {
                // One open file for both the check and the read, so the
                // file checked is the file read.
                use std::io::Read;
                use std::os::unix::fs::PermissionsExt;
                let unreadable = |e: std::io::Error| {
                    self.error(
                        "key_encryption_key_file",
                        format!("cannot read {path}: {e}"),
                    )
                };
                let mut file = std::fs::File::open(path).map_err(unreadable)?;
                let mode = file.metadata().map_err(unreadable)?.permissions().mode();
                accounts::keys::check_private_mode(Path::new(path), mode)
                    .map_err(|e| self.error("key_encryption_key_file", e.to_string()))?;
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(unreadable)?;
                ("key_encryption_key_file", text)
            }
            _ => {
                return Err(self.error(
                    "key_encryption_key_file",
                    "set key_encryption_key or key_encryption_key_file, not both",
                ));
            }
        };
        accounts::SealingKey::parse(&text).map(Some).ok_or_else(|| {
            self.error(
                key,
                "must be 32 bytes in base64 (e.g. from: openssl rand -base64 32)",
            )
        })
    }

    fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        let setting = match &self.raw[key].origin {
            Origin::Env => env_name(key),
            Origin::File(path) => format!("{key} (in {})", path.display()),
            Origin::Default => format!("{key} (default)"),
        };
        ConfigError {
            setting,
            problem: problem.into(),
        }
    }

    fn str(&self, key: &str) -> &str {
        self.raw[key].value.trim()
    }

    fn parse<T: FromStr>(&self, key: &str, expected: &str) -> Result<T, ConfigError> {
        self.str(key)
            .parse()
            .map_err(|_| self.error(key, format!("'{}' is not {expected}", self.str(key))))
    }

    fn seconds(&self, key: &str, min: i64) -> Result<i64, ConfigError> {
        let value: i64 = self.parse(key, "a whole number of seconds")?;
        if value < min {
            return Err(self.error(key, format!("must be at least {min} seconds")));
        }
        Ok(value)
    }

    fn millis(&self, key: &str, min: u64) -> Result<u64, ConfigError> {
        let value: u64 = self.parse(key, "a whole number of milliseconds")?;
        if value < min {
            return Err(self.error(key, format!("must be at least {min} ms")));
        }
        Ok(value)
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.str(key).to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(self.error(key, format!("'{other}' is not true or false"))),
        }
    }

    fn count_or_cores(&self, key: &str) -> Result<usize, ConfigError> {
        if self.str(key) == "<cores>" {
            return Ok(std::thread::available_parallelism().map_or(2, |n| n.get()));
        }
        let n: usize = self.parse(key, "a positive whole number")?;
        if n == 0 {
            return Err(self.error(key, "must be at least 1"));
        }
        Ok(n)
    }

    fn optional_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.str(key))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    fn mail(&self) -> Result<MailSettings, ConfigError> {
        let transport = match self.str("mail_transport").to_ascii_lowercase().as_str() {
            "file" => mailer::TransportConfig::File {
                dir: PathBuf::from(self.str("mail_dir")),
            },
            "smtp" => {
                let host = self.str("smtp_host");
                if host.is_empty() {
                    return Err(self.error("smtp_host", "is required when mail_transport is smtp"));
                }
                let security: mailer::SmtpSecurity =
                    self.parse("smtp_security", "one of starttls, tls, none")?;
                let username = Some(self.str("smtp_username"))
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned);
                let password = Some(self.raw["smtp_password"].value.clone())
                    .filter(|p| !p.is_empty())
                    .map(secrecy::SecretString::from);
                if username.is_some() != password.is_some() {
                    return Err(self.error(
                        "smtp_password",
                        "smtp_username and smtp_password must be set together",
                    ));
                }
                mailer::TransportConfig::Smtp {
                    host: host.to_owned(),
                    port: self.parse("smtp_port", "a port number")?,
                    security,
                    username,
                    password,
                    timeout: std::time::Duration::from_secs(10),
                }
            }
            other => {
                return Err(self.error("mail_transport", format!("'{other}' is not file or smtp")));
            }
        };
        let max_attempts: i64 = self.parse("mail_max_attempts", "a positive whole number")?;
        if max_attempts < 1 {
            return Err(self.error("mail_max_attempts", "must be at least 1"));
        }
        Ok(MailSettings {
            from: self.str("mail_from").to_owned(),
            transport,
            outbox_poll_ms: self.parse("outbox_poll_ms", "a number of milliseconds")?,
            max_attempts,
        })
    }

    fn settings(&self) -> Result<Settings, ConfigError> {
        let bind: SocketAddr = self.parse("bind", "a socket address like 127.0.0.1:8080")?;
        let database_url = DatabaseUrl::parse(self.str("database_url")).map_err(|_| {
            self.error(
                "database_url",
                "expected postgres://…, sqlite://PATH or a file path (in-memory SQLite is not supported)",
            )
        })?;
        let signing_algorithm: SigningAlgorithm =
            self.parse("signing_alg", "one of EdDSA, ES256, RS256, HS256")?;
        let audience = self.str("audience").to_owned();
        if audience.is_empty() {
            return Err(self.error("audience", "must not be empty"));
        }
        let log_format = match self.str("log_format").to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(self.error("log_format", format!("'{other}' is not text or json"))),
        };
        let (tls_cert, tls_key) = (
            self.optional_path("tls_cert"),
            self.optional_path("tls_key"),
        );
        if tls_cert.is_some() != tls_key.is_some() {
            let missing = if tls_cert.is_none() {
                "tls_cert"
            } else {
                "tls_key"
            };
            return Err(self.error(missing, "tls_cert and tls_key must be set together"));
        }
        let db_pool_size: u32 = self.parse("db_pool_size", "a positive whole number")?;
        if db_pool_size == 0 {
            return Err(self.error("db_pool_size", "must be at least 1"));
        }
        let revocation_poll_ms: u64 =
            self.parse("revocation_poll_ms", "a number of milliseconds")?;
        if !(50..=2000).contains(&revocation_poll_ms) {
            return Err(self.error(
                "revocation_poll_ms",
                "must be between 50 and 2000 (revocations must reach every instance within 2 s)",
            ));
        }
        let public_url = match self.str("public_url") {
            "http://<bind>" => format!("http://{bind}"),
            url if url.starts_with("http://") || url.starts_with("https://") => {
                url.trim_end_matches('/').to_owned()
            }
            _ => return Err(self.error("public_url", "must start with http:// or https://")),
        };
        let issuer = match self.str("issuer") {
            "<public_url>" => public_url.clone(),
            "" => return Err(self.error("issuer", "must not be empty")),
            other => other.to_owned(),
        };
        let issuer_from_bind =
            self.str("issuer") == "<public_url>" && self.str("public_url") == "http://<bind>";
        let mail = self.mail()?;
        let permissions = accounts::PermissionCatalog::parse(
            self.str("permissions")
                .split(',')
                .filter(|p| !p.trim().is_empty()),
        )
        .map_err(|problem| self.error("permissions", problem))?;
        let operator_emails = self
            .str("operator_emails")
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                accounts::EmailAddress::parse(e).map_err(|_| {
                    self.error(
                        "operator_emails",
                        format!("'{}' is not an email address", e.trim()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let phone_region = self.str("phone_region").to_ascii_uppercase();
        // A region libphonenumber knows (without loading its metadata, which
        // would add ≈ 80 ms to every start; the server warms it up later).
        if !accounts::PhoneNumber::is_known_region(&phone_region) || phone_region.len() != 2 {
            return Err(self.error(
                "phone_region",
                "must be a two-letter region code like KR or US",
            ));
        }
        let api_token_max_days: i64 = self.parse("api_token_max_days", "a whole number of days")?;
        if !(1..=3650).contains(&api_token_max_days) {
            return Err(self.error("api_token_max_days", "must be between 1 and 3650"));
        }
        let mounts = auth_http::Mounts::parse(self.str("mounts"))
            .map_err(|problem| self.error("mounts", problem))?;
        let compat_time_zone = parse_offset(self.str("compat_time_zone")).ok_or_else(|| {
            self.error(
                "compat_time_zone",
                "must be an offset like +00:00 or +09:00",
            )
        })?;
        let password_max_age_days: i64 =
            self.parse("password_max_age_days", "a whole number of days")?;
        if password_max_age_days < 0 {
            return Err(self.error("password_max_age_days", "must be 0 (never) or more"));
        }
        let cors_allowed_origins = self
            .str("cors_allowed_origins")
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect::<Vec<_>>();
        if let Some(bad) = cors_allowed_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(self.error(
                "cors_allowed_origins",
                format!("'{bad}' is not an origin like https://app.example.com"),
            ));
        }
        let rate = |key: &str| {
            self.str(key)
                .parse::<accounts::Rate>()
                .map_err(|problem| self.error(key, problem))
        };
        let throttle = accounts::ThrottleRates {
            login_failures_per_account: rate("throttle_login_account")?,
            login_failures_per_ip: rate("throttle_login_ip")?,
            code_attempts_per_ip: rate("throttle_code_ip")?,
            mail_per_address: rate("throttle_mail_address")?,
            mail_per_ip: rate("throttle_mail_ip")?,
            mfa_attempts_per_account: rate("throttle_mfa_account")?,
            passkey_ceremonies_per_ip: rate("throttle_passkey_ip")?,
        };
        let known: Vec<&str> = auth_http::Profile::ALL.iter().map(|p| p.name()).collect();
        let compat_password_only = self
            .str("compat_password_only")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                if known.contains(&p) {
                    Ok(p.to_owned())
                } else {
                    Err(self.error(
                        "compat_password_only",
                        format!("'{p}' is not a profile (one of {})", known.join(", ")),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mfa = accounts::MfaPolicy {
            required_roles: self
                .str("mfa_required_roles")
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            step_up_max_age_secs: self.seconds("step_up_max_age", 1)?,
            issuer: public_url
                .split_once("://")
                .map_or(public_url.as_str(), |(_, host)| host)
                .to_owned(),
        };
        let trusted_proxies = self
            .str("trusted_proxies")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        self.error(
                            "trusted_proxies",
                            format!("'{p}' is not an IP address or a CIDR like 10.0.0.0/8"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let forwarded_header = match self
            .str("forwarded_header")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "x-forwarded-for" => auth_http::ForwardedHeader::XForwardedFor,
            "forwarded" => auth_http::ForwardedHeader::Forwarded,
            other => {
                return Err(self.error(
                    "forwarded_header",
                    format!("'{other}' is not x-forwarded-for or forwarded"),
                ));
            }
        };
        let metrics_token = Some(self.str("metrics_token"))
            .filter(|t| !t.is_empty())
            .map(|t| secrecy::SecretString::from(t.to_owned()));
        let key_encryption_key = self.key_encryption_key()?;
        let key_store = match (self.str("key_store"), &key_encryption_key) {
            ("files", _) => KeyStoreKind::Files,
            ("database", Some(_)) => KeyStoreKind::Database,
            ("database", None) => {
                return Err(self.error(
                    "key_store",
                    "database needs key_encryption_key (or key_encryption_key_file): keys are stored sealed with it",
                ));
            }
            ("auto", Some(_)) if database_url.backend() == storage::Backend::Postgres => {
                KeyStoreKind::Database
            }
            ("auto", _) => KeyStoreKind::Files,
            (other, _) => {
                return Err(self.error(
                    "key_store",
                    format!("'{other}' is not files, database or auto"),
                ));
            }
        };
        let argon2_max_concurrent = self.count_or_cores("argon2_max_concurrent")?;
        let argon2_queue_limit = match self.str("argon2_queue_limit") {
            "<16 × argon2_max_concurrent>" => 16 * argon2_max_concurrent,
            _ => self.parse("argon2_queue_limit", "a whole number")?,
        };
        Ok(Settings {
            mfa,
            compat_password_only,
            key_encryption_key,
            key_store,
            key_store_auto: self.str("key_store") == "auto",
            metrics_token,
            throttle,
            trusted_proxies,
            forwarded_header,
            cors_allowed_origins,
            password_max_age_days: Some(password_max_age_days).filter(|d| *d > 0),
            mounts,
            compat_time_zone,
            permissions,
            operator_emails,
            phone_region,
            api_token_max_days,
            public_url,
            reveal_email_taken: self.bool("reveal_email_taken")?,
            mail,
            bind,
            database_url,
            db_pool_size,
            db_pool_timeout_ms: self.millis("db_pool_timeout_ms", 100)?,
            migrate_on_start: self.bool("migrate_on_start")?,
            keys_dir: PathBuf::from(self.str("keys_dir")),
            key_reload_secs: self.seconds("key_reload", 1)? as u64,
            signing_algorithm,
            issuer,
            issuer_from_bind,
            audience,
            access_ttl_secs: self.seconds("access_ttl", 60)?,
            leeway_secs: self.seconds("leeway", 0)?,
            refresh_idle_ttl_secs: self.seconds("refresh_idle_ttl", 60)?,
            session_ttl_secs: self.seconds("session_ttl", 60)?,
            refresh_reuse_grace_secs: self.seconds("refresh_reuse_grace", 0)?,
            revocation_poll_ms,
            drain_delay_ms: self.parse("drain_delay_ms", "a number of milliseconds")?,
            argon2_memory_kib: self.parse("argon2_memory_kib", "a number of KiB")?,
            argon2_iterations: self.parse("argon2_iterations", "a whole number")?,
            argon2_parallelism: self.parse("argon2_parallelism", "a whole number")?,
            argon2_max_concurrent,
            argon2_queue_limit,
            token_cache_size: self.parse("token_cache_size", "a whole number of tokens")?,
            workers: self.count_or_cores("workers")?,
            tls_cert,
            tls_key,
            log_format,
        })
    }
}

/// `+09:00`, `-05:30`, `Z`.
fn parse_offset(value: &str) -> Option<chrono::FixedOffset> {
    if value == "Z" || value.eq_ignore_ascii_case("utc") {
        return chrono::FixedOffset::east_opt(0);
    }
    let (sign, rest) = match value.as_bytes().first()? {
        b'+' => (1, &value[1..]),
        b'-' => (-1, &value[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 14 || minutes > 59 {
        return None;
    }
    chrono::FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_zero_configuration_setup() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("./var/auth.db".into()));
        assert_eq!(s.keys_dir, PathBuf::from("./var/keys"));
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.access_ttl_secs, 1800);
        assert_eq!(s.leeway_secs, 30);
        assert_eq!(s.signing_algorithm, SigningAlgorithm::EdDSA);
        assert!(s.migrate_on_start);
    }

    #[test]
    fn every_algorithm_we_can_generate_is_a_signing_alg() {
        for (name, alg) in [
            ("eddsa", SigningAlgorithm::EdDSA),
            ("ES256", SigningAlgorithm::ES256),
            ("RS256", SigningAlgorithm::RS256),
            ("HS256", SigningAlgorithm::HS256),
        ] {
            let s = Settings::load(None, env(&[("AUTH_SIGNING_ALG", name)])).unwrap();
            assert_eq!(s.signing_algorithm, alg);
        }
        let error = Settings::load(None, env(&[("AUTH_SIGNING_ALG", "PS256")])).unwrap_err();
        assert!(error.to_string().contains("AUTH_SIGNING_ALG"), "{error}");
    }

    #[test]
    fn throttle_rates_and_trusted_proxies_parse_or_name_the_setting() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.throttle, accounts::ThrottleRates::default());
        assert!(s.trusted_proxies.is_empty());
        let s = Settings::load(
            None,
            env(&[
                ("AUTH_THROTTLE_LOGIN_IP", "off"),
                ("AUTH_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7, ::1"),
            ]),
        )
        .unwrap();
        assert_eq!(s.throttle.login_failures_per_ip, accounts::Rate::OFF);
        assert_eq!(s.trusted_proxies.len(), 3);
        for (key, value) in [
            ("AUTH_THROTTLE_MAIL_ADDRESS", "5/15w"),
            ("AUTH_THROTTLE_CODE_IP", "0/1m"),
            ("AUTH_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("AUTH_TRUSTED_PROXIES", "proxy.internal"),
        ] {
            let error = Settings::load(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("auth-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("auth.toml");
        std::fs::write(
            &file,
            "bind = \"0.0.0.0:9000\"\naccess_ttl = 600\nmigrate_on_start = false\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), env(&[("AUTH_ACCESS_TTL", "900")])).unwrap();
        assert_eq!(s.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(s.access_ttl_secs, 900);
        assert!(!s.migrate_on_start);
        let s = Settings::load(None, env(&[("AUTH_DATABASE_URL", "postgres://u@h/db")])).unwrap();
        assert_eq!(
            s.database_url,
            DatabaseUrl::Postgres("postgres://u@h/db".into())
        );

        std::fs::write(&file, "bnid = \"x\"\n").unwrap();
        let e = Settings::load(Some(&file), env(&[])).unwrap_err();
        assert!(e.setting.starts_with("bnid (in "), "{e}");
        assert_eq!(e.problem, "unknown setting");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = Settings::load(None, env(&[("AUTH_BIND", "localhost")])).unwrap_err();
        assert_eq!(e.setting, "AUTH_BIND");
        assert!(
            e.to_string()
                .contains("'localhost' is not a socket address"),
            "{e}"
        );
        let e = Settings::load(None, env(&[("AUTH_ACCESS_TTL", "-5")])).unwrap_err();
        assert_eq!(e.setting, "AUTH_ACCESS_TTL");
        let e = Settings::load(None, env(&[("AUTH_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(e.setting, "AUTH_DATABASE_URL");
        let e = Settings::load(None, env(&[("AUTH_TLS_CERT", "/x.pem")])).unwrap_err();
        assert_eq!(e.setting, "tls_key (default)");
        let e = Settings::load(None, env(&[("AUTH_SIGNING_ALG", "none")])).unwrap_err();
        assert_eq!(e.setting, "AUTH_SIGNING_ALG");
        let e = Settings::load(None, env(&[("AUTH_PHONE_REGION", "ZZ")])).unwrap_err();
        assert_eq!(e.setting, "AUTH_PHONE_REGION");
        let s = Settings::load(None, env(&[("AUTH_PHONE_REGION", "us")])).unwrap();
        assert_eq!(s.phone_region, "US");
    }
}

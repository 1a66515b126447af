//! The command line: `serve` (default), `migrate`, `user add`, `keys list|rotate`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use accounts::keys::KeyStore;
use accounts::{
    Actor, DisplayName, Domain, EmailAddress, NewAccount, Password, UserStatus, UserUpdate,
    Username,
};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::config::{KeyStoreKind, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "auth-server",
    version,
    about = "Authentication server: login, sessions, JWT access tokens"
)]
pub struct Cli {
    /// TOML configuration file (also AUTH_CONFIG). Environment AUTH_* variables override it.
    #[arg(long, global = true, env = "AUTH_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage organizations and their email domains.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Inspect and retry the mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Register other services (clients) that authenticate with HTTP Basic.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Bootstrap operator accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print every configuration setting with its default.
    ConfigHelp,
    /// Exit 0 when the server of this configuration answers `/healthz`
    /// (for a container's HEALTHCHECK, where no curl exists).
    Healthcheck,
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organization whose members sign up with addresses under its domains.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        region: Option<String>,
        /// An allowed email domain; repeat for several.
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// Also accept addresses under subdomains of the domains.
        #[arg(long)]
        include_subdomains: bool,
    },
    /// List organizations with their domains.
    List,
    /// Add or remove an allowed email domain.
    #[command(subcommand)]
    Domain(DomainCommand),
}

#[derive(Subcommand, Debug)]
pub enum DomainCommand {
    Add {
        /// Organization id.
        org: String,
        domain: String,
        #[arg(long)]
        include_subdomains: bool,
    },
    Remove {
        org: String,
        domain: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// The newest mails in the outbox with their delivery state.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a dead (or stuck) mail for delivery again.
    Retry { id: String },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an active user. The password is read from standard input (one
    /// line) or asked for at a terminal; never from the command line.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Give the user the `admin` role.
        #[arg(long)]
        admin: bool,
    },
    /// Grant permissions (takes effect at the user's next login or refresh;
    /// current sessions are revoked).
    Grant {
        #[arg(long)]
        email: String,
        #[arg(required = true)]
        permissions: Vec<String>,
    },
    /// Take permissions away (sessions and API tokens holding them are revoked at once).
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(required = true)]
        permissions: Vec<String>,
    },
    /// Set the user's roles (admin, org_admin, member); none clears them.
    Roles {
        #[arg(long)]
        email: String,
        roles: Vec<String>,
    },
    /// Show a user with roles and permissions.
    Show {
        #[arg(long)]
        email: String,
    },
    /// Second factors: `mfa reset --email E` removes them all (a user who
    /// lost the device); the user's sessions end. Audited.
    Mfa {
        #[command(subcommand)]
        command: MfaCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum MfaCommand {
    /// Remove every second factor of the user and end its sessions.
    Reset {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints client_id and client_secret once. With
    /// `--redirect-uri` it is an OpenID Connect relying party too.
    Add {
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may send the browser (repeat for several).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Where to POST a logout token when a session of this client ends
        /// (OpenID Connect Back-Channel Logout).
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// A browser or native app: no secret, PKCE only.
        #[arg(long, conflicts_with = "confidential")]
        public: bool,
        /// A server-side app with a secret (the default).
        #[arg(long)]
        confidential: bool,
        /// The operator's own product: users are not asked to consent.
        #[arg(long)]
        first_party: bool,
        /// Extra scopes it may ask for: organization, permissions; and for
        /// its own tokens (client credentials) permission names such as
        /// sms:send (comma or space separated).
        #[arg(long, default_value = "")]
        scopes: String,
        /// The algorithm of its ID tokens: RS256 (OpenID Connect's default,
        /// which relying-party libraries accept unless told otherwise),
        /// ES256 or EdDSA (a key for it is made now if none signs with it).
        #[arg(long = "id-token-alg", default_value = "RS256")]
        id_token_alg: auth_core::SigningAlgorithm,
    },
    /// Registered clients (without secrets).
    List,
    /// Revoke a client: its credentials stop working at once.
    Remove { client_id: String },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an operator account (`admin` role). With a password on stdin it
    /// is active; with `--invite` it prints a one-time activation link instead.
    Create {
        #[arg(long)]
        email: String,
        /// Don't read a password: print an activation link (72 h, single use).
        #[arg(long)]
        invite: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain of the audit log; names the first tampered row.
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List signing keys.
    List,
    /// Generate a new signing key; the old ones keep verifying until the
    /// tokens they signed have expired. Running servers pick it up within
    /// `key_reload` (at once on PostgreSQL with the keys in the database).
    Rotate,
    /// Delete a retired signing key at once (one that leaked): tokens it
    /// signed are refused from the next key reload on (at once with the
    /// keys in PostgreSQL), instead of at the end of its verify window.
    /// The signing key can't be revoked: rotate first.
    Revoke {
        /// The key id, as `keys list` shows it.
        kid: String,
    },
    /// Write every signing key and server secret of the configured store to
    /// a new file (0600; sealed with the key-encryption key when one is set),
    /// to move them to another store.
    Export {
        /// The file to create (an existing file is never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Read a file written by `keys export` into the configured store, which
    /// must be empty (or already hold exactly those keys and secrets).
    Import {
        #[arg(long)]
        from: PathBuf,
    },
}

/// The configured key store, its database migrated when the keys may live
/// there.
fn key_store(settings: &Settings) -> Result<Arc<dyn KeyStore>> {
    let pool = single_connection(settings)?;
    if settings.database_url.backend() == storage::Backend::Postgres
        || settings.key_store == KeyStoreKind::Database
    {
        storage::migrations::run_pending(&mut *pool.get()?)?;
    }
    settings.key_store(&pool)
}

/// A one-connection pool for commands that touch only the database.
fn single_connection(settings: &Settings) -> Result<storage::DbPool> {
    let options = storage::PoolOptions {
        max_size: 1,
        ..Default::default()
    };
    storage::connect(&settings.database_url, &options).context("cannot open the database")
}

pub fn migrate(settings: &Settings) -> Result<()> {
    let pool = single_connection(settings)?;
    let mut conn = pool.get()?;
    let applied = storage::migrations::run_pending(&mut conn)?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for version in applied {
            println!("applied {version}");
        }
    }
    Ok(())
}

pub fn user_add(
    settings: &Settings,
    email: &str,
    username: Option<&str>,
    name: Option<&str>,
    admin: bool,
) -> Result<()> {
    let email = EmailAddress::parse(email)?;
    let username = username.map(Username::parse).transpose()?;
    let name = name.map(DisplayName::parse).transpose()?;
    let password = Password::parse(read_password()?)?;
    let services = crate::app::services(settings, true)?;
    let roles = if admin {
        vec!["admin".to_owned()]
    } else {
        Vec::new()
    };
    let id = services.accounts.create_user(NewAccount {
        email: email.clone(),
        username,
        name,
        password: Some(password),
        status: UserStatus::Active,
        roles,
        organization_id: None,
        locale: None,
    })?;
    println!("created user {id} <{email}>");
    Ok(())
}

/// One line from stdin when piped; a hidden prompt (asked twice) at a terminal.
fn read_password() -> Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        return Ok(SecretString::from(first));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (pipe one line, or run at a terminal to be asked)");
    }
    Ok(SecretString::from(password))
}

pub fn keys_list(settings: &Settings) -> Result<()> {
    let store = key_store(settings)?;
    let keys = store.list()?;
    if keys.is_empty() {
        println!(
            "no keys in {} (one is generated at first start)",
            store.describe()
        );
    }
    let now = chrono::Utc::now().timestamp();
    let window = settings.key_verify_window_secs();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<28} {:<6} {:<22} status", "kid", "alg", "created")?;
    for key in keys {
        let status = match key.retired_at {
            None if key.alternate => format!("active (signs {} ID tokens only)", key.alg),
            None => "active (signs)".to_owned(),
            Some(at) if at + window > now => {
                format!("retired, verifies until {}", time(at + window))
            }
            Some(_) => "expired (no longer loaded)".to_owned(),
        };
        writeln!(
            out,
            "{:<28} {:<6} {:<22} {status}",
            key.kid,
            key.alg.to_string(),
            time(key.created_at)
        )?;
    }
    Ok(())
}

pub fn keys_rotate(settings: &Settings) -> Result<()> {
    let kid =
        key_store(settings)?.rotate(settings.signing_algorithm, chrono::Utc::now().timestamp())?;
    audit_key_change(settings, accounts::audit::events::KEY_ROTATED, &kid)?;
    if settings.key_store == KeyStoreKind::Database
        && settings.database_url.backend() == storage::Backend::Postgres
    {
        println!("new signing key {kid}; running servers sign with it as this commits");
    } else {
        println!(
            "new signing key {kid}; running servers sign with it within {} s",
            settings.key_reload_secs
        );
    }
    Ok(())
}

pub fn keys_revoke(settings: &Settings, kid: &str) -> Result<()> {
    key_store(settings)?.revoke(kid)?;
    audit_key_change(settings, accounts::audit::events::KEY_REVOKED, kid)?;
    println!(
        "revoked signing key {kid}: tokens it signed are refused once servers reload their keys"
    );
    Ok(())
}

/// Records a key change made by the operator in the audit log.
fn audit_key_change(settings: &Settings, kind: &'static str, kid: &str) -> Result<()> {
    let services = crate::app::services(settings, true)?;
    let event = accounts::audit::AuditEvent::new(kind).detail("kid", kid);
    services.accounts.audit(event, &Actor::operator().context)?;
    Ok(())
}

pub fn keys_export(settings: &Settings, out: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let store = key_store(settings)?;
    let bundle = store.export()?;
    let text = bundle.to_text(settings.key_encryption_key.as_ref())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    let sealed = if settings.key_encryption_key.is_some() {
        "sealed with the key-encryption key"
    } else {
        "NOT encrypted: keep it as secret as the keys"
    };
    println!(
        "wrote {} keys and the server secrets of {} to {} ({sealed})",
        bundle.key_count(),
        store.describe(),
        out.display()
    );
    Ok(())
}

pub fn keys_import(settings: &Settings, from: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(from).with_context(|| format!("cannot read {}", from.display()))?;
    let bundle = accounts::keys::KeyBundle::parse(&text, settings.key_encryption_key.as_ref())?;
    let store = key_store(settings)?;
    match store.import(&bundle)? {
        accounts::keys::Imported::Written { keys, secrets } => println!(
            "imported {keys} keys and {secrets} secrets into {}",
            store.describe()
        ),
        accounts::keys::Imported::AlreadyThere => {
            println!("{} already holds these keys and secrets", store.describe())
        }
    }
    Ok(())
}

pub fn config_help() {
    println!(
        "{:<24} {:<28} {:<16} meaning",
        "setting (file)", "environment", "default"
    );
    for key in crate::config::KEYS {
        let env = format!("AUTH_{}", key.name.to_ascii_uppercase());
        println!(
            "{:<24} {:<28} {:<16} {}",
            key.name, env, key.default, key.help
        );
    }
}

fn time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub fn org(settings: &Settings, command: OrgCommand) -> Result<()> {
    let services = crate::app::services(settings, true)?;
    let accounts = &services.accounts;
    match command {
        OrgCommand::Add {
            name,
            region,
            domains,
            include_subdomains,
        } => {
            let domains = domains
                .iter()
                .map(|d| Domain::parse(d))
                .collect::<Result<Vec<_>, _>>()?;
            let org = accounts.create_organization(
                &name,
                region.as_deref(),
                &domains,
                include_subdomains,
            )?;
            println!(
                "created organization {} ({}) with domains {}",
                org.id,
                org.name,
                org.email_domains.join(", ")
            );
        }
        OrgCommand::List => {
            let orgs = accounts.list_organizations(false)?;
            println!(
                "{:<36}  {:<24} {:<12} {:<8} domains",
                "id", "name", "region", "active"
            );
            for org in orgs {
                let region = org.region.unwrap_or_default();
                let domains = org.email_domains.join(", ");
                println!(
                    "{:<36}  {:<24} {:<12} {:<8} {domains}",
                    org.id, org.name, region, org.active
                );
            }
        }
        OrgCommand::Domain(DomainCommand::Add {
            org,
            domain,
            include_subdomains,
        }) => {
            accounts.add_organization_domain(&org, &Domain::parse(&domain)?, include_subdomains)?;
            println!("added {domain} to {org}");
        }
        OrgCommand::Domain(DomainCommand::Remove { org, domain }) => {
            if !accounts.remove_organization_domain(&org, &Domain::parse(&domain)?)? {
                bail!("{org} has no domain {domain}");
            }
            println!("removed {domain} from {org}");
        }
    }
    Ok(())
}

pub fn mail(settings: &Settings, command: MailCommand) -> Result<()> {
    let pool = single_connection(settings)?;
    let mut conn = pool.get()?;
    storage::migrations::run_pending(&mut conn)?;
    match command {
        MailCommand::List { limit } => {
            println!(
                "{:<36}  {:<8} {:>8}  {:<20} {:<26} {:<24} last error",
                "id", "status", "attempts", "created", "template", "recipient"
            );
            for mail in storage::repo::outbox::list(&mut conn, limit)? {
                let created = mail.created_at.format("%Y-%m-%d %H:%M:%S").to_string();
                let error = mail.last_error.unwrap_or_default();
                println!(
                    "{:<36}  {:<8} {:>8}  {:<20} {:<26} {:<24} {error}",
                    mail.id, mail.status, mail.attempts, created, mail.template, mail.recipient
                );
            }
        }
        MailCommand::Retry { id } => {
            let now = chrono::Utc::now().naive_utc();
            if !storage::repo::outbox::retry(&mut conn, &id, now)? {
                bail!("no unsent mail with id {id}");
            }
            println!(
                "mail {id} queued again; a running server delivers it within its outbox poll interval"
            );
        }
    }
    Ok(())
}

pub fn user_authority(settings: &Settings, command: UserCommand) -> Result<()> {
    let services = crate::app::services(settings, true)?;
    let accounts = &services.accounts;
    let (email, update) = match command {
        UserCommand::Show { email } => {
            let user = accounts
                .user_by_email(&EmailAddress::parse(&email)?)?
                .context("no such user")?;
            println!(
                "{} <{}> status={} org={}",
                user.id,
                user.email,
                user.status,
                user.organization_id.unwrap_or_default()
            );
            println!("roles: {}", user.roles.join(" "));
            println!("permissions: {}", user.permissions.join(" "));
            return Ok(());
        }
        UserCommand::Grant { email, permissions } => {
            let user = accounts
                .user_by_email(&EmailAddress::parse(&email)?)?
                .context("no such user")?;
            let mut all = user.permissions.clone();
            all.extend(
                permissions
                    .into_iter()
                    .filter(|p| !user.permissions.contains(p)),
            );
            (
                email,
                UserUpdate {
                    permissions: Some(all),
                    ..UserUpdate::default()
                },
            )
        }
        UserCommand::Revoke { email, permissions } => {
            let user = accounts
                .user_by_email(&EmailAddress::parse(&email)?)?
                .context("no such user")?;
            let kept = user
                .permissions
                .into_iter()
                .filter(|p| !permissions.contains(p))
                .collect();
            (
                email,
                UserUpdate {
                    permissions: Some(kept),
                    ..UserUpdate::default()
                },
            )
        }
        UserCommand::Roles { email, roles } => (
            email,
            UserUpdate {
                roles: Some(roles),
                ..UserUpdate::default()
            },
        ),
        UserCommand::Mfa {
            command: MfaCommand::Reset { email },
        } => {
            let context = accounts::AuditContext {
                actor: Some("cli".to_owned()),
                ..accounts::AuditContext::default()
            };
            let revoked = accounts.reset_mfa(&EmailAddress::parse(&email)?, &context)?;
            println!(
                "{email}: second factors removed; {} session(s) ended",
                revoked.len()
            );
            return Ok(());
        }
        UserCommand::Add { .. } => unreachable!("handled by user_add"),
    };
    let user = accounts
        .user_by_email(&EmailAddress::parse(&email)?)?
        .context("no such user")?;
    let (user, revoked) = accounts.update_user(&Actor::operator(), &user.id, update)?;
    println!("{} roles: {}", user.email, user.roles.join(" "));
    println!("{} permissions: {}", user.email, user.permissions.join(" "));
    if !revoked.sessions.is_empty() || !revoked.tokens.is_empty() {
        println!(
            "revoked {} session(s) and {} API token(s)",
            revoked.sessions.len(),
            revoked.tokens.len()
        );
    }
    Ok(())
}

pub fn admin_create(settings: &Settings, email: &str, invite: bool) -> Result<()> {
    let email = EmailAddress::parse(email)?;
    let password = if invite {
        None
    } else {
        Some(Password::parse(read_password()?)?)
    };
    let services = crate::app::services(settings, true)?;
    let created = services.accounts.create_admin(&email, password.as_ref())?;
    match created.activation_link {
        Some(link) => println!(
            "invited admin {} <{email}>; one-time activation link (72 h):\n{link}",
            created.user_id
        ),
        None => println!("created admin {} <{email}>", created.user_id),
    }
    Ok(())
}

pub fn audit_verify(settings: &Settings) -> Result<()> {
    let pool = single_connection(settings)?;
    crate::audit_cli::verify(&pool)
}

pub fn client(settings: &Settings, command: ClientCommand) -> Result<()> {
    let services = crate::app::services(settings, true)?;
    match command {
        ClientCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            public,
            confidential: _,
            first_party,
            scopes,
            id_token_alg,
        } => {
            let created = services.accounts.register_client(accounts::NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                scopes: scopes
                    .split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                public,
                first_party,
                backchannel_logout_uri,
                id_token_alg: Some(id_token_alg),
            })?;
            println!("client_id={}", created.client_id);
            match &created.client_secret {
                Some(secret) => {
                    println!(
                        "client_secret={}",
                        secrecy::ExposeSecret::expose_secret(secret)
                    );
                    println!("(the secret is shown once; only its hash is stored)");
                }
                None => println!("(a public client: no secret; it must use PKCE)"),
            }
        }
        ClientCommand::Remove { client_id } => {
            if !services
                .accounts
                .remove_client(&client_id, &Actor::operator().context)?
            {
                bail!("no active client {client_id}");
            }
            println!("client {client_id} removed");
        }
        ClientCommand::List => {
            for client in services.accounts.list_clients()? {
                let state = if client.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let rp = &client.relying_party;
                let kind = match (rp.redirect_uris.is_empty(), rp.public, rp.first_party) {
                    (true, false, _) => "service",
                    (_, true, _) => "public",
                    (false, false, true) => "first-party",
                    (false, false, false) => "third-party",
                };
                let alg = services.accounts.id_token_alg(rp);
                println!(
                    "{}  {:<8} {:<12} {:<6} {}",
                    rp.id, state, kind, alg, rp.name
                );
                for uri in &rp.redirect_uris {
                    println!("    redirect {uri}");
                }
            }
        }
    }
    Ok(())
}

/// `GET /healthz` over plain HTTP to the configured bind address (its
/// loopback form when bound to all interfaces); success only on a 200.
pub fn healthcheck(settings: &Settings) -> Result<()> {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
    use std::time::Duration;
    if settings.tls_cert.is_some() {
        bail!("healthcheck speaks plain HTTP; with TLS configured, check /healthz from outside");
    }
    let mut addr = settings.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("nothing answers on {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut status = [0_u8; 12];
    stream
        .read_exact(&mut status)
        .with_context(|| format!("no HTTP answer from {addr}"))?;
    if status[9..12] != *b"200" {
        bail!(
            "/healthz on {addr} answered {}",
            String::from_utf8_lossy(&status)
        );
    }
    Ok(())
}

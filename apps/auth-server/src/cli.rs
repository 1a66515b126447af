//! The command line: `serve` (default), `migrate`, `user add`, `keys list|rotate`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use accounts::{DisplayName, EmailAddress, NewAccount, Password, UserStatus, Username};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::config::Settings;
use crate::keys::KeyDir;

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
    /// Print every configuration setting with its default.
    ConfigHelp,
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
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List signing keys.
    List,
    /// Generate a new signing key; the old ones keep verifying until the
    /// tokens they signed have expired. Restart the servers to pick it up.
    Rotate,
}

pub fn migrate(settings: &Settings) -> Result<()> {
    let pool = storage::connect(
        &settings.database_url,
        &storage::PoolOptions {
            max_size: 1,
            ..Default::default()
        },
    )
    .context("cannot open the database")?;
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
    let keys = KeyDir::new(&settings.keys_dir).list()?;
    if keys.is_empty() {
        println!(
            "no keys in {} (one is generated at first start)",
            settings.keys_dir.display()
        );
    }
    let now = chrono::Utc::now().timestamp();
    let window = settings.access_ttl_secs + settings.leeway_secs;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<28} {:<6} {:<22} status", "kid", "alg", "created")?;
    for key in keys {
        let status = match key.retired_at {
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
    let kid = KeyDir::new(&settings.keys_dir)
        .rotate(settings.signing_algorithm, chrono::Utc::now().timestamp())?;
    println!("new signing key {kid}; restart the servers to sign with it");
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

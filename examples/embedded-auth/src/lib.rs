//! An actix-web application that embeds the auth server's whole surface in
//! its own process — sign-up, login with its rate limits, refresh, logout,
//! mailed codes, the pages, OpenAPI — next to routes of its own, by calling
//! the crates (`accounts`, `auth-http`) and copying no server code.
//!
//! - everything of the auth server lives under `/auth` (native API, pages,
//!   profiles): one [`FrontEnd::configure`] call;
//! - `GET /` is the application's own page;
//! - `GET /api/whoami` is the application's own API, protected by the same
//!   in-process [`Verifier`](auth_core::Verifier) the front-ends use (so a
//!   logout is refused here at once, with no network hop).
//!
//! [`start`] builds and binds it; `main.rs` runs it with defaults.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use accounts::keys::{KeyDir, KeySource, KeyStore};
use accounts::{Accounts, AccountsConfig, BackgroundConfig, HashCost, KeyReload, PasswordHasher};
use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, Result};
use auth_core::{SigningAlgorithm, TokenPolicy};
use auth_http::{FrontEnd, FrontEndConfig, Mounts};
use mailer::{Mailer, OutboxConfig, OutboxWorker, TransportConfig};
use serde_json::json;

/// What the application needs to know.
pub struct Config {
    /// `postgres://…`, or a SQLite file path.
    pub database_url: String,
    /// Signing keys and the server secrets (0600 files).
    pub keys_dir: PathBuf,
    pub mail: TransportConfig,
    pub mail_from: String,
    /// Where the application listens (port 0 picks one).
    pub bind: String,
}

pub struct Running {
    pub server: Server,
    pub base_url: String,
}

/// Opens the database (applying migrations), builds the account service and
/// its background work, and binds the application.
pub async fn start(config: Config) -> Result<Running> {
    let listener = TcpListener::bind(&config.bind).context("cannot listen")?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let (database_url, keys_dir) = (config.database_url.clone(), config.keys_dir.clone());
    let (pool, keys) =
        tokio::task::spawn_blocking(move || open(&database_url, &keys_dir)).await??;

    // Mail is delivered by the account service's background work; a queued
    // mail wakes it at once.
    let mailer = Mailer::new(&config.mail_from, config.mail).context("mail settings")?;
    let outbox = OutboxWorker::new(
        pool.clone(),
        Arc::new(mailer),
        OutboxConfig {
            poll_interval: Duration::from_millis(200),
            ..OutboxConfig::default()
        },
    );
    let wake = outbox.notifier();
    let hasher = PasswordHasher::new(HashCost::default(), 2, 32)?;
    let accounts = Arc::new(
        Accounts::new(
            pool,
            Arc::new(hasher),
            keys,
            AccountsConfig {
                tokens: TokenPolicy {
                    issuer: base_url.clone(),
                    ..TokenPolicy::default()
                },
                public_url: format!("{base_url}/auth"),
                on_mail_queued: Arc::new(move || wake.notify_one()),
                ..AccountsConfig::default()
            },
        )
        .with_key_source(KeySource {
            store: Arc::new(KeyDir::new(&config.keys_dir)),
            verify_window_secs: KEY_VERIFY_WINDOW_SECS,
        }),
    );
    accounts::background::start(
        accounts.clone(),
        BackgroundConfig {
            revocation_poll: Duration::from_millis(500),
            key_reload: Some(KeyReload {
                every: Duration::from_secs(10),
            }),
            outbox: Some(outbox),
            revocation_push: storage::DatabaseUrl::parse(&config.database_url).ok(),
            logout_sender: auth_http::backchannel::HttpLogoutSender::shared(),
        },
    )
    .await?;

    let mounts = Mounts::parse("native=/auth").map_err(anyhow::Error::msg)?;
    let front_end = FrontEnd::new(
        accounts.clone(),
        FrontEndConfig {
            mounts,
            ..FrontEndConfig::default()
        },
    )?;
    let server = HttpServer::new(move || {
        let front_end = front_end.clone();
        App::new()
            .app_data(web::Data::new(accounts.clone()))
            .wrap(auth_http::Edge::new())
            .route("/", web::get().to(home))
            .route("/api/whoami", web::get().to(whoami))
            .configure(move |cfg| front_end.configure(cfg))
    })
    .workers(2)
    .listen(listener)?
    .run();
    Ok(Running { server, base_url })
}

/// The database (migrated) and the signing keys (created on first start).
fn open(
    database_url: &str,
    keys_dir: &std::path::Path,
) -> Result<(storage::DbPool, auth_core::KeySet)> {
    let url = storage::DatabaseUrl::parse(database_url).context("database url")?;
    let pool = storage::connect(&url, &storage::PoolOptions::default())?;
    storage::migrations::run_pending(&mut *pool.get()?)?;
    let keys = KeyDir::new(keys_dir).load_or_create(
        SigningAlgorithm::EdDSA,
        now(),
        KEY_VERIFY_WINDOW_SECS,
    )?;
    Ok((pool, keys))
}

/// How long a retired key keeps verifying: longer than anything it signed lives.
const KEY_VERIFY_WINDOW_SECS: i64 = 86_400;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn home() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>Example</title><p>An application with its own pages. <a href=\"/auth/login\">Sign in</a>.</p>")
}

/// The application's own API: any live access token of ours.
async fn whoami(accounts: web::Data<Arc<Accounts>>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(auth_core::bearer_token);
    let Some(token) = token else {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_token"}));
    };
    match accounts.verifier().access(token, now()) {
        Ok(claims) => {
            HttpResponse::Ok().json(json!({"user_id": claims.sub, "email": claims.email}))
        }
        Err(e) => HttpResponse::Unauthorized().json(json!({"error": e.code()})),
    }
}

//! Startup: from settings to a bound, running server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use accounts::keys::{KeySource, KeyStore};
use accounts::{
    Accounts, AccountsConfig, BackgroundConfig, CodeKey, HashCost, KeyReload, PasswordHasher,
    SessionPolicy,
};
use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use anyhow::{Context, Result};
use auth_core::TokenPolicy;
use auth_http::{FrontEnd, FrontEndConfig, Metrics};
use mailer::{Mailer, OutboxConfig, OutboxWorker};
use storage::{DbPool, PoolOptions};

use crate::config::Settings;

/// A server that is bound and ready to be awaited (or spawned).
pub struct Application {
    pub server: Server,
    pub addr: SocketAddr,
    pub scheme: &'static str,
}

impl Application {
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

/// Everything a command needs that touches the database and keys.
pub struct Services {
    pub pool: DbPool,
    pub accounts: Arc<Accounts>,
    pub token_policy: TokenPolicy,
    pub metrics: Arc<Metrics>,
    /// Delivers queued mail; only `serve` runs it. Mail queued by other
    /// commands waits in the outbox for the next server.
    pub outbox: OutboxWorker,
    /// The key of the pages' CSRF tokens (shared by instances through the
    /// key store).
    pub csrf_secret: Vec<u8>,
    /// Where the signing keys and secrets came from, re-read for rotations.
    pub key_store: Arc<dyn KeyStore>,
}

/// Opens the pool, loads (or creates) the keys and builds the account
/// service. Blocking: call it from a blocking context.
pub fn services(settings: &Settings, migrate: bool) -> Result<Services> {
    let pool = storage::connect(
        &settings.database_url,
        &PoolOptions {
            max_size: settings.db_pool_size,
            connection_timeout: Duration::from_millis(settings.db_pool_timeout_ms),
            ..PoolOptions::default()
        },
    )
    .context("cannot open the database")?;
    {
        let mut conn = pool.get().context("cannot open the database")?;
        if migrate {
            let applied = storage::migrations::run_pending(&mut conn)?;
            if !applied.is_empty() {
                tracing::info!(?applied, "migrations applied");
            }
        } else if storage::migrations::has_pending(&mut conn)? {
            anyhow::bail!("the database has pending migrations; run `auth-server migrate` first");
        }
    }
    let token_policy = TokenPolicy {
        issuer: settings.issuer.clone(),
        audience: settings.audience.clone(),
        access_ttl_secs: settings.access_ttl_secs,
        leeway_secs: settings.leeway_secs,
    };
    let verify_window = settings.key_verify_window_secs();
    let key_store = settings.key_store(&pool)?;
    // The secrets before the first key: the database store makes them all
    // together into an empty store, and refuses to remake one that went
    // missing beside the others.
    let [code_key, csrf_secret, throttle_key, sealing_key]: [Vec<u8>; 4] = key_store
        .load_or_create_secrets(&["code-hmac", "csrf-hmac", "throttle-hmac", "token-seal"])
        .context("cannot load the server secrets")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the key store answered the wrong number of secrets"))?;
    let code_key = CodeKey::new(&code_key);
    let sealing_key = accounts::SealingKey::from_bytes(&sealing_key)
        .context("the token sealing key must be 32 bytes")?;
    let keys = key_store
        .load_or_create(
            settings.signing_algorithm,
            chrono::Utc::now().timestamp(),
            verify_window,
        )
        .context("cannot load the signing keys")?;
    let hasher = PasswordHasher::new(
        HashCost {
            memory_kib: settings.argon2_memory_kib,
            iterations: settings.argon2_iterations,
            parallelism: settings.argon2_parallelism,
        },
        settings.argon2_max_concurrent,
        settings.argon2_queue_limit,
    )
    .context("invalid argon2 settings")?;
    let metrics = Arc::new(Metrics::default());
    let throttle_metrics = metrics.clone();
    let mailer = Mailer::new(&settings.mail.from, settings.mail.transport.clone())
        .context("invalid mail settings")?;
    let outbox = OutboxWorker::new(
        pool.clone(),
        Arc::new(mailer),
        OutboxConfig {
            poll_interval: Duration::from_millis(settings.mail.outbox_poll_ms),
            max_attempts: settings.mail.max_attempts,
            ..OutboxConfig::default()
        },
    );
    let wake_outbox = outbox.notifier();
    let accounts = Arc::new(
        Accounts::new(
            pool.clone(),
            Arc::new(hasher),
            keys.clone(),
            AccountsConfig {
                tokens: token_policy.clone(),
                sessions: SessionPolicy {
                    refresh_idle_ttl_secs: settings.refresh_idle_ttl_secs,
                    absolute_ttl_secs: settings.session_ttl_secs,
                    reuse_grace_secs: settings.refresh_reuse_grace_secs,
                },
                code_key,
                sealing_key,
                public_url: settings.public_url.clone(),
                reveal_email_taken: settings.reveal_email_taken,
                on_mail_queued: Arc::new(move || wake_outbox.notify_one()),
                catalog: settings.permissions.clone(),
                api_token_max_days: settings.api_token_max_days,
                operator_emails: settings.operator_emails.clone(),
                password_max_age_days: settings.password_max_age_days,
                throttle_key,
                throttle_rates: settings.throttle,
                on_throttled: Arc::new(move |kind| throttle_metrics.record_throttled(kind)),
                mfa: settings.mfa.clone(),
            },
        )
        .with_key_source(KeySource {
            store: key_store.clone(),
            verify_window_secs: verify_window,
        }),
    );
    Ok(Services {
        key_store,
        csrf_secret,
        pool,
        accounts,
        token_policy,
        metrics,
        outbox,
    })
}

/// Builds and binds the server. Must run inside a tokio runtime: it starts
/// the background work (`accounts::background`), which runs as long as the
/// server does.
pub async fn start(settings: Settings) -> Result<Application> {
    if settings.issuer_from_bind && settings.database_url.backend() == storage::Backend::Postgres {
        // Instances on one database must accept each other's tokens; an
        // issuer made from each one's own address would differ silently.
        anyhow::bail!(
            "set AUTH_PUBLIC_URL (or AUTH_ISSUER) to the address clients use: with PostgreSQL, \
             every instance must issue tokens under the same issuer, and the default one \
             comes from this instance's own bind address"
        );
    }
    crate::logging::install_crypto_provider();
    let setup = settings.clone();
    let services =
        tokio::task::spawn_blocking(move || services(&setup, setup.migrate_on_start)).await??;
    let _background = accounts::background::start(
        services.accounts.clone(),
        BackgroundConfig {
            revocation_poll: Duration::from_millis(settings.revocation_poll_ms),
            key_reload: Some(KeyReload {
                every: Duration::from_secs(settings.key_reload_secs),
            }),
            outbox: Some(services.outbox),
            revocation_push: Some(settings.database_url.clone()),
            logout_sender: auth_http::backchannel::HttpLogoutSender::shared(),
        },
    )
    .await
    .context("cannot start the background work")?;

    // Off the start-up path: the phone-number metadata takes ≈ 80 ms to load.
    tokio::task::spawn_blocking(accounts::PhoneNumber::warm_up);

    let front_end = FrontEnd::with_metrics(
        services.accounts,
        services.metrics,
        FrontEndConfig {
            mounts: settings.mounts.clone(),
            csrf_secret: Some(services.csrf_secret),
            secure_cookies: settings.tls_cert.is_some()
                || settings.public_url.starts_with("https://"),
            permissions: settings.permissions.clone(),
            api_token_max_days: settings.api_token_max_days,
            phone_region: settings.phone_region.clone(),
            compat_time_zone: settings.compat_time_zone,
            cors_allowed_origins: settings.cors_allowed_origins.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            forwarded_header: settings.forwarded_header,
            metrics_token: settings.metrics_token.clone(),
            token_cache_size: settings.token_cache_size,
            compat_password_only: settings.compat_password_only.clone(),
        },
    )
    .context("cannot build the HTTP front-ends")?;
    let listener = TcpListener::bind(settings.bind)
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let addr = listener.local_addr()?;
    let tls = settings.tls_cert.is_some() && settings.tls_key.is_some();
    let drain = front_end.drain();
    let server = HttpServer::new(move || {
        let front_end = front_end.clone();
        App::new()
            .wrap(auth_http::Edge::new().with_hsts(tls))
            .configure(move |cfg| front_end.configure(cfg))
    })
    .workers(settings.workers)
    // Signals are ours (`stop_on_signal`): readiness turns first.
    .disable_signals()
    .shutdown_timeout(10);
    let (server, scheme) = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            let certificate = Arc::new(crate::tls::ReloadableCertificate::load(cert, key)?);
            tokio::spawn(crate::tls::reload_on_sighup(certificate.clone()));
            let tls = crate::tls::server_config(certificate);
            (server.listen_rustls_0_23(listener, tls)?.run(), "https")
        }
        _ => (server.listen(listener)?.run(), "http"),
    };
    tokio::spawn(stop_on_signal(
        server.handle(),
        drain,
        Duration::from_millis(settings.drain_delay_ms),
    ));
    Ok(Application {
        server,
        addr,
        scheme,
    })
}

/// A rolling restart without failed requests: on SIGTERM (what orchestrators
/// send) `/readyz` answers 503 at once while requests are still served for
/// `delay`, so balancers stop sending here; then the server stops accepting
/// and finishes the requests in flight (up to its shutdown timeout). SIGINT
/// (Ctrl-C at a terminal) skips the delay.
async fn stop_on_signal(
    server: actix_web::dev::ServerHandle,
    drain: auth_http::state::Drain,
    delay: Duration,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the server with SIGKILL");
        return;
    };
    let delay = tokio::select! {
        _ = term.recv() => delay,
        _ = interrupt.recv() => Duration::ZERO,
    };
    drain.start();
    tracing::info!(
        delay_ms = delay.as_millis() as u64,
        "stopping: /readyz is 503, draining"
    );
    tokio::time::sleep(delay).await;
    server.stop(true).await;
}

//! The HTTP front-ends of the auth server, as a library: the native API
//! (`http`), the seed services' compatibility profiles (`profiles`), the
//! server-rendered pages (`web`), the OAuth endpoints and the OpenAPI
//! document. Every one of them only translates: it parses the request,
//! calls one `accounts` operation and shapes the answer; the rules (limits,
//! token checks, revocation, mail) are the operations' own.
//!
//! A downstream actix-web application mounts the whole surface with one
//! call:
//!
//! ```no_run
//! # async fn run(accounts: std::sync::Arc<accounts::Accounts>) -> Result<(), Box<dyn std::error::Error>> {
//! use actix_web::{App, HttpServer};
//! use auth_http::{Edge, FrontEnd, FrontEndConfig};
//!
//! let front_end = FrontEnd::new(accounts, FrontEndConfig::default())?;
//! HttpServer::new(move || {
//!     let front_end = front_end.clone();
//!     App::new()
//!         .wrap(Edge::new())
//!         .configure(move |cfg| front_end.configure(cfg))
//! })
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The caller also starts the account service's background work
//! (`accounts::background::start`), as the server does.

pub mod backchannel;
pub mod http;
pub mod metrics;
pub mod profiles;
mod request_stats;
pub mod state;
pub mod telemetry;
pub mod token_cache;
pub mod web;

use std::sync::Arc;

use accounts::{Accounts, PermissionCatalog};
use actix_web::web as aweb;
use chrono::Offset;

pub use http::extract::ForwardedHeader;
pub use metrics::Metrics;
pub use profiles::{Mounts, Profile};
pub use state::AppState;
/// The middleware every request passes: span and request id, metrics,
/// the final touches of each answer, security headers.
pub use telemetry::Edge;

/// How the front-ends are set up; every field has a working default.
#[derive(Clone, Debug)]
pub struct FrontEndConfig {
    /// Where the native API, the pages and each profile are mounted.
    pub mounts: Mounts,
    /// Key of the pages' CSRF tokens (32 random bytes; the same on every
    /// instance behind one balancer). `None`: a random one per process.
    pub csrf_secret: Option<Vec<u8>>,
    /// Cookies and links are served over HTTPS (Secure, `__Host-` names).
    pub secure_cookies: bool,
    /// The permissions the pages and the OpenAPI document offer.
    pub permissions: PermissionCatalog,
    /// Longest lifetime of a personal API token, for the OpenAPI document.
    pub api_token_max_days: i64,
    /// Region of phone numbers without a country code.
    pub phone_region: String,
    /// Offset of the naive local times some seed contracts print.
    pub compat_time_zone: chrono::FixedOffset,
    /// Origins allowed to call the browser-facing profile (buzzbook).
    pub cors_allowed_origins: Vec<String>,
    /// Proxies whose forwarding header names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub forwarded_header: ForwardedHeader,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<secrecy::SecretString>,
    /// Verified bearer tokens remembered (0 turns the cache off).
    pub token_cache_size: usize,
    /// Profiles (by name) whose logins may skip the second factor of users
    /// who have one: those contracts have no second step. A risk: such
    /// logins are as strong as the password. Others answer `mfa_required`
    /// in their own error shape.
    pub compat_password_only: Vec<String>,
}

impl Default for FrontEndConfig {
    fn default() -> Self {
        FrontEndConfig {
            mounts: Mounts::default(),
            csrf_secret: None,
            secure_cookies: false,
            permissions: PermissionCatalog::default(),
            api_token_max_days: 365,
            phone_region: "KR".to_owned(),
            compat_time_zone: chrono::Utc.fix(),
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            metrics_token: None,
            token_cache_size: 10_000,
            compat_password_only: Vec::new(),
        }
    }
}

/// Why the front-ends could not be built (a defect in a template or the
/// route table, or a mount overlap in the configuration).
#[derive(Debug, thiserror::Error)]
pub enum FrontEndError {
    #[error(transparent)]
    Pages(#[from] web::PagesError),
    #[error("OpenAPI document: {0}")]
    OpenApi(String),
}

/// Everything the routes share, built once; cheap to clone into each
/// worker's `App`.
#[derive(Clone)]
pub struct FrontEnd {
    state: aweb::Data<AppState>,
    pages: aweb::Data<web::Pages>,
    openapi: aweb::Data<http::openapi::ApiDocument>,
    allowed: aweb::Data<http::AllowedMethods>,
    mounts: Mounts,
}

impl FrontEnd {
    pub fn new(accounts: Arc<Accounts>, config: FrontEndConfig) -> Result<Self, FrontEndError> {
        Self::with_metrics(accounts, Arc::new(Metrics::default()), config)
    }

    /// With a metrics registry the caller already handed to `accounts`
    /// (its `on_throttled` counts into it).
    pub fn with_metrics(
        accounts: Arc<Accounts>,
        metrics: Arc<Metrics>,
        config: FrontEndConfig,
    ) -> Result<Self, FrontEndError> {
        let csrf_secret = config.csrf_secret.clone().unwrap_or_else(|| {
            let mut secret = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map(|()| secret)
                .unwrap_or_else(|_| uuid::Uuid::new_v4().as_bytes().repeat(2))
        });
        let pages = web::Pages::new(
            &csrf_secret,
            config.secure_cookies,
            &config.mounts.native,
            config.permissions.clone(),
        )?;
        let openapi = http::openapi::ApiDocument::new(&http::openapi::Configured {
            mounts: &config.mounts,
            permissions: &config.permissions,
            api_token_max_days: config.api_token_max_days,
        })
        .map_err(|e| FrontEndError::OpenApi(e.to_string()))?;
        let token_policy = accounts.verifier().policy().clone();
        let state = AppState {
            accounts,
            token_policy,
            token_cache: token_cache::TokenCache::new(config.token_cache_size),
            phone_region: config.phone_region,
            compat_time_zone: config.compat_time_zone,
            cors_allowed_origins: config.cors_allowed_origins,
            trusted_proxies: config.trusted_proxies,
            forwarded_header: config.forwarded_header,
            metrics,
            metrics_token: config.metrics_token,
            draining: state::Drain::default(),
            compat_password_only: config.compat_password_only,
        };
        Ok(FrontEnd {
            state: aweb::Data::new(state),
            pages: aweb::Data::new(pages),
            openapi: aweb::Data::new(openapi),
            allowed: aweb::Data::new(http::AllowedMethods::new(&config.mounts)),
            mounts: config.mounts,
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The handle that turns `/readyz` to 503 before a graceful stop.
    pub fn drain(&self) -> state::Drain {
        self.state.draining.clone()
    }

    /// Registers every front-end's routes and shared data, and answers
    /// unknown paths with the native 404 problem.
    pub fn configure(&self, cfg: &mut aweb::ServiceConfig) {
        cfg.app_data(self.state.clone())
            .app_data(self.openapi.clone())
            .app_data(self.pages.clone())
            .app_data(self.allowed.clone())
            .configure(http::extractor_config);
        self.mounts.configure(cfg);
        cfg.default_service(aweb::to(http::not_found));
    }
}

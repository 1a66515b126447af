//! A tiny service protected by the auth server's tokens: the embedding story
//! of `docs/embedding.md`, runnable and tested (`apps/auth-server/tests/downstream.rs`).
//!
//! - `GET /hello`: any valid token (access or API token);
//! - `POST /sms/send`: needs `sms:send`, enforced by the `Require` middleware;
//! - `POST /fame`: needs `fame:write`, checked inside the handler;
//! - `GET /reports`: for people who signed in with a second factor.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use auth_actix::{AuthError, Authenticated, Require};
use auth_core::TokenPolicy;
use auth_core::remote::{RemoteConfig, RemoteError, RemoteVerifier};
use serde_json::json;

/// The routes; `RemoteVerifier` must be registered as app data.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/hello").route(web::get().to(hello)))
        .service(
            web::resource("/sms/send")
                .wrap(Require::permission("sms:send"))
                .route(web::post().to(send_sms)),
        )
        .service(web::resource("/fame").route(web::post().to(fame)))
        .service(
            web::resource("/reports")
                .wrap(Require::second_factor())
                .route(web::get().to(reports)),
        );
}

async fn hello(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "user_id": user.user_id(),
        "permissions": user.permissions(),
    }))
}

async fn send_sms(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sent": true, "by": user.user_id()}))
}

async fn fame(user: Authenticated) -> Result<HttpResponse, AuthError> {
    user.require("fame:write")?;
    Ok(HttpResponse::Ok().json(json!({"famous": user.user_id()})))
}

async fn reports(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({"reports": [], "for": user.user_id()}))
}

/// Where the auth server is and what its tokens carry.
#[derive(Clone, Debug)]
pub struct Settings {
    pub auth_server_url: String,
    pub issuer: String,
    pub audience: String,
    pub revocation_poll: Duration,
}

impl Settings {
    /// From `AUTH_SERVER_URL` (default `http://127.0.0.1:8080`), `AUTH_ISSUER`
    /// (default: the server URL, as the auth server's own default),
    /// `AUTH_AUDIENCE` (default `auth-server`) and `REVOCATION_POLL_SECS` (default 30).
    pub fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let auth_server_url =
            var("AUTH_SERVER_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let revocation_poll = match var("REVOCATION_POLL_SECS") {
            Some(secs) => Duration::from_secs(secs.parse().map_err(|_| {
                anyhow::anyhow!(
                    "REVOCATION_POLL_SECS must be a whole number of seconds, not {secs:?}"
                )
            })?),
            None => Duration::from_secs(30),
        };
        Ok(Settings {
            issuer: var("AUTH_ISSUER").unwrap_or_else(|| auth_server_url.clone()),
            audience: var("AUTH_AUDIENCE").unwrap_or_else(|| "auth-server".into()),
            auth_server_url,
            revocation_poll,
        })
    }

    /// Connects a verifier to the auth server (fetches its keys).
    pub async fn verifier(&self) -> Result<RemoteVerifier, RemoteError> {
        let policy = TokenPolicy {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            ..TokenPolicy::default()
        };
        let mut config = RemoteConfig::new(&self.auth_server_url, policy);
        config.revocation_poll = self.revocation_poll;
        RemoteVerifier::connect(config).await
    }
}

/// The service on `listener`, checking tokens with `verifier`.
pub fn serve(listener: TcpListener, verifier: RemoteVerifier) -> std::io::Result<Server> {
    let verifier = web::Data::new(verifier);
    Ok(
        HttpServer::new(move || App::new().app_data(verifier.clone()).configure(routes))
            .workers(1)
            .listen(listener)?
            .run(),
    )
}

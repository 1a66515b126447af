//! Back-channel logout delivery (OpenID Connect Back-Channel Logout 1.0):
//! the HTTP client that POSTs the logout tokens `accounts` queues when a
//! relying party's session ends. Give it to the background work
//! (`BackgroundConfig::logout_sender`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use accounts::LogoutSender;

/// Sends logout tokens over HTTP(S): no redirects followed (the URI is the
/// one the operator registered, nothing else), a 5 s limit.
pub struct HttpLogoutSender {
    client: reqwest::Client,
}

impl HttpLogoutSender {
    /// `None` when no HTTP client can be built (no TLS roots at all).
    pub fn shared() -> Option<Arc<dyn LogoutSender>> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("auth-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok()?;
        Some(Arc::new(HttpLogoutSender { client }))
    }
}

impl LogoutSender for HttpLogoutSender {
    fn send(&self, uri: &str, logout_token: &str) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        let request = self
            .client
            .post(uri)
            .header("cache-control", "no-store")
            .form(&[("logout_token", logout_token)]);
        let uri = uri.to_owned();
        Box::pin(async move {
            match request.send().await {
                Ok(response) if response.status().is_success() => true,
                Ok(response) => {
                    tracing::info!(%uri, status = %response.status(), "back-channel logout refused");
                    false
                }
                Err(e) => {
                    tracing::info!(%uri, error = %e, "back-channel logout not delivered");
                    false
                }
            }
        })
    }
}

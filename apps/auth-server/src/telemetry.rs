//! Logging, the per-request span, and process-wide crypto setup.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Structured logs to stderr; `RUST_LOG` picks levels (default `info`),
/// `AUTH_LOG_FORMAT=json` switches to one JSON object per line.
pub fn init_logging(format: &LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// rustls needs exactly one process-wide provider; we compile in only ring.
/// Installing twice returns an error, which is fine (tests start many servers).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Middleware (`from_fn`): one span per request, and one log line with the
/// status and latency.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = tracing::info_span!("request", method = %req.method(), path = %req.path());
    let started = Instant::now();
    let response = next.call(req).instrument(span.clone()).await;
    let _entered = span.enter();
    let micros = started.elapsed().as_micros() as u64;
    match &response {
        // Refusals under overload (503 busy) are expected and can come by
        // the thousand per second: logging each would make the overload worse.
        // The password hasher warns about them at most every few seconds.
        Ok(r) if r.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE => {
            tracing::debug!(status = 503, micros, "response")
        }
        Ok(r) if r.status().is_server_error() => {
            tracing::error!(status = r.status().as_u16(), micros, "response")
        }
        Ok(r) => tracing::debug!(status = r.status().as_u16(), micros, "response"),
        Err(e) => tracing::warn!(error = %e, micros, "request failed"),
    }
    response
}

//! The per-request span: a request id, one log line per response, and the
//! request metrics by route pattern.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

use crate::state::AppState;

/// Middleware (`from_fn`): one span per request carrying a request id, one
/// log line with the status and latency, and the id echoed in `X-Request-Id`
/// so a client's report can be matched to the server's logs.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.path(),
        request_id = %request_id,
    );
    let metrics = req
        .app_data::<actix_web::web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.call(req).instrument(span.clone()).await;
    let _entered = span.enter();
    let elapsed = started.elapsed();
    let micros = elapsed.as_micros() as u64;
    match response {
        Ok(mut r) => {
            if let Some(metrics) = metrics {
                // The route pattern, not the path: ids must not become labels.
                metrics.record_request(
                    r.request().match_pattern(),
                    &method,
                    r.status().as_u16(),
                    elapsed.as_secs_f64(),
                );
            }
            // Refusals under overload (503 busy) are expected and can come by
            // the thousand per second: logging each would make the overload
            // worse. The password hasher warns about them at most every few seconds.
            if r.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
                tracing::debug!(status = 503, micros, "response");
            } else if r.status().is_server_error() {
                tracing::error!(status = r.status().as_u16(), micros, "response");
            } else {
                tracing::debug!(status = r.status().as_u16(), micros, "response");
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                r.headers_mut().insert(REQUEST_ID.clone(), value);
            }
            Ok(r)
        }
        Err(e) => {
            tracing::warn!(error = %e, micros, "request failed");
            Err(e)
        }
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is a plausible id (so a chain of
/// services shares one), else a fresh UUID. Anything else a client sends
/// there is not copied into logs or headers.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

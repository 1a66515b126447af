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
///
/// Cheap on every request: the id comes from a per-thread generator (no
/// system call) and is formatted on the stack; the span's fields are
/// recorded as plain strings, and when the span's level is off (logging
/// above `info`) the request is not instrumented at all.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = incoming_request_id(&req).unwrap_or_else(fresh_request_id);
    let span = tracing::info_span!(
        "request",
        method = req.method().as_str(),
        path = req.path(),
        request_id = request_id.to_str().unwrap_or_default(),
    );
    let metrics = req
        .app_data::<actix_web::web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let method = req.method().clone();
    let started = Instant::now();
    let response = if span.is_disabled() {
        next.call(req).await
    } else {
        next.call(req).instrument(span.clone()).await
    };
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
            if r.status().is_server_error()
                && r.status() != actix_web::http::StatusCode::SERVICE_UNAVAILABLE
            {
                tracing::error!(status = r.status().as_u16(), micros, "response");
            } else {
                tracing::debug!(status = r.status().as_u16(), micros, "response");
            }
            r.headers_mut().insert(REQUEST_ID.clone(), request_id);
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
/// services shares one). Anything else a client sends there is not copied
/// into logs or headers.
fn incoming_request_id(req: &ServiceRequest) -> Option<HeaderValue> {
    req.headers()
        .get(&REQUEST_ID)
        .filter(|v| {
            let id = v.as_bytes();
            (1..=64).contains(&id.len())
                && id
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .cloned()
}

/// A fresh id in the form of a random (version 4) UUID. Ids must be unique,
/// not secret: each thread draws them from its own SplitMix64 sequence,
/// started at a random point with a random key (one `getrandom` per
/// thread, not per request).
fn fresh_request_id() -> HeaderValue {
    use std::cell::Cell;
    thread_local! {
        static SEQUENCE: Cell<(u64, u64)> = Cell::new(uuid::Uuid::new_v4().as_u64_pair());
    }
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let (high, low) = SEQUENCE.with(|sequence| {
        let (counter, key) = sequence.get();
        let counter = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
        sequence.set((counter, key));
        (mix(counter), mix(counter ^ key))
    });
    let id = uuid::Builder::from_random_bytes(
        ((u128::from(high) << 64) | u128::from(low)).to_be_bytes(),
    )
    .into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| fresh_request_id().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
        }
    }
}

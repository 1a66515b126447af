//! The one middleware every request passes ([`Edge`]): a span and request
//! id, one log line per response, the request metrics by route pattern,
//! the final touches of each answer and the security headers.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Data;
use pin_project_lite::pin_project;
use tracing::Span;

use crate::state::AppState;

/// Middleware: everything each request and answer gets, in one layer.
///
/// - a span per request carrying a request id, one log line with the
///   status and latency, and the id echoed in `X-Request-Id`, so a client's
///   report can be matched to the server's logs;
/// - the request metrics, by route pattern;
/// - `Allow` on every 405, and field errors in the request's language;
/// - security headers on every answer (handlers' own values win): no MIME
///   sniffing, no referrer leaking tokens from URLs, never framed
///   (clickjacking), and HSTS when the server is reached over HTTPS
///   ([`Edge::with_hsts`]).
///
/// One layer with a future of its own rather than three (two `from_fn`
/// layers that boxed the future inside them, and `DefaultHeaders`); what
/// the three cost on `/healthz` (≈ 6 % of a bare handler's throughput,
/// docs/performance.md) was their work, which this keeps cheap: the id
/// comes from a per-thread generator (no system call) and is formatted on
/// the stack, the span's fields are plain strings (a span whose level is
/// off costs a check), headers are static values, and the metrics are
/// recorded per thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Edge {
    hsts: bool,
}

impl Edge {
    pub fn new() -> Self {
        Edge { hsts: false }
    }

    /// Also `Strict-Transport-Security` on every answer: for a server
    /// reached over HTTPS only.
    pub fn with_hsts(self, hsts: bool) -> Self {
        Edge { hsts }
    }
}

/// The security headers, in the order they are added.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    ),
];

const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");

impl<S, B> Transform<S, ServiceRequest> for Edge
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = EdgeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(EdgeService {
            service,
            hsts: self.hsts,
        }))
    }
}

/// [`Edge`] around the application's service.
pub struct EdgeService<S> {
    service: S,
    hsts: bool,
}

impl<S, B> Service<ServiceRequest> for EdgeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = EdgeFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let method = req.method().clone();
        // HEAD is GET without the content, and every server must answer it
        // (RFC 9110 §9.1, §9.3.2). The routes know GET: a HEAD request is
        // routed as one, and the HTTP layer, which read the method before
        // any middleware, sends the answer's head without its body.
        if method == Method::HEAD {
            req.head_mut().method = Method::GET;
        }
        let request_id = incoming_request_id(&req).unwrap_or_else(fresh_request_id);
        let span = tracing::info_span!(
            "request",
            method = method.as_str(),
            path = req.path(),
            request_id = request_id.to_str().unwrap_or_default(),
        );
        let started = Instant::now();
        let inner = {
            let _entered = span.enter();
            self.service.call(req)
        };
        EdgeFuture {
            inner,
            span,
            answer: Some(Answer {
                request_id,
                method,
                started,
                hsts: self.hsts,
            }),
        }
    }
}

/// What the answer needs once the application has answered.
struct Answer {
    request_id: HeaderValue,
    method: Method,
    started: Instant,
    hsts: bool,
}

pin_project! {
    /// The application's answer, finished by [`Edge`].
    pub struct EdgeFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        answer: Option<Answer>,
    }
}

impl<F, B> Future for EdgeFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Polled again after it answered (a bug of the caller's): the
        // inner future, finished, must not be polled again.
        let polled_again = || {
            Poll::Ready(Err(actix_web::error::ErrorInternalServerError(
                "internal error",
            )))
        };
        if this.answer.is_none() {
            return polled_again();
        }
        let _entered = this.span.enter();
        let response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(response) => response,
        };
        let Some(answer) = this.answer.take() else {
            return polled_again();
        };
        Poll::Ready(match response {
            Ok(response) => Ok(answer.finish(response)),
            Err(e) => {
                let micros = answer.started.elapsed().as_micros() as u64;
                tracing::warn!(error = %e, micros, "request failed");
                Err(e)
            }
        })
    }
}

impl Answer {
    fn finish<B>(self, response: ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> {
        let elapsed = self.started.elapsed();
        let status = response.status();
        // Read where the request is, not cloned per request: an `Arc`'s
        // count is written by every worker.
        if let Some(state) = response.request().app_data::<Data<AppState>>() {
            // The route pattern, not the path: ids must not become labels.
            state.metrics.record_request(
                response.request().match_pattern(),
                &self.method,
                status.as_u16(),
                elapsed.as_secs_f64(),
            );
        }
        let micros = elapsed.as_micros() as u64;
        // Refusals under overload (503 busy) are expected and can come by
        // the thousand per second: logging each would make the overload
        // worse. The password hasher warns about them at most every few seconds.
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = status.as_u16(), micros, "response");
        } else {
            tracing::debug!(status = status.as_u16(), micros, "response");
        }
        let mut response = crate::http::finish_response(response);
        let headers = response.headers_mut();
        for (name, value) in SECURITY_HEADERS {
            if !headers.contains_key(&name) {
                headers.insert(name, value);
            }
        }
        if self.hsts && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
        }
        headers.insert(REQUEST_ID.clone(), self.request_id);
        response
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

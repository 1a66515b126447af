//! `GET /metrics`: Prometheus (OpenMetrics text) counters and gauges.
//!
//! Request counts and latencies are recorded by the request middleware,
//! labelled by the matched route pattern (`/api/v1/tokens/{id}`, never the
//! concrete path, so label values stay few). Database-backed gauges (outbox,
//! pool) are read when scraped.

use std::sync::{Arc, Mutex};

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::run_blocking;
use crate::request_stats::RequestStats;
use crate::state::AppState;

/// The standard methods, as `'static` label values.
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// Any other method is `other`: clients choose methods freely, and one
/// series per invented method would grow without bound.
fn method_label(method: &Method) -> &'static str {
    let method = method.as_str();
    METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Arc<RequestStats>,
    logins: Family<OutcomeLabels, Counter>,
    refresh_reuse: Counter,
    throttled: Family<KindLabels, Counter>,
    outbox: Family<StatusLabels, Gauge>,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    /// Scrapes run one at a time: the gauges are set, then encoded.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("auth");
        // `http_requests` and `http_request_duration_seconds`.
        let requests = Arc::new(RequestStats::default());
        registry.register_collector(Box::new(requests.clone()));
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "logins",
            "Password logins by outcome: success, invalid_credentials, not_active, throttled",
            logins.clone(),
        );
        let refresh_reuse = Counter::default();
        registry.register(
            "refresh_token_reuse",
            "Spent refresh tokens presented again after the grace window (session revoked)",
            refresh_reuse.clone(),
        );
        let throttled = Family::<KindLabels, Counter>::default();
        registry.register(
            "throttled_requests",
            "Requests refused by a rate limit, by kind: login, mail, code",
            throttled.clone(),
        );
        let outbox = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Mail in the outbox: pending (queued or retrying) and dead (gave up)",
            outbox.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Open database connections",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Open database connections not in use",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Configured pool size",
            pool_max.clone(),
        );
        Metrics {
            registry,
            requests,
            logins,
            refresh_reuse,
            throttled,
            outbox,
            pool_connections,
            pool_idle,
            pool_max,
            scrape: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// `route`: the matched route pattern (`None`: no route matched). Kept
    /// in this thread's shard (see `request_stats`): the pattern string is
    /// moved in only when the route is new to the thread.
    pub fn record_request(
        &self,
        route: Option<String>,
        method: &Method,
        status: u16,
        seconds: f64,
    ) {
        self.requests
            .record(route, method_label(method), status, seconds);
    }

    /// `outcome`: `success`, `invalid_credentials`, `not_active` or `throttled`.
    pub fn record_login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn record_refresh_reuse(&self) {
        self.refresh_reuse.inc();
    }

    /// `kind`: `login`, `mail` or `code`.
    pub fn record_throttled(&self, kind: &'static str) {
        self.throttled.get_or_create(&KindLabels { kind }).inc();
    }
}

/// Prometheus metrics (OpenMetrics text). When the `metrics_token` setting is
/// set, only `Authorization: Bearer <token>` may scrape (compared in constant time).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "OpenMetrics text: requests, latencies, logins, refresh reuse, throttling, outbox, pool", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "`invalid_token`: the metrics token is set and was not presented", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn scrape(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.metrics_token {
        authorize(&req, expected)?;
    }
    let accounts = state.accounts.clone();
    let health = run_blocking(move || accounts.health()).await?;
    let metrics = &state.metrics;
    let _one_at_a_time = metrics.scrape.lock().unwrap_or_else(|e| e.into_inner());
    // Without the database the outbox gauges keep their last value; the
    // pool gauges say why.
    if let Some(outbox) = health.outbox {
        for (status, count) in [("pending", outbox.pending), ("dead", outbox.dead)] {
            metrics
                .outbox
                .get_or_create(&StatusLabels { status })
                .set(count);
        }
    }
    metrics
        .pool_connections
        .set(i64::from(health.pool_connections));
    metrics.pool_idle.set(i64::from(health.pool_idle));
    metrics.pool_max.set(i64::from(health.pool_max));
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &metrics.registry)
        .map_err(|_| ApiError::internal())?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(body))
}

fn authorize(req: &HttpRequest, expected: &SecretString) -> Result<(), ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110 §11.1), as for
        // every other bearer token the server reads.
        .and_then(auth_core::bearer_token)
        .unwrap_or("");
    let matches: bool = presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    if matches {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "invalid_token",
            "this endpoint needs the metrics token",
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::*;

    /// Counts the allocations of the current thread (this test binary only).
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn allocations() -> usize {
        ALLOCATIONS.with(Cell::get)
    }

    #[test]
    fn recording_a_request_of_a_known_series_allocates_nothing() {
        let metrics = Metrics::default();
        let route = "/api/v1/auth/refresh";
        metrics.record_request(Some(route.to_owned()), &Method::POST, 200, 0.001);
        metrics.record_request(None, &Method::GET, 404, 0.001);
        // The route pattern arrives as a String (actix allocates it): made
        // before counting, as the middleware gets it.
        let pattern = Some(route.to_owned());
        let before = allocations();
        metrics.record_request(pattern, &Method::POST, 200, 0.001);
        metrics.record_request(None, &Method::GET, 404, 0.001);
        assert_eq!(allocations() - before, 0);
    }

    fn encoded(metrics: &Metrics) -> String {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &metrics.registry).unwrap();
        body
    }

    #[test]
    fn request_series_keep_their_names_and_labels() {
        let metrics = Metrics::default();
        let route = || Some("/api/v1/tokens/{id}".to_owned());
        metrics.record_request(route(), &Method::DELETE, 404, 0.001);
        metrics.record_request(route(), &Method::DELETE, 404, 0.001);
        metrics.record_request(None, &Method::GET, 404, 0.001);
        let purge = Method::from_bytes(b"PURGE").unwrap();
        metrics.record_request(None, &purge, 404, 0.001);
        let body = encoded(&metrics);
        for line in [
            r#"auth_http_requests_total{route="/api/v1/tokens/{id}",method="DELETE",status="404"} 2"#,
            r#"auth_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
            r#"auth_http_requests_total{route="unmatched",method="other",status="404"} 1"#,
            r#"auth_http_request_duration_seconds_count{route="/api/v1/tokens/{id}"} 2"#,
            r#"auth_http_request_duration_seconds_count{route="unmatched"} 2"#,
        ] {
            assert!(body.lines().any(|l| l == line), "{line} missing:\n{body}");
        }
    }
}

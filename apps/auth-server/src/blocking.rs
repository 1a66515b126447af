//! The one way handlers run blocking work (diesel, `pool.get()`, Argon2):
//! on tokio's blocking pool, inside the caller's tracing span so the work
//! still shows up under the request that caused it.

use crate::http::error::ApiError;

pub async fn run_blocking<F, R>(work: F) -> Result<R, ApiError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "blocking task failed");
            ApiError::internal()
        })
}

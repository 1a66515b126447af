//! The one way async callers run account work (diesel, `pool.get()`,
//! Argon2): on tokio's blocking pool, inside the caller's tracing span so
//! the work still shows up under the request that caused it.

/// The blocking task panicked or was cancelled; the cause is logged.
#[derive(Debug, thiserror::Error)]
#[error("a blocking task failed")]
pub struct BlockingTaskFailed;

pub async fn run_blocking<F, R>(work: F) -> Result<R, BlockingTaskFailed>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "blocking task failed");
            BlockingTaskFailed
        })
}

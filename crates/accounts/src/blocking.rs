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
    spawn_in(tracing::Span::current(), work).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        BlockingTaskFailed
    })
}

/// Starts `work` on tokio's blocking pool, inside `span`, without waiting
/// for it: for work that outlives the request that started it (the group
/// commit's writer), which therefore gets a span of its own.
pub(crate) fn spawn_detached(span: tracing::Span, work: impl FnOnce() + Send + 'static) {
    drop(spawn_in(span, work));
}

fn spawn_in<F, R>(span: tracing::Span, work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || span.in_scope(work))
}

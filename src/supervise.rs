//! Long-running services of `setlist standalone`, restarted with exponential backoff
//! when they fail, until shutdown.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio_util::sync::CancellationToken;

/// Runs `service` until `shutdown`; a failure is logged and the service restarted
/// after 1 s, 2 s, 4 s ... up to 30 s. The service itself watches `shutdown` and is
/// never dropped half way, so it can finish what it is writing; only the wait
/// between restarts is cut short.
pub async fn supervise<F, Fut>(
    name: &'static str,
    shutdown: CancellationToken,
    service: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times();
    let token = shutdown.clone();
    let result = service
        .retry(policy)
        .sleep(move |wait| {
            let token = token.clone();
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = token.cancelled() => {}
                }
            }
        })
        .when(|_| !shutdown.is_cancelled())
        .notify(|e: &anyhow::Error, wait: Duration| {
            tracing::error!(service = name, error = %format!("{e:#}"), restart_in_s = wait.as_secs_f64(), "Service failed; restarting.");
        })
        .await;
    match result {
        Err(e) if !shutdown.is_cancelled() => Err(e),
        _ => Ok(()),
    }
}

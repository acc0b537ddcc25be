//! When and how fast certinel stops: the signal, and the one grace period
//! in-flight requests and probes share.

use std::time::Duration;

/// How long shutdown waits, from the signal, for in-flight requests and
/// probes before closing and abandoning them.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}

//! Configuration reload, on `SIGHUP` or `POST /-/reload`, as Prometheus
//! and blackbox_exporter do it.
//!
//! The file is read and validated in full first; only a valid
//! configuration reaches the scheduler, so a broken edit leaves the running
//! one untouched. Either way the outcome is recorded for
//! `certinel_config_last_reload_successful`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::scheduler::{ReloadSummary, Scheduler};
use crate::snapshot::Store;

/// A reload asked for over HTTP; the answer goes back on `reply`.
#[derive(Debug)]
pub(crate) struct ReloadRequest {
    /// Where to send the outcome.
    pub reply: oneshot::Sender<Result<ReloadSummary, String>>,
}

/// Serves reload requests and `SIGHUP` until `cancel` fires, then hands
/// the scheduler back for shutdown.
pub(crate) async fn supervise(
    mut scheduler: Scheduler,
    config_path: Option<PathBuf>,
    store: Arc<Store>,
    mut requests: mpsc::Receiver<ReloadRequest>,
    cancel: CancellationToken,
) -> Scheduler {
    let mut hangups = hangup_signals();
    let mut http_open = true;
    loop {
        let reply = tokio::select! {
            request = requests.recv(), if http_open => match request {
                Some(r) => Some(r.reply),
                // No HTTP side (--web.enable-lifecycle is off, or it has
                // stopped): keep serving signals.
                None => {
                    http_open = false;
                    continue;
                }
            },
            _ = next_hangup(&mut hangups) => None,
            _ = cancel.cancelled() => return scheduler,
        };
        // A reload in progress must not hold up shutdown.
        let outcome = tokio::select! {
            outcome = reload(&mut scheduler, config_path.as_ref(), &store) => outcome,
            _ = cancel.cancelled() => return scheduler,
        };
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
}

/// Reads and checks the file off the async workers (bounded in size,
/// nesting and time: see [`Config::load_in_background`]), then applies it.
async fn reload(
    scheduler: &mut Scheduler,
    path: Option<&PathBuf>,
    store: &Store,
) -> Result<ReloadSummary, String> {
    let Some(path) = path else {
        return Err("certinel was started without a configuration file".to_owned());
    };
    match Config::load_in_background(path.clone()).await {
        Ok(config) => {
            let summary = scheduler.reload(&config);
            store.record_reload(true);
            tracing::info!(
                path = %path.display(),
                kept = summary.kept,
                started = summary.started,
                stopped = summary.stopped,
                "configuration reloaded"
            );
            Ok(summary)
        }
        Err(e) => {
            store.record_reload(false);
            tracing::error!(
                path = %path.display(),
                error = %e,
                "configuration reload failed; keeping the running configuration"
            );
            Err(e.to_string())
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangup_signals() -> Hangups {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signals() -> Hangups {}

#[cfg(unix)]
async fn next_hangup(hangups: &mut Hangups) {
    match hangups {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
            tracing::info!(signal = "SIGHUP", "reloading configuration");
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangups) {
    std::future::pending::<()>().await
}

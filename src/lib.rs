//! certinel: a Prometheus exporter for X.509 certificate expiry.
//!
//! The pipeline, one module per stage:
//! [`config`] → [`scheduler`] → [`sources`] (files, TLS endpoints) →
//! [`snapshot`] → [`collector`] → [`exposition`] (the shared render
//! cache) → [`http`]. Certificates become facts in [`cert`], which both
//! sources share.

pub mod cert;
pub mod check;
pub mod cli;
mod clock;
pub mod collector;
pub mod config;
mod crypto;
pub mod exposition;
mod filesystem;
pub mod http;
pub mod logging;
pub mod memory;
pub mod reload;
pub mod rotation;
pub mod scheduler;
pub mod snapshot;
pub mod sources;
pub mod textfile;
pub mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::SHUTDOWN_GRACE;
use crate::snapshot::Store;

/// Daemon options that are not part of the config file.
#[derive(Debug)]
pub struct RunOptions {
    /// The configuration file, re-read on reload. Without it, reload
    /// requests are refused.
    pub config_path: Option<PathBuf>,
    /// Where to write the node_exporter textfile, if anywhere.
    pub textfile: Option<PathBuf>,
    /// TLS and basic auth for the main listener.
    pub web: Option<Arc<http::WebConfig>>,
    /// A plain-HTTP listener for `/-/healthy` and `/-/ready` only.
    pub health: Option<tokio::net::TcpListener>,
    /// `--web.max-connections`: connections open at once across both
    /// listeners. [`run`] first raises the soft open-file limit to the hard
    /// limit, then lowers this when the limit cannot hold it beside the
    /// descriptors the sources need.
    pub max_connections: usize,
    /// `--web.enable-lifecycle`: accept `POST /-/reload` (`SIGHUP` always
    /// reloads).
    pub enable_lifecycle: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            config_path: None,
            textfile: None,
            web: None,
            health: None,
            max_connections: http::DEFAULT_MAX_CONNECTIONS,
            enable_lifecycle: false,
        }
    }
}

/// Runs the daemon on `listener` until `shutdown` resolves, then gives
/// in-flight requests and probes one grace period, together, to finish.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = Arc::new(Store::new(&config));
    let cancel = CancellationToken::new();
    let scheduler = scheduler::Scheduler::start(&config, store.clone(), cancel.clone());
    let (file_sources, endpoint_sources) = (config.files.len(), config.endpoints.len());
    let limit = http::ConnectionLimit::for_process(
        options.max_connections,
        http::reserve(config.global.concurrency),
    );
    // The running tasks and the store now share what they need of it, and
    // a reload re-reads the file: holding the rest for the whole run would
    // only cost memory.
    drop(config);
    if let Some(path) = options.textfile {
        tracing::info!(path = %path.display(), "writing textfile");
        let changes = store.subscribe();
        scheduler.spawn_aux(textfile::run(
            path,
            Arc::new(collector::registry(store.clone())),
            changes,
            cancel.clone(),
        ));
    }
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
    let supervisor = tokio::spawn(reload::supervise(
        scheduler,
        options.config_path,
        store.clone(),
        reload_rx,
        cancel.clone(),
    ));
    // The probes stop at the signal, beside the HTTP drain rather than
    // after it, so that both fit in the one grace period.
    let stopped = tokio::spawn(async move {
        match supervisor.await {
            Ok(scheduler) => scheduler.shutdown(SHUTDOWN_GRACE).await,
            Err(e) => tracing::error!(error = %e, "reload supervisor failed"),
        }
    });
    tracing::info!(
        address = %listener.local_addr()?,
        file_sources,
        endpoint_sources,
        max_connections = limit.max(),
        "listening"
    );
    let mut state = http::AppState::new(store);
    if options.enable_lifecycle {
        state = state.with_reload(reload_tx);
    }
    let state = Arc::new(state);
    let health = options.health.map(|listener| {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "health listener");
        }
        let stop = cancel.clone();
        tokio::spawn(http::serve_health(
            listener,
            http::health_router(state.clone()),
            limit.clone(),
            async move { stop.cancelled().await },
        ))
    });
    let stop = cancel.clone();
    let shutdown = async move {
        shutdown.await;
        stop.cancel();
    };
    let served = http::serve(listener, http::router(state), options.web, limit, shutdown).await;
    cancel.cancel();
    if let Some(health) = health {
        if let Ok(Err(e)) = health.await {
            tracing::warn!(error = %e, "health listener failed");
        }
    }
    if let Err(e) = stopped.await {
        tracing::error!(error = %e, "shutting the sources down failed");
    }
    served
}

//! certinel: a Prometheus exporter for X.509 certificate expiry.
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! config ─▶ scheduler ─▶ sources (files, endpoint) ─▶ snapshot ─┬▶ metrics ─┬▶ http
//!                                                               └▶ report ──┘
//! ```
//!
//! - [`config`]: the YAML file, validated (key path and line on every
//!   error) into a [`config::Config`]; it depends on no other stage.
//! - [`scheduler`]: one task per file source and per endpoint target,
//!   planned from the configuration (start = reload from nothing), with
//!   concurrency lanes and per-probe deadlines, and the on-demand probes
//!   of `/probe` (a lane of their own); [`reload`] re-reads the
//!   file on SIGHUP or HTTP request, [`watch`] wakes tasks on file changes.
//! - [`sources`]: [`sources::files`] reads PEM/DER files safely,
//!   [`sources::endpoint`] handshakes (STARTTLS, reason classification,
//!   restart-pending verdicts). Sources return results; they never touch
//!   the snapshot.
//! - [`snapshot`]: the latest results, published as an immutable snapshot
//!   that scrapes read without waiting.
//! - [`metrics`]: the metric contract rendered from the snapshot (every
//!   series through one uniqueness guard), and the render cache.
//! - [`report`]: the same snapshot as rows people and scripts read (one
//!   per certificate and place, one per source): what `certinel check`
//!   prints and `/status` and `/api/v1/...` serve.
//! - [`http`]: `/metrics`, `/probe`, the status page and its JSON API,
//!   health, reload, the listener with its limits and timeouts,
//!   certinel's own TLS and basic auth.
//!
//! Below them, shared by all: [`cert`] (X.509 → facts), `crypto`,
//! `filesystem` (reading untrusted files), `clock`, `text` (label-safe
//! text). [`check`] is the one-shot `certinel check`, built on the same
//! pipeline.

pub mod cert;
pub mod check;
pub mod cli;
mod clock;
pub mod config;
mod crypto;
mod filesystem;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
mod reload;
pub mod report;
pub mod scheduler;
pub mod snapshot;
pub mod sources;
mod text;
mod textfile;
mod watch;

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
    let store = Arc::new(Store::new());
    let cancel = CancellationToken::new();
    let concurrency = config.global.concurrency;
    // Probes waiting on silent servers hold sockets beyond the reserve:
    // as many as the descriptor limit leaves room for.
    let parking_room = http::parking_room(options.max_connections, concurrency);
    let scheduler =
        scheduler::Scheduler::start(&config, store.clone(), cancel.clone(), parking_room);
    let on_demand = scheduler.on_demand();
    let (file_sources, endpoint_sources) = (config.files.len(), config.endpoints.len());
    // /probe's permits are sockets too, beside the sources'.
    let probes = if config.probe.enabled {
        config.probe.max_concurrent
    } else {
        0
    };
    let parked = scheduler::parked_slots(concurrency).min(parking_room);
    let limit = http::ConnectionLimit::for_process(
        options.max_connections,
        http::reserve(concurrency)
            .saturating_add(parked)
            .saturating_add(probes),
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
            Arc::new(metrics::registry(store.clone())),
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
    let mut state = http::AppState::new(store).with_probe(on_demand);
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

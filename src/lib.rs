//! certinel: a Prometheus exporter for X.509 certificate expiry.
//!
//! The pipeline, one module per stage:
//! [`config`] → [`scheduler`] → [`sources`] (files, TLS endpoints) →
//! [`snapshot`] → [`collector`] → [`server`]. Certificates become facts in
//! [`cert`], which both sources share.

pub mod cert;
pub mod check;
pub mod cli;
pub mod collector;
pub mod config;
pub mod logging;
pub mod scheduler;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod textfile;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::snapshot::Store;

/// How long shutdown waits for in-flight probes before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Daemon options that are not part of the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where to write the node_exporter textfile, if anywhere.
    pub textfile: Option<PathBuf>,
}

/// Runs the daemon on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = Arc::new(Store::new(&config));
    let registry = Arc::new(collector::registry(store.clone(), config.metrics.clone()));
    let cancel = CancellationToken::new();
    let tasks = scheduler::spawn(&config, store.clone(), cancel.clone());
    if let Some(path) = options.textfile {
        tracing::info!(path = %path.display(), "writing textfile");
        let changes = store.subscribe();
        tasks.spawn(textfile::run(
            path,
            registry.clone(),
            changes,
            cancel.clone(),
        ));
    }
    tracing::info!(
        address = %listener.local_addr()?,
        file_sources = config.files.len(),
        endpoint_sources = config.endpoints.len(),
        "listening"
    );
    let state = Arc::new(server::AppState::new(registry, store));
    let served = server::serve(listener, state, shutdown).await;
    cancel.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "some probes did not stop in time");
    }
    served
}

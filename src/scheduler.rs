//! Runs the sources: one task per file source and one per endpoint target.
//!
//! Every task runs at once at start, then again after its interval with
//! ±10 % jitter, so a thousand targets drift apart instead of firing
//! together. A global semaphore bounds the probes (and file passes) in
//! flight; the per-probe deadline lives in [`tls::probe`]. A slow or dead
//! target only ever holds its own task and one permit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, EndpointSourceConfig, FileSourceConfig};
use crate::snapshot::Store;
use crate::sources::files::{self, FileCache, FileErrorReason, FileScan};
use crate::sources::tls::{self, AddressReport, TlsErrorReason};

/// Starts every source's task; they stop when `cancel` fires.
pub fn spawn(config: &Config, store: Arc<Store>, cancel: CancellationToken) -> TaskTracker {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.global.concurrency));
    for (index, source) in config.files.iter().enumerate() {
        tracker.spawn(file_loop(
            index,
            Arc::new(source.clone()),
            store.clone(),
            permits.clone(),
            cancel.clone(),
        ));
    }
    let offset = config.files.len();
    for (i, source) in config.endpoints.iter().enumerate() {
        let source = Arc::new(source.clone());
        for target in 0..source.targets.len() {
            tracker.spawn(target_loop(
                offset + i,
                target,
                source.clone(),
                store.clone(),
                permits.clone(),
                cancel.clone(),
            ));
        }
    }
    tracker.close();
    tracker
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// Sleeps for one jittered interval; false if cancelled meanwhile.
async fn pause(interval: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(jittered(interval)) => true,
        _ = cancel.cancelled() => false,
    }
}

/// What a file source's task keeps between passes.
#[derive(Default)]
struct FileState {
    cache: FileCache,
    last_errors: HashMap<PathBuf, FileErrorReason>,
}

/// Runs one pass of a file source and publishes it. The permit travels
/// with the blocking work, so a pass stuck on a hung mount keeps counting
/// against the limit until it returns.
async fn file_pass(
    index: usize,
    source: &Arc<FileSourceConfig>,
    store: &Store,
    permits: &Arc<Semaphore>,
    state: &mut FileState,
) {
    let Ok(permit) = permits.clone().acquire_owned().await else {
        return;
    };
    let started = Instant::now();
    let src = source.clone();
    let mut cache = std::mem::take(&mut state.cache);
    let pass = tokio::task::spawn_blocking(move || {
        let scan = files::scan(&src, &mut cache);
        drop(permit);
        (scan, cache)
    });
    match pass.await {
        Ok((scan, cache)) => {
            state.cache = cache;
            log_file_changes(&source.name, &scan, &mut state.last_errors);
            tracing::debug!(
                source = %source.name,
                files = scan.len(),
                duration = ?started.elapsed(),
                "file pass complete"
            );
            store.publish_files(index, scan, started.elapsed());
        }
        Err(e) => tracing::error!(source = %source.name, error = %e, "file pass aborted"),
    }
}

async fn file_loop(
    index: usize,
    source: Arc<FileSourceConfig>,
    store: Arc<Store>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let mut state = FileState::default();
    loop {
        tokio::select! {
            _ = file_pass(index, &source, &store, &permits, &mut state) => {}
            _ = cancel.cancelled() => return,
        }
        if !pause(source.interval, &cancel).await {
            return;
        }
    }
}

/// Logs files going bad (warn) and recovering (info); repeats stay quiet.
fn log_file_changes(source: &str, scan: &FileScan, last: &mut HashMap<PathBuf, FileErrorReason>) {
    let mut now = HashMap::new();
    for (path, report) in scan {
        match &report.error {
            Some(e) => {
                if last.get(path) != Some(&e.reason) {
                    tracing::warn!(
                        source,
                        path = %path.display(),
                        reason = %e.reason,
                        detail = %e.detail,
                        "certificate file unusable"
                    );
                }
                now.insert(path.clone(), e.reason);
            }
            None if last.contains_key(path) => {
                tracing::info!(source, path = %path.display(), "certificate file readable again");
            }
            None => {}
        }
    }
    *last = now;
}

/// Probes one target once and publishes the result.
async fn target_probe(
    (source_index, target_index): (usize, usize),
    source: &EndpointSourceConfig,
    store: &Store,
    permits: &Semaphore,
    last_errors: &mut HashMap<String, TlsErrorReason>,
) {
    let Some(target) = source.targets.get(target_index) else {
        return;
    };
    let Ok(permit) = permits.acquire().await else {
        return;
    };
    let reports = tls::probe(target, &source.tls, source.starttls, source.timeout).await;
    drop(permit);
    log_probe_changes(&source.name, &target.target, &reports, last_errors);
    store.publish_target(source_index, target_index, reports);
}

async fn target_loop(
    source_index: usize,
    target_index: usize,
    source: Arc<EndpointSourceConfig>,
    store: Arc<Store>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let mut last_errors = HashMap::new();
    let slot = (source_index, target_index);
    loop {
        tokio::select! {
            _ = target_probe(slot, &source, &store, &permits, &mut last_errors) => {}
            _ = cancel.cancelled() => return,
        }
        if !pause(source.interval, &cancel).await {
            return;
        }
    }
}

/// Runs every source exactly once, under the same concurrency limit and
/// deadlines as the daemon, and returns when all results are in `store`.
/// This is `certinel check`.
pub async fn run_once(config: &Config, store: Arc<Store>) {
    let permits = Arc::new(Semaphore::new(config.global.concurrency));
    let mut work = tokio::task::JoinSet::new();
    for (index, source) in config.files.iter().enumerate() {
        let (source, store, permits) = (Arc::new(source.clone()), store.clone(), permits.clone());
        work.spawn(async move {
            file_pass(index, &source, &store, &permits, &mut FileState::default()).await;
        });
    }
    let offset = config.files.len();
    for (i, source) in config.endpoints.iter().enumerate() {
        let source = Arc::new(source.clone());
        for target in 0..source.targets.len() {
            let (source, store, permits) = (source.clone(), store.clone(), permits.clone());
            work.spawn(async move {
                let slot = (offset + i, target);
                target_probe(slot, &source, &store, &permits, &mut HashMap::new()).await;
            });
        }
    }
    while work.join_next().await.is_some() {}
}

/// Logs addresses going bad (warn) and recovering (info); repeats stay
/// at debug so a thousand dead targets do not flood the log.
fn log_probe_changes(
    source: &str,
    target: &str,
    reports: &[AddressReport],
    last: &mut HashMap<String, TlsErrorReason>,
) {
    let mut now = HashMap::new();
    for r in reports {
        match &r.error {
            Some(e) if last.get(&r.address) != Some(&e.reason) => {
                tracing::warn!(
                    source,
                    target,
                    address = %r.address,
                    reason = %e.reason,
                    detail = %e.detail,
                    "probe failed"
                );
            }
            Some(e) => {
                tracing::debug!(source, target, address = %r.address, reason = %e.reason, "probe still failing");
            }
            None if last.contains_key(&r.address) => {
                tracing::info!(source, target, address = %r.address, "probe succeeded again");
            }
            None => {
                tracing::debug!(source, target, address = %r.address, duration = ?r.duration, "probe ok");
            }
        }
        if let Some(e) = &r.error {
            now.insert(r.address.clone(), e.reason);
        }
    }
    *last = now;
}

#[cfg(test)]
mod tests {
    use super::jittered;
    use std::time::Duration;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let base = Duration::from_secs(100);
        for _ in 0..1000 {
            let d = jittered(base);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}

//! The task of one file source: a pass now, then one per interval (with
//! jitter) or as soon as the watcher sees its files change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::jittered;
use crate::config::FileSourceConfig;
use crate::snapshot::{SourceId, Store};
use crate::sources::files::{self, FileCache, FileErrorReason, FileScan};

/// What a file source's task keeps between passes.
#[derive(Default)]
pub(super) struct FileState {
    cache: FileCache,
    last_errors: HashMap<Arc<Path>, FileErrorReason>,
}

/// Runs one pass of a file source and publishes it. The permit travels
/// with the blocking work, so a pass stuck on a hung mount keeps counting
/// against the limit until it returns.
pub(super) async fn file_pass(
    id: SourceId,
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
            store.publish_files(id, scan, started.elapsed());
        }
        Err(e) => tracing::error!(source = %source.name, error = %e, "file pass aborted"),
    }
}

/// Passes until cancelled.
pub(super) async fn file_loop(
    id: SourceId,
    source: Arc<FileSourceConfig>,
    store: Arc<Store>,
    permits: Arc<Semaphore>,
    poke: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut state = FileState::default();
    loop {
        tokio::select! {
            _ = file_pass(id, &source, &store, &permits, &mut state) => {}
            _ = cancel.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(source.interval)) => {}
            _ = poke.notified() => tracing::debug!(source = %source.name, "files changed"),
            _ = cancel.cancelled() => return,
        }
    }
}

/// Logs files going bad (warn) and recovering (info); repeats stay quiet.
fn log_file_changes(source: &str, scan: &FileScan, last: &mut HashMap<Arc<Path>, FileErrorReason>) {
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

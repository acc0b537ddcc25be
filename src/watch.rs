//! File watching: wake a file source as soon as its files change, instead
//! of waiting for its interval (which stays as the safety net).
//!
//! The directories holding the configured files are watched with `notify`
//! (inotify on Linux). Events arrive in bursts — a Kubernetes secret update
//! is a directory create, a symlink create, a rename and a delete — so they
//! are gathered for a short window and each affected source is woken once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, Notify};

/// How long to gather events before waking sources.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A running watcher; dropping it stops watching.
pub(crate) struct FileWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileWatcher")
    }
}

/// Directories (with whether to recurse) and the source to wake for them.
pub(crate) type Watched = Vec<(Vec<(PathBuf, bool)>, Arc<Notify>)>;

impl FileWatcher {
    /// Watches every directory of `watched`; `None` when there is nothing
    /// to watch or no watcher can be created (the periodic rescan still
    /// runs). Must be called within a Tokio runtime.
    pub(crate) fn start(watched: Watched) -> Option<FileWatcher> {
        if watched.is_empty() {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
        let handler = move |event: notify::Result<notify::Event>| match event {
            // inotify also reports opens and reads (notify watches
            // IN_OPEN): certinel's own pass would wake it again, forever.
            // Closing a file opened for writing is a change, though.
            Ok(event) if is_own_read(&event.kind) => {}
            Ok(event) => {
                for path in event.paths {
                    // The receiver is gone only while shutting down.
                    let _ = tx.send(path);
                }
            }
            Err(e) => tracing::debug!(error = %e, "file watch error"),
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; relying on periodic rescans");
                return None;
            }
        };
        let mut dirs: Vec<(PathBuf, bool)> = watched
            .iter()
            .flat_map(|(roots, _)| roots.clone())
            .collect();
        dirs.sort();
        dirs.dedup();
        for (dir, recursive) in &dirs {
            let mode = if *recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            if let Err(e) = watcher.watch(dir, mode) {
                // Typically the directory does not exist (yet): the
                // periodic rescan will notice when it does.
                tracing::debug!(dir = %dir.display(), error = %e, "not watching directory");
            }
        }
        runtime.spawn(route(rx, watched));
        Some(FileWatcher { _watcher: watcher })
    }
}

/// Opens, reads and closes of files opened for reading: what a scan does.
fn is_own_read(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

/// Wakes the sources whose directories saw events, once per burst.
async fn route(mut rx: mpsc::UnboundedReceiver<PathBuf>, watched: Watched) {
    while let Some(first) = rx.recv().await {
        let mut paths = vec![first];
        let window = tokio::time::sleep(DEBOUNCE);
        tokio::pin!(window);
        loop {
            tokio::select! {
                _ = &mut window => break,
                next = rx.recv() => match next {
                    Some(p) => paths.push(p),
                    None => break,
                },
            }
        }
        for (roots, poke) in &watched {
            let hit = paths
                .iter()
                .any(|p| roots.iter().any(|(root, _)| p.starts_with(root)));
            if hit {
                poke.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_own_read;
    use notify::event::{AccessKind, AccessMode, CreateKind, EventKind};

    #[test]
    fn reads_are_ignored_but_writes_are_not() {
        assert!(is_own_read(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(is_own_read(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_own_read(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_own_read(&EventKind::Create(CreateKind::File)));
    }
}

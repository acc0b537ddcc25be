//! node_exporter textfile output (`--textfile.output`): the same metrics,
//! in Prometheus text format, rewritten atomically after results change.
//!
//! Hosts that already run node_exporter can collect certinel's metrics
//! through its textfile collector instead of a second scrape target.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// At most one write per this interval: bursts of probe results (a
/// thousand targets finishing their first pass) become one write.
const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Errors writing the textfile.
#[derive(Debug, thiserror::Error)]
pub enum TextfileError {
    /// Encoding the registry failed.
    #[error("encoding metrics failed")]
    Encode,
    /// Writing or renaming the file failed.
    #[error("writing {path}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Renders the registry as Prometheus text format.
pub(crate) fn render(registry: &Registry) -> Result<String, TextfileError> {
    let mut om = String::new();
    metrics::encode(registry, &mut om).map_err(|_| TextfileError::Encode)?;
    Ok(metrics::to_prometheus_text(&om))
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, synced, then renamed over the target, so the textfile
/// collector never reads half a file. The temporary name starts with a dot
/// and does not end in `.prom`, so the collector ignores it.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), TextfileError> {
    let err = |source| TextfileError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "certinel.prom".to_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        // World-readable whatever the umask (systemd units often set
        // 0077): node_exporter runs as another user and must read it.
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Rewrites `path` whenever `changes` fires, until cancelled.
pub(crate) async fn run(
    path: PathBuf,
    registry: Arc<Registry>,
    mut changes: watch::Receiver<u64>,
    cancel: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = cancel.cancelled() => return,
        }
        changes.borrow_and_update();
        let (path, registry) = (path.clone(), registry.clone());
        let written = tokio::task::spawn_blocking(move || {
            render(&registry).and_then(|text| write_atomic(&path, &text))
        })
        .await;
        match written {
            Ok(Ok(())) => {
                if failing {
                    tracing::info!("textfile written again");
                }
                failing = false;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::error!(
                        error = &e as &dyn std::error::Error,
                        "cannot write textfile"
                    );
                }
                failing = true;
            }
            Err(e) => tracing::error!(error = %e, "textfile writer aborted"),
        }
        tokio::select! {
            _ = tokio::time::sleep(MIN_WRITE_INTERVAL) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certinel.prom");
        write_atomic(&path, "a 1\n").unwrap();
        write_atomic(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_directory_is_an_error_not_a_panic() {
        let e = write_atomic(std::path::Path::new("/nonexistent/dir/x.prom"), "a 1\n");
        assert!(e.is_err());
    }
}

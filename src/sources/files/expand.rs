//! Paths, directories and globs → the files they name, now.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::{FileErrorReason, FileReport};
use crate::config::{FilePattern, PatternKind};

/// Paths found while expanding patterns, before they are read.
pub(super) type Found = BTreeMap<ByBytes, Option<FileReport>>;

/// A path ordered by its bytes: a memcmp instead of `Path`'s
/// component-by-component comparison, which dominated unchanged rescans
/// of large trees. Only deduplication needs an order here; the published
/// scan is re-sorted by `Path` order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ByBytes(pub(super) PathBuf);

impl Ord for ByBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .as_os_str()
            .as_encoded_bytes()
            .cmp(other.0.as_os_str().as_encoded_bytes())
    }
}

impl PartialOrd for ByBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Adds the files a pattern names to `found`; `Some(report)` marks a path
/// whose error was already found while expanding.
pub(super) fn expand(pattern: &FilePattern, found: &mut Found) {
    match pattern.kind() {
        PatternKind::Literal(path) => match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => list_dir(path, found),
            // Missing files are reported: the user named this one.
            _ => {
                found.entry(ByBytes(path.clone())).or_insert(None);
            }
        },
        PatternKind::Glob {
            root,
            matcher,
            max_depth,
            skip_dirs,
        } => {
            let mut walk = WalkDir::new(root).follow_links(true).min_depth(1);
            if let Some(depth) = max_depth {
                walk = walk.max_depth(*depth);
            }
            // `..data` and the timestamped `..2026_…` directories of
            // Kubernetes secret volumes hold the same files as the visible
            // symlinks; walking them would report every certificate thrice
            // under paths that change with each rotation.
            let walk = walk.into_iter().filter_entry(|e| {
                e.depth() == 0 || !e.file_name().to_string_lossy().starts_with("..")
            });
            for entry in walk {
                match entry {
                    Ok(e) => {
                        if !matcher.is_match(e.path()) {
                            continue;
                        }
                        if *skip_dirs && e.file_type().is_dir() {
                            continue;
                        }
                        found.entry(ByBytes(e.path().to_owned())).or_insert(None);
                    }
                    // Only entries the glob would have matched are worth
                    // reporting (a dangling README.md link beside `*.crt`
                    // is none of our business); unreadable directories are,
                    // since they may hide matches.
                    Err(err) => {
                        let relevant = err.path().is_some_and(|p| {
                            matcher.is_match(p)
                                || err
                                    .io_error()
                                    .is_some_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
                        });
                        if relevant || err.loop_ancestor().is_some() {
                            walk_error(&err, root, found);
                        }
                    }
                }
            }
        }
    }
}

fn walk_error(err: &walkdir::Error, root: &Path, found: &mut Found) {
    if let Some(ancestor) = err.loop_ancestor() {
        tracing::debug!(path = ?err.path(), ancestor = %ancestor.display(), "symlink loop skipped");
        return;
    }
    let Some(path) = err.path() else { return };
    if path == root {
        // A glob whose fixed part does not exist matches nothing; that is
        // not an error (the directory may appear later).
        tracing::debug!(path = %path.display(), "glob root not readable; nothing matched");
        return;
    }
    let (reason, detail) = match err.io_error() {
        Some(io) => (FileErrorReason::from_io(io), io.to_string()),
        None => (FileErrorReason::ReadFailed, err.to_string()),
    };
    found
        .entry(ByBytes(path.to_owned()))
        .or_insert(Some(FileReport::failed(reason, detail)));
}

fn list_dir(dir: &Path, found: &mut Found) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.insert(
                ByBytes(dir.to_owned()),
                Some(FileReport::failed(
                    FileErrorReason::from_io(&e),
                    e.to_string(),
                )),
            );
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Kubernetes secret volumes hold `..data` and timestamped
        // directories beside the symlinks users care about; a directory
        // inside a watched directory is not a certificate file.
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let hidden = entry.file_name().to_string_lossy().starts_with("..");
        if !is_dir && !hidden {
            found.entry(ByBytes(path)).or_insert(None);
        }
    }
}

//! Reading one file: the safety checks of [`filesystem`], the cache of
//! unchanged files, and every failure turned into a [`FileReport`].

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileError, FileErrorReason, FileReport};
use crate::cert;
use crate::filesystem::{self, FileIdentity, ReadError};

/// Results of the previous pass, keyed by path, so unchanged files are not
/// read again. Owned by the source's task; only files seen in the latest
/// pass are kept, so deleted files do not linger.
#[derive(Debug, Default)]
pub struct FileCache {
    entries: Entries,
}

/// A cache's contents: a file's identity when it was read, and the result.
pub(super) type Entries = HashMap<PathBuf, (FileIdentity, Arc<FileReport>)>;

impl FileCache {
    /// Keeps exactly `next`: the files of the latest pass.
    pub(super) fn replace(&mut self, next: Entries) {
        self.entries = next;
    }
}

/// Stats `path` (following symlinks) and checks it may be read: a regular
/// file no larger than `cap`.
fn stat_readable(path: &Path, cap: u64) -> Result<Metadata, FileReport> {
    filesystem::stat_regular(path, cap).map_err(|e| read_failure(path, e))
}

/// Reads and decodes one file with the same safety checks as a scan,
/// without a cache. Blocking.
pub fn read_one(path: &Path, cap: u64) -> FileReport {
    match stat_readable(path, cap) {
        Ok(_) => read_file(path, cap),
        Err(report) => report,
    }
}

pub(super) fn read_cached(
    path: &Path,
    cap: u64,
    cache: &FileCache,
    next: &mut Entries,
) -> Arc<FileReport> {
    let meta = match stat_readable(path, cap) {
        Ok(m) => m,
        Err(report) => return Arc::new(report),
    };
    let fingerprint = FileIdentity::of(&meta);
    if let Some((fp, report)) = cache.entries.get(path) {
        // A file rewritten in place within one timestamp tick keeps its
        // size and times; only trust the cache for files that have been
        // quiet for a while (git's "racy clean" rule).
        if *fp == fingerprint && !recently_modified(&meta) {
            next.insert(path.to_owned(), (fingerprint, report.clone()));
            return report.clone();
        }
    }
    let report = Arc::new(read_file(path, cap));
    next.insert(path.to_owned(), (fingerprint, report.clone()));
    report
}

/// Content modified within the last two seconds. A rewrite after that
/// moves mtime past the cached value, so older files are safe to trust.
fn recently_modified(meta: &Metadata) -> bool {
    meta.modified().ok().is_none_or(|t| {
        std::time::SystemTime::now()
            .duration_since(t)
            .map_or(true, |age| age < std::time::Duration::from_secs(2))
    })
}

fn read_file(path: &Path, cap: u64) -> FileReport {
    let bytes = match filesystem::read_regular(path, cap) {
        Ok(bytes) => bytes,
        Err(e) => return read_failure(path, e),
    };
    let bundle = cert::decode_bundle(&bytes);
    FileReport {
        certs: bundle.certs,
        error: bundle.error.map(|e| FileError {
            reason: FileErrorReason::from_decode(&e),
            detail: e.to_string(),
        }),
    }
}

fn read_failure(path: &Path, e: ReadError) -> FileReport {
    match e {
        ReadError::Io(e) => io_failure(path, &e),
        ReadError::NotRegular(_) => {
            FileReport::failed(FileErrorReason::NotRegularFile, e.to_string())
        }
        ReadError::TooLarge { size, cap } => FileReport::failed(
            FileErrorReason::TooLarge,
            format!("{size} bytes exceeds max_file_size of {cap} bytes"),
        ),
        ReadError::Grew { cap } => FileReport::failed(
            FileErrorReason::TooLarge,
            format!("grew past max_file_size of {cap} bytes while being read"),
        ),
    }
}

fn io_failure(path: &Path, e: &io::Error) -> FileReport {
    let mut reason = FileErrorReason::from_io(e);
    let mut detail = e.to_string();
    // A dangling symlink reports NotFound for its target; say so.
    if reason == FileErrorReason::NotFound
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    {
        detail = "broken symlink (target does not exist)".to_owned();
    }
    if e.raw_os_error() == Some(libc::ELOOP) {
        reason = FileErrorReason::ReadFailed;
        detail = "symlink loop".to_owned();
    }
    FileReport::failed(reason, detail)
}

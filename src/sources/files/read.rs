//! Reading one file: the safety checks of [`filesystem`], the cache of
//! unchanged files, decoding in the source's `format`, and every failure
//! turned into a [`FileReport`].

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::password::Password;
use super::{kubeconfig, FileError, FileErrorReason, FileReport};
use crate::cert::{self, Bundle, DecodeError, Decoded, Format};
use crate::filesystem::{self, FileIdentity, ReadError};

/// Results of the previous pass, keyed by path, so unchanged files are not
/// read again. Owned by the source's task; only files seen in the latest
/// pass are kept, so deleted files do not linger.
#[derive(Debug, Default)]
pub struct FileCache {
    entries: Entries,
}

/// A cache's contents, by path.
pub(super) type Entries = HashMap<Arc<Path>, Cached>;

/// A file's identity when it was read, what else its result depends on,
/// and the result.
#[derive(Debug)]
pub(super) struct Cached {
    identity: FileIdentity,
    dependencies: Box<[Dependency]>,
    report: Arc<FileReport>,
}

/// Another file a result was decoded with: a kubeconfig's referenced
/// certificate, the keystore password. A change to it invalidates the
/// result as a change to the file itself would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dependency {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Its identity when read; `None` when it could not be `stat`ed.
    pub(crate) identity: Option<FileIdentity>,
}

impl Dependency {
    /// Whether the file is as it was, and quiet enough to trust that.
    fn unchanged(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => Some(FileIdentity::of(&meta)) == self.identity && !recently_modified(&meta),
            Err(_) => self.identity.is_none(),
        }
    }
}

/// How the files of one pass are read.
#[derive(Debug)]
pub(crate) struct Reading<'a> {
    /// `max_file_size`, for the files and what they reference.
    pub(crate) cap: u64,
    /// The source's `format`.
    pub(crate) format: Format,
    /// The keystore password for this pass.
    pub(crate) password: &'a Password,
    /// The password file, when there is one.
    pub(crate) password_file: Option<&'a Dependency>,
}

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

/// Reads and decodes one PEM/DER file with the same safety checks as a
/// scan, without a cache. Blocking.
pub fn read_one(path: &Path, cap: u64) -> FileReport {
    let reading = Reading {
        cap,
        format: Format::Pem,
        password: &Password::None,
        password_file: None,
    };
    match stat_readable(path, cap) {
        Ok(_) => read_file(path, &reading).0,
        Err(report) => report,
    }
}

pub(super) fn read_cached(
    path: &Arc<Path>,
    reading: &Reading<'_>,
    cache: &FileCache,
    next: &mut Entries,
) -> Arc<FileReport> {
    let meta = match stat_readable(path, reading.cap) {
        Ok(m) => m,
        Err(report) => return Arc::new(report),
    };
    let identity = FileIdentity::of(&meta);
    if let Some(cached) = cache.entries.get(path) {
        // A file rewritten in place within one timestamp tick keeps its
        // size and times; only trust the cache for files that have been
        // quiet for a while (git's "racy clean" rule).
        if cached.identity == identity
            && !recently_modified(&meta)
            && cached.dependencies.iter().all(Dependency::unchanged)
        {
            let report = cached.report.clone();
            next.insert(
                path.clone(),
                Cached {
                    identity,
                    dependencies: cached.dependencies.clone(),
                    report: report.clone(),
                },
            );
            return report;
        }
    }
    let (mut report, dependencies) = read_file(path, reading);
    report.shrink_to_fit();
    let report = Arc::new(report);
    next.insert(
        path.clone(),
        Cached {
            identity,
            dependencies: dependencies.into(),
            report: report.clone(),
        },
    );
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

/// Reads and decodes `path`; returns the report and the other files it
/// was decoded with.
fn read_file(path: &Path, reading: &Reading<'_>) -> (FileReport, Vec<Dependency>) {
    let mut dependencies: Vec<Dependency> = reading.password_file.into_iter().cloned().collect();
    let bytes = match filesystem::read_regular(path, reading.cap) {
        Ok(bytes) => bytes,
        Err(e) => return (read_failure(path, e), dependencies),
    };
    let password = match reading.password {
        Password::Text(secret) => Some(secret.bytes()),
        Password::None | Password::Unavailable(_) => None,
    };
    let report = match cert::decode_file(&bytes, reading.format, password) {
        Decoded::Bundle(mut bundle) => {
            // Say why there is no password, when one is configured.
            if let (Some(DecodeError::PassphraseRequired(_)), Password::Unavailable(why)) =
                (&bundle.error, reading.password)
            {
                bundle.error = Some(DecodeError::PassphraseRequired(why.clone()));
            }
            report_of(bundle)
        }
        Decoded::Kubeconfig(entries) => {
            kubeconfig::assemble(path, entries, reading.cap, &mut dependencies)
        }
    };
    (report, dependencies)
}

/// A decoded bundle as a file's report.
pub(super) fn report_of(bundle: Bundle) -> FileReport {
    FileReport {
        certs: bundle.certs,
        error: bundle.error.map(|e| decode_failure(&e)),
        crls: bundle.crls,
        roles: Vec::new(),
    }
}

/// A decoding problem as a file error.
pub(super) fn decode_failure(e: &DecodeError) -> FileError {
    FileError {
        reason: FileErrorReason::from_decode(e),
        detail: e.to_string(),
    }
}

pub(super) fn read_failure(path: &Path, e: ReadError) -> FileReport {
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

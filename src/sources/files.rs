//! The file source: expand paths, directories and globs, read each file
//! safely, decode its certificates.
//!
//! A file is only opened once its metadata says it is a regular file no
//! larger than the cap, and it is opened non-blocking, so a FIFO or a device
//! swapped in behind our back can never hang a pass. Each result is cached
//! against the file's identity (device, inode, size, mtime, ctime): an
//! unchanged file costs one `stat`, not a read and a parse.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use crate::cert::{self, CertFacts, DecodeError};
use crate::config::FileSourceConfig;
use crate::filesystem::{self, FileIdentity, ReadError};

/// Why a file cannot be used: the closed `reason` set of
/// `certinel_file_error_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileErrorReason {
    /// The path does not exist (or is a broken symlink).
    NotFound,
    /// No permission to read it (or to list its directory).
    PermissionDenied,
    /// A directory, FIFO, socket or device where a file was expected.
    NotRegularFile,
    /// Larger than the configured `max_file_size`.
    TooLarge,
    /// Any other I/O failure, a symlink loop among them.
    ReadFailed,
    /// PEM armour present but broken.
    BadPem,
    /// A certificate block that does not decode.
    DecodeFailed,
    /// Readable, but no certificate in it.
    NoCertificateFound,
}

impl FileErrorReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileErrorReason::NotFound => "not_found",
            FileErrorReason::PermissionDenied => "permission_denied",
            FileErrorReason::NotRegularFile => "not_regular_file",
            FileErrorReason::TooLarge => "too_large",
            FileErrorReason::ReadFailed => "read_failed",
            FileErrorReason::BadPem => "bad_pem",
            FileErrorReason::DecodeFailed => "decode_failed",
            FileErrorReason::NoCertificateFound => "no_certificate_found",
        }
    }

    fn from_io(e: &io::Error) -> FileErrorReason {
        match e.kind() {
            io::ErrorKind::NotFound => FileErrorReason::NotFound,
            io::ErrorKind::PermissionDenied => FileErrorReason::PermissionDenied,
            _ => FileErrorReason::ReadFailed,
        }
    }

    fn from_decode(e: &DecodeError) -> FileErrorReason {
        match e {
            DecodeError::BadPem(_) => FileErrorReason::BadPem,
            DecodeError::DecodeFailed(_) => FileErrorReason::DecodeFailed,
            DecodeError::NoCertificateFound => FileErrorReason::NoCertificateFound,
        }
    }
}

impl fmt::Display for FileErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file problem: the reason for the metric, the detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The contract reason.
    pub reason: FileErrorReason,
    /// Human detail ("missing END line", the OS error, …).
    pub detail: String,
}

/// What one file yielded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileReport {
    /// Certificates in file order.
    pub certs: Vec<Arc<CertFacts>>,
    /// Set while the file cannot be (fully) used.
    pub error: Option<FileError>,
}

impl FileReport {
    fn failed(reason: FileErrorReason, detail: impl Into<String>) -> FileReport {
        FileReport {
            certs: Vec::new(),
            error: Some(FileError {
                reason,
                detail: detail.into(),
            }),
        }
    }
}

/// The result of one pass over a file source: every file it matched.
pub type FileScan = BTreeMap<PathBuf, Arc<FileReport>>;

/// Paths found while expanding patterns, before they are read.
type Found = BTreeMap<ByBytes, Option<FileReport>>;

/// A path ordered by its bytes: a memcmp instead of `Path`'s
/// component-by-component comparison, which dominated unchanged rescans
/// of large trees. Only deduplication needs an order here; the published
/// scan is re-sorted by `Path` order.
#[derive(Debug, PartialEq, Eq)]
struct ByBytes(PathBuf);

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

/// One entry of `paths:`, compiled.
#[derive(Debug, Clone)]
pub struct FilePattern {
    display: String,
    kind: PatternKind,
}

#[derive(Debug, Clone)]
enum PatternKind {
    /// A file, or a directory whose direct entries are read.
    Literal(PathBuf),
    /// A glob: walk `root` (to `max_depth`, unbounded for `**`), keep matches.
    Glob {
        root: PathBuf,
        matcher: GlobMatcher,
        max_depth: Option<usize>,
        /// `dir/*` and `dir/**` mean "the files in there": directories they
        /// match are walked, not reported as errors.
        skip_dirs: bool,
    },
}

impl PartialEq for FilePattern {
    fn eq(&self, other: &Self) -> bool {
        self.display == other.display
    }
}

impl fmt::Display for FilePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl FilePattern {
    /// Compiles `absolute` (the configured `raw` pattern made absolute).
    pub fn new(raw: &str, absolute: &Path) -> Result<FilePattern, String> {
        let display = absolute.to_string_lossy().into_owned();
        if !is_glob(&display) {
            return Ok(FilePattern {
                display,
                kind: PatternKind::Literal(absolute.to_owned()),
            });
        }
        let mut root = PathBuf::new();
        let mut rest = Vec::new();
        for c in absolute.components() {
            let s = c.as_os_str().to_string_lossy();
            if rest.is_empty() && !is_glob(&s) {
                root.push(c);
            } else {
                rest.push(s.into_owned());
            }
        }
        let max_depth = if rest.iter().any(|c| c.contains("**")) {
            None
        } else {
            Some(rest.len())
        };
        let skip_dirs = matches!(rest.last().map(String::as_str), Some("*" | "**"));
        let matcher = GlobBuilder::new(&display)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("invalid glob {raw:?}: {}", e.kind()))?
            .compile_matcher();
        Ok(FilePattern {
            display,
            kind: PatternKind::Glob {
                root,
                matcher,
                max_depth,
                skip_dirs,
            },
        })
    }
}

impl FilePattern {
    /// Directories whose changes can change what this pattern yields, and
    /// whether to watch them recursively. A file's *directory* is watched,
    /// not the file: Kubernetes secret volumes swap a `..data` symlink and
    /// editors and certbot replace files by rename, which a watch on the
    /// old inode would miss.
    pub fn watch_roots(&self) -> Vec<(PathBuf, bool)> {
        match &self.kind {
            PatternKind::Literal(path) => {
                let mut roots = Vec::with_capacity(2);
                if let Some(parent) = path.parent() {
                    roots.push((parent.to_owned(), false));
                }
                if path.is_dir() {
                    roots.push((path.clone(), false));
                }
                roots
            }
            PatternKind::Glob {
                root, max_depth, ..
            } => vec![(root.clone(), max_depth.is_none_or(|d| d > 1))],
        }
    }
}

/// `exclude:` globs, matched against the absolute path of each file.
#[derive(Debug, Clone)]
pub struct ExcludeSet {
    set: GlobSet,
    patterns: Vec<String>,
}

impl ExcludeSet {
    /// Compiles exclude patterns. A pattern that is neither absolute nor
    /// starts with `**` matches at any depth (`*.key` = `**/*.key`), as in
    /// `.gitignore`.
    pub fn new(patterns: &[String]) -> Result<ExcludeSet, String> {
        let mut builder = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for p in patterns {
            let full = if p.starts_with('/') || p.starts_with("**") {
                p.clone()
            } else {
                format!("**/{p}")
            };
            let glob = GlobBuilder::new(&full)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("invalid exclude glob {p:?}: {}", e.kind()))?;
            builder.add(glob);
            kept.push(full);
        }
        let set = builder
            .build()
            .map_err(|e| format!("invalid exclude globs: {e}"))?;
        Ok(ExcludeSet {
            set,
            patterns: kept,
        })
    }

    /// The patterns as matched (relative ones prefixed with `**/`).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    fn is_excluded(&self, path: &Path) -> bool {
        !self.patterns.is_empty() && self.set.is_match(path)
    }
}

/// Results of the previous pass, keyed by path, so unchanged files are not
/// read again. Owned by the source's task; only files seen in the latest
/// pass are kept, so deleted files do not linger.
#[derive(Debug, Default)]
pub struct FileCache {
    entries: HashMap<PathBuf, (FileIdentity, Arc<FileReport>)>,
}

/// Runs one pass over a file source. Blocking: call it from a blocking
/// thread. Never fails as a whole — every problem is a per-file report.
pub fn scan(source: &FileSourceConfig, cache: &mut FileCache) -> FileScan {
    let mut found: Found = BTreeMap::new();
    for pattern in &source.paths {
        expand(pattern, &mut found);
    }
    let mut next = HashMap::with_capacity(found.len());
    let mut out = Vec::with_capacity(found.len());
    for (ByBytes(path), preset) in found {
        if source.exclude.is_excluded(&path) {
            continue;
        }
        let report = match preset {
            Some(report) => Arc::new(report),
            None => read_cached(&path, source.max_file_size, cache, &mut next),
        };
        out.push((path, report));
    }
    cache.entries = next;
    // Bulk-built from nearly sorted input: cheaper than n inserts.
    out.into_iter().collect()
}

/// Adds the files a pattern names to `found`; `Some(report)` marks a path
/// whose error was already found while expanding.
fn expand(pattern: &FilePattern, found: &mut Found) {
    match &pattern.kind {
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

fn read_cached(
    path: &Path,
    cap: u64,
    cache: &FileCache,
    next: &mut HashMap<PathBuf, (FileIdentity, Arc<FileReport>)>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &Path) -> FilePattern {
        FilePattern::new(&p.to_string_lossy(), p).unwrap()
    }

    fn source(paths: Vec<FilePattern>, exclude: &[&str]) -> FileSourceConfig {
        let exclude: Vec<String> = exclude.iter().map(|s| (*s).to_owned()).collect();
        FileSourceConfig {
            name: "t".into(),
            paths,
            exclude: ExcludeSet::new(&exclude).unwrap(),
            interval: std::time::Duration::from_secs(60),
            max_file_size: 1024,
        }
    }

    #[test]
    fn recursive_glob_and_exclude() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/x.pem"), "x").unwrap();
        std::fs::write(dir.path().join("a/y.pem"), "y").unwrap();
        std::fs::write(dir.path().join("a/b/z.key"), "z").unwrap();
        let src = source(vec![pattern(&dir.path().join("**/*"))], &["*.key"]);
        let scan = scan(&src, &mut FileCache::default());
        let names: Vec<_> = scan
            .keys()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["a/b/x.pem", "a/y.pem"]);
    }

    #[test]
    fn single_star_does_not_cross_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("top.crt"), "x").unwrap();
        std::fs::write(dir.path().join("sub/deep.crt"), "x").unwrap();
        let scan = scan(
            &source(vec![pattern(&dir.path().join("*.crt"))], &[]),
            &mut FileCache::default(),
        );
        assert_eq!(scan.len(), 1);
    }

    #[test]
    fn unchanged_file_is_served_from_cache() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.pem");
        std::fs::write(&f, "not a cert").unwrap();
        // Old enough for the cache to trust it (see `recently_modified`).
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let src = source(vec![pattern(&f)], &[]);
        let mut cache = FileCache::default();
        let first = scan(&src, &mut cache);
        let second = scan(&src, &mut cache);
        assert!(Arc::ptr_eq(&first[&f], &second[&f]));
    }

    #[test]
    fn freshly_modified_file_is_read_again_even_with_the_same_stat() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.pem");
        std::fs::write(&f, "not a cert").unwrap();
        let src = source(vec![pattern(&f)], &[]);
        let mut cache = FileCache::default();
        let first = scan(&src, &mut cache);
        let second = scan(&src, &mut cache);
        assert!(!Arc::ptr_eq(&first[&f], &second[&f]));
    }

    #[test]
    fn missing_literal_path_is_not_found_and_missing_glob_root_is_silent() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(
            vec![
                pattern(&dir.path().join("absent.crt")),
                pattern(&dir.path().join("nodir/*.crt")),
            ],
            &[],
        );
        let scan = scan(&src, &mut FileCache::default());
        assert_eq!(scan.len(), 1);
        let report = &scan[&dir.path().join("absent.crt")];
        assert_eq!(
            report.error.as_ref().unwrap().reason,
            FileErrorReason::NotFound
        );
    }
}

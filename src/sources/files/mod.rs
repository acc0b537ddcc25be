//! The file source: expand paths, directories and globs (`expand`),
//! read each file safely (`read`), decode its certificates and CRLs in the
//! source's `format` — keystores opened with the source's `password`, a
//! kubeconfig's referenced files read like any other (`kubeconfig`).
//!
//! A file is only opened once its metadata says it is a regular file no
//! larger than the cap, and it is opened non-blocking, so a FIFO or a device
//! swapped in behind our back can never hang a pass. Each result is cached
//! against the file's identity (device, inode, size, mtime, ctime): an
//! unchanged file costs one `stat`, not a read and a parse. Every problem
//! is a per-file report with a reason from the closed set in `reason`.

mod expand;
mod kubeconfig;
mod password;
mod read;
mod reason;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::cert::{CertFacts, CrlFacts};
use crate::config::FileSourceConfig;

use expand::{expand, ByBytes, Found};
pub use kubeconfig::CertRole;
use password::Password;
use read::{read_cached, Reading};
pub use read::{read_one, FileCache};
pub use reason::{FileError, FileErrorReason};

/// What one file yielded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileReport {
    /// Certificates in file (or store) order.
    pub certs: Vec<Arc<CertFacts>>,
    /// Set while the file cannot be (fully) used.
    pub error: Option<FileError>,
    /// CRLs in file order.
    pub crls: Vec<CrlFacts>,
    /// For a kubeconfig, the role of each certificate (parallel to
    /// `certs`); empty for other files.
    pub roles: Vec<Arc<CertRole>>,
}

impl FileReport {
    /// Gives back the spare capacity of its vectors before the report is
    /// kept for as long as the file is unchanged: a vector grown by one
    /// push holds room for four, and a file of one certificate is the
    /// common case (16 bytes a file at 100 000 files).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.certs.shrink_to_fit();
        self.crls.shrink_to_fit();
        self.roles.shrink_to_fit();
    }

    pub(crate) fn failed(reason: FileErrorReason, detail: impl Into<String>) -> FileReport {
        FileReport {
            error: Some(FileError {
                reason,
                detail: detail.into(),
            }),
            ..FileReport::default()
        }
    }

    /// The reason this file is in error at `now_s` (Unix seconds): its
    /// read or decoding problem, else `crl_stale` when one of its CRLs is
    /// past its `nextUpdate`. Staleness comes with the clock, not with a
    /// pass, which is why it is not stored in `error`.
    pub fn reason_at(&self, now_s: i64) -> Option<FileErrorReason> {
        match &self.error {
            Some(e) => Some(e.reason),
            None if self.crls.iter().any(|c| c.is_stale(now_s)) => Some(FileErrorReason::CrlStale),
            None => None,
        }
    }
}

/// The result of one pass over a file source: every file it matched. The
/// paths are the same allocations as the source's [`FileCache`] keys: at
/// 100 000 files, one copy of each path instead of two.
pub type FileScan = BTreeMap<Arc<Path>, Arc<FileReport>>;

/// Runs one pass over a file source. Blocking: call it from a blocking
/// thread. Never fails as a whole — every problem is a per-file report.
pub fn scan(source: &FileSourceConfig, cache: &mut FileCache) -> FileScan {
    let mut found: Found = BTreeMap::new();
    for pattern in &source.paths {
        expand(pattern, &mut found);
    }
    let mut next = HashMap::with_capacity(found.len());
    let mut out = Vec::with_capacity(found.len());
    let (password, password_file) = Password::load(source.password.as_ref());
    let reading = Reading {
        cap: source.max_file_size,
        format: source.format,
        password: &password,
        password_file: password_file.as_ref(),
    };
    for (ByBytes(path), preset) in found {
        if source.exclude.is_excluded(&path) {
            continue;
        }
        let path: Arc<Path> = Arc::from(path);
        let report = match preset {
            Some(report) => Arc::new(report),
            None => read_cached(&path, &reading, cache, &mut next),
        };
        out.push((path, report));
    }
    cache.replace(next);
    // Bulk-built from nearly sorted input: cheaper than n inserts.
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExcludeSet, FilePattern};
    use std::path::Path;

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
            format: crate::config::Format::Auto,
            password: None,
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
        assert!(Arc::ptr_eq(&first[f.as_path()], &second[f.as_path()]));
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
        assert!(!Arc::ptr_eq(&first[f.as_path()], &second[f.as_path()]));
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
        let report = &scan[dir.path().join("absent.crt").as_path()];
        assert_eq!(
            report.error.as_ref().unwrap().reason,
            FileErrorReason::NotFound
        );
    }
}

//! The file source on real files in temporary directories, by area: each
//! behaviour first through the library (`files::scan`, every pass bounded
//! in time), then through the real binary and `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use certinel::config::{Config, FileSourceConfig};
use certinel::sources::files::{scan, FileCache, FileErrorReason, FileReport, FileScan};

use crate::common::*;

/// Every bad input of the contract's `reason` set, each beside a good file
/// that must stay exported; permissions; what the daemon survives.
mod bad_inputs;
/// The stat cache and the daemon following rewrites, renames and deletions
/// between passes.
mod changes;
/// PEM bundles, DER, combined cert+key files, CRLF; serial numbers; the
/// full label set of a bundle on `/metrics`.
mod formats;
/// PKCS#12 and JKS keystores from openssl, keytool and cert-manager's
/// layout: store order, passwords and their reasons, `certinel check`.
mod keystores;
/// kubeconfigs (embedded and referenced certificates, their roles) and
/// CRLs (update times, issuer, staleness) from openssl.
mod kubeconfigs_and_crls;
/// Globs, excludes, duplicates, relative paths, symlink loops and the
/// kubelet's secret volumes.
mod paths;

/// Upper bound for any single library-level pass: a pass that blocks (on a
/// FIFO, a device, a loop) fails the test instead of hanging the suite.
const SCAN_DEADLINE: Duration = Duration::from_secs(10);
/// How long the daemon gets to publish what a test expects.
const METRICS_DEADLINE: Duration = Duration::from_secs(20);

/// The single file source of `yaml`, parsed with `dir` as the config
/// file's directory.
fn file_source(dir: &Path, yaml: &str) -> FileSourceConfig {
    let config = Config::from_yaml(yaml, dir).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(config.files.len(), 1, "{yaml}");
    config.files[0].clone()
}

/// A one-source config listing `paths` (quoted: globs start with `*`).
fn yaml_paths(paths: &[&str], extra: &str) -> String {
    let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "files:\n  - name: certs\n    paths: [{}]\n{extra}",
        list.join(", ")
    )
}

/// Runs one pass on a helper thread, bounded by [`SCAN_DEADLINE`]; returns
/// the scan, the cache for the next pass, and how long the pass took.
fn scan_bounded(source: &FileSourceConfig, cache: FileCache) -> (FileScan, FileCache, Duration) {
    let source = source.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut cache = cache;
        let started = Instant::now();
        let scan = scan(&source, &mut cache);
        let _ = tx.send((scan, cache, started.elapsed()));
    });
    rx.recv_timeout(SCAN_DEADLINE)
        .unwrap_or_else(|_| panic!("file scan did not return within {SCAN_DEADLINE:?}"))
}

/// One fresh pass over the source `yaml` describes.
fn scan_yaml(dir: &Path, yaml: &str) -> FileScan {
    scan_bounded(&file_source(dir, yaml), FileCache::default()).0
}

/// One fresh pass over `paths`.
fn scan_paths(dir: &Path, paths: &[&Path]) -> FileScan {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    scan_yaml(dir, &yaml_paths(&paths, ""))
}

fn report<'a>(scan: &'a FileScan, path: &Path) -> &'a FileReport {
    scan.get(path)
        .unwrap_or_else(|| panic!("{} not in scan: {:#?}", path.display(), scan.keys()))
}

/// A temporary directory holding `good.pem`, a certificate every bad input
/// must leave exported, and that certificate.
fn dir_with_good_pem() -> (tempfile::TempDir, Minted) {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    (dir, good)
}

/// Paths of the scan relative to `dir`, sorted.
fn relative_keys(scan: &FileScan, dir: &Path) -> Vec<String> {
    scan.keys()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Asserts `path` is in the scan with exactly one certificate, no error.
fn assert_good(scan: &FileScan, path: &Path, minted: &Minted) {
    let r = report(scan, path);
    assert_eq!(r.error, None, "{}", path.display());
    assert_eq!(r.certs.len(), 1, "{}", path.display());
    assert_eq!(r.certs[0].not_after, minted.not_after, "{}", path.display());
}

/// Asserts `path` failed with `expected` and yielded no certificate.
fn assert_failed(scan: &FileScan, path: &Path, expected: FileErrorReason) {
    let r = report(scan, path);
    assert_eq!(
        r.error.as_ref().map(|e| e.reason),
        Some(expected),
        "{}: {:?}",
        path.display(),
        r.error
    );
    assert!(r.certs.is_empty(), "{}: {:?}", path.display(), r.certs);
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------------------
// Through the binary.

/// Config for one file source named `certs` over `paths`, re-scanned every
/// second.
fn daemon_yaml(paths: &[&str], extra: &str) -> String {
    format!("global:\n  interval: 1s\n{}", yaml_paths(paths, extra))
}

/// The labels every file-source certificate series carries.
fn file_cert_labels(path: &Path, chain_index: usize) -> Vec<(&'static str, String)> {
    vec![
        ("source_kind", "file".to_owned()),
        ("source_name", "certs".to_owned()),
        ("filepath", s(path)),
        (
            "filename",
            path.file_name().unwrap().to_string_lossy().into_owned(),
        ),
        ("target", String::new()),
        ("server_name", String::new()),
        ("address", String::new()),
        ("chain_index", chain_index.to_string()),
    ]
}

fn borrowed<'a>(labels: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    labels.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn error_info_labels<'a>(path: &'a str, reason: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("source_name", "certs"),
        ("filepath", path),
        ("reason", reason),
    ]
}

const FILE_SOURCE_UP: [(&str, &str); 2] = [("source_kind", "file"), ("source_name", "certs")];

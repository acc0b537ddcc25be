//! File source behaviour on real files in temp dirs: PEM bundles, DER, every
//! bad input of the contract's `reason` set, symlinks (Kubernetes secret
//! volumes, loops, devices), globs, the stat cache — first through the
//! library (`files::scan`), then through the real binary and `/metrics`.

// Helpers outside `#[test]` functions panic on failure just like the tests
// themselves (clippy.toml's allow-*-in-tests only covers the latter).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use certinel::config::{Config, FileSourceConfig};
use certinel::sources::files::{scan, FileCache, FileErrorReason, FileReport, FileScan};

use crate::common::*;

/// Upper bound for any single library-level pass: a pass that blocks (on a
/// FIFO, a device, a loop) fails the test instead of hanging the suite.
const SCAN_DEADLINE: Duration = Duration::from_secs(10);
/// How long the daemon gets to publish what a test expects.
const METRICS_DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Helpers.

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

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Whether this process can open a file whose mode is 000 (root, or
/// CAP_DAC_OVERRIDE): then permission errors cannot be produced in-process.
fn permission_checks_bypassed(dir: &Path) -> bool {
    let probe = write(dir, "perm-probe", "x");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bypassed = std::fs::File::open(&probe).is_ok();
    std::fs::remove_file(&probe).unwrap();
    bypassed
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------------------
// Library level: certificates.

#[test]
fn pem_bundle_of_three_yields_three_certs_in_file_order_with_exact_facts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Bundle Root CA");
    let svc = leaf(&ca, "svc.bundle.test", 30);
    let other = self_signed("other-root", now() + 400 * DAY);
    let path = write(
        dir.path(),
        "bundle.pem",
        format!("{}{}{}", svc.cert_pem, ca.cert.cert_pem, other.cert_pem),
    );

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    let expected = [
        (&svc, "svc.bundle.test", "Bundle Root CA"),
        (&ca.cert, "Bundle Root CA", "Bundle Root CA"),
        (&other, "other-root", "other-root"),
    ];
    assert_eq!(r.certs.len(), expected.len());
    for (i, (facts, (minted, subject, issuer))) in r.certs.iter().zip(expected).enumerate() {
        assert_eq!(facts.not_after, minted.not_after, "cert {i} NotAfter");
        assert_eq!(facts.not_before, minted.not_before, "cert {i} NotBefore");
        assert_eq!(
            &*facts.serial_number,
            serial_decimal(&minted.der),
            "cert {i}"
        );
        assert_eq!(&*facts.subject.cn, subject, "cert {i} subject");
        assert_eq!(&*facts.issuer.cn, issuer, "cert {i} issuer");
    }
    assert_eq!(&*r.certs[1].subject.o, "certinel tests");
    assert_eq!(&*r.certs[0].issuer.o, "certinel tests");
    assert_eq!(&*r.certs[0].subject.o, "");
}

#[test]
fn serial_number_is_unsigned_decimal_even_when_the_high_bit_is_set() {
    let dir = tempfile::tempdir().unwrap();
    // 16 bytes of 0xFF: DER needs a leading 0x00 to keep it positive, and
    // the value (2^128 - 1) overflows every primitive but u128.
    let cert = with_serial("serial.test", &[0xFF; 16]);
    let path = write(dir.path(), "serial.pem", cert.cert_pem);

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    assert_eq!(
        &*r.certs[0].serial_number,
        "340282366920938463463374607431768211455"
    );
    assert_eq!(
        &*r.certs[0].serial_number,
        decimal_of_be_bytes(&[0xFF; 16]),
        "helper self-check"
    );
}

#[test]
fn der_file_yields_exactly_one_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("DER CA");
    let svc = leaf(&ca, "der.test", 90);
    let path = write(dir.path(), "svc.der", &svc.der);

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    assert_eq!(r.certs.len(), 1);
    assert_eq!(r.certs[0].not_after, svc.not_after);
    assert_eq!(r.certs[0].not_before, svc.not_before);
    assert_eq!(&*r.certs[0].serial_number, serial_decimal(&svc.der));
    assert_eq!(&*r.certs[0].subject.cn, "der.test");
    assert_eq!(&*r.certs[0].issuer.cn, "DER CA");
}

#[test]
fn cert_and_key_in_one_pem_export_the_cert_without_error() {
    // haproxy-style combined files: the key block is not an error.
    let dir = tempfile::tempdir().unwrap();
    let c = self_signed("combined", now() + 10 * DAY);
    let path = write(
        dir.path(),
        "combined.pem",
        format!("{}{}", c.key_pem, c.cert_pem),
    );
    assert_good(&scan_paths(dir.path(), &[&path]), &path, &c);
}

#[test]
fn pem_with_crlf_line_endings_and_explanatory_text_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let a = self_signed("crlf-a", now() + 10 * DAY);
    let b = self_signed("crlf-b", now() + 20 * DAY);
    let text = format!(
        "subject=CN = crlf-a\nissuer=CN = crlf-a\n{}Bag Attributes\n    friendlyName: b\n{}",
        a.cert_pem, b.cert_pem
    )
    .replace('\n', "\r\n");
    let path = write(dir.path(), "windows.pem", text);

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    let after: Vec<i64> = r.certs.iter().map(|c| c.not_after).collect();
    assert_eq!(after, [a.not_after, b.not_after]);
}

// ---------------------------------------------------------------------------
// Library level: every bad input, each beside a good file of the same source.

/// Scans `dir` (as a directory path) and checks `good.pem` is unaffected.
fn scan_dir_with_good_neighbour(dir: &Path, good: &Minted) -> FileScan {
    let scan = scan_paths(dir, &[dir]);
    assert_good(&scan, &dir.join("good.pem"), good);
    scan
}

#[test]
fn key_only_pem_is_no_certificate_found_and_neighbour_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let key = write(dir.path(), "tls.key", &good.key_pem);

    let scan = scan_dir_with_good_neighbour(dir.path(), &good);
    assert_failed(&scan, &key, FileErrorReason::NoCertificateFound);
}

#[test]
fn random_binary_garbage_is_no_certificate_found_unless_it_looks_like_der() {
    // Without PEM armour a file is treated as DER. certinel only hands it
    // to the X.509 parser when the first byte is 0x30 (an ASN.1 SEQUENCE,
    // which every certificate is): other binary noise is "no certificate
    // here" (`no_certificate_found`), noise that starts like DER is a
    // certificate that does not decode (`decode_failed`). Both are sensible:
    // the second is what a corrupted .der/.cer file looks like.
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let mut bytes = noise(2048, 0x5eed);
    bytes[0] = 0xA7;
    let plain = write(dir.path(), "garbage.bin", &bytes);
    bytes[0] = 0x30;
    let der_like = write(dir.path(), "garbage.der", &bytes);
    let truncated_der = write(dir.path(), "truncated.der", good_der_prefix(&good));

    let scan = scan_dir_with_good_neighbour(dir.path(), &good);
    assert_failed(&scan, &plain, FileErrorReason::NoCertificateFound);
    assert_failed(&scan, &der_like, FileErrorReason::DecodeFailed);
    assert_failed(&scan, &truncated_der, FileErrorReason::DecodeFailed);
}

fn good_der_prefix(m: &Minted) -> Vec<u8> {
    m.der[..m.der.len() / 2].to_vec()
}

#[test]
fn text_garbage_and_empty_file_are_no_certificate_found() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let text = write(
        dir.path(),
        "notes.crt",
        "this is not a certificate\nnor is this line\n",
    );
    let empty = write(dir.path(), "empty.crt", "");

    let scan = scan_dir_with_good_neighbour(dir.path(), &good);
    assert_failed(&scan, &text, FileErrorReason::NoCertificateFound);
    assert_failed(&scan, &empty, FileErrorReason::NoCertificateFound);
}

#[test]
fn certificate_block_with_non_certificate_der_is_decode_failed() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let bad = write(
        dir.path(),
        "bad-block.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );

    let scan = scan_dir_with_good_neighbour(dir.path(), &good);
    assert_failed(&scan, &bad, FileErrorReason::DecodeFailed);
}

#[test]
fn truncated_pem_is_bad_pem_and_keeps_the_certificates_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let first = self_signed("first", now() + 11 * DAY);
    let second = self_signed("second", now() + 12 * DAY);
    let cut = self_signed("cut", now() + 13 * DAY);
    let text = format!(
        "{}{}{}",
        first.cert_pem,
        second.cert_pem,
        &cut.cert_pem[..cut.cert_pem.len() / 2]
    );
    let path = write(dir.path(), "truncated.pem", text);

    let scan = scan_dir_with_good_neighbour(dir.path(), &good);
    let r = report(&scan, &path);
    assert_eq!(
        r.error.as_ref().map(|e| e.reason),
        Some(FileErrorReason::BadPem)
    );
    let after: Vec<i64> = r.certs.iter().map(|c| c.not_after).collect();
    assert_eq!(after, [first.not_after, second.not_after]);
}

#[test]
fn directory_matched_by_file_glob_is_not_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    let good_path = write(dir.path(), "good.crt", &good.cert_pem);
    std::fs::create_dir(dir.path().join("x.crt")).unwrap();
    write(dir.path(), "x.crt/inner.crt", &good.cert_pem);

    let scan = scan_yaml(dir.path(), &yaml_paths(&["*.crt"], ""));
    assert_eq!(relative_keys(&scan, dir.path()), ["good.crt", "x.crt"]);
    assert_good(&scan, &good_path, &good);
    assert_failed(
        &scan,
        &dir.path().join("x.crt"),
        FileErrorReason::NotRegularFile,
    );
}

#[test]
fn fifo_is_reported_not_regular_file_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let fifo = dir.path().join("pipe.crt");
    mkfifo(&fifo);

    // Listed literally, found through a glob, and found in a directory.
    for yaml in [
        yaml_paths(&[&s(&fifo), &s(&dir.path().join("good.pem"))], ""),
        yaml_paths(&["*"], ""),
        yaml_paths(&[&s(dir.path())], ""),
    ] {
        let (scan, _, took) = scan_bounded(&file_source(dir.path(), &yaml), FileCache::default());
        assert!(took < Duration::from_secs(2), "pass took {took:?}");
        assert_failed(&scan, &fifo, FileErrorReason::NotRegularFile);
        assert_good(&scan, &dir.path().join("good.pem"), &good);
    }
}

#[test]
fn char_device_behind_symlink_is_not_regular_file_and_never_read() {
    // /dev/zero would never reach EOF and /dev/null would read as empty
    // (`no_certificate_found`): both must be refused on metadata alone.
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let zero = dir.path().join("zero.pem");
    let null = dir.path().join("null.pem");
    symlink("/dev/zero", &zero).unwrap();
    symlink("/dev/null", &null).unwrap();

    for yaml in [
        yaml_paths(&["*.pem"], ""),
        yaml_paths(&[&s(dir.path())], ""),
        yaml_paths(
            &[&s(&zero), &s(&null), &s(&dir.path().join("good.pem"))],
            "",
        ),
    ] {
        let (scan, _, took) = scan_bounded(&file_source(dir.path(), &yaml), FileCache::default());
        assert!(took < Duration::from_secs(2), "pass took {took:?}");
        assert_failed(&scan, &zero, FileErrorReason::NotRegularFile);
        assert_failed(&scan, &null, FileErrorReason::NotRegularFile);
        assert_good(&scan, &dir.path().join("good.pem"), &good);
    }
}

#[test]
fn file_over_max_file_size_is_too_large_and_a_file_at_the_cap_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    assert!(good.cert_pem.len() < 1024);
    // Trailing blank lines pad the PEM to exactly the cap, then one past it.
    let at_cap = format!(
        "{}{}",
        good.cert_pem,
        "\n".repeat(1024 - good.cert_pem.len())
    );
    assert_eq!(at_cap.len(), 1024);
    let exact = write(dir.path(), "exact.pem", &at_cap);
    let over = write(dir.path(), "over.pem", format!("{at_cap}\n"));
    let big = write(dir.path(), "big.pem", noise(64 * 1024, 7));

    let scan = scan_yaml(
        dir.path(),
        &yaml_paths(&["*.pem"], "    max_file_size: 1KiB\n"),
    );
    assert_good(&scan, &exact, &good);
    assert_failed(&scan, &over, FileErrorReason::TooLarge);
    assert_failed(&scan, &big, FileErrorReason::TooLarge);
}

#[test]
fn global_max_file_size_applies_when_the_source_sets_none() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    let path = write(
        dir.path(),
        "padded.pem",
        format!("{}{}", good.cert_pem, " ".repeat(600)),
    );
    let yaml = format!(
        "global:\n  max_file_size: 1KiB\n{}",
        yaml_paths(&[&s(&path)], "")
    );
    assert_failed(
        &scan_yaml(dir.path(), &yaml),
        &path,
        FileErrorReason::TooLarge,
    );
}

#[test]
fn unreadable_file_is_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    write(dir.path(), "good.pem", &good.cert_pem);
    let secret = write(dir.path(), "secret.pem", &good.cert_pem);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();

    let scan = scan_dir_with_good_neighbour(dir.path(), &good);
    if permission_checks_bypassed(dir.path()) {
        // Root (CAP_DAC_OVERRIDE) reads mode-000 files, so the in-process
        // scan legitimately succeeds; the reason is covered end to end by
        // `daemon_without_privileges_reports_permission_denied`.
        eprintln!("running with permission checks bypassed (root): mode 000 is readable; skipping the permission_denied assertion");
        assert_good(&scan, &secret, &good);
    } else {
        assert_failed(&scan, &secret, FileErrorReason::PermissionDenied);
    }
}

#[test]
fn broken_symlink_and_missing_literal_path_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    let good_path = write(dir.path(), "good.pem", &good.cert_pem);
    let dangling = dir.path().join("dangling.pem");
    symlink(dir.path().join("gone.pem"), &dangling).unwrap();
    let missing = dir.path().join("missing.pem");

    let scan = scan_paths(dir.path(), &[&good_path, &dangling, &missing]);
    assert_good(&scan, &good_path, &good);
    assert_failed(&scan, &dangling, FileErrorReason::NotFound);
    assert_failed(&scan, &missing, FileErrorReason::NotFound);
    let detail = &report(&scan, &dangling).error.as_ref().unwrap().detail;
    assert!(detail.contains("symlink"), "{detail}");

    // Found through the directory and through a matching glob as well.
    for paths in [vec![s(dir.path())], vec!["*.pem".to_owned()]] {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let scan = scan_yaml(dir.path(), &yaml_paths(&paths, ""));
        assert_good(&scan, &good_path, &good);
        assert_failed(&scan, &dangling, FileErrorReason::NotFound);
    }
}

#[test]
fn symlink_loop_is_read_failed_and_the_scan_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    let good_path = write(dir.path(), "good.pem", &good.cert_pem);
    let a = dir.path().join("a.pem");
    let b = dir.path().join("b.pem");
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();

    for yaml in [
        yaml_paths(&[&s(&a), &s(&good_path)], ""),
        yaml_paths(&["*.pem"], ""),
        yaml_paths(&[&s(dir.path())], ""),
    ] {
        let (scan, _, took) = scan_bounded(&file_source(dir.path(), &yaml), FileCache::default());
        assert!(took < Duration::from_secs(2), "pass took {took:?}");
        assert_failed(&scan, &a, FileErrorReason::ReadFailed);
        assert_good(&scan, &good_path, &good);
    }
}

#[test]
fn directory_symlink_loop_under_recursive_glob_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    let certs = dir.path().join("certs");
    let nested = write(&certs, "sub/nested.pem", &good.cert_pem);
    // certs/loop -> certs, and certs/sub/back -> certs: both point at an
    // ancestor of where they sit.
    symlink(&certs, certs.join("loop")).unwrap();
    symlink(&certs, certs.join("sub/back")).unwrap();

    for pattern in ["certs/**/*.pem", "certs/**"] {
        let (scan, _, took) = scan_bounded(
            &file_source(dir.path(), &yaml_paths(&[pattern], "")),
            FileCache::default(),
        );
        assert!(
            took < Duration::from_secs(2),
            "{pattern}: pass took {took:?}"
        );
        assert_good(&scan, &nested, &good);
        // The loops are skipped, not reported, and do not multiply the file.
        assert_eq!(
            relative_keys(&scan, dir.path()),
            ["certs/sub/nested.pem"],
            "{pattern}"
        );
    }
}

#[test]
fn symlink_to_an_ancestor_outside_the_glob_root_terminates() {
    // certs/up -> the directory holding certs: the walk re-enters certs
    // once through `up` (a real path that matches), then meets the loop.
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good", now() + 30 * DAY);
    let nested = write(dir.path(), "certs/sub/nested.pem", &good.cert_pem);
    symlink(dir.path(), dir.path().join("certs/up")).unwrap();

    let (scan, _, took) = scan_bounded(
        &file_source(dir.path(), &yaml_paths(&["certs/**/*.pem"], "")),
        FileCache::default(),
    );
    assert!(took < Duration::from_secs(2), "pass took {took:?}");
    assert_good(&scan, &nested, &good);
    assert!(scan.len() <= 2, "{:#?}", scan.keys());
    assert!(scan.values().all(|r| r.error.is_none()), "{scan:#?}");
}

// ---------------------------------------------------------------------------
// Library level: Kubernetes secret volumes.

/// The secret volume of a cert-manager Certificate: tls.crt, tls.key and
/// ca.crt, laid out as the kubelet does.
fn tls_secret_volume(dir: &Path, stamp: &str, crt: &Minted, ca: &Minted) {
    secret_volume(
        dir,
        stamp,
        &[
            ("tls.crt", &crt.cert_pem),
            ("tls.key", &crt.key_pem),
            ("ca.crt", &ca.cert_pem),
        ],
    );
}

#[test]
fn secret_volume_file_is_reported_under_its_configured_symlink_path() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("secret");
    let ca = Ca::new("k8s CA");
    let crt = leaf(&ca, "svc.ns.svc", 60);
    tls_secret_volume(&vol, "..2026_11_23_10_00_00.123", &crt, &ca.cert);

    let tls = vol.join("tls.crt");
    let scan = scan_paths(dir.path(), &[&tls]);
    assert_eq!(scan.keys().collect::<Vec<_>>(), [&tls]);
    assert_good(&scan, &tls, &crt);
}

#[test]
fn secret_volume_directory_reports_only_the_user_facing_names() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("secret");
    let ca = Ca::new("k8s CA");
    let crt = leaf(&ca, "svc.ns.svc", 60);
    tls_secret_volume(&vol, "..2026_11_23_10_00_00.123", &crt, &ca.cert);

    let yaml = yaml_paths(&[&s(&vol)], "    exclude: [\"*.key\"]\n");
    let scan = scan_yaml(dir.path(), &yaml);
    assert_eq!(
        relative_keys(&scan, &vol),
        ["ca.crt", "tls.crt"],
        "..data and the timestamped directory must not be reported"
    );
    assert_good(&scan, &vol.join("tls.crt"), &crt);
    assert_good(&scan, &vol.join("ca.crt"), &ca.cert);

    // Without the exclude, tls.key is a key-only file like any other.
    let scan = scan_paths(dir.path(), &[&vol]);
    assert_eq!(relative_keys(&scan, &vol), ["ca.crt", "tls.crt", "tls.key"]);
    assert_failed(
        &scan,
        &vol.join("tls.key"),
        FileErrorReason::NoCertificateFound,
    );
}

#[test]
fn secret_volume_rotation_is_seen_through_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("secret");
    let ca = Ca::new("k8s CA");
    let old = leaf(&ca, "svc.ns.svc", 10);
    let new = leaf(&ca, "svc.ns.svc", 90);
    tls_secret_volume(&vol, "..2026_11_23_10_00_00.123", &old, &ca.cert);
    let source = file_source(
        dir.path(),
        &yaml_paths(&[&s(&vol)], "    exclude: [\"*.key\"]\n"),
    );

    let (first, cache, _) = scan_bounded(&source, FileCache::default());
    assert_good(&first, &vol.join("tls.crt"), &old);
    tls_secret_volume(&vol, "..2026_11_24_10_00_00.456", &new, &ca.cert);
    let (second, _, _) = scan_bounded(&source, cache);
    assert_good(&second, &vol.join("tls.crt"), &new);
    assert_eq!(relative_keys(&second, &vol), ["ca.crt", "tls.crt"]);
}

#[test]
fn recursive_glob_over_secret_volumes_skips_kubelet_internals() {
    // The common deployment: several secrets mounted under one directory
    // and a `**` glob over them. The kubelet's `..data` and timestamped
    // directories hold the same files again; reporting them would triple
    // every series and churn the filepath label on each rotation.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("k8s CA");
    let a = leaf(&ca, "a.ns.svc", 60);
    let b = leaf(&ca, "b.ns.svc", 70);
    tls_secret_volume(
        &dir.path().join("mounts/a"),
        "..2026_11_23_10_00_00.1",
        &a,
        &ca.cert,
    );
    tls_secret_volume(
        &dir.path().join("mounts/b"),
        "..2026_11_23_10_00_00.2",
        &b,
        &ca.cert,
    );

    let scan = scan_yaml(dir.path(), &yaml_paths(&["mounts/**/*.crt"], ""));
    assert_eq!(
        relative_keys(&scan, dir.path()),
        [
            "mounts/a/ca.crt",
            "mounts/a/tls.crt",
            "mounts/b/ca.crt",
            "mounts/b/tls.crt"
        ]
    );
}

// ---------------------------------------------------------------------------
// Library level: globs, excludes, duplicates, relative paths.

#[test]
fn double_star_recurses_and_single_star_stays_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let c = self_signed("g", now() + 30 * DAY);
    for name in [
        "top.crt",
        "a/one.crt",
        "a/b/two.crt",
        "a/b/c/three.crt",
        "a/skip.txt",
    ] {
        write(dir.path(), name, &c.cert_pem);
    }

    let deep = scan_yaml(dir.path(), &yaml_paths(&["**/*.crt"], ""));
    assert_eq!(
        relative_keys(&deep, dir.path()),
        ["a/b/c/three.crt", "a/b/two.crt", "a/one.crt", "top.crt"]
    );
    for r in deep.values() {
        assert_eq!(r.error, None);
    }
    let shallow = scan_yaml(dir.path(), &yaml_paths(&["*.crt"], ""));
    assert_eq!(relative_keys(&shallow, dir.path()), ["top.crt"]);
    let one_level = scan_yaml(dir.path(), &yaml_paths(&["a/*/*.crt"], ""));
    assert_eq!(relative_keys(&one_level, dir.path()), ["a/b/two.crt"]);
    let under = scan_yaml(dir.path(), &yaml_paths(&["a/**"], ""));
    assert_eq!(
        relative_keys(&under, dir.path()),
        ["a/b/c/three.crt", "a/b/two.crt", "a/one.crt", "a/skip.txt"],
        "`dir/**` walks directories instead of reporting them"
    );
}

#[test]
fn exclude_drops_matching_files_at_any_depth() {
    let dir = tempfile::tempdir().unwrap();
    let c = self_signed("x", now() + 30 * DAY);
    write(dir.path(), "tls.crt", &c.cert_pem);
    write(dir.path(), "tls.key", &c.key_pem);
    write(dir.path(), "deep/er/tls.key", &c.key_pem);
    write(dir.path(), "deep/er/tls.crt", &c.cert_pem);
    write(dir.path(), "deep/old/expired.crt", &c.cert_pem);

    let scan = scan_yaml(
        dir.path(),
        &yaml_paths(&["**/*"], "    exclude: [\"*.key\", \"**/old/**\"]\n"),
    );
    assert_eq!(
        relative_keys(&scan, dir.path()),
        ["deep/er/tls.crt", "tls.crt"]
    );
    // A literal path is subject to the excludes too.
    let key = dir.path().join("tls.key");
    let scan = scan_yaml(
        dir.path(),
        &yaml_paths(&[&s(&key), "tls.crt"], "    exclude: [\"*.key\"]\n"),
    );
    assert_eq!(relative_keys(&scan, dir.path()), ["tls.crt"]);
}

#[test]
fn duplicate_and_overlapping_paths_collapse_to_one_report_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = self_signed("dup", now() + 30 * DAY);
    let path = write(dir.path(), "certs/dup.crt", &c.cert_pem);
    let abs = s(&path);
    let dotted = s(&dir.path().join("certs/./sub/../dup.crt"));
    let source = file_source(
        dir.path(),
        &yaml_paths(
            &[
                &abs,
                &abs,
                "certs/dup.crt",
                &dotted,
                "certs/*.crt",
                &s(&dir.path().join("certs")),
            ],
            "",
        ),
    );
    let (scan, _, _) = scan_bounded(&source, FileCache::default());
    assert_eq!(scan.len(), 1, "{:#?}", scan.keys());
    assert_good(&scan, &path, &c);
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("etc/certinel");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let c = self_signed("rel", now() + 30 * DAY);
    let lit = write(&conf_dir, "certs/lit.crt", &c.cert_pem);
    let globbed = write(dir.path(), "etc/shared/g.crt", &c.cert_pem);

    // Neither the process's working directory nor the config text decides:
    // only the config file's directory.
    let scan = scan_yaml(
        &conf_dir,
        &yaml_paths(&["certs/lit.crt", "../shared/*.crt"], ""),
    );
    assert_eq!(scan.keys().collect::<Vec<_>>(), [&lit, &globbed]);
    assert_good(&scan, &lit, &c);
    assert_good(&scan, &globbed, &c);
}

#[test]
fn missing_glob_root_matches_nothing_without_error() {
    let dir = tempfile::tempdir().unwrap();
    let scan = scan_yaml(dir.path(), &yaml_paths(&["not-yet/**/*.crt"], ""));
    assert!(scan.is_empty(), "{scan:#?}");
}

#[test]
fn unmatched_broken_symlink_beside_a_glob_is_not_reported() {
    // `*.crt` must only ever report paths that match `*.crt`: a dangling
    // README link in the same directory is none of the source's business.
    let dir = tempfile::tempdir().unwrap();
    let c = self_signed("g", now() + 30 * DAY);
    let good = write(dir.path(), "good.crt", &c.cert_pem);
    symlink(dir.path().join("nowhere"), dir.path().join("README.md")).unwrap();
    let a = dir.path().join("loop-a.txt");
    symlink(dir.path().join("loop-b.txt"), &a).unwrap();
    symlink(&a, dir.path().join("loop-b.txt")).unwrap();

    let scan = scan_yaml(dir.path(), &yaml_paths(&["*.crt"], ""));
    assert_eq!(relative_keys(&scan, dir.path()), ["good.crt"]);
    assert_good(&scan, &good, &c);
}

// ---------------------------------------------------------------------------
// Library level: the stat cache follows changes.

#[test]
fn rewrite_in_place_is_seen_on_the_next_scan() {
    let dir = tempfile::tempdir().unwrap();
    let old = self_signed("old", now() + 10 * DAY);
    let new = self_signed("renewed-certificate", now() + 90 * DAY);
    let path = write(dir.path(), "tls.crt", &old.cert_pem);
    let source = file_source(dir.path(), &yaml_paths(&[&s(&path)], ""));

    let (first, cache, _) = scan_bounded(&source, FileCache::default());
    assert_good(&first, &path, &old);
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    std::fs::write(&path, &new.cert_pem).unwrap();
    assert_eq!(
        ino,
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()),
        "rewritten in place"
    );
    let (second, cache, _) = scan_bounded(&source, cache);
    assert_good(&second, &path, &new);
    // And back to a broken file: the error shows on the next pass too.
    std::fs::write(&path, "garbage").unwrap();
    let (third, _, _) = scan_bounded(&source, cache);
    assert_failed(&third, &path, FileErrorReason::NoCertificateFound);
}

/// Two self-signed certificates whose PEM has the same length, so that a
/// rewrite changes neither the inode nor the size.
fn same_size_pair() -> (Minted, Minted) {
    let a = self_signed("same-size-a", now() + 10 * DAY);
    for _ in 0..200 {
        let b = self_signed("same-size-b", now() + 90 * DAY);
        if b.cert_pem.len() == a.cert_pem.len() {
            return (a, b);
        }
    }
    panic!("no same-size certificate pair in 200 attempts");
}

#[test]
fn same_size_rewrite_within_one_timestamp_tick_is_not_served_stale() {
    // File timestamps are taken from a coarse clock (one jiffy, often 4 ms,
    // and a whole second on some filesystems). A file rewritten in place,
    // to the same size, within the tick of the pass that cached it keeps
    // dev, inode, size, mtime and ctime: a cache keyed on those alone then
    // serves the old certificate until the file changes again — for a
    // certificate, possibly months. ("Racily clean" entries, as git calls
    // them, must be re-read.)
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = same_size_pair();
    let path = dir.path().join("tls.crt");
    let source = file_source(dir.path(), &yaml_paths(&[&s(&path)], ""));
    let stamp = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        (
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.size(),
        )
    };

    // Every attempt must see the new certificate; the stamps only say
    // whether the attempt hit the racy case (identical stat before/after).
    let mut racy = 0;
    for attempt in 0..50 {
        std::fs::write(&path, &old.cert_pem).unwrap();
        let before = stamp(&path);
        let mut cache = FileCache::default();
        let first = scan(&source, &mut cache);
        assert_good(&first, &path, &old);
        std::fs::write(&path, &new.cert_pem).unwrap();
        let after = stamp(&path);
        let second = scan(&source, &mut cache);
        let same = before == after;
        racy += usize::from(same);
        let seen = report(&second, &path).certs.first().map(|c| c.not_after);
        assert_eq!(
            seen,
            Some(new.not_after),
            "attempt {attempt}: stale certificate served after an in-place \
             same-size rewrite (old NotAfter {}, new {}); stat before {before:?}, \
             after {after:?}, identical: {same}",
            old.not_after,
            new.not_after
        );
    }
    if racy == 0 {
        eprintln!(
            "the racy case never occurred: timestamps advanced between the two writes \
             (fine-grained after a stat, e.g. multigrain timestamps on Linux >= 6.13)"
        );
    }
}

#[test]
fn atomic_rename_replacement_is_seen_on_the_next_scan() {
    let dir = tempfile::tempdir().unwrap();
    let old = self_signed("old", now() + 10 * DAY);
    let (_, new) = same_size_pair();
    let path = write(dir.path(), "tls.crt", &old.cert_pem);
    let source = file_source(dir.path(), &yaml_paths(&["*.crt"], ""));

    let (first, cache, _) = scan_bounded(&source, FileCache::default());
    assert_good(&first, &path, &old);
    // Written beside, then renamed over: a new inode under the same path.
    let staged = write(dir.path(), ".tls.crt.tmp", &new.cert_pem);
    std::fs::rename(&staged, &path).unwrap();
    let (second, _, _) = scan_bounded(&source, cache);
    assert_eq!(relative_keys(&second, dir.path()), ["tls.crt"]);
    assert_good(&second, &path, &new);
}

#[test]
fn deleted_file_disappears_from_the_next_scan() {
    let dir = tempfile::tempdir().unwrap();
    let keep = self_signed("keep", now() + 30 * DAY);
    let gone = self_signed("gone", now() + 30 * DAY);
    let keep_path = write(dir.path(), "keep.crt", &keep.cert_pem);
    let gone_path = write(dir.path(), "gone.crt", &gone.cert_pem);
    let glob = file_source(dir.path(), &yaml_paths(&["*.crt"], ""));
    let literal = file_source(dir.path(), &yaml_paths(&["keep.crt", "gone.crt"], ""));

    let (first, glob_cache, _) = scan_bounded(&glob, FileCache::default());
    assert_eq!(relative_keys(&first, dir.path()), ["gone.crt", "keep.crt"]);
    let (first, literal_cache, _) = scan_bounded(&literal, FileCache::default());
    assert_good(&first, &gone_path, &gone);

    std::fs::remove_file(&gone_path).unwrap();
    let (second, _, _) = scan_bounded(&glob, glob_cache);
    assert_eq!(relative_keys(&second, dir.path()), ["keep.crt"]);
    assert_good(&second, &keep_path, &keep);
    // A path named literally stays, as not_found: the user asked for it.
    let (second, _, _) = scan_bounded(&literal, literal_cache);
    assert_failed(&second, &gone_path, FileErrorReason::NotFound);
    assert_good(&second, &keep_path, &keep);
}

// ---------------------------------------------------------------------------
// End to end through the binary.

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

#[test]
fn daemon_exports_every_bundle_certificate_with_the_full_label_set() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Bundle Root CA");
    let svc = leaf(&ca, "svc.bundle.test", 30);
    let other = self_signed("other-root", now() + 400 * DAY);
    let bundle = write(
        dir.path(),
        "certs/bundle.pem",
        format!("{}{}{}", svc.cert_pem, ca.cert.cert_pem, other.cert_pem),
    );
    let der = write(dir.path(), "certs/svc.der", &svc.der);

    let daemon = Daemon::start(dir.path(), &daemon_yaml(&["certs/*"], ""));
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.find("x509_cert_not_after", &[("source_kind", "file")])
            .len()
            == 4
    });

    let expected = [
        (&svc, "svc.bundle.test", "Bundle Root CA", ""),
        (
            &ca.cert,
            "Bundle Root CA",
            "Bundle Root CA",
            "certinel tests",
        ),
        (&other, "other-root", "other-root", ""),
    ];
    for (i, (minted, subject, issuer, subject_o)) in expected.into_iter().enumerate() {
        let labels = file_cert_labels(&bundle, i);
        let serial = serial_decimal(&minted.der);
        let mut full = borrowed(&labels);
        full.extend([
            ("serial_number", serial.as_str()),
            ("subject_CN", subject),
            ("issuer_CN", issuer),
            ("subject_O", subject_o),
            ("subject_OU", ""),
        ]);
        let sample = m.one("x509_cert_not_after", &full);
        assert_eq!(sample.value, minted.not_after as f64, "chain_index {i}");
        let names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        for required in [
            "source_kind",
            "source_name",
            "filepath",
            "filename",
            "target",
            "server_name",
            "address",
            "chain_index",
            "serial_number",
            "subject_CN",
            "subject_O",
            "subject_OU",
            "issuer_CN",
            "issuer_O",
        ] {
            assert!(names.contains(&required), "missing {required}: {names:?}");
        }
        assert_eq!(
            m.value("x509_cert_not_before", &full),
            minted.not_before as f64,
            "chain_index {i}"
        );
        assert_eq!(m.value("x509_cert_expired", &full), 0.0);
    }

    let der_labels = file_cert_labels(&der, 0);
    let mut der_full = borrowed(&der_labels);
    der_full.push(("subject_CN", "svc.bundle.test"));
    assert_eq!(
        m.value("x509_cert_not_after", &der_full),
        svc.not_after as f64
    );
    assert_eq!(m.value("x509_read_errors", &[]), 0.0);
    assert_eq!(m.value("x509_source_up", &FILE_SOURCE_UP), 1.0);
}

#[test]
fn daemon_reports_garbage_file_and_keeps_exporting_the_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed("good.example", now() + 30 * DAY);
    let good_path = write(dir.path(), "good.pem", &good.cert_pem);
    let bad_path = write(dir.path(), "garbage.pem", noise(512, 42));
    let bad = s(&bad_path);

    let daemon = Daemon::start(dir.path(), &daemon_yaml(&["*.pem"], ""));
    let labels = file_cert_labels(&good_path, 0);
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.has("x509_cert_not_after", &borrowed(&labels))
            && m.has("certinel_file_error_info", &[("filepath", bad.as_str())])
    });
    assert_eq!(
        m.value("x509_cert_not_after", &borrowed(&labels)),
        good.not_after as f64
    );
    // First byte of noise(512, 42) is not 0x30, hence no_certificate_found.
    assert_ne!(noise(512, 42)[0], 0x30);
    assert_eq!(
        m.value(
            "certinel_file_error_info",
            &error_info_labels(&bad, "no_certificate_found")
        ),
        1.0
    );
    assert_eq!(
        m.find("certinel_file_error_info", &[]).len(),
        1,
        "{}",
        m.text
    );
    assert_eq!(m.value("x509_read_errors", &[]), 1.0);
    assert_eq!(m.value("x509_source_up", &FILE_SOURCE_UP), 1.0);
    assert!(m
        .find("x509_cert_not_after", &[("filepath", bad.as_str())])
        .is_empty());

    // Still alive and still right a few passes later.
    std::thread::sleep(Duration::from_millis(2500));
    let m = daemon.metrics();
    assert_eq!(m.value("x509_read_errors", &[]), 1.0);
    assert_eq!(
        m.value("x509_cert_not_after", &borrowed(&labels)),
        good.not_after as f64
    );
    assert_eq!(daemon.get("/-/healthy").0, 200);
}

#[test]
fn daemon_survives_every_hostile_input_and_reports_each_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("certs");
    std::fs::create_dir(&d).unwrap();
    let good = self_signed("good.example", now() + 30 * DAY);
    let good_path = write(&d, "good.crt", &good.cert_pem);
    mkfifo(&d.join("fifo.crt"));
    symlink("/dev/zero", d.join("zero.crt")).unwrap();
    std::fs::create_dir(d.join("dir.crt")).unwrap();
    symlink(d.join("absent"), d.join("dangling.crt")).unwrap();
    symlink(d.join("loop2.crt"), d.join("loop1.crt")).unwrap();
    symlink(d.join("loop1.crt"), d.join("loop2.crt")).unwrap();
    write(&d, "key.crt", &good.key_pem);
    write(&d, "text.crt", "hello\n");
    write(&d, "big.crt", "x".repeat(4096));
    let cut = self_signed("cut", now() + 5 * DAY);
    let truncated = write(
        &d,
        "truncated.crt",
        format!("{}{}", cut.cert_pem, &good.cert_pem[..200]),
    );
    write(
        &d,
        "block.crt",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let expected = [
        ("fifo.crt", "not_regular_file"),
        ("zero.crt", "not_regular_file"),
        ("dir.crt", "not_regular_file"),
        ("dangling.crt", "not_found"),
        ("loop1.crt", "read_failed"),
        ("loop2.crt", "read_failed"),
        ("key.crt", "no_certificate_found"),
        ("text.crt", "no_certificate_found"),
        ("big.crt", "too_large"),
        ("truncated.crt", "bad_pem"),
        ("block.crt", "decode_failed"),
        ("missing.crt", "not_found"),
    ];

    let daemon = Daemon::start(
        dir.path(),
        &daemon_yaml(
            &["certs/*.crt", "certs/missing.crt"],
            "    max_file_size: 1KiB\n",
        ),
    );
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.find("certinel_file_error_info", &[]).len() >= expected.len()
    });
    for (name, reason) in expected {
        let path = s(&d.join(name));
        assert_eq!(
            m.value(
                "certinel_file_error_info",
                &error_info_labels(&path, reason)
            ),
            1.0,
            "{name}"
        );
    }
    assert_eq!(
        m.find("certinel_file_error_info", &[]).len(),
        expected.len(),
        "{}",
        m.text
    );
    assert_eq!(m.value("x509_read_errors", &[]), expected.len() as f64);
    assert_eq!(m.value("x509_source_up", &FILE_SOURCE_UP), 1.0);
    let good_labels = file_cert_labels(&good_path, 0);
    assert_eq!(
        m.value("x509_cert_not_after", &borrowed(&good_labels)),
        good.not_after as f64
    );
    // The certificate before the cut of the truncated bundle is exported.
    let cut_labels = file_cert_labels(&truncated, 0);
    assert_eq!(
        m.value("x509_cert_not_after", &borrowed(&cut_labels)),
        cut.not_after as f64
    );
    assert_eq!(
        m.find("x509_cert_not_after", &[("source_kind", "file")])
            .len(),
        2,
        "{}",
        m.text
    );

    // Several more passes over the FIFO and /dev/zero: still serving.
    std::thread::sleep(Duration::from_millis(2500));
    let m = daemon.metrics();
    assert_eq!(m.value("x509_read_errors", &[]), expected.len() as f64);
    assert_eq!(m.value("x509_source_up", &FILE_SOURCE_UP), 1.0);
}

#[test]
fn daemon_follows_rewrite_rename_and_delete_between_passes() {
    let dir = tempfile::tempdir().unwrap();
    let a_old = self_signed("a", now() + 10 * DAY);
    let a_new = self_signed("a-renewed", now() + 80 * DAY);
    let b_old = self_signed("b", now() + 11 * DAY);
    let b_new = self_signed("b", now() + 81 * DAY);
    let a = write(dir.path(), "a.crt", &a_old.cert_pem);
    let b = write(dir.path(), "b.crt", &b_old.cert_pem);
    let c = write(dir.path(), "c.crt", &a_old.cert_pem);

    let daemon = Daemon::start(dir.path(), &daemon_yaml(&["*.crt"], ""));
    let not_after = |m: &Exposition, p: &Path| {
        let labels = file_cert_labels(p, 0);
        m.find("x509_cert_not_after", &borrowed(&labels))
            .first()
            .map(|s| s.value)
    };
    daemon.wait_for(METRICS_DEADLINE, |m| {
        not_after(m, &a) == Some(a_old.not_after as f64)
            && not_after(m, &b) == Some(b_old.not_after as f64)
            && not_after(m, &c).is_some()
    });

    std::fs::write(&a, &a_new.cert_pem).unwrap();
    let staged = write(dir.path(), "b.crt.tmp", &b_new.cert_pem);
    std::fs::rename(&staged, &b).unwrap();
    std::fs::remove_file(&c).unwrap();

    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        not_after(m, &a) == Some(a_new.not_after as f64)
            && not_after(m, &b) == Some(b_new.not_after as f64)
            && not_after(m, &c).is_none()
    });
    assert_eq!(
        m.find("x509_cert_not_after", &[("source_kind", "file")])
            .len(),
        2,
        "{}",
        m.text
    );
    assert_eq!(m.value("x509_read_errors", &[]), 0.0);
}

#[test]
fn daemon_collapses_duplicate_paths_into_one_series_set() {
    let dir = tempfile::tempdir().unwrap();
    let c = self_signed("dup", now() + 30 * DAY);
    let path = write(dir.path(), "certs/dup.crt", &c.cert_pem);
    let abs = s(&path);

    let daemon = Daemon::start(
        dir.path(),
        &daemon_yaml(
            &[
                &abs,
                "certs/dup.crt",
                "certs/./dup.crt",
                "certs/*.crt",
                "certs",
            ],
            "",
        ),
    );
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.has("x509_cert_not_after", &[("filepath", abs.as_str())])
    });
    assert_eq!(
        m.find("x509_cert_not_after", &[("source_kind", "file")])
            .len(),
        1,
        "{}",
        m.text
    );
    assert_eq!(m.find("x509_cert_not_before", &[]).len(), 1, "{}", m.text);
}

#[test]
fn daemon_reports_secret_volume_file_under_the_symlink_path() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("secret");
    let ca = Ca::new("k8s CA");
    let crt = leaf(&ca, "svc.ns.svc", 60);
    tls_secret_volume(&vol, "..2026_11_23_10_00_00.123", &crt, &ca.cert);

    let daemon = Daemon::start(
        dir.path(),
        &daemon_yaml(&["secret"], "    exclude: [\"*.key\"]\n"),
    );
    let tls = vol.join("tls.crt");
    let labels = file_cert_labels(&tls, 0);
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.has("x509_cert_not_after", &borrowed(&labels))
    });
    assert_eq!(
        m.value("x509_cert_not_after", &borrowed(&labels)),
        crt.not_after as f64
    );
    let paths: Vec<&str> = m
        .find("x509_cert_not_after", &[("source_kind", "file")])
        .iter()
        .map(|s| s.labels["filepath"].as_str())
        .collect();
    assert_eq!(paths, [s(&vol.join("ca.crt")), s(&tls)], "{}", m.text);
    assert_eq!(m.value("x509_read_errors", &[]), 0.0);
}

#[test]
fn daemon_without_privileges_reports_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("setpriv not available; cannot drop privileges; skipping");
        return;
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let good = self_signed("good.example", now() + 30 * DAY);
    let good_path = write(dir.path(), "good.pem", &good.cert_pem);
    let secret = write(dir.path(), "secret.pem", &good.cert_pem);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    write(&locked, "inner.pem", &good.cert_pem);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let config = write(
        dir.path(),
        "certinel.yaml",
        daemon_yaml(&["*.pem", "locked"], ""),
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    let daemon = Launch::new(&config).unprivileged().start();
    let secret_s = s(&secret);
    let locked_s = s(&locked);
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.find("certinel_file_error_info", &[]).len() >= 2
    });
    assert_eq!(
        m.value(
            "certinel_file_error_info",
            &error_info_labels(&secret_s, "permission_denied")
        ),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.value(
            "certinel_file_error_info",
            &error_info_labels(&locked_s, "permission_denied")
        ),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(m.value("x509_read_errors", &[]), 2.0);
    let labels = file_cert_labels(&good_path, 0);
    assert_eq!(
        m.value("x509_cert_not_after", &borrowed(&labels)),
        good.not_after as f64
    );
    assert_eq!(m.value("x509_source_up", &FILE_SOURCE_UP), 1.0);
}

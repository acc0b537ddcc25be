//! Which files a source reports: globs, excludes, duplicate and relative
//! paths, symlink loops, and the kubelet's secret volumes.

use std::os::unix::fs::symlink;
use std::path::PathBuf;

use super::*;

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
// Kubernetes secret volumes.

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

/// A temporary directory with a cert-manager secret volume mounted at
/// `secret/`: the directory, the volume, its CA and its certificate.
fn mounted_secret() -> (tempfile::TempDir, PathBuf, Ca, Minted) {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("secret");
    let ca = Ca::new("k8s CA");
    let crt = leaf(&ca, "svc.ns.svc", 60);
    tls_secret_volume(&vol, "..2026_11_23_10_00_00.123", &crt, &ca.cert);
    (dir, vol, ca, crt)
}

#[test]
fn secret_volume_file_is_reported_under_its_configured_symlink_path() {
    let (dir, vol, _, crt) = mounted_secret();

    let tls = vol.join("tls.crt");
    let scan = scan_paths(dir.path(), &[&tls]);
    assert_eq!(
        scan.keys().map(|k| k.to_path_buf()).collect::<Vec<_>>(),
        vec![tls.clone()]
    );
    assert_good(&scan, &tls, &crt);
}

#[test]
fn secret_volume_directory_reports_only_the_user_facing_names() {
    let (dir, vol, ca, crt) = mounted_secret();

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
// Globs, excludes, duplicates, relative paths.

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
    assert_eq!(
        scan.keys().map(|k| k.to_path_buf()).collect::<Vec<_>>(),
        [lit.clone(), globbed.clone()]
    );
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
// Through the binary.

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
    let (dir, vol, _, crt) = mounted_secret();

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

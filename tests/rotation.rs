//! Following certificates as they rotate: file watching (the exact
//! sequences Kubernetes, certbot and editors use), configuration reload on
//! SIGHUP and POST /-/reload, and "restart pending" detection.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// Intervals long enough that only a file event can explain a change.
const QUIET: &str = "global:\n  interval: 1h\n  timeout: 5s\n";
/// How long a change may take to show: debounce plus a pass, with slack
/// for a loaded CI machine.
const FOLLOW: Duration = Duration::from_secs(5);

fn not_after(m: &Exposition, filepath: &str) -> Option<f64> {
    m.find("x509_cert_not_after", &[("filepath", filepath)])
        .first()
        .map(|s| s.value)
}

/// Kubernetes' AtomicWriter: new timestamped directory, `..data_tmp`
/// symlink to it, rename over `..data`, remove the old directory.
fn kubernetes_swap(dir: &Path, old: &str, new: &str, cert_pem: &str) {
    secret_volume(dir, new, &[("tls.crt", cert_pem)]);
    std::fs::remove_dir_all(dir.join(old)).unwrap();
}

#[test]
fn kubernetes_secret_swap_shows_on_metrics_without_waiting_for_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("tls");
    let ca = Ca::new("k8s CA");
    let first = leaf(&ca, "varpulis", 30);
    secret_volume(
        &secret,
        "..2026_11_23_10_00_00.1",
        &[("tls.crt", &first.cert_pem)],
    );
    let path = secret.join("tls.crt").to_string_lossy().into_owned();
    let daemon = Daemon::start(
        tmp.path(),
        &format!("{QUIET}files:\n  - name: varpulis\n    paths: [\"{path}\"]\n"),
    );
    daemon.wait_for(FOLLOW, |m| {
        not_after(m, &path) == Some(first.not_after as f64)
    });

    let renewed = leaf(&ca, "varpulis", 90);
    kubernetes_swap(
        &secret,
        "..2026_11_23_10_00_00.1",
        "..2026_11_23_11_00_00.2",
        &renewed.cert_pem,
    );
    let m = daemon.wait_for(FOLLOW, |m| {
        not_after(m, &path) == Some(renewed.not_after as f64)
    });
    // One series for the one configured path: the swap leaves no stale twin.
    assert_eq!(
        m.find("x509_cert_not_after", &[("source_name", "varpulis")])
            .len(),
        1
    );
}

#[test]
fn atomic_rename_in_place_rewrite_delete_and_new_file_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let ca = Ca::new("rotation CA");
    let a = leaf(&ca, "a", 30);
    write(&certs, "a.crt", &a.cert_pem);
    let pattern = certs.join("*.crt").to_string_lossy().into_owned();
    let a_path = certs.join("a.crt").to_string_lossy().into_owned();
    let b_path = certs.join("b.crt").to_string_lossy().into_owned();
    let daemon = Daemon::start(
        tmp.path(),
        &format!("{QUIET}files:\n  - name: dir\n    paths: [\"{pattern}\"]\n"),
    );
    daemon.wait_for(FOLLOW, |m| {
        not_after(m, &a_path) == Some(a.not_after as f64)
    });

    // certbot / editors: write a temporary file, rename it over the old one.
    let renamed = leaf(&ca, "a", 60);
    write(&certs, ".a.crt.tmp", &renamed.cert_pem);
    std::fs::rename(certs.join(".a.crt.tmp"), certs.join("a.crt")).unwrap();
    daemon.wait_for(FOLLOW, |m| {
        not_after(m, &a_path) == Some(renamed.not_after as f64)
    });

    // In-place rewrite of the same inode.
    let rewritten = leaf(&ca, "a", 75);
    std::fs::write(certs.join("a.crt"), &rewritten.cert_pem).unwrap();
    daemon.wait_for(FOLLOW, |m| {
        not_after(m, &a_path) == Some(rewritten.not_after as f64)
    });

    // A new file matching the glob appears.
    let b = leaf(&ca, "b", 45);
    write(&certs, "b.crt", &b.cert_pem);
    daemon.wait_for(FOLLOW, |m| {
        not_after(m, &b_path) == Some(b.not_after as f64)
    });

    // A deleted file disappears: no stale series.
    std::fs::remove_file(certs.join("a.crt")).unwrap();
    let m = daemon.wait_for(FOLLOW, |m| not_after(m, &a_path).is_none());
    assert!(not_after(&m, &b_path).is_some());
    assert_eq!(
        m.value("certinel_certificates", &[("source_kind", "file")]),
        1.0
    );
}

fn endpoint_config(dir: &Path, targets: &[String], extra: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let _ = dir;
    format!(
        "{QUIET}{extra}endpoints:\n  - name: web\n    ca_file: ca.crt\n    targets: [{}]\n",
        list.join(", ")
    )
}

fn last_probe(m: &Exposition, target: &str) -> Option<f64> {
    m.find(
        "certinel_tls_last_probe_timestamp_seconds",
        &[("target", target)],
    )
    .first()
    .map(|s| s.value)
}

#[test]
fn sighup_reload_keeps_unchanged_targets_drops_removed_and_probes_new_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("reload CA");
    write(tmp.path(), "ca.crt", &ca.cert.cert_pem);
    let s1 = tls_server(&leaf(&ca, "one", 30), &ServerOptions::default());
    let s2 = tls_server(&leaf(&ca, "two", 40), &ServerOptions::default());
    let s3 = tls_server(&leaf(&ca, "three", 50), &ServerOptions::default());
    let [t1, t2, t3] = [&s1, &s2, &s3].map(|s| format!("localhost:{}", s.addr.port()));
    let daemon = Daemon::start(
        tmp.path(),
        &endpoint_config(tmp.path(), &[t1.clone(), t2.clone()], ""),
    );
    daemon.wait_ready(Duration::from_secs(10));
    let before = daemon.metrics();
    let kept_probe = last_probe(&before, &t1).unwrap();
    let first_success = before.value("certinel_config_last_reload_success_timestamp_seconds", &[]);
    assert_eq!(
        before.value("certinel_config_last_reload_successful", &[]),
        1.0
    );

    std::thread::sleep(Duration::from_millis(1100));
    write(
        tmp.path(),
        "certinel.yaml",
        endpoint_config(tmp.path(), &[t1.clone(), t3.clone()], ""),
    );
    daemon.signal("HUP");
    let m = daemon.wait_for(FOLLOW, |m| {
        last_probe(m, &t3).is_some() && last_probe(m, &t2).is_none()
    });
    // The unchanged target kept its result: not re-probed (interval 1h).
    assert_eq!(last_probe(&m, &t1), Some(kept_probe));
    assert!(m.has("x509_cert_not_after", &[("subject_CN", "three")]));
    assert!(!m.has("x509_cert_not_after", &[("subject_CN", "two")]));
    assert_eq!(m.value("certinel_config_last_reload_successful", &[]), 1.0);
    assert!(m.value("certinel_config_last_reload_success_timestamp_seconds", &[]) > first_success);
}

#[test]
fn invalid_config_on_reload_keeps_the_old_one_running() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("reload CA");
    write(tmp.path(), "ca.crt", &ca.cert.cert_pem);
    let server = tls_server(&leaf(&ca, "steady", 30), &ServerOptions::default());
    let target = format!("localhost:{}", server.addr.port());
    let good = endpoint_config(tmp.path(), std::slice::from_ref(&target), "");
    let daemon = Daemon::start_with_args(tmp.path(), &good, &["--web.enable-lifecycle"]);
    daemon.wait_ready(Duration::from_secs(10));

    write(
        tmp.path(),
        "certinel.yaml",
        "global:\n  interval: 5 parsecs\n",
    );
    let (status, body) = http_request(daemon.addr, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("global.interval") && body.contains("line 2"),
        "{body}"
    );
    let m = daemon.metrics();
    assert_eq!(m.value("certinel_config_last_reload_successful", &[]), 0.0);
    assert!(m.has("x509_cert_not_after", &[("subject_CN", "steady")]));
    // SIGHUP with the same broken file: still running, still serving.
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon
        .metrics()
        .has("x509_cert_not_after", &[("subject_CN", "steady")]));

    write(tmp.path(), "certinel.yaml", &good);
    let (status, body) = http_request(daemon.addr, "POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        daemon
            .metrics()
            .value("certinel_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(http_request(daemon.addr, "GET", "/-/reload").0, 405);
}

#[test]
fn reload_while_probes_are_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("reload CA");
    write(tmp.path(), "ca.crt", &ca.cert.cert_pem);
    let hole = raw_server(|stream| {
        std::thread::sleep(Duration::from_secs(8));
        drop(stream);
    });
    let good = tls_server(&leaf(&ca, "good", 30), &ServerOptions::default());
    let good_target = format!("localhost:{}", good.addr.port());
    let hole_target = hole.to_string();
    let daemon = Daemon::start_with_args(
        tmp.path(),
        &endpoint_config(tmp.path(), std::slice::from_ref(&hole_target), ""),
        &["--web.enable-lifecycle"],
    );
    // The black-hole probe is now waiting out its 5 s deadline.
    std::thread::sleep(Duration::from_millis(300));
    write(
        tmp.path(),
        "certinel.yaml",
        endpoint_config(tmp.path(), std::slice::from_ref(&good_target), ""),
    );
    let (status, body) = http_request(daemon.addr, "POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    let m = daemon.wait_for(FOLLOW, |m| last_probe(m, &good_target).is_some());
    assert!(last_probe(&m, &hole_target).is_none());
    // The cancelled probe's deadline passes: nothing of it comes back.
    std::thread::sleep(Duration::from_secs(5));
    let m = daemon.metrics();
    assert!(last_probe(&m, &hole_target).is_none(), "{}", m.text);
    assert!(daemon.is_running());
}

/// Writes `ca.crt` into `dir` and issues a certificate and its renewal
/// (a later NotBefore), as cert-manager would.
fn old_and_renewed(dir: &Path) -> (Minted, Minted) {
    let ca = Ca::new("rotation CA");
    write(dir, "ca.crt", &ca.cert.cert_pem);
    renewal(&ca, "svc", 10, 90)
}

#[test]
fn server_serving_an_older_certificate_than_its_file_is_restart_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = old_and_renewed(tmp.path());
    let file = write(tmp.path(), "tls/tls.crt", &old.cert_pem);
    let server = tls_server(&old, &ServerOptions::default());
    let addr = server.addr;
    let target = format!("localhost:{}", addr.port());
    let config = format!(
        "global:\n  interval: 1s\n  timeout: 1s\nendpoints:\n  - name: varpulis\n    ca_file: ca.crt\n    targets:\n      - {{ target: \"{target}\", expect_file: tls/tls.crt }}\n"
    );
    let daemon = Daemon::start(tmp.path(), &config);
    let filepath = file.to_string_lossy().into_owned();
    let labels = [
        ("source_name", "varpulis"),
        ("target", target.as_str()),
        ("filepath", filepath.as_str()),
    ];
    let stale = |m: &Exposition| {
        m.find("certinel_served_cert_stale", &labels)
            .first()
            .map(|s| s.value)
    };
    daemon.wait_for(FOLLOW, |m| stale(m) == Some(0.0));

    // cert-manager renews the file; the process keeps serving the old one.
    std::fs::write(&file, &new.cert_pem).unwrap();
    let m = daemon.wait_for(FOLLOW, |m| stale(m) == Some(1.0));
    assert_eq!(
        m.one("certinel_served_cert_stale", &labels).labels["address"],
        addr.to_string()
    );

    // Rolling restart: the server now loads the new file.
    drop(server);
    let _restarted = tls_server_on(
        &addr.to_string(),
        server_config(&new, &ServerOptions::default()),
    );
    daemon.wait_for(FOLLOW, |m| stale(m) == Some(0.0));
}

#[test]
fn file_older_than_the_served_certificate_is_not_restart_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = old_and_renewed(tmp.path());
    // The server already runs the new certificate; the file lags behind
    // (kubelet has not synced the secret yet).
    write(tmp.path(), "tls.crt", &old.cert_pem);
    let server = tls_server(&new, &ServerOptions::default());
    let target = format!("localhost:{}", server.addr.port());
    let daemon = Daemon::start(
        tmp.path(),
        &format!(
            "global:\n  interval: 1s\n  timeout: 1s\nendpoints:\n  - name: e\n    ca_file: ca.crt\n    expect_file: tls.crt\n    targets: [\"{target}\"]\n"
        ),
    );
    let m = daemon.wait_for(FOLLOW, |m| m.has("certinel_served_cert_stale", &[]));
    assert_eq!(
        m.value("certinel_served_cert_stale", &[("target", target.as_str())]),
        0.0
    );
}

#[test]
fn reading_the_files_does_not_wake_the_watcher() {
    // inotify reports certinel's own opens and reads of the watched files;
    // they must not trigger another pass (which would read them again).
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let ca = Ca::new("quiet CA");
    for name in ["a", "b", "c"] {
        write(
            &certs,
            &format!("{name}.crt"),
            &leaf(&ca, name, 30).cert_pem,
        );
    }
    let pattern = certs.join("*.crt").to_string_lossy().into_owned();
    let daemon = Daemon::start(
        tmp.path(),
        &format!(
            "{QUIET}files:\n  - name: quiet\n    paths: [\"{pattern}\", \"{}\"]\n",
            certs.display()
        ),
    );
    daemon.wait_ready(Duration::from_secs(10));
    let last_run = |m: &Exposition| {
        m.value(
            "certinel_source_last_run_timestamp_seconds",
            &[("source_name", "quiet")],
        )
    };
    // Let the start-up burst (and the two-second racy-timestamp window
    // for freshly written files) settle.
    std::thread::sleep(Duration::from_millis(2500));
    let before = last_run(&daemon.metrics());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        last_run(&daemon.metrics()),
        before,
        "passes kept running with nothing changed"
    );
}

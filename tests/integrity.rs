//! Signal integrity: no input makes two series collide, and the
//! restart-pending signal follows the file it watches within seconds.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// A CA (written to `dir/ca.crt`), a certificate the file was renewed to
/// and the older one a process still serves.
fn old_and_renewed(dir: &Path) -> (Ca, Minted, Minted) {
    let ca = Ca::new("integrity CA");
    write(dir, "ca.crt", &ca.cert.cert_pem);
    let old = ca.issue(&Leaf {
        not_before: now() - 20 * DAY,
        sans: &["localhost", "old.test", "new.test"],
        ..Leaf::server("svc", 10)
    });
    let new = ca.issue(&Leaf {
        not_before: now() - 3600,
        sans: &["localhost", "old.test", "new.test"],
        ..Leaf::server("svc", 90)
    });
    (ca, old, new)
}

/// Chooses the certificate by SNI: `old.test` gets `old`, anything else
/// `new`.
#[derive(Debug)]
struct BySni {
    old: Arc<rustls::sign::CertifiedKey>,
    new: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(match hello.server_name() {
            Some("old.test") => self.old.clone(),
            _ => self.new.clone(),
        })
    }
}

fn certified(m: &Minted) -> Arc<rustls::sign::CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(
        rustls::sign::CertifiedKey::from_der(certs_of(&m.cert_pem), key_of(&m.key_pem), &provider)
            .unwrap(),
    )
}

#[test]
fn one_target_under_two_server_names_reports_each_restart_verdict() {
    // The same host:port and expect_file under two SNIs: the server still
    // presents the old certificate for one name and the renewed one for
    // the other. Both verdicts must be visible — they used to share every
    // label, and Prometheus kept only one of them.
    let tmp = tempfile::tempdir().unwrap();
    let (_, old, new) = old_and_renewed(tmp.path());
    write(tmp.path(), "tls.crt", &new.cert_pem);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(BySni {
        old: certified(&old),
        new: certified(&new),
    }));
    let server = tls_server_on("127.0.0.1:0", Arc::new(config));
    let target = format!("127.0.0.1:{}", server.addr.port());
    let daemon = Daemon::start(
        tmp.path(),
        &format!(
            "global:\n  interval: 1h\n  timeout: 5s\nendpoints:\n  - name: sni\n    ca_file: ca.crt\n    expect_file: tls.crt\n    targets:\n      - {{ target: \"{target}\", server_name: old.test }}\n      - {{ target: \"{target}\", server_name: new.test }}\n"
        ),
    );
    let m = daemon.wait_for(Duration::from_secs(10), |m| {
        m.find("certinel_served_cert_stale", &[]).len() == 2
    });
    assert_eq!(
        m.value("certinel_served_cert_stale", &[("server_name", "old.test")]),
        1.0
    );
    assert_eq!(
        m.value("certinel_served_cert_stale", &[("server_name", "new.test")]),
        0.0
    );
    assert_eq!(m.duplicate_series(), Vec::<String>::new());
}

#[test]
fn file_names_that_differ_only_in_invalid_bytes_stay_two_series() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = Ca::new("bytes CA");
    for (name, cn) in [(&b"a\xff.pem"[..], "ff"), (&b"a\xfe.pem"[..], "fe")] {
        let path = certs.join(OsStr::from_bytes(name));
        std::fs::write(&path, ca.issue(&Leaf::server(cn, 30)).cert_pem).unwrap();
    }
    // And two unreadable ones, for certinel_file_error_info.
    for name in [&b"bad\xff.pem"[..], &b"bad\xfe.pem"[..]] {
        std::fs::write(certs.join(OsStr::from_bytes(name)), "garbage").unwrap();
    }
    let daemon = Daemon::start(
        tmp.path(),
        &format!(
            "global:\n  interval: 1h\nfiles:\n  - name: bytes\n    paths: [\"{}\"]\n",
            certs.display()
        ),
    );
    let m = daemon.wait_for(Duration::from_secs(10), |m| {
        m.find("x509_cert_not_after", &[("source_name", "bytes")])
            .len()
            == 2
            && m.find("certinel_file_error_info", &[]).len() == 2
    });
    let dir = certs.display().to_string();
    let ff = m.one("x509_cert_not_after", &[("subject_CN", "ff")]);
    assert_eq!(ff.labels["filepath"], format!("{dir}/a\\xff.pem"));
    assert_eq!(ff.labels["filename"], "a\\xff.pem");
    let fe = m.one("x509_cert_not_after", &[("subject_CN", "fe")]);
    assert_eq!(fe.labels["filepath"], format!("{dir}/a\\xfe.pem"));
    assert_eq!(m.duplicate_series(), Vec::<String>::new());
}

#[test]
fn restart_pending_follows_a_secret_swap_within_seconds() {
    // Kubernetes secret volume layout: tls.crt -> ..data/tls.crt, and
    // ..data -> a timestamped directory, swapped atomically on renewal.
    // The probe interval is an hour: only the file change can bring the
    // verdict.
    let tmp = tempfile::tempdir().unwrap();
    let (_, old, new) = old_and_renewed(tmp.path());
    let secret = tmp.path().join("secret");
    secret_volume(&secret, "..2026_01", &[("tls.crt", &old.cert_pem)]);
    let server = tls_server(&old, &ServerOptions::default());
    let target = format!("localhost:{}", server.addr.port());
    let daemon = Daemon::start(
        tmp.path(),
        &format!(
            "global:\n  interval: 1h\n  timeout: 5s\nendpoints:\n  - name: varpulis\n    ca_file: ca.crt\n    expect_file: secret/tls.crt\n    targets: [\"{target}\"]\n"
        ),
    );
    let stale = |m: &Exposition| {
        m.find("certinel_served_cert_stale", &[("target", target.as_str())])
            .first()
            .map(|s| s.value)
    };
    daemon.wait_for(Duration::from_secs(10), |m| stale(m) == Some(0.0));
    let probed = daemon.metrics().value(
        "certinel_tls_last_probe_timestamp_seconds",
        &[("target", target.as_str())],
    );

    // The swap, as kubelet does it.
    secret_volume(&secret, "..2026_02", &[("tls.crt", &new.cert_pem)]);

    let m = daemon.wait_for(Duration::from_secs(5), |m| stale(m) == Some(1.0));
    // And the target was probed again soon after, not an hour later.
    let m = if m.value(
        "certinel_tls_last_probe_timestamp_seconds",
        &[("target", target.as_str())],
    ) > probed
    {
        m
    } else {
        daemon.wait_for(Duration::from_secs(5), |m| {
            m.value(
                "certinel_tls_last_probe_timestamp_seconds",
                &[("target", target.as_str())],
            ) > probed
        })
    };
    assert_eq!(stale(&m), Some(1.0));
}

/// A file-only configuration over one good certificate.
fn one_good_file(dir: &Path) -> String {
    let ca = Ca::new("reload CA");
    write(
        dir,
        "certs/good.pem",
        &ca.issue(&Leaf::server("good", 30)).cert_pem,
    );
    format!(
        "global:\n  interval: 1h\nfiles:\n  - name: good\n    paths: [\"{}\"]\n",
        dir.join("certs").display()
    )
}

fn reload_ok(m: &Exposition) -> f64 {
    m.value("certinel_config_last_reload_successful", &[])
}

#[test]
fn bad_reloads_are_refused_and_the_running_configuration_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let config = one_good_file(tmp.path());
    let daemon = Daemon::start(tmp.path(), &config);
    daemon.wait_for(Duration::from_secs(10), |m| {
        m.has("x509_cert_not_after", &[("subject_CN", "good")])
    });
    let path = tmp.path().join("certinel.yaml");
    for bad in [
        "global:\n  concurrency: 3000000000000000000\n".to_owned(),
        "global:\n  interval: 300000000000y\n".to_owned(),
        "global:\n  interval: 1ns\n".to_owned(),
        "global:\n  timeout: 300000000000y\n".to_owned(),
        "files: [{name: x, paths: [/a], interval: 5 parsecs}]\n".to_owned(),
        "[".repeat(50_000),
    ] {
        std::fs::write(&path, &bad).unwrap();
        daemon.signal("HUP");
        let m = daemon.wait_for(Duration::from_secs(10), |m| reload_ok(m) == 0.0);
        assert!(daemon.is_running(), "{bad:.60}");
        assert!(m.has("x509_cert_not_after", &[("subject_CN", "good")]));
        // Back to a good file, so the next bad one shows as a new failure.
        std::fs::write(&path, &config).unwrap();
        daemon.signal("HUP");
        daemon.wait_for(Duration::from_secs(10), |m| reload_ok(m) == 1.0);
    }
    let logs = daemon.logs().join("\n");
    assert!(
        logs.contains("global.concurrency: 3000000000000000000 is out of range"),
        "{logs}"
    );
    assert!(
        logs.contains("files[0].interval: invalid duration"),
        "{logs}"
    );
    assert!(logs.contains("nested more than 32 levels"), "{logs}");
}

#[test]
fn a_config_path_that_became_a_fifo_fails_the_reload_at_once_and_sigterm_still_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let config = one_good_file(tmp.path());
    let daemon = Daemon::start(tmp.path(), &config);
    daemon.wait_ready(Duration::from_secs(10));
    let path = tmp.path().join("certinel.yaml");
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(5), |m| reload_ok(m) == 0.0);
    let logs = daemon.logs().join("\n");
    assert!(logs.contains("not a regular file (FIFO)"), "{logs}");
    // Nothing is left waiting on the FIFO: shutdown is prompt.
    let started = std::time::Instant::now();
    assert!(daemon.terminate().status.success());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn scrapes_stay_prompt_while_a_huge_configuration_is_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let config = one_good_file(tmp.path());
    // One worker thread, as on a one-CPU pod: a reload parsed on it would
    // leave nothing to answer scrapes.
    let config_path = write(tmp.path(), "certinel.yaml", &config);
    let daemon = Launch::new(&config_path)
        .env("TOKIO_WORKER_THREADS", "1")
        .start();
    daemon.wait_ready(Duration::from_secs(10));
    // Close to the 8 MiB cap: tens of thousands of sources to parse and
    // check — refused at the very end (a duplicate name), so nothing of it
    // ever runs.
    let mut big = config.clone();
    for i in 0..60_000 {
        big.push_str(&format!(
            "  - {{name: \"s{i}\", paths: [\"/nonexistent/{i}\"]}}\n"
        ));
    }
    big.push_str("  - {name: s0, paths: [/nonexistent]}\n");
    std::fs::write(&config_path, &big).unwrap();
    daemon.signal("HUP");
    let mut slowest = Duration::ZERO;
    for _ in 0..40 {
        let started = std::time::Instant::now();
        let (status, _) = daemon.get("/-/healthy");
        assert_eq!(status, 200);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a scrape waited {slowest:?}"
    );
}

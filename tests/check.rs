//! `certinel check` exit codes and output, and the node_exporter textfile,
//! validated with the real `promtool check metrics`.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

fn certinel(args: &[&str], cwd: &Path) -> Finished {
    run_bounded(
        certinel_command()
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1"),
        Duration::from_secs(30),
    )
}

fn cert_file(dir: &Path, name: &str, days_left: i64) -> String {
    let ca = Ca::new("check CA");
    let leaf = ca.issue(&Leaf::server(name, days_left));
    write(dir, &format!("{name}.crt"), &leaf.cert_pem)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn check_exit_code_follows_the_worst_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fine = cert_file(d, "fine", 90);
    let soon = cert_file(d, "soon", 20);
    let urgent = cert_file(d, "urgent", 3);
    let expired = cert_file(d, "gone", -2);
    let cases: [(&[&str], i32); 5] = [
        (&[&fine], 0),
        (&[&fine, &soon], 1),
        (&[&fine, &soon, &urgent], 2),
        (&[&fine, &expired], 2),
        (&[&soon, "--warn", "10d", "--crit", "5d"], 0),
    ];
    for (args, code) in cases {
        let mut full = vec!["check"];
        full.extend_from_slice(args);
        let out = certinel(&full, d);
        assert_eq!(out.status.code(), Some(code), "{args:?}\n{}", out.stdout);
    }
}

#[test]
fn check_table_is_sorted_by_days_left_with_failures_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fine = cert_file(d, "fine", 90);
    let soon = cert_file(d, "soon", 20);
    write(d, "garbage.pem", "not a certificate\n");
    let out = certinel(&["check", &fine, &soon, "garbage.pem"], d);
    assert_eq!(out.status.code(), Some(2));
    let text = out.stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("STATUS"), "{text}");
    assert!(
        lines[1].starts_with("ERROR") && lines[1].ends_with("no_certificate_found"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("WARN") && lines[2].contains("soon"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("OK") && lines[3].contains("fine"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "NO_COLOR must disable colours");
}

#[test]
fn check_json_carries_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let soon = cert_file(dir.path(), "soon", 20);
    let out = certinel(&["check", &soon, "--output", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let row = &rows[0];
    assert_eq!(row["status"], "warn");
    assert_eq!(row["subject_cn"], "soon");
    assert_eq!(row["filepath"], soon.as_str());
    assert_eq!(row["source_kind"], "file");
    let days = row["days_left"].as_f64().unwrap();
    assert!((19.9..20.1).contains(&days), "{days}");
}

#[test]
fn check_probes_endpoints_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("endpoint CA");
    let ca_path = write(dir.path(), "ca.crt", &ca.cert.cert_pem);
    let leaf = ca.issue(&Leaf::server("web", 60));
    let server = tls_server(&leaf, &ServerOptions::default());
    let target = format!("localhost:{}", server.addr.port());
    let ca_arg = ca_path.to_string_lossy().into_owned();
    let ok = certinel(&["check", &target, "--ca-file", &ca_arg], dir.path());
    assert_eq!(ok.status.code(), Some(0), "{}", ok.stdout);
    assert!(ok.stdout.contains(&server.addr.to_string()));

    let closed = closed_port().to_string();
    let refused = certinel(&["check", &closed], dir.path());
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stdout.contains("refused"), "{}", refused.stdout);
}

#[test]
fn check_usage_errors_and_empty_results_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(certinel(&["check", "--bogus"], d).status.code(), Some(3));
    assert_eq!(certinel(&["check"], d).status.code(), Some(3));
    assert_eq!(
        certinel(&["check", "x.pem", "--warn", "1d", "--crit", "7d"], d)
            .status
            .code(),
        Some(3)
    );
    let nothing = certinel(&["check", "nothing-here/*.pem"], d);
    assert_eq!(nothing.status.code(), Some(3));
    assert!(nothing.stdout.contains("no certificates found"));
    write(d, "bad.yaml", "global:\n  bogus: 1\n");
    assert_eq!(
        certinel(&["check", "--config.file", "bad.yaml"], d)
            .status
            .code(),
        Some(3)
    );
}

#[test]
fn check_runs_every_source_of_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cert_file(d, "a", 90);
    cert_file(d, "b", 3);
    write(
        d,
        "c.yaml",
        "files:\n  - name: local\n    paths: [\"*.crt\"]\n",
    );
    let out = certinel(&["check", "--config.file", "c.yaml"], d);
    assert_eq!(out.status.code(), Some(2), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 3);
}

#[test]
fn check_textfile_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let soon = cert_file(dir.path(), "soon", 20);
    let prom = dir.path().join("certinel.prom");
    let prom_arg = prom.to_string_lossy().into_owned();
    let out = certinel(
        &["check", &soon, "--textfile.output", &prom_arg],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("x509_cert_not_after{"), "{text}");
    promtool_check_metrics(&text);
}

#[test]
fn daemon_textfile_is_written_atomically_and_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cert_file(d, "svc", 45);
    let prom = d.join("textfile/certinel.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let prom_arg = prom.to_string_lossy().into_owned();
    let daemon = Daemon::start_with_args(
        d,
        "files:\n  - name: local\n    paths: [\"*.crt\"]\n    interval: 1s\n",
        &["--textfile.output", &prom_arg],
    );
    eventually(
        Duration::from_secs(10),
        || prom.exists().then_some(()),
        || "textfile never written".to_owned(),
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("subject_CN=\"svc\""), "{text}");
    assert!(
        text.contains("# TYPE x509_source_errors_total counter")
            || !text.contains("x509_source_errors_total")
    );
    promtool_check_metrics(&text);
    // Only the .prom file: no temporaries left for the collector to trip on.
    let names: Vec<_> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["certinel.prom"]);
    drop(daemon);
}

#[test]
fn metrics_endpoint_in_prometheus_text_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    cert_file(dir.path(), "svc", 45);
    write(dir.path(), "junk.crt", "junk");
    let daemon = Daemon::start(
        dir.path(),
        "files:\n  - name: local\n    paths: [\"*.crt\"]\n    interval: 1s\n",
    );
    daemon.wait_ready(Duration::from_secs(10));
    let (_, body) = daemon.get("/metrics");
    assert!(body.contains("x509_source_errors_total"), "{body}");
    promtool_check_metrics(&body);
}

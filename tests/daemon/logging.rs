//! Logs: JSON or logfmt, the level by flag or environment (the flag wins),
//! debug lines for probes and nothing below the chosen level.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;

/// certinel over one good TLS endpoint (so debug logs have probes to show)
/// with the log flags `args` and the environment `envs`, from start until
/// SIGTERM after its first pass: its address and every line it logged.
fn run_logged(args: &[&str], envs: &[(&str, &str)]) -> (SocketAddr, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log-ca");
    let server = tls_server(&leaf(&ca, "log-leaf", 30), &ServerOptions::default());
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let config = write(
        dir.path(),
        "certinel.yaml",
        format!(
            "global:\n  interval: 1h\n  timeout: 5s\nendpoints:\n  - name: logged\n    ca_file: {}\n    targets: [\"localhost:{}\"]\n",
            yaml_str(&ca_path),
            server.addr.port()
        ),
    );
    // The level may hide the `listening` line: the port is chosen here.
    let mut launch = Launch::new(&config)
        .default_log_level()
        .listen_on(closed_port())
        .args(args);
    for (k, v) in envs {
        launch = launch.env(k, v);
    }
    let d = launch.start();
    d.wait_ready(Duration::from_secs(15));
    (d.addr, d.terminate().logs)
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let (addr, lines) = run_logged(&["--log.format", "json", "--log.level", "debug"], &[]);
    let addr = addr.to_string();
    assert!(lines.len() >= 3, "{lines:?}");
    let mut listening = false;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "listening" {
            assert_eq!(v["address"], addr.as_str(), "{line}");
            listening = true;
        }
    }
    assert!(listening, "no listening line: {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("probe")),
        "debug shows probes: {lines:?}"
    );
}

#[test]
fn log_format_env_selects_json() {
    let (_, lines) = run_logged(&[], &[("CERTINEL_LOG_FORMAT", "json")]);
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}

fn assert_debug_probe_lines(lines: &[String]) {
    assert!(
        lines
            .iter()
            .any(|l| l.contains("level=debug") && l.contains("probe")),
        "{lines:?}"
    );
}

#[test]
fn log_level_debug_flag_shows_probe_lines() {
    assert_debug_probe_lines(&run_logged(&["--log.level", "debug"], &[]).1);
}

#[test]
fn log_level_env_debug_shows_probe_lines() {
    assert_debug_probe_lines(&run_logged(&[], &[("CERTINEL_LOG_LEVEL", "debug")]).1);
}

#[test]
fn default_log_level_info_hides_probe_lines() {
    let (_, lines) = run_logged(&[], &[]);
    assert!(
        lines.iter().any(|l| l.contains("msg=listening")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("level=debug")),
        "{lines:?}"
    );
}

fn assert_error_level_only(lines: &[String]) {
    assert!(
        !lines.iter().any(|l| l.contains("listening")),
        "error level hides the info listening line: {lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.contains("level=error")),
        "only errors: {lines:?}"
    );
}

#[test]
fn log_level_error_flag_hides_info_lines() {
    assert_error_level_only(&run_logged(&["--log.level", "error"], &[]).1);
}

#[test]
fn log_level_env_error_hides_info_lines() {
    assert_error_level_only(&run_logged(&[], &[("CERTINEL_LOG_LEVEL", "error")]).1);
}

#[test]
fn log_level_flag_wins_over_env() {
    assert_error_level_only(
        &run_logged(
            &["--log.level", "error"],
            &[("CERTINEL_LOG_LEVEL", "debug")],
        )
        .1,
    );
}

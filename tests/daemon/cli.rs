//! Command-line flags, config validation (`--config.check`, one fixture
//! per rule, and refusing to start), and shutdown on SIGTERM.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::file_only_config;
use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

// ---------------------------------------------------------------------------
// Flags.

#[test]
fn version_flag_prints_the_version_and_exits_zero() {
    let out = run_bounded(certinel_command().arg("--version"), Duration::from_secs(10));
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("certinel {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_flag_lists_every_flag_and_exits_zero() {
    let out = run_bounded(certinel_command().arg("--help"), Duration::from_secs(10));
    assert!(out.status.success(), "{}", out.stderr);
    for flag in [
        "--config.file",
        "--config.check",
        "--web.listen-address",
        "--log.level",
        "--log.format",
    ] {
        assert!(
            out.stdout.contains(flag),
            "--help lacks {flag}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn unknown_flag_exits_non_zero_and_names_the_flag() {
    let out = run_bounded(
        certinel_command().arg("--no-such-flag"),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// Config validation.

#[test]
fn config_check_accepts_the_shipped_example_and_says_valid() {
    let out = config_check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("valid"), "{}", out.stdout);
}

#[test]
fn config_check_accepts_the_minimal_fixture() {
    let out = config_check(&fixture("valid-minimal.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("is valid"), "{}", out.stdout);
    assert!(out.stdout.contains("1 file source(s)"), "{}", out.stdout);
}

/// One test per validation rule: `--config.check` on
/// `tests/fixtures/config/<fixture>` exits 1 and stderr contains every
/// needle (the key path, the line, and what is wrong).
macro_rules! rejects {
    ($($test:ident: $fixture:literal => [$($needle:literal),+ $(,)?];)+) => {$(
        #[test]
        fn $test() {
            let out = config_check(&fixture($fixture));
            assert_eq!(
                out.status.code(),
                Some(1),
                "{}: expected exit 1; stdout: {} stderr: {}",
                $fixture,
                out.stdout,
                out.stderr
            );
            for needle in [$($needle),+] {
                assert!(
                    out.stderr.contains(needle),
                    "{}: stderr lacks {needle:?}:\n{}",
                    $fixture,
                    out.stderr
                );
            }
        }
    )+};
}

rejects! {
    config_check_rejects_unknown_top_level_key_with_line:
        "invalid-unknown-top-level-key.yaml" =>
        ["unknown field `scrape_interval`", "line 4"];
    config_check_rejects_unknown_nested_key_with_path_and_line:
        "invalid-unknown-nested-key.yaml" =>
        ["global: unknown field `intervall`", "line 3"];
    config_check_rejects_bad_duration_with_path_and_line:
        "invalid-bad-duration.yaml" =>
        ["files[0].interval: invalid duration \"5 minutes-ish\"", "line 4"];
    config_check_rejects_zero_duration_with_path_and_line:
        "invalid-zero-duration.yaml" =>
        ["global.timeout: invalid duration \"0s\": must be greater than zero", "line 3"];
    config_check_rejects_bad_size_with_path_and_line:
        "invalid-bad-size.yaml" =>
        ["global.max_file_size: invalid size \"1 parsec\"", "line 3"];
    config_check_rejects_duplicate_source_name_within_files:
        "invalid-duplicate-name-files.yaml" =>
        ["files[1].name: duplicate source name \"certs\"", "line 4"];
    config_check_rejects_duplicate_source_name_across_files_and_endpoints:
        "invalid-duplicate-name-across-kinds.yaml" =>
        ["endpoints[0].name: duplicate source name \"shared\"", "line 5"];
    config_check_rejects_missing_ca_file_with_path_and_line:
        "invalid-missing-ca-file.yaml" =>
        ["endpoints[0].ca_file: /nonexistent/certinel/ca.crt", "line 4"];
    config_check_rejects_missing_client_key_file_with_path_and_line:
        "invalid-missing-client-key-file.yaml" =>
        ["endpoints[0].client_key: /nonexistent/certinel/client.key", "line 5"];
    config_check_rejects_client_cert_without_client_key:
        "invalid-client-cert-without-key.yaml" =>
        ["endpoints[0].client_cert: client_cert and client_key must be set together", "line 4"];
    config_check_rejects_target_without_port_in_block_list:
        "invalid-target-without-port.yaml" =>
        ["endpoints[0].targets[0]: invalid target \"example.com\": missing port", "line 4"];
    config_check_rejects_target_without_port_in_flow_list:
        "invalid-target-without-port-flow-list.yaml" =>
        ["endpoints[0].targets[0]: invalid target \"example.com\": missing port", "line 3"];
    config_check_rejects_target_without_port_in_long_form:
        "invalid-target-without-port-long-form.yaml" =>
        ["endpoints[0].targets[1].target: invalid target \"example.com\": missing port", "line 5"];
    config_check_rejects_ipv6_target_without_brackets:
        "invalid-ipv6-target-without-brackets.yaml" =>
        ["endpoints[0].targets[0]: invalid target \"::1:443\": put IPv6 addresses in brackets", "line 4"];
    config_check_rejects_invalid_glob_in_block_list:
        "invalid-glob.yaml" =>
        ["files[0].paths[1]: invalid glob \"/etc/ssl/[.pem\"", "line 5"];
    config_check_rejects_invalid_glob_in_flow_list:
        "invalid-glob-flow-list.yaml" =>
        ["files[0].paths[1]: invalid glob \"/etc/ssl/[.pem\"", "line 3"];
    config_check_rejects_empty_paths_list:
        "invalid-empty-paths.yaml" =>
        ["files[0].paths: must list at least one file", "line 3"];
    config_check_rejects_empty_targets_list:
        "invalid-empty-targets.yaml" =>
        ["endpoints[0].targets: must list at least one host:port", "line 3"];
    config_check_rejects_concurrency_zero:
        "invalid-concurrency-zero.yaml" =>
        ["global.concurrency: must be at least 1", "line 2"];
    config_check_rejects_empty_file:
        "invalid-empty-file.yaml" =>
        ["invalid-empty-file.yaml", "config file is empty"];
    config_check_rejects_invalid_yaml_syntax_with_line:
        "invalid-yaml-syntax.yaml" =>
        ["did not find expected ',' or ']'", "line 4"];
    config_check_rejects_probe_enabled_without_networks:
        "invalid-probe-enabled-without-networks.yaml" =>
        ["probe.allow.networks: must list at least one network when probe.enabled is true", "line 4"];
    config_check_rejects_a_network_with_host_bits_set:
        "invalid-probe-network-with-host-bits.yaml" =>
        ["probe.allow.networks[1]: invalid network \"192.168.1.7/16\"", "did you mean 192.168.0.0/16?", "line 5"];
    config_check_rejects_a_host_pattern_with_an_inner_wildcard:
        "invalid-probe-host-pattern.yaml" =>
        ["probe.allow.hosts[0]: invalid host pattern \"db*.example.com\"", "line 3"];
    config_check_rejects_probe_max_concurrent_zero:
        "invalid-probe-max-concurrent-zero.yaml" =>
        ["probe.max_concurrent: must be at least 1", "line 5"];
    config_check_rejects_a_module_name_that_is_not_a_word:
        "invalid-module-name.yaml" =>
        ["modules.with/slash: invalid module name \"with/slash\"", "line 4"];
    config_check_rejects_a_module_with_a_missing_ca_file:
        "invalid-module-missing-ca-file.yaml" =>
        ["modules.internal.ca_file: /nonexistent/certinel/ca.crt", "line 4"];
    config_check_rejects_a_module_timeout_out_of_range:
        "invalid-module-timeout-out-of-range.yaml" =>
        ["modules.slow.timeout: duration \"1h\" is out of range", "line 3"];
}

#[test]
fn config_check_accepts_the_probe_fixture_and_counts_its_modules() {
    let out = config_check(&fixture("valid-probe.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("/probe enabled with 2 module(s)"),
        "{}",
        out.stdout
    );
}

#[test]
fn every_invalid_fixture_has_a_test() {
    // A fixture added without a `rejects!` entry would silently test nothing.
    let source = include_str!("cli.rs");
    let dir = fixture("");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("invalid-") && !source.contains(&format!("\"{name}\" =>")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "fixtures without a test: {missing:?}");
}

#[test]
fn daemon_refuses_an_invalid_config_with_exit_78_without_binding() {
    let addr = closed_port();
    let out = run_bounded(
        certinel_command()
            .arg("--config.file")
            .arg(fixture("invalid-bad-duration.yaml"))
            .arg("--web.listen-address")
            .arg(addr.to_string()),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(78), "{}", out.stderr);
    assert!(out.stderr.contains("files[0].interval"), "{}", out.stderr);
    assert!(!out.stderr.contains("listening"), "{}", out.stderr);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "something listens on {addr}"
    );
}

#[test]
fn daemon_refuses_a_missing_config_file_with_exit_78() {
    let out = run_bounded(
        certinel_command()
            .arg("--config.file")
            .arg("/nonexistent/certinel/certinel.yaml")
            .arg("--web.listen-address")
            .arg(closed_port().to_string()),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(78), "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/certinel/certinel.yaml"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// Graceful shutdown.

#[test]
fn sigterm_exits_successfully() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    d.wait_ready(Duration::from_secs(10));
    let started = Instant::now();
    let exited = d.terminate();
    let status = exited.status;
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let logs = exited.logs.join("\n");
    assert!(
        logs.contains("msg=\"shutting down\"") && logs.contains("signal=SIGTERM"),
        "{logs}"
    );
}

#[test]
fn sigterm_exits_successfully_while_black_hole_probes_are_in_flight() {
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let mut config = file_only_config(dir.path());
    config.push_str("endpoints:\n  - name: stuck\n    timeout: 60s\n    targets:\n");
    for i in 0..10 {
        config.push_str(&format!(
            "      - {{ target: \"{hole}\", server_name: \"stuck-{i}.test\" }}\n"
        ));
    }
    let d = Daemon::start(dir.path(), &config);
    wait_count(&accepted, 10, Duration::from_secs(5));
    assert_eq!(d.get("/-/ready").0, 503, "probes are in flight");
    let started = Instant::now();
    let status = d.terminate().status;
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

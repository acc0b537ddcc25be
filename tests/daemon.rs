//! The real `certinel` binary on loopback: command-line flags, config
//! validation (`--config.check` and refusing to start), the HTTP endpoints,
//! the metric contract of `/metrics` label by label, resilience against
//! black-hole targets, graceful shutdown, logging, and a real Prometheus
//! scraping it.
//!
//! Every wait is bounded; every server is on 127.0.0.1.

// Helpers outside #[test] fns may panic too: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;

// ---------------------------------------------------------------------------
// Helpers.

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// The `Accept` header Prometheus sends when scraping.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A GET with an optional `Accept` header that keeps the response headers
/// (lower-cased names).
fn get_full(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, HashMap<String, String>, String) {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    http_exchange(addr, "GET", path, &headers)
}

/// certinel with log settings of its own: the listening line they may hide
/// is not needed, the port is chosen beforehand.
fn start_logging(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
    let mut launch = Launch::new(config)
        .default_log_level()
        .listen_on(closed_port())
        .args(args);
    for (k, v) in envs {
        launch = launch.env(k, v);
    }
    launch.start()
}

// ---------------------------------------------------------------------------
// 1. Flags.

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
// 2. Config validation.

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
    // Bug: prints "global.max_file_size.max_file_size" (key doubled).
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
    // Checked after parsing: names the source, no line.
    config_check_rejects_client_cert_without_client_key:
        "invalid-client-cert-without-key.yaml" =>
        ["endpoints \"api\"", "client_cert and client_key must be set together"];
    config_check_rejects_target_without_port_in_block_list:
        "invalid-target-without-port.yaml" =>
        ["endpoints[0].targets[0]: invalid target \"example.com\": missing port", "line 4"];
    // Bug: prints "endpoints[0].targets[0].targets" (key doubled).
    config_check_rejects_target_without_port_in_flow_list:
        "invalid-target-without-port-flow-list.yaml" =>
        ["endpoints[0].targets[0]: invalid target \"example.com\": missing port", "line 3"];
    // Bug: no line for the `{ target, server_name }` form.
    config_check_rejects_target_without_port_in_long_form:
        "invalid-target-without-port-long-form.yaml" =>
        ["endpoints[0].targets[1]: invalid target \"example.com\": missing port", "line 5"];
    config_check_rejects_ipv6_target_without_brackets:
        "invalid-ipv6-target-without-brackets.yaml" =>
        ["endpoints[0].targets[0]: invalid target \"::1:443\": put IPv6 addresses in brackets", "line 4"];
    config_check_rejects_invalid_glob_in_block_list:
        "invalid-glob.yaml" =>
        ["files[0].paths: invalid glob \"/etc/ssl/[.pem\"", "line 5"];
    // Bug: no line when the glob sits in a flow list (config.example.yaml style).
    config_check_rejects_invalid_glob_in_flow_list:
        "invalid-glob-flow-list.yaml" =>
        ["files[0].paths: invalid glob \"/etc/ssl/[.pem\"", "line 3"];
    // Checked after parsing: names the source, no line.
    config_check_rejects_empty_paths_list:
        "invalid-empty-paths.yaml" =>
        ["files \"certs\"", "paths must list at least one"];
    config_check_rejects_empty_targets_list:
        "invalid-empty-targets.yaml" =>
        ["endpoints \"api\"", "targets must list at least one"];
    config_check_rejects_concurrency_zero:
        "invalid-concurrency-zero.yaml" =>
        ["global.concurrency: must be at least 1"];
    config_check_rejects_empty_file:
        "invalid-empty-file.yaml" =>
        ["invalid-empty-file.yaml", "config file is empty"];
    config_check_rejects_invalid_yaml_syntax_with_line:
        "invalid-yaml-syntax.yaml" =>
        ["did not find expected ',' or ']'", "line 4"];
}

#[test]
fn every_invalid_fixture_has_a_test() {
    // A fixture added without a `rejects!` entry would silently test nothing.
    let source = include_str!("daemon.rs");
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
// 3. HTTP endpoints.

fn file_only_config(dir: &Path) -> String {
    let ca = Ca::new("http-ca");
    let leaf = ca.issue(&Leaf::server("http-leaf", 30));
    let path = write(dir, "certs/leaf.pem", &leaf.cert_pem);
    format!(
        "global:\n  interval: 1h\nfiles:\n  - name: http-files\n    paths: [{}]\n",
        yaml_str(&path)
    )
}

#[test]
fn landing_page_links_metrics_health_and_ready() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    let (status, headers, body) = get_full(d.addr, "/", None);
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("text/html"),
        "{headers:?}"
    );
    for link in ["href=\"metrics\"", "href=\"-/healthy\"", "href=\"-/ready\""] {
        assert!(body.contains(link), "landing page lacks {link}:\n{body}");
    }
}

#[test]
fn healthy_answers_200() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    assert_eq!(d.get("/-/healthy").0, 200);
}

#[test]
fn unknown_path_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    assert_eq!(d.get("/no/such/page").0, 404);
    assert_eq!(d.get("/metricsx").0, 404);
}

#[test]
fn metrics_for_prometheus_are_openmetrics_text_ending_with_eof() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    d.wait_ready(Duration::from_secs(10));
    let (status, headers, body) = get_full(d.addr, "/metrics", Some(PROMETHEUS_ACCEPT));
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("application/openmetrics-text"),
        "{headers:?}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);
}

#[test]
fn metrics_without_accept_header_answer_a_parsable_exposition() {
    // curl and older scrapers send no OpenMetrics Accept header; whichever
    // text format they get, it must parse and carry the series.
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    d.wait_ready(Duration::from_secs(10));
    let (status, headers, body) = get_full(d.addr, "/metrics", None);
    assert_eq!(status, 200);
    let ct = &headers["content-type"];
    assert!(
        ct.starts_with("application/openmetrics-text") || ct.starts_with("text/plain"),
        "{ct}"
    );
    let m = Exposition::parse(&body);
    assert!(
        m.has("x509_cert_not_after", &[("source_name", "http-files")]),
        "{body}"
    );
}

#[test]
fn ready_is_503_until_the_first_pass_then_200() {
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  interval: 1h\nendpoints:\n  - name: slow\n    timeout: 3s\n    targets: [\"{hole}\"]\n"
    );
    let d = Daemon::start(dir.path(), &config);
    let started = Instant::now();
    let (status, body) = d.get("/-/ready");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("slow"),
        "503 body names the pending source: {body}"
    );
    wait_count(&accepted, 1, Duration::from_secs(5));
    d.wait_ready(Duration::from_secs(10));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "ready after {:?}, before the 3 s probe timeout",
        started.elapsed()
    );
    let m = d.metrics();
    assert_eq!(
        m.value(
            "certinel_tls_handshake_error_info",
            &[("source_name", "slow"), ("reason", "timeout")]
        ),
        1.0
    );
}

// ---------------------------------------------------------------------------
// 4. The metric contract.

/// One file source (a bundle of a valid and an expired leaf) and one
/// endpoint source serving leaf + CA, reached as `localhost:PORT` and as
/// `127.0.0.1:PORT`.
struct ContractSetup {
    _dir: tempfile::TempDir,
    _server: TestServer,
    ca: Ca,
    file_valid: Minted,
    file_expired: Minted,
    served: Minted,
    bundle: PathBuf,
    port: u16,
}

fn contract_setup(metrics_block: &str) -> (ContractSetup, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("contract-ca");
    let file_valid = ca.issue(&Leaf::server("file-valid", 30));
    let file_expired = ca.issue(&Leaf {
        cn: "file-expired",
        sans: &["localhost"],
        not_before: now() - 20 * DAY,
        not_after: now() - 2 * DAY,
        client_auth_only: false,
    });
    let bundle = write(
        dir.path(),
        "pki/bundle.pem",
        format!("{}{}", file_valid.cert_pem, file_expired.cert_pem),
    );
    let ca_path = write(dir.path(), "pki/ca.pem", &ca.cert.cert_pem);
    let served = ca.issue(&Leaf::server("served-leaf", 60));
    let server = tls_server(
        &served,
        &ServerOptions {
            chain: vec![ca.cert.cert_pem.clone()],
            ..Default::default()
        },
    );
    let port = server.addr.port();
    let config = format!(
        "global:\n  interval: 1h\n  timeout: 5s\n{metrics_block}\
         files:\n  - name: bundle\n    paths: [{}]\n\
         endpoints:\n  - name: web\n    ca_file: {}\n    targets: [\"localhost:{port}\", \"127.0.0.1:{port}\"]\n",
        yaml_str(&bundle),
        yaml_str(&ca_path),
    );
    let d = Daemon::start(dir.path(), &config);
    d.wait_ready(Duration::from_secs(15));
    (
        ContractSetup {
            _dir: dir,
            _server: server,
            ca,
            file_valid,
            file_expired,
            served,
            bundle,
            port,
        },
        d,
    )
}

#[test]
fn cert_series_carry_every_contract_label_for_files_and_endpoints() {
    let (s, d) = contract_setup("");
    let m = d.metrics();
    let filepath = s.bundle.to_str().unwrap();
    let ca_serial = serial_decimal(&s.ca.cert.der);
    let file_expect = [
        (&s.file_valid, "0", "file-valid", 0.0),
        (&s.file_expired, "1", "file-expired", 1.0),
    ];
    for (cert, index, cn, expired) in file_expect {
        let serial = serial_decimal(&cert.der);
        let want = labels(&[
            ("source_kind", "file"),
            ("source_name", "bundle"),
            ("filepath", filepath),
            ("filename", "bundle.pem"),
            ("target", ""),
            ("server_name", ""),
            ("address", ""),
            ("chain_index", index),
            ("serial_number", &serial),
            ("subject_CN", cn),
            ("subject_O", ""),
            ("subject_OU", ""),
            ("issuer_CN", "contract-ca"),
            ("issuer_O", "certinel tests"),
        ]);
        let sel = [("source_name", "bundle"), ("chain_index", index)];
        let na = m.one("x509_cert_not_after", &sel);
        assert_eq!(na.labels, want, "file cert {cn}");
        assert_eq!(na.value, cert.not_after as f64, "NotAfter of {cn}");
        let nb = m.one("x509_cert_not_before", &sel);
        assert_eq!(nb.labels, want, "file cert {cn}");
        assert_eq!(nb.value, cert.not_before as f64, "NotBefore of {cn}");
        let ex = m.one("x509_cert_expired", &sel);
        assert_eq!(ex.labels, want);
        assert_eq!(ex.value, expired, "x509_cert_expired of {cn}");
    }

    let address = format!("127.0.0.1:{}", s.port);
    for (target, server_name) in [
        (format!("localhost:{}", s.port), "localhost"),
        (format!("127.0.0.1:{}", s.port), ""),
    ] {
        let chain = [
            (
                &s.served,
                "0",
                "served-leaf",
                "",
                serial_decimal(&s.served.der),
            ),
            (
                &s.ca.cert,
                "1",
                "contract-ca",
                "certinel tests",
                ca_serial.clone(),
            ),
        ];
        for (cert, index, cn, subject_o, serial) in chain {
            let want = labels(&[
                ("source_kind", "endpoint"),
                ("source_name", "web"),
                ("filepath", ""),
                ("filename", ""),
                ("target", &target),
                ("server_name", server_name),
                ("address", &address),
                ("chain_index", index),
                ("serial_number", &serial),
                ("subject_CN", cn),
                ("subject_O", subject_o),
                ("subject_OU", ""),
                ("issuer_CN", "contract-ca"),
                ("issuer_O", "certinel tests"),
            ]);
            let sel = [
                ("source_name", "web"),
                ("target", target.as_str()),
                ("address", address.as_str()),
                ("chain_index", index),
            ];
            let na = m.one("x509_cert_not_after", &sel);
            assert_eq!(na.labels, want, "{target} chain[{index}]");
            assert_eq!(na.value, cert.not_after as f64, "{target} chain[{index}]");
            let nb = m.one("x509_cert_not_before", &sel);
            assert_eq!(nb.labels, want);
            assert_eq!(nb.value, cert.not_before as f64);
            assert_eq!(m.one("x509_cert_expired", &sel).value, 0.0);
        }
    }

    // Defaults: no relative series, no optional DN labels.
    assert!(
        !m.text.contains("x509_cert_expires_in_seconds"),
        "{}",
        m.text
    );
    assert!(
        !m.text.contains("x509_cert_valid_since_seconds"),
        "{}",
        m.text
    );
    assert!(!m.text.contains("subject_C="), "{}", m.text);
}

#[test]
fn every_series_of_a_cert_metric_has_the_same_label_names() {
    let (_s, d) = contract_setup("");
    let m = d.metrics();
    for name in [
        "x509_cert_not_after",
        "x509_cert_not_before",
        "x509_cert_expired",
    ] {
        let found = m.find(name, &[]);
        assert_eq!(found.len(), 6, "2 file + 2×2 endpoint certs:\n{}", m.text);
        let first: Vec<&String> = found[0].labels.keys().collect();
        for s in &found {
            assert_eq!(s.labels.keys().collect::<Vec<_>>(), first, "{name}");
        }
    }
}

#[test]
fn expose_relative_adds_expires_in_and_valid_since() {
    let (s, d) = contract_setup("metrics:\n  expose_relative: true\n");
    let m = d.metrics();
    let t = now() as f64;
    for (cert, index) in [(&s.file_valid, "0"), (&s.file_expired, "1")] {
        let sel = [("source_name", "bundle"), ("chain_index", index)];
        let expires_in = m.value("x509_cert_expires_in_seconds", &sel);
        let want = cert.not_after as f64 - t;
        assert!(
            (expires_in - want).abs() <= 10.0,
            "expires_in {expires_in}, want ≈ {want}"
        );
        let since = m.value("x509_cert_valid_since_seconds", &sel);
        let want = t - cert.not_before as f64;
        assert!(
            (since - want).abs() <= 10.0,
            "valid_since {since}, want ≈ {want}"
        );
    }
    assert!(
        m.value(
            "x509_cert_expires_in_seconds",
            &[("source_name", "bundle"), ("chain_index", "1")]
        ) < 0.0,
        "the expired cert's time left is negative"
    );
    let sel = [
        ("source_name", "web"),
        ("server_name", "localhost"),
        ("chain_index", "0"),
    ];
    let left = m.value("x509_cert_expires_in_seconds", &sel);
    assert!(
        (left - (s.served.not_after as f64 - t)).abs() <= 10.0,
        "endpoint expires_in {left}"
    );
    // The switch adds, it does not replace.
    assert!(m.has("x509_cert_not_before", &sel));
}

#[test]
fn expose_not_before_false_removes_not_before() {
    let (_s, d) = contract_setup("metrics:\n  expose_not_before: false\n");
    let m = d.metrics();
    assert!(m.has("x509_cert_not_after", &[("source_name", "bundle")]));
    assert!(!m.text.contains("x509_cert_not_before"), "{}", m.text);
}

#[test]
fn subject_labels_c_adds_subject_c_to_every_cert_series() {
    let (_s, d) = contract_setup("metrics:\n  subject_labels: [C]\n");
    let m = d.metrics();
    let found = m.find("x509_cert_not_after", &[]);
    assert_eq!(found.len(), 6, "{}", m.text);
    for s in found {
        assert_eq!(
            s.labels.get("subject_C").map(String::as_str),
            Some(""),
            "{s:?}"
        );
        assert!(!s.labels.contains_key("issuer_C"), "{s:?}");
    }
}

#[test]
fn probe_series_report_a_good_handshake() {
    let (s, d) = contract_setup("");
    let m = d.metrics();
    let t = now() as f64;
    let address = format!("127.0.0.1:{}", s.port);
    for (target, server_name) in [
        (format!("localhost:{}", s.port), "localhost"),
        (format!("127.0.0.1:{}", s.port), ""),
    ] {
        let want = labels(&[
            ("source_name", "web"),
            ("target", &target),
            ("server_name", server_name),
            ("address", &address),
        ]);
        let sel = [("target", target.as_str()), ("address", address.as_str())];
        let err = m.one("certinel_tls_handshake_error", &sel);
        assert_eq!(err.labels, want);
        assert_eq!(err.value, 0.0, "{target}");
        assert!(
            !m.has("certinel_tls_handshake_error_info", &sel),
            "no error info for a good probe:\n{}",
            m.text
        );
        let info = m.one("certinel_tls_info", &sel);
        assert_eq!(info.value, 1.0);
        let version = info.labels["version"].as_str();
        assert!(
            version == "TLS1.3" || version == "TLS1.2",
            "version {version}"
        );
        let suite = info.labels["cipher_suite"].as_str();
        assert!(
            suite.starts_with("TLS_") && !suite.starts_with("TLS13_"),
            "IANA cipher suite name, got {suite}"
        );
        let dur = m.one("certinel_tls_handshake_duration_seconds", &sel);
        assert_eq!(dur.labels, want);
        assert!(dur.value > 0.0 && dur.value < 5.0, "duration {}", dur.value);
        let last = m.one("certinel_tls_last_probe_timestamp_seconds", &sel);
        assert_eq!(last.labels, want);
        assert!(
            (last.value - t).abs() < 60.0,
            "last probe {} vs now {t}",
            last.value
        );
    }
}

#[test]
fn exporter_series_describe_sources_build_and_process() {
    let (_s, d) = contract_setup("");
    let m = d.metrics();
    let t = now() as f64;
    for (kind, name) in [("file", "bundle"), ("endpoint", "web")] {
        let sel = [("source_kind", kind), ("source_name", name)];
        assert_eq!(m.value("x509_source_up", &sel), 1.0, "{name} up");
        let last = m.value("certinel_source_last_run_timestamp_seconds", &sel);
        assert!((last - t).abs() < 60.0, "{name} last run {last} vs {t}");
        let dur = m.value("certinel_source_duration_seconds", &sel);
        assert!((0.0..10.0).contains(&dur), "{name} duration {dur}");
    }
    assert_eq!(
        m.value("certinel_certificates", &[("source_kind", "file")]),
        2.0
    );
    // Two targets, each serving leaf + CA.
    assert_eq!(
        m.value("certinel_certificates", &[("source_kind", "endpoint")]),
        4.0
    );
    let build = m.one(
        "certinel_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
    );
    assert_eq!(build.value, 1.0);
    assert!(!build.labels["revision"].is_empty(), "{build:?}");
    let rustc = &build.labels["rustc"];
    assert!(
        rustc.split('.').count() >= 3 && rustc.starts_with(|c: char| c.is_ascii_digit()),
        "rustc {rustc}"
    );
    assert!(m.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.value("process_cpu_seconds_total", &[]) >= 0.0);
    assert!(m.value("process_open_fds", &[]) > 2.0);
    let start = m.value("process_start_time_seconds", &[]);
    assert!(
        start <= t + 5.0 && start > t - 120.0,
        "process start {start} vs now {t}"
    );
}

/// Families declared by `# TYPE` lines, with their type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

#[test]
fn every_family_has_help_and_type_and_every_sample_a_family() {
    let (_s, d) = contract_setup("metrics:\n  expose_relative: true\n");
    let m = d.metrics();
    let fams = families(&m.text);
    for name in fams.keys() {
        assert!(
            m.text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP:\n{}",
            m.text
        );
    }
    let helps = m.text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(helps, fams.len(), "one HELP per TYPE");
    for s in &m.samples {
        let family = if fams.contains_key(&s.name) {
            s.name.clone()
        } else {
            s.name
                .strip_suffix("_total")
                .filter(|f| fams.get(*f).map(String::as_str) == Some("counter"))
                .unwrap_or_else(|| panic!("{} has no family:\n{}", s.name, m.text))
                .to_owned()
        };
        assert!(fams.contains_key(&family));
    }
}

#[test]
fn messy_config_with_duplicate_targets_and_paths_has_no_duplicate_series() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("messy-ca");
    let a = ca.issue(&Leaf::server("messy-a", 30));
    let b = ca.issue(&Leaf::server("messy-b", 40));
    let a_path = write(
        dir.path(),
        "certs/a.pem",
        format!("{}{}", a.cert_pem, a.cert_pem),
    );
    write(dir.path(), "certs/b.pem", &b.cert_pem);
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let leaf = ca.issue(&Leaf::server("messy-served", 30));
    let server = tls_server(&leaf, &ServerOptions::default());
    let p = server.addr.port();
    let config = format!(
        "global:\n  interval: 1h\n  timeout: 5s\n\
         files:\n\
         \x20 - name: messy-files\n\
         \x20   paths:\n\
         \x20     - certs/a.pem\n\
         \x20     - ./certs/a.pem\n\
         \x20     - certs/../certs/a.pem\n\
         \x20     - {abs}\n\
         \x20     - {abs}\n\
         \x20     - certs/*.pem\n\
         \x20     - certs\n\
         \x20 - name: messy-files-again\n\
         \x20   paths: [certs/a.pem, certs/a.pem]\n\
         endpoints:\n\
         \x20 - name: messy-endpoints\n\
         \x20   ca_file: ca.pem\n\
         \x20   targets:\n\
         \x20     - localhost:{p}\n\
         \x20     - localhost:{p}\n\
         \x20     - \"127.0.0.1:{p}\"\n\
         \x20     - \"127.0.0.1:{p}\"\n\
         \x20     - {{ target: \"127.0.0.1:{p}\" }}\n\
         \x20     - {{ target: \"localhost:{p}\", server_name: localhost }}\n\
         \x20     - {{ target: \"127.0.0.1:{p}\", server_name: localhost }}\n\
         \x20     - {{ target: \"127.0.0.1:{p}\", server_name: localhost }}\n\
         \x20     - {{ target: \"127.0.0.1:{p}\", server_name: \"127.0.0.1\" }}\n\
         \x20 - name: messy-endpoints-again\n\
         \x20   ca_file: ca.pem\n\
         \x20   targets: [\"localhost:{p}\", \"localhost:{p}\"]\n",
        abs = yaml_str(&a_path),
    );
    let d = Daemon::start(dir.path(), &config);
    d.wait_ready(Duration::from_secs(15));
    let m = d.metrics();
    assert_eq!(m.duplicate_series(), Vec::<String>::new(), "\n{}", m.text);
    // Collapsed, not dropped: a.pem's two copies + b.pem, once each.
    assert_eq!(
        m.find("x509_cert_not_after", &[("source_name", "messy-files")])
            .len(),
        3,
        "{}",
        m.text
    );
    // localhost:P, 127.0.0.1:P, and 127.0.0.1:P with SNI localhost.
    assert_eq!(
        m.find(
            "certinel_tls_handshake_error",
            &[
                ("source_name", "messy-endpoints"),
                ("address", &format!("127.0.0.1:{p}"))
            ]
        )
        .len(),
        3,
        "{}",
        m.text
    );
}

#[test]
fn targets_differing_only_in_an_ip_server_name_are_refused() {
    // Both send no SNI (TLS forbids IPs there), so both would export
    // server_name="" for the same target: the contract forbids the
    // resulting identical series, so the config is refused up front.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ip-sni-ca");
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let config = "endpoints:\n  - name: ip-sni\n    ca_file: ca.pem\n    targets:\n      - \"127.0.0.1:8443\"\n      - { target: \"127.0.0.1:8443\", server_name: \"127.0.0.2\" }\n";
    let path = write(dir.path(), "c.yaml", config);
    let out = config_check(&path);
    assert_eq!(out.status.code(), Some(1));
    let err = out.stderr;
    assert!(err.contains("would export identical series"), "{err}");
    assert!(err.contains("127.0.0.2"), "{err}");
}

// ---------------------------------------------------------------------------
// 5. Resilience: scrapes and good targets never wait on dead ones.

#[test]
fn scrapes_stay_fast_while_50_black_hole_probes_are_pending() {
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bh-ca");
    let good = ca.issue(&Leaf::server("good-file", 30));
    let path = write(dir.path(), "good.pem", &good.cert_pem);
    let mut config = format!(
        "global:\n  interval: 1h\n  timeout: 10s\n  concurrency: 64\n\
         files:\n  - name: good-file\n    paths: [{}]\n\
         endpoints:\n  - name: black-holes\n    timeout: 10s\n    targets:\n",
        yaml_str(&path)
    );
    for i in 0..50 {
        config.push_str(&format!(
            "      - {{ target: \"{hole}\", server_name: \"bh-{i}.test\" }}\n"
        ));
    }
    let d = Daemon::start(dir.path(), &config);
    wait_count(&accepted, 50, Duration::from_secs(5));
    d.wait_for(Duration::from_secs(5), |m| {
        m.has("x509_cert_not_after", &[("source_name", "good-file")])
    });
    for i in 0..20 {
        let started = Instant::now();
        let m = d.metrics();
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "scrape {i} took {took:?} while probes were pending"
        );
        assert!(m.has("x509_cert_not_after", &[("source_name", "good-file")]));
    }
    // The probes were still pending all along.
    assert_eq!(d.get("/-/ready").0, 503, "black holes answered?");
    assert_eq!(
        d.metrics()
            .find(
                "certinel_tls_handshake_error",
                &[("source_name", "black-holes")]
            )
            .len(),
        0
    );
}

#[test]
fn dead_targets_never_delay_a_good_endpoint() {
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("mixed-ca");
    let leaf = ca.issue(&Leaf::server("good-endpoint", 30));
    let server = tls_server(&leaf, &ServerOptions::default());
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let mut config = String::from(
        "global:\n  interval: 1h\n  timeout: 10s\n  concurrency: 64\n\
         endpoints:\n  - name: mixed\n    ca_file: ca.pem\n    timeout: 10s\n    targets:\n",
    );
    for i in 0..20 {
        config.push_str(&format!(
            "      - {{ target: \"{hole}\", server_name: \"dead-{i}.test\" }}\n"
        ));
    }
    // Listed last, so a sequential prober would reach it last.
    let good = format!("localhost:{}", server.addr.port());
    config.push_str(&format!("      - \"{good}\"\n"));
    let d = Daemon::start(dir.path(), &config);
    let m = d.wait_for(Duration::from_secs(3), |m| {
        m.has(
            "x509_cert_not_after",
            &[("target", good.as_str()), ("subject_CN", "good-endpoint")],
        )
    });
    assert_eq!(
        m.value(
            "certinel_tls_handshake_error",
            &[
                ("target", good.as_str()),
                ("address", &server.addr.to_string())
            ]
        ),
        0.0
    );
    wait_count(&accepted, 20, Duration::from_secs(5));
    assert_eq!(d.get("/-/ready").0, 503, "black holes still pending");
}

/// `count` endpoint targets on the one black hole at `hole`, told apart by
/// their server names, as items of a YAML `targets:` list.
fn black_hole_targets(hole: SocketAddr, count: usize) -> String {
    (0..count)
        .map(|i| format!("      - {{ target: \"{hole}\", server_name: \"slow-{i}.test\" }}\n"))
        .collect()
}

/// Waits until `count` targets of `source` have reported a `timeout`.
fn wait_timed_out(d: &Daemon, source: &str, count: usize, limit: Duration) {
    d.wait_for(limit, |m| {
        m.find(
            "certinel_tls_handshake_error_info",
            &[("source_name", source), ("reason", "timeout")],
        )
        .len()
            >= count
    });
}

/// Seconds since `target` (a single address) was last probed.
fn probe_age(m: &Exposition, target: &str) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    now - m.value(
        "certinel_tls_last_probe_timestamp_seconds",
        &[("target", target)],
    )
}

/// Scrapes for `window` and fails as soon as `target`'s last probe is
/// older than `max_age` seconds.
fn assert_probed_every(d: &Daemon, target: &str, max_age: f64, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        let age = probe_age(&d.metrics(), target);
        assert!(
            age <= max_age,
            "{target} was last probed {age:.2}s ago (interval 1s, limit {max_age}s): \
             it waited behind targets that time out"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The configuration both lane tests share: one permit, a 1 s interval, and
/// 20 black-hole targets with a 200 ms timeout, which would take the permit
/// 4 s out of every second; `extra` adds more `endpoints` items.
fn one_permit_beside_black_holes(hole: SocketAddr, extra: &str) -> String {
    format!(
        "global:\n  interval: 1s\n  concurrency: 1\n\
         endpoints:\n{extra}  - name: black-holes\n    timeout: 200ms\n    targets:\n{}",
        black_hole_targets(hole, 20)
    )
}

#[test]
fn targets_that_answer_keep_their_interval_beside_targets_that_time_out() {
    let (hole, _) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("lane-ca");
    let leaf = ca.issue(&Leaf::server("live", 30));
    let server = tls_server(&leaf, &ServerOptions::default());
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let live = format!("127.0.0.1:{}", server.addr.port());
    let config = one_permit_beside_black_holes(
        hole,
        &format!(
            "  - name: live\n    ca_file: ca.pem\n    timeout: 5s\n    targets: [\"{live}\"]\n"
        ),
    );
    let d = Daemon::start(dir.path(), &config);
    // In the first round every target is in the main lane, so the live one
    // may wait; from the second on, the black holes are in the slow lane.
    wait_timed_out(&d, "black-holes", 20, Duration::from_secs(15));
    d.wait_for(Duration::from_secs(6), |m| probe_age(m, &live) < 1.5);
    assert_probed_every(&d, &live, 2.5, Duration::from_secs(5));
}

#[test]
fn a_target_that_answers_again_no_longer_waits_behind_targets_that_time_out() {
    let (hole, _) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("lane-ca");
    let leaf = ca.issue(&Leaf::server("flaky", 30));
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let answering = Arc::new(AtomicBool::new(false));
    let flag = answering.clone();
    let addr = raw_server(move |mut stream| {
        if flag.load(Ordering::SeqCst) {
            finish_tls(stream, &leaf);
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    let flaky = addr.to_string();
    let config = one_permit_beside_black_holes(
        hole,
        &format!(
            "  - name: flaky\n    ca_file: ca.pem\n    timeout: 1s\n    targets: [\"{flaky}\"]\n"
        ),
    );
    let d = Daemon::start(dir.path(), &config);
    wait_timed_out(&d, "flaky", 1, Duration::from_secs(15));
    wait_timed_out(&d, "black-holes", 20, Duration::from_secs(15));
    answering.store(true, Ordering::SeqCst);
    // Still in the slow lane for this one probe, behind the black holes.
    d.wait_for(Duration::from_secs(15), |m| {
        m.find(
            "certinel_tls_handshake_error",
            &[("target", flaky.as_str())],
        )
        .first()
        .is_some_and(|s| s.value == 0.0)
    });
    d.wait_for(Duration::from_secs(6), |m| probe_age(m, &flaky) < 1.5);
    assert_probed_every(&d, &flaky, 2.5, Duration::from_secs(5));
}

// ---------------------------------------------------------------------------
// 6. Graceful shutdown.

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

// ---------------------------------------------------------------------------
// 7. Logs.

/// A config with one good TLS endpoint, so debug logs have probes to show.
fn probe_config(dir: &Path) -> (PathBuf, TestServer) {
    let ca = Ca::new("log-ca");
    let leaf = ca.issue(&Leaf::server("log-leaf", 30));
    let server = tls_server(&leaf, &ServerOptions::default());
    let ca_path = write(dir, "ca.pem", &ca.cert.cert_pem);
    let config = format!(
        "global:\n  interval: 1h\n  timeout: 5s\nendpoints:\n  - name: logged\n    ca_file: {}\n    targets: [\"localhost:{}\"]\n",
        yaml_str(&ca_path),
        server.addr.port()
    );
    (write(dir, "certinel.yaml", config), server)
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(
        &config,
        &["--log.format", "json", "--log.level", "debug"],
        &[],
    );
    d.wait_ready(Duration::from_secs(15));
    let addr = d.addr.to_string();
    let lines = d.terminate().logs;
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
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(&config, &[], &[("CERTINEL_LOG_FORMAT", "json")]);
    let lines = d.terminate().logs;
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}

#[test]
fn log_level_debug_flag_shows_probe_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(&config, &["--log.level", "debug"], &[]);
    d.wait_ready(Duration::from_secs(15));
    let lines = d.terminate().logs;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("level=debug") && l.contains("probe")),
        "{lines:?}"
    );
}

#[test]
fn log_level_env_debug_shows_probe_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(&config, &[], &[("CERTINEL_LOG_LEVEL", "debug")]);
    d.wait_ready(Duration::from_secs(15));
    let lines = d.terminate().logs;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("level=debug") && l.contains("probe")),
        "{lines:?}"
    );
}

#[test]
fn default_log_level_info_hides_probe_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(&config, &[], &[]);
    d.wait_ready(Duration::from_secs(15));
    let lines = d.terminate().logs;
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
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(&config, &["--log.level", "error"], &[]);
    d.wait_ready(Duration::from_secs(15));
    assert_error_level_only(&d.terminate().logs);
}

#[test]
fn log_level_env_error_hides_info_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(&config, &[], &[("CERTINEL_LOG_LEVEL", "error")]);
    d.wait_ready(Duration::from_secs(15));
    assert_error_level_only(&d.terminate().logs);
}

#[test]
fn log_level_flag_wins_over_env() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = probe_config(dir.path());
    let d = start_logging(
        &config,
        &["--log.level", "error"],
        &[("CERTINEL_LOG_LEVEL", "debug")],
    );
    d.wait_ready(Duration::from_secs(15));
    assert_error_level_only(&d.terminate().logs);
}

// ---------------------------------------------------------------------------
// 8. A real Prometheus scraping certinel.

#[test]
fn real_prometheus_scrapes_certinel() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("prom-ca");
    let leaf = ca.issue(&Leaf::server("prom-leaf", 45));
    let path = write(dir.path(), "certs/prom.pem", &leaf.cert_pem);
    let config = format!(
        "global:\n  interval: 1h\nfiles:\n  - name: prom-files\n    paths: [{}]\n",
        yaml_str(&path)
    );
    let d = Daemon::start(dir.path(), &config);
    d.wait_ready(Duration::from_secs(10));

    let prom = Prometheus::start(&dir.path().join("prometheus"), d.addr, &[], None);
    let up = prom.query("up{job=\"certinel\"} == 1").unwrap();
    assert_eq!(up.len(), 1, "{up:?}");
    let not_after = prom.wait_query(
        "x509_cert_not_after{job=\"certinel\",source_name=\"prom-files\"}",
        Duration::from_secs(60),
        |r| !r.is_empty(),
    );
    assert_eq!(
        not_after.len(),
        1,
        "x509_cert_not_after not queryable: {not_after:?}"
    );
    let series = &not_after[0];
    assert_eq!(sample_value(series), leaf.not_after as f64, "{series}");
    assert_eq!(series["metric"]["subject_CN"], "prom-leaf", "{series}");
    assert_eq!(series["metric"]["filename"], "prom.pem", "{series}");
    assert_eq!(series["metric"]["chain_index"], "0", "{series}");
    // Prometheus parsed the whole exposition: nothing was dropped.
    let samples = prom
        .query("scrape_samples_scraped{job=\"certinel\"}")
        .unwrap();
    assert!(
        samples.first().map(sample_value).unwrap_or(0.0) > 10.0,
        "{samples:?}"
    );
}

//! The metric contract of `/metrics`: every label of every certificate
//! series for files and endpoints, the optional series and labels, the
//! probe and exporter series, HELP and TYPE, and no duplicate series
//! whatever the config repeats.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;

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

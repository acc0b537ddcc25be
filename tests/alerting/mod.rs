//! End to end with the real programs: certinel scraped by a real Prometheus
//! that evaluates `alerts/certinel.rules.yml` and notifies a real
//! Alertmanager, which posts to a webhook the tests serve; and every PromQL
//! query of every dashboard in `dashboards/` run against that Prometheus.
//! The programs are found and started by `common::prometheus`. Everything
//! listens on 127.0.0.1 on free ports, lives in a temporary directory, and
//! every child process is killed when the test ends, whether it passes or
//! fails.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;

/// The paging path through Alertmanager to a webhook.
mod alertmanager;
/// Every dashboard query against a real Prometheus.
mod dashboards;
/// The rule file: promtool, and every alert raised from real data.
mod rules;

// ---------------------------------------------------------------------------
// The shared fixture: certinel with one of each kind of problem, scraped by
// Prometheus until it has several samples of everything.

struct Fixture {
    // Field order is drop order: Prometheus first, then certinel, then the
    // servers it probes, then the directory.
    prom: Prometheus,
    certinel: Daemon,
    _server: TestServer,
    /// Accepts connections (in the kernel backlog) and never answers, so the
    /// `dash-stuck` source never completes a pass.
    _stuck: TcpListener,
    /// Serves its chain out of order (CertinelTLSChainProblem).
    chained: TestServer,
    refused: SocketAddr,
    garbage: PathBuf,
    /// A CRL past its nextUpdate.
    stale_crl: PathBuf,
    /// A JKS truststore whose password file holds the wrong password.
    keystore: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start(with_rules: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("certinel fixture CA");
        let expired = ca.issue(&Leaf {
            cn: "expired-file",
            sans: &["localhost"],
            not_before: now() - 60 * DAY,
            not_after: now() - 2 * DAY,
            client_auth_only: false,
        });
        write(
            dir.path(),
            "certs/good.pem",
            ca.issue(&Leaf::server("good-file", 365)).cert_pem,
        );
        write(
            dir.path(),
            "certs/warning.pem",
            ca.issue(&Leaf::server("warning-file", 20)).cert_pem,
        );
        write(
            dir.path(),
            "certs/critical.pem",
            ca.issue(&Leaf::server("critical-file", 5)).cert_pem,
        );
        write(dir.path(), "certs/expired.pem", expired.cert_pem);
        let garbage = write(
            dir.path(),
            "certs/garbage.pem",
            "this is not a certificate\n",
        );
        let ca_path = write(dir.path(), "ca.pem", &ca.cert.cert_pem);
        let server = tls_server(
            &ca.issue(&Leaf::server("good-endpoint", 90)),
            &ServerOptions::default(),
        );
        let good = format!("127.0.0.1:{}", server.addr.port());
        // A chain served out of order (root before the intermediate), with
        // a staple that is no OCSP response: data for the chain and OCSP
        // panels, and no handshake error.
        let inter = ca.intermediate("fixture intermediate", 300);
        let chained = tls_server(
            &inter.issue(&Leaf::server("chain-endpoint", 90)),
            &ServerOptions {
                chain: vec![ca.cert.cert_pem.clone(), inter.cert.cert_pem.clone()],
                ocsp: b"not an OCSP response".to_vec(),
                ..Default::default()
            },
        );
        let chained_addr = format!("127.0.0.1:{}", chained.addr.port());
        let refused = closed_port();
        let stuck = TcpListener::bind("127.0.0.1:0").unwrap();
        let certs_glob = dir.path().join("certs").join("*.pem");
        // Keystores, kubeconfigs and CRLs: a stale CRL, a keystore with
        // the wrong password, a kubeconfig embedding the CA.
        let stores = dir.path().join("stores");
        let stale_crl = openssl_crl(
            &stores,
            "stale.crl",
            &ca.cert,
            "20240101000000Z",
            "20240108000000Z",
        );
        let keystore =
            keytool_truststore(&stores, "truststore.jks", &[&ca.cert], "jks", "changeit");
        write(dir.path(), "keystore-password", "wrong");
        use base64::Engine as _;
        write(
            &stores,
            "admin.conf",
            format!(
                "clusters:\n- name: fixture\n  cluster:\n    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(&ca.cert.cert_pem)
            ),
        );

        let certinel = Daemon::start(
            dir.path(),
            &format!(
                "global:\n  interval: {TICK}\n  timeout: {TICK}\n\
                 files:\n  - name: dash-files\n    paths: [{glob}]\n\
                 \x20 - name: dash-formats\n    paths: [{stores}]\n    password_file: {password}\n\
                 endpoints:\n  - name: dash-endpoints\n    targets: [\"{good}\", \"{chained_addr}\", \"{refused}\"]\n    ca_file: {ca}\n\
                 \x20 - name: dash-stuck\n    targets: [\"{stuck}\"]\n    interval: 120s\n    timeout: 120s\n",
                glob = yaml_str(&certs_glob),
                stores = yaml_str(&stores.join("*")),
                password = yaml_str(&dir.path().join("keystore-password")),
                ca = yaml_str(&ca_path),
                stuck = stuck.local_addr().unwrap(),
            ),
        );
        let refused_s = refused.to_string();
        certinel.wait_for(Duration::from_secs(20), |m| {
            m.has("x509_cert_not_after", &[("subject_CN", "good-endpoint")])
                && m.has(
                    "certinel_tls_chain_problem_info",
                    &[("problem", "out_of_order")],
                )
                && m.find("x509_cert_not_after", &[("source_name", "dash-files")])
                    .len()
                    == 4
                && m.has("certinel_file_error_info", &[("reason", "bad_passphrase")])
                && m.has("certinel_file_error_info", &[("reason", "crl_stale")])
                && m.has("certinel_kubeconfig_cert_info", &[])
                && m.has(
                    "certinel_tls_handshake_error_info",
                    &[("target", &refused_s), ("reason", "refused")],
                )
        });

        let rules = if with_rules {
            vec![rules_with_short_for(dir.path()).0]
        } else {
            vec![]
        };
        let prom = Prometheus::start(&dir.path().join("prometheus"), certinel.addr, &rules, None);
        // Several scrapes, so that rate() over 1m has samples to work with.
        prom.wait_query(
            &format!("count_over_time(up{{job=\"{JOB}\"}}[1m]) >= 5"),
            Duration::from_secs(30),
            |r| !r.is_empty(),
        );
        Fixture {
            prom,
            certinel,
            _server: server,
            chained,
            _stuck: stuck,
            refused,
            garbage,
            stale_crl,
            keystore,
            _dir: dir,
        }
    }
}

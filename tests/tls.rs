//! Every handshake failure reason of the contract, each produced by a real
//! server on loopback, plus the chain capture that makes an expired or
//! mis-issued certificate visible instead of just "an error".

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use certinel::config::EndpointSourceConfig;
use certinel::sources::endpoint::{AddressReport, TlsErrorReason};

use crate::common::*;

/// The endpoint source of the one target `addr`, plus `extra` YAML, with
/// no CA file: these servers fail before any verification.
fn raw_target(addr: SocketAddr, extra: &str) -> EndpointSourceConfig {
    let dir = tempfile::tempdir().unwrap();
    endpoint(dir.path(), &format!("targets: [\"{addr}\"]\n{extra}"))
}

/// The failure reason of a probe of `addr` with a 5 s timeout.
async fn reason_at(addr: SocketAddr) -> Option<TlsErrorReason> {
    reason(&probe_one(&raw_target(addr, "timeout: 5s\n")).await)
}

/// A CA, its file in `dir`, and a server with a leaf it issued.
struct Pki {
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("certinel test CA");
        write(dir.path(), "ca.crt", &ca.cert.cert_pem);
        Pki { ca, dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn source_for(&self, addr: SocketAddr, extra: &str) -> EndpointSourceConfig {
        endpoint(
            self.path(),
            &format!(
                "targets: [\"localhost:{}\"]\nca_file: ca.crt\ntimeout: 5s\n{extra}",
                addr.port()
            ),
        )
    }

    /// Probes a server serving `leaf` as `localhost`, trusting the CA;
    /// `extra` adds to the endpoint source.
    async fn probe_serving(&self, leaf: &Minted, extra: &str) -> Vec<AddressReport> {
        self.probe_server(leaf, &ServerOptions::default(), extra)
            .await
    }

    /// [`Pki::probe_serving`] a server with `opts`.
    async fn probe_server(
        &self,
        leaf: &Minted,
        opts: &ServerOptions,
        extra: &str,
    ) -> Vec<AddressReport> {
        let server = tls_server(leaf, opts);
        probe_one(&self.source_for(server.addr, extra)).await
    }

    /// Options for a server that requires a client certificate from this
    /// CA and speaks only TLS 1.`version`.
    fn mtls_only(&self, version: u8) -> ServerOptions {
        ServerOptions {
            client_ca: Some(self.ca.cert.cert_pem.clone()),
            only_version: Some(version),
            ..Default::default()
        }
    }
}

#[tokio::test]
async fn valid_chain_reports_facts_and_negotiated_parameters() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("svc.local", 40));
    let server = tls_server(
        &leaf,
        &ServerOptions {
            chain: vec![pki.ca.cert.cert_pem.clone()],
            ..Default::default()
        },
    );
    let reports = probe_one(&pki.source_for(server.addr, "")).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r.address, server.addr.to_string());
    assert_eq!(r.chain.len(), 2);
    assert_eq!(r.chain[0].not_after, leaf.not_after);
    assert_eq!(r.chain[0].not_before, leaf.not_before);
    assert_eq!(&*r.chain[0].subject.cn, "svc.local");
    assert_eq!(&*r.chain[1].subject.cn, "certinel test CA");
    let negotiated = r.negotiated.as_ref().unwrap();
    assert_eq!(negotiated.version, "TLS1.3");
    assert!(
        negotiated.cipher_suite.starts_with("TLS_"),
        "{negotiated:?}"
    );
    assert!(r.duration > Duration::ZERO);
}

#[tokio::test]
async fn tls12_only_server_is_reported_as_tls12() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("svc", 40));
    let only_tls12 = ServerOptions {
        only_version: Some(12),
        ..Default::default()
    };
    let reports = pki.probe_server(&leaf, &only_tls12, "").await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    let negotiated = reports[0].negotiated.as_ref().unwrap();
    assert_eq!(negotiated.version, "TLS1.2");
    assert!(
        negotiated.cipher_suite.starts_with("TLS_ECDHE_"),
        "{negotiated:?}"
    );
}

#[tokio::test]
async fn expired_endpoint_still_reports_not_after() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf {
        not_before: now() - 30 * DAY,
        not_after: now() - DAY,
        ..Leaf::server("old", 0)
    });
    let reports = pki.probe_serving(&leaf, "").await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::Expired));
    assert_eq!(reports[0].chain[0].not_after, leaf.not_after);
    assert!(reports[0].negotiated.is_some());
}

#[tokio::test]
async fn not_yet_valid_certificate_is_flagged() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf {
        not_before: now() + DAY,
        not_after: now() + 30 * DAY,
        ..Leaf::server("future", 0)
    });
    let reports = pki.probe_serving(&leaf, "").await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::NotYetValid));
    assert_eq!(reports[0].chain[0].not_before, leaf.not_before);
}

#[tokio::test]
async fn certificate_from_another_ca_is_unknown_ca() {
    let pki = Pki::new();
    let other = Ca::new("someone else's CA");
    let leaf = other.issue(&Leaf::server("svc", 40));
    // The whole chain, up to a root we do not trust. (Without that root,
    // the leaf's issuer is neither served nor trusted: a missing
    // intermediate, as far as certinel can tell; see tests/endpoint.)
    let with_root = ServerOptions {
        chain: vec![other.cert.cert_pem.clone()],
        ..Default::default()
    };
    let reports = pki.probe_server(&leaf, &with_root, "").await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::UnknownCa));
    assert_eq!(reports[0].chain[0].not_after, leaf.not_after);
}

#[tokio::test]
async fn self_signed_certificate_against_system_roots_is_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = self_signed("selfie", now() + 10 * DAY);
    let server = tls_server(&leaf, &ServerOptions::default());
    let source = endpoint(
        dir.path(),
        &format!(
            "targets: [\"localhost:{}\"]\ntimeout: 5s\n",
            server.addr.port()
        ),
    );
    let reports = probe_one(&source).await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::UnknownCa));
    assert_eq!(&*reports[0].chain[0].subject.cn, "selfie");
}

#[tokio::test]
async fn wrong_server_name_is_hostname_mismatch() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("svc", 40));
    let reports = pki
        .probe_serving(&leaf, "server_name: api.example.com\n")
        .await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::HostnameMismatch));
    assert_eq!(&*reports[0].chain[0].subject.cn, "svc");
}

#[tokio::test]
async fn per_target_server_name_is_used_for_verification() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf {
        sans: &["api.example.com"],
        ..Leaf::server("api", 40)
    });
    let server = tls_server(&leaf, &ServerOptions::default());
    let source = endpoint(
        pki.path(),
        &format!(
            "targets:\n  - {{ target: \"127.0.0.1:{}\", server_name: api.example.com }}\nca_file: ca.crt\ntimeout: 5s\n",
            server.addr.port()
        ),
    );
    assert_eq!(source.targets[0].sni(), "api.example.com");
    let reports = probe_one(&source).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
}

#[tokio::test]
async fn certificate_for_the_wrong_purpose_is_bad_certificate() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf {
        client_auth_only: true,
        ..Leaf::server("client-only", 40)
    });
    let reports = pki.probe_serving(&leaf, "").await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::BadCertificate));
}

async fn client_cert_required(version: u8) {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("mtls", 40));
    let reports = pki.probe_server(&leaf, &pki.mtls_only(version), "").await;
    assert_eq!(
        reason(&reports),
        Some(TlsErrorReason::ClientCertRequired),
        "{reports:?}"
    );
    // The server's chain was presented before it asked for ours.
    assert_eq!(reports[0].chain[0].not_after, leaf.not_after);
}

#[tokio::test]
async fn missing_client_certificate_is_client_cert_required_tls13() {
    client_cert_required(13).await;
}

#[tokio::test]
async fn missing_client_certificate_is_client_cert_required_tls12() {
    client_cert_required(12).await;
}

#[tokio::test]
async fn mtls_client_certificate_is_presented() {
    for version in [12, 13] {
        let pki = Pki::new();
        let leaf = pki.ca.issue(&Leaf::server("mtls", 40));
        let client = pki.ca.issue(&Leaf::server("certinel-client", 40));
        write(pki.path(), "client.crt", &client.cert_pem);
        write(pki.path(), "client.key", &client.key_pem);
        let reports = pki
            .probe_server(
                &leaf,
                &pki.mtls_only(version),
                "client_cert: client.crt\nclient_key: client.key\n",
            )
            .await;
        assert_eq!(reason(&reports), None, "TLS1.{version}: {reports:?}");
    }
}

#[tokio::test]
async fn closed_port_is_refused() {
    let addr = closed_port();
    let source = raw_target(addr, "");
    let reports = probe_one(&source).await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::Refused));
    assert_eq!(reports[0].address, addr.to_string());
}

#[tokio::test]
async fn silent_listener_is_timeout_within_the_deadline() {
    let addr = raw_server(|stream| {
        std::thread::sleep(Duration::from_secs(8));
        drop(stream);
    });
    let source = raw_target(addr, "timeout: 1s\n");
    let started = Instant::now();
    let reports = probe_one(&source).await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn plain_tcp_echo_is_not_tls() {
    let addr = raw_server(|mut stream| {
        let mut buf = [0u8; 4096];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let source = raw_target(addr, "timeout: 5s\n");
    let reports = probe_one(&source).await;
    assert_eq!(
        reason(&reports),
        Some(TlsErrorReason::NotTls),
        "{reports:?}"
    );
}

#[tokio::test]
async fn http_server_is_not_tls() {
    let addr = raw_server(|mut stream| {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    assert_eq!(reason_at(addr).await, Some(TlsErrorReason::NotTls));
}

#[tokio::test]
async fn connection_closed_mid_handshake_is_reset() {
    let addr = raw_server(|mut stream| {
        let mut buf = [0u8; 16];
        let _ = stream.read(&mut buf);
        drop(stream);
    });
    assert_eq!(reason_at(addr).await, Some(TlsErrorReason::Reset));
}

/// A server that reads the ClientHello and answers with one fatal alert.
fn alerting_server(description: u8) -> SocketAddr {
    raw_server(move |mut stream| {
        let mut buf = [0u8; 4096];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.read(&mut buf);
        // Alert record, TLS 1.0 record version as a TLS 1.0-only server
        // sends it: level fatal (2), then the description.
        let _ = stream.write_all(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, description]);
        std::thread::sleep(Duration::from_millis(200));
    })
}

#[tokio::test]
async fn tls10_only_server_is_protocol_version() {
    let addr = alerting_server(70); // protocol_version
    assert_eq!(reason_at(addr).await, Some(TlsErrorReason::ProtocolVersion));
}

#[tokio::test]
async fn other_alert_from_peer_is_handshake_failure() {
    let addr = alerting_server(40); // handshake_failure
    assert_eq!(
        reason_at(addr).await,
        Some(TlsErrorReason::HandshakeFailure)
    );
}

#[tokio::test]
async fn unresolvable_name_is_dns() {
    let dir = tempfile::tempdir().unwrap();
    // A label longer than 63 bytes is rejected by the resolver library
    // itself, so this never sends a query off the machine.
    let host = format!("{}.invalid", "a".repeat(70));
    let source = endpoint(
        dir.path(),
        &format!("targets: [\"{host}:443\"]\ntimeout: 5s\n"),
    );
    let reports = probe_one(&source).await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::Dns));
    assert_eq!(reports[0].address, "");
}

fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while stream.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn smtp_server(leaf: Minted, accept_starttls: bool) -> SocketAddr {
    raw_server(move |mut stream| {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(b"220-mail.test ESMTP\r\n220 ready\r\n");
        let ehlo = read_line(&mut stream);
        assert!(ehlo.starts_with("EHLO"), "{ehlo}");
        let _ = stream.write_all(b"250-mail.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
        let cmd = read_line(&mut stream);
        assert!(cmd.starts_with("STARTTLS"), "{cmd}");
        if accept_starttls {
            let _ = stream.write_all(b"220 go ahead\r\n");
            finish_tls(stream, &leaf);
        } else {
            let _ = stream.write_all(b"454 4.7.0 TLS not available\r\n");
        }
    })
}

#[tokio::test]
async fn smtp_starttls_reaches_the_certificate() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("mail", 40));
    let addr = smtp_server(leaf.clone(), true);
    let source = pki.source_for(addr, "starttls: smtp\n");
    let reports = probe_one(&source).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    assert_eq!(reports[0].chain[0].not_after, leaf.not_after);
}

#[tokio::test]
async fn refused_starttls_is_starttls() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("mail", 40));
    let addr = smtp_server(leaf, false);
    let source = pki.source_for(addr, "starttls: smtp\n");
    let reports = probe_one(&source).await;
    assert_eq!(reason(&reports), Some(TlsErrorReason::Starttls));
    assert!(reports[0].error.as_ref().unwrap().detail.contains("454"));
}

#[tokio::test]
async fn postgres_ssl_request_reaches_the_certificate() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("db", 40));
    let served = leaf.clone();
    let addr = raw_server(move |mut stream| {
        let mut request = [0u8; 8];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        if stream.read_exact(&mut request).is_ok() && request == [0, 0, 0, 8, 4, 210, 22, 47] {
            let _ = stream.write_all(b"S");
            finish_tls(stream, &served);
        }
    });
    let reports = probe_one(&pki.source_for(addr, "starttls: postgres\n")).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    assert_eq!(reports[0].chain[0].not_after, leaf.not_after);
}

/// A server with a one-command STARTTLS dialogue: `greeting`, a command
/// starting with `command`, `go_ahead`, then the handshake serving `leaf`.
fn starttls_server(
    leaf: Minted,
    greeting: &'static [u8],
    command: &'static str,
    go_ahead: &'static [u8],
) -> SocketAddr {
    raw_server(move |mut stream| {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(greeting);
        let cmd = read_line(&mut stream);
        assert!(cmd.starts_with(command), "{cmd}");
        let _ = stream.write_all(go_ahead);
        finish_tls(stream, &leaf);
    })
}

#[tokio::test]
async fn imap_and_pop3_starttls_reach_the_certificate() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf::server("mail", 40));
    let imap = starttls_server(
        leaf.clone(),
        b"* OK IMAP4rev1 ready\r\n",
        "a1 STARTTLS",
        b"a1 OK Begin TLS negotiation now\r\n",
    );
    let pop3 = starttls_server(leaf, b"+OK POP3 ready\r\n", "STLS", b"+OK Begin TLS\r\n");
    for (addr, proto) in [(imap, "imap"), (pop3, "pop3")] {
        let reports = probe_one(&pki.source_for(addr, &format!("starttls: {proto}\n"))).await;
        assert_eq!(reason(&reports), None, "{proto}: {reports:?}");
    }
}

#[test]
fn expired_endpoint_is_exported_and_flagged_on_metrics() {
    let pki = Pki::new();
    let leaf = pki.ca.issue(&Leaf {
        not_before: now() - 30 * DAY,
        not_after: now() - 2 * DAY,
        ..Leaf::server("expired.svc", 0)
    });
    let server = tls_server(&leaf, &ServerOptions::default());
    let target = format!("localhost:{}", server.addr.port());
    let daemon = Daemon::start(
        pki.path(),
        &format!(
            "endpoints:\n  - name: web\n    targets: [\"{target}\"]\n    ca_file: ca.crt\n    interval: 1s\n    timeout: 1s\n"
        ),
    );
    let address = server.addr.to_string();
    let labels = [
        ("source_name", "web"),
        ("target", target.as_str()),
        ("address", address.as_str()),
    ];
    let m = daemon.wait_for(Duration::from_secs(10), |m| {
        m.has("certinel_tls_handshake_error_info", &labels)
    });
    assert_eq!(
        m.value(
            "x509_cert_not_after",
            &[("source_kind", "endpoint"), ("chain_index", "0")]
        ),
        leaf.not_after as f64
    );
    assert_eq!(
        m.value("x509_cert_expired", &[("subject_CN", "expired.svc")]),
        1.0
    );
    assert_eq!(m.value("certinel_tls_handshake_error", &labels), 1.0);
    assert!(m.has(
        "certinel_tls_handshake_error_info",
        &[("reason", "expired"), ("server_name", "localhost")]
    ));
    assert!(m.has("x509_source_errors_total", &[("reason", "expired")]));
}

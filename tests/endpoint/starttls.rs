//! STARTTLS failures for LDAP, XMPP and MySQL that real servers do not
//! produce on demand, and hostile answers, against hand-written servers;
//! the successful exchanges run against the real servers in
//! `tests/servers/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use certinel::sources::endpoint::TlsErrorReason;

use crate::common::*;

/// A server that reads up to `read` bytes, answers `answer`, and waits.
fn answering(read: usize, answer: Vec<u8>) -> SocketAddr {
    raw_server(move |mut stream: TcpStream| {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = vec![0u8; read];
        if read > 0 {
            let _ = stream.read(&mut buf);
        }
        let _ = stream.write_all(&answer);
        std::thread::sleep(Duration::from_millis(500));
    })
}

/// The reason and detail of a probe of `addr` with `starttls`.
async fn failure(addr: SocketAddr, protocol: &str) -> (TlsErrorReason, String) {
    let dir = tempfile::tempdir().unwrap();
    let source = endpoint(
        dir.path(),
        &format!(
            "targets: [\"{addr}\"]\nserver_name: localhost\nstarttls: {protocol}\ntimeout: 3s\n"
        ),
    );
    let started = Instant::now();
    let reports = probe_one(&source).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let e = reports[0].error.clone().expect("the probe fails");
    (e.reason, e.detail)
}

/// An LDAP `extendedResp` to message `id` with `code` and a diagnostic
/// message (short-form lengths: the tests' texts are short).
fn ldap_response(id: u8, code: u8, text: &str) -> Vec<u8> {
    let mut op = vec![0x0a, 1, code, 0x04, 0, 0x04, text.len() as u8];
    op.extend_from_slice(text.as_bytes());
    let mut message = vec![0x02, 1, id, 0x78, op.len() as u8];
    message.extend_from_slice(&op);
    let mut out = vec![0x30, message.len() as u8];
    out.extend_from_slice(&message);
    out
}

#[tokio::test]
async fn ldap_refusals_and_notices_are_starttls_failures() {
    let refused = ldap_response(1, 2, "unsupported extended operation");
    let (reason, detail) = failure(answering(31, refused), "ldap").await;
    assert_eq!(reason, TlsErrorReason::Starttls);
    assert!(
        detail.contains("result 2") && detail.contains("unsupported"),
        "{detail}"
    );
    // Notice of disconnection: message ID 0, result unavailable (52).
    let notice = ldap_response(0, 52, "");
    let (_, detail) = failure(answering(31, notice), "ldap").await;
    assert!(detail.contains("unsolicited"), "{detail}");
    // A length of 4 GiB is refused before anything is read.
    let (_, detail) = failure(answering(31, b"\x30\x84\xff\xff\xff\xff".to_vec()), "ldap").await;
    assert!(detail.contains("more than"), "{detail}");
    let (_, detail) = failure(answering(31, b"HTTP/1.1 400\r\n".to_vec()), "ldap").await;
    assert!(detail.contains("not an LDAP message"), "{detail}");
}

#[tokio::test]
async fn xmpp_without_starttls_failure_and_errors_are_starttls_failures() {
    let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='localhost'>";
    let no_tls = format!("{header}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>");
    let (reason, detail) = failure(answering(200, no_tls.into_bytes()), "xmpp").await;
    assert_eq!(reason, TlsErrorReason::Starttls);
    assert!(detail.contains("does not offer STARTTLS"), "{detail}");
    let host_unknown = format!("{header}<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>");
    let (_, detail) = failure(answering(200, host_unknown.into_bytes()), "xmpp-server").await;
    assert!(detail.contains("host-unknown"), "{detail}");
    // Offers STARTTLS, then answers <failure/>.
    let offered = format!("{header}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>");
    let addr = raw_server(move |mut stream: TcpStream| {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 512];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(offered.as_bytes());
        let _ = stream.read(&mut buf);
        let _ =
            stream.write_all(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>");
        std::thread::sleep(Duration::from_millis(500));
    });
    let (_, detail) = failure(addr, "xmpp").await;
    assert!(detail.contains("<failure/>"), "{detail}");
    // An endless stream that never closes its features is cut off.
    let endless = raw_server(|mut stream: TcpStream| {
        let _ = stream.write_all(b"<stream:stream>");
        while stream.write_all(b"<a></a>>>>>>>>").is_ok() {}
    });
    let (_, detail) = failure(endless, "xmpp").await;
    assert!(detail.contains("no answer within"), "{detail}");
}

#[tokio::test]
async fn mysql_without_ssl_and_errors_are_starttls_failures() {
    let mut hello = vec![10];
    hello.extend_from_slice(b"5.5.5-test\0");
    hello.extend_from_slice(&[1, 0, 0, 0]);
    hello.extend_from_slice(&[b'x'; 8]);
    hello.push(0);
    // Capabilities without CLIENT_SSL (0x0800).
    hello.extend_from_slice(&0xf7ffu16.to_le_bytes());
    let mut packet = vec![hello.len() as u8, 0, 0, 0];
    packet.extend_from_slice(&hello);
    let (reason, detail) = failure(answering(0, packet), "mysql").await;
    assert_eq!(reason, TlsErrorReason::Starttls);
    assert!(detail.contains("does not offer SSL"), "{detail}");
    let err = b"\xff\x69\x04Host '127.0.0.1' is blocked";
    let mut packet = vec![err.len() as u8, 0, 0, 0];
    packet.extend_from_slice(err);
    let (_, detail) = failure(answering(0, packet), "mysql").await;
    assert!(
        detail.contains("1129") && detail.contains("blocked"),
        "{detail}"
    );
    let (_, detail) = failure(answering(0, vec![0xff, 0xff, 0xff, 0]), "mysql").await;
    assert!(detail.contains("bytes"), "{detail}");
}

//! One connection: TCP connect, optional STARTTLS, the TLS handshake with
//! the recording verifier, and the client-certificate bookkeeping that
//! tells `client_cert_required` apart from other failures.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::activity::{Activity, Heard};
use super::danger;
use super::reason::Failure;
use super::starttls;
use super::Negotiated;
use crate::config::{EndpointTarget, Starttls, TlsSettings};

/// Bounds on how long to wait, after a handshake in which the server asked
/// for a client certificate, for an alert rejecting ours (or its absence).
/// The alert follows our last flight by one round trip, so twice the
/// handshake time is ample; the bounds absorb scheduling noise and cap the
/// cost for servers that merely *request* a certificate.
const CLIENT_AUTH_GRACE_MIN: Duration = Duration::from_millis(100);
const CLIENT_AUTH_GRACE_MAX: Duration = Duration::from_secs(1);

/// Per-connection state shared with rustls callbacks.
pub(super) struct Session {
    config: Arc<ClientConfig>,
    pub(super) recorder: Arc<danger::Recorder>,
    client_auth: Arc<ClientAuth>,
    /// The server's first bytes after STARTTLS were a TLS record header.
    spoke_tls: Arc<AtomicBool>,
}

impl Session {
    pub(super) fn new(tls: &TlsSettings) -> Session {
        let recorder = Arc::new(danger::Recorder::new(
            tls.verifier.clone(),
            tls.anchors.clone(),
            tls.provider.clone(),
        ));
        let client_auth = Arc::new(ClientAuth {
            key: tls.client_key.clone(),
            requested: AtomicBool::new(false),
        });
        let mut config = tls
            .builder
            .clone()
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_client_cert_resolver(client_auth.clone());
        // A resumed session skips the certificate: every probe must see it.
        config.resumption = Resumption::disabled();
        Session {
            config: Arc::new(config),
            recorder,
            client_auth,
            spoke_tls: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Supplies the configured client certificate (if any) and remembers
/// whether the server asked for one, which is how `client_cert_required`
/// is told apart from other handshake failures.
#[derive(Debug)]
struct ClientAuth {
    key: Option<Arc<CertifiedKey>>,
    requested: AtomicBool,
}

impl ResolvesClientCert for ClientAuth {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

impl ClientAuth {
    fn requested_but_missing(&self) -> bool {
        self.requested.load(Ordering::Relaxed) && self.key.is_none()
    }
}

impl Session {
    /// The server asked for a client certificate and none was configured.
    pub(super) fn missing_client_cert(&self) -> bool {
        self.client_auth.requested_but_missing()
    }

    /// The server answered with a TLS record: whatever went wrong later,
    /// it is not a peer that does not speak TLS.
    pub(super) fn peer_spoke_tls(&self) -> bool {
        self.spoke_tls.load(Ordering::Relaxed)
    }
}

/// The connection as rustls reads it, noting whether the server's first
/// bytes are a TLS record header. That is what tells a port where TLS is
/// not spoken (HTTP, SSH: `not_tls`) from a TLS server that breaks the
/// protocol later (a ServerHello, then garbage).
struct Sniff<S> {
    inner: S,
    head: [u8; 6],
    seen: usize,
    spoke_tls: Arc<AtomicBool>,
}

impl<S> Sniff<S> {
    fn new(inner: S, spoke_tls: Arc<AtomicBool>) -> Sniff<S> {
        Sniff {
            inner,
            head: [0; 6],
            seen: 0,
            spoke_tls,
        }
    }

    fn note(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(self.head.len() - self.seen);
        if take == 0 {
            return;
        }
        self.head[self.seen..self.seen + take].copy_from_slice(&bytes[..take]);
        self.seen += take;
        // Decided on the five bytes of the header (rustls may fail on an
        // empty record before it reads more), refined by the sixth.
        if self.seen >= 5 {
            self.spoke_tls
                .store(is_record_header(&self.head[..self.seen]), Ordering::Relaxed);
        }
    }
}

/// A TLS record header: a content type (change_cipher_spec, alert,
/// handshake, application_data) and a major version of 3 (SSL 3.0 to
/// TLS 1.3), and the byte after it — unless that makes it our own
/// ClientHello, sent back by an echo service.
fn is_record_header(head: &[u8]) -> bool {
    match head {
        [0x16, 0x03, _, _, _, 0x01, ..] => false,
        [0x14..=0x17, 0x03, 0x00..=0x04, _, _, ..] => true,
        _ => false,
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.note(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniff<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection a probe talks over: TCP, telling the probe's
/// [`Activity`] when it waits on the server.
pub(super) type Wire = Heard<TcpStream>;

pub(super) async fn handshake(
    addr: SocketAddr,
    target: &EndpointTarget,
    starttls: Option<Starttls>,
    session: &Session,
    activity: &Arc<Activity>,
) -> Result<Negotiated, Failure> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.map_err(Failure::Connect)?;
    // Latency of the probe matters more than batching: the handshake is a
    // handful of small flights.
    let _ = stream.set_nodelay(true);
    let mut stream = Heard::new(stream, activity.clone());
    if let Some(protocol) = starttls {
        starttls::upgrade(&mut stream, protocol, &target.server_name)
            .await
            .map_err(Failure::Starttls)?;
    }
    let server_name = ServerName::try_from(target.server_name.clone())
        .map_err(|_| Failure::InvalidServerName(target.server_name.clone()))?;
    let connector = tokio_rustls::TlsConnector::from(session.config.clone());
    let stream = Sniff::new(stream, session.spoke_tls.clone());
    let mut tls = connector
        .connect(server_name, stream)
        .await
        .map_err(Failure::Tls)?;
    let negotiated = {
        let (_, conn) = tls.get_ref();
        Negotiated {
            version: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2",
                _ => "unknown",
            },
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| iana_suite_name(s.suite()))
                .unwrap_or_default(),
        }
    };
    // In TLS 1.3 the client finishes first; a server that insists on a
    // client certificate says so only afterwards, with an alert.
    if session.client_auth.requested.load(Ordering::Relaxed) {
        let grace = (started.elapsed() * 2).clamp(CLIENT_AUTH_GRACE_MIN, CLIENT_AUTH_GRACE_MAX);
        let mut byte = [0u8; 1];
        match tokio::time::timeout(grace, tls.read(&mut byte)).await {
            Ok(Err(e)) => return Err(Failure::Tls(e)),
            Ok(Ok(0)) => return Err(Failure::ClosedAfterHandshake),
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    let _ = tls.shutdown().await;
    Ok(negotiated)
}

/// rustls names TLS 1.3 suites `TLS13_…`; operators know the IANA names.
fn iana_suite_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_record_headers_are_told_from_other_protocols() {
        // A ServerHello, an alert, change_cipher_spec, application_data.
        let tls: [&[u8]; 6] = [
            &[0x16, 3, 3, 0, 0x4a, 0x02],
            &[0x15, 3, 1, 0, 2, 2],
            &[0x14, 3, 3, 0, 1, 1],
            &[0x17, 3, 3, 0, 5, 0],
            &[0x16, 3, 0, 0, 0x4a, 0x02],
            // An empty record: all rustls reads before it gives up.
            &[0x16, 3, 3, 0, 0],
        ];
        for head in tls {
            assert!(is_record_header(head), "{head:?}");
        }
        // HTTP, SSH, an SSLv2 answer, zeros, a record of version 2, and
        // our own ClientHello echoed back.
        let other: [&[u8]; 7] = [
            b"HTTP/1",
            b"SSH-2.",
            &[0x80, 0x2e, 0x04, 0, 1, 0],
            &[0; 6],
            &[0x16, 2, 0, 0, 1, 2],
            &[0x16, 3, 1, 0x01, 0x2c, 0x01],
            &[0x16, 3, 3, 0],
        ];
        for head in other {
            assert!(!is_record_header(head), "{head:?}");
        }
    }

    #[tokio::test]
    async fn the_first_bytes_decide_even_when_they_come_one_by_one() {
        let flag = Arc::new(AtomicBool::new(false));
        let (client, mut server) = tokio::io::duplex(64);
        let mut sniff = Sniff::new(client, flag.clone());
        let mut buf = [0u8; 8];
        for b in [0x16, 0x03, 0x03, 0x00, 0x4a, 0x02, 0x00] {
            server.write_all(&[b]).await.unwrap();
            let n = sniff.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], [b]);
        }
        assert!(flag.load(Ordering::Relaxed));
        let flag = Arc::new(AtomicBool::new(false));
        let (client, mut server) = tokio::io::duplex(64);
        let mut sniff = Sniff::new(client, flag.clone());
        server
            .write_all(b"HTTP/1.1 400 Bad Request\r\n")
            .await
            .unwrap();
        let _ = sniff.read(&mut buf).await.unwrap();
        assert!(!flag.load(Ordering::Relaxed));
    }

    #[test]
    fn tls13_suites_get_iana_names() {
        assert_eq!(
            iana_suite_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            iana_suite_name(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
    }
}

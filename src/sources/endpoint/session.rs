//! One connection: TCP connect, optional STARTTLS, the TLS handshake with
//! the recording verifier, and the client-certificate bookkeeping that
//! tells `client_cert_required` apart from other failures.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
}

impl Session {
    pub(super) fn new(tls: &TlsSettings) -> Session {
        let recorder = Arc::new(danger::Recorder::new(
            tls.verifier.clone(),
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
}

pub(super) async fn handshake(
    addr: SocketAddr,
    target: &EndpointTarget,
    starttls: Option<Starttls>,
    session: &Session,
) -> Result<Negotiated, Failure> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.map_err(Failure::Connect)?;
    // Latency of the probe matters more than batching: the handshake is a
    // handful of small flights.
    let _ = stream.set_nodelay(true);
    if let Some(protocol) = starttls {
        starttls::upgrade(&mut stream, protocol)
            .await
            .map_err(Failure::Starttls)?;
    }
    let server_name = ServerName::try_from(target.server_name.clone())
        .map_err(|_| Failure::InvalidServerName(target.server_name.clone()))?;
    let connector = tokio_rustls::TlsConnector::from(session.config.clone());
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

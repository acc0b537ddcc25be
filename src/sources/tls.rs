//! The endpoint source: resolve, connect, optionally STARTTLS, handshake,
//! and report the chain the server presented and what was wrong with it.
//!
//! Every resolved address is probed, concurrently, under one deadline for
//! the whole target. Certificate verification never aborts the handshake:
//! the recording verifier in [`danger`] keeps the chain and the verdict of
//! the real WebPKI verification, so an expired or mis-issued certificate is
//! exported *and* flagged.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use crate::cert::{self, CertFacts};
use crate::config::EndpointTarget;
use crate::sources::starttls::{self, Starttls as StarttlsProtocol};
use crate::{crypto, filesystem};

pub use crate::sources::starttls::Starttls;

/// Why a probe failed: the closed `reason` set of
/// `certinel_tls_handshake_error_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsErrorReason {
    /// The name does not resolve.
    Dns,
    /// Connection refused.
    Refused,
    /// The deadline passed.
    Timeout,
    /// Connection closed or reset mid-handshake.
    Reset,
    /// The peer does not speak TLS.
    NotTls,
    /// No TLS version in common.
    ProtocolVersion,
    /// Another TLS alert from the peer.
    HandshakeFailure,
    /// The server wants a client certificate we did not (or could not) give.
    ClientCertRequired,
    /// The certificate's NotAfter has passed.
    Expired,
    /// The certificate's NotBefore is in the future.
    NotYetValid,
    /// The chain does not lead to a trusted root.
    UnknownCa,
    /// The certificate is not valid for the server name.
    HostnameMismatch,
    /// The chain is unparsable or otherwise invalid.
    BadCertificate,
    /// STARTTLS negotiation failed.
    Starttls,
    /// Anything else.
    Other,
}

impl TlsErrorReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsErrorReason::Dns => "dns",
            TlsErrorReason::Refused => "refused",
            TlsErrorReason::Timeout => "timeout",
            TlsErrorReason::Reset => "reset",
            TlsErrorReason::NotTls => "not_tls",
            TlsErrorReason::ProtocolVersion => "protocol_version",
            TlsErrorReason::HandshakeFailure => "handshake_failure",
            TlsErrorReason::ClientCertRequired => "client_cert_required",
            TlsErrorReason::Expired => "expired",
            TlsErrorReason::NotYetValid => "not_yet_valid",
            TlsErrorReason::UnknownCa => "unknown_ca",
            TlsErrorReason::HostnameMismatch => "hostname_mismatch",
            TlsErrorReason::BadCertificate => "bad_certificate",
            TlsErrorReason::Starttls => "starttls",
            TlsErrorReason::Other => "other",
        }
    }
}

impl fmt::Display for TlsErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: the reason for the metric, the detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    /// The contract reason.
    pub reason: TlsErrorReason,
    /// What exactly happened.
    pub detail: String,
}

impl ProbeError {
    fn new(reason: TlsErrorReason, detail: impl Into<String>) -> ProbeError {
        ProbeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// Negotiated parameters of a completed handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLS1.2` or `TLS1.3`.
    pub version: &'static str,
    /// IANA cipher suite name.
    pub cipher_suite: String,
}

/// The outcome of probing one address of a target.
#[derive(Debug, Clone)]
pub struct AddressReport {
    /// `ip:port` connected to; `""` when the name did not resolve.
    pub address: String,
    /// The chain as presented, leaf first (empty if none was seen).
    pub chain: Vec<Arc<CertFacts>>,
    /// Set when the probe failed, in transport or verification.
    pub error: Option<ProbeError>,
    /// Set when the TLS handshake completed (even if verification failed).
    pub negotiated: Option<Negotiated>,
    /// Connect + STARTTLS + handshake.
    pub duration: Duration,
    /// When the probe of this address started.
    pub probed_at: SystemTime,
}

/// Errors loading an endpoint's `ca_file` / `client_cert` / `client_key`.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// `ca_file` unreadable or holds no usable certificate.
    #[error("ca_file {path}: {detail}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The crypto provider rejected the protocol versions (a build problem).
    #[error("TLS provider: {0}")]
    Provider(String),
    /// Only one of `client_cert` / `client_key` given.
    #[error("client_cert and client_key must be set together")]
    ClientPairIncomplete,
    /// `client_cert` unreadable or empty.
    #[error("client_cert {path}: {detail}")]
    ClientCert {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// `client_key` unreadable, unsupported, or not the certificate's key.
    #[error("client_key {path}: {detail}")]
    ClientKey {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

/// Trust roots and client identity of one endpoint entry, loaded once.
#[derive(Debug)]
pub struct TlsSettings {
    provider: Arc<CryptoProvider>,
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
    verifier: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    client_key: Option<Arc<CertifiedKey>>,
    /// Hash of the files' paths and contents, to tell a reload that
    /// rotated the CA or client certificate from one that did not.
    fingerprint: u64,
}

/// The operating system's trust store, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::warn!(error = %e, "problem reading the system trust store");
            }
            let mut store = RootCertStore::empty();
            let (added, ignored) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                tracing::warn!(
                    "no system trust roots found; endpoints without ca_file will report unknown_ca"
                );
            }
            tracing::debug!(added, ignored, "loaded system trust roots");
            Arc::new(store)
        })
        .clone()
}

impl TlsSettings {
    /// Loads and checks the files; `None` means system roots / no client
    /// certificate.
    pub fn load(
        ca_file: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<TlsSettings, TlsSetupError> {
        let (client_cert_path, client_key_path) = (client_cert, client_key);
        let provider = crypto::provider();
        let roots = match ca_file {
            None => system_roots(),
            Some(path) => {
                let ca_err = |detail: String| TlsSetupError::CaFile {
                    path: path.display().to_string(),
                    detail,
                };
                let certs = read_certs(path).map_err(ca_err)?;
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(ca_err("no usable CA certificate in the file".to_owned()));
                }
                Arc::new(store)
            }
        };
        let verifier = if roots.is_empty() {
            None
        } else {
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsSetupError::CaFile {
                    path: ca_file.map(|p| p.display().to_string()).unwrap_or_default(),
                    detail: e.to_string(),
                })?,
            )
        };
        let client_key = match (client_cert, client_key) {
            (None, None) => None,
            (Some(cert_path), Some(key_path)) => {
                let chain = read_certs(cert_path).map_err(|detail| TlsSetupError::ClientCert {
                    path: cert_path.display().to_string(),
                    detail,
                })?;
                let key_err = |detail: String| TlsSetupError::ClientKey {
                    path: key_path.display().to_string(),
                    detail,
                };
                let pem = filesystem::read_regular(key_path, MAX_PEM_FILE)
                    .map_err(|e| key_err(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(&pem)
                    .map_err(|e| key_err(format!("no usable private key: {e}")))?;
                let certified = CertifiedKey::from_der(chain, key, &provider)
                    .map_err(|e| key_err(e.to_string()))?;
                Some(Arc::new(certified))
            }
            _ => return Err(TlsSetupError::ClientPairIncomplete),
        };
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            let files = [ca_file, client_cert_path, client_key_path];
            for path in files.into_iter().flatten() {
                path.hash(&mut h);
                std::fs::read(path).unwrap_or_default().hash(&mut h);
            }
            h.finish()
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Provider(e.to_string()))?;
        Ok(TlsSettings {
            provider,
            builder,
            verifier,
            client_key,
            fingerprint,
        })
    }
}

impl TlsSettings {
    /// See the field: identity of the loaded files.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// CA bundles and client certificates are kilobytes; a megabyte is a
/// mistake, not a bundle.
const MAX_PEM_FILE: u64 = 1024 * 1024;

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = filesystem::read_regular(path, MAX_PEM_FILE).map_err(|e| e.to_string())?;
    crypto::pem_certs(&pem)
}

/// Bounds on how long to wait, after a handshake in which the server asked
/// for a client certificate, for an alert rejecting ours (or its absence).
/// The alert follows our last flight by one round trip, so twice the
/// handshake time is ample; the bounds absorb scheduling noise and cap the
/// cost for servers that merely *request* a certificate.
const CLIENT_AUTH_GRACE_MIN: Duration = Duration::from_millis(100);
const CLIENT_AUTH_GRACE_MAX: Duration = Duration::from_secs(1);

/// Probes one target: resolves it and probes every address it resolves
/// to, concurrently, all within `timeout`. Never returns an empty list.
pub async fn probe(
    target: &EndpointTarget,
    tls: &TlsSettings,
    starttls: Option<StarttlsProtocol>,
    timeout: Duration,
) -> Vec<AddressReport> {
    let deadline = tokio::time::Instant::now() + timeout;
    let started = Instant::now();
    let probed_at = SystemTime::now();
    let dns_failure = |detail: String| {
        vec![AddressReport {
            address: String::new(),
            chain: Vec::new(),
            error: Some(ProbeError::new(TlsErrorReason::Dns, detail)),
            negotiated: None,
            duration: started.elapsed(),
            probed_at,
        }]
    };
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let mut addrs: Vec<SocketAddr> = match timeout_at(deadline, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => return dns_failure(format!("cannot resolve {}: {e}", target.host)),
        Err(_) => {
            return dns_failure(format!(
                "resolving {} did not finish within {timeout:?}",
                target.host
            ))
        }
    };
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return dns_failure(format!("{} resolves to no address", target.host));
    }
    let probes = addrs
        .into_iter()
        .map(|addr| probe_address(addr, target, tls, starttls, deadline));
    futures_util::future::join_all(probes).await
}

async fn probe_address(
    addr: SocketAddr,
    target: &EndpointTarget,
    tls: &TlsSettings,
    starttls: Option<StarttlsProtocol>,
    deadline: tokio::time::Instant,
) -> AddressReport {
    let started = Instant::now();
    let probed_at = SystemTime::now();
    let session = Session::new(tls);
    let outcome = timeout_at(deadline, handshake(addr, target, starttls, &session)).await;
    let duration = started.elapsed();
    let seen = session.recorder.take();
    let chain: Vec<Arc<CertFacts>> = seen
        .as_ref()
        .map(|s| {
            s.chain
                .iter()
                .filter_map(|der| cert::parse_der(der).ok())
                .collect()
        })
        .unwrap_or_default();
    let verdict = seen.and_then(|s| s.verdict.err());
    let (error, negotiated) = match outcome {
        Err(_) => (
            Some(ProbeError::new(
                TlsErrorReason::Timeout,
                "no complete handshake before the deadline",
            )),
            None,
        ),
        Ok(Err(failure)) => (Some(failure.classify(&session)), None),
        Ok(Ok(negotiated)) => (verdict.map(|e| verdict_error(&e)), Some(negotiated)),
    };
    AddressReport {
        address: addr.to_string(),
        chain,
        error,
        negotiated,
        duration,
        probed_at,
    }
}

/// Per-connection state shared with rustls callbacks.
struct Session {
    config: Arc<ClientConfig>,
    recorder: Arc<danger::Recorder>,
    client_auth: Arc<ClientAuth>,
}

impl Session {
    fn new(tls: &TlsSettings) -> Session {
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

/// Where a probe failed.
enum Failure {
    Connect(std::io::Error),
    Starttls(starttls::StarttlsError),
    Tls(std::io::Error),
    ClosedAfterHandshake,
    InvalidServerName(String),
}

impl Failure {
    fn classify(self, session: &Session) -> ProbeError {
        use std::io::ErrorKind;
        let missing_cert = session.client_auth.requested_but_missing();
        match self {
            Failure::Connect(e) => {
                let reason = match e.kind() {
                    ErrorKind::ConnectionRefused => TlsErrorReason::Refused,
                    ErrorKind::TimedOut => TlsErrorReason::Timeout,
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                        TlsErrorReason::Reset
                    }
                    _ => TlsErrorReason::Other,
                };
                ProbeError::new(reason, format!("connect: {e}"))
            }
            Failure::Starttls(e) => ProbeError::new(TlsErrorReason::Starttls, e.to_string()),
            Failure::InvalidServerName(name) => ProbeError::new(
                TlsErrorReason::Other,
                format!("{name:?} is not a valid TLS server name"),
            ),
            Failure::ClosedAfterHandshake => ProbeError::new(
                if missing_cert {
                    TlsErrorReason::ClientCertRequired
                } else {
                    TlsErrorReason::Reset
                },
                "server closed the connection right after the handshake",
            ),
            Failure::Tls(e) => {
                if let Some(tls_err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return ProbeError::new(
                        rustls_reason(tls_err, missing_cert),
                        format!("handshake: {tls_err}"),
                    );
                }
                let reason = match e.kind() {
                    ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                        if missing_cert =>
                    {
                        TlsErrorReason::ClientCertRequired
                    }
                    ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe => TlsErrorReason::Reset,
                    ErrorKind::TimedOut => TlsErrorReason::Timeout,
                    _ => TlsErrorReason::Other,
                };
                ProbeError::new(reason, format!("handshake: {e}"))
            }
        }
    }
}

async fn handshake(
    addr: SocketAddr,
    target: &EndpointTarget,
    starttls: Option<StarttlsProtocol>,
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

fn rustls_reason(e: &rustls::Error, missing_cert: bool) -> TlsErrorReason {
    use rustls::Error;
    use rustls::PeerIncompatible as P;
    match e {
        Error::AlertReceived(alert) => match alert {
            AlertDescription::ProtocolVersion => TlsErrorReason::ProtocolVersion,
            AlertDescription::CertificateRequired => TlsErrorReason::ClientCertRequired,
            // A TLS 1.2 server rejecting the empty Certificate we sent.
            AlertDescription::HandshakeFailure
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
                if missing_cert =>
            {
                TlsErrorReason::ClientCertRequired
            }
            _ => TlsErrorReason::HandshakeFailure,
        },
        Error::PeerIncompatible(
            P::ServerDoesNotSupportTls12Or13
            | P::ServerTlsVersionIsDisabledByOurConfig
            | P::SupportedVersionsExtensionRequired
            | P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled,
        ) => TlsErrorReason::ProtocolVersion,
        Error::PeerIncompatible(_) | Error::PeerMisbehaved(_) => TlsErrorReason::HandshakeFailure,
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => TlsErrorReason::NotTls,
        Error::InvalidCertificate(_) | Error::NoCertificatesPresented => verdict_error(e).reason,
        _ => TlsErrorReason::Other,
    }
}

/// Maps the WebPKI verdict on a presented chain to a reason.
fn verdict_error(e: &rustls::Error) -> ProbeError {
    let reason = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsErrorReason::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsErrorReason::NotYetValid
            }
            CertificateError::UnknownIssuer => TlsErrorReason::UnknownCa,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsErrorReason::HostnameMismatch
            }
            _ => TlsErrorReason::BadCertificate,
        },
        _ => TlsErrorReason::BadCertificate,
    };
    ProbeError::new(reason, format!("certificate: {e}"))
}

/// rustls names TLS 1.3 suites `TLS13_…`; operators know the IANA names.
fn iana_suite_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// The recording verifier. Dangerous by design and kept here, private: it
/// accepts every certificate so the handshake completes and we can read
/// expired, self-signed or mis-issued chains — which is the whole point of
/// a certificate exporter. It still runs the real WebPKI verification and
/// records the verdict, and handshake signatures are still checked, so the
/// chain we report is one the server holds the key for.
mod danger {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::UnixTime;
    use rustls::DigitallySignedStruct;

    use crate::crypto::HandshakeSignatures;

    pub(super) struct Seen {
        pub(super) chain: Vec<Vec<u8>>,
        pub(super) verdict: Result<(), rustls::Error>,
    }

    #[derive(Debug)]
    pub(super) struct Recorder {
        inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
        signatures: HandshakeSignatures,
        seen: Mutex<Option<Seen>>,
    }

    impl fmt::Debug for Seen {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Seen")
                .field("chain_len", &self.chain.len())
                .field("verdict", &self.verdict)
                .finish()
        }
    }

    impl Recorder {
        pub(super) fn new(
            inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
            provider: Arc<CryptoProvider>,
        ) -> Recorder {
            Recorder {
                inner,
                signatures: HandshakeSignatures::new(&provider),
                seen: Mutex::new(None),
            }
        }

        pub(super) fn take(&self) -> Option<Seen> {
            match self.seen.lock() {
                Ok(mut g) => g.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            }
        }
    }

    impl ServerCertVerifier for Recorder {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let verdict = match &self.inner {
                Some(v) => v
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .map(|_| ()),
                None => Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
            };
            let mut chain = Vec::with_capacity(1 + intermediates.len());
            chain.push(end_entity.as_ref().to_vec());
            chain.extend(intermediates.iter().map(|c| c.as_ref().to_vec()));
            let seen = Seen { chain, verdict };
            match self.seen.lock() {
                Ok(mut g) => *g = Some(seen),
                Err(poisoned) => *poisoned.into_inner() = Some(seen),
            }
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.signatures.schemes()
        }
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

    #[test]
    fn unexpected_failures_map_to_other() {
        assert_eq!(
            rustls_reason(&rustls::Error::General("x".into()), false),
            TlsErrorReason::Other
        );
    }

    #[test]
    fn tls12_rejection_of_missing_client_cert_is_client_cert_required() {
        let e = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert_eq!(rustls_reason(&e, true), TlsErrorReason::ClientCertRequired);
        assert_eq!(rustls_reason(&e, false), TlsErrorReason::HandshakeFailure);
    }
}

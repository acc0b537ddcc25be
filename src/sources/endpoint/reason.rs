//! Why a probe failed: the closed `reason` set of
//! `certinel_tls_handshake_error_info`, and the one place that maps
//! connect errors, STARTTLS failures, TLS alerts and WebPKI verdicts onto
//! it.

use std::fmt;

use rustls::{AlertDescription, CertificateError, InvalidMessage};

use super::chain::{ChainProblemKind, ChainReport};
use super::starttls::StarttlsError;

/// The closed `reason` set of `certinel_tls_handshake_error_info`.
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
    /// The chain does not lead to a trusted root because a certificate's
    /// issuer is neither served nor trusted: an intermediate is missing.
    MissingIntermediate,
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
            TlsErrorReason::MissingIntermediate => "missing_intermediate",
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
    pub(crate) fn new(reason: TlsErrorReason, detail: impl Into<String>) -> ProbeError {
        ProbeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// Where a probe failed.
pub(super) enum Failure {
    Connect(std::io::Error),
    Starttls(StarttlsError),
    Tls(std::io::Error),
    ClosedAfterHandshake,
    InvalidServerName(String),
}

impl Failure {
    /// The reason and detail; `missing_cert`: the server asked for a
    /// client certificate and none was configured; `spoke_tls`: the
    /// server's first bytes were a TLS record; `chain`: the diagnostics of
    /// the chain the server presented, if it presented one.
    pub(super) fn classify(
        self,
        missing_cert: bool,
        spoke_tls: bool,
        chain: Option<&ChainReport>,
    ) -> ProbeError {
        use std::io::ErrorKind;
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
                        rustls_reason(tls_err, missing_cert, spoke_tls, chain),
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

fn rustls_reason(
    e: &rustls::Error,
    missing_cert: bool,
    spoke_tls: bool,
    chain: Option<&ChainReport>,
) -> TlsErrorReason {
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
        // The deframer's 64 KiB cap on one handshake message: in practice
        // a Certificate message with an absurd chain (or a CertificateRequest
        // naming thousands of CAs). The peer does speak TLS.
        Error::InvalidMessage(InvalidMessage::HandshakePayloadTooLarge) => {
            TlsErrorReason::BadCertificate
        }
        // Messages that make no sense: from a port where TLS is not spoken
        // at all, or from a TLS server that answered with a TLS record
        // (a ServerHello, an early change_cipher_spec) and then broke the
        // protocol. "Wrong port" would send the operator the wrong way.
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => {
            if spoke_tls {
                TlsErrorReason::HandshakeFailure
            } else {
                TlsErrorReason::NotTls
            }
        }
        Error::InvalidCertificate(_) | Error::NoCertificatesPresented => {
            verdict_error(e, chain).reason
        }
        _ => TlsErrorReason::Other,
    }
}

/// Maps the WebPKI verdict on a presented chain to a reason. An unknown
/// issuer is a `missing_intermediate` when the diagnostics found the
/// certificate whose issuer is neither served nor trusted.
pub(super) fn verdict_error(e: &rustls::Error, chain: Option<&ChainReport>) -> ProbeError {
    let missing = chain.and_then(|c| {
        c.problems
            .iter()
            .find(|p| p.kind == ChainProblemKind::MissingIntermediate)
    });
    if let (rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer), Some(missing)) =
        (e, missing)
    {
        return ProbeError::new(
            TlsErrorReason::MissingIntermediate,
            format!("certificate: {e}: {}", missing.detail),
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_failures_map_to_other() {
        assert_eq!(
            rustls_reason(&rustls::Error::General("x".into()), false, true, None),
            TlsErrorReason::Other
        );
    }

    #[test]
    fn tls12_rejection_of_missing_client_cert_is_client_cert_required() {
        let e = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert_eq!(
            rustls_reason(&e, true, true, None),
            TlsErrorReason::ClientCertRequired
        );
        assert_eq!(
            rustls_reason(&e, false, true, None),
            TlsErrorReason::HandshakeFailure
        );
    }

    #[test]
    fn an_oversized_handshake_message_is_a_bad_certificate_not_a_wrong_port() {
        let e = rustls::Error::InvalidMessage(InvalidMessage::HandshakePayloadTooLarge);
        assert_eq!(
            rustls_reason(&e, false, true, None),
            TlsErrorReason::BadCertificate
        );
        let garbage = rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType);
        assert_eq!(
            rustls_reason(&garbage, false, false, None),
            TlsErrorReason::NotTls
        );
    }

    #[test]
    fn nonsense_after_a_tls_record_is_a_handshake_failure_not_a_wrong_port() {
        let garbage = rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType);
        assert_eq!(
            rustls_reason(&garbage, false, true, None),
            TlsErrorReason::HandshakeFailure
        );
        let early_ccs = rustls::Error::InappropriateMessage {
            expect_types: vec![rustls::ContentType::Handshake],
            got_type: rustls::ContentType::ChangeCipherSpec,
        };
        assert_eq!(
            rustls_reason(&early_ccs, false, true, None),
            TlsErrorReason::HandshakeFailure
        );
        assert_eq!(
            rustls_reason(&early_ccs, false, false, None),
            TlsErrorReason::NotTls
        );
    }
}

//! The TLS pieces every part of certinel shares: one crypto provider, PEM
//! certificate parsing, and the handshake-signature checks that both of
//! certinel's permissive certificate verifiers keep (the probe's recording
//! verifier and the listener's `RequestClientCert`).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The process-wide crypto provider (ring), built once.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Every `CERTIFICATE` block of a PEM text, in order; an error when the
/// armour is broken or there is none.
pub(crate) fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".to_owned());
    }
    Ok(certs)
}

/// Checks handshake signatures against the provider's algorithms: the part
/// of certificate verification a permissive verifier must never skip, so
/// the peer is known to hold the key of the certificate it presented.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandshakeSignatures {
    algorithms: WebPkiSupportedAlgorithms,
}

impl HandshakeSignatures {
    /// The provider's algorithms.
    pub(crate) fn new(provider: &CryptoProvider) -> HandshakeSignatures {
        HandshakeSignatures {
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// A TLS 1.2 `ServerKeyExchange`/`CertificateVerify` signature.
    pub(crate) fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    /// A TLS 1.3 `CertificateVerify` signature.
    pub(crate) fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    /// The schemes [`tls12`](Self::tls12) and [`tls13`](Self::tls13) accept.
    pub(crate) fn schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The three handshake-signature methods of a rustls certificate verifier
/// (`ServerCertVerifier` or `ClientCertVerifier`), answered by the
/// [`HandshakeSignatures`] in the verifier's field `$field`: both of
/// certinel's permissive verifiers skip the certificate check, never this.
macro_rules! check_handshake_signatures {
    ($field:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$field.tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$field.tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$field.schemes()
        }
    };
}
pub(crate) use check_handshake_signatures;

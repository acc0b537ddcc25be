//! The TLS pieces every part of certinel shares: one crypto provider, PEM
//! certificate parsing, and the handshake-signature checks that both of
//! certinel's permissive certificate verifiers keep (the probe's recording
//! verifier and the listener's `RequestClientCert`), and the chain
//! signature checks the probes remember.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
};
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

/// Largest number of signatures [`chain_signature_algorithms`] remembers;
/// past it the memory is emptied and refilled by the next probes. One
/// entry per distinct certificate signature on the probed chains (a leaf
/// per endpoint and the shared intermediates): 32 bytes and a bucket each,
/// at most about a megabyte.
const REMEMBERED_SIGNATURES: usize = 16_384;

/// Signatures already found valid, by the SHA-256 of what was checked.
#[derive(Debug, Default)]
struct Remembered(Mutex<HashSet<[u8; 32]>>);

impl Remembered {
    fn knows(&self, key: &[u8; 32]) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    fn learn(&self, key: [u8; 32]) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if set.len() >= REMEMBERED_SIGNATURES {
            *set = HashSet::new();
        }
        set.insert(key);
    }
}

/// A signature algorithm that remembers the signatures it found valid.
///
/// Every probe of an endpoint is sent the same chain, and checking its
/// signatures (two ECDSA verifications for a leaf and an intermediate) was
/// most of a probe's CPU (bench/NOTES.md F8). A signature check is a pure
/// function of the algorithm, the key, the signed bytes and the signature,
/// so its success is remembered under the SHA-256 of all four (each
/// length-prefixed): a hit is the same check with the same inputs, already
/// passed. Failures are not remembered. The handshake signature, over a
/// fresh transcript every time, never goes through this: it still proves
/// the server holds the key of the leaf.
#[derive(Debug)]
struct Remembering {
    inner: &'static dyn SignatureVerificationAlgorithm,
    remembered: &'static Remembered,
}

impl Remembering {
    fn key(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            self.inner.public_key_alg_id().as_ref(),
            self.inner.signature_alg_id().as_ref(),
            public_key,
            message,
            signature,
        ] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }
}

impl SignatureVerificationAlgorithm for Remembering {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = self.key(public_key, message, signature);
        if self.remembered.knows(&key) {
            return Ok(());
        }
        self.inner
            .verify_signature(public_key, message, signature)?;
        self.remembered.learn(key);
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// The [`provider`]'s signature algorithms for certificate chains, each
/// remembering the signatures it found valid (see `Remembering`), sharing
/// one memory for the whole process.
pub(crate) fn chain_signature_algorithms() -> &'static [&'static dyn SignatureVerificationAlgorithm]
{
    static REMEMBERED: OnceLock<Remembered> = OnceLock::new();
    static WRAPPED: OnceLock<Box<[Remembering]>> = OnceLock::new();
    static ALGORITHMS: OnceLock<Box<[&'static dyn SignatureVerificationAlgorithm]>> =
        OnceLock::new();
    ALGORITHMS.get_or_init(|| {
        let remembered = REMEMBERED.get_or_init(Remembered::default);
        let wrapped = WRAPPED.get_or_init(|| {
            provider()
                .signature_verification_algorithms
                .all
                .iter()
                .map(|inner| Remembering {
                    inner: *inner,
                    remembered,
                })
                .collect()
        });
        wrapped
            .iter()
            .map(|w| w as &'static dyn SignatureVerificationAlgorithm)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Accepts the signature `ok` only, counting the checks it really made.
    #[derive(Debug)]
    struct Counting(AtomicUsize);

    impl SignatureVerificationAlgorithm for Counting {
        fn verify_signature(&self, _: &[u8], _: &[u8], sig: &[u8]) -> Result<(), InvalidSignature> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if sig == b"ok" {
                Ok(())
            } else {
                Err(InvalidSignature)
            }
        }
        fn public_key_alg_id(&self) -> AlgorithmIdentifier {
            rustls::pki_types::alg_id::ECDSA_P256
        }
        fn signature_alg_id(&self) -> AlgorithmIdentifier {
            rustls::pki_types::alg_id::ECDSA_SHA256
        }
    }

    #[test]
    fn only_a_valid_signature_is_remembered_and_only_for_the_same_inputs() {
        let inner: &'static Counting = Box::leak(Box::new(Counting(AtomicUsize::new(0))));
        let remembered: &'static Remembered = Box::leak(Box::default());
        let alg = Remembering { inner, remembered };
        let checks = || inner.0.load(Ordering::SeqCst);
        assert!(alg.verify_signature(b"key", b"tbs", b"ok").is_ok());
        assert!(alg.verify_signature(b"key", b"tbs", b"ok").is_ok());
        assert_eq!(checks(), 1, "the second check was remembered");
        // Any other input is checked afresh.
        assert!(alg.verify_signature(b"key", b"tbs2", b"ok").is_ok());
        assert!(alg.verify_signature(b"key2", b"tbs", b"ok").is_ok());
        assert_eq!(checks(), 3);
        // Failures are never remembered, and never become successes.
        assert!(alg.verify_signature(b"key", b"tbs", b"bad").is_err());
        assert!(alg.verify_signature(b"key", b"tbs", b"bad").is_err());
        assert_eq!(checks(), 5);
        // Moving bytes between fields is a different check.
        assert!(alg.verify_signature(b"keyt", b"bs", b"ok").is_ok());
        assert_eq!(checks(), 6);
    }

    #[test]
    fn the_memory_is_bounded() {
        let remembered = Remembered::default();
        for i in 0..REMEMBERED_SIGNATURES + 10 {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            remembered.learn(key);
        }
        let len = remembered.0.lock().unwrap().len();
        assert!(len <= REMEMBERED_SIGNATURES, "{len}");
    }
}

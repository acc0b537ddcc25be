//! The recording verifier. Dangerous by design and kept here, private: it
//! accepts every certificate so the handshake completes and we can read
//! expired, self-signed or mis-issued chains — which is the whole point of
//! a certificate exporter. It still runs the real WebPKI verification and
//! records the verdict, and handshake signatures are still checked, so the
//! chain we report is one the server holds the key for.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;

use crate::crypto::HandshakeSignatures;

pub(super) struct Seen {
    pub(super) chain: Vec<Vec<u8>>,
    /// The stapled OCSP response; empty when the server stapled none.
    pub(super) ocsp: Vec<u8>,
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
            .field("ocsp_len", &self.ocsp.len())
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
        let seen = Seen {
            chain,
            ocsp: ocsp_response.to_vec(),
            verdict,
        };
        match self.seen.lock() {
            Ok(mut g) => *g = Some(seen),
            Err(poisoned) => *poisoned.into_inner() = Some(seen),
        }
        Ok(ServerCertVerified::assertion())
    }

    crate::crypto::check_handshake_signatures!(signatures);
}

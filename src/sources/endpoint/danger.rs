//! The recording verifier. Dangerous by design and kept here, private: it
//! accepts every certificate so the handshake completes and we can read
//! expired, self-signed or mis-issued chains — which is the whole point of
//! a certificate exporter. It still runs the real WebPKI verification and
//! records the verdict, and handshake signatures are still checked, so the
//! chain we report is one the server holds the key for.
//!
//! The verification runs once per handshake: the path WebPKI builds is kept
//! for the chain diagnostics, and only a chain that does not verify is put
//! to rustls' own verifier a second time, for its exact error.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::CertificateError;

use super::chain::{find_path, PathFound};
use crate::config::Anchors;
use crate::crypto::HandshakeSignatures;

pub(super) struct Seen {
    pub(super) chain: Vec<Vec<u8>>,
    /// The stapled OCSP response; empty when the server stapled none.
    pub(super) ocsp: Vec<u8>,
    pub(super) verdict: Result<(), rustls::Error>,
    /// The path to a trust anchor the verification found, if any (the
    /// server name is not part of it).
    pub(super) path: Option<PathFound>,
}

#[derive(Debug)]
pub(super) struct Recorder {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    anchors: Arc<Anchors>,
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
        anchors: Arc<Anchors>,
        provider: Arc<CryptoProvider>,
    ) -> Recorder {
        Recorder {
            inner,
            anchors,
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
        let path = find_path(end_entity, intermediates, &self.anchors, now).ok();
        let verdict = match (&path, &self.inner) {
            // The chain verified: what rustls' verifier adds is the name.
            (Some(_), _) => ParsedCertificate::try_from(end_entity)
                .and_then(|leaf| rustls::client::verify_server_name(&leaf, server_name)),
            // It did not: rustls' verifier says why, in its own words.
            (None, Some(v)) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            (None, None) => Err(rustls::Error::InvalidCertificate(
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
            path,
        };
        match self.seen.lock() {
            Ok(mut g) => *g = Some(seen),
            Err(poisoned) => *poisoned.into_inner() = Some(seen),
        }
        Ok(ServerCertVerified::assertion())
    }

    crate::crypto::check_handshake_signatures!(signatures);
}

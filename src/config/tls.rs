//! The TLS material of an endpoint entry — trust roots and client
//! identity — loaded and checked when the configuration is loaded, so a
//! missing CA or a key that does not match its certificate is a
//! configuration error, not a failing probe.

use std::collections::HashMap;
use std::hash::Hasher as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

use crate::{cert, crypto, filesystem};

/// Which of an endpoint's TLS files a [`TlsSetupError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// `ca_file`.
    Ca,
    /// `client_cert`.
    ClientCert,
    /// `client_key`.
    ClientKey,
}

impl TlsFile {
    /// The configuration key.
    pub fn key(self) -> &'static str {
        match self {
            TlsFile::Ca => "ca_file",
            TlsFile::ClientCert => "client_cert",
            TlsFile::ClientKey => "client_key",
        }
    }
}

/// Errors loading an endpoint's `ca_file` / `client_cert` / `client_key`.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file is unreadable or does not hold what it should.
    #[error("{path}: {detail}")]
    File {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: String,
        /// Why.
        detail: String,
    },
    /// Only one of `client_cert` / `client_key` given.
    #[error("client_cert and client_key must be set together")]
    ClientPairIncomplete {
        /// The one that is given.
        given: TlsFile,
    },
    /// The crypto provider rejected the protocol versions (a build problem).
    #[error("TLS provider: {0}")]
    Provider(String),
}

impl TlsSetupError {
    /// The configuration key the error is about (`None`: not a file's).
    pub fn file(&self) -> Option<TlsFile> {
        match self {
            TlsSetupError::File { file, .. } => Some(*file),
            TlsSetupError::ClientPairIncomplete { given } => Some(*given),
            TlsSetupError::Provider(_) => None,
        }
    }
}

/// Trust roots and client identity of one endpoint entry, loaded once.
#[derive(Debug)]
pub struct TlsSettings {
    /// The crypto provider, for handshake-signature checks.
    pub(crate) provider: Arc<CryptoProvider>,
    /// A client config builder with the protocol versions set.
    pub(crate) builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
    /// WebPKI verification against the roots; `None` when there are none.
    pub(crate) verifier: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// The roots themselves, for the chain diagnostics.
    pub(crate) anchors: Arc<Anchors>,
    /// The client certificate and key, when configured.
    pub(crate) client_key: Option<Arc<CertifiedKey>>,
    /// Hash of the files' paths and contents, to tell a reload that
    /// rotated the CA or client certificate from one that did not.
    fingerprint: u64,
}

/// Trust anchors with what a trust anchor does not carry: the NotAfter of
/// the certificate it came from, so the expiry of a verified path can
/// include its root.
#[derive(Debug)]
pub(crate) struct Anchors {
    /// The anchors, as the verifiers take them.
    pub(crate) roots: Arc<RootCertStore>,
    /// NotAfter of each anchor's certificate, keyed by its
    /// SubjectPublicKeyInfo (as the anchor holds it).
    not_after: HashMap<Vec<u8>, i64>,
}

impl Anchors {
    /// The anchors of the certificates that parse; the others are skipped
    /// (as rustls skips them), and counted.
    fn from_certs(certs: Vec<CertificateDer<'static>>) -> (Anchors, usize) {
        let mut roots = RootCertStore::empty();
        let mut not_after = HashMap::new();
        let mut ignored = 0;
        for der in certs {
            let Ok(anchor) = webpki::anchor_from_trusted_cert(&der) else {
                ignored += 1;
                continue;
            };
            let anchor = anchor.to_owned();
            if let Ok(facts) = cert::parse_der(der.as_ref()) {
                not_after.insert(anchor.subject_public_key_info.to_vec(), facts.not_after);
            }
            roots.roots.push(anchor);
        }
        let anchors = Anchors {
            roots: Arc::new(roots),
            not_after,
        };
        (anchors, ignored)
    }

    /// NotAfter of the certificate of the anchor with this
    /// SubjectPublicKeyInfo, when it came from a certificate that parsed.
    pub(crate) fn not_after(&self, spki: &[u8]) -> Option<i64> {
        self.not_after.get(spki).copied()
    }
}

/// The operating system's trust store, read once per process.
fn system_roots() -> Arc<Anchors> {
    static ROOTS: OnceLock<Arc<Anchors>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::warn!(error = %e, "problem reading the system trust store");
            }
            let (anchors, ignored) = Anchors::from_certs(loaded.certs);
            let added = anchors.roots.len();
            if added == 0 {
                tracing::warn!(
                    "no system trust roots found; endpoints without ca_file will report unknown_ca"
                );
            }
            tracing::debug!(added, ignored, "loaded system trust roots");
            Arc::new(anchors)
        })
        .clone()
}

impl TlsSettings {
    /// Loads and checks the files; `None` means system roots / no client
    /// certificate. Blocking (reads the files).
    pub fn load(
        ca_file: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<TlsSettings, TlsSetupError> {
        let provider = crypto::provider();
        // Every file is read before any is parsed, so a missing file is
        // reported before the contents of another.
        let mut files = Files::default();
        let ca = ca_file
            .map(|path| files.read(TlsFile::Ca, path).map(|pem| (path, pem)))
            .transpose()?;
        let client = match (client_cert, client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((
                (cert, files.read(TlsFile::ClientCert, cert)?),
                (key, files.read(TlsFile::ClientKey, key)?),
            )),
            (Some(_), None) => {
                return Err(TlsSetupError::ClientPairIncomplete {
                    given: TlsFile::ClientCert,
                })
            }
            (None, Some(_)) => {
                return Err(TlsSetupError::ClientPairIncomplete {
                    given: TlsFile::ClientKey,
                })
            }
        };
        let anchors = match &ca {
            None => system_roots(),
            Some((path, pem)) => {
                let (anchors, _) = Anchors::from_certs(pem_certs(TlsFile::Ca, path, pem)?);
                if anchors.roots.is_empty() {
                    return Err(file_error(
                        TlsFile::Ca,
                        path,
                        "no usable CA certificate in the file",
                    ));
                }
                Arc::new(anchors)
            }
        };
        let roots = anchors.roots.clone();
        let verifier = if roots.is_empty() {
            None
        } else {
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsSetupError::File {
                    file: TlsFile::Ca,
                    path: ca_file.map(|p| p.display().to_string()).unwrap_or_default(),
                    detail: e.to_string(),
                })?,
            )
        };
        let client_key = match client {
            None => None,
            Some(((cert_path, cert_pem), (key_path, key_pem))) => {
                let chain = pem_certs(TlsFile::ClientCert, cert_path, &cert_pem)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    file_error(
                        TlsFile::ClientKey,
                        key_path,
                        format!("no usable private key: {e}"),
                    )
                })?;
                let certified = CertifiedKey::from_der(chain, key, &provider)
                    .map_err(|e| file_error(TlsFile::ClientKey, key_path, e.to_string()))?;
                Some(Arc::new(certified))
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Provider(e.to_string()))?;
        Ok(TlsSettings {
            provider,
            builder,
            verifier,
            anchors,
            client_key,
            fingerprint: files.fingerprint.finish(),
        })
    }

    /// See the field: identity of the loaded files.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// CA bundles and client certificates are kilobytes; a megabyte is a
/// mistake, not a bundle.
const MAX_PEM_FILE: u64 = 1024 * 1024;

fn file_error(file: TlsFile, path: &Path, detail: impl Into<String>) -> TlsSetupError {
    TlsSetupError::File {
        file,
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Reads the files once each, hashing what was read, so the fingerprint
/// describes exactly the material loaded.
#[derive(Default)]
struct Files {
    fingerprint: std::collections::hash_map::DefaultHasher,
}

impl Files {
    fn read(&mut self, file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsSetupError> {
        use std::hash::Hash;
        let bytes = filesystem::read_regular(path, MAX_PEM_FILE)
            .map_err(|e| file_error(file, path, e.to_string()))?;
        path.hash(&mut self.fingerprint);
        bytes.hash(&mut self.fingerprint);
        Ok(bytes)
    }
}

fn pem_certs(
    file: TlsFile,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    crypto::pem_certs(pem).map_err(|e| file_error(file, path, e))
}

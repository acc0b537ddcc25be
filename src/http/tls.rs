//! certinel's own TLS: `tls_server_config` turned into a rustls server
//! config — certificate and key, `client_auth_type` with Go's names,
//! `min_version`/`max_version` — and the quarantined verifier for the two
//! insecure client-certificate modes exporter-toolkit offers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::web_config::{read_file, resolve, RawTls, WebConfigError};
use crate::crypto::{self, HandshakeSignatures};
use crate::filesystem::FileIdentity;

/// `tls_server_config.client_auth_type`, named as in Go's `crypto/tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &'static str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
                                 VerifyClientCertIfGiven, RequireAndVerifyClientCert";

    fn parse(value: Option<&str>) -> Result<ClientAuth, WebConfigError> {
        Ok(match value.unwrap_or("") {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is exporter-toolkit's old spelling.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(WebConfigError::invalid(
                    "tls_server_config.client_auth_type",
                    format!("unknown value {other:?}; expected one of {}", Self::NAMES),
                ))
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The `TLS12`/`TLS13` range between `min_version` and `max_version`.
fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    fn rank(key: &str, value: &str) -> Result<u8, WebConfigError> {
        match value {
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            "TLS10" | "TLS11" => Err(WebConfigError::invalid(
                key,
                format!("{value} is not supported; certinel speaks TLS12 and TLS13"),
            )),
            other => Err(WebConfigError::invalid(
                key,
                format!("unknown TLS version {other:?}; expected TLS12 or TLS13"),
            )),
        }
    }
    let min = rank("tls_server_config.min_version", min.unwrap_or("TLS12"))?;
    let max = rank("tls_server_config.max_version", max.unwrap_or("TLS13"))?;
    if min > max {
        return Err(WebConfigError::invalid(
            "tls_server_config.max_version",
            format!("TLS{max} is below min_version TLS{min}"),
        ));
    }
    Ok(
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, version)| version)
            .collect(),
    )
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let pem = read_file(key, path)?;
    crypto::pem_certs(&pem)
        .map_err(|e| WebConfigError::invalid(key, format!("{}: {e}", path.display())))
}

/// Builds the server config `raw` describes, reading its files (relative
/// to `dir`) and recording each one's identity in `stamps` before reading
/// it, so that a change after the stamp is seen at the next check.
pub(super) fn server_config(
    raw: RawTls,
    dir: &Path,
    stamps: &mut Vec<(PathBuf, Option<FileIdentity>)>,
) -> Result<ServerConfig, WebConfigError> {
    const CERT: &str = "tls_server_config.cert_file";
    const KEY: &str = "tls_server_config.key_file";
    const CA: &str = "tls_server_config.client_ca_file";
    let given = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let cert_file = resolve(
        dir,
        given(raw.cert_file).ok_or_else(|| WebConfigError::invalid(CERT, "missing"))?,
    );
    let key_file = resolve(
        dir,
        given(raw.key_file).ok_or_else(|| WebConfigError::invalid(KEY, "missing"))?,
    );
    let client_ca_file = given(raw.client_ca_file).map(|p| resolve(dir, p));
    let auth = ClientAuth::parse(raw.client_auth_type.as_deref())?;
    let versions = protocol_versions(raw.min_version.as_deref(), raw.max_version.as_deref())?;
    match (auth, &client_ca_file) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(WebConfigError::invalid(
                CA,
                "set, but client_auth_type is NoClientCert: set client_auth_type to \
                 RequireAndVerifyClientCert to verify client certificates",
            ))
        }
        (auth, None) if auth.verifies() => {
            return Err(WebConfigError::invalid(
                CA,
                format!("missing; client_auth_type {auth} verifies client certificates against it"),
            ))
        }
        _ => {}
    }

    for path in [Some(&cert_file), Some(&key_file), client_ca_file.as_ref()]
        .into_iter()
        .flatten()
    {
        stamps.push((path.clone(), FileIdentity::stat(path)));
    }
    let chain = read_certs(CERT, &cert_file)?;
    let key = PrivateKeyDer::from_pem_slice(&read_file(KEY, &key_file)?).map_err(|e| {
        WebConfigError::invalid(
            KEY,
            format!("{}: no usable private key: {e}", key_file.display()),
        )
    })?;
    let roots = match &client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(CA, path)? {
                roots
                    .add(cert)
                    .map_err(|e| WebConfigError::invalid(CA, format!("{}: {e}", path.display())))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };

    let provider = crypto::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| WebConfigError::invalid("tls_server_config.min_version", e.to_string()))?;
    let builder = match (auth, roots) {
        (ClientAuth::NoClientCert, _) => builder.with_no_client_auth(),
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, roots) => builder
            .with_client_cert_verifier(Arc::new(danger::AnyClientCert::new(
                auth == ClientAuth::RequireAnyClientCert,
                roots.map(|r| r.subjects()).unwrap_or_default(),
                HandshakeSignatures::new(&provider),
            ))),
        (_, Some(roots)) => {
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if auth == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| WebConfigError::invalid(CA, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (_, None) => return Err(WebConfigError::invalid(CA, "missing")),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => WebConfigError::invalid(
            KEY,
            format!(
                "{} is not the key of the certificate in {}",
                key_file.display(),
                cert_file.display()
            ),
        ),
        other => WebConfigError::invalid(KEY, format!("{}: {other}", key_file.display())),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Dangerous: accepting client certificates nobody vouches for.
mod danger {

    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
    use rustls::DistinguishedName;

    use crate::crypto::HandshakeSignatures;

    /// Go's `RequestClientCert` and `RequireAnyClientCert`, which
    /// exporter-toolkit offers and documents as insecure: any client
    /// certificate is accepted without checking who issued it. The
    /// handshake signature is still checked, so the client does hold the
    /// certificate's key.
    #[derive(Debug)]
    pub(super) struct AnyClientCert {
        mandatory: bool,
        hints: Vec<DistinguishedName>,
        signatures: HandshakeSignatures,
    }

    impl AnyClientCert {
        pub(super) fn new(
            mandatory: bool,
            hints: Vec<DistinguishedName>,
            signatures: HandshakeSignatures,
        ) -> AnyClientCert {
            AnyClientCert {
                mandatory,
                hints,
                signatures,
            }
        }
    }

    impl ClientCertVerifier for AnyClientCert {
        fn client_auth_mandatory(&self) -> bool {
            self.mandatory
        }

        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &self.hints
        }

        fn verify_client_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            Ok(ClientCertVerified::assertion())
        }

        crate::crypto::check_handshake_signatures!(signatures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_span_min_to_max() {
        assert_eq!(protocol_versions(None, None).unwrap().len(), 2);
        let only13 = protocol_versions(Some("TLS13"), None).unwrap();
        assert_eq!(only13, vec![&rustls::version::TLS13]);
        let only12 = protocol_versions(None, Some("TLS12")).unwrap();
        assert_eq!(only12, vec![&rustls::version::TLS12]);
    }
}

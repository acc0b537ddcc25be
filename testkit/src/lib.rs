//! The one certificate factory of the certinel repository: certificates
//! minted with rcgen (ECDSA P-256, its default key) with the names, validity,
//! serial and purpose the caller chooses, so fixtures never rot.
//!
//! Used by the integration tests (`tests/common/pki.rs` adds their presets
//! and panics on error, as tests do), the criterion benches (`benches/`) and
//! the benchmark tools (`bench/tools`), which report errors instead: hence
//! every function here returns a [`Result`].

use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

/// Errors of rcgen and of out-of-range times, boxed: callers only report them.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// Unix seconds now (0 if the clock is before 1970).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a certificate may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A certificate authority: keyCertSign and cRLSign, no path length limit.
    Ca,
    /// A TLS server: extendedKeyUsage serverAuth.
    Server,
    /// Either end of TLS: serverAuth and clientAuth.
    ServerAndClient,
    /// A TLS client only (clientAuth), which a TLS server must refuse to present.
    Client,
    /// No key usage extension at all.
    Any,
}

/// Everything a certificate says that a caller chooses.
#[derive(Clone, Copy, Debug)]
pub struct Spec<'a> {
    /// Subject common name.
    pub cn: &'a str,
    /// Subject organization, if any.
    pub o: Option<&'a str>,
    /// Subject organizational unit, if any.
    pub ou: Option<&'a str>,
    /// Subject alternative names: IP addresses, or DNS names otherwise.
    pub sans: &'a [&'a str],
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Serial number as big-endian bytes; `None` lets rcgen pick a random one.
    pub serial: Option<&'a [u8]>,
    /// Key usages.
    pub purpose: Purpose,
}

impl<'a> Spec<'a> {
    /// `CN=cn` valid from `not_before` to `not_after`, nothing else set.
    pub fn new(cn: &'a str, not_before: i64, not_after: i64, purpose: Purpose) -> Spec<'a> {
        Spec {
            cn,
            o: None,
            ou: None,
            sans: &[],
            not_before,
            not_after,
            serial: None,
            purpose,
        }
    }

    fn params(&self) -> Result<CertificateParams, Error> {
        let sans: Vec<String> = self.sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans)?;
        let dn = &mut params.distinguished_name;
        *dn = rcgen::DistinguishedName::new();
        dn.push(DnType::CommonName, self.cn);
        if let Some(o) = self.o {
            dn.push(DnType::OrganizationName, o);
        }
        if let Some(ou) = self.ou {
            dn.push(DnType::OrganizationalUnitName, ou);
        }
        params.not_before = OffsetDateTime::from_unix_timestamp(self.not_before)?;
        params.not_after = OffsetDateTime::from_unix_timestamp(self.not_after)?;
        params.serial_number = self.serial.map(SerialNumber::from_slice);
        match self.purpose {
            Purpose::Ca => {
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            }
            Purpose::Server => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Purpose::ServerAndClient => {
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
            }
            Purpose::Client => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            Purpose::Any => {}
        }
        Ok(params)
    }
}

/// A certificate with its private key, and the validity it was given.
#[derive(Clone, Debug)]
pub struct Minted {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
}

impl Minted {
    fn new(cert: &rcgen::Certificate, key: &KeyPair, spec: &Spec<'_>) -> Minted {
        Minted {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            not_before: spec.not_before,
            not_after: spec.not_after,
        }
    }
}

/// A certificate authority that issues certificates.
pub struct Ca {
    /// The CA's own certificate.
    pub cert: Minted,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A self-signed root. `spec.purpose` is normally [`Purpose::Ca`].
    pub fn root(spec: &Spec<'_>) -> Result<Ca, Error> {
        let params = spec.params()?;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert: Minted::new(&cert, &key, spec),
            issuer: Issuer::new(params, key),
        })
    }

    /// An intermediate CA this one signs.
    pub fn intermediate(&self, spec: &Spec<'_>) -> Result<Ca, Error> {
        let params = spec.params()?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Ca {
            cert: Minted::new(&cert, &key, spec),
            issuer: Issuer::new(params, key),
        })
    }

    /// A certificate this CA signs.
    pub fn issue(&self, spec: &Spec<'_>) -> Result<Minted, Error> {
        let key = KeyPair::generate()?;
        let cert = spec.params()?.signed_by(&key, &self.issuer)?;
        Ok(Minted::new(&cert, &key, spec))
    }
}

/// A self-signed certificate that is not a CA.
pub fn self_signed(spec: &Spec<'_>) -> Result<Minted, Error> {
    let key = KeyPair::generate()?;
    let cert = spec.params()?.self_signed(&key)?;
    Ok(Minted::new(&cert, &key, spec))
}

//! Certificates for the benchmark, minted with rcgen: a root CA, an
//! intermediate CA it signs, and leaves the intermediate signs (ECDSA P-256,
//! rcgen's default). Shared by `bench_tls_farm` and `bench_tool`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Error type of the benchmark helpers.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A CA: its PEM, and what it takes to sign with it.
pub(crate) struct Ca {
    pub(crate) pem: String,
    params: CertificateParams,
    key: KeyPair,
}

/// A leaf: certificate and key, PEM.
pub(crate) struct Leaf {
    pub(crate) cert_pem: String,
    // The farm serves it; bench_tool writes certificates only.
    #[allow(dead_code)]
    pub(crate) key_pem: String,
}

/// Subject `CN=cn, O=certinel bench`, valid from `age_days` ago for
/// `days` days from now.
fn named_params(cn: &str, serial: u64, age_days: i64, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "certinel bench");
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(age_days);
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(SerialNumber::from(serial));
    params
}

fn ca_params(cn: &str, serial: u64) -> CertificateParams {
    let mut params = named_params(cn, serial, 30, 3650);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Ca {
    /// A self-signed root.
    pub(crate) fn root(cn: &str, serial: u64) -> Result<Ca, BoxError> {
        let params = ca_params(cn, serial);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            pem: cert.pem(),
            params,
            key,
        })
    }

    /// An intermediate CA signed by `self`.
    pub(crate) fn intermediate(&self, cn: &str, serial: u64) -> Result<Ca, BoxError> {
        let params = ca_params(cn, serial);
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Ca {
            pem: cert.pem(),
            params,
            key,
        })
    }

    /// A server leaf for `sans` (IP addresses or DNS names), valid from a
    /// day ago for `days` days.
    pub(crate) fn leaf(
        &self,
        cn: &str,
        sans: &[String],
        serial: u64,
        days: i64,
    ) -> Result<Leaf, BoxError> {
        let mut params = named_params(cn, serial, 1, days);
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(s.as_str().try_into()?)),
            })
            .collect::<Result<Vec<_>, rcgen::Error>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

//! Certificate revocation lists (RFC 5280 §5) → the facts certinel
//! exports: when the list was issued, when the next one is due, who
//! issued it. No I/O.
//!
//! A CRL has no expiry of its own, but every relying party that checks it
//! (nginx's `ssl_crl`, OpenSSL's `X509_V_FLAG_CRL_CHECK`) refuses *every*
//! client once `nextUpdate` has passed: a stale CRL is an outage, which
//! is why its `nextUpdate` is watched like a certificate's `NotAfter`.

use std::fmt;

use x509_parser::prelude::{CertificateRevocationList, FromDer};

use super::{name_fields, DecodeError, NameFields, Sha256};

/// The facts about one CRL.
#[derive(Clone, PartialEq, Eq)]
pub struct CrlFacts {
    /// SHA-256 of the DER: tells apart CRLs whose labels are equal.
    pub sha256: Sha256,
    /// `thisUpdate`, Unix seconds: when the list was issued.
    pub this_update: i64,
    /// `nextUpdate`, Unix seconds: when the next list is due. Optional in
    /// the ASN.1 (RFC 5280 makes it mandatory for conforming CAs); a list
    /// without it never goes stale.
    pub next_update: Option<i64>,
    /// The `cRLNumber` extension in decimal, `""` when absent.
    pub crl_number: Box<str>,
    /// The issuer's names (control characters escaped, as for
    /// certificates).
    pub issuer: NameFields,
    /// How many certificates the list revokes.
    pub revoked: usize,
}

impl fmt::Debug for CrlFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrlFacts")
            .field("this_update", &self.this_update)
            .field("next_update", &self.next_update)
            .field("crl_number", &self.crl_number)
            .field("issuer", &self.issuer)
            .field("revoked", &self.revoked)
            .finish()
    }
}

impl CrlFacts {
    /// Whether the list is stale at `now_s` (Unix seconds): its
    /// `nextUpdate` has passed. Same comparison as `x509_cert_expired`.
    pub fn is_stale(&self, now_s: i64) -> bool {
        self.next_update.is_some_and(|next| now_s > next)
    }

    /// The `cRLNumber` as a gauge value: 0 when absent, as
    /// x509-certificate-exporter writes it (numbers past 2^53 lose
    /// precision; the decimal text is exact).
    pub fn number_value(&self) -> f64 {
        self.crl_number.parse().unwrap_or(0.0)
    }
}

/// Parses one DER-encoded CRL.
pub fn parse_crl(der: &[u8]) -> Result<CrlFacts, DecodeError> {
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| DecodeError::DecodeFailed(format!("not a valid CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(DecodeError::DecodeFailed(format!(
            "{} trailing bytes after the CRL",
            rest.len()
        )));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut sha256 = [0; 32];
    sha256.copy_from_slice(digest.as_ref());
    Ok(CrlFacts {
        sha256,
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        crl_number: crl
            .crl_number()
            .map(|n| n.to_string().into())
            .unwrap_or_default(),
        issuer: name_fields(crl.issuer()),
        revoked: crl.iter_revoked_certificates().count(),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A CRL signed by a fresh CA, with the given update times.
    pub(crate) fn crl_der(this_update: i64, next_update: i64, number: u64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "CRL Test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let issuer = rcgen::Issuer::new(ca, key);
        let time = |s| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        let params = rcgen::CertificateRevocationListParams {
            this_update: time(this_update),
            next_update: time(next_update),
            crl_number: rcgen::SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(7u64),
                revocation_time: time(this_update),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&issuer).unwrap().der().to_vec()
    }

    #[test]
    fn a_crl_yields_its_times_number_and_issuer() {
        let der = crl_der(1_700_000_000, 1_700_604_800, 42);
        let crl = parse_crl(&der).unwrap();
        assert_eq!(crl.this_update, 1_700_000_000);
        assert_eq!(crl.next_update, Some(1_700_604_800));
        assert_eq!(&*crl.crl_number, "42");
        assert_eq!(crl.number_value(), 42.0);
        assert_eq!(&*crl.issuer.cn, "CRL Test CA");
        assert_eq!(crl.revoked, 1);
        assert!(!crl.is_stale(1_700_604_800));
        assert!(crl.is_stale(1_700_604_801));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_decode_failed() {
        assert!(matches!(
            parse_crl(b"\x30\x03\x02\x01\x05"),
            Err(DecodeError::DecodeFailed(_))
        ));
        let mut der = crl_der(1_700_000_000, 1_700_604_800, 1);
        der.push(0);
        assert!(matches!(parse_crl(&der), Err(DecodeError::DecodeFailed(_))));
    }
}

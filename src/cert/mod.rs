//! X.509 → the facts certinel exports. No I/O.
//!
//! Both sources (files and TLS endpoints) hand raw bytes to this module and
//! get back [`CertFacts`], so a certificate is described the same way
//! wherever it was seen: [`parse_der`] for one certificate,
//! [`decode_bundle`] for a PEM bundle or DER file, [`decode_file`] for any
//! file format certinel reads (keystores: `pkcs12`, `jks`; kubeconfigs:
//! `kubeconfig`; CRLs, as [`CrlFacts`], beside certificates: `crl`).
//!
//! Facts are shared, not copied (`intern`): the same intermediate served
//! by a thousand endpoints, or the same CA in many bundles, is parsed once
//! and stored once.

mod crl;
mod format;
#[cfg(test)]
mod format_properties;
mod intern;
mod jks;
pub mod kubeconfig;
mod pem;
mod pkcs12;
#[cfg(test)]
mod properties;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::text::printable;

pub use crl::{parse_crl, CrlFacts};
pub use format::{decode_file, Decoded, Format};
pub use pem::{decode_bundle, Bundle};

/// The SHA-256 of a certificate's DER: its identity.
pub type Sha256 = [u8; 32];

/// The facts about one certificate that end up as labels and values.
///
/// Text fields are `Box<str>` rather than `String`: they never change after
/// parsing, and a `Box<str>` is 8 bytes smaller, sized exactly, and does
/// not allocate when empty (as most name attributes are). Name fields hold
/// no control characters: those are escaped as `\xNN`.
#[derive(Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// SHA-256 of the DER: tells apart certificates whose labels are equal
    /// (the contract's `discriminator`).
    pub sha256: Sha256,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// Serial number in decimal, as x509-certificate-exporter writes it.
    pub serial_number: Box<str>,
    /// Selected subject attributes.
    pub subject: NameFields,
    /// Selected issuer attributes, shared by every certificate that names
    /// the same issuer.
    pub issuer: Arc<NameFields>,
}

impl fmt::Debug for CertFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertFacts")
            .field("sha256", &self.fingerprint_prefix())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("serial_number", &self.serial_number)
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl CertFacts {
    /// The first 8 hex digits of [`sha256`](Self::sha256).
    pub fn fingerprint_prefix(&self) -> String {
        self.sha256[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The distinguished-name attributes certinel can export as labels.
///
/// Multi-valued attributes are joined with `,`; a missing one is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NameFields {
    /// commonName (the last one, as Go's `pkix.Name` picks it).
    pub cn: Box<str>,
    /// organizationName.
    pub o: Box<str>,
    /// organizationalUnitName.
    pub ou: Box<str>,
    /// countryName.
    pub c: Box<str>,
    /// stateOrProvinceName.
    pub st: Box<str>,
    /// localityName.
    pub l: Box<str>,
}

/// Why bytes could not be turned into certificates.
///
/// The variants map one-to-one onto the file `reason` values of the metric
/// contract, which is why they are a closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// PEM armour present but broken (missing END line, bad base64, …).
    #[error("broken PEM armour: {0}")]
    BadPem(String),
    /// A certificate block (or DER file) that is not a valid certificate;
    /// a keystore, kubeconfig or CRL that does not decode. The text says
    /// which.
    #[error("{0}")]
    DecodeFailed(String),
    /// Readable, but holds no certificate (a key-only file, say).
    #[error("no certificate found")]
    NoCertificateFound,
    /// A keystore that does not open with the configured password.
    #[error("wrong password: {0}")]
    BadPassphrase(String),
    /// A keystore that needs a password, and none is configured (or the
    /// configured one cannot be read).
    #[error("password required: {0}")]
    PassphraseRequired(String),
}

/// Parses one DER-encoded certificate.
///
/// Identical bytes yield the same `Arc` for as long as any holder keeps it:
/// a certificate seen before is looked up, not parsed again.
pub fn parse_der(der: &[u8]) -> Result<Arc<CertFacts>, DecodeError> {
    intern::parse(der)
}

fn parse_uncached(der: &[u8], sha256: Sha256) -> Result<CertFacts, DecodeError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| DecodeError::DecodeFailed(format!("not a valid X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(DecodeError::DecodeFailed(format!(
            "not a valid X.509 certificate: {} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(facts(&cert, sha256))
}

fn facts(cert: &X509Certificate<'_>, sha256: Sha256) -> CertFacts {
    let validity = cert.validity();
    CertFacts {
        sha256,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        serial_number: cert.tbs_certificate.serial.to_string().into(),
        subject: name_fields(cert.subject()),
        issuer: intern::issuer(name_fields(cert.issuer())),
    }
}

pub(super) fn name_fields(name: &X509Name<'_>) -> NameFields {
    NameFields {
        cn: name
            .iter_common_name()
            .last()
            .map(|attr| attr_string(attr).into())
            .unwrap_or_default(),
        o: join(name.iter_organization()),
        ou: join(name.iter_organizational_unit()),
        c: join(name.iter_country()),
        st: join(name.iter_state_or_province()),
        l: join(name.iter_locality()),
    }
}

fn join<'a, 'b: 'a>(values: impl Iterator<Item = &'a AttributeTypeAndValue<'b>>) -> Box<str> {
    let mut values = values.map(attr_string);
    // Start from the first value so the common single-valued attribute is
    // already exactly sized and boxing it does not reallocate.
    let Some(mut out) = values.next() else {
        return Box::default();
    };
    for v in values {
        out.push(',');
        out.push_str(&v);
    }
    out.into_boxed_str()
}

/// Decodes any of the string types found in real certificates, with
/// control characters escaped (see [`printable`]). Unknown or
/// malformed encodings degrade to lossy text rather than an error: a label
/// value is never worth dropping a certificate for.
fn attr_string(attr: &AttributeTypeAndValue<'_>) -> String {
    let text = decode_attr(attr);
    match printable(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

fn decode_attr(attr: &AttributeTypeAndValue<'_>) -> String {
    if let Ok(s) = attr.as_str() {
        return s.to_owned();
    }
    let data = attr.as_slice();
    match attr.attr_value().tag() {
        Tag::BmpString => {
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        // T61/Teletex and friends: in practice Latin-1.
        _ => data.iter().map(|&b| char::from(b)).collect(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A self-signed certificate named `cn` and nothing else.
    pub(in crate::cert) fn named(cn: &str) -> rcgen::Certificate {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    fn cert(cn: &str, not_after: (i32, u8, u8)) -> rcgen::Certificate {
        let mut params = rcgen::CertificateParams::new(vec!["example.test".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params.not_before = rcgen::date_time_ymd(2024, 1, 2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x01, 0x00]));
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    fn cert_der(cn: &str, not_after: (i32, u8, u8)) -> Vec<u8> {
        cert(cn, not_after).der().to_vec()
    }

    fn pem_of(cn: &str, not_after: (i32, u8, u8)) -> String {
        cert(cn, not_after).pem()
    }

    #[test]
    fn der_facts_are_exact_to_the_second() {
        let facts = parse_der(&cert_der("svc", (2030, 6, 1))).unwrap();
        assert_eq!(facts.not_after, 1_906_502_400); // 2030-06-01T00:00:00Z
        assert_eq!(facts.not_before, 1_704_153_600); // 2024-01-02T00:00:00Z
        assert_eq!(&*facts.serial_number, "256");
        assert_eq!(&*facts.subject.cn, "svc");
        assert_eq!(&*facts.subject.o, "Acme");
        assert_eq!(&*facts.subject.ou, "");
        assert_eq!(&*facts.issuer.cn, "svc");
    }

    #[test]
    fn pem_bundle_keeps_file_order() {
        let text = format!(
            "{}{}",
            pem_of("first", (2030, 1, 1)),
            pem_of("second", (2031, 1, 1))
        );
        let bundle = decode_bundle(text.as_bytes());
        assert_eq!(bundle.error, None);
        let cns: Vec<_> = bundle.certs.iter().map(|c| &*c.subject.cn).collect();
        assert_eq!(cns, ["first", "second"]);
    }

    #[test]
    fn der_file_is_one_certificate() {
        let bundle = decode_bundle(&cert_der("raw", (2030, 1, 1)));
        assert_eq!(bundle.certs.len(), 1);
        assert_eq!(bundle.error, None);
    }

    #[test]
    fn key_only_pem_has_no_certificate() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let bundle = decode_bundle(key.as_bytes());
        assert!(bundle.certs.is_empty());
        assert_eq!(bundle.error, Some(DecodeError::NoCertificateFound));
    }

    #[test]
    fn truncated_pem_is_bad_pem_but_keeps_earlier_certs() {
        let good = pem_of("good", (2030, 1, 1));
        let cut = pem_of("cut", (2030, 1, 1));
        let text = format!("{good}{}", &cut[..cut.len() / 2]);
        let bundle = decode_bundle(text.as_bytes());
        assert_eq!(bundle.certs.len(), 1);
        assert!(matches!(bundle.error, Some(DecodeError::BadPem(_))));
    }

    #[test]
    fn certificate_block_with_garbage_inside_is_decode_failed() {
        let text = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let bundle = decode_bundle(text.as_bytes());
        assert!(matches!(bundle.error, Some(DecodeError::DecodeFailed(_))));
    }

    #[test]
    fn plain_text_is_no_certificate_and_random_der_is_decode_failed() {
        assert_eq!(
            decode_bundle(b"hello world\n").error,
            Some(DecodeError::NoCertificateFound)
        );
        assert!(matches!(
            decode_bundle(&[0x30, 0x03, 0x02, 0x01, 0x05]).error,
            Some(DecodeError::DecodeFailed(_))
        ));
        assert_eq!(
            decode_bundle(b"").error,
            Some(DecodeError::NoCertificateFound)
        );
    }

    #[test]
    fn identical_certificates_share_one_facts() {
        let c = cert("shared", (2030, 1, 1));
        let first = parse_der(c.der()).unwrap();
        assert!(Arc::ptr_eq(&first, &parse_der(c.der()).unwrap()));
        let bundle = decode_bundle(format!("{}{}", c.pem(), c.pem()).as_bytes());
        assert_eq!(bundle.error, None);
        assert_eq!(bundle.certs.len(), 2);
        assert!(bundle.certs.iter().all(|f| Arc::ptr_eq(f, &first)));
        let der_file = decode_bundle(c.der());
        assert!(Arc::ptr_eq(&der_file.certs[0], &first));
    }

    #[test]
    fn a_bad_block_between_good_ones_hides_neither() {
        let first = pem_of("first", (2030, 1, 1));
        let last = pem_of("last", (2031, 1, 1));
        let bad = "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n";
        let bundle = decode_bundle(format!("{first}{bad}{last}").as_bytes());
        let cns: Vec<_> = bundle.certs.iter().map(|c| &*c.subject.cn).collect();
        assert_eq!(cns, ["first", "last"]);
        let Some(DecodeError::BadPem(detail)) = &bundle.error else {
            panic!("{:?}", bundle.error)
        };
        assert!(detail.contains("invalid base64"), "{detail}");
    }

    #[test]
    fn a_begin_without_end_does_not_swallow_the_next_certificate() {
        let first = pem_of("first", (2030, 1, 1));
        let last = pem_of("last", (2031, 1, 1));
        let open = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        let bundle = decode_bundle(format!("{first}{open}{last}").as_bytes());
        let cns: Vec<_> = bundle.certs.iter().map(|c| &*c.subject.cn).collect();
        assert_eq!(cns, ["first", "last"]);
        let Some(DecodeError::BadPem(detail)) = &bundle.error else {
            panic!("{:?}", bundle.error)
        };
        assert!(detail.contains("no END line"), "{detail}");
    }

    #[test]
    fn a_byte_order_mark_before_begin_is_bad_pem_and_hides_nothing() {
        // OpenSSL, Go and rustls all fail on this file: the service will
        // not load it, but its certificate's expiry is still worth seeing.
        let text = format!("\u{feff}{}", pem_of("bom", (2030, 1, 1)));
        let bundle = decode_bundle(text.as_bytes());
        let cns: Vec<_> = bundle.certs.iter().map(|c| &*c.subject.cn).collect();
        assert_eq!(cns, ["bom"]);
        let Some(DecodeError::BadPem(detail)) = &bundle.error else {
            panic!("{:?}", bundle.error)
        };
        assert!(detail.contains("byte order mark"), "{detail}");
        // Before a comment line it hides nothing: no problem then.
        let text = format!("\u{feff}# server\n{}", pem_of("bom", (2030, 1, 1)));
        assert_eq!(decode_bundle(text.as_bytes()).error, None);
        // And a key-only file stays a file without a certificate.
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let text = format!("\u{feff}{key}");
        assert_eq!(
            decode_bundle(text.as_bytes()).error,
            Some(DecodeError::NoCertificateFound)
        );
    }

    #[test]
    fn a_trusted_certificate_block_yields_its_certificate() {
        use base64::Engine as _;
        // `openssl x509 -trustout`: the certificate, then its trust
        // settings (a SEQUENCE; here trusted for serverAuth).
        let c = cert("trusted", (2030, 1, 1));
        let aux = [
            0x30, 0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
        ];
        let der = [c.der().as_ref(), &aux].concat();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let text = format!(
            "-----BEGIN TRUSTED CERTIFICATE-----\n{b64}\n-----END TRUSTED CERTIFICATE-----\n"
        );
        let bundle = decode_bundle(text.as_bytes());
        assert_eq!(bundle.error, None);
        assert_eq!(bundle.certs.len(), 1);
        assert!(Arc::ptr_eq(&bundle.certs[0], &parse_der(c.der()).unwrap()));
        // Garbage in such a block is still garbage.
        let text =
            "-----BEGIN TRUSTED CERTIFICATE-----\naGVsbG8=\n-----END TRUSTED CERTIFICATE-----\n";
        assert!(matches!(
            decode_bundle(text.as_bytes()).error,
            Some(DecodeError::DecodeFailed(_))
        ));
    }

    #[test]
    fn control_characters_in_names_are_escaped() {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "evil\u{1b}[2J\r\0name");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let facts = parse_der(&der).unwrap();
        assert_eq!(&*facts.subject.cn, "evil\\x1b[2J\\x0d\\x00name");
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_der() {
        let der = cert_der("fp", (2030, 1, 1));
        let facts = parse_der(&der).unwrap();
        let sha = ring::digest::digest(&ring::digest::SHA256, &der);
        assert_eq!(&facts.sha256[..], sha.as_ref());
        assert_eq!(facts.fingerprint_prefix().len(), 8);
    }
}

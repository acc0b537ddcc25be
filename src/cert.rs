//! X.509 → the facts certinel exports. No I/O.
//!
//! Both sources (files and TLS endpoints) hand raw bytes to this module and
//! get back [`CertFacts`], so a certificate is described the same way
//! wherever it was seen.
//!
//! Facts are shared, not copied: the same intermediate served by a thousand
//! endpoints, or the same CA in many bundles, is parsed once and stored
//! once. A process-wide table maps the SHA-256 of each DER to the facts
//! handed out for it, holding them weakly so that the facts of a
//! certificate nobody tracks any more are freed.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

use ring::digest::{self, SHA256, SHA256_OUTPUT_LEN};
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// The facts about one certificate that end up as labels and values.
///
/// Text fields are `Box<str>` rather than `String`: they never change after
/// parsing, and a `Box<str>` is 8 bytes smaller, sized exactly, and does
/// not allocate when empty (as most name attributes are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// Serial number in decimal, as x509-certificate-exporter writes it.
    pub serial_number: Box<str>,
    /// Selected subject attributes.
    pub subject: NameFields,
    /// Selected issuer attributes.
    pub issuer: NameFields,
}

/// The distinguished-name attributes certinel can export as labels.
///
/// Multi-valued attributes are joined with `,`; a missing one is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// A certificate block (or DER file) that is not a valid certificate.
    #[error("not a valid X.509 certificate: {0}")]
    DecodeFailed(String),
    /// Readable, but holds no certificate (a key-only file, say).
    #[error("no certificate found")]
    NoCertificateFound,
}

/// Parses one DER-encoded certificate.
///
/// Identical bytes yield the same `Arc` for as long as any holder keeps it:
/// a certificate seen before is looked up, not parsed again.
pub fn parse_der(der: &[u8]) -> Result<Arc<CertFacts>, DecodeError> {
    INTERNED.parse(der)
}

fn parse_uncached(der: &[u8]) -> Result<CertFacts, DecodeError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| DecodeError::DecodeFailed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::DecodeFailed(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(facts(&cert))
}

/// What a bundle held: every certificate that decoded, in order, and the
/// first problem met, if any.
///
/// A bundle with one corrupt block still reports its good certificates, so
/// a single bad entry never hides the expiry of the others; the error is
/// reported beside them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    /// Certificates in file order (`chain_index` = position in this vector).
    pub certs: Vec<Arc<CertFacts>>,
    /// The first decoding problem, if any.
    pub error: Option<DecodeError>,
}

/// Decodes a PEM bundle, or a single DER certificate when there is no PEM
/// armour at all.
pub fn decode_bundle(bytes: &[u8]) -> Bundle {
    if !contains(bytes, b"-----BEGIN ") {
        return decode_der_file(bytes);
    }
    let mut bundle = Bundle::default();
    let mut saw_cert_block = false;
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        match section {
            Ok((SectionKind::Certificate, der)) => {
                saw_cert_block = true;
                match parse_der(&der) {
                    Ok(facts) => bundle.certs.push(facts),
                    Err(e) => {
                        bundle.error.get_or_insert(e);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                // The reader cannot resynchronise after broken armour, so stop
                // here and keep what came before.
                bundle
                    .error
                    .get_or_insert(DecodeError::BadPem(pem_error(&e)));
                break;
            }
        }
    }
    if !saw_cert_block && bundle.error.is_none() {
        bundle.error = Some(DecodeError::NoCertificateFound);
    }
    bundle
}

fn decode_der_file(bytes: &[u8]) -> Bundle {
    // A DER certificate is an ASN.1 SEQUENCE; anything else is not worth
    // handing to the parser and is simply "no certificate here".
    if bytes.first() != Some(&0x30) {
        return Bundle {
            certs: Vec::new(),
            error: Some(DecodeError::NoCertificateFound),
        };
    }
    match parse_der(bytes) {
        Ok(facts) => Bundle {
            certs: vec![facts],
            error: None,
        },
        Err(e) => Bundle {
            certs: Vec::new(),
            error: Some(e),
        },
    }
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "missing END line (truncated file?)".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line".to_owned(),
        pem::Error::Base64Decode(_) => "invalid base64 inside a PEM block".to_owned(),
        other => other.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn facts(cert: &X509Certificate<'_>) -> CertFacts {
    let validity = cert.validity();
    CertFacts {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        serial_number: cert.tbs_certificate.serial.to_string().into(),
        subject: name_fields(cert.subject()),
        issuer: name_fields(cert.issuer()),
    }
}

fn name_fields(name: &X509Name<'_>) -> NameFields {
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

/// Decodes any of the string types found in real certificates. Unknown or
/// malformed encodings degrade to lossy text rather than an error: a label
/// value is never worth dropping a certificate for.
fn attr_string(attr: &AttributeTypeAndValue<'_>) -> String {
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

/// The process-wide table behind [`parse_der`].
static INTERNED: LazyLock<Interner> = LazyLock::new(|| Interner::new(SWEEP_FLOOR));

/// Dead entries are swept once the table has doubled since the last sweep,
/// but never below this size, so a small table is not swept on every miss.
const SWEEP_FLOOR: usize = 64;

type Fingerprint = [u8; SHA256_OUTPUT_LEN];

/// Facts by the SHA-256 of their DER, held weakly: the table never keeps
/// a certificate alive, it only lets a second holder find the first one's.
struct Interner {
    table: Mutex<Table>,
}

struct Table {
    facts: HashMap<Fingerprint, Weak<CertFacts>>,
    /// Size after the last sweep; the next one is due at twice this.
    swept_at: usize,
    floor: usize,
}

impl Interner {
    fn new(floor: usize) -> Interner {
        Interner {
            table: Mutex::new(Table {
                facts: HashMap::new(),
                swept_at: floor,
                floor,
            }),
        }
    }

    fn parse(&self, der: &[u8]) -> Result<Arc<CertFacts>, DecodeError> {
        let mut key: Fingerprint = [0; SHA256_OUTPUT_LEN];
        key.copy_from_slice(digest::digest(&SHA256, der).as_ref());
        let seen = self.lock().facts.get(&key).and_then(Weak::upgrade);
        if let Some(facts) = seen {
            return Ok(facts);
        }
        // Parsed outside the lock so probes finishing together do not queue
        // behind each other's parsing. Only successes are kept: a failure
        // costs a parse each time, as before.
        let facts = Arc::new(parse_uncached(der)?);
        Ok(self.lock().insert(key, facts))
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update leaves the map consistent, so a panic elsewhere while
        // the lock was held is no reason to stop decoding certificates.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// Stores `facts` under `key` and returns what holders should share:
    /// the facts already there if another thread parsed the same bytes
    /// meanwhile, else `facts`.
    fn insert(&mut self, key: Fingerprint, facts: Arc<CertFacts>) -> Arc<CertFacts> {
        match self.facts.entry(key) {
            Entry::Occupied(mut slot) => {
                if let Some(live) = slot.get().upgrade() {
                    return live;
                }
                slot.insert(Arc::downgrade(&facts));
            }
            Entry::Vacant(slot) => {
                slot.insert(Arc::downgrade(&facts));
                if self.facts.len() >= 2 * self.swept_at {
                    self.sweep();
                }
            }
        }
        facts
    }

    /// Drops the entries of certificates no one holds any more. Run when
    /// the table has doubled, this costs O(1) amortised per insert and
    /// keeps the table within twice the live certificates (or the floor).
    fn sweep(&mut self) {
        self.facts.retain(|_, facts| facts.strong_count() > 0);
        self.swept_at = self.facts.len().max(self.floor);
        self.facts.shrink_to(2 * self.swept_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn facts_no_one_holds_leave_the_table() {
        // A table of its own: the process-wide one is shared with tests
        // running in parallel.
        let interner = Interner::new(4);
        let key = rcgen::KeyPair::generate().unwrap();
        let mint = |serial: u8| {
            let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&[serial]));
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let kept_der = mint(0);
        let kept = interner.parse(&kept_der).unwrap();
        for serial in 1..=40 {
            drop(interner.parse(&mint(serial)).unwrap());
            let len = interner.lock().facts.len();
            assert!(
                len <= 2 * 4,
                "{len} entries after {serial} dropped certificates"
            );
        }
        interner.lock().sweep();
        assert_eq!(interner.lock().facts.len(), 1);
        assert!(Arc::ptr_eq(&kept, &interner.parse(&kept_der).unwrap()));
        drop(kept);
        interner.lock().sweep();
        assert_eq!(interner.lock().facts.len(), 0);
    }

    #[test]
    fn a_dead_entry_is_parsed_again() {
        let interner = Interner::new(4);
        let der = cert_der("again", (2030, 1, 1));
        let first = interner.parse(&der).unwrap();
        let facts = (*first).clone();
        drop(first);
        let again = interner.parse(&der).unwrap();
        assert_eq!(*again, facts);
        assert_eq!(interner.lock().facts.len(), 1);
    }
}

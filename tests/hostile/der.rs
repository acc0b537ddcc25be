//! Hand-built DER: certificates no sane library would mint (empty or
//! negative serials, names in T61String or with ESC in them, years 1950
//! and 9999, NotBefore after NotAfter). Signatures are never checked on
//! files, so a certificate here carries a fixed fake one.

use base64::Engine as _;

/// One DER TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// ASN.1 string tags used in names.
pub const UTF8: u8 = 0x0c;
pub const PRINTABLE: u8 = 0x13;
pub const T61: u8 = 0x14;
pub const BMP: u8 = 0x1e;

/// A UTCTime (`YYMMDDhhmmssZ`).
pub fn utc(s: &str) -> Vec<u8> {
    tlv(0x17, s.as_bytes())
}

/// A GeneralizedTime (`YYYYMMDDhhmmssZ`).
pub fn generalized(s: &str) -> Vec<u8> {
    tlv(0x18, s.as_bytes())
}

/// A Name with one commonName of the given string type and raw bytes.
pub fn cn_name(tag: u8, value: &[u8]) -> Vec<u8> {
    const CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    seq(&[&tlv(0x31, &seq(&[CN, &tlv(tag, value)]))])
}

/// What goes into a hand-built certificate.
pub struct RawCert {
    /// The content octets of the serial INTEGER, exactly as written.
    pub serial: Vec<u8>,
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub not_before: Vec<u8>,
    pub not_after: Vec<u8>,
}

impl RawCert {
    /// A plain certificate: serial 1, CN `cn` (UTF8String), valid
    /// 2020-01-01 .. 2040-01-01.
    pub fn new(cn: &str) -> RawCert {
        RawCert {
            serial: vec![0x01],
            subject: cn_name(UTF8, cn.as_bytes()),
            issuer: cn_name(UTF8, b"hostile test issuer"),
            not_before: utc("200101000000Z"),
            not_after: utc("400101000000Z"),
        }
    }

    pub fn der(&self) -> Vec<u8> {
        const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let alg = seq(&[ECDSA_SHA256]);
        let mut point = vec![0x00, 0x04];
        point.extend((1..=64u8).collect::<Vec<_>>());
        let spki = seq(&[&seq(&[EC_PUBLIC_KEY, P256]), &tlv(0x03, &point)]);
        let version = tlv(0xa0, &tlv(0x02, &[0x02]));
        let tbs = seq(&[
            &version,
            &tlv(0x02, &self.serial),
            &alg,
            &self.issuer,
            &seq(&[&self.not_before, &self.not_after]),
            &self.subject,
            &spki,
        ]);
        let signature = tlv(
            0x03,
            &[0x00, 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        );
        seq(&[&tbs, &alg, &signature])
    }

    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der())
    }
}

/// `der` in PEM armour with `label`, 64 columns.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

//! Java KeyStores: JKS (`keytool -storetype jks`, cert-manager's
//! `keystores.jks`) and JCEKS. No I/O.
//!
//! Read here rather than with a crate: the one JKS crate allocates every
//! length the file claims before checking it against the file (a 4-byte
//! field can ask for 4 GiB), and the format is small — a header, entries
//! of length-prefixed fields, and a SHA-1 integrity digest keyed with the
//! password (`sun.security.provider.JavaKeyStore`). Every length here is
//! checked against the bytes that remain before anything is taken.
//!
//! Certificates are stored in clear; only the digest needs the password.
//! So a store read without a password, or with a wrong one, still shows
//! its certificates, and says why it could not be verified. Private keys
//! are skipped, never decrypted.

use super::{parse_der, Bundle, DecodeError};

/// `0xFEEDFEED`: JKS.
const JKS_MAGIC: [u8; 4] = [0xfe, 0xed, 0xfe, 0xed];
/// `0xCECECECE`: JCEKS, the same layout with one more entry kind.
const JCEKS_MAGIC: [u8; 4] = [0xce, 0xce, 0xce, 0xce];
/// The SHA-1 digest at the end of the store.
const DIGEST_LEN: usize = 20;
/// What Java mixes into the digest after the password.
const WHITENER: &[u8] = b"Mighty Aphrodite";

const PRIVATE_KEY_ENTRY: u32 = 1;
const TRUSTED_CERT_ENTRY: u32 = 2;
/// JCEKS only: a serialized Java object whose length is not written
/// down, so nothing after it can be found.
const SECRET_KEY_ENTRY: u32 = 3;

/// Whether `bytes` start like a JKS or JCEKS store.
pub(super) fn looks_like_jks(bytes: &[u8]) -> bool {
    bytes.starts_with(&JKS_MAGIC) || bytes.starts_with(&JCEKS_MAGIC)
}

/// Reads a JKS or JCEKS store: every certificate, in store order (a key
/// entry's chain leaf first), and whether the digest matched `password`.
pub(super) fn decode_jks(bytes: &[u8], password: Option<&str>) -> Bundle {
    let mut bundle = Bundle::default();
    let Some(body_len) = bytes.len().checked_sub(DIGEST_LEN) else {
        bundle.error = Some(DecodeError::DecodeFailed(
            "keystore shorter than its header and digest".to_owned(),
        ));
        return bundle;
    };
    let (body, digest) = bytes.split_at(body_len);
    if let Err(e) = read_entries(body, &mut bundle) {
        bundle.problem(DecodeError::DecodeFailed(format!(
            "not a readable JKS keystore: {e}"
        )));
        return bundle;
    }
    match password {
        None => bundle.problem(DecodeError::PassphraseRequired(
            "a JKS keystore's integrity is checked with its password, and none is configured"
                .to_owned(),
        )),
        Some(password) if expected_digest(password, body).as_ref() != digest => bundle.problem(
            DecodeError::BadPassphrase("the keystore's integrity digest does not match".to_owned()),
        ),
        Some(_) => {}
    }
    if bundle.certs.is_empty() && bundle.error.is_none() {
        bundle.error = Some(DecodeError::NoCertificateFound);
    }
    bundle
}

/// SHA-1 over the password as UTF-16BE, the whitener, and the store.
fn expected_digest(password: &str, body: &[u8]) -> ring::digest::Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for unit in password.encode_utf16() {
        ctx.update(&unit.to_be_bytes());
    }
    ctx.update(WHITENER);
    ctx.update(body);
    ctx.finish()
}

/// Reads the header and every entry of `body` (the store without its
/// digest) into `bundle`.
fn read_entries(body: &[u8], bundle: &mut Bundle) -> Result<(), String> {
    let mut r = Reader { rest: body };
    let magic = r.take(4)?;
    let jceks = magic == JCEKS_MAGIC;
    if !jceks && magic != JKS_MAGIC {
        return Err("not a JKS or JCEKS keystore".to_owned());
    }
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(format!("unknown keystore version {version}"));
    }
    let count = r.u32()?;
    for i in 0..count {
        let tag = r.u32()?;
        r.utf()?; // alias
        r.take(8)?; // creation time
        match tag {
            PRIVATE_KEY_ENTRY => {
                let key_len = r.u32()?;
                r.take_u32(key_len)?;
                let chain = r.u32()?;
                for _ in 0..chain {
                    cert(&mut r, version, bundle, i)?;
                }
            }
            TRUSTED_CERT_ENTRY => cert(&mut r, version, bundle, i)?,
            SECRET_KEY_ENTRY if jceks => {
                return Err(format!(
                    "entry {i} is a JCEKS secret key, which cannot be read past"
                ))
            }
            other => return Err(format!("entry {i} has unknown type {other}")),
        }
    }
    if !r.rest.is_empty() {
        return Err(format!("{} bytes after the last entry", r.rest.len()));
    }
    Ok(())
}

/// One certificate: its type (version 2), its DER.
fn cert(r: &mut Reader<'_>, version: u32, bundle: &mut Bundle, entry: u32) -> Result<(), String> {
    if version == 2 {
        let kind = r.utf()?;
        if kind != b"X.509" {
            return Err(format!(
                "entry {entry} holds a {} certificate, not X.509",
                String::from_utf8_lossy(kind)
            ));
        }
    }
    let len = r.u32()?;
    let der = r.take_u32(len)?;
    match parse_der(der) {
        Ok(facts) => bundle.certs.push(facts),
        // One bad certificate hides none of the others.
        Err(e) => bundle.problem(match e {
            DecodeError::DecodeFailed(d) => {
                DecodeError::DecodeFailed(format!("entry {entry}: {d}"))
            }
            other => other,
        }),
    }
    Ok(())
}

/// A cursor that never reads past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn take_u32(&mut self, n: u32) -> Result<&'a [u8], String> {
        self.take(usize::try_from(n).map_err(|_| format!("length {n} out of range"))?)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Java's `writeUTF`: a 16-bit length, then the bytes.
    fn utf(&mut self) -> Result<&'a [u8], String> {
        let b = self.take(2)?;
        let len = u16::from_be_bytes([b[0], b[1]]);
        self.take(usize::from(len))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A store of `certs` as trusted entries (version 2), sealed with
    /// `password`.
    pub(crate) fn jks_of(certs: &[&[u8]], password: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&JKS_MAGIC);
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&(certs.len() as u32).to_be_bytes());
        for (i, der) in certs.iter().enumerate() {
            b.extend_from_slice(&TRUSTED_CERT_ENTRY.to_be_bytes());
            let alias = format!("ca{i}");
            b.extend_from_slice(&(alias.len() as u16).to_be_bytes());
            b.extend_from_slice(alias.as_bytes());
            b.extend_from_slice(&0u64.to_be_bytes());
            b.extend_from_slice(&5u16.to_be_bytes());
            b.extend_from_slice(b"X.509");
            b.extend_from_slice(&(der.len() as u32).to_be_bytes());
            b.extend_from_slice(der);
        }
        let digest = expected_digest(password, &b);
        b.extend_from_slice(digest.as_ref());
        b
    }

    fn der(cn: &str) -> Vec<u8> {
        crate::cert::tests::named(cn).der().to_vec()
    }

    #[test]
    fn every_certificate_in_store_order_with_the_right_password() {
        let (a, b) = (der("a"), der("b"));
        let store = jks_of(&[&a, &b], "changeit");
        let bundle = decode_jks(&store, Some("changeit"));
        assert_eq!(bundle.error, None);
        let cns: Vec<_> = bundle.certs.iter().map(|c| &*c.subject.cn).collect();
        assert_eq!(cns, ["a", "b"]);
    }

    #[test]
    fn a_wrong_or_missing_password_still_shows_the_certificates() {
        let store = jks_of(&[&der("a")], "changeit");
        let wrong = decode_jks(&store, Some("nope"));
        assert!(matches!(wrong.error, Some(DecodeError::BadPassphrase(_))));
        assert_eq!(wrong.certs.len(), 1);
        let none = decode_jks(&store, None);
        assert!(matches!(
            none.error,
            Some(DecodeError::PassphraseRequired(_))
        ));
        assert_eq!(none.certs.len(), 1);
    }

    #[test]
    fn lengths_past_the_end_are_refused_without_allocating() {
        let mut store = jks_of(&[&der("a")], "changeit");
        // The certificate length field: claim 4 GiB.
        let at = 4 + 4 + 4 + 4 + 2 + 3 + 8 + 2 + 5;
        store[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        let bundle = decode_jks(&store, Some("changeit"));
        let Some(DecodeError::DecodeFailed(detail)) = &bundle.error else {
            panic!("{:?}", bundle.error)
        };
        assert!(detail.contains("truncated"), "{detail}");
        assert!(decode_jks(&JKS_MAGIC, None).error.is_some());
    }

    #[test]
    fn an_empty_store_has_no_certificate() {
        let store = jks_of(&[], "changeit");
        assert_eq!(
            decode_jks(&store, Some("changeit")).error,
            Some(DecodeError::NoCertificateFound)
        );
    }
}

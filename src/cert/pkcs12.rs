//! PKCS#12 / PFX keystores (`.p12`, `.pfx`; cert-manager's
//! `keystores.pkcs12`), read with the `p12-keystore` crate. No I/O.
//!
//! `p12-keystore` reads what OpenSSL 3 writes by default (PBES2:
//! PBKDF2-HMAC-SHA-256 with AES-256-CBC, an HMAC-SHA-256 MAC), the legacy
//! suites of `openssl pkcs12 -legacy`, older keytool and cert-manager's
//! default profile (RC2-40, 3DES, a SHA-1 MAC), and caps the iteration
//! counts a file may ask for, so a hostile store cannot buy minutes of
//! CPU. Certificates are usually encrypted with the store's password, so
//! without it there is nothing to show.

use p12_keystore::error::Error as P12Error;
use p12_keystore::Pkcs12Archive;

use super::{parse_der, Bundle, DecodeError};

/// Each encrypted item costs a key derivation of up to a million
/// iterations (the crate's cap), about a second of CPU: a store written to
/// waste a pass on them is refused instead. Real stores hold one key and
/// one or two encrypted bags.
const MAX_ENCRYPTED_ITEMS: usize = 32;

/// The DER of the OIDs of what is decrypted: `pkcs8ShroudedKeyBag`
/// (1.2.840.113549.1.12.10.1.2) and `encryptedData` (1.2.840.113549.1.7.6).
/// Counted in the raw bytes, they bound the work before any is done (items
/// inside encrypted content need the password, which a hostile file does
/// not have).
const ENCRYPTED_ITEMS: [&[u8]; 2] = [
    &[
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
    ],
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06,
    ],
];

/// Whether `bytes` start like a PFX: a SEQUENCE whose first element is
/// the INTEGER 3 (its version). Certificates and CRLs start with a
/// SEQUENCE in a SEQUENCE instead.
pub(super) fn looks_like_pkcs12(bytes: &[u8]) -> bool {
    let header = match bytes {
        [0x30, 0x80, ..] => 2,
        [0x30, n, ..] if *n < 0x80 => 2,
        [0x30, n, ..] => 2 + usize::from(n & 0x7f),
        _ => return false,
    };
    bytes.get(header..header + 3) == Some(&[0x02, 0x01, 0x03])
}

/// Reads every certificate of a PKCS#12 store, in store order.
///
/// Without a password the empty one is tried (stores exported with
/// `-passout pass:` open with it); when that fails too, the store wants
/// a password that is not configured.
pub(super) fn decode_pkcs12(bytes: &[u8], password: Option<&str>) -> Bundle {
    let encrypted = ENCRYPTED_ITEMS
        .iter()
        .map(|oid| bytes.windows(oid.len()).filter(|w| w == oid).count())
        .sum::<usize>();
    if encrypted > MAX_ENCRYPTED_ITEMS {
        return Bundle {
            error: Some(DecodeError::DecodeFailed(format!(
                "{encrypted} encrypted items in one PKCS#12 store (more than {MAX_ENCRYPTED_ITEMS}): not opened"
            ))),
            ..Bundle::default()
        };
    }
    let archive = match Pkcs12Archive::from_pkcs12(bytes, password.unwrap_or("")) {
        Ok(archive) => archive,
        Err(e) => {
            let error = if !is_password_error(&e) {
                DecodeError::DecodeFailed(format!("not a readable PKCS#12 store: {e}"))
            } else if password.is_none() {
                DecodeError::PassphraseRequired(
                    "the PKCS#12 store does not open without a password, and none is configured"
                        .to_owned(),
                )
            } else {
                DecodeError::BadPassphrase(format!(
                    "the PKCS#12 store does not open with the configured password ({e})"
                ))
            };
            return Bundle {
                error: Some(error),
                ..Bundle::default()
            };
        }
    };
    let mut bundle = Bundle::default();
    for bag in &archive.certs {
        match parse_der(bag.cert.as_der()) {
            Ok(facts) => bundle.certs.push(facts),
            Err(e) => bundle.problem(e),
        }
    }
    if bundle.certs.is_empty() && bundle.error.is_none() {
        bundle.error = Some(DecodeError::NoCertificateFound);
    }
    bundle
}

/// A failed MAC is a wrong password; so is bad padding after decryption,
/// which is what a wrong password looks like in a store without a MAC.
fn is_password_error(e: &P12Error) -> bool {
    match e {
        P12Error::MacError(_) | P12Error::UnpadError => true,
        P12Error::Pkcs5Error(text) => text.contains("decrypt"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pfx_is_told_from_a_certificate_and_a_crl() {
        assert!(looks_like_pkcs12(&[
            0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03
        ]));
        assert!(looks_like_pkcs12(&[0x30, 0x80, 0x02, 0x01, 0x03]));
        assert!(looks_like_pkcs12(&[0x30, 0x10, 0x02, 0x01, 0x03]));
        assert!(!looks_like_pkcs12(&[0x30, 0x82, 0x01, 0x00, 0x30, 0x82]));
        assert!(!looks_like_pkcs12(&[0x30, 0x89]));
        assert!(!looks_like_pkcs12(b""));
    }

    #[test]
    fn a_store_of_many_encrypted_items_is_refused_before_any_work() {
        let mut bytes = vec![0x30, 0x80, 0x02, 0x01, 0x03];
        for _ in 0..=MAX_ENCRYPTED_ITEMS {
            bytes.extend_from_slice(ENCRYPTED_ITEMS[0]);
        }
        let bundle = decode_pkcs12(&bytes, Some("x"));
        let Some(DecodeError::DecodeFailed(detail)) = &bundle.error else {
            panic!("{:?}", bundle.error)
        };
        assert!(detail.contains("encrypted items"), "{detail}");
    }

    #[test]
    fn garbage_that_looks_like_a_pfx_is_decode_failed() {
        let bundle = decode_pkcs12(&[0x30, 0x03, 0x02, 0x01, 0x03], Some("x"));
        assert!(matches!(bundle.error, Some(DecodeError::DecodeFailed(_))));
        assert!(bundle.certs.is_empty());
    }
}

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
    fn garbage_that_looks_like_a_pfx_is_decode_failed() {
        let bundle = decode_pkcs12(&[0x30, 0x03, 0x02, 0x01, 0x03], Some("x"));
        assert!(matches!(bundle.error, Some(DecodeError::DecodeFailed(_))));
        assert!(bundle.certs.is_empty());
    }
}

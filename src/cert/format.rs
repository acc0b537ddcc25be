//! Which reader a file's bytes go to: the `format` of a file source, or
//! detection by content. No I/O.

use serde::Deserialize;

use super::jks::{decode_jks, looks_like_jks};
use super::kubeconfig::{looks_like_kubeconfig, parse_kubeconfig, Kubeconfig};
use super::pkcs12::{decode_pkcs12, looks_like_pkcs12};
use super::{decode_bundle, Bundle, DecodeError};

/// How a file source reads its files (`files[].format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide by content: JKS/JCEKS by their magic number, PKCS#12 by
    /// its version, kubeconfig by its keys, anything else as PEM/DER.
    #[default]
    Auto,
    /// PEM bundles of certificates and CRLs, or one DER certificate or
    /// CRL.
    Pem,
    /// PKCS#12 / PFX.
    Pkcs12,
    /// JKS or JCEKS.
    Jks,
    /// A kubeconfig.
    Kubeconfig,
}

impl Format {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Pem => "pem",
            Format::Pkcs12 => "pkcs12",
            Format::Jks => "jks",
            Format::Kubeconfig => "kubeconfig",
        }
    }

    /// Whether files of this format may need a password.
    pub fn takes_password(self) -> bool {
        matches!(self, Format::Auto | Format::Pkcs12 | Format::Jks)
    }
}

/// What a file decoded to.
#[derive(Debug)]
pub enum Decoded {
    /// Certificates and CRLs, complete.
    Bundle(Bundle),
    /// A kubeconfig, whose referenced files are still to be read.
    Kubeconfig(Kubeconfig),
}

/// Decodes a file's bytes as `format` says. `password` is the keystore
/// password, when one is configured; keystores need it as text (Java
/// and PKCS#12 passwords are Unicode strings).
pub fn decode_file(bytes: &[u8], format: Format, password: Option<&[u8]>) -> Decoded {
    let format = match format {
        Format::Auto => detect(bytes),
        other => other,
    };
    let keystore = |decode: fn(&[u8], Option<&str>) -> Bundle| match password
        .map(std::str::from_utf8)
        .transpose()
    {
        Ok(text) => decode(bytes, text),
        Err(_) => Bundle {
            error: Some(DecodeError::BadPassphrase(
                "the configured password is not UTF-8 text".to_owned(),
            )),
            ..Bundle::default()
        },
    };
    match format {
        Format::Auto | Format::Pem => Decoded::Bundle(decode_bundle(bytes)),
        Format::Pkcs12 => Decoded::Bundle(keystore(decode_pkcs12)),
        Format::Jks if looks_like_jks(bytes) => Decoded::Bundle(keystore(decode_jks)),
        Format::Jks => Decoded::Bundle(Bundle {
            error: Some(DecodeError::DecodeFailed(
                "not a JKS or JCEKS keystore (no 0xFEEDFEED or 0xCECECECE magic)".to_owned(),
            )),
            ..Bundle::default()
        }),
        Format::Kubeconfig => match parse_kubeconfig(bytes) {
            Ok(config) => Decoded::Kubeconfig(config),
            Err(e) => Decoded::Bundle(Bundle {
                error: Some(e),
                ..Bundle::default()
            }),
        },
    }
}

/// The format of `bytes` by content. PEM armour wins over everything
/// (a PEM file may mention kubeconfig keys in a comment).
fn detect(bytes: &[u8]) -> Format {
    if looks_like_jks(bytes) {
        Format::Jks
    } else if looks_like_pkcs12(bytes) {
        Format::Pkcs12
    } else if bytes.first() != Some(&0x30)
        && !bytes.windows(11).any(|w| w == b"-----BEGIN ")
        && looks_like_kubeconfig(bytes)
    {
        Format::Kubeconfig
    } else {
        Format::Pem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_content() {
        assert_eq!(detect(&[0xfe, 0xed, 0xfe, 0xed, 0, 0]), Format::Jks);
        assert_eq!(detect(&[0xce, 0xce, 0xce, 0xce]), Format::Jks);
        assert_eq!(detect(&[0x30, 0x03, 0x02, 0x01, 0x03]), Format::Pkcs12);
        assert_eq!(detect(&[0x30, 0x03, 0x30, 0x01, 0x03]), Format::Pem);
        let kubeconfig = b"clusters:\n- cluster:\n    certificate-authority: ca.crt\n";
        assert_eq!(detect(kubeconfig), Format::Kubeconfig);
        let pem = b"# clusters: certificate-authority\n-----BEGIN CERTIFICATE-----\n";
        assert_eq!(detect(pem), Format::Pem);
        assert_eq!(detect(b""), Format::Pem);
    }

    #[test]
    fn a_forced_format_that_does_not_fit_is_decode_failed() {
        let Decoded::Bundle(b) = decode_file(b"hello", Format::Jks, None) else {
            panic!()
        };
        assert!(matches!(b.error, Some(DecodeError::DecodeFailed(_))));
        let Decoded::Bundle(b) = decode_file(b"hello", Format::Pkcs12, None) else {
            panic!()
        };
        assert!(matches!(b.error, Some(DecodeError::DecodeFailed(_))));
        let Decoded::Bundle(b) = decode_file(b"- [", Format::Kubeconfig, None) else {
            panic!()
        };
        assert!(matches!(b.error, Some(DecodeError::DecodeFailed(_))));
    }

    #[test]
    fn a_password_that_is_not_text_is_a_bad_passphrase() {
        let Decoded::Bundle(b) =
            decode_file(&[0xfe, 0xed, 0xfe, 0xed], Format::Auto, Some(b"\xff"))
        else {
            panic!()
        };
        assert!(matches!(b.error, Some(DecodeError::BadPassphrase(_))));
    }
}

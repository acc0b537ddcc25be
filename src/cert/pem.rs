//! PEM bundles and DER files → certificates (and CRLs).
//!
//! The PEM reader is certinel's own rather than a library's because it must
//! survive damage: a bundle with one block of bad base64, or a `BEGIN`
//! without its `END`, still yields every other certificate. The reader
//! resynchronises on the next `-----BEGIN` line and reports the bad block
//! beside the certificates it kept.

use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::{parse_crl, parse_der, CertFacts, CrlFacts, DecodeError};

/// What a bundle held: every certificate that decoded, in order, every
/// CRL, and the first problem met, if any.
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
    /// CRLs (`X509 CRL` blocks, or a DER CRL file), in file order.
    pub crls: Vec<CrlFacts>,
}

impl Bundle {
    /// Records `e` unless an earlier problem is already recorded.
    pub(super) fn problem(&mut self, e: DecodeError) {
        self.error.get_or_insert(e);
    }
}

/// Block labels that hold one DER certificate.
const CERTIFICATE_LABELS: [&[u8]; 3] = [b"CERTIFICATE", b"X509 CERTIFICATE", TRUSTED];

/// The block label of a CRL (`openssl ca -gencrl`, RFC 7468 §5).
const CRL_LABEL: &[u8] = b"X509 CRL";

/// OpenSSL's `-trustout` form (Fedora's `ca-bundle.trust.crt`, what nginx
/// reads with `PEM_read_bio_X509_AUX`): a DER certificate followed by its
/// trust settings, which are not part of the certificate.
const TRUSTED: &[u8] = b"TRUSTED CERTIFICATE";

/// The UTF-8 byte order mark some Windows editors put first.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Base64 as PEM writers produce it: padding is expected but not insisted
/// upon.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes a PEM bundle, or a single DER certificate when there is no PEM
/// armour at all.
pub fn decode_bundle(bytes: &[u8]) -> Bundle {
    if !contains(bytes, b"-----BEGIN ") {
        return decode_der_file(bytes);
    }
    let mut bundle = Bundle::default();
    // A byte order mark only hides the BEGIN line it stands before.
    let (bytes, bom) = match bytes.strip_prefix(BOM) {
        Some(rest) => (rest, rest.starts_with(b"-----BEGIN ")),
        None => (bytes, false),
    };
    let mut saw_cert_block = false;
    for block in Blocks::new(bytes) {
        match block {
            Block::Complete { label, line, body } if label == CRL_LABEL => {
                saw_cert_block = true;
                match decode_base64(body) {
                    Ok(der) => match parse_crl(&der) {
                        Ok(crl) => bundle.crls.push(crl),
                        Err(e) => bundle.problem(located(e, line)),
                    },
                    Err(e) => bundle.problem(DecodeError::BadPem(format!(
                        "invalid base64 in the CRL block at line {line}: {e}"
                    ))),
                }
            }
            Block::Complete { label, line, body } => {
                if !CERTIFICATE_LABELS.contains(&label) {
                    continue;
                }
                saw_cert_block = true;
                let mut der = match decode_base64(body) {
                    Ok(der) => der,
                    Err(e) => {
                        bundle.problem(DecodeError::BadPem(format!(
                            "invalid base64 in the certificate block at line {line}: {e}"
                        )));
                        continue;
                    }
                };
                if label == TRUSTED {
                    der.truncate(first_element_len(&der).unwrap_or(der.len()));
                }
                match parse_der(&der) {
                    Ok(facts) => bundle.certs.push(facts),
                    Err(e) => bundle.problem(located(e, line)),
                }
            }
            Block::Unterminated { label, line } => {
                if CERTIFICATE_LABELS.contains(&label) || label == CRL_LABEL {
                    saw_cert_block = true;
                }
                bundle.problem(DecodeError::BadPem(format!(
                    "the {} block at line {line} has no END line (truncated file?)",
                    String::from_utf8_lossy(label)
                )));
            }
        }
    }
    // OpenSSL, Go and rustls all miss a BEGIN line behind a byte order
    // mark, so the service will not load this file: say so, and still
    // show what it holds.
    if bom && saw_cert_block {
        bundle.problem(DecodeError::BadPem(
            "the file starts with a UTF-8 byte order mark, which OpenSSL, Go and rustls do not \
             accept before -----BEGIN"
                .to_owned(),
        ));
    }
    if !saw_cert_block && bundle.error.is_none() {
        bundle.error = Some(DecodeError::NoCertificateFound);
    }
    bundle
}

/// Names the block a decoding failure was found in.
fn located(e: DecodeError, line: usize) -> DecodeError {
    match e {
        DecodeError::DecodeFailed(e) => {
            DecodeError::DecodeFailed(format!("block at line {line}: {e}"))
        }
        other => other,
    }
}

fn decode_der_file(bytes: &[u8]) -> Bundle {
    // A DER certificate (or CRL) is an ASN.1 SEQUENCE; anything else is
    // not worth handing to the parser and is simply "no certificate here".
    if bytes.first() != Some(&0x30) {
        return Bundle {
            error: Some(DecodeError::NoCertificateFound),
            ..Bundle::default()
        };
    }
    match parse_der(bytes) {
        Ok(facts) => Bundle {
            certs: vec![facts],
            ..Bundle::default()
        },
        // Both are a SEQUENCE of a SEQUENCE, an algorithm and a
        // signature: only the parser can tell a CRL from a certificate.
        Err(e) => match parse_crl(bytes) {
            Ok(crl) => Bundle {
                crls: vec![crl],
                ..Bundle::default()
            },
            Err(_) => Bundle {
                error: Some(e),
                ..Bundle::default()
            },
        },
    }
}

fn decode_base64(body: Vec<&[u8]>) -> Result<Vec<u8>, String> {
    let mut text = Vec::with_capacity(body.iter().map(|l| l.len()).sum());
    for line in body {
        // RFC 7468 allows whitespace anywhere in the base64 text.
        text.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
    }
    BASE64.decode(&text).map_err(|e| e.to_string())
}

/// The length, header included, of the DER element `der` starts with;
/// `None` when its header is malformed or runs past the end.
fn first_element_len(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > std::mem::size_of::<usize>() {
            return None;
        }
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (2 + n, len)
    };
    let total = header.checked_add(len)?;
    (total <= der.len()).then_some(total)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One armoured block.
#[derive(Debug, PartialEq, Eq)]
enum Block<'a> {
    /// `BEGIN label` … `END label`: the lines between.
    Complete {
        label: &'a [u8],
        line: usize,
        body: Vec<&'a [u8]>,
    },
    /// `BEGIN label` followed by another `BEGIN` or the end of the file.
    Unterminated { label: &'a [u8], line: usize },
}

/// The blocks of a PEM text, in order. Text outside blocks (comments,
/// OpenSSL's "subject=" lines) is skipped. A `BEGIN` line inside a block
/// ends that block as unterminated and starts the next one, so damage is
/// contained to the block it is in.
struct Blocks<'a> {
    /// What is left to read.
    rest: Option<&'a [u8]>,
    /// The number of the last line read (1-based).
    line: usize,
    /// A `BEGIN` line read while finishing the previous block.
    pending: Option<(usize, &'a [u8])>,
}

impl<'a> Blocks<'a> {
    fn new(text: &'a [u8]) -> Blocks<'a> {
        Blocks {
            rest: Some(text),
            line: 0,
            pending: None,
        }
    }

    /// The next line, trimmed, with its number.
    fn next_line(&mut self) -> Option<(usize, &'a [u8])> {
        let rest = self.rest?;
        let (line, rest) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], Some(&rest[end + 1..])),
            None => (rest, None),
        };
        self.rest = rest;
        self.line += 1;
        Some((self.line, line.trim_ascii()))
    }
}

fn armour<'a>(line: &'a [u8], kind: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(b"-----")?
        .strip_prefix(kind)?
        .strip_prefix(b" ")?
        .strip_suffix(b"-----")
}

impl<'a> Iterator for Blocks<'a> {
    type Item = Block<'a>;

    fn next(&mut self) -> Option<Block<'a>> {
        let (line, label) = match self.pending.take() {
            Some(begin) => begin,
            None => loop {
                let (n, text) = self.next_line()?;
                if let Some(label) = armour(text, b"BEGIN") {
                    break (n, label);
                }
            },
        };
        let mut body = Vec::new();
        while let Some((n, text)) = self.next_line() {
            if let Some(end) = armour(text, b"END") {
                if end == label {
                    return Some(Block::Complete { label, line, body });
                }
                // An END of another label: the armour is broken.
                return Some(Block::Unterminated { label, line });
            }
            if let Some(next) = armour(text, b"BEGIN") {
                self.pending = Some((n, next));
                return Some(Block::Unterminated { label, line });
            }
            body.push(text);
        }
        Some(Block::Unterminated { label, line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> Vec<String> {
        Blocks::new(text.as_bytes())
            .map(|b| match b {
                Block::Complete { label, line, .. } => {
                    format!("{}@{line}", String::from_utf8_lossy(label))
                }
                Block::Unterminated { label, line } => {
                    format!("open {}@{line}", String::from_utf8_lossy(label))
                }
            })
            .collect()
    }

    #[test]
    fn a_begin_inside_a_block_ends_it_and_starts_the_next() {
        let text = "-----BEGIN A-----\nAAAA\n-----BEGIN B-----\nBBBB\n-----END B-----\n";
        assert_eq!(labels(text), ["open A@1", "B@3"]);
    }

    #[test]
    fn text_between_blocks_and_crlf_line_ends_are_fine() {
        let text = "# Mozilla root\r\n-----BEGIN A-----\r\nAAAA\r\n-----END A-----\r\nsubject=x\n";
        assert_eq!(labels(text), ["A@2"]);
    }

    #[test]
    fn a_mismatched_end_leaves_the_block_unterminated() {
        let text = "-----BEGIN A-----\nAAAA\n-----END B-----\n-----BEGIN C-----\n-----END C-----\n";
        assert_eq!(labels(text), ["open A@1", "C@4"]);
    }

    #[test]
    fn the_first_element_ends_where_its_header_says() {
        assert_eq!(first_element_len(&[0x30, 0x01, 0x05, 0x30, 0x00]), Some(3));
        assert_eq!(first_element_len(&[0x30, 0x81, 0x01, 0x05]), Some(4));
        assert_eq!(
            first_element_len(&[0x30, 0x82, 0x00, 0x01, 0x05, 0x06]),
            Some(5)
        );
        // Past the end, no length, or an absurd length: no answer.
        assert_eq!(first_element_len(&[0x30, 0x05, 0x01]), None);
        assert_eq!(first_element_len(&[0x30, 0x80]), None);
        assert_eq!(first_element_len(&[0x30]), None);
        assert_eq!(first_element_len(&[0x30, 0x89, 0xff]), None);
        assert_eq!(
            first_element_len(&[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }

    #[test]
    fn base64_with_whitespace_and_without_padding_decodes() {
        assert_eq!(decode_base64(vec![b"aGVs", b" bG8 "]).unwrap(), b"hello");
        assert_eq!(decode_base64(vec![b"aGk"]).unwrap(), b"hi");
        assert!(decode_base64(vec![b"!!!!"]).is_err());
    }
}

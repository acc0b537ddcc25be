//! The stapled OCSP response (RFC 6960): whether the server staples one,
//! what it says about the leaf, until when, and whether it is really the
//! leaf's issuer (or its delegated responder) saying it.
//!
//! The response comes from the server, so every byte is untrusted: it is
//! parsed with RustCrypto's `x509-ocsp`, never indexed blindly, and a
//! response that cannot be read is reported as `unusable`, not an error of
//! the probe. Only what could be checked is claimed: `verified` means the
//! response names the leaf (issuer name and key hash, serial number) and
//! its signature verifies under the issuer's key, or under a responder
//! certificate the issuer signed for OCSP signing.

use std::fmt;

use der::oid::AssociatedOid;
use der::{Decode, Encode};
use rustls::crypto::CryptoProvider;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::{spki, Certificate};
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus, SingleResponse};
use x509_parser::prelude::{FromDer, X509Certificate};

/// What the staple says about the leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OcspStatus {
    /// Not revoked.
    Good,
    /// Revoked: clients that check the staple refuse the connection.
    Revoked,
    /// The responder does not know the certificate.
    Unknown,
    /// A staple that cannot be used: unparsable, not `successful`, or
    /// about another certificate.
    Unusable,
}

impl OcspStatus {
    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspStatus::Good => "good",
            OcspStatus::Revoked => "revoked",
            OcspStatus::Unknown => "unknown",
            OcspStatus::Unusable => "unusable",
        }
    }
}

impl fmt::Display for OcspStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stapled response, as far as it could be read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspReport {
    /// The leaf's status according to the response.
    pub status: OcspStatus,
    /// The response is about the leaf and signed by its issuer (or a
    /// responder the issuer delegated to).
    pub verified: bool,
    /// thisUpdate, Unix seconds.
    pub this_update: Option<i64>,
    /// nextUpdate, Unix seconds: after it, clients treat the staple as
    /// stale. Absent when the responder gives none.
    pub next_update: Option<i64>,
    /// revocationTime, Unix seconds, for a revoked leaf.
    pub revoked_at: Option<i64>,
    /// What could not be checked, or why the staple is unusable.
    pub detail: String,
}

/// id-kp-OCSPSigning.
const ID_KP_OCSP_SIGNING: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// Reads the staple `response` about `leaf` (DER), checking it against
/// the issuer's SubjectPublicKeyInfo when it is known.
pub(super) fn inspect(
    response: &[u8],
    leaf: &[u8],
    issuer_spki: Option<&[u8]>,
    provider: &CryptoProvider,
) -> OcspReport {
    match read(response, leaf, issuer_spki, provider) {
        Ok(report) => report,
        Err(detail) => OcspReport {
            status: OcspStatus::Unusable,
            verified: false,
            this_update: None,
            next_update: None,
            revoked_at: None,
            detail,
        },
    }
}

fn read(
    response: &[u8],
    leaf: &[u8],
    issuer_spki: Option<&[u8]>,
    provider: &CryptoProvider,
) -> Result<OcspReport, String> {
    let response =
        OcspResponse::from_der(response).map_err(|e| format!("unparsable OCSP response: {e}"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!(
            "OCSP response status {:?}",
            response.response_status
        ));
    }
    let bytes = response
        .response_bytes
        .ok_or("successful OCSP response without a body")?;
    if bytes.response_type != BasicOcspResponse::OID {
        return Err(format!("OCSP response of type {}", bytes.response_type));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("unparsable basic OCSP response: {e}"))?;
    let (_, leaf) = X509Certificate::from_der(leaf).map_err(|e| format!("unparsable leaf: {e}"))?;
    let serial = trim_zeros(leaf.raw_serial());
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| trim_zeros(r.cert_id.serial_number.as_bytes()) == serial)
        .ok_or("the OCSP response is about another certificate (serial number)")?;
    let (status, revoked_at) = match single.cert_status {
        CertStatus::Good(_) => (OcspStatus::Good, None),
        CertStatus::Revoked(info) => (OcspStatus::Revoked, Some(unix(&info.revocation_time))),
        CertStatus::Unknown(_) => (OcspStatus::Unknown, None),
    };
    let checked = match issuer_spki {
        None => Err("the leaf's issuer is unknown: signature not checked".to_owned()),
        Some(spki) => check(&basic, single, leaf.issuer().as_raw(), spki, provider),
    };
    Ok(OcspReport {
        status,
        verified: checked.is_ok(),
        this_update: Some(unix(&single.this_update)),
        next_update: single.next_update.as_ref().map(unix),
        revoked_at,
        detail: checked.err().unwrap_or_default(),
    })
}

/// Checks that `single` names the leaf's issuer (name and key hash) and
/// that the issuer, or a responder it delegated to, signed the response.
fn check(
    basic: &BasicOcspResponse,
    single: &SingleResponse,
    issuer_name: &[u8],
    issuer_spki: &[u8],
    provider: &CryptoProvider,
) -> Result<(), String> {
    let issuer = Key::from_spki(issuer_spki)?;
    let id = &single.cert_id;
    let hash = |data: &[u8]| digest(&id.hash_algorithm.oid, data);
    if hash(issuer_name)?.as_slice() != id.issuer_name_hash.as_bytes()
        || hash(&issuer.bits)?.as_slice() != id.issuer_key_hash.as_bytes()
    {
        return Err("the OCSP response names another issuer".to_owned());
    }
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| format!("re-encoding the response: {e}"))?;
    let algorithm = algorithm_contents(&basic.signature_algorithm)?;
    let signature = basic.signature.raw_bytes();
    if issuer.verify(&algorithm, &tbs, signature, provider) {
        return Ok(());
    }
    // A delegated responder: a certificate in the response, signed by the
    // issuer, for OCSP signing (RFC 6960 section 4.2.2.2).
    for responder in basic.certs.iter().flatten() {
        if delegated_by(responder, &issuer, provider) {
            let spki = responder
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| e.to_string())?;
            if Key::from_spki(&spki)?.verify(&algorithm, &tbs, signature, provider) {
                return Ok(());
            }
        }
    }
    Err("the OCSP response's signature does not verify under the issuer's key".to_owned())
}

/// Whether `cert` is an OCSP signing certificate `issuer` signed.
fn delegated_by(cert: &Certificate, issuer: &Key, provider: &CryptoProvider) -> bool {
    let ocsp_signing = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == ExtendedKeyUsage::OID)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING));
    let (Ok(tbs), Ok(algorithm)) = (
        cert.tbs_certificate.to_der(),
        algorithm_contents(&cert.signature_algorithm),
    ) else {
        return false;
    };
    ocsp_signing && issuer.verify(&algorithm, &tbs, cert.signature.raw_bytes(), provider)
}

/// A public key as signature verification takes it.
struct Key {
    /// The AlgorithmIdentifier's contents.
    algorithm: Vec<u8>,
    /// The subjectPublicKey bits.
    bits: Vec<u8>,
}

impl Key {
    fn from_spki(spki: &[u8]) -> Result<Key, String> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(spki)
            .map_err(|e| format!("unparsable issuer key: {e}"))?;
        let algorithm = spki
            .algorithm
            .to_der()
            .map_err(|e| e.to_string())
            .and_then(|der| strip_header(&der))?;
        Ok(Key {
            algorithm,
            bits: spki.subject_public_key.raw_bytes().to_vec(),
        })
    }

    /// Verifies `signature` over `message` with the provider's algorithm
    /// for this key and `signature_algorithm` (contents).
    fn verify(
        &self,
        signature_algorithm: &[u8],
        message: &[u8],
        signature: &[u8],
        provider: &CryptoProvider,
    ) -> bool {
        provider
            .signature_verification_algorithms
            .all
            .iter()
            .filter(|a| {
                a.public_key_alg_id().as_ref() == self.algorithm
                    && a.signature_alg_id().as_ref() == signature_algorithm
            })
            .any(|a| a.verify_signature(&self.bits, message, signature).is_ok())
    }
}

fn algorithm_contents(alg: &spki::AlgorithmIdentifierOwned) -> Result<Vec<u8>, String> {
    let der = alg.to_der().map_err(|e| e.to_string())?;
    strip_header(&der)
}

/// The contents of a DER TLV (its tag and length stripped).
pub(super) fn strip_header(der: &[u8]) -> Result<Vec<u8>, String> {
    der::asn1::AnyRef::from_der(der)
        .map(|any| any.value().to_vec())
        .map_err(|e| e.to_string())
}

/// The CertID hash algorithms RFC 6960 and its profiles use.
fn digest(oid: &der::asn1::ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, String> {
    let algorithm = match oid.to_string().as_str() {
        "1.3.14.3.2.26" => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        "2.16.840.1.101.3.4.2.1" => &ring::digest::SHA256,
        "2.16.840.1.101.3.4.2.2" => &ring::digest::SHA384,
        "2.16.840.1.101.3.4.2.3" => &ring::digest::SHA512,
        other => return Err(format!("CertID hash algorithm {other} not supported")),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn unix(t: &x509_ocsp::OcspGeneralizedTime) -> i64 {
    i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unusable_never_a_panic() {
        let provider = crate::crypto::provider();
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x0a\x01\x00",
            b"\x30\x80\x00\x00",
            &[0xff; 64],
        ] {
            let report = inspect(bytes, b"not a certificate", None, &provider);
            assert_eq!(report.status, OcspStatus::Unusable, "{bytes:?}");
            assert!(!report.verified);
        }
        // try_later, without a body.
        let report = inspect(b"\x30\x03\x0a\x01\x03", b"", None, &provider);
        assert!(report.detail.contains("TryLater"), "{}", report.detail);
    }

    #[test]
    fn leading_zeros_do_not_tell_serials_apart() {
        assert_eq!(trim_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(trim_zeros(&[0]), &[] as &[u8]);
    }
}

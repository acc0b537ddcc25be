//! Chain diagnostics: what is wrong with the chain a server sends, beyond
//! the WebPKI verdict, and the expiry of the path clients actually verify.
//!
//! WebPKI (like browsers) accepts a chain served in the wrong order and
//! reports a missing intermediate as just "unknown issuer"; operators want
//! to hear about both. It also says nothing about which served
//! certificates it used: an expired extra certificate the server happens
//! to send breaks no client, while an expiring intermediate on the
//! verified path breaks every one. Everything here is pure: DER in, facts
//! out, no I/O.

use std::fmt;

use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::config::Anchors;
use crate::crypto::chain_signature_algorithms;
use crate::text::printable;

/// A problem with the served chain, whatever the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChainProblemKind {
    /// A served certificate's issuer is served too, but not right after it.
    OutOfOrder,
    /// A certificate's issuer is neither served nor a trust anchor.
    MissingIntermediate,
    /// A certificate is signed with MD5 or SHA-1.
    WeakSignature,
    /// A certificate has an RSA key shorter than 2048 bits.
    SmallKey,
}

impl ChainProblemKind {
    /// The `problem` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainProblemKind::OutOfOrder => "out_of_order",
            ChainProblemKind::MissingIntermediate => "missing_intermediate",
            ChainProblemKind::WeakSignature => "weak_signature",
            ChainProblemKind::SmallKey => "small_key",
        }
    }
}

impl fmt::Display for ChainProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, at the served certificate it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainProblem {
    /// What is wrong.
    pub kind: ChainProblemKind,
    /// Position in the served chain (0 = leaf).
    pub chain_index: usize,
    /// What exactly, for the log and `certinel check`.
    pub detail: String,
}

/// The path WebPKI verified, leaf to trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPath {
    /// The earliest NotAfter along it: the leaf, the intermediates used,
    /// and the anchor when its certificate is known (from `ca_file` or the
    /// system store). When this passes, clients fail.
    pub not_after: i64,
    /// Served certificates that are not on it (a served copy of the
    /// anchor counts as on it): they break no client when they expire.
    pub unused: Vec<usize>,
}

/// What the diagnostics found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Every problem found, in chain order.
    pub problems: Vec<ChainProblem>,
    /// Set when the chain verified up to a trust anchor (the server name
    /// is not part of it: a name mismatch still has a path).
    pub verified: Option<VerifiedPath>,
    /// The SubjectPublicKeyInfo (DER) of the leaf's issuer, when it is
    /// known: from the verified path, else a served certificate or an
    /// anchor with the issuer's name. The stapled OCSP response is
    /// checked against it.
    pub(super) issuer_spki: Option<Vec<u8>>,
}

impl ChainReport {
    /// Whether `kind` was found.
    pub fn has(&self, kind: ChainProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }
}

/// Signature algorithms no client should accept any more.
const WEAK_SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.3.14.3.2.29", "sha1WithRSASignature"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
];

/// RSA keys shorter than this are flagged (NIST SP 800-131A, CA/B Forum).
const MIN_RSA_BITS: usize = 2048;

/// The facts of one served certificate the diagnostics compare.
struct Served {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    cn: String,
    not_after: i64,
    signature: String,
    rsa_bits: Option<usize>,
    spki: Vec<u8>,
}

impl Served {
    fn parse(der: &[u8]) -> Option<Served> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let cn = cert
            .subject()
            .iter_common_name()
            .last()
            .and_then(|cn| cn.as_str().ok())
            .map(|cn| printable(cn).into_owned())
            .unwrap_or_default();
        let rsa_bits = match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => Some(rsa.key_size()),
            _ => None,
        };
        Some(Served {
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            cn,
            not_after: cert.validity().not_after.timestamp(),
            signature: cert.signature_algorithm.algorithm.to_id_string(),
            rsa_bits,
            spki: cert.public_key().raw.to_vec(),
        })
    }

    fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    fn describe(&self, index: usize) -> String {
        if self.cn.is_empty() {
            format!("#{index}")
        } else {
            format!("#{index} (CN={})", self.cn)
        }
    }
}

/// Inspects `chain` (DER, as served, leaf first) against `anchors`, with
/// the path the verification found (`None`: it found none).
pub(super) fn inspect(
    chain: &[Vec<u8>],
    path: Option<&PathFound>,
    anchors: &Anchors,
) -> ChainReport {
    // A certificate that does not parse is the WebPKI verdict's business
    // (bad_certificate); the diagnostics skip it.
    let served: Vec<Option<Served>> = chain.iter().map(|der| Served::parse(der)).collect();
    let mut problems = Vec::new();
    out_of_order(&served, &mut problems);
    missing_intermediate(&served, anchors, &mut problems);
    for (i, cert) in served.iter().enumerate() {
        let Some(cert) = cert else { continue };
        // Nobody checks the signature of a self-signed root.
        if i == 0 || !cert.self_issued() {
            if let Some((_, name)) = WEAK_SIGNATURES.iter().find(|(o, _)| *o == cert.signature) {
                problems.push(ChainProblem {
                    kind: ChainProblemKind::WeakSignature,
                    chain_index: i,
                    detail: format!("{} is signed with {name}", cert.describe(i)),
                });
            }
        }
        if let Some(bits) = cert.rsa_bits.filter(|b| *b < MIN_RSA_BITS) {
            problems.push(ChainProblem {
                kind: ChainProblemKind::SmallKey,
                chain_index: i,
                detail: format!("{} has a {bits}-bit RSA key", cert.describe(i)),
            });
        }
    }
    problems.sort_by_key(|p| (p.chain_index, p.kind));
    let verified = path.and_then(|found| verified_path(found, &served, anchors));
    let issuer_spki = verified
        .as_ref()
        .map(|(_, spki)| spki.clone())
        .or_else(|| issuer_by_name(&served, anchors));
    ChainReport {
        problems,
        verified: verified.map(|(path, _)| path),
        issuer_spki,
    }
}

/// The first served certificate whose issuer is served elsewhere than
/// right after it.
fn out_of_order(served: &[Option<Served>], problems: &mut Vec<ChainProblem>) {
    for (i, cert) in served.iter().enumerate() {
        let Some(cert) = cert.as_ref().filter(|c| !c.self_issued()) else {
            continue;
        };
        let issued_by = |s: &Option<Served>| s.as_ref().is_some_and(|s| s.subject == cert.issuer);
        if served.get(i + 1).is_some_and(issued_by) {
            continue;
        }
        let elsewhere = served
            .iter()
            .enumerate()
            .find(|(j, s)| *j != i && issued_by(s));
        if let Some((j, _)) = elsewhere {
            problems.push(ChainProblem {
                kind: ChainProblemKind::OutOfOrder,
                chain_index: i,
                detail: format!(
                    "the issuer of {} is served as #{j}, not right after it",
                    cert.describe(i)
                ),
            });
            return;
        }
    }
}

/// Follows issuers from the leaf through the served certificates; flags
/// the certificate whose issuer is neither served nor a trust anchor
/// (compared by name, as path building does).
fn missing_intermediate(
    served: &[Option<Served>],
    anchors: &Anchors,
    problems: &mut Vec<ChainProblem>,
) {
    let mut visited = vec![false; served.len()];
    let mut current = 0;
    loop {
        let Some(Some(cert)) = served.get(current) else {
            return;
        };
        visited[current] = true;
        if cert.self_issued() || anchor_named(anchors, &cert.issuer).is_some() {
            return;
        }
        let next = served
            .iter()
            .enumerate()
            .find(|(j, s)| !visited[*j] && s.as_ref().is_some_and(|s| s.subject == cert.issuer));
        match next {
            Some((j, _)) => current = j,
            None => {
                problems.push(ChainProblem {
                    kind: ChainProblemKind::MissingIntermediate,
                    chain_index: current,
                    detail: format!(
                        "the issuer of {} is neither served nor a trusted root: serve the \
                         intermediate certificate (or, if a root issued it, trust that root)",
                        cert.describe(current)
                    ),
                });
                return;
            }
        }
    }
}

/// The anchor whose subject is the Name `name` (full DER, as x509-parser
/// gives it; anchors hold the Name's contents).
fn anchor_named<'a>(
    anchors: &'a Anchors,
    name: &[u8],
) -> Option<&'a rustls::pki_types::TrustAnchor<'static>> {
    let contents = super::ocsp::strip_header(name).ok()?;
    anchors
        .roots
        .roots
        .iter()
        .find(|a| a.subject.as_ref() == contents.as_slice())
}

/// The leaf's issuer's SubjectPublicKeyInfo by name, when the chain did
/// not verify: a served certificate first, then an anchor.
fn issuer_by_name(served: &[Option<Served>], anchors: &Anchors) -> Option<Vec<u8>> {
    let leaf = served.first()?.as_ref()?;
    let issuer = served
        .iter()
        .skip(1)
        .flatten()
        .find(|s| s.subject == leaf.issuer);
    if let Some(issuer) = issuer {
        return Some(issuer.spki.to_vec());
    }
    anchor_named(anchors, &leaf.issuer).map(|a| webpki::spki_for_anchor(a).as_ref().to_vec())
}

/// What the verification that gave the verdict found: the path WebPKI
/// built, as positions in the served chain and keys, so the diagnostics
/// need not build it a second time.
#[derive(Debug, Clone)]
pub(super) struct PathFound {
    /// Served intermediates on the path (positions in the chain, 1-based
    /// as the leaf is 0).
    intermediates: Vec<usize>,
    /// The trust anchor's key as the anchor holds it (the contents of its
    /// SubjectPublicKeyInfo), which `Anchors` keys NotAfter by.
    anchor_key: Vec<u8>,
    /// The trust anchor's SubjectPublicKeyInfo (DER), as served
    /// certificates carry it.
    anchor_spki: Vec<u8>,
    /// The leaf's issuer's SubjectPublicKeyInfo (DER).
    issuer_spki: Vec<u8>,
}

/// WebPKI's path for `leaf` and `intermediates` (as served): the very
/// verification rustls runs in `WebPkiServerVerifier` (no CRLs are
/// configured), keeping the path rustls does not hand out. Signatures
/// already checked on an earlier probe are not checked again
/// ([`chain_signature_algorithms`]).
pub(super) fn find_path(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &Anchors,
    now: UnixTime,
) -> Result<PathFound, webpki::Error> {
    let end_entity = webpki::EndEntityCert::try_from(leaf)?;
    let path = end_entity.verify_for_usage(
        chain_signature_algorithms(),
        &anchors.roots.roots,
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )?;
    let used = path
        .intermediate_certificates()
        .filter_map(|cert| {
            let der = cert.der();
            intermediates
                .iter()
                .position(|c| c.as_ref() == der.as_ref())
                .map(|i| i + 1)
        })
        .collect();
    let anchor = path.anchor();
    Ok(PathFound {
        intermediates: used,
        anchor_key: anchor.subject_public_key_info.as_ref().to_vec(),
        anchor_spki: webpki::spki_for_anchor(anchor).as_ref().to_vec(),
        issuer_spki: path.issuer_spki().as_ref().to_vec(),
    })
}

/// The verified path's expiry and unused certificates, from the path the
/// verification found.
fn verified_path(
    found: &PathFound,
    served: &[Option<Served>],
    anchors: &Anchors,
) -> Option<(VerifiedPath, Vec<u8>)> {
    let mut on_path = vec![false; served.len()];
    let mut not_after = served.first()?.as_ref()?.not_after;
    on_path[0] = true;
    for &i in &found.intermediates {
        if let Some(slot) = on_path.get_mut(i) {
            *slot = true;
        }
        if let Some(Some(s)) = served.get(i) {
            not_after = not_after.min(s.not_after);
        }
    }
    if let Some(t) = anchors.not_after(&found.anchor_key) {
        not_after = not_after.min(t);
    }
    for (i, s) in served.iter().enumerate() {
        if s.as_ref().is_some_and(|s| s.spki == found.anchor_spki) {
            on_path[i] = true;
        }
    }
    let unused = (0..served.len()).filter(|i| !on_path[*i]).collect();
    Some((
        VerifiedPath { not_after, unused },
        found.issuer_spki.clone(),
    ))
}

//! Chain diagnostics against `openssl s_server`, which serves the chain
//! exactly as it is given: the verified path's expiry, extra certificates,
//! a chain out of order, a missing intermediate, SHA-1 signatures and
//! small RSA keys.

use certinel::sources::endpoint::{AddressReport, ChainProblemKind, TlsErrorReason, VerifiedPath};

use super::Pki;
use crate::common::*;

/// What a probe of `server` (trusting the root) found: the failure
/// reason, the chain problems, and the report itself.
async fn findings(
    pki: &Pki,
    server: &OpensslServer,
) -> (
    Option<TlsErrorReason>,
    Vec<(ChainProblemKind, usize)>,
    AddressReport,
) {
    let reports = probe_one(&pki.source(server.addr, "")).await;
    let why = reason(&reports);
    let found = problems(&reports[0]);
    (why, found, reports.into_iter().next().unwrap())
}

fn problems(report: &AddressReport) -> Vec<(ChainProblemKind, usize)> {
    let chain = report.chain_report.as_ref().expect("a chain was presented");
    chain
        .problems
        .iter()
        .map(|p| (p.kind, p.chain_index))
        .collect()
}

/// The verified path of a report that verified.
fn path(report: &AddressReport) -> VerifiedPath {
    let chain = report.chain_report.as_ref().expect("a chain was presented");
    chain.verified.clone().expect("the chain verified")
}

#[tokio::test]
async fn the_verified_path_expires_with_its_soonest_certificate() {
    // The intermediate expires before the leaf: that is when clients fail.
    let pki = Pki::new(40, 20);
    let chain = pki.file("inter.crt");
    let server = pki.s_server("leaf.crt", "leaf.key", Some(&chain), &[]);
    let (why, found, r) = findings(&pki, &server).await;
    assert_eq!((why, found), (None, vec![]), "{r:?}");
    assert_eq!(r.chain.len(), 2);
    assert_eq!(path(&r).not_after, pki.inter.cert.not_after);
    assert!(path(&r).unused.is_empty());
}

#[tokio::test]
async fn an_expired_extra_certificate_is_not_on_the_verified_path() {
    let pki = Pki::new(40, 300);
    let stray = Ca::new("an old cross-signed root");
    let expired = stray.issue(&Leaf {
        not_before: now() - 30 * DAY,
        not_after: now() - DAY,
        ..Leaf::server("old", 0)
    });
    let chain = pki.bundle("chain.pem", &[&pki.inter.cert.cert_pem, &expired.cert_pem]);
    let server = pki.s_server("leaf.crt", "leaf.key", Some(&chain), &[]);
    let (why, found, r) = findings(&pki, &server).await;
    assert_eq!((why, found), (None, vec![]), "{r:?}");
    assert_eq!(path(&r).unused, vec![2]);
    assert_eq!(path(&r).not_after, pki.leaf.not_after);
}

#[tokio::test]
async fn a_chain_out_of_order_is_accepted_and_flagged() {
    let pki = Pki::new(40, 300);
    // Leaf, root, intermediate: the leaf's issuer is not next to it.
    let chain = pki.bundle(
        "chain.pem",
        &[&pki.root.cert.cert_pem, &pki.inter.cert.cert_pem],
    );
    let server = pki.s_server("leaf.crt", "leaf.key", Some(&chain), &[]);
    let (why, found, r) = findings(&pki, &server).await;
    assert_eq!(
        (why, found),
        (None, vec![(ChainProblemKind::OutOfOrder, 0)])
    );
    // The served root is the anchor: on the path, not an extra.
    assert!(path(&r).unused.is_empty(), "{r:?}");
}

#[tokio::test]
async fn a_missing_intermediate_is_its_own_reason() {
    let pki = Pki::new(40, 300);
    let server = pki.s_server("leaf.crt", "leaf.key", None, &[]);
    let (why, found, r) = findings(&pki, &server).await;
    let missing = ChainProblemKind::MissingIntermediate;
    assert_eq!(
        (why, found),
        (
            Some(TlsErrorReason::MissingIntermediate),
            vec![(missing, 0)]
        )
    );
    let detail = &r.error.as_ref().unwrap().detail;
    assert!(detail.contains("CN=localhost"), "{detail}");
    // The leaf is still exported.
    assert_eq!(r.chain[0].not_after, pki.leaf.not_after);
}

#[tokio::test]
async fn an_untrusted_root_served_in_full_stays_unknown_ca() {
    let pki = Pki::new(40, 300);
    let other_root = Ca::new("someone else's root");
    let other_inter = other_root.intermediate("someone else's intermediate", 300);
    let other = other_inter.issue(&Leaf::server("localhost", 40));
    let chain = pki.bundle(
        "other-chain.pem",
        &[&other_inter.cert.cert_pem, &other_root.cert.cert_pem],
    );
    write(pki.path(), "other-leaf.crt", &other.cert_pem);
    write(pki.path(), "other-leaf.key", &other.key_pem);
    let server = pki.s_server("other-leaf.crt", "other-leaf.key", Some(&chain), &[]);
    let (why, found, _) = findings(&pki, &server).await;
    assert_eq!((why, found), (Some(TlsErrorReason::UnknownCa), vec![]));
}

/// Signs a CSR for `localhost` made with `newkey` by the intermediate,
/// with `digest`, into `name.crt`/`name.key`, with openssl (rcgen makes
/// neither RSA keys nor SHA-1 signatures).
fn openssl_leaf(pki: &Pki, name: &str, newkey: &[&str], digest: &str) {
    let d = pki.path();
    write(d, "san.ext", "subjectAltName=DNS:localhost\n");
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let mut req = vec![
        "req",
        "-new",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key,
        "-out",
        &csr,
    ];
    req.extend_from_slice(newkey);
    openssl(d, &req);
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "inter.crt",
            "-CAkey",
            "inter.key",
            digest,
            "-days",
            "30",
            "-extfile",
            "san.ext",
            "-out",
            &crt,
        ],
    );
}

#[tokio::test]
async fn sha1_signatures_and_small_rsa_keys_are_flagged() {
    let pki = Pki::new(40, 300);
    openssl_leaf(
        &pki,
        "sha1",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "-sha1",
    );
    openssl_leaf(&pki, "rsa1024", &["-newkey", "rsa:1024"], "-sha256");
    let chain = pki.file("inter.crt");
    // OpenSSL's own security level refuses to serve either.
    let weak = ["-cipher", "DEFAULT@SECLEVEL=0"];
    let sha1 = pki.s_server("sha1.crt", "sha1.key", Some(&chain), &weak);
    let (why, found, _) = findings(&pki, &sha1).await;
    // WebPKI refuses SHA-1: the verdict and the problem agree.
    let weak_signature = ChainProblemKind::WeakSignature;
    assert_eq!(
        (why, found),
        (
            Some(TlsErrorReason::BadCertificate),
            vec![(weak_signature, 0)]
        )
    );
    let small = pki.s_server("rsa1024.crt", "rsa1024.key", Some(&chain), &weak);
    let (_, found, r) = findings(&pki, &small).await;
    assert_eq!(found, vec![(ChainProblemKind::SmallKey, 0)]);
    let detail = &r.chain_report.as_ref().unwrap().problems[0].detail;
    assert!(detail.contains("1024-bit"), "{detail}");
    // rustls will not take a handshake signature from a 1024-bit key, but
    // the chain it presented is still exported.
    assert_eq!(r.chain.len(), 2);
}

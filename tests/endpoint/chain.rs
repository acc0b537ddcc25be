//! Chain diagnostics against `openssl s_server`, which serves the chain
//! exactly as it is given: the verified path's expiry, extra certificates,
//! a chain out of order, a missing intermediate, SHA-1 signatures and
//! small RSA keys.

use certinel::sources::endpoint::{ChainProblemKind, TlsErrorReason};

use super::Pki;
use crate::common::*;

fn problems(report: &certinel::sources::endpoint::AddressReport) -> Vec<(ChainProblemKind, usize)> {
    let chain = report.chain_report.as_ref().expect("a chain was presented");
    chain
        .problems
        .iter()
        .map(|p| (p.kind, p.chain_index))
        .collect()
}

#[tokio::test]
async fn the_verified_path_expires_with_its_soonest_certificate() {
    // The intermediate expires before the leaf: that is when clients fail.
    let pki = Pki::new(40, 20);
    let chain = pki.file("inter.crt");
    let server = pki.s_server("leaf.crt", "leaf.key", Some(&chain), &[]);
    let reports = probe_one(&pki.source(server.addr, "")).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r.chain.len(), 2);
    let report = r.chain_report.as_ref().unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    let path = report.verified.as_ref().unwrap();
    assert_eq!(path.not_after, pki.inter.cert.not_after);
    assert!(path.unused.is_empty());
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
    let reports = probe_one(&pki.source(server.addr, "")).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    let path = reports[0]
        .chain_report
        .as_ref()
        .unwrap()
        .verified
        .clone()
        .unwrap();
    assert_eq!(path.unused, vec![2]);
    assert_eq!(path.not_after, pki.leaf.not_after);
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
    let reports = probe_one(&pki.source(server.addr, "")).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    assert_eq!(
        problems(&reports[0]),
        vec![(ChainProblemKind::OutOfOrder, 0)]
    );
    // The served root is the anchor: on the path, not an extra.
    let path = reports[0]
        .chain_report
        .as_ref()
        .unwrap()
        .verified
        .clone()
        .unwrap();
    assert!(path.unused.is_empty(), "{path:?}");
}

#[tokio::test]
async fn a_missing_intermediate_is_its_own_reason() {
    let pki = Pki::new(40, 300);
    let server = pki.s_server("leaf.crt", "leaf.key", None, &[]);
    let reports = probe_one(&pki.source(server.addr, "")).await;
    assert_eq!(
        reason(&reports),
        Some(TlsErrorReason::MissingIntermediate),
        "{reports:?}"
    );
    assert_eq!(
        problems(&reports[0]),
        vec![(ChainProblemKind::MissingIntermediate, 0)]
    );
    let detail = &reports[0].error.as_ref().unwrap().detail;
    assert!(detail.contains("CN=localhost"), "{detail}");
    // The leaf is still exported.
    assert_eq!(reports[0].chain[0].not_after, pki.leaf.not_after);
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
    let reports = probe_one(&pki.source(server.addr, "")).await;
    assert_eq!(
        reason(&reports),
        Some(TlsErrorReason::UnknownCa),
        "{reports:?}"
    );
    assert!(problems(&reports[0]).is_empty());
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
    let reports = probe_one(&pki.source(sha1.addr, "")).await;
    // WebPKI refuses SHA-1: the verdict and the problem agree.
    assert_eq!(
        reason(&reports),
        Some(TlsErrorReason::BadCertificate),
        "{reports:?}"
    );
    assert_eq!(
        problems(&reports[0]),
        vec![(ChainProblemKind::WeakSignature, 0)]
    );
    let small = pki.s_server("rsa1024.crt", "rsa1024.key", Some(&chain), &weak);
    let reports = probe_one(&pki.source(small.addr, "")).await;
    assert_eq!(problems(&reports[0]), vec![(ChainProblemKind::SmallKey, 0)]);
    let detail = &reports[0].chain_report.as_ref().unwrap().problems[0].detail;
    assert!(detail.contains("1024-bit"), "{detail}");
    // rustls will not take a handshake signature from a 1024-bit key, but
    // the chain it presented is still exported.
    assert_eq!(reports[0].chain.len(), 2);
}

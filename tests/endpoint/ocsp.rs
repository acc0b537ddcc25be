//! Stapled OCSP responses, made by `openssl ocsp` (the responder, from an
//! index file) and stapled by `openssl s_server -status_file`: good,
//! revoked, unknown, stale, forged, about another certificate, or none;
//! and how they show on `/metrics` and in `certinel check`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use certinel::sources::endpoint::{AddressReport, OcspReport, OcspStatus};

use super::Pki;
use crate::common::*;

/// The leaf's status in the responder's index.
enum Index {
    Valid,
    Revoked,
    /// The index lists another serial only: the responder does not know
    /// the leaf.
    Absent,
}

/// Options for [`response`].
struct Responder<'a> {
    index: Index,
    /// `-rsigner`/`-rkey` files (default: the intermediate, the leaf's
    /// issuer).
    signer: (&'a str, &'a str),
    /// Run the responder this far in the past (`faketime` offset).
    back_in_time: Option<&'a str>,
    /// The certificate asked about (default: the leaf).
    about: &'a str,
}

impl Default for Responder<'_> {
    fn default() -> Self {
        Responder {
            index: Index::Valid,
            signer: ("inter.crt", "inter.key"),
            back_in_time: None,
            about: "leaf.crt",
        }
    }
}

impl<'a> Responder<'a> {
    fn index(index: Index) -> Responder<'a> {
        Responder {
            index,
            ..Default::default()
        }
    }

    fn signed_by(cert: &'a str, key: &'a str) -> Responder<'a> {
        Responder {
            signer: (cert, key),
            ..Default::default()
        }
    }

    fn back_in_time(offset: &'a str) -> Responder<'a> {
        Responder {
            back_in_time: Some(offset),
            ..Default::default()
        }
    }

    fn about(cert: &'a str) -> Responder<'a> {
        Responder {
            about: cert,
            ..Default::default()
        }
    }
}

/// A DER OCSP response from `openssl ocsp` acting as the responder,
/// valid for a day from when it ran.
fn response(pki: &Pki, name: &str, r: &Responder<'_>) -> PathBuf {
    let d = pki.path();
    let serial = openssl(d, &["x509", "-in", r.about, "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=");
    let line = match r.index {
        Index::Valid => format!("V\t301231000000Z\t\t{serial}\tunknown\t/CN=localhost\n"),
        Index::Revoked => {
            format!("R\t301231000000Z\t240101000000Z\t{serial}\tunknown\t/CN=localhost\n")
        }
        Index::Absent => "V\t301231000000Z\t\t01\tunknown\t/CN=someone\n".to_owned(),
    };
    write(d, "index.txt", line);
    let request = format!("{name}.req");
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "inter.crt",
            "-cert",
            r.about,
            "-no_nonce",
            "-reqout",
            &request,
        ],
    );
    let out = format!("{name}.der");
    let respond = [
        "ocsp",
        "-index",
        "index.txt",
        "-CA",
        "inter.crt",
        "-rsigner",
        r.signer.0,
        "-rkey",
        r.signer.1,
        "-reqin",
        &request,
        "-respout",
        &out,
        "-ndays",
        "1",
    ];
    match r.back_in_time {
        None => {
            openssl(d, &respond);
        }
        Some(offset) => {
            let status = Command::new("faketime")
                .args(["-f", offset, "openssl"])
                .args(respond)
                .current_dir(d)
                .status()
                .expect("faketime is installed (scripts/test installs it)");
            assert!(status.success());
        }
    }
    pki.file(&out)
}

/// Probes `openssl s_server` stapling `staple` (or nothing).
async fn probe_stapling(pki: &Pki, staple: Option<PathBuf>) -> AddressReport {
    let chain = pki.file("inter.crt");
    let status_file = staple.map(|p| p.display().to_string());
    let extra: Vec<&str> = match &status_file {
        Some(f) => vec!["-status_file", f],
        None => Vec::new(),
    };
    let server = pki.s_server("leaf.crt", "leaf.key", Some(&chain), &extra);
    let mut reports = probe_one(&pki.source(server.addr, "")).await;
    assert_eq!(reason(&reports), None, "{reports:?}");
    reports.remove(0)
}

/// Probes a server stapling the response `r` makes, named `name`.
async fn stapling(pki: &Pki, name: &str, r: Responder<'_>) -> AddressReport {
    probe_stapling(pki, Some(response(pki, name, &r))).await
}

fn stapled(report: &AddressReport) -> &OcspReport {
    report
        .ocsp
        .as_ref()
        .expect("a chain was presented")
        .as_ref()
        .expect("a response was stapled")
}

#[tokio::test]
async fn a_good_staple_is_verified_with_its_update_times() {
    let pki = Pki::new(40, 300);
    let report = stapling(&pki, "good", Responder::default()).await;
    let s = stapled(&report);
    assert_eq!(s.status, OcspStatus::Good, "{s:?}");
    assert!(s.verified, "{s:?}");
    let this_update = s.this_update.unwrap();
    assert!((this_update - now()).abs() < 120, "{s:?}");
    assert_eq!(s.next_update, Some(this_update + DAY));
}

#[tokio::test]
async fn revoked_and_unknown_staples_say_so() {
    let pki = Pki::new(40, 300);
    let report = stapling(&pki, "revoked", Responder::index(Index::Revoked)).await;
    let s = stapled(&report);
    assert_eq!((s.status, s.verified), (OcspStatus::Revoked, true), "{s:?}");
    assert_eq!(s.revoked_at, Some(1_704_067_200));
    let report = stapling(&pki, "unknown", Responder::index(Index::Absent)).await;
    assert_eq!(stapled(&report).status, OcspStatus::Unknown);
}

#[tokio::test]
async fn a_stale_staple_has_its_next_update_in_the_past() {
    let pki = Pki::new(40, 300);
    let report = stapling(&pki, "stale", Responder::back_in_time("-2d")).await;
    let s = stapled(&report);
    assert_eq!(s.status, OcspStatus::Good);
    assert!(s.next_update.unwrap() < now() - DAY + 120, "{s:?}");
}

#[tokio::test]
async fn forged_and_misdirected_staples_are_not_trusted() {
    let pki = Pki::new(40, 300);
    // Signed by a key the issuer never delegated to.
    let forger = Ca::new("forger");
    write(pki.path(), "forger.crt", &forger.cert.cert_pem);
    write(pki.path(), "forger.key", &forger.cert.key_pem);
    let forger_signs = Responder::signed_by("forger.crt", "forger.key");
    let report = stapling(&pki, "forged", forger_signs).await;
    let s = stapled(&report);
    assert_eq!(s.status, OcspStatus::Good);
    assert!(!s.verified, "{s:?}");
    assert!(s.detail.contains("signature"), "{s:?}");
    // About another certificate of the same issuer.
    let other = pki.inter.issue(&Leaf::server("other", 40));
    write(pki.path(), "other.crt", &other.cert_pem);
    let report = stapling(&pki, "misdirected", Responder::about("other.crt")).await;
    let s = stapled(&report);
    assert_eq!(
        (s.status, s.verified),
        (OcspStatus::Unusable, false),
        "{s:?}"
    );
}

#[tokio::test]
async fn no_staple_is_reported_as_none() {
    let pki = Pki::new(40, 300);
    let report = probe_stapling(&pki, None).await;
    assert_eq!(report.ocsp, Some(None));
}

#[test]
fn a_revoked_staple_and_chain_problems_show_on_metrics_and_in_check() {
    let pki = Pki::new(40, 300);
    let revoked = response(&pki, "revoked", &Responder::index(Index::Revoked));
    let chain = pki.bundle(
        "chain.pem",
        &[&pki.root.cert.cert_pem, &pki.inter.cert.cert_pem],
    );
    let status_file = revoked.display().to_string();
    let server = pki.s_server(
        "leaf.crt",
        "leaf.key",
        Some(&chain),
        &["-status_file", &status_file],
    );
    let target = format!("localhost:{}", server.addr.port());
    let daemon = Daemon::start(
        pki.path(),
        &format!(
            "endpoints:\n  - name: web\n    targets: [\"{target}\"]\n    ca_file: root.crt\n    interval: 1m\n    timeout: 5s\n"
        ),
    );
    let probe = [("source_name", "web"), ("target", target.as_str())];
    let m = daemon.wait_for(Duration::from_secs(10), |m| {
        m.has("certinel_tls_ocsp_revoked", &probe)
    });
    assert_eq!(m.value("certinel_tls_ocsp_revoked", &probe), 1.0);
    assert_eq!(m.value("certinel_tls_ocsp_stapled", &probe), 1.0);
    assert!(m.has(
        "certinel_tls_ocsp_status_info",
        &[("status", "revoked"), ("verified", "true")]
    ));
    assert_eq!(m.value("certinel_tls_chain_problems", &probe), 1.0);
    assert!(m.has(
        "certinel_tls_chain_problem_info",
        &[("problem", "out_of_order"), ("chain_index", "0")]
    ));
    assert_eq!(
        m.value("certinel_tls_chain_verified_not_after", &probe),
        pki.leaf.not_after as f64
    );
    assert_eq!(m.value("certinel_tls_handshake_error", &probe), 0.0);
    // The same in certinel check: an error (clients refuse a revoked
    // certificate), with both findings in the table and in JSON.
    let check = |extra: &[&str]| {
        let mut args = vec!["check", &target, "--ca-file", "root.crt"];
        args.extend_from_slice(extra);
        run_bounded(
            certinel_command()
                .args(&args)
                .current_dir(pki.path())
                .env("NO_COLOR", "1"),
            Duration::from_secs(30),
        )
    };
    let table = check(&[]);
    assert_eq!(table.status.code(), Some(2), "{}", table.stdout);
    assert!(
        table.stdout.lines().next().unwrap().ends_with("NOTES"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("ocsp revoked, out_of_order"),
        "{}",
        table.stdout
    );
    let json = check(&["--output", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let leaf = &rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chain_index"] == 0)
        .unwrap();
    assert_eq!(leaf["status"], "error", "{leaf}");
    assert_eq!(leaf["ocsp_status"], "revoked");
    assert_eq!(leaf["chain_problems"][0], "out_of_order");
    assert_eq!(leaf["verified_chain_not_after"], pki.leaf.not_after);
}

//! A snapshot → rows: one per certificate (or CRL) per place, and one per
//! failing place without a certificate.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use super::*;
use crate::cert::{CertFacts, CrlFacts};
use crate::snapshot::{Snapshot, SourceData, SourceState};
use crate::sources::endpoint::AddressReport;
use crate::sources::files::{CertRole, FileErrorReason};
use crate::text::{path_label, printable};

/// Turns a snapshot into rows, most urgent first: failures without a
/// certificate, then soonest expiry first.
pub fn rows(snapshot: &Snapshot, thresholds: Thresholds, now: SystemTime) -> Vec<Row<'_>> {
    let now = crate::clock::unix_secs(now);
    // Sized once: growing a vector of ten thousand rows copies it again
    // and again.
    let capacity = snapshot
        .sources
        .iter()
        .map(|s| s.certificates + s.files_in_error)
        .sum();
    let mut out = Vec::with_capacity(capacity);
    for source in &snapshot.sources {
        for_each_place(source, |place, found| {
            out.extend(crl_rows(&place, found.crls, now));
            if found.certs.is_empty() {
                // A file of CRLs alone has its rows already.
                if place.reason.is_some() || found.crls.is_empty() {
                    out.push(place);
                }
                return;
            }
            for (i, c) in found.certs.iter().enumerate() {
                let mut row = certificate_row(&place, i, c, thresholds, now);
                if let Some(role) = found.roles.get(i) {
                    row.embedded_kind = Some(role.kind.as_str());
                    row.embedded_key = Some(&role.name);
                }
                out.push(row);
            }
        });
    }
    // No two rows compare equal, so an unstable sort (no buffer) is as
    // deterministic as a stable one.
    out.sort_unstable_by(Row::urgency_cmp);
    out
}

/// The row of the certificate at `index` in `place`.
fn certificate_row<'a>(
    place: &Row<'a>,
    index: usize,
    c: &'a CertFacts,
    thresholds: Thresholds,
    now: i64,
) -> Row<'a> {
    let status = thresholds
        .status(c.not_after, now)
        .max(place.findings_floor(now));
    Row {
        // A failing place stays an error whatever its certificates say:
        // the failure is what needs attention.
        status: if place.reason.is_some() {
            Status::Error
        } else {
            status
        },
        days_left: Some(c.not_after.saturating_sub(now) as f64 / 86_400.0),
        not_after: Some(c.not_after),
        subject_cn: &c.subject.cn,
        issuer_cn: &c.issuer.cn,
        serial_number: &c.serial_number,
        chain_index: Some(index),
        // The verdict compares leaves: it belongs to the leaf's row only.
        restart: place.restart.filter(|_| index == 0),
        ..place.clone()
    }
}

/// A file's CRLs as rows: each judged on its `nextUpdate` alone (CRLs
/// live days, not months, so the certificate thresholds do not apply):
/// OK until it passes, then EXPIRED with reason `crl_stale`.
fn crl_rows<'a>(place: &Row<'a>, crls: &'a [CrlFacts], now: i64) -> Vec<Row<'a>> {
    crls.iter()
        .enumerate()
        .map(|(i, crl)| {
            let stale = crl.is_stale(now);
            Row {
                status: if stale { Status::Expired } else { Status::Ok },
                days_left: crl
                    .next_update
                    .map(|n| n.saturating_sub(now) as f64 / 86_400.0),
                not_after: crl.next_update,
                issuer_cn: &crl.issuer.cn,
                serial_number: &crl.crl_number,
                chain_index: Some(i),
                reason: stale.then_some(FileErrorReason::CrlStale.as_str()),
                detail: stale.then_some(Cow::Borrowed("the CRL's nextUpdate has passed")),
                object: OBJECT_CRL,
                this_update: Some(crl.this_update),
                ..place.clone()
            }
        })
        .collect()
}

/// What a place yielded besides its row template.
#[derive(Clone, Copy)]
struct Found<'a> {
    /// Certificates, in file, store or chain order.
    certs: &'a [Arc<CertFacts>],
    /// For a kubeconfig, each certificate's role; empty otherwise.
    roles: &'a [Arc<CertRole>],
    /// A file's CRLs.
    crls: &'a [CrlFacts],
}

/// Calls `f` with every place a source saw, as a row template (no
/// certificate yet), and what was found there.
fn for_each_place<'a>(source: &'a SourceState, mut f: impl FnMut(Row<'a>, Found<'a>)) {
    let blank = Row {
        status: Status::Error,
        days_left: None,
        not_after: None,
        subject_cn: "",
        issuer_cn: "",
        serial_number: "",
        source_kind: source.kind.as_str(),
        source_name: &source.name,
        filepath: Cow::Borrowed(""),
        target: "",
        server_name: "",
        address: "",
        chain_index: None,
        reason: None,
        detail: None,
        restart: None,
        expect_file: None,
        object: OBJECT_CERTIFICATE,
        this_update: None,
        embedded_kind: None,
        embedded_key: None,
        ocsp_status: None,
        ocsp_next_update: None,
        chain_problems: Vec::new(),
        verified_chain_not_after: None,
    };
    match &source.data {
        SourceData::Files(scan) => {
            for (path, report) in scan.iter() {
                let place = Row {
                    filepath: path_label(path),
                    reason: report.error.as_ref().map(|e| e.reason.as_str()),
                    detail: report.error.as_ref().map(|e| printable(&e.detail)),
                    ..blank.clone()
                };
                f(
                    place,
                    Found {
                        certs: &report.certs,
                        roles: &report.roles,
                        crls: &report.crls,
                    },
                );
            }
        }
        SourceData::Endpoints(results) => {
            for (target, report) in results.targets.iter().zip(&results.reports) {
                // Not probed yet: nothing to say about it (the sources
                // report counts it).
                let Some(report) = report else { continue };
                let check = report.restart.as_ref();
                for (i, r) in report.addresses.iter().enumerate() {
                    let place = Row {
                        target: &target.target,
                        server_name: target.sni(),
                        address: &r.address,
                        reason: r.error.as_ref().map(|e| e.reason.as_str()),
                        detail: r.error.as_ref().map(|e| printable(&e.detail)),
                        restart: check.and_then(|c| c.verdict(i)).map(Restart::from),
                        expect_file: check.map(|c| path_label(&c.file)),
                        ..blank.clone()
                    };
                    f(
                        with_findings(place, r),
                        Found {
                            certs: &r.chain,
                            roles: &[],
                            crls: &[],
                        },
                    );
                }
            }
        }
    }
}

/// Adds a probed address's OCSP and chain findings to its row template;
/// a problem's detail stands in for a failure's when there is none.
fn with_findings<'a>(mut place: Row<'a>, r: &'a AddressReport) -> Row<'a> {
    if let Some(staple) = &r.ocsp {
        place.ocsp_status = Some(staple.as_ref().map_or("none", |s| s.status.as_str()));
        place.ocsp_next_update = staple.as_ref().and_then(|s| s.next_update);
    }
    if let Some(chain) = &r.chain_report {
        for p in &chain.problems {
            if !place.chain_problems.contains(&p.kind.as_str()) {
                place.chain_problems.push(p.kind.as_str());
            }
            if place.detail.is_none() {
                place.detail = Some(Cow::Borrowed(&p.detail));
            }
        }
        place.verified_chain_not_after = chain.verified.as_ref().map(|v| v.not_after);
    }
    place
}

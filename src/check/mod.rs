//! `certinel check`: run every source once and answer "what expires soon
//! here?" with a table (or JSON) and a Nagios-style exit code.
//!
//! It runs the daemon's own pipeline — [`scheduler::run_once`] into a
//! [`Store`] — and only formats the snapshot, so a check and the daemon
//! can never disagree about a certificate. Its arguments become a raw
//! configuration (`args`) validated like any configuration file; the
//! table is [`table`].

mod args;
mod table;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::Config;
use crate::snapshot::{SourceData, Store};
use crate::sources::endpoint::{AddressReport, OcspStatus};
use crate::{metrics, scheduler, textfile};

pub use args::{adhoc_config, merge};
pub use table::{table, use_colour};

/// Exit code: everything fine.
pub const EXIT_OK: u8 = 0;
/// Exit code: something below `--warn`.
pub const EXIT_WARN: u8 = 1;
/// Exit code: something below `--crit`, expired, or failing.
pub const EXIT_CRIT: u8 = 2;
/// Exit code: usage or configuration error, or nothing to check.
pub const EXIT_UNKNOWN: u8 = 3;

/// How a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// More than `--warn` left.
    Ok,
    /// Less than `--warn` left.
    Warn,
    /// Less than `--crit` left.
    Crit,
    /// NotAfter has passed.
    Expired,
    /// The file or probe failed.
    Error,
}

impl Status {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Crit => "CRIT",
            Status::Expired => "EXPIRED",
            Status::Error => "ERROR",
        }
    }

    pub(crate) fn colour(self) -> &'static str {
        match self {
            Status::Ok => "\x1b[32m",
            Status::Warn => "\x1b[33m",
            _ => "\x1b[31m",
        }
    }
}

/// One certificate in one place, or one failure with no certificate.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The verdict.
    pub status: Status,
    /// Days until NotAfter (negative once expired); absent for failures
    /// without a certificate.
    pub days_left: Option<f64>,
    /// NotAfter, Unix seconds.
    pub not_after: Option<i64>,
    /// Subject CN.
    pub subject_cn: String,
    /// Issuer CN.
    pub issuer_cn: String,
    /// Serial number, decimal.
    pub serial_number: String,
    /// `file` or `endpoint`.
    pub source_kind: &'static str,
    /// The source's name.
    pub source_name: String,
    /// File path (file sources).
    pub filepath: String,
    /// `host:port` (endpoint sources).
    pub target: String,
    /// Resolved address (endpoint sources).
    pub address: String,
    /// Position in the file or served chain.
    pub chain_index: Option<usize>,
    /// Error reason from the contract, if the place is failing.
    pub reason: Option<&'static str>,
    /// Error detail.
    pub detail: Option<String>,
    /// The stapled OCSP response's status (`good`, `revoked`, `unknown`,
    /// `unusable`), `none` when the server staples none; endpoint rows
    /// with a chain only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocsp_status: Option<&'static str>,
    /// nextUpdate of the stapled response, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocsp_next_update: Option<i64>,
    /// Problems with the served chain (`out_of_order`,
    /// `missing_intermediate`, `weak_signature`, `small_key`), each once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain_problems: Vec<&'static str>,
    /// Earliest NotAfter along the verified path, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_chain_not_after: Option<i64>,
}

impl Row {
    /// A failing row of a source, with nothing known yet.
    pub(crate) fn blank(source_kind: &'static str, source_name: &str) -> Row {
        Row {
            status: Status::Error,
            days_left: None,
            not_after: None,
            subject_cn: String::new(),
            issuer_cn: String::new(),
            serial_number: String::new(),
            source_kind,
            source_name: source_name.to_owned(),
            filepath: String::new(),
            target: String::new(),
            address: String::new(),
            chain_index: None,
            reason: None,
            detail: None,
            ocsp_status: None,
            ocsp_next_update: None,
            chain_problems: Vec::new(),
            verified_chain_not_after: None,
        }
    }

    /// The OCSP and chain findings, for the table's NOTES column.
    pub(crate) fn notes(&self) -> String {
        let mut notes = Vec::new();
        if let Some(status) = self.ocsp_status.filter(|s| *s != "none") {
            notes.push(format!("ocsp {status}"));
        }
        notes.extend(self.chain_problems.iter().map(|p| (*p).to_owned()));
        notes.join(", ")
    }
}

impl Row {
    pub(crate) fn place(&self) -> String {
        let base = if self.source_kind == "file" {
            self.filepath.clone()
        } else if self.address.is_empty() {
            self.target.clone()
        } else {
            format!("{} ({})", self.target, self.address)
        };
        match self.chain_index {
            Some(i) if i > 0 => format!("{base} #{i}"),
            _ => base,
        }
    }
}

/// Thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Below this: warn.
    pub warn: Duration,
    /// Below this: critical.
    pub crit: Duration,
}

/// Runs every source of `config` once and returns the rows, most urgent
/// first; also writes the textfile if asked.
pub async fn run(
    config: &Config,
    thresholds: Thresholds,
    textfile: Option<&Path>,
) -> Result<Vec<Row>, textfile::TextfileError> {
    let store = Arc::new(Store::new());
    scheduler::run_once(config, store.clone()).await;
    if let Some(path) = textfile {
        let registry = metrics::registry(store.clone());
        textfile::write_atomic(path, &textfile::render(&registry)?)?;
    }
    Ok(rows(&store, thresholds, SystemTime::now()))
}

/// Turns the snapshot into rows.
pub fn rows(store: &Store, t: Thresholds, now: SystemTime) -> Vec<Row> {
    let now = crate::clock::unix_secs(now);
    let status_of = |not_after: i64| {
        let left = not_after - now;
        if left < 0 {
            Status::Expired
        } else if left < t.crit.as_secs() as i64 {
            Status::Crit
        } else if left < t.warn.as_secs() as i64 {
            Status::Warn
        } else {
            Status::Ok
        }
    };
    let snapshot = store.load();
    let mut out = Vec::new();
    for source in &snapshot.sources {
        let blank = Row::blank(source.kind.as_str(), &source.name);
        // (place template, certificates) for every place seen; the
        // template's status is the floor of its certificates' statuses.
        let mut places = Vec::new();
        match &source.data {
            SourceData::Files(scan) => {
                for (path, report) in scan.iter() {
                    let place = Row {
                        status: Status::Ok,
                        filepath: crate::text::path_label(path).into_owned(),
                        reason: report.error.as_ref().map(|e| e.reason.as_str()),
                        detail: report.error.as_ref().map(|e| e.detail.clone()),
                        ..blank.clone()
                    };
                    places.push((place, &report.certs));
                }
            }
            SourceData::Endpoints(results) => {
                for (target, reports) in results.targets.iter().zip(&results.reports) {
                    for r in reports.iter().flat_map(|r| &r.addresses) {
                        let place = Row {
                            target: target.target.clone(),
                            address: r.address.clone(),
                            reason: r.error.as_ref().map(|e| e.reason.as_str()),
                            detail: r.error.as_ref().map(|e| e.detail.clone()),
                            ..blank.clone()
                        };
                        places.push((findings(place, r, now), &r.chain));
                    }
                }
            }
        }
        for (place, certs) in places {
            if certs.is_empty() {
                // No certificate: the file or probe failed.
                out.push(Row {
                    status: Status::Error,
                    ..place
                });
                continue;
            }
            for (i, c) in certs.iter().enumerate() {
                let status = status_of(c.not_after).max(place.status);
                out.push(Row {
                    status: if place.reason.is_some() {
                        Status::Error.max(status)
                    } else {
                        status
                    },
                    days_left: Some((c.not_after - now) as f64 / 86_400.0),
                    not_after: Some(c.not_after),
                    subject_cn: c.subject.cn.to_string(),
                    issuer_cn: c.issuer.cn.to_string(),
                    serial_number: c.serial_number.to_string(),
                    chain_index: Some(i),
                    ..place.clone()
                });
            }
        }
    }
    // Failures without a certificate first, then soonest expiry first.
    out.sort_by(|a, b| match (a.days_left, b.days_left) {
        (None, None) => a.place().cmp(&b.place()),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.place().cmp(&b.place())),
    });
    out
}

/// Adds a probed address's OCSP and chain findings to its row template,
/// raising its status floor (which is `Ok` until then, as nothing failed):
/// a revoked staple is an error, since clients that check it refuse the
/// connection; a chain problem, a stale, unknown or unusable staple is a
/// warning.
fn findings(mut place: Row, r: &AddressReport, now: i64) -> Row {
    place.status = Status::Ok;
    if let Some(staple) = &r.ocsp {
        place.ocsp_status = Some(staple.as_ref().map_or("none", |s| s.status.as_str()));
        if let Some(s) = staple {
            place.ocsp_next_update = s.next_update;
            let stale = s.next_update.is_some_and(|t| t < now);
            place.status = match s.status {
                OcspStatus::Revoked => Status::Error,
                OcspStatus::Good if !stale => Status::Ok,
                _ => Status::Warn,
            };
        }
    }
    if let Some(chain) = &r.chain_report {
        for p in &chain.problems {
            if !place.chain_problems.contains(&p.kind.as_str()) {
                place.chain_problems.push(p.kind.as_str());
            }
            if place.detail.is_none() {
                place.detail = Some(p.detail.clone());
            }
        }
        if !chain.problems.is_empty() {
            place.status = place.status.max(Status::Warn);
        }
        place.verified_chain_not_after = chain.verified.as_ref().map(|v| v.not_after);
    }
    place
}

/// The exit code for a set of rows.
pub fn exit_code(rows: &[Row]) -> u8 {
    if rows.is_empty() {
        return EXIT_UNKNOWN;
    }
    match rows.iter().map(|r| r.status).max() {
        Some(Status::Ok) | None => EXIT_OK,
        Some(Status::Warn) => EXIT_WARN,
        Some(_) => EXIT_CRIT,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A row of the file source `f` with `days` left.
    pub(in crate::check) fn row(status: Status, days: Option<f64>) -> Row {
        Row {
            status,
            days_left: days,
            not_after: days.map(|d| (d * 86_400.0) as i64),
            subject_cn: "cn".into(),
            filepath: "/x.pem".into(),
            chain_index: Some(0),
            ..Row::blank("file", "f")
        }
    }

    #[test]
    fn exit_code_is_the_worst_status() {
        assert_eq!(exit_code(&[row(Status::Ok, Some(90.0))]), EXIT_OK);
        assert_eq!(
            exit_code(&[row(Status::Ok, Some(90.0)), row(Status::Warn, Some(20.0))]),
            EXIT_WARN
        );
        assert_eq!(exit_code(&[row(Status::Crit, Some(2.0))]), EXIT_CRIT);
        assert_eq!(exit_code(&[row(Status::Expired, Some(-1.0))]), EXIT_CRIT);
        assert_eq!(exit_code(&[row(Status::Error, None)]), EXIT_CRIT);
        assert_eq!(exit_code(&[]), EXIT_UNKNOWN);
    }
}

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
use crate::sources::files::FileErrorReason;
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
    /// `certificate`, or `crl` for a CRL (its `not_after` and `days_left`
    /// are then its `nextUpdate`; `issuer_cn` names its issuer).
    pub object: &'static str,
    /// A CRL's `thisUpdate`, Unix seconds.
    pub this_update: Option<i64>,
    /// A kubeconfig certificate's role: `cluster` (CA) or `user`.
    pub embedded_kind: Option<&'static str>,
    /// A kubeconfig certificate's cluster or user name.
    pub embedded_key: Option<String>,
}

impl Row {
    /// A failure of `source_name` with nothing known yet: what every row
    /// starts from.
    pub(crate) fn blank(source_kind: &'static str, source_name: String) -> Row {
        Row {
            status: Status::Error,
            days_left: None,
            not_after: None,
            subject_cn: String::new(),
            issuer_cn: String::new(),
            serial_number: String::new(),
            source_kind,
            source_name,
            filepath: String::new(),
            target: String::new(),
            address: String::new(),
            chain_index: None,
            reason: None,
            detail: None,
            object: OBJECT_CERTIFICATE,
            this_update: None,
            embedded_kind: None,
            embedded_key: None,
        }
    }

    pub(crate) fn place(&self) -> String {
        let base = if self.source_kind == "file" {
            self.filepath.clone()
        } else if self.address.is_empty() {
            self.target.clone()
        } else {
            format!("{} ({})", self.target, self.address)
        };
        let base = match self.chain_index {
            Some(i) if self.object == OBJECT_CRL && i > 0 => return format!("{base} (CRL #{i})"),
            _ if self.object == OBJECT_CRL => return format!("{base} (CRL)"),
            Some(i) if i > 0 => format!("{base} #{i}"),
            _ => base,
        };
        match (self.embedded_kind, &self.embedded_key) {
            (Some(kind), Some(key)) => format!("{base} ({kind} {key})"),
            _ => base,
        }
    }
}

/// [`Row::object`] of a certificate.
pub const OBJECT_CERTIFICATE: &str = "certificate";
/// [`Row::object`] of a CRL.
pub const OBJECT_CRL: &str = "crl";

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
        let blank = Row::blank(source.kind.as_str(), source.name.clone());
        // (place template, certificates, roles) for every place seen.
        let mut places = Vec::new();
        match &source.data {
            SourceData::Files(scan) => {
                for (path, report) in scan.iter() {
                    let place = Row {
                        filepath: crate::text::path_label(path).into_owned(),
                        reason: report.error.as_ref().map(|e| e.reason.as_str()),
                        detail: report.error.as_ref().map(|e| e.detail.clone()),
                        ..blank.clone()
                    };
                    out.extend(crl_rows(&place, &report.crls, now));
                    // A file of CRLs alone has its rows already.
                    if report.certs.is_empty() && report.error.is_none() && !report.crls.is_empty()
                    {
                        continue;
                    }
                    places.push((place, &report.certs, report.roles.as_slice()));
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
                        places.push((place, &r.chain, &[]));
                    }
                }
            }
        }
        for (place, certs, roles) in places {
            if certs.is_empty() {
                out.push(place);
                continue;
            }
            for (i, c) in certs.iter().enumerate() {
                let status = status_of(c.not_after);
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
                    embedded_kind: roles.get(i).map(|r| r.kind.as_str()),
                    embedded_key: roles.get(i).map(|r| r.name.to_string()),
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

/// A file's CRLs as rows: each judged on its `nextUpdate` alone (CRLs
/// live days, not months, so the certificate thresholds do not apply):
/// OK until it passes, then EXPIRED with reason `crl_stale`.
fn crl_rows<'a>(
    place: &'a Row,
    crls: &'a [crate::cert::CrlFacts],
    now: i64,
) -> impl Iterator<Item = Row> + 'a {
    crls.iter().enumerate().map(move |(i, crl)| {
        let stale = crl.is_stale(now);
        Row {
            status: if stale { Status::Expired } else { Status::Ok },
            days_left: crl.next_update.map(|n| (n - now) as f64 / 86_400.0),
            not_after: crl.next_update,
            issuer_cn: crl.issuer.cn.to_string(),
            serial_number: crl.crl_number.to_string(),
            chain_index: Some(i),
            reason: stale.then_some(FileErrorReason::CrlStale.as_str()),
            detail: stale.then(|| "the CRL's nextUpdate has passed".to_owned()),
            object: OBJECT_CRL,
            this_update: Some(crl.this_update),
            ..place.clone()
        }
    })
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
            ..Row::blank("file", "f".into())
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

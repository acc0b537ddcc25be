//! What certinel knows, as rows people and scripts read: one [`Row`] per
//! certificate in every place it was seen (or per failing place that
//! yielded none), and one [`SourceRow`] per source.
//!
//! One model for every reader: `certinel check` prints it (table or
//! JSON), `/status` renders it as HTML and `/api/v1/...` serves it as
//! JSON, so the three can never disagree. It is built from a
//! [`Snapshot`] alone — no I/O — like `/metrics`.
//!
//! A new kind of fact is one field on [`Row`] (serialised under its own
//! name, documented in `docs/api.md`) and one line where the place or the
//! certificate is turned into a row.

mod filter;
mod rows;
mod sources;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::sources::endpoint::restart::Verdict;

pub use filter::{Filter, Summary, UnknownStatus, Which};
pub use rows::rows;
pub use sources::{sources, SourceRow};

/// How a row stands, least urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// More than the warning threshold left.
    Ok,
    /// Less than the warning threshold left.
    Warn,
    /// Less than the critical threshold left.
    Crit,
    /// NotAfter has passed.
    Expired,
    /// The file or probe failed.
    Error,
}

impl Status {
    /// Every status, least urgent first.
    pub const ALL: [Status; 5] = [
        Status::Ok,
        Status::Warn,
        Status::Crit,
        Status::Expired,
        Status::Error,
    ];

    /// The JSON value (and query parameter): `ok`, `warn`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Crit => "crit",
            Status::Expired => "expired",
            Status::Error => "error",
        }
    }

    /// The word people read: `OK`, `WARN`, …
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Crit => "CRIT",
            Status::Expired => "EXPIRED",
            Status::Error => "ERROR",
        }
    }
}

/// How the certificate a server presents relates to the one in the file it
/// loads at start-up (its `expect_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// The server presents the certificate in the file.
    Current,
    /// The file holds a newer certificate: restart the service.
    RestartPending,
    /// They differ, but the file is not newer (not yet synced, or rolled
    /// back): nothing to restart.
    FileBehind,
}

impl From<Verdict> for Restart {
    fn from(v: Verdict) -> Restart {
        match v {
            Verdict::Current => Restart::Current,
            Verdict::RestartPending => Restart::RestartPending,
            Verdict::FileBehind => Restart::FileBehind,
        }
    }
}

/// One certificate in one place, or one failing place with no certificate.
/// Serialised as documented in `docs/api.md`.
///
/// A row borrows its text from the snapshot it was built from: ten
/// thousand rows are built per request, and copying their strings cost
/// more than everything else a page does (and left the allocator holding
/// the copies). Text that must be escaped first is owned.
#[derive(Debug, Clone, Serialize)]
pub struct Row<'a> {
    /// The verdict.
    pub status: Status,
    /// Days until NotAfter (negative once expired); absent for failures
    /// without a certificate.
    pub days_left: Option<f64>,
    /// NotAfter, Unix seconds.
    pub not_after: Option<i64>,
    /// Subject CN.
    pub subject_cn: &'a str,
    /// Issuer CN.
    pub issuer_cn: &'a str,
    /// Serial number, decimal.
    pub serial_number: &'a str,
    /// `file` or `endpoint`.
    pub source_kind: &'static str,
    /// The source's name.
    pub source_name: &'a str,
    /// File path (file sources).
    pub filepath: Cow<'a, str>,
    /// `host:port` (endpoint sources).
    pub target: &'a str,
    /// The SNI sent (endpoint sources; empty for IP addresses).
    pub server_name: &'a str,
    /// Resolved address (endpoint sources).
    pub address: &'a str,
    /// Position in the file or served chain.
    pub chain_index: Option<usize>,
    /// Error reason from the contract, if the place is failing.
    pub reason: Option<&'static str>,
    /// Error detail.
    pub detail: Option<Cow<'a, str>>,
    /// The restart verdict of a served leaf (chain index 0 of an endpoint
    /// target with an `expect_file`), when there is one.
    pub restart: Option<Restart>,
    /// The target's `expect_file` (endpoint sources).
    pub expect_file: Option<Cow<'a, str>>,
    /// `certificate`, or `crl` for a CRL (its `not_after` and `days_left`
    /// are then its `nextUpdate`, `issuer_cn` its issuer, `serial_number`
    /// its `cRLNumber`).
    pub object: &'static str,
    /// A CRL's `thisUpdate`, Unix seconds.
    pub this_update: Option<i64>,
    /// A kubeconfig certificate's role: `cluster` (a CA) or `user`.
    pub embedded_kind: Option<&'static str>,
    /// A kubeconfig certificate's cluster or user name.
    pub embedded_key: Option<&'a str>,
    /// The stapled OCSP response's status (`good`, `revoked`, `unknown`,
    /// `unusable`), `none` when the server staples none; endpoint places
    /// whose server presented a chain only.
    pub ocsp_status: Option<&'static str>,
    /// nextUpdate of the stapled response, Unix seconds.
    pub ocsp_next_update: Option<i64>,
    /// Problems with the served chain (`out_of_order`,
    /// `missing_intermediate`, `weak_signature`, `small_key`), each once.
    pub chain_problems: Vec<&'static str>,
    /// Earliest NotAfter along the verified path, Unix seconds.
    pub verified_chain_not_after: Option<i64>,
}

/// [`Row::object`] of a certificate.
pub const OBJECT_CERTIFICATE: &str = "certificate";
/// [`Row::object`] of a CRL.
pub const OBJECT_CRL: &str = "crl";

impl Row<'_> {
    /// Where the certificate was seen, in one line: the file path, or
    /// `target (address)`, with `#i` below the leaf; a kubeconfig
    /// certificate's role after it, `(CRL)` after a CRL's file.
    pub fn place(&self) -> String {
        let base = if self.source_kind == "file" {
            self.filepath.to_string()
        } else if self.address.is_empty() {
            self.target.to_owned()
        } else {
            format!("{} ({})", self.target, self.address)
        };
        let base = match self.chain_index {
            Some(i) if self.object == OBJECT_CRL && i > 0 => return format!("{base} (CRL #{i})"),
            _ if self.object == OBJECT_CRL => return format!("{base} (CRL)"),
            Some(i) if i > 0 => format!("{base} #{i}"),
            _ => base,
        };
        match (self.embedded_kind, self.embedded_key) {
            (Some(kind), Some(key)) => format!("{base} ({kind} {key})"),
            _ => base,
        }
    }

    /// The OCSP and chain findings in one line (`ocsp revoked,
    /// out_of_order`), for the table's NOTES column.
    pub fn notes(&self) -> String {
        let mut notes = Vec::new();
        if let Some(status) = self.ocsp_status.filter(|s| *s != "none") {
            notes.push(format!("ocsp {status}"));
        }
        notes.extend(self.chain_problems.iter().map(|p| (*p).to_owned()));
        notes.join(", ")
    }

    /// The least status the place's OCSP and chain findings allow: a
    /// revoked staple is an error (clients that check it refuse the
    /// connection); a chain problem, or a stale, unknown or unusable
    /// staple, a warning.
    fn findings_floor(&self, now: i64) -> Status {
        let stale = self.ocsp_next_update.is_some_and(|t| t < now);
        let staple = match self.ocsp_status {
            Some("revoked") => Status::Error,
            Some("good") if stale => Status::Warn,
            Some("good" | "none") | None => Status::Ok,
            Some(_) => Status::Warn,
        };
        if self.chain_problems.is_empty() {
            staple
        } else {
            staple.max(Status::Warn)
        }
    }

    /// Whether the server must be restarted to serve the certificate in its
    /// file.
    pub fn restart_pending(&self) -> bool {
        self.restart == Some(Restart::RestartPending)
    }

    /// Most urgent first: failures without a certificate (by place), then
    /// soonest NotAfter first (by place among equals).
    fn urgency_cmp(&self, other: &Row<'_>) -> Ordering {
        let expiry = |r: &Row<'_>| (r.not_after.is_some(), r.not_after);
        expiry(self)
            .cmp(&expiry(other))
            .then_with(|| self.place_cmp(other))
    }

    /// The order of [`place`](Self::place), without building it, then by
    /// source: no two rows compare equal.
    fn place_cmp(&self, other: &Row<'_>) -> Ordering {
        self.place_key().cmp(&other.place_key())
    }

    fn place_key(&self) -> (&str, &str, Option<usize>, &str, &str) {
        let base = if self.source_kind == "file" {
            &self.filepath
        } else {
            self.target
        };
        (
            base,
            self.address,
            self.chain_index,
            self.object,
            self.source_name,
        )
    }
}

/// Where the bands start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Below this: warn.
    pub warn: Duration,
    /// Below this: critical.
    pub crit: Duration,
}

impl Default for Thresholds {
    /// 30 days and 7 days, as `certinel check` and the shipped alerts.
    fn default() -> Thresholds {
        Thresholds {
            warn: Duration::from_secs(30 * 86_400),
            crit: Duration::from_secs(7 * 86_400),
        }
    }
}

impl Thresholds {
    fn status(&self, not_after: i64, now: i64) -> Status {
        let left = not_after.saturating_sub(now);
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        if left < 0 {
            Status::Expired
        } else if left < secs(self.crit) {
            Status::Crit
        } else if left < secs(self.warn) {
            Status::Warn
        } else {
            Status::Ok
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row of the file source `f` with `days` left.
    pub(crate) fn row(status: Status, days: Option<f64>) -> Row<'static> {
        Row {
            status,
            days_left: days,
            not_after: days.map(|d| (d * 86_400.0) as i64),
            subject_cn: "cn",
            issuer_cn: "",
            serial_number: "",
            source_kind: "file",
            source_name: "f",
            filepath: "/x.pem".into(),
            target: "",
            server_name: "",
            address: "",
            chain_index: Some(0),
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
        }
    }

    #[test]
    fn findings_raise_the_status_floor() {
        let mut r = row(Status::Ok, Some(90.0));
        assert_eq!(r.findings_floor(0), Status::Ok);
        r.ocsp_status = Some("good");
        r.ocsp_next_update = Some(10);
        assert_eq!(r.findings_floor(5), Status::Ok);
        assert_eq!(r.findings_floor(20), Status::Warn);
        r.chain_problems.push("out_of_order");
        r.ocsp_next_update = None;
        assert_eq!(r.findings_floor(20), Status::Warn);
        r.ocsp_status = Some("revoked");
        assert_eq!(r.findings_floor(20), Status::Error);
        assert_eq!(r.notes(), "ocsp revoked, out_of_order");
    }

    #[test]
    fn bands_follow_the_thresholds() {
        let t = Thresholds::default();
        let day = 86_400;
        assert_eq!(t.status(-1, 0), Status::Expired);
        assert_eq!(t.status(0, 0), Status::Crit);
        assert_eq!(t.status(7 * day - 1, 0), Status::Crit);
        assert_eq!(t.status(7 * day, 0), Status::Warn);
        assert_eq!(t.status(30 * day, 0), Status::Ok);
        assert_eq!(t.status(i64::MIN, i64::MAX), Status::Expired);
    }

    #[test]
    fn places_order_like_their_text() {
        let mut a = row(Status::Ok, None);
        let mut b = a.clone();
        a.filepath = "/a.pem".into();
        b.filepath = "/b.pem".into();
        assert_eq!(a.place_cmp(&b), a.place().cmp(&b.place()));
        b.filepath = "/a.pem".into();
        b.chain_index = Some(1);
        assert_eq!(a.place_cmp(&b), Ordering::Less);
        assert_eq!(b.place(), "/a.pem #1");
    }
}

//! One row per source: is it up, when did it last complete a pass, how much
//! does it track and how much of it fails — what `x509_source_up` and the
//! `certinel_source_*` metrics say, for people and scripts.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::clock::unix_secs;
use crate::snapshot::{Snapshot, SourceData, SourceState};

/// A source's state. Serialised as documented in `docs/api.md`.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    /// `file` or `endpoint`.
    pub source_kind: &'static str,
    /// The source's name.
    pub source_name: String,
    /// Completed a pass within two intervals plus one timeout
    /// (`x509_source_up`).
    pub up: bool,
    /// When the last pass completed, Unix seconds; absent before the first.
    pub last_pass: Option<i64>,
    /// How long the last pass took, seconds.
    pub last_pass_duration_seconds: Option<f64>,
    /// The configured interval, seconds.
    pub interval_seconds: f64,
    /// Certificates currently tracked.
    pub certificates: usize,
    /// Files (file sources) or probed addresses (endpoint sources) seen in
    /// the last results.
    pub places: usize,
    /// Of those, how many are failing now.
    pub failing: usize,
    /// Configured targets (endpoint sources).
    pub targets: Option<usize>,
    /// Targets probed at least once (endpoint sources).
    pub targets_probed: Option<usize>,
    /// Targets whose server must be restarted to serve the certificate in
    /// its file (endpoint sources).
    pub restart_pending: Option<usize>,
    /// Failed reads or probes since start, by reason
    /// (`x509_source_errors_total`).
    pub errors_total: BTreeMap<&'static str, u64>,
}

/// Every source, in configuration order.
pub fn sources(snapshot: &Snapshot, now: SystemTime) -> Vec<SourceRow> {
    snapshot
        .sources
        .iter()
        .map(|s| source_row(s, now))
        .collect()
}

fn source_row(s: &SourceState, now: SystemTime) -> SourceRow {
    let mut row = SourceRow {
        source_kind: s.kind.as_str(),
        source_name: s.name.clone(),
        up: s.is_up(now),
        last_pass: s.last_pass.map(|p| unix_secs(p.finished_at)),
        last_pass_duration_seconds: s.last_pass.map(|p| p.duration.as_secs_f64()),
        interval_seconds: s.interval.as_secs_f64(),
        certificates: s.certificates,
        places: 0,
        failing: 0,
        targets: None,
        targets_probed: None,
        restart_pending: None,
        errors_total: s.errors_total.clone(),
    };
    match &s.data {
        SourceData::Files(scan) => {
            row.places = scan.len();
            row.failing = s.files_in_error;
        }
        SourceData::Endpoints(results) => {
            let reports: Vec<_> = results.reports.iter().flatten().collect();
            let addresses = reports.iter().flat_map(|r| &r.addresses);
            row.places = addresses.clone().count();
            row.failing = addresses.filter(|a| a.error.is_some()).count();
            row.targets = Some(results.targets.len());
            row.targets_probed = Some(reports.len());
            row.restart_pending = Some(
                reports
                    .iter()
                    .filter_map(|r| r.restart.as_ref())
                    .filter(|c| c.verdicts.iter().flatten().any(|v| v.as_gauge() == 1))
                    .count(),
            );
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_source_before_its_first_pass_is_down_and_empty() {
        let store = crate::scheduler::test_store(
            "files:\n  - name: f\n    paths: [/nonexistent/x.pem]\nendpoints:\n  - name: e\n    targets: [\"127.0.0.1:1\"]\n",
        );
        let rows = sources(&store.load(), SystemTime::now());
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].source_kind, rows[0].source_name.as_str()),
            ("file", "f")
        );
        assert!(!rows[0].up && rows[0].last_pass.is_none());
        assert_eq!(rows[1].targets, Some(1));
        assert_eq!(rows[1].targets_probed, Some(0));

        store.publish_files(0, Default::default(), Duration::from_millis(5));
        let rows = sources(&store.load(), SystemTime::now());
        assert!(rows[0].up);
        assert_eq!(rows[0].last_pass_duration_seconds, Some(0.005));
    }
}

//! `certinel check`: run every source once and answer "what expires soon
//! here?" with a table (or JSON) and a Nagios-style exit code.
//!
//! It runs the daemon's own pipeline — [`scheduler::run_once`] into a
//! [`Store`] — and only formats the snapshot, so a check and the daemon
//! can never disagree about a certificate.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::snapshot::{SourceData, Store};
use crate::{collector, scheduler, textfile};

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
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Crit => "CRIT",
            Status::Expired => "EXPIRED",
            Status::Error => "ERROR",
        }
    }

    fn colour(self) -> &'static str {
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
}

impl Row {
    fn place(&self) -> String {
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
    let store = Arc::new(Store::new(config));
    scheduler::run_once(config, store.clone()).await;
    if let Some(path) = textfile {
        let registry = collector::registry(store.clone());
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
        let blank = Row {
            status: Status::Error,
            days_left: None,
            not_after: None,
            subject_cn: String::new(),
            issuer_cn: String::new(),
            serial_number: String::new(),
            source_kind: source.kind.as_str(),
            source_name: source.name.clone(),
            filepath: String::new(),
            target: String::new(),
            address: String::new(),
            chain_index: None,
            reason: None,
            detail: None,
        };
        // (place template, certificates, error) for every place seen.
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
                        places.push((place, &r.chain));
                    }
                }
            }
        }
        for (place, certs) in places {
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

/// Renders rows as an aligned table; `colour` adds ANSI colours to the
/// status column.
pub fn table(rows: &[Row], colour: bool) -> String {
    let headers = [
        "STATUS",
        "DAYS LEFT",
        "NOT AFTER",
        "SUBJECT",
        "WHERE",
        "REASON",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.status.label().to_owned(),
                r.days_left.map(|d| format!("{d:.1}")).unwrap_or_default(),
                r.not_after.map(date).unwrap_or_default(),
                r.subject_cn.clone(),
                r.place(),
                r.reason.unwrap_or("").to_owned(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String; 6], status: Option<Status>| {
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            let right = i == 1;
            let (pre, post) = match status {
                Some(s) if i == 0 && colour => (s.colour(), "\x1b[0m"),
                _ => ("", ""),
            };
            if i > 0 {
                out.push_str("  ");
            }
            if right {
                out.push_str(&" ".repeat(pad));
            }
            let _ = write!(out, "{pre}{cell}{post}");
            if !right && i + 1 < row.len() {
                out.push_str(&" ".repeat(pad));
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &headers.map(str::to_owned), None);
    for (row, r) in cells.iter().zip(rows) {
        line(&mut out, row, Some(r.status));
    }
    out
}

/// Whether to colour: stdout is a terminal and `NO_COLOR` is unset.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn date(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .take(10)
        .collect()
}

/// Builds a config from `certinel check` arguments: each argument that
/// names an existing path or looks like one (has `/` or a glob character)
/// is a file pattern; `host:port` is an endpoint target.
pub fn adhoc_config(
    args: &[String],
    timeout: Duration,
    ca_file: Option<&Path>,
    server_name: Option<&str>,
) -> Result<Config, ConfigError> {
    use serde_norway::{Mapping, Value};
    let mut paths = Vec::new();
    let mut targets = Vec::new();
    for a in args {
        if is_file_arg(a) {
            paths.push(Value::from(a.as_str()));
        } else {
            targets.push(Value::from(a.as_str()));
        }
    }
    let mut root = Mapping::new();
    let mut global = Mapping::new();
    global.insert(
        "timeout".into(),
        humantime::format_duration(timeout).to_string().into(),
    );
    root.insert("global".into(), Value::Mapping(global));
    if !paths.is_empty() {
        let mut f = Mapping::new();
        f.insert("name".into(), "files".into());
        f.insert("paths".into(), Value::Sequence(paths));
        root.insert("files".into(), Value::Sequence(vec![Value::Mapping(f)]));
    }
    if !targets.is_empty() {
        let mut e = Mapping::new();
        e.insert("name".into(), "endpoints".into());
        e.insert("targets".into(), Value::Sequence(targets));
        if let Some(ca) = ca_file {
            e.insert("ca_file".into(), ca.to_string_lossy().into_owned().into());
        }
        if let Some(sn) = server_name {
            e.insert("server_name".into(), sn.into());
        }
        root.insert("endpoints".into(), Value::Sequence(vec![Value::Mapping(e)]));
    }
    let yaml = serde_norway::to_string(&Value::Mapping(root))
        .map_err(|e| ConfigError::Invalid(format!("arguments: {e}")))?;
    Config::from_yaml(&yaml, Path::new("."))
        .map_err(|e| ConfigError::Invalid(format!("arguments: {e}")))
}

fn is_file_arg(a: &str) -> bool {
    if Path::new(a).exists() {
        return true;
    }
    // `host:port` (or `[v6]:port`) with a numeric port and no path
    // separator is a target; anything else is a path or glob.
    let target = !a.contains('/')
        && matches!(a.rsplit_once(':'), Some((_, port)) if port.parse::<u16>().is_ok());
    !target
}

/// Adds the sources of `extra` to `base`, refusing name clashes.
pub fn merge(mut base: Config, extra: Config) -> Result<Config, ConfigError> {
    let names: Vec<&str> = base
        .files
        .iter()
        .map(|f| f.name.as_str())
        .chain(base.endpoints.iter().map(|e| e.name.as_str()))
        .collect();
    for name in extra
        .files
        .iter()
        .map(|f| &f.name)
        .chain(extra.endpoints.iter().map(|e| &e.name))
    {
        if names.contains(&name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "the config file already has a source named {name:?}, which certinel check uses for its arguments"
            )));
        }
    }
    base.files.extend(extra.files);
    base.endpoints.extend(extra.endpoints);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: Status, days: Option<f64>) -> Row {
        Row {
            status,
            days_left: days,
            not_after: days.map(|d| (d * 86_400.0) as i64),
            subject_cn: "cn".into(),
            issuer_cn: String::new(),
            serial_number: String::new(),
            source_kind: "file",
            source_name: "f".into(),
            filepath: "/x.pem".into(),
            target: String::new(),
            address: String::new(),
            chain_index: Some(0),
            reason: None,
            detail: None,
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

    #[test]
    fn arguments_are_told_apart() {
        assert!(is_file_arg("/etc/ssl/certs/x.pem"));
        assert!(is_file_arg("certs/*.pem"));
        assert!(is_file_arg("tls.crt"));
        assert!(!is_file_arg("example.com:443"));
        assert!(!is_file_arg("[::1]:8443"));
    }

    #[test]
    fn table_is_aligned_and_uncoloured_when_asked() {
        let t = table(
            &[row(Status::Warn, Some(20.0)), row(Status::Ok, Some(365.0))],
            false,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("STATUS  DAYS LEFT  NOT AFTER"), "{t}");
        assert!(lines[1].starts_with("WARN         20.0  1970-01-21"), "{t}");
        assert!(lines[2].starts_with("OK          365.0"), "{t}");
        assert!(!t.contains('\x1b'));
    }
}

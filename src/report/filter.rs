//! Narrowing rows down: by status (or restart pending), by source and by a
//! search over every text field — the filters of `/status` and of
//! `/api/v1/certificates` alike — and the counts per band.

use std::str::FromStr;

use super::{Row, Status};

/// Which rows a status filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Rows with this status.
    Status(Status),
    /// Served leaves whose server must be restarted.
    RestartPending,
}

impl Which {
    /// Every choice, most urgent first, as offered on the page.
    pub const ALL: [Which; 6] = [
        Which::Status(Status::Error),
        Which::Status(Status::Expired),
        Which::RestartPending,
        Which::Status(Status::Crit),
        Which::Status(Status::Warn),
        Which::Status(Status::Ok),
    ];

    /// The query parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Which::Status(s) => s.as_str(),
            Which::RestartPending => "restart_pending",
        }
    }

    fn keeps(self, row: &Row<'_>) -> bool {
        match self {
            Which::Status(s) => row.status == s,
            Which::RestartPending => row.restart_pending(),
        }
    }
}

/// A status filter value that is none of [`Which::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}: expected one of error, expired, restart_pending, crit, warn, ok")]
pub struct UnknownStatus(pub String);

impl FromStr for Which {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Which, UnknownStatus> {
        Which::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// What to keep; everything when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this status (or restart pending).
    pub which: Option<Which>,
    /// Only the source of this name.
    pub source: Option<String>,
    /// Only rows with this text (case-insensitive) in a text field.
    pub search: Option<String>,
}

impl Filter {
    /// Whether `row` passes.
    pub fn matches(&self, row: &Row<'_>) -> bool {
        self.which.is_none_or(|w| w.keeps(row))
            && self.source.as_ref().is_none_or(|s| s == row.source_name)
            && self.search.as_ref().is_none_or(|q| search(row, q))
    }

    /// Whether nothing is filtered out.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

fn search(row: &Row<'_>, needle: &str) -> bool {
    let fields = [
        row.subject_cn,
        row.issuer_cn,
        row.serial_number,
        row.source_name,
        &row.filepath,
        row.target,
        row.server_name,
        row.address,
        row.reason.unwrap_or(""),
        row.detail.as_deref().unwrap_or(""),
        row.expect_file.as_deref().unwrap_or(""),
    ];
    let needle = needle.trim();
    fields.iter().any(|f| contains_ignoring_case(f, needle))
}

/// Case-insensitive `contains`. ASCII needles (nearly all searches) are
/// compared byte by byte without allocating: ten thousand rows are
/// searched per request.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    if needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    } else {
        haystack.to_lowercase().contains(&needle.to_lowercase())
    }
}

/// How many rows are in each band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Every row.
    pub total: usize,
    /// Rows per status, indexed like [`Status::ALL`].
    by_status: [usize; Status::ALL.len()],
    /// Served leaves whose server must be restarted.
    pub restart_pending: usize,
}

impl Summary {
    /// Counts `rows`.
    pub fn of(rows: &[Row<'_>]) -> Summary {
        let mut s = Summary {
            total: rows.len(),
            ..Summary::default()
        };
        for r in rows {
            if let Some(n) = s.by_status.get_mut(r.status as usize) {
                *n += 1;
            }
            s.restart_pending += usize::from(r.restart_pending());
        }
        s
    }

    /// The rows a filter value keeps.
    pub fn count(&self, which: Which) -> usize {
        match which {
            Which::Status(s) => self.by_status.get(s as usize).copied().unwrap_or(0),
            Which::RestartPending => self.restart_pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;
    use crate::report::Restart;

    #[test]
    fn every_status_value_parses_back() {
        for w in Which::ALL {
            assert_eq!(w.as_str().parse::<Which>(), Ok(w));
        }
        let e = "bogus".parse::<Which>().unwrap_err().to_string();
        assert!(e.starts_with("unknown status \"bogus\""), "{e}");
    }

    #[test]
    fn filters_combine() {
        let mut a = row(Status::Warn, Some(20.0));
        a.subject_cn = "Straße.example";
        let mut b = row(Status::Ok, Some(90.0));
        b.source_name = "other";
        b.restart = Some(Restart::RestartPending);
        let f = |which, source: Option<&str>, search: Option<&str>| Filter {
            which,
            source: source.map(str::to_owned),
            search: search.map(str::to_owned),
        };
        let keeps = |f: Filter| [&a, &b].map(|r| f.matches(r));
        assert_eq!(keeps(Filter::default()), [true, true]);
        assert_eq!(
            keeps(f(Some(Which::Status(Status::Warn)), None, None)),
            [true, false]
        );
        assert_eq!(
            keeps(f(Some(Which::RestartPending), None, None)),
            [false, true]
        );
        assert_eq!(keeps(f(None, Some("other"), None)), [false, true]);
        assert_eq!(keeps(f(None, None, Some("STRASSE"))), [false, false]);
        assert_eq!(keeps(f(None, None, Some("STRAßE"))), [true, false]);
        assert_eq!(keeps(f(None, None, Some(" X.PEM "))), [true, true]);
        let summary = Summary::of(&[a, b]);
        assert_eq!(summary.total, 2);
        assert_eq!(summary.count(Which::Status(Status::Warn)), 1);
        assert_eq!(summary.count(Which::Status(Status::Expired)), 0);
        assert_eq!(summary.count(Which::RestartPending), 1);
    }
}

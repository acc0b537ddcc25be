//! The human output of `certinel check`: an aligned table, coloured on a
//! terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, UNIX_EPOCH};

use super::{Row, Status};

/// Renders rows as an aligned table; `colour` adds ANSI colours to the
/// status column.
pub fn table(rows: &[Row<'_>], colour: bool) -> String {
    let headers = [
        "STATUS",
        "DAYS LEFT",
        "NOT AFTER",
        "SUBJECT",
        "WHERE",
        "REASON",
        "NOTES",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.status.label().to_owned(),
                r.days_left.map(|d| format!("{d:.1}")).unwrap_or_default(),
                r.not_after.map(date).unwrap_or_default(),
                if r.object == crate::report::OBJECT_CRL {
                    format!("CRL of {}", r.issuer_cn)
                } else {
                    r.subject_cn.to_owned()
                },
                r.place(),
                r.reason.unwrap_or("").to_owned(),
                r.notes(),
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
    let line = |out: &mut String, row: &[String; 7], status: Option<Status>| {
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            let right = i == 1;
            let (pre, post) = match status {
                Some(s) if i == 0 && colour => (ansi(s), "\x1b[0m"),
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

/// The ANSI colour of a status: green, yellow, red.
fn ansi(status: Status) -> &'static str {
    match status {
        Status::Ok => "\x1b[32m",
        Status::Warn => "\x1b[33m",
        _ => "\x1b[31m",
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

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

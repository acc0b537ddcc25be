//! `certinel check`: run every source once and answer "what expires soon
//! here?" with a table (or JSON) and a Nagios-style exit code.
//!
//! It runs the daemon's own pipeline — [`scheduler::run_once`] into a
//! [`Store`] — and only formats the snapshot's [`report`], the rows
//! `/status` and `/api/v1/certificates` serve too, so a check and the
//! daemon can never disagree about a certificate. Its arguments become a raw
//! configuration (`args`) validated like any configuration file; the
//! table is [`table`].

mod args;
mod table;

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::snapshot::{Snapshot, Store};
use crate::{metrics, scheduler, textfile};

pub use crate::report::{rows, Row, Status, Thresholds};
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

/// Runs every source of `config` once and returns the results, for
/// [`rows`]; also writes the textfile if asked.
pub async fn run(
    config: &Config,
    textfile: Option<&Path>,
) -> Result<Arc<Snapshot>, textfile::TextfileError> {
    let store = Arc::new(Store::new());
    scheduler::run_once(config, store.clone()).await;
    if let Some(path) = textfile {
        let registry = metrics::registry(store.clone());
        textfile::write_atomic(path, &textfile::render(&registry)?)?;
    }
    Ok(store.load())
}

/// The exit code for a set of rows.
pub fn exit_code(rows: &[Row<'_>]) -> u8 {
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
mod tests {
    use super::*;
    use crate::report::tests::row;

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

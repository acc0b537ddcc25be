//! "Restart pending": the certificate a server presents versus the one in
//! the file it loads at start-up (the target's `expect_file`), decided
//! here once per probe — and again when the file changes — and stored as a
//! verdict that `certinel_served_cert_stale` only has to print.
//!
//! Services such as Varpulis read their certificate only when they start.
//! After cert-manager renews the secret the file is new, but the process
//! serves the old certificate until it is restarted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::AddressReport;
use crate::cert::CertFacts;
use crate::sources::files::{self, FileError, FileErrorReason};

/// How the served leaf relates to the file's leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The server presents the certificate in the file.
    Current,
    /// The file holds a newer certificate (later NotBefore): the process
    /// must be restarted to serve it.
    RestartPending,
    /// They differ but the served one is not older: the file has not
    /// caught up yet (kubelet syncs secrets with a delay), or the file was
    /// rolled back. Not a restart-pending case.
    FileBehind,
}

impl Verdict {
    /// The value of `certinel_served_cert_stale`.
    pub fn as_gauge(self) -> i64 {
        i64::from(self == Verdict::RestartPending)
    }
}

/// The restart-pending verdicts of one probe of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartCheck {
    /// The target's `expect_file`.
    pub file: PathBuf,
    /// Why the file has no leaf to compare with, if it has none.
    pub file_error: Option<FileError>,
    /// One per probed address, in the order of the probe's reports: `None`
    /// where the server presented no chain or the file has no leaf.
    pub verdicts: Vec<Option<Verdict>>,
}

/// The first certificate of an `expect_file`, or why there is none.
pub type Leaf = Result<Arc<CertFacts>, FileError>;

impl RestartCheck {
    /// Compares the leaf each address served with `leaf`, read from `file`.
    pub fn new(file: &Path, leaf: &Leaf, addresses: &[AddressReport]) -> RestartCheck {
        let verdicts = addresses
            .iter()
            .map(|a| {
                let served = a.chain.first()?;
                leaf.as_ref().ok().map(|on_disk| compare(served, on_disk))
            })
            .collect();
        RestartCheck {
            file: file.to_owned(),
            file_error: leaf.as_ref().err().cloned(),
            verdicts,
        }
    }

    /// The verdict for the address at `index` of the probe's reports.
    pub fn verdict(&self, index: usize) -> Option<Verdict> {
        self.verdicts.get(index).copied().flatten()
    }
}

/// Reads the first certificate of `path`, with the file source's safety
/// checks. Blocking.
pub fn read_leaf(path: &Path, max_file_size: u64) -> Leaf {
    let report = files::read_one(path, max_file_size);
    match (report.certs.into_iter().next(), report.error) {
        (Some(leaf), _) => Ok(leaf),
        (None, Some(e)) => Err(e),
        (None, None) => Err(FileError {
            reason: FileErrorReason::NoCertificateFound,
            detail: "no certificate found".to_owned(),
        }),
    }
}

/// Compares two leaves. Issuer and serial number identify a certificate
/// (a CA never reuses a serial); validity guards against test CAs that do.
pub fn compare(served: &CertFacts, on_disk: &CertFacts) -> Verdict {
    let same = served.serial_number == on_disk.serial_number
        && served.issuer == on_disk.issuer
        && served.not_before == on_disk.not_before
        && served.not_after == on_disk.not_after;
    if same {
        Verdict::Current
    } else if on_disk.not_before > served.not_before {
        Verdict::RestartPending
    } else {
        Verdict::FileBehind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::NameFields;

    fn facts(serial: &str, not_before: i64) -> CertFacts {
        CertFacts {
            sha256: [serial.len() as u8; 32],
            not_before,
            not_after: not_before + 90 * 86_400,
            serial_number: serial.into(),
            subject: NameFields::default(),
            issuer: Default::default(),
        }
    }

    #[test]
    fn newer_file_means_restart_pending() {
        let old = facts("1", 1_000);
        let new = facts("2", 2_000);
        assert_eq!(compare(&old, &old), Verdict::Current);
        assert_eq!(compare(&old, &new), Verdict::RestartPending);
        assert_eq!(compare(&new, &old), Verdict::FileBehind);
        assert_eq!(compare(&old, &new).as_gauge(), 1);
        assert_eq!(compare(&new, &old).as_gauge(), 0);
    }

    #[test]
    fn an_unreadable_file_gives_no_verdicts() {
        let file = Path::new("/nonexistent/tls.crt");
        let check = RestartCheck::new(file, &read_leaf(file, 1024), &[]);
        assert_eq!(
            check.file_error.map(|e| e.reason),
            Some(FileErrorReason::NotFound)
        );
        assert!(check.verdicts.is_empty());
    }
}

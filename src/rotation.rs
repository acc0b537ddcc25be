//! "Restart pending": the certificate a server presents versus the one in
//! the file it loads at start-up.
//!
//! Services such as Varpulis read their certificate only when they start.
//! After cert-manager renews the secret the file is new, but the process
//! serves the old certificate until it is restarted. An endpoint target
//! with `expect_file` names that file; after each probe certinel reads the
//! file's leaf (the first certificate) and compares it with the served
//! leaf.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cert::CertFacts;
use crate::sources::files::{self, FileError, FileErrorReason};

/// The leaf of an `expect_file`, as read right after a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFile {
    /// The configured path.
    pub path: PathBuf,
    /// Its first certificate, or why there is none.
    pub leaf: Result<Arc<CertFacts>, FileError>,
}

/// Reads the leaf of `path` with the file source's safety checks.
/// Blocking.
pub fn read_expected(path: &Path, max_file_size: u64) -> ExpectedFile {
    let report = files::read_one(path, max_file_size);
    let leaf = match (report.certs.into_iter().next(), report.error) {
        (Some(leaf), _) => Ok(leaf),
        (None, Some(e)) => Err(e),
        (None, None) => Err(FileError {
            reason: FileErrorReason::NoCertificateFound,
            detail: "no certificate found".to_owned(),
        }),
    };
    ExpectedFile {
        path: path.to_owned(),
        leaf,
    }
}

/// How the served leaf relates to the file's leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// The server presents the certificate in the file.
    Same,
    /// The file holds a newer certificate (later NotBefore): the process
    /// must be restarted to serve it.
    RestartPending,
    /// They differ but the served one is not older: the file has not
    /// caught up yet (kubelet syncs secrets with a delay), or the file was
    /// rolled back. Not a restart-pending case.
    ServedNewer,
}

impl Staleness {
    /// The value of `certinel_served_cert_stale`.
    pub fn as_gauge(self) -> i64 {
        i64::from(self == Staleness::RestartPending)
    }
}

/// Compares two leaves. Issuer and serial number identify a certificate
/// (a CA never reuses a serial); validity guards against test CAs that do.
pub fn compare(served: &CertFacts, on_disk: &CertFacts) -> Staleness {
    let same = served.serial_number == on_disk.serial_number
        && served.issuer == on_disk.issuer
        && served.not_before == on_disk.not_before
        && served.not_after == on_disk.not_after;
    if same {
        Staleness::Same
    } else if on_disk.not_before > served.not_before {
        Staleness::RestartPending
    } else {
        Staleness::ServedNewer
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
            issuer: NameFields::default(),
        }
    }

    #[test]
    fn newer_file_means_restart_pending() {
        let old = facts("1", 1_000);
        let new = facts("2", 2_000);
        assert_eq!(compare(&old, &old), Staleness::Same);
        assert_eq!(compare(&old, &new), Staleness::RestartPending);
        assert_eq!(compare(&new, &old), Staleness::ServedNewer);
        assert_eq!(compare(&old, &new).as_gauge(), 1);
        assert_eq!(compare(&new, &old).as_gauge(), 0);
    }
}

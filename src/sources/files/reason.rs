//! Why a file cannot be used: the closed `reason` set of
//! `certinel_file_error_info`, and how errors map onto it.

use std::fmt;
use std::io;

use crate::cert::DecodeError;

/// Why a file cannot be used: the closed `reason` set of
/// `certinel_file_error_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileErrorReason {
    /// The path does not exist (or is a broken symlink).
    NotFound,
    /// No permission to read it (or to list its directory).
    PermissionDenied,
    /// A directory, FIFO, socket or device where a file was expected.
    NotRegularFile,
    /// Larger than the configured `max_file_size`.
    TooLarge,
    /// Any other I/O failure, a symlink loop among them.
    ReadFailed,
    /// PEM armour present but broken.
    BadPem,
    /// A certificate block that does not decode.
    DecodeFailed,
    /// Readable, but no certificate in it.
    NoCertificateFound,
    /// A keystore that does not open with the configured password
    /// (x509-certificate-exporter's name for it).
    BadPassphrase,
    /// A keystore that needs a password, and none is configured or the
    /// configured one cannot be read.
    PassphraseRequired,
    /// A CRL whose `nextUpdate` has passed: relying parties refuse every
    /// certificate it covers. Decided at scrape time, like
    /// `x509_cert_expired`.
    CrlStale,
}

impl FileErrorReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileErrorReason::NotFound => "not_found",
            FileErrorReason::PermissionDenied => "permission_denied",
            FileErrorReason::NotRegularFile => "not_regular_file",
            FileErrorReason::TooLarge => "too_large",
            FileErrorReason::ReadFailed => "read_failed",
            FileErrorReason::BadPem => "bad_pem",
            FileErrorReason::DecodeFailed => "decode_failed",
            FileErrorReason::NoCertificateFound => "no_certificate_found",
            FileErrorReason::BadPassphrase => "bad_passphrase",
            FileErrorReason::PassphraseRequired => "passphrase_required",
            FileErrorReason::CrlStale => "crl_stale",
        }
    }

    pub(super) fn from_io(e: &io::Error) -> FileErrorReason {
        match e.kind() {
            io::ErrorKind::NotFound => FileErrorReason::NotFound,
            io::ErrorKind::PermissionDenied => FileErrorReason::PermissionDenied,
            _ => FileErrorReason::ReadFailed,
        }
    }

    pub(super) fn from_decode(e: &DecodeError) -> FileErrorReason {
        match e {
            DecodeError::BadPem(_) => FileErrorReason::BadPem,
            DecodeError::DecodeFailed(_) => FileErrorReason::DecodeFailed,
            DecodeError::NoCertificateFound => FileErrorReason::NoCertificateFound,
            DecodeError::BadPassphrase(_) => FileErrorReason::BadPassphrase,
            DecodeError::PassphraseRequired(_) => FileErrorReason::PassphraseRequired,
        }
    }
}

impl fmt::Display for FileErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file problem: the reason for the metric, the detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The contract reason.
    pub reason: FileErrorReason,
    /// Human detail ("missing END line", the OS error, …).
    pub detail: String,
}

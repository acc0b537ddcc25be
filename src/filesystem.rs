//! Reading files certinel does not control: certificates, `expect_file`s,
//! the configuration and the web configuration.
//!
//! Any of them may be swapped for a FIFO, a device or a huge file behind
//! our back, so a file is only read when it is a regular file under a size
//! cap, and it is opened non-blocking: `open()` on a FIFO then returns at
//! once instead of waiting for a writer that may never come.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Identity of a file's content as far as `stat` can tell: a file whose
/// identity is unchanged need not be read again. Follows symlinks, so a
/// Kubernetes `..data` swap changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    /// Nanoseconds since the epoch (one word instead of two: the cache
    /// holds one identity per file, 100 000 of them at scale; saturating
    /// past the year 2262, where the size, inode and ctime still tell
    /// rewrites apart).
    mtime: i64,
    /// As `mtime`.
    ctime: i64,
}

/// `seconds` and `nanoseconds` since the epoch as one count of nanoseconds.
fn nanos(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

impl FileIdentity {
    /// The identity `meta` describes.
    pub(crate) fn of(meta: &Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The identity of `path` now; `None` when it cannot be `stat`ed.
    pub(crate) fn stat(path: &Path) -> Option<FileIdentity> {
        std::fs::metadata(path).ok().map(|m| FileIdentity::of(&m))
    }
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The operating system refused (not found, permission, loop, …).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A directory, FIFO, socket or device.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// Larger than the cap; never read.
    #[error("{size} bytes exceeds the limit of {cap} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Grew past the cap while being read.
    #[error("grew past the limit of {cap} bytes while being read")]
    Grew {
        /// The cap.
        cap: u64,
    },
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// `stat`s `path` (following symlinks) and checks that it may be read: a
/// regular file no larger than `cap`.
pub(crate) fn stat_regular(path: &Path, cap: u64) -> Result<Metadata, ReadError> {
    let meta = std::fs::metadata(path)?;
    check_regular(&meta, cap)?;
    Ok(meta)
}

fn check_regular(meta: &Metadata, cap: u64) -> Result<(), ReadError> {
    if !meta.is_file() {
        return Err(ReadError::NotRegular(file_type_name(meta)));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            cap,
        });
    }
    Ok(())
}

/// Reads `path` whole if it is a regular file of at most `cap` bytes.
/// Blocking, but never for long: no FIFO, device or oversized file is read.
pub(crate) fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file: File = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    // Checked on the open file, not the path: what was a file at `stat`
    // time may be a FIFO by now.
    let meta = file.metadata()?;
    check_regular(&meta, cap)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::Grew { cap });
    }
    Ok(bytes)
}

/// A human name for a file's type, for error details.
pub(crate) fn file_type_name(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Makes a FIFO at `path` (for tests of code that must not wait on one).
    pub(crate) fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo takes no other pointer.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo {}", path.display());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        assert!(matches!(
            read_regular(&fifo, 1024),
            Err(ReadError::NotRegular("FIFO"))
        ));
        assert!(matches!(
            stat_regular(&fifo, 1024),
            Err(ReadError::NotRegular("FIFO"))
        ));
    }

    #[test]
    fn size_is_capped_before_and_while_reading() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::write(&f, vec![b'x'; 100]).unwrap();
        assert!(matches!(
            read_regular(&f, 99),
            Err(ReadError::TooLarge { size: 100, cap: 99 })
        ));
        assert_eq!(read_regular(&f, 100).unwrap().len(), 100);
    }

    #[test]
    fn identity_changes_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, "1").unwrap();
        let before = FileIdentity::stat(&f).unwrap();
        std::fs::write(&f, "22").unwrap();
        assert_ne!(FileIdentity::stat(&f), Some(before));
        assert_eq!(FileIdentity::stat(&dir.path().join("absent")), None);
    }
}

//! Text from the outside world made fit for label values and log lines.
//!
//! Certificate names and file names may hold anything: NUL, ESC, CR, bytes
//! that are not UTF-8. Exported raw they make labels unreadable, and lossy
//! conversion (`U+FFFD` for every bad byte) makes two different file names
//! the same label value. Both are escaped instead, as `\xNN`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// `s` with every control character (C0, DEL, C1) written as `\xNN`
/// (`\u{NNNN}` above U+00FF is never needed: C1 ends at U+009F).
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_char(&mut out, c);
    }
    Cow::Owned(out)
}

/// A path as a label value: UTF-8 as it is, but control characters,
/// bytes that are not UTF-8 and the backslash itself as `\xNN`, so two
/// different names never read the same (a file literally named `a\xff`
/// becomes `a\x5cxff`).
pub(crate) fn path_label(path: &Path) -> Cow<'_, str> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.contains('\\') {
            return printable(s);
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\x5c");
            } else {
                push_char(&mut out, c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

fn push_char(out: &mut String, c: char) {
    if c.is_control() {
        let _ = write!(out, "\\x{:02x}", u32::from(c));
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain name"), "plain name");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\0b\x1b[31mc\r\n"),
            "a\\x00b\\x1b[31mc\\x0d\\x0a"
        );
        assert_eq!(printable("\u{85}é"), "\\x85é");
    }

    #[test]
    fn paths_that_differ_only_in_invalid_bytes_stay_different() {
        let a = Path::new(OsStr::from_bytes(b"/certs/a\xff.pem"));
        let b = Path::new(OsStr::from_bytes(b"/certs/a\xfe.pem"));
        assert_eq!(path_label(a), "/certs/a\\xff.pem");
        assert_ne!(path_label(a), path_label(b));
        assert_eq!(path_label(Path::new("/certs/ü.pem")), "/certs/ü.pem");
        // A name that spells an escape is not the byte it spells.
        let spelled = Path::new("/certs/a\\xff.pem");
        assert_eq!(path_label(spelled), "/certs/a\\x5cxff.pem");
        assert_ne!(path_label(spelled), path_label(a));
    }
}

//! A file source's keystore password, read once per pass from its
//! `password_file` or `password_env`.
//!
//! The password is a secret: it is read with the same care as a
//! certificate file (regular file, size cap, non-blocking open), kept only
//! for the pass, overwritten when dropped, and never logged, exported or
//! printed — its `Debug` says only whether there is one.

use std::fmt;

use super::read::Dependency;
use crate::config::PasswordSource;
use crate::filesystem::{self, FileIdentity};

/// A password is a line, not a document: anything larger is a mistake.
const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// What a pass has for its keystores.
pub(crate) enum Password {
    /// None configured.
    None,
    /// The configured password.
    Text(Secret),
    /// Configured, but it cannot be read now: why (no secret in it).
    Unavailable(String),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::None => f.write_str("None"),
            Password::Text(_) => f.write_str("Text(<redacted>)"),
            Password::Unavailable(why) => f.debug_tuple("Unavailable").field(why).finish(),
        }
    }
}

/// Password bytes, zeroed when dropped.
pub(crate) struct Secret(Vec<u8>);

impl Secret {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the writes from being optimised away as dead stores.
        std::hint::black_box(&self.0);
    }
}

impl Password {
    /// Reads the password `source` names, and the identity of its file (a
    /// dependency of every file the pass reads: a changed password must
    /// re-open the keystores).
    pub(crate) fn load(source: Option<&PasswordSource>) -> (Password, Option<Dependency>) {
        match source {
            None => (Password::None, None),
            Some(PasswordSource::Env(name)) => match std::env::var_os(name) {
                Some(value) => (Password::Text(Secret(value.into_encoded_bytes())), None),
                None => (
                    Password::Unavailable(format!("password_env {name} is not set")),
                    None,
                ),
            },
            Some(PasswordSource::File(path)) => {
                let dependency = Dependency {
                    path: path.clone(),
                    identity: FileIdentity::stat(path),
                };
                let password = match filesystem::read_regular(path, MAX_PASSWORD_FILE) {
                    Ok(bytes) => Password::Text(Secret(trim_line_break(bytes))),
                    Err(e) => {
                        Password::Unavailable(format!("password_file {}: {e}", display(path)))
                    }
                };
                (password, Some(dependency))
            }
        }
    }
}

fn display(path: &std::path::Path) -> String {
    crate::text::path_label(path).into_owned()
}

/// `echo secret > file` writes a line break the password does not have;
/// a Kubernetes Secret key holds the bytes exactly. One trailing `\n` (or
/// `\r\n`) is dropped, nothing else.
fn trim_line_break(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_line_break_is_dropped() {
        assert_eq!(trim_line_break(b"secret\n".to_vec()), b"secret");
        assert_eq!(trim_line_break(b"secret\r\n".to_vec()), b"secret");
        assert_eq!(trim_line_break(b"secret\n\n".to_vec()), b"secret\n");
        assert_eq!(trim_line_break(b" secret ".to_vec()), b" secret ");
        assert_eq!(trim_line_break(Vec::new()), b"");
    }

    #[test]
    fn a_password_file_is_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "hunter2\n").unwrap();
        let (password, dependency) = Password::load(Some(&PasswordSource::File(file.clone())));
        let Password::Text(secret) = &password else {
            panic!("{password:?}")
        };
        assert_eq!(secret.bytes(), b"hunter2");
        assert!(!format!("{password:?}").contains("hunter2"));
        assert!(dependency.unwrap().identity.is_some());
        let (missing, _) = Password::load(Some(&PasswordSource::File(dir.path().join("absent"))));
        assert!(matches!(missing, Password::Unavailable(ref why) if why.contains("absent")));
    }
}

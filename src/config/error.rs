//! What can be wrong with a configuration file, worded for the person who
//! has to fix it: every message names the key and, where the file has
//! one, the line.

use std::fmt;
use std::path::PathBuf;

/// Everything that can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, not a regular file, too
    /// large, not UTF-8).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax, an unknown key or a value of the wrong type, as the
    /// YAML parser words it (with key path and line).
    #[error("{0}")]
    Syntax(String),
    /// A value that parsed but is not acceptable.
    #[error("{}", Located { key, line: *line, message })]
    Invalid {
        /// The key path, e.g. `files[0].interval`; empty for the file.
        key: String,
        /// The line of the key (or of its nearest ancestor).
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// Loading did not finish in time (the file is not going to load).
    #[error("reading and checking the configuration took longer than {0:?}")]
    Deadline(std::time::Duration),
}

struct Located<'a> {
    key: &'a str,
    line: Option<usize>,
    message: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(self.message)?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_key_and_line() {
        let e = ConfigError::Invalid {
            key: "files[0].interval".into(),
            line: Some(4),
            message: "invalid duration".into(),
        };
        assert_eq!(
            e.to_string(),
            "files[0].interval: invalid duration at line 4"
        );
        let e = ConfigError::Invalid {
            key: String::new(),
            line: None,
            message: "config file is empty".into(),
        };
        assert_eq!(e.to_string(), "config file is empty");
    }
}

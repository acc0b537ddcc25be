//! The `--web.config.file`: TLS, mutual TLS, basic auth and response
//! headers, in the exporter-toolkit format every Prometheus exporter reads
//! (see WEB-CONFIG.md).
//!
//! The file and every file it names are re-read when they change: certinel
//! never needs a restart for its own certificate rotation, the problem it
//! exists to expose. A change is noticed by `stat` at most once a second,
//! on the next connection or request; a reload that fails (a half-written
//! file, a key that does not match the certificate yet) keeps the previous
//! settings and logs a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::http::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;

use super::auth::{self, Credentials};
use super::headers;
use super::tls;
use crate::filesystem::{self, FileIdentity, ReadError};

/// How often, at most, the files are `stat`ed for changes.
const RECHECK: Duration = Duration::from_secs(1);
/// Files the web config names are kilobytes; anything larger is a mistake.
const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Why a web config file was refused. Every message names the offending key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebConfigError {
    /// The web config file itself cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The web config file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Not YAML, an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A file that `key` names cannot be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    File {
        /// The key, e.g. `tls_server_config.cert_file`.
        key: String,
        /// The file, resolved against the web config file's directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A value is present but wrong.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `basic_auth_users.alice`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A key of the exporter-toolkit format that certinel does not implement.
    #[error("{key}: not supported by certinel{hint}")]
    Unsupported {
        /// The key, e.g. `rate_limit`.
        key: String,
        /// What to do instead, starting with "; " (or empty).
        hint: &'static str,
    },
}

impl WebConfigError {
    pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// The file, as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    // Known to exporter-toolkit but not implemented here: accepted by the
    // parser only to be refused with a clearer message than "unknown field".
    #[serde(default)]
    rate_limit: Option<serde_norway::Value>,
}

/// `tls_server_config`, as written; turned into a rustls config by
/// [`tls::server_config`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    pub(super) cert_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) key_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) client_auth_type: Option<String>,
    #[serde(default)]
    pub(super) min_version: Option<String>,
    #[serde(default)]
    pub(super) max_version: Option<String>,
    #[serde(default)]
    cert: Option<serde_norway::Value>,
    #[serde(default)]
    key: Option<serde_norway::Value>,
    #[serde(default)]
    client_ca: Option<serde_norway::Value>,
    #[serde(default)]
    client_allowed_sans: Option<serde_norway::Value>,
    #[serde(default)]
    cipher_suites: Option<serde_norway::Value>,
    #[serde(default)]
    curve_preferences: Option<serde_norway::Value>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<serde_norway::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

impl RawWebConfig {
    fn reject_unsupported(&self) -> Result<(), WebConfigError> {
        let unsupported = |key: &str, hint: &'static str| WebConfigError::Unsupported {
            key: key.to_owned(),
            hint,
        };
        if self.rate_limit.is_some() {
            return Err(unsupported("rate_limit", ""));
        }
        if let Some(http) = &self.http_server_config {
            if http.http2 == Some(true) {
                return Err(unsupported(
                    "http_server_config.http2",
                    "; certinel serves HTTP/1.1 only: remove the key or set it to false",
                ));
            }
        }
        let Some(tls) = &self.tls_server_config else {
            return Ok(());
        };
        let inline = "; put the PEM in a file and name it with the matching *_file key";
        let keys: [(&str, bool, &'static str); 7] = [
            ("cert", tls.cert.is_some(), inline),
            ("key", tls.key.is_some(), inline),
            ("client_ca", tls.client_ca.is_some(), inline),
            ("client_allowed_sans", tls.client_allowed_sans.is_some(), ""),
            (
                "cipher_suites",
                tls.cipher_suites.is_some(),
                "; rustls offers only modern cipher suites",
            ),
            ("curve_preferences", tls.curve_preferences.is_some(), ""),
            (
                "prefer_server_cipher_suites",
                tls.prefer_server_cipher_suites.is_some(),
                "",
            ),
        ];
        match keys.iter().find(|(_, present, _)| *present) {
            Some((key, _, hint)) => Err(unsupported(&format!("tls_server_config.{key}"), hint)),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// Validated settings.

/// One consistent reading of the web config file and the files it names.
pub(super) struct Settings {
    /// `None`: plain HTTP.
    pub(super) tls: Option<Arc<ServerConfig>>,
    /// `basic_auth_users`; empty: no basic auth.
    pub(super) users: Credentials,
    /// `http_server_config.headers`, added to every response.
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    /// Every file read, with its identity before it was read.
    stamps: Vec<(PathBuf, Option<FileIdentity>)>,
}

impl Settings {
    fn load(path: &Path) -> Result<Settings, WebConfigError> {
        let mut stamps = vec![(path.to_owned(), FileIdentity::stat(path))];
        let bytes =
            filesystem::read_regular(path, MAX_FILE_SIZE).map_err(|e| WebConfigError::Read {
                path: path.to_owned(),
                source: io_error(e),
            })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| WebConfigError::Syntax(format!("{}: not UTF-8 text", path.display())))?;
        // An empty file is a valid (empty) configuration, as in exporter-toolkit.
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_norway::from_str(&text).map_err(|e| WebConfigError::Syntax(e.to_string()))?
        };
        raw.reject_unsupported()?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let tls = match raw.tls_server_config {
            Some(tls) => Some(Arc::new(tls::server_config(tls, dir, &mut stamps)?)),
            None => None,
        };
        let users = auth::Credentials::check(raw.basic_auth_users.unwrap_or_default())?;
        let headers = match raw.http_server_config.and_then(|h| h.headers) {
            Some(headers) => headers::check(headers)?,
            None => Vec::new(),
        };
        Ok(Settings {
            tls,
            users,
            headers,
            stamps,
        })
    }

    fn changed(&self) -> bool {
        self.stamps
            .iter()
            .any(|(path, old)| FileIdentity::stat(path) != *old)
    }
}

/// Relative paths are relative to the web config file, as in exporter-toolkit.
pub(super) fn resolve(dir: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

/// Reads a file the web config names under `key`.
pub(super) fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, WebConfigError> {
    filesystem::read_regular(path, MAX_FILE_SIZE).map_err(|e| WebConfigError::File {
        key: key.to_owned(),
        path: path.to_owned(),
        source: io_error(e),
    })
}

/// `io::Error` is what the error variants carry: a file that is not
/// regular or too large is reported as invalid input.
fn io_error(e: ReadError) -> io::Error {
    match e {
        ReadError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}

// ---------------------------------------------------------------------------
// The live configuration.

/// A loaded `--web.config.file`: TLS (optionally mutual), basic auth and
/// response headers, in the exporter-toolkit format. It follows its files:
/// see the module docs.
pub struct WebConfig {
    path: PathBuf,
    live: ArcSwap<Settings>,
    /// When the files were last `stat`ed.
    last_check: Mutex<Instant>,
    /// The last failed reload's message, to log each failure once.
    last_error: Mutex<Option<String>>,
    /// Basic-auth verifications, cached across requests.
    pub(super) verifier: auth::Verifier,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the hashes.
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls_enabled())
            .field("basic_auth", &self.basic_auth_enabled())
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Reads and checks the web config file and every file it names: the
    /// certificate and key must parse and belong together, the client CA
    /// must be given when `client_auth_type` verifies against it, and every
    /// `basic_auth_users` value must be a bcrypt hash. Relative paths are
    /// relative to the web config file's directory.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let settings = Settings::load(path)?;
        Ok(WebConfig {
            path: path.to_owned(),
            live: ArcSwap::from_pointee(settings),
            last_check: Mutex::new(Instant::now()),
            last_error: Mutex::new(None),
            verifier: auth::Verifier::default(),
        })
    }

    /// Whether the main listener speaks TLS (fixed for the process's life).
    pub(super) fn tls_enabled(&self) -> bool {
        self.live.load().tls.is_some()
    }

    /// Whether requests need basic-auth credentials (currently).
    pub(super) fn basic_auth_enabled(&self) -> bool {
        !self.live.load().users.is_empty()
    }

    /// Logs what the listener will do with this configuration.
    pub(super) fn log_loaded(&self) {
        tracing::info!(
            path = %self.path.display(),
            tls = self.tls_enabled(),
            basic_auth = self.basic_auth_enabled(),
            "web config loaded"
        );
    }

    /// The current settings, re-read first when a file changed (checked at
    /// most once per [`RECHECK`]).
    pub(super) async fn current(self: &Arc<Self>) -> Arc<Settings> {
        if self.recheck_due() {
            let this = Arc::clone(self);
            if let Err(e) = tokio::task::spawn_blocking(move || this.refresh()).await {
                tracing::warn!(error = %e, "web config reload task failed");
            }
        }
        self.live.load_full()
    }

    fn recheck_due(&self) -> bool {
        // Someone else checking right now: use what there is.
        let Ok(mut last) = self.last_check.try_lock() else {
            return false;
        };
        if last.elapsed() < RECHECK {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// Blocking: `stat`s, and on a change reads and parses files.
    fn refresh(&self) {
        let current = self.live.load();
        if !current.changed() {
            return;
        }
        let result = Settings::load(&self.path).and_then(|new| {
            if new.tls.is_some() == current.tls.is_some() {
                Ok(new)
            } else {
                Err(WebConfigError::invalid(
                    "tls_server_config",
                    "switching TLS on or off needs a restart",
                ))
            }
        });
        let mut last_error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(new) => {
                tracing::info!(
                    path = %self.path.display(),
                    tls = new.tls.is_some(),
                    basic_auth = !new.users.is_empty(),
                    "web config and certificate reloaded"
                );
                self.live.store(Arc::new(new));
                *last_error = None;
            }
            Err(e) => {
                // Retried every RECHECK until it loads; logged once per reason.
                let message = e.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %message,
                        "web config reload failed; keeping the previous certificate and settings"
                    );
                    *last_error = Some(message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(yaml: &str) -> Result<WebConfig, WebConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        WebConfig::load(&path)
    }

    fn err(yaml: &str) -> String {
        load_str(yaml).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_means_plain_http_without_auth() {
        let web = load_str("").unwrap();
        assert!(!web.tls_enabled());
        assert!(!web.basic_auth_enabled());
    }

    #[test]
    fn basic_auth_without_tls_is_allowed() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let web = load_str(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        assert!(!web.tls_enabled());
        assert!(web.basic_auth_enabled());
    }

    #[test]
    fn unknown_and_unsupported_keys_are_named() {
        assert!(err("tls_server_confg: {}\n").contains("tls_server_confg"));
        let e = err("rate_limit:\n  interval: 1s\n");
        assert!(e.contains("rate_limit: not supported"), "{e}");
        let e = err("tls_server_config:\n  cert: abc\n");
        assert!(e.contains("tls_server_config.cert: not supported"), "{e}");
        let e = err("http_server_config:\n  http2: true\n");
        assert!(e.contains("http_server_config.http2"), "{e}");
    }

    #[test]
    fn tls_settings_are_checked_before_files_are_read() {
        let e = err("tls_server_config:\n  key_file: k.pem\n");
        assert_eq!(e, "tls_server_config.cert_file: missing");
        let e =
            err("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Maybe\n");
        assert!(e.starts_with("tls_server_config.client_auth_type:"), "{e}");
        let e = err(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
        );
        assert!(
            e.starts_with("tls_server_config.client_ca_file: missing"),
            "{e}"
        );
        let e = err("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n");
        assert!(e.starts_with("tls_server_config.client_ca_file:"), "{e}");
        let e = err("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS10\n");
        assert!(e.starts_with("tls_server_config.min_version:"), "{e}");
        let e = err("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n");
        assert!(e.starts_with("tls_server_config.max_version:"), "{e}");
        let e = err("tls_server_config:\n  cert_file: c\n  key_file: k\n");
        assert!(
            e.starts_with("tls_server_config.cert_file: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn bad_users_are_named_without_their_hash() {
        let e = err("basic_auth_users:\n  bob: notahash\n");
        assert!(
            e.starts_with("basic_auth_users.bob: not a bcrypt hash"),
            "{e}"
        );
        assert!(!e.contains("notahash"), "{e}");
        let hash = bcrypt::hash("pw", 4).unwrap();
        let e = err(&format!("basic_auth_users:\n  'a:b': '{hash}'\n"));
        assert!(e.starts_with("basic_auth_users.a:b:"), "{e}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_web_config() {
        assert_eq!(
            resolve(Path::new("/etc/certinel"), PathBuf::from("tls/c.pem")),
            PathBuf::from("/etc/certinel/tls/c.pem")
        );
        assert_eq!(
            resolve(Path::new("/etc/certinel"), PathBuf::from("/abs/c.pem")),
            PathBuf::from("/abs/c.pem")
        );
    }
}

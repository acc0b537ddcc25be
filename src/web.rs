//! certinel's own listener: TLS, mutual TLS and basic auth configured by a
//! `--web.config.file` in the exporter-toolkit format that every Prometheus
//! exporter reads (see WEB-CONFIG.md), and the plain-HTTP health port.
//!
//! The certificate, key and client CA files, and the web config file itself,
//! are re-read when they change: certinel never needs a restart for its own
//! certificate rotation, the problem it exists to expose. A change is noticed
//! by `stat` (inode, size, mtime) at most once a second, on the next
//! connection or request; a reload that fails (a half-written file, a key that
//! does not match the certificate yet) keeps the previous settings and logs a
//! warning.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::crypto::{self, HandshakeSignatures};
use crate::filesystem::{self, FileIdentity, ReadError};

/// How often, at most, the files are `stat`ed for changes.
const RECHECK: Duration = Duration::from_secs(1);
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent a request's headers by then is dropped (this
/// also closes idle keep-alive connections).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Successful basic-auth verifications remembered (then the cache restarts).
const AUTH_CACHE_SIZE: usize = 1024;
/// The challenge of a 401.
const WWW_AUTHENTICATE: &str = r#"Basic realm="certinel""#;

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
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> WebConfigError {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
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

/// `tls_server_config.client_auth_type`, named as in Go's `crypto/tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &'static str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
                                 VerifyClientCertIfGiven, RequireAndVerifyClientCert";

    fn parse(value: Option<&str>) -> Result<ClientAuth, WebConfigError> {
        Ok(match value.unwrap_or("") {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is exporter-toolkit's old spelling.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(WebConfigError::invalid(
                    "tls_server_config.client_auth_type",
                    format!("unknown value {other:?}; expected one of {}", Self::NAMES),
                ))
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The `TLS12`/`TLS13` range between `min_version` and `max_version`.
fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    fn rank(key: &str, value: &str) -> Result<u8, WebConfigError> {
        match value {
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            "TLS10" | "TLS11" => Err(WebConfigError::invalid(
                key,
                format!("{value} is not supported; certinel speaks TLS12 and TLS13"),
            )),
            other => Err(WebConfigError::invalid(
                key,
                format!("unknown TLS version {other:?}; expected TLS12 or TLS13"),
            )),
        }
    }
    let min = rank("tls_server_config.min_version", min.unwrap_or("TLS12"))?;
    let max = rank("tls_server_config.max_version", max.unwrap_or("TLS13"))?;
    if min > max {
        return Err(WebConfigError::invalid(
            "tls_server_config.max_version",
            format!("TLS{max} is below min_version TLS{min}"),
        ));
    }
    Ok(
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, version)| version)
            .collect(),
    )
}

/// One consistent reading of the web config file and the files it names.
struct Settings {
    /// `None`: plain HTTP.
    tls: Option<Arc<ServerConfig>>,
    /// User → bcrypt hash. Empty: no basic auth.
    users: BTreeMap<String, String>,
    /// Verified against for unknown users, so that they take as long to
    /// refuse as known users with a wrong password.
    dummy_hash: Option<String>,
    /// `http_server_config.headers`, added to every response.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Every file read, with its identity before it was read.
    stamps: Vec<(PathBuf, Option<FileIdentity>)>,
}

impl Settings {
    fn load(path: &Path) -> Result<Settings, WebConfigError> {
        let mut stamps = vec![(path.to_owned(), FileIdentity::stat(path))];
        let bytes =
            filesystem::read_regular(path, MAX_FILE_SIZE).map_err(|e| WebConfigError::Read {
                path: path.to_owned(),
                source: match e {
                    ReadError::Io(e) => e,
                    other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
                },
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
            Some(tls) => Some(Arc::new(tls_config(tls, dir, &mut stamps)?)),
            None => None,
        };
        let users = raw.basic_auth_users.unwrap_or_default();
        let dummy_hash = check_users(&users)?;
        let headers = match raw.http_server_config.and_then(|h| h.headers) {
            Some(headers) => check_headers(headers)?,
            None => Vec::new(),
        };
        Ok(Settings {
            tls,
            users,
            dummy_hash,
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
fn resolve(dir: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

/// Files the web config names are kilobytes; anything larger is a mistake.
const MAX_FILE_SIZE: u64 = 1024 * 1024;

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, WebConfigError> {
    filesystem::read_regular(path, MAX_FILE_SIZE).map_err(|e| WebConfigError::File {
        key: key.to_owned(),
        path: path.to_owned(),
        source: match e {
            ReadError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        },
    })
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let pem = read_file(key, path)?;
    crypto::pem_certs(&pem)
        .map_err(|e| WebConfigError::invalid(key, format!("{}: {e}", path.display())))
}

fn tls_config(
    raw: RawTls,
    dir: &Path,
    stamps: &mut Vec<(PathBuf, Option<FileIdentity>)>,
) -> Result<ServerConfig, WebConfigError> {
    const CERT: &str = "tls_server_config.cert_file";
    const KEY: &str = "tls_server_config.key_file";
    const CA: &str = "tls_server_config.client_ca_file";
    let given = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let cert_file = resolve(
        dir,
        given(raw.cert_file).ok_or_else(|| WebConfigError::invalid(CERT, "missing"))?,
    );
    let key_file = resolve(
        dir,
        given(raw.key_file).ok_or_else(|| WebConfigError::invalid(KEY, "missing"))?,
    );
    let client_ca_file = given(raw.client_ca_file).map(|p| resolve(dir, p));
    let auth = ClientAuth::parse(raw.client_auth_type.as_deref())?;
    let versions = protocol_versions(raw.min_version.as_deref(), raw.max_version.as_deref())?;
    match (auth, &client_ca_file) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(WebConfigError::invalid(
                CA,
                "set, but client_auth_type is NoClientCert: set client_auth_type to \
                 RequireAndVerifyClientCert to verify client certificates",
            ))
        }
        (auth, None) if auth.verifies() => {
            return Err(WebConfigError::invalid(
                CA,
                format!("missing; client_auth_type {auth} verifies client certificates against it"),
            ))
        }
        _ => {}
    }

    // Stamp before reading: a change after the stamp is seen next time.
    for path in [Some(&cert_file), Some(&key_file), client_ca_file.as_ref()]
        .into_iter()
        .flatten()
    {
        stamps.push((path.clone(), FileIdentity::stat(path)));
    }
    let chain = read_certs(CERT, &cert_file)?;
    let key = PrivateKeyDer::from_pem_slice(&read_file(KEY, &key_file)?).map_err(|e| {
        WebConfigError::invalid(
            KEY,
            format!("{}: no usable private key: {e}", key_file.display()),
        )
    })?;
    let roots = match &client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(CA, path)? {
                roots
                    .add(cert)
                    .map_err(|e| WebConfigError::invalid(CA, format!("{}: {e}", path.display())))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };

    let provider = crypto::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| WebConfigError::invalid("tls_server_config.min_version", e.to_string()))?;
    let builder = match (auth, roots) {
        (ClientAuth::NoClientCert, _) => builder.with_no_client_auth(),
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, roots) => builder
            .with_client_cert_verifier(Arc::new(danger::AnyClientCert::new(
                auth == ClientAuth::RequireAnyClientCert,
                roots.map(|r| r.subjects()).unwrap_or_default(),
                HandshakeSignatures::new(&provider),
            ))),
        (_, Some(roots)) => {
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if auth == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| WebConfigError::invalid(CA, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (_, None) => return Err(WebConfigError::invalid(CA, "missing")),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => WebConfigError::invalid(
            KEY,
            format!(
                "{} is not the key of the certificate in {}",
                key_file.display(),
                cert_file.display()
            ),
        ),
        other => WebConfigError::invalid(KEY, format!("{}: {other}", key_file.display())),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks the hashes; returns the dummy hash for unknown users.
fn check_users(users: &BTreeMap<String, String>) -> Result<Option<String>, WebConfigError> {
    let mut max_cost = None;
    for (user, hash) in users {
        let key = format!("basic_auth_users.{user}");
        if user.contains(':') {
            return Err(WebConfigError::invalid(
                key,
                "a user name cannot contain ':' (basic auth splits on it)",
            ));
        }
        // The hash itself stays out of the message: it is a secret.
        let parts = bcrypt::HashParts::from_str(hash)
            .map_err(|e| WebConfigError::invalid(&key, format!("not a bcrypt hash: {e}")))?;
        let cost = parts.get_cost();
        if !(4..=31).contains(&cost) {
            return Err(WebConfigError::invalid(
                key,
                format!("bcrypt cost {cost} is outside 4..=31"),
            ));
        }
        max_cost = max_cost.max(Some(cost));
    }
    match max_cost {
        Some(cost) => bcrypt::hash(fastrand::u64(..).to_string(), cost)
            .map(Some)
            .map_err(|e| WebConfigError::invalid("basic_auth_users", e.to_string())),
        None => Ok(None),
    }
}

/// Only the headers exporter-toolkit allows, with its allowed values.
fn check_headers(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    const ALLOWED: [(&str, &[&str]); 5] = [
        ("Content-Security-Policy", &[]),
        ("Strict-Transport-Security", &[]),
        ("X-Content-Type-Options", &["nosniff"]),
        ("X-Frame-Options", &["deny", "sameorigin"]),
        ("X-XSS-Protection", &[]),
    ];
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, values)) = ALLOWED.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
            return Err(WebConfigError::invalid(
                key,
                format!("this header cannot be set; allowed: {}", names.join(", ")),
            ));
        };
        if !values.is_empty() && !values.contains(&value.as_str()) {
            return Err(WebConfigError::invalid(
                key,
                format!("{value:?} is not one of {values:?}"),
            ));
        }
        let header_value = HeaderValue::from_str(&value)
            .map_err(|e| WebConfigError::invalid(&key, e.to_string()))?;
        let header_name = HeaderName::from_str(&name)
            .map_err(|e| WebConfigError::invalid(&key, e.to_string()))?;
        out.push((header_name, header_value));
    }
    Ok(out)
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
    /// SHA-256 of (user, hash, password) of verified credentials.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// bcrypt is deliberately slow: one verification at a time, so a flood
    /// of bad passwords costs one core, not all of them.
    bcrypt_turn: tokio::sync::Mutex<()>,
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
            verified: Mutex::new(HashSet::new()),
            bcrypt_turn: tokio::sync::Mutex::new(()),
        })
    }

    /// The web config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the main listener speaks TLS (fixed for the process's life).
    pub fn tls_enabled(&self) -> bool {
        self.live.load().tls.is_some()
    }

    /// Whether requests need basic-auth credentials (currently).
    pub fn basic_auth_enabled(&self) -> bool {
        !self.live.load().users.is_empty()
    }

    /// The current settings, re-read first when a file changed (checked at
    /// most once per [`RECHECK`]).
    async fn current(self: &Arc<Self>) -> Arc<Settings> {
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

    /// Whether `headers` carry credentials of a configured user.
    async fn authorized(&self, settings: &Settings, headers: &HeaderMap) -> bool {
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let (hash, known) = match (settings.users.get(&user), &settings.dummy_hash) {
            (Some(hash), _) => (hash.clone(), true),
            (None, Some(dummy)) => (dummy.clone(), false),
            (None, None) => return false,
        };
        let key = cache_key(&user, &hash, &password);
        if known && self.is_verified(&key) {
            return true;
        }
        let _turn = self.bcrypt_turn.lock().await;
        // The same credentials may have been verified while this one waited.
        if known && self.is_verified(&key) {
            return true;
        }
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        let ok = matched && known;
        if ok {
            let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= AUTH_CACHE_SIZE {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
    }

    fn is_verified(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Keyed by the stored hash too, so a changed password invalidates it.
fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Basic auth and configured headers, in front of every route.
async fn guard(State(web): State<Arc<WebConfig>>, request: Request, next: Next) -> Response {
    let settings = web.current().await;
    let mut response =
        if settings.users.is_empty() || web.authorized(&settings, request.headers()).await {
            next.run(request).await
        } else {
            (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(WWW_AUTHENTICATE),
                )],
                "Unauthorized\n",
            )
                .into_response()
        };
    for (name, value) in &settings.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

// ---------------------------------------------------------------------------
// Serving.

/// Serves `app` on `listener` until `shutdown` resolves: plain HTTP without
/// a web config; otherwise with its basic auth and headers on every route,
/// over TLS when it has `tls_server_config`. Each connection has its own
/// task, so one failing (a bad handshake, a client that stalls: dropped
/// after 10 s) never affects another. On shutdown it stops accepting and
/// gives in-flight requests 5 s to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<Arc<WebConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let Some(web) = web else {
        return accept_loop(listener, app, None, shutdown).await;
    };
    tracing::info!(
        path = %web.path.display(),
        tls = web.tls_enabled(),
        basic_auth = web.basic_auth_enabled(),
        "web config loaded"
    );
    let app = app.layer(axum::middleware::from_fn_with_state(web.clone(), guard));
    let tls = web.tls_enabled().then_some(web);
    accept_loop(listener, app, tls, shutdown).await
}

/// Serves `app` (the health routes) on a plain-HTTP `listener`, without TLS
/// or auth, until `shutdown` resolves: for Kubernetes probes when the main
/// port demands client certificates.
pub async fn serve_health(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "serving health checks");
    accept_loop(listener, app, None, shutdown).await
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<WebConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut shutdown = pin!(shutdown);
    let closing = CancellationToken::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a connection task panicked");
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(
                        stream,
                        peer,
                        app.clone(),
                        tls.clone(),
                        closing.clone(),
                    ));
                }
                // The client gave up before we got to it: nothing to do.
                Err(e) if is_connection_error(&e) => {}
                // Out of file descriptors and the like: let it ease.
                Err(e) => {
                    tracing::error!(error = %e, "accepting connections failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    drop(listener);
    closing.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            grace = ?SHUTDOWN_GRACE,
            "closing connections that did not finish in time"
        );
        connections.abort_all();
    }
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<Arc<WebConfig>>,
    closing: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let Some(web) = tls else {
        return http(TokioIo::new(stream), peer, app, closing).await;
    };
    let Some(config) = web.current().await.tls.clone() else {
        return; // cannot happen: a reload never switches TLS off
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshake = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
        () = closing.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => http(TokioIo::new(stream), peer, app, closing).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out"),
    }
}

async fn http<I>(io: I, peer: SocketAddr, app: Router, closing: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    let mut conn = pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = closing.cancelled() => {
            // Finish the request in progress, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Dangerous: accepting client certificates nobody vouches for.
mod danger {
    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
    use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

    use crate::crypto::HandshakeSignatures;

    /// Go's `RequestClientCert` and `RequireAnyClientCert`, which
    /// exporter-toolkit offers and documents as insecure: any client
    /// certificate is accepted without checking who issued it. The
    /// handshake signature is still checked, so the client does hold the
    /// certificate's key.
    #[derive(Debug)]
    pub(super) struct AnyClientCert {
        mandatory: bool,
        hints: Vec<DistinguishedName>,
        signatures: HandshakeSignatures,
    }

    impl AnyClientCert {
        pub(super) fn new(
            mandatory: bool,
            hints: Vec<DistinguishedName>,
            signatures: HandshakeSignatures,
        ) -> AnyClientCert {
            AnyClientCert {
                mandatory,
                hints,
                signatures,
            }
        }
    }

    impl ClientCertVerifier for AnyClientCert {
        fn client_auth_mandatory(&self) -> bool {
            self.mandatory
        }

        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &self.hints
        }

        fn verify_client_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            Ok(ClientCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.signatures.schemes()
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
        let settings = web.live.load();
        assert!(settings.dummy_hash.as_deref().unwrap().starts_with("$2"));
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
    fn versions_span_min_to_max() {
        assert_eq!(protocol_versions(None, None).unwrap().len(), 2);
        let only13 = protocol_versions(Some("TLS13"), None).unwrap();
        assert_eq!(only13, vec![&rustls::version::TLS13]);
        let only12 = protocol_versions(None, Some("TLS12")).unwrap();
        assert_eq!(only12, vec![&rustls::version::TLS12]);
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
    fn headers_follow_exporter_toolkit_rules() {
        let web = load_str(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n",
        )
        .unwrap();
        assert_eq!(web.live.load().headers.len(), 2);
        let e = err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
        assert!(
            e.starts_with("http_server_config.headers.X-Frame-Options:"),
            "{e}"
        );
        let e = err("http_server_config:\n  headers:\n    Server: certinel\n");
        assert!(e.starts_with("http_server_config.headers.Server:"), "{e}");
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

    #[test]
    fn basic_credentials_are_parsed() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_credentials(&headers), None);
        // "alice:pa:ss" — the password may contain colons.
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cGE6c3M="),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".to_owned(), b"pa:ss".to_vec()))
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer YWxpY2U6cGE6c3M="),
        );
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn cache_keys_separate_their_parts() {
        assert_ne!(cache_key("ab", "h", b"c"), cache_key("a", "h", b"bc"));
        assert_eq!(cache_key("a", "h", b"bc"), cache_key("a", "h", b"bc"));
        assert_ne!(cache_key("a", "h1", b"p"), cache_key("a", "h2", b"p"));
    }
}

//! Configuration: the YAML file as written (`raw`) and the validated
//! [`Config`] the daemon runs on.
//!
//! Everything a user can get wrong is rejected here, before certinel binds
//! a port or starts a probe, with a message that names the key path and
//! line ([`ConfigError`]). Loading runs in three steps, each in its own
//! module: `locate` indexes the lines of every key (and refuses absurd
//! nesting), serde reads the text into `raw` types, and `validate`
//! turns those into a [`Config`], checking every value against its range
//! ([`values`]), compiling globs (`patterns`) and loading TLS material
//! (`tls`). `probe` checks the `/probe` endpoint's settings and modules,
//! `allowlist` what `/probe` may reach.
//!
//! Nothing here depends on the sources: they take a [`Config`] and run.

mod allowlist;
mod error;
mod locate;
mod patterns;
mod probe;
pub(crate) mod raw;
mod tls;
mod validate;
pub mod values;

#[cfg(test)]
mod tests;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::filesystem;
use crate::logging::{LogFormat, LogLevel};

pub use crate::cert::Format;
pub(crate) use allowlist::is_dns_name;
pub use allowlist::{Allowlist, Network, Refusal};
pub use error::ConfigError;
pub(crate) use patterns::PatternKind;
pub use patterns::{ExcludeSet, FilePattern};
pub use probe::{ProbeModule, ProbeSettings, DEFAULT_MODULE, DEFAULT_PROBE_CONCURRENCY};
pub(crate) use tls::Anchors;
pub use tls::{TlsFile, TlsSettings, TlsSetupError};
pub use values::{NameAttribute, Starttls};

/// Default for `global.interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default for `global.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `global.concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default for `global.max_file_size`: certificate files are kilobytes; a
/// megabyte is already a mistake, not a bundle.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;
/// The largest configuration file certinel reads. Ten thousand targets in
/// the long form take about a megabyte.
pub const MAX_CONFIG_SIZE: u64 = 8 * 1024 * 1024;
/// How long a reload may take to read and check the file (and the TLS
/// files it names) before it is abandoned and the running configuration
/// stays.
pub const LOAD_DEADLINE: Duration = Duration::from_secs(10);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Defaults every source inherits.
    pub global: Global,
    /// Logging, when not set by flag or environment.
    pub log: LogSettings,
    /// Exposition options.
    pub metrics: MetricsSettings,
    /// File sources, in config order.
    pub files: Vec<FileSourceConfig>,
    /// Endpoint sources, in config order.
    pub endpoints: Vec<EndpointSourceConfig>,
    /// `probe:` and `modules:`, the `/probe` endpoint.
    pub probe: ProbeSettings,
}

/// `global:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// How often each target is re-checked.
    pub interval: Duration,
    /// Per-probe deadline: DNS + connect + STARTTLS + handshake.
    pub timeout: Duration,
    /// Probes (and file passes) in flight at once, across all sources.
    pub concurrency: usize,
    /// Files larger than this are reported `too_large` and not read.
    pub max_file_size: u64,
}

/// `log:`; flags and the environment take precedence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `log.level`.
    pub level: Option<LogLevel>,
    /// `log.format`.
    pub format: Option<LogFormat>,
}

/// `metrics:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Export `x509_cert_not_before` (default on).
    pub expose_not_before: bool,
    /// Export `x509_cert_expires_in_seconds` and `x509_cert_valid_since_seconds`.
    pub expose_relative: bool,
    /// Extra subject attributes exported as `subject_<X>` labels.
    pub subject_labels: Vec<NameAttribute>,
    /// Extra issuer attributes exported as `issuer_<X>` labels.
    pub issuer_labels: Vec<NameAttribute>,
}

impl Default for MetricsSettings {
    /// What an empty `metrics:` means.
    fn default() -> MetricsSettings {
        MetricsSettings {
            expose_not_before: true,
            expose_relative: false,
            subject_labels: Vec::new(),
            issuer_labels: Vec::new(),
        }
    }
}

/// One `files:` entry.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// `name`, the `source_name` label.
    pub name: String,
    /// `paths`, compiled; duplicates removed.
    pub paths: Vec<FilePattern>,
    /// `exclude`, compiled.
    pub exclude: ExcludeSet,
    /// Effective interval.
    pub interval: Duration,
    /// Effective size cap.
    pub max_file_size: u64,
    /// How its files are read (`format`, default `auto`).
    pub format: Format,
    /// Where the keystore password comes from, if anywhere.
    pub password: Option<PasswordSource>,
}

/// Where a file source's keystore password comes from. Only the place is
/// kept: the password itself is read on every pass (a rotated Secret is
/// picked up) and never stored in the configuration, logged or exported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PasswordSource {
    /// `password_file`: a file holding the password (one trailing line
    /// break is not part of it), such as a mounted Secret key.
    File(PathBuf),
    /// `password_env`: the name of an environment variable.
    Env(String),
}

/// One `endpoints:` entry.
#[derive(Debug, Clone)]
pub struct EndpointSourceConfig {
    /// `name`, the `source_name` label.
    pub name: String,
    /// Targets, duplicates collapsed, in config order. Shared rather than
    /// owned: the scheduler's task keys and the snapshot hold the same
    /// targets, and with thousands of them copies would dominate memory.
    pub targets: Vec<Arc<EndpointTarget>>,
    /// Effective interval.
    pub interval: Duration,
    /// Effective per-probe deadline.
    pub timeout: Duration,
    /// Trust roots and client certificate, loaded and checked at start-up.
    pub tls: Arc<TlsSettings>,
    /// Plain-text protocol to upgrade before the handshake, if any.
    pub starttls: Option<Starttls>,
    /// Size cap for `expect_file` reads.
    pub max_file_size: u64,
}

/// One endpoint target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointTarget {
    /// `host:port` as configured: the `target` label.
    pub target: String,
    /// Host part, without IPv6 brackets.
    pub host: String,
    /// Port part.
    pub port: u16,
    /// Name to verify the certificate against, and to send as SNI unless
    /// it is an IP address.
    pub server_name: String,
    /// The file the server loads its certificate from, to detect a
    /// rotation the process has not picked up (`certinel_served_cert_stale`).
    pub expect_file: Option<PathBuf>,
}

impl EndpointTarget {
    /// The SNI actually sent: empty for IP addresses, which TLS forbids in SNI.
    pub fn sni(&self) -> &str {
        if self.server_name.parse::<std::net::IpAddr>().is_ok() {
            ""
        } else {
            &self.server_name
        }
    }
}

impl FileSourceConfig {
    /// Identity of everything but the name that shapes this source's
    /// passes: a reload keeps the source running when it is unchanged.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in &self.paths {
            p.to_string().hash(&mut h);
        }
        self.exclude.patterns().hash(&mut h);
        (self.interval, self.max_file_size).hash(&mut h);
        (self.format, &self.password).hash(&mut h);
        h.finish()
    }
}

impl EndpointSourceConfig {
    /// Identity of the settings shared by this source's targets (trust
    /// roots and client certificate by content): a reload keeps targets
    /// running when it is unchanged.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.interval, self.timeout, self.max_file_size).hash(&mut h);
        self.starttls.hash(&mut h);
        self.tls.fingerprint().hash(&mut h);
        h.finish()
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths inside it are
    /// resolved against the file's directory, as Prometheus does. Blocking,
    /// but bounded: only a regular file of at most [`MAX_CONFIG_SIZE`] is
    /// read (a FIFO is refused, never waited on), and nesting is limited.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source: std::io::Error| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let bytes =
            filesystem::read_regular(path, MAX_CONFIG_SIZE).map_err(|e| read_error(e.into()))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_yaml(&text, &base)
    }

    /// [`load`](Self::load) on the blocking pool, abandoned after
    /// [`LOAD_DEADLINE`]: what a running daemon uses, so a reload never
    /// holds up the threads that serve scrapes.
    pub async fn load_in_background(path: PathBuf) -> Result<Config, ConfigError> {
        let load = tokio::task::spawn_blocking(move || Config::load(&path));
        match tokio::time::timeout(LOAD_DEADLINE, load).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(ConfigError::Syntax(format!("loading failed: {e}"))),
            Err(_) => Err(ConfigError::Deadline(LOAD_DEADLINE)),
        }
    }

    /// Parses and validates YAML text; `base_dir` anchors relative paths.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: String::new(),
                line: None,
                message: "config file is empty (see config.example.yaml)".to_owned(),
            });
        }
        let locator = locate::Locator::index(text).map_err(|e| ConfigError::Invalid {
            key: String::new(),
            line: Some(e.line),
            message: format!(
                "the file is nested more than {} levels deep",
                locate::MAX_DEPTH
            ),
        })?;
        let raw: raw::RawConfig =
            serde_norway::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        validate::validate(raw, &absolute(base_dir), Some(&locator))
    }

    /// Validates a configuration built in code (by `certinel check` from
    /// its arguments); errors name keys but have no lines.
    pub(crate) fn from_raw(raw: raw::RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
        validate::validate(raw, &absolute(base_dir), None)
    }

    /// Number of sources of both kinds.
    pub fn source_count(&self) -> usize {
        self.files.len() + self.endpoints.len()
    }
}

/// Makes a path absolute and removes `.`/`..` lexically, so that
/// `certs/a.pem` and `./certs/a.pem` are one file and one series.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

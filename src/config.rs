//! Configuration: the YAML file as written and the validated [`Config`] the
//! daemon runs on.
//!
//! Everything a user can get wrong is rejected here, before certinel binds a
//! port or starts a probe, with a message that names the key and — for
//! anything serde sees — the line. Checks that need a position (durations,
//! sizes, globs, referenced files, duplicate names) run inside
//! deserialisation for that reason; the rest run in [`Config::from_raw`] and
//! name the source they concern.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::logging::{LogFormat, LogLevel};
use crate::sources::files::{ExcludeSet, FilePattern};
use crate::sources::tls::{Starttls, TlsSettings};

/// Default for `global.interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default for `global.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `global.concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default for `global.max_file_size`: certificate files are kilobytes; a
/// megabyte is already a mistake, not a bundle.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Everything that can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax or a rule checked while parsing; the message carries the
    /// key path and line.
    #[error("{0}")]
    Parse(String),
    /// A rule checked after parsing; the message names the source and key.
    #[error("{0}")]
    Invalid(String),
}

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

/// Optional distinguished-name attributes (the default label set stays
/// small to bound cardinality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum NameAttribute {
    /// countryName.
    C,
    /// stateOrProvinceName.
    ST,
    /// localityName.
    L,
}

impl NameAttribute {
    /// The suffix used in label names (`subject_C`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            NameAttribute::C => "C",
            NameAttribute::ST => "ST",
            NameAttribute::L => "L",
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
        format!("{:?}", self.starttls).hash(&mut h);
        self.tls.fingerprint().hash(&mut h);
        h.finish()
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths inside it are
    /// resolved against the file's directory, as Prometheus does.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_yaml(&text, &base)
    }

    /// Parses and validates YAML text; `base_dir` anchors relative paths.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Err(ConfigError::Parse(
                "config file is empty (see config.example.yaml)".to_owned(),
            ));
        }
        let base_dir = absolute(base_dir);
        let raw: RawConfig = with_parse_context(&base_dir, || serde_norway::from_str(text))
            .map_err(|e| ConfigError::Parse(locate_error(text, &e)))?;
        Config::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let global = Global {
            interval: raw.global.interval.map_or(DEFAULT_INTERVAL, |d| d.0),
            timeout: raw.global.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            concurrency: raw.global.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            max_file_size: raw
                .global
                .max_file_size
                .map_or(DEFAULT_MAX_FILE_SIZE, |s| s.0),
        };
        if global.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "global.concurrency: must be at least 1".to_owned(),
            ));
        }
        let metrics = MetricsSettings {
            expose_not_before: raw.metrics.expose_not_before.unwrap_or(true),
            expose_relative: raw.metrics.expose_relative.unwrap_or(false),
            subject_labels: dedup_sorted(raw.metrics.subject_labels.unwrap_or_default()),
            issuer_labels: dedup_sorted(raw.metrics.issuer_labels.unwrap_or_default()),
        };

        let files = raw
            .files
            .unwrap_or_default()
            .into_iter()
            .map(|f| {
                let exclude: Vec<String> = f
                    .exclude
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| e.0)
                    .collect();
                let exclude = ExcludeSet::new(&exclude)
                    .map_err(|e| ConfigError::Invalid(format!("files \"{}\": {e}", f.name.0)))?;
                let mut paths = Vec::new();
                for p in f.paths {
                    if !paths.contains(&p) {
                        paths.push(p);
                    }
                }
                Ok(FileSourceConfig {
                    name: f.name.0,
                    paths,
                    exclude,
                    interval: f.interval.map_or(global.interval, |d| d.0),
                    max_file_size: f.max_file_size.map_or(global.max_file_size, |s| s.0),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        for f in &files {
            if f.paths.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "files \"{}\": paths must list at least one file, directory or glob",
                    f.name
                )));
            }
        }

        let mut endpoints = Vec::new();
        for e in raw.endpoints.unwrap_or_default() {
            let name = e.name.0;
            if e.targets.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "endpoints \"{name}\": targets must list at least one host:port"
                )));
            }
            let tls = TlsSettings::load(
                e.ca_file.as_ref().map(|p| p.0.as_path()),
                e.client_cert.as_ref().map(|p| p.0.as_path()),
                e.client_key.as_ref().map(|p| p.0.as_path()),
            )
            .map_err(|err| ConfigError::Invalid(format!("endpoints \"{name}\": {err}")))?;
            let mut targets: Vec<EndpointTarget> = Vec::new();
            for t in e.targets {
                let server_name = t
                    .server_name
                    .or_else(|| e.server_name.clone())
                    .unwrap_or_else(|| t.host.clone());
                let target = EndpointTarget {
                    target: t.target,
                    host: t.host,
                    port: t.port,
                    server_name,
                    expect_file: t
                        .expect_file
                        .or_else(|| e.expect_file.as_ref().map(|p| p.0.clone())),
                };
                // Identical targets would export identical series; keep one.
                if targets.contains(&target) {
                    continue;
                }
                // Different targets whose labels would still be identical
                // (same host:port and SNI, different verification name)
                // cannot be told apart on /metrics: refuse them.
                if let Some(twin) = targets
                    .iter()
                    .find(|t| t.target == target.target && t.sni() == target.sni())
                {
                    return Err(ConfigError::Invalid(format!(
                        "endpoints \"{name}\": targets {:?} (server_name {:?}) and {:?} (server_name {:?}) would export identical series: same target and SNI; give them distinct server names",
                        twin.target, twin.server_name, target.target, target.server_name
                    )));
                }
                targets.push(target);
            }
            endpoints.push(EndpointSourceConfig {
                name,
                targets: targets.into_iter().map(Arc::new).collect(),
                interval: e.interval.map_or(global.interval, |d| d.0),
                timeout: e.timeout.map_or(global.timeout, |d| d.0),
                tls: Arc::new(tls),
                starttls: e.starttls,
                max_file_size: global.max_file_size,
            });
        }

        Ok(Config {
            global,
            log: LogSettings {
                level: raw.log.level,
                format: raw.log.format,
            },
            metrics,
            files,
            endpoints,
        })
    }

    /// Number of sources of both kinds.
    pub fn source_count(&self) -> usize {
        self.files.len() + self.endpoints.len()
    }
}

fn dedup_sorted(mut v: Vec<NameAttribute>) -> Vec<NameAttribute> {
    v.sort();
    v.dedup();
    v
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

// ---------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    metrics: RawMetrics,
    files: Option<Vec<RawFileSource>>,
    endpoints: Option<Vec<RawEndpointSource>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    concurrency: Option<usize>,
    max_file_size: Option<ByteSize>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<LogLevel>,
    format: Option<LogFormat>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    expose_not_before: Option<bool>,
    expose_relative: Option<bool>,
    subject_labels: Option<Vec<NameAttribute>>,
    issuer_labels: Option<Vec<NameAttribute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSource {
    name: SourceName,
    paths: Vec<FilePattern>,
    exclude: Option<Vec<ExcludePattern>>,
    interval: Option<HumanDuration>,
    max_file_size: Option<ByteSize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpointSource {
    name: SourceName,
    targets: Vec<TargetSpec>,
    server_name: Option<String>,
    ca_file: Option<ExistingFile>,
    client_cert: Option<ExistingFile>,
    client_key: Option<ExistingFile>,
    starttls: Option<Starttls>,
    expect_file: Option<ConfigPath>,
    timeout: Option<HumanDuration>,
    interval: Option<HumanDuration>,
}

// ---------------------------------------------------------------------------
// Error positions.
//
// serde_norway reports errors raised inside a value at the start of the
// enclosing mapping (`files[0]: … at line 2`). Our own checks mark the
// offending value, so the message can point at the exact key and line.

/// Delimits the offending value inside a custom error message.
const MARK: char = '\u{1}';

/// A custom error that names the value it rejects.
fn value_error<E: de::Error>(value: &str, message: impl fmt::Display) -> E {
    E::custom(format!("{MARK}{value}{MARK}{message}"))
}

fn locate_error(text: &str, e: &serde_norway::Error) -> String {
    let message = e.to_string();
    let mut parts = message.splitn(3, MARK);
    let (Some(head), Some(value), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
        return message;
    };
    let path = head.trim_end().trim_end_matches(':');
    let detail = tail.rsplit_once(" at line ").map_or(tail, |(d, _)| d);
    let from = e.location().map_or(1, |l| l.line());
    // serde's path already ends in the key when the value sits inside a
    // list or the error came from the key's own deserialiser.
    let ends_with_key = |key: &str| {
        let last = path.rsplit('.').next().unwrap_or(path);
        last.split('[').next() == Some(key)
    };
    match find_value_line(text, from, value) {
        Some((line, Some(key))) if !path.is_empty() && !ends_with_key(&key) => {
            format!("{path}.{key}: {detail} at line {line}")
        }
        Some((line, _)) if !path.is_empty() => format!("{path}: {detail} at line {line}"),
        Some((line, _)) => format!("{detail} at line {line}"),
        None => format!("{path}: {detail}"),
    }
}

/// Finds the first line at or after `from` (1-based) that holds `value`,
/// and the key it belongs to, if it is a `key: value` line.
fn find_value_line(text: &str, from: usize, value: &str) -> Option<(usize, Option<String>)> {
    let unquote = |v: &str| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
    let lines = || text.lines().enumerate().skip(from.saturating_sub(1));
    for (i, line) in lines() {
        let t = line.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t).trim_start();
        match t
            .split_once(": ")
            .or_else(|| t.strip_suffix(':').map(|k| (k, "")))
        {
            Some((key, v)) if !key.contains(['[', '{', '"', '\'']) => {
                let v = v.split(" #").next().unwrap_or(v);
                let listed = v.trim_start().starts_with('[')
                    && v.split([',', '[', ']']).any(|item| unquote(item) == value);
                if unquote(v) == value || listed {
                    return Some((i + 1, Some(key.trim().to_owned())));
                }
            }
            _ => {
                if unquote(t) == value {
                    return Some((i + 1, None));
                }
            }
        }
    }
    // Flow mappings and lists with odd spacing: any line quoting the value.
    let quoted = [format!("\"{value}\""), format!("'{value}'")];
    lines()
        .find(|(_, l)| quoted.iter().any(|q| l.contains(q.as_str())))
        .map(|(i, _)| (i + 1, None))
}

// ---------------------------------------------------------------------------
// Values validated while parsing, so serde can attach key path and line.

thread_local! {
    static PARSE_CONTEXT: RefCell<Option<ParseContext>> = const { RefCell::new(None) };
}

struct ParseContext {
    base_dir: PathBuf,
    names: HashSet<String>,
}

fn with_parse_context<T>(base_dir: &Path, f: impl FnOnce() -> T) -> T {
    PARSE_CONTEXT.with(|c| {
        *c.borrow_mut() = Some(ParseContext {
            base_dir: base_dir.to_owned(),
            names: HashSet::new(),
        })
    });
    let out = f();
    PARSE_CONTEXT.with(|c| *c.borrow_mut() = None);
    out
}

/// Resolves a path from the config file against the config's directory.
pub(crate) fn resolve_config_path(raw: &str) -> PathBuf {
    let p = Path::new(raw);
    if p.is_absolute() {
        return absolute(p);
    }
    let base = PARSE_CONTEXT
        .with(|c| c.borrow().as_ref().map(|c| c.base_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("."));
    absolute(&base.join(p))
}

/// A humantime duration (`30s`, `5m`, `1h30m`), never zero.
#[derive(Debug, Clone, Copy)]
struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let parsed = humantime::parse_duration(s.trim()).map_err(|e| {
            value_error(
                &s,
                format_args!("invalid duration {s:?}: {e} (use e.g. \"30s\", \"5m\", \"1h30m\")"),
            )
        })?;
        if parsed.is_zero() {
            return Err(value_error(
                &s,
                format_args!("invalid duration {s:?}: must be greater than zero"),
            ));
        }
        Ok(HumanDuration(parsed))
    }
}

/// A byte count: `1048576`, `512KiB`, `1MiB`, `2MB`.
#[derive(Debug, Clone, Copy)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 1048576, \"512KiB\" or \"1MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("size must not be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).ok_or_else(|| {
                    value_error(
                        v,
                        format_args!(
                            "invalid size {v:?} (use bytes or a unit: B, KB, KiB, MB, MiB, GB, GiB)"
                        ),
                    )
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A source name: non-empty and unique across `files` and `endpoints`.
struct SourceName(String);

impl<'de> Deserialize<'de> for SourceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.trim().is_empty() {
            return Err(de::Error::custom("source name must not be empty"));
        }
        let fresh = PARSE_CONTEXT.with(|c| {
            c.borrow_mut()
                .as_mut()
                .is_none_or(|c| c.names.insert(name.clone()))
        });
        if !fresh {
            return Err(value_error(
                &name,
                format_args!(
                    "duplicate source name {name:?} (names must be unique across files and endpoints)"
                ),
            ));
        }
        Ok(SourceName(name))
    }
}

/// A file the config refers to (`ca_file`, `client_cert`, `client_key`);
/// it must exist when the config is loaded.
struct ExistingFile(PathBuf);

impl<'de> Deserialize<'de> for ExistingFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let path = resolve_config_path(&raw);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(ExistingFile(path)),
            Ok(_) => Err(value_error(
                &raw,
                format_args!("{} is not a regular file", path.display()),
            )),
            Err(e) => Err(value_error(&raw, format_args!("{}: {e}", path.display()))),
        }
    }
}

impl<'de> Deserialize<'de> for FilePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        if raw.trim().is_empty() {
            return Err(de::Error::custom("path must not be empty"));
        }
        FilePattern::new(&raw, &resolve_config_path(&raw)).map_err(|e| value_error(&raw, e))
    }
}

/// An `exclude:` glob, checked for syntax while parsing.
struct ExcludePattern(String);

impl<'de> Deserialize<'de> for ExcludePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ExcludeSet::new(std::slice::from_ref(&raw)).map_err(|e| value_error(&raw, e))?;
        Ok(ExcludePattern(raw))
    }
}

/// A path from the config, resolved against the config's directory; it
/// need not exist yet (it is watched, not loaded).
struct ConfigPath(PathBuf);

impl<'de> Deserialize<'de> for ConfigPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        if raw.trim().is_empty() {
            return Err(de::Error::custom("path must not be empty"));
        }
        Ok(ConfigPath(resolve_config_path(&raw)))
    }
}

/// A target: `"host:port"` or
/// `{ target: "host:port", server_name: …, expect_file: … }`.
struct TargetSpec {
    target: String,
    host: String,
    port: u16,
    server_name: Option<String>,
    expect_file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            target: String,
            server_name: Option<String>,
            expect_file: Option<ConfigPath>,
        }
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = TargetSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\" or { target: \"host:port\", server_name: \"…\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetSpec, E> {
                parse_target(v, None).map_err(|e| value_error(v, e))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<TargetSpec, A::Error> {
                let long = Long::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let mut spec = parse_target(&long.target, long.server_name)
                    .map_err(|e| value_error(&long.target, e))?;
                spec.expect_file = long.expect_file.map(|p| p.0);
                Ok(spec)
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_target(raw: &str, server_name: Option<String>) -> Result<TargetSpec, String> {
    let target = raw.trim();
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid target {raw:?}: missing ']' after IPv6 address"))?;
        let port = after.strip_prefix(':').ok_or_else(|| {
            format!("invalid target {raw:?}: missing port (expected host:port, e.g. [::1]:443)")
        })?;
        (host, port)
    } else {
        let (host, port) = target.rsplit_once(':').ok_or_else(|| {
            format!(
                "invalid target {raw:?}: missing port (expected host:port, e.g. example.com:443)"
            )
        })?;
        if host.contains(':') {
            return Err(format!(
                "invalid target {raw:?}: put IPv6 addresses in brackets, e.g. [::1]:443"
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!("invalid target {raw:?}: empty host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid target {raw:?}: port must be 1-65535"))?;
    if let Some(sn) = &server_name {
        if sn.trim().is_empty() {
            return Err("server_name must not be empty".to_owned());
        }
    }
    Ok(TargetSpec {
        target: target.to_owned(),
        host: host.to_owned(),
        port,
        server_name,
        expect_file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, Path::new("/tmp"))
    }

    fn err(yaml: &str) -> String {
        parse(yaml)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn defaults_apply_to_sources_without_overrides() {
        let c = parse("files:\n  - name: a\n    paths: [/etc/ssl/certs/*.pem]\n").unwrap();
        assert_eq!(c.global.interval, DEFAULT_INTERVAL);
        assert_eq!(c.global.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.global.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(c.files[0].interval, DEFAULT_INTERVAL);
        assert_eq!(c.files[0].max_file_size, DEFAULT_MAX_FILE_SIZE);
        assert!(c.metrics.expose_not_before);
        assert!(!c.metrics.expose_relative);
    }

    #[test]
    fn per_target_server_name_wins_over_entry_and_host() {
        let c = parse(
            "endpoints:\n  - name: e\n    server_name: entry.example\n    targets:\n      - a.example:443\n      - { target: \"10.0.0.5:443\", server_name: api.example.com }\n      - \"[::1]:8443\"\n",
        )
        .unwrap();
        let t = &c.endpoints[0].targets;
        assert_eq!(t[0].server_name, "entry.example");
        assert_eq!(t[1].server_name, "api.example.com");
        assert_eq!((t[2].host.as_str(), t[2].port), ("::1", 8443));
    }

    #[test]
    fn ip_targets_send_no_sni() {
        let c = parse("endpoints:\n  - name: e\n    targets: [\"127.0.0.1:443\"]\n").unwrap();
        assert_eq!(c.endpoints[0].targets[0].sni(), "");
        assert_eq!(c.endpoints[0].targets[0].server_name, "127.0.0.1");
    }

    #[test]
    fn duplicate_targets_collapse() {
        let c =
            parse("endpoints:\n  - name: e\n    targets: [\"a:1\", \"a:1\", \"b:1\"]\n").unwrap();
        assert_eq!(c.endpoints[0].targets.len(), 2);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = err("global:\n  interval: 1m\n  intervall: 2m\n");
        assert!(e.contains("unknown field `intervall`"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        let e = err("files:\n  - name: a\n    paths: [/x]\n    interval: 5 minutes-ish\n");
        assert!(e.contains("files[0].interval"), "{e}");
        assert!(e.contains("invalid duration"), "{e}");
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn duplicate_names_across_kinds_are_rejected_with_line() {
        let e = err("files:\n  - name: a\n    paths: [/x]\nendpoints:\n  - name: a\n    targets: [\"h:1\"]\n");
        assert!(e.contains("duplicate source name \"a\""), "{e}");
        assert!(e.contains("endpoints[0].name"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn missing_ca_file_names_key_and_line() {
        let e = err(
            "endpoints:\n  - name: e\n    targets: [\"h:1\"]\n    ca_file: /nonexistent/ca.crt\n",
        );
        assert!(e.contains("endpoints[0].ca_file"), "{e}");
        assert!(e.contains("/nonexistent/ca.crt"), "{e}");
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn target_without_port_is_rejected() {
        let e = err("endpoints:\n  - name: e\n    targets: [\"example.com\"]\n");
        assert!(e.contains("missing port"), "{e}");
        assert!(e.contains("endpoints[0].targets"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_glob_in_block_list_points_at_its_line() {
        let e = err("files:\n  - name: a\n    paths:\n      - /ok/*.pem\n      - \"/bad/[.pem\"\n");
        assert!(e.contains("invalid glob"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn sizes_accept_units() {
        assert_eq!(parse_size("1MiB"), Some(1024 * 1024));
        assert_eq!(parse_size("512 KiB"), Some(512 * 1024));
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1 parsec"), None);
    }

    #[test]
    fn relative_paths_resolve_against_config_dir() {
        let c = Config::from_yaml(
            "files:\n  - name: a\n    paths: [certs/./tls.crt]\n",
            Path::new("/etc/certinel"),
        )
        .unwrap();
        assert_eq!(
            c.files[0].paths[0].to_string(),
            "/etc/certinel/certs/tls.crt"
        );
    }

    #[test]
    fn empty_file_is_a_clear_error() {
        assert!(err("  \n").contains("empty"));
    }

    #[test]
    fn zero_concurrency_is_rejected() {
        assert!(err("global:\n  concurrency: 0\n").contains("global.concurrency"));
    }
}

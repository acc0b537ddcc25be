//! Raw configuration → [`Config`]: every value checked, with the key path
//! and line of the first problem.
//!
//! The context a check needs — the directory relative paths hang off, the
//! line index, the source names seen so far — travels explicitly in
//! [`Ctx`], so validation is a plain function of its input.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::locate::Locator;
use super::raw::{RawConfig, RawEndpointSource, RawFileSource, RawTarget};
use super::values::{self, RawSize};
use super::{
    absolute, Config, ConfigError, EndpointSourceConfig, EndpointTarget, ExcludeSet, FilePattern,
    FileSourceConfig, Global, LogSettings, MetricsSettings, TlsSettings, DEFAULT_CONCURRENCY,
    DEFAULT_INTERVAL, DEFAULT_MAX_FILE_SIZE, DEFAULT_TIMEOUT,
};

/// What every check needs besides the value itself.
pub(super) struct Ctx<'a> {
    base_dir: &'a Path,
    locator: Option<&'a Locator>,
    names: HashSet<String>,
}

impl Ctx<'_> {
    pub(super) fn error(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let key = key.into();
        ConfigError::Invalid {
            line: self.locator.and_then(|l| l.line(&key)),
            key,
            message: message.into(),
        }
    }

    /// A path from the file, resolved against the file's directory; it
    /// need not exist.
    pub(super) fn path(&self, key: &str, raw: &str) -> Result<PathBuf, ConfigError> {
        if raw.trim().is_empty() {
            return Err(self.error(key, "path must not be empty"));
        }
        let p = Path::new(raw);
        Ok(if p.is_absolute() {
            absolute(p)
        } else {
            absolute(&self.base_dir.join(p))
        })
    }

    /// [`path`](Self::path), when one is written.
    pub(super) fn optional_path(
        &self,
        key: &str,
        raw: Option<&String>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        raw.map(|p| self.path(key, p)).transpose()
    }

    pub(super) fn duration(
        &self,
        key: &str,
        raw: Option<&String>,
        default: Duration,
        range: (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        match raw {
            Some(text) => values::duration(text, range.0, range.1).map_err(|e| self.error(key, e)),
            None => Ok(default),
        }
    }

    fn size(&self, key: &str, raw: Option<&RawSize>, default: u64) -> Result<u64, ConfigError> {
        match raw {
            Some(raw) => values::size(raw, values::MIN_FILE_SIZE, values::MAX_FILE_SIZE)
                .map_err(|e| self.error(key, e)),
            None => Ok(default),
        }
    }

    /// `ca_file`, `client_cert` and `client_key` of the entry at `at`,
    /// resolved and loaded; an error names the file's key.
    pub(super) fn tls(
        &self,
        at: &str,
        ca_file: Option<&String>,
        client_cert: Option<&String>,
        client_key: Option<&String>,
    ) -> Result<TlsSettings, ConfigError> {
        let file = |key: &str, raw| self.optional_path(&format!("{at}.{key}"), raw);
        let (ca_file, client_cert, client_key) = (
            file("ca_file", ca_file)?,
            file("client_cert", client_cert)?,
            file("client_key", client_key)?,
        );
        TlsSettings::load(
            ca_file.as_deref(),
            client_cert.as_deref(),
            client_key.as_deref(),
        )
        .map_err(|e| {
            let key = match e.file() {
                Some(file) => format!("{at}.{}", file.key()),
                None => at.to_owned(),
            };
            self.error(key, e.to_string())
        })
    }

    /// A source name: non-empty, printable, unique across both kinds.
    fn name(&mut self, key: &str, name: &str) -> Result<String, ConfigError> {
        if name.trim().is_empty() {
            return Err(self.error(key, "source name must not be empty"));
        }
        if name.chars().any(char::is_control) {
            return Err(self.error(
                key,
                format!("source name {name:?} must not contain control characters"),
            ));
        }
        if !self.names.insert(name.to_owned()) {
            return Err(self.error(
                key,
                format!(
                    "duplicate source name {name:?} (names must be unique across files and endpoints)"
                ),
            ));
        }
        Ok(name.to_owned())
    }
}

const INTERVAL: (Duration, Duration) = (values::MIN_INTERVAL, values::MAX_INTERVAL);
pub(super) const TIMEOUT: (Duration, Duration) = (values::MIN_TIMEOUT, values::MAX_TIMEOUT);

/// Checks `raw` and builds the configuration. `locator` (absent for a
/// configuration built in code) adds lines to the errors.
pub(super) fn validate(
    raw: RawConfig,
    base_dir: &Path,
    locator: Option<&Locator>,
) -> Result<Config, ConfigError> {
    let mut ctx = Ctx {
        base_dir,
        locator,
        names: HashSet::new(),
    };
    let g = &raw.global;
    let global = Global {
        interval: ctx.duration(
            "global.interval",
            g.interval.as_ref(),
            DEFAULT_INTERVAL,
            INTERVAL,
        )?,
        timeout: ctx.duration(
            "global.timeout",
            g.timeout.as_ref(),
            DEFAULT_TIMEOUT,
            TIMEOUT,
        )?,
        concurrency: match g.concurrency {
            Some(n) => values::concurrency(n).map_err(|e| ctx.error("global.concurrency", e))?,
            None => DEFAULT_CONCURRENCY,
        },
        max_file_size: ctx.size(
            "global.max_file_size",
            g.max_file_size.as_ref(),
            DEFAULT_MAX_FILE_SIZE,
        )?,
    };
    if g.interval.is_some() && g.timeout.is_some() && global.timeout > global.interval {
        return Err(timeout_over_interval(
            &ctx,
            "global.timeout",
            &global,
            false,
        ));
    }
    let defaults = MetricsSettings::default();
    let metrics = MetricsSettings {
        expose_not_before: raw
            .metrics
            .expose_not_before
            .unwrap_or(defaults.expose_not_before),
        expose_relative: raw
            .metrics
            .expose_relative
            .unwrap_or(defaults.expose_relative),
        subject_labels: dedup_sorted(raw.metrics.subject_labels.unwrap_or_default()),
        issuer_labels: dedup_sorted(raw.metrics.issuer_labels.unwrap_or_default()),
    };
    let files = raw
        .files
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, f)| file_source(&mut ctx, &format!("files[{i}]"), f, &global))
        .collect::<Result<Vec<_>, _>>()?;
    let endpoints = raw
        .endpoints
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("endpoints[{i}]");
            endpoint_source(&mut ctx, &at, e, &global, g.timeout.is_some())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let probe = super::probe::validate(&ctx, &raw.probe, raw.modules.as_ref(), &global)?;
    Ok(Config {
        global,
        log: LogSettings {
            level: raw.log.level,
            format: raw.log.format,
        },
        metrics,
        files,
        endpoints,
        probe,
    })
}

/// `default`: the timeout was not written anywhere.
fn timeout_over_interval(
    ctx: &Ctx<'_>,
    key: &str,
    effective: &Global,
    default: bool,
) -> ConfigError {
    ctx.error(
        key,
        format!(
            "{}timeout {} is longer than the interval {}: a probe must end before the next is due{}",
            if default { "the default " } else { "" },
            humantime::format_duration(effective.timeout),
            humantime::format_duration(effective.interval),
            if default { "; set a shorter timeout" } else { "" },
        ),
    )
}

fn dedup_sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

fn file_source(
    ctx: &mut Ctx<'_>,
    at: &str,
    raw: &RawFileSource,
    global: &Global,
) -> Result<FileSourceConfig, ConfigError> {
    let name = ctx.name(&format!("{at}.name"), &raw.name)?;
    if raw.paths.is_empty() {
        return Err(ctx.error(
            format!("{at}.paths"),
            "must list at least one file, directory or glob",
        ));
    }
    let mut paths: Vec<FilePattern> = Vec::with_capacity(raw.paths.len());
    for (j, p) in raw.paths.iter().enumerate() {
        let key = format!("{at}.paths[{j}]");
        let absolute = ctx.path(&key, p)?;
        let pattern = FilePattern::new(p, &absolute).map_err(|e| ctx.error(&key, e))?;
        if !paths.contains(&pattern) {
            paths.push(pattern);
        }
    }
    let exclude = raw.exclude.clone().unwrap_or_default();
    for (j, p) in exclude.iter().enumerate() {
        ExcludeSet::new(std::slice::from_ref(p))
            .map_err(|e| ctx.error(format!("{at}.exclude[{j}]"), e))?;
    }
    let exclude = ExcludeSet::new(&exclude).map_err(|e| ctx.error(format!("{at}.exclude"), e))?;
    Ok(FileSourceConfig {
        name,
        paths,
        exclude,
        interval: ctx.duration(
            &format!("{at}.interval"),
            raw.interval.as_ref(),
            global.interval,
            INTERVAL,
        )?,
        max_file_size: ctx.size(
            &format!("{at}.max_file_size"),
            raw.max_file_size.as_ref(),
            global.max_file_size,
        )?,
    })
}

fn endpoint_source(
    ctx: &mut Ctx<'_>,
    at: &str,
    raw: &RawEndpointSource,
    global: &Global,
    timeout_set: bool,
) -> Result<EndpointSourceConfig, ConfigError> {
    let name = ctx.name(&format!("{at}.name"), &raw.name)?;
    if raw.targets.is_empty() {
        return Err(ctx.error(format!("{at}.targets"), "must list at least one host:port"));
    }
    let interval = ctx.duration(
        &format!("{at}.interval"),
        raw.interval.as_ref(),
        global.interval,
        INTERVAL,
    )?;
    let timeout = ctx.duration(
        &format!("{at}.timeout"),
        raw.timeout.as_ref(),
        global.timeout,
        TIMEOUT,
    )?;
    if timeout > interval {
        // Blame the key that made it so.
        let key = if raw.timeout.is_some() {
            format!("{at}.timeout")
        } else if raw.interval.is_some() {
            format!("{at}.interval")
        } else {
            "global.timeout".to_owned()
        };
        let effective = Global {
            interval,
            timeout,
            ..global.clone()
        };
        let default = raw.timeout.is_none() && !timeout_set;
        return Err(timeout_over_interval(ctx, &key, &effective, default));
    }
    let server_name = match &raw.server_name {
        Some(sn) => Some(check_server_name(ctx, &format!("{at}.server_name"), sn)?),
        None => None,
    };
    let expect_file = ctx.optional_path(&format!("{at}.expect_file"), raw.expect_file.as_ref())?;
    let tls = ctx.tls(
        at,
        raw.ca_file.as_ref(),
        raw.client_cert.as_ref(),
        raw.client_key.as_ref(),
    )?;
    let mut targets: Vec<EndpointTarget> = Vec::with_capacity(raw.targets.len());
    for (j, t) in raw.targets.iter().enumerate() {
        let target = endpoint_target(
            ctx,
            &format!("{at}.targets[{j}]"),
            t,
            server_name.as_deref(),
            expect_file.as_ref(),
        )?;
        // Identical targets would export identical series; keep one.
        if targets.contains(&target) {
            continue;
        }
        // Different targets whose labels would still be identical (same
        // host:port and SNI, different verification name or expected
        // file) cannot be told apart on /metrics: refuse them.
        if let Some(twin) = targets
            .iter()
            .find(|t| t.target == target.target && t.sni() == target.sni())
        {
            return Err(ctx.error(
                format!("{at}.targets[{j}]"),
                format!(
                    "targets {:?} (server_name {:?}) and {:?} (server_name {:?}) would export identical series: same target and SNI; give them distinct server names",
                    twin.target, twin.server_name, target.target, target.server_name
                ),
            ));
        }
        targets.push(target);
    }
    Ok(EndpointSourceConfig {
        name,
        targets: targets.into_iter().map(Arc::new).collect(),
        interval,
        timeout,
        tls: Arc::new(tls),
        starttls: raw.starttls,
        max_file_size: global.max_file_size,
    })
}

fn endpoint_target(
    ctx: &Ctx<'_>,
    at: &str,
    raw: &RawTarget,
    entry_server_name: Option<&str>,
    entry_expect_file: Option<&PathBuf>,
) -> Result<EndpointTarget, ConfigError> {
    let target_key = if raw.long_form {
        format!("{at}.target")
    } else {
        at.to_owned()
    };
    let hp = values::host_port(&raw.target).map_err(|e| ctx.error(&target_key, e))?;
    // A host that is no valid name is the resolver's to refuse (`dns`); a
    // server_name written as such must be usable by TLS.
    let server_name = match &raw.server_name {
        Some(sn) => check_server_name(ctx, &format!("{at}.server_name"), sn)?,
        None => entry_server_name.unwrap_or(&hp.host).to_owned(),
    };
    let expect_file = match &raw.expect_file {
        Some(p) => Some(ctx.path(&format!("{at}.expect_file"), p)?),
        None => entry_expect_file.cloned(),
    };
    Ok(EndpointTarget {
        target: hp.target,
        host: hp.host,
        port: hp.port,
        server_name,
        expect_file,
    })
}

/// A name TLS can verify a certificate against (and send as SNI): a DNS
/// name or an IP address.
pub(super) fn check_server_name(
    ctx: &Ctx<'_>,
    key: &str,
    name: &str,
) -> Result<String, ConfigError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ctx.error(key, "server_name must not be empty"));
    }
    ServerName::try_from(name)
        .map_err(|_| ctx.error(key, format!("{name:?} is not a valid TLS server name")))?;
    Ok(name.to_owned())
}

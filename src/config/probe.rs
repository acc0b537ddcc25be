//! `probe:` and `modules:`, the `/probe` endpoint: whether it answers,
//! what it may reach ([`Allowlist`]), how many probes it runs at once,
//! and the named probe settings a request may pick by name.
//!
//! A request can only name a module, never pass a path or a setting: the
//! files a probe reads (trust roots, client key, `expect_file`) are the
//! operator's, loaded here like every other configured TLS file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::allowlist::Allowlist;
use super::raw::{RawModule, RawProbe};
use super::validate::{check_server_name, Ctx, TIMEOUT};
use super::{values, ConfigError, Global, Starttls, TlsSettings};

/// Default for `probe.max_concurrent`.
pub const DEFAULT_PROBE_CONCURRENCY: usize = 32;
/// The module a request that names none gets; the configuration may
/// define it, otherwise it is system roots, no client certificate and
/// `global.timeout`.
pub const DEFAULT_MODULE: &str = "default";
/// Longest module name.
const MAX_MODULE_NAME: usize = 64;

/// `probe:` and `modules:`, validated.
#[derive(Debug, Clone, Default)]
pub struct ProbeSettings {
    /// `probe.enabled`: `/probe` answers 404 until it is set.
    pub enabled: bool,
    /// `probe.allow` and `probe.allow_link_local`.
    pub allow: Arc<Allowlist>,
    /// `probe.max_concurrent`: `/probe` probes in flight at once, beside
    /// (never out of) the permits of configured targets.
    pub max_concurrent: usize,
    /// `modules:` by name (with [`DEFAULT_MODULE`] when `/probe` is
    /// enabled).
    pub modules: BTreeMap<String, Arc<ProbeModule>>,
}

/// One `modules:` entry.
#[derive(Debug)]
pub struct ProbeModule {
    /// The name: the `source_name` label of what it probes.
    pub name: String,
    /// Trust roots and client certificate.
    pub tls: Arc<TlsSettings>,
    /// SNI and verification name; default: the target's host.
    pub server_name: Option<String>,
    /// Plain-text protocol to upgrade before the handshake, if any.
    pub starttls: Option<Starttls>,
    /// The file the probed servers load their certificate from.
    pub expect_file: Option<PathBuf>,
    /// Longest a probe may take; a scrape timeout may shorten it.
    pub timeout: Duration,
    /// Size cap for `expect_file` reads (`global.max_file_size`).
    pub max_file_size: u64,
}

/// Checks `probe:` and `modules:`.
pub(super) fn validate(
    ctx: &Ctx<'_>,
    raw: &RawProbe,
    modules: Option<&BTreeMap<String, RawModule>>,
    global: &Global,
) -> Result<ProbeSettings, ConfigError> {
    let enabled = raw.enabled.unwrap_or(false);
    let empty = Vec::new();
    let allow = Allowlist::new(
        raw.allow.hosts.as_ref().unwrap_or(&empty),
        raw.allow.networks.as_ref().unwrap_or(&empty),
        raw.allow_link_local.unwrap_or(false),
    )
    .map_err(|(list, i, e)| ctx.error(format!("{}[{i}]", list.key()), e))?;
    if enabled && allow.allows_nothing() {
        return Err(ctx.error(
            "probe.allow.networks",
            "must list at least one network when probe.enabled is true: /probe connects only to addresses inside one",
        ));
    }
    let max_concurrent = match raw.max_concurrent {
        Some(n) => values::concurrency(n).map_err(|e| ctx.error("probe.max_concurrent", e))?,
        None => DEFAULT_PROBE_CONCURRENCY,
    };
    let mut checked = BTreeMap::new();
    for (name, module) in modules.into_iter().flatten() {
        let m = self::module(ctx, name, module, global)?;
        checked.insert(name.clone(), Arc::new(m));
    }
    if enabled && !checked.contains_key(DEFAULT_MODULE) {
        let tls = TlsSettings::load(None, None, None)
            .map_err(|e| ctx.error("probe", format!("the default module: {e}")))?;
        let default = ProbeModule {
            name: DEFAULT_MODULE.to_owned(),
            tls: Arc::new(tls),
            server_name: None,
            starttls: None,
            expect_file: None,
            timeout: global.timeout,
            max_file_size: global.max_file_size,
        };
        checked.insert(DEFAULT_MODULE.to_owned(), Arc::new(default));
    }
    Ok(ProbeSettings {
        enabled,
        allow: Arc::new(allow),
        max_concurrent,
        modules: checked,
    })
}

fn module(
    ctx: &Ctx<'_>,
    name: &str,
    raw: &RawModule,
    global: &Global,
) -> Result<ProbeModule, ConfigError> {
    let at = format!("modules.{name}");
    let valid_name = !name.is_empty()
        && name.len() <= MAX_MODULE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_name {
        return Err(ctx.error(
            &at,
            format!(
                "invalid module name {name:?}: use 1-{MAX_MODULE_NAME} letters, digits, '_' or '-'"
            ),
        ));
    }
    let server_name = raw
        .server_name
        .as_ref()
        .map(|sn| check_server_name(ctx, &format!("{at}.server_name"), sn))
        .transpose()?;
    let timeout = ctx.duration(
        &format!("{at}.timeout"),
        raw.timeout.as_ref(),
        global.timeout,
        TIMEOUT,
    )?;
    let expect_file = ctx.optional_path(&format!("{at}.expect_file"), raw.expect_file.as_ref())?;
    let tls = ctx.tls(
        &at,
        raw.ca_file.as_ref(),
        raw.client_cert.as_ref(),
        raw.client_key.as_ref(),
    )?;
    Ok(ProbeModule {
        name: name.to_owned(),
        tls: Arc::new(tls),
        server_name,
        starttls: raw.starttls,
        expect_file,
        timeout,
        max_file_size: global.max_file_size,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, Path::new("/tmp"))
    }

    fn err(yaml: &str) -> String {
        parse(yaml).expect_err("should be refused").to_string()
    }

    #[test]
    fn probe_is_off_by_default_and_modules_may_wait_for_it() {
        let c = parse("modules:\n  smtp:\n    starttls: smtp\n    timeout: 3s\n").unwrap();
        assert!(!c.probe.enabled);
        assert_eq!(c.probe.max_concurrent, super::DEFAULT_PROBE_CONCURRENCY);
        assert_eq!(c.probe.modules["smtp"].timeout.as_secs(), 3);
        assert!(!c.probe.modules.contains_key("default"));
    }

    #[test]
    fn enabling_probe_adds_the_default_module_with_the_global_timeout() {
        let c = parse(
            "global:\n  timeout: 4s\nprobe:\n  enabled: true\n  allow:\n    networks: [127.0.0.0/8]\n",
        )
        .unwrap();
        assert!(c.probe.enabled);
        let default = &c.probe.modules["default"];
        assert_eq!(default.timeout.as_secs(), 4);
        assert!(default.tls.client_key.is_none());
    }

    #[test]
    fn every_probe_rule_names_its_key_and_line() {
        for (yaml, start) in [
            (
                "probe:\n  enabled: true\n  allow:\n    hosts: [\"*\"]\n",
                "probe.allow.networks: must list at least one network",
            ),
            (
                "probe:\n  allow:\n    networks: [10.0.0.0/8, 10.0.0.1/8]\n",
                "probe.allow.networks[1]: invalid network \"10.0.0.1/8\"",
            ),
            (
                "probe:\n  allow:\n    hosts: [\"a*.example.com\"]\n",
                "probe.allow.hosts[0]: invalid host pattern",
            ),
            (
                "probe:\n  max_concurrent: 0\n",
                "probe.max_concurrent: must be at least 1",
            ),
            (
                "modules:\n  \"bad name\":\n    timeout: 1s\n",
                "modules.bad name: invalid module name",
            ),
            (
                "modules:\n  m:\n    timeout: 10m\n",
                "modules.m.timeout: duration \"10m\" is out of range",
            ),
            (
                "modules:\n  m:\n    ca_file: /nonexistent/ca.pem\n",
                "modules.m.ca_file: /nonexistent/ca.pem",
            ),
            (
                "modules:\n  m:\n    client_cert: /nonexistent/c.pem\n",
                "modules.m.client_cert: client_cert and client_key must be set together",
            ),
            (
                "modules:\n  m:\n    server_name: \"not a name\"\n",
                "modules.m.server_name: \"not a name\" is not a valid TLS server name",
            ),
        ] {
            let e = err(yaml);
            assert!(e.starts_with(start), "{yaml:?}: {e}");
            assert!(e.contains(" at line "), "{yaml:?}: {e}");
        }
        let e = err("probe:\n  allow:\n    network: [10.0.0.0/8]\n");
        assert!(e.contains("unknown field `network`"), "{e}");
    }
}

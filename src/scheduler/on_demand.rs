//! Probes on request: what `GET /probe?target=…&module=…` runs.
//!
//! A request names a target and a module, nothing else; what it may reach
//! is the configuration's allowlist, checked on the host name before
//! resolution and on every resolved address before anything connects (see
//! [`probe_target`]). It runs with a lane of its own, `probe.max_concurrent`
//! permits taken without waiting, so a storm of scrapes is answered
//! "saturated" at once instead of queueing, and never takes a permit from
//! the configured targets. The settings follow reloads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::pki_types::ServerName;
use tokio::sync::Semaphore;

use super::lanes::resize_lane;
use super::target_task::{probe_target, Probing};
use crate::config::values::host_port;
use crate::config::{
    is_dns_name, Allowlist, EndpointTarget, ProbeModule, ProbeSettings, Refusal, DEFAULT_MODULE,
};
use crate::snapshot::TargetReport;
use crate::sources::endpoint::AddressPolicy;

/// What Prometheus' scrape timeout loses before it bounds a probe: time to
/// render and send the answer (blackbox_exporter's `--timeout-offset`).
pub const SCRAPE_MARGIN: Duration = Duration::from_millis(500);
/// The shortest probe deadline, however short the scrape timeout.
const MIN_DEADLINE: Duration = Duration::from_millis(10);
/// The longest `target` accepted: a host name (253) and a port, bracketed.
const MAX_TARGET_LEN: usize = 300;

/// One `/probe` request, as parsed from the query and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeRequest {
    /// `target=host:port`.
    pub target: String,
    /// `module=NAME`; `None`: [`DEFAULT_MODULE`].
    pub module: Option<String>,
    /// `server_name=`: SNI and verification name, overriding the module's.
    pub server_name: Option<String>,
    /// `X-Prometheus-Scrape-Timeout-Seconds`.
    pub scrape_timeout: Option<Duration>,
}

/// The outcome of a probe made on request.
#[derive(Debug)]
pub struct OnDemandReport {
    /// The module it was made with.
    pub module: Arc<ProbeModule>,
    /// The target as probed.
    pub target: Arc<EndpointTarget>,
    /// The probe of every address, and the restart-pending verdicts.
    pub report: TargetReport,
    /// From the request to the end of the probe.
    pub duration: Duration,
}

impl OnDemandReport {
    /// `probe_success`: every address answered a verified handshake.
    pub fn success(&self) -> bool {
        self.report.addresses.iter().all(|a| a.error.is_none())
    }
}

/// Why a request was not probed.
#[derive(Debug, thiserror::Error)]
pub enum NotProbed {
    /// `probe.enabled` is off.
    #[error("/probe is not enabled: set probe.enabled in certinel's configuration")]
    Disabled,
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The module is not configured (400).
    #[error("unknown module {0:?}")]
    UnknownModule(String),
    /// The allowlist refused the target (403).
    #[error("target not allowed: {0}")]
    NotAllowed(#[from] Refusal),
    /// Every `/probe` permit is taken (503).
    #[error("{0} /probe probes are in flight already (probe.max_concurrent); retry later")]
    Saturated(usize),
}

/// The `/probe` prober: settings that follow reloads and the lane.
#[derive(Debug, Clone)]
pub struct OnDemand {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ArcSwap<ProbeSettings>,
    lane: Arc<Semaphore>,
    /// Permits the lane holds (see [`resize_lane`]).
    size: Mutex<usize>,
}

impl Default for OnDemand {
    fn default() -> OnDemand {
        OnDemand::new()
    }
}

impl OnDemand {
    /// Disabled, without permits, until [`configure`](Self::configure).
    pub fn new() -> OnDemand {
        OnDemand {
            inner: Arc::new(Inner {
                settings: ArcSwap::from_pointee(ProbeSettings::default()),
                lane: Arc::new(Semaphore::new(0)),
                size: Mutex::new(0),
            }),
        }
    }

    /// Takes the settings of a (re)loaded configuration.
    pub fn configure(&self, settings: &ProbeSettings) {
        let mut size = self
            .inner
            .size
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        resize_lane(
            &self.inner.lane,
            &mut size,
            settings.max_concurrent,
            "probe",
        );
        self.inner.settings.store(Arc::new(settings.clone()));
    }

    /// Checks `request`, then probes its target with its module: nothing
    /// is connected to unless the allowlist passes the host name and every
    /// address it resolves to.
    pub async fn probe(&self, request: &ProbeRequest) -> Result<OnDemandReport, NotProbed> {
        let started = Instant::now();
        let settings = self.inner.settings.load_full();
        if !settings.enabled {
            return Err(NotProbed::Disabled);
        }
        let module_name = request.module.as_deref().unwrap_or(DEFAULT_MODULE);
        let module = settings
            .modules
            .get(module_name)
            .cloned()
            .ok_or_else(|| NotProbed::UnknownModule(module_name.to_owned()))?;
        let mut target = parse_target(&request.target)?;
        if let Some(name) = request.server_name.as_ref().or(module.server_name.as_ref()) {
            if name.is_empty() || ServerName::try_from(name.as_str()).is_err() {
                return Err(NotProbed::BadRequest(format!(
                    "server_name {name:?} is not a DNS name or an IP address"
                )));
            }
            target.server_name = name.clone();
        }
        target.expect_file = module.expect_file.clone();
        settings.allow.check_host(&target.host)?;
        let permit = self
            .inner
            .lane
            .clone()
            .try_acquire_owned()
            .map_err(|_| NotProbed::Saturated(settings.max_concurrent))?;
        let how = Probing {
            tls: &module.tls,
            starttls: module.starttls,
            timeout: deadline(module.timeout, request.scrape_timeout),
            max_file_size: module.max_file_size,
        };
        let policy = Addresses(&settings.allow);
        let (report, _) = probe_target(&target, &how, &policy, permit, None).await?;
        Ok(OnDemandReport {
            module,
            target: Arc::new(target),
            report,
            duration: started.elapsed(),
        })
    }
}

/// The allowlist, as the probe's address policy.
struct Addresses<'a>(&'a Allowlist);

impl AddressPolicy for Addresses<'_> {
    type Refusal = Refusal;

    fn check(&self, addresses: &[SocketAddr]) -> Result<(), Refusal> {
        addresses
            .iter()
            .try_for_each(|a| self.0.check_address(a.ip()))
    }
}

/// `host:port` (`[v6]:port`), with a host that is a DNS name or an IP
/// address: anything else (a URL, a path, user info, a zone index) is
/// refused before the resolver sees it.
fn parse_target(raw: &str) -> Result<EndpointTarget, NotProbed> {
    if raw.is_empty() {
        return Err(NotProbed::BadRequest(
            "missing target parameter (expected target=host:port)".to_owned(),
        ));
    }
    if raw.contains("://") {
        return Err(NotProbed::BadRequest(format!(
            "invalid target {raw:?}: expected host:port, not a URL"
        )));
    }
    if raw.len() > MAX_TARGET_LEN || raw.trim() != raw {
        return Err(NotProbed::BadRequest(format!(
            "invalid target {:?}: expected host:port",
            raw.chars().take(80).collect::<String>()
        )));
    }
    let hp = host_port(raw).map_err(NotProbed::BadRequest)?;
    let is_ip = hp.host.parse::<std::net::IpAddr>().is_ok();
    let bracketed = raw.starts_with('[');
    if bracketed != hp.host.contains(':') || !(is_ip || is_dns_name(&hp.host)) {
        return Err(NotProbed::BadRequest(format!(
            "invalid target {raw:?}: the host must be a DNS name or an IP address (IPv6 in brackets)"
        )));
    }
    Ok(EndpointTarget {
        target: hp.target,
        server_name: hp.host.clone(),
        host: hp.host,
        port: hp.port,
        expect_file: None,
    })
}

/// The probe's deadline: the module's timeout, shortened to fit the
/// scrape timeout less [`SCRAPE_MARGIN`] (half of it, for scrape timeouts
/// under a second).
pub fn deadline(module_timeout: Duration, scrape_timeout: Option<Duration>) -> Duration {
    let budget = scrape_timeout.map_or(module_timeout, |t| t - SCRAPE_MARGIN.min(t / 2));
    budget.min(module_timeout).max(MIN_DEADLINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(raw: &str) -> String {
        match parse_target(raw) {
            Err(NotProbed::BadRequest(e)) => e,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn only_host_and_port_are_targets() {
        let t = parse_target("db.example.com:5432").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("db.example.com", 5432));
        assert_eq!(t.server_name, "db.example.com");
        assert_eq!(parse_target("[::1]:443").unwrap().host, "::1");
        assert_eq!(parse_target("10.0.0.1:443").unwrap().host, "10.0.0.1");
        for raw in [
            "https://example.com:443",
            "example.com",
            "example.com:0",
            "example.com:65536",
            "user@example.com:443",
            "example.com/path:443",
            "[fe80::1%eth0]:443",
            "[example.com]:443",
            "::1:443",
            " example.com:443",
            "exa mple.com:443",
            "ex\u{0}ample.com:443",
        ] {
            assert!(!bad(raw).is_empty(), "{raw:?}");
        }
        assert!(bad("").contains("missing target"));
        assert!(bad(&format!("{}:1", "a".repeat(400))).contains("expected host:port"));
    }

    #[test]
    fn the_deadline_fits_the_scrape_timeout_and_the_module() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(deadline(s(10), None), s(10));
        assert_eq!(deadline(s(10), Some(s(5))), ms(4500));
        assert_eq!(deadline(s(3), Some(s(15))), s(3));
        assert_eq!(deadline(s(10), Some(s(1))), ms(500));
        assert_eq!(deadline(s(10), Some(ms(200))), ms(100));
        assert_eq!(deadline(s(10), Some(Duration::ZERO)), MIN_DEADLINE);
    }

    #[tokio::test]
    async fn nothing_is_probed_while_disabled_and_unknown_modules_are_named() {
        let prober = OnDemand::new();
        let request = ProbeRequest {
            target: "127.0.0.1:1".to_owned(),
            ..ProbeRequest::default()
        };
        assert!(matches!(
            prober.probe(&request).await,
            Err(NotProbed::Disabled)
        ));
        let config = crate::config::Config::from_yaml(
            "probe:\n  enabled: true\n  allow:\n    networks: [127.0.0.1/32]\n",
            std::path::Path::new("/"),
        )
        .unwrap();
        prober.configure(&config.probe);
        let unknown = ProbeRequest {
            module: Some("nope".to_owned()),
            ..request.clone()
        };
        assert!(matches!(
            prober.probe(&unknown).await,
            Err(NotProbed::UnknownModule(m)) if m == "nope"
        ));
        let elsewhere = ProbeRequest {
            target: "127.0.0.2:1".to_owned(),
            ..request.clone()
        };
        assert!(matches!(
            prober.probe(&elsewhere).await,
            Err(NotProbed::NotAllowed(Refusal::Network(_)))
        ));
        // Allowed: a probe runs, and finds nothing listening.
        let report = prober.probe(&request).await.unwrap();
        assert!(!report.success());
        assert_eq!(report.module.name, "default");
    }

    #[tokio::test]
    async fn a_full_lane_answers_saturated_at_once() {
        let prober = OnDemand::new();
        let config = crate::config::Config::from_yaml(
            "probe:\n  enabled: true\n  max_concurrent: 1\n  allow:\n    networks: [127.0.0.1/32]\n",
            std::path::Path::new("/"),
        )
        .unwrap();
        prober.configure(&config.probe);
        let held = prober.inner.lane.clone().try_acquire_owned().unwrap();
        let request = ProbeRequest {
            target: "127.0.0.1:1".to_owned(),
            ..ProbeRequest::default()
        };
        assert!(matches!(
            prober.probe(&request).await,
            Err(NotProbed::Saturated(1))
        ));
        drop(held);
        assert!(prober.probe(&request).await.is_ok());
    }
}

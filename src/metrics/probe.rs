//! `/probe`: the exposition of one probe made on request, and certinel's
//! own counters of those requests (on `/metrics`).
//!
//! The probe's target is rendered as a source of its own (`source_kind`
//! "probe", `source_name` the module) through the very families and label
//! sets `/metrics` uses for configured targets, so a target reads the same
//! whichever way it is probed; then the two gauges every `/probe` user
//! alerts on, `probe_success` and `probe_duration_seconds`.
//!
//! The counters change with every request, so they are rendered with the
//! clock part of `/metrics` (at most a second late), not with the snapshot,
//! whose render a request must not invalidate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::families::target_families;
use super::names::{
    PROBE_DURATION, PROBE_DURATION_HELP, PROBE_REFUSED, PROBE_REFUSED_HELP, PROBE_REQUESTS,
    PROBE_REQUESTS_HELP, PROBE_SUCCESS, PROBE_SUCCESS_HELP,
};
use super::relative::relative_families;
use super::rendered::{encode, Format, RenderError};
use super::series::{Family, Pairs, Twins};
use super::to_prometheus_text;
use crate::config::{MetricsSettings, Refusal};
use crate::scheduler::{NotProbed, OnDemandReport};
use crate::snapshot::SourceState;
use crate::sources::SourceKind;

/// The `outcome` label of `certinel_probe_requests_total`, in order.
const OUTCOMES: [&str; 7] = [
    "success",
    "failure",
    "bad_request",
    "unknown_module",
    "not_allowed",
    "saturated",
    "disabled",
];

/// `/probe` requests by outcome, and refusals by the allowlist by reason.
#[derive(Debug, Default)]
pub struct ProbeCounters {
    outcomes: [AtomicU64; OUTCOMES.len()],
    refused: [AtomicU64; Refusal::REASONS.len()],
}

impl ProbeCounters {
    /// Counts one request's outcome.
    pub fn count(&self, result: &Result<OnDemandReport, NotProbed>) {
        let outcome = match result {
            Ok(report) if report.success() => "success",
            Ok(_) => "failure",
            Err(NotProbed::BadRequest(_)) => "bad_request",
            Err(NotProbed::UnknownModule(_)) => "unknown_module",
            Err(NotProbed::NotAllowed(refusal)) => {
                bump(&self.refused, &Refusal::REASONS, refusal.reason());
                "not_allowed"
            }
            Err(NotProbed::Saturated(_)) => "saturated",
            Err(NotProbed::Disabled) => "disabled",
        };
        bump(&self.outcomes, &OUTCOMES, outcome);
    }
}

fn bump(counters: &[AtomicU64], labels: &[&str], label: &str) {
    if let Some(i) = labels.iter().position(|l| *l == label) {
        counters[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Renders [`ProbeCounters`] (every label value, zeros included, so that
/// `rate()` and `increase()` see the first request too).
#[derive(Debug)]
pub(super) struct CountersCollector(pub(super) Arc<ProbeCounters>);

impl Collector for CountersCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let unique = Twins::default();
        for (name, help, label, names, values) in [
            (
                PROBE_REQUESTS,
                PROBE_REQUESTS_HELP,
                "outcome",
                &OUTCOMES[..],
                &self.0.outcomes[..],
            ),
            (
                PROBE_REFUSED,
                PROBE_REFUSED_HELP,
                "reason",
                &Refusal::REASONS[..],
                &self.0.refused[..],
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            let mut family = Family::new(&unique);
            for (value, count) in names.iter().zip(values) {
                let labels = [(label, *value)];
                family.counter(&mut m, &Pairs::new(&labels), count.load(Ordering::Relaxed))?;
            }
        }
        Ok(())
    }
}

/// The exposition of one `/probe` request.
#[derive(Debug)]
struct ProbeCollector {
    source: Arc<SourceState>,
    settings: MetricsSettings,
    success: bool,
    duration: f64,
}

impl Collector for ProbeCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let sources = std::slice::from_ref(&self.source);
        let now = SystemTime::now();
        target_families(&mut enc, sources, &self.settings, now)?;
        relative_families(&mut enc, sources, &self.settings, now)?;
        let m =
            enc.encode_descriptor(PROBE_SUCCESS, PROBE_SUCCESS_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(i64::from(self.success)).encode(m)?;
        let m =
            enc.encode_descriptor(PROBE_DURATION, PROBE_DURATION_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(self.duration).encode(m)
    }
}

/// The body `/probe` answers for `probe`, in `format`.
pub fn render_probe(
    probe: &OnDemandReport,
    settings: &MetricsSettings,
    format: Format,
) -> Result<String, RenderError> {
    let source = SourceState::one_target(
        SourceKind::Probe,
        &probe.module.name,
        probe.target.clone(),
        probe.report.clone(),
    );
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProbeCollector {
        source: Arc::new(source),
        settings: settings.clone(),
        success: probe.success(),
        duration: probe.duration.as_secs_f64(),
    }));
    let body = encode(&registry, 4096)?;
    Ok(match format {
        Format::OpenMetrics => body,
        Format::PrometheusText => to_prometheus_text(&body),
    })
}

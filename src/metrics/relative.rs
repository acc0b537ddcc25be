//! The opt-in relative certificate metrics (`metrics.expose_relative`),
//! which change every second.

use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::labels::for_each_cert;
use super::names::{EXPIRES_IN, EXPIRES_IN_HELP, VALID_SINCE, VALID_SINCE_HELP};
use super::series::{Family, Twins};
use crate::clock::unix_secs;
use crate::config::MetricsSettings;
use crate::snapshot::{SourceState, Store};

/// Renders `x509_cert_expires_in_seconds` and
/// `x509_cert_valid_since_seconds` when switched on.
#[derive(Debug)]
pub(super) struct RelativeCollector {
    pub(super) store: Arc<Store>,
}

impl Collector for RelativeCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let snapshot = self.store.load();
        relative_families(
            &mut enc,
            &snapshot.sources,
            &snapshot.metrics,
            SystemTime::now(),
        )
    }
}

/// `x509_cert_expires_in_seconds` and `x509_cert_valid_since_seconds` of
/// the certificates of `sources` at `now`, when `settings` switch them on
/// (for `/metrics` and `/probe` alike).
pub(super) fn relative_families(
    enc: &mut DescriptorEncoder<'_>,
    sources: &[Arc<SourceState>],
    settings: &MetricsSettings,
    now: SystemTime,
) -> std::fmt::Result {
    if !settings.expose_relative {
        return Ok(());
    }
    let now_s = unix_secs(now);
    let certs = Twins::find(|f| for_each_cert(sources, settings, |l| f(l)));
    let mut m = enc.encode_descriptor(EXPIRES_IN, EXPIRES_IN_HELP, None, MetricType::Gauge)?;
    let mut family = Family::new(&certs);
    for_each_cert(sources, settings, |l| {
        family.gauge(&mut m, l, l.facts.not_after.saturating_sub(now_s))
    })?;
    let mut m = enc.encode_descriptor(VALID_SINCE, VALID_SINCE_HELP, None, MetricType::Gauge)?;
    let mut family = Family::new(&certs);
    for_each_cert(sources, settings, |l| {
        family.gauge(&mut m, l, now_s.saturating_sub(l.facts.not_before))
    })
}

//! The families that change only with the snapshot (or at an instant
//! [`valid_until`](super::valid_until) names): everything per certificate,
//! probe and source. Every series goes through the uniqueness guard in
//! `series`(super::series).

use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::labels::{
    for_each_cert, for_each_crl, for_each_kubeconfig_cert, for_each_probe, CertLabels, Probe,
    ProbeLabels,
};
use super::names::*;
use super::series::{Family, Pairs, Series, Twins};
use super::tls::probe_family;
use crate::cert::CrlFacts;
use crate::clock::{unix_seconds, unix_secs};
use crate::config::MetricsSettings;
use crate::snapshot::{SourceData, SourceState, Store};
use crate::sources::SourceKind;
use crate::text::path_label;

/// Renders the store's snapshot.
#[derive(Debug)]
pub(super) struct StoreCollector {
    pub(super) store: Arc<Store>,
}

fn source_labels(s: &SourceState) -> [(&'static str, &str); 2] {
    [("source_kind", s.kind.as_str()), ("source_name", &s.name)]
}

impl Collector for StoreCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let snapshot = self.store.load();
        let sources = snapshot.sources.as_slice();
        let settings = &snapshot.metrics;
        let now = SystemTime::now();

        let now_s = unix_secs(now);

        // 1. Certificate facts and 2. endpoint probes.
        target_families(&mut enc, sources, settings, now)?;

        // 1b. CRLs.
        crl_family(
            &mut enc,
            CRL_THIS_UPDATE,
            CRL_THIS_UPDATE_HELP,
            sources,
            settings,
            |c| Some(c.this_update),
        )?;
        crl_family(
            &mut enc,
            CRL_NEXT_UPDATE,
            CRL_NEXT_UPDATE_HELP,
            sources,
            settings,
            |c| c.next_update,
        )?;
        crl_family(
            &mut enc,
            CRL_STALE,
            CRL_STALE_HELP,
            sources,
            settings,
            |c| Some(i64::from(c.is_stale(now_s))),
        )?;
        crl_family(
            &mut enc,
            CRL_NUMBER,
            CRL_NUMBER_HELP,
            sources,
            settings,
            |c| Some(c.number_value()),
        )?;

        // 3. File sources.
        file_errors(&mut enc, sources, now_s)?;
        // Counted now rather than at the pass: a CRL goes stale with the
        // clock.
        let read_errors: usize = sources
            .iter()
            .filter_map(|s| match &s.data {
                SourceData::Files(scan) => Some(scan),
                _ => None,
            })
            .flat_map(|scan| scan.values())
            .filter(|report| report.reason_at(now_s).is_some())
            .count();
        let m = enc.encode_descriptor(READ_ERRORS, READ_ERRORS_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(read_errors as i64).encode(m)?;
        kubeconfig_info(&mut enc, sources)?;

        // 4. The exporter itself. Families of one series, or one per
        // kind, cannot repeat a label set.
        let unique = Twins::default();
        let mut m = enc.encode_descriptor(BUILD_INFO, BUILD_INFO_HELP, None, MetricType::Gauge)?;
        let build = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("CERTINEL_GIT_REVISION")),
            ("rustc", env!("CERTINEL_RUSTC_VERSION")),
        ];
        Family::new(&unique).gauge(&mut m, &Pairs::new(&build), 1)?;
        per_source(&mut enc, SOURCE_UP, SOURCE_UP_HELP, sources, |s| {
            Some(i64::from(s.is_up(now)))
        })?;
        let each_error = |f: &mut dyn FnMut(&dyn Series) -> std::fmt::Result| {
            for s in sources {
                let [kind, name] = source_labels(s);
                for reason in s.errors_total.keys() {
                    f(&Pairs::new(&[kind, name, ("reason", reason)]))?;
                }
            }
            Ok(())
        };
        let twins = Twins::find(each_error);
        let mut m =
            enc.encode_descriptor(SOURCE_ERRORS, SOURCE_ERRORS_HELP, None, MetricType::Counter)?;
        let mut family = Family::new(&twins);
        for s in sources {
            let [kind, name] = source_labels(s);
            for (reason, count) in &s.errors_total {
                family.counter(
                    &mut m,
                    &Pairs::new(&[kind, name, ("reason", reason)]),
                    *count,
                )?;
            }
        }
        per_source(
            &mut enc,
            SOURCE_LAST_RUN,
            SOURCE_LAST_RUN_HELP,
            sources,
            |s| s.last_pass.map(|p| unix_seconds(p.finished_at)),
        )?;
        per_source(
            &mut enc,
            SOURCE_DURATION,
            SOURCE_DURATION_HELP,
            sources,
            |s| s.last_pass.map(|p| p.duration.as_secs_f64()),
        )?;
        let m = enc.encode_descriptor(RELOAD_OK, RELOAD_OK_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(i64::from(snapshot.reload.successful)).encode(m)?;
        let m = enc.encode_descriptor(RELOAD_TIME, RELOAD_TIME_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(unix_seconds(snapshot.reload.last_success)).encode(m)?;
        let mut m =
            enc.encode_descriptor(CERTIFICATES, CERTIFICATES_HELP, None, MetricType::Gauge)?;
        let mut family = Family::new(&unique);
        for kind in [SourceKind::File, SourceKind::Endpoint] {
            let count: usize = sources
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.certificates)
                .sum();
            family.gauge(
                &mut m,
                &Pairs::new(&[("source_kind", kind.as_str())]),
                count as i64,
            )?;
        }
        Ok(())
    }
}

/// Sections 1 and 2 of the contract, the certificates and the probes of
/// `sources`: the whole of `/metrics` for them, and all of `/probe` but
/// `probe_success` and `probe_duration_seconds`.
pub(super) fn target_families(
    enc: &mut DescriptorEncoder<'_>,
    sources: &[Arc<SourceState>],
    settings: &MetricsSettings,
    now: SystemTime,
) -> std::fmt::Result {
    let now_s = unix_secs(now);
    // 1. Certificate facts: one label set for every x509_cert family.
    let certs = Twins::find(|f| for_each_cert(sources, settings, |l| f(l)));
    let cert_family = |enc: &mut DescriptorEncoder<'_>,
                       name: &str,
                       help: &str,
                       value: &dyn Fn(&CertLabels<'_>) -> i64|
     -> std::fmt::Result {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        let mut family = Family::new(&certs);
        for_each_cert(sources, settings, |l| family.gauge(&mut m, l, value(l)))
    };
    cert_family(enc, NOT_AFTER, NOT_AFTER_HELP, &|l| l.facts.not_after)?;
    if settings.expose_not_before {
        cert_family(enc, NOT_BEFORE, NOT_BEFORE_HELP, &|l| l.facts.not_before)?;
    }
    cert_family(enc, EXPIRED, EXPIRED_HELP, &|l| {
        i64::from(now_s > l.facts.not_after)
    })?;

    // 2. Endpoint probes.
    let probes = Twins::find(|f| for_each_probe(sources, |p| f(&p.labels)));
    let mut m = enc.encode_descriptor(
        HANDSHAKE_ERROR,
        HANDSHAKE_ERROR_HELP,
        None,
        MetricType::Gauge,
    )?;
    let mut family = Family::new(&probes);
    for_each_probe(sources, |p| {
        family.gauge(&mut m, &p.labels, i64::from(p.report.error.is_some()))
    })?;
    probe_info(
        enc,
        HANDSHAKE_ERROR_INFO,
        HANDSHAKE_ERROR_INFO_HELP,
        sources,
        |p| {
            p.report
                .error
                .as_ref()
                .map(|e| vec![("reason", e.reason.as_str())])
        },
    )?;
    let mut m = enc.encode_descriptor(
        HANDSHAKE_DURATION,
        HANDSHAKE_DURATION_HELP,
        None,
        MetricType::Gauge,
    )?;
    let mut family = Family::new(&probes);
    for_each_probe(sources, |p| {
        family.gauge(&mut m, &p.labels, p.report.duration.as_secs_f64())
    })?;
    probe_info(enc, TLS_INFO, TLS_INFO_HELP, sources, |p| {
        p.report.negotiated.as_ref().map(|n| {
            vec![
                ("version", n.version),
                ("cipher_suite", n.cipher_suite.as_str()),
            ]
        })
    })?;
    let mut m = enc.encode_descriptor(LAST_PROBE, LAST_PROBE_HELP, None, MetricType::Gauge)?;
    let mut family = Family::new(&probes);
    for_each_probe(sources, |p| {
        family.gauge(&mut m, &p.labels, unix_seconds(p.report.probed_at))
    })?;
    served_stale(enc, sources)?;
    super::tls::encode(enc, sources)
}

/// An `_info` family of probes: the extra labels of each probe that has
/// them, value 1.
fn probe_info<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    sources: &'a [Arc<SourceState>],
    extra: impl Fn(&Probe<'a>) -> Option<Vec<(&'a str, &'a str)>>,
) -> std::fmt::Result {
    probe_family(enc, name, help, sources, |p, f| match extra(p) {
        Some(extra) => f(&extra, 1i64),
        None => Ok(()),
    })
}

/// `certinel_served_cert_stale`: the stored restart-pending verdicts.
fn served_stale(enc: &mut DescriptorEncoder<'_>, sources: &[Arc<SourceState>]) -> std::fmt::Result {
    let each = |f: &mut dyn FnMut(&dyn Series) -> std::fmt::Result| {
        for_each_probe(sources, |p| match p.restart {
            Some((file, _)) => f(&ProbeLabels {
                extra: &[("filepath", &path_label(file))],
                ..p.labels
            }),
            None => Ok(()),
        })
    };
    let twins = Twins::find(each);
    let mut m = enc.encode_descriptor(SERVED_STALE, SERVED_STALE_HELP, None, MetricType::Gauge)?;
    let mut family = Family::new(&twins);
    for_each_probe(sources, |p| match p.restart {
        Some((file, verdict)) => family.gauge(
            &mut m,
            &ProbeLabels {
                extra: &[("filepath", &path_label(file))],
                ..p.labels
            },
            verdict.as_gauge(),
        ),
        None => Ok(()),
    })
}

/// An `x509_crl_*` family: `value` of every CRL that has one.
fn crl_family<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    sources: &[Arc<SourceState>],
    settings: &MetricsSettings,
    value: impl Fn(&CrlFacts) -> Option<V>,
) -> std::fmt::Result {
    let twins = Twins::find(|f| for_each_crl(sources, settings, |l| f(l)));
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    let mut family = Family::new(&twins);
    for_each_crl(sources, settings, |l| match value(l.crl) {
        Some(v) => family.gauge(&mut m, l, v),
        None => Ok(()),
    })
}

/// `certinel_kubeconfig_cert_info`: the role of each kubeconfig
/// certificate, joined to `x509_cert_*` on `source_name`, `filepath` and
/// `chain_index`.
fn kubeconfig_info(
    enc: &mut DescriptorEncoder<'_>,
    sources: &[Arc<SourceState>],
) -> std::fmt::Result {
    let twins = Twins::find(|f| {
        for_each_kubeconfig_cert(sources, |labels, raw| f(&Pairs::with_raw(labels, raw)))
    });
    let mut m = enc.encode_descriptor(
        KUBECONFIG_INFO,
        KUBECONFIG_INFO_HELP,
        None,
        MetricType::Gauge,
    )?;
    let mut family = Family::new(&twins);
    for_each_kubeconfig_cert(sources, |labels, raw| {
        family.gauge(&mut m, &Pairs::with_raw(labels, raw), 1)
    })
}

/// `certinel_file_error_info`.
fn file_errors(
    enc: &mut DescriptorEncoder<'_>,
    sources: &[Arc<SourceState>],
    now_s: i64,
) -> std::fmt::Result {
    let each = |f: &mut dyn FnMut(&dyn Series) -> std::fmt::Result| {
        for source in sources {
            let SourceData::Files(scan) = &source.data else {
                continue;
            };
            for (path, report) in scan.iter() {
                if let Some(reason) = report.reason_at(now_s) {
                    let labels = [
                        ("source_name", source.name.as_str()),
                        ("filepath", &path_label(path)),
                        ("reason", reason.as_str()),
                    ];
                    f(&Pairs::with_raw(
                        &labels,
                        path.as_os_str().as_encoded_bytes(),
                    ))?;
                }
            }
        }
        Ok(())
    };
    let twins = Twins::find(each);
    let mut m = enc.encode_descriptor(
        FILE_ERROR_INFO,
        FILE_ERROR_INFO_HELP,
        None,
        MetricType::Gauge,
    )?;
    let mut family = Family::new(&twins);
    each(&mut |labels| family.gauge(&mut m, labels, 1))
}

/// A gauge per source (`source_kind`, `source_name`), where `value` has one.
fn per_source<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    sources: &[Arc<SourceState>],
    value: impl Fn(&SourceState) -> Option<V>,
) -> std::fmt::Result {
    let each = |f: &mut dyn FnMut(&dyn Series) -> std::fmt::Result| {
        for s in sources.iter().filter(|s| value(s).is_some()) {
            f(&Pairs::new(&source_labels(s)))?;
        }
        Ok(())
    };
    let twins = Twins::find(each);
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    let mut family = Family::new(&twins);
    for s in sources {
        if let Some(v) = value(s) {
            family.gauge(&mut m, &Pairs::new(&source_labels(s)), v)?;
        }
    }
    Ok(())
}

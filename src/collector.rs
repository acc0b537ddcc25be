//! Renders the snapshot as metrics, per the contract in README.md.
//!
//! The collectors only read the snapshot: no I/O, no parsing, no locks
//! shared with probes. [`StoreCollector`] holds everything that changes
//! with the snapshot (or at an instant [`valid_until`] names), so it can be
//! rendered once per snapshot; [`RelativeCollector`] and `process_*` move
//! with the clock. Metric names and help texts are constants here so the
//! contract has one home in the code.

mod process;

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::cert::{CertFacts, NameFields};
use crate::clock::{unix_seconds, unix_secs};
use crate::config::{MetricsSettings, NameAttribute};
use crate::rotation::{self, Staleness};
use crate::snapshot::{Snapshot, SourceData, SourceState, Store};
use crate::sources::SourceKind;
use crate::text::path_label;

const NOT_AFTER: &str = "x509_cert_not_after";
const NOT_AFTER_HELP: &str = "NotAfter of the certificate, Unix seconds.";
const NOT_BEFORE: &str = "x509_cert_not_before";
const NOT_BEFORE_HELP: &str = "NotBefore of the certificate, Unix seconds.";
const EXPIRED: &str = "x509_cert_expired";
const EXPIRED_HELP: &str = "1 if the certificate has expired (now > NotAfter), else 0.";
const EXPIRES_IN: &str = "x509_cert_expires_in_seconds";
const EXPIRES_IN_HELP: &str = "Seconds until NotAfter, computed at scrape time.";
const VALID_SINCE: &str = "x509_cert_valid_since_seconds";
const VALID_SINCE_HELP: &str = "Seconds since NotBefore, computed at scrape time.";

const HANDSHAKE_ERROR: &str = "certinel_tls_handshake_error";
const HANDSHAKE_ERROR_HELP: &str =
    "1 if the last probe of this address failed (transport or verification), 0 if it succeeded.";
const HANDSHAKE_ERROR_INFO: &str = "certinel_tls_handshake_error_info";
const HANDSHAKE_ERROR_INFO_HELP: &str =
    "Present while the last probe of this address failed; the reason label says why.";
const HANDSHAKE_DURATION: &str = "certinel_tls_handshake_duration_seconds";
const HANDSHAKE_DURATION_HELP: &str =
    "Duration of the last probe of this address: connect, STARTTLS and TLS handshake.";
const TLS_INFO: &str = "certinel_tls_info";
const TLS_INFO_HELP: &str = "TLS version and cipher suite negotiated by the last probe.";
const LAST_PROBE: &str = "certinel_tls_last_probe_timestamp_seconds";
const LAST_PROBE_HELP: &str = "When this address was last probed, Unix seconds.";

const FILE_ERROR_INFO: &str = "certinel_file_error_info";
const FILE_ERROR_INFO_HELP: &str =
    "Present while a file cannot be used; the reason label says why.";
const READ_ERRORS: &str = "x509_read_errors";
const READ_ERRORS_HELP: &str = "Number of files currently in error across all sources.";

const BUILD_INFO: &str = "certinel_build_info";
const BUILD_INFO_HELP: &str = "certinel build: version, git revision, rustc version.";
const SOURCE_UP: &str = "x509_source_up";
const SOURCE_UP_HELP: &str =
    "1 when the source completed a pass within two intervals (plus one timeout), else 0.";
const SOURCE_ERRORS: &str = "x509_source_errors";
const SOURCE_ERRORS_HELP: &str = "Failed file reads and probes since start, by reason.";
const SOURCE_LAST_RUN: &str = "certinel_source_last_run_timestamp_seconds";
const SOURCE_LAST_RUN_HELP: &str = "When the source last completed a pass, Unix seconds.";
const SOURCE_DURATION: &str = "certinel_source_duration_seconds";
const SOURCE_DURATION_HELP: &str = "Duration of the source's last completed pass.";
const CERTIFICATES: &str = "certinel_certificates";
const CERTIFICATES_HELP: &str = "Certificates currently tracked, by source kind.";
const RELOAD_OK: &str = "certinel_config_last_reload_successful";
const RELOAD_OK_HELP: &str = "Whether the last configuration reload attempt was successful.";
const RELOAD_TIME: &str = "certinel_config_last_reload_success_timestamp_seconds";
const RELOAD_TIME_HELP: &str = "Timestamp of the last successful configuration reload.";
const SERVED_STALE: &str = "certinel_served_cert_stale";
const SERVED_STALE_HELP: &str =
    "1 when the server presents an older certificate than its expect_file holds (restart pending), 0 otherwise.";

/// Builds the registry served on `/metrics`: [`snapshot_registry`]'s
/// families followed by [`clock_registry`]'s.
pub fn registry(store: Arc<Store>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StoreCollector {
        store: store.clone(),
    }));
    registry.register_collector(Box::new(RelativeCollector { store }));
    registry.register_collector(Box::new(process::ProcessCollector));
    registry
}

/// The families that only change when the snapshot does, or at an instant
/// [`valid_until`] can name: everything per certificate, probe and source.
/// At 10 000 certificates this is nearly the whole exposition, so
/// `/metrics` renders it once per snapshot, not once per scrape.
pub fn snapshot_registry(store: Arc<Store>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StoreCollector { store }));
    registry
}

/// The families that move with the clock every second: the opt-in
/// relative certificate metrics and `process_*`.
pub fn clock_registry(store: Arc<Store>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(RelativeCollector { store }));
    registry.register_collector(Box::new(process::ProcessCollector));
    registry
}

/// Until when (exclusive) [`snapshot_registry`]'s output for `snapshot`,
/// rendered at `now`, stays exact: the next second a certificate's
/// `x509_cert_expired` flips or a source's `x509_source_up` goes stale.
/// `None`: nothing in it depends on the clock.
pub fn valid_until(snapshot: &Snapshot, now: SystemTime) -> Option<SystemTime> {
    let now_s = unix_secs(now);
    let mut until: Option<SystemTime> = None;
    let mut consider = |t: SystemTime| {
        if t > now && until.is_none_or(|u| t < u) {
            until = Some(t);
        }
    };
    // `x509_cert_expired` is `now_s > not_after`: it flips when the clock
    // reaches the second after `not_after`.
    let _ = for_each_cert(&snapshot.sources, &snapshot.metrics, |l| {
        if l.facts.not_after >= now_s {
            if let Ok(after) = u64::try_from(l.facts.not_after + 1) {
                consider(UNIX_EPOCH + Duration::from_secs(after));
            }
        }
        Ok(())
    });
    for source in &snapshot.sources {
        if let Some(flip) = source.up_until() {
            consider(flip);
        }
    }
    until
}

/// Encodes the registry as OpenMetrics text.
pub fn encode(registry: &Registry, out: &mut String) -> fmt::Result {
    prometheus_client::encoding::text::encode(out, registry)
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`to_prometheus_text`]'s output.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4, for readers
/// that only speak the older format (node_exporter's textfile collector,
/// plain `curl`). The formats differ only where certinel's output is
/// concerned in two ways: counter families are named with their `_total`
/// suffix in HELP/TYPE, and there is no `# EOF` line.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        match comment_family(line) {
            Some((kind, name, rest)) if counters.contains(&name) => {
                out.push_str("# ");
                out.push_str(kind);
                out.push(' ');
                out.push_str(name);
                out.push_str("_total");
                out.push_str(rest);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Splits `# HELP name rest` / `# TYPE name rest` into its parts.
fn comment_family(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix("# ")?;
    let (kind, rest) = rest.split_once(' ')?;
    if kind != "HELP" && kind != "TYPE" {
        return None;
    }
    let name_len = rest.find(' ').unwrap_or(rest.len());
    Some((kind, &rest[..name_len], &rest[name_len..]))
}

/// Renders the store's snapshot.
#[derive(Debug)]
pub struct StoreCollector {
    store: Arc<Store>,
}

/// One certificate and where it was seen: the full `x509_cert_*` label set.
struct CertLabels<'a> {
    kind: SourceKind,
    source_name: &'a str,
    filepath: Cow<'a, str>,
    filename: Cow<'a, str>,
    target: &'a str,
    server_name: &'a str,
    address: &'a str,
    chain_index: usize,
    facts: &'a CertFacts,
    settings: &'a MetricsSettings,
}

fn label(encoder: &mut LabelSetEncoder<'_>, key: &str, value: &str) -> fmt::Result {
    (key, value).encode(encoder.encode_label())
}

fn extra_labels(
    encoder: &mut LabelSetEncoder<'_>,
    prefix: &str,
    attrs: &[NameAttribute],
    names: &NameFields,
) -> fmt::Result {
    for attr in attrs {
        let value = match attr {
            NameAttribute::C => &names.c,
            NameAttribute::ST => &names.st,
            NameAttribute::L => &names.l,
        };
        let key = format!("{prefix}_{}", attr.as_str());
        label(encoder, &key, value)?;
    }
    Ok(())
}

impl EncodeLabelSet for CertLabels<'_> {
    fn encode(&self, e: &mut LabelSetEncoder<'_>) -> fmt::Result {
        label(e, "source_kind", self.kind.as_str())?;
        label(e, "source_name", self.source_name)?;
        label(e, "filepath", &self.filepath)?;
        label(e, "filename", &self.filename)?;
        label(e, "target", self.target)?;
        label(e, "server_name", self.server_name)?;
        label(e, "address", self.address)?;
        ("chain_index", self.chain_index).encode(e.encode_label())?;
        label(e, "serial_number", &self.facts.serial_number)?;
        label(e, "subject_CN", &self.facts.subject.cn)?;
        label(e, "subject_O", &self.facts.subject.o)?;
        label(e, "subject_OU", &self.facts.subject.ou)?;
        extra_labels(
            e,
            "subject",
            &self.settings.subject_labels,
            &self.facts.subject,
        )?;
        label(e, "issuer_CN", &self.facts.issuer.cn)?;
        label(e, "issuer_O", &self.facts.issuer.o)?;
        extra_labels(
            e,
            "issuer",
            &self.settings.issuer_labels,
            &self.facts.issuer,
        )
    }
}

/// `source_name`, `target`, `server_name`, `address` of an endpoint probe,
/// plus optional extras (`reason`, `version`/`cipher_suite`).
struct ProbeLabels<'a> {
    source_name: &'a str,
    target: &'a str,
    server_name: &'a str,
    address: &'a str,
    extra: &'a [(&'a str, &'a str)],
}

impl EncodeLabelSet for ProbeLabels<'_> {
    fn encode(&self, e: &mut LabelSetEncoder<'_>) -> fmt::Result {
        label(e, "source_name", self.source_name)?;
        label(e, "target", self.target)?;
        label(e, "server_name", self.server_name)?;
        label(e, "address", self.address)?;
        for (k, v) in self.extra {
            label(e, k, v)?;
        }
        Ok(())
    }
}

fn path_labels(path: &Path) -> (Cow<'_, str>, Cow<'_, str>) {
    let filename = path
        .file_name()
        .map(|n| path_label(Path::new(n)))
        .unwrap_or_default();
    (path_label(path), filename)
}

/// Calls `f` for every certificate in the snapshot, in a stable order.
fn for_each_cert<'a>(
    sources: &'a [Arc<SourceState>],
    settings: &'a MetricsSettings,
    mut f: impl FnMut(&CertLabels<'a>) -> fmt::Result,
) -> fmt::Result {
    for source in sources {
        match &source.data {
            SourceData::Files(scan) => {
                for (path, report) in scan.iter() {
                    let (filepath, filename) = path_labels(path);
                    for (chain_index, facts) in report.certs.iter().enumerate() {
                        f(&CertLabels {
                            kind: source.kind,
                            source_name: &source.name,
                            filepath: filepath.clone(),
                            filename: filename.clone(),
                            target: "",
                            server_name: "",
                            address: "",
                            chain_index,
                            facts,
                            settings,
                        })?;
                    }
                }
            }
            SourceData::Endpoints(results) => {
                for (target, reports) in results.targets.iter().zip(&results.reports) {
                    for report in reports.iter().flat_map(|r| &r.addresses) {
                        for (chain_index, facts) in report.chain.iter().enumerate() {
                            f(&CertLabels {
                                kind: source.kind,
                                source_name: &source.name,
                                filepath: Cow::Borrowed(""),
                                filename: Cow::Borrowed(""),
                                target: &target.target,
                                server_name: target.sni(),
                                address: &report.address,
                                chain_index,
                                facts,
                                settings,
                            })?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Calls `f` for every probed address of every endpoint source.
fn for_each_probe<'a>(
    sources: &'a [Arc<SourceState>],
    mut f: impl FnMut(ProbeLabels<'a>, &'a crate::sources::tls::AddressReport) -> fmt::Result,
) -> fmt::Result {
    for source in sources {
        let SourceData::Endpoints(results) = &source.data else {
            continue;
        };
        for (target, reports) in results.targets.iter().zip(&results.reports) {
            for report in reports.iter().flat_map(|r| &r.addresses) {
                f(
                    ProbeLabels {
                        source_name: &source.name,
                        target: &target.target,
                        server_name: target.sni(),
                        address: &report.address,
                        extra: &[],
                    },
                    report,
                )?;
            }
        }
    }
    Ok(())
}

/// Calls `f` for every probed address whose target has an `expect_file`
/// with a readable leaf and that presented a chain.
fn for_each_stale<'a>(
    sources: &'a [Arc<SourceState>],
    mut f: impl FnMut([(&'a str, &str); 4], Staleness) -> fmt::Result,
) -> fmt::Result {
    for source in sources {
        let SourceData::Endpoints(results) = &source.data else {
            continue;
        };
        for (target, report) in results.targets.iter().zip(&results.reports) {
            let Some(report) = report else { continue };
            let Some(expected) = &report.expected else {
                continue;
            };
            let Ok(on_disk) = &expected.leaf else {
                continue;
            };
            let filepath = path_label(&expected.path);
            for address in &report.addresses {
                if let Some(served) = address.chain.first() {
                    let labels = [
                        ("source_name", source.name.as_str()),
                        ("target", target.target.as_str()),
                        ("address", address.address.as_str()),
                        ("filepath", &filepath),
                    ];
                    f(labels, rotation::compare(served, on_disk))?;
                }
            }
        }
    }
    Ok(())
}

fn gauge<L: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    m: &mut MetricEncoder<'_>,
    labels: &L,
    value: V,
) -> fmt::Result {
    ConstGauge::new(value).encode(m.encode_family(labels)?)
}

fn source_labels(s: &SourceState) -> [(&'static str, &str); 2] {
    [("source_kind", s.kind.as_str()), ("source_name", &s.name)]
}

/// Renders the opt-in relative certificate metrics, which change every
/// second.
#[derive(Debug)]
pub struct RelativeCollector {
    store: Arc<Store>,
}

impl Collector for RelativeCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let snapshot = self.store.load();
        let (sources, settings) = (snapshot.sources.as_slice(), &snapshot.metrics);
        if !settings.expose_relative {
            return Ok(());
        }
        let now_s = unix_secs(SystemTime::now());
        let mut m = enc.encode_descriptor(EXPIRES_IN, EXPIRES_IN_HELP, None, MetricType::Gauge)?;
        for_each_cert(sources, settings, |l| {
            gauge(&mut m, l, l.facts.not_after - now_s)
        })?;
        let mut m =
            enc.encode_descriptor(VALID_SINCE, VALID_SINCE_HELP, None, MetricType::Gauge)?;
        for_each_cert(sources, settings, |l| {
            gauge(&mut m, l, now_s - l.facts.not_before)
        })
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let snapshot = self.store.load();
        let sources = snapshot.sources.as_slice();
        let settings = &snapshot.metrics;
        let now = SystemTime::now();
        let now_s = unix_secs(now);

        // 1. Certificate facts.
        let mut m = enc.encode_descriptor(NOT_AFTER, NOT_AFTER_HELP, None, MetricType::Gauge)?;
        for_each_cert(sources, settings, |l| gauge(&mut m, l, l.facts.not_after))?;
        if settings.expose_not_before {
            let mut m =
                enc.encode_descriptor(NOT_BEFORE, NOT_BEFORE_HELP, None, MetricType::Gauge)?;
            for_each_cert(sources, settings, |l| gauge(&mut m, l, l.facts.not_before))?;
        }
        let mut m = enc.encode_descriptor(EXPIRED, EXPIRED_HELP, None, MetricType::Gauge)?;
        for_each_cert(sources, settings, |l| {
            gauge(&mut m, l, i64::from(now_s > l.facts.not_after))
        })?;

        // 2. Endpoint probes.
        let mut m = enc.encode_descriptor(
            HANDSHAKE_ERROR,
            HANDSHAKE_ERROR_HELP,
            None,
            MetricType::Gauge,
        )?;
        for_each_probe(sources, |l, r| {
            gauge(&mut m, &l, i64::from(r.error.is_some()))
        })?;
        let mut m = enc.encode_descriptor(
            HANDSHAKE_ERROR_INFO,
            HANDSHAKE_ERROR_INFO_HELP,
            None,
            MetricType::Gauge,
        )?;
        for_each_probe(sources, |l, r| match &r.error {
            Some(e) => gauge(
                &mut m,
                &ProbeLabels {
                    extra: &[("reason", e.reason.as_str())],
                    ..l
                },
                1,
            ),
            None => Ok(()),
        })?;
        let mut m = enc.encode_descriptor(
            HANDSHAKE_DURATION,
            HANDSHAKE_DURATION_HELP,
            None,
            MetricType::Gauge,
        )?;
        for_each_probe(sources, |l, r| gauge(&mut m, &l, r.duration.as_secs_f64()))?;
        let mut m = enc.encode_descriptor(TLS_INFO, TLS_INFO_HELP, None, MetricType::Gauge)?;
        for_each_probe(sources, |l, r| match &r.negotiated {
            Some(n) => gauge(
                &mut m,
                &ProbeLabels {
                    extra: &[("version", n.version), ("cipher_suite", &n.cipher_suite)],
                    ..l
                },
                1,
            ),
            None => Ok(()),
        })?;
        let mut m = enc.encode_descriptor(LAST_PROBE, LAST_PROBE_HELP, None, MetricType::Gauge)?;
        for_each_probe(sources, |l, r| gauge(&mut m, &l, unix_seconds(r.probed_at)))?;
        let mut m =
            enc.encode_descriptor(SERVED_STALE, SERVED_STALE_HELP, None, MetricType::Gauge)?;
        for_each_stale(sources, |labels, staleness| {
            gauge(&mut m, &labels.as_slice(), staleness.as_gauge())
        })?;

        // 3. File sources.
        let mut m = enc.encode_descriptor(
            FILE_ERROR_INFO,
            FILE_ERROR_INFO_HELP,
            None,
            MetricType::Gauge,
        )?;
        let mut read_errors = 0usize;
        for source in sources {
            let SourceData::Files(scan) = &source.data else {
                continue;
            };
            read_errors += source.files_in_error;
            for (path, report) in scan.iter() {
                if let Some(e) = &report.error {
                    let labels = [
                        ("source_name", source.name.as_str()),
                        ("filepath", &path_label(path)),
                        ("reason", e.reason.as_str()),
                    ];
                    gauge(&mut m, &labels.as_slice(), 1)?;
                }
            }
        }
        let m = enc.encode_descriptor(READ_ERRORS, READ_ERRORS_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(read_errors as i64).encode(m)?;

        // 4. The exporter itself.
        let mut m = enc.encode_descriptor(BUILD_INFO, BUILD_INFO_HELP, None, MetricType::Gauge)?;
        let build = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("CERTINEL_GIT_REVISION")),
            ("rustc", env!("CERTINEL_RUSTC_VERSION")),
        ];
        gauge(&mut m, &build.as_slice(), 1)?;
        let mut m = enc.encode_descriptor(SOURCE_UP, SOURCE_UP_HELP, None, MetricType::Gauge)?;
        for s in sources {
            gauge(
                &mut m,
                &source_labels(s).as_slice(),
                i64::from(s.is_up(now)),
            )?;
        }
        let mut m =
            enc.encode_descriptor(SOURCE_ERRORS, SOURCE_ERRORS_HELP, None, MetricType::Counter)?;
        for s in sources {
            for (reason, count) in &s.errors_total {
                let [kind, name] = source_labels(s);
                let labels = [kind, name, ("reason", reason)];
                ConstCounter::new(*count).encode(m.encode_family(&labels.as_slice())?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            SOURCE_LAST_RUN,
            SOURCE_LAST_RUN_HELP,
            None,
            MetricType::Gauge,
        )?;
        for s in sources {
            if let Some(pass) = s.last_pass {
                gauge(
                    &mut m,
                    &source_labels(s).as_slice(),
                    unix_seconds(pass.finished_at),
                )?;
            }
        }
        let mut m = enc.encode_descriptor(
            SOURCE_DURATION,
            SOURCE_DURATION_HELP,
            None,
            MetricType::Gauge,
        )?;
        for s in sources {
            if let Some(pass) = s.last_pass {
                gauge(
                    &mut m,
                    &source_labels(s).as_slice(),
                    pass.duration.as_secs_f64(),
                )?;
            }
        }
        let m = enc.encode_descriptor(RELOAD_OK, RELOAD_OK_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(i64::from(snapshot.reload.successful)).encode(m)?;
        let m = enc.encode_descriptor(RELOAD_TIME, RELOAD_TIME_HELP, None, MetricType::Gauge)?;
        ConstGauge::new(unix_seconds(snapshot.reload.last_success)).encode(m)?;
        let mut m =
            enc.encode_descriptor(CERTIFICATES, CERTIFICATES_HELP, None, MetricType::Gauge)?;
        for kind in [SourceKind::File, SourceKind::Endpoint] {
            let count: usize = sources
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.certificates)
                .sum();
            gauge(
                &mut m,
                &[("source_kind", kind.as_str())].as_slice(),
                count as i64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::to_prometheus_text;

    #[test]
    fn counters_get_total_names_and_eof_is_dropped() {
        let om = "# HELP x509_source_errors Failed.\n# TYPE x509_source_errors counter\nx509_source_errors_total{reason=\"dns\"} 3\n# HELP up_ish Up.\n# TYPE up_ish gauge\nup_ish 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP x509_source_errors_total Failed.\n# TYPE x509_source_errors_total counter\nx509_source_errors_total{reason=\"dns\"} 3\n# HELP up_ish Up.\n# TYPE up_ish gauge\nup_ish 1\n"
        );
    }
}

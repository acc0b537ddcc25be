//! Probing in-process: an endpoint source built from YAML, as the daemon
//! would load it, and one probe of its first target.

use std::path::Path;

use certinel::config::{Config, EndpointSourceConfig};
use certinel::sources::endpoint::{probe, AddressReport, TlsErrorReason};

/// Builds the endpoint source described by `entry` (YAML for one
/// `endpoints:` item, without the leading dash) in `dir`.
pub fn endpoint(dir: &Path, entry: &str) -> EndpointSourceConfig {
    let yaml = format!("endpoints:\n  - name: t\n{}", indent(entry));
    let config = Config::from_yaml(&yaml, dir).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    config.endpoints[0].clone()
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// One probe of the source's first target.
pub async fn probe_one(source: &EndpointSourceConfig) -> Vec<AddressReport> {
    probe(
        &source.targets[0],
        &source.tls,
        source.starttls,
        source.timeout,
    )
    .await
}

/// The failure reason of the one address probed.
pub fn reason(reports: &[AddressReport]) -> Option<TlsErrorReason> {
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports[0].error.as_ref().map(|e| e.reason)
}

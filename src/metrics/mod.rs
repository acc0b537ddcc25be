//! The metric contract (README "Metrics") rendered from the snapshot, and
//! the cache that shares renders between scrapes.
//!
//! The collectors only read the snapshot: no I/O, no parsing, no locks
//! shared with probes. `families` holds everything that changes with the
//! snapshot (or at an instant [`valid_until`] names), so it can be rendered
//! once per snapshot; `relative` and `process` move with the clock.
//! Names and help texts live in `names`, label sets in `labels`, and
//! every series passes the uniqueness guard in `series`. `cache` is
//! the single-flight render cache `/metrics` serves from. `probe` renders
//! one `/probe` answer through the same families, and counts the requests.

mod cache;
mod families;
mod labels;
mod names;
mod probe;
mod process;
mod relative;
mod rendered;
mod series;
mod text;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;

use crate::clock::unix_secs;
use crate::snapshot::{Snapshot, Store};

pub use cache::Exposition;
pub use probe::{render_probe, ProbeCounters};
pub use rendered::{Chunks, Encoding, Format, RenderError, Rendered};
pub(crate) use text::to_prometheus_text;

/// Builds the whole registry: [`snapshot_registry`]'s families followed by
/// [`clock_registry`]'s (for the textfile and `certinel check`).
pub fn registry(store: Arc<Store>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families::StoreCollector {
        store: store.clone(),
    }));
    registry.register_collector(Box::new(relative::RelativeCollector { store }));
    registry.register_collector(Box::new(process::ProcessCollector));
    registry
}

/// The families that only change when the snapshot does, or at an instant
/// [`valid_until`] can name: everything per certificate, probe and source.
/// At 10 000 certificates this is nearly the whole exposition, so
/// `/metrics` renders it once per snapshot, not once per scrape.
pub fn snapshot_registry(store: Arc<Store>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families::StoreCollector { store }));
    registry
}

/// The families that move with the clock every second: the opt-in
/// relative certificate metrics and `process_*`.
pub fn clock_registry(store: Arc<Store>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(relative::RelativeCollector { store }));
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
    let mut consider_second_after = |unix: i64| {
        let flip = u64::try_from(unix.saturating_add(1))
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)));
        if let Some(flip) = flip {
            consider(flip);
        }
    };
    let _ = labels::for_each_cert(&snapshot.sources, &snapshot.metrics, |l| {
        if l.facts.not_after >= now_s {
            consider_second_after(l.facts.not_after);
        }
        Ok(())
    });
    // `x509_crl_stale` (and `crl_stale`) flip the same way at `nextUpdate`.
    let _ = labels::for_each_crl(&snapshot.sources, &snapshot.metrics, |l| {
        if let Some(next) = l.crl.next_update.filter(|&next| next >= now_s) {
            consider_second_after(next);
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

/// The content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

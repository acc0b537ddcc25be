//! The latest result of every source, published as an immutable snapshot.
//!
//! Probes and file passes write here; scrapes only read. Readers take an
//! `Arc` to the current snapshot without locking (`arc-swap`), so a scrape
//! never waits for a probe and a probe never waits for a scrape. Writers
//! are serialised by a mutex and copy only what changes: the source they
//! update, whose per-target results are a vector of `Arc`s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::config::{Config, EndpointTarget};
use crate::sources::files::FileScan;
use crate::sources::tls::AddressReport;
use crate::sources::SourceKind;

/// Everything a scrape renders.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sources in config order: files first, then endpoints.
    pub sources: Vec<Arc<SourceState>>,
}

/// One source's latest results and pass bookkeeping.
#[derive(Debug, Clone)]
pub struct SourceState {
    /// `file` or `endpoint`.
    pub kind: SourceKind,
    /// The `name` from the config.
    pub name: String,
    /// The source's interval, for staleness.
    pub interval: Duration,
    /// The source's probe deadline (zero for files).
    pub timeout: Duration,
    /// The last completed pass, if any.
    pub last_pass: Option<Pass>,
    /// Failed reads/probes since start, by reason.
    pub errors_total: BTreeMap<&'static str, u64>,
    /// Certificates currently tracked by this source.
    pub certificates: usize,
    /// Files currently in error (file sources only).
    pub files_in_error: usize,
    /// The results.
    pub data: SourceData,
}

/// A completed pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// When it completed.
    pub finished_at: SystemTime,
    /// How long it took.
    pub duration: Duration,
}

/// Results, by source kind.
#[derive(Debug, Clone)]
pub enum SourceData {
    /// Every file the last pass matched.
    Files(Arc<FileScan>),
    /// One slot per configured target, in config order.
    Endpoints(EndpointResults),
}

/// An endpoint source's targets and their latest probes.
#[derive(Debug, Clone)]
pub struct EndpointResults {
    /// The configured targets.
    pub targets: Arc<[EndpointTarget]>,
    /// `reports[i]` is the last probe of `targets[i]`, once there is one.
    pub reports: Vec<Option<Arc<Vec<AddressReport>>>>,
    /// Targets not yet probed in the current pass.
    pending: Vec<bool>,
    pending_count: usize,
    round_started: SystemTime,
}

impl SourceState {
    /// Whether the source completed a pass recently enough to be trusted:
    /// within two intervals plus one deadline of `now`.
    pub fn is_up(&self, now: SystemTime) -> bool {
        let Some(pass) = self.last_pass else {
            return false;
        };
        let grace = self.interval * 2 + self.timeout + Duration::from_secs(1);
        now.duration_since(pass.finished_at)
            .map_or(true, |age| age <= grace)
    }
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    write: Mutex<()>,
    /// Bumped after every publish, for consumers that follow changes (the
    /// textfile writer) instead of being asked (scrapes).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Store {
    /// A store with one empty slot per configured source.
    pub fn new(config: &Config) -> Store {
        let now = SystemTime::now();
        let mut sources = Vec::with_capacity(config.source_count());
        for f in &config.files {
            sources.push(Arc::new(SourceState {
                kind: SourceKind::File,
                name: f.name.clone(),
                interval: f.interval,
                timeout: Duration::ZERO,
                last_pass: None,
                errors_total: BTreeMap::new(),
                certificates: 0,
                files_in_error: 0,
                data: SourceData::Files(Arc::default()),
            }));
        }
        for e in &config.endpoints {
            let n = e.targets.len();
            sources.push(Arc::new(SourceState {
                kind: SourceKind::Endpoint,
                name: e.name.clone(),
                interval: e.interval,
                timeout: e.timeout,
                last_pass: None,
                errors_total: BTreeMap::new(),
                certificates: 0,
                files_in_error: 0,
                data: SourceData::Endpoints(EndpointResults {
                    targets: e.targets.clone().into(),
                    reports: vec![None; n],
                    pending: vec![true; n],
                    pending_count: n,
                    round_started: now,
                }),
            }));
        }
        Store {
            current: ArcSwap::from_pointee(Snapshot { sources }),
            write: Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The current snapshot. Cheap; never blocks.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A receiver that is marked changed after every publish.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// True once every source has completed its first pass.
    pub fn is_ready(&self) -> bool {
        self.load().sources.iter().all(|s| s.last_pass.is_some())
    }

    /// Names of sources that have not completed a first pass.
    pub fn pending_sources(&self) -> Vec<String> {
        self.load()
            .sources
            .iter()
            .filter(|s| s.last_pass.is_none())
            .map(|s| s.name.clone())
            .collect()
    }

    /// Publishes a file source's pass.
    pub fn publish_files(&self, source: usize, scan: FileScan, duration: Duration) {
        self.update(source, |state| {
            let mut in_error = 0;
            let mut certificates = 0;
            for report in scan.values() {
                certificates += report.certs.len();
                if let Some(e) = &report.error {
                    in_error += 1;
                    *state.errors_total.entry(e.reason.as_str()).or_default() += 1;
                }
            }
            state.certificates = certificates;
            state.files_in_error = in_error;
            state.data = SourceData::Files(Arc::new(scan));
            state.last_pass = Some(Pass {
                finished_at: SystemTime::now(),
                duration,
            });
        });
    }

    /// Publishes one target's probe; completes the source's pass when it
    /// was the last target still pending in this round.
    pub fn publish_target(&self, source: usize, target: usize, reports: Vec<AddressReport>) {
        self.update(source, |state| {
            let SourceData::Endpoints(results) = &mut state.data else {
                return;
            };
            let Some(slot) = results.reports.get_mut(target) else {
                return;
            };
            for r in &reports {
                if let Some(e) = &r.error {
                    *state.errors_total.entry(e.reason.as_str()).or_default() += 1;
                }
            }
            let old: usize = slot
                .as_ref()
                .map_or(0, |r| r.iter().map(|a| a.chain.len()).sum());
            let new: usize = reports.iter().map(|a| a.chain.len()).sum();
            state.certificates = state.certificates.saturating_sub(old) + new;
            *slot = Some(Arc::new(reports));
            if results.pending.get(target).copied().unwrap_or(false) {
                results.pending[target] = false;
                results.pending_count -= 1;
            }
            if results.pending_count == 0 {
                let now = SystemTime::now();
                state.last_pass = Some(Pass {
                    finished_at: now,
                    duration: now
                        .duration_since(results.round_started)
                        .unwrap_or_default(),
                });
                results.pending.iter_mut().for_each(|p| *p = true);
                results.pending_count = results.pending.len();
                results.round_started = now;
            }
        });
    }

    fn update(&self, source: usize, f: impl FnOnce(&mut SourceState)) {
        // A poisoned lock only means another writer panicked mid-update;
        // the snapshot it would have written was never published.
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current.load_full();
        let Some(existing) = current.sources.get(source) else {
            return;
        };
        let mut state = SourceState::clone(existing);
        f(&mut state);
        let mut next = Snapshot::clone(&current);
        next.sources[source] = Arc::new(state);
        self.current.store(Arc::new(next));
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}

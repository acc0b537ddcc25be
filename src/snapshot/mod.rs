//! The latest result of every source, published as an immutable snapshot.
//!
//! Probes and file passes write here; scrapes only read. Readers take an
//! `Arc` to the current snapshot without locking (`arc-swap`), so a scrape
//! never waits for a probe and a probe never waits for a scrape. Writers
//! are serialised by a mutex and copy only what changes: the source they
//! update, whose per-target results are chunks of `Arc`s ([`Reports`]).
//!
//! Sources and targets are addressed by stable ids rather than positions,
//! so a configuration reload can keep the results of everything that did
//! not change ([`Store::apply`]) while probes already in flight publish
//! into the right place — or, if their target was removed, nowhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::config::{EndpointTarget, MetricsSettings};
use crate::sources::endpoint::restart::RestartCheck;
use crate::sources::endpoint::AddressReport;
use crate::sources::files::FileScan;
use crate::sources::SourceKind;

mod reports;

pub use reports::{Reports, Slot};

/// Identifies a source across reloads.
pub type SourceId = u64;
/// Identifies a target within its source across reloads.
pub type TargetId = u64;

/// Everything a scrape renders.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Sources in config order: files first, then endpoints.
    pub sources: Vec<Arc<SourceState>>,
    /// Exposition options of the current configuration.
    pub metrics: MetricsSettings,
    /// Outcome of the last configuration (re)load.
    pub reload: ReloadStatus,
}

/// `certinel_config_last_reload_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Whether the last attempt succeeded.
    pub successful: bool,
    /// When a configuration was last loaded successfully.
    pub last_success: SystemTime,
}

/// One source's latest results and pass bookkeeping.
#[derive(Debug, Clone)]
pub struct SourceState {
    /// Stable id.
    pub id: SourceId,
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
    /// Files in error at the last pass (file sources only; a CRL that
    /// went stale since is counted at scrape time, not here).
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

/// The last probe of one target.
#[derive(Debug, Clone)]
pub struct TargetReport {
    /// One report per resolved address.
    pub addresses: Vec<AddressReport>,
    /// The restart-pending verdicts, for targets with an `expect_file`.
    pub restart: Option<RestartCheck>,
}

/// An endpoint source's targets and their latest probes.
#[derive(Debug, Clone)]
pub struct EndpointResults {
    /// The configured targets.
    pub targets: Arc<[Arc<EndpointTarget>]>,
    /// Their ids, parallel to `targets`.
    pub ids: Arc<[TargetId]>,
    /// Where each target id sits in `targets`.
    index: Arc<HashMap<TargetId, usize>>,
    /// `reports[i]` is the last probe of `targets[i]`, once there is one.
    pub reports: Reports,
    /// Targets not yet probed in the current pass.
    pending: Vec<bool>,
    /// How many of `pending` are set.
    pending_count: usize,
    round_started: SystemTime,
}

impl EndpointResults {
    fn position(&self, id: TargetId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// Marks the target at `pos` probed in this pass.
    fn probed(&mut self, pos: usize) {
        if let Some(pending) = self.pending.get_mut(pos) {
            if std::mem::replace(pending, false) {
                self.pending_count -= 1;
            }
        }
    }

    fn certificates(&self) -> usize {
        self.reports
            .iter()
            .flatten()
            .flat_map(|r| &r.addresses)
            .map(|a| a.chain.len())
            .sum()
    }
}

impl SourceState {
    /// A source of one target and its report, outside any store: what a
    /// probe made on request (`/probe`) renders.
    pub fn one_target(
        kind: SourceKind,
        name: &str,
        target: Arc<EndpointTarget>,
        report: TargetReport,
    ) -> SourceState {
        let results = EndpointResults {
            targets: Arc::from(vec![target]),
            ids: Arc::from(vec![0]),
            index: Arc::new(HashMap::from([(0, 0)])),
            reports: std::iter::once(Some(Arc::new(report))).collect(),
            pending: vec![false],
            pending_count: 0,
            round_started: SystemTime::now(),
        };
        SourceState {
            id: 0,
            kind,
            name: name.to_owned(),
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
            last_pass: None,
            errors_total: BTreeMap::new(),
            certificates: results.certificates(),
            files_in_error: 0,
            data: SourceData::Endpoints(results),
        }
    }

    /// Whether the source completed a pass recently enough to be trusted:
    /// within two intervals plus one deadline of `now`.
    pub fn is_up(&self, now: SystemTime) -> bool {
        self.up_until().is_some_and(|until| now <= until)
    }

    /// The instant after which [`is_up`](Self::is_up) turns false unless
    /// another pass completes; `None` before the first pass.
    pub fn up_until(&self) -> Option<SystemTime> {
        let pass = self.last_pass?;
        let grace = self
            .interval
            .checked_mul(2)?
            .checked_add(self.timeout)?
            .checked_add(Duration::from_secs(1))?;
        pass.finished_at.checked_add(grace)
    }
}

/// Where every source and target goes, with its id: what a configuration
/// looks like to the store.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Exposition options.
    pub metrics: MetricsSettings,
    /// Sources in config order.
    pub sources: Vec<SourceLayout>,
}

/// One source in a [`Layout`].
#[derive(Debug, Clone)]
pub struct SourceLayout {
    /// Stable id; an id the store already knows keeps its results.
    pub id: SourceId,
    /// Kind.
    pub kind: SourceKind,
    /// Name.
    pub name: String,
    /// Interval.
    pub interval: Duration,
    /// Probe deadline (zero for files).
    pub timeout: Duration,
    /// Endpoint targets with their ids (empty for files).
    pub targets: Vec<(TargetId, Arc<EndpointTarget>)>,
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    write: Mutex<()>,
    /// Once every source of the first configuration has completed a pass,
    /// readiness stays: a reload adding a source must not flap `/-/ready`.
    ready: AtomicBool,
    /// Bumped after every publish, for consumers that follow changes (the
    /// textfile writer) instead of being asked (scrapes).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    /// An empty store: no sources until a [`Layout`] is applied (the
    /// scheduler lays it out for each configuration it runs).
    pub fn new() -> Store {
        let empty = Snapshot {
            sources: Vec::new(),
            metrics: MetricsSettings::default(),
            reload: ReloadStatus {
                successful: true,
                last_success: SystemTime::now(),
            },
        };
        Store {
            current: ArcSwap::from_pointee(empty),
            write: Mutex::new(()),
            ready: AtomicBool::new(false),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The current snapshot. Cheap; never blocks.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A number that changes with every publish: equal generations mean
    /// an identical snapshot.
    pub fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    /// A receiver that is marked changed after every publish.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// True once every source has completed its first pass (and from then
    /// on).
    pub fn is_ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let ready = self.load().sources.iter().all(|s| s.last_pass.is_some());
        if ready {
            self.ready.store(true, Ordering::Relaxed);
        }
        ready
    }

    /// Names of sources that have not completed a first pass.
    pub fn pending_sources(&self) -> Vec<String> {
        if self.is_ready() {
            return Vec::new();
        }
        self.load()
            .sources
            .iter()
            .filter(|s| s.last_pass.is_none())
            .map(|s| s.name.clone())
            .collect()
    }

    /// Lays the store out anew. Sources and targets whose ids the store
    /// already holds keep their results and counters; the others start
    /// empty; those not in `layout` disappear from the next scrape.
    pub fn apply(&self, layout: Layout) {
        self.write_with(|snapshot| {
            let old: HashMap<SourceId, &Arc<SourceState>> =
                snapshot.sources.iter().map(|s| (s.id, s)).collect();
            let now = SystemTime::now();
            let sources = layout
                .sources
                .into_iter()
                .map(|l| Arc::new(relayout(old.get(&l.id).map(|s| s.as_ref()), l, now)))
                .collect();
            snapshot.sources = sources;
            snapshot.metrics = layout.metrics;
        });
    }

    /// Records the outcome of a configuration reload.
    pub fn record_reload(&self, successful: bool) {
        self.write_with(|snapshot| {
            snapshot.reload.successful = successful;
            if successful {
                snapshot.reload.last_success = SystemTime::now();
            }
        });
    }

    /// Publishes a file source's pass. Ignored if the source is gone.
    pub fn publish_files(&self, source: SourceId, scan: FileScan, duration: Duration) {
        let now_s = crate::clock::unix_secs(SystemTime::now());
        self.update(source, |state| {
            let mut in_error = 0;
            let mut certificates = 0;
            for report in scan.values() {
                certificates += report.certs.len();
                if let Some(reason) = report.reason_at(now_s) {
                    in_error += 1;
                    *state.errors_total.entry(reason.as_str()).or_default() += 1;
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
    /// was the last target still pending in this round. Ignored if the
    /// target is gone (removed by a reload while it was being probed).
    pub fn publish_target(&self, source: SourceId, target: TargetId, report: TargetReport) {
        self.update(source, |state| {
            let SourceData::Endpoints(results) = &mut state.data else {
                return;
            };
            let Some(pos) = results.position(target) else {
                return;
            };
            for r in &report.addresses {
                if let Some(e) = &r.error {
                    *state.errors_total.entry(e.reason.as_str()).or_default() += 1;
                }
            }
            let Some(slot) = results.reports.get_mut(pos) else {
                return;
            };
            // Counted as it changes: summing every target's chains again
            // would make a round of `n` probes cost `n²`.
            let chain_len =
                |r: &TargetReport| -> usize { r.addresses.iter().map(|a| a.chain.len()).sum() };
            let before = slot.as_deref().map_or(0, chain_len);
            let after = chain_len(&report);
            *slot = Some(Arc::new(report));
            results.probed(pos);
            state.certificates = (state.certificates + after).saturating_sub(before);
            complete_round_if_done(state);
        });
    }

    /// The last probe of a target, if it has one.
    pub fn target_report(&self, source: SourceId, target: TargetId) -> Option<Arc<TargetReport>> {
        let snapshot = self.load();
        let state = snapshot.sources.iter().find(|s| s.id == source)?;
        let SourceData::Endpoints(results) = &state.data else {
            return None;
        };
        results.reports.get(results.position(target)?)?.clone()
    }

    /// Replaces the restart-pending verdicts of a target's last probe (its
    /// `expect_file` changed). Not a probe: counters and the pass are
    /// untouched. Ignored if the target is gone or was never probed.
    pub fn publish_restart(&self, source: SourceId, target: TargetId, check: RestartCheck) {
        self.update(source, |state| {
            let SourceData::Endpoints(results) = &mut state.data else {
                return;
            };
            let Some(slot) = results
                .position(target)
                .and_then(|i| results.reports.get_mut(i))
            else {
                return;
            };
            if let Some(report) = slot {
                *report = Arc::new(TargetReport {
                    addresses: report.addresses.clone(),
                    restart: Some(check),
                });
            }
        });
    }

    fn update(&self, source: SourceId, f: impl FnOnce(&mut SourceState)) {
        self.write_with(|snapshot| {
            if let Some(slot) = snapshot.sources.iter_mut().find(|s| s.id == source) {
                let mut state = SourceState::clone(slot);
                f(&mut state);
                *slot = Arc::new(state);
            }
        });
    }

    fn write_with(&self, f: impl FnOnce(&mut Snapshot)) {
        // A poisoned lock only means another writer panicked mid-update;
        // the snapshot it would have written was never published.
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Snapshot::clone(&self.current.load_full());
        f(&mut next);
        self.current.store(Arc::new(next));
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Completes an endpoint source's pass once no target is pending.
fn complete_round_if_done(state: &mut SourceState) {
    let SourceData::Endpoints(results) = &mut state.data else {
        return;
    };
    if results.pending_count > 0 {
        return;
    }
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

/// The state of `layout`'s source, carried over from `old` where ids match.
fn relayout(old: Option<&SourceState>, layout: SourceLayout, now: SystemTime) -> SourceState {
    let mut state = match old {
        Some(old) if old.kind == layout.kind => old.clone(),
        _ => SourceState {
            id: layout.id,
            kind: layout.kind,
            name: layout.name.clone(),
            interval: layout.interval,
            timeout: layout.timeout,
            last_pass: None,
            errors_total: BTreeMap::new(),
            certificates: 0,
            files_in_error: 0,
            data: match layout.kind {
                SourceKind::File => SourceData::Files(Arc::default()),
                SourceKind::Endpoint | SourceKind::Probe => {
                    SourceData::Endpoints(EndpointResults {
                        targets: Arc::from(Vec::new()),
                        ids: Arc::from(Vec::new()),
                        index: Arc::default(),
                        reports: Reports::default(),
                        pending: Vec::new(),
                        pending_count: 0,
                        round_started: now,
                    })
                }
            },
        },
    };
    state.name = layout.name;
    state.interval = layout.interval;
    state.timeout = layout.timeout;
    if let SourceData::Endpoints(old_results) = &state.data {
        let mut reports = Vec::with_capacity(layout.targets.len());
        let mut pending = Vec::with_capacity(layout.targets.len());
        let mut index = HashMap::with_capacity(layout.targets.len());
        for (pos, (id, _)) in layout.targets.iter().enumerate() {
            index.insert(*id, pos);
            match old_results.position(*id) {
                Some(pos) => {
                    reports.push(old_results.reports.get(pos).cloned().flatten());
                    pending.push(old_results.pending.get(pos).copied().unwrap_or(true));
                }
                None => {
                    reports.push(None);
                    pending.push(true);
                }
            }
        }
        let (ids, targets): (Vec<TargetId>, Vec<Arc<EndpointTarget>>) =
            layout.targets.into_iter().unzip();
        let results = EndpointResults {
            targets: targets.into(),
            ids: ids.into(),
            index: Arc::new(index),
            reports: reports.into_iter().collect(),
            pending_count: pending.iter().filter(|&&p| p).count(),
            pending,
            round_started: old_results.round_started,
        };
        state.certificates = results.certificates();
        let had_pass = state.last_pass.is_some();
        state.data = SourceData::Endpoints(results);
        // Removing the last pending targets may complete the round; a
        // source that never completed one waits for its real probes.
        if had_pass {
            complete_round_if_done(&mut state);
        }
    }
    state
}

//! Runs the sources: one task per file source and one per endpoint target,
//! and reshapes them when the configuration is reloaded.
//!
//! Every task runs at once at start, then again after its interval with
//! ±10 % jitter, so a thousand targets drift apart instead of firing
//! together. Semaphores bound the probes (and file passes) in flight; the
//! per-probe deadline lives in [`tls::probe`]. A slow or dead target only
//! ever holds its own task and one permit. File sources also run when the
//! [`watch`](crate::watch) module sees their files change.
//!
//! Permits come from two lanes of `global.concurrency` each: a target whose
//! previous probe ran into its deadline draws from the slow lane, every
//! other one (and every file pass) from the main lane. A thousand black
//! holes then queue only behind each other, and a target that answered
//! last time never waits for one that did not.
//!
//! On reload, a task whose source settings and target are unchanged keeps
//! running — and keeps its results — while removed ones are cancelled and
//! new ones start at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, EndpointSourceConfig, EndpointTarget, FileSourceConfig};
use crate::rotation::{self, Staleness};
use crate::snapshot::{Layout, SourceData, SourceId, SourceLayout, Store, TargetId, TargetReport};
use crate::sources::files::{self, FileCache, FileErrorReason, FileScan};
use crate::sources::tls::{self, AddressReport, TlsErrorReason};
use crate::sources::SourceKind;
use crate::watch::FileWatcher;

/// What identifies a running task across reloads: a task whose key is in
/// the new configuration keeps running.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TaskKey {
    File {
        name: String,
        fingerprint: u64,
    },
    Target {
        name: String,
        fingerprint: u64,
        /// Shared with the config and the snapshot; `Arc` hashes and
        /// compares by value, so an unchanged target of a reloaded config
        /// still finds its task.
        target: Arc<EndpointTarget>,
    },
}

#[derive(Debug)]
struct Task {
    cancel: CancellationToken,
    source: SourceId,
    target: Option<TargetId>,
    /// File sources: wakes the task for an immediate pass.
    poke: Option<(Arc<Notify>, Arc<FileSourceConfig>)>,
}

/// Starts one task once the store has been laid out for it.
type Starter = Box<dyn FnOnce(&mut Scheduler)>;

/// What a reload changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Tasks (file sources and endpoint targets) that kept running.
    pub kept: usize,
    /// Tasks started.
    pub started: usize,
    /// Tasks stopped.
    pub stopped: usize,
}

/// The two bulkheads probes draw permits from, `global.concurrency` each,
/// so at most twice that many probes are in flight. Every target starts in
/// the main lane; a probe that ran into its deadline sends the target's
/// next probe to the slow lane, and one that did not brings it back.
///
/// The slow lane is a full pool of its own rather than a share of the main
/// one: live targets keep every main permit however many targets are dead,
/// and the dead ones are not probed less often than with a single pool.
#[derive(Debug, Clone)]
struct Lanes {
    /// Targets that answered last time (or were never probed), and file
    /// passes.
    main: Arc<Semaphore>,
    /// Targets whose previous probe timed out.
    slow: Arc<Semaphore>,
}

impl Lanes {
    fn new(concurrency: usize) -> Lanes {
        Lanes {
            main: Arc::new(Semaphore::new(concurrency)),
            slow: Arc::new(Semaphore::new(concurrency)),
        }
    }
}

/// The running sources.
#[derive(Debug)]
pub struct Scheduler {
    store: Arc<Store>,
    lanes: Lanes,
    /// Permits of the main and the slow lane: after a lowered limit they
    /// can differ until the probes holding permits finish.
    concurrency: [usize; 2],
    tracker: TaskTracker,
    cancel: CancellationToken,
    tasks: HashMap<TaskKey, Task>,
    next_id: u64,
    watcher: Option<FileWatcher>,
}

impl Scheduler {
    /// Starts every source of `config`, with the ids `store` was laid out
    /// with ([`Store::new`]). Tasks stop when `cancel` fires.
    pub fn start(config: &Config, store: Arc<Store>, cancel: CancellationToken) -> Scheduler {
        let mut scheduler = Scheduler {
            lanes: Lanes::new(config.global.concurrency),
            concurrency: [config.global.concurrency; 2],
            tracker: TaskTracker::new(),
            cancel,
            tasks: HashMap::new(),
            next_id: 0,
            watcher: None,
            store,
        };
        let snapshot = scheduler.store.load();
        let mut ids = snapshot.sources.iter();
        for source in &config.files {
            let Some(state) = ids.next() else { break };
            scheduler.spawn_file(state.id, source);
        }
        for source in &config.endpoints {
            let Some(state) = ids.next() else { break };
            let SourceData::Endpoints(results) = &state.data else {
                continue;
            };
            let source = Arc::new(source.clone());
            for (i, id) in results.ids.iter().enumerate() {
                scheduler.spawn_target(state.id, *id, i, &source);
            }
        }
        scheduler.next_id = snapshot
            .sources
            .iter()
            .map(|s| s.id + 1)
            .chain(snapshot.sources.iter().filter_map(|s| match &s.data {
                SourceData::Endpoints(r) => r.ids.iter().max().map(|m| m + 1),
                SourceData::Files(_) => None,
            }))
            .max()
            .unwrap_or(0);
        scheduler.rewatch();
        scheduler
    }

    /// Reshapes the running tasks for `config` (already validated): keeps
    /// unchanged ones with their results, stops removed ones, starts new
    /// ones at once.
    pub fn reload(&mut self, config: &Config) -> ReloadSummary {
        let mut old = std::mem::take(&mut self.tasks);
        let mut kept = HashMap::new();
        let mut to_start: Vec<Starter> = Vec::new();
        let mut layout = Layout {
            metrics: config.metrics.clone(),
            sources: Vec::new(),
        };
        for source in &config.files {
            let key = TaskKey::File {
                name: source.name.clone(),
                fingerprint: source.fingerprint(),
            };
            let id = match old.remove(&key) {
                Some(task) => {
                    let id = task.source;
                    kept.insert(key, task);
                    id
                }
                None => {
                    let id = self.fresh_id();
                    let source = source.clone();
                    to_start.push(Box::new(move |s| s.spawn_file(id, &source)));
                    id
                }
            };
            layout.sources.push(SourceLayout {
                id,
                kind: SourceKind::File,
                name: source.name.clone(),
                interval: source.interval,
                timeout: Duration::ZERO,
                targets: Vec::new(),
            });
        }
        for source in &config.endpoints {
            let fingerprint = source.fingerprint();
            // The source keeps its id if any of its targets survives.
            let source_id = old
                .iter()
                .find_map(|(k, t)| match k {
                    TaskKey::Target {
                        name,
                        fingerprint: f,
                        ..
                    } if *name == source.name && *f == fingerprint => Some(t.source),
                    _ => None,
                })
                .unwrap_or_else(|| self.fresh_id());
            let mut targets = Vec::with_capacity(source.targets.len());
            let mut fresh = Vec::new();
            for (index, target) in source.targets.iter().enumerate() {
                let key = TaskKey::Target {
                    name: source.name.clone(),
                    fingerprint,
                    target: target.clone(),
                };
                let (target_id, target) = match old.remove_entry(&key) {
                    Some((old_key, task)) if task.source == source_id => {
                        let id = task.target.unwrap_or_default();
                        // The kept task probes the previous config's copy
                        // of the target: key and lay out that one, so the
                        // new config's copy is freed with the config.
                        let running = match &old_key {
                            TaskKey::Target { target: t, .. } => t.clone(),
                            TaskKey::File { .. } => target.clone(),
                        };
                        kept.insert(old_key, task);
                        (id, running)
                    }
                    other => {
                        if let Some((_, task)) = other {
                            task.cancel.cancel();
                        }
                        let id = self.fresh_id();
                        fresh.push((index, id));
                        (id, target.clone())
                    }
                };
                targets.push((target_id, target));
            }
            if !fresh.is_empty() {
                // New tasks see the targets the kept ones run with, so a
                // reload leaves one copy of each target alive, not two.
                let shared = Arc::new(EndpointSourceConfig {
                    targets: targets.iter().map(|(_, t)| Arc::clone(t)).collect(),
                    ..source.clone()
                });
                for (index, id) in fresh {
                    let shared = shared.clone();
                    to_start.push(Box::new(move |s| {
                        s.spawn_target(source_id, id, index, &shared)
                    }));
                }
            }
            layout.sources.push(SourceLayout {
                id: source_id,
                kind: SourceKind::Endpoint,
                name: source.name.clone(),
                interval: source.interval,
                timeout: source.timeout,
                targets,
            });
        }
        let summary = ReloadSummary {
            kept: kept.len(),
            started: to_start.len(),
            stopped: old.len(),
        };
        for task in old.into_values() {
            task.cancel.cancel();
        }
        self.tasks = kept;
        // Lay the store out before the new tasks run, so their first
        // results land in slots that exist.
        self.store.apply(layout);
        for start in to_start {
            start(self);
        }
        self.resize(config.global.concurrency);
        self.rewatch();
        summary
    }

    /// Stops every task and waits for them, at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.cancel.cancel();
        drop(self.watcher);
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "some probes did not stop in time");
        }
    }

    /// Runs `future` alongside the sources, stopped with them.
    pub fn spawn_aux<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(future);
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn resize(&mut self, concurrency: usize) {
        let [main, slow] = &mut self.concurrency;
        resize_lane(&self.lanes.main, main, concurrency, "main");
        resize_lane(&self.lanes.slow, slow, concurrency, "slow");
    }

    fn rewatch(&mut self) {
        let watched = self
            .tasks
            .values()
            .filter_map(|t| t.poke.clone())
            .map(|(poke, source)| {
                (
                    source.paths.iter().flat_map(|p| p.watch_roots()).collect(),
                    poke,
                )
            })
            .collect();
        self.watcher = FileWatcher::start(watched);
    }

    fn spawn_file(&mut self, id: SourceId, source: &FileSourceConfig) {
        let cancel = self.cancel.child_token();
        let poke = Arc::new(Notify::new());
        let source = Arc::new(source.clone());
        self.tracker.spawn(file_loop(
            id,
            source.clone(),
            self.store.clone(),
            self.lanes.main.clone(),
            poke.clone(),
            cancel.clone(),
        ));
        self.tasks.insert(
            TaskKey::File {
                name: source.name.clone(),
                fingerprint: source.fingerprint(),
            },
            Task {
                cancel,
                source: id,
                target: None,
                poke: Some((poke, source)),
            },
        );
    }

    fn spawn_target(
        &mut self,
        source_id: SourceId,
        target_id: TargetId,
        index: usize,
        source: &Arc<EndpointSourceConfig>,
    ) {
        let Some(target) = source.targets.get(index) else {
            return;
        };
        let cancel = self.cancel.child_token();
        self.tracker.spawn(target_loop(
            (source_id, target_id),
            index,
            source.clone(),
            self.store.clone(),
            self.lanes.clone(),
            cancel.clone(),
        ));
        self.tasks.insert(
            TaskKey::Target {
                name: source.name.clone(),
                fingerprint: source.fingerprint(),
                target: target.clone(),
            },
            Task {
                cancel,
                source: source_id,
                target: Some(target_id),
                poke: None,
            },
        );
    }
}

/// Brings `permits`, which holds `current` permits, to `wanted`.
fn resize_lane(permits: &Semaphore, current: &mut usize, wanted: usize, lane: &str) {
    if wanted > *current {
        permits.add_permits(wanted - *current);
        *current = wanted;
    } else if wanted < *current {
        // Only free permits can be forgotten; with probes in flight the
        // limit comes down as far as it can now, and the next reload takes
        // it the rest of the way.
        *current -= permits.forget_permits(*current - wanted);
        if *current > wanted {
            tracing::info!(
                lane,
                wanted,
                now = *current,
                "concurrency lowered only partly: probes are in flight"
            );
        }
    }
}

/// Runs every source exactly once, under the same concurrency limit and
/// deadlines as the daemon, and returns when all results are in `store`
/// (laid out for `config` by [`Store::new`]). This is `certinel check`.
///
/// Nothing is known about a target before its one probe, so every probe
/// draws from the main lane, as a first round in the daemon does.
pub async fn run_once(config: &Config, store: Arc<Store>) {
    let lanes = Lanes::new(config.global.concurrency);
    let snapshot = store.load();
    let mut ids = snapshot.sources.iter();
    let mut work = tokio::task::JoinSet::new();
    for source in &config.files {
        let Some(state) = ids.next() else { break };
        let (id, source, store, permits) = (
            state.id,
            Arc::new(source.clone()),
            store.clone(),
            lanes.main.clone(),
        );
        work.spawn(async move {
            file_pass(id, &source, &store, &permits, &mut FileState::default()).await;
        });
    }
    for source in &config.endpoints {
        let Some(state) = ids.next() else { break };
        let SourceData::Endpoints(results) = &state.data else {
            continue;
        };
        let source = Arc::new(source.clone());
        for (index, target_id) in results.ids.iter().enumerate() {
            let (source, store, lanes) = (source.clone(), store.clone(), lanes.clone());
            let slot = (state.id, *target_id);
            work.spawn(async move {
                let mut last = ProbeMemory::default();
                target_probe(slot, index, &source, &store, &lanes, &mut last).await;
            });
        }
    }
    while work.join_next().await.is_some() {}
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// What a file source's task keeps between passes.
#[derive(Default)]
struct FileState {
    cache: FileCache,
    last_errors: HashMap<PathBuf, FileErrorReason>,
}

/// Runs one pass of a file source and publishes it. The permit travels
/// with the blocking work, so a pass stuck on a hung mount keeps counting
/// against the limit until it returns.
async fn file_pass(
    id: SourceId,
    source: &Arc<FileSourceConfig>,
    store: &Store,
    permits: &Arc<Semaphore>,
    state: &mut FileState,
) {
    let Ok(permit) = permits.clone().acquire_owned().await else {
        return;
    };
    let started = Instant::now();
    let src = source.clone();
    let mut cache = std::mem::take(&mut state.cache);
    let pass = tokio::task::spawn_blocking(move || {
        let scan = files::scan(&src, &mut cache);
        drop(permit);
        (scan, cache)
    });
    match pass.await {
        Ok((scan, cache)) => {
            state.cache = cache;
            log_file_changes(&source.name, &scan, &mut state.last_errors);
            tracing::debug!(
                source = %source.name,
                files = scan.len(),
                duration = ?started.elapsed(),
                "file pass complete"
            );
            store.publish_files(id, scan, started.elapsed());
        }
        Err(e) => tracing::error!(source = %source.name, error = %e, "file pass aborted"),
    }
}

async fn file_loop(
    id: SourceId,
    source: Arc<FileSourceConfig>,
    store: Arc<Store>,
    permits: Arc<Semaphore>,
    poke: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut state = FileState::default();
    loop {
        tokio::select! {
            _ = file_pass(id, &source, &store, &permits, &mut state) => {}
            _ = cancel.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(source.interval)) => {}
            _ = poke.notified() => tracing::debug!(source = %source.name, "files changed"),
            _ = cancel.cancelled() => return,
        }
    }
}

/// Logs files going bad (warn) and recovering (info); repeats stay quiet.
fn log_file_changes(source: &str, scan: &FileScan, last: &mut HashMap<PathBuf, FileErrorReason>) {
    let mut now = HashMap::new();
    for (path, report) in scan {
        match &report.error {
            Some(e) => {
                if last.get(path) != Some(&e.reason) {
                    tracing::warn!(
                        source,
                        path = %path.display(),
                        reason = %e.reason,
                        detail = %e.detail,
                        "certificate file unusable"
                    );
                }
                now.insert(path.clone(), e.reason);
            }
            None if last.contains_key(path) => {
                tracing::info!(source, path = %path.display(), "certificate file readable again");
            }
            None => {}
        }
    }
    *last = now;
}

/// What a target's task remembers between probes: the last outcome, to
/// log changes only and to pick the lane of the next probe.
#[derive(Default)]
struct ProbeMemory {
    errors: HashMap<String, TlsErrorReason>,
    restart_pending: HashMap<String, bool>,
    /// The last probe ran into its deadline: the next one goes to the slow
    /// lane.
    timed_out: bool,
}

/// Probes one target once (and reads its `expect_file`), then publishes.
async fn target_probe(
    (source_id, target_id): (SourceId, TargetId),
    index: usize,
    source: &EndpointSourceConfig,
    store: &Store,
    lanes: &Lanes,
    memory: &mut ProbeMemory,
) {
    let Some(target) = source.targets.get(index) else {
        return;
    };
    let lane = if memory.timed_out {
        &lanes.slow
    } else {
        &lanes.main
    };
    let Ok(permit) = lane.acquire().await else {
        return;
    };
    let started = Instant::now();
    let addresses = tls::probe(target, &source.tls, source.starttls, source.timeout).await;
    drop(permit);
    let timed_out = ran_into_deadline(&addresses, started.elapsed(), source.timeout);
    if timed_out != memory.timed_out {
        tracing::debug!(
            source = %source.name,
            target = %target.target,
            lane = if timed_out { "slow" } else { "main" },
            "target changes lanes"
        );
        memory.timed_out = timed_out;
    }
    let expected = match &target.expect_file {
        Some(path) => {
            let (path, cap) = (path.clone(), source.max_file_size);
            tokio::task::spawn_blocking(move || rotation::read_expected(&path, cap))
                .await
                .ok()
        }
        None => None,
    };
    log_probe_changes(&source.name, &target.target, &addresses, &mut memory.errors);
    if let Some(expected) = &expected {
        log_rotation(&source.name, &target.target, &addresses, expected, memory);
    }
    store.publish_target(
        source_id,
        target_id,
        TargetReport {
            addresses,
            expected,
        },
    );
}

async fn target_loop(
    slot: (SourceId, TargetId),
    index: usize,
    source: Arc<EndpointSourceConfig>,
    store: Arc<Store>,
    lanes: Lanes,
    cancel: CancellationToken,
) {
    let mut memory = ProbeMemory::default();
    loop {
        // A task is sized for its largest state, and the probe in flight
        // (resolver, TLS session, handshake) dwarfs everything else. Boxed,
        // it costs its bytes only while it runs; the task spends nearly all
        // its life asleep, and there is one per target.
        let probe = Box::pin(target_probe(
            slot,
            index,
            &source,
            &store,
            &lanes,
            &mut memory,
        ));
        tokio::select! {
            _ = probe => {}
            _ = cancel.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(source.interval)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Whether a probe held its permit until its deadline. Every `timeout`
/// counts: our own deadline, and the kernel giving up on a connect or a
/// read (`ETIMEDOUT`, after minutes of retransmissions). A lookup that
/// ran out the deadline is reported as `dns`, so the time taken decides
/// too. Any one address is enough: the probe waits for all of them.
fn ran_into_deadline(addresses: &[AddressReport], took: Duration, timeout: Duration) -> bool {
    took >= timeout
        || addresses.iter().any(|r| {
            r.error
                .as_ref()
                .is_some_and(|e| e.reason == TlsErrorReason::Timeout)
        })
}

/// Logs addresses going bad (warn) and recovering (info); repeats stay
/// at debug so a thousand dead targets do not flood the log.
fn log_probe_changes(
    source: &str,
    target: &str,
    reports: &[AddressReport],
    last: &mut HashMap<String, TlsErrorReason>,
) {
    let mut now = HashMap::new();
    for r in reports {
        match &r.error {
            Some(e) if last.get(&r.address) != Some(&e.reason) => {
                tracing::warn!(
                    source,
                    target,
                    address = %r.address,
                    reason = %e.reason,
                    detail = %e.detail,
                    "probe failed"
                );
            }
            Some(e) => {
                tracing::debug!(source, target, address = %r.address, reason = %e.reason, "probe still failing");
            }
            None if last.contains_key(&r.address) => {
                tracing::info!(source, target, address = %r.address, "probe succeeded again");
            }
            None => {
                tracing::debug!(source, target, address = %r.address, duration = ?r.duration, "probe ok");
            }
        }
        if let Some(e) = &r.error {
            now.insert(r.address.clone(), e.reason);
        }
    }
    *last = now;
}

/// Logs an address starting (warn) or ending (info) to serve an older
/// certificate than its `expect_file`.
fn log_rotation(
    source: &str,
    target: &str,
    reports: &[AddressReport],
    expected: &rotation::ExpectedFile,
    memory: &mut ProbeMemory,
) {
    let Ok(on_disk) = &expected.leaf else { return };
    for r in reports {
        let Some(served) = r.chain.first() else {
            continue;
        };
        let pending = rotation::compare(served, on_disk) == Staleness::RestartPending;
        let was = memory.restart_pending.insert(r.address.clone(), pending);
        if pending && was != Some(true) {
            tracing::warn!(
                source,
                target,
                address = %r.address,
                file = %expected.path.display(),
                served_not_after = served.not_after,
                file_not_after = on_disk.not_after,
                "server still presents an older certificate than its file: restart pending"
            );
        } else if !pending && was == Some(true) {
            tracing::info!(source, target, address = %r.address, "server now presents the certificate in its file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{jittered, ran_into_deadline, Scheduler};
    use crate::config::{Config, EndpointTarget};
    use crate::snapshot::{SourceData, Store, TargetId};
    use crate::sources::tls::{AddressReport, ProbeError, TlsErrorReason};
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};
    use tokio_util::sync::CancellationToken;

    fn report(reason: Option<TlsErrorReason>) -> AddressReport {
        AddressReport {
            address: "127.0.0.1:443".to_owned(),
            chain: Vec::new(),
            error: reason.map(|reason| ProbeError {
                reason,
                detail: String::new(),
            }),
            negotiated: None,
            duration: Duration::ZERO,
            probed_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn any_timed_out_address_sends_the_target_to_the_slow_lane() {
        let (quick, timeout) = (Duration::from_millis(5), Duration::from_secs(10));
        let mixed = [report(None), report(Some(TlsErrorReason::Timeout))];
        assert!(ran_into_deadline(&mixed, quick, timeout));
    }

    #[test]
    fn quick_failures_and_successes_stay_in_the_main_lane() {
        let (quick, timeout) = (Duration::from_millis(5), Duration::from_secs(10));
        for reason in [
            None,
            Some(TlsErrorReason::Refused),
            Some(TlsErrorReason::Dns),
            Some(TlsErrorReason::Expired),
        ] {
            assert!(
                !ran_into_deadline(&[report(reason)], quick, timeout),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn a_lookup_that_ran_out_the_deadline_counts_as_timed_out() {
        let timeout = Duration::from_secs(10);
        let dns = [report(Some(TlsErrorReason::Dns))];
        assert!(ran_into_deadline(&dns, timeout, timeout));
    }

    fn endpoints(targets: &str) -> Config {
        let yaml =
            format!("global:\n  interval: 1h\nendpoints:\n  - name: e\n    targets: [{targets}]\n");
        Config::from_yaml(&yaml, Path::new(".")).unwrap()
    }

    fn laid_out(store: &Store) -> Vec<(TargetId, Arc<EndpointTarget>)> {
        let snapshot = store.load();
        let SourceData::Endpoints(results) = &snapshot.sources[0].data else {
            panic!("not an endpoint source");
        };
        results
            .ids
            .iter()
            .copied()
            .zip(results.targets.iter().cloned())
            .collect()
    }

    #[tokio::test]
    async fn reload_keeps_one_shared_copy_of_each_unchanged_target() {
        // Low loopback ports where nothing listens: probes fail at once.
        let first = endpoints("\"127.0.0.1:1\", \"127.0.0.1:2\"");
        let store = Arc::new(Store::new(&first));
        let mut scheduler = Scheduler::start(&first, store.clone(), CancellationToken::new());
        let before = laid_out(&store);
        drop(first);

        let second = endpoints("\"127.0.0.1:1\", \"127.0.0.1:3\"");
        let summary = scheduler.reload(&second);
        assert_eq!((summary.kept, summary.started, summary.stopped), (1, 1, 1));
        let after = laid_out(&store);
        assert_eq!(after[0].0, before[0].0, "the kept target keeps its id");
        assert!(Arc::ptr_eq(&after[0].1, &before[0].1));
        assert_eq!(after[1].1.target, "127.0.0.1:3");
        // Neither the new task nor the snapshot holds on to the reloaded
        // config's copy of the kept target.
        let reloaded = Arc::downgrade(&second.endpoints[0].targets[0]);
        drop(second);
        assert!(reloaded.upgrade().is_none());
        scheduler.shutdown(Duration::from_secs(5)).await;
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let base = Duration::from_secs(100);
        for _ in 0..1000 {
            let d = jittered(base);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}

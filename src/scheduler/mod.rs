//! Runs the sources: one task per file source (`file_task`) and one per
//! endpoint target (`target_task`), and reshapes them when the
//! configuration is reloaded (`plan`).
//!
//! Every task runs at once at start, then again after its interval with
//! ±10 % jitter, so a thousand targets drift apart instead of firing
//! together. Two semaphores bound the probes (and file passes) in flight
//! (`lanes`); the per-probe deadline lives in the endpoint source. A slow
//! or dead target only ever holds its own task and one permit. File
//! sources also run when the [`watch`](crate::watch) module sees their
//! files change, and a target with an `expect_file` re-decides "restart
//! pending" as soon as that file changes.
//!
//! `/probe` runs its probes through [`OnDemand`] (`on_demand`), with a
//! lane of its own and the same probe code as the configured targets.
//!
//! Starting is reloading from nothing: [`Scheduler::start`] and
//! [`Scheduler::reload`] go through the same `plan`, which also lays the
//! store out, and `certinel check` ([`run_once`]) runs the same plan's work
//! once.

mod file_task;
mod lanes;
mod on_demand;
mod plan;
mod target_task;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, PasswordSource};
use crate::snapshot::Store;
use crate::watch::FileWatcher;
use file_task::{file_loop, file_pass, FileState};
pub use lanes::parked_slots;
use lanes::{Lanes, ResizableLanes};
pub use on_demand::{deadline, NotProbed, OnDemand, OnDemandReport, ProbeRequest, SCRAPE_MARGIN};
use plan::{plan, Ids, Task, TaskKey, Watch, Work};
use target_task::{target_loop, ProbeMemory, TargetWork};

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

/// The running sources.
#[derive(Debug)]
pub struct Scheduler {
    store: Arc<Store>,
    lanes: ResizableLanes,
    tracker: TaskTracker,
    cancel: CancellationToken,
    tasks: HashMap<TaskKey, Task>,
    ids: Ids,
    watcher: Option<FileWatcher>,
    on_demand: OnDemand,
}

impl Scheduler {
    /// Lays `store` out for `config` and starts every source. Tasks stop
    /// when `cancel` fires. At most `parking_room` probes wait parked on
    /// silent servers (`lanes`): what the descriptor limit leaves.
    pub fn start(
        config: &Config,
        store: Arc<Store>,
        cancel: CancellationToken,
        parking_room: usize,
    ) -> Scheduler {
        let mut scheduler = Scheduler {
            store,
            lanes: ResizableLanes::new(parking_room),
            tracker: TaskTracker::new(),
            cancel,
            tasks: HashMap::new(),
            ids: Ids::default(),
            watcher: None,
            on_demand: OnDemand::new(),
        };
        scheduler.reload(config);
        scheduler
    }

    /// Reshapes the running tasks for `config` (already validated): keeps
    /// unchanged ones with their results, stops removed ones, starts new
    /// ones at once.
    pub fn reload(&mut self, config: &Config) -> ReloadSummary {
        let plan = plan(config, &mut self.tasks, &mut self.ids);
        let summary = ReloadSummary {
            kept: plan.kept.len(),
            started: plan.starts.len(),
            stopped: plan.stopped.len(),
        };
        for task in plan.stopped {
            task.cancel.cancel();
        }
        self.tasks = plan.kept;
        // Lay the store out before the new tasks run, so their first
        // results land in slots that exist.
        self.store.apply(plan.layout);
        self.lanes.resize(config.global.concurrency);
        self.on_demand.configure(&config.probe);
        for work in plan.starts {
            self.spawn(work);
        }
        self.rewatch();
        summary
    }

    /// The `/probe` prober, which follows this scheduler's reloads.
    pub fn on_demand(&self) -> OnDemand {
        self.on_demand.clone()
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

    fn spawn(&mut self, work: Work) {
        let key = work.key();
        let cancel = self.cancel.child_token();
        let poke = Arc::new(Notify::new());
        let (source, target, watch) = match work {
            Work::File { id, source } => {
                let mut roots: Vec<_> = source.paths.iter().flat_map(|p| p.watch_roots()).collect();
                // A fixed password opens the keystores at once.
                if let Some(PasswordSource::File(file)) = &source.password {
                    roots.extend(file.parent().map(|dir| (dir.to_owned(), false)));
                }
                self.tracker.spawn(file_loop(
                    id,
                    source,
                    self.store.clone(),
                    self.lanes.lanes.main.clone(),
                    poke.clone(),
                    cancel.clone(),
                ));
                (id, None, Some(Watch { roots, poke }))
            }
            Work::Target {
                slot,
                target,
                source,
            } => {
                // The directory, not the file: Kubernetes swaps a `..data`
                // symlink beside it, editors and certbot rename over it.
                let roots: Vec<_> = target
                    .expect_file
                    .as_deref()
                    .and_then(std::path::Path::parent)
                    .map(|dir| vec![(dir.to_owned(), false)])
                    .unwrap_or_default();
                let watch = (!roots.is_empty()).then_some(Watch { roots, poke });
                self.tracker.spawn(target_loop(
                    TargetWork {
                        slot,
                        target,
                        source,
                    },
                    self.store.clone(),
                    self.lanes.lanes.clone(),
                    watch.as_ref().map(|w| w.poke.clone()),
                    cancel.clone(),
                ));
                (slot.0, Some(slot.1), watch)
            }
        };
        self.tasks.insert(
            key,
            Task {
                cancel,
                source,
                target,
                watch,
            },
        );
    }

    fn rewatch(&mut self) {
        let watched = self
            .tasks
            .values()
            .filter_map(|t| t.watch.clone())
            .map(|w| (w.roots, w.poke))
            .collect();
        self.watcher = FileWatcher::start(watched);
    }
}

/// Lays `store` out for `config` without running anything: the shape
/// [`Scheduler::start`] gives it (for benchmarks and tests that publish
/// results by hand; the first file source has id 0).
pub fn lay_out(config: &Config, store: &Store) {
    store.apply(plan(config, &mut HashMap::new(), &mut Ids::default()).layout);
}

/// A store laid out for the configuration `yaml`, for unit tests of what
/// reads a store.
#[cfg(test)]
pub(crate) fn test_store(yaml: &str) -> Arc<Store> {
    let config = Config::from_yaml(yaml, std::path::Path::new("/")).unwrap_or_else(|e| {
        panic!("test configuration: {e}");
    });
    let store = Arc::new(Store::new());
    lay_out(&config, &store);
    store
}

/// Runs every source exactly once, under the same concurrency limit and
/// deadlines as the daemon, and returns when all results are in `store`
/// (laid out here). This is `certinel check`.
///
/// Nothing is known about a target before its one probe, so every probe
/// draws from the main lane, as a first round in the daemon does.
pub async fn run_once(config: &Config, store: Arc<Store>) {
    let plan = plan(config, &mut HashMap::new(), &mut Ids::default());
    store.apply(plan.layout);
    let lanes = Lanes::new(config.global.concurrency);
    let mut work = tokio::task::JoinSet::new();
    for start in plan.starts {
        let (store, lanes) = (store.clone(), lanes.clone());
        match start {
            Work::File { id, source } => {
                work.spawn(async move {
                    file_pass(id, &source, &store, &lanes.main, &mut FileState::default()).await;
                });
            }
            Work::Target {
                slot,
                target,
                source,
            } => {
                let target = TargetWork {
                    slot,
                    target,
                    source,
                };
                work.spawn(async move {
                    target
                        .probe(&store, &lanes, &mut ProbeMemory::default())
                        .await;
                });
            }
        }
    }
    while work.join_next().await.is_some() {}
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EndpointTarget;
    use crate::snapshot::{SourceData, TargetId};
    use std::path::Path;

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
        let store = Arc::new(Store::new());
        let mut scheduler =
            Scheduler::start(&first, store.clone(), CancellationToken::new(), usize::MAX);
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

    #[tokio::test]
    async fn start_is_a_reload_from_nothing() {
        let config = endpoints("\"127.0.0.1:1\"");
        let (started, reloaded) = (Arc::new(Store::new()), Arc::new(Store::new()));
        let scheduler = Scheduler::start(
            &config,
            started.clone(),
            CancellationToken::new(),
            usize::MAX,
        );
        lay_out(&config, &reloaded);
        assert_eq!(laid_out(&started), laid_out(&reloaded));
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

//! The one place a configuration becomes a layout of the store and a list
//! of work: at start (from nothing), on reload (from what runs) and for
//! `certinel check` (from nothing, once).
//!
//! A running task is identified by a [`TaskKey`]; a task whose key is in
//! the new configuration keeps running — and keeps its id, so the store
//! keeps its results — while the others stop and new ones start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, EndpointSourceConfig, EndpointTarget, FileSourceConfig};
use crate::snapshot::{Layout, SourceId, SourceLayout, TargetId};
use crate::sources::SourceKind;

/// What identifies a running task across reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum TaskKey {
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

/// A running task.
#[derive(Debug)]
pub(super) struct Task {
    pub(super) cancel: CancellationToken,
    pub(super) source: SourceId,
    pub(super) target: Option<TargetId>,
    /// Wakes the task when the files it depends on change.
    pub(super) watch: Option<Watch>,
}

/// A task's interest in files: the directories to watch (and whether
/// recursively) and how to wake the task.
#[derive(Debug, Clone)]
pub(super) struct Watch {
    pub(super) roots: Vec<(PathBuf, bool)>,
    pub(super) poke: Arc<Notify>,
}

/// Work to start: one file source or one endpoint target.
#[derive(Debug)]
pub(super) enum Work {
    File {
        id: SourceId,
        source: Arc<FileSourceConfig>,
    },
    Target {
        slot: (SourceId, TargetId),
        /// One of `source.targets`.
        target: Arc<EndpointTarget>,
        source: Arc<EndpointSourceConfig>,
    },
}

impl Work {
    /// The key the task for this work runs under.
    pub(super) fn key(&self) -> TaskKey {
        match self {
            Work::File { source, .. } => TaskKey::File {
                name: source.name.clone(),
                fingerprint: source.fingerprint(),
            },
            Work::Target { target, source, .. } => TaskKey::Target {
                name: source.name.clone(),
                fingerprint: source.fingerprint(),
                target: target.clone(),
            },
        }
    }
}

/// What a configuration means for what runs.
#[derive(Debug)]
pub(super) struct Plan {
    /// The store's new shape.
    pub(super) layout: Layout,
    /// Tasks that keep running, with their keys.
    pub(super) kept: HashMap<TaskKey, Task>,
    /// Tasks to start.
    pub(super) starts: Vec<Work>,
    /// Tasks to stop.
    pub(super) stopped: Vec<Task>,
}

/// Hands out ids no source or target has had.
#[derive(Debug, Default)]
pub(super) struct Ids {
    next: u64,
}

impl Ids {
    fn fresh(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }
}

/// Plans `config` against the tasks that run now (`running`, emptied).
pub(super) fn plan(config: &Config, running: &mut HashMap<TaskKey, Task>, ids: &mut Ids) -> Plan {
    let mut kept = HashMap::new();
    let mut starts = Vec::new();
    let mut layout = Layout {
        metrics: config.metrics.clone(),
        sources: Vec::with_capacity(config.source_count()),
    };
    for source in &config.files {
        let key = TaskKey::File {
            name: source.name.clone(),
            fingerprint: source.fingerprint(),
        };
        let id = match running.remove(&key) {
            Some(task) => {
                let id = task.source;
                kept.insert(key, task);
                id
            }
            None => {
                let id = ids.fresh();
                starts.push(Work::File {
                    id,
                    source: Arc::new(source.clone()),
                });
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
        let source_id = running
            .iter()
            .find_map(|(k, t)| match k {
                TaskKey::Target {
                    name,
                    fingerprint: f,
                    ..
                } if *name == source.name && *f == fingerprint => Some(t.source),
                _ => None,
            })
            .unwrap_or_else(|| ids.fresh());
        let mut targets = Vec::with_capacity(source.targets.len());
        let mut fresh = Vec::new();
        for (index, target) in source.targets.iter().enumerate() {
            let key = TaskKey::Target {
                name: source.name.clone(),
                fingerprint,
                target: target.clone(),
            };
            match running.remove_entry(&key) {
                Some((old_key, task)) if task.source == source_id => {
                    let id = task.target.unwrap_or_default();
                    // The kept task probes the previous config's copy of
                    // the target: lay out that one, so the new config's
                    // copy is freed with the config.
                    let running_target = match &old_key {
                        TaskKey::Target { target: t, .. } => t.clone(),
                        TaskKey::File { .. } => target.clone(),
                    };
                    kept.insert(old_key, task);
                    targets.push((id, running_target));
                }
                other => {
                    if let Some((_, task)) = other {
                        task.cancel.cancel();
                    }
                    let id = ids.fresh();
                    fresh.push((index, id));
                    targets.push((id, target.clone()));
                }
            }
        }
        if !fresh.is_empty() {
            // New tasks see the targets the kept ones run with, so a
            // reload leaves one copy of each target alive, not two.
            let shared = Arc::new(EndpointSourceConfig {
                targets: targets.iter().map(|(_, t)| Arc::clone(t)).collect(),
                ..source.clone()
            });
            for (index, id) in fresh {
                if let Some(target) = shared.targets.get(index) {
                    starts.push(Work::Target {
                        slot: (source_id, id),
                        target: target.clone(),
                        source: shared.clone(),
                    });
                }
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
    Plan {
        layout,
        kept,
        starts,
        stopped: running.drain().map(|(_, task)| task).collect(),
    }
}

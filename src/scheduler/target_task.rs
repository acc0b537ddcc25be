//! The task of one endpoint target: a probe now, then one per interval
//! (with jitter); and, for a target with an `expect_file`, a fresh
//! restart-pending verdict as soon as that file changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::jittered;
use super::lanes::{ran_into_deadline, Lanes};
use crate::config::{EndpointSourceConfig, EndpointTarget};
use crate::snapshot::{SourceId, Store, TargetId, TargetReport};
use crate::sources::endpoint::restart::{self, Leaf, RestartCheck, Verdict};
use crate::sources::endpoint::{self, AddressReport, TlsErrorReason};

/// After its `expect_file` changed, a target is probed again — but never
/// sooner than this after its previous probe, however often the file's
/// directory changes.
const REPROBE_GAP: Duration = Duration::from_secs(1);

/// Where a target's results go and what it probes.
pub(super) struct TargetWork {
    pub(super) slot: (SourceId, TargetId),
    pub(super) target: Arc<EndpointTarget>,
    pub(super) source: Arc<EndpointSourceConfig>,
}

/// What a target's task remembers between probes: the last outcome, to
/// log changes only and to pick the lane of the next probe.
#[derive(Default)]
pub(super) struct ProbeMemory {
    errors: HashMap<String, TlsErrorReason>,
    restart_pending: HashMap<String, bool>,
    /// The last probe ran into its deadline: the next one goes to the slow
    /// lane.
    timed_out: bool,
}

impl TargetWork {
    fn log_context(&self) -> (&str, &str, &str) {
        (
            &self.source.name,
            &self.target.target,
            &self.target.server_name,
        )
    }

    /// Probes the target once (and compares with its `expect_file`), then
    /// publishes.
    pub(super) async fn probe(&self, store: &Store, lanes: &Lanes, memory: &mut ProbeMemory) {
        let Ok(permit) = lanes.for_target(memory.timed_out).acquire().await else {
            return;
        };
        let (source, target) = (&self.source, &self.target);
        let started = Instant::now();
        let addresses = endpoint::probe(target, &source.tls, source.starttls, source.timeout).await;
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
        let restart = self
            .read_leaf()
            .await
            .map(|(path, leaf)| RestartCheck::new(&path, &leaf, &addresses));
        self.log_probe_changes(&addresses, &mut memory.errors);
        if let Some(check) = &restart {
            self.log_restart(&addresses, check, memory);
        }
        let (source_id, target_id) = self.slot;
        store.publish_target(source_id, target_id, TargetReport { addresses, restart });
    }

    /// Compares the last probe's chains with the `expect_file` as it is
    /// now, and publishes the verdicts at once.
    pub(super) async fn recheck(&self, store: &Store, memory: &mut ProbeMemory) {
        let (source_id, target_id) = self.slot;
        let Some(last) = store.target_report(source_id, target_id) else {
            return;
        };
        let Some((path, leaf)) = self.read_leaf().await else {
            return;
        };
        let check = RestartCheck::new(&path, &leaf, &last.addresses);
        self.log_restart(&last.addresses, &check, memory);
        store.publish_restart(source_id, target_id, check);
    }

    /// The `expect_file` and its leaf, read off the async workers; `None`
    /// without an `expect_file`.
    async fn read_leaf(&self) -> Option<(std::path::PathBuf, Leaf)> {
        let path = self.target.expect_file.clone()?;
        let cap = self.source.max_file_size;
        let read = path.clone();
        let leaf = tokio::task::spawn_blocking(move || restart::read_leaf(&read, cap))
            .await
            .ok()?;
        Some((path, leaf))
    }

    /// Logs addresses going bad (warn) and recovering (info); repeats stay
    /// at debug so a thousand dead targets do not flood the log.
    fn log_probe_changes(
        &self,
        reports: &[AddressReport],
        last: &mut HashMap<String, TlsErrorReason>,
    ) {
        let (source, target, server_name) = self.log_context();
        let mut now = HashMap::new();
        for r in reports {
            match &r.error {
                Some(e) if last.get(&r.address) != Some(&e.reason) => {
                    tracing::warn!(
                        source,
                        target,
                        server_name,
                        address = %r.address,
                        reason = %e.reason,
                        detail = %e.detail,
                        "probe failed"
                    );
                }
                Some(e) => {
                    tracing::debug!(source, target, server_name, address = %r.address, reason = %e.reason, "probe still failing");
                }
                None if last.contains_key(&r.address) => {
                    tracing::info!(source, target, server_name, address = %r.address, "probe succeeded again");
                }
                None => {
                    tracing::debug!(source, target, server_name, address = %r.address, duration = ?r.duration, "probe ok");
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
    fn log_restart(
        &self,
        reports: &[AddressReport],
        check: &RestartCheck,
        memory: &mut ProbeMemory,
    ) {
        let (source, target, server_name) = self.log_context();
        for (i, r) in reports.iter().enumerate() {
            let Some(verdict) = check.verdict(i) else {
                continue;
            };
            let pending = verdict == Verdict::RestartPending;
            let was = memory.restart_pending.insert(r.address.clone(), pending);
            if pending && was != Some(true) {
                tracing::warn!(
                    source,
                    target,
                    server_name,
                    address = %r.address,
                    file = %check.file.display(),
                    "server still presents an older certificate than its file: restart pending"
                );
            } else if !pending && was == Some(true) {
                tracing::info!(source, target, server_name, address = %r.address, "server now presents the certificate in its file");
            }
        }
    }
}

/// Probes until cancelled.
pub(super) async fn target_loop(
    work: TargetWork,
    store: Arc<Store>,
    lanes: Lanes,
    poke: Option<Arc<Notify>>,
    cancel: CancellationToken,
) {
    let mut memory = ProbeMemory::default();
    loop {
        let started = Instant::now();
        // A task is sized for its largest state, and the probe in flight
        // (resolver, TLS session, handshake) dwarfs everything else. Boxed,
        // it costs its bytes only while it runs; the task spends nearly all
        // its life asleep, and there is one per target.
        let probe = Box::pin(work.probe(&store, &lanes, &mut memory));
        tokio::select! {
            _ = probe => {}
            _ = cancel.cancelled() => return,
        }
        let changed = async {
            match &poke {
                Some(poke) => poke.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(jittered(work.source.interval)) => {}
            _ = changed => {
                tracing::debug!(source = %work.source.name, target = %work.target.target, "expect_file changed");
                tokio::select! {
                    _ = Box::pin(work.recheck(&store, &mut memory)) => {}
                    _ = cancel.cancelled() => return,
                }
                let next = started + REPROBE_GAP;
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {}
                    _ = cancel.cancelled() => return,
                }
            }
            _ = cancel.cancelled() => return,
        }
    }
}

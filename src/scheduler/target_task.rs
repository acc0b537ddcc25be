//! The task of one endpoint target: a probe now, then one per interval
//! (with jitter); and, for a target with an `expect_file`, a fresh
//! restart-pending verdict as soon as that file changes.
//!
//! [`probe_target`] is what every probe of a target does, whoever asks:
//! the target's task, `certinel check` and `/probe`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::jittered;
use super::lanes::{park_when_quiet, ran_into_deadline, Lanes};
use crate::config::{EndpointSourceConfig, EndpointTarget, Starttls, TlsSettings};
use crate::snapshot::{SourceId, Store, TargetId, TargetReport};
use crate::sources::endpoint::restart::{self, Leaf, RestartCheck, Verdict};
use crate::sources::endpoint::{
    self, Activity, AddressPolicy, AddressReport, AllowAll, TlsErrorReason,
};

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
    /// The target has been probed before: its lane is known, so its
    /// probes no longer park (`lanes`).
    probed: bool,
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
        let how = Probing::of(source);
        // Only a first probe may park: from then on the lanes know whether
        // the target answers, and parking would let probes of live but
        // distant (or busy) servers in beside the permits.
        let parked = (!memory.probed).then_some(&*lanes.parked);
        memory.probed = true;
        let Ok((report, took)) = probe_target(target, &how, &AllowAll, permit, parked).await;
        let timed_out = ran_into_deadline(&report.addresses, took, source.timeout);
        if timed_out != memory.timed_out {
            tracing::debug!(
                source = %source.name,
                target = %target.target,
                lane = if timed_out { "slow" } else { "main" },
                "target changes lanes"
            );
            memory.timed_out = timed_out;
        }
        self.log_probe_changes(&report.addresses, &mut memory.errors);
        if let Some(check) = &report.restart {
            self.log_restart(&report.addresses, check, memory);
        }
        let (source_id, target_id) = self.slot;
        store.publish_target(source_id, target_id, report);
    }

    /// Compares the last probe's chains with the `expect_file` as it is
    /// now, and publishes the verdicts at once.
    pub(super) async fn recheck(&self, store: &Store, memory: &mut ProbeMemory) {
        let (source_id, target_id) = self.slot;
        let Some(last) = store.target_report(source_id, target_id) else {
            return;
        };
        let Some(path) = &self.target.expect_file else {
            return;
        };
        let Some(leaf) = read_leaf(path, self.source.max_file_size).await else {
            return;
        };
        let check = RestartCheck::new(path, &leaf, &last.addresses);
        self.log_restart(&last.addresses, &check, memory);
        store.publish_restart(source_id, target_id, check);
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

/// How a target is probed: the settings of its endpoint source, or of the
/// `/probe` module it was asked for with.
pub(crate) struct Probing<'a> {
    pub(crate) tls: &'a TlsSettings,
    pub(crate) starttls: Option<Starttls>,
    pub(crate) timeout: Duration,
    /// Size cap for the `expect_file` read.
    pub(crate) max_file_size: u64,
}

impl Probing<'_> {
    fn of(source: &EndpointSourceConfig) -> Probing<'_> {
        Probing {
            tls: &source.tls,
            starttls: source.starttls,
            timeout: source.timeout,
            max_file_size: source.max_file_size,
        }
    }
}

/// One probe of `target`, the same for configured targets, `certinel
/// check` and `/probe`: every address it resolves to is put to `policy`
/// before anything connects, the network part runs under `how.timeout`
/// holding `permit` (and only that part: the file read after it must not
/// hold up other probes) — or, with `parked`, until the network has been
/// silent long enough to trade it for a parked slot (`lanes`) — then the
/// served chains are compared with the target's `expect_file`. Returns
/// the report and how long the network part took.
pub(crate) async fn probe_target<P: AddressPolicy>(
    target: &EndpointTarget,
    how: &Probing<'_>,
    policy: &P,
    permit: impl Sized,
    parked: Option<&Semaphore>,
) -> Result<(TargetReport, Duration), P::Refusal> {
    let started = Instant::now();
    let activity = Arc::new(Activity::new());
    let probe = endpoint::probe_with(
        target,
        how.tls,
        how.starttls,
        how.timeout,
        policy,
        &activity,
    );
    let probed = match parked {
        Some(parked) => park_when_quiet(probe, permit, parked, &activity).await,
        None => {
            let probed = probe.await;
            drop(permit);
            probed
        }
    };
    let took = started.elapsed();
    let addresses = probed?;
    let restart = match &target.expect_file {
        Some(path) => read_leaf(path, how.max_file_size)
            .await
            .map(|leaf| RestartCheck::new(path, &leaf, &addresses)),
        None => None,
    };
    Ok((TargetReport { addresses, restart }, took))
}

/// The first certificate of `path`, read off the async workers; `None`
/// only if the read task itself failed.
async fn read_leaf(path: &Path, cap: u64) -> Option<Leaf> {
    let path: PathBuf = path.to_owned();
    tokio::task::spawn_blocking(move || restart::read_leaf(&path, cap))
        .await
        .ok()
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

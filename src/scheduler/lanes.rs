//! The two bulkheads probes draw permits from, and the parking beside them.
//!
//! `global.concurrency` permits each, so at most twice that many probes
//! are at work. Every target starts in the main lane; a probe that ran
//! into its deadline sends the target's next probe to the slow lane, and
//! one that did not brings it back. The slow lane is a full pool of its
//! own rather than a share of the main one: live targets keep every main
//! permit however many targets are dead, and the dead ones are not probed
//! less often than with a single pool.
//!
//! The lanes only learn that a target is dead from its first timeout, so
//! in the first round servers that accept and never answer would hold
//! main permits until their deadline: with 1000 of them, a 1 s timeout
//! and 64 permits, the last live target waited 15 s for its first probe.
//! A target's *first* probe whose connections have all waited on the
//! network for [`PARK_AFTER`] (nothing to read, nothing to compute)
//! therefore gives its permit back and waits *parked*, holding only its
//! socket and its handshake state (about 10 KiB), in a pool of
//! [`PARKED_PER_PERMIT`] × `concurrency` slots counted in the descriptor
//! reserve (`http::limits`). A parked probe whose server answers at last
//! finishes its handshake where it is. Later probes never park: a target
//! that timed out is in the slow lane by then, and one that answered may
//! be merely distant or busy, and parking it would let ever more probes
//! in beside the permits (on a starved CPU every probe goes quiet for
//! 50 ms), which is what the permits are there to bound.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::sources::endpoint::{Activity, AddressReport, TlsErrorReason};

/// How long a probe must have heard nothing (every connection waiting on
/// a read that found nothing, or still connecting or resolving) before it
/// gives its lane permit back. A server on the same network answers a
/// ClientHello within milliseconds; a distant one within a few hundred,
/// and parking it costs nothing but a parked slot.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(50);

/// Parked slots per permit of a lane: with 64 permits, 1024 probes can
/// wait on silent servers at once, so 1000 black holes with a 1 s timeout
/// leave the permits to live targets within a second.
pub(crate) const PARKED_PER_PERMIT: usize = 16;

/// The two lanes.
#[derive(Debug, Clone)]
pub(super) struct Lanes {
    /// Targets that answered last time (or were never probed), and file
    /// passes.
    pub(super) main: Arc<Semaphore>,
    /// Targets whose previous probe timed out.
    pub(super) slow: Arc<Semaphore>,
    /// Probes of either lane that gave their permit back while waiting on
    /// a silent network.
    pub(super) parked: Arc<Semaphore>,
}

/// Lanes whose size can change on reload.
#[derive(Debug)]
pub(super) struct ResizableLanes {
    pub(super) lanes: Lanes,
    /// Permits of the main and the slow lane and the parked slots: after a
    /// lowered limit they can differ until the probes holding them finish.
    size: [usize; 3],
    /// Most parked slots the descriptor limit leaves room for.
    parking_room: usize,
}

impl Lanes {
    pub(super) fn new(concurrency: usize) -> Lanes {
        Lanes {
            main: Arc::new(Semaphore::new(concurrency)),
            slow: Arc::new(Semaphore::new(concurrency)),
            parked: Arc::new(Semaphore::new(parked_slots(concurrency))),
        }
    }

    /// The lane for a target whose last probe did (not) time out.
    pub(super) fn for_target(&self, timed_out: bool) -> &Semaphore {
        if timed_out {
            &self.slow
        } else {
            &self.main
        }
    }
}

impl ResizableLanes {
    /// Empty lanes: [`resize`](Self::resize) gives them their permits,
    /// and at most `parking_room` parked slots.
    pub(super) fn new(parking_room: usize) -> ResizableLanes {
        ResizableLanes {
            lanes: Lanes::new(0),
            size: [0; 3],
            parking_room,
        }
    }

    /// Brings both lanes to `concurrency` permits.
    pub(super) fn resize(&mut self, concurrency: usize) {
        let [main, slow, parked] = &mut self.size;
        resize_lane(&self.lanes.main, main, concurrency, "main");
        resize_lane(&self.lanes.slow, slow, concurrency, "slow");
        let slots = parked_slots(concurrency).min(self.parking_room);
        resize_lane(&self.lanes.parked, parked, slots, "parked");
    }
}

/// Parked slots for `concurrency` permits per lane (before the descriptor
/// limit has its say).
pub fn parked_slots(concurrency: usize) -> usize {
    concurrency.saturating_mul(PARKED_PER_PERMIT)
}

/// Runs `probe` holding `permit` until the probe's connections have all
/// waited on the network for [`PARK_AFTER`]; then, if a slot in `parked`
/// is free, trades the permit for it (and otherwise looks again a
/// [`PARK_AFTER`] later). Ends when the probe does, which its own deadline
/// bounds.
pub(super) async fn park_when_quiet<F: Future>(
    probe: F,
    permit: impl Sized,
    parked: &Semaphore,
    activity: &Activity,
) -> F::Output {
    let mut probe = std::pin::pin!(probe);
    let mut look_at = Instant::now() + PARK_AFTER;
    loop {
        tokio::select! {
            out = &mut probe => return out,
            () = tokio::time::sleep_until(look_at) => {}
        }
        match activity.quiet_for() {
            Some(quiet) if quiet >= PARK_AFTER => {
                if let Ok(slot) = parked.try_acquire() {
                    drop(permit);
                    let out = probe.await;
                    drop(slot);
                    return out;
                }
                look_at = Instant::now() + PARK_AFTER;
            }
            Some(quiet) => look_at = Instant::now() + (PARK_AFTER - quiet),
            None => look_at = Instant::now() + PARK_AFTER,
        }
    }
}

/// Brings `permits`, which holds `current` permits, to `wanted`.
pub(super) fn resize_lane(permits: &Semaphore, current: &mut usize, wanted: usize, lane: &str) {
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

/// Whether a probe held its permit until its deadline. Every `timeout`
/// counts: our own deadline, and the kernel giving up on a connect or a
/// read (`ETIMEDOUT`, after minutes of retransmissions). A lookup that
/// ran out the deadline is reported as `dns`, so the time taken decides
/// too. Any one address is enough: the probe waits for all of them.
pub(super) fn ran_into_deadline(
    addresses: &[AddressReport],
    took: Duration,
    timeout: Duration,
) -> bool {
    took >= timeout
        || addresses.iter().any(|r| {
            r.error
                .as_ref()
                .is_some_and(|e| e.reason == TlsErrorReason::Timeout)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::endpoint::ProbeError;
    use std::time::SystemTime;

    fn report(reason: Option<TlsErrorReason>) -> AddressReport {
        AddressReport {
            address: "127.0.0.1:443".to_owned(),
            chain: Vec::new(),
            error: reason.map(|reason| ProbeError::new(reason, "")),
            negotiated: None,
            chain_report: None,
            ocsp: None,
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

    #[test]
    fn lowering_concurrency_forgets_free_permits() {
        let mut lanes = ResizableLanes::new(usize::MAX);
        lanes.resize(8);
        assert_eq!(lanes.lanes.main.available_permits(), 8);
        let held = lanes.lanes.main.clone().try_acquire_many_owned(3).unwrap();
        lanes.resize(2);
        assert_eq!(lanes.lanes.main.available_permits(), 0);
        drop(held);
        lanes.resize(2);
        assert_eq!(lanes.lanes.main.available_permits(), 2);
        assert_eq!(lanes.lanes.slow.available_permits(), 2);
    }
}

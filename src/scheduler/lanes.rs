//! The two bulkheads probes draw permits from.
//!
//! `global.concurrency` permits each, so at most twice that many probes
//! are in flight. Every target starts in the main lane; a probe that ran
//! into its deadline sends the target's next probe to the slow lane, and
//! one that did not brings it back. The slow lane is a full pool of its
//! own rather than a share of the main one: live targets keep every main
//! permit however many targets are dead, and the dead ones are not probed
//! less often than with a single pool.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::sources::endpoint::{AddressReport, TlsErrorReason};

/// The two lanes.
#[derive(Debug, Clone)]
pub(super) struct Lanes {
    /// Targets that answered last time (or were never probed), and file
    /// passes.
    pub(super) main: Arc<Semaphore>,
    /// Targets whose previous probe timed out.
    pub(super) slow: Arc<Semaphore>,
}

/// Lanes whose size can change on reload.
#[derive(Debug)]
pub(super) struct ResizableLanes {
    pub(super) lanes: Lanes,
    /// Permits of the main and the slow lane: after a lowered limit they
    /// can differ until the probes holding permits finish.
    size: [usize; 2],
}

impl Lanes {
    pub(super) fn new(concurrency: usize) -> Lanes {
        Lanes {
            main: Arc::new(Semaphore::new(concurrency)),
            slow: Arc::new(Semaphore::new(concurrency)),
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
    /// Empty lanes: [`resize`](Self::resize) gives them their permits.
    pub(super) fn new() -> ResizableLanes {
        ResizableLanes {
            lanes: Lanes::new(0),
            size: [0; 2],
        }
    }

    /// Brings both lanes to `concurrency` permits.
    pub(super) fn resize(&mut self, concurrency: usize) {
        let [main, slow] = &mut self.size;
        resize_lane(&self.lanes.main, main, concurrency, "main");
        resize_lane(&self.lanes.slow, slow, concurrency, "slow");
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
        let mut lanes = ResizableLanes::new();
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

//! How many connections certinel's listeners hold at once, so that they can
//! never take the file descriptors the probes and file reads need.
//!
//! Without a cap, 1 100 idle TCP connections to a process with the usual
//! soft `RLIMIT_NOFILE` of 1024 made every probe fail with "Too many open
//! files" and every file `read_failed`. Now, at start-up, the soft limit is
//! raised to the hard limit (as Go does for every Prometheus exporter), and
//! the connection cap (`--web.max-connections`, 512 by default, as in
//! Prometheus) is lowered when needed so that it leaves [`reserve`]
//! descriptors for the sources. The cap is shared by the main and the
//! health listener. When it is reached, certinel stops accepting: new
//! connections wait in the kernel's listen backlog, as with Prometheus'
//! `LimitListener`, and are accepted as soon as a connection ends (idle
//! ones are closed by the listener's timeouts).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `--web.max-connections` unless given: Prometheus' default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Descriptors kept for everything that is not a probe: the runtime, the
/// listeners, inotify, file reads, DNS, logging.
const BASE_RESERVE: usize = 64;
/// Never cap below this, however low the descriptor limit: certinel must
/// stay scrapable.
const MIN_CONNECTIONS: usize = 8;
/// "Limit reached" is logged at most this often.
const SATURATION_LOG_EVERY: Duration = Duration::from_secs(60);

/// Descriptors left for the sources: one per probe at work (at most
/// `2 × global.concurrency`, counting the lane of timed-out targets) plus
/// [`BASE_RESERVE`]. Parked probes take what [`parking_room`] leaves.
pub(crate) fn reserve(concurrency: usize) -> usize {
    concurrency.saturating_mul(2).saturating_add(BASE_RESERVE)
}

/// The soft `RLIMIT_NOFILE`, first raised to the hard limit (logged when
/// it moves); `None` when it cannot be read.
fn raised_soft_limit() -> Option<usize> {
    match nofile::raise_to_hard() {
        Ok(raised) => {
            if raised.before != raised.soft {
                tracing::info!(
                    from = raised.before,
                    to = raised.soft,
                    "raised the open-file limit to its hard limit"
                );
            }
            Some(raised.soft)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            None
        }
    }
}

/// How many probes may wait parked on silent servers (each holds a
/// socket, `scheduler` lanes): the descriptors the limit leaves beside
/// `max_connections` connections and the [`reserve`] of `concurrency`.
/// Raises the soft limit to the hard one first; unbounded when the limit
/// cannot be read.
pub(crate) fn parking_room(max_connections: usize, concurrency: usize) -> usize {
    match raised_soft_limit() {
        Some(soft) => soft
            .saturating_sub(reserve(concurrency))
            .saturating_sub(max_connections),
        None => usize::MAX,
    }
}

/// The cap that fits: `requested`, lowered so that `cap + reserve` stays
/// within the soft descriptor limit, but never below [`MIN_CONNECTIONS`].
fn fit(requested: usize, soft_limit: usize, reserve: usize) -> usize {
    requested
        .min(soft_limit.saturating_sub(reserve))
        .max(MIN_CONNECTIONS.min(requested))
        .max(1)
}

/// The connection slots shared by certinel's listeners.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    max: usize,
    last_saturation_log: Arc<Mutex<Option<Instant>>>,
}

impl Default for ConnectionLimit {
    /// [`DEFAULT_MAX_CONNECTIONS`], whatever the descriptor limit.
    fn default() -> ConnectionLimit {
        ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS)
    }
}

impl ConnectionLimit {
    /// Exactly `max` connections at once (at least one).
    pub fn new(max: usize) -> ConnectionLimit {
        let max = max.max(1);
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            last_saturation_log: Arc::new(Mutex::new(None)),
        }
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit, then allows
    /// `requested` connections, fewer if the descriptor limit cannot hold
    /// them beside `reserve` descriptors for the sources (logged).
    pub(crate) fn for_process(requested: usize, reserve: usize) -> ConnectionLimit {
        let Some(soft) = raised_soft_limit() else {
            return ConnectionLimit::new(requested);
        };
        let max = fit(requested, soft, reserve);
        if max < requested {
            tracing::warn!(
                requested,
                max_connections = max,
                open_file_limit = soft,
                reserved_for_sources = reserve,
                "lowered --web.max-connections to leave file descriptors for probes and files"
            );
        } else {
            tracing::debug!(
                max_connections = max,
                open_file_limit = soft,
                "connection limit"
            );
        }
        ConnectionLimit::new(max)
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits for a free slot; the connection holds the permit for its life.
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.log_saturation();
        // The semaphore is never closed; `None` would only stop accepting.
        self.permits.clone().acquire_owned().await.ok()
    }

    fn log_saturation(&self) {
        let mut last = self
            .last_saturation_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= SATURATION_LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                max_connections = self.max,
                "connection limit reached: new connections wait in the listen backlog"
            );
        }
    }
}

/// The two libc calls on `RLIMIT_NOFILE`.
mod nofile {
    use std::io;

    /// The soft limit before and after [`raise_to_hard`].
    pub(super) struct Raised {
        pub(super) before: usize,
        pub(super) soft: usize,
    }

    /// Sets the soft limit to the hard limit, unless it already is (then
    /// nothing is called: a systemd unit with `LimitNOFILE=` and a seccomp
    /// filter without `setrlimit` is the common case).
    #[allow(unsafe_code)]
    pub(super) fn raise_to_hard() -> io::Result<Raised> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` into the struct we own and
        // lend it for the duration of the call; it reads no other memory.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let before = to_usize(limit.rlim_cur);
        if limit.rlim_cur >= limit.rlim_max {
            return Ok(Raised {
                before,
                soft: before,
            });
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we lend it; raising the
        // soft limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            let e = io::Error::last_os_error();
            tracing::warn!(error = %e, soft = before, "cannot raise the open-file limit");
            return Ok(Raised {
                before,
                soft: before,
            });
        }
        Ok(Raised {
            before,
            soft: to_usize(raised.rlim_cur),
        })
    }

    /// `RLIM_INFINITY` and anything else beyond `usize` saturate.
    fn to_usize(limit: libc::rlim_t) -> usize {
        usize::try_from(limit).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        assert_eq!(reserve(4), 72);
        // A generous limit: the request stands.
        assert_eq!(fit(512, 1_048_576, reserve(64)), 512);
        // ulimit -n 1024 with the default concurrency.
        assert_eq!(fit(512, 1024, reserve(64)), 512);
        assert_eq!(fit(1000, 1024, reserve(64)), 1024 - 192);
        // ulimit -n 256 with concurrency 4.
        assert_eq!(fit(512, 256, reserve(4)), 184);
        // Too low to honour the reserve: still scrapable.
        assert_eq!(fit(512, 100, reserve(64)), MIN_CONNECTIONS);
        assert_eq!(fit(2, 100, reserve(64)), 2);
        assert_eq!(fit(0, 100, 0), 1);
    }

    #[test]
    fn parking_gets_what_connections_and_the_reserve_leave() {
        // This process's own limit: whatever it is, the room plus the rest
        // never exceeds it.
        let room = parking_room(512, 64);
        if let Some(soft) = raised_soft_limit() {
            assert_eq!(room, soft.saturating_sub(reserve(64) + 512));
        }
    }

    #[tokio::test]
    async fn a_slot_is_free_again_when_its_connection_ends() {
        let limit = ConnectionLimit::new(1);
        let first = limit.slot().await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), limit.slot()).await;
        assert!(waiting.is_err(), "a second slot while the first is held");
        drop(first);
        assert!(limit.slot().await.is_some());
    }
}

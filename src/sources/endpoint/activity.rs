//! Whether a probe is waiting on the network: how long every connection it
//! has open has been waiting for the server to say something.
//!
//! The scheduler lets a probe that has heard nothing for a while give its
//! concurrency permit back and wait parked (`scheduler::lanes`), so that
//! servers that accept and never answer do not hold the permits that live
//! targets need. A probe is *quiet* while none of its connections has
//! anything to do: before it connects (resolving, connecting) and while
//! every open connection waits on a read that found nothing.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The quiet state of one probe, shared by its connections.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    /// Connections that have something to do (not waiting on a read).
    working: AtomicUsize,
    /// When `working` last fell to zero, in microseconds since `started`.
    quiet_since: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

impl Activity {
    /// A probe about to start: quiet (nothing connected yet).
    pub fn new() -> Activity {
        Activity {
            started: Instant::now(),
            working: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(0),
        }
    }

    /// How long the probe has been quiet; `None` while a connection has
    /// something to do.
    pub fn quiet_for(&self) -> Option<Duration> {
        if self.working.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_micros(self.quiet_since.load(Ordering::Acquire));
        Some(self.started.elapsed().saturating_sub(since))
    }

    fn to_working(&self) {
        self.working.fetch_add(1, Ordering::AcqRel);
    }

    fn to_waiting(&self) {
        // The last connection to wait starts the quiet.
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.quiet_since.store(micros, Ordering::Release);
        self.working.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection that tells its probe's [`Activity`] when it waits on the
/// network (a read that found nothing) and when it has something to do.
pub(super) struct Heard<S> {
    inner: S,
    activity: Arc<Activity>,
    waiting: bool,
}

impl<S> Heard<S> {
    /// A connection just made: it has a first message to send.
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Heard<S> {
        activity.to_working();
        Heard {
            inner,
            activity,
            waiting: false,
        }
    }

    fn waits(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.activity.to_waiting();
            } else {
                self.activity.to_working();
            }
        }
    }
}

impl<S> Drop for Heard<S> {
    fn drop(&mut self) {
        // A closed connection has nothing more to do.
        self.waits(true);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.waits(polled.is_pending());
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Heard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_probe_is_quiet_only_while_every_connection_waits() {
        let activity = Arc::new(Activity::new());
        assert!(activity.quiet_for().is_some(), "quiet before connecting");
        let (a, mut server_a) = tokio::io::duplex(64);
        let (b, _server_b) = tokio::io::duplex(64);
        let mut a = Heard::new(a, activity.clone());
        let mut b = Heard::new(b, activity.clone());
        assert!(
            activity.quiet_for().is_none(),
            "connected, with a hello to send"
        );
        let mut buf = [0u8; 8];
        // `a` waits on a read that finds nothing; `b` still works.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), a.read(&mut buf))
                .await
                .is_err()
        );
        assert!(activity.quiet_for().is_none());
        assert!(
            tokio::time::timeout(Duration::from_millis(10), b.read(&mut buf))
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let quiet = activity.quiet_for().expect("both wait");
        assert!(quiet >= Duration::from_millis(20), "{quiet:?}");
        // The server answers `a`: work again.
        server_a.write_all(b"hi").await.unwrap();
        assert_eq!(a.read(&mut buf).await.unwrap(), 2);
        assert!(activity.quiet_for().is_none());
        drop(a);
        assert!(activity.quiet_for().is_some(), "closed, nothing to do");
    }
}

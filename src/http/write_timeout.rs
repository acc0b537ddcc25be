//! A write timeout hyper does not have: a connection whose writes make no
//! progress for a while fails, and so lets go of the response it holds.
//!
//! A client that sends `GET /metrics` and never reads would otherwise keep
//! its connection, and the rendered body it pins, until it disconnects.
//! The clock runs only while a write (or flush, or shutdown) is blocked on
//! the socket; every byte the kernel takes restarts it, so a slow but
//! moving reader is never cut off.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `S` whose writes fail with `TimedOut` after `timeout` without progress.
#[derive(Debug)]
pub(super) struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Re-armed at the start of each blocked stretch.
    deadline: Pin<Box<Sleep>>,
    /// Whether `deadline` is armed for the current blocked write.
    blocked: bool,
}

impl<S> WriteTimeout<S> {
    /// Wraps `inner`; must be called on a Tokio runtime (it makes a timer).
    pub(super) fn new(inner: S, timeout: Duration) -> WriteTimeout<S> {
        WriteTimeout {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            blocked: false,
        }
    }

    /// Passes a finished poll through and disarms the clock; on `Pending`
    /// arms it (once per blocked stretch) and fails when it runs out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.blocked = false;
            return poll;
        }
        if !self.blocked {
            let at = Instant::now() + self.timeout;
            self.deadline.as_mut().reset(at);
            self.blocked = true;
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {:?}", self.timeout),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_reader_that_stops_reading_fails_the_writer() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = WriteTimeout::new(server, TIMEOUT);
        let started = Instant::now();
        let e = server.write_all(&[0u8; 8192]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(took >= TIMEOUT && took < TIMEOUT * 3, "{took:?}");
        drop(client);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (mut client, server) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let mut total = 0;
            while total < 8192 {
                // Slower than the timeout in total, never stalled that long.
                tokio::time::sleep(TIMEOUT / 3).await;
                total += client.read(&mut buf).await.unwrap();
            }
            total
        });
        let mut server = WriteTimeout::new(server, TIMEOUT);
        server.write_all(&[0u8; 8192]).await.unwrap();
        server.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), 8192);
    }
}

//! A connection wrapper that fails reads and writes once no byte has moved for a while.
//!
//! hyper's header timeout guards the request head; this guards the rest: a
//! body that stalls, a response the client never reads, a TLS handshake that
//! trickles. The timer is checked only when the socket would block and is
//! re-armed lazily, so a busy connection pays one clock read per I/O call.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An I/O object that errors with `TimedOut` after `timeout` without progress.
pub(crate) struct Idle<T> {
    /// The wrapped connection.
    inner: T,
    /// How long the connection may go without progress.
    timeout: Duration,
    /// When a read or write last completed.
    last_progress: Instant,
    /// Fires at or before `last_progress + timeout`; boxed so `Idle` stays `Unpin`.
    timer: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    /// Wraps `inner`, starting the idle clock now.
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        Idle { inner, timeout, last_progress: now, timer: Box::pin(tokio::time::sleep_until(now + timeout)) }
    }

    /// Records that the connection moved.
    fn progressed<R>(&mut self, result: R) -> Poll<R> {
        self.last_progress = Instant::now();
        Poll::Ready(result)
    }

    /// Called when the inner I/O is pending: errors if the idle deadline has passed.
    fn poll_stalled<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            // The timer was set for an older deadline; progress since then moves it on.
            let deadline = self.last_progress + self.timeout;
            if deadline <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.poll_stalled(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.poll_stalled(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.poll_stalled(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => self.poll_stalled(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => self.poll_stalled(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn read_fails_after_idle_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let mut idle = Idle::new(server, Duration::from_secs(5));
        let mut buf = [0u8; 8];
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_pushes_the_deadline_back() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut idle = Idle::new(server, Duration::from_secs(5));
        let mut buf = [0u8; 8];
        // A byte every 4 s keeps a 5 s idle timeout from firing, for well past 5 s in total.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        let started = Instant::now();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}

//! A connection wrapper that fails reads and writes once no byte has moved for a while.
//!
//! hyper's header timeout guards the request head; this guards the rest: a
//! body that stalls, a response the client never reads, a TLS handshake that
//! trickles. The timer is checked only when the socket would block and is
//! re-armed lazily, so a busy connection pays one clock read per I/O call.
//!
//! A connection that carries a push stream switches to stream mode (see
//! [`StreamMode`]): the client sends nothing more, so reads may wait forever,
//! and only a write the client will not take for [`STREAM_WRITE_STALL`] cuts it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a stream's socket may refuse a frame before the subscriber is dropped.
///
/// Shorter than the idle cut: a stream reader that stops reading holds a
/// slot and an event, and it can reconnect and resume from its last id.
pub(crate) const STREAM_WRITE_STALL: Duration = Duration::from_secs(10);

/// Switches one connection's [`Idle`] into stream mode; cloned into the request handler.
#[derive(Clone, Default)]
pub(crate) struct StreamMode(Arc<AtomicBool>);

impl StreamMode {
    /// From now on the connection carries a stream: exempt from the idle cut, cut on a stalled write.
    pub(crate) fn enable(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// An I/O object that errors with `TimedOut` after `timeout` without progress.
pub(crate) struct Idle<T> {
    /// The wrapped connection.
    inner: T,
    /// How long the connection may go without progress.
    timeout: Duration,
    /// When a read or write last completed.
    last_progress: Instant,
    /// Fires at or before the deadline; boxed so `Idle` stays `Unpin`.
    timer: Pin<Box<Sleep>>,
    /// Whether the connection carries a stream.
    mode: StreamMode,
    /// In stream mode, since when writes have been pending.
    write_blocked_since: Option<Instant>,
}

impl<T> Idle<T> {
    /// Wraps `inner`, starting the idle clock now.
    pub(crate) fn new(inner: T, timeout: Duration, mode: StreamMode) -> Self {
        let now = Instant::now();
        Idle {
            inner,
            timeout,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            mode,
            write_blocked_since: None,
        }
    }

    /// Records that the connection moved.
    fn progressed<R>(&mut self, result: R) -> Poll<R> {
        self.last_progress = Instant::now();
        Poll::Ready(result)
    }

    /// Records that a write went through.
    fn wrote<R>(&mut self, result: R) -> Poll<R> {
        self.write_blocked_since = None;
        self.progressed(result)
    }

    /// When the connection is cut if nothing moves; `None` for a stream waiting only to read.
    fn deadline(&mut self, writing: bool) -> Option<Instant> {
        if !self.mode.is_on() {
            return Some(self.last_progress + self.timeout);
        }
        if !writing {
            return self.write_blocked_since.map(|since| since + STREAM_WRITE_STALL);
        }
        Some(*self.write_blocked_since.get_or_insert_with(Instant::now) + STREAM_WRITE_STALL)
    }

    /// Called when the inner I/O is pending: errors if the deadline has passed.
    fn poll_stalled<R>(&mut self, cx: &mut Context<'_>, writing: bool) -> Poll<io::Result<R>> {
        loop {
            let Some(deadline) = self.deadline(writing) else { return Poll::Pending };
            // The clock is read only when the timer has fired or would fire too late. A
            // keep-alive connection goes pending once per request; while the armed timer
            // still fires at or before the deadline (progress only moves it on), waiting
            // for it is enough, and the check happens when it fires.
            if deadline < self.timer.deadline() || self.timer.is_elapsed() {
                if deadline <= Instant::now() {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")));
                }
                self.timer.as_mut().reset(deadline);
            }
            ready!(self.timer.as_mut().poll(cx));
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.poll_stalled(cx, false),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.wrote(result),
            Poll::Pending => self.poll_stalled(cx, true),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.wrote(result),
            Poll::Pending => self.poll_stalled(cx, true),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => self.poll_stalled(cx, true),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => self.poll_stalled(cx, true),
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
        let mut idle = Idle::new(server, Duration::from_secs(5), StreamMode::default());
        let mut buf = [0u8; 8];
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_pushes_the_deadline_back() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut idle = Idle::new(server, Duration::from_secs(5), StreamMode::default());
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

    #[tokio::test(start_paused = true)]
    async fn a_stream_may_wait_to_read_forever_but_not_to_write() {
        let (client, server) = tokio::io::duplex(16);
        let mode = StreamMode::default();
        let mut idle = Idle::new(server, Duration::from_secs(5), mode.clone());
        mode.enable();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(3600), idle.read(&mut buf)).await;
        assert!(read.is_err(), "a stream's read timed out: {read:?}");
        // The client reads nothing: the duplex buffer fills, and the write stalls until the cut.
        let started = Instant::now();
        let err = idle.write_all(&[b'x'; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), STREAM_WRITE_STALL);
        drop(client);
    }
}

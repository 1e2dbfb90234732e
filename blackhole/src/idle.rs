//! A connection wrapper that holds every clock a connection runs on, with one timer.
//!
//! - While the connection waits for a request head (from its start, and from the write of each
//!   answer), the head must arrive within the header timeout (slowloris), and a stopping server
//!   closes it (see [`Stop`]).
//! - Otherwise it is cut once no byte has moved in either direction for the idle timeout: a body
//!   that stalls, a response the client never reads, a TLS handshake that trickles.
//! - A connection that carries a push stream: the client sends nothing more, so reads may wait
//!   forever, and only a write the client will not take for [`STREAM_WRITE_STALL`] cuts it.
//!
//! The handler tells which of these applies through the connection's [`Phase`]. A read or write
//! only sets a flag; the clock is read when the timer looks, every eighth of the shorter timeout,
//! so a cut comes at most that late (never early), and a busy keep-alive connection pays no clock
//! read and no timer operation per request (hyper's own header timeout armed and dropped a boxed
//! timer for every request, and two clock reads per request were 1 % of its instructions).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::Config;

/// How long a stream's socket may refuse a frame before the subscriber is dropped.
///
/// Shorter than the idle cut: a stream reader that stops reading holds a
/// slot and an event, and it can reconnect and resume from its last id.
pub(crate) const STREAM_WRITE_STALL: Duration = Duration::from_secs(10);

/// Waiting for a request head.
const HEAD: u8 = 0;
/// The handler has the request.
const REQUEST: u8 = 1;
/// The handler has answered; the write of its answer starts the wait for the next head.
const ANSWERED: u8 = 2;
/// The connection carries a push stream.
const STREAM: u8 = 3;

/// Where one connection is in its request cycle, set by the request handler; cloned into it.
///
/// Only the connection's own task touches it (hyper runs the handler there), so plain loads and
/// stores are enough; the `Arc` is only so that the handler can hold it.
#[derive(Clone, Default)]
pub(crate) struct Phase(Arc<AtomicU8>);

impl Phase {
    /// The handler has a request: its head arrived in time.
    pub(crate) fn request(&self) {
        self.0.store(REQUEST, Ordering::Relaxed);
    }

    /// The handler has answered, unless it turned the connection into a stream.
    pub(crate) fn answered(&self) {
        if self.get() == REQUEST {
            self.0.store(ANSWERED, Ordering::Relaxed);
        }
    }

    /// From now on the connection carries a stream: exempt from the idle cut, cut on a stalled write.
    pub(crate) fn stream(&self) {
        self.0.store(STREAM, Ordering::Relaxed);
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The server's stop, as its connections see it: a flag, and the wakers of the connections that
/// wait for a request head, so that those close at once while requests in flight finish.
///
/// A connection registers its task's waker once (it does not change), so the hot path is a pointer
/// comparison and a flag read; polling a shutdown future on every wake-up took a lock each time.
#[derive(Default)]
pub(crate) struct Stop {
    /// Set when the server stops.
    stopping: AtomicBool,
    /// Wakers of the connections that have waited for a head, by connection number.
    waiting: Mutex<HashMap<u64, Waker>>,
    /// The next connection's number.
    next: AtomicU64,
}

impl Stop {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Waker>> {
        // Every update is a single insert or remove, so a poisoned map is still consistent.
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes every connection that waits for a request head, now or after answering the one in flight.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for waker in self.lock().values() {
            waker.wake_by_ref();
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// An I/O object that enforces its connection's clocks and closes it when the server stops.
pub(crate) struct Idle<T> {
    /// The wrapped connection.
    inner: T,
    /// How long the connection may go without progress.
    timeout: Duration,
    /// How long a request head may take, from when the connection starts waiting for it.
    header_timeout: Duration,
    /// How often the timer looks at a connection that is not about to be cut: how late a cut may come.
    check_every: Duration,
    /// Whether a read or write has completed since the timer last looked.
    moved: bool,
    /// As of the last look, a moment at or after the last byte moved: the look that found the
    /// connection had moved, or its start.
    last_progress: Instant,
    /// Whether a wait for a request head has begun since the timer last looked.
    head_began: bool,
    /// The look at or after which the current wait for a request head began, or the start.
    head_since: Instant,
    /// Fires at the next look; boxed so `Idle` stays `Unpin`.
    timer: Pin<Box<Sleep>>,
    /// Whether the timer has been polled since it was last reset, so that it wakes this task when it
    /// fires: a connection has one task, so polling it again would only cost time.
    armed: bool,
    /// Where the connection is in its request cycle.
    phase: Phase,
    /// The server's stop.
    stop: Arc<Stop>,
    /// This connection's number and waker as registered with `stop`, once it has waited for a head.
    registered: Option<(u64, Waker)>,
    /// In stream mode, the look at or after which writes began to be pending.
    write_blocked_since: Option<Instant>,
}

impl<T> Idle<T> {
    /// Wraps `inner` with `config`'s idle and header timeouts, starting both clocks now.
    pub(crate) fn new(inner: T, config: &Config, phase: Phase, stop: Arc<Stop>) -> Self {
        let now = Instant::now();
        let (timeout, header_timeout) = (config.idle_timeout, config.header_timeout);
        // An eighth of the shorter timeout: cuts come at most that late, and a busy connection's timer
        // fires eight times per timeout.
        let check_every = timeout.min(header_timeout) / 8;
        Idle {
            inner,
            timeout,
            header_timeout,
            check_every,
            moved: false,
            last_progress: now,
            head_began: false,
            head_since: now,
            timer: Box::pin(tokio::time::sleep_until(now + check_every)),
            armed: false,
            phase,
            stop,
            registered: None,
            write_blocked_since: None,
        }
    }

    /// Records that the connection moved; the time is read only when the timer looks.
    fn progressed<R>(&mut self, result: R) -> Poll<R> {
        self.moved = true;
        Poll::Ready(result)
    }

    /// Records that a write went through; after an answer, the wait for the next head begins.
    fn wrote<R>(&mut self, cx: &mut Context<'_>, result: R) -> Poll<R> {
        self.write_blocked_since = None;
        if self.phase.get() == ANSWERED {
            self.phase.0.store(HEAD, Ordering::Relaxed);
            self.head_began = true;
            // hyper looks for the next head before it writes the answer, and looks again only when
            // the socket or the timer wakes it: so the timer must be running, and a stop must wake it.
            if !self.armed || self.timer.is_elapsed() {
                self.timer.as_mut().reset(Instant::now() + self.check_every);
                self.armed = self.timer.as_mut().poll(cx).is_pending();
            }
            if self.stopping(cx) {
                cx.waker().wake_by_ref();
            }
        }
        self.progressed(result)
    }

    /// Whether the server is stopping, after registering the task to be woken when it does (unless
    /// it already is).
    #[inline]
    fn stopping(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.registered.as_ref().is_some_and(|(_, waker)| waker.will_wake(cx.waker())) {
            self.register(cx.waker());
        }
        // Read after registering: a stop that came before it is seen here, one after it wakes the task.
        self.stop.is_stopping()
    }

    /// Registers `waker` to be woken when the server stops, in place of any earlier one.
    #[cold]
    fn register(&mut self, waker: &Waker) {
        let id = match &self.registered {
            Some((id, _)) => *id,
            None => self.stop.next.fetch_add(1, Ordering::Relaxed),
        };
        self.stop.lock().insert(id, waker.clone());
        self.registered = Some((id, waker.clone()));
    }

    /// When the connection is cut if nothing moves; `None` for a stream waiting only to read.
    fn deadline(&mut self, writing: bool, now: Instant) -> Option<Instant> {
        match self.phase.get() {
            STREAM if writing => Some(*self.write_blocked_since.get_or_insert(now) + STREAM_WRITE_STALL),
            STREAM => self.write_blocked_since.map(|since| since + STREAM_WRITE_STALL),
            HEAD => Some((self.last_progress + self.timeout).min(self.head_since + self.header_timeout)),
            _ => Some(self.last_progress + self.timeout),
        }
    }

    /// Called when the inner I/O is pending: errors if the deadline has passed.
    ///
    /// The clock is read only when the timer has fired: a busy keep-alive connection pays no clock
    /// read and no timer operation per request. Progress is known to the last look, so a cut comes
    /// at most `check_every` after its deadline, never before.
    fn poll_stalled<R>(&mut self, cx: &mut Context<'_>, writing: bool) -> Poll<io::Result<R>> {
        loop {
            if self.timer.is_elapsed() {
                let now = Instant::now();
                if std::mem::take(&mut self.moved) {
                    self.last_progress = now;
                }
                if std::mem::take(&mut self.head_began) {
                    self.head_since = now;
                }
                let Some(deadline) = self.deadline(writing, now) else { return Poll::Pending };
                if deadline <= now {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")));
                }
                self.timer.as_mut().reset(deadline.min(now + self.check_every));
                self.armed = false;
            }
            if !self.armed {
                if self.timer.as_mut().poll(cx).is_ready() {
                    continue;
                }
                self.armed = true;
            }
            return Poll::Pending;
        }
    }
}

impl<T> Drop for Idle<T> {
    fn drop(&mut self) {
        if let Some((id, _)) = &self.registered {
            self.stop.lock().remove(id);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // Nothing read: hyper takes it as the client's close. Checked first too, so that a client
        // sending request after request cannot hold a stopping server.
        if self.phase.get() == HEAD && self.stop.is_stopping() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending if self.phase.get() == HEAD && self.stopping(cx) => Poll::Ready(Ok(())),
            Poll::Pending => self.poll_stalled(cx, false),
        }
    }
}
impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.wrote(cx, result),
            Poll::Pending => self.poll_stalled(cx, true),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.wrote(cx, result),
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

    /// An `Idle` around one end of a duplex pipe, with these timeouts in seconds.
    fn idle(
        capacity: usize,
        idle: u64,
        header: u64,
    ) -> (tokio::io::DuplexStream, Idle<tokio::io::DuplexStream>, Phase, Arc<Stop>) {
        let (client, server) = tokio::io::duplex(capacity);
        let config = Config {
            idle_timeout: Duration::from_secs(idle),
            header_timeout: Duration::from_secs(header),
            ..Config::default()
        };
        let (phase, stop) = (Phase::default(), Arc::new(Stop::default()));
        (client, Idle::new(server, &config, phase.clone(), stop.clone()), phase, stop)
    }

    #[tokio::test(start_paused = true)]
    async fn read_fails_after_idle_timeout() {
        let (_client, mut idle, phase, _) = idle(64, 5, 60);
        phase.request();
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_pushes_the_deadline_back() {
        let (mut client, mut idle, phase, _) = idle(64, 5, 60);
        phase.request();
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
    async fn a_head_that_trickles_is_cut_at_the_header_timeout() {
        let (mut client, mut idle, _, _) = idle(64, 30, 5);
        let started = Instant::now();
        let mut buf = [0u8; 8];
        // A byte a second is progress enough for the idle cut, not for the head's deadline.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_write_of_an_answer_starts_the_wait_for_the_next_head() {
        let (mut client, mut idle, phase, _) = idle(64, 30, 5);
        let mut buf = [0u8; 8];
        // A request whose handler takes longer than the header timeout is not cut for it.
        phase.request();
        tokio::time::sleep(Duration::from_secs(20)).await;
        phase.answered();
        idle.write_all(b"ok").await.unwrap();
        let answered = Instant::now();
        assert_eq!(client.read(&mut buf).await.unwrap(), 2);
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // The timer looks every eighth of the shorter timeout: the cut comes at most that late.
        let waited = answered.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited <= Duration::from_secs(5) + Duration::from_secs(5) / 8,
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_closes_a_connection_waiting_for_a_head_and_not_one_with_a_request() {
        let (_client, mut waiting, _, stop) = idle(64, 30, 10);
        let reader = tokio::spawn(async move { waiting.read(&mut [0u8; 8]).await.unwrap() });
        let (_other, mut busy, phase, _) = idle(64, 30, 10);
        phase.request();
        let busy_reader = tokio::spawn(async move { busy.read(&mut [0u8; 8]).await });
        tokio::task::yield_now().await;
        let stopped = Instant::now();
        stop.stop();
        // Closed as if the client had: a read of nothing, at once.
        assert_eq!(reader.await.unwrap(), 0);
        assert_eq!(stopped.elapsed(), Duration::ZERO);
        assert!(stop.lock().is_empty(), "a closed connection stayed registered");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!busy_reader.is_finished(), "a request in flight was cut by the stop");
        busy_reader.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_may_wait_to_read_forever_but_not_to_write() {
        let (_client, mut idle, phase, _) = idle(16, 5, 5);
        phase.stream();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(3600), idle.read(&mut buf)).await;
        assert!(read.is_err(), "a stream's read timed out: {read:?}");
        // The client reads nothing: the duplex buffer fills, and the write stalls until the cut.
        let started = Instant::now();
        let err = idle.write_all(&[b'x'; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), STREAM_WRITE_STALL);
    }
}

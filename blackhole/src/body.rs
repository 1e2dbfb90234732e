//! Reading a request body: its size limit, its deadline, its minimum data rate, and which slow body
//! gives its connection slot away when every slot is taken.
//!
//! A body that hyper has already buffered (a small delivery, as most are) is read at the first poll,
//! with no clock read and no timer: that is the hot path. Only a body that is not is timed, and listed
//! among the slow bodies. Its deadline is [`Config::body_grace`] plus one second for every
//! [`Config::body_min_rate`] bytes it has sent, and never later than [`Config::body_timeout`] (the
//! shape of Apache's `mod_reqtimeout` `MinRate`), so a trickle is cut after the grace while a large
//! body at any useful speed has until the timeout. When a client finds every slot taken, the listed
//! body with the lowest rate so far is cut with the same 408, so that a flood of slow bodies from
//! many addresses cannot keep GitHub waiting past its 10 s.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Config;

/// How long a body has been arriving before its rate is compared with others': one that has just
/// begun has no rate yet, and may be a delivery whose next packet is on its way.
const MIN_AGE: Duration = Duration::from_millis(100);

/// Why a body was not read to its end.
pub(crate) enum Refused {
    /// It is larger than `--max-body`.
    TooLarge,
    /// It took longer than `--body-timeout`, fell below the minimum rate, or gave its slot away.
    TooSlow,
}

/// Reads `body` to its end, handing each data frame to `sink`; returns its size, or why it was refused.
///
/// A body error means the connection is gone; returning it makes hyper close it.
pub(crate) async fn read(
    body: &mut Incoming,
    config: &Config,
    slow: &SlowBodies,
    mut sink: impl FnMut(&Bytes),
) -> Result<Result<u64, Refused>, hyper::Error> {
    let mut bytes: u64 = 0;
    // What hyper has buffered already, in one poll and with no timer: a timer per request reads the
    // clock, clones the runtime handle and takes the timer driver's lock to drop its entry, a
    // measurable share of its CPU. `None` when the body is not all there.
    let buffered = poll_fn(|cx| {
        Poll::Ready(loop {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Err(refused) = take(frame, &mut bytes, config, &mut sink) {
                        break Some(Ok(Err(refused)));
                    }
                }
                Poll::Ready(Some(Err(err))) => break Some(Err(err)),
                Poll::Ready(None) => break Some(Ok(Ok(bytes))),
                Poll::Pending => break None,
            }
        })
    })
    .await;
    if let Some(read) = buffered {
        return read;
    }
    // Boxed: its timer and its place in the list would make the future of every request larger, and
    // hyper moves that future into place for every request.
    Box::pin(read_slowly(body, config, slow, sink, bytes)).await
}

/// Counts a frame's data against `--max-body` and hands it to `sink`.
fn take(frame: Frame<Bytes>, bytes: &mut u64, config: &Config, sink: &mut impl FnMut(&Bytes)) -> Result<(), Refused> {
    if let Some(data) = frame.data_ref() {
        *bytes += data.len() as u64;
        if *bytes > config.max_body {
            return Err(Refused::TooLarge);
        }
        sink(data);
    }
    Ok(())
}

/// The rest of [`read`] for a body that has sent `bytes` and was not all there at once: timed, and listed.
async fn read_slowly(
    body: &mut Incoming,
    config: &Config,
    slow: &SlowBodies,
    mut sink: impl FnMut(&Bytes),
    mut bytes: u64,
) -> Result<Result<u64, Refused>, hyper::Error> {
    let listed = slow.list(bytes);
    let started = listed.progress.started;
    let deadline = |bytes: u64| started + deadline_after(config, bytes);
    let mut timer = pin!(tokio::time::sleep_until(deadline(bytes)));
    loop {
        tokio::select! {
            biased;
            frame = body.frame() => match frame {
                Some(frame) => {
                    if let Err(refused) = take(frame?, &mut bytes, config, &mut sink) {
                        return Ok(Err(refused));
                    }
                    listed.progress.bytes.store(bytes, Ordering::Relaxed);
                }
                None => return Ok(Ok(bytes)),
            },
            () = listed.progress.cut.notified() => return Ok(Err(Refused::TooSlow)),
            // The timer is re-armed only when it fires, not for every frame.
            () = &mut timer => {
                let deadline = deadline(bytes);
                if deadline <= Instant::now() {
                    return Ok(Err(Refused::TooSlow));
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// How long after it started a body that has sent `bytes` may still take.
fn deadline_after(config: &Config, bytes: u64) -> Duration {
    if config.body_min_rate == 0 {
        return config.body_timeout;
    }
    let earned = Duration::from_millis(bytes.saturating_mul(1000) / config.body_min_rate);
    config.body_timeout.min(config.body_grace.saturating_add(earned))
}

/// The bodies being read that were not complete at the first look, to find the slowest.
#[derive(Default)]
pub(crate) struct SlowBodies {
    /// Each listed body's progress, by a number of its own.
    bodies: Mutex<HashMap<u64, Arc<Progress>>>,
    /// The next body's number.
    next: AtomicU64,
}

/// How far one slow body has come, and the signal that cuts it.
struct Progress {
    /// When it was listed.
    started: Instant,
    /// Bytes received so far.
    bytes: AtomicU64,
    /// Notified to make it give its slot away.
    cut: Notify,
}

/// A body's place in the list, left when dropped.
struct Listed<'a> {
    /// The list.
    list: &'a SlowBodies,
    /// Its number in the list.
    id: u64,
    /// Its progress, shared with the list.
    progress: Arc<Progress>,
}

impl SlowBodies {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Progress>>> {
        // Every update is a single insert or remove, so a poisoned map is still consistent.
        self.bodies.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lists a body that has sent `bytes` so far, starting its clock now.
    fn list(&self, bytes: u64) -> Listed<'_> {
        let progress = Arc::new(Progress { started: Instant::now(), bytes: AtomicU64::new(bytes), cut: Notify::new() });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, progress.clone());
        Listed { list: self, id, progress }
    }

    /// Cuts the listed body with the lowest rate so far (bytes over time since it was listed);
    /// false when none has been arriving for long enough to have a rate.
    pub(crate) fn cut_slowest(&self) -> bool {
        let now = Instant::now();
        let mut bodies = self.lock();
        let rate = |progress: &Progress| {
            let elapsed = now.saturating_duration_since(progress.started);
            (u128::from(progress.bytes.load(Ordering::Relaxed)), elapsed.as_nanos())
        };
        let slowest = bodies
            .iter()
            .filter(|(_, progress)| now.saturating_duration_since(progress.started) >= MIN_AGE)
            // a/b < c/d as a·d < c·b, with no division; ties go to the oldest.
            .min_by(|(_, a), (_, b)| {
                let ((a_bytes, a_time), (b_bytes, b_time)) = (rate(a), rate(b));
                (a_bytes * b_time).cmp(&(b_bytes * a_time)).then(b_time.cmp(&a_time))
            })
            .map(|(id, _)| *id);
        // Taken off the list at once, so that the next call picks another body.
        match slowest.and_then(|id| bodies.remove(&id)) {
            Some(progress) => {
                progress.cut.notify_one();
                true
            }
            None => false,
        }
    }

    /// How many bodies are listed, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.list.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_the_grace_plus_a_second_per_min_rate_bytes_within_the_timeout() {
        let config = Config {
            body_grace: Duration::from_secs(2),
            body_min_rate: 1024,
            body_timeout: Duration::from_secs(10),
            ..Config::default()
        };
        assert_eq!(deadline_after(&config, 0), Duration::from_secs(2));
        assert_eq!(deadline_after(&config, 3 * 1024), Duration::from_secs(5));
        assert_eq!(deadline_after(&config, 512), Duration::from_millis(2500));
        assert_eq!(deadline_after(&config, 25_000_000), Duration::from_secs(10));
        let off = Config { body_min_rate: 0, ..config };
        assert_eq!(deadline_after(&off, 0), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_slowest_body_old_enough_to_have_a_rate_is_cut_first() {
        let slow = SlowBodies::default();
        let trickle = slow.list(10);
        let fast = slow.list(0);
        tokio::time::advance(Duration::from_secs(1)).await;
        fast.progress.bytes.store(1_000_000, Ordering::Relaxed);
        let fresh = slow.list(0);
        assert!(slow.cut_slowest());
        // The trickle is cut, taken off the list, and told so; the fresh body is too young to judge.
        assert_eq!(slow.len(), 2);
        tokio::time::timeout(Duration::from_secs(1), trickle.progress.cut.notified()).await.unwrap();
        assert!(slow.cut_slowest());
        tokio::time::timeout(Duration::from_secs(1), fast.progress.cut.notified()).await.unwrap();
        assert!(!slow.cut_slowest(), "a body listed just now was cut");
        drop(fresh);
        assert_eq!(slow.len(), 0);
        drop((trickle, fast));
    }
}

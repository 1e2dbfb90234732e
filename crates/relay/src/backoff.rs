//! Jittered exponential backoff with a cap, for a target that is down and for GitHub errors.

use std::time::Duration;

/// The first wait.
pub(crate) const BASE: Duration = Duration::from_millis(250);
/// No wait is longer than this.
pub(crate) const CAP: Duration = Duration::from_secs(30);

/// Successive waits: doubling from [`BASE`] up to [`CAP`], each drawn from its upper half
/// so that many sources retrying at once spread out.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The next un-jittered wait.
    next: Duration,
    /// The first wait.
    base: Duration,
    /// The longest wait.
    cap: Duration,
}

impl Backoff {
    /// Starts at `base`, never waits more than `cap`.
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Self { next: base, base, cap }
    }

    /// The next wait.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let ceiling = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        let half = ceiling / 2;
        half + half.mul_f64(rand::random_range(0.0..=1.0))
    }

    /// Back to the first wait, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.base;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BASE, CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_under_the_cap() {
        let mut backoff = Backoff::default();
        let waits: Vec<_> = (0..20).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] >= BASE / 2 && waits[0] <= BASE);
        assert!(waits.iter().all(|w| *w <= CAP), "{waits:?}");
        assert!(waits[19] >= CAP / 2, "{waits:?}");
        backoff.reset();
        assert!(backoff.next_wait() <= BASE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_outage_is_retried_at_least_every_thirty_seconds() {
        let mut backoff = Backoff::default();
        let start = tokio::time::Instant::now();
        let mut attempts = 0;
        while start.elapsed() < Duration::from_secs(600) {
            let before = tokio::time::Instant::now();
            tokio::time::sleep(backoff.next_wait()).await;
            assert!(before.elapsed() <= CAP);
            attempts += 1;
        }
        // Ten minutes at one try per 15–30 s, plus the short first waits.
        assert!(attempts >= 20, "{attempts}");
    }
}

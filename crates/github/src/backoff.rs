//! Jittered exponential backoff with a cap: the one rule for how long to wait before trying again, used by
//! the client's bounded retries ([`crate::RetryPolicy`]) and by the relay's open-ended ones ([`Backoff`]).

use std::time::Duration;

/// Successive waits: doubling from a first wait up to a cap, each drawn from its upper half so that many
/// sources retrying at once spread out. For a loop that retries until it succeeds (a target that is down,
/// GitHub errors); [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Waits handed out since the last reset.
    attempt: u32,
    /// The first wait.
    base: Duration,
    /// The longest wait.
    cap: Duration,
}

impl Backoff {
    /// The first wait of [`Backoff::default`].
    pub const BASE: Duration = Duration::from_millis(250);
    /// The longest wait of [`Backoff::default`]: a long outage is retried at least this often.
    pub const CAP: Duration = Duration::from_secs(30);

    /// Starts at `base`, never waits more than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { attempt: 0, base, cap }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let wait = jittered(self.base, self.cap, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// From [`Backoff::BASE`] up to [`Backoff::CAP`].
    fn default() -> Self {
        Self::new(Self::BASE, Self::CAP)
    }
}

/// The wait before retry number `attempt + 1`: between half and all of `base * 2^attempt`, never more than
/// `cap`.
pub(crate) fn jittered(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    full.mul_f64(0.5 + crate::random::fraction() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_under_the_cap() {
        let (base, cap) = (Backoff::BASE, Backoff::CAP);
        let mut backoff = Backoff::default();
        let waits: Vec<_> = (0..20).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] >= base / 2 && waits[0] <= base);
        assert!(waits.iter().all(|w| *w <= cap), "{waits:?}");
        assert!(waits[19] >= cap / 2, "{waits:?}");
        backoff.reset();
        assert!(backoff.next_wait() <= base);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_outage_is_retried_at_least_every_thirty_seconds() {
        let mut backoff = Backoff::default();
        let start = tokio::time::Instant::now();
        let mut attempts = 0;
        while start.elapsed() < Duration::from_secs(600) {
            let before = tokio::time::Instant::now();
            tokio::time::sleep(backoff.next_wait()).await;
            assert!(before.elapsed() <= Backoff::CAP);
            attempts += 1;
        }
        // Ten minutes at one try per 15–30 s, plus the short first waits.
        assert!(attempts >= 20, "{attempts}");
    }
}

//! Randomness: secret bytes from the operating system, which fail with one sentence rather than a
//! panic, and jitter, which needs no secrecy and so no random source that can be missing.
//!
//! `rand`'s thread generator panics when the operating system gives no random bytes (a static
//! binary in a root without `/dev/random`, a seccomp filter), so nothing outside tests uses it.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::TryRng;

use crate::{Error, Result};

/// `N` random bytes from the operating system, for secrets and tokens.
pub fn secret_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|source| Error::NoRandomness { reason: source.to_string() })?;
    Ok(bytes)
}

/// A number in `[0, 1)` that differs from call to call, for spreading retries: not secret.
///
/// Drawn from the standard library's per-process hash keys, which never panic for want of a
/// random source once the process has started (every `HashMap` already needed them).
pub fn fraction() -> f64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let bits = RandomState::new().hash_one(CALLS.fetch_add(1, Ordering::Relaxed));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_lie_in_the_unit_interval_and_vary() {
        let draws: Vec<f64> = (0..1000).map(|_| fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        let low = draws.iter().filter(|f| **f < 0.5).count();
        assert!((300..700).contains(&low), "{low} of 1000 below a half");
    }

    #[test]
    fn secret_bytes_differ() {
        let (a, b) = (secret_bytes::<16>().unwrap(), secret_bytes::<16>().unwrap());
        assert_ne!(a, b);
    }
}

//! The ledger's clock rules: how far GitHub's `delivered_at` is trusted against the local clock.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::WINDOW;

/// How far ahead of the local clock GitHub's clock may be: the floor never passes the local
/// clock plus this, and a `delivered_at` beyond it is out of range (warned about, never trusted
/// to move the floor). Five minutes covers a laptop whose clock has drifted, not a wrong date.
pub const SKEW: Duration = Duration::from_secs(5 * 60);

/// Where a floor or origin found in the future on open is moved back to, at local time `now`:
/// [`WINDOW`] and [`SKEW`] before it, the lowest floor a delivery stamped in the future can
/// leave (see [`trusted`]). Lower is safe: what it forgot is forwarded again, never skipped.
pub fn floor_limit(now: DateTime<Utc>) -> DateTime<Utc> {
    let back = TimeDelta::from_std(WINDOW + SKEW).unwrap_or(TimeDelta::zero());
    now.checked_sub_signed(back).unwrap_or(now)
}

/// A `delivered_at` as far as it can be trusted at local time `now`, for deciding how far back
/// to look (the floor, a scan's end): never later than the clock, and one further ahead than
/// [`SKEW`], which no drift explains, counts as [`SKEW`] before the clock, in case GitHub's
/// clock lags ours that much. So one delivery stamped in the future cannot hide the ones made
/// after it; a genuine time at or before the clock is taken as it is.
pub fn trusted(t: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    if is_future(t, now) {
        let skew = TimeDelta::from_std(SKEW).unwrap_or(TimeDelta::zero());
        now.checked_sub_signed(skew).unwrap_or(now)
    } else {
        t.min(now)
    }
}

/// Whether `t` is further ahead of the local clock `now` than [`SKEW`] allows: such a time is
/// out of range, forwarded but never trusted, and worth one warning.
pub fn is_future(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let skew = TimeDelta::from_std(SKEW).unwrap_or(TimeDelta::zero());
    now.checked_add_signed(skew).is_some_and(|limit| t > limit)
}

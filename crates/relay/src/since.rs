//! `--since`: how far back a run reaches, checked in one place so that no command does the date
//! arithmetic on its own (and none can overflow it).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The furthest back `--since` may reach. GitHub keeps deliveries for about 3 days; ten years
/// leaves room for any use and stays far inside what dates can represent. Years as humantime
/// counts them (365.25 days), so that `--since 10y` is ten years.
pub const MAX_SINCE: Duration = Duration::from_secs(10 * 31_557_600);

/// `since` if it reaches no further back than [`MAX_SINCE`]; otherwise one sentence why not.
pub fn check(since: Duration) -> Result<Duration, String> {
    if since > MAX_SINCE {
        Err("reaches further back than 10 years; GitHub keeps deliveries for about 3 days, so give at most 3d"
            .to_string())
    } else {
        Ok(since)
    }
}

/// The time `since` before `now`, saturating at the earliest representable time rather than
/// overflowing.
pub fn cutoff(now: DateTime<Utc>, since: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(since).ok().and_then(|delta| now.checked_sub_signed(delta)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_more_than_ten_years_and_never_overflows() {
        let now = Utc::now();
        assert_eq!(cutoff(now, Duration::from_secs(60)), now - TimeDelta::seconds(60));
        let huge = Duration::from_secs(300_000 * 365 * 24 * 3600);
        assert_eq!(cutoff(now, huge), DateTime::<Utc>::MIN_UTC);
        assert_eq!(cutoff(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert!(check(huge).unwrap_err().contains("10 years"));
        assert_eq!(check(Duration::from_secs(3600)), Ok(Duration::from_secs(3600)));
        assert_eq!(check(MAX_SINCE), Ok(MAX_SINCE));
        let ten_years = humantime::parse_duration("10y").unwrap();
        assert_eq!(check(ten_years), Ok(ten_years), "ten years as written");
        assert!(check(humantime::parse_duration("10y 1s").unwrap()).is_err());
    }
}

//! `--since`: how far back a run reaches, parsed and checked in one place so that no command does
//! the date arithmetic on its own (and none can overflow it).

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

/// A `--since` as typed: a duration back from `now` (`2h`, `30m`), or an RFC 3339 time
/// (`2026-12-06T10:00:00Z`) turned into one; either no further back than [`MAX_SINCE`]. Otherwise
/// one sentence why not.
pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        let back = now.signed_duration_since(at.with_timezone(&Utc));
        // A time a moment ahead (another machine's clock) means from now on; a later one is a mistake.
        if back < -TimeDelta::minutes(1) {
            return Err(format!("`{text}` is in the future; give a time before now, or a duration such as 2h"));
        }
        return check(back.to_std().unwrap_or(Duration::ZERO));
    }
    match humantime::parse_duration(text) {
        Ok(since) => check(since),
        Err(_) => {
            Err(format!("`{text}` is neither a duration nor a time; use forms like 30m, 2h or 2026-12-06T10:00:00Z"))
        }
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

    #[test]
    fn a_since_is_a_duration_or_an_rfc_3339_time() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse("2h", now), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("2026-12-06T10:00:00Z", now), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("2026-12-06T11:30:00+01:00", now), Ok(Duration::from_secs(5400)), "any offset");
        assert_eq!(parse("2026-12-06T12:00:30Z", now), Ok(Duration::ZERO), "a clock a little ahead is now");
        assert!(parse("2026-12-07T10:00:00Z", now).unwrap_err().contains("in the future"));
        assert!(parse("1990-01-01T00:00:00Z", now).unwrap_err().contains("10 years"));
        let garbage = parse("yesterday", now).unwrap_err();
        assert!(garbage.contains("`yesterday`") && garbage.contains("2026-12-06T10:00:00Z"), "{garbage}");
    }
}

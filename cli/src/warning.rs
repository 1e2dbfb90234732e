//! The sentence for each of the relay's [`Warning`]s: the relay says what happened, in types; the
//! words a user reads, flags named included, are the CLI's.

use std::time::Duration;

use chrono::SecondsFormat;
use github::Unreadable;
use relay::{LedgerFix, OverlapOutcome, SkipReason, StreamTrouble, Warning};

/// The variant's name in snake_case: the `kind` of a `--json` warning line, for scripts.
pub fn kind(warning: &Warning) -> &'static str {
    match warning {
        Warning::NoLocalSecret => "no_local_secret",
        Warning::SinceBeyondRetention { .. } => "since_beyond_retention",
        Warning::Overlap { .. } => "overlap",
        Warning::EndpointBusy { .. } => "endpoint_busy",
        Warning::BudgetLow { .. } => "budget_low",
        Warning::CleanupFailed { .. } => "cleanup_failed",
        Warning::LedgerFloorInFuture { .. } => "ledger_floor_in_future",
        Warning::SharedLedgerFixed { .. } => "shared_ledger_fixed",
        Warning::StalePoll { .. } => "stale_poll",
        Warning::SinceBeforeSharedLedger { .. } => "since_before_shared_ledger",
        Warning::SharedPaceUnreachable { .. } => "shared_pace_unreachable",
        Warning::FutureDelivery { .. } => "future_delivery",
        Warning::Skipped { .. } => "skipped",
        Warning::FilterFailed { .. } => "filter_failed",
        Warning::SlowHandler { .. } => "slow_handler",
        Warning::HandlerUnauthorized { .. } => "handler_unauthorized",
        Warning::StreamMissed { .. } => "stream_missed",
        Warning::UnreadableListing { .. } => "unreadable_listing",
        Warning::HookInactive { .. } => "hook_inactive",
        Warning::LoopbackHookUrl { .. } => "loopback_hook_url",
        Warning::MissingEvents { .. } => "missing_events",
        Warning::StreamRefused { .. } => "stream_refused",
        Warning::StreamNotUp { .. } => "stream_not_up",
        Warning::NotStreaming { .. } => "not_streaming",
        Warning::PushedTooLarge { .. } => "pushed_too_large",
        Warning::MalformedPush { .. } => "malformed_push",
        Warning::Forged { .. } => "forged",
        Warning::Unrecorded { .. } => "unrecorded",
    }
}

/// The one sentence the feed prints for `warning`.
pub fn sentence(warning: &Warning) -> String {
    match warning {
        Warning::NoLocalSecret => "no local secret (HOOKFWD_SECRET or secret_env) is set, so forwarded requests carry \
                                   no X-Hub-Signature headers and a handler that verifies them will reject them"
            .to_string(),
        Warning::SinceBeyondRetention { retention, .. } => {
            format!("GitHub keeps deliveries for about {}, so older ones cannot be forwarded", days(*retention))
        }
        Warning::Overlap { owner, repo, outcome } => {
            let what = match outcome {
                OverlapOutcome::EachTarget => "each is forwarded to each target",
                OverlapOutcome::Once => "each is forwarded once (--no-dedupe forwards both copies)",
                OverlapOutcome::Twice => "with --no-dedupe each is forwarded twice",
            };
            format!(
                "{owner}/{repo} is a source and so is its organization {owner}: GitHub sends each of its events to \
                 both hooks, and {what}"
            )
        }
        Warning::EndpointBusy { busiest, sources, asked, calls_per_minute, limit_per_minute, kept_to, interval } => {
            let sharing = if busiest == sources { String::new() } else { format!(" (of {sources})") };
            format!(
                "{busiest} sources{sharing} at {} would need {} list calls a minute on one endpoint, over GitHub's {} \
                 per endpoint (hookfwd keeps to {}); polling every {}",
                human(*asked),
                thousands(*calls_per_minute),
                thousands(u64::from(*limit_per_minute)),
                thousands(u64::from(*kept_to)),
                human(*interval),
            )
        }
        Warning::BudgetLow { sources, interval, remaining, limit, reset_at, stretched } => {
            let limit =
                limit.map_or_else(String::new, |limit| format!(" of GitHub's {} an hour", thousands(limit.into())));
            let reset =
                reset_at.map_or_else(String::new, |at| format!(" before it resets at {}", at.format("%H:%M:%S UTC")));
            format!(
                "{sources} sources at {} could spend the {} calls left{limit}{reset} when their polls find deliveries; \
                 polling every {} until then",
                human(*interval),
                thousands(*remaining),
                human(*stretched),
            )
        }
        Warning::CleanupFailed { hook, error } => format!("could not delete {hook}: {error}"),
        Warning::LedgerFloorInFuture { ledger, until } => format!(
            "the ledger {ledger} says deliveries until {} were forwarded, which is in the future; it was moved back to \
             now, so nothing after now counts as forwarded",
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        Warning::SharedLedgerFixed { url, key, fix } => shared_ledger_fixed(url, key, fix),
        Warning::StalePoll { source, retention, .. } => format!(
            "{source} was last polled more than {} ago, longer than GitHub keeps deliveries; some may be gone",
            days(*retention)
        ),
        Warning::SinceBeforeSharedLedger { source, .. } => format!(
            "--since reaches before where the shared ledger of {source} starts; with a ledger in Redis, --since \
             applies only when the first replica starts"
        ),
        Warning::SharedPaceUnreachable { url, share } => format!(
            "could not ask {url} for the GitHub budget replicas share: this replica paces its GitHub calls alone, at \
             1/{share} of --secondary-limit, until it can"
        ),
        Warning::FutureDelivery { source, id, delivered_at, skew } => format!(
            "GitHub says delivery {id} of {source} was made at {}, ahead of this computer's clock by more than {} \
             minutes; it is forwarded, and later deliveries still are (is either clock wrong?)",
            delivered_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            skew.as_secs() / 60
        ),
        Warning::Skipped { source, item, pushed, reason } => {
            let which =
                if *pushed { format!("pushed delivery {}", item.guid) } else { format!("delivery {}", item.id) };
            let reason = match reason {
                SkipReason::Gone => "GitHub no longer keeps it".to_string(),
                SkipReason::Refused(error) => error.to_string(),
                SkipReason::Unsendable(error) => error.to_string(),
            };
            format!("{which} ({}) of {source} was skipped: {reason}", item.kind())
        }
        Warning::FilterFailed { filter, item, error } => format!(
            "the filter `{filter}` failed on {} [{}]: {error}; a delivery it fails on is not forwarded (said once)",
            item.kind(),
            item.guid
        ),
        Warning::SlowHandler { item, latency, limit } => format!(
            "the handler took {:.1} s to answer {} [{}]; GitHub gives up after {} s, so in production this delivery \
             would fail",
            latency.as_secs_f64(),
            item.kind(),
            item.guid,
            limit.as_secs()
        ),
        Warning::HandlerUnauthorized { status, signed: true } => format!(
            "the handler answered {status}: does the handler verify with HOOKFWD_SECRET? hookfwd signs each delivery \
             with it"
        ),
        Warning::HandlerUnauthorized { status, signed: false } => format!(
            "the handler answered {status} to an unsigned delivery: does the handler verify with HOOKFWD_SECRET? It \
             is not set, so hookfwd signs nothing"
        ),
        Warning::StreamMissed { source } => format!(
            "the stream from the blackhole is up but did not bring a delivery GitHub lists for {source}; check that \
             the hook URL's path is the one hookfwd streams"
        ),
        Warning::UnreadableListing { item } => unreadable(item),
        Warning::HookInactive { hook } => format!(
            "{hook} is inactive, so GitHub records no deliveries for it; activate it in the repository's webhook \
             settings"
        ),
        Warning::LoopbackHookUrl { hook, url } => format!(
            "{hook} was made with the hook URL {url}, on loopback: only a GitHub on this machine (a stand-in) can \
             deliver to it; for another, give the public URL of a blackhole (see docs/deploy.md), or \
             --allow-private-hook-url to say it is meant"
        ),
        Warning::MissingEvents { hook, events } => format!(
            "{hook} is not subscribed to {}, so GitHub never sends them; add them to the hook's events in its settings",
            events.join(", ")
        ),
        Warning::StreamRefused { origin } => {
            format!("the blackhole at {origin} refused the stream token; polling meanwhile")
        }
        Warning::StreamNotUp { origin, address, waited, trouble, interval } => {
            let why = match trouble {
                StreamTrouble::NothingListens => {
                    format!("nothing listens at {address} (connection refused); is the blackhole running there?")
                }
                StreamTrouble::NotABlackhole { status } => format!(
                    "{origin} answered {status} where a blackhole streams or answers 200, so the hook URL serves \
                     something else; check the hook URL"
                ),
                StreamTrouble::NoAnswer => format!("{origin} has not answered"),
                StreamTrouble::Other(reason) => format!("{reason} at {origin}"),
            };
            format!(
                "the stream is not up after {}s, polling every {} meanwhile: {why}",
                waited.as_secs(),
                humantime::format_duration(*interval)
            )
        }
        Warning::NotStreaming { origin, interval } => format!(
            "the blackhole at {origin} does not stream (no stream token is configured there); start it with \
             --stream-token (or BLACKHOLE_STREAM_TOKEN) for push mode. Polling every {} meanwhile",
            humantime::format_duration(*interval)
        ),
        Warning::PushedTooLarge { limit_bytes } => {
            format!("a pushed delivery was over {} MiB; fetching it from the API", limit_bytes >> 20)
        }
        Warning::MalformedPush { source } => {
            format!("the blackhole sent a malformed delivery event for {source}; fetching from the API")
        }
        Warning::Forged { source } => format!(
            "a delivery pushed for {source} has a signature that does not verify with the hook's secret, so it was \
             not forwarded (a forged POST to the blackhole, or the wrong --hook-secret)"
        ),
        Warning::Unrecorded { source, guid } => format!(
            "delivery {guid} of {source} was pushed but GitHub has no record of it; it was forwarded on the \
             blackhole's word alone (a copy of a signed delivery sent to the hook URL by someone else?)"
        ),
    }
}

/// The sentence for something the ledger in Redis held at `key` that could not be trusted.
fn shared_ledger_fixed(url: &str, key: &str, fix: &LedgerFix) -> String {
    let time = |at: &chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    match fix {
        LedgerFix::WrongType { found } => {
            let found = if found == "text" { "text that is not a time".to_string() } else { format!("a {found}") };
            format!(
                "the shared ledger at {url} held {found} at {key}, which is not what hookfwd keeps there; the key was \
                 reset, so some deliveries may be forwarded again"
            )
        }
        LedgerFix::FloorMissing { set_to } => format!(
            "the shared ledger at {url} had no floor ({key}); it was set again to {}, never before where the ledger \
             started",
            time(set_to)
        ),
        LedgerFix::FloorBelowOrigin { was, set_to } => format!(
            "the shared ledger at {url} had its floor ({key}) at {}, before where the ledger started; it was moved up \
             to {}, so what came before is not forwarded",
            time(was),
            time(set_to)
        ),
        LedgerFix::OriginMissing { set_to } => {
            format!("the shared ledger at {url} had no origin ({key}); it was set to the floor, {}", time(set_to))
        }
        LedgerFix::ClaimNeverExpires { id } => format!(
            "delivery {id} was claimed in the shared ledger at {url} with no expiry ({key}), which no live replica \
             does; the claim now expires as a dead replica's would"
        ),
    }
}

/// The sentence for a listed item GitHub gave in a form that cannot be read.
pub fn unreadable(item: &Unreadable) -> String {
    let which = match item.id {
        Some(id) => format!("delivery {id}"),
        None => format!("item {} of a page", item.position),
    };
    format!("skipped {which} in {}: GitHub listed it in an unreadable form ({})", item.listing, item.reason)
}

/// `3 days`.
fn days(duration: Duration) -> String {
    match duration.as_secs() / (24 * 60 * 60) {
        1 => "1 day".to_string(),
        days => format!("{days} days"),
    }
}

/// `8s`, `1m 30s`, `250ms`.
fn human(duration: Duration) -> String {
    let rounded = if duration >= Duration::from_secs(1) { Duration::from_secs(duration.as_secs()) } else { duration };
    humantime::format_duration(rounded).to_string()
}

/// `6,600`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta};

    use super::*;

    #[test]
    fn the_overlap_warning_says_what_becomes_of_each_event() {
        let said = |outcome| sentence(&Warning::Overlap { owner: "acme".into(), repo: "widgets".into(), outcome });
        let start = "acme/widgets is a source and so is its organization acme: GitHub sends each of its events to \
                     both hooks, and ";
        assert_eq!(
            said(OverlapOutcome::Once),
            format!("{start}each is forwarded once (--no-dedupe forwards both copies)")
        );
        assert_eq!(said(OverlapOutcome::Twice), format!("{start}with --no-dedupe each is forwarded twice"));
        assert_eq!(said(OverlapOutcome::EachTarget), format!("{start}each is forwarded to each target"));
    }

    #[test]
    fn the_budget_warnings_give_their_numbers() {
        let busy = Warning::EndpointBusy {
            busiest: 100,
            sources: 110,
            asked: Duration::from_secs(1),
            calls_per_minute: 6000,
            limit_per_minute: 900,
            kept_to: 648,
            interval: Duration::from_secs(10),
        };
        assert_eq!(
            sentence(&busy),
            "100 sources (of 110) at 1s would need 6,000 list calls a minute on one endpoint, over GitHub's 900 per \
             endpoint (hookfwd keeps to 648); polling every 10s"
        );
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let low = Warning::BudgetLow {
            sources: 3,
            interval: Duration::from_secs(1),
            remaining: 350,
            limit: Some(5000),
            reset_at: Some(now + TimeDelta::seconds(3600)),
            stretched: Duration::from_secs(108),
        };
        assert_eq!(
            sentence(&low),
            "3 sources at 1s could spend the 350 calls left of GitHub's 5,000 an hour before it resets at 23:13:20 \
             UTC when their polls find deliveries; polling every 1m 48s until then"
        );
        assert_eq!(kind(&low), "budget_low");
    }

    #[test]
    fn an_unreadable_item_is_named_by_its_id_or_its_place() {
        let item =
            Unreadable { id: Some(2), position: 2, listing: "the deliveries of o/r hook 1".into(), reason: "x".into() };
        assert_eq!(
            unreadable(&item),
            "skipped delivery 2 in the deliveries of o/r hook 1: GitHub listed it in an unreadable form (x)"
        );
        let item = Unreadable { id: None, position: 3, ..item };
        assert!(unreadable(&item).starts_with("skipped item 3 of a page in "), "{}", unreadable(&item));
    }

    #[test]
    fn a_wrong_type_in_the_shared_ledger_names_the_key() {
        let key = "hookfwd:api.github.com:repos-o-r-hooks-1:done".to_string();
        let fix = LedgerFix::WrongType { found: "string".into() };
        let warning = Warning::SharedLedgerFixed { url: "redis://h:6379/0".into(), key: key.clone(), fix };
        assert_eq!(
            sentence(&warning),
            format!(
                "the shared ledger at redis://h:6379/0 held a string at {key}, which is not what hookfwd keeps there; \
                 the key was reset, so some deliveries may be forwarded again"
            )
        );
        assert_eq!(kind(&warning), "shared_ledger_fixed");
    }

    #[test]
    fn pacing_alone_names_the_share_of_the_limit() {
        let warning = Warning::SharedPaceUnreachable { url: "redis://:***@h:6379/0".into(), share: 3 };
        assert_eq!(
            sentence(&warning),
            "could not ask redis://:***@h:6379/0 for the GitHub budget replicas share: this replica paces its GitHub \
             calls alone, at 1/3 of --secondary-limit, until it can"
        );
        assert_eq!(kind(&warning), "shared_pace_unreachable");
    }

    #[test]
    fn a_stream_that_is_not_up_says_why() {
        let said = |trouble| {
            sentence(&Warning::StreamNotUp {
                origin: "http://127.0.0.1:9".into(),
                address: "127.0.0.1:9".into(),
                waited: Duration::from_secs(3),
                trouble,
                interval: Duration::from_secs(1),
            })
        };
        assert_eq!(
            said(StreamTrouble::NothingListens),
            "the stream is not up after 3s, polling every 1s meanwhile: nothing listens at 127.0.0.1:9 (connection \
             refused); is the blackhole running there?"
        );
        assert!(said(StreamTrouble::NotABlackhole { status: 404 }).contains(": http://127.0.0.1:9 answered 404 where"));
        assert!(said(StreamTrouble::NoAnswer).ends_with("meanwhile: http://127.0.0.1:9 has not answered"));
    }

    #[test]
    fn a_handler_that_refuses_the_signature_is_asked_about_hookfwd_secret() {
        let signed = sentence(&Warning::HandlerUnauthorized { status: 401, signed: true });
        assert!(signed.starts_with("the handler answered 401: does the handler verify with HOOKFWD_SECRET?"));
        let unsigned = sentence(&Warning::HandlerUnauthorized { status: 403, signed: false });
        assert!(unsigned.starts_with("the handler answered 403 to an unsigned delivery"), "{unsigned}");
        assert!(unsigned.contains("HOOKFWD_SECRET? It is not set"), "{unsigned}");
    }

    #[test]
    fn retention_reads_in_days() {
        let retention = Duration::from_secs(3 * 24 * 60 * 60);
        let warning = Warning::SinceBeyondRetention { since: retention * 2, retention };
        assert_eq!(sentence(&warning), "GitHub keeps deliveries for about 3 days, so older ones cannot be forwarded");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(6600), "6,600");
        assert_eq!(thousands(900), "900");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human(Duration::from_millis(8400)), "8s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}

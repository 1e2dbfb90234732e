//! `hookfwd replay`: past deliveries that GitHub still holds, re-sent to a handler, oldest first.
//!
//! It reads GitHub's record only and never touches the ledger: a replay is a test tool, not forwarding.
//! The one exception is `--parked`: it sends the deliveries the forwarder parked (the handler kept
//! rejecting them) again, and un-parks in the ledger each one the handler takes.
//!
//! Sending a day of deliveries again is not what anyone means by default: without a selector, `replay`
//! asks on a terminal and refuses otherwise.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use github::{DeliveryItem, HookRef};
use relay::ledger::{self, FileLedger};
use relay::{Event, Forwarder, Outgoing};

use super::consent;
use super::guid;
use crate::args::{OutputArgs, ReplayArgs};
use crate::exit::{FAILURE, REJECTED, USAGE, fail};
use crate::feed::{Context, Feed};
use crate::json::Line;
use crate::term::{Status, print};

/// How long the handler has to answer one replayed delivery.
const TARGET_TIMEOUT: Duration = Duration::from_secs(30);

/// How far back `replay` looks without `--since`.
const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Replays past deliveries.
pub async fn replay(args: ReplayArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    if args.parked {
        return replay_parked(args, output, status).await;
    }
    let sources = super::sources(&args.sources)?;
    // Saving sends nothing; anything else needs a selector, or a yes on a terminal once the count is known.
    let selected = args.guid.is_some()
        || args.event.is_some()
        || args.action.is_some()
        || args.filter.is_some()
        || args.since.is_some()
        || args.limit.is_some()
        || args.save.is_some();
    if !selected && !consent::interactive() {
        return Err(fail(
            USAGE,
            format!(
                "replay with no selector would send every delivery of the last {} to the handler again; choose \
                 which with --since (such as 1h), --event, --guid or --limit, or --parked for the parked ones",
                window(WINDOW)
            ),
        ));
    }
    let since = args.since.unwrap_or(WINDOW);
    // Checked before anything is asked of GitHub: an unwritable directory is a mistake to hear at once.
    let save = match args.save.as_deref() {
        Some(dir) => Some(crate::fixture::Recorder::open(dir).await?),
        None => None,
    };
    let (client, credentials) = super::github_client(&args.github).await?;
    let secret = args.secret.clone();
    let cutoff = relay::since::cutoff(Utc::now(), since);
    let context = Context {
        token: super::describe_credentials(&credentials),
        secret: super::describe_secret(secret.as_ref(), None),
        interval: Duration::ZERO,
        ..Context::default()
    };
    let mut feed = Feed::new(output, status.clone(), context);

    status.set("listing deliveries");
    let _clear = ClearOnDrop(status.clone());
    let mut chosen: Vec<(HookRef, DeliveryItem)> = Vec::new();
    let mut searched = Vec::new();
    for source in &sources {
        let hook = super::hooks::find(&client, source, args.sources.hook_url.as_deref()).await?;
        let listed = client
            .deliveries_since(&hook, cutoff)
            .await
            .with_context(|| format!("could not list the deliveries of {hook}"))?;
        searched.push(hook.to_string());
        for item in &listed.skipped {
            feed.show(&Event::Warning(relay::Warning::UnreadableListing { item: item.clone() }))?;
        }
        for item in listed.items {
            let wanted = args.event.as_ref().is_none_or(|event| &item.event == event)
                && args.action.as_ref().is_none_or(|action| item.action.as_ref() == Some(action))
                && args.guid.as_deref().is_none_or(|wanted| guid::matches(&item.guid, wanted));
            if wanted {
                chosen.push((hook.clone(), item));
            }
        }
    }
    // Newest first, so that --limit keeps the newest; then sent oldest first, as they happened.
    chosen.sort_by_key(|(_, item)| std::cmp::Reverse((item.delivered_at, item.id)));
    if let Some(wanted) = &args.guid {
        guid::check_one(wanted, chosen.iter().map(|(_, item)| item))?;
    }
    if args.guid.is_some() && !args.all_attempts {
        // A guid's attempts are one event: replaying the latest is replaying it once.
        chosen.truncate(1);
    }
    if let Some(limit) = args.limit {
        chosen.truncate(limit);
    }
    chosen.reverse();

    let total = chosen.len();
    if total == 0 {
        if let Some(guid) = &args.guid {
            return Err(fail(
                FAILURE,
                format!(
                    "delivery {guid} not found among the deliveries of the last {} of {}; check the guid \
                     (X-GitHub-Delivery), the hook and --since",
                    window(since),
                    searched.join(", ")
                ),
            ));
        }
        if output.json {
            print(&Line::Replayed { parked: false, total: 0, sent: 0, refused: 0, skipped: 0, filtered: 0 }.to_json())?;
        } else if !output.quiet {
            print(&format!("no deliveries of the last {} match", window(since)))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !selected {
        let plural = if total == 1 { "delivery" } else { "deliveries" };
        let to = args.to.as_ref().map(|to| format!(" to {}", to.0)).unwrap_or_default();
        let question = format!("send {total} {plural} of the last {}{to} again?", window(since));
        // The question takes the status line's place on the terminal.
        status.clear();
        if !consent::ask(&question)? {
            return Err(fail(FAILURE, "sent nothing; choose which with --since, --event, --guid or --limit"));
        }
    }
    let forwarder = args.to.clone().map(|to| Forwarder::new(to, TARGET_TIMEOUT));
    let mut refused = 0usize;
    let mut skipped = 0usize;
    // Left out by --filter, and whether it failed on one (said once).
    let (mut filtered, mut filter_failed) = (0usize, false);
    for (done, (hook, item)) in chosen.into_iter().enumerate() {
        status.progress(format!("replaying {}", item.kind()), done as u64, total as u64);
        let delivery = match client.get_delivery(&hook, item.id).await {
            Ok(delivery) => delivery,
            // Asking again cannot help (too large, unreadable): say so, and replay the rest.
            Err(error) if error.is_permanent() => {
                skipped += 1;
                feed.warn("skipped", &format!("skipped delivery {} [{}]: {error}", item.id, item.guid))?;
                continue;
            }
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("could not get delivery {} [{}] from GitHub", item.id, item.guid)));
            }
        };
        let request = Arc::new(Outgoing::from_delivery(&delivery, secret.as_ref()));
        if let Some(filter) = &args.filter {
            // As the relay does: a filter that fails is a no, said once.
            let passes = match request.passes(filter, &item.event, item.action.as_deref()) {
                Ok(passes) => passes,
                Err(error) => {
                    if !std::mem::replace(&mut filter_failed, true) {
                        let warning =
                            relay::Warning::FilterFailed { filter: filter.expr().into(), item: item.clone(), error };
                        feed.show(&Event::Warning(warning))?;
                    }
                    false
                }
            };
            if !passes {
                filtered += 1;
                let target = args.to.as_ref().map(|to| to.0.clone());
                feed.show(&Event::Filtered { hook, item, via: relay::Via::Api, target })?;
                continue;
            }
        }
        let (via, shown) = (relay::Via::Api, request.clone());
        feed.show(&Event::Delivering { hook: hook.clone(), item: item.clone(), via, request: shown })?;
        let Some(forwarder) = &forwarder else {
            if let Some(save) = &save {
                crate::fixture::save_one(save, &hook, &item, &request, output).await?;
            }
            continue;
        };
        let response = forwarder.send(&request).await.map_err(|error| {
            let sentence = if error.is_transient() {
                format!(
                    "could not reach the handler at {} ({error}); replayed {done} of {total}; is it running?",
                    forwarder.target()
                )
            } else {
                format!("delivery {} [{}] cannot be sent: {error}; replayed {done} of {total}", item.id, item.guid)
            };
            fail(FAILURE, sentence)
        })?;
        if !(200..300).contains(&response.status) {
            refused += 1;
        }
        let answered = Event::Answered {
            hook,
            item,
            target: forwarder.target().0.clone(),
            status: response.status,
            latency: response.latency,
            via: relay::Via::Api,
            answer: response.answer,
            request,
        };
        feed.show(&answered)?;
    }
    let sent = total - skipped - filtered;
    if output.json {
        print(&Line::Replayed { parked: false, total, sent, refused, skipped, filtered }.to_json())?;
    }
    if refused > 0 {
        return Err(fail(REJECTED, format!("the handler refused {refused} of {total} replayed deliveries")));
    }
    if skipped > 0 {
        return Err(fail(
            FAILURE,
            format!("replayed {sent} of {total} deliveries; {skipped} could not be read from GitHub and were skipped"),
        ));
    }
    if !output.quiet && !output.json {
        let verb = if save.is_some() { "saved" } else { "replayed" };
        let left_out = if filtered > 0 { format!("; {filtered} skipped by --filter") } else { String::new() };
        print(&format!("{verb} {sent} {}{left_out}", if sent == 1 { "delivery" } else { "deliveries" }))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `replay --parked`: each source's parked deliveries, fetched by id and sent again, oldest first;
/// each one the handler answers other than 5xx (what the forwarder records) is un-parked.
async fn replay_parked(args: ReplayArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let sources = super::sources(&args.sources)?;
    let Some(to) = args.to.clone() else { return Err(fail(USAGE, "--parked needs --to, the handler to send them to")) };
    let (client, credentials) = super::github_client(&args.github).await?;
    let state_dir = super::state_dir(args.state_dir.clone())?;
    let dir = ledger::dir(&state_dir, client.api_url());
    // The ledgers are written to: refused, as by `dev`, where another user could plant links.
    ledger::check_dir(&state_dir)?;
    ledger::check_dir(&dir)?;
    let context = Context {
        token: super::describe_credentials(&credentials),
        secret: super::describe_secret(args.secret.as_ref(), None),
        ..Context::default()
    };
    let mut feed = Feed::new(output, status.clone(), context);
    let _clear = ClearOnDrop(status.clone());
    let forwarder = Forwarder::new(to, TARGET_TIMEOUT);
    let (mut sent, mut refused, mut total) = (0usize, 0usize, 0usize);
    let mut searched = Vec::new();
    for source in &sources {
        let hook = super::hooks::find(&client, source, args.sources.hook_url.as_deref()).await?;
        searched.push(hook.to_string());
        // The ledger is written below: a running `dev` or `forward` on it must not be written under.
        let _lock = match ledger::Lock::take(&dir, &hook) {
            Ok(lock) => lock,
            Err(relay::Error::Busy { holder, .. }) => {
                return Err(fail(
                    FAILURE,
                    format!(
                        "{hook} is being forwarded by {holder}, which holds its ledger; press r in that terminal to \
                         send what it parked again, or stop it and run this again"
                    ),
                ));
            }
            Err(error) => return Err(error.into()),
        };
        let Some(mut ledger) = FileLedger::open(&dir, &hook)? else { continue };
        let parked = ledger.parked();
        let Some(oldest) = parked.iter().map(|parked| parked.delivered_at).min() else { continue };
        total += parked.len();
        status.set(format!("listing the deliveries of {hook}"));
        // A minute early: a pushed delivery's time is the blackhole's, a little after GitHub's.
        let cutoff = oldest - chrono::TimeDelta::minutes(1);
        let listed = client
            .deliveries_since(&hook, cutoff)
            .await
            .with_context(|| format!("could not list the deliveries of {hook}"))?;
        for parked in parked {
            let guid = parked.guid.clone().unwrap_or_default();
            // By id; a pushed one (id 0) by its guid's first attempt.
            let found = listed
                .items
                .iter()
                .filter(|item| if parked.id != 0 { item.id == parked.id } else { item.guid == guid })
                .min_by_key(|item| (item.delivered_at, item.id));
            let Some(item) = found.cloned() else {
                // GitHub keeps deliveries for a few days: this one can never be sent again.
                feed.warn(
                    "parked_expired",
                    &format!(
                        "parked delivery {} [{guid}] of {hook} is no longer kept by GitHub, so it cannot be sent \
                         again; it is no longer listed as parked",
                        parked.id
                    ),
                )?;
                ledger.unpark(parked.id, parked.guid.as_deref())?;
                ledger.durable().wait().await?;
                continue;
            };
            let delivery = client
                .get_delivery(&hook, item.id)
                .await
                .with_context(|| format!("could not get delivery {} [{}] from GitHub", item.id, item.guid))?;
            let request = Arc::new(Outgoing::from_delivery(&delivery, args.secret.as_ref()));
            let (via, shown) = (relay::Via::Api, request.clone());
            feed.show(&Event::Delivering { hook: hook.clone(), item: item.clone(), via, request: shown })?;
            let response = forwarder.send(&request).await.map_err(|error| {
                fail(
                    FAILURE,
                    format!(
                        "could not reach the handler at {} ({error}); sent {sent} of {total} parked deliveries, and \
                         the rest stay parked",
                        forwarder.target()
                    ),
                )
            })?;
            if response.status < 500 {
                ledger.unpark(parked.id, parked.guid.as_deref())?;
                ledger.durable().wait().await?;
                sent += 1;
            }
            if !(200..300).contains(&response.status) {
                refused += 1;
            }
            feed.show(&Event::Answered {
                hook: hook.clone(),
                item,
                target: forwarder.target().0.clone(),
                status: response.status,
                latency: response.latency,
                via: relay::Via::Api,
                answer: response.answer,
                request,
            })?;
        }
    }
    if output.json {
        print(&Line::Replayed { parked: true, total, sent, refused, skipped: 0, filtered: 0 }.to_json())?;
    }
    if total == 0 {
        if !output.quiet && !output.json {
            print(&format!("nothing is parked for {}", searched.join(", ")))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if refused > 0 {
        return Err(fail(
            REJECTED,
            format!("the handler refused {refused} of {total} parked deliveries; those it answered 5xx stay parked"),
        ));
    }
    if !output.quiet && !output.json {
        print(&format!("sent {sent} parked {} again", if sent == 1 { "delivery" } else { "deliveries" }))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Clears the progress bar however replay ends, so that no stale bar is left on the terminal.
struct ClearOnDrop(Status);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// A window as a user would write it: `24h` rather than humantime's `1day`.
fn window(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => format!("{}ms", duration.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_prints_in_the_units_a_user_types() {
        assert_eq!(window(Duration::from_secs(24 * 3600)), "24h");
        assert_eq!(window(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(window(Duration::from_secs(45)), "45s");
    }
}

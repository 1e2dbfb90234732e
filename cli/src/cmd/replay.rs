//! `hookfwd replay`: past deliveries that GitHub still holds, re-sent to a handler, oldest first.
//!
//! It reads GitHub's record only and never touches the ledger: a replay is a test tool, not forwarding.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use github::{DeliveryItem, HookRef, Listing, Secret};
use relay::{Event, Forwarder, Outgoing};

use crate::args::{OutputArgs, ReplayArgs};
use crate::exit::{FAILURE, REJECTED, fail};
use crate::feed::{Context, Feed, Status};

/// How long the handler has to answer one replayed delivery.
const TARGET_TIMEOUT: Duration = Duration::from_secs(30);

/// Replays past deliveries.
pub async fn replay(args: ReplayArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let sources = super::sources(&args.sources)?;
    let (client, credentials) = super::github_client(&args.github).await?;
    let secret = args.secret.clone().map(Secret::new);
    let cutoff = Utc::now() - chrono::TimeDelta::from_std(args.since).unwrap_or(chrono::TimeDelta::MAX);

    status.set("listing deliveries");
    let mut chosen: Vec<(HookRef, DeliveryItem)> = Vec::new();
    for source in &sources {
        let hook = super::hooks::find(&client, source, args.sources.hook_url.as_deref()).await?;
        for item in recent(&client, &hook, cutoff).await? {
            let wanted = args.event.as_ref().is_none_or(|event| &item.event == event)
                && args.action.as_ref().is_none_or(|action| item.action.as_ref() == Some(action))
                && args.guid.as_ref().is_none_or(|guid| &item.guid == guid);
            if wanted {
                chosen.push((hook.clone(), item));
            }
        }
    }
    // Newest first, so that --limit keeps the newest; then sent oldest first, as they happened.
    chosen.sort_by_key(|(_, item)| std::cmp::Reverse((item.delivered_at, item.id)));
    if let Some(limit) = args.limit {
        chosen.truncate(limit);
    }
    chosen.reverse();

    let total = chosen.len();
    if total == 0 {
        if !output.quiet && !output.json {
            eprintln!("no deliveries of the last {} match", humantime::format_duration(args.since));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let context = Context {
        token: super::describe_credentials(&credentials),
        secret: super::describe_secret(secret.as_ref()),
        interval: Duration::ZERO,
    };
    let mut feed = Feed::new(output, status.clone(), context);
    let forwarder = Forwarder::new(args.to.clone(), TARGET_TIMEOUT);
    let mut refused = 0usize;
    for (done, (hook, item)) in chosen.into_iter().enumerate() {
        status.progress(format!("replaying {}", item.kind()), done as u64, total as u64);
        let delivery = client
            .get_delivery(&hook, item.id)
            .await
            .with_context(|| format!("could not get delivery {} [{}] from GitHub", item.id, item.guid))?;
        let request = Outgoing::from_delivery(&delivery, secret.as_ref());
        let response = forwarder.send(&request).await.map_err(|error| {
            let sentence = if error.is_transient() {
                format!(
                    "could not reach the handler at {} ({error}); replayed {done} of {total}; is it running?",
                    args.to
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
            target: args.to.0.clone(),
            status: response.status,
            latency: response.latency,
        };
        feed.show(&answered)?;
    }
    status.progress("replayed", total as u64, total as u64);
    if refused > 0 {
        return Err(fail(REJECTED, format!("the handler refused {refused} of {total} replayed deliveries")));
    }
    if !output.quiet && !output.json {
        eprintln!("replayed {total} {}", if total == 1 { "delivery" } else { "deliveries" });
    }
    Ok(ExitCode::SUCCESS)
}

/// The deliveries of `hook` at or after `cutoff`, newest first, paging back until older ones begin.
async fn recent(client: &github::Client, hook: &HookRef, cutoff: DateTime<Utc>) -> anyhow::Result<Vec<DeliveryItem>> {
    let context = || format!("could not list the deliveries of {hook}");
    // The list is conditional; a cached ETag could answer 304 with nothing to read.
    client.forget_etags(hook);
    let mut page = match client.list_deliveries(hook, 100).await.with_context(context)? {
        Listing::Page(page) => page,
        Listing::NotModified => return Ok(Vec::new()),
    };
    let mut items = Vec::new();
    loop {
        let older = page.items.iter().any(|item| item.delivered_at < cutoff);
        items.extend(page.items.into_iter().filter(|item| item.delivered_at >= cutoff));
        match page.next {
            Some(next) if !older => page = client.next_deliveries(&next).await.with_context(context)?,
            _ => return Ok(items),
        }
    }
}

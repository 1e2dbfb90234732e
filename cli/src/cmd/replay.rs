//! `hookfwd replay`: past deliveries that GitHub still holds, re-sent to a handler, oldest first.
//!
//! It reads GitHub's record only and never touches the ledger: a replay is a test tool, not forwarding.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use github::{DeliveryItem, HookRef, Secret};
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
    let cutoff = relay::since::cutoff(Utc::now(), args.since);
    let context = Context {
        token: super::describe_credentials(&credentials),
        secret: super::describe_secret(secret.as_ref()),
        interval: Duration::ZERO,
        ..Context::default()
    };
    let mut feed = Feed::new(output, status.clone(), context);

    status.set("listing deliveries");
    let mut chosen: Vec<(HookRef, DeliveryItem)> = Vec::new();
    for source in &sources {
        let hook = super::hooks::find(&client, source, args.sources.hook_url.as_deref()).await?;
        let listed = client
            .deliveries_since(&hook, cutoff)
            .await
            .with_context(|| format!("could not list the deliveries of {hook}"))?;
        for message in listed.skipped {
            feed.show(&Event::Warning { message })?;
        }
        for item in listed.items {
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
    let forwarder = Forwarder::new(args.to.clone(), TARGET_TIMEOUT);
    let mut refused = 0usize;
    let mut skipped = 0usize;
    for (done, (hook, item)) in chosen.into_iter().enumerate() {
        status.progress(format!("replaying {}", item.kind()), done as u64, total as u64);
        let delivery = match client.get_delivery(&hook, item.id).await {
            Ok(delivery) => delivery,
            // Asking again cannot help (too large, unreadable): say so, and replay the rest.
            Err(error) if error.is_permanent() => {
                skipped += 1;
                feed.show(&Event::Warning {
                    message: format!("skipped delivery {} [{}]: {error}", item.id, item.guid),
                })?;
                continue;
            }
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("could not get delivery {} [{}] from GitHub", item.id, item.guid)));
            }
        };
        let request = Outgoing::from_delivery(&delivery, secret.as_ref());
        let response = forwarder.send(&request).await.map_err(|reason| {
            fail(
                FAILURE,
                format!(
                    "could not reach the handler at {} ({reason}); replayed {done} of {total}; is it running?",
                    args.to
                ),
            )
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
            via: relay::Via::Api,
        };
        feed.show(&answered)?;
    }
    status.progress("replayed", total as u64, total as u64);
    if refused > 0 {
        return Err(fail(REJECTED, format!("the handler refused {refused} of {total} replayed deliveries")));
    }
    if skipped > 0 {
        let sent = total - skipped;
        return Err(fail(
            FAILURE,
            format!("replayed {sent} of {total} deliveries; {skipped} could not be read from GitHub and were skipped"),
        ));
    }
    if !output.quiet && !output.json {
        eprintln!("replayed {total} {}", if total == 1 { "delivery" } else { "deliveries" });
    }
    Ok(ExitCode::SUCCESS)
}

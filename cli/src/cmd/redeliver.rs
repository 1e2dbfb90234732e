//! `hookfwd redeliver --failed`: asks GitHub to redeliver every recent delivery whose latest
//! attempt failed, the cron script GitHub's documentation hands out, built in.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use console::style;
use github::{DeliveryItem, HookRef};

use crate::args::{OutputArgs, RedeliverArgs};
use crate::exit::{FAILURE, fail};
use crate::json::{DeliveryFields, HookFields, Line};
use crate::term::{print, visible};

/// Redelivers failed deliveries once, or every `--interval` with `--watch`.
pub async fn redeliver(args: RedeliverArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let sources = super::sources(&args.sources)?;
    let (client, _) = super::github_client(&args.github).await?;
    let mut hooks = Vec::new();
    for source in &sources {
        hooks.push(super::hooks::find(&client, source, args.sources.hook_url.as_deref()).await?);
    }
    let cancel = super::cancel_on_signals();
    // Each (hook, guid) is asked for once per run: a redelivery that fails again is left for
    // the next run rather than asked for again and again while the hook URL is down.
    let mut asked: HashSet<(HookRef, String)> = HashSet::new();
    let mut refused = 0usize;
    loop {
        for hook in &hooks {
            let cutoff = relay::since::cutoff(Utc::now(), args.since);
            let listed = match client.deliveries_since(hook, cutoff).await {
                Ok(listed) => listed,
                // A watch outlives GitHub's bad minutes: say so, and look again next time.
                Err(
                    error @ (github::Error::Unreachable { .. }
                    | github::Error::Server { .. }
                    | github::Error::RateLimited { .. }),
                ) if args.watch => {
                    let message = format!("could not list the deliveries of {hook}, trying again later: {error}");
                    if output.json {
                        let hook = Some(HookFields::of(hook));
                        print(&Line::Error { message: &message, kind: "list", hook, hint: None }.to_json())?;
                    } else {
                        eprintln!("hookfwd: {message}");
                    }
                    continue;
                }
                Err(error) => return Err(error).with_context(|| format!("could not list the deliveries of {hook}")),
            };
            for item in &listed.skipped {
                tracing::warn!("{}", crate::warning::unreadable(item));
            }
            for item in latest_failed(listed.items) {
                if !asked.insert((hook.clone(), item.guid.clone())) {
                    continue;
                }
                let outcome = if args.dry_run { Ok(()) } else { client.redeliver(hook, item.id).await };
                if let Err(error) = &outcome {
                    refused += 1;
                    let message = format!("could not ask GitHub to redeliver {}: {error}", item.guid);
                    if output.json {
                        let hook = Some(HookFields::of(hook));
                        print(&Line::Error { message: &message, kind: "redeliver", hook, hint: None }.to_json())?;
                    } else {
                        eprintln!("hookfwd: {}", visible(&message));
                    }
                }
                show(output, hook, &item, args.dry_run, outcome.is_ok())?;
            }
        }
        if !args.watch {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            () = cancel.cancelled() => break,
        }
    }
    if refused > 0 {
        return Err(fail(FAILURE, format!("GitHub refused {refused} of the redeliveries asked for")));
    }
    Ok(ExitCode::SUCCESS)
}

/// Per guid, its latest attempt if that attempt failed (no 2xx): one per guid, oldest first.
fn latest_failed(items: Vec<DeliveryItem>) -> Vec<DeliveryItem> {
    let mut latest: HashMap<String, DeliveryItem> = HashMap::new();
    for item in items {
        match latest.get(&item.guid) {
            Some(seen) if (seen.delivered_at, seen.id) >= (item.delivered_at, item.id) => {}
            _ => {
                latest.insert(item.guid.clone(), item);
            }
        }
    }
    let mut failed: Vec<DeliveryItem> =
        latest.into_values().filter(|item| !(200..300).contains(&item.status_code)).collect();
    failed.sort_by_key(|item| (item.delivered_at, item.id));
    failed
}

/// One line per delivery asked for (or that would be, with `--dry-run`).
fn show(output: &OutputArgs, hook: &HookRef, item: &DeliveryItem, dry_run: bool, asked: bool) -> anyhow::Result<()> {
    if output.json {
        let line = Line::Redeliver {
            hook: HookFields::of(hook),
            delivery: DeliveryFields::of(item),
            status: Some(item.status_code),
            status_text: Some(&item.status),
            delivered_at: Some(item.delivered_at),
            dry_run: Some(dry_run),
            asked: Some(asked),
        };
        print(&line.to_json())?;
    } else if !output.quiet {
        let (mark, verb) = match (dry_run, asked) {
            (true, _) => (style("·").dim(), "would redeliver"),
            (false, true) => (style("✓").green(), "GitHub is redelivering"),
            (false, false) => (style("✗").red(), "could not redeliver"),
        };
        print(&format!(
            "{mark} {verb} {} [{}] (delivery {}, {} at {}) to {hook}",
            visible(&item.kind()),
            visible(&item.guid),
            item.id,
            visible(&item.status),
            item.delivered_at.format("%Y-%m-%d %H:%M:%S"),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(id: u64, guid: &str, seconds: i64, status_code: i64) -> DeliveryItem {
        serde_json::from_value(json!({
            "id": id, "guid": guid, "delivered_at": chrono::DateTime::from_timestamp(1_700_000_000 + seconds, 0),
            "redelivery": false, "duration": 0.1, "status": "x", "status_code": status_code, "event": "push"
        }))
        .unwrap()
    }

    #[test]
    fn only_guids_whose_latest_attempt_failed_once_each() {
        let items = vec![
            item(1, "fixed", 0, 0),
            item(4, "fixed", 10, 200),
            item(2, "twice-failed", 1, 502),
            item(5, "twice-failed", 11, 0),
            item(3, "fine", 2, 204),
            item(6, "broken-again", 1, 200),
            item(7, "broken-again", 12, 404),
        ];
        let ids: Vec<u64> = latest_failed(items).iter().map(|item| item.id).collect();
        assert_eq!(ids, [5, 7]);
    }
}

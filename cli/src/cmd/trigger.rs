//! `hookfwd trigger`: GitHub itself produces a delivery, a ping or a redelivery, to test the whole path.

use std::process::ExitCode;

use anyhow::Context as _;
use console::style;
use github::{DeliveryItem, HookRef, Listing};
use relay::Source;

use super::consent::Registry;
use super::guid;
use crate::args::{HookTarget, OutputArgs, Trigger, TriggerArgs};
use crate::exit::{FAILURE, fail};
use crate::json::{DeliveryFields, HookFields, Line};
use crate::term::print;

/// Triggers a ping or a redelivery.
pub async fn trigger(args: TriggerArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Trigger::Ping(target) => ping(target, output).await,
        Trigger::Redeliver { guid, target } => redeliver(&guid, target, output).await,
    }
}

/// Asks GitHub to ping each source's hook.
async fn ping(target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let sources = super::sources(&target.sources)?;
    let (client, _) = super::github_client(&target.github).await?;
    let registry = Registry::new(&target);
    for source in &sources {
        let hook = chosen_hook(&registry, &client, source, &target, "ping it").await?;
        client.ping_hook(&hook).await.with_context(|| format!("could not ask GitHub to ping {hook}"))?;
        if output.json {
            print(&Line::Ping { hook: HookFields::of(&hook) }.to_json())?;
        } else if !output.quiet {
            print(&format!("{} GitHub is sending a ping to {hook}", style("✓").green()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks GitHub to redeliver the newest delivery with `guid` (whole, or as the feed shortens it), looking
/// through each source's hook.
async fn redeliver(guid: &str, target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let sources = super::sources(&target.sources)?;
    let (client, _) = super::github_client(&target.github).await?;
    let registry = Registry::new(&target);
    let mut searched = Vec::new();
    for source in &sources {
        let hook = chosen_hook(&registry, &client, source, &target, "ask it for a redelivery").await?;
        if let Some(item) = find_delivery(&client, &hook, guid).await? {
            let guid = item.guid.as_str();
            client
                .redeliver(&hook, item.id)
                .await
                .with_context(|| format!("could not ask GitHub to redeliver {guid}"))?;
            if output.json {
                let line = Line::Redeliver {
                    hook: HookFields::of(&hook),
                    delivery: DeliveryFields::of(&item),
                    status: None,
                    status_text: None,
                    delivered_at: None,
                    dry_run: None,
                    asked: None,
                };
                print(&line.to_json())?;
            } else if !output.quiet {
                print(&format!(
                    "{} GitHub is redelivering {} [{guid}] (delivery {}) to {hook}",
                    style("✓").green(),
                    item.kind(),
                    item.id
                ))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        searched.push(hook.to_string());
    }
    Err(fail(
        FAILURE,
        format!(
            "no delivery with guid {guid} among those GitHub still holds for {}; check the guid \
             (X-GitHub-Delivery) and the hook",
            searched.join(", ")
        ),
    ))
}

/// The hook to act on for `source`: one named by `--hook-url` is the user's choice; the only hook,
/// picked for them, needs consent unless hookfwd created it.
async fn chosen_hook(
    registry: &Registry,
    client: &github::Client,
    source: &Source,
    target: &HookTarget,
    doing: &str,
) -> anyhow::Result<HookRef> {
    let url = target.sources.hook_url.as_deref();
    let hook = super::hooks::find(client, source, url).await?;
    if url.is_none() {
        registry.consent(&hook, doing, target.yes)?;
    }
    Ok(hook)
}

/// The newest delivery of `hook` whose guid `wanted` names (whole, or as the feed shortens it), paging back
/// through everything GitHub still holds; a shortened guid that names two deliveries is refused.
pub(crate) async fn find_delivery(
    client: &github::Client,
    hook: &HookRef,
    wanted: &str,
) -> anyhow::Result<Option<DeliveryItem>> {
    let context = || format!("could not list the deliveries of {hook}");
    // A fresh client has no ETag cached, so the first page is never a 304; forget any anyway to be sure.
    client.forget_etags(hook);
    let mut page = match client.list_deliveries(hook, 100).await.with_context(context)? {
        Listing::Page(page) => page,
        Listing::NotModified => return Ok(None),
    };
    // Newest first: the first match of a whole guid is the answer; a shortened one is read to the end.
    let mut found: Vec<DeliveryItem> = Vec::new();
    loop {
        found.extend(page.items.into_iter().filter(|item| guid::matches(&item.guid, wanted)));
        if found.first().is_some_and(|item| guid::is_whole(&item.guid, wanted)) {
            break;
        }
        match &page.next {
            Some(next) => page = client.next_deliveries(next).await.with_context(context)?,
            None => break,
        }
    }
    guid::check_one(wanted, &found)?;
    Ok(found.into_iter().max_by_key(|item| (item.delivered_at, item.id)))
}

//! `hookfwd hooks`: list and remove hooks, and find the hook a command acts on.

use std::process::ExitCode;

use anyhow::Context as _;
use console::style;
use github::{Hook, HookRef, Owner};
use relay::Source;

use crate::args::{HookTarget, HooksAction, HooksArgs, OutputArgs};
use crate::exit::{FAILURE, USAGE, fail};
use crate::json::Line;
use crate::term::{print, visible};

/// Lists or removes hooks.
pub async fn hooks(args: HooksArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        HooksAction::List(target) => list(target, output).await,
        HooksAction::Rm { id, target } => remove(id, target, output).await,
    }
}

/// `hookfwd hooks list`: one line (or JSON object) per hook, hookfwd's marked.
async fn list(target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let owners = super::owners(&target.sources)?;
    let (client, _) = super::github_client(&target.github).await?;
    for owner in &owners {
        let hooks = client.list_hooks(owner).await.with_context(|| format!("could not list the hooks of {owner}"))?;
        if hooks.is_empty() && !output.json && !output.quiet {
            print(&format!("{owner}: no hooks"))?;
        }
        for hook in &hooks {
            let ours = target.sources.hook_url.as_deref().is_some_and(|url| hook.delivers_to(url));
            if output.json {
                let line = Line::ListedHook {
                    owner: owner.to_string(),
                    id: hook.id,
                    url: hook.config.url.as_deref(),
                    events: &hook.events,
                    active: hook.active,
                    content_type: hook.config.content_type.as_deref(),
                    last_response: hook.last_response.as_ref(),
                    hookfwd: ours,
                };
                print(&line.to_json())?;
            } else {
                print(&describe(owner, hook, ours))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One human line for a hook: id, URL, events, active, last response, and whether hookfwd uses it.
fn describe(owner: &Owner, hook: &Hook, ours: bool) -> String {
    let url = hook.config.url.as_deref().unwrap_or("(no URL)");
    let active = if hook.active { style("active").green() } else { style("inactive").yellow() };
    let last = match &hook.last_response {
        Some(response) => {
            let code = response.code.map(|code| code.to_string());
            let text = [code, response.status.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            if text.is_empty() { "none".to_string() } else { text }
        }
        None => "none".to_string(),
    };
    let mark = if ours { format!("  {}", style("← hookfwd").cyan().bold()) } else { String::new() };
    format!(
        "{owner}  {:>10}  {}  events: {}  {active}  last: {}{mark}",
        hook.id,
        visible(url),
        visible(&hook.events.join(",")),
        visible(&last)
    )
}

/// `hookfwd hooks rm ID`.
async fn remove(id: u64, target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let owners = super::owners(&target.sources)?;
    let [owner] = owners.as_slice() else {
        return Err(fail(USAGE, "name exactly one --repo or --org whose hook to remove"));
    };
    let (client, _) = super::github_client(&target.github).await?;
    let hook = owner.hook(id);
    client.delete_hook(&hook).await.with_context(|| format!("could not delete {hook}"))?;
    if output.json {
        print(&Line::Deleted { owner: owner.to_string(), id }.to_json())?;
    } else if !output.quiet {
        print(&format!("{} deleted {hook}", style("✓").green()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The hook a command acts on for `source`: the one delivering to `hook_url`, or the only hook when no URL is given.
pub async fn find(client: &github::Client, source: &Source, hook_url: Option<&str>) -> anyhow::Result<HookRef> {
    let owner = match source {
        Source::App => return Ok(HookRef::App { app_id: client.app_id() }),
        Source::Owner(owner) => owner,
    };
    let hooks = client.list_hooks(owner).await.with_context(|| format!("could not list the hooks of {owner}"))?;
    let urls = || {
        let urls: Vec<&str> = hooks.iter().map(|hook| hook.config.url.as_deref().unwrap_or("(no URL)")).collect();
        if urls.is_empty() { "it has none".to_string() } else { format!("its hooks deliver to {}", urls.join(", ")) }
    };
    match hook_url {
        Some(url) => match hooks.iter().find(|hook| hook.delivers_to(url)) {
            Some(hook) => Ok(owner.hook(hook.id)),
            None => Err(fail(
                FAILURE,
                format!(
                    "{owner} has no hook that delivers to {url} ({}); check --hook-url or HOOKFWD_HOOK_URL",
                    urls()
                ),
            )),
        },
        None => match hooks.as_slice() {
            [hook] => Ok(owner.hook(hook.id)),
            [] => Err(fail(FAILURE, format!("{owner} has no hooks; run `hookfwd dev` once to create one"))),
            _ => Err(fail(USAGE, format!("{owner} has {} hooks; pick one with --hook-url ({})", hooks.len(), urls()))),
        },
    }
}

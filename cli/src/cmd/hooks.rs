//! `hookfwd hooks`: list and remove hooks, and find the hook a command acts on.

use std::process::ExitCode;

use anyhow::Context as _;
use console::style;
use github::{Hook, HookRef, Owner};
use relay::Source;

use super::consent::Registry;
use crate::args::{HookTarget, HooksAction, HooksArgs, OutputArgs};
use crate::exit::{FAILURE, USAGE, fail};
use crate::json::{HookFields, Line};
use crate::term::{print, visible};

/// Lists or removes hooks.
pub async fn hooks(args: HooksArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        HooksAction::List(target) => list(target, output).await,
        HooksAction::Rm { id, target } => remove(id, target, output).await,
    }
}

/// `hookfwd hooks list`: one line (or JSON object) per hook, in aligned columns; hookfwd's marked.
async fn list(target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let owners = super::owners(&target.sources)?;
    let (client, _) = super::github_client(&target.github).await?;
    let registry = Registry::new(&target);
    let mut rows = Vec::new();
    for owner in &owners {
        let hooks = client.list_hooks(owner).await.with_context(|| format!("could not list the hooks of {owner}"))?;
        if hooks.is_empty() && !output.json && !output.quiet {
            print(&format!("{owner}: no hooks"))?;
        }
        for hook in hooks {
            let created = registry.created(&owner.hook(hook.id));
            let used = target.sources.hook_url.as_deref().is_some_and(|url| hook.delivers_to(url));
            if output.json {
                let line = Line::ListedHook {
                    hook: HookFields::of(&owner.hook(hook.id)),
                    hook_url: hook.config.url.as_deref(),
                    events: &hook.events,
                    active: hook.active,
                    content_type: hook.config.content_type.as_deref(),
                    last_response: hook.last_response.as_ref(),
                    created_by_hookfwd: created,
                };
                print(&line.to_json())?;
            } else {
                rows.push(Row::new(owner, &hook, created, used));
            }
        }
    }
    for line in aligned(&rows) {
        print(&line)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One hook of `hooks list`, as plain cells, so that columns are measured before any styling.
struct Row {
    /// Owner, id, URL, events, active, last response.
    cells: [String; 6],
    /// Whether the hook is active (shown green, else yellow).
    active: bool,
    /// hookfwd's mark: it created the hook, or the hook delivers to `--hook-url`.
    mark: Option<&'static str>,
}

impl Row {
    fn new(owner: &Owner, hook: &Hook, created: bool, used: bool) -> Self {
        let url = hook.config.url.as_deref().unwrap_or("(no URL)");
        let last = match &hook.last_response {
            Some(response) => {
                let code = response.code.map(|code| code.to_string());
                let text = [code, response.status.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ");
                if text.is_empty() { "none".to_string() } else { text }
            }
            None => "none".to_string(),
        };
        let mark = match (created, used) {
            (true, _) => Some("← created by hookfwd"),
            (false, true) => Some("← hookfwd (--hook-url)"),
            (false, false) => None,
        };
        Self {
            cells: [
                owner.to_string(),
                hook.id.to_string(),
                visible(url).into_owned(),
                format!("events: {}", visible(&hook.events.join(","))),
                if hook.active { "active" } else { "inactive" }.to_string(),
                format!("last: {}", visible(&last)),
            ],
            active: hook.active,
            mark,
        }
    }
}

/// The rows as lines whose columns line up (ids right-aligned), widths measured in characters.
fn aligned(rows: &[Row]) -> Vec<String> {
    let mut widths = [0usize; 6];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(&row.cells) {
            *width = (*width).max(console::measure_text_width(cell));
        }
    }
    rows.iter()
        .map(|row| {
            let [owner, id, url, events, active, last] = &row.cells;
            let pad = |cell: &str, width: usize| " ".repeat(width - console::measure_text_width(cell));
            let state = if row.active { style(active.as_str()).green() } else { style(active.as_str()).yellow() };
            let mut line = format!(
                "{owner}{}  {}{id}  {url}{}  {events}{}  {state}{}  {last}",
                pad(owner, widths[0]),
                pad(id, widths[1]),
                pad(url, widths[2]),
                pad(events, widths[3]),
                pad(active, widths[4]),
            );
            if let Some(mark) = row.mark {
                line = format!("{line}{}  {}", pad(last, widths[5]), style(mark).cyan().bold());
            }
            line
        })
        .collect()
}

/// `hookfwd hooks rm ID`: a hook hookfwd did not create needs consent.
async fn remove(id: u64, target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let owners = super::owners(&target.sources)?;
    let [owner] = owners.as_slice() else {
        return Err(fail(USAGE, "name exactly one --repo or --org whose hook to remove"));
    };
    let (client, _) = super::github_client(&target.github).await?;
    let registry = Registry::new(&target);
    let hook = owner.hook(id);
    registry.consent(&hook, "delete it", target.yes)?;
    client.delete_hook(&hook).await.with_context(|| format!("could not delete {hook}"))?;
    registry.forget(&hook)?;
    if output.json {
        print(&Line::Deleted { hook: HookFields::of(&hook) }.to_json())?;
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

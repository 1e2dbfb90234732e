//! `hookfwd hooks`: list, remove and prune hooks, and find the hook a command acts on.
//!
//! GitHub's errors name what they were about (`the hooks of o/r: not found…`), so they are passed on
//! without a context that would say it again.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use console::style;
use github::{Hook, HookRef, Owner};
use relay::Source;

use super::consent::{self, Registry};
use crate::args::{HookTarget, HooksAction, HooksArgs, OutputArgs};
use crate::exit::{FAILURE, USAGE, fail};
use crate::json::{HookFields, Line};
use crate::term::{print, visible};

/// Lists, removes or prunes hooks.
pub async fn hooks(args: HooksArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        HooksAction::List(target) => list(target, output).await,
        HooksAction::Rm { id, target } => remove(id, target, output).await,
        HooksAction::Prune { older_than, target } => prune(older_than, target, output).await,
    }
}

/// `hookfwd hooks list`: one line (or JSON object) per hook, in aligned columns; hookfwd's marked.
async fn list(target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let owners = super::owners(&target.sources)?;
    let (client, _) = super::github_client(&target.github).await?;
    let registry = Registry::new(&target);
    let mut rows = Vec::new();
    for owner in &owners {
        let hooks = client.list_hooks(owner).await?;
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

/// `hookfwd hooks rm ID`: the hook must exist (asked before any consent), its repository or organization
/// named or found in the state directory; one hookfwd did not create needs consent.
async fn remove(id: u64, target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let owners: Vec<Owner> = target.sources.repos.iter().chain(&target.sources.orgs).cloned().collect();
    if owners.len() > 1 {
        return Err(fail(USAGE, "name at most one --repo or --org whose hook to remove"));
    }
    let (client, _) = super::github_client(&target.github).await?;
    let registry = Registry::new(&target);
    let hook = match owners.first() {
        Some(owner) => {
            let hook = owner.hook(id);
            match client.get_hook(&hook).await {
                Ok(_) => hook,
                Err(github::Error::NotFound { .. }) => {
                    let list = match owner {
                        Owner::Repo { .. } => format!("--repo {owner}"),
                        Owner::Org { .. } => format!("--org {owner}"),
                    };
                    return Err(fail(
                        FAILURE,
                        format!(
                            "{hook} does not exist, or the token cannot see it; `hookfwd hooks list {list}` lists \
                             its hooks"
                        ),
                    ));
                }
                Err(error) => return Err(error.into()),
            }
        }
        None => known_hook(&client, &registry, id).await?,
    };
    registry.consent(&hook, "delete it", target.yes)?;
    client.delete_hook(&hook).await?;
    registry.forget(&hook)?;
    deleted(&hook, output)
}

/// The hook with `id` that the state directory has files for, told apart by asking GitHub which of
/// their names' readings exists.
async fn known_hook(client: &github::Client, registry: &Registry, id: u64) -> anyhow::Result<HookRef> {
    let readings = registry.known().into_iter().flat_map(|known| known.readings).filter(|hook| hook.id() == Some(id));
    for hook in readings {
        match client.get_hook(&hook).await {
            Ok(_) => return Ok(hook),
            Err(github::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let dir = registry.dir().map(|dir| format!(" ({})", dir.display())).unwrap_or_default();
    Err(fail(
        USAGE,
        format!(
            "hook {id} is not one the state directory{dir} knows of; name its repository with --repo OWNER/REPO \
             or its organization with --org ORG"
        ),
    ))
}

/// Says that `hook` was deleted: a line, or its JSON.
fn deleted(hook: &HookRef, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    if output.json {
        print(&Line::Deleted { hook: HookFields::of(hook) }.to_json())?;
    } else if !output.quiet {
        print(&format!("{} deleted {hook}", style("✓").green()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A hook `prune` would delete.
struct Unused {
    /// The hook.
    hook: HookRef,
    /// Where it delivers.
    url: Option<String>,
    /// The latest of its newest delivery, hookfwd's last read of it, and its creation.
    last_used: DateTime<Utc>,
}

/// `hookfwd hooks prune`: the hooks hookfwd created (of the named owners, or all the state directory
/// knows) that nothing has used for `older_than`, listed, then deleted on a yes or with `--yes`.
///
/// A hook's last use is the latest of its newest delivery GitHub holds, the last time a hookfwd with this
/// state directory read it (its ledger), and its creation. One a running hookfwd holds is in use.
async fn prune(older_than: Duration, target: HookTarget, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let wanted: Vec<Owner> = target.sources.repos.iter().chain(&target.sources.orgs).cloned().collect();
    let (client, _) = super::github_client(&target.github).await?;
    let registry = Registry::new(&target);
    let Some(dir) = registry.dir().map(std::path::Path::to_path_buf) else {
        return Err(fail(USAGE, "no state directory, so no record of the hooks hookfwd created; set --state-dir"));
    };
    let now = Utc::now();
    let cutoff = relay::since::cutoff(now, older_than);
    // Each owner's hooks, listed once however many of its hooks the directory knows.
    let mut listed: HashMap<Owner, Vec<Hook>> = HashMap::new();
    let mut unused = Vec::new();
    // Held until the hooks are deleted, so that no hookfwd starts on one meanwhile.
    let mut locks = Vec::new();
    for known in registry.known().into_iter().filter(|known| known.created) {
        for hook in known.readings {
            let owner = match &hook {
                HookRef::Repo { owner, repo, .. } => Owner::Repo { owner: owner.clone(), repo: repo.clone() },
                HookRef::Org { org, .. } => Owner::Org { org: org.clone() },
                HookRef::App { .. } => continue,
            };
            if !wanted.is_empty() && !wanted.contains(&owner) {
                continue;
            }
            if !listed.contains_key(&owner) {
                let hooks = match client.list_hooks(&owner).await {
                    Ok(hooks) => hooks,
                    // Another reading of the name, or a repository since deleted.
                    Err(github::Error::NotFound { .. }) => Vec::new(),
                    Err(error) => return Err(error.into()),
                };
                listed.insert(owner.clone(), hooks);
            }
            let Some(found) = listed[&owner].iter().find(|found| Some(found.id) == hook.id()) else { continue };
            let lock = match relay::ledger::Lock::take(&dir, &hook) {
                Ok(lock) => lock,
                // A hookfwd running on it is using it.
                Err(relay::Error::Busy { .. }) => break,
                Err(error) => return Err(error.into()),
            };
            let newest = client.newest_deliveries(&hook, 1).await?;
            let read = relay::ledger::FileLedger::open(&dir, &hook)?.map(|ledger| ledger.last_checked());
            let last_used = [Some(found.created_at), newest.items.first().map(|item| item.delivered_at), read]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(found.created_at);
            if last_used < cutoff {
                unused.push(Unused { hook, url: found.config.url.clone(), last_used });
                locks.push(lock);
            }
            break;
        }
    }
    if unused.is_empty() {
        if !output.json && !output.quiet {
            let days = humantime::format_duration(older_than);
            print(&format!("no hook hookfwd created has gone unused for {days}"))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for hook in &unused {
        show_unused(hook, now, output)?;
    }
    if !target.yes {
        let (count, plural) = (unused.len(), if unused.len() == 1 { "hook" } else { "hooks" });
        if !consent::interactive() {
            return Err(fail(USAGE, format!("pass --yes to delete the {count} {plural} above")));
        }
        if !consent::ask(&format!("delete the {count} {plural} above?"))? {
            return Err(fail(FAILURE, format!("left the {count} {plural} alone")));
        }
    }
    for Unused { hook, .. } in &unused {
        client.delete_hook(hook).await?;
        registry.forget(hook)?;
        deleted(hook, output)?;
    }
    drop(locks);
    Ok(ExitCode::SUCCESS)
}

/// One line (or JSON object) for a hook `prune` would delete.
fn show_unused(unused: &Unused, now: DateTime<Utc>, output: &OutputArgs) -> anyhow::Result<()> {
    let Unused { hook, url, last_used } = unused;
    if output.json {
        let line = Line::Unused { hook: HookFields::of(hook), url: url.as_deref(), last_used: *last_used };
        return Ok(print(&line.to_json())?);
    }
    let idle = (now - *last_used).to_std().unwrap_or_default();
    // Whole days or hours: "unused for 9days 23h 59m 58s" says nothing more.
    let idle = Duration::from_secs(match idle.as_secs() {
        s if s >= 86_400 => s / 86_400 * 86_400,
        s => s / 3600 * 3600,
    });
    let url = visible(url.as_deref().unwrap_or("(no URL)")).into_owned();
    Ok(print(&format!("{hook}  {url}  unused for {}", humantime::format_duration(idle)))?)
}

/// The hook a command acts on for `source`: the one delivering to `hook_url`, or the only hook when no URL is given.
pub async fn find(client: &github::Client, source: &Source, hook_url: Option<&str>) -> anyhow::Result<HookRef> {
    let owner = match source {
        Source::App => return Ok(HookRef::App { app_id: client.app_id() }),
        Source::Owner(owner) => owner,
    };
    let hooks = client.list_hooks(owner).await?;
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

//! The feed: how each relay event is rendered, as a text line, a JSON line, or a change of the status line.
//!
//! Where those lines go (stdout, stderr, the status line) is `term`'s concern.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use console::style;
use github::HookRef;
use relay::{Call, Event, HookOrigin};

use crate::args::OutputArgs;
use crate::json::{DeliveryFields, HookFields, Line, ReadySource};
use crate::term::{self, Status, print, short_guid, visible};
use crate::warning;

/// Facts about the run that only the CLI knows, shown on the Ready line.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Where the token came from, masked, such as `GITHUB_TOKEN (ghp_***)`.
    pub token: String,
    /// Where the secret came from, masked, or `none`.
    pub secret: String,
    /// The poll interval.
    pub interval: Duration,
    /// Whether push mode was asked for (a stream token).
    pub streaming: bool,
    /// The poll interval while the stream is healthy.
    pub safety_interval: Duration,
    /// The inspector's URL, when it runs.
    pub inspector: Option<String>,
    /// Whether the `r` key retries now (stdin is a terminal).
    pub retry_key: bool,
    /// The run ends by itself (the demo): no "Ctrl-C to stop".
    pub stops_itself: bool,
}

/// Renders relay events as the feed and the status line.
pub struct Feed {
    json: bool,
    quiet: bool,
    /// `-v`: show every answer's whole kept body.
    verbose: u8,
    status: Status,
    context: Context,
    hooks: Vec<String>,
    /// Each source as the `ready` JSON line lists it.
    ready: Vec<ReadySource>,
    /// Each hook's source (`owner/repo`, the org, `app`), named on its feed lines.
    sources: HashMap<HookRef, String>,
    /// Sources that could not be set up, held until the Ready line.
    failed: Vec<String>,
    /// The hooks whose blackhole streams to this run (push mode).
    streamed: Vec<HookRef>,
    /// Whether the Ready line was shown: a stream that comes up after it says so.
    ready_shown: bool,
    /// Set while a delivery waits to be tried again, so poll updates do not hide it.
    unreachable: Option<Retry>,
    /// Deliveries waiting to be tried again, by hook and guid.
    retrying: HashSet<(HookRef, String)>,
    /// Deliveries this run parked and did not send again, by hook and guid.
    parked: HashSet<(HookRef, String)>,
    /// What each source left queued or in flight when it stopped.
    left: HashMap<HookRef, usize>,
    /// The last line of a delivery's retry state on a terminal, which its next one replaces.
    live: Option<Live>,
    /// The last GitHub error, until a poll succeeds again: the status line shows it rather than "polling".
    trouble: Option<String>,
    /// Deliveries waiting to be forwarded, per hook, as of each hook's last poll.
    waiting: HashMap<HookRef, usize>,
    /// Deliveries the handler answered this run (other than a 5xx, which is retried), for the stop line.
    forwarded: u64,
    /// Deliveries answered since a backlog began, and the backlog's size, for the progress bar.
    drained: u64,
    total: u64,
    /// The last poll's time and rate budget, for the status line.
    polled: String,
    /// Streams that dropped and are not back, per hook, with why.
    down: HashMap<HookRef, String>,
    /// Streams that came up at least once.
    up: HashMap<HookRef, bool>,
    /// The last wait shown (until when, and why), so that a wait that goes on is not repeated on stderr.
    waiting_for: Option<(DateTime<Utc>, String)>,
    /// `--check-schema`: each forwarded payload checked against GitHub's schema.
    schema: Option<crate::schema::SchemaCheck>,
}

impl Feed {
    /// A feed for the given output options.
    pub fn new(output: &OutputArgs, status: Status, context: Context) -> Self {
        Self {
            json: output.json,
            quiet: output.quiet,
            verbose: output.verbose,
            status,
            context,
            hooks: Vec::new(),
            ready: Vec::new(),
            sources: HashMap::new(),
            failed: Vec::new(),
            streamed: Vec::new(),
            ready_shown: false,
            unreachable: None,
            retrying: HashSet::new(),
            parked: HashSet::new(),
            left: HashMap::new(),
            live: None,
            trouble: None,
            forwarded: 0,
            waiting: HashMap::new(),
            drained: 0,
            total: 0,
            polled: String::new(),
            down: HashMap::new(),
            up: HashMap::new(),
            waiting_for: None,
            schema: None,
        }
    }

    /// Checks each forwarded payload against GitHub's schema from now on (`--check-schema`).
    pub fn check_schemas(&mut self) {
        self.schema = Some(crate::schema::SchemaCheck::default());
    }

    /// How the Ready line says deliveries arrive: streaming only once every stream is up.
    fn mode(&self) -> String {
        let interval = humantime::format_duration(self.context.interval);
        if self.streamed.is_empty() {
            format!("polling every {interval}")
        } else if self.streams_up() {
            format!(
                "streaming from blackhole, safety poll every {}",
                humantime::format_duration(self.context.safety_interval)
            )
        } else {
            format!("connecting to the stream…, polling every {interval} meanwhile")
        }
    }

    /// Whether every hook streamed to this run has its stream up.
    fn streams_up(&self) -> bool {
        !self.streamed.is_empty() && self.streamed.iter().all(|hook| self.up.contains_key(hook))
    }

    /// Shows the status line again, when it counts down (a retry's wait).
    pub fn tick(&self) {
        let waiting = self.waiting_for.as_ref().is_some_and(|(until, _)| *until > Utc::now());
        if self.unreachable.is_some() || waiting {
            self.show_status();
        }
    }

    /// Shows one event.
    pub fn show(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::HookReady { source, hook, origin, hook_url, target, events, streaming } => {
                let origin = match origin {
                    HookOrigin::Found => "found",
                    HookOrigin::Created => "created",
                    HookOrigin::App => "app",
                };
                let via = hook_url.as_deref().map(|url| format!(" via {}", visible(url))).unwrap_or_default();
                let id = hook.id().map(|id| format!("hook {id}, ")).unwrap_or_default();
                self.hooks.push(format!("{} ({id}{origin}){via} → {target}", visible(source)));
                self.sources.insert(hook.clone(), source.clone());
                if *streaming {
                    self.streamed.push(hook.clone());
                }
                self.ready.push(ReadySource {
                    hook: HookFields::of(hook),
                    hook_url: hook_url.clone(),
                    target: target.to_string(),
                    via: if *streaming { "stream" } else { "poll" },
                });
                if self.json {
                    let (hook, hook_url, target) = (HookFields::of(hook), hook_url.as_deref(), target.as_str());
                    print(&Line::Hook { hook, origin, hook_url, target, events }.to_json())?;
                }
                Ok(())
            }
            Event::SourceFailed { source, error } => {
                let line = format!("{} {}: {}", style("✗").red(), visible(source), visible(error));
                if self.json {
                    let hook = Some(HookFields { source: source.clone(), hook_id: None });
                    print(&Line::Error { message: error, kind: "source", hook, hint: None }.to_json())
                } else {
                    // Shown with the Ready line; when no source starts, the final error says it all.
                    self.failed.push(line);
                    Ok(())
                }
            }
            Event::Ready { sources, .. } => {
                for line in std::mem::take(&mut self.failed) {
                    print(&line)?;
                }
                self.ready_shown = true;
                self.status.set(format!("{sources} source(s) · {}", self.mode()));
                if self.json {
                    let mode = if self.context.streaming { "stream" } else { "poll" };
                    let line = Line::Ready {
                        sources: &self.ready,
                        interval_ms: self.context.interval.as_millis() as u64,
                        mode,
                        safety_interval_ms: self.context.safety_interval.as_millis() as u64,
                        token: &self.context.token,
                        secret: &self.context.secret,
                        inspector: self.context.inspector.as_deref(),
                    };
                    return print(&line.to_json());
                }
                // Shown with -q too: it says the run is up, and where the inspector is.
                let inspector = match &self.context.inspector {
                    Some(url) => format!("\n      inspect deliveries at {}", style(url).underlined()),
                    None => String::new(),
                };
                let stop = if self.context.stops_itself { "" } else { " · Ctrl-C to stop" };
                print(&format!(
                    "{} Forwarding {}\n      {} · token {} · secret {}{stop}{inspector}",
                    style("Ready!").green().bold(),
                    self.hooks.join(", "),
                    self.mode(),
                    self.context.token,
                    self.context.secret,
                ))
            }
            Event::Delivering { hook, item, via, .. } => {
                if self.json || self.quiet {
                    return Ok(());
                }
                let redelivery =
                    if item.redelivery { style(" (redelivery)").yellow().to_string() } else { String::new() };
                print(&format!(
                    "{}  {} {} [{}]{redelivery} · delivered {} · via {} · from {}",
                    now(),
                    style("-->").cyan(),
                    style(visible(&item.kind())).bold(),
                    short_guid(&item.guid),
                    ago(item.delivered_at),
                    via.as_str(),
                    visible(&self.source(hook)),
                ))
            }
            Event::Answered { hook, item, target, status, latency, via, answer, request } => {
                self.unreachable = None;
                // A 5xx is tried again or parked: the delivery is not done.
                let retried = *status >= 500;
                if !retried {
                    self.forwarded += 1;
                    if let Some(waiting) = self.waiting.get_mut(hook) {
                        *waiting = waiting.saturating_sub(1);
                    }
                    let key = (hook.clone(), item.guid.clone());
                    self.retrying.remove(&key);
                    self.parked.remove(&key);
                }
                self.drained += 1;
                self.show_status();
                let source = self.source(hook).to_string();
                let mut text = format!(
                    "{}  {} [{}] POST {target} [{} ms] [{}] · from {}",
                    now(),
                    style("<--").cyan(),
                    status_style(*status),
                    latency.as_millis(),
                    short_guid(&item.guid),
                    visible(&source),
                );
                for line in crate::answer::excerpt(*status, answer, self.verbose) {
                    text.push('\n');
                    text.push_str(&line);
                }
                let line = Line::Forwarded {
                    hook: HookFields::of(hook),
                    delivery: DeliveryFields::of(item),
                    via: via.as_str(),
                    redelivery: item.redelivery,
                    delivered_at: item.delivered_at,
                    target: target.as_str(),
                    status: *status,
                    ok: (200..300).contains(status),
                    latency_ms: latency.as_millis() as u64,
                    answer: crate::answer::AnswerJson::of(answer),
                };
                if retried {
                    self.retry_state(hook, &item.guid, &text, line)?;
                } else {
                    self.line_or_json(&text, line, !(200..300).contains(status))?;
                }
                let report = self
                    .schema
                    .as_mut()
                    .and_then(|check| check.forwarded(&item.event, item.action.as_deref(), &item.guid, request));
                match report {
                    Some(report) => self.line_or_json(
                        &crate::schema::text(&item.kind(), Some(&item.guid), &report),
                        crate::schema::line(&item.event, item.action.as_deref(), Some(&item.guid), &report),
                        true,
                    ),
                    None => Ok(()),
                }
            }
            Event::Retrying { hook, item, target, reason, wait, attempt } => {
                // The engine waits whole tenths of a second: the feed and --json say the same number.
                let wait_text = format!("{:.1}s", wait.as_secs_f64());
                let reason_text = visible(reason);
                // A bare status code means the handler answered: a 502/503/504 says it is restarting,
                // any other 5xx that it is up but rejects this delivery.
                let what = match reason.parse::<u16>() {
                    Ok(status @ 502..=504) => format!("handler unavailable ({status})"),
                    Ok(status) => format!("handler rejects {} ({status})", item.kind()),
                    Err(_) => format!("handler unreachable ({reason_text})"),
                };
                self.unreachable = Some(Retry { what, at: tokio::time::Instant::now() + *wait });
                let key = (hook.clone(), item.guid.clone());
                // A parked delivery sent again (the `r` key) stays counted as parked.
                if !self.parked.contains(&key) {
                    self.retrying.insert(key);
                }
                self.show_status();
                let source = self.source(hook).to_string();
                let text = format!(
                    "{}  {} {} [{}]: {reason_text}, retry {attempt} in {wait_text} · from {}{}",
                    now(),
                    style("!!!").yellow(),
                    visible(&item.kind()),
                    short_guid(&item.guid),
                    visible(&source),
                    self.to(target),
                );
                let line = Line::Retry {
                    hook: HookFields::of(hook),
                    delivery: DeliveryFields::of(item),
                    target: target.as_str(),
                    reason,
                    attempt: *attempt,
                    wait_ms: wait.as_millis() as u64,
                };
                self.retry_state(hook, &item.guid, &text, line)
            }
            Event::Filtered { hook, item, via, target } => {
                // Handled without being sent: it leaves the count of those waiting.
                if let Some(waiting) = self.waiting.get_mut(hook) {
                    *waiting = waiting.saturating_sub(1);
                }
                self.drained += 1;
                self.show_status();
                let to = target.as_ref().map(|target| format!(" for {target}")).unwrap_or_default();
                let text = style(format!(
                    "{}  --- {} [{}] skipped by --filter{to} · from {}",
                    now(),
                    visible(&item.kind()),
                    short_guid(&item.guid),
                    visible(&self.source(hook)),
                ))
                .dim()
                .to_string();
                let line = Line::Filtered {
                    hook: HookFields::of(hook),
                    delivery: DeliveryFields::of(item),
                    via: via.as_str(),
                    target: target.as_ref().map(url::Url::as_str),
                };
                self.line_or_json(&text, line, false)
            }
            Event::Parked { hook, item, target, via, attempts, status, answer } => {
                // Parked is handled: the queue moves on, so it leaves the count of those waiting.
                self.unreachable = None;
                if let Some(waiting) = self.waiting.get_mut(hook) {
                    *waiting = waiting.saturating_sub(1);
                }
                let key = (hook.clone(), item.guid.clone());
                self.retrying.remove(&key);
                self.parked.insert(key);
                self.show_status();
                let source = self.source(hook).to_string();
                let key = if self.context.retry_key { " or press r" } else { "" };
                let text = format!(
                    "{}  {} {} [{}] parked after {attempts} attempts ({}); send it again with `hookfwd replay \
                     --parked`{key} · from {}{}",
                    now(),
                    style("!!!").red(),
                    visible(&item.kind()),
                    short_guid(&item.guid),
                    visible(&rejection(*status, answer)),
                    visible(&source),
                    self.to(target),
                );
                let line = Line::Parked {
                    hook: HookFields::of(hook),
                    delivery: DeliveryFields::of(item),
                    target: target.as_str(),
                    via: via.as_str(),
                    attempts: *attempts,
                    status: *status,
                    answer: crate::answer::AnswerJson::of(answer),
                };
                self.retry_state(hook, &item.guid, &text, line)
            }
            Event::Polled { hook, at, backlog, rate } => {
                let rate = match (rate.remaining, rate.limit) {
                    (Some(remaining), Some(limit)) => {
                        let reset = rate.reset_at.map(|r| r.with_timezone(&Local).format(" resets %H:%M").to_string());
                        format!(" · rate {remaining}/{limit}{}", reset.unwrap_or_default())
                    }
                    _ => String::new(),
                };
                self.polled = format!("last poll {}{rate}", at.with_timezone(&Local).format("%H:%M:%S"));
                self.trouble = None;
                self.waiting.insert(hook.clone(), *backlog);
                let waiting: usize = self.waiting.values().sum();
                if waiting == 0 {
                    (self.drained, self.total) = (0, 0);
                } else {
                    self.total = self.drained + waiting as u64;
                }
                self.show_status();
                Ok(())
            }
            Event::StreamUp { hook, resumed } => {
                let dropped = self.down.remove(hook).is_some();
                let back = self.up.insert(hook.clone(), true).is_some() || dropped;
                self.show_status();
                if self.json {
                    return print(
                        &Line::StreamUp { state: "up", hook: HookFields::of(hook), resumed: *resumed }.to_json(),
                    );
                }
                if self.quiet {
                    return Ok(());
                }
                if back {
                    let gap = if *resumed { "resumed without a gap" } else { "catching up from the API" };
                    return print(&format!("{} the stream for {hook} is back ({gap})", style("stream:").cyan()));
                }
                if self.ready_shown {
                    // The Ready line said it was connecting.
                    return print(&format!(
                        "{} the stream for {hook} is up; safety poll every {}",
                        style("stream:").cyan(),
                        humantime::format_duration(self.context.safety_interval)
                    ));
                }
                Ok(())
            }
            Event::SourceStopped { hook, left } => {
                self.left.insert(hook.clone(), *left);
                Ok(())
            }
            // Only /readyz and --max-stall use it (crate::admin).
            Event::StreamAlive { .. } => Ok(()),
            Event::StreamDown { hook, reason } => {
                self.down.insert(hook.clone(), reason.clone());
                self.show_status();
                if self.json {
                    return print(&Line::StreamDown { state: "down", hook: HookFields::of(hook), reason }.to_json());
                }
                if self.quiet {
                    return Ok(());
                }
                print(&format!(
                    "{} the stream for {hook} dropped ({reason}); polling every {} until it is back",
                    style("stream:").yellow(),
                    humantime::format_duration(self.context.interval)
                ))
            }
            Event::Summary { source, rejected, repeats, unrecorded } => {
                if self.json {
                    let (rejected, repeats, unrecorded) = (*rejected, *repeats, *unrecorded);
                    return print(&Line::Summary { source, rejected, repeats, unrecorded }.to_json());
                }
                if *rejected > 0 {
                    print(&format!(
                        "{} {rejected} pushed deliveries of {source} were rejected: their signatures did not verify",
                        style("warning:").yellow()
                    ))?;
                }
                if *repeats > 0 {
                    print(&format!(
                        "{} {repeats} POSTs of {source} repeated a delivery already forwarded (a proxy's retry or a \
                         replayed request), and GitHub made no new attempt of it: not forwarded",
                        style("note:").dim()
                    ))?;
                }
                if *unrecorded > 0 {
                    print(&format!(
                        "{} {unrecorded} deliveries pushed for {source} were forwarded but GitHub has no record of them",
                        style("warning:").yellow()
                    ))?;
                }
                Ok(())
            }
            Event::Waiting { until, reason } => {
                let message = format!(
                    "waiting until {} ({}): {}",
                    until.with_timezone(&Local).format("%H:%M:%S"),
                    from_now(*until),
                    visible(reason)
                );
                let repeated = self
                    .waiting_for
                    .as_ref()
                    .is_some_and(|(shown, why)| *shown > Utc::now() && why == reason && *until <= *shown);
                self.waiting_for = Some((*until, reason.clone()));
                self.show_status();
                if self.json {
                    print(&Line::Waiting { until: *until, reason }.to_json())
                } else if repeated || self.quiet {
                    Ok(())
                } else {
                    print(&format!("{} {message}", style("waiting:").yellow()))
                }
            }
            Event::LedgerDown { reason: Some(reason) } => {
                self.trouble = Some(reason.clone());
                self.show_status();
                self.warning("ledger_down", &format!("{reason}; waiting for it, and forwarding nothing meanwhile"))
            }
            Event::LedgerDown { reason: None } => {
                self.trouble = None;
                self.show_status();
                self.warning("ledger_back", "the ledger is reachable again; forwarding goes on")
            }
            Event::Claims { .. } => Ok(()),
            Event::Warning(warning) => self.warning(warning::kind(warning), &warning::sentence(warning)),
            Event::CleanedUp { deleted } => {
                if self.json {
                    for hook in deleted {
                        print(&Line::Deleted { hook: HookFields::of(hook) }.to_json())?;
                    }
                    return Ok(());
                }
                if self.quiet {
                    return Ok(());
                }
                let hooks: Vec<String> = deleted.iter().map(ToString::to_string).collect();
                let what = if hooks.len() == 1 { "the hook" } else { "the hooks" };
                print(&format!("Deleted {what} this run created (--cleanup): {}.", hooks.join(", ")))
            }
            Event::Error { hook, call, error } => {
                let (message, kind) = &match call {
                    Call::Start => (error.to_string(), "start"),
                    Call::List { source } => (format!("listing the deliveries of {source} failed: {error}"), "list"),
                    Call::Fetch { source, id } => {
                        (format!("fetching delivery {id} of {source} failed: {error}"), "fetch")
                    }
                };
                self.trouble = Some(message.clone());
                self.show_status();
                let hook = hook.as_ref().map(HookFields::of);
                self.line_or_json(
                    &format!("{} {}", style("error:").red(), visible(message)),
                    Line::Error { message, kind, hook, hint: None },
                    true,
                )
            }
        }
    }

    /// Shows a warning of the CLI's own (a fixture not saved, a delivery replay skipped): one sentence,
    /// and its `kind` for `--json` (docs/json.md lists them).
    pub fn warn(&mut self, kind: &str, message: &str) -> std::io::Result<()> {
        self.warning(kind, message)
    }

    /// A warning line (`!!!`), or its JSON with its `kind`.
    fn warning(&self, kind: &str, message: &str) -> std::io::Result<()> {
        let text = format!("{}  {} {}", now(), style("!!!").yellow(), visible(message));
        self.line_or_json(&text, Line::Warning { message, kind }, true)
    }

    /// ` to TARGET` when the run sends deliveries to several targets (fan-out), so that a retry or a parked
    /// delivery says which one it is about; nothing with one target, whose line says it already.
    fn to(&self, target: &url::Url) -> String {
        let first = self.ready.first().map(|source| source.target.as_str());
        if self.ready.iter().all(|source| Some(source.target.as_str()) == first) {
            return String::new();
        }
        format!(" to {}", visible(target.as_str()))
    }

    /// The source a hook was set up for; named as `--json` names it if the feed never saw it set up (`replay`).
    fn source(&self, hook: &HookRef) -> Cow<'_, str> {
        match self.sources.get(hook) {
            Some(source) => Cow::Borrowed(source),
            None => Cow::Owned(HookFields::of(hook).source),
        }
    }

    /// The one line shown when the run is stopped (Ctrl-C, SIGTERM): what was forwarded, what was
    /// parked and how to send it again, and what is left for the next run (in retry, queued), which
    /// catches it up from GitHub. The status line is cleared first.
    pub fn stopped(&mut self) -> std::io::Result<()> {
        self.status.clear();
        let forwarded = self.forwarded;
        let (parked, retrying) = (self.parked.len(), self.retrying.len());
        // Each source says what it left as it stops; the last polls' count if none could.
        let left: usize = if self.left.is_empty() { self.waiting.values().sum() } else { self.left.values().sum() };
        // A delivery in retry is in flight, so among what was left.
        let queued = left.saturating_sub(retrying);
        let plural = |n: u64| if n == 1 { "delivery" } else { "deliveries" };
        let mut said = Vec::new();
        if parked > 0 {
            let it = if parked == 1 { "it" } else { "them" };
            said.push(format!("{parked} parked: send {it} again with {}", self.replay_parked()));
        }
        let next = match (retrying, queued) {
            (0, 0) => None,
            (0, queued) => Some(format!("{queued} queued")),
            (retrying, 0) => Some(format!("{retrying} in retry")),
            (retrying, queued) => Some(format!("{retrying} in retry and {queued} queued")),
        };
        if let Some(next) = next {
            said.push(format!("{next} will be caught up next time"));
        }
        if said.is_empty() {
            said.push("nothing is waiting".to_string());
        }
        self.line_or_json(
            &format!("Stopped: {forwarded} {} forwarded; {}.", plural(forwarded), said.join("; ")),
            Line::Stopped { forwarded, parked, retrying, queued },
            false,
        )
    }

    /// The commands that send this run's parked deliveries again, one per source that parked any.
    fn replay_parked(&self) -> String {
        let mut hooks: Vec<&HookRef> = self.parked.iter().map(|(hook, _)| hook).collect();
        hooks.sort_by_key(|hook| hook.to_string());
        hooks.dedup();
        let commands: Vec<String> = hooks
            .into_iter()
            .map(|hook| {
                let source = match hook {
                    HookRef::Repo { owner, repo, .. } => format!("--repo {owner}/{repo}"),
                    HookRef::Org { org, .. } => format!("--org {org}"),
                    HookRef::App { .. } => "--app".to_string(),
                };
                let fields = HookFields::of(hook);
                let ready = self.ready.iter().find(|ready| ready.hook == fields);
                let hook_url = ready.and_then(|ready| ready.hook_url.as_deref());
                let hook_url = hook_url.map(|url| format!(" --hook-url {}", visible(url))).unwrap_or_default();
                let target = ready.map(|ready| format!(" --to {}", visible(&ready.target))).unwrap_or_default();
                format!("`hookfwd replay --parked {source}{hook_url}{target}`")
            })
            .collect();
        commands.join(" and ")
    }

    /// The status line: a retry's countdown first, then a GitHub error until a poll succeeds, then a
    /// progress bar while a backlog drains, else how deliveries arrive. `r: retry now` while the
    /// key would do something.
    fn show_status(&self) {
        let polled = &self.polled;
        let key = if self.context.retry_key && (self.unreachable.is_some() || !self.parked.is_empty()) {
            " · r: retry now"
        } else {
            ""
        };
        let waiting_for = self.waiting_for.as_ref().filter(|(until, _)| *until > Utc::now());
        if let Some(retry) = &self.unreachable {
            let waiting: usize = self.waiting.values().sum();
            self.status
                .set(format!("{}{key} · {waiting} waiting · {polled}", retry.countdown(tokio::time::Instant::now())));
        } else if let Some(trouble) = &self.trouble {
            self.status.set(format!("{} · retrying{key} · {polled}", visible(trouble)));
        } else if let Some((until, reason)) = waiting_for {
            let at = until.with_timezone(&Local).format("%H:%M:%S");
            self.status.set(format!("waiting until {at}: {}{key} · {polled}", visible(reason)));
        } else if self.total > self.drained + 1 {
            self.status.progress(format!("draining the backlog{key} · {polled}"), self.drained, self.total);
        } else if let Some((hook, reason)) = self.down.iter().next() {
            self.status.set(format!("stream for {hook} down ({reason}), polling{key} · {polled}"));
        } else if self.streams_up() {
            self.status.set(format!("streaming{key} · safety {polled}"));
        } else if !self.streamed.is_empty() {
            self.status.set(format!("connecting to the stream, polling{key} · {polled}"));
        } else {
            self.status.set(format!("polling{key} · {polled}"));
        }
    }

    /// Prints a line of a delivery's retry state (an answer to retry, a retry, parked). On a
    /// terminal it replaces the delivery's last such line when nothing was printed since, so a
    /// delivery that is retried keeps one line, updated in place.
    fn retry_state(&mut self, hook: &HookRef, guid: &str, text: &str, line: Line<'_>) -> std::io::Result<()> {
        if self.json || !term::stdout_is_terminal() {
            return self.line_or_json(text, line, true);
        }
        let over =
            self.live.take().filter(|live| live.hook == *hook && live.guid == guid && live.mark == term::printed());
        match over {
            Some(live) => term::print_over(live.rows, text)?,
            None => print(text)?,
        }
        self.live =
            Some(Live { hook: hook.clone(), guid: guid.to_string(), mark: term::printed(), rows: term::rows(text) });
        Ok(())
    }

    /// Prints the text or the JSON line. Every feed line goes to stdout, warnings and errors too, so that
    /// `hookfwd dev > feed.log` keeps the whole feed in order; stderr has only logs and the status line.
    /// `-q` keeps what needs attention: warnings, errors, answers other than 2xx and retries.
    fn line_or_json(&self, text: &str, line: Line<'_>, attention: bool) -> std::io::Result<()> {
        if self.json {
            print(&line.to_json())
        } else if self.quiet && !attention {
            Ok(())
        } else {
            print(text)
        }
    }
}

/// A delivery's next attempt, for the status line's countdown.
struct Retry {
    /// `handler unreachable (connection refused)`.
    what: String,
    /// When the attempt is made.
    at: tokio::time::Instant,
}

impl Retry {
    /// `handler unreachable (connection refused), retrying in 2s` at `now`, counting down in whole seconds.
    fn countdown(&self, now: tokio::time::Instant) -> String {
        let left = self.at.saturating_duration_since(now);
        match left.as_millis().div_ceil(1000) {
            0 => format!("{}, retrying now", self.what),
            seconds => format!("{}, retrying in {seconds}s", self.what),
        }
    }
}

/// The last line of a delivery's retry state printed on a terminal.
struct Live {
    hook: HookRef,
    guid: String,
    /// [`term::printed`] right after it: it may be printed over while that has not moved.
    mark: u64,
    /// The rows it took.
    rows: usize,
}

fn now() -> String {
    Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn ago(at: DateTime<Utc>) -> String {
    let seconds = (Utc::now() - at).num_seconds().max(0) as u64;
    format!("{} ago", humantime::format_duration(Duration::from_secs(seconds)))
}

/// `in 59m 58s`: how long until `at`.
fn from_now(at: DateTime<Utc>) -> String {
    let seconds = (at - Utc::now()).num_seconds().max(0) as u64;
    format!("in {}", humantime::format_duration(Duration::from_secs(seconds)))
}

/// `500 {"error":"no such us…`: a rejection's status and the start of its body, on one line.
fn rejection(status: u16, answer: &relay::Answer) -> String {
    const SHOWN: usize = 40;
    let body = answer.text();
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.is_empty() {
        return status.to_string();
    }
    match body.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{status} {}…", &body[..end]),
        None => format!("{status} {body}"),
    }
}

fn status_style(status: u16) -> console::StyledObject<u16> {
    match status {
        200..=299 => style(status).green(),
        400..=499 => style(status).yellow(),
        _ => style(status).red(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_counts_down_in_whole_seconds() {
        let now = tokio::time::Instant::now();
        let what = "handler unreachable (connection refused)".to_string();
        let retry = Retry { what, at: now + Duration::from_millis(1400) };
        assert_eq!(retry.countdown(now), "handler unreachable (connection refused), retrying in 2s");
        let later = now + Duration::from_millis(500);
        assert_eq!(retry.countdown(later), "handler unreachable (connection refused), retrying in 1s");
        let past = now + Duration::from_millis(1400);
        assert_eq!(retry.countdown(past), "handler unreachable (connection refused), retrying now");
    }
}

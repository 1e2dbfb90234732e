//! The feed: how each relay event is rendered, as a text line, a JSON line, or a change of the status line.
//!
//! Where those lines go (stdout, stderr, the status line) is `term`'s concern.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use console::style;
use github::HookRef;
use relay::{Call, Event, HookOrigin};

use crate::args::OutputArgs;
use crate::json::{DeliveryFields, HookFields, Line, ReadySource};
use crate::term::{Status, print, short_guid, visible};
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
    /// Set while the handler is unreachable, so poll updates do not hide it.
    unreachable: Option<String>,
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
            unreachable: None,
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

    /// How the Ready line says deliveries arrive.
    fn mode(&self) -> String {
        if self.context.streaming {
            format!(
                "streaming from blackhole, safety poll every {}",
                humantime::format_duration(self.context.safety_interval)
            )
        } else {
            format!("polling every {}", humantime::format_duration(self.context.interval))
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
                if self.quiet {
                    return Ok(());
                }
                let inspector = match &self.context.inspector {
                    Some(url) => format!("\n      inspect deliveries at {}", style(url).underlined()),
                    None => String::new(),
                };
                print(&format!(
                    "{} Forwarding {}\n      {} · token {} · secret {} · Ctrl-C to stop{inspector}",
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
                if *status < 500 {
                    self.forwarded += 1;
                    if let Some(waiting) = self.waiting.get_mut(hook) {
                        *waiting = waiting.saturating_sub(1);
                    }
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
                self.line_or_json(
                    &text,
                    Line::Forwarded {
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
                    },
                    !(200..300).contains(status),
                )?;
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
            Event::Retrying { hook, item, reason, wait, attempt } => {
                let wait_text = humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)));
                let reason_text = visible(reason);
                // A bare status code means the handler answered: a 502/503/504 says it is restarting,
                // any other 5xx that it is up but rejects this delivery.
                let message = match reason.parse::<u16>() {
                    Ok(status @ 502..=504) => format!("handler unavailable ({status}), retrying in {wait_text}"),
                    Ok(status) => format!("handler rejects {} ({status}), retrying in {wait_text}", item.kind()),
                    Err(_) => format!("handler unreachable ({reason_text}), retrying in {wait_text}"),
                };
                self.status.set(message.clone());
                self.unreachable = Some(message);
                self.line_or_json(
                    &format!(
                        "{}  {} {} [{}]: {reason_text}, retry {attempt} in {wait_text} · from {}",
                        now(),
                        style("!!!").yellow(),
                        visible(&item.kind()),
                        short_guid(&item.guid),
                        visible(&self.source(hook)),
                    ),
                    Line::Retry {
                        hook: HookFields::of(hook),
                        delivery: DeliveryFields::of(item),
                        reason,
                        attempt: *attempt,
                        wait_ms: wait.as_millis() as u64,
                    },
                    true,
                )
            }
            Event::Parked { hook, item, via, attempts, status, answer } => {
                // Parked is handled: the queue moves on, so it leaves the count of those waiting.
                self.unreachable = None;
                if let Some(waiting) = self.waiting.get_mut(hook) {
                    *waiting = waiting.saturating_sub(1);
                }
                self.show_status();
                let source = self.source(hook).to_string();
                let key = if self.context.retry_key { " or press r" } else { "" };
                let text = format!(
                    "{}  {} {} [{}] parked after {attempts} attempts ({}); send it again with `hookfwd replay \
                     --parked`{key} · from {}",
                    now(),
                    style("!!!").red(),
                    visible(&item.kind()),
                    short_guid(&item.guid),
                    visible(&rejection(*status, answer)),
                    visible(&source),
                );
                let line = Line::Parked {
                    hook: HookFields::of(hook),
                    delivery: DeliveryFields::of(item),
                    via: via.as_str(),
                    attempts: *attempts,
                    status: *status,
                    answer: crate::answer::AnswerJson::of(answer),
                };
                self.line_or_json(&text, line, true)
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
                let back = self.down.remove(hook).is_some() || self.up.insert(hook.clone(), true).is_some();
                self.show_status();
                if self.json {
                    return print(
                        &Line::StreamUp { state: "up", hook: HookFields::of(hook), resumed: *resumed }.to_json(),
                    );
                }
                if back && !self.quiet {
                    let gap = if *resumed { "resumed without a gap" } else { "catching up from the API" };
                    return print(&format!("{} the stream for {hook} is back ({gap})", style("stream:").cyan()));
                }
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

    /// The source a hook was set up for; named as `--json` names it if the feed never saw it set up (`replay`).
    fn source(&self, hook: &HookRef) -> Cow<'_, str> {
        match self.sources.get(hook) {
            Some(source) => Cow::Borrowed(source),
            None => Cow::Owned(HookFields::of(hook).source),
        }
    }

    /// The one line shown when the run is stopped (Ctrl-C, SIGTERM): what was forwarded, and what is
    /// left for the next run, which catches it up from GitHub. The status line is cleared first.
    pub fn stopped(&mut self) -> std::io::Result<()> {
        self.status.clear();
        let waiting: usize = self.waiting.values().sum();
        let forwarded = self.forwarded;
        let plural = |n: u64| if n == 1 { "delivery" } else { "deliveries" };
        let left = match waiting {
            0 => "nothing is waiting".to_string(),
            n => format!("{n} still waiting will be caught up next time"),
        };
        self.line_or_json(
            &format!("Stopped: {forwarded} {} forwarded; {left}.", plural(forwarded)),
            Line::Stopped { forwarded, waiting },
            false,
        )
    }

    /// The status line: unreachable handler first, then a GitHub error until a poll succeeds, then a progress bar while a backlog drains, else polling.
    fn show_status(&self) {
        let polled = &self.polled;
        let waiting_for = self.waiting_for.as_ref().filter(|(until, _)| *until > Utc::now());
        if let Some(message) = &self.unreachable {
            let waiting: usize = self.waiting.values().sum();
            self.status.set(format!("{message} · {waiting} waiting · {polled}"));
        } else if let Some(trouble) = &self.trouble {
            self.status.set(format!("{} · retrying · {polled}", visible(trouble)));
        } else if let Some((until, reason)) = waiting_for {
            let at = until.with_timezone(&Local).format("%H:%M:%S");
            self.status.set(format!("waiting until {at}: {} · {polled}", visible(reason)));
        } else if self.total > self.drained + 1 {
            self.status.progress(format!("draining the backlog · {polled}"), self.drained, self.total);
        } else if let Some((hook, reason)) = self.down.iter().next() {
            self.status.set(format!("stream for {hook} down ({reason}), polling · {polled}"));
        } else if self.context.streaming && !self.up.is_empty() {
            self.status.set(format!("streaming · safety {polled}"));
        } else {
            self.status.set(format!("polling · {polled}"));
        }
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

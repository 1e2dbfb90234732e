//! What the user sees: the feed on stdout (text or JSON), logs and the live status line on stderr.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use console::style;
use github::HookRef;
use indicatif::ProgressStyle;
use relay::{Event, HookOrigin, Via};
use serde_json::json;
use tracing::Span;
use tracing_indicatif::IndicatifLayer;
use tracing_indicatif::span_ext::IndicatifSpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::args::OutputArgs;

/// The live status line on stderr; absent when stderr is not a terminal, or with `--json` or `-q`.
#[derive(Clone)]
pub struct Status(Option<Span>);

impl Status {
    /// Replaces the status text.
    pub fn set(&self, message: impl Into<String>) {
        if let Some(span) = &self.0 {
            span.pb_set_style(&spinner_style());
            span.pb_set_message(&message.into());
        }
    }

    /// Shows a progress bar of `done` out of `total`.
    pub fn progress(&self, message: impl Into<String>, done: u64, total: u64) {
        if let Some(span) = &self.0 {
            span.pb_set_style(&bar_style());
            span.pb_set_length(total);
            span.pb_set_position(done);
            span.pb_set_message(&message.into());
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} [{bar:30.cyan/blue}] {pos}/{len} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Sets up tracing on stderr (quiet by default, `-v` for more, `RUST_LOG` overrides) and the status line.
pub fn init_logging(output: &OutputArgs) -> Status {
    let colors = std::env::var_os("NO_COLOR").is_none();
    console::set_colors_enabled(colors && std::io::stdout().is_terminal());
    console::set_colors_enabled_stderr(colors && std::io::stderr().is_terminal());

    let level = match (output.quiet, output.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let indicatif = IndicatifLayer::new().with_max_progress_bars(1, None);
    let show_status = !output.json && !output.quiet && std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(indicatif.get_stderr_writer())
        .with_ansi(console::colors_enabled_stderr())
        .with_target(false)
        .with_filter(filter);
    let status_only = tracing_subscriber::filter::filter_fn(|meta| meta.name() == "status");
    let _ = tracing_subscriber::registry().with(fmt).with(indicatif.with_filter(status_only)).try_init();

    if !show_status {
        return Status(None);
    }
    let span = tracing::info_span!("status");
    span.pb_set_style(&spinner_style());
    span.pb_start();
    Status(Some(span))
}

/// Writes one line to stdout without garbling the status line; a closed stdout is an error, not a panic.
pub fn print(line: &str) -> std::io::Result<()> {
    match tracing_indicatif::writer::get_indicatif_stdout_writer() {
        Some(mut out) => writeln!(out, "{line}"),
        None => writeln!(std::io::stdout().lock(), "{line}"),
    }
}

/// Writes one line to stderr without garbling the status line.
fn eprint(line: &str) -> std::io::Result<()> {
    match tracing_indicatif::writer::get_indicatif_stderr_writer() {
        Some(mut err) => writeln!(err, "{line}"),
        None => writeln!(std::io::stderr().lock(), "{line}"),
    }
}

/// `text` with every control character (an escape sequence's ESC, BEL, CR, a newline, …) written
/// out as `\u{1b}`-style text, so that text from GitHub, the handler or the network cannot retitle
/// the terminal, clear it, or forge a feed line. JSON output needs none of this: it escapes them.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

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
}

/// Renders relay events as the feed and the status line.
pub struct Feed {
    json: bool,
    quiet: bool,
    status: Status,
    context: Context,
    hooks: Vec<String>,
    /// Sources that could not be set up, held until the Ready line.
    failed: Vec<String>,
    /// Set while the handler is unreachable, so poll updates do not hide it.
    unreachable: Option<String>,
    /// Deliveries waiting to be forwarded, per hook, as of each hook's last poll.
    waiting: HashMap<HookRef, usize>,
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
}

impl Feed {
    /// A feed for the given output options.
    pub fn new(output: &OutputArgs, status: Status, context: Context) -> Self {
        Self {
            json: output.json,
            quiet: output.quiet,
            status,
            context,
            hooks: Vec::new(),
            failed: Vec::new(),
            unreachable: None,
            waiting: HashMap::new(),
            drained: 0,
            total: 0,
            polled: String::new(),
            down: HashMap::new(),
            up: HashMap::new(),
            waiting_for: None,
        }
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
            Event::HookReady { source, hook, origin, hook_url, target, events } => {
                let origin = match origin {
                    HookOrigin::Found => "found",
                    HookOrigin::Created => "created",
                    HookOrigin::App => "app",
                };
                let via = hook_url.as_deref().map(|url| format!(" via {}", visible(url))).unwrap_or_default();
                let id = hook.id().map(|id| format!("hook {id}, ")).unwrap_or_default();
                self.hooks.push(format!("{} ({id}{origin}){via} → {target}", visible(source)));
                if self.json {
                    print(
                        &json!({"type": "hook", "source": source, "hook_id": hook.id(), "origin": origin,
                            "hook_url": hook_url, "target": target.as_str(), "events": events})
                        .to_string(),
                    )?;
                }
                Ok(())
            }
            Event::SourceFailed { source, error } => {
                let line = format!("{} {}: {}", style("✗").red(), visible(source), visible(error));
                if self.json {
                    print(&json!({"type": "error", "source": source, "message": error}).to_string())
                } else {
                    // Shown with the Ready line; when no source starts, the final error says it all.
                    self.failed.push(line);
                    Ok(())
                }
            }
            Event::Ready { sources } => {
                for line in std::mem::take(&mut self.failed) {
                    eprint(&line)?;
                }
                self.status.set(format!("{sources} source(s) · {}", self.mode()));
                if self.json {
                    let mode = if self.context.streaming { "stream" } else { "poll" };
                    return print(
                        &json!({"type": "ready", "sources": self.hooks, "interval_ms": self.context.interval.as_millis() as u64,
                            "mode": mode, "safety_interval_ms": self.context.safety_interval.as_millis() as u64,
                            "token": self.context.token, "secret": self.context.secret})
                        .to_string(),
                    );
                }
                if self.quiet {
                    return Ok(());
                }
                print(&format!(
                    "{} Forwarding {}\n      {} · token {} · secret {} · Ctrl-C to stop",
                    style("Ready!").green().bold(),
                    self.hooks.join(", "),
                    self.mode(),
                    self.context.token,
                    self.context.secret,
                ))
            }
            Event::Delivering { item, .. } => {
                if self.json || self.quiet {
                    return Ok(());
                }
                let redelivery =
                    if item.redelivery { style(" (redelivery)").yellow().to_string() } else { String::new() };
                print(&format!(
                    "{}  {} {} [{}]{redelivery} · delivered {}",
                    now(),
                    style("-->").cyan(),
                    style(visible(&item.kind())).bold(),
                    visible(&item.guid),
                    ago(item.delivered_at),
                ))
            }
            Event::Answered { item, target, status, latency, via, .. } => {
                self.unreachable = None;
                self.drained += 1;
                self.show_status();
                let text = format!(
                    "{}  {} [{}] POST {target} [{} ms] [{}]",
                    now(),
                    style("<--").cyan(),
                    status_style(*status),
                    latency.as_millis(),
                    visible(&item.guid),
                );
                self.line_or_json(
                    &text,
                    json!({"type": "forwarded", "id": (*via == Via::Api).then_some(item.id), "guid": item.guid,
                        "via": via.as_str(), "event": item.event,
                        "action": item.action, "redelivery": item.redelivery, "delivered_at": item.delivered_at,
                        "target": target.as_str(), "status": status, "latency_ms": latency.as_millis() as u64}),
                    *status >= 400,
                )
            }
            Event::Retrying { item, reason, wait, attempt, .. } => {
                let wait_text = humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)));
                let reason_text = visible(reason);
                let message = format!("handler unreachable ({reason_text}), retrying in {wait_text}");
                self.status.set(message.clone());
                self.unreachable = Some(message);
                self.line_or_json(
                    &format!(
                        "{}  {} {} [{}]: {reason_text}, retry {attempt} in {wait_text}",
                        now(),
                        style("!!!").yellow(),
                        visible(&item.kind()),
                        visible(&item.guid)
                    ),
                    json!({"type": "retry", "id": item.id, "guid": item.guid, "reason": reason,
                        "attempt": attempt, "wait_ms": wait.as_millis() as u64}),
                    false,
                )
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
                        &json!({"type": "stream", "state": "up", "hook": hook.to_string(), "resumed": resumed})
                            .to_string(),
                    );
                }
                if back && !self.quiet {
                    let gap = if *resumed { "resumed without a gap" } else { "catching up from the API" };
                    return eprint(&format!("{} the stream for {hook} is back ({gap})", style("stream:").cyan()));
                }
                Ok(())
            }
            // Only /readyz and --max-stall use it (crate::admin).
            Event::StreamAlive { .. } => Ok(()),
            Event::StreamDown { hook, reason } => {
                self.down.insert(hook.clone(), reason.clone());
                self.show_status();
                if self.json {
                    return print(
                        &json!({"type": "stream", "state": "down", "hook": hook.to_string(), "reason": reason})
                            .to_string(),
                    );
                }
                if self.quiet {
                    return Ok(());
                }
                eprint(&format!(
                    "{} the stream for {hook} dropped ({reason}); polling every {} until it is back",
                    style("stream:").yellow(),
                    humantime::format_duration(self.context.interval)
                ))
            }
            Event::Summary { source, rejected } => {
                if self.json {
                    return print(&json!({"type": "summary", "source": source, "rejected": rejected}).to_string());
                }
                if *rejected == 0 {
                    return Ok(());
                }
                eprint(&format!(
                    "{} {rejected} pushed deliveries of {source} were rejected: their signatures did not verify",
                    style("warning:").yellow()
                ))
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
                    print(&json!({"type": "waiting", "until": until, "reason": reason}).to_string())
                } else if repeated || self.quiet {
                    Ok(())
                } else {
                    eprint(&format!("{} {message}", style("waiting:").yellow()))
                }
            }
            Event::Warning { message } => self.line_or_json(
                &format!("{} {}", style("warning:").yellow(), visible(message)),
                json!({"type": "warning", "message": message}),
                true,
            ),
            Event::Error { hook, message } => {
                let hook = hook.as_ref().map(|hook| hook.to_string());
                self.line_or_json(
                    &format!("{} {}", style("error:").red(), visible(message)),
                    json!({"type": "error", "hook": hook, "message": message}),
                    true,
                )
            }
        }
    }

    /// The status line: unreachable handler first, then a progress bar while a backlog drains, else polling.
    fn show_status(&self) {
        let polled = &self.polled;
        let waiting_for = self.waiting_for.as_ref().filter(|(until, _)| *until > Utc::now());
        if let Some(message) = &self.unreachable {
            let waiting: usize = self.waiting.values().sum();
            self.status.set(format!("{message} · {waiting} waiting · {polled}"));
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

    fn line_or_json(&self, text: &str, object: serde_json::Value, important: bool) -> std::io::Result<()> {
        if self.json {
            print(&object.to_string())
        } else if self.quiet && !important {
            Ok(())
        } else if important {
            // Errors and warnings go to stderr so that stdout stays the feed.
            eprint(text)
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
    fn control_characters_are_written_out() {
        assert_eq!(visible("push.opened"), "push.opened");
        assert!(matches!(visible("plain ünïcode"), Cow::Borrowed(_)));
        let shown = visible("a\u{1b}]0;title\u{7}b\r\n[fake line\u{9b}c\u{7f}");
        assert_eq!(shown, "a\\u{1b}]0;title\\u{7}b\\u{d}\\u{a}[fake line\\u{9b}c\\u{7f}");
        assert!(!shown.chars().any(char::is_control), "{shown}");
    }
}

//! `hookfwd send`: a synthetic, GitHub-identical delivery, for smoke tests that must not depend on GitHub.
//!
//! The payload is GitHub's own example for the event and action (the `webhooks` catalogue), a file, or
//! a saved fixture, edited by `--set` and `--repo`. The request is built by [`relay::Outgoing::synthetic`],
//! the same code that shapes forwarded deliveries, so a handler sees the headers, user agent and
//! signatures it would get from GitHub.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Local;
use console::style;
use github::Owner;
use relay::{Forwarder, Outgoing};
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt;
use webhooks::Edit;

use crate::args::{OutputArgs, SendArgs};
use crate::exit::{FAILURE, REJECTED, USAGE, fail};
use crate::json::Line;
use crate::schema::SchemaCheck;
use crate::term::{Status, print};

/// How long one request may take before the handler counts as unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One payload to send, edited and ready to sign.
struct Prepared {
    event: String,
    /// `event.action`, or the event alone, for the feed.
    kind: String,
    action: Option<String>,
    payload: Vec<u8>,
}

/// Sends each named event (`--repeat` times, each a new guid), and checks every answer.
pub async fn send(args: SendArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    if args.list {
        return list(output);
    }
    // clap requires --to unless --list.
    let Some(to) = args.to.clone() else { return Err(fail(USAGE, "give the handler with --to URL")) };
    // An empty HOOKFWD_SECRET is as good as none; signing with "" would only confuse.
    let secret = args.secret.clone().filter(|secret| !secret.expose().is_empty());
    let mut schema = args.check_schema.then(SchemaCheck::default);
    if let Some(path) = &args.fixture {
        let mut prepare = |file: &Path, fixture: &mut crate::fixture::Fixture| -> anyhow::Result<()> {
            let from = format!("the fixture {}", file.display());
            let bytes = fixture.bytes().map_err(|why| fail(USAGE, format!("{from}: {why}")))?;
            let payload = edit(bytes, None, args.repo.as_ref(), &edits(&args), output, &from)?;
            let action = action_of(&payload);
            if let Some(check) = &mut schema {
                report(check, &fixture.event, action.as_deref(), &payload, output)?;
            }
            let text = String::from_utf8(payload).map_err(|_| fail(USAGE, format!("{from} is not UTF-8")))?;
            // The edited payload is JSON (it parsed to be edited).
            fixture.payload = Some(RawValue::from_string(text).expect("an edited payload is JSON"));
            (fixture.body, fixture.body_base64, fixture.action) = (None, None, action);
            Ok(())
        };
        return crate::fixture::send(path, &to, secret.as_ref(), output, &mut prepare).await;
    }

    // Every payload is ready before the first is sent: half a list sent is a confusing result.
    let mut prepared = Vec::new();
    let stdin = match &args.payload {
        Some(path) if args.names.len() > 1 => {
            return Err(fail(
                USAGE,
                format!("--payload {} goes with one event, not {}", path.display(), args.names.len()),
            ));
        }
        Some(path) => Some(read_payload(path).await?),
        None => None,
    };
    for Name { event, action, strict } in names(&args)? {
        let (bytes, from, set_action) = match &stdin {
            Some(bytes) => {
                warn_unknown_action(&event, action.as_deref(), output)?;
                let path = args.payload.as_deref().unwrap_or(Path::new("-"));
                (bytes.clone(), format!("the payload {}", describe(path)), action)
            }
            None => example(&event, action.as_deref(), strict, output)?,
        };
        let payload = edit(bytes, set_action.as_deref(), args.repo.as_ref(), &edits(&args), output, &from)?;
        let action = action_of(&payload);
        let kind = match &action {
            Some(action) => format!("{event}.{action}"),
            None => event.clone(),
        };
        prepared.push(Prepared { event, kind, action, payload });
    }
    if secret.is_none() {
        warn(output, "no_local_secret", "no secret (--secret or HOOKFWD_SECRET): the delivery is sent unsigned")?;
    }

    let forwarder = Forwarder::new(to.clone(), TIMEOUT);
    let target = to.0.as_str();
    let total = prepared.len() as u64 * u64::from(args.repeat);
    let mut done = 0;
    let mut unexpected: Vec<u16> = Vec::new();
    for Prepared { event, kind, action, payload } in &prepared {
        if let Some(check) = &mut schema {
            report(check, event, action.as_deref(), payload, output)?;
        }
        for _ in 0..args.repeat {
            if total > 1 {
                status.progress(format!("sending {kind} to {target}"), done, total);
            } else {
                status.set(format!("sending {kind} to {target}"));
            }
            done += 1;
            let request = Outgoing::synthetic(event, payload, secret.as_ref());
            let guid = request.header("X-GitHub-Delivery").unwrap_or_default().to_string();
            let response = forwarder.send(&request).await.map_err(|error| {
                if error.is_transient() {
                    fail(FAILURE, format!("could not reach the handler at {target}: {error}"))
                } else {
                    // Only what the user gave (an event name with a line break, say) can make it so.
                    fail(USAGE, format!("the delivery cannot be sent: {error}"))
                }
            })?;
            let expected = match args.expect_status {
                Some(want) => response.status == want,
                None => (200..300).contains(&response.status),
            };
            if !expected {
                unexpected.push(response.status);
            }
            if output.json {
                let line = Line::Sent {
                    event,
                    action: action.as_deref(),
                    guid: &guid,
                    fixture: None,
                    status: response.status,
                    ok: (200..300).contains(&response.status),
                    latency_ms: response.latency.as_millis() as u64,
                    target,
                    answer: crate::answer::AnswerJson::of(&response.answer),
                };
                print(&line.to_json())?;
            } else if !output.quiet || !expected {
                print(&format!(
                    "{}  {} {} [{guid}] {} [{}] POST {target} [{} ms]",
                    Local::now().format("%Y-%m-%d %H:%M:%S"),
                    style("-->").cyan(),
                    style(kind).bold(),
                    style("<--").cyan(),
                    status_style(response.status, expected),
                    response.latency.as_millis(),
                ))?;
                // The body is shown for an unexpected answer (even a 2xx, when another status was asked
                // for), and for an expected one only with -v.
                let status = if expected { 200 } else { 0 };
                for line in crate::answer::excerpt(status, &response.answer, output.verbose) {
                    print(&line)?;
                }
            }
        }
    }

    if unexpected.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let wanted = match args.expect_status {
        Some(want) => want.to_string(),
        None => "2xx".to_string(),
    };
    let mut statuses = unexpected.clone();
    statuses.sort_unstable();
    statuses.dedup();
    let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
    let count = match total {
        1 => String::new(),
        total => format!(" to {} of {total} deliveries", unexpected.len()),
    };
    // A handler that checks signatures answers 400, 401 or 403 to a wrong secret; say so.
    let hint = match (args.expect_status, unexpected.iter().any(|status| matches!(status, 400 | 401 | 403))) {
        (None, true) if secret.is_some() => " (does HOOKFWD_SECRET match the handler's secret?)",
        (None, true) => " (the handler may require a signature: set HOOKFWD_SECRET)",
        _ => "",
    };
    Err(fail(REJECTED, format!("the handler answered {}{count}, not the expected {wanted}{hint}", statuses.join(", "))))
}

/// `--list`: every event/action pair, one a line (or a JSON line each).
fn list(output: &OutputArgs) -> anyhow::Result<ExitCode> {
    for example in webhooks::examples() {
        let name = example.name();
        if output.json {
            let origin = match example.origin {
                webhooks::Origin::Example => "example",
                webhooks::Origin::Schema => "schema",
            };
            print(&Line::Example { name: &name, event: example.event, action: example.action, origin }.to_json())?;
        } else {
            print(&name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What to send: an event, and an action that is either part of an EVENT.ACTION name (GitHub must send
/// it: `strict`) or `--action`'s (any action is set, with a warning when GitHub never sends it).
struct Name {
    event: String,
    action: Option<String>,
    strict: bool,
}

/// The names asked for: the EVENT[.ACTION] arguments (or `--event`), each with `--action` if it has none.
fn names(args: &SendArgs) -> anyhow::Result<Vec<Name>> {
    let name = |name: &str| match name.split_once('.') {
        // Event names have no dots; actions may (repository_dispatch's are free text).
        Some((event, action)) if args.payload.is_none() || args.event.is_none() => {
            Name { event: event.to_string(), action: Some(action.to_string()), strict: true }
        }
        _ => Name { event: name.to_string(), action: args.action.clone(), strict: false },
    };
    match &args.event {
        _ if !args.names.is_empty() => Ok(args.names.iter().map(|text| name(text)).collect()),
        Some(event) => Ok(vec![name(event)]),
        None => Err(fail(
            USAGE,
            "name the event to send, such as `hookfwd send pull_request.opened` (`hookfwd send --list` lists them)",
        )),
    }
}

/// GitHub's example for `event` with `action`; an action GitHub never sends is warned about and set on
/// the event's usual example. Returns the bytes, what they are, and the action still to set.
fn example(
    event: &str,
    action: Option<&str>,
    strict: bool,
    output: &OutputArgs,
) -> anyhow::Result<(Vec<u8>, String, Option<String>)> {
    let name = action.map(|action| format!("{event}.{action}")).unwrap_or_else(|| event.to_string());
    match webhooks::lookup(&name) {
        Ok(example) => {
            Ok((example.payload().as_bytes().to_vec(), format!("GitHub's {} example", example.name()), None))
        }
        Err(webhooks::Error::UnknownAction { .. }) if !strict => {
            // lookup found the event, so it has a usual example.
            let example = webhooks::find(event, None).expect("a known event has an example");
            if example.action.is_none() {
                return Err(fail(USAGE, format!("`{event}` deliveries have no action; leave out --action")));
            }
            warn_unknown_action(event, action, output)?;
            Ok((
                example.payload().as_bytes().to_vec(),
                format!("GitHub's {} example", example.name()),
                action.map(String::from),
            ))
        }
        Err(error) => Err(fail(
            USAGE,
            format!("{error} (`hookfwd send --list` lists every event and action; --payload FILE sends any other)"),
        )),
    }
}

/// A warning on stderr, or a `warning` line with `--json` (none with `-q`).
fn warn(output: &OutputArgs, kind: &str, message: &str) -> std::io::Result<()> {
    if output.json {
        print(&Line::Warning { message, kind }.to_json())
    } else if !output.quiet {
        eprintln!("{} {}", style("warning:").yellow(), crate::term::visible(message));
        Ok(())
    } else {
        Ok(())
    }
}

/// A warning when GitHub never sends `event` with `action`, so a handler tested with it proves little.
fn warn_unknown_action(event: &str, action: Option<&str>, output: &OutputArgs) -> std::io::Result<()> {
    let (Some(action), Some(actions)) = (action, webhooks::actions(event)) else { return Ok(()) };
    if actions.contains(&action) {
        return Ok(());
    }
    let warning = if actions.is_empty() {
        format!("GitHub sends {event} without an action; `{action}` is sent anyway")
    } else {
        let hint = match webhooks::lookup(&format!("{event}.{action}")) {
            Err(webhooks::Error::UnknownAction { suggestion: Some(name), .. }) => format!("; did you mean `{name}`?"),
            _ => String::new(),
        };
        format!(
            "GitHub never sends {event} with action `{action}` (it sends {}); sent anyway{hint}",
            actions.join(", ")
        )
    };
    warn(output, "unknown_action", &warning)
}

/// The payload with its action set, made to follow `--repo`, and edited by `--set` and `--set-string`;
/// byte-exact when nothing is asked.
fn edit(
    bytes: Vec<u8>,
    action: Option<&str>,
    repo: Option<&Owner>,
    edits: &[Edit],
    output: &OutputArgs,
    from: &str,
) -> anyhow::Result<Vec<u8>> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        Ok(_) if bytes.trim_ascii_start().starts_with(b"{") => {}
        Ok(_) => return Err(fail(USAGE, format!("{from} is JSON but not an object, which a webhook payload is"))),
        Err(error) => return Err(fail(USAGE, format!("{from} is not valid JSON ({error})"))),
    }
    let cannot = |error: webhooks::Error| fail(USAGE, format!("cannot edit {from}: {error}"));
    let mut payload = bytes;
    if let Some(action) = action {
        payload = Edit::apply(&payload, &[Edit::set_string("action", action)]).map_err(cannot)?.payload;
    }
    if let Some(Owner::Repo { owner, repo }) = repo {
        payload = webhooks::follow_repo(&payload, owner, repo).map_err(cannot)?;
    }
    if edits.is_empty() {
        return Ok(payload);
    }
    let edited = Edit::apply(&payload, edits).map_err(cannot)?;
    for missing in &edited.missing {
        let nearest = match &missing.nearest {
            Some(nearest) => format!(" (the nearest is `{nearest}`)"),
            None => String::new(),
        };
        warn(output, "set_added", &format!("`{}` is not in {from}; added{nearest}", missing.path))?;
    }
    Ok(edited.payload)
}

/// `--set`, then `--set-string`.
fn edits(args: &SendArgs) -> Vec<Edit> {
    args.set.iter().chain(&args.set_string).cloned().collect()
}

/// The payload `hookfwd send EVENT[.ACTION] --set …` sends (GitHub's example, edited), with nothing printed:
/// for `hookfwd mcp`'s send_event. Returns the event, the payload's action and its bytes.
pub fn example_payload(name: &str, edits: &[Edit]) -> anyhow::Result<(String, Option<String>, Vec<u8>)> {
    let silent = OutputArgs { json: false, quiet: true, verbose: 0 };
    let (event, action) = match name.split_once('.') {
        Some((event, action)) => (event, Some(action)),
        None => (name, None),
    };
    let (bytes, from, _) = example(event, action, true, &silent)?;
    let payload = edit(bytes, None, None, edits, &silent, &from)?;
    Ok((event.to_string(), action_of(&payload), payload))
}

/// Checks a payload and prints its mismatches (`--check-schema`).
fn report(
    check: &mut SchemaCheck,
    event: &str,
    action: Option<&str>,
    payload: &[u8],
    output: &OutputArgs,
) -> anyhow::Result<()> {
    let Some(report) = check.payload(event, action, payload) else { return Ok(()) };
    if output.json {
        print(&crate::schema::line(event, action, None, &report).to_json())?;
    } else {
        let kind = action.map(|action| format!("{event}.{action}")).unwrap_or_else(|| event.to_string());
        print(&crate::schema::text(&kind, None, &report))?;
    }
    Ok(())
}

/// Reads a payload file, or stdin for `-`; a failure is a usage error naming the file.
async fn read_payload(path: &Path) -> anyhow::Result<Vec<u8>> {
    let read = if path == Path::new("-") {
        let mut bytes = Vec::new();
        tokio::io::stdin().read_to_end(&mut bytes).await.map(|_| bytes)
    } else {
        tokio::fs::read(path).await
    };
    read.map_err(|error| fail(USAGE, format!("could not read the payload {}: {error}", describe(path))))
}

fn describe(path: &Path) -> String {
    if path == Path::new("-") { "from stdin".to_string() } else { format!("file {}", path.display()) }
}

/// The payload's `action`, when it has one, for the feed line.
fn action_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Action {
        action: Option<String>,
    }
    serde_json::from_slice::<Action>(payload).ok().and_then(|a| a.action)
}

fn status_style(status: u16, expected: bool) -> console::StyledObject<u16> {
    match status {
        _ if expected => style(status).green(),
        400..=499 => style(status).yellow(),
        _ => style(status).red(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_action_for_the_feed() {
        assert_eq!(action_of(br#"{"action":"opened"}"#).as_deref(), Some("opened"));
        assert_eq!(action_of(br#"{"ref":"x"}"#), None);
    }
}

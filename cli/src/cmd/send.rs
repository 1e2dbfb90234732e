//! `hookfwd send`: a synthetic, GitHub-identical delivery, for smoke tests that must not depend on GitHub.
//!
//! The request is built by [`relay::Outgoing::synthetic`], the same code that shapes forwarded
//! deliveries, so a handler sees the headers, user agent and signatures it would get from GitHub.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Local;
use console::style;
use relay::{Forwarder, Outgoing};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt;

use crate::args::{OutputArgs, SendArgs};
use crate::exit::{FAILURE, REJECTED, USAGE, fail};
use crate::json::Line;
use crate::term::{Status, print};

/// How long one request may take before the handler counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `--repeat` synthetic deliveries, each with a new guid, and checks every answer.
pub async fn send(args: SendArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    // An empty HOOKFWD_SECRET is as good as none; signing with "" would only confuse.
    let secret = args.secret.clone().filter(|secret| !secret.expose().is_empty());
    if let Some(path) = &args.fixture {
        return crate::fixture::send(path, &args.to, secret.as_ref(), output).await;
    }
    // clap requires --event unless --fixture is given.
    let event = args.event.clone().unwrap_or_default();
    if let Some(warning) = args.action.as_deref().and_then(|action| unknown_action(&event, action))
        && !output.quiet
    {
        eprintln!("{} {warning}", style("warning:").yellow());
    }
    let payload = payload(&args, &event).await?;
    let action = action_of(&payload);
    let kind = match &action {
        Some(action) => format!("{}.{action}", event),
        None => event.clone(),
    };
    if secret.is_none() && !output.quiet && !output.json {
        eprintln!(
            "{} no secret (--secret or HOOKFWD_SECRET): the delivery is sent unsigned",
            style("warning:").yellow()
        );
    }

    let forwarder = Forwarder::new(args.to.clone(), TIMEOUT);
    let target = args.to.0.as_str();
    let mut unexpected: Vec<u16> = Vec::new();
    for done in 0..args.repeat {
        if args.repeat > 1 {
            status.progress(format!("sending {kind} to {target}"), u64::from(done), u64::from(args.repeat));
        } else {
            status.set(format!("sending {kind} to {target}"));
        }
        let request = Outgoing::synthetic(&event, &payload, secret.as_ref());
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
                event: &event,
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
                style(&kind).bold(),
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
    let count = match args.repeat {
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

/// A warning when GitHub never sends `event` with `action`, so a handler tested with it proves little.
fn unknown_action(event: &str, action: &str) -> Option<String> {
    let actions = github::samples::actions(event)?;
    if actions.contains(&action) {
        return None;
    }
    Some(if actions.is_empty() {
        format!("GitHub sends {event} without an action; `{action}` is sent anyway")
    } else {
        format!("GitHub never sends {event} with action `{action}` (it sends {}); sent anyway", actions.join(", "))
    })
}

/// The payload bytes: the `--payload` file (or stdin) byte-exact, else the built-in sample;
/// with `--action`, the same JSON with its `action` set.
async fn payload(args: &SendArgs, event: &str) -> anyhow::Result<Vec<u8>> {
    let (bytes, from) = match &args.payload {
        Some(path) => (read_payload(path).await?, format!("the payload {}", describe(path))),
        None => match github::samples::sample(event) {
            Some(sample) => (sample.as_bytes().to_vec(), format!("the built-in {} sample", event)),
            None => {
                return Err(fail(
                    USAGE,
                    format!(
                        "there is no built-in sample for the event `{}`; give one of {}, or --payload FILE",
                        event,
                        github::samples::EVENTS.join(", ")
                    ),
                ));
            }
        },
    };
    let object = match serde_json::from_slice::<Object>(&bytes) {
        Ok(object) => object,
        Err(error) if error.is_data() => {
            return Err(fail(USAGE, format!("{from} is JSON but not an object, which a webhook payload is")));
        }
        Err(error) => return Err(fail(USAGE, format!("{from} is not valid JSON ({error})"))),
    };
    let Some(action) = &args.action else { return Ok(bytes) };
    if args.payload.is_none() && object.get("action").is_none() {
        return Err(fail(USAGE, format!("`{}` deliveries have no action; leave out --action", event)));
    }
    Ok(object.with_action(action))
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

/// A JSON object's members in their original order, each value kept as its original text,
/// so that setting `action` leaves every other byte of the values as it was.
#[derive(Debug)]
struct Object(Vec<(String, Box<RawValue>)>);

impl Object {
    fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_ref())
    }

    /// The object as JSON with `action` replaced in place, or added first (where GitHub puts it).
    fn with_action(self, action: &str) -> Vec<u8> {
        let action = serde_json::Value::from(action).to_string();
        let mut members: Vec<String> = Vec::with_capacity(self.0.len() + 1);
        let mut replaced = false;
        for (name, value) in &self.0 {
            let value = if name == "action" {
                replaced = true;
                action.as_str()
            } else {
                value.get()
            };
            members.push(format!("{}:{value}", serde_json::Value::from(name.as_str())));
        }
        if !replaced {
            members.insert(0, format!("\"action\":{action}"));
        }
        format!("{{{}}}", members.join(",")).into_bytes()
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(Object(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Object {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn setting_the_action_keeps_order_and_other_values_byte_exact() {
        let text = r#"{"zen": "x",  "action":"opened", "n": 1.50, "nested": {"b": 1, "a": [1, 2]}}"#;
        let out = String::from_utf8(object(text).with_action("closed")).unwrap();
        assert_eq!(out, r#"{"zen":"x","action":"closed","n":1.50,"nested":{"b": 1, "a": [1, 2]}}"#);
    }

    #[test]
    fn adds_a_missing_action_first() {
        let out = String::from_utf8(object(r#"{"ref":"refs/heads/main"}"#).with_action("a\"b")).unwrap();
        assert_eq!(out, r#"{"action":"a\"b","ref":"refs/heads/main"}"#);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["action"], "a\"b");
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert!(serde_json::from_str::<Object>("[1]").unwrap_err().is_data());
        assert!(serde_json::from_str::<Object>("{").unwrap_err().is_eof());
        assert!(serde_json::from_str::<Object>("nope").unwrap_err().is_syntax());
    }

    #[test]
    fn reads_the_action_for_the_feed() {
        assert_eq!(action_of(br#"{"action":"opened"}"#).as_deref(), Some("opened"));
        assert_eq!(action_of(br#"{"ref":"x"}"#), None);
    }
}

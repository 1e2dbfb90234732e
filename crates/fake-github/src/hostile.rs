//! The hostile answers of [`crate::faults::Hostile`]: GitHub's answer to a deliveries call,
//! rewritten into a broken one, with huge bodies generated as they are sent rather than held.

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::Inner;
use crate::faults::Hostile;
use crate::http::{Generated, Reply};

/// What [`Hostile::ControlCharacters`] appends to every guid: a title change, a bell, a screen
/// clear, and a carriage return and newline that start a forged feed line.
pub const CONTROL_SUFFIX: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\n[fake line";

/// Which deliveries call a request is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Single,
}

fn kind(method: &Method, segments: &[&str]) -> Option<Kind> {
    if method != Method::GET {
        return None;
    }
    match segments {
        [.., "deliveries"] => Some(Kind::List),
        [.., "deliveries", id] if id.parse::<u64>().is_ok() => Some(Kind::Single),
        _ => None,
    }
}

/// `reply` (GitHub's 200 to a deliveries call) made hostile, when a hostile answer is in force.
pub(crate) fn apply(
    inner: &Inner,
    method: &Method,
    segments: &[&str],
    query: &[(String, String)],
    reply: Reply,
) -> Reply {
    let Some(kind) = kind(method, segments) else { return reply };
    if reply.status != StatusCode::OK {
        return reply;
    }
    let applies = |answer: &Hostile| match answer {
        Hostile::EndlessList
        | Hostile::LinkLoop
        | Hostile::EndlessPages
        | Hostile::MalformedItem { .. }
        | Hostile::SpuriousNotModified => kind == Kind::List,
        Hostile::HugeDelivery { .. } => kind == Kind::Single,
        Hostile::ControlCharacters => true,
        Hostile::FarRateReset { .. } => false,
    };
    let Some(answer) = inner.faults.take_hostile(applies) else { return reply };
    let link = |query: String| format!("<{}{}?{query}>; rel=\"next\"", inner.api_url, segments.join("/"));
    let param = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    match answer {
        Hostile::EndlessList => {
            let item = br#"{"id":1,"guid":"0b1c2d3e-endless","delivered_at":"2026-01-01T00:00:00Z","redelivery":false,"duration":0.1,"status":"OK","status_code":200,"event":"push","action":null},"#;
            without_etag(Reply::generated(reply, Generated::new(b"[", item, None, b"]")))
        }
        Hostile::HugeDelivery { bytes } => {
            // The real answer with one more field in front: `{"padding":"aaaa…", …the rest}`.
            let rest = reply.body.slice(1..);
            let mut tail = b"\",".to_vec();
            tail.extend_from_slice(&rest);
            without_etag(Reply::generated(reply, Generated::new(br#"{"padding":""#, b"a", Some(bytes), &tail)))
        }
        Hostile::LinkLoop => {
            let per_page = param("per_page").unwrap_or("30").to_string();
            with_link(reply, link(format!("per_page={per_page}&cursor=")))
        }
        Hostile::EndlessPages => {
            let mut kept: Vec<String> =
                query.iter().filter(|(key, _)| key != "hop").map(|(key, value)| format!("{key}={value}")).collect();
            kept.push(format!("hop={}", inner.faults.next_hop()));
            with_link(reply, link(kept.join("&")))
        }
        Hostile::MalformedItem { event } => edit_json(reply, |value| {
            for item in value.as_array_mut().into_iter().flatten() {
                if item.get("event").and_then(Value::as_str) == Some(event.as_str()) {
                    item["delivered_at"] = Value::from("not a time");
                }
            }
        }),
        Hostile::SpuriousNotModified => {
            let mut not_modified = Reply::empty(StatusCode::NOT_MODIFIED);
            not_modified.headers = reply.headers;
            not_modified.counted = false;
            not_modified
        }
        Hostile::ControlCharacters => edit_json(reply, |value| {
            let items: Vec<&mut Value> = match value {
                Value::Array(items) => items.iter_mut().collect(),
                single => vec![single],
            };
            for item in items {
                if let Some(guid) = item.get("guid").and_then(Value::as_str) {
                    item["guid"] = Value::from(format!("{guid}{CONTROL_SUFFIX}"));
                }
            }
        }),
        Hostile::FarRateReset { .. } => reply,
    }
}

/// `x-ratelimit-remaining` and `x-ratelimit-reset` as a [`Hostile::FarRateReset`] in force says.
pub(crate) fn rate_override(inner: &Inner) -> Option<(u32, i64)> {
    let answer = inner.faults.take_hostile(|answer| matches!(answer, Hostile::FarRateReset { .. }))?;
    let Hostile::FarRateReset { remaining, reset_in_s } = answer else { return None };
    let reset = chrono::Utc::now().timestamp().saturating_add(i64::try_from(reset_in_s).unwrap_or(i64::MAX));
    Some((remaining, reset))
}

/// A generated body has no ETag worth sending.
fn without_etag(mut reply: Reply) -> Reply {
    reply.headers.retain(|(name, _)| *name != "etag");
    reply
}

fn with_link(mut reply: Reply, link: String) -> Reply {
    reply.headers.retain(|(name, _)| *name != "link");
    reply.headers.push(("link", link));
    reply
}

fn edit_json(mut reply: Reply, edit: impl FnOnce(&mut Value)) -> Reply {
    if let Ok(mut value) = serde_json::from_slice::<Value>(&reply.body) {
        edit(&mut value);
        // Serialising a Value cannot fail: its keys are strings.
        reply.body = serde_json::to_vec(&value).unwrap_or_default().into();
    }
    reply
}

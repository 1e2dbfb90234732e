//! The control surface under `/_fake/`, so another process can drive the `fake-github` binary.
//!
//! Unauthenticated, untouched by faults, and not counted in [`crate::Stats`]. Under a path prefix
//! (`--prefix /api/v3`) it moves with the API, to `{api_url}_fake/`. JSON in, JSON out:
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /_fake/blackhole` (any path below it too) | anything | 200 `{}`, stores nothing |
//! | `POST /_fake/tokens` | `{"token", "scopes"}` | 204 |
//! | `POST /_fake/repos` | `{"full_name"}` | `{"id"}` |
//! | `POST /_fake/orgs` | `{"org"}` | 204 |
//! | `POST /_fake/hooks` | `{"owner", "url", "events"?, "secret"?, "content_type"?, "active"?}` | `{"id"}` |
//! | `POST /_fake/emit` | `{"owner", "event", "payload"?}` (default: the project's sample) | `{"deliveries": [id…]}` |
//! | `GET /_fake/hooks/{id}/deliveries` | | `[{id, guid, event, action, redelivery, status_code, delivered_at}]` |
//! | `POST /_fake/faults` | `{"latency_ms"?, "server_error_rate"?, "drop_rate"?, "secondary_limit"?: {"n", "retry_after_s"}, "exhaust_primary_s"?, "retention_s"?, "clock_skew_s"?, "clear"?}` | 204 |
//! | `POST /_fake/poison` | `{"delivery", "delivered_at"?, "headers"?: [[name, value]…], "body"?}` | 204 |
//! | `POST /_fake/hostile` | `{"answer", …its fields, "times"?}` (see [`crate::Hostile`]), or `{"clear": true}` | 204 |
//! | `POST /_fake/rate_limit` | `{"per_hour"}` | 204 |
//! | `POST /_fake/secondary` | `{"per_minute"?, "concurrent"?}` (a number, or `null` for no limit; default GitHub's 900 and 100) | 204 |
//! | `POST /_fake/age` | `{"seconds"}` | 204 |
//! | `GET /_fake/stats` | | the [`crate::Stats`] counters |

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::http::{Reply, time};
use crate::state::HookSpec;
use crate::{Hostile, Inner, Poison};

const DOCS: &str = "https://docs.github.com/rest";

pub(crate) async fn handle(inner: &Arc<Inner>, method: &Method, segments: &[&str], body: &Bytes) -> Reply {
    if segments.first() == Some(&"blackhole") {
        return Reply::json(StatusCode::OK, &json!({}));
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let no_content = || Reply::empty(StatusCode::NO_CONTENT);
    let missing = |what: &str| Reply::error(StatusCode::BAD_REQUEST, &format!("missing {what}"), DOCS);
    match (method, segments) {
        (&Method::POST, ["tokens"]) => {
            let Some(token) = text("token") else { return missing("token") };
            let scopes = text("scopes").unwrap_or_default();
            inner.add_token(&token, &scopes);
            no_content()
        }
        (&Method::POST, ["repos"]) => {
            let Some(full_name) = text("full_name") else { return missing("full_name") };
            let id = inner.add_repo(&full_name);
            Reply::json(StatusCode::OK, &json!({"id": id}))
        }
        (&Method::POST, ["orgs"]) => {
            let Some(org) = text("org") else { return missing("org") };
            inner.add_org(&org);
            no_content()
        }
        (&Method::POST, ["hooks"]) => {
            let (Some(owner), Some(url)) = (text("owner"), text("url")) else { return missing("owner or url") };
            let mut spec = HookSpec::new(url);
            if let Some(events) = body.get("events").and_then(Value::as_array) {
                spec.events = events.iter().filter_map(Value::as_str).map(str::to_string).collect();
            }
            spec.secret = text("secret");
            if let Some(content_type) = text("content_type") {
                spec.content_type = content_type;
            }
            spec.active = body.get("active").and_then(Value::as_bool).unwrap_or(true);
            let id = inner.add_hook(&owner, &spec);
            Reply::json(StatusCode::OK, &json!({"id": id}))
        }
        (&Method::POST, ["emit"]) => {
            let (Some(owner), Some(event)) = (text("owner"), text("event")) else { return missing("owner or event") };
            let payload = match body.get("payload") {
                Some(payload) => payload.clone(),
                None => match github::samples::sample(&event).and_then(|text| serde_json::from_str(text).ok()) {
                    Some(payload) => payload,
                    None => return missing("payload (no sample for this event)"),
                },
            };
            let ids = inner.emit(&owner, &event, payload).await;
            Reply::json(StatusCode::OK, &json!({"deliveries": ids}))
        }
        (&Method::GET, ["hooks", id, "deliveries"]) => {
            let Some(deliveries) = id.parse().ok().and_then(|id: u64| inner.deliveries(id)) else {
                return Reply::not_found(DOCS);
            };
            let items: Vec<Value> = deliveries
                .iter()
                .map(|d| {
                    json!({"id": d.id, "guid": d.guid, "event": d.event, "action": d.action, "redelivery": d.redelivery,
                        "status_code": d.status_code, "status": d.status, "delivered_at": time(d.delivered_at)})
                })
                .collect();
            Reply::json(StatusCode::OK, &Value::Array(items))
        }
        (&Method::POST, ["faults"]) => {
            let faults = &inner.faults;
            let number = |key: &str| body.get(key).and_then(Value::as_f64);
            let seconds = |value: f64| Duration::from_secs_f64(value.max(0.0));
            if body.get("clear").and_then(Value::as_bool) == Some(true) {
                faults.clear();
            }
            if let Some(ms) = number("latency_ms") {
                faults.set_latency(seconds(ms / 1000.0));
            }
            if let Some(rate) = number("server_error_rate") {
                faults.set_server_error_rate(rate);
            }
            if let Some(rate) = number("drop_rate") {
                faults.set_drop_rate(rate);
            }
            if let Some(limit) = body.get("secondary_limit") {
                let n = limit.get("n").and_then(Value::as_u64).unwrap_or(1);
                let retry_after = limit.get("retry_after_s").and_then(Value::as_f64).unwrap_or(60.0);
                faults.secondary_limit(u32::try_from(n).unwrap_or(u32::MAX), seconds(retry_after));
            }
            if let Some(reset_in) = number("exhaust_primary_s") {
                faults.exhaust_primary(seconds(reset_in));
            }
            if let Some(retention) = number("retention_s") {
                faults.set_retention(seconds(retention));
            }
            if let Some(skew) = number("clock_skew_s") {
                faults.set_clock_skew(chrono::Duration::milliseconds((skew * 1000.0) as i64));
            }
            no_content()
        }
        (&Method::POST, ["poison"]) => {
            let Some(id) = body.get("delivery").and_then(Value::as_u64) else { return missing("delivery") };
            let delivered_at = match text("delivered_at") {
                Some(at) => match chrono::DateTime::parse_from_rfc3339(&at) {
                    Ok(at) => Some(at.with_timezone(&chrono::Utc)),
                    Err(_) => return missing("delivered_at as an RFC 3339 time"),
                },
                None => None,
            };
            let headers = body
                .get("headers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|pair| Some((pair.get(0)?.as_str()?.to_string(), pair.get(1)?.as_str()?.to_string())))
                .collect();
            inner.faults.poison(id, Poison { delivered_at, headers, body: text("body") });
            no_content()
        }
        (&Method::POST, ["hostile"]) => {
            if body.get("clear").and_then(Value::as_bool) == Some(true) {
                inner.faults.clear_hostile();
                return no_content();
            }
            let Ok(answer) = serde_json::from_value::<Hostile>(body.clone()) else {
                return missing("a known answer (see fake_github::Hostile)");
            };
            let times = body.get("times").and_then(Value::as_u64).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            inner.faults.set_hostile(answer, times);
            no_content()
        }
        (&Method::POST, ["rate_limit"]) => {
            let Some(per_hour) = body.get("per_hour").and_then(Value::as_u64) else { return missing("per_hour") };
            inner.set_rate_limit(u32::try_from(per_hour).unwrap_or(u32::MAX));
            no_content()
        }
        (&Method::POST, ["age"]) => {
            let Some(seconds) = body.get("seconds").and_then(Value::as_f64) else { return missing("seconds") };
            inner.age(Duration::from_secs_f64(seconds.max(0.0)));
            no_content()
        }
        (&Method::POST, ["secondary"]) => {
            let mut limits = inner.secondary.limits();
            let limit = |value: &Value| value.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            if let Some(value) = body.get("per_minute") {
                limits.per_minute = limit(value);
            }
            if let Some(value) = body.get("concurrent") {
                limits.concurrent = limit(value);
            }
            inner.secondary.set(limits);
            no_content()
        }
        (&Method::GET, ["stats"]) => {
            let stats = inner.stats();
            Reply::json(StatusCode::OK, &stats.to_json())
        }
        _ => Reply::not_found(DOCS),
    }
}

//! Hook deliveries: the cursor-paged list, one delivery with its request and response, and redelivery.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::Inner;
use crate::state::RecordedDelivery;

use super::*;

pub(crate) fn per_page(text: Option<&str>) -> usize {
    match text.and_then(|text| text.parse::<usize>().ok()) {
        None | Some(0) => 30,
        Some(n) => n.min(100),
    }
}

/// An opaque cursor: the page starts at deliveries older than `before`.
pub(crate) fn encode_cursor(hook_id: u64, before: u64) -> String {
    base64url(format!("v1:{hook_id}:{before}").as_bytes())
}

pub(crate) fn decode_cursor(cursor: &str, hook_id: u64) -> Option<u64> {
    let text = String::from_utf8(unbase64url(cursor)?).ok()?;
    let mut parts = text.split(':');
    match (parts.next(), parts.next().and_then(|id| id.parse::<u64>().ok()), parts.next(), parts.next()) {
        (Some("v1"), Some(id), Some(before), None) if id == hook_id => before.parse().ok(),
        _ => None,
    }
}

pub(crate) const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(crate) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(BASE64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub(crate) fn unbase64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let value = BASE64URL.iter().position(|&b| b == c)? as u32;
        n = n << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits & 0xFF) as u8);
        }
    }
    Some(out)
}

/// `hook-delivery-item`.
#[derive(Serialize)]
pub(crate) struct ItemJson<'a> {
    id: u64,
    guid: &'a str,
    delivered_at: String,
    redelivery: bool,
    duration: f64,
    status: &'a str,
    status_code: u16,
    event: &'a str,
    action: Option<&'a str>,
    installation_id: Option<u64>,
    repository_id: Option<u64>,
    throttled_at: Option<String>,
}

impl<'a> ItemJson<'a> {
    pub(crate) fn of(delivery: &'a RecordedDelivery) -> Self {
        Self {
            id: delivery.id,
            guid: &delivery.guid,
            delivered_at: time(delivery.delivered_at),
            redelivery: delivery.redelivery,
            duration: delivery.duration,
            status: &delivery.status,
            status_code: delivery.status_code,
            event: &delivery.event,
            action: delivery.action.as_deref(),
            installation_id: delivery.installation_id,
            repository_id: delivery.repository_id,
            throttled_at: None,
        }
    }
}

/// `hook-delivery`: the payload goes out as the very bytes that were delivered.
#[derive(Serialize)]
pub(crate) struct DeliveryJson<'a> {
    #[serde(flatten)]
    item: ItemJson<'a>,
    url: &'a str,
    request: RequestJson<'a>,
    response: ResponseJson<'a>,
}

#[derive(Serialize)]
pub(crate) struct RequestJson<'a> {
    headers: std::collections::BTreeMap<&'a str, &'a str>,
    payload: Option<Box<RawValue>>,
}

#[derive(Serialize)]
pub(crate) struct ResponseJson<'a> {
    headers: std::collections::BTreeMap<&'a str, &'a str>,
    payload: Option<&'a str>,
}

pub(crate) fn list_deliveries(
    inner: &Inner,
    hook_id: u64,
    call: &Call<'_>,
    path: String,
    repositories_path: Option<String>,
    docs: &str,
) -> Reply {
    inner.purge();
    let per_page = per_page(call.param("per_page"));
    let before = match call.param("cursor") {
        None | Some("") => u64::MAX,
        Some(cursor) => match decode_cursor(cursor, hook_id) {
            Some(before) => before,
            None => return Reply::error(StatusCode::BAD_REQUEST, "Invalid cursor", docs),
        },
    };
    let status = call.param("status");
    if status.is_some_and(|status| !matches!(status, "success" | "failure")) {
        return Reply::bad_request_body("For 'status', must be one of: success, failure.", docs);
    }
    let redelivery = call.param("redelivery").and_then(|value| value.parse::<bool>().ok());
    let mut state = inner.lock();
    state.stats.list_deliveries += 1;
    state.list_pages += 1;
    let alternate = state.list_pages.is_multiple_of(2);
    let Some(hook) = state.hooks.get(&hook_id) else { return Reply::not_found(docs) };
    let mut page: Vec<&RecordedDelivery> = hook
        .deliveries
        .iter()
        .rev()
        .filter(|delivery| delivery.id < before)
        .filter(|delivery| match status {
            Some("success") => (200..400).contains(&delivery.status_code),
            Some(_) => (400..600).contains(&delivery.status_code),
            None => true,
        })
        .filter(|delivery| redelivery.is_none_or(|wanted| delivery.redelivery == wanted))
        .take(per_page + 1)
        .collect();
    let more = page.len() > per_page;
    page.truncate(per_page);
    let items: Vec<ItemJson> = page.iter().map(|delivery| ItemJson::of(delivery)).collect();
    // Serialising plain structs cannot fail.
    let mut reply = Reply::raw(StatusCode::OK, serde_json::to_vec(&items).unwrap_or_default());
    if let (true, Some(last)) = (more, page.last()) {
        // GitHub's own next links sometimes use the /repositories/{id}/... form; so do ours.
        let path = match repositories_path {
            Some(other) if alternate => other,
            _ => path,
        };
        let mut query = format!("per_page={per_page}&cursor={}", encode_cursor(hook_id, last.id));
        if let Some(status) = status {
            query.push_str(&format!("&status={status}"));
        }
        if let Some(redelivery) = redelivery {
            query.push_str(&format!("&redelivery={redelivery}"));
        }
        reply = reply.header("link", format!("<{}{path}?{query}>; rel=\"next\"", inner.api_url));
    }
    reply
}

pub(crate) fn find_delivery(inner: &Inner, hook_id: u64, delivery: &str) -> Option<RecordedDelivery> {
    let id: u64 = delivery.parse().ok()?;
    inner.purge();
    let state = inner.lock();
    state.hooks.get(&hook_id)?.deliveries.iter().find(|delivery| delivery.id == id).cloned()
}

pub(crate) fn get_delivery(inner: &Inner, hook_id: u64, delivery: &str, docs: &str) -> Reply {
    inner.lock().stats.get_delivery += 1;
    let Some(delivery) = find_delivery(inner, hook_id, delivery) else { return Reply::not_found(docs) };
    let payload =
        std::str::from_utf8(&delivery.payload).ok().and_then(|text| RawValue::from_string(text.to_string()).ok());
    let body = DeliveryJson {
        item: ItemJson::of(&delivery),
        url: &delivery.url,
        request: RequestJson {
            headers: delivery.request_headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect(),
            payload,
        },
        response: ResponseJson {
            headers: delivery.response_headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect(),
            payload: Some(delivery.response_body.as_str()),
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => Reply::raw(StatusCode::OK, bytes),
        Err(_) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", docs),
    }
}

pub(crate) async fn redeliver(inner: &Arc<Inner>, hook_id: u64, delivery: &str, docs: &str) -> Reply {
    inner.lock().stats.redeliver += 1;
    let Some(delivery) = find_delivery(inner, hook_id, delivery) else { return Reply::not_found(docs) };
    match inner.redeliver(&delivery).await {
        Some(_) => Reply::json(StatusCode::ACCEPTED, &json!({})),
        None => Reply::not_found(docs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn cursors_round_trip_and_are_opaque() {
        for before in [0, 1, 10_000_000_123, u64::MAX] {
            let cursor = encode_cursor(42, before);
            assert!(cursor.parse::<u64>().is_err());
            assert_eq!(decode_cursor(&cursor, 42), Some(before));
            assert_eq!(decode_cursor(&cursor, 43), None);
        }
        assert_eq!(decode_cursor("2", 42), None);
    }
}

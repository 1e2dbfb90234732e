//! Pages of deliveries: the `rel="next"` link that carries its scan (so no paging loop can spin),
//! items read one by one (so one malformed item costs only itself), and paging back to a cutoff.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use url::Url;

use crate::{Client, DeliveryItem, Error, HookRef, Result};

/// The most pages one scan reads: 100,000 deliveries at 100 a page, far more than GitHub
/// holds for a hook in its three days at any rate it allows, yet a loop stops within seconds.
pub const MAX_PAGES: u32 = 1_000;

/// The first page of a conditional list.
#[derive(Debug)]
pub enum Listing {
    /// 304: nothing changed since the last list of this URL; it cost no rate limit.
    NotModified,
    /// A fresh page.
    Page(Page),
}

/// One page of deliveries, newest first.
#[derive(Debug, Default)]
pub struct Page {
    /// The deliveries on this page that could be read.
    pub items: Vec<DeliveryItem>,
    /// The next (older) page, if any.
    pub next: Option<NextPage>,
    /// Each item that could not be read and was left out.
    pub skipped: Vec<Unreadable>,
}

/// A listed item that could not be read, left out of its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The delivery's id, when the item has one.
    pub id: Option<u64>,
    /// Its place on its page, from 1.
    pub position: usize,
    /// What was being listed: `the deliveries of octo/hello hook 1`.
    pub listing: String,
    /// Why it could not be read.
    pub reason: String,
}

/// The `rel="next"` URL exactly as GitHub gave it (never built by hand), with the scan it belongs to.
#[derive(Clone)]
pub struct NextPage {
    /// The URL GitHub gave.
    pub(crate) url: Url,
    /// The scan so far.
    pub(crate) scan: Scan,
}

impl NextPage {
    /// The URL GitHub gave, for logs and debugging. It carries no credentials.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl fmt::Debug for NextPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextPage").field("url", &self.url.as_str()).field("pages", &self.scan.pages).finish()
    }
}

impl PartialEq for NextPage {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for NextPage {}

/// One walk through a list, from its first page: the pages read, shared by every link of the walk.
#[derive(Clone)]
pub(crate) struct Scan {
    /// What is being listed, for the error: `the deliveries of octo/hello hook 1`.
    what: Arc<str>,
    /// Every URL read in this walk. Only a successful read adds to it, so a link kept after a
    /// transient failure can be followed again.
    visited: Arc<Mutex<HashSet<String>>>,
    /// Pages read in this walk.
    pages: u32,
}

impl Scan {
    /// A walk whose first page was `first`.
    pub(crate) fn start(what: &str, first: &Url) -> Self {
        let visited = HashSet::from([first.to_string()]);
        Self { what: what.into(), visited: Arc::new(Mutex::new(visited)), pages: 1 }
    }

    /// What is being listed.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// Refuses to read `url` if this walk read it already, or has read its share of pages.
    pub(crate) fn check(&self, url: &Url) -> Result<()> {
        let visited = self.visited.lock().unwrap_or_else(PoisonError::into_inner);
        if visited.contains(url.as_str()) {
            return Err(Error::PagingLoop { what: self.what.to_string(), pages: self.pages });
        }
        if self.pages >= MAX_PAGES {
            return Err(Error::TooManyPages { what: self.what.to_string(), limit: MAX_PAGES });
        }
        Ok(())
    }

    /// The walk after `url` was read.
    pub(crate) fn visited(&self, url: &Url) -> Self {
        self.visited.lock().unwrap_or_else(PoisonError::into_inner).insert(url.to_string());
        Self { what: self.what.clone(), visited: self.visited.clone(), pages: self.pages + 1 }
    }
}

/// The items of a list page, each read on its own: an item that does not have the documented
/// shape is left out with a reason, and the rest are kept. Only a body that is not a JSON array
/// fails the page.
pub(crate) fn read_items(body: &[u8], what: &str) -> Result<(Vec<DeliveryItem>, Vec<Unreadable>)> {
    let raw: Vec<Box<RawValue>> =
        serde_json::from_slice(body).map_err(|source| Error::Decode { what: what.to_string(), source })?;
    let mut items = Vec::with_capacity(raw.len());
    let mut skipped = Vec::new();
    for (position, value) in raw.iter().enumerate() {
        match serde_json::from_str::<DeliveryItem>(value.get()) {
            Ok(item) => items.push(item),
            Err(error) => {
                let id = serde_json::from_str::<serde_json::Value>(value.get())
                    .ok()
                    .and_then(|value| value.get("id").and_then(serde_json::Value::as_u64));
                skipped.push(Unreadable {
                    id,
                    position: position + 1,
                    listing: what.to_string(),
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok((items, skipped))
}

impl Client {
    /// The newest page of `hook`'s deliveries, read in full even if this client listed it
    /// before (a 304 would hide it).
    pub async fn newest_deliveries(&self, hook: &HookRef, per_page: u8) -> Result<Page> {
        self.forget_etags(hook);
        match self.list_deliveries(hook, per_page).await? {
            Listing::Page(page) => Ok(page),
            // The client never passes on a 304 to a request that sent no validator.
            Listing::NotModified => Err(Error::Server { status: 304, what: format!("the deliveries of {hook}") }),
        }
    }

    /// Every delivery of `hook` that GitHub lists at or after `cutoff`, newest first, paging back
    /// until older ones begin. `next` of the answer is always `None`; `skipped` gathers every page's.
    pub async fn deliveries_since(&self, hook: &HookRef, cutoff: DateTime<Utc>) -> Result<Page> {
        let mut page = self.newest_deliveries(hook, 100).await?;
        let mut all = Page::default();
        loop {
            let reached = page.items.iter().any(|item| item.delivered_at < cutoff);
            all.items.extend(page.items.into_iter().filter(|item| item.delivered_at >= cutoff));
            all.skipped.append(&mut page.skipped);
            match page.next {
                Some(next) if !reached => page = self.next_deliveries(&next).await?,
                _ => return Ok(all),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_item_is_skipped_with_its_reason_and_the_rest_kept() {
        let body = br#"[
            {"id": 1, "guid": "a", "delivered_at": "2026-01-01T00:00:00Z", "redelivery": false, "duration": 0.1,
             "status": "OK", "status_code": 200, "event": "push", "action": null},
            {"id": 2, "guid": "b", "delivered_at": "yesterday", "redelivery": false, "duration": 0.1,
             "status": "OK", "status_code": 200, "event": "push", "action": null},
            "garbage"
        ]"#;
        let (items, skipped) = read_items(body, "the deliveries of o/r hook 1").unwrap();
        assert_eq!(items.iter().map(|item| item.id).collect::<Vec<_>>(), [1]);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!((skipped[0].id, skipped[0].position), (Some(2), 2), "{skipped:?}");
        assert_eq!(skipped[0].listing, "the deliveries of o/r hook 1");
        assert!(!skipped[0].reason.is_empty(), "the reason is kept");
        assert_eq!((skipped[1].id, skipped[1].position), (None, 3), "{skipped:?}");
        assert!(matches!(read_items(b"{}", "x"), Err(Error::Decode { .. })));
    }

    #[test]
    fn a_scan_refuses_a_page_it_read_and_stops_at_the_cap() {
        let first = Url::parse("http://127.0.0.1:1/d?per_page=1").unwrap();
        let second = Url::parse("http://127.0.0.1:1/d?per_page=1&cursor=x").unwrap();
        let scan = Scan::start("the deliveries", &first);
        assert!(matches!(scan.check(&first), Err(Error::PagingLoop { pages: 1, .. })));
        scan.check(&second).unwrap();
        let after = scan.visited(&second);
        assert!(matches!(after.check(&second), Err(Error::PagingLoop { pages: 2, .. })));

        let mut scan = Scan::start("the deliveries", &first);
        for page in 0..MAX_PAGES - 1 {
            let url = Url::parse(&format!("http://127.0.0.1:1/d?page={page}")).unwrap();
            scan.check(&url).unwrap();
            scan = scan.visited(&url);
        }
        let error = scan.check(&Url::parse("http://127.0.0.1:1/d?page=last").unwrap()).unwrap_err();
        assert!(matches!(error, Error::TooManyPages { limit: MAX_PAGES, .. }), "{error}");
        assert_eq!(error.to_string().lines().count(), 1);
    }
}

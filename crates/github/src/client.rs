//! The HTTP client: authentication, pagination, conditional requests, rate limits, retries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use crate::{Auth, Delivery, DeliveryItem, Hook, HookRef, HookUpdate, NewHook, Owner, Result};

/// How to reach GitHub.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API root: `https://api.github.com`, `https://HOST/api/v3`, or the fake.
    pub api_url: Url,
    /// How to authenticate.
    pub auth: Auth,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The rate budget as of the last response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed per window.
    pub limit: Option<u32>,
    /// Calls left in this window.
    pub remaining: Option<u32>,
    /// When the window resets.
    pub reset_at: Option<DateTime<Utc>>,
}

/// The first page of a conditional list.
#[derive(Debug)]
pub enum Listing {
    /// 304: nothing changed since the last list of this URL; it cost no rate limit.
    NotModified,
    /// A fresh page.
    Page(Page),
}

/// One page of deliveries, newest first.
#[derive(Debug)]
pub struct Page {
    /// The deliveries on this page.
    pub items: Vec<DeliveryItem>,
    /// The next (older) page, if any.
    pub next: Option<NextPage>,
}

/// The `rel="next"` URL exactly as GitHub gave it; never built by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextPage(pub(crate) Url);

/// A GitHub REST client. Cheap to clone; clones share the ETag cache and rate budget.
#[derive(Clone)]
pub struct Client {}

#[allow(unused_variables)]
impl Client {
    /// Builds a client.
    pub fn new(config: Config) -> Result<Self> {
        todo!()
    }

    /// Lists every hook of `owner`, following pagination.
    pub async fn list_hooks(&self, owner: &Owner) -> Result<Vec<Hook>> {
        todo!()
    }

    /// Gets one hook.
    pub async fn get_hook(&self, hook: &HookRef) -> Result<Hook> {
        todo!()
    }

    /// Creates a hook on `owner`.
    pub async fn create_hook(&self, owner: &Owner, hook: &NewHook) -> Result<Hook> {
        todo!()
    }

    /// Updates a hook.
    pub async fn update_hook(&self, hook: &HookRef, update: &HookUpdate) -> Result<Hook> {
        todo!()
    }

    /// Deletes a hook.
    pub async fn delete_hook(&self, hook: &HookRef) -> Result<()> {
        todo!()
    }

    /// Asks GitHub to send a `ping` delivery to the hook.
    pub async fn ping_hook(&self, hook: &HookRef) -> Result<()> {
        todo!()
    }

    /// Lists the newest page of deliveries with `If-None-Match`, so an unchanged list answers 304 for free.
    pub async fn list_deliveries(&self, hook: &HookRef, per_page: u8) -> Result<Listing> {
        todo!()
    }

    /// Follows a `rel="next"` link to an older page.
    pub async fn next_deliveries(&self, next: &NextPage) -> Result<Page> {
        todo!()
    }

    /// Gets one delivery with its request headers and payload.
    pub async fn get_delivery(&self, hook: &HookRef, id: u64) -> Result<Delivery> {
        todo!()
    }

    /// Asks GitHub to redeliver: a new delivery with the same guid and `redelivery: true`.
    pub async fn redeliver(&self, hook: &HookRef, id: u64) -> Result<()> {
        todo!()
    }

    /// The rate budget as of the last response.
    pub fn rate_limit(&self) -> RateLimit {
        todo!()
    }

    /// The API root.
    pub fn api_url(&self) -> &Url {
        todo!()
    }
}

//! GitHub REST client for repository, organization and App hooks and their deliveries.
//!
//! It keeps payloads byte-exact, sends conditional requests so that idle polls cost
//! no rate limit, waits out rate limits, retries what is safe to retry, and never
//! prints a token.

mod auth;
mod backoff;
mod client;
mod error;
mod http;
mod link;
mod observe;
mod paging;
pub mod random;
pub mod samples;
mod secret;
pub mod signature;
mod status;
mod types;

pub use auth::{AppCredentials, Auth, CredentialSource, Credentials};
pub use backoff::Backoff;
pub use client::{
    Client, Config, DELIVERY_LIMIT, LIST_LIMIT, Pace, RATE_WINDOW, RateLimit, RetryPolicy, SECONDARY_CONCURRENT,
    SECONDARY_PER_MINUTE, SharedPace, Turn, Wait, points,
};
pub use error::{Error, Result};
pub use http::http_client;
pub use observe::{Observer, endpoint};
pub use paging::{Listing, MAX_PAGES, NextPage, Page, Unreadable};
pub use secret::Secret;
pub use types::{
    Delivery, DeliveryItem, DeliveryRequest, Hook, HookConfig, HookRef, HookResponse, HookUpdate, NewHook, Owner,
    ParseOwnerError,
};

//! What the engine asks of a hook's ledger, whichever kind it is: [`FileLedger`] on disk, or
//! [`super::RedisLedger`] shared by replicas. The engine does not know which one it has.

use std::future::{Future, ready};
use std::time::Duration;

use chrono::{DateTime, Utc};
use github::DeliveryItem;

use super::{Attempts, Durable, FileLedger, PushClaim};
use crate::Error;

/// A pushed POST, as [`Ledger::claim_push`] decides it.
#[derive(Debug, Clone, Copy)]
pub struct Push<'a> {
    /// The stream's event id: the same POST has the same one on every replica.
    pub event: &'a str,
    /// `X-GitHub-Delivery`.
    pub guid: &'a str,
    /// When the blackhole received it.
    pub at: DateTime<Utc>,
    /// Its body's key ([`super::body_key`]), if it is signed.
    pub body: Option<&'a str>,
}

/// One thing to record of a handled delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A listed delivery the handler took (or that another path or source forwarded: then
    /// without its guid when another source did).
    Forwarded {
        /// The API's delivery id.
        id: u64,
        /// GitHub's `delivered_at`.
        at: DateTime<Utc>,
        /// Its guid, counted as an API attempt.
        guid: Option<String>,
    },
    /// A listed delivery that can never be forwarded: handled on both paths.
    Skipped {
        /// The API's delivery id.
        id: u64,
        /// GitHub's `delivered_at`.
        at: DateTime<Utc>,
        /// Its guid.
        guid: Option<String>,
    },
    /// A listed delivery the handler kept rejecting: handled, and remembered until sent again.
    Parked {
        /// The API's delivery id.
        id: u64,
        /// GitHub's `delivered_at`.
        at: DateTime<Utc>,
        /// Its guid.
        guid: Option<String>,
    },
    /// An attempt the stream brought and the handler took (or that can never be forwarded).
    Pushed {
        /// `X-GitHub-Delivery`.
        guid: String,
        /// When the blackhole received it.
        at: DateTime<Utc>,
        /// Its body's key ([`super::body_key`]), to tell the same bytes under another guid.
        body: Option<String>,
    },
    /// The key of a listed delivery's body ([`super::body_key`], from the signature GitHub's
    /// record shows), to tell the same bytes pushed later under another guid.
    Body {
        /// `X-GitHub-Delivery`.
        guid: String,
        /// When GitHub delivered it.
        at: DateTime<Utc>,
        /// The key.
        body: String,
    },
    /// An attempt the stream brought and the handler kept rejecting.
    ParkedPushed {
        /// `X-GitHub-Delivery`.
        guid: String,
        /// When the blackhole received it.
        at: DateTime<Utc>,
        /// Its body's key ([`super::body_key`]).
        body: Option<String>,
    },
}

impl Record {
    /// The guid it counts for, if any.
    pub fn guid(&self) -> Option<&str> {
        match self {
            Self::Forwarded { guid, .. } | Self::Skipped { guid, .. } | Self::Parked { guid, .. } => guid.as_deref(),
            Self::Pushed { guid, .. } | Self::ParkedPushed { guid, .. } | Self::Body { guid, .. } => Some(guid),
        }
    }
}

/// A hook's ledger as the engine uses it. Only the source's owner task holds it.
pub trait Ledger: Send + 'static {
    /// Everything delivered before this is handled.
    fn floor(&self) -> DateTime<Utc>;

    /// Whether a listed delivery is handled (or, with replicas, held or waiting here).
    fn knows(&self, item: &DeliveryItem) -> bool;

    /// How many attempts of `guid` were handled on each path (while the floor has not passed them).
    fn attempts(&self, guid: &str) -> Attempts;

    /// Decides a pushed POST where every process sharing the ledger sees it: replicas claim it by
    /// the stream's event id `event` (see [`PushClaim`]). `None` (a file ledger, one process):
    /// the engine's own counts decide.
    fn claim_push(&mut self, _push: Push<'_>) -> impl Future<Output = Option<PushClaim>> + Send {
        ready(None)
    }

    /// Of listed deliveries not yet known, those to queue now; `backlog` are queued already.
    /// Replicas lease a few at a time and keep the rest, offered again on the next call.
    fn admit(
        &mut self,
        items: Vec<DeliveryItem>,
        backlog: usize,
    ) -> impl Future<Output = Result<Vec<DeliveryItem>, Error>> + Send;

    /// Whether a listed delivery about to be forwarded is still this process's to forward.
    fn confirm(&mut self, item: &DeliveryItem) -> impl Future<Output = bool> + Send;

    /// Records handled deliveries, never moving the floor past `keep_from` (the oldest still
    /// waiting); the promise says when they are durable.
    fn record(
        &mut self,
        records: &[Record],
        keep_from: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Durable, Error>> + Send;

    /// Un-parks a delivery that was sent again and answered.
    fn unpark(&mut self, id: u64, guid: &str) -> Result<Durable, Error>;

    /// Notes a successful poll at `now`.
    fn checked(&mut self, now: DateTime<Utc>) -> impl Future<Output = Result<(), Error>> + Send;

    /// How often [`Ledger::maintain`] must run, if at all.
    fn maintain_every(&self) -> Option<Duration> {
        None
    }

    /// Periodic upkeep (replicas renew their leases).
    fn maintain(&mut self) -> impl Future<Output = ()> + Send {
        ready(())
    }

    /// The guids this ledger forwarded, for sources that overlap ([`crate::engine`]'s dedupe).
    fn guids(&self) -> Vec<String>;

    /// The bodies the stream brought, by key, with their guid and when: the same bytes under
    /// another guid are a relabelled copy. (Replicas keep them in Redis, for [`Ledger::claim_push`].)
    fn pushed_bodies(&self) -> Vec<(String, String, DateTime<Utc>)> {
        Vec::new()
    }

    /// Leaves the ledger tidy when the source stops (a compacted file, leases released).
    fn close(self) -> impl Future<Output = Result<(), Error>> + Send;
}

impl Ledger for FileLedger {
    fn floor(&self) -> DateTime<Utc> {
        FileLedger::floor(self)
    }

    fn knows(&self, item: &DeliveryItem) -> bool {
        self.is_recorded(item.id, item.delivered_at)
    }

    fn attempts(&self, guid: &str) -> Attempts {
        FileLedger::attempts(self, guid)
    }

    fn admit(
        &mut self,
        items: Vec<DeliveryItem>,
        _backlog: usize,
    ) -> impl Future<Output = Result<Vec<DeliveryItem>, Error>> + Send {
        ready(Ok(items))
    }

    fn confirm(&mut self, _item: &DeliveryItem) -> impl Future<Output = bool> + Send {
        ready(true)
    }

    fn record(
        &mut self,
        records: &[Record],
        keep_from: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Durable, Error>> + Send {
        ready(self.write_records(records, keep_from).map(|()| self.durable()))
    }

    fn unpark(&mut self, id: u64, guid: &str) -> Result<Durable, Error> {
        FileLedger::unpark(self, id, Some(guid))?;
        Ok(self.durable())
    }

    fn checked(&mut self, now: DateTime<Utc>) -> impl Future<Output = Result<(), Error>> + Send {
        ready(FileLedger::checked(self, now))
    }

    fn guids(&self) -> Vec<String> {
        self.forwarded_guids()
    }

    fn pushed_bodies(&self) -> Vec<(String, String, DateTime<Utc>)> {
        FileLedger::pushed_bodies(self)
    }

    async fn close(mut self) -> Result<(), Error> {
        // Every record was written already; compacting leaves a small file behind. Joining the
        // writer waits for the disk, so not on an async worker.
        let closed = tokio::task::spawn_blocking(move || self.compact().and_then(|()| FileLedger::close(self)));
        closed.await.unwrap_or_else(|e| Err(Error::TaskFailed(e.to_string())))
    }
}

impl FileLedger {
    /// Writes `records` in order: consecutive forwarded ones in one append.
    fn write_records(&mut self, records: &[Record], keep_from: Option<DateTime<Utc>>) -> Result<(), Error> {
        let mut forwarded: Vec<(u64, DateTime<Utc>, Option<&str>)> = Vec::new();
        for record in records {
            if let Record::Forwarded { id, at, guid } = record {
                forwarded.push((*id, *at, guid.as_deref()));
                continue;
            }
            self.record_handled(&std::mem::take(&mut forwarded), keep_from)?;
            match record {
                Record::Forwarded { .. } => {}
                Record::Skipped { id, at, guid } => self.skip((*id, *at, guid.as_deref()), keep_from)?,
                Record::Parked { id, at, guid } => self.park((*id, *at, guid.as_deref()), keep_from)?,
                Record::Pushed { guid, at, body } => self.record_pushed(guid, *at, body.as_deref())?,
                Record::Body { guid, at, body } => self.record_body(guid, *at, body)?,
                Record::ParkedPushed { guid, at, body } => {
                    self.record_pushed(guid, *at, body.as_deref())?;
                    self.park((0, *at, Some(guid)), keep_from)?;
                }
            }
        }
        self.record_handled(&forwarded, keep_from)
    }
}

//! What the relay tells the user: one [`Event`] per thing worth showing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use github::{DeliveryItem, HookRef, RateLimit};
use url::Url;

use crate::request::{Answer, Outgoing};
use crate::warning::Warning;

/// Whether a source's hook was already there or created by this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOrigin {
    /// A hook with the hook URL already existed.
    Found,
    /// This run created it (and `--cleanup` will delete it).
    Created,
    /// The GitHub App's own hook.
    App,
}

/// Which path brought a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Listed and fetched through the Deliveries API.
    Api,
    /// Pushed by the blackhole's stream.
    Stream,
}

impl Via {
    /// `api` or `stream`, as the JSON feed says.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Stream => "stream",
        }
    }
}

/// Something the CLI shows: a feed line, a status-line update, or a warning.
#[derive(Debug, Clone)]
pub enum Event {
    /// A source is set up and about to be polled.
    HookReady {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// The hook being polled.
        hook: HookRef,
        /// Found or created.
        origin: HookOrigin,
        /// The hook's `config.url` (the blackhole).
        hook_url: Option<String>,
        /// Where its deliveries go.
        target: Url,
        /// Events the hook is subscribed to.
        events: Vec<String>,
        /// Whether the blackhole streams its deliveries (push mode), the API being the safety net.
        streaming: bool,
    },
    /// A source could not be set up; the others go on.
    SourceFailed {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// One sentence naming what failed and the permission needed.
        error: String,
    },
    /// Every source has been tried; polling has started.
    Ready {
        /// How many sources are being polled.
        sources: usize,
        /// The poll interval in force: the asked one, or longer when GitHub's limits cannot sustain
        /// it for this many sources (a warning said so).
        interval: Duration,
    },
    /// A delivery is about to be sent to the target (`-->`).
    Delivering {
        /// Its hook.
        hook: HookRef,
        /// The delivery as GitHub listed it (a pushed one has id 0: GitHub gave it none).
        item: DeliveryItem,
        /// Which path brought it.
        via: Via,
        /// The request about to be sent (shared: every attempt sends the same one), so that it can be shown
        /// before the handler answers, or when it never does.
        request: Arc<Outgoing>,
    },
    /// The target answered a delivery (`<--`); recorded in the ledger unless it was a retryable failure.
    Answered {
        /// Its hook.
        hook: HookRef,
        /// The delivery.
        item: DeliveryItem,
        /// Where it went.
        target: Url,
        /// The target's status code.
        status: u16,
        /// From sending the request to the answer.
        latency: Duration,
        /// Which path brought it.
        via: Via,
        /// The answer's headers and the start of its body.
        answer: Answer,
        /// The request as forwarded (shared: every attempt sends the same one).
        request: Arc<Outgoing>,
    },
    /// The target was unreachable or answered 5xx; the delivery will be retried.
    Retrying {
        /// Its hook.
        hook: HookRef,
        /// The delivery.
        item: DeliveryItem,
        /// The target being retried.
        target: Url,
        /// Why, such as `connection refused` or `503`.
        reason: String,
        /// How long until the next attempt, in whole tenths of a second: the wait is exactly this.
        wait: Duration,
        /// Attempts so far.
        attempt: u32,
    },
    /// The handler rejected a delivery `attempts` times (a 5xx from a live handler): it is parked in
    /// the ledger, and the queue moves on. `hookfwd replay --parked` (or the `r` key) sends it again.
    Parked {
        /// Its hook.
        hook: HookRef,
        /// The delivery.
        item: DeliveryItem,
        /// The target that kept rejecting it.
        target: Url,
        /// Which path brought it.
        via: Via,
        /// The handler's rejections.
        attempts: u32,
        /// The last rejection's status.
        status: u16,
        /// The last rejection's headers and the start of its body.
        answer: Answer,
    },
    /// A delivery was not sent to `target`: its rule's filter (`--filter`) did not let it through, or
    /// failed on it. It is recorded as handled, like one of an event the rule does not forward.
    Filtered {
        /// Its hook.
        hook: HookRef,
        /// The delivery.
        item: DeliveryItem,
        /// Which path brought it.
        via: Via,
        /// The target it was not sent to; none when there is none (`hookfwd replay --save`).
        target: Option<Url>,
    },
    /// A poll finished.
    Polled {
        /// The hook polled.
        hook: HookRef,
        /// When.
        at: DateTime<Utc>,
        /// New deliveries found, waiting to be forwarded.
        backlog: usize,
        /// GitHub's rate budget after the poll.
        rate: RateLimit,
    },
    /// The blackhole's stream is up (after a `hello`).
    StreamUp {
        /// The hook it streams.
        hook: HookRef,
        /// It resumed without a gap; `false` means the API catches up at once.
        resumed: bool,
    },
    /// The stream brought something (a delivery or a keep-alive): progress, at most once a second.
    StreamAlive {
        /// The hook it streams.
        hook: HookRef,
    },
    /// The stream dropped; polling at `--interval` until it is back.
    StreamDown {
        /// The hook it streamed.
        hook: HookRef,
        /// Why, in a few words.
        reason: String,
    },
    /// A source stopped (Ctrl-C, SIGTERM): what it leaves for the next run, which forwards it.
    SourceStopped {
        /// Its hook.
        hook: HookRef,
        /// Deliveries queued or in flight (one in retry among them), or listed and waiting for the stream.
        left: usize,
    },
    /// A streaming source stopped: what its stream refused.
    Summary {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// Pushed deliveries whose signature did not verify, never forwarded.
        rejected: u64,
        /// Repeated (or relabelled) POSTs that GitHub's record showed to be no new attempt, never forwarded.
        repeats: u64,
        /// Pushed deliveries forwarded that GitHub has no record of.
        unrecorded: u64,
    },
    /// Calls to GitHub hold off until `until`: a rate limit, or polls spaced out to spare the budget.
    /// Sent for every wait longer than the poll interval.
    Waiting {
        /// When calls resume.
        until: DateTime<Utc>,
        /// Why, in a few words.
        reason: String,
    },
    /// Something the user should know that does not stop anything.
    Warning(Warning),
    /// The shared ledger (Redis) could not be reached, or is reachable again. While it is down
    /// nothing is forwarded: a delivery this replica cannot be sure it holds could be another's.
    LedgerDown {
        /// Why it is down (one sentence naming the URL without its password), or `None` once it is back.
        reason: Option<String>,
    },
    /// Claims on deliveries in the shared ledger changed hands, for `hookfwd_claims_total{outcome}`.
    Claims {
        /// `taken_over` (a claim another replica let expire or released), or `lost` (this
        /// replica's claim expired before it could renew it, so another may take the delivery).
        outcome: &'static str,
        /// How many.
        count: u64,
    },
    /// The run stopped and deleted the hooks it had created (`--cleanup`).
    CleanedUp {
        /// The hooks deleted; one that could not be deleted is a [`Warning::CleanupFailed`] instead.
        deleted: Vec<HookRef>,
    },
    /// A call to GitHub failed (a poll, a fetch); it will be tried again.
    Error {
        /// The hook concerned, if any.
        hook: Option<HookRef>,
        /// Which call failed.
        call: Call,
        /// GitHub's error (shared: events are cloned).
        error: Arc<github::Error>,
    },
}

/// A call to GitHub that failed and is tried again, in an [`Event::Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Listing where a source starts forwarding from.
    Start,
    /// Listing a source's deliveries: a poll.
    List {
        /// `owner/repo`, the org, or `app`.
        source: String,
    },
    /// Fetching one delivery's payload.
    Fetch {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// The delivery's id.
        id: u64,
    },
}

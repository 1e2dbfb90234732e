//! What the relay warns about: one [`Warning`] per situation that does not stop anything, with its
//! facts as typed fields. The words the user reads are the CLI's.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use github::{DeliveryItem, HookRef, Unreadable};

use crate::SendError;

/// Something the user should know that does not stop anything, sent as [`crate::Event::Warning`].
#[derive(Debug, Clone)]
pub enum Warning {
    /// A rule has no local secret, so forwarded requests carry no `X-Hub-Signature` headers.
    NoLocalSecret,
    /// `--since` reaches further back than GitHub keeps deliveries (about 3 days).
    SinceBeyondRetention {
        /// How far back `--since` asked for.
        since: Duration,
        /// How long GitHub keeps deliveries.
        retention: Duration,
    },
    /// A repository is a source and so is its organization: GitHub sends its events to both hooks.
    Overlap {
        /// The repository's owner, which is also a source (an organization).
        owner: String,
        /// The repository's name.
        repo: String,
        /// What becomes of the two copies of each event.
        outcome: OverlapOutcome,
    },
    /// Too many sources share one endpoint to be polled at the asked interval under GitHub's
    /// secondary limit: they are polled every `interval` instead.
    EndpointBusy {
        /// Sources whose polls count against the busiest endpoint.
        busiest: usize,
        /// Every source of the run.
        sources: usize,
        /// The interval asked for.
        asked: Duration,
        /// List calls a minute the busiest endpoint would need at `asked`.
        calls_per_minute: u64,
        /// GitHub's secondary limit per endpoint, in calls a minute.
        limit_per_minute: u32,
        /// The calls a minute hookfwd keeps to for polls on one endpoint.
        kept_to: u32,
        /// The interval polled at instead.
        interval: Duration,
    },
    /// The primary (hourly) rate budget left could be spent before it resets when polls find
    /// deliveries: polls are spaced out until then.
    BudgetLow {
        /// Every source of the run.
        sources: usize,
        /// The interval planned without the budget.
        interval: Duration,
        /// Calls left in the window.
        remaining: u64,
        /// Calls allowed per window, when GitHub said.
        limit: Option<u32>,
        /// When the window resets, when GitHub said.
        reset_at: Option<DateTime<Utc>>,
        /// The interval polled at until the reset.
        stretched: Duration,
    },
    /// `--cleanup` could not delete a hook this run created.
    CleanupFailed {
        /// The hook left behind.
        hook: HookRef,
        /// Why GitHub did not delete it.
        error: Arc<github::Error>,
    },
    /// A ledger's floor (or origin) was in the future (not a clock set back a little): it was moved
    /// back to now, so nothing after now counts as forwarded.
    LedgerFloorInFuture {
        /// The ledger: its file, or its key in Redis (`key … in redis://…`, without the password).
        ledger: String,
        /// Until when it said deliveries were forwarded.
        until: DateTime<Utc>,
    },
    /// The source was last polled longer ago than GitHub keeps deliveries: some may be gone.
    StalePoll {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// When it was last polled, as its ledger says.
        last_polled: DateTime<Utc>,
        /// How long GitHub keeps deliveries.
        retention: Duration,
    },
    /// The ledger replicas share in Redis held something at one of hookfwd's keys that cannot be
    /// trusted (another program wrote there, or a key was evicted): it was fixed. Said once per fix.
    SharedLedgerFixed {
        /// The ledger's URL, without its password.
        url: String,
        /// The key.
        key: String,
        /// What was there, and what became of it.
        fix: LedgerFix,
    },
    /// `--since` reaches before where the ledger replicas share starts: with Redis, `--since`
    /// applies only when the first replica starts.
    SinceBeforeSharedLedger {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// Where the shared ledger starts.
        origin: DateTime<Utc>,
    },
    /// The GitHub budget replicas share in Redis cannot be reached: this replica paces its GitHub
    /// calls alone, at `1/share` of the secondary limit, until it can. Said once per run.
    SharedPaceUnreachable {
        /// The ledger's URL, without its password.
        url: String,
        /// The replicas assumed to share the token: the most seen pacing in the last minute, at least 2.
        share: u32,
    },
    /// GitHub stamped a delivery further ahead of the local clock than the trusted skew: it is
    /// forwarded, and later ones still are. Said once per source.
    FutureDelivery {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// The delivery's id.
        id: u64,
        /// When GitHub says it was made.
        delivered_at: DateTime<Utc>,
        /// The skew trusted ([`crate::ledger::SKEW`]).
        skew: Duration,
    },
    /// A delivery that can never be forwarded was skipped, and recorded as handled.
    Skipped {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// The delivery.
        item: DeliveryItem,
        /// Whether the stream pushed it (named by guid) rather than the API listing it (by id).
        pushed: bool,
        /// Why it can never be forwarded.
        reason: SkipReason,
    },
    /// A rule's filter failed on a delivery (an error, or a value other than true or false): the
    /// delivery is not forwarded, as if the filter said no. Said once per filter and run.
    FilterFailed {
        /// The filter's expression.
        filter: String,
        /// The first delivery it failed on.
        item: DeliveryItem,
        /// How it failed.
        error: crate::filter::FilterError,
    },
    /// The handler took longer to answer than GitHub waits for a hook: in production the delivery
    /// would fail. Said once per run.
    SlowHandler {
        /// The delivery.
        item: DeliveryItem,
        /// How long the handler took.
        latency: Duration,
        /// How long GitHub waits.
        limit: Duration,
    },
    /// The handler answered 401 or 403: it likely verifies with another secret than the local
    /// one (or none was set). Said once per run.
    HandlerUnauthorized {
        /// The handler's status.
        status: u16,
        /// Whether the delivery was signed (a local secret is set).
        signed: bool,
    },
    /// The stream is up but did not bring a delivery that GitHub lists for the source's hook:
    /// the hook URL's path is likely not the one streamed. Said once per source.
    StreamMissed {
        /// `owner/repo`, the org, or `app`.
        source: String,
    },
    /// GitHub listed an item in a form that cannot be read: it was left out.
    UnreadableListing {
        /// The item and why.
        item: Unreadable,
    },
    /// The hook is inactive, so GitHub records no deliveries for it.
    HookInactive {
        /// The hook.
        hook: HookRef,
    },
    /// hookfwd made a hook whose URL is on loopback: only a GitHub on this machine (a stand-in) can
    /// deliver to it. Not said against GitHub's cloud, which refuses such a URL before any hook is made.
    LoopbackHookUrl {
        /// The hook made.
        hook: HookRef,
        /// Its URL.
        url: String,
    },
    /// The hook is not subscribed to some events the rule asks for, so GitHub never sends them.
    MissingEvents {
        /// The hook.
        hook: HookRef,
        /// The events asked for and not subscribed to.
        events: Vec<String>,
    },
    /// The blackhole refused the stream token after the stream had worked: polling meanwhile.
    /// Said once per source.
    StreamRefused {
        /// The blackhole's origin (`https://host`).
        origin: String,
    },
    /// A source's stream has not come up since the run started: polling meanwhile. Said once per
    /// source, a few seconds after the start, with the latest reason.
    StreamNotUp {
        /// The blackhole's origin (`https://host`).
        origin: String,
        /// Its host and port, as connections go to it.
        address: String,
        /// How long after the start.
        waited: Duration,
        /// Why, as far as hookfwd can tell.
        trouble: StreamTrouble,
        /// The poll interval in force meanwhile.
        interval: Duration,
    },
    /// The blackhole does not stream (it runs without a stream token): polling only.
    NotStreaming {
        /// The blackhole's origin.
        origin: String,
        /// The poll interval in force instead.
        interval: Duration,
    },
    /// A pushed delivery was over the stream's limit: fetched from the API instead. Said once per source.
    PushedTooLarge {
        /// The largest event the stream reads, in bytes.
        limit_bytes: u64,
    },
    /// The blackhole sent a delivery event that could not be read: fetched from the API instead.
    /// Said once per source.
    MalformedPush {
        /// `owner/repo`, the org, or `app`.
        source: String,
    },
    /// A pushed delivery's signature did not verify with the hook's secret: not forwarded.
    /// Said once per source; [`crate::Event::Summary`] counts them.
    Forged {
        /// `owner/repo`, the org, or `app`.
        source: String,
    },
    /// A delivery the stream brought (and that was forwarded) is still missing from GitHub's list
    /// of the hook's deliveries several polls later: GitHub has no record of it. Said once per
    /// guid; [`crate::Event::Summary`] counts them.
    Unrecorded {
        /// `owner/repo`, the org, or `app`.
        source: String,
        /// Its `X-GitHub-Delivery`.
        guid: String,
    },
}

/// Why a blackhole's stream has not come up, in a [`Warning::StreamNotUp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTrouble {
    /// Nothing accepts connections at the blackhole's address.
    NothingListens,
    /// The hook URL answered with a status no blackhole gives (a `404`, a `405`, a page of HTML):
    /// it serves something else.
    NotABlackhole {
        /// The status it answered.
        status: u16,
    },
    /// No answer yet.
    NoAnswer,
    /// Another reason, in a few words (`timed out`, `answered 503`).
    Other(String),
}

/// What becomes of an event GitHub sends to both a repository's hook and its organization's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapOutcome {
    /// The two sources go to different targets: each copy goes to its own.
    EachTarget,
    /// Deduplicated: forwarded once (`--no-dedupe` would forward both).
    Once,
    /// Not deduplicated (`--no-dedupe`): forwarded twice.
    Twice,
}

/// What the ledger in Redis held at a key that could not be trusted, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerFix {
    /// Another kind of value than hookfwd keeps there: the key was reset (what it recorded may be
    /// forwarded again, never lost).
    WrongType {
        /// Redis's name for the type found (`hash`, `list`, …), or `text` for a string that is no time.
        found: String,
    },
    /// No floor: it was set again as the replicas would have left it, never before the origin.
    FloorMissing {
        /// The floor now.
        set_to: DateTime<Utc>,
    },
    /// A floor before where the ledger started: moved up to the origin, so that what came before
    /// is not forwarded after all.
    FloorBelowOrigin {
        /// The floor found.
        was: DateTime<Utc>,
        /// The origin, the floor now.
        set_to: DateTime<Utc>,
    },
    /// No origin beside a floor: the origin was set to the floor.
    OriginMissing {
        /// The origin now.
        set_to: DateTime<Utc>,
    },
    /// A claim that never expired (or later than any replica's does), which no live replica holds
    /// (they renew theirs within the TTL): it now expires as a dead replica's does.
    ClaimNeverExpires {
        /// The delivery claimed.
        id: u64,
    },
}

/// Why a delivery can never be forwarded.
#[derive(Debug, Clone)]
pub enum SkipReason {
    /// GitHub no longer keeps it.
    Gone,
    /// GitHub refused it for good (too large, unreadable).
    Refused(Arc<github::Error>),
    /// The request cannot be sent (a header HTTP cannot carry).
    Unsendable(SendError),
}

//! The hookfwd engine: sources → stream and poller → fetcher → forwarder → ledger.
//!
//! [`run`] sets up each source's hook, then takes its deliveries from the blackhole's stream
//! (push mode) and from polling the Deliveries API, and forwards every new one to the target,
//! recording it in the ledger only after the target answered.
//! Everything the user should see is sent as an [`Event`]; the CLI renders them.

mod engine;
mod error;
mod event;
pub mod filter;
pub mod ledger;
pub mod request;
pub mod rule;
pub mod service;
pub mod since;
pub mod stream;
mod warning;

use std::path::PathBuf;
use std::time::Duration;

pub use engine::{PrivateHost, is_github_cloud, private_host, run, state};
pub use error::Error;
pub use event::{Call, Event, HookOrigin, Via};
pub use request::{Answer, Forwarder, Outgoing, Response, SendError};
pub use rule::{Route, Rule, Source, Target};
pub use warning::{LedgerFix, OverlapOutcome, SkipReason, StreamTrouble, Warning};

/// How the relay runs, shared by every rule.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time between polls of an idle source; stretched when the rate budget runs low.
    pub interval: Duration,
    /// Time between polls while the source's stream is healthy: only a safety net.
    pub safety_interval: Duration,
    /// Also forward deliveries of this recent past that the ledger has not recorded.
    pub since: Option<Duration>,
    /// Where the ledgers live.
    pub state_dir: PathBuf,
    /// Delete hooks this run created when it stops.
    pub cleanup: bool,
    /// How many deliveries to fetch from GitHub at once, per source.
    pub fetch_concurrency: usize,
    /// How long to wait for the target to answer one delivery.
    pub target_timeout: Duration,
    /// How long GitHub may refuse a permission (403) on every poll before the run stops: by then it is permanent.
    pub forbidden_for: Duration,
    /// The shared ledger of replicas (Redis), instead of the files under `state_dir`.
    pub ledger: Option<ledger::Location>,
    /// What a delivery the handler keeps rejecting does to the queue behind it.
    pub on_handler_error: OnHandlerError,
    /// With [`OnHandlerError::Park`]: the handler's rejections of one delivery before it is parked.
    pub max_attempts: u32,
    /// Forward each original delivery (guid) once per target, even when several sources' hooks bring it.
    pub dedupe: bool,
    /// Each change skips the retry wait under way and sends this run's parked deliveries again (the `r` key).
    pub retry_now: Option<tokio::sync::watch::Receiver<u64>>,
    /// Accept a hook URL that GitHub's cloud cannot reach (loopback, private, link-local), and say
    /// nothing of a loopback one elsewhere: the user knows their GitHub reaches it.
    pub allow_private_hook_url: bool,
}

/// What a delivery the handler rejects (a 5xx other than 502, 503, 504 from a live handler) does to the queue.
///
/// An unreachable handler, a timeout, or a 502, 503 or 504 means the handler is down or restarting:
/// those are retried until it answers, whichever is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnHandlerError {
    /// After [`Settings::max_attempts`] rejections the delivery is parked, and the queue moves on.
    Park,
    /// The delivery is retried until the handler takes it; everything behind it waits.
    Block,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            safety_interval: Duration::from_secs(30),
            since: None,
            state_dir: PathBuf::from("."),
            cleanup: false,
            fetch_concurrency: 8,
            target_timeout: Duration::from_secs(30),
            forbidden_for: Duration::from_secs(60),
            on_handler_error: OnHandlerError::Block,
            max_attempts: 3,
            dedupe: true,
            retry_now: None,
            ledger: None,
            allow_private_hook_url: false,
        }
    }
}

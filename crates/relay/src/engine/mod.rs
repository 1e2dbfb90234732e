//! The engine behind [`crate::run`]: hook setup, then per source one task that owns the
//! source's state, and three stages that send it messages: the stream subscriber, the poller and
//! the forwarder.
//!
//! The poller only lists (cheap, small items); the forwarder fetches payloads a few at a
//! time just ahead of forwarding, so memory stays flat however long the backlog is.
//!
//! | module | what it does |
//! |---|---|
//! | [`setup`] | find or create each source's hook |
//! | [`budget`] | the interval many sources on one token can sustain, and each one's place in it |
//! | [`start`] | where a source starts (now, `--since`, or the ledger), and its ledger, file or Redis |
//! | [`state`] | one source's queue, stream status and ledger, and the rule that joins the two paths |
//! | [`owner`] | the task that owns a source's state, and the handle the stages reach it by |
//! | [`push`] | subscribe to the blackhole, verify pushed deliveries, hand them to the owner |
//! | [`poller`] | list new deliveries every interval (the safety interval while streaming), hand them to the owner |
//! | [`fetch`] | fetch listed payloads a few ahead of the forwarder, bounded in count and bytes |
//! | [`forward`] | forward each delivery in order, record it, skip and record a poison one, or park one the handler keeps rejecting |
//! | [`overlap`] | forward an event that overlapping sources bring to one target once |

mod budget;
mod fetch;
mod forward;
mod overlap;
mod owner;
mod poller;
mod push;
mod setup;
mod start;
pub mod state;

pub use self::setup::{PrivateHost, is_github_cloud, private_host};

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use github::{DeliveryItem, HookRef, Secret};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ledger::{self, Ledger, Lock};
use crate::{Error, Event, Forwarder, OverlapOutcome, Rule, Settings, Warning};
use github::Backoff;

use self::forward::forward_loop;
use self::poller::{announce_waits, poll_loop};
use self::push::{Opened, StreamConfig, stream_loop};
use self::setup::{SetUpAll, set_up_all};
use self::start::{Begun, start};
use self::state::State;

/// How long GitHub keeps deliveries.
pub(crate) const RETENTION: Duration = Duration::from_secs(3 * 24 * 60 * 60);
/// Deliveries per list page (GitHub's maximum).
const PER_PAGE: u8 = 100;
/// How many times a delivery that GitHub says is not found is asked for before it counts as gone.
const GONE_AFTER: u32 = 3;

/// Sends events, ignoring a receiver that has gone away.
#[derive(Clone)]
struct Emitter(mpsc::Sender<Event>);

impl Emitter {
    async fn emit(&self, event: Event) {
        let _ = self.0.send(event).await;
    }

    /// Sends a [`Event::Warning`].
    async fn warn(&self, warning: Warning) {
        self.emit(Event::Warning(warning)).await;
    }
}

/// What every source task shares.
struct Ctx {
    /// The GitHub client (clones share the ETag cache and rate budget).
    client: github::Client,
    /// The run's settings.
    settings: Settings,
    /// Where events go.
    events: Emitter,
    /// How many sources share the rate budget.
    sources: usize,
    /// Whether a handler slower than GitHub allows was warned about already (once a run).
    warned_slow: std::sync::atomic::AtomicBool,
    /// Whether a handler's 401 or 403 was warned about already (once a run).
    warned_unauthorized: std::sync::atomic::AtomicBool,
    /// Which source forwards each original delivery to each target, across sources.
    overlaps: overlap::Overlaps,
    /// The filters that failed on a delivery and were warned about (once a run each), by expression.
    warned_filters: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The ledger replicas share, if it is in Redis rather than in files.
    replicas: Option<Replicas>,
}

/// The shared ledger of this run: where, and who this replica is.
struct Replicas {
    /// The connection to Redis.
    connection: ledger::Connection,
    /// This process's name in claims: unique, so that a restarted replica holds nothing of its past.
    id: String,
    /// The GitHub instance, which namespaces the keys as it does the file ledger's directory.
    instance: String,
}

/// One source ready to be polled.
struct SourceRun {
    /// `owner/repo`, the org, or `app`.
    name: String,
    /// Its hook.
    hook: HookRef,
    /// Where its deliveries go.
    forwarder: Forwarder,
    /// The client it lists the hook's deliveries with: the run's, with ETags of this target's own.
    lister: github::Client,
    /// Its rule, for which events it forwards.
    rule: Arc<Rule>,
    /// Forward only what this filter lets through (the target's own, else the rule's).
    filter: Option<crate::filter::Filter>,
    /// The local signing secret (the target's own, else the rule's).
    secret: Option<Secret>,
    /// Push mode: where to subscribe, with which token, and how to verify.
    stream: Option<StreamConfig>,
    /// On the App's hook, the ids of the rule's repositories: only their deliveries are forwarded.
    repository_ids: Vec<u64>,
    /// Where this target's file ledger of the hook lives: the state directory, or for a rule's further
    /// targets their own directory in it.
    ledger_dir: std::path::PathBuf,
    /// This process's hold on the hook's file ledger, for as long as the source runs (none with
    /// a shared ledger: replicas share the hook, and their claims keep them apart).
    _lock: Option<Lock>,
}

impl SourceRun {
    /// Whether a listed or pushed delivery is forwarded, by what its list item says: settled
    /// before its payload is fetched.
    fn wants(&self, item: &DeliveryItem) -> bool {
        match self.hook {
            HookRef::App { .. } => self.rule.wants_from_app(item, &self.repository_ids),
            _ => self.rule.wants(item),
        }
    }
}

/// Sets up every rule's sources and forwards their deliveries until `cancel` fires.
///
/// A source that cannot be set up is reported as [`Event::SourceFailed`] and does not
/// stop the others; `run` fails only when no source could be set up.
pub async fn run(
    client: github::Client,
    rules: Vec<Rule>,
    settings: Settings,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    setup::check_hook_urls(&rules, client.api_url(), settings.allow_private_hook_url)?;
    if settings.ledger.is_some() && rules.iter().any(|rule| !rule.more.is_empty()) {
        // The shared ledger keys a hook's record by the hook alone: one record per target needs the files.
        return Err(Error::Rule("a rule with several targets needs the file ledger, not --ledger (Redis)".into()));
    }
    // Another user who may write there could plant links for hookfwd to write through. Checked
    // before any task starts, so that failing here leaves nothing running.
    let (instance_dir, state_dir) = (ledger::dir(&settings.state_dir, client.api_url()), settings.state_dir.clone());
    blocking(move || ledger::check_dir(&instance_dir).and_then(|()| ledger::check_dir(&state_dir))).await?;
    // Before any GitHub call: without its ledger a replica can do nothing safely.
    let replicas = match &settings.ledger {
        Some(location) => Some(Replicas {
            connection: location.connect(ledger::CONNECT_FOR).await?,
            id: uuid::Uuid::new_v4().to_string(),
            instance: ledger::instance(client.api_url()),
        }),
        None => None,
    };
    // Replicas on one token pace their GitHub calls together, so the secondary limit is the token's.
    if let Some(replicas) = &replicas {
        let identity = client.identity();
        let pace = ledger::RedisPace::new(&replicas.connection, &replicas.instance, &identity, &replicas.id, &events);
        client.share_pace(Arc::new(pace));
    }
    let events = Emitter(events);
    // From the first call on: a rate limit can hold up the setup as much as the polls.
    let announcer =
        tokio::spawn(announce_waits(client.clone(), events.clone(), settings.interval, cancel.child_token()));
    // Hook ids are per GitHub instance: github.com and an Enterprise Server keep apart.
    let settings = Settings { state_dir: ledger::dir(&settings.state_dir, client.api_url()), ..settings };
    if rules.iter().any(|rule| rule.secret.is_none()) {
        events.warn(Warning::NoLocalSecret).await;
    }
    if let Some(since) = settings.since.filter(|since| *since > RETENTION) {
        events.warn(Warning::SinceBeyondRetention { since, retention: RETENTION }).await;
    }

    for warning in overlaps(&rules, settings.dedupe) {
        events.warn(warning).await;
    }

    let SetUpAll { runs, created, mut failures, fatal, forbidden, refused_one } =
        set_up_all(&client, &rules, &settings, &events, &cancel).await;
    let forbidden_count = forbidden.len();
    let result = if let Some(error) = fatal {
        Err(Error::GitHub(error))
    } else if cancel.is_cancelled() {
        Ok(())
    } else if runs.is_empty() {
        // Only missing permissions: the token's scopes are what to fix, and the exit code says so.
        match (forbidden.into_iter().next(), refused_one) {
            (Some(error), _) if failures.len() == forbidden_count => Err(Error::GitHub(error)),
            // The only source (a repository not found, say): GitHub's sentence is the whole story.
            (None, Some(error)) if failures.len() == 1 => Err(Error::GitHub(error)),
            _ => Err(Error::NoSources(failures.join("; "))),
        }
    } else {
        let hooks: Vec<HookRef> = runs.iter().map(|run| run.hook.clone()).collect();
        let plan = budget::plan(settings.interval, &hooks, client.pace(), client.rate_limit(), Utc::now());
        if let Some(warning) = plan.warning.clone() {
            events.warn(warning).await;
        }
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            settings: Settings { interval: plan.interval, ..settings.clone() },
            events: events.clone(),
            sources: runs.len(),
            warned_slow: std::sync::atomic::AtomicBool::new(false),
            warned_unauthorized: std::sync::atomic::AtomicBool::new(false),
            overlaps: overlap::Overlaps::default(),
            warned_filters: std::sync::Mutex::default(),
            replicas,
        });
        // Each source's starting point is fixed before "ready", so whatever happens after the
        // user sees it is forwarded.
        let starts = futures::future::join_all(runs.iter().map(|source| start(&ctx, source, &cancel))).await;
        let stop = cancel.child_token();
        let mut tasks = JoinSet::new();
        let mut result = Ok(());
        let mut started = Vec::new();
        let mut refused = None;
        for (source, begun) in runs.into_iter().zip(starts) {
            match begun {
                Ok(Some(begun)) => started.push((source, begun)),
                Ok(None) => {}
                // GitHub refused this source; the others go on.
                Err(Error::GitHub(error)) => {
                    failures.push(failed(&events, source.name.clone(), error.to_string()).await);
                    if is_auth(&error) || matches!(error, github::Error::Forbidden { .. }) {
                        refused.get_or_insert(error);
                    }
                }
                Err(error) => result = Err(error),
            }
        }
        if result.is_ok() && started.is_empty() && !cancel.is_cancelled() {
            result = Err(match refused {
                Some(error) => Error::GitHub(error),
                None => Error::NoSources(failures.join("; ")),
            });
        }
        // Polling and forwarding wait for the Ready line; the streams start at once, so that it can
        // say whether they are up, and a refused stream token fails the run before it.
        let (go, gate) = watch::channel(false);
        if result.is_ok() && !cancel.is_cancelled() {
            let count = started.len();
            let streams = started.iter().filter(|(source, _)| source.stream.is_some()).count();
            let (opened, mut first_opened) = mpsc::channel(streams.max(1));
            for (index, (source, begun)) in started.into_iter().enumerate() {
                let offset = budget::first_poll(plan.interval, index, count);
                let (gate, opened, cancel) = (gate.clone(), opened.clone(), stop.clone());
                let launch = Launch { ctx: ctx.clone(), offset, gate, opened, cancel };
                match begun {
                    Begun::File(ledger, first) => tasks.spawn(forward_source(launch, source, ledger, first)),
                    Begun::Redis(ledger, first) => tasks.spawn(forward_source(launch, source, ledger, first)),
                };
            }
            drop(opened);
            if streams_opened(&mut first_opened, streams, &stop).await {
                events.emit(Event::Ready { sources: count, interval: plan.in_force }).await;
                let _ = go.send(true);
            }
        }
        drop(gate);
        while let Some(joined) = tasks.join_next().await {
            let outcome = joined.unwrap_or_else(|e| Err(Error::TaskFailed(e.to_string())));
            if let Err(error) = outcome {
                // Without a working ledger nothing can be promised: stop every source.
                stop.cancel();
                if result.is_ok() {
                    result = Err(error);
                }
            }
        }
        result
    };

    announcer.abort();
    if settings.cleanup && !created.is_empty() {
        let mut deleted = Vec::new();
        for hook in created {
            match client.delete_hook(&hook).await {
                Ok(()) => {
                    info!(hook = %hook, "deleted the hook this run created");
                    deleted.push(hook);
                }
                Err(error) => {
                    events.warn(Warning::CleanupFailed { hook, error: Arc::new(error) }).await;
                }
            }
        }
        if !deleted.is_empty() {
            events.emit(Event::CleanedUp { deleted }).await;
        }
    }
    result
}

/// One warning per repository whose organization is a source too: GitHub sends its events to both
/// hooks, and the warning says what becomes of them.
fn overlaps(rules: &[Rule], dedupe: bool) -> Vec<Warning> {
    // Each source's owner, with its rule's target.
    let owners = || {
        rules.iter().flat_map(|rule| rule.sources.iter().map(move |source| (source, &rule.target))).filter_map(
            |(source, target)| match source {
                crate::Source::Owner(owner) => Some((owner, target)),
                crate::Source::App => None,
            },
        )
    };
    let orgs: Vec<(String, &crate::Target)> = owners()
        .filter_map(|(owner, target)| match owner {
            github::Owner::Org { org } => Some((org.to_ascii_lowercase(), target)),
            github::Owner::Repo { .. } => None,
        })
        .collect();
    let mut warnings = Vec::new();
    for (owner, target) in owners() {
        let github::Owner::Repo { owner: org, repo } = owner else { continue };
        let targets: Vec<_> = orgs.iter().filter(|(name, _)| *name == org.to_ascii_lowercase()).collect();
        if targets.is_empty() {
            continue;
        }
        let outcome = if targets.iter().any(|(_, other)| *other != target) {
            OverlapOutcome::EachTarget
        } else if dedupe {
            OverlapOutcome::Once
        } else {
            OverlapOutcome::Twice
        };
        warnings.push(Warning::Overlap { owner: org.clone(), repo: repo.clone(), outcome });
    }
    warnings
}

/// Whether GitHub refused the credentials themselves: no source and no retry can succeed with them.
fn is_auth(error: &github::Error) -> bool {
    matches!(error, github::Error::Unauthorized | github::Error::AppCredentials { .. } | github::Error::MalformedToken)
}

/// Reports a source that could not be set up, and returns the sentence for the final error.
async fn failed(events: &Emitter, source: String, error: String) -> String {
    let sentence = if error.contains(&source) { error.clone() } else { format!("{source}: {error}") };
    events.emit(Event::SourceFailed { source, error }).await;
    sentence
}

/// Push mode for a source, if its rule has a stream token and its hook a URL: the upstream
/// secret is the one this run created (kept for later runs), `--hook-secret`, or the one kept
/// when an earlier run created the hook.
fn stream_config(
    settings: &Settings,
    rule: &Rule,
    hook: &HookRef,
    hook_url: Option<&str>,
    created: Option<Secret>,
) -> Result<Option<StreamConfig>, Error> {
    // Kept even without a stream token, so that a later run in push mode can verify too.
    if let Some(secret) = &created {
        ledger::store_hook_secret(&settings.state_dir, hook, secret)?;
    }
    let (Some(token), Some(url)) = (&rule.stream_token, hook_url.and_then(crate::stream::stream_url)) else {
        return Ok(None);
    };
    let upstream = match created {
        Some(secret) => Some(secret),
        None => match &rule.hook_secret {
            Some(secret) => Some(secret.clone()),
            None => ledger::load_hook_secret(&settings.state_dir, hook)?,
        },
    };
    Ok(Some(StreamConfig { url, token: token.clone(), upstream }))
}

/// How long the Ready line waits for the blackholes' streams to come up, so that it can say they are.
const READY_WAIT: Duration = Duration::from_secs(2);

/// Waits until each of `streams` sources said how its first subscription went, for at most
/// [`READY_WAIT`]: `false` when a stream token was refused (its source fails the run) or the run
/// was stopped meanwhile.
async fn streams_opened(opened: &mut mpsc::Receiver<Opened>, mut streams: usize, cancel: &CancellationToken) -> bool {
    let deadline = tokio::time::sleep(READY_WAIT);
    tokio::pin!(deadline);
    while streams > 0 {
        tokio::select! {
            how = opened.recv() => match how {
                Some(Opened::Refused) => return false,
                Some(Opened::Up | Opened::Down) => streams -= 1,
                None => break,
            },
            () = &mut deadline => break,
            () = cancel.cancelled() => return false,
        }
    }
    !cancel.is_cancelled()
}

/// What a source's task gets from the run, besides its own hook and ledger.
struct Launch {
    /// What every source shares.
    ctx: Arc<Ctx>,
    /// When its first poll comes, spread among the sources.
    offset: Duration,
    /// True once the Ready line is out: polling and forwarding begin then.
    gate: watch::Receiver<bool>,
    /// Where its stream says how the first subscription went.
    opened: mpsc::Sender<Opened>,
    /// Stops every source.
    cancel: CancellationToken,
}

/// Runs `stage` once the Ready line is out; nothing when the run stops first.
async fn after_ready(
    mut gate: watch::Receiver<bool>,
    cancel: &CancellationToken,
    stage: impl Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    tokio::select! {
        ready = gate.wait_for(|ready| *ready) => if ready.is_err() { return Ok(()) },
        () = cancel.cancelled() => return Ok(()),
    }
    stage.await
}

/// Runs one source until `cancel`: its owner, and the stream, poller and forwarder side by side.
async fn forward_source<L: Ledger>(
    launch: Launch,
    source: SourceRun,
    ledger: L,
    first: Vec<DeliveryItem>,
) -> Result<(), Error> {
    let Launch { ctx, offset, gate, opened, cancel } = launch;
    if !matches!(source.hook, HookRef::App { .. }) {
        ctx.overlaps.join(&source.name, source.forwarder.target().0.as_str(), ledger.guids());
    }
    let mut state = State::new(ledger);
    state.listed(first, tokio::time::Instant::now()).await?;
    let (owner, owning) = owner::spawn(state);
    let owning = tokio::spawn(owning);
    let source = Arc::new(source);
    let streaming = stream_loop(ctx.clone(), source.clone(), owner.clone(), opened, cancel.clone());
    let polling = poll_loop(ctx.clone(), source.clone(), owner.clone(), offset, cancel.clone());
    let polling = after_ready(gate.clone(), &cancel, polling);
    let forwarding = after_ready(gate, &cancel, forward_loop(ctx.clone(), source.clone(), owner, cancel.clone()));
    let result = tokio::try_join!(streaming, polling, forwarding).map(|_| ());
    if result.is_err() {
        cancel.cancel();
    }
    // Every handle is gone with the stages, so the owner gives the state back.
    let (state, failed) = owning.await.map_err(|e| Error::TaskFailed(e.to_string()))?;
    ctx.events.emit(Event::SourceStopped { hook: source.hook.clone(), left: state.left() }).await;
    let (ledger, refused) = state.finish();
    if source.stream.is_some() {
        let (rejected, repeats, unrecorded) = (refused.forged, refused.repeats, refused.unrecorded);
        let event = Event::Summary { source: source.name.clone(), rejected, repeats, unrecorded };
        ctx.events.emit(event).await;
    }
    let closed = ledger.close().await;
    result.and(failed).and(closed)
}

/// Runs ledger I/O off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(Error::TaskFailed(e.to_string())))
}

/// How long to wait after a GitHub error: until the reset for a rate limit, else the backoff.
fn wait_after(error: &github::Error, backoff: &mut Backoff) -> Duration {
    let wait = backoff.next_wait();
    match error {
        github::Error::RateLimited { reset_at } => {
            let until = (*reset_at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            wait.max(until.min(Duration::from_secs(15 * 60)))
        }
        _ => wait,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn rule(sources: &[&str], target: &str) -> Rule {
        Rule::example(sources, target)
    }

    #[test]
    fn the_overlap_warning_says_what_becomes_of_each_event() {
        let one = [rule(&["acme", "acme/widgets"], "localhost:3000")];
        let said = |rules: &[Rule], dedupe| -> Vec<(String, String, OverlapOutcome)> {
            overlaps(rules, dedupe)
                .into_iter()
                .map(|warning| match warning {
                    Warning::Overlap { owner, repo, outcome } => (owner, repo, outcome),
                    other => panic!("not an overlap: {other:?}"),
                })
                .collect()
        };
        let widgets = |outcome| vec![("acme".to_string(), "widgets".to_string(), outcome)];
        assert_eq!(said(&one, true), widgets(OverlapOutcome::Once));
        assert_eq!(said(&one, false), widgets(OverlapOutcome::Twice));
        let two = [rule(&["acme"], "localhost:3000"), rule(&["acme/widgets"], "localhost:4000")];
        assert_eq!(said(&two, true), widgets(OverlapOutcome::EachTarget));
        assert!(overlaps(&[rule(&["acme", "other/widgets"], "localhost:3000")], true).is_empty());
    }

    #[test]
    fn waits_for_the_reset_after_a_rate_limit_at_most_fifteen_minutes() {
        let mut backoff = Backoff::default();
        let reset_at = Utc::now() + TimeDelta::seconds(120);
        let wait = wait_after(&github::Error::RateLimited { reset_at }, &mut backoff);
        assert!(wait >= Duration::from_secs(119) && wait <= Duration::from_secs(121), "{wait:?}");
        // A reset hours away (a clock skew, a hostile header) is waited for at most 15 minutes.
        let far = Utc::now() + TimeDelta::hours(5);
        let wait = wait_after(&github::Error::RateLimited { reset_at: far }, &mut backoff);
        assert_eq!(wait, Duration::from_secs(15 * 60));
        // A reset already past, or any other error, waits only the backoff: seconds, not the reset.
        let past = Utc::now() - TimeDelta::seconds(60);
        let wait = wait_after(&github::Error::RateLimited { reset_at: past }, &mut Backoff::default());
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        let wait = wait_after(&github::Error::Unauthorized, &mut Backoff::default());
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }
}

//! The engine behind [`crate::run`]: hook setup, then per source a poller and a forwarder
//! sharing a queue of listed deliveries and the ledger.
//!
//! The poller only lists (cheap, small items); the forwarder fetches payloads a few at a
//! time just ahead of forwarding, so memory stays flat however long the backlog is.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use github::{Delivery, DeliveryItem, HookConfig, HookRef, Listing, NewHook, NextPage, Page, RateLimit, Secret};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, instrument, warn};

use crate::backoff::Backoff;
use crate::ledger::{self, Ledger, Lock, WINDOW};
use crate::{Error, Event, Forwarder, HookOrigin, Outgoing, Rule, Settings, Source};

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
}

/// One source ready to be polled.
struct SourceRun {
    /// `owner/repo`, the org, or `app`.
    name: String,
    /// Its hook.
    hook: HookRef,
    /// Where its deliveries go.
    forwarder: Forwarder,
    /// The local signing secret.
    secret: Option<Secret>,
    /// This process's hold on the hook's ledger, for as long as the source runs.
    _lock: Lock,
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
    let events = Emitter(events);
    // Hook ids are per GitHub instance: github.com and an Enterprise Server keep apart.
    let settings = Settings { state_dir: ledger::dir(&settings.state_dir, client.api_url()), ..settings };
    if rules.iter().any(|rule| rule.secret.is_none()) {
        events
            .emit(Event::Warning {
                message: "no local secret (HOOKFWD_SECRET or secret_env) is set, so forwarded requests carry no \
                          X-Hub-Signature headers and a handler that verifies them will reject them"
                    .into(),
            })
            .await;
    }
    if settings.since.is_some_and(|since| since > RETENTION) {
        events
            .emit(Event::Warning {
                message: "GitHub keeps deliveries for about 3 days, so older ones cannot be forwarded".into(),
            })
            .await;
    }

    let mut runs = Vec::new();
    let mut created = Vec::new();
    let mut hooks = HashSet::new();
    let mut fatal = None;
    let mut failures = Vec::new();
    'rules: for rule in &rules {
        let forwarder = Forwarder::new(rule.target.clone(), settings.target_timeout);
        for source in &rule.sources {
            if cancel.is_cancelled() {
                break 'rules;
            }
            let name = source.to_string();
            let setup = tokio::select! {
                setup = set_up(&client, rule, source) => setup,
                () = cancel.cancelled() => break 'rules,
            };
            match setup {
                Ok((hook, origin, hook_url, hook_events)) => {
                    if !hooks.insert(hook.clone()) {
                        let error = format!("{name}: its hook is already forwarded by an earlier rule");
                        failures.push(failed(&events, name, error).await);
                        continue;
                    }
                    if origin == HookOrigin::Created {
                        created.push(hook.clone());
                    }
                    let lock = match Lock::take(&settings.state_dir, &hook) {
                        Ok(lock) => lock,
                        Err(error) => {
                            failures.push(failed(&events, name, error.to_string()).await);
                            continue;
                        }
                    };
                    info!(source = %name, hook = %hook, ?origin, "source ready");
                    events
                        .emit(Event::HookReady {
                            source: name.clone(),
                            hook: hook.clone(),
                            origin,
                            hook_url,
                            target: rule.target.0.clone(),
                            events: hook_events,
                        })
                        .await;
                    runs.push(SourceRun {
                        name,
                        hook,
                        forwarder: forwarder.clone(),
                        secret: rule.secret.clone(),
                        _lock: lock,
                    });
                }
                Err(failure) => {
                    debug!(source = %name, "source could not be set up");
                    let error = match &failure {
                        SetupFailure::NoHookUrl(sentence) => sentence.clone(),
                        SetupFailure::GitHub(error) => error.to_string(),
                    };
                    failures.push(failed(&events, name, error).await);
                    // A rejected token fails every source alike: stop with it rather than try each.
                    if let SetupFailure::GitHub(error) = failure
                        && is_auth(&error)
                    {
                        fatal = Some(error);
                        break 'rules;
                    }
                }
            }
        }
    }

    let result = if let Some(error) = fatal {
        Err(Error::GitHub(error))
    } else if cancel.is_cancelled() {
        Ok(())
    } else if runs.is_empty() {
        Err(Error::NoSources(failures.join("; ")))
    } else {
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            settings: settings.clone(),
            events: events.clone(),
            sources: runs.len(),
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
                    if is_auth(&error) {
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
        if result.is_ok() && !cancel.is_cancelled() {
            events.emit(Event::Ready { sources: started.len() }).await;
            for (source, (ledger, first)) in started {
                tasks.spawn(forward_source(ctx.clone(), source, ledger, first, stop.clone()));
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let outcome = joined.unwrap_or_else(|e| {
                Err(Error::Ledger {
                    path: settings.state_dir.clone(),
                    action: "written",
                    source: std::io::Error::other(format!("a source task failed: {e}")),
                })
            });
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

    if settings.cleanup {
        for hook in &created {
            match client.delete_hook(hook).await {
                Ok(()) => info!(hook = %hook, "deleted the hook this run created"),
                Err(error) => {
                    events.emit(Event::Warning { message: format!("could not delete {hook}: {error}") }).await;
                }
            }
        }
    }
    result
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

/// Why a source could not be set up.
enum SetupFailure {
    /// The rule gives no hook URL to find the hook by: one sentence.
    NoHookUrl(String),
    /// GitHub refused; its `Display` names the source and the permission.
    GitHub(github::Error),
}

/// Finds the source's hook by URL, or creates it.
async fn set_up(
    client: &github::Client,
    rule: &Rule,
    source: &Source,
) -> Result<(HookRef, HookOrigin, Option<String>, Vec<String>), SetupFailure> {
    let owner = match source {
        Source::App => return Ok((HookRef::App, HookOrigin::App, rule.hook_url.clone(), rule.events.clone())),
        Source::Owner(owner) => owner,
    };
    let Some(url) = rule.hook_url.as_deref() else {
        return Err(SetupFailure::NoHookUrl(format!(
            "{owner}: no hook URL to find or create its hook by; give --hook-url or set HOOKFWD_HOOK_URL"
        )));
    };
    let hooks = client.list_hooks(owner).await.map_err(SetupFailure::GitHub)?;
    let same = |other: &str| other.trim_end_matches('/') == url.trim_end_matches('/');
    if let Some(hook) = hooks.iter().find(|hook| hook.config.url.as_deref().is_some_and(same)) {
        if !hook.active {
            warn!(
                hook = hook.id,
                "the hook is inactive, so GitHub records no deliveries for it; activate it in the repository settings"
            );
        }
        return Ok((owner.hook(hook.id), HookOrigin::Found, hook.config.url.clone(), hook.events.clone()));
    }
    let events = if rule.events.is_empty() { vec!["*".to_string()] } else { rule.events.clone() };
    let new = NewHook {
        name: "web".into(),
        active: true,
        events,
        config: HookConfig {
            url: Some(url.to_string()),
            content_type: Some("json".into()),
            secret: Some(random_secret()),
            insecure_ssl: Some(serde_json::Value::String("0".into())),
        },
    };
    let hook = client.create_hook(owner, &new).await.map_err(SetupFailure::GitHub)?;
    Ok((owner.hook(hook.id), HookOrigin::Created, Some(url.to_string()), hook.events))
}

/// 32 random bytes as hex: the hook's secret at GitHub, which only the blackhole would see.
fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a source starts forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No ledger, no `--since`: the newest listed delivery is the starting point.
    StartNow,
    /// No ledger: forward everything delivered from this time on.
    StartFrom(DateTime<Utc>),
    /// Resume from the ledger; with `extend_to`, also forward what it has not recorded since then.
    Resume {
        /// `--since` reaching before the ledger's origin.
        extend_to: Option<DateTime<Utc>>,
        /// The last poll is older than GitHub's retention: some deliveries may be gone.
        stale: bool,
    },
}

/// Decides where to start from the ledger (its origin and last poll), `--since`, and the time.
pub(crate) fn plan(
    ledger: Option<(DateTime<Utc>, DateTime<Utc>)>,
    since: Option<Duration>,
    now: DateTime<Utc>,
) -> Plan {
    let from = since.map(|since| now - TimeDelta::from_std(since).unwrap_or(TimeDelta::MAX));
    match ledger {
        None => from.map_or(Plan::StartNow, Plan::StartFrom),
        Some((origin, checked)) => {
            let retention = TimeDelta::from_std(RETENTION).unwrap_or(TimeDelta::MAX);
            Plan::Resume { extend_to: from.filter(|from| *from < origin), stale: now - checked > retention }
        }
    }
}

/// The poll interval: the configured one while a fifth or more of the budget is left (idle
/// polls answer 304 and cost nothing, so there is no reason to slow down); below that,
/// stretched so that `sources` polling at this pace, each poll costing a call, cannot spend
/// the rate budget (less a reserve) before it resets.
pub(crate) fn poll_interval(base: Duration, rate: RateLimit, sources: usize, now: DateTime<Utc>) -> Duration {
    let (Some(remaining), Some(reset_at)) = (rate.remaining, rate.reset_at) else { return base };
    if rate.limit.is_some_and(|limit| u64::from(remaining) * 5 >= u64::from(limit)) {
        return base;
    }
    let to_reset = (reset_at - now).to_std().unwrap_or(Duration::ZERO);
    // Keep 5% (at least 10 calls) for fetching payloads and for the user's other tools.
    let reserve = rate.limit.map_or(50, |limit| (limit / 20).max(10));
    if remaining <= reserve {
        return base.max(to_reset + Duration::from_secs(1));
    }
    let needed = to_reset.mul_f64(sources.max(1) as f64 / f64::from(remaining - reserve));
    base.max(needed)
}

/// Listed deliveries waiting to be forwarded, oldest first, and those being forwarded.
#[derive(Default)]
struct Queue {
    /// Listed, not yet taken.
    pending: BTreeMap<(DateTime<Utc>, u64), DeliveryItem>,
    /// Taken by the forwarder, not yet recorded.
    in_flight: BTreeSet<(DateTime<Utc>, u64)>,
    /// Ids of both.
    ids: HashSet<u64>,
}

/// The state a source's poller and forwarder share.
struct Shared {
    /// Lock order: `queue`, then `ledger`.
    queue: Mutex<Queue>,
    /// The durable record.
    ledger: Mutex<Ledger>,
    /// Wakes the forwarder when the poller queued something.
    notify: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here: every update is a single step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn floor(&self) -> DateTime<Utc> {
        lock(&self.ledger).floor()
    }

    /// Whether a listed delivery is already handled or waiting.
    fn is_known(&self, item: &DeliveryItem) -> bool {
        let queue = lock(&self.queue);
        queue.ids.contains(&item.id) || lock(&self.ledger).is_recorded(item.id, item.delivered_at)
    }

    /// Queues the deliveries not yet handled or waiting; returns how many.
    fn enqueue(&self, items: Vec<DeliveryItem>) -> usize {
        let mut queue = lock(&self.queue);
        let ledger = lock(&self.ledger);
        let mut added = 0;
        for item in items {
            if queue.ids.contains(&item.id) || ledger.is_recorded(item.id, item.delivered_at) {
                continue;
            }
            queue.ids.insert(item.id);
            queue.pending.insert((item.delivered_at, item.id), item);
            added += 1;
        }
        drop(ledger);
        drop(queue);
        if added > 0 {
            self.notify.notify_one();
        }
        added
    }

    /// Takes the oldest waiting delivery.
    fn take_next(&self) -> Option<DeliveryItem> {
        let mut queue = lock(&self.queue);
        let (key, item) = queue.pending.pop_first()?;
        queue.in_flight.insert(key);
        Some(item)
    }

    fn backlog(&self) -> usize {
        lock(&self.queue).ids.len()
    }

    /// Records a handled delivery in the ledger (blocking: it fsyncs).
    fn record(&self, item: &DeliveryItem) -> Result<(), Error> {
        let key = (item.delivered_at, item.id);
        let mut queue = lock(&self.queue);
        let oldest_pending = queue.pending.first_key_value().map(|(k, _)| k.0);
        let oldest_in_flight = queue.in_flight.iter().find(|k| **k != key).map(|k| k.0);
        let keep_from = match (oldest_pending, oldest_in_flight) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        lock(&self.ledger).record(item.id, item.delivered_at, keep_from)?;
        queue.in_flight.remove(&key);
        queue.ids.remove(&item.id);
        Ok(())
    }
}

/// Runs one source until `cancel`: start, then poll and forward side by side.
async fn forward_source(
    ctx: Arc<Ctx>,
    source: SourceRun,
    ledger: Ledger,
    first: Vec<DeliveryItem>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let shared = Arc::new(Shared { queue: Mutex::default(), ledger: Mutex::new(ledger), notify: Notify::new() });
    shared.enqueue(first);
    let source = Arc::new(source);
    let polling = poll_loop(ctx.clone(), source.clone(), shared.clone(), cancel.clone());
    let forwarding = forward_loop(ctx.clone(), source.clone(), shared.clone(), cancel.clone());
    let result = tokio::try_join!(polling, forwarding).map(|_| ());
    if result.is_err() {
        cancel.cancel();
    }
    // Every record was fsynced already; compacting leaves a small file behind.
    let compacted = blocking(move || lock(&shared.ledger).compact()).await;
    result.and(compacted)
}

/// Runs ledger I/O off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Error::Ledger { path: "ledger".into(), action: "written", source: std::io::Error::other(e.to_string()) })
    })
}

/// Opens or creates the ledger and lists what to forward first. `None` when cancelled.
async fn start(
    ctx: &Ctx,
    source: &SourceRun,
    cancel: &CancellationToken,
) -> Result<Option<(Ledger, Vec<DeliveryItem>)>, Error> {
    let dir = ctx.settings.state_dir.clone();
    let hook = source.hook.clone();
    let existing = blocking(move || Ledger::open(&dir, &hook)).await?;
    let now = Utc::now();
    let plan = plan(existing.as_ref().map(|l| (l.origin(), l.last_checked())), ctx.settings.since, now);
    debug!(hook = %source.hook, ?plan, "start");
    let mut backoff = Backoff::default();
    loop {
        let attempt = start_once(ctx, source, &plan, existing.as_ref(), now).await;
        match attempt {
            Ok(Begin::Create { origin, done, first }) => {
                let (dir, hook) = (ctx.settings.state_dir.clone(), source.hook.clone());
                let ledger = blocking(move || Ledger::create(&dir, &hook, origin, done, Utc::now())).await?;
                return Ok(Some((ledger, first)));
            }
            Ok(Begin::Resume { known, extend_to, first }) => {
                let Some(mut ledger) = existing else {
                    return Err(Error::Ledger {
                        path: ctx.settings.state_dir.clone(),
                        action: "read",
                        source: std::io::Error::other("the ledger vanished while starting"),
                    });
                };
                if let Plan::Resume { stale: true, .. } = plan {
                    ctx.events
                        .emit(Event::Warning {
                            message: format!(
                                "{} was last polled more than 3 days ago, longer than GitHub keeps deliveries; \
                                 some may be gone",
                                source.name
                            ),
                        })
                        .await;
                }
                if let Some(origin) = extend_to {
                    ledger = blocking(move || ledger.extend_back(origin, known).map(|()| ledger)).await?;
                }
                return Ok(Some((ledger, first)));
            }
            // Only what may pass is worth waiting for: a refusal fails the source at once.
            Err(error) if !error.is_transient() => return Err(Error::GitHub(error)),
            Err(error) => {
                ctx.events.emit(Event::Error { hook: Some(source.hook.clone()), message: error.to_string() }).await;
                let wait = wait_after(&error, &mut backoff);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => return Ok(None),
                }
            }
        }
    }
}

/// What the first listing decided.
enum Begin {
    /// A new ledger from `origin`, with `done` counting as handled; `first` to forward.
    Create { origin: DateTime<Utc>, done: Vec<(u64, DateTime<Utc>)>, first: Vec<DeliveryItem> },
    /// The existing ledger; `known` were forwarded before (for `extend_to`); `first` to forward.
    Resume { known: Vec<(u64, DateTime<Utc>)>, extend_to: Option<DateTime<Utc>>, first: Vec<DeliveryItem> },
}

async fn start_once(
    ctx: &Ctx,
    source: &SourceRun,
    plan: &Plan,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
) -> Result<Begin, github::Error> {
    let client = &ctx.client;
    let hook = &source.hook;
    match (plan, ledger) {
        (Plan::StartNow, _) => {
            let page = first_page(client, hook).await?;
            // An empty list: whatever shows up later is new.
            let origin = page.items.iter().map(|item| item.delivered_at).max().unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let items = page.items;
            let done = items.iter().filter(|i| i.delivered_at >= origin).map(|i| (i.id, i.delivered_at)).collect();
            Ok(Begin::Create { origin, done, first: Vec::new() })
        }
        (Plan::StartFrom(from), _) => {
            let first = scan_all(client, hook, *from).await?;
            Ok(Begin::Create { origin: *from, done: Vec::new(), first })
        }
        (Plan::Resume { extend_to, .. }, Some(ledger)) => {
            let stop_before = extend_to.unwrap_or(ledger.floor()).min(ledger.floor());
            let items = scan_all(client, hook, stop_before).await?;
            let (origin, floor) = (ledger.origin(), ledger.floor());
            let mut known = Vec::new();
            let mut first = Vec::new();
            for item in items {
                if extend_to.is_some() && item.delivered_at >= origin && item.delivered_at < floor {
                    known.push((item.id, item.delivered_at));
                } else if extend_to.is_some_and(|to| item.delivered_at >= to && item.delivered_at < origin)
                    || !ledger.is_recorded(item.id, item.delivered_at)
                {
                    first.push(item);
                }
            }
            Ok(Begin::Resume { known, extend_to: *extend_to, first })
        }
        (Plan::Resume { .. }, None) => Ok(Begin::Create { origin: now, done: Vec::new(), first: Vec::new() }),
    }
}

/// Every listed delivery from `stop_before` on, paging back as far as needed.
async fn scan_all(
    client: &github::Client,
    hook: &HookRef,
    stop_before: DateTime<Utc>,
) -> Result<Vec<DeliveryItem>, github::Error> {
    let mut page = first_page(client, hook).await?;
    let mut items = Vec::new();
    loop {
        let reached = page.items.iter().any(|item| item.delivered_at < stop_before);
        items.extend(page.items.into_iter().filter(|item| item.delivered_at >= stop_before));
        match page.next {
            Some(next) if !reached => page = client.next_deliveries(&next).await?,
            _ => return Ok(items),
        }
    }
}

/// The newest page, in full even if this client listed it before (a 304 would hide it).
async fn first_page(client: &github::Client, hook: &HookRef) -> Result<Page, github::Error> {
    match client.list_deliveries(hook, PER_PAGE).await? {
        Listing::Page(page) => Ok(page),
        Listing::NotModified => {
            client.forget_etags(hook);
            match client.list_deliveries(hook, PER_PAGE).await? {
                Listing::Page(page) => Ok(page),
                Listing::NotModified => Ok(Page { items: Vec::new(), next: None }),
            }
        }
    }
}

/// An unfinished scan, kept when a later page failed: page one will answer 304 next time,
/// so the rest must be listed from where it stopped.
struct Resume {
    /// The next page to list, if the scan must go on.
    next: Option<NextPage>,
    /// Unknown deliveries found so far.
    found: Vec<DeliveryItem>,
    /// The newest delivery listed so far.
    newest: Option<DateTime<Utc>>,
    /// Where the scan ends.
    stop_before: DateTime<Utc>,
    /// Whether the scan goes all the way to `stop_before`, or stops at a page it wholly knows.
    deep: bool,
}

/// How often a poll that finds something new pages back the whole window for late arrivals;
/// the others stop at the first page they wholly know, so a busy hook costs a page or two a poll.
/// Well under [`WINDOW`], so a late arrival is caught before the floor passes it.
const DEEP_SCAN_EVERY: Duration = Duration::from_secs(60);

/// Lists new deliveries every interval and queues them for the forwarder.
async fn poll_loop(
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut backoff = Backoff::default();
    let mut resume: Option<Resume> = None;
    // The newest delivery ever listed: later scans page back only a window before it.
    let mut newest_listed: Option<DateTime<Utc>> = None;
    // The start scanned everything it had to.
    let mut last_deep_scan = tokio::time::Instant::now();
    // The first poll right away, so `Polled` reports the backlog the start found.
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return Ok(()),
        }
        let polled = tokio::select! {
            polled = poll_once(&ctx, &source, &shared, &mut resume, &mut newest_listed, last_deep_scan.elapsed() >= DEEP_SCAN_EVERY) => polled,
            () = cancel.cancelled() => return Ok(()),
        };
        let rate = ctx.client.rate_limit();
        match polled {
            Ok((added, deep)) => {
                backoff.reset();
                if deep {
                    last_deep_scan = tokio::time::Instant::now();
                }
                let backlog = shared.backlog();
                debug!(hook = %source.hook, added, backlog, "polled");
                ctx.events.emit(Event::Polled { hook: source.hook.clone(), at: Utc::now(), backlog, rate }).await;
                let shared = shared.clone();
                blocking(move || lock(&shared.ledger).checked(Utc::now())).await?;
                wait = poll_interval(ctx.settings.interval, rate, ctx.sources, Utc::now());
            }
            Err(error) if is_auth(&error) => return Err(Error::GitHub(error)),
            Err(error) => {
                debug!(hook = %source.hook, "poll failed");
                ctx.events
                    .emit(Event::Error {
                        hook: Some(source.hook.clone()),
                        message: format!("listing the deliveries of {} failed: {error}", source.name),
                    })
                    .await;
                wait = wait_after(&error, &mut backoff).max(ctx.settings.interval);
            }
        }
    }
}

/// One poll: a conditional list, then older pages down to what the ledger holds.
async fn poll_once(
    ctx: &Ctx,
    source: &SourceRun,
    shared: &Shared,
    resume: &mut Option<Resume>,
    newest_listed: &mut Option<DateTime<Utc>>,
    deep: bool,
) -> Result<(usize, bool), github::Error> {
    let client = &ctx.client;
    let mut state = match client.list_deliveries(&source.hook, PER_PAGE).await? {
        Listing::NotModified => match resume.take() {
            Some(state) => state,
            None => return Ok((0, false)),
        },
        Listing::Page(page) => {
            let window = TimeDelta::from_std(WINDOW).unwrap_or(TimeDelta::MAX);
            let floor = shared.floor();
            // Late arrivals are late relative to what was listed, so a window before the newest
            // listed delivery is enough; never above the floor, where the ledger forgets ids.
            let stop_before = newest_listed.and_then(|n| n.checked_sub_signed(window)).map_or(floor, |t| t.max(floor));
            let mut state = Resume { next: None, found: Vec::new(), newest: None, stop_before, deep };
            state.next = take_page(shared, &mut state, page);
            state
        }
    };
    while let Some(next) = state.next.clone() {
        match client.next_deliveries(&next).await {
            Ok(page) => state.next = take_page(shared, &mut state, page),
            Err(error) => {
                *resume = Some(state);
                return Err(error);
            }
        }
    }
    *newest_listed = (*newest_listed).max(state.newest);
    Ok((shared.enqueue(state.found), state.deep))
}

/// Keeps a page's unknown deliveries; the next page's link if the scan must go on.
fn take_page(shared: &Shared, state: &mut Resume, page: Page) -> Option<NextPage> {
    let reached = page.items.iter().any(|item| item.delivered_at < state.stop_before);
    let mut wholly_known = !page.items.is_empty();
    for item in page.items {
        state.newest = state.newest.max(Some(item.delivered_at));
        if item.delivered_at >= state.stop_before && !shared.is_known(&item) {
            wholly_known = false;
            state.found.push(item);
        }
    }
    if reached || (wholly_known && !state.deep) { None } else { page.next }
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

/// What fetching a listed delivery gave.
enum Fetched {
    /// The whole delivery.
    Delivery(Box<Delivery>),
    /// GitHub no longer has it (past retention).
    Gone,
    /// Stopped.
    Cancelled,
    /// GitHub refused the credentials (a revoked token): nothing can be fetched any more.
    Refused(github::Error),
}

/// Takes queued deliveries oldest first, fetches a few ahead, forwards each in order, records it.
async fn forward_loop(
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let taken = {
        let (shared, cancel) = (shared.clone(), cancel.clone());
        futures::stream::unfold((), move |()| {
            let (shared, cancel) = (shared.clone(), cancel.clone());
            async move {
                loop {
                    if cancel.is_cancelled() {
                        return None;
                    }
                    if let Some(item) = shared.take_next() {
                        return Some((item, ()));
                    }
                    tokio::select! {
                        () = shared.notify.notified() => {}
                        () = cancel.cancelled() => return None,
                    }
                }
            }
        })
    };
    // Each fetch is its own task: `buffered` polls its futures only while this loop waits for
    // the next one, so unspawned fetches would stall while a delivery is forwarded and recorded,
    // and go out in bursts of `fetch_concurrency` rather than one as each slot frees.
    // The window holds twice as many as may be fetched at once, so that `fetch_concurrency`
    // GETs stay in flight while fetched deliveries wait their turn to be forwarded in order.
    let concurrency = ctx.settings.fetch_concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let fetched = taken
        .map(|item| {
            let (ctx, source, cancel, permits) = (ctx.clone(), source.clone(), cancel.clone(), permits.clone());
            let fetching = AbortOnDropHandle::new(tokio::spawn({
                let item = item.clone();
                async move {
                    // The semaphore is never closed, so a permit always comes.
                    let _permit = permits.acquire_owned().await;
                    fetch(&ctx, &source, &item, &cancel).await
                }
            }));
            async move {
                let outcome = match fetching.await {
                    Ok(outcome) => outcome,
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    // Aborted only when the runtime shuts down.
                    Err(_) => Fetched::Cancelled,
                };
                (item, outcome)
            }
        })
        .buffered(2 * concurrency);
    let mut fetched = std::pin::pin!(fetched);
    while let Some((item, outcome)) = fetched.next().await {
        match outcome {
            Fetched::Cancelled => return Ok(()),
            Fetched::Refused(error) => return Err(Error::GitHub(error)),
            Fetched::Gone => {
                ctx.events
                    .emit(Event::Warning {
                        message: format!(
                            "delivery {} of {} is no longer kept by GitHub and was skipped",
                            item.id, source.name
                        ),
                    })
                    .await;
            }
            Fetched::Delivery(delivery) => {
                let request = Outgoing::from_delivery(&delivery, source.secret.as_ref());
                drop(delivery);
                if !deliver(&ctx, &source, &item, &request, &cancel).await {
                    return Ok(());
                }
            }
        }
        let (shared, item) = (shared.clone(), item.clone());
        blocking(move || shared.record(&item)).await?;
    }
    Ok(())
}

/// Gets one delivery, retrying GitHub errors until it comes, is gone, or the run stops.
#[instrument(skip_all, fields(delivery = item.id))]
async fn fetch(ctx: &Ctx, source: &SourceRun, item: &DeliveryItem, cancel: &CancellationToken) -> Fetched {
    let mut backoff = Backoff::default();
    let mut not_found = 0;
    loop {
        let result = tokio::select! {
            result = ctx.client.get_delivery(&source.hook, item.id) => result,
            () = cancel.cancelled() => return Fetched::Cancelled,
        };
        let error = match result {
            Ok(delivery) => return Fetched::Delivery(Box::new(delivery)),
            Err(github::Error::NotFound { .. }) if not_found + 1 >= GONE_AFTER => return Fetched::Gone,
            Err(error) if is_auth(&error) => return Fetched::Refused(error),
            Err(error) => error,
        };
        if matches!(error, github::Error::NotFound { .. }) {
            not_found += 1;
        }
        debug!(delivery = item.id, "fetch failed");
        ctx.events
            .emit(Event::Error {
                hook: Some(source.hook.clone()),
                message: format!("fetching delivery {} of {} failed: {error}", item.id, source.name),
            })
            .await;
        let wait = wait_after(&error, &mut backoff);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return Fetched::Cancelled,
        }
    }
}

/// POSTs one delivery until the target answers other than 5xx; `false` if the run stopped first.
#[instrument(skip_all, fields(delivery = item.id, event = %item.event))]
async fn deliver(
    ctx: &Ctx,
    source: &SourceRun,
    item: &DeliveryItem,
    request: &Outgoing,
    cancel: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::default();
    let mut attempt = 0;
    ctx.events.emit(Event::Delivering { hook: source.hook.clone(), item: item.clone() }).await;
    loop {
        attempt += 1;
        let sent = tokio::select! {
            sent = source.forwarder.send(request) => sent,
            () = cancel.cancelled() => return false,
        };
        let reason = match sent {
            Ok(response) => {
                info!(delivery = item.id, status = response.status, "forwarded");
                ctx.events
                    .emit(Event::Answered {
                        hook: source.hook.clone(),
                        item: item.clone(),
                        target: source.forwarder.target().0.clone(),
                        status: response.status,
                        latency: response.latency,
                    })
                    .await;
                if !response.is_retryable() {
                    return true;
                }
                response.status.to_string()
            }
            Err(reason) => reason,
        };
        let wait = backoff.next_wait();
        debug!(delivery = item.id, attempt, reason = %reason, "target unavailable; retrying");
        ctx.events.emit(Event::Retrying { hook: source.hook.clone(), item: item.clone(), reason, wait, attempt }).await;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn without_a_ledger_starts_now_or_at_since() {
        assert_eq!(plan(None, None, at(0)), Plan::StartNow);
        assert_eq!(plan(None, Some(HOUR), at(7200)), Plan::StartFrom(at(3600)));
    }

    #[test]
    fn with_a_ledger_resumes_and_extends_only_back() {
        let ledger = Some((at(1000), at(5000)));
        assert_eq!(plan(ledger, None, at(6000)), Plan::Resume { extend_to: None, stale: false });
        // --since reaching after the origin adds nothing: the ledger covers it.
        assert_eq!(plan(ledger, Some(HOUR), at(6000)), Plan::Resume { extend_to: None, stale: false });
        assert_eq!(plan(ledger, Some(2 * HOUR), at(6000)), Plan::Resume { extend_to: Some(at(-1200)), stale: false });
    }

    #[test]
    fn warns_when_the_gap_is_longer_than_retention() {
        let ledger = Some((at(0), at(0)));
        let later = at(RETENTION.as_secs() as i64 + 60);
        assert_eq!(plan(ledger, None, later), Plan::Resume { extend_to: None, stale: true });
    }

    #[test]
    fn stretches_the_interval_when_the_budget_runs_low() {
        let base = Duration::from_secs(1);
        let now = at(0);
        let plenty = RateLimit { limit: Some(5000), remaining: Some(4900), reset_at: Some(at(3600)) };
        assert_eq!(poll_interval(base, plenty, 1, now), base);
        let fast = Duration::from_millis(100);
        assert_eq!(poll_interval(fast, plenty, 4, now), fast, "a full budget never slows idle polls");
        let fifth = RateLimit { limit: Some(5000), remaining: Some(999), reset_at: Some(at(3600)) };
        // 1 source × 3600 s / (999 - 250) ≈ 4.8 s once less than a fifth is left.
        assert!(poll_interval(base, fifth, 1, now) > Duration::from_secs(4));
        let low = RateLimit { limit: Some(5000), remaining: Some(350), reset_at: Some(at(3600)) };
        // 3 sources × 3600 s / (350 - 250) = 108 s.
        assert_eq!(poll_interval(base, low, 3, now), Duration::from_secs(108));
        let spent = RateLimit { limit: Some(5000), remaining: Some(100), reset_at: Some(at(600)) };
        assert_eq!(poll_interval(base, spent, 1, now), Duration::from_secs(601));
        assert_eq!(poll_interval(base, RateLimit::default(), 5, now), base);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_reset_after_a_rate_limit() {
        let mut backoff = Backoff::default();
        let reset_at = Utc::now() + TimeDelta::seconds(120);
        let wait = wait_after(&github::Error::RateLimited { reset_at }, &mut backoff);
        assert!(wait >= Duration::from_secs(119) && wait <= Duration::from_secs(121), "{wait:?}");
        let start = tokio::time::Instant::now();
        tokio::time::sleep(wait).await;
        assert!(start.elapsed() >= Duration::from_secs(119));
    }
}

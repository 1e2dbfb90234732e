//! The stream task: subscribes to the blackhole, verifies each pushed delivery with the hook's
//! upstream secret and queues it; rings the poller whenever the API must fill a gap.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use github::Secret;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use url::Url;

use crate::stream::{self, Answer, Frame, Hello, Parser, PushedDelivery};
use crate::{Error, Event, StreamTrouble, Warning};
use github::Backoff;

use super::owner::Handle;
use super::state::{PushOutcome, Pushed};
use super::{Ctx, SourceRun};

/// Where and how a source subscribes.
#[derive(Debug, Clone)]
pub(super) struct StreamConfig {
    /// The hook URL without its query: the blackhole's origin and the hook's path.
    pub(super) url: Url,
    /// The blackhole's stream token.
    pub(super) token: Secret,
    /// The secret GitHub signs the hook's deliveries with; without it a push only rings the doorbell.
    pub(super) upstream: Option<Secret>,
}

/// How one connection ended.
enum Ended {
    /// The run stopped.
    Cancelled,
    /// The stream broke; the reason, for the status line.
    Dropped(String),
}

/// Warnings given once per run, so a flood of bad events is one line.
#[derive(Default)]
struct Warned {
    refused: bool,
    forged: bool,
    malformed: bool,
    too_large: bool,
}

/// How a source's first subscription went, for the Ready line (sent once per streaming source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opened {
    /// Up: the blackhole's hello came.
    Up,
    /// Not up (yet): the stream is retried, and polling covers it.
    Down,
    /// The stream token was refused: the run fails before it is Ready.
    Refused,
}

/// How long after the start a stream that has not come up is warned about, with why.
pub(crate) const STREAM_PATIENCE: Duration = Duration::from_secs(3);

/// Says once why the stream has not come up, [`STREAM_PATIENCE`] after the start, unless it came up.
struct NotUp {
    /// When to say it.
    due: Instant,
    /// Still to be said: the stream never came up, and nothing was said yet.
    pending: bool,
    /// The latest reason.
    trouble: StreamTrouble,
}

impl NotUp {
    /// Awaits `work`, warning meanwhile once it is due.
    async fn during<T>(&mut self, ctx: &Ctx, url: &Url, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                () = tokio::time::sleep_until(self.due), if self.pending => {
                    self.pending = false;
                    let origin = url.origin().ascii_serialization();
                    let host = url.host_str().unwrap_or_default();
                    let address = format!("{host}:{}", url.port_or_known_default().unwrap_or_default());
                    let (trouble, interval) = (self.trouble.clone(), ctx.settings.interval);
                    ctx.events.warn(Warning::StreamNotUp { origin, address, waited: STREAM_PATIENCE, trouble, interval }).await;
                }
            }
        }
    }
}

/// Sends how the first subscription went, the first time only.
fn report(opened: &mut Option<mpsc::Sender<Opened>>, how: Opened) {
    if let Some(sender) = opened.take() {
        // Sized for every streaming source: never full; a run that stopped waiting no longer reads it.
        let _ = sender.try_send(how);
    }
}

/// Subscribes, reads and reconnects until `cancel`. A token refused on the very first attempt
/// ends the run ([`Error::StreamRefused`]) before it is Ready; afterwards everything is a warning
/// while polling carries on at `--interval`.
pub(super) async fn stream_loop(
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    owner: Handle,
    opened: mpsc::Sender<Opened>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let Some(config) = source.stream.clone() else { return Ok(()) };
    let mut opened = Some(opened);
    // Up and healthy since its hello.
    let mut healthy = false;
    let http = stream::client();
    let mut backoff = Backoff::default();
    let mut last_id: Option<String> = None;
    let mut first_attempt = true;
    let mut warned = Warned::default();
    let origin = config.url.origin().ascii_serialization();
    let due = Instant::now() + STREAM_PATIENCE;
    let mut not_up = NotUp { due, pending: true, trouble: StreamTrouble::NoAnswer };
    loop {
        let subscribing = stream::subscribe(&http, &config.url, &config.token, last_id.as_deref());
        let answer = tokio::select! {
            answer = not_up.during(&ctx, &config.url, subscribing) => answer,
            () = cancel.cancelled() => return Ok(()),
        };
        let reason = match answer {
            Answer::Streaming(response) => {
                let mut reader = Reader {
                    ctx: &ctx,
                    source: &source,
                    owner: &owner,
                    config: &config,
                    warned: &mut warned,
                    opened: &mut opened,
                };
                let ended = reader.read(response, &mut last_id, &mut healthy, &cancel);
                match ended.await? {
                    Ended::Cancelled => return Ok(()),
                    Ended::Dropped(reason) => {
                        // Healthy until now: its hello reset the backoff.
                        if std::mem::replace(&mut healthy, false) {
                            not_up.pending = false;
                            backoff.reset();
                            ctx.events
                                .emit(Event::StreamDown { hook: source.hook.clone(), reason: reason.clone() })
                                .await;
                        }
                        not_up.trouble = StreamTrouble::Other(reason.clone());
                        reason
                    }
                }
            }
            Answer::Refused if first_attempt => {
                report(&mut opened, Opened::Refused);
                return Err(Error::StreamRefused { url: origin });
            }
            Answer::Refused => {
                // Said by its own warning.
                not_up.pending = false;
                if !std::mem::replace(&mut warned.refused, true) {
                    ctx.events.warn(Warning::StreamRefused { origin: origin.clone() }).await;
                }
                "the stream token was refused".to_string()
            }
            Answer::NotStreaming => {
                let (origin, interval) = (origin.clone(), ctx.settings.interval);
                ctx.events.warn(Warning::NotStreaming { origin, interval }).await;
                ctx.events.emit(Event::StreamDown { hook: source.hook.clone(), reason: "not streaming".into() }).await;
                report(&mut opened, Opened::Down);
                owner.stream_down().await;
                return Ok(());
            }
            Answer::NothingListens => {
                not_up.trouble = StreamTrouble::NothingListens;
                "nothing listens".to_string()
            }
            Answer::NotABlackhole { status } => {
                not_up.trouble = StreamTrouble::NotABlackhole { status };
                format!("answered {status}")
            }
            Answer::Unavailable(reason) => {
                not_up.trouble = StreamTrouble::Other(reason.clone());
                reason
            }
        };
        report(&mut opened, Opened::Down);
        first_attempt = false;
        debug!(hook = %source.hook, reason = %reason, "stream down");
        // Poll at `--interval` until the stream is back.
        owner.stream_down().await;
        let wait = backoff.next_wait();
        tokio::select! {
            () = not_up.during(&ctx, &config.url, tokio::time::sleep(wait)) => {}
            () = cancel.cancelled() => return Ok(()),
        }
    }
}

/// What reading one connection needs.
struct Reader<'a> {
    ctx: &'a Ctx,
    source: &'a SourceRun,
    owner: &'a Handle,
    config: &'a StreamConfig,
    warned: &'a mut Warned,
    /// Told once the first hello came.
    opened: &'a mut Option<mpsc::Sender<Opened>>,
}

impl Reader<'_> {
    /// Reads one connection's events until it ends; `healthy` once its hello came.
    async fn read(
        &mut self,
        mut response: reqwest::Response,
        last_id: &mut Option<String>,
        healthy: &mut bool,
        cancel: &CancellationToken,
    ) -> Result<Ended, Error> {
        let (ctx, source, owner) = (self.ctx, self.source, self.owner);
        let mut parser = Parser::new(stream::MAX_EVENT_BYTES);
        // Progress for /readyz and --max-stall: at most one event a second, however busy the stream.
        let mut alive_at: Option<tokio::time::Instant> = None;
        loop {
            let chunk = tokio::select! {
                chunk = tokio::time::timeout(stream::SILENCE, response.chunk()) => chunk,
                () = cancel.cancelled() => return Ok(Ended::Cancelled),
            };
            let chunk = match chunk {
                Err(_) => return Ok(Ended::Dropped(format!("silent for {}s", stream::SILENCE.as_secs()))),
                Ok(Err(_)) => return Ok(Ended::Dropped("the connection broke".into())),
                // A partial event left in the parser is dropped with it: it was never complete.
                Ok(Ok(None)) => return Ok(Ended::Dropped("the blackhole closed the stream".into())),
                Ok(Ok(Some(chunk))) => chunk,
            };
            if *healthy && alive_at.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
                alive_at = Some(tokio::time::Instant::now());
                ctx.events.emit(Event::StreamAlive { hook: source.hook.clone() }).await;
            }
            for frame in parser.feed(&chunk) {
                match frame {
                    Frame::Comment => {}
                    Frame::TooLarge { id } => {
                        if id.is_some() {
                            *last_id = id;
                        }
                        if !std::mem::replace(&mut self.warned.too_large, true) {
                            let limit_bytes = stream::MAX_EVENT_BYTES as u64;
                            ctx.events.warn(Warning::PushedTooLarge { limit_bytes }).await;
                        }
                        owner.ring().await;
                    }
                    Frame::Event(event) => match event.name.as_str() {
                        "hello" => {
                            let Ok(hello) = serde_json::from_str::<Hello>(&event.data) else {
                                return Ok(Ended::Dropped("the blackhole's hello was malformed".into()));
                            };
                            info!(hook = %source.hook, boot = %hello.boot, resumed = hello.resumed, "streaming");
                            // Before the event: what is emitted once the user sees the stream up waits for it.
                            *healthy = true;
                            owner.stream_up(hello.resumed).await;
                            ctx.events
                                .emit(Event::StreamUp { hook: source.hook.clone(), resumed: hello.resumed })
                                .await;
                            report(self.opened, Opened::Up);
                        }
                        "delivery" => {
                            if event.id.is_some() {
                                last_id.clone_from(&event.id);
                            }
                            if !self.delivered(&event.data, event.id, cancel).await? {
                                return Ok(Ended::Cancelled);
                            }
                        }
                        "gap" => return Ok(Ended::Dropped("fell behind the blackhole's buffer".into())),
                        _ => {}
                    },
                }
            }
        }
    }

    /// Verifies and hands over one pushed delivery, or rings the doorbell; `false` if the run stopped.
    async fn delivered(&mut self, data: &str, id: Option<String>, cancel: &CancellationToken) -> Result<bool, Error> {
        let (ctx, source, owner, config) = (self.ctx, self.source, self.owner, self.config);
        let Some(pushed) = PushedDelivery::parse(data) else {
            if !std::mem::replace(&mut self.warned.malformed, true) {
                ctx.events.warn(Warning::MalformedPush { source: source.name.clone() }).await;
            }
            owner.ring().await;
            return Ok(true);
        };
        let (Some(guid), Some(event)) = (pushed.header("x-github-delivery"), pushed.header("x-github-event")) else {
            // Any POST to the path is streamed: a scanner, or `hookfwd doctor` checking the URL. Without
            // GitHub's headers it claims to be no delivery, so it is neither forwarded nor a forgery.
            debug!(hook = %source.hook, "a pushed POST without GitHub's headers was ignored");
            return Ok(true);
        };
        let (guid, event) = (guid.to_string(), event.to_string());
        // Another hook delivering to the same URL path (another repository forwarded with the same
        // hook URL) is that source's business, not a forgery. A POST that names no hook, or another
        // one, is never forwarded: the signature covers the body only, so the headers could be
        // a relabelled copy of another hook's delivery.
        if !is_for(&source.hook, &pushed) {
            debug!(hook = %source.hook, guid = %guid, "a pushed POST for another hook was ignored");
            return Ok(true);
        }
        let Some(upstream) = &config.upstream else {
            // Nothing unverified reaches the handler: the API brings it, signed by GitHub's record.
            debug!(hook = %source.hook, guid = %guid, "doorbell");
            owner.ring().await;
            return Ok(true);
        };
        if !pushed.verifies(upstream) {
            owner.forged().await;
            debug!(hook = %source.hook, "pushed delivery with a bad signature");
            if !std::mem::replace(&mut self.warned.forged, true) {
                ctx.events.warn(Warning::Forged { source: source.name.clone() }).await;
            }
            return Ok(true);
        }
        // A slow handler: stop reading until there is room (the blackhole drops a reader that falls
        // too far behind, and what it missed comes back on resume or from the API).
        let mut room = owner.room.clone();
        tokio::select! {
            has = room.wait_for(|room| *room) => if has.is_err() { return Ok(false) },
            () = cancel.cancelled() => return Ok(false),
        }
        let action = action(&pushed);
        let pushed = Pushed {
            guid,
            event,
            action,
            received_at: pushed.received_at.min(Utc::now()),
            headers: pushed.headers,
            body: pushed.body,
            event_id: id,
        };
        let outcome = owner.pushed(pushed).await?;
        if outcome != PushOutcome::Queued {
            debug!(hook = %source.hook, ?outcome, "pushed delivery not forwarded on its own word");
        }
        Ok(true)
    }
}

/// Whether GitHub's headers name `hook`: its id, or for an App's hook the App as target.
fn is_for(hook: &github::HookRef, pushed: &PushedDelivery) -> bool {
    let header = |name| pushed.header(name).map(str::trim);
    match hook {
        github::HookRef::App { app_id } => {
            header("x-github-hook-id").is_some()
                && header("x-github-hook-installation-target-type") == Some("integration")
                && app_id.is_none_or(|app| header("x-github-hook-installation-target-id") == Some(&*app.to_string()))
        }
        _ => hook.id().is_some_and(|id| header("x-github-hook-id") == Some(&*id.to_string())),
    }
}

/// The payload's `action`, for the feed; JSON bodies only.
fn action(pushed: &PushedDelivery) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Action {
        action: Option<String>,
    }
    let json = pushed.header("content-type").is_none_or(|value| value.to_ascii_lowercase().contains("json"));
    json.then(|| serde_json::from_slice::<Action>(&pushed.body).ok()).flatten().and_then(|a| a.action)
}

//! `hookfwd demo`: the whole path on loopback, with no GitHub account: a stand-in GitHub, a
//! blackhole that streams, and a handler that verifies signatures, all in this process, with the
//! real relay and feed in between.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use console::style;
use fake_github::FakeGitHub;
use github::{Owner, Secret};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use relay::{Event, Rule, Source, Target, Via};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dev::{Local, Until, relay_rules};
use crate::args::{DemoArgs, InspectArgs, OutputArgs, PushArgs, RelayArgs, ServiceArgs};
use crate::exit::{FAILURE, fail};
use crate::json::Line;
use crate::term::{Status, print, short_guid};

/// The demo's repository, token and secrets: they exist only inside this process.
const REPO: &str = "octo-org/hello-world";
const TOKEN: &str = "ghp_hookfwdDemoTokenOnlyKnownToTheFake0001";
const STREAM_TOKEN: &str = "demo-stream-token";
const SECRET: &str = "demo-handler-secret";

/// The events the stand-in GitHub emits, from the built-in samples.
pub const EVENTS: [&str; 3] = ["push", "issues", "pull_request"];

/// How long the demo may take before it gives up: everything is on loopback, so seconds are plenty.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs the demo and ends with the two lines to run against the real GitHub; with `--inspect`, goes
/// on serving the inspector until Ctrl-C.
pub async fn demo(args: DemoArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));

    let fake = Arc::new(FakeGitHub::serve_until(TcpListener::bind(loopback).await?, cancel.clone())?);
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    // A real GitHub pings a new hook; the demo shows only the events it emits.
    fake.set_ping_on_create(false);

    let listener = blackhole::bind(loopback)?;
    let blackhole_addr = listener.local_addr()?;
    let stream = blackhole::StreamConfig {
        tokens: blackhole::Tokens::parse(STREAM_TOKEN)?,
        buffer_count: 64,
        buffer_bytes: 8 << 20,
        buffer_age: Duration::from_secs(120),
        buffer_total: 16 << 20,
        keepalive: Duration::from_secs(15),
        max_subscribers: 4,
        redis: None,
    };
    let config = blackhole::Config { stream: Some(stream), ..blackhole::Config::default() };
    tokio::spawn(blackhole::run(listener, config, cancel.clone().cancelled_owned()));

    let verified = Arc::new(Mutex::new(HashSet::new()));
    let handler = TcpListener::bind(loopback).await?;
    let handler_url = format!("http://{}/webhook", handler.local_addr()?);
    tokio::spawn(serve_handler(handler, verified.clone(), output.json, cancel.clone()));

    let state = Scratch::new()?;
    let rule = Rule {
        sources: vec![Source::Owner(Owner::parse(REPO)?)],
        target: Target::parse(&handler_url)?,
        hook_url: Some(format!("http://{blackhole_addr}/demo")),
        events: vec!["*".to_string()],
        actions: Vec::new(),
        filter: None,
        more: Vec::new(),
        installations: Vec::new(),
        repositories: Vec::new(),
        secret: Some(Secret::new(SECRET)),
        secret_env: None,
        stream_token: Some(Secret::new(STREAM_TOKEN)),
        hook_secret: None,
    };
    let relay = RelayArgs {
        secret: None,
        events: vec!["*".to_string()],
        filter: None,
        since: None,
        interval: Duration::from_secs(1),
        push: PushArgs { stream_token: None, hook_secret: None },
        safety_interval: Duration::from_secs(30),
        state_dir: Some(state.0.clone()),
        ledger: None,
        cleanup: true,
        // The blackhole is on loopback, and so is the stand-in GitHub that delivers to it.
        allow_private_hook_url: true,
        record: None,
        check_schema: false,
        on_handler_error: None,
        max_attempts: 3,
        no_dedupe: false,
        handler_timeout: None,
        handler_error_default: crate::args::OnHandlerError::Park,
        retry_key: false,
        service: ServiceArgs { admin_listen: None, max_stall: None },
    };
    let client = github::Client::new(github::Config {
        api_url: fake.api_url(),
        auth: github::Auth::Token(Secret::new(TOKEN)),
        timeout: Duration::from_secs(10),
    })?;
    if !output.json && !output.quiet {
        print(&format!(
            "{} a stand-in GitHub, a blackhole and a handler on loopback; hookfwd in between, in push mode",
            style("demo:").cyan().bold()
        ))?;
    }
    let (start, started) = oneshot::channel();
    let emitter = fake.clone();
    tokio::spawn(async move {
        // Emitted once the stream is up, so that every event arrives the way it would in production.
        if started.await.is_ok() {
            for event in EVENTS {
                emitter.emit_sample(REPO, event).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    let inspect = args.inspect.map(|addr| InspectArgs { inspect: addr, no_inspect: false, inspect_keep: 500 });
    let mut until = Demo {
        start: Some(start),
        pending: EVENTS.len(),
        verified,
        deadline: Instant::now() + PATIENCE,
        inspector: inspect.is_some().then(String::new),
        say: !output.json && !output.quiet,
    };
    // The token and the secret are the demo's own: no flag or variable gave them, so the Ready line says so.
    let token = "made up by the demo for the stand-in GitHub (***)".to_string();
    let local = Local {
        inspect: inspect.as_ref(),
        secret: Some("made up by the demo for its handler (***)".to_string()),
        stops_itself: inspect.is_none(),
        ..Local::default()
    };
    let code = relay_rules(client, token, vec![rule], relay, local, output, status, &mut until).await?;
    if until.inspector.is_none() && until.say {
        print(&done(None))?;
    }
    Ok(code)
}

/// What the demo showed, and the lines to run against the real GitHub; with the inspector, where to
/// explore the deliveries, else how to.
fn done(inspector: Option<&str>) -> String {
    let explore = match inspector {
        Some(url) => format!("Explore the deliveries at {url}; Ctrl-C to stop."),
        None => "To explore the deliveries in the inspector, run `hookfwd demo --inspect`.".to_string(),
    };
    format!(
        "\n{} every event came through the stream and the handler verified its signature. {explore}\n\
         Against the real GitHub, with a blackhole deployed (docs/deploy.md):\n  \
         export GITHUB_TOKEN=ghp_… HOOKFWD_SECRET=… HOOKFWD_STREAM_TOKEN=…\n  \
         hookfwd dev --repo OWNER/REPO --to localhost:3000/webhook --hook-url https://blackhole.example.com/alice",
        style("Done:").green().bold()
    )
}

/// Stops the relay once every emitted event was forwarded through the stream and verified.
struct Demo {
    /// Starts the emitter when the stream is up.
    start: Option<oneshot::Sender<()>>,
    /// Events not yet forwarded.
    pending: usize,
    /// The guids whose signature the handler verified.
    verified: Arc<Mutex<HashSet<String>>>,
    /// When to give up.
    deadline: Instant,
    /// With `--inspect`, the inspector's URL (empty until it serves): the demo then runs until Ctrl-C.
    inspector: Option<String>,
    /// Whether to print what was done (not with `--json` or `-q`).
    say: bool,
}

impl Until for Demo {
    fn event(&mut self, event: &Event) -> Option<anyhow::Result<ExitCode>> {
        match event {
            Event::StreamUp { .. } => {
                if let Some(start) = self.start.take() {
                    let _ = start.send(());
                }
                None
            }
            Event::Answered { item, status, via, .. } if EVENTS.contains(&item.event.as_str()) => {
                // The handler answers before the relay reports its answer, so a verified guid is already in.
                let verified = self.verified.lock().is_ok_and(|verified| verified.contains(&item.guid));
                if *via != Via::Stream || !(200..300).contains(status) || !verified {
                    return Some(Err(fail(
                        FAILURE,
                        format!(
                            "{} [{}] came via {} and the handler answered {status}; the demo expected the stream \
                             and a verified signature",
                            item.kind(),
                            item.guid,
                            via.as_str()
                        ),
                    )));
                }
                self.pending = self.pending.saturating_sub(1);
                if self.pending > 0 {
                    return None;
                }
                match &self.inspector {
                    None => Some(Ok(ExitCode::SUCCESS)),
                    Some(url) => {
                        let shown = if self.say { print(&done(Some(url))) } else { Ok(()) };
                        shown.err().map(|error| Err(error.into()))
                    }
                }
            }
            _ => None,
        }
    }

    fn inspecting(&mut self, url: &str) {
        if let Some(inspector) = &mut self.inspector {
            *inspector = url.to_string();
        }
    }

    fn deadline(&self) -> Option<Instant> {
        // Exploring in the inspector takes as long as it takes.
        self.inspector.is_none().then_some(self.deadline)
    }

    fn timed_out(&mut self) -> anyhow::Result<ExitCode> {
        Err(fail(
            FAILURE,
            format!(
                "the demo did not finish within {}s ({} of {} events left); run it with -v to see why",
                PATIENCE.as_secs(),
                self.pending,
                EVENTS.len()
            ),
        ))
    }

    fn stopped(&mut self) -> anyhow::Result<ExitCode> {
        if self.pending == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        Err(fail(FAILURE, "the demo was stopped before every event was forwarded"))
    }
}

/// A state directory of the demo's own, removed when the demo ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("hookfwd-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo's handler: checks each delivery's `X-Hub-Signature-256` with the local secret, says
/// so in the feed, and answers 200, or 401 to a bad signature.
async fn serve_handler(
    listener: TcpListener,
    verified: Arc<Mutex<HashSet<String>>>,
    json: bool,
    cancel: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            () = cancel.cancelled() => return,
        };
        let verified = verified.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(request, verified.clone(), json));
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// One delivery to the demo's handler.
async fn handle(
    request: Request<Incoming>,
    verified: Arc<Mutex<HashSet<String>>>,
    json: bool,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header =
        |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_string();
    let (event, guid, signature) =
        (header("x-github-event"), header("x-github-delivery"), header("x-hub-signature-256"));
    let body = request.into_body().collect().await?.to_bytes();
    let ok = github::signature::verify_sha256(&Secret::new(SECRET), &body, &signature);
    let action = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|payload| payload.get("action").and_then(|action| action.as_str()).map(str::to_string));
    let kind = match &action {
        Some(action) => format!("{event}.{action}"),
        None => event.clone(),
    };
    if ok && let Ok(mut verified) = verified.lock() {
        verified.insert(guid.clone());
    }
    let line = if json {
        Line::Handler { event: &event, action: action.as_deref(), guid: &guid, verified: ok }.to_json()
    } else if ok {
        format!("      {} handler verified the signature of {kind} [{}]", style("✓").green(), short_guid(&guid))
    } else {
        format!("      {} handler rejected {kind} [{}]: bad signature", style("✗").red(), short_guid(&guid))
    };
    // A closed stdout ends the demo through the feed; the handler just answers.
    let _ = print(&line);
    let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok\n")));
    *response.status_mut() = status;
    Ok(response)
}

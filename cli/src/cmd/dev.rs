//! `hookfwd dev`, and the relay run with its feed that `dev`, `forward` and `wait` share.

use std::process::ExitCode;

use anyhow::Context as _;
use relay::{Event, Rule, Settings, Source, Target};
use tokio::sync::mpsc;

use crate::admin::Service;
use crate::args::{
    AppFilterArgs, DevArgs, ForwardingArgs, GitHubArgs, InspectArgs, OnHandlerError, OutputArgs, RelayArgs, SourceArgs,
};
use crate::exit::{USAGE, fail};
use crate::feed::{Context, Feed};
use crate::inspect::Inspector;
use crate::term::Status;

/// `hookfwd dev`: one rule from flags.
pub async fn dev(args: DevArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let mut forwarding = args.forwarding;
    // Clap requires one --to at least.
    let mut routes = args.to.into_iter();
    let first = routes.next().ok_or_else(|| fail(USAGE, "give the handler with --to URL"))?;
    let mut rule = flag_rule(&args.sources, &args.app_filter, first.target, &forwarding.relay, &forwarding.github)?;
    // `--to 'URL if FILTER'`: this target's own filter rather than --filter.
    rule.filter = first.filter.or(rule.filter);
    rule.more = routes.collect();
    for route in rule.more.iter_mut().filter(|route| route.filter.is_none()) {
        route.filter = forwarding.relay.filter.clone();
    }
    // A developer's handler bug must not hold up the rest of the queue.
    forwarding.relay.handler_error_default = OnHandlerError::Park;
    forwarding.relay.retry_key = true;
    run_forwarding(vec![rule], forwarding, output, status).await
}

/// Runs `rules` as `dev` and `forward` do: `--action` and `--filter` for the rules that name no
/// actions (no filter) of their own, the handler's `--timeout`, the inspector, until stopped.
pub async fn run_forwarding(
    mut rules: Vec<Rule>,
    mut forwarding: ForwardingArgs,
    output: &OutputArgs,
    status: Status,
) -> anyhow::Result<ExitCode> {
    for rule in rules.iter_mut() {
        if rule.actions.is_empty() {
            rule.actions = forwarding.actions.clone();
        }
        if rule.filter.is_none() {
            rule.filter = forwarding.relay.filter.clone();
        }
        for route in rule.more.iter_mut().filter(|route| route.filter.is_none()) {
            route.filter = forwarding.relay.filter.clone();
        }
    }
    forwarding.relay.handler_timeout = Some(forwarding.timeout);
    let ForwardingArgs { relay, inspect, github, .. } = forwarding;
    run_rules(rules, relay, Some(&inspect), &github, output, status, &mut Forever).await
}

/// The one rule that `dev` and `wait` build from their flags. With `--app`, `--only-repo` and
/// `--installation` choose among the App hook's deliveries; `--repo` is always a hook of its own.
pub fn flag_rule(
    args: &SourceArgs,
    app_filter: &AppFilterArgs,
    target: Target,
    relay: &RelayArgs,
    github: &GitHubArgs,
) -> anyhow::Result<Rule> {
    let sources = super::sources(args)?;
    let installations = if args.app { github.installation_id.into_iter().collect() } else { Vec::new() };
    let hook_url = args.hook_url.clone();
    let needs_hook = sources.iter().any(|source| matches!(source, Source::Owner(_)));
    if needs_hook && hook_url.is_none() {
        // `--app --repo` once filtered the App hook's deliveries: say what does that now.
        let hint = if args.app { "; to forward only one repository's App deliveries, use --only-repo" } else { "" };
        return Err(fail(
            USAGE,
            format!(
                "--hook-url (or HOOKFWD_HOOK_URL) is needed: the blackhole URL your hook delivers to \
                 (see docs/deploy.md){hint}"
            ),
        ));
    }
    Ok(Rule {
        sources,
        target,
        hook_url,
        events: relay.events.clone(),
        actions: Vec::new(),
        filter: relay.filter.clone(),
        more: Vec::new(),
        installations,
        repositories: app_filter.only_repos.clone(),
        secret: relay.secret.clone(),
        secret_env: None,
        stream_token: super::non_empty(&relay.push.stream_token),
        hook_secret: super::non_empty(&relay.push.hook_secret),
    })
}

/// The relay's settings from the flags every command that runs it shares.
pub fn settings(relay: &RelayArgs) -> anyhow::Result<Settings> {
    Ok(Settings {
        interval: relay.interval,
        safety_interval: relay.safety_interval,
        since: relay.since,
        state_dir: super::state_dir(relay.state_dir.clone())?,
        cleanup: relay.cleanup,
        target_timeout: relay.handler_timeout.unwrap_or(Settings::default().target_timeout),
        on_handler_error: relay.on_handler_error.unwrap_or(relay.handler_error_default).into(),
        max_attempts: relay.max_attempts,
        dedupe: !relay.no_dedupe,
        ledger: relay.ledger.as_deref().map(relay::ledger::Location::parse).transpose()?,
        allow_private_hook_url: relay.allow_private_hook_url,
        ..Settings::default()
    })
}

/// When a relay run ends besides Ctrl-C: `dev` and `forward` never, `wait` at a matching delivery or its timeout.
pub trait Until {
    /// Looks at each event after it is shown; `Some` stops the relay and ends the run with that result.
    fn event(&mut self, _event: &Event) -> Option<anyhow::Result<ExitCode>> {
        None
    }

    /// Told the inspector's URL once it serves.
    fn inspecting(&mut self, _url: &str) {}

    /// When to give up, if ever.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        None
    }

    /// The result once the deadline has passed.
    fn timed_out(&mut self) -> anyhow::Result<ExitCode> {
        Ok(ExitCode::SUCCESS)
    }

    /// The result when the relay stopped by itself or on Ctrl-C.
    fn stopped(&mut self) -> anyhow::Result<ExitCode> {
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs until Ctrl-C or SIGTERM.
pub struct Forever;

impl Until for Forever {}

/// Runs the relay until Ctrl-C or SIGTERM, or until `until` says so, rendering its events
/// (and showing them in the inspector, and saving fixtures, when asked).
pub async fn run_rules(
    rules: Vec<Rule>,
    relay: RelayArgs,
    inspect: Option<&InspectArgs>,
    github: &GitHubArgs,
    output: &OutputArgs,
    status: Status,
    until: &mut dyn Until,
) -> anyhow::Result<ExitCode> {
    // Bad local input is said before GitHub is asked anything.
    relay.ledger.as_deref().map(relay::ledger::Location::parse).transpose()?;
    let recorder = match relay.record.as_deref() {
        Some(dir) => Some(crate::fixture::Recorder::open(dir).await?),
        None => None,
    };
    let (client, credentials) = super::github_client(github).await?;
    let token = super::describe_credentials(&credentials);
    let local = Local { inspect, recorder, ..Local::default() };
    relay_rules(client, token, rules, relay, local, output, status, until).await
}

/// What a run keeps on this machine beside the feed: the inspector and the fixture recorder.
#[derive(Default)]
pub struct Local<'a> {
    /// Serve the inspector with these settings.
    pub inspect: Option<&'a InspectArgs>,
    /// Save each forwarded delivery as a fixture.
    pub recorder: Option<crate::fixture::Recorder>,
    /// Where the secret came from, masked, for the Ready line, when no flag or variable gave it.
    pub secret: Option<String>,
    /// The run ends by itself (the demo): the Ready line does not say to press Ctrl-C.
    pub stops_itself: bool,
}

/// Runs the relay with `client`, whose credentials `token` describes for the Ready line.
#[allow(clippy::too_many_arguments)] // each is one concern of the run; a struct would only rename them
pub async fn relay_rules(
    client: github::Client,
    token: String,
    rules: Vec<Rule>,
    relay: RelayArgs,
    local: Local<'_>,
    output: &OutputArgs,
    status: Status,
    until: &mut dyn Until,
) -> anyhow::Result<ExitCode> {
    let Local { inspect, recorder, secret, stops_itself } = local;
    // The `r` key and the inspector's Retry now and Send again press the same key.
    let (press, presses) = tokio::sync::watch::channel(0u64);
    let inspector = match inspect {
        Some(args) => Inspector::start(args, client.clone(), &rules, press.clone()).await?,
        None => None,
    };
    if let Some(inspector) = &inspector {
        until.inspecting(inspector.url());
    }
    let settings = settings(&relay)?;
    // Only a terminal can press `r`, and only while parking or retrying can it matter; piped stdin is never read.
    let keys = if relay.retry_key { crate::keys::Keys::listen(press) } else { None };
    let retry_now = (keys.is_some() || inspector.is_some()).then_some(presses);
    let settings = Settings { retry_now, ..settings };
    let context = Context {
        token,
        secret: secret.unwrap_or_else(|| {
            super::describe_secret(
                rules.first().and_then(|rule| rule.secret.as_ref()),
                rules.first().and_then(|rule| rule.secret_env.as_deref()),
            )
        }),
        interval: settings.interval,
        streaming: rules.iter().any(|rule| rule.stream_token.is_some()),
        safety_interval: settings.safety_interval,
        inspector: inspector.as_ref().map(|inspector| inspector.url().to_string()),
        retry_key: keys.is_some(),
        stops_itself,
    };
    let mut feed = Feed::new(output, status, context);
    if relay.check_schema {
        feed.check_schemas();
    }
    let cancel = super::cancel_on_signals();
    let service = Service::start(&relay.service, settings.interval, &client, &cancel).await?;
    let (events, mut received) = mpsc::channel(1024);
    let engine = tokio::spawn(relay::run(client, rules, settings, events, cancel.clone()));
    let deadline = until.deadline();
    let timeout = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    // The status line counts a retry's wait down.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let outcome = loop {
        let event = tokio::select! {
            event = received.recv() => event,
            _ = tick.tick() => {
                feed.tick();
                continue;
            }
            () = &mut timeout => break until.timed_out(),
            stalled = service.stalled() => break Err(stalled),
        };
        let Some(event) = event else {
            // Ctrl-C or SIGTERM: say what was done and what is left, then stop cleanly.
            if cancel.is_cancelled()
                && let Err(error) = feed.stopped()
            {
                break Err(error.into());
            }
            break until.stopped();
        };
        service.observe(&event);
        if let Err(error) = feed.show(&event) {
            // stdout is gone (a closed pipe): stop cleanly so the ledger is flushed.
            break Err(error.into());
        }
        if let Some(inspector) = &inspector {
            inspector.observe(&event);
        }
        // Awaited off the async workers, one at a time: fixtures keep the feed's order.
        if let (Some(recorder), Event::Answered { item, request, .. }) = (&recorder, &event)
            && let Err(error) = recorder.write(crate::fixture::Fixture::new(item, request)).await
        {
            let message = format!("could not save the fixture of {} [{}]: {error}", item.kind(), item.guid);
            if let Err(error) = feed.warn("fixture_not_saved", &message) {
                break Err(error.into());
            }
        }
        if let Some(outcome) = until.event(&event) {
            break outcome;
        }
    };
    // Stop cleanly so the ledger is flushed; events sent meanwhile are read but not shown, except
    // each streaming source's summary and the hooks `--cleanup` deleted.
    cancel.cancel();
    let drain = async {
        while let Some(event) = received.recv().await {
            if matches!(event, Event::Summary { .. } | Event::CleanedUp { .. }) {
                let _ = feed.show(&event);
            }
        }
    };
    let (engine, ()) = tokio::join!(engine, drain);
    // The terminal back in line mode before anything more is printed.
    drop(keys);
    engine.context("the relay stopped unexpectedly")??;
    outcome
}

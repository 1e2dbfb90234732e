//! `hookfwd dev` and `hookfwd forward`: run the relay and show its feed.

use std::process::ExitCode;

use anyhow::Context as _;
use github::Secret;
use relay::{Event, Rule, Settings, Source, Target};
use tokio::sync::mpsc;

use crate::admin::Service;
use crate::args::{DevArgs, ForwardArgs, GitHubArgs, OutputArgs, RelayArgs, SourceArgs};
use crate::exit::{USAGE, fail};
use crate::feed::{Context, Feed, Status};

/// `hookfwd dev`: one rule from flags.
pub async fn dev(args: DevArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let rule = flag_rule(&args.sources, args.to, &args.relay)?;
    run_rules(vec![rule], args.relay, &args.github, output, status, &mut Forever).await
}

/// The one rule that `dev` and `wait` build from their flags.
pub fn flag_rule(args: &SourceArgs, target: Target, relay: &RelayArgs) -> anyhow::Result<Rule> {
    let sources = super::sources(args)?;
    let hook_url = args.hook_url.clone();
    let needs_hook = sources.iter().any(|source| matches!(source, Source::Owner(_)));
    if needs_hook && hook_url.is_none() {
        return Err(fail(
            USAGE,
            "--hook-url (or HOOKFWD_HOOK_URL) is needed: the blackhole URL your hook delivers to (see docs/deploy.md)",
        ));
    }
    Ok(Rule {
        sources,
        target,
        hook_url,
        events: relay.events.clone(),
        secret: relay.secret.clone().map(Secret::new),
        stream_token: non_empty(&relay.stream_token),
        hook_secret: non_empty(&relay.hook_secret),
    })
}

/// A secret from a flag or its env var; an empty one is none.
fn non_empty(value: &Option<String>) -> Option<Secret> {
    value.as_ref().filter(|value| !value.is_empty()).map(|value| Secret::new(value.clone()))
}

/// `hookfwd forward`: rules from `--rule` JSON or a TOML file.
pub async fn forward(args: ForwardArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let mut rules = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read the config file {}", path.display()))?;
            Rule::from_toml(&text).with_context(|| format!("could not load rules from {}", path.display()))?
        }
        None => args.rules.iter().map(|text| Rule::from_json(text)).collect::<Result<_, _>>()?,
    };
    let secret = args.relay.secret.clone().map(Secret::new);
    let (stream_token, hook_secret) = (non_empty(&args.relay.stream_token), non_empty(&args.relay.hook_secret));
    for rule in &mut rules {
        if rule.secret.is_none() {
            rule.secret = secret.clone();
        }
        if rule.stream_token.is_none() {
            rule.stream_token = stream_token.clone();
        }
        if rule.hook_secret.is_none() {
            rule.hook_secret = hook_secret.clone();
        }
    }
    run_rules(rules, args.relay, &args.github, output, status, &mut Forever).await
}

/// When a relay run ends besides Ctrl-C: `dev` and `forward` never, `wait` at a matching delivery or its timeout.
pub trait Until {
    /// Looks at each event after it is shown; `Some` stops the relay and ends the run with that result.
    fn event(&mut self, _event: &Event) -> Option<anyhow::Result<ExitCode>> {
        None
    }

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

/// Runs the relay until Ctrl-C or SIGTERM, or until `until` says so, rendering its events.
pub async fn run_rules(
    rules: Vec<Rule>,
    relay: RelayArgs,
    github: &GitHubArgs,
    output: &OutputArgs,
    status: Status,
    until: &mut dyn Until,
) -> anyhow::Result<ExitCode> {
    let (client, credentials) = super::github_client(github).await?;
    let settings = Settings {
        interval: relay.interval,
        safety_interval: relay.safety_interval,
        since: relay.since,
        state_dir: super::state_dir(relay.state_dir)?,
        cleanup: relay.cleanup,
        ..Settings::default()
    };
    let context = Context {
        token: super::describe_credentials(&credentials),
        secret: super::describe_secret(rules.first().and_then(|rule| rule.secret.as_ref())),
        interval: settings.interval,
        streaming: rules.iter().any(|rule| rule.stream_token.is_some()),
        safety_interval: settings.safety_interval,
    };
    let mut feed = Feed::new(output, status, context);
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
    let outcome = loop {
        let event = tokio::select! {
            event = received.recv() => event,
            () = &mut timeout => break until.timed_out(),
            stalled = service.stalled() => break Err(stalled),
        };
        let Some(event) = event else { break until.stopped() };
        service.observe(&event);
        if let Err(error) = feed.show(&event) {
            // stdout is gone (a closed pipe): stop cleanly so the ledger is flushed.
            break Err(error.into());
        }
        if let Some(outcome) = until.event(&event) {
            break outcome;
        }
    };
    // Stop cleanly so the ledger is flushed; events sent meanwhile are read but not shown, except
    // each streaming source's summary.
    cancel.cancel();
    let drain = async {
        while let Some(event) = received.recv().await {
            if matches!(event, Event::Summary { .. }) {
                let _ = feed.show(&event);
            }
        }
    };
    let (engine, ()) = tokio::join!(engine, drain);
    engine.context("the relay stopped unexpectedly")??;
    outcome
}

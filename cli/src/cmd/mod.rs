//! One module per subcommand, and what they share: the GitHub client, the state directory, signals.

mod completions;
mod consent;
#[cfg(feature = "demo")]
mod demo;
mod dev;
mod doctor;
mod forward;
mod guid;
mod hooks;
mod mcp;
mod redeliver;
mod replay;
pub(crate) mod send;
pub(crate) mod trigger;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use github::{AppCredentials, CredentialSource, Credentials, Owner, Secret};
use relay::Source;
use tokio_util::sync::CancellationToken;

use crate::args::{Cli, Command, GitHubArgs, SourceArgs};
use crate::exit::{USAGE, fail};
use crate::term::Status;

/// Runs the parsed command line; with `--json`, a failure is also an `error` line, the last on stdout.
pub async fn run(cli: Cli, status: Status) -> anyhow::Result<ExitCode> {
    // `mcp`'s stdout is the protocol's: its failure is said on stderr only.
    let json = cli.output.json && !matches!(cli.command, Command::Mcp(_));
    let outcome = command(cli, status).await;
    if json && let Err(error) = &outcome {
        crate::exit::json_line(error);
    }
    outcome
}

async fn command(cli: Cli, status: Status) -> anyhow::Result<ExitCode> {
    let output = cli.output;
    match cli.command {
        Command::Dev(args) => dev::dev(args, &output, status).await,
        Command::Forward(args) => forward::forward(args, &output, status).await,
        Command::Send(args) => send::send(args, &output, status).await,
        Command::Replay(args) => replay::replay(args, &output, status).await,
        Command::Trigger(args) => trigger::trigger(args, &output).await,
        Command::Redeliver(args) => redeliver::redeliver(args, &output).await,
        Command::Wait(args) => wait::wait(args, &output, status).await,
        Command::Mcp(args) => mcp::mcp(args).await,
        Command::Hooks(args) => hooks::hooks(args, &output).await,
        Command::Doctor(args) => doctor::doctor(args, &output).await,
        Command::Completions(args) => completions::completions(args),
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::demo(args, &output, status).await,
    }
}

/// Finds credentials, builds the GitHub client, and checks that GitHub's API answers ([`reach`]), so that
/// every command fails in seconds, with one sentence, on a wrong `--api-url` or a network that is down.
pub async fn github_client(args: &GitHubArgs) -> anyhow::Result<(github::Client, Credentials)> {
    let (client, credentials) = build_client(args).await?;
    reach(&client).await?;
    Ok((client, credentials))
}

/// Finds credentials and builds the GitHub client, asking GitHub nothing yet (`doctor` checks each step).
pub async fn build_client(args: &GitHubArgs) -> anyhow::Result<(github::Client, Credentials)> {
    let app = match (args.app_id, &args.app_key) {
        (Some(app_id), Some(path)) => {
            let pem = tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("could not read the GitHub App private key {}", path.display()))?;
            let app = AppCredentials { app_id, private_key: Secret::new(pem), installation_id: args.installation_id };
            Some((app, path.clone()))
        }
        _ => None,
    };
    // App credentials given to hookfwd itself win over a token that merely sits in the environment.
    let credentials = match app {
        Some((app, path)) => Credentials { auth: github::Auth::App(app), source: CredentialSource::App(path) },
        None => Credentials::discover(|name| std::env::var(name).ok().filter(|value| !value.is_empty()), None)?,
    };
    let config = github::Config {
        api_url: args.api_url.clone(),
        auth: credentials.auth.clone(),
        timeout: Duration::from_secs(30),
    };
    let client = github::Client::new(config)?;
    client.set_pace(github::Pace::under(args.secondary_limit, github::SECONDARY_CONCURRENT));
    Ok((client, credentials))
}

/// How long GitHub's API has to answer at start, so that a wrong `--api-url` or a network that is down
/// fails in seconds (within 10 s in all) rather than after the retries meant for a GitHub that was there.
const REACH_WITHIN: Duration = Duration::from_secs(8);

/// Fails, with one sentence, unless GitHub's API answers within [`REACH_WITHIN`].
pub async fn reach(client: &github::Client) -> anyhow::Result<()> {
    Ok(client.reach(REACH_WITHIN).await?)
}

/// Where the token came from, masked, for the Ready line and `doctor`.
pub fn describe_credentials(credentials: &Credentials) -> String {
    match (&credentials.source, &credentials.auth) {
        (CredentialSource::Env(name), github::Auth::Token(token)) => format!("{name} ({})", token.masked()),
        (CredentialSource::GhCli, github::Auth::Token(token)) => format!("gh auth token ({})", token.masked()),
        (CredentialSource::App(path), github::Auth::App(app)) => {
            format!("GitHub App {} (key {})", app.app_id, path.display())
        }
        (source, _) => format!("{source:?}"),
    }
}

/// Where the secret came from, masked: the variable a rule's `secret_env` named, HOOKFWD_SECRET, or the flag.
pub fn describe_secret(secret: Option<&Secret>, env: Option<&str>) -> String {
    match (secret, env) {
        (None, _) => "none (forwarded deliveries are unsigned)".to_string(),
        (Some(_), Some(name)) => format!("{name} (***)"),
        (Some(secret), None) if std::env::var("HOOKFWD_SECRET").is_ok_and(|value| value == secret.expose()) => {
            "HOOKFWD_SECRET (***)".to_string()
        }
        (Some(_), None) => "--secret (***)".to_string(),
    }
}

/// A secret from a flag or its env var; an empty one is none.
pub fn non_empty(value: &Option<Secret>) -> Option<Secret> {
    value.as_ref().filter(|value| !value.expose().is_empty()).cloned()
}

/// The sources named by `--repo`, `--org` and `--app`; at least one.
pub fn sources(args: &SourceArgs) -> anyhow::Result<Vec<Source>> {
    let mut sources: Vec<Source> = args.repos.iter().chain(&args.orgs).cloned().map(Source::Owner).collect();
    if args.app {
        sources.push(Source::App);
    }
    if sources.is_empty() {
        return Err(fail(USAGE, "name at least one source with --repo OWNER/REPO, --org ORG or --app"));
    }
    Ok(sources)
}

/// The owners named by `--repo` and `--org`, for commands that work on hooks by owner.
pub fn owners(args: &SourceArgs) -> anyhow::Result<Vec<Owner>> {
    let owners: Vec<Owner> = args.repos.iter().chain(&args.orgs).cloned().collect();
    if owners.is_empty() {
        return Err(fail(USAGE, "name a repository with --repo OWNER/REPO or an organization with --org ORG"));
    }
    Ok(owners)
}

/// The state directory: the flag, else the platform's state (or local data) directory.
pub fn state_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    flag.or_else(|| dirs::state_dir().or_else(dirs::data_local_dir).map(|dir| dir.join("hookfwd")))
        .context("could not find a state directory; set --state-dir or HOOKFWD_STATE_DIR")
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn cancel_on_signals() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate => {}
        }
        token.cancel();
    });
    cancel
}

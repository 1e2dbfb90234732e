//! `fake-github`: serves the fake GitHub API until killed, printing its base URL on the first line of stdout.
//!
//! Further setup and every fault can be driven over HTTP under `/_fake/` (see `fake_github::control`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use fake_github::{FakeGitHub, HookSpec};

/// A faithful, stateful stand-in for GitHub's hooks and deliveries API.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Accept this token: `TOKEN` or `TOKEN:SCOPES` (scopes comma-separated; default `repo, admin:repo_hook, admin:org_hook`).
    #[arg(long = "token", env = "FAKE_GITHUB_TOKEN", value_name = "TOKEN[:SCOPES]")]
    tokens: Vec<String>,
    /// Create this repository (`OWNER/REPO`); repeatable.
    #[arg(long = "repo", value_name = "OWNER/REPO")]
    repos: Vec<String>,
    /// Create this organization; repeatable.
    #[arg(long = "org", value_name = "ORG")]
    orgs: Vec<String>,
    /// Add a hook for every event: `OWNER/REPO=URL` or `ORG=URL`; prints `hook OWNER ID` after the URL line.
    #[arg(long = "hook", value_name = "OWNER=URL")]
    hooks: Vec<String>,
    /// Primary rate-limit budget per token per hour.
    #[arg(long, default_value_t = 5000)]
    rate_limit: u32,
    /// Do not ping hooks created through the API (GitHub does).
    #[arg(long)]
    no_ping_on_create: bool,
    /// Serve under this path, as GitHub Enterprise Server serves `/api/v3`; the control surface moves under it too.
    #[arg(long, default_value = "", value_name = "PATH")]
    prefix: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fake-github: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let fake = FakeGitHub::serve_with_prefix(listener, &args.prefix, tokio_util::sync::CancellationToken::new())
        .context("starting the server")?;
    fake.set_rate_limit(args.rate_limit);
    fake.set_ping_on_create(!args.no_ping_on_create);
    for token in &args.tokens {
        let (token, scopes) = token.split_once(':').unwrap_or((token, "repo, admin:repo_hook, admin:org_hook"));
        fake.add_token(token, scopes);
    }
    args.orgs.iter().for_each(|org| fake.add_org(org));
    args.repos.iter().for_each(|repo| _ = fake.add_repo(repo));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", fake.api_url())?;
    for hook in &args.hooks {
        let (owner, url) = hook.split_once('=').with_context(|| format!("--hook {hook}: expected OWNER=URL"))?;
        writeln!(out, "hook {owner} {}", fake.add_hook(owner, HookSpec::new(url)))?;
    }
    out.flush()?;
    drop(out);

    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let terminate = terminate.recv();
    // Windows has no SIGTERM: Ctrl-C or the console closing stops it there.
    #[cfg(not(unix))]
    let terminate = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    Ok(())
}

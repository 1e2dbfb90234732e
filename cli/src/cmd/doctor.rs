//! `hookfwd doctor`: one line per check, `✓` or `✗` with a hint, so a newcomer sees what to fix first.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use console::style;
use github::{HookRef, Owner, Secret};
use url::Url;

use crate::args::{DoctorArgs, OutputArgs};
use crate::exit::{AUTH, FAILURE, fail};
use crate::json::Line;
use crate::term::{print, visible};

/// How long the hook URL has to answer.
const HOOK_URL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the checks.
pub async fn doctor(args: DoctorArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let mut report =
        Report { json: output.json, quiet: output.quiet, failed: 0, auth: false, missing_permission: None };

    // The hooks that deliver to the hook URL, for the stream's upstream secret.
    let mut found: Vec<HookRef> = Vec::new();
    let client = match super::build_client(&args.github).await {
        Ok((client, credentials)) => {
            report.pass("token", format!("found in {}", super::describe_credentials(&credentials)))?;
            // Every other GitHub check would wait out the retries meant for a GitHub that was there.
            match super::reach(&client).await {
                Ok(()) => {
                    report.pass("GitHub API", format!("{} answers", args.github.api_url))?;
                    Some(client)
                }
                Err(error) => {
                    let hint = "check --api-url (or GITHUB_API_URL) and your network";
                    report.fail("GitHub API", crate::exit::sentence(&error), hint)?;
                    None
                }
            }
        }
        Err(error) => {
            let auth =
                !error.chain().any(|cause| matches!(crate::exit::github_error(cause), Some(github::Error::ApiUrl(_))));
            report.auth |= auth;
            report.fail(
                "token",
                crate::exit::sentence(&error),
                "set GITHUB_TOKEN (or GH_TOKEN), or run `gh auth login`",
            )?;
            None
        }
    };

    if let Some(client) = &client {
        let owners: Vec<Owner> = args.sources.repos.iter().chain(&args.sources.orgs).cloned().collect();
        if owners.is_empty() && !args.sources.app {
            report.warn("permissions", "not checked", "name a repository with --repo or an organization with --org")?;
        }
        for owner in &owners {
            let hook_url = args.sources.hook_url.as_deref();
            if !check_owner(&mut report, client, owner, hook_url, &args.events, &mut found).await? {
                break;
            }
        }
        if args.sources.app {
            check_app(&mut report, client).await?;
        }
    }

    let answers = match &args.sources.hook_url {
        Some(url) => check_hook_url(&mut report, url).await?,
        None => {
            report.warn(
                "hook URL",
                "not checked",
                "set --hook-url or HOOKFWD_HOOK_URL to the blackhole's URL (see docs/deploy.md)",
            )?;
            false
        }
    };

    let token = super::non_empty(&args.push.stream_token);
    match (&args.sources.hook_url, token) {
        // A hook URL that does not answer fails the stream too: said once, above.
        (Some(url), Some(token)) if answers => {
            let streams = check_stream(&mut report, url, &token).await?;
            let hook_secret = super::non_empty(&args.push.hook_secret).is_some();
            // Which secret the hook has is known only for a hook found; a hook not found (or a token
            // GitHub refused) was said above.
            if streams && (hook_secret || !found.is_empty()) {
                let ledgers = super::state_dir(args.state_dir.clone())
                    .ok()
                    .map(|dir| relay::ledger::dir(&dir, &args.github.api_url));
                check_upstream_secret(&mut report, hook_secret, ledgers.as_deref(), &found)?;
            }
        }
        (_, None) => report.warn(
            "stream",
            "push mode is off: deliveries arrive by polling",
            "start the blackhole with --stream-token and give hookfwd the same token in HOOKFWD_STREAM_TOKEN",
        )?,
        (_, Some(_)) => {}
    }

    let secret = super::non_empty(&args.secret);
    match &secret {
        Some(_) => report.pass("local secret", "set: each forwarded delivery is signed with it")?,
        None => report.fail(
            "local secret",
            "not set: forwarded deliveries are unsigned, and a handler that verifies them rejects every one",
            "set HOOKFWD_SECRET (or --secret) to the secret your handler verifies with",
        )?,
    }

    if let Some(target) = &args.to {
        check_handler(&mut report, target, secret.as_ref()).await?;
    }

    match super::state_dir(args.state_dir.clone()) {
        Ok(dir) => match writable(&dir) {
            Ok(()) => report.pass("state directory", format!("{} is writable", dir.display()))?,
            Err(error) => report.fail(
                "state directory",
                format!("{} is not writable: {error}", dir.display()),
                "fix its permissions, or choose another with --state-dir or HOOKFWD_STATE_DIR",
            )?,
        },
        Err(error) => {
            report.fail("state directory", crate::exit::sentence(&error), "set --state-dir or HOOKFWD_STATE_DIR")?
        }
    }

    if let (false, Some(sentence)) = (report.auth, report.missing_permission.take()) {
        return Err(fail(AUTH, sentence));
    }
    match (report.auth, report.failed) {
        (true, failed) => Err(fail(AUTH, format!("{} failed; the token is missing or rejected", checks(failed)))),
        (false, 0) => Ok(ExitCode::SUCCESS),
        (false, failed) => Err(fail(FAILURE, format!("{} failed", checks(failed)))),
    }
}

fn checks(count: usize) -> String {
    if count == 1 { "1 check".to_string() } else { format!("{count} checks") }
}

/// Visibility, permission and hook checks for one repository or organization.
/// Returns false when the token was rejected, which makes further GitHub checks pointless.
async fn check_owner(
    report: &mut Report,
    client: &github::Client,
    owner: &Owner,
    hook_url: Option<&str>,
    events: &[String],
    found: &mut Vec<HookRef>,
) -> anyhow::Result<bool> {
    let name = owner.to_string();
    let hooks = match client.list_hooks(owner).await {
        Ok(hooks) => hooks,
        Err(github::Error::Unauthorized) => {
            report.auth = true;
            report.fail(
                "token accepted",
                "GitHub rejected it (401)",
                "it may be expired or revoked; create a new one",
            )?;
            return Ok(false);
        }
        Err(github::Error::NotFound { .. }) => {
            report.fail(
                &name,
                "not found, or not visible to this token (404)",
                "check the spelling, and that the token was granted access to it",
            )?;
            return Ok(true);
        }
        Err(error @ github::Error::Forbidden { .. }) => {
            report.pass(&name, "visible")?;
            let hint = match owner {
                Owner::Repo { .. } => {
                    "a classic token needs admin:repo_hook; a fine-grained one needs Webhooks: read and write"
                }
                Owner::Org { .. } => {
                    "a classic token needs admin:org_hook; a fine-grained \
                     one needs organization Webhooks: read and write"
                }
            };
            report.fail(&format!("{name} hooks"), error.to_string(), hint)?;
            report.missing_permission.get_or_insert_with(|| error.to_string());
            return Ok(true);
        }
        Err(error) => {
            report.fail(&name, error.to_string(), "run again with -v for details")?;
            return Ok(true);
        }
    };
    report.pass(&name, "visible")?;
    report.pass(&format!("{name} hooks"), format!("the token may manage them ({} found)", hooks.len()))?;
    let Some(url) = hook_url else { return Ok(true) };
    // Each check has a name of its own, so that a script reading --json can tell them apart.
    let name = format!("{name} hook");
    match hooks.iter().find(|hook| hook.delivers_to(url)) {
        Some(hook) if hook.active => {
            found.push(owner.hook(hook.id));
            report.pass(&name, format!("hook {} delivers to {url}", hook.id))?;
            check_hook_events(report, &name, hook, events)?;
            check_last_response(report, &name, hook)?;
        }
        Some(hook) => report.fail(
            &name,
            format!("hook {} delivers to {url} but is inactive", hook.id),
            "activate it in the repository's webhook settings, or remove it \
             with `hookfwd hooks rm` and run `hookfwd dev`",
        )?,
        None => report.fail(
            &name,
            format!("no hook delivers to {url}"),
            "`hookfwd dev` creates it; `hookfwd hooks list` shows the hooks there are",
        )?,
    }
    Ok(true)
}

/// Whether the hook subscribes to every event asked for with `--events`; `name` is the hook check's.
fn check_hook_events(report: &mut Report, name: &str, hook: &github::Hook, events: &[String]) -> anyhow::Result<()> {
    let check = format!("{name} events");
    if events.is_empty() {
        return Ok(());
    }
    if hook.events.iter().any(|event| event == "*") {
        return report.pass(&check, format!("hook {} takes every event", hook.id));
    }
    let missing: Vec<&str> = events.iter().filter(|event| !hook.events.contains(event)).map(String::as_str).collect();
    if missing.is_empty() {
        return report.pass(&check, format!("hook {} takes {}", hook.id, events.join(", ")));
    }
    report.fail(
        &check,
        format!("hook {} does not take {} (it takes {})", hook.id, missing.join(", "), hook.events.join(", ")),
        "add them in the webhook's settings on GitHub, or remove the hook and let `hookfwd dev --events …` create it",
    )
}

/// What GitHub's last delivery to the hook got back: whether GitHub actually reaches the blackhole.
fn check_last_response(report: &mut Report, name: &str, hook: &github::Hook) -> anyhow::Result<()> {
    let check = format!("{name} last response");
    let response = hook.last_response.as_ref();
    match response.and_then(|response| response.code) {
        Some(code @ 200..=299) => {
            report.pass(&check, format!("GitHub's last delivery to hook {} got {code}: GitHub reaches it", hook.id))
        }
        None => report.warn(
            &check,
            format!("GitHub has not delivered to hook {} yet", hook.id),
            "`hookfwd trigger ping` makes GitHub try now",
        ),
        Some(code) => {
            let message = response.and_then(|response| response.message.clone()).unwrap_or_default();
            report.fail(
                &check,
                format!("GitHub's last delivery to hook {} got {code} {}", hook.id, visible(&message))
                    .trim_end()
                    .to_string(),
                "GitHub could not deliver to the hook URL: is the blackhole deployed there, and public?",
            )
        }
    }
}

/// Whether the handler takes a ping signed as hookfwd signs each delivery: any answer will do
/// (a handler may ignore pings) but a 5xx, which would be retried and parked, and a 401 or 403,
/// which says it verifies with another secret. Without a local secret the ping is unsigned, and a
/// 401 or 403 is that missing secret's doing (said once, above).
async fn check_handler(report: &mut Report, target: &relay::Target, secret: Option<&Secret>) -> anyhow::Result<()> {
    let forwarder = relay::Forwarder::new(target.clone(), HOOK_URL_TIMEOUT);
    let zen = br#"{"zen":"hookfwd doctor checks that the handler answers"}"#;
    let ping = relay::Outgoing::synthetic("ping", zen, secret);
    let signed = if secret.is_some() { "a ping signed with the local secret" } else { "an unsigned ping" };
    let status = match forwarder.send(&ping).await {
        Ok(response) => response.status,
        Err(reason) => {
            return report.fail("handler", format!("{target}: {reason}"), "start your handler, or check --to");
        }
    };
    let message = format!("{target} answered {status} to {signed}");
    match status {
        401 | 403 if secret.is_none() => {
            report.fail("handler", message, "set HOOKFWD_SECRET to the secret the handler verifies with")
        }
        401 | 403 => report.fail("handler", message, "does the handler verify with HOOKFWD_SECRET?"),
        500.. => report.fail(
            "handler",
            message,
            "the handler failed on it (see its logs); hookfwd retries what it fails, then parks it",
        ),
        _ => report.pass("handler", message),
    }
}

/// Whether the GitHub App's hook deliveries can be read (the JWT works).
async fn check_app(report: &mut Report, client: &github::Client) -> anyhow::Result<()> {
    match client.list_deliveries(&HookRef::App { app_id: client.app_id() }, 1).await {
        Ok(_) => report.pass("app", "the App's hook deliveries are readable"),
        Err(error) => {
            report.auth |= matches!(error, github::Error::Unauthorized | github::Error::AppCredentials { .. });
            report.fail("app", error.to_string(), "check --app-id, --app-key and that the App has a webhook")
        }
    }
}

/// Whether the hook URL answers 2xx to a POST; a plain-http URL gets a warning: GitHub accepts it,
/// but the payloads and their signatures then cross the internet in the clear. `false` when it did not.
async fn check_hook_url(report: &mut Report, url: &str) -> anyhow::Result<bool> {
    let http = github::http_client()
        .timeout(HOOK_URL_TIMEOUT)
        .user_agent(concat!("hookfwd-doctor/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let answer = http
        .post(url)
        // No X-GitHub-* headers: a blackhole streams every POST, and a hookfwd in push mode
        // ignores one that does not claim to be GitHub's, rather than count it as forged.
        .header("content-type", "application/json")
        .body(r#"{"zen":"hookfwd doctor checks that this URL answers"}"#)
        .send()
        .await;
    let answers = matches!(&answer, Ok(response) if response.status().is_success());
    match answer {
        Ok(response) if response.status().is_success() => {
            report.pass("hook URL", format!("{url} answered {}", response.status().as_u16()))?;
        }
        Ok(response) => report.fail(
            "hook URL",
            format!("{url} answered {}", response.status().as_u16()),
            "GitHub records failed deliveries too, but the blackhole should answer 200; is this its URL?",
        )?,
        Err(error) => {
            let reason = if error.is_timeout() {
                format!("no answer within {}s", HOOK_URL_TIMEOUT.as_secs())
            } else if error.is_connect() {
                "could not connect".to_string()
            } else {
                error.without_url().to_string()
            };
            report.fail(
                "hook URL",
                format!("{url}: {reason}"),
                "deploy the blackhole (see docs/deploy.md) and check the URL",
            )?;
        }
    }
    if let Ok(parsed) = Url::parse(url)
        && parsed.scheme() != "https"
    {
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(domain)) => domain == "localhost",
            None => false,
        };
        let hint = if loopback {
            "fine for local testing; GitHub itself can reach only a public URL (see docs/deploy.md)"
        } else {
            "GitHub accepts http:// URLs, but payloads and signatures then travel in the clear, readable and \
             replayable on the way; put the blackhole behind TLS"
        };
        report.warn("hook URL scheme", format!("{url} is not HTTPS"), hint)?;
    }
    Ok(answers)
}

/// Push mode: the blackhole streams and accepts the token. `false` when it does not.
async fn check_stream(report: &mut Report, hook_url: &str, token: &Secret) -> anyhow::Result<bool> {
    let Some(url) = relay::stream::stream_url(hook_url) else { return Ok(false) };
    let origin = url.origin().ascii_serialization();
    let http = relay::stream::client();
    let answer = tokio::time::timeout(HOOK_URL_TIMEOUT, relay::stream::subscribe(&http, &url, token, None)).await;
    let streams = matches!(answer, Ok(relay::stream::Answer::Streaming(_)));
    match answer {
        Ok(relay::stream::Answer::Streaming(_)) => {
            report.pass("stream", format!("the blackhole at {origin} streams and accepted the token"))?;
        }
        Ok(relay::stream::Answer::Refused) => {
            report.auth = true;
            report.fail(
                "stream",
                format!("the blackhole at {origin} refused the stream token (401)"),
                "give hookfwd one of the tokens the blackhole was started with \
                 (--stream-token / BLACKHOLE_STREAM_TOKEN)",
            )?;
        }
        Ok(relay::stream::Answer::NotStreaming) => report.fail(
            "stream",
            format!("the blackhole at {origin} does not stream"),
            "start it with --stream-token (or BLACKHOLE_STREAM_TOKEN); until then hookfwd polls",
        )?,
        Ok(relay::stream::Answer::NothingListens) => report.fail(
            "stream",
            format!("nothing listens at {origin}"),
            "start the blackhole there, or check the hook URL",
        )?,
        Ok(relay::stream::Answer::NotABlackhole { status }) => report.fail(
            "stream",
            format!("{url} answered {status} where a blackhole streams"),
            "the hook URL serves something else; point it at the blackhole",
        )?,
        Ok(relay::stream::Answer::Unavailable(reason)) => report.fail(
            "stream",
            format!("could not subscribe at {origin}: {reason}"),
            "check that the blackhole runs a version with push mode, and the hook URL",
        )?,
        Err(_) => report.fail(
            "stream",
            format!("the blackhole at {origin} did not answer within {}s", HOOK_URL_TIMEOUT.as_secs()),
            "check the hook URL",
        )?,
    }
    Ok(streams)
}

/// Whether pushed deliveries can be verified: the hook's upstream secret is given, or was kept
/// when hookfwd created the hook.
fn check_upstream_secret(
    report: &mut Report,
    hook_secret: bool,
    ledgers: Option<&Path>,
    hooks: &[HookRef],
) -> anyhow::Result<()> {
    let stored = ledgers.is_some_and(|dir| {
        hooks.iter().any(|hook| relay::ledger::load_hook_secret(dir, hook).is_ok_and(|secret| secret.is_some()))
    });
    if hook_secret {
        report.pass(
            "stream secret",
            "the hook's upstream secret is given (--hook-secret), so pushed deliveries are verified",
        )
    } else if stored {
        report.pass("stream secret", "the hook's upstream secret was kept when hookfwd created it")
    } else {
        report.warn(
            "stream secret",
            "the hook's upstream secret is unknown, so each pushed delivery is fetched from the API instead",
            "give the secret the hook was created with in --hook-secret or HOOKFWD_HOOK_SECRET",
        )
    }
}

/// Creates, writes and removes a 0600 file in `dir`, creating `dir` if needed.
fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".hookfwd-doctor-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&path).and_then(|mut file| {
        file.write_all(b"hookfwd doctor\n")?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}

/// Prints each check's outcome and counts the failures.
struct Report {
    /// `--json`: one object per check.
    json: bool,
    /// `--quiet`: failures only.
    quiet: bool,
    /// Checks that failed.
    failed: usize,
    /// Whether the token is missing or was rejected (exit 3).
    auth: bool,
    /// The first permission the token lacks, as GitHub's 403 named it (exit 3 too).
    missing_permission: Option<String>,
}

impl Report {
    fn pass(&mut self, check: &str, message: impl Into<String>) -> anyhow::Result<()> {
        self.line("pass", check, &message.into(), None)
    }

    fn warn(&mut self, check: &str, message: impl Into<String>, hint: &str) -> anyhow::Result<()> {
        self.line("warn", check, &message.into(), Some(hint))
    }

    fn fail(&mut self, check: &str, message: impl Into<String>, hint: &str) -> anyhow::Result<()> {
        self.failed += 1;
        self.line("fail", check, &message.into(), Some(hint))
    }

    fn line(&self, level: &str, check: &str, message: &str, hint: Option<&str>) -> anyhow::Result<()> {
        if self.json {
            let line = Line::Check { check, ok: level != "fail", level, message, hint };
            return Ok(print(&line.to_json())?);
        }
        if self.quiet && level != "fail" {
            return Ok(());
        }
        let mark = match level {
            "pass" => style("✓").green(),
            "warn" => style("!").yellow(),
            _ => style("✗").red(),
        };
        let mut text = format!("{mark} {check}: {}", visible(message));
        if let Some(hint) = hint {
            text.push_str(&format!("\n    {} {hint}", style("hint:").dim()));
        }
        Ok(print(&text)?)
    }
}

//! The command line, parsed by clap. Each `///` comment is the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use github::{Owner, Secret};
use relay::filter::Filter;
use relay::{Route, Target};
use url::Url;

/// What a usage line shows for the sources: one of them must be typed.
macro_rules! source {
    () => {
        "<--repo <OWNER/REPO>|--org <ORG>|--app>"
    };
}

/// The "Examples:" section that ends a command's `--help`: what each example does, then its command line.
macro_rules! examples {
    ($($what:literal, $line:literal),+ $(,)?) => {
        concat!("Examples:" $(, "\n  # ", $what, "\n  ", $line, "\n")+)
    };
}

// The `--help` headings. clap lists them in the order their first flag is defined in, and the
// global options (defined on `Cli`, appended to each command) last, so `-h` and `--help` end alike.
// A flag not on the everyday path is `hide_short_help`: `-h` fits one screen, `--help` has it all.
const SOURCES: &str = "Sources";
const HANDLER: &str = "Handler";
const FILTERS: &str = "Which deliveries";
const PUSH: &str = "Push mode and polling";
const STATE: &str = "State";
const INSPECTOR: &str = "Inspector and fixtures";
const SERVICE: &str = "Running as a service";
const GITHUB: &str = "GitHub connection";
const GLOBAL: &str = "Global options";
const PAYLOAD: &str = "Payload";
const WAIT: &str = "What to wait for";

/// Real GitHub webhooks on your laptop, in CI, or in a private cluster, with no inbound port.
///
/// hookfwd polls GitHub's webhook deliveries API and replays each new delivery to your
/// handler, with GitHub's headers and a signature made with your local secret.
#[derive(Debug, Parser)]
#[command(
    name = "hookfwd",
    version,
    max_term_width = 100,
    disable_help_flag = true,
    disable_version_flag = true,
    after_long_help = examples!(
        "See it work in a minute, with no GitHub account",
        "hookfwd demo",
        "Forward a repository's webhooks through your blackhole to a local handler",
        "hookfwd dev --repo octo-org/hello-world --to localhost:3000/webhook \\\n      \
         --hook-url https://blackhole.example.com/alice",
        "Check the token, the hook, the blackhole and the handler before you start",
        "hookfwd doctor --repo octo-org/hello-world --to localhost:3000/webhook",
    )
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Print help (-h a summary, --help every option and examples).
    // Our own flag rather than clap's, so that it sits under the global heading with the others.
    #[arg(short, long, global = true, action = ArgAction::Help, help_heading = GLOBAL)]
    help: Option<bool>,
    /// Print the version.
    #[arg(short = 'V', long, action = ArgAction::Version, help_heading = GLOBAL)]
    version: Option<bool>,
}

/// Output options, shared by every command.
#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL)]
pub struct OutputArgs {
    /// Print one JSON object per line on stdout instead of the human feed.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only what needs attention: warnings, errors, answers other than 2xx, and each retry.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Show logs on stderr (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Forward a repository's, organization's or App's webhooks to a local handler.
    #[command(
        override_usage = concat!("hookfwd dev [OPTIONS] ", source!(), " --to <URL>"),
        after_long_help = examples!(
            "Forward a repository's webhooks through your blackhole to a local handler",
            "hookfwd dev --repo octo-org/hello-world --to localhost:3000/webhook \\\n      \
         --hook-url https://blackhole.example.com/alice",
            "Only pull requests opened or reopened (the hook URL from HOOKFWD_HOOK_URL)",
            "hookfwd dev --repo octo-org/hello-world --to localhost:3000 \\\n      \
             --events pull_request --action opened,reopened",
            "A GitHub App's own hook, only the deliveries of one repository",
            "hookfwd dev --app --only-repo octo-org/hello-world --to localhost:3000 \\\n      \
             --app-id 12345 --app-key app.pem",
        )
    )]
    Dev(DevArgs),
    /// Run many rules (sources → target) in one long-running process.
    #[command(
        override_usage = "hookfwd forward [OPTIONS] --config <FILE>\n       hookfwd forward [OPTIONS] --rule <JSON>...",
        after_long_help = examples!(
            "The rules of a TOML file (see docs/rules.md), as a service with health and metrics",
            "hookfwd forward --config hookfwd.toml --admin-listen 0.0.0.0:9090",
            "One rule as JSON: two sources to one handler",
            r#"hookfwd forward --rule '{"from":["octo-org/api","octo-org"],"to":"http://localhost:3000/webhook"}'"#,
        )
    )]
    Forward(ForwardArgs),
    /// Send a synthetic, GitHub-identical delivery of any event GitHub documents to a handler, editable with --set.
    #[command(
        override_usage = "hookfwd send [OPTIONS] --to <URL> <EVENT[.ACTION]>...\n       \
            hookfwd send [OPTIONS] --to <URL> --fixture <FILE|DIR>\n       hookfwd send --list",
        after_long_help = examples!(
            "A pull_request.opened delivery, signed with HOOKFWD_SECRET",
            "hookfwd send pull_request.opened --to localhost:3000/webhook",
            "A push to another branch, and check that a bad signature is refused",
            "hookfwd send push --set ref=refs/heads/feature --to localhost:3000 \\\n      \
             --secret wrong --expect-status 400",
            "Every event and action send has a payload for",
            "hookfwd send --list",
        )
    )]
    Send(SendArgs),
    /// Replay past deliveries that GitHub still holds to a handler, without touching the ledger.
    #[command(
        override_usage = concat!("hookfwd replay [OPTIONS] ", source!(), " <--to <URL>|--save <DIR>>"),
        after_long_help = examples!(
            "One delivery again, by the guid the feed shows",
            "hookfwd replay --repo octo-org/hello-world --guid 5c1e0a80 --to localhost:3000/webhook",
            "The deliveries the handler kept rejecting, once its bug is fixed",
            "hookfwd replay --parked --repo octo-org/hello-world --to localhost:3000/webhook",
            "Save the last hour's pushes as fixtures",
            "hookfwd replay --repo octo-org/hello-world --event push --since 1h --save fixtures/",
        )
    )]
    Replay(ReplayArgs),
    /// Make GitHub itself produce a delivery: a ping, or a redelivery of a past one.
    #[command(after_long_help = examples!(
        "GitHub pings the hook hookfwd uses",
        "hookfwd trigger ping --repo octo-org/hello-world",
        "GitHub redelivers a past delivery, by the guid the feed shows",
        "hookfwd trigger redeliver 5c1e0a80-8b7e-11f0-9a6b-2f6c1d5e4b3a --repo octo-org/hello-world",
    ))]
    Trigger(TriggerArgs),
    /// Ask GitHub to redeliver every recent delivery whose latest attempt failed (--failed).
    #[command(
        override_usage = concat!("hookfwd redeliver [OPTIONS] --failed ", source!()),
        after_long_help = examples!(
            "See what would be redelivered from the last six hours",
            "hookfwd redeliver --failed --repo octo-org/hello-world --dry-run",
            "Keep redelivering the App hook's failures, looking every five minutes",
            "hookfwd redeliver --failed --app --watch --interval 5m",
        )
    )]
    Redeliver(RedeliverArgs),
    /// Forward until a matching new delivery has been handled, then exit (for CI against real GitHub).
    #[command(
        override_usage = concat!("hookfwd wait [OPTIONS] ", source!(), " --event <EVENT> --to <URL>"),
        after_long_help = examples!(
            "Wait for the check run a push starts, and give up after five minutes (exit 5)",
            "hookfwd wait --repo octo-org/hello-world --event check_run --action completed \\\n      \
             --to localhost:3000/webhook --give-up-after 5m",
            "Count a delivery of the last ten minutes as new (one made before the wait began)",
            "hookfwd wait --repo octo-org/hello-world --event push --since 10m --to localhost:3000",
        )
    )]
    Wait(WaitArgs),
    /// Serve a Model Context Protocol server on stdio: an agent waits for, reads, replays and sends
    /// deliveries (see docs/agents.md).
    #[command(
        override_usage = concat!("hookfwd mcp [OPTIONS] ", source!(), " [--to <URL>]"),
        after_long_help = examples!(
            "Keep a repository's deliveries for the agent (register it with `claude mcp add`: docs/agents.md)",
            "hookfwd mcp --repo octo-org/hello-world --hook-url https://blackhole.example.com/alice",
            "Also forward each delivery to a local handler, which replay and send_event reach",
            "hookfwd mcp --repo octo-org/hello-world --to localhost:3000/webhook",
            "Only pull request and issue events (the hook URL from HOOKFWD_HOOK_URL)",
            "hookfwd mcp --repo octo-org/hello-world --events pull_request,issues",
        )
    )]
    Mcp(McpArgs),
    /// List or remove a repository's or organization's hooks.
    #[command(after_long_help = examples!(
        "Each hook of a repository, with the ones hookfwd created marked",
        "hookfwd hooks list --repo octo-org/hello-world",
        "Delete hook 4242",
        "hookfwd hooks rm 4242 --repo octo-org/hello-world",
    ))]
    Hooks(HooksArgs),
    /// Check the token, permissions, hook, hook URL and state directory, one line each.
    #[command(after_long_help = examples!(
        "Everything dev needs, before you start it",
        "hookfwd doctor --repo octo-org/hello-world --to localhost:3000 \\\n      \
         --hook-url https://blackhole.example.com/alice",
        "Only the token and the state directory",
        "hookfwd doctor",
    ))]
    Doctor(DoctorArgs),
    /// Print a shell completion script.
    #[command(after_long_help = examples!(
        "bash, for every new shell",
        "hookfwd completions bash > ~/.local/share/bash-completion/completions/hookfwd",
        "zsh, into a directory on $fpath",
        "hookfwd completions zsh > ~/.zfunc/_hookfwd",
    ))]
    Completions(CompletionsArgs),
    /// See it work in a minute, with no GitHub account: a stand-in GitHub, a blackhole and a
    /// signature-checking handler on loopback, and hookfwd forwarding a few events between them.
    #[cfg(feature = "demo")]
    #[command(after_long_help = examples!(
        "Watch it forward a few events, then stop by itself",
        "hookfwd demo",
        "Then explore its deliveries in the inspector",
        "hookfwd demo --inspect",
    ))]
    Demo(DemoArgs),
}

/// `hookfwd demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Serve the inspector (on ADDR, default 127.0.0.1:4040 or the next free port) and keep running
    /// after the demo, to explore its deliveries.
    #[arg(long, value_name = "ADDR", help_heading = INSPECTOR)]
    pub inspect: Option<Option<std::net::SocketAddr>>,
}

/// How to reach and authenticate to GitHub.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = GITHUB)]
pub struct GitHubArgs {
    /// GitHub API root: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.
    #[arg(
        long,
        env = "GITHUB_API_URL",
        default_value = "https://api.github.com",
        value_name = "URL",
        hide_short_help = true
    )]
    pub api_url: Url,
    /// GitHub App id, to authenticate as an App instead of with a token.
    #[arg(long, env = "HOOKFWD_APP_ID", value_name = "ID", requires = "app_key", hide_short_help = true)]
    pub app_id: Option<u64>,
    /// The GitHub App's private key (PEM file).
    #[arg(long, env = "HOOKFWD_APP_KEY", value_name = "FILE", requires = "app_id", hide_short_help = true)]
    pub app_key: Option<PathBuf>,
    /// The App installation to act as on repositories and organizations; with --app, only its
    /// deliveries are forwarded.
    #[arg(
        long,
        visible_alias = "installation",
        env = "HOOKFWD_INSTALLATION_ID",
        value_name = "ID",
        hide_short_help = true
    )]
    pub installation_id: Option<u64>,
    /// GitHub's secondary rate limit in points a minute per endpoint (900 on github.com; a GitHub
    /// Enterprise Server's admin may set another); hookfwd paces its calls to stay under it.
    #[arg(long, env = "HOOKFWD_SECONDARY_LIMIT", default_value_t = github::SECONDARY_PER_MINUTE, value_name = "POINTS",
        value_parser = clap::value_parser!(u32).range(1..), hide_short_help = true)]
    pub secondary_limit: u32,
}

/// Which hooks to use.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = SOURCES)]
pub struct SourceArgs {
    /// A repository, OWNER/REPO (repeatable).
    #[arg(long = "repo", value_name = "OWNER/REPO", value_parser = parse_repo)]
    pub repos: Vec<Owner>,
    /// An organization (repeatable).
    #[arg(long = "org", value_name = "ORG", value_parser = parse_org)]
    pub orgs: Vec<Owner>,
    /// The GitHub App's own hook (needs --app-id and --app-key).
    #[arg(long)]
    pub app: bool,
    /// The blackhole URL that identifies hookfwd's hook (dev and wait create it if missing);
    /// a distinct path per developer gives each their own hook.
    #[arg(long, env = "HOOKFWD_HOOK_URL", value_name = "URL", value_parser = parse_hook_url)]
    pub hook_url: Option<String>,
}

/// `hookfwd dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// With --app, which of the App hook's deliveries to forward.
    #[command(flatten)]
    pub app_filter: AppFilterArgs,
    /// The handler: a URL or host:port[/path] (http assumed). Repeat it to send each delivery to several
    /// handlers, each with its own order and retries; 'URL if FILTER' sends one only what the jq FILTER lets
    /// through (see docs/rules.md).
    #[arg(long, value_name = "URL", value_parser = parse_route, required = true, help_heading = HANDLER)]
    pub to: Vec<Route>,
    /// What `dev` shares with `forward`.
    #[command(flatten)]
    pub forwarding: ForwardingArgs,
}

/// `hookfwd mcp`. Push mode is what makes a wait end at once, so its `-h` shows the stream token.
#[derive(Debug, Args)]
#[command(mut_arg("stream_token", |arg| arg.hide_short_help(false)))]
pub struct McpArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// With --app, which of the App hook's deliveries to keep.
    #[command(flatten)]
    pub app_filter: AppFilterArgs,
    /// Also forward each delivery to this handler (which the replay and send_event tools reach): a URL
    /// or host:port[/path]. Without it, deliveries are only kept for the agent.
    #[arg(long, value_name = "URL", value_parser = parse_target, help_heading = HANDLER)]
    pub to: Option<Target>,
    /// How many deliveries are kept for the agent (the oldest go first; also bounded to 16 MiB).
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
        help_heading = STATE, hide_short_help = true)]
    pub keep: u64,
    /// Forwarding options.
    #[command(flatten)]
    pub relay: RelayArgs,
    /// GitHub connection.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// With `--app`: which of the App hook's deliveries `dev` and `wait` forward. Its own flag, so that
/// `--repo` always names a repository's hook, as a rule's `from` and `repositories` are apart.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = SOURCES)]
pub struct AppFilterArgs {
    /// With --app, forward only the App hook's deliveries from this repository, OWNER/REPO (repeatable;
    /// skipped before their payload is fetched).
    #[arg(long = "only-repo", value_name = "OWNER/REPO", value_parser = parse_repo, requires = "app",
        hide_short_help = true)]
    pub only_repos: Vec<Owner>,
}

/// What `dev` and `forward` share: local filters, the handler's timeout, how deliveries are
/// forwarded, the inspector and the GitHub connection.
#[derive(Debug, Args)]
pub struct ForwardingArgs {
    /// Forward only deliveries with one of these actions (comma-separated, such as opened,reopened),
    /// for rules that name no `actions` of their own; the others are skipped before their payload is fetched.
    #[arg(long = "action", value_delimiter = ',', value_name = "ACTIONS", help_heading = FILTERS)]
    pub actions: Vec<String>,
    /// How long the handler may take to answer one delivery before the attempt counts as failed
    /// (GitHub itself gives up after 10 s; a slower answer is warned about once).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_interval, help_heading = HANDLER,
        hide_short_help = true)]
    pub timeout: Duration,
    /// Forwarding options.
    #[command(flatten)]
    pub relay: RelayArgs,
    /// The local inspector.
    #[command(flatten)]
    pub inspect: InspectArgs,
    /// GitHub connection.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// The local inspector page of `dev` and `forward`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = INSPECTOR)]
pub struct InspectArgs {
    /// Serve the inspector on this loopback address (default 127.0.0.1:4040, or the next free port).
    #[arg(long, value_name = "ADDR", conflicts_with = "no_inspect")]
    pub inspect: Option<std::net::SocketAddr>,
    /// Do not serve the inspector.
    #[arg(long, hide_short_help = true)]
    pub no_inspect: bool,
    /// How many deliveries the inspector keeps (the oldest go first; also bounded to 16 MiB).
    #[arg(long, default_value_t = 500, value_name = "N", hide_short_help = true)]
    pub inspect_keep: usize,
}

/// Options shared by the commands that forward deliveries. Each flag names its heading: a
/// flattened struct's heading would carry on to the flags defined after it.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// The local webhook secret to sign forwarded deliveries with (prefer the env var: argv is visible to others).
    #[arg(long, env = "HOOKFWD_SECRET", hide_env_values = true, value_name = "SECRET", value_parser = parse_secret,
        help_heading = HANDLER)]
    pub secret: Option<Secret>,
    /// The events to forward, comma-separated; a hook hookfwd creates subscribes to them, and deliveries of
    /// other events are skipped.
    #[arg(long, value_delimiter = ',', default_value = "*", value_name = "EVENTS", help_heading = FILTERS)]
    pub events: Vec<String>,
    /// Forward only the deliveries for which this jq expression yields true, such as '.action == "opened"'
    /// ($headers, $event and $action are bound; see docs/rules.md); the others are recorded as handled and
    /// shown as skipped. Polling fetches each payload to decide.
    #[arg(long, value_name = "EXPR", value_parser = parse_filter, help_heading = FILTERS)]
    pub filter: Option<Filter>,
    /// Also forward deliveries of this recent past that were never forwarded (e.g. 2h).
    #[arg(long, value_name = "DURATION", value_parser = parse_since, help_heading = FILTERS, hide_short_help = true)]
    pub since: Option<Duration>,
    /// Time between polls; it stretches when the rate budget runs low.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_interval, help_heading = PUSH,
        hide_short_help = true)]
    pub interval: Duration,
    /// Push mode: the blackhole's stream token and the hook's upstream secret.
    #[command(flatten)]
    pub push: PushArgs,
    /// Time between the safety polls while the stream is healthy (a conditional list, free when nothing changed).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_interval, help_heading = PUSH,
        hide_short_help = true)]
    pub safety_interval: Duration,
    /// Where the ledgers of forwarded deliveries live.
    #[arg(long, env = "HOOKFWD_STATE_DIR", value_name = "DIR", help_heading = STATE, hide_short_help = true)]
    pub state_dir: Option<PathBuf>,
    /// Keep the ledgers in Redis or Valkey (redis://HOST:PORT/DB), shared by replicas on different machines,
    /// instead of in the state directory (see docs/operations.md).
    #[arg(long, env = "HOOKFWD_LEDGER", hide_env_values = true, value_name = "URL", help_heading = STATE,
        hide_short_help = true)]
    pub ledger: Option<String>,
    /// Delete the hook on exit, if this run created it (one line says which were deleted).
    #[arg(long, help_heading = STATE, hide_short_help = true)]
    pub cleanup: bool,
    /// Accept a --hook-url on loopback or a private network against github.com, which cannot
    /// reach it (another --api-url may): for a GitHub that can.
    #[arg(long, help_heading = STATE, hide_short_help = true)]
    pub allow_private_hook_url: bool,
    /// Save each forwarded delivery as a fixture file in DIR (see docs/fixtures.md).
    #[arg(long, value_name = "DIR", help_heading = INSPECTOR, hide_short_help = true)]
    pub record: Option<PathBuf>,
    /// Check each payload against GitHub's schema for its event and action, and name each mismatch
    /// (`/issue/number: expected integer`) on a line of its own; forwarding goes on regardless.
    #[arg(long, help_heading = INSPECTOR, hide_short_help = true)]
    pub check_schema: bool,
    /// What a delivery the handler rejects (a 5xx other than 502/503/504) does: `park` it after
    /// --max-attempts and move on, or `block` the queue until it is taken [default: park in dev,
    /// block in forward and wait]. An unreachable handler, a timeout or a 502/503/504 is always retried.
    #[arg(long, value_name = "WHAT", value_enum, help_heading = HANDLER, hide_short_help = true)]
    pub on_handler_error: Option<OnHandlerError>,
    /// The handler's rejections of one delivery before it is parked (see --on-handler-error).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
        help_heading = HANDLER, hide_short_help = true)]
    pub max_attempts: u32,
    /// Forward every copy of an event that overlapping sources (an organization and one of its
    /// repositories) both bring; by default an original delivery goes to each target once.
    #[arg(long, help_heading = FILTERS, hide_short_help = true)]
    pub no_dedupe: bool,
    /// The handler's timeout: `--timeout` of `dev` and `forward` (`wait` has no flag for it).
    #[arg(skip)]
    pub handler_timeout: Option<Duration>,
    /// The command's default for --on-handler-error.
    #[arg(skip = OnHandlerError::Block)]
    pub handler_error_default: OnHandlerError,
    /// Whether the `r` key retries now (`dev`, when stdin is a terminal).
    #[arg(skip)]
    pub retry_key: bool,
    /// Running as a service.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `--on-handler-error`: what a delivery the handler rejects does to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnHandlerError {
    /// Park it after --max-attempts rejections (send it again with `hookfwd replay --parked`) and go on.
    Park,
    /// Retry it until the handler takes it; everything behind it waits.
    #[default]
    Block,
}

impl From<OnHandlerError> for relay::OnHandlerError {
    fn from(value: OnHandlerError) -> Self {
        match value {
            OnHandlerError::Park => Self::Park,
            OnHandlerError::Block => Self::Block,
        }
    }
}

/// Health, metrics and stall exit, for `dev`, `forward` and `wait` (see docs/service.md); only
/// `forward`'s `-h` shows them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = SERVICE)]
pub struct ServiceArgs {
    /// Serve /healthz, /readyz and Prometheus /metrics on this address, such as 0.0.0.0:9090.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, hide_short_help = true)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Exit 1 when a source makes no progress for this long (no successful poll, or its queue stuck),
    /// so that a supervisor restarts hookfwd.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, hide_short_help = true)]
    pub max_stall: Option<Duration>,
}

/// `hookfwd forward`. As a service, its `-h` shows the service flags too.
#[derive(Debug, Args)]
#[command(
    mut_arg("ledger", |arg| arg.hide_short_help(false)),
    mut_arg("admin_listen", |arg| arg.hide_short_help(false)),
    mut_arg("max_stall", |arg| arg.hide_short_help(false))
)]
pub struct ForwardArgs {
    /// A rule as JSON:
    /// {"from":["org/repo","org"],"to":"http://…","hook":{"config":{"url":"https://…"},"events":["push"]}}.
    #[arg(long = "rule", value_name = "JSON", required_unless_present = "config", help_heading = "Rules")]
    pub rules: Vec<String>,
    /// A TOML file of rules (see docs/rules.md).
    #[arg(long, value_name = "FILE", conflicts_with = "rules", help_heading = "Rules")]
    pub config: Option<PathBuf>,
    /// What `forward` shares with `dev`.
    #[command(flatten)]
    pub forwarding: ForwardingArgs,
}

/// `hookfwd send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// What to send: EVENT or EVENT.ACTION (such as push, pull_request.synchronize), from GitHub's own
    /// example payloads; several are sent in turn. `--list` lists them.
    #[arg(value_name = "EVENT[.ACTION]", value_parser = EventName, hide_possible_values = true,
        conflicts_with_all = ["event", "fixture"])]
    pub names: Vec<String>,
    /// List every EVENT.ACTION that send has a payload for, and exit.
    #[arg(long, conflicts_with_all = ["names", "event", "fixture", "payload"], help_heading = PAYLOAD)]
    pub list: bool,
    /// The event, such as push or pull_request (the same as EVENT).
    #[arg(long, value_name = "EVENT", value_parser = EventName, hide_possible_values = true, help_heading = PAYLOAD,
        hide_short_help = true)]
    pub event: Option<String>,
    /// Send saved fixtures instead: a fixture file, or a directory of them in name order (re-signed).
    #[arg(long, value_name = "FILE|DIR", conflicts_with_all = ["event", "action", "payload", "repeat"],
        help_heading = PAYLOAD)]
    pub fixture: Option<PathBuf>,
    /// The action to set on the payload, for an EVENT given without one (default: the example's); unlike
    /// EVENT.ACTION it may be one GitHub never sends (a warning says so).
    #[arg(long, value_name = "ACTION", help_heading = PAYLOAD, hide_short_help = true)]
    pub action: Option<String>,
    /// A payload file, or - for stdin (default: GitHub's example).
    #[arg(long, value_name = "FILE", help_heading = PAYLOAD)]
    pub payload: Option<PathBuf>,
    /// Set a member of the payload before it is signed (repeatable): a dotted path with array indices,
    /// such as pull_request.head.ref=feature/x or commits.0.message=fix; VALUE is JSON when it parses as
    /// JSON (42, true, {"a":1}), else a string.
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = parse_edit, help_heading = PAYLOAD)]
    pub set: Vec<webhooks::Edit>,
    /// Like --set, with VALUE always a string (applied after every --set).
    #[arg(long = "set-string", value_name = "PATH=VALUE", value_parser = parse_string_edit, help_heading = PAYLOAD,
        hide_short_help = true)]
    pub set_string: Vec<webhooks::Edit>,
    /// Make the payload come from this repository: its repository, owner and sender follow it.
    #[arg(long, value_name = "OWNER/REPO", value_parser = parse_repo, help_heading = PAYLOAD)]
    pub repo: Option<Owner>,
    /// Check the payload against GitHub's schema for its event and action, and name each mismatch; it is
    /// sent regardless.
    #[arg(long, help_heading = PAYLOAD, hide_short_help = true)]
    pub check_schema: bool,
    /// The handler: a URL or host:port[/path].
    #[arg(long, value_name = "URL", value_parser = parse_target, required_unless_present = "list",
        help_heading = HANDLER)]
    pub to: Option<Target>,
    /// The webhook secret to sign with.
    #[arg(long, env = "HOOKFWD_SECRET", hide_env_values = true, value_name = "SECRET", value_parser = parse_secret,
        help_heading = HANDLER)]
    pub secret: Option<Secret>,
    /// Send it this many times, each a new delivery.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
        help_heading = HANDLER, hide_short_help = true)]
    pub repeat: u32,
    /// Succeed only if the handler answers this status (to assert a rejection), 100–599.
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u16).range(100..=599),
        help_heading = HANDLER)]
    pub expect_status: Option<u16>,
}

/// `hookfwd replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Send the deliveries parked in the ledger (the handler kept rejecting them) again, and
    /// un-park each one the handler takes.
    #[arg(long, requires = "to", conflicts_with_all = ["save", "guid", "event", "action", "filter", "limit"],
        help_heading = FILTERS)]
    pub parked: bool,
    /// With --parked: where the ledgers live.
    #[arg(long, env = "HOOKFWD_STATE_DIR", value_name = "DIR", help_heading = STATE, hide_short_help = true)]
    pub state_dir: Option<PathBuf>,
    /// The handler: a URL or host:port[/path].
    #[arg(long, value_name = "URL", value_parser = parse_target, required_unless_present = "save",
        help_heading = HANDLER)]
    pub to: Option<Target>,
    /// Save the deliveries as fixture files in DIR instead of forwarding them.
    #[arg(long, value_name = "DIR", conflicts_with = "to", help_heading = HANDLER)]
    pub save: Option<PathBuf>,
    /// Only deliveries of this recent past (a duration, or a time such as 2026-12-06T10:00:00Z).
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_since, help_heading = FILTERS)]
    pub since: Option<Duration>,
    /// Only this event.
    #[arg(long, value_name = "EVENT", value_parser = EventName, hide_possible_values = true, help_heading = FILTERS)]
    pub event: Option<String>,
    /// Only this action.
    #[arg(long, value_name = "ACTION", help_heading = FILTERS, hide_short_help = true)]
    pub action: Option<String>,
    /// Only the deliveries for which this jq expression yields true (see docs/rules.md); each chosen
    /// delivery is fetched to decide.
    #[arg(long, value_name = "EXPR", value_parser = parse_filter, help_heading = FILTERS)]
    pub filter: Option<Filter>,
    /// Only this delivery guid, whole or as the feed shortens it (8 or more characters); its latest attempt,
    /// unless --all-attempts.
    #[arg(long, value_name = "GUID", help_heading = FILTERS)]
    pub guid: Option<String>,
    /// With --guid, replay every attempt GitHub made (redeliveries included), not only the latest.
    #[arg(long, requires = "guid", help_heading = FILTERS, hide_short_help = true)]
    pub all_attempts: bool,
    /// At most this many deliveries (the newest).
    #[arg(long, value_name = "N", help_heading = FILTERS, hide_short_help = true)]
    pub limit: Option<usize>,
    /// The webhook secret to sign with.
    #[arg(long, env = "HOOKFWD_SECRET", hide_env_values = true, value_name = "SECRET", value_parser = parse_secret,
        help_heading = HANDLER, hide_short_help = true)]
    pub secret: Option<Secret>,
    /// GitHub connection.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// `hookfwd trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// What to trigger.
    #[command(subcommand)]
    pub what: Trigger,
}

/// What `hookfwd trigger` makes GitHub do.
#[derive(Debug, Subcommand)]
pub enum Trigger {
    /// Ask GitHub to send a ping delivery.
    #[command(
        override_usage = concat!("hookfwd trigger ping [OPTIONS] ", source!()),
        after_long_help = examples!(
            "GitHub pings the hook whose URL is HOOKFWD_HOOK_URL",
            "hookfwd trigger ping --repo octo-org/hello-world",
            "The same for an organization's hook, without asking if hookfwd did not create it",
            "hookfwd trigger ping --org octo-org --hook-url https://blackhole.example.com/alice --yes",
        )
    )]
    Ping(HookTarget),
    /// Ask GitHub to redeliver a past delivery, by guid.
    #[command(
        override_usage = concat!("hookfwd trigger redeliver [OPTIONS] ", source!(), " <GUID>"),
        after_long_help = examples!(
            "GitHub sends a past delivery again, by its X-GitHub-Delivery guid",
            "hookfwd trigger redeliver 5c1e0a80-8b7e-11f0-9a6b-2f6c1d5e4b3a --repo octo-org/hello-world",
            "The same delivery of the App's hook",
            "hookfwd trigger redeliver 5c1e0a80-8b7e-11f0-9a6b-2f6c1d5e4b3a --app",
        )
    )]
    Redeliver {
        /// The delivery guid (X-GitHub-Delivery).
        guid: String,
        /// Which hook.
        #[command(flatten)]
        target: HookTarget,
    },
}

/// The hooks `trigger` and `hooks` act on.
#[derive(Debug, Args)]
pub struct HookTarget {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Where hookfwd keeps its ledgers and the record of the hooks it created.
    #[arg(long, env = "HOOKFWD_STATE_DIR", value_name = "DIR", help_heading = STATE, hide_short_help = true)]
    pub state_dir: Option<PathBuf>,
    /// Act on a hook hookfwd did not create without asking (asked on a terminal, refused otherwise).
    #[arg(long, short = 'y', help_heading = SOURCES)]
    pub yes: bool,
    /// GitHub connection.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// `hookfwd redeliver`.
#[derive(Debug, Args)]
pub struct RedeliverArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Redeliver the deliveries whose latest attempt failed: no later success with the same guid.
    #[arg(long, required = true, help_heading = FILTERS)]
    pub failed: bool,
    /// Only deliveries of this recent past.
    #[arg(long, default_value = "6h", value_name = "DURATION", value_parser = parse_since, help_heading = FILTERS)]
    pub since: Duration,
    /// List what would be redelivered without asking GitHub.
    #[arg(long, help_heading = FILTERS)]
    pub dry_run: bool,
    /// Keep looking every --interval and redeliver new failures (each guid is asked for once per run).
    #[arg(long, help_heading = FILTERS)]
    pub watch: bool,
    /// With --watch, the time between looks.
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = parse_interval, requires = "watch",
        help_heading = FILTERS)]
    pub interval: Duration,
    /// GitHub connection.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// `hookfwd wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// With --app, which of the App hook's deliveries to forward.
    #[command(flatten)]
    pub app_filter: AppFilterArgs,
    /// The event to wait for.
    #[arg(long, value_name = "EVENT", value_parser = EventName, hide_possible_values = true, help_heading = WAIT)]
    pub event: String,
    /// The action to wait for.
    #[arg(long, value_name = "ACTION", help_heading = WAIT)]
    pub action: Option<String>,
    /// Give up after this long (exit 5).
    // `--timeout` was its name, as the Action's scripts of earlier releases still pass it; elsewhere
    // `--timeout` bounds one attempt at the handler.
    #[arg(long, alias = "timeout", default_value = "120s", value_name = "DURATION", value_parser = parse_interval,
        help_heading = WAIT)]
    pub give_up_after: Duration,
    /// The handler: a URL or host:port[/path].
    #[arg(long, value_name = "URL", value_parser = parse_target, help_heading = HANDLER)]
    pub to: Target,
    /// Forwarding options.
    #[command(flatten)]
    pub relay: RelayArgs,
    /// GitHub connection.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// `hookfwd hooks`.
#[derive(Debug, Args)]
pub struct HooksArgs {
    /// List or remove.
    #[command(subcommand)]
    pub action: HooksAction,
}

/// What `hookfwd hooks` does.
#[derive(Debug, Subcommand)]
pub enum HooksAction {
    /// Show each hook's URL, events and last response; mark the ones hookfwd uses.
    #[command(
        override_usage = "hookfwd hooks list [OPTIONS] <--repo <OWNER/REPO>|--org <ORG>>",
        mut_arg("app", |arg| arg.hide(true)),
        after_long_help = examples!(
            "Each hook of a repository, the ones hookfwd created marked",
            "hookfwd hooks list --repo octo-org/hello-world",
            "An organization's hooks, as JSON lines",
            "hookfwd hooks list --org octo-org --json",
        )
    )]
    List(HookTarget),
    /// Delete a hook by id (its repository found in the state directory when not named).
    #[command(
        mut_arg("app", |arg| arg.hide(true)),
        after_long_help = examples!(
            "Delete hook 4242 of a repository (a hook hookfwd did not create needs --yes)",
            "hookfwd hooks rm 4242 --repo octo-org/hello-world",
            "Without asking, in a script",
            "hookfwd hooks rm 4242 --repo octo-org/hello-world --yes",
            "A hook this state directory knows, its repository found there",
            "hookfwd hooks rm 4242",
        )
    )]
    Rm {
        /// The hook id.
        id: u64,
        /// Which repository or organization.
        #[command(flatten)]
        target: HookTarget,
    },
    /// Delete the hooks hookfwd created that have not been used for a while (listed first).
    #[command(after_long_help = examples!(
        "See which hooks hookfwd made that nothing used for a week, and delete them after a question",
        "hookfwd hooks prune",
        "Those unused for a day, without asking",
        "hookfwd hooks prune --older-than 1d --yes",
    ))]
    Prune {
        /// Unused for this long: no delivery, and no hookfwd run reading it, in this time.
        #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = parse_interval, help_heading = FILTERS)]
        older_than: Duration,
        /// Which repositories or organizations (default: every hook the state directory says hookfwd created).
        #[command(flatten)]
        target: HookTarget,
    },
}

/// Push mode's two secrets, shared by the forwarding commands and `doctor`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = PUSH)]
pub struct PushArgs {
    /// Push mode: the blackhole's stream token; deliveries then arrive the moment GitHub sends them,
    /// and polling is only the safety net (prefer the env var: argv is visible to others).
    #[arg(
        long,
        env = "HOOKFWD_STREAM_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = parse_secret,
        hide_short_help = true
    )]
    pub stream_token: Option<Secret>,
    /// The secret GitHub signs the hook's deliveries with, to verify pushed ones (not needed for a
    /// hook hookfwd created; without it a pushed delivery is fetched from the API instead).
    #[arg(
        long,
        env = "HOOKFWD_HOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = parse_secret,
        hide_short_help = true
    )]
    pub hook_secret: Option<Secret>,
}

/// `hookfwd doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// The state directory to check.
    #[arg(long, env = "HOOKFWD_STATE_DIR", value_name = "DIR", help_heading = STATE, hide_short_help = true)]
    pub state_dir: Option<PathBuf>,
    /// Push mode's stream token and upstream secret, to check the stream.
    #[command(flatten)]
    pub push: PushArgs,
    /// The handler, to check that it takes a POST signed with the local secret: a URL or host:port[/path].
    #[arg(long, value_name = "URL", value_parser = parse_target, help_heading = HANDLER)]
    pub to: Option<Target>,
    /// The local webhook secret, to check that it is set and sign the handler's test POST with it.
    #[arg(long, env = "HOOKFWD_SECRET", hide_env_values = true, value_name = "SECRET", value_parser = parse_secret)]
    pub secret: Option<Secret>,
    /// The events you will forward, to check that the hook subscribes to them (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "EVENTS", help_heading = FILTERS)]
    pub events: Vec<String>,
    /// GitHub connection.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// `hookfwd completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// An event name: any is accepted (GitHub adds events), and those GitHub documents are offered to
/// shell completion, which reads an argument's possible values.
#[derive(Debug, Clone, Copy)]
struct EventName;

impl clap::builder::TypedValueParser for EventName {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::NonEmptyStringValueParser::new().parse_ref(command, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(webhooks::events().into_iter().map(clap::builder::PossibleValue::new)))
    }
}

fn parse_repo(text: &str) -> Result<Owner, String> {
    match Owner::parse(text) {
        Ok(owner @ Owner::Repo { .. }) => Ok(owner),
        _ => Err(match crate::hint::repo(text) {
            Some(repo) => format!("`{text}` is not a repository; use OWNER/REPO: did you mean {repo}?"),
            None => format!("`{text}` is not a repository; use OWNER/REPO, such as octo-org/hello-world"),
        }),
    }
}

fn parse_org(text: &str) -> Result<Owner, String> {
    match Owner::parse(text) {
        Ok(owner @ Owner::Org { .. }) => Ok(owner),
        _ => Err(format!("`{text}` is not an organization name; use --repo for OWNER/REPO")),
    }
}

fn parse_edit(text: &str) -> Result<webhooks::Edit, String> {
    webhooks::Edit::parse(text).map_err(|error| error.to_string())
}

fn parse_string_edit(text: &str) -> Result<webhooks::Edit, String> {
    webhooks::Edit::string(text).map_err(|error| error.to_string())
}

/// Any text is a secret; wrapping it at parse time keeps it out of every `Debug` of the arguments.
fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    Filter::parse(text).map_err(|error| error.to_string())
}

/// `--to URL`, or `--to 'URL if FILTER'`.
fn parse_route(text: &str) -> Result<Route, String> {
    let (target, filter) = match text.split_once(" if ") {
        Some((target, filter)) => (target.trim(), Some(parse_filter(filter)?)),
        None => (text, None),
    };
    Ok(Route { target: parse_target(target)?, filter, secret: None })
}

fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text).map_err(|error| match crate::hint::target(text) {
        // A bare port is the commonest slip: say what was probably meant.
        Some(url) => format!("{error}; did you mean {url}?"),
        None => error.to_string(),
    })
}

fn parse_hook_url(text: &str) -> Result<String, String> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(text.to_string()),
        _ => Err(format!(
            "`{text}` is not an http(s) URL; give the blackhole's URL, such as https://blackhole.example.com/alice"
        )),
    }
}

fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    text.parse().map_err(|_| format!("`{text}` is not an address to listen on; use IP:PORT, such as 0.0.0.0:9090"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|_| format!("`{text}` is not a duration; use forms like 30s, 5m, 2h"))
}

/// A `--since`: a duration or a time, no further back than the relay allows.
fn parse_since(text: &str) -> Result<Duration, String> {
    relay::since::parse(text, chrono::Utc::now())
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err("must be longer than zero".to_string()),
        duration => Ok(duration),
    }
}

#[cfg(test)]
mod tests;

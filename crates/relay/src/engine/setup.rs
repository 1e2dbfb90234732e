//! Hook setup: find the source's hook by its URL, or create it; and the rule for which URLs a
//! hook may point at.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use github::{HookConfig, HookRef, NewHook, Secret};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{Emitter, SourceRun, StreamConfig, blocking, failed, is_auth, stream_config};
use crate::ledger::Lock;
use crate::{Error, Event, Forwarder, HookOrigin, Rule, Settings, Source, Target, Warning};

/// Why a source could not be set up.
pub(super) enum SetupFailure {
    /// The rule gives no hook URL to find the hook by: one sentence.
    NoHookUrl(String),
    /// GitHub refused; its `Display` names the source and the permission.
    GitHub(github::Error),
}

/// A source's hook, found or created.
pub(super) struct SetUp {
    /// The hook.
    pub(super) hook: HookRef,
    /// Found, created, or the App's.
    pub(super) origin: HookOrigin,
    /// Its URL (the blackhole).
    pub(super) hook_url: Option<String>,
    /// The events it is subscribed to.
    pub(super) events: Vec<String>,
    /// The secret GitHub signs its deliveries with, when this run created it.
    pub(super) created_secret: Option<Secret>,
    /// Whether the hook is inactive: GitHub records no deliveries for it.
    pub(super) inactive: bool,
}

/// What setting up every rule's sources gave.
pub(super) struct SetUpAll {
    /// The sources ready to run.
    pub(super) runs: Vec<SourceRun>,
    /// The hooks this run created (deleted again with `--cleanup`).
    pub(super) created: Vec<HookRef>,
    /// One sentence per source that could not be set up (each already reported).
    pub(super) failures: Vec<String>,
    /// GitHub refused the credentials themselves: the run cannot go on.
    pub(super) fatal: Option<github::Error>,
    /// The sources GitHub refused a permission for.
    pub(super) forbidden: Vec<github::Error>,
    /// GitHub's last other refusal (a repository not found, say), kept whole so that when it is the only
    /// failure its exit code and hint reach the user.
    pub(super) refused_one: Option<github::Error>,
}

/// Sets up every rule's sources in turn, reporting each that fails; stops early on a rejected
/// token (every source would fail alike) or on `cancel`.
pub(super) async fn set_up_all(
    client: &github::Client,
    rules: &[Rule],
    settings: &Settings,
    events: &Emitter,
    cancel: &CancellationToken,
) -> SetUpAll {
    let mut runs = Vec::new();
    let mut created = Vec::new();
    let mut hooks = HashSet::new();
    let mut fatal = None;
    let mut failures = Vec::new();
    // A missing permission on every source is the token's fault, as a rejected token is.
    let mut forbidden = Vec::new();
    let mut refused_one = None;
    'rules: for rule in rules {
        let routes = rule.routes();
        let shared_rule = Arc::new(rule.clone());
        for source in &rule.sources {
            if cancel.is_cancelled() {
                break 'rules;
            }
            let name = source.to_string();
            let setup = tokio::select! {
                setup = set_up(client, rule, source) => setup,
                () = cancel.cancelled() => break 'rules,
            };
            match setup {
                Ok(SetUp { hook, origin, hook_url, events: hook_events, created_secret, inactive }) => {
                    if !hooks.insert(hook.clone()) {
                        let error = format!("{name}: its hook is already forwarded by an earlier rule");
                        failures.push(failed(events, name, error).await);
                        continue;
                    }
                    if origin == HookOrigin::Created {
                        created.push(hook.clone());
                        // Said when hookfwd makes such a hook, not each time it finds it again.
                        if !settings.allow_private_hook_url
                            && let Some(url) = hook_url.as_deref().filter(|url| is_loopback_url(url))
                        {
                            events.warn(Warning::LoopbackHookUrl { hook: hook.clone(), url: url.to_string() }).await;
                        }
                    }
                    // Each target has its own ledger, so its own lock: the first one the hook's, the others
                    // their own, named for their URL (`routes/…`).
                    let mut held = Vec::with_capacity(routes.len());
                    for (index, route) in routes.iter().enumerate() {
                        let dir = route_dir(&settings.state_dir, index, &route.target);
                        let created = if index == 0 { created_secret.clone() } else { None };
                        match hold_hook(settings, &dir, &shared_rule, &hook, hook_url.clone(), created).await {
                            Ok((lock, stream)) => held.push((route, dir, lock, stream)),
                            Err(error) => {
                                failures.push(failed(events, name.clone(), error.to_string()).await);
                                continue;
                            }
                        }
                    }
                    if held.is_empty() {
                        continue;
                    }
                    let repository_ids = match &hook {
                        HookRef::App { .. } if !rule.repositories.is_empty() => {
                            let looked_up = tokio::select! {
                                ids = repository_ids(client, &rule.repositories) => ids,
                                () = cancel.cancelled() => break 'rules,
                            };
                            match looked_up {
                                Ok(ids) => ids,
                                Err(error) => {
                                    failures.push(failed(events, name, error).await);
                                    continue;
                                }
                            }
                        }
                        _ => Vec::new(),
                    };
                    let streaming = held.iter().any(|(.., stream)| stream.is_some());
                    info!(source = %name, hook = %hook, ?origin, streaming, "source ready");
                    if inactive {
                        events.warn(Warning::HookInactive { hook: hook.clone() }).await;
                    }
                    let missing = rule.missing_events(&hook_events);
                    if !missing.is_empty() {
                        events.warn(Warning::MissingEvents { hook: hook.clone(), events: missing }).await;
                    }
                    for (route, ledger_dir, lock, stream) in held {
                        events
                            .emit(Event::HookReady {
                                source: name.clone(),
                                hook: hook.clone(),
                                origin,
                                hook_url: hook_url.clone(),
                                target: route.target.0.clone(),
                                events: hook_events.clone(),
                                streaming: stream.is_some(),
                            })
                            .await;
                        runs.push(SourceRun {
                            name: name.clone(),
                            hook: hook.clone(),
                            forwarder: Forwarder::new(route.target.clone(), settings.target_timeout),
                            lister: client.clone().with_etag_scope(route.target.0.as_str()),
                            rule: shared_rule.clone(),
                            filter: route.filter.clone(),
                            secret: route.secret.clone(),
                            stream,
                            repository_ids: repository_ids.clone(),
                            ledger_dir,
                            _lock: lock,
                        });
                    }
                }
                Err(failure) => {
                    debug!(source = %name, "source could not be set up");
                    let error = match &failure {
                        SetupFailure::NoHookUrl(sentence) => sentence.clone(),
                        SetupFailure::GitHub(error) => error.to_string(),
                    };
                    failures.push(failed(events, name, error).await);
                    match failure {
                        // A rejected token fails every source alike: stop with it rather than try each.
                        SetupFailure::GitHub(error) if is_auth(&error) => {
                            fatal = Some(error);
                            break 'rules;
                        }
                        SetupFailure::GitHub(error @ github::Error::Forbidden { .. }) => forbidden.push(error),
                        SetupFailure::GitHub(error) => refused_one = Some(error),
                        _ => {}
                    }
                }
            }
        }
    }

    SetUpAll { runs, created, failures, fatal, forbidden, refused_one }
}

/// Takes `hook`'s ledger lock and settles its push mode, which stores or reads the hook's secret: file
/// work, so it runs off the async workers.
async fn hold_hook(
    settings: &Settings,
    ledger_dir: &Path,
    rule: &Arc<Rule>,
    hook: &HookRef,
    hook_url: Option<String>,
    created_secret: Option<Secret>,
) -> Result<(Option<Lock>, Option<StreamConfig>), Error> {
    let (settings, rule, hook, ledger_dir) = (settings.clone(), rule.clone(), hook.clone(), ledger_dir.to_owned());
    blocking(move || {
        // Replicas sharing a ledger in Redis share the hook too: claims keep them apart.
        let lock = match settings.ledger {
            Some(_) => None,
            None => Some(Lock::take(&ledger_dir, &hook)?),
        };
        let stream = stream_config(&settings, &rule, &hook, hook_url.as_deref(), created_secret)?;
        Ok((lock, stream))
    })
    .await
}

/// Where the ledgers of a rule's target `index` live: the first target's are the hooks' own (so a rule that
/// grows a second target keeps its place), each other's under `routes/`, named for its URL.
pub(super) fn route_dir(state_dir: &Path, index: usize, target: &Target) -> PathBuf {
    if index == 0 {
        return state_dir.to_owned();
    }
    let url = &target.0;
    let name: String =
        format!("{}-{}{}", url.host_str().unwrap_or("target"), url.port_or_known_default().unwrap_or(0), url.path())
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect();
    state_dir.join("routes").join(name.trim_end_matches('_'))
}

/// Finds the source's hook by URL, or creates it.
pub(super) async fn set_up(client: &github::Client, rule: &Rule, source: &Source) -> Result<SetUp, SetupFailure> {
    let owner = match source {
        Source::App => {
            return Ok(SetUp {
                hook: HookRef::App { app_id: client.app_id() },
                origin: HookOrigin::App,
                hook_url: rule.hook_url.clone(),
                events: rule.events.clone(),
                created_secret: None,
                inactive: false,
            });
        }
        Source::Owner(owner) => owner,
    };
    let Some(url) = rule.hook_url.as_deref() else {
        return Err(SetupFailure::NoHookUrl(format!(
            "{owner}: no hook URL to find or create its hook by; give --hook-url or set HOOKFWD_HOOK_URL"
        )));
    };
    let hooks = client.list_hooks(owner).await.map_err(SetupFailure::GitHub)?;
    if let Some(hook) = hooks.iter().find(|hook| hook.delivers_to(url)) {
        return Ok(SetUp {
            hook: owner.hook(hook.id),
            origin: HookOrigin::Found,
            hook_url: hook.config.url.clone(),
            events: hook.events.clone(),
            created_secret: None,
            inactive: !hook.active,
        });
    }
    let secret = Secret::new(random_secret()?);
    let events = hook_events(&rule.events);
    let new = NewHook {
        name: "web".into(),
        active: true,
        events,
        config: HookConfig {
            url: Some(url.to_string()),
            content_type: Some("json".into()),
            secret: Some(secret.expose().to_string()),
            insecure_ssl: Some(serde_json::Value::String("0".into())),
        },
    };
    let hook = client.create_hook(owner, &new).await.map_err(SetupFailure::GitHub)?;
    Ok(SetUp {
        hook: owner.hook(hook.id),
        origin: HookOrigin::Created,
        hook_url: Some(url.to_string()),
        events: hook.events,
        created_secret: Some(secret),
        inactive: !hook.active,
    })
}

/// The events to subscribe a new hook to: the rule's, less `ping`, which GitHub sends every hook
/// when it is made whatever its events (so `--events issues,ping` filters, and asks GitHub for issues).
fn hook_events(events: &[String]) -> Vec<String> {
    let subscribed: Vec<String> = events.iter().filter(|event| *event != "ping").cloned().collect();
    if subscribed.is_empty() { vec!["*".to_string()] } else { subscribed }
}

/// Why GitHub's cloud cannot reach a hook URL's host: it names a place only the local machine or
/// network knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateHost {
    /// `localhost`, `*.localhost`, 127.0.0.0/8, `::1`, or the unspecified address (0.0.0.0, `::`),
    /// which connects to the local machine.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, or an IPv6 unique local address (fc00::/7).
    Private,
    /// 169.254/16 or fe80::/10.
    LinkLocal,
}

/// Whether `url`'s host is one GitHub's cloud cannot reach, and which kind; `None` for a public
/// name or address, or a URL that does not parse (the flag's parser refuses those).
pub fn private_host(url: &str) -> Option<PrivateHost> {
    let url = url::Url::parse(url).ok()?;
    match url.host()? {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some(PrivateHost::Loopback)
        }
        url::Host::Ipv4(ip) => private_ip(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => private_ip(IpAddr::V6(ip)),
    }
}

fn private_ip(ip: IpAddr) -> Option<PrivateHost> {
    match ip {
        IpAddr::V4(ip) => private_v4(ip),
        // `::ffff:10.0.0.1` is the IPv4 address it maps.
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(ip),
        },
    }
}

fn private_v4(ip: Ipv4Addr) -> Option<PrivateHost> {
    if ip.is_loopback() || ip.is_unspecified() {
        Some(PrivateHost::Loopback)
    } else if ip.is_private() {
        Some(PrivateHost::Private)
    } else if ip.is_link_local() {
        Some(PrivateHost::LinkLocal)
    } else {
        None
    }
}

fn private_v6(ip: Ipv6Addr) -> Option<PrivateHost> {
    let first = ip.segments()[0];
    if ip.is_loopback() || ip.is_unspecified() {
        Some(PrivateHost::Loopback)
    } else if first & 0xfe00 == 0xfc00 {
        Some(PrivateHost::Private)
    } else if first & 0xffc0 == 0xfe80 {
        Some(PrivateHost::LinkLocal)
    } else {
        None
    }
}

fn is_loopback_url(url: &str) -> bool {
    private_host(url) == Some(PrivateHost::Loopback)
}

/// Whether `api_url` is GitHub's cloud (github.com, or a GHE.com data-residency tenant), which
/// delivers only to the public Internet. An Enterprise Server or a stand-in may reach anything.
pub fn is_github_cloud(api_url: &url::Url) -> bool {
    let host = api_url.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase();
    host == "api.github.com" || host.ends_with(".ghe.com")
}

/// Refuses, against GitHub's cloud, a rule whose hooks would point at a place it cannot reach
/// (unless `allowed`): such a hook is made and never delivered to. Checked before any GitHub call.
pub(super) fn check_hook_urls(rules: &[Rule], api_url: &url::Url, allowed: bool) -> Result<(), Error> {
    if allowed || !is_github_cloud(api_url) {
        return Ok(());
    }
    let with_hooks = rules.iter().filter(|rule| rule.sources.iter().any(|source| matches!(source, Source::Owner(_))));
    for url in with_hooks.filter_map(|rule| rule.hook_url.as_deref()) {
        if let Some(host) = private_host(url) {
            return Err(Error::PrivateHookUrl { url: url.to_string(), host });
        }
    }
    Ok(())
}

/// 32 random bytes as hex: the hook's secret at GitHub, which only the blackhole would see.
fn random_secret() -> Result<String, SetupFailure> {
    let bytes: [u8; 32] = github::random::secret_bytes().map_err(SetupFailure::GitHub)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The ids of `repositories`, which the App hook's list items name them by: one lookup each, at setup.
async fn repository_ids(client: &github::Client, repositories: &[github::Owner]) -> Result<Vec<u64>, String> {
    let mut ids = Vec::with_capacity(repositories.len());
    for repository in repositories {
        match client.repository_id(repository).await {
            Ok(id) => ids.push(id),
            Err(error) => {
                return Err(format!(
                    "could not look up {repository}, whose deliveries the App hook is to forward: {error}"
                ));
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hook_url: &str) -> Rule {
        Rule {
            hook_url: Some(hook_url.to_string()),
            events: vec!["*".into()],
            ..Rule::example(&["octo/hello"], "localhost:3000")
        }
    }

    #[test]
    fn each_further_target_has_a_ledger_directory_of_its_own_named_for_its_url() {
        let state = Path::new("/state");
        let target = |text| Target::parse(text).unwrap();
        assert_eq!(route_dir(state, 0, &target("localhost:3000")), state, "the first keeps the hook's own");
        let second = route_dir(state, 1, &target("http://user:pw@ci.internal:8080/github/hook?x=1"));
        assert_eq!(second, state.join("routes").join("ci.internal-8080_github_hook"));
        assert_eq!(route_dir(state, 2, &target("https://example.com/")), state.join("routes").join("example.com-443"));
        assert_ne!(route_dir(state, 1, &target("localhost:4000")), route_dir(state, 1, &target("localhost:4001")));
    }

    #[test]
    fn each_host_github_cannot_reach_is_named_for_what_it_is() {
        use PrivateHost::*;
        for (url, expected) in [
            ("http://localhost:3999/webhook", Some(Loopback)),
            ("http://LOCALHOST./webhook", Some(Loopback)),
            ("http://app.localhost/webhook", Some(Loopback)),
            ("http://127.0.0.1:3000/", Some(Loopback)),
            ("http://127.8.9.10/", Some(Loopback)),
            ("http://0.0.0.0:3000/", Some(Loopback)),
            ("http://[::1]:3000/", Some(Loopback)),
            ("http://[::]/", Some(Loopback)),
            ("http://10.1.2.3/", Some(Private)),
            ("http://172.16.0.1/", Some(Private)),
            ("http://172.31.255.255/", Some(Private)),
            ("http://192.168.1.20:8080/", Some(Private)),
            ("http://[fd12:3456::1]/", Some(Private)),
            ("http://[fc00::1]/", Some(Private)),
            ("http://[::ffff:192.168.0.1]/", Some(Private)),
            ("http://169.254.169.254/", Some(LinkLocal)),
            ("http://[fe80::1]/", Some(LinkLocal)),
            ("https://blackhole.example.com/alice", None),
            ("https://localhost.example.com/", None),
            ("http://172.32.0.1/", None),
            ("http://8.8.8.8/", None),
            ("http://[2001:db8::1]/", None),
            ("not a url", None),
        ] {
            assert_eq!(private_host(url), expected, "{url}");
        }
    }

    #[test]
    fn github_cloud_refuses_a_private_hook_url_unless_allowed() {
        let cloud = url::Url::parse("https://api.github.com").unwrap();
        for url in ["http://localhost:3999/webhook", "http://10.0.0.5/hook", "http://[fe80::1]/", "http://0.0.0.0/"] {
            let refused = check_hook_urls(&[rule(url)], &cloud, false).expect_err(url);
            assert!(matches!(refused, Error::PrivateHookUrl { .. }), "{url}: {refused}");
            assert!(refused.to_string().contains("docs/deploy.md"), "{refused}");
            assert!(check_hook_urls(&[rule(url)], &cloud, true).is_ok(), "{url} with --allow-private-hook-url");
        }
        assert!(check_hook_urls(&[rule("https://blackhole.example.com/alice")], &cloud, false).is_ok());
        let tenant = url::Url::parse("https://api.octocorp.ghe.com").unwrap();
        assert!(check_hook_urls(&[rule("http://127.0.0.1/h")], &tenant, false).is_err(), "GHE.com is the cloud too");
    }

    #[test]
    fn another_github_may_reach_private_addresses() {
        for api in ["https://ghe.example.com/api/v3", "http://127.0.0.1:8080/"] {
            let api = url::Url::parse(api).unwrap();
            for url in ["http://localhost:3999/webhook", "http://10.0.0.5/hook"] {
                assert!(check_hook_urls(&[rule(url)], &api, false).is_ok(), "{api} {url}");
            }
        }
    }

    #[test]
    fn only_hooks_found_or_made_by_url_are_checked() {
        let cloud = url::Url::parse("https://api.github.com").unwrap();
        let app = Rule { sources: vec![Source::App], ..rule("http://localhost:3999/stream") };
        assert!(check_hook_urls(&[app], &cloud, false).is_ok(), "the App's hook is set in its settings");
    }

    #[test]
    fn ping_is_not_asked_for_since_github_always_sends_it() {
        let events = |list: &[&str]| hook_events(&list.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        assert_eq!(events(&["issues", "ping"]), ["issues"]);
        assert_eq!(events(&["ping"]), ["*"]);
        assert_eq!(events(&[]), ["*"]);
    }
}

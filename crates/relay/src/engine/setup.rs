//! Hook setup: find the source's hook by its URL, or create it.

use std::collections::HashSet;
use std::sync::Arc;

use github::{HookConfig, HookRef, NewHook, Secret};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{Emitter, SourceRun, StreamConfig, blocking, failed, is_auth, stream_config};
use crate::ledger::Lock;
use crate::{Error, Event, Forwarder, HookOrigin, Rule, Settings, Source, Warning};

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
        let forwarder = Forwarder::new(rule.target.clone(), settings.target_timeout);
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
                    }
                    let (lock, stream) =
                        match hold_hook(settings, &shared_rule, &hook, hook_url.clone(), created_secret).await {
                            Ok(held) => held,
                            Err(error) => {
                                failures.push(failed(events, name, error.to_string()).await);
                                continue;
                            }
                        };
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
                    info!(source = %name, hook = %hook, ?origin, streaming = stream.is_some(), "source ready");
                    if inactive {
                        events.warn(Warning::HookInactive { hook: hook.clone() }).await;
                    }
                    let missing = rule.missing_events(&hook_events);
                    if !missing.is_empty() {
                        events.warn(Warning::MissingEvents { hook: hook.clone(), events: missing }).await;
                    }
                    events
                        .emit(Event::HookReady {
                            source: name.clone(),
                            hook: hook.clone(),
                            origin,
                            hook_url,
                            target: rule.target.0.clone(),
                            events: hook_events,
                            streaming: stream.is_some(),
                        })
                        .await;
                    runs.push(SourceRun {
                        name,
                        hook,
                        forwarder: forwarder.clone(),
                        rule: shared_rule.clone(),
                        secret: rule.secret.clone(),
                        stream,
                        repository_ids,
                        _lock: lock,
                    });
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
    rule: &Arc<Rule>,
    hook: &HookRef,
    hook_url: Option<String>,
    created_secret: Option<Secret>,
) -> Result<(Option<Lock>, Option<StreamConfig>), Error> {
    let (settings, rule, hook) = (settings.clone(), rule.clone(), hook.clone());
    blocking(move || {
        // Replicas sharing a ledger in Redis share the hook too: claims keep them apart.
        let lock = match settings.ledger {
            Some(_) => None,
            None => Some(Lock::take(&settings.state_dir, &hook)?),
        };
        let stream = stream_config(&settings, &rule, &hook, hook_url.as_deref(), created_secret)?;
        Ok((lock, stream))
    })
    .await
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
    let events = if rule.events.is_empty() { vec!["*".to_string()] } else { rule.events.clone() };
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

//! Hook setup: find the source's hook by its URL, or create it.

use github::{HookConfig, HookRef, NewHook, Secret};

use crate::{HookOrigin, Rule, Source};

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

//! Rules: which sources feed which target, from `--rule` JSON, a TOML config, or `dev` flags.
//!
//! Secrets never sit in a rule's text (which may be on argv): a rule names an environment
//! variable with `secret_env`, and the CLI fills [`Rule::secret`] from `HOOKFWD_SECRET` when unset.

use github::{DeliveryItem, Owner, Secret};
use serde::Deserialize;
use serde::de::IgnoredAny;
use url::Url;

use crate::Error;
use crate::filter::Filter;

/// Where deliveries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A repository's or an organization's hook, found by URL or created.
    Owner(Owner),
    /// The GitHub App's hook.
    App,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Owner(owner) => write!(f, "{owner}"),
            Self::App => f.write_str("app"),
        }
    }
}

/// The local handler deliveries are POSTed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub Url);

impl Target {
    /// Accepts a URL or `host:port[/path]` (http assumed).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || Error::Target(text.to_string());
        let text = text.trim();
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let url = if text.contains("://") {
            let url = Url::parse(text).map_err(|_| bad())?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad());
            }
            url
        } else {
            // `host:port[/path]`: the port is what tells it apart from a typo.
            let (authority, _) = text.split_once('/').unwrap_or((text, ""));
            let Some((host, port)) = authority.rsplit_once(':') else { return Err(bad()) };
            if host.is_empty() || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let url = Url::parse(&format!("http://{text}")).map_err(|_| bad())?;
            if url.port().is_none() && port != "80" {
                return Err(bad());
            }
            url
        };
        if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
            return Err(bad());
        }
        Ok(Self(url))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One target of a rule, with what it alone is sent: `--to 'URL if FILTER'`, or an entry of a rule's `to` list.
///
/// Each target of a rule has its own order, retries, parking and ledger: one that is down holds back no other.
#[derive(Debug, Clone)]
pub struct Route {
    /// Where deliveries go.
    pub target: Target,
    /// The target's own filter; without one, the rule's.
    pub filter: Option<Filter>,
    /// The target's own local secret; without one, the rule's.
    pub secret: Option<Secret>,
}

/// Sources, their target, and how their hooks are set up.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Repositories, organizations, or the App.
    pub sources: Vec<Source>,
    /// Where their deliveries go (the first target, when there are several).
    pub target: Target,
    /// Further targets (fan-out), each with its own order, retries, parking and ledger, and its filter
    /// (its own, else the rule's: resolved when the rule is made).
    pub more: Vec<Route>,
    /// The blackhole URL that identifies (or creates) each source's hook.
    pub hook_url: Option<String>,
    /// Events for a created hook, and the only ones forwarded; `*` for all.
    pub events: Vec<String>,
    /// The only actions forwarded (`opened`); empty for every delivery, with an action or without.
    pub actions: Vec<String>,
    /// Forward only the deliveries this jq expression lets through (`--filter`); run on the payload,
    /// so a listed delivery is fetched before it is decided.
    pub filter: Option<Filter>,
    /// On the App's hook, the only installations whose deliveries are forwarded; empty for all.
    pub installations: Vec<u64>,
    /// On the App's hook, the only repositories whose deliveries are forwarded; empty for all.
    pub repositories: Vec<Owner>,
    /// The local secret the forwarded requests are signed with.
    pub secret: Option<Secret>,
    /// The environment variable a rule's `secret_env` named, so the Ready line can say where the secret came from.
    pub secret_env: Option<String>,
    /// The blackhole's stream token: with it (and a hook URL) the source runs in push mode.
    pub stream_token: Option<Secret>,
    /// The secret GitHub signs the hook's deliveries with, for a hook hookfwd did not create.
    pub hook_secret: Option<Secret>,
}

/// `--rule` JSON, in the seed's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRule {
    #[serde(default)]
    from: Vec<String>,
    to: To,
    #[serde(default)]
    hook: Option<JsonHook>,
    #[serde(default)]
    app: bool,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    installations: Vec<u64>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    stream_token_env: Option<String>,
    #[serde(default)]
    hook_secret_env: Option<String>,
    /// Accepted only to refuse it with a helpful sentence.
    #[serde(default)]
    secret: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHook {
    #[serde(default)]
    config: Option<JsonHookConfig>,
    #[serde(default)]
    events: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHookConfig {
    #[serde(default)]
    url: Option<String>,
}

/// A rule's `to`: one target, or a list (fan-out), each a URL or a table with its own filter and secret.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "`to` must be a target URL, or a list of targets, each a URL or {url, filter, secret_env}"
)]
enum To {
    One(String),
    Many(Vec<ToEntry>),
}

/// One target of a `to` list.
#[derive(Deserialize)]
#[serde(untagged, expecting = "each target of `to` must be a URL or {url, filter, secret_env}")]
enum ToEntry {
    Url(String),
    Table(ToTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToTable {
    url: String,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
}

/// A TOML config file: `[[rule]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    /// The shared ledger of replicas (`redis://HOST:PORT/DB`), for every rule.
    #[serde(default)]
    ledger: Option<String>,
    #[serde(default)]
    rule: Vec<TomlRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlRule {
    #[serde(default)]
    from: Vec<String>,
    to: To,
    #[serde(default)]
    hook_url: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    installations: Vec<u64>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    app: bool,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    stream_token_env: Option<String>,
    #[serde(default)]
    hook_secret_env: Option<String>,
    #[serde(default)]
    secret: Option<IgnoredAny>,
}

/// The fields every rule format shares, before validation.
struct RawRule {
    from: Vec<String>,
    to: To,
    hook_url: Option<String>,
    events: Vec<String>,
    actions: Vec<String>,
    filter: Option<String>,
    installations: Vec<u64>,
    repositories: Vec<String>,
    app: bool,
    secret_env: Option<String>,
    stream_token_env: Option<String>,
    hook_secret_env: Option<String>,
    inline_secret: bool,
}

impl Rule {
    /// A rule from `sources` (owners or repositories) to `target`, everything else unset: the tests'
    /// one builder, so a new field is added here once.
    #[cfg(test)]
    pub(crate) fn example(sources: &[&str], target: &str) -> Rule {
        Rule {
            sources: sources.iter().map(|s| Source::Owner(github::Owner::parse(s).unwrap())).collect(),
            target: crate::Target::parse(target).unwrap(),
            hook_url: None,
            events: Vec::new(),
            actions: Vec::new(),
            filter: None,
            more: Vec::new(),
            installations: Vec::new(),
            repositories: Vec::new(),
            secret: None,
            secret_env: None,
            stream_token: None,
            hook_secret: None,
        }
    }

    /// Whether deliveries of `event` are forwarded: the rule's events name it, or `*`.
    pub fn wants_event(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|wanted| wanted == "*" || wanted == event)
    }

    /// Whether a listed delivery is forwarded, by what its list item says (so before its payload
    /// is fetched): its event and its action.
    pub fn wants(&self, item: &DeliveryItem) -> bool {
        let action = || item.action.as_ref().is_some_and(|action| self.actions.contains(action));
        self.wants_event(&item.event) && (self.actions.is_empty() || action())
    }

    /// [`Rule::wants`] for a delivery of the App's hook, which also names its installation and
    /// repository: `repository_ids` are the ids of [`Rule::repositories`], looked up once.
    pub fn wants_from_app(&self, item: &DeliveryItem, repository_ids: &[u64]) -> bool {
        let installation = || item.installation_id.is_some_and(|id| self.installations.contains(&id));
        let repository = || item.repository_id.is_some_and(|id| repository_ids.contains(&id));
        self.wants(item)
            && (self.installations.is_empty() || installation())
            && (self.repositories.is_empty() || repository())
    }

    /// Every target of the rule, the first one first, each with its filter and its secret (its own, else the
    /// rule's).
    pub fn routes(&self) -> Vec<Route> {
        let first = Route { target: self.target.clone(), filter: self.filter.clone(), secret: self.secret.clone() };
        let more = self
            .more
            .iter()
            .map(|route| Route { secret: route.secret.clone().or_else(|| self.secret.clone()), ..route.clone() });
        std::iter::once(first).chain(more).collect()
    }

    /// The rule's events that a hook subscribed to `hook_events` is not sent, so never arrive.
    pub fn missing_events(&self, hook_events: &[String]) -> Vec<String> {
        // No list (the App's hook) says nothing either way.
        if hook_events.is_empty() || hook_events.iter().any(|event| event == "*") {
            return Vec::new();
        }
        // GitHub pings every hook it makes, whatever its events.
        let always = |event: &String| event == "*" || event == "ping";
        self.events.iter().filter(|event| !always(event) && !hook_events.contains(event)).cloned().collect()
    }

    /// Parses the seed's `--rule` format:
    /// `{"from":["org1/repo1","org2"],"to":"http://…/","hook":{"config":{"url":"https://…"},"events":["push"]}}`.
    ///
    /// Also accepted: `"app": true` for the GitHub App's hook, and `"secret_env": "NAME"`
    /// to read the local secret from an environment variable.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        Self::from_json_with_env(text, |name| std::env::var(name).ok())
    }

    /// Parses a TOML config file holding many rules:
    ///
    /// ```toml
    /// [[rule]]
    /// from = ["octo/hello", "octo-org"]
    /// to = "localhost:3000/webhook"
    /// hook_url = "https://blackhole.example.com/"
    /// events = ["push", "check_run"]
    /// secret_env = "HELLO_SECRET"
    /// ```
    pub fn from_toml(text: &str) -> Result<Vec<Self>, Error> {
        Self::from_toml_with_env(text, |name| std::env::var(name).ok())
    }

    /// [`Rule::from_json`] reading environment variables through `env`.
    pub fn from_json_with_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let raw: JsonRule = serde_json::from_str(text).map_err(|e| Error::Rule(json_reason(&e)))?;
        let (hook_url, events) = match raw.hook {
            Some(hook) => (hook.config.and_then(|c| c.url), hook.events),
            None => (None, Vec::new()),
        };
        RawRule {
            from: raw.from,
            to: raw.to,
            hook_url,
            events,
            actions: raw.actions,
            filter: raw.filter,
            installations: raw.installations,
            repositories: raw.repositories,
            app: raw.app,
            secret_env: raw.secret_env,
            stream_token_env: raw.stream_token_env,
            hook_secret_env: raw.hook_secret_env,
            inline_secret: raw.secret.is_some(),
        }
        .validate(&env)
    }

    /// The `ledger = "redis://…"` at the top of a TOML config file, if any.
    pub fn ledger_in_toml(text: &str) -> Result<Option<String>, Error> {
        let file: TomlFile = toml::from_str(text).map_err(|e| Error::Rule(toml_reason(text, &e)))?;
        Ok(file.ledger)
    }

    /// [`Rule::from_toml`] reading environment variables through `env`.
    pub fn from_toml_with_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Vec<Self>, Error> {
        let file: TomlFile = toml::from_str(text).map_err(|e| Error::Rule(toml_reason(text, &e)))?;
        if file.rule.is_empty() {
            return Err(Error::Rule("the config file has no [[rule]] table".into()));
        }
        file.rule
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                RawRule {
                    from: raw.from,
                    to: raw.to,
                    hook_url: raw.hook_url,
                    events: raw.events,
                    actions: raw.actions,
                    filter: raw.filter,
                    installations: raw.installations,
                    repositories: raw.repositories,
                    app: raw.app,
                    secret_env: raw.secret_env,
                    stream_token_env: raw.stream_token_env,
                    hook_secret_env: raw.hook_secret_env,
                    inline_secret: raw.secret.is_some(),
                }
                .validate(&env)
                .map_err(|e| match e {
                    Error::Rule(reason) => Error::Rule(format!("rule {}: {reason}", index + 1)),
                    other => other,
                })
            })
            .collect()
    }
}

impl RawRule {
    fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Rule, Error> {
        if self.inline_secret {
            return Err(Error::Rule(
                "`secret` is not accepted in a rule; put the secret in an environment variable and name it with `secret_env`"
                    .into(),
            ));
        }
        let mut sources = Vec::with_capacity(self.from.len() + usize::from(self.app));
        for entry in &self.from {
            let owner = Owner::parse(entry.trim()).map_err(|_| {
                Error::Rule(format!("`from` entry `{entry}` is not a repository (OWNER/REPO) or an organization name"))
            })?;
            let source = Source::Owner(owner);
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        if self.app {
            sources.push(Source::App);
        }
        if sources.is_empty() {
            return Err(Error::Rule("`from` names no repository or organization, and `app` is not true".into()));
        }
        let entries = match self.to {
            To::One(url) => vec![ToTable { url, filter: None, secret_env: None }],
            To::Many(entries) => entries
                .into_iter()
                .map(|entry| match entry {
                    ToEntry::Url(url) => ToTable { url, filter: None, secret_env: None },
                    ToEntry::Table(table) => table,
                })
                .collect(),
        };
        let mut routes = Vec::with_capacity(entries.len());
        for entry in entries {
            let target = Target::parse(&entry.url)
                .map_err(|_| Error::Rule(format!("`to` is `{}`, which is not a URL or host:port[/path]", entry.url)))?;
            if routes.iter().any(|route: &Route| route.target == target) {
                return Err(Error::Rule(format!("`to` names `{}` twice", entry.url)));
            }
            let filter = entry
                .filter
                .as_deref()
                .map(Filter::parse)
                .transpose()
                .map_err(|error| Error::Rule(format!("the `filter` of `to` `{}`: {error}", entry.url)))?;
            let secret = match entry.secret_env {
                Some(name) => match env(&name) {
                    Some(value) if !value.is_empty() => Some(Secret::new(value)),
                    _ => return Err(Error::Rule(format!("`secret_env` names `{name}`, which is not set or empty"))),
                },
                None => None,
            };
            routes.push(Route { target, filter, secret });
        }
        if routes.is_empty() {
            return Err(Error::Rule("`to` lists no target".into()));
        }
        let first = routes.remove(0);
        let target = first.target;
        if let Some(url) = &self.hook_url {
            match Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => return Err(Error::Rule(format!("the hook URL `{url}` is not an http(s) URL"))),
            }
        }
        if let Some(event) = self.events.iter().find(|e| e.is_empty() || e.chars().any(char::is_whitespace)) {
            return Err(Error::Rule(format!("`events` holds `{event}`, which is not an event name")));
        }
        if let Some(action) = self.actions.iter().find(|a| a.is_empty() || a.chars().any(char::is_whitespace)) {
            return Err(Error::Rule(format!("`actions` holds `{action}`, which is not an action name")));
        }
        let filter = self
            .filter
            .as_deref()
            .map(Filter::parse)
            .transpose()
            .map_err(|error| Error::Rule(format!("`filter`: {error}")))?;
        // A target without a filter of its own has the rule's; the first target's is kept as the rule's.
        for route in routes.iter_mut().filter(|route| route.filter.is_none()) {
            route.filter = filter.clone();
        }
        let filter = first.filter.or(filter);
        if !self.app && (!self.installations.is_empty() || !self.repositories.is_empty()) {
            return Err(Error::Rule(
                "`installations` and `repositories` choose among the App hook's deliveries; they need `app = true`"
                    .into(),
            ));
        }
        let mut repositories = Vec::with_capacity(self.repositories.len());
        for entry in &self.repositories {
            match Owner::parse(entry.trim()) {
                Ok(owner @ Owner::Repo { .. }) => repositories.push(owner),
                _ => return Err(Error::Rule(format!("`repositories` entry `{entry}` is not OWNER/REPO"))),
            }
        }
        let from_env = |field: &str, name: Option<String>| match name {
            Some(name) => match env(&name) {
                Some(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
                _ => Err(Error::Rule(format!("`{field}` names `{name}`, which is not set or empty"))),
            },
            None => Ok(None),
        };
        let secret = first.secret.or(from_env("secret_env", self.secret_env.clone())?);
        let stream_token = from_env("stream_token_env", self.stream_token_env)?;
        let hook_secret = from_env("hook_secret_env", self.hook_secret_env)?;
        Ok(Rule {
            sources,
            target,
            more: routes,
            hook_url: self.hook_url,
            events: self.events,
            actions: self.actions,
            filter,
            installations: self.installations,
            repositories,
            secret,
            secret_env: self.secret_env,
            stream_token,
            hook_secret,
        })
    }
}

/// serde_json's message already names the field (`missing field `to``); add what it is about.
fn json_reason(error: &serde_json::Error) -> String {
    if error.is_syntax() || error.is_eof() {
        format!("the rule is not valid JSON ({error})")
    } else {
        format!("{error}")
    }
}

fn toml_reason(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().trim_end_matches('.');
    match error.span() {
        Some(span) => {
            let line = text.get(..span.start).map_or(0, |before| before.matches('\n').count()) + 1;
            format!("{message} (line {line})")
        }
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;

//! Rules: which sources feed which target, from `--rule` JSON, a TOML config, or `dev` flags.
//!
//! Secrets never sit in a rule's text (which may be on argv): a rule names an environment
//! variable with `secret_env`, and the CLI fills [`Rule::secret`] from `HOOKFWD_SECRET` when unset.

use github::{DeliveryItem, Owner, Secret};
use serde::Deserialize;
use serde::de::IgnoredAny;
use url::Url;

use crate::Error;

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

/// Sources, their target, and how their hooks are set up.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Repositories, organizations, or the App.
    pub sources: Vec<Source>,
    /// Where their deliveries go.
    pub target: Target,
    /// The blackhole URL that identifies (or creates) each source's hook.
    pub hook_url: Option<String>,
    /// Events for a created hook, and the only ones forwarded; `*` for all.
    pub events: Vec<String>,
    /// The only actions forwarded (`opened`); empty for every delivery, with an action or without.
    pub actions: Vec<String>,
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
    to: String,
    #[serde(default)]
    hook: Option<JsonHook>,
    #[serde(default)]
    app: bool,
    #[serde(default)]
    actions: Vec<String>,
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
    to: String,
    #[serde(default)]
    hook_url: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
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
    to: String,
    hook_url: Option<String>,
    events: Vec<String>,
    actions: Vec<String>,
    installations: Vec<u64>,
    repositories: Vec<String>,
    app: bool,
    secret_env: Option<String>,
    stream_token_env: Option<String>,
    hook_secret_env: Option<String>,
    inline_secret: bool,
}

impl Rule {
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

    /// The rule's events that a hook subscribed to `hook_events` is not sent, so never arrive.
    pub fn missing_events(&self, hook_events: &[String]) -> Vec<String> {
        // No list (the App's hook) says nothing either way.
        if hook_events.is_empty() || hook_events.iter().any(|event| event == "*") {
            return Vec::new();
        }
        self.events.iter().filter(|event| *event != "*" && !hook_events.contains(event)).cloned().collect()
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
        let target = Target::parse(&self.to)
            .map_err(|_| Error::Rule(format!("`to` is `{}`, which is not a URL or host:port[/path]", self.to)))?;
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
        let secret = from_env("secret_env", self.secret_env.clone())?;
        let stream_token = from_env("stream_token_env", self.stream_token_env)?;
        let hook_secret = from_env("hook_secret_env", self.hook_secret_env)?;
        Ok(Rule {
            sources,
            target,
            hook_url: self.hook_url,
            events: self.events,
            actions: self.actions,
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
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_urls_and_host_port() {
        assert_eq!(Target::parse("localhost:3000").unwrap().0.as_str(), "http://localhost:3000/");
        assert_eq!(Target::parse("127.0.0.1:8080/webhook").unwrap().0.as_str(), "http://127.0.0.1:8080/webhook");
        assert_eq!(Target::parse("[::1]:9000/x").unwrap().0.as_str(), "http://[::1]:9000/x");
        assert_eq!(Target::parse("https://example.com/hook").unwrap().0.as_str(), "https://example.com/hook");
        assert_eq!(Target::parse("http://localhost:3000/a?b=c").unwrap().0.as_str(), "http://localhost:3000/a?b=c");
    }

    #[test]
    fn rejects_garbage_and_other_schemes() {
        for bad in [
            "",
            " ",
            "localhost",
            "ftp://example.com/",
            "file:///etc/passwd",
            "host:port",
            ":3000",
            "a b:1",
            "http://",
            "mailto:x@y",
        ] {
            assert!(matches!(Target::parse(bad), Err(Error::Target(_))), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn parses_the_seed_rule_format() {
        let rule = Rule::from_json_with_env(
            r#"{"from":["org1/repo1","org2"],"to":"http://localhost:3000/","hook":{"config":{"url":"https://bh.example/"},"events":["check_run","push"]}}"#,
            no_env,
        )
        .unwrap();
        assert_eq!(
            rule.sources,
            vec![
                Source::Owner(Owner::Repo { owner: "org1".into(), repo: "repo1".into() }),
                Source::Owner(Owner::Org { org: "org2".into() })
            ]
        );
        assert_eq!(rule.target.0.as_str(), "http://localhost:3000/");
        assert_eq!(rule.hook_url.as_deref(), Some("https://bh.example/"));
        assert_eq!(rule.events, ["check_run", "push"]);
        assert!(rule.secret.is_none());
    }

    #[test]
    fn reads_the_secret_from_the_named_env_var() {
        let env = |name: &str| (name == "MY_SECRET").then(|| "s3cr3t".to_string());
        let rule =
            Rule::from_json_with_env(r#"{"from":["o/r"],"to":"localhost:1","secret_env":"MY_SECRET"}"#, env).unwrap();
        assert_eq!(rule.secret.unwrap().expose(), "s3cr3t");
        let err = Rule::from_json_with_env(r#"{"from":["o/r"],"to":"localhost:1","secret_env":"NOPE"}"#, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`NOPE`"), "{err}");
    }

    #[test]
    fn reads_the_stream_token_and_hook_secret_from_named_env_vars() {
        let env = |name: &str| match name {
            "BH_TOKEN" => Some("tok".to_string()),
            "UPSTREAM" => Some("up".to_string()),
            _ => None,
        };
        let rule = Rule::from_toml_with_env(
            "[[rule]]\nfrom=[\"o/r\"]\nto=\"localhost:1\"\nstream_token_env=\"BH_TOKEN\"\nhook_secret_env=\"UPSTREAM\"\n",
            env,
        )
        .unwrap()
        .remove(0);
        assert_eq!(rule.stream_token.unwrap().expose(), "tok");
        assert_eq!(rule.hook_secret.unwrap().expose(), "up");
        let err = Rule::from_json_with_env(r#"{"from":["o/r"],"to":"localhost:1","stream_token_env":"NOPE"}"#, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`stream_token_env` names `NOPE`"), "{err}");
    }

    #[test]
    fn the_ledger_of_a_config_file_is_read_from_its_top() {
        let text = "ledger = \"redis://redis:6379/0\"\n[[rule]]\nfrom = [\"o/r\"]\nto = \"localhost:1\"\n";
        assert_eq!(Rule::ledger_in_toml(text).unwrap().as_deref(), Some("redis://redis:6379/0"));
        assert_eq!(Rule::from_toml_with_env(text, no_env).unwrap().len(), 1, "the rules load beside it");
        assert_eq!(Rule::ledger_in_toml("[[rule]]\nfrom = [\"o/r\"]\nto = \"x:1\"\n").unwrap(), None);
        assert!(Rule::ledger_in_toml("ledger = 5\n").is_err(), "a ledger that is not a string is a bad rule file");
    }

    #[test]
    fn app_is_an_explicit_field() {
        let rule = Rule::from_json_with_env(r#"{"app":true,"to":"localhost:1"}"#, no_env).unwrap();
        assert_eq!(rule.sources, vec![Source::App]);
        // An organization may be called `app`; it stays an organization.
        let rule = Rule::from_json_with_env(r#"{"from":["app"],"to":"localhost:1"}"#, no_env).unwrap();
        assert_eq!(rule.sources, vec![Source::Owner(Owner::Org { org: "app".into() })]);
    }

    #[test]
    fn malformed_rules_get_one_clear_sentence() {
        let cases = [
            (r#"{"from":["o/r"]}"#, "missing field `to`"),
            (r#"{"from":["o/r"],"to":"localhost:1","form":1}"#, "unknown field `form`"),
            (r#"{"from":["a/b/c"],"to":"localhost:1"}"#, "`from` entry `a/b/c`"),
            (r#"{"from":[],"to":"localhost:1"}"#, "names no repository"),
            (r#"{"from":["o/r"],"to":"gopher://x"}"#, "`to` is `gopher://x`"),
            (r#"{"from":["o/r"],"to":"localhost:1","secret":"x"}"#, "secret_env"),
            (r#"{"from":["o/r"],"to":"localhost:1","hook":{"config":{"url":"nope"}}}"#, "hook URL `nope`"),
            (r#"{"from":"o/r","to":"localhost:1"}"#, "invalid type"),
            (r#"{"from":["o/r"],"#, "not valid JSON"),
        ];
        for (text, expected) in cases {
            let err = Rule::from_json_with_env(text, no_env).unwrap_err();
            assert!(matches!(err, Error::Rule(_)), "{text}: {err:?}");
            let message = err.to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(!message.contains('\n'), "{text}: {message}");
        }
    }

    #[test]
    fn parses_many_rules_from_toml() {
        let env = |name: &str| (name == "S").then(|| "x".to_string());
        let rules = Rule::from_toml_with_env(
            r#"
            [[rule]]
            from = ["o/r", "org"]
            to = "localhost:3000/hook"
            hook_url = "https://bh.example/"
            events = ["push"]
            secret_env = "S"

            [[rule]]
            app = true
            to = "http://127.0.0.1:4000/"
            "#,
            env,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].sources.len(), 2);
        assert_eq!(rules[0].hook_url.as_deref(), Some("https://bh.example/"));
        assert!(rules[0].secret.is_some());
        assert_eq!(rules[1].sources, vec![Source::App]);
    }

    #[test]
    fn malformed_toml_names_the_rule_and_field() {
        let err = Rule::from_toml_with_env("[[rule]]\nfrom=[\"o/r\"]\nto=\"localhost:1\"\nhookurl=\"x\"\n", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `hookurl`"), "{err}");
        let err = Rule::from_toml_with_env("[[rule]]\nfrom=[\"o/r\"]\nto=\"nope\"\n[[rule]]\n", no_env)
            .unwrap_err()
            .to_string();
        // The second [[rule]] (line 4) lacks `to`: the file fails to parse there, before any rule is checked.
        assert_eq!(err, "invalid rule: missing field `to` (line 4)");
        let err = Rule::from_toml_with_env("", no_env).unwrap_err().to_string();
        assert!(err.contains("no [[rule]]"), "{err}");
    }

    #[test]
    fn a_rules_events_filter_what_is_forwarded_and_name_what_a_hook_lacks() {
        let mut rule =
            Rule::from_json(r#"{"from":["o/r"],"to":"http://localhost:3000/","hook":{"events":["push","check_run"]}}"#)
                .unwrap();
        assert!(rule.wants_event("push") && rule.wants_event("check_run") && !rule.wants_event("issues"));
        let hook = |events: &[&str]| events.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(rule.missing_events(&hook(&["push"])), ["check_run"]);
        assert!(rule.missing_events(&hook(&["*"])).is_empty());
        assert!(rule.missing_events(&[]).is_empty(), "the App's hook lists none");
        rule.events = vec!["*".into()];
        assert!(rule.wants_event("issues"));
        assert!(rule.missing_events(&hook(&["push"])).is_empty(), "`*` asks for nothing in particular");
    }

    fn item(event: &str, action: Option<&str>, installation: Option<u64>) -> DeliveryItem {
        serde_json::from_value(serde_json::json!({"id": 1, "guid": "g", "delivered_at": "2026-12-01T00:00:00Z",
            "redelivery": false, "duration": 0.1, "status": "OK", "status_code": 200, "event": event,
            "action": action, "installation_id": installation, "repository_id": 9}))
        .unwrap()
    }

    #[test]
    fn actions_and_installations_filter_on_the_list_item() {
        let toml = r#"
            [[rule]]
            app = true
            to = "localhost:3000"
            events = ["pull_request", "push"]
            actions = ["opened", "reopened"]
            installations = [7]
            repositories = ["acme/widgets"]
        "#;
        let rule = Rule::from_toml_with_env(toml, no_env).unwrap().remove(0);
        assert_eq!(rule.repositories, [Owner::parse("acme/widgets").unwrap()]);
        let app = |item: &DeliveryItem| rule.wants_from_app(item, &[9]);
        assert!(app(&item("pull_request", Some("opened"), Some(7))));
        assert!(app(&item("pull_request", Some("reopened"), Some(7))));
        assert!(!app(&item("pull_request", Some("closed"), Some(7))), "another action");
        assert!(!app(&item("push", None, Some(7))), "no action is not one of the actions asked");
        assert!(!app(&item("pull_request", Some("opened"), Some(8))), "another installation");
        assert!(!app(&item("pull_request", Some("opened"), None)));
        assert!(!app(&item("issues", Some("opened"), Some(7))), "another event");
        assert!(!rule.wants_from_app(&item("pull_request", Some("opened"), Some(7)), &[10]), "another repository");

        let json = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000","actions":["opened"]}"#).unwrap();
        assert!(
            json.wants(&item("issues", Some("opened"), None)) && !json.wants(&item("issues", Some("closed"), None))
        );
        let every = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000"}"#).unwrap();
        assert!(every.wants(&item("push", None, None)) && every.wants(&item("issues", Some("closed"), Some(3))));
    }

    #[test]
    fn installation_and_repository_filters_need_the_app_hook() {
        let err = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000","installations":[7]}"#).unwrap_err();
        assert!(err.to_string().contains("need `app = true`"), "{err}");
        let err = Rule::from_json(r#"{"app":true,"to":"localhost:3000","repositories":["nope"]}"#).unwrap_err();
        assert!(err.to_string().contains("`repositories` entry `nope` is not OWNER/REPO"), "{err}");
        let err = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000","actions":[""]}"#).unwrap_err();
        assert!(err.to_string().contains("not an action name"), "{err}");
    }
}

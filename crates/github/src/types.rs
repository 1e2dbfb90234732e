//! The shapes GitHub's hooks and deliveries endpoints send and accept.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Who owns a set of hooks: a repository or an organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Owner {
    /// `OWNER/REPO`.
    Repo {
        /// The user or organization that owns the repository.
        owner: String,
        /// The repository name.
        repo: String,
    },
    /// An organization.
    Org {
        /// The organization login.
        org: String,
    },
}

/// Why a string is not a repository (`OWNER/REPO`) or an organization name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a repository (OWNER/REPO) or an organization name")]
pub struct ParseOwnerError(pub String);

impl Owner {
    /// `owner/repo` is a repository; a name without a slash is an organization.
    pub fn parse(text: &str) -> Result<Self, ParseOwnerError> {
        let valid = |part: &str| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match text.split_once('/') {
            Some((owner, repo)) if valid(owner) && valid(repo) => {
                Ok(Self::Repo { owner: owner.into(), repo: repo.into() })
            }
            None if valid(text) => Ok(Self::Org { org: text.into() }),
            _ => Err(ParseOwnerError(text.into())),
        }
    }

    /// The API path of this owner's hooks, such as `/repos/o/r/hooks`.
    pub fn hooks_path(&self) -> String {
        match self {
            Self::Repo { owner, repo } => format!("/repos/{owner}/{repo}/hooks"),
            Self::Org { org } => format!("/orgs/{org}/hooks"),
        }
    }

    /// The hook `id` of this owner.
    pub fn hook(&self, id: u64) -> HookRef {
        match self {
            Self::Repo { owner, repo } => HookRef::Repo { owner: owner.clone(), repo: repo.clone(), id },
            Self::Org { org } => HookRef::Org { org: org.clone(), id },
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repo { owner, repo } => write!(f, "{owner}/{repo}"),
            Self::Org { org } => write!(f, "{org}"),
        }
    }
}

/// One hook whose deliveries can be listed: a repository's, an organization's, or the GitHub App's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HookRef {
    /// A repository hook.
    Repo {
        /// The user or organization that owns the repository.
        owner: String,
        /// The repository name.
        repo: String,
        /// The hook id.
        id: u64,
    },
    /// An organization hook.
    Org {
        /// The organization login.
        org: String,
        /// The hook id.
        id: u64,
    },
    /// The single hook of the GitHub App that the client authenticates as.
    App {
        /// The App's id, when the client authenticates as a GitHub App ([`crate::Client::app_id`]):
        /// it keeps two Apps' ledgers apart.
        app_id: Option<u64>,
    },
}

impl HookRef {
    /// The API path of the hook, such as `/repos/o/r/hooks/1` or `/app/hook`.
    pub fn path(&self) -> String {
        match self {
            Self::Repo { owner, repo, id } => format!("/repos/{owner}/{repo}/hooks/{id}"),
            Self::Org { org, id } => format!("/orgs/{org}/hooks/{id}"),
            Self::App { .. } => "/app/hook".to_string(),
        }
    }

    /// The hook id, which the App hook does not expose.
    pub fn id(&self) -> Option<u64> {
        match self {
            Self::Repo { id, .. } | Self::Org { id, .. } => Some(*id),
            Self::App { .. } => None,
        }
    }

    /// A stable name usable as a file name, such as `repos-o-r-hooks-1`, or `app-42-hook` for
    /// the hook of App 42 (two Apps' hooks share the path `/app/hook`).
    pub fn key(&self) -> String {
        match self {
            Self::App { app_id: Some(app_id) } => format!("app-{app_id}-hook"),
            _ => self.path().trim_start_matches('/').replace('/', "-"),
        }
    }

    /// Every repository or organization hook whose [`HookRef::key`] is `key`. A repository's is
    /// ambiguous when a name has a `-` (`repos-a-b-c-hooks-1` is `a/b-c` or `a-b/c`), so each reading
    /// is given, for GitHub to tell which exists; none for the App's hook or another name.
    pub fn from_key(key: &str) -> Vec<HookRef> {
        let Some((middle, id)) = key.rsplit_once("-hooks-") else { return Vec::new() };
        let Some(id) = id.parse::<u64>().ok().filter(|_| id.bytes().all(|b| b.is_ascii_digit())) else {
            return Vec::new();
        };
        if let Some(org) = middle.strip_prefix("orgs-") {
            let owner = Owner::parse(org);
            return owner.map(|owner| owner.hook(id)).into_iter().filter(|hook| hook.key() == key).collect();
        }
        let Some(both) = middle.strip_prefix("repos-") else { return Vec::new() };
        both.match_indices('-')
            .filter_map(|(at, _)| Owner::parse(&format!("{}/{}", &both[..at], &both[at + 1..])).ok())
            .map(|owner| owner.hook(id))
            .filter(|hook| hook.key() == key)
            .collect()
    }
}

impl fmt::Display for HookRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repo { owner, repo, id } => write!(f, "{owner}/{repo} hook {id}"),
            Self::Org { org, id } => write!(f, "org {org} hook {id}"),
            Self::App { .. } => f.write_str("the GitHub App hook"),
        }
    }
}

/// A repository or organization webhook (`hook` / `org-hook` in GitHub's description).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hook {
    /// The hook id.
    pub id: u64,
    /// `Repository` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Always `web` for webhooks.
    pub name: String,
    /// Whether GitHub delivers to it.
    pub active: bool,
    /// The events it is subscribed to; `*` means all.
    pub events: Vec<String>,
    /// Where and how GitHub delivers.
    pub config: HookConfig,
    /// The outcome of the last delivery, on repository hooks.
    #[serde(default)]
    pub last_response: Option<HookResponse>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Hook {
    /// Whether this hook delivers to `url`: the one rule by which the engine and every command find a hook.
    ///
    /// Two URLs are the same when they differ only where GitHub would deliver to the same place: the letter
    /// case of the scheme and host, a default port written out, and a trailing `/` on the path. The query
    /// string and everything else must match. A URL that does not parse is compared as written, less a
    /// trailing `/`.
    pub fn delivers_to(&self, url: &str) -> bool {
        self.config.url.as_deref().is_some_and(|own| same_url(own, url))
    }
}

/// See [`Hook::delivers_to`].
fn same_url(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host() == b.host()
                && a.port_or_known_default() == b.port_or_known_default()
                && a.username() == b.username()
                && a.password() == b.password()
                && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
                && a.query() == b.query()
                && a.fragment() == b.fragment()
        }
        _ => a.trim_end_matches('/') == b.trim_end_matches('/'),
    }
}

/// A hook's delivery configuration (`webhook-config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HookConfig {
    /// The URL GitHub posts to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `json` or `form`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The signing secret on create; GitHub answers `********` when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `"0"` verifies TLS; GitHub sends a string or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_ssl: Option<serde_json::Value>,
}

/// `hook-response`: the last delivery's outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HookResponse {
    /// The status code the hook URL answered.
    pub code: Option<i64>,
    /// `active`, `unused` or a failure description.
    pub status: Option<String>,
    /// A human-readable description.
    pub message: Option<String>,
}

/// The body of a create-hook request.
#[derive(Debug, Clone, Serialize)]
pub struct NewHook {
    /// Always `web`.
    pub name: String,
    /// Whether GitHub delivers to it.
    pub active: bool,
    /// Events to subscribe to; `*` for all.
    pub events: Vec<String>,
    /// URL, content type and secret.
    pub config: HookConfig,
}

/// The body of an update-hook request; absent fields are left as they are.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HookUpdate {
    /// New events, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// New active flag, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// New config, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<HookConfig>,
}

/// One entry of a deliveries list (`hook-delivery-item`): no request or payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryItem {
    /// The delivery id; a redelivery gets a new one.
    pub id: u64,
    /// The event's id, shared by every delivery of that event (and its redeliveries).
    pub guid: String,
    /// When GitHub attempted it.
    pub delivered_at: DateTime<Utc>,
    /// Whether it is a redelivery.
    pub redelivery: bool,
    /// Seconds GitHub spent delivering.
    pub duration: f64,
    /// GitHub's description of the outcome, such as `OK`.
    pub status: String,
    /// The status code GitHub got from the hook URL (0 when it could not connect).
    pub status_code: i64,
    /// The event name, such as `push`.
    pub event: String,
    /// The payload's `action`, if any.
    #[serde(default)]
    pub action: Option<String>,
    /// The GitHub App installation, if any.
    #[serde(default)]
    pub installation_id: Option<u64>,
    /// The repository, if any.
    #[serde(default)]
    pub repository_id: Option<u64>,
    /// When the delivery was throttled, if it was.
    #[serde(default)]
    pub throttled_at: Option<DateTime<Utc>>,
}

impl DeliveryItem {
    /// `event.action`, or `event` when there is no action.
    pub fn kind(&self) -> String {
        match &self.action {
            Some(action) => format!("{}.{action}", self.event),
            None => self.event.clone(),
        }
    }
}

/// A whole delivery (`hook-delivery`), with the request GitHub sent.
#[derive(Debug, Deserialize)]
pub struct Delivery {
    /// The delivery id.
    pub id: u64,
    /// The event's id.
    pub guid: String,
    /// When GitHub attempted it.
    pub delivered_at: DateTime<Utc>,
    /// Whether it is a redelivery.
    pub redelivery: bool,
    /// The event name.
    pub event: String,
    /// The payload's `action`, if any.
    #[serde(default)]
    pub action: Option<String>,
    /// The status code GitHub got from the hook URL.
    pub status_code: i64,
    /// The URL GitHub delivered to.
    #[serde(default)]
    pub url: Option<String>,
    /// The request GitHub sent.
    pub request: DeliveryRequest,
}

/// The request of a delivery: headers and the payload exactly as the API returned it.
#[derive(Debug, Deserialize)]
pub struct DeliveryRequest {
    /// Request headers, such as `X-GitHub-Event`.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The JSON payload, byte for byte as the API returned it; never re-serialised.
    #[serde(default)]
    pub payload: Option<Box<RawValue>>,
}

impl Delivery {
    /// A request header, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self.request.headers.as_ref()?;
        headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    fn hook(url: &str) -> Hook {
        serde_json::from_value(serde_json::json!({"id": 1, "name": "web", "active": true, "events": ["*"],
            "config": {"url": url}, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}))
        .expect("a hook")
    }

    #[test]
    fn a_hook_url_matches_with_or_without_a_trailing_slash() {
        assert!(hook("https://bh.example/alice").delivers_to("https://bh.example/alice"));
        assert!(hook("https://bh.example/alice/").delivers_to("https://bh.example/alice"));
        assert!(hook("https://bh.example/alice").delivers_to("https://bh.example/alice/"));
        assert!(hook("https://bh.example").delivers_to("https://bh.example/"));
        assert!(!hook("https://bh.example/alice").delivers_to("https://bh.example/bob"));
        assert!(!hook("https://bh.example/alice").delivers_to("https://bh.example/alice/x"));
    }

    #[test]
    fn a_hook_url_ignores_the_letter_case_of_scheme_and_host_but_not_of_the_path() {
        assert!(hook("HTTPS://BH.Example/alice").delivers_to("https://bh.example/alice"));
        assert!(!hook("https://bh.example/Alice").delivers_to("https://bh.example/alice"));
        assert!(!hook("https://bh.example/alice").delivers_to("http://bh.example/alice"));
    }

    #[test]
    fn a_hook_url_with_the_default_port_written_out_is_the_same_url() {
        assert!(hook("https://bh.example:443/alice").delivers_to("https://bh.example/alice"));
        assert!(hook("http://bh.example/alice").delivers_to("http://bh.example:80/alice"));
        assert!(!hook("https://bh.example:8443/alice").delivers_to("https://bh.example/alice"));
    }

    #[test]
    fn a_hook_url_query_string_must_match() {
        assert!(hook("https://bh.example/alice?x=1").delivers_to("https://bh.example/alice?x=1"));
        assert!(hook("https://bh.example/alice/?x=1").delivers_to("https://bh.example/alice?x=1"));
        assert!(!hook("https://bh.example/alice?x=1").delivers_to("https://bh.example/alice?x=2"));
        assert!(!hook("https://bh.example/alice?x=1").delivers_to("https://bh.example/alice"));
    }

    #[test]
    fn a_hook_without_a_url_or_with_one_that_does_not_parse_is_compared_as_written() {
        let mut none = hook("https://bh.example");
        none.config.url = None;
        assert!(!none.delivers_to("https://bh.example"));
        assert!(hook("not a url/").delivers_to("not a url"));
        assert!(!hook("not a url").delivers_to("https://bh.example"));
    }

    use super::*;

    #[test]
    fn parses_repositories_and_organizations() {
        assert_eq!(Owner::parse("octo/hello").unwrap(), Owner::Repo { owner: "octo".into(), repo: "hello".into() });
        assert_eq!(Owner::parse("octo").unwrap(), Owner::Org { org: "octo".into() });
        for bad in ["", "/", "a/", "/b", "a/b/c", "a b", "a/b c"] {
            assert!(Owner::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_hooks_key_is_read_back_in_every_way_it_can_be() {
        let repo = |owner: &str, repo: &str| HookRef::Repo { owner: owner.into(), repo: repo.into(), id: 7 };
        assert_eq!(HookRef::from_key("repos-octo-hello-hooks-7"), [repo("octo", "hello")]);
        assert_eq!(
            HookRef::from_key("repos-octo-org-hello-world-hooks-7"),
            [repo("octo", "org-hello-world"), repo("octo-org", "hello-world"), repo("octo-org-hello", "world"),]
        );
        assert_eq!(HookRef::from_key("repos-o-hello.world-hooks-7"), [repo("o", "hello.world")]);
        assert_eq!(HookRef::from_key("orgs-octo-org-hooks-12"), [HookRef::Org { org: "octo-org".into(), id: 12 }]);
        for hook in [repo("a-b", "c-d-hooks-3"), HookRef::Org { org: "acme".into(), id: 1 }] {
            assert!(HookRef::from_key(&hook.key()).contains(&hook), "{hook}");
        }
        for other in ["app-42-hook", "repos-octo-hooks-7", "repos-o-r-hooks-x", "repos-o-r-hooks-+7", "notes"] {
            assert!(HookRef::from_key(other).is_empty(), "{other}");
        }
    }

    #[test]
    fn keeps_payload_bytes_exactly() {
        let body = r#"{"id":1,"guid":"g","delivered_at":"2021-05-12T20:33:44Z","redelivery":false,"event":"push","status_code":200,"request":{"headers":{"X-GitHub-Event":"push"},"payload":{"b":  1,"a":[ 2 ]}}}"#;
        let delivery: Delivery = serde_json::from_str(body).unwrap();
        assert_eq!(delivery.request.payload.unwrap().get(), r#"{"b":  1,"a":[ 2 ]}"#);
    }
}

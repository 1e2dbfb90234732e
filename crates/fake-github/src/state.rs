//! What the fake remembers: accounts, repositories, hooks, their deliveries, tokens, Apps and rate budgets.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// A hook to add with [`crate::FakeGitHub::add_hook`].
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// Where deliveries are POSTed.
    pub url: String,
    /// The events it is subscribed to; `*` means all (`ping` is always delivered).
    pub events: Vec<String>,
    /// The signing secret, if any.
    pub secret: Option<String>,
    /// `json` or `form`.
    pub content_type: String,
    /// Whether events are delivered to it.
    pub active: bool,
}

impl HookSpec {
    /// An active `json` hook for every event (`*`), without a secret.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), events: vec!["*".into()], secret: None, content_type: "json".into(), active: true }
    }

    /// The same hook subscribed to `events` only.
    pub fn events(mut self, events: &[&str]) -> Self {
        self.events = events.iter().map(|event| event.to_string()).collect();
        self
    }

    /// The same hook signing with `secret`.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// The same hook with another content type (`json` or `form`).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }

    /// The same hook, active or not.
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }
}

/// One delivery attempt, as the fake made it and as the deliveries API reports it.
#[derive(Debug, Clone)]
pub struct RecordedDelivery {
    /// The delivery id; increases with every delivery, redeliveries included.
    pub id: u64,
    /// The hook it was made for.
    pub hook_id: u64,
    /// The event's id, shared with its redeliveries and with other hooks' deliveries of the same event.
    pub guid: String,
    /// The event name.
    pub event: String,
    /// The payload's `action`.
    pub action: Option<String>,
    /// Whether it is a redelivery.
    pub redelivery: bool,
    /// `OK`, `Invalid HTTP Response: 503`, `failed to connect to host` or `timed out`.
    pub status: String,
    /// The status code the hook URL answered; 0 when there was no answer.
    pub status_code: u16,
    /// Seconds spent delivering.
    pub duration: f64,
    /// When it was attempted ([`crate::FakeGitHub::age`] moves it back).
    pub delivered_at: DateTime<Utc>,
    /// The App installation, for App hook deliveries.
    pub installation_id: Option<u64>,
    /// The repository the event is about, if any.
    pub repository_id: Option<u64>,
    /// The URL it was POSTed to.
    pub url: String,
    /// The request headers sent, in order.
    pub request_headers: Vec<(String, String)>,
    /// The JSON payload, byte for byte as sent (inside `payload=` for form hooks).
    pub payload: Bytes,
    /// The exact request body sent: the payload, or `payload=<urlencoded>` for form hooks.
    pub body: Bytes,
    /// The response headers received.
    pub response_headers: Vec<(String, String)>,
    /// The response body received (truncated), empty when there was none.
    pub response_body: String,
}

/// Counters of what the fake was asked, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every API request, whatever became of it.
    pub requests: u64,
    /// Requests counted against a primary rate-limit budget.
    pub counted: u64,
    /// `304 Not Modified` answers (not counted).
    pub not_modified: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Requests refused by the primary rate limit.
    pub primary_limited: u64,
    /// Requests refused by the secondary rate limit.
    pub secondary_limited: u64,
    /// Injected 5xx answers.
    pub server_errors: u64,
    /// Connections closed without an answer.
    pub dropped: u64,
    /// List-deliveries calls (any hook kind, including 304s).
    pub list_deliveries: u64,
    /// Get-delivery calls.
    pub get_delivery: u64,
    /// Redelivery requests (`POST .../attempts`).
    pub redeliver: u64,
    /// List-hooks calls.
    pub list_hooks: u64,
    /// Hooks created through the API.
    pub hook_creates: u64,
    /// Hooks updated through the API (hook or config).
    pub hook_updates: u64,
    /// Hooks deleted through the API.
    pub hook_deletes: u64,
    /// Pings and tests requested through the API.
    pub pings: u64,
    /// Installation tokens minted.
    pub tokens_minted: u64,
    /// Deliveries made (emits, pings, redeliveries).
    pub deliveries_made: u64,
    /// The most requests one caller had in flight at once.
    pub peak_in_flight: u64,
}

impl Stats {
    /// What was counted since `before` was read: each counter's difference.
    pub fn since(&self, before: &Stats) -> Stats {
        Stats {
            requests: self.requests.saturating_sub(before.requests),
            counted: self.counted.saturating_sub(before.counted),
            not_modified: self.not_modified.saturating_sub(before.not_modified),
            unauthorized: self.unauthorized.saturating_sub(before.unauthorized),
            primary_limited: self.primary_limited.saturating_sub(before.primary_limited),
            secondary_limited: self.secondary_limited.saturating_sub(before.secondary_limited),
            server_errors: self.server_errors.saturating_sub(before.server_errors),
            dropped: self.dropped.saturating_sub(before.dropped),
            list_deliveries: self.list_deliveries.saturating_sub(before.list_deliveries),
            get_delivery: self.get_delivery.saturating_sub(before.get_delivery),
            redeliver: self.redeliver.saturating_sub(before.redeliver),
            list_hooks: self.list_hooks.saturating_sub(before.list_hooks),
            hook_creates: self.hook_creates.saturating_sub(before.hook_creates),
            hook_updates: self.hook_updates.saturating_sub(before.hook_updates),
            hook_deletes: self.hook_deletes.saturating_sub(before.hook_deletes),
            pings: self.pings.saturating_sub(before.pings),
            tokens_minted: self.tokens_minted.saturating_sub(before.tokens_minted),
            deliveries_made: self.deliveries_made.saturating_sub(before.deliveries_made),
            // A high-water mark, not a count: the later one stands.
            peak_in_flight: self.peak_in_flight,
        }
    }

    /// The counters as a JSON object, for the control surface.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests, "counted": self.counted, "not_modified": self.not_modified,
            "unauthorized": self.unauthorized, "primary_limited": self.primary_limited,
            "secondary_limited": self.secondary_limited, "server_errors": self.server_errors,
            "dropped": self.dropped, "list_deliveries": self.list_deliveries, "get_delivery": self.get_delivery,
            "redeliver": self.redeliver, "list_hooks": self.list_hooks, "hook_creates": self.hook_creates,
            "hook_updates": self.hook_updates, "hook_deletes": self.hook_deletes, "pings": self.pings,
            "tokens_minted": self.tokens_minted, "deliveries_made": self.deliveries_made,
            "peak_in_flight": self.peak_in_flight,
        })
    }
}

/// A token the fake accepts.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// `X-OAuth-Scopes`; `None` for installation tokens, which have permissions instead.
    pub scopes: Option<String>,
    /// When an installation token stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A user or an organization.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The account id.
    pub id: u64,
    /// The login, as first spelled.
    pub login: String,
    /// Whether it is an organization (which can have hooks).
    pub org: bool,
}

/// A repository.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    /// The repository id.
    pub id: u64,
    /// The owner's login, as first spelled.
    pub owner: String,
    /// The name, as first spelled.
    pub name: String,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// What a hook belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// A repository, by id.
    Repo(u64),
    /// An organization, by lower-case login.
    Org(String),
    /// A GitHub App, by id.
    App(u64),
}

/// `hook-response`: the outcome of the last delivery.
#[derive(Debug, Clone)]
pub(crate) struct LastResponse {
    pub code: Option<u16>,
    pub status: String,
    pub message: Option<String>,
}

/// A webhook and its deliveries.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub id: u64,
    pub scope: Scope,
    pub url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub content_type: String,
    pub insecure_ssl: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_response: LastResponse,
    /// Oldest first, so ids ascend.
    pub deliveries: Vec<RecordedDelivery>,
}

impl Hook {
    /// Whether an event of this name is delivered to the hook.
    pub fn wants(&self, event: &str) -> bool {
        event == "ping" || (self.active && self.events.iter().any(|wanted| wanted == "*" || wanted == event))
    }
}

/// A registered GitHub App.
pub(crate) struct App {
    pub id: u64,
    /// Verifies the App's JWTs: its RSA public key (an `RSAPublicKey`, DER).
    pub key: Vec<u8>,
    /// Its single installation, which covers every repository.
    pub installation_id: u64,
    /// Its hook, kept with the others under [`Scope::App`].
    pub hook_id: u64,
}

/// A primary rate-limit budget (one per token, or per App for JWTs).
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    /// Requests counted in this window.
    pub used: u32,
    /// When the window resets, in Unix seconds.
    pub reset: i64,
}

/// Everything the fake knows.
pub(crate) struct State {
    pub next_account_id: u64,
    pub next_repo_id: u64,
    pub next_hook_id: u64,
    pub next_delivery_id: u64,
    pub tokens: HashMap<String, Token>,
    /// By lower-case login.
    pub accounts: HashMap<String, Account>,
    /// By lower-case full name.
    pub repos: HashMap<String, Repo>,
    pub hooks: BTreeMap<u64, Hook>,
    pub apps: BTreeMap<u64, App>,
    pub budgets: HashMap<String, Budget>,
    pub per_hour: u32,
    pub stats: Stats,
    /// Counts deliveries lists, to vary the form of `Link` URLs.
    pub list_pages: u64,
    /// Whether creating a hook through the API sends it a `ping`, as GitHub does.
    pub ping_on_create: bool,
}

impl State {
    pub fn new() -> Self {
        Self {
            // Large ids, like GitHub's, so that nobody gets away with u32.
            next_account_id: 9_000_001,
            next_repo_id: 700_000_001,
            next_hook_id: 480_000_001,
            next_delivery_id: 10_000_000_001,
            tokens: HashMap::new(),
            accounts: HashMap::new(),
            repos: HashMap::new(),
            hooks: BTreeMap::new(),
            apps: BTreeMap::new(),
            budgets: HashMap::new(),
            per_hour: 5000,
            stats: Stats::default(),
            list_pages: 0,
            ping_on_create: true,
        }
    }

    /// The account `login`, created as a user or organization when new; `org` upgrades a user.
    pub fn account(&mut self, login: &str, org: bool) -> Account {
        let next = &mut self.next_account_id;
        let account = self.accounts.entry(login.to_ascii_lowercase()).or_insert_with(|| {
            *next += 1;
            Account { id: *next - 1, login: login.to_string(), org }
        });
        account.org |= org;
        account.clone()
    }

    /// The repository `owner/name`, created (with its owner) when new.
    pub fn repo(&mut self, owner: &str, name: &str) -> Repo {
        self.account(owner, false);
        let next = &mut self.next_repo_id;
        let key = format!("{owner}/{name}").to_ascii_lowercase();
        self.repos
            .entry(key)
            .or_insert_with(|| {
                *next += 1;
                Repo { id: *next - 1, owner: owner.to_string(), name: name.to_string() }
            })
            .clone()
    }

    pub fn find_repo(&self, owner: &str, name: &str) -> Option<&Repo> {
        self.repos.get(&format!("{owner}/{name}").to_ascii_lowercase())
    }

    pub fn repo_by_id(&self, id: u64) -> Option<&Repo> {
        self.repos.values().find(|repo| repo.id == id)
    }

    pub fn find_org(&self, login: &str) -> Option<&Account> {
        self.accounts.get(&login.to_ascii_lowercase()).filter(|account| account.org)
    }

    /// Adds a hook and returns its id.
    pub fn insert_hook(&mut self, scope: Scope, spec: &HookSpec) -> u64 {
        let id = self.next_hook_id;
        self.next_hook_id += 1;
        let now = Utc::now();
        self.hooks.insert(
            id,
            Hook {
                id,
                scope,
                url: spec.url.clone(),
                events: spec.events.clone(),
                secret: spec.secret.clone().filter(|secret| !secret.is_empty()),
                content_type: spec.content_type.clone(),
                insecure_ssl: "0".into(),
                active: spec.active,
                created_at: now,
                updated_at: now,
                last_response: LastResponse { code: None, status: "unused".into(), message: None },
                deliveries: Vec::new(),
            },
        );
        id
    }

    /// Forgets deliveries delivered before `cutoff`.
    pub fn purge(&mut self, cutoff: DateTime<Utc>) {
        for hook in self.hooks.values_mut() {
            hook.deliveries.retain(|delivery| delivery.delivered_at >= cutoff);
        }
    }

    /// Takes the next delivery id.
    pub fn delivery_id(&mut self) -> u64 {
        self.next_delivery_id += 1;
        self.next_delivery_id - 1
    }
}

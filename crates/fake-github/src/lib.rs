//! A faithful, stateful stand-in for GitHub's hooks and deliveries endpoints.
//!
//! [`FakeGitHub`] serves the repository, organization and App hook endpoints that
//! hookfwd uses, following GitHub's OpenAPI description: tokens and scopes, a real
//! per-token rate budget, ETags and 304s, opaque delivery cursors with `Link`
//! headers, and GitHub's error bodies. [`FakeGitHub::emit`] delivers events to hook
//! URLs the way Hookshot does (headers, signatures, form or JSON bodies) and records
//! every attempt, so the deliveries API has something true to report. [`Faults`]
//! injects latency, server errors, rate limits, dropped connections, retention, a skewed clock
//! and poisoned delivery records ([`Poison`]).
//! [`FakeGitHub::start_with_prefix`] serves it all under a path such as GitHub Enterprise
//! Server's `/api/v3`.
//!
//! Besides GitHub's paths it answers a small control surface under `/_fake/` (see
//! [`control`]) so that a separate process can drive the `fake-github` binary.

mod api;
pub mod control;
mod deliver;
mod faults;
pub mod hostile;
mod http;
mod secondary;
mod server;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

pub use faults::{Faults, Hostile, Poison};
pub use secondary::SecondaryLimits;
pub use state::{HookSpec, RecordedDelivery, Stats};

use state::{Scope, State};

/// A running fake GitHub. Dropping it stops the server.
pub struct FakeGitHub {
    /// Shared with the server and delivery tasks.
    inner: Arc<Inner>,
    /// Cancelled on drop, which stops accepting and closes connections.
    shutdown: CancellationToken,
    /// Where it listens.
    addr: SocketAddr,
}

/// The state and machinery shared by the handle, the server and deliveries.
pub(crate) struct Inner {
    /// Everything the fake knows; never held across an `.await`.
    state: Mutex<State>,
    /// The faults tests switch on.
    faults: Faults,
    /// Delivers to hook URLs, with GitHub's 10 s timeout.
    http: reqwest::Client,
    /// The API root, such as `http://127.0.0.1:PORT/` (or `http://127.0.0.1:PORT/api/v3/` with a prefix).
    api_url: Url,
    /// The path every API and control path sits under, such as `/api/v3` on GitHub Enterprise
    /// Server; empty on github.com.
    prefix: String,
    /// Numbers `x-github-request-id`.
    requests: AtomicU64,
    /// GitHub's secondary rate limits, and what each caller spent of them.
    secondary: secondary::Secondary,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters to a test double; keep serving rather than cascade the panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fresh request id in GitHub's `XXXX:XXXX:XXXXXX:XXXXXXX:XXXXXXXX` shape.
    pub(crate) fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let port = self.api_url.port().unwrap_or(0);
        format!("FA4E:{port:04X}:{:06X}:{:07X}:{:08X}", n >> 24, n & 0xFF_FFFF, Utc::now().timestamp())
    }

    /// The counters so far, with the most requests one caller had in flight.
    pub(crate) fn stats(&self) -> Stats {
        let peak = self.secondary.peak();
        Stats { peak_in_flight: u64::from(peak), ..self.lock().stats.clone() }
    }

    /// Forgets deliveries older than the retention.
    pub(crate) fn purge(&self) {
        let retention = chrono::Duration::from_std(self.faults.retention()).unwrap_or(chrono::Duration::days(3));
        self.lock().purge(Utc::now() - retention);
    }

    // What the handle's methods and the control surface both do: one body for each.

    /// See [`FakeGitHub::add_token`].
    pub(crate) fn add_token(&self, token: &str, scopes: &str) {
        let scopes = Some(scopes.to_string());
        self.lock().tokens.insert(token.to_string(), state::Token { scopes, expires_at: None });
    }

    /// See [`FakeGitHub::add_repo`].
    pub(crate) fn add_repo(&self, full_name: &str) -> u64 {
        let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
        self.lock().repo(owner, name).id
    }

    /// See [`FakeGitHub::add_org`].
    pub(crate) fn add_org(&self, org: &str) {
        self.lock().account(org, true);
    }

    /// See [`FakeGitHub::add_hook`].
    pub(crate) fn add_hook(&self, owner: &str, hook: &HookSpec) -> u64 {
        let mut state = self.lock();
        let scope = match owner.split_once('/') {
            Some((login, name)) => Scope::Repo(state.repo(login, name).id),
            None => Scope::Org(state.account(owner, true).login.to_ascii_lowercase()),
        };
        state.insert_hook(scope, hook)
    }

    /// The deliveries of hook `hook_id` still retained, oldest first; `None` for an unknown hook.
    pub(crate) fn deliveries(&self, hook_id: u64) -> Option<Vec<RecordedDelivery>> {
        self.purge();
        self.lock().hooks.get(&hook_id).map(|hook| hook.deliveries.clone())
    }

    /// See [`FakeGitHub::set_rate_limit`].
    pub(crate) fn set_rate_limit(&self, per_hour: u32) {
        self.lock().per_hour = per_hour;
    }

    /// See [`FakeGitHub::age`].
    pub(crate) fn age(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut state = self.lock();
        for hook in state.hooks.values_mut() {
            hook.created_at = hook.created_at.checked_sub_signed(by).unwrap_or(hook.created_at);
            hook.updated_at = hook.updated_at.checked_sub_signed(by).unwrap_or(hook.updated_at);
            for delivery in &mut hook.deliveries {
                delivery.delivered_at = delivery.delivered_at.checked_sub_signed(by).unwrap_or(delivery.delivered_at);
            }
        }
    }
}

impl FakeGitHub {
    /// Starts a fake on `127.0.0.1:0`.
    ///
    /// # Panics
    /// When no local port can be bound, which only a broken test machine does.
    pub async fn start() -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding 127.0.0.1:0 for the fake GitHub");
        Self::serve(listener).expect("a freshly bound listener has a local address")
    }

    /// Starts a fake on `127.0.0.1:0` that serves under `prefix`, as GitHub Enterprise Server serves
    /// its API under `/api/v3`: every path, every URL in a body and every `Link` carries the prefix,
    /// the control surface is `{api_url}_fake/`, and a path outside the prefix answers 404.
    ///
    /// # Panics
    /// When no local port can be bound, or `prefix` is not a path such as `/api/v3`.
    pub async fn start_with_prefix(prefix: &str) -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding 127.0.0.1:0 for the fake GitHub");
        Self::serve_with_prefix(listener, prefix, CancellationToken::new()).expect("a path prefix such as /api/v3")
    }

    /// Serves on `listener` (from the current Tokio runtime) until the handle is dropped.
    pub fn serve(listener: TcpListener) -> io::Result<FakeGitHub> {
        Self::serve_until(listener, CancellationToken::new())
    }

    /// Serves on `listener` until `shutdown` is cancelled or the handle is dropped.
    pub fn serve_until(listener: TcpListener, shutdown: CancellationToken) -> io::Result<FakeGitHub> {
        Self::serve_with_prefix(listener, "", shutdown)
    }

    /// Like [`FakeGitHub::serve_until`], under the path `prefix` (such as `/api/v3`; empty or `/` for
    /// none), as [`FakeGitHub::start_with_prefix`] describes. A prefix with a query, a fragment or
    /// an empty segment is refused.
    pub fn serve_with_prefix(
        listener: TcpListener,
        prefix: &str,
        shutdown: CancellationToken,
    ) -> io::Result<FakeGitHub> {
        let prefix = normalize_prefix(prefix)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad path prefix {prefix:?}")))?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
        let host = if addr.is_ipv6() && !addr.ip().is_unspecified() { format!("[{host}]") } else { host };
        let api_url = Url::parse(&format!("http://{host}:{}{prefix}/", addr.port())).map_err(io::Error::other)?;
        let http = github::http_client()
            .timeout(deliver::DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(io::Error::other)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new()),
            faults: Faults::default(),
            http,
            api_url,
            prefix,
            requests: AtomicU64::new(1),
            secondary: secondary::Secondary::default(),
        });
        tokio::spawn(server::run(listener, Arc::clone(&inner), shutdown.clone()));
        Ok(FakeGitHub { inner, shutdown, addr })
    }

    /// The API root, such as `http://127.0.0.1:PORT/` (with a prefix, `http://127.0.0.1:PORT/api/v3/`).
    pub fn api_url(&self) -> Url {
        self.inner.api_url.clone()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A built-in always-200 hook URL (`{api_url}_fake/blackhole`), like hookfwd's blackhole.
    pub fn blackhole_url(&self) -> String {
        format!("{}_fake/blackhole", self.inner.api_url)
    }

    /// Accepts `token` with these classic scopes (`X-OAuth-Scopes`, e.g. `"repo, admin:repo_hook"`).
    pub fn add_token(&self, token: &str, scopes: &str) {
        self.inner.add_token(token, scopes);
    }

    /// Revokes `token`: it answers 401 from now on.
    pub fn revoke_token(&self, token: &str) {
        self.inner.lock().tokens.remove(token);
    }

    /// Adds the repository `owner/repo` (and its owner, as a user unless it is an organization); returns its id.
    /// Adding it again returns the same id. A name without a slash is taken as `name/name`.
    pub fn add_repo(&self, full_name: &str) -> u64 {
        self.inner.add_repo(full_name)
    }

    /// Adds the organization `org` (or makes an existing user one).
    pub fn add_org(&self, org: &str) {
        self.inner.add_org(org);
    }

    /// Adds a hook to `owner` (`o/r`, created if new, or an organization name); returns the hook id.
    /// Unlike creating one through the API, this sends no `ping`.
    pub fn add_hook(&self, owner: &str, hook: HookSpec) -> u64 {
        self.inner.add_hook(owner, &hook)
    }

    /// Delivers `payload` as `event` to every matching active hook of `owner`: the repository's, its
    /// organization's, and every registered App's. Returns the new delivery ids (ascending); an
    /// unknown repository has no hooks and gets none.
    pub async fn emit(&self, owner: &str, event: &str, payload: serde_json::Value) -> Vec<u64> {
        self.inner.emit(owner, event, payload).await
    }

    /// Emits many events, 64 at a time; returns every new delivery id, ascending. Quick enough to
    /// seed a backlog of 10,000 deliveries to a local always-200 URL.
    pub async fn emit_many(&self, owner: &str, event: &str, payloads: Vec<serde_json::Value>) -> Vec<u64> {
        let limit = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = tokio::task::JoinSet::new();
        for payload in payloads {
            let inner = Arc::clone(&self.inner);
            let (owner, event, limit) = (owner.to_string(), event.to_string(), Arc::clone(&limit));
            tasks.spawn(async move {
                // The semaphore is never closed, so acquiring only waits.
                let _permit = limit.acquire_owned().await.ok();
                inner.emit(&owner, &event, payload).await
            });
        }
        let mut ids: Vec<u64> = tasks.join_all().await.into_iter().flatten().collect();
        ids.sort_unstable();
        ids
    }

    /// Emits this project's sample payload for `event` (see `github::samples`); `None` when there is none.
    pub async fn emit_sample(&self, owner: &str, event: &str) -> Option<Vec<u64>> {
        let payload = serde_json::from_str(github::samples::sample(event)?).ok()?;
        Some(self.emit(owner, event, payload).await)
    }

    /// The deliveries of hook `hook_id` still retained, oldest first. For the App hook use
    /// [`FakeGitHub::app_hook_id`].
    pub fn deliveries(&self, hook_id: u64) -> Vec<RecordedDelivery> {
        self.inner.deliveries(hook_id).unwrap_or_default()
    }

    /// A cloneable handle on the faults.
    pub fn faults(&self) -> Faults {
        self.inner.faults.clone()
    }

    /// Sets every token's primary budget per hour (default 5000).
    pub fn set_rate_limit(&self, per_hour: u32) {
        self.inner.set_rate_limit(per_hour);
    }

    /// Whether creating a hook through the API pings it, as GitHub does (default true).
    pub fn set_ping_on_create(&self, ping: bool) {
        self.inner.lock().ping_on_create = ping;
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Sets GitHub's secondary rate limits (on by default with GitHub's figures: 900 points a
    /// minute per endpoint, 100 requests at once), and forgets what was spent.
    pub fn set_secondary_limits(&self, limits: SecondaryLimits) {
        self.inner.secondary.set(limits);
    }

    /// Registers a GitHub App: its RS256 public key verifies JWTs for `/app/*`, and its single
    /// installation covers every repository. Its hook starts active for every event, pointing at
    /// [`FakeGitHub::blackhole_url`] (change it with `PATCH /app/hook/config` or [`FakeGitHub::set_app_hook`]).
    ///
    /// # Panics
    /// When `public_key_pem` is not an RSA public key in PEM: a mistake in the test itself.
    pub fn add_app(&self, app_id: u64, public_key_pem: &str, installation_id: u64) {
        let key = api::auth::rsa_public_key(public_key_pem).expect("add_app takes an RSA public key in PEM");
        let blackhole = self.blackhole_url();
        let mut state = self.inner.lock();
        let hook_id = match state.apps.get(&app_id) {
            Some(app) => app.hook_id,
            None => state.insert_hook(Scope::App(app_id), &HookSpec::new(blackhole)),
        };
        state.apps.insert(app_id, state::App { id: app_id, key, installation_id, hook_id });
    }

    /// Points App `app_id`'s hook elsewhere (url, secret, content type, events, active).
    pub fn set_app_hook(&self, app_id: u64, spec: HookSpec) {
        let mut state = self.inner.lock();
        let Some(hook_id) = state.apps.get(&app_id).map(|app| app.hook_id) else { return };
        if let Some(hook) = state.hooks.get_mut(&hook_id) {
            hook.url = spec.url;
            hook.events = spec.events;
            hook.secret = spec.secret.filter(|secret| !secret.is_empty());
            hook.content_type = spec.content_type;
            hook.active = spec.active;
            hook.updated_at = Utc::now();
        }
    }

    /// The internal hook id of App `app_id`'s hook, for [`FakeGitHub::deliveries`].
    pub fn app_hook_id(&self, app_id: u64) -> Option<u64> {
        self.inner.lock().apps.get(&app_id).map(|app| app.hook_id)
    }

    /// Moves every recorded delivery's `delivered_at`, and every hook's `created_at` and `updated_at`, back by
    /// `by`, to test retention, `--since` and unused hooks without waiting.
    pub fn age(&self, by: Duration) {
        self.inner.age(by);
    }
}

/// `/api/v3` from `api/v3/`, `/api/v3` or `/api/v3/`; empty from `` or `/`; `None` when it is not
/// a plain path of non-empty, unreserved segments.
fn normalize_prefix(prefix: &str) -> Option<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Some(String::new());
    }
    let plain = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
    };
    trimmed.split('/').all(plain).then(|| format!("/{trimmed}"))
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_prefix;

    #[test]
    fn a_prefix_is_one_leading_slash_and_no_trailing_one() {
        assert_eq!(normalize_prefix("").as_deref(), Some(""));
        assert_eq!(normalize_prefix("/").as_deref(), Some(""));
        for prefix in ["/api/v3", "api/v3", "/api/v3/"] {
            assert_eq!(normalize_prefix(prefix).as_deref(), Some("/api/v3"), "{prefix}");
        }
        for bad in ["/api//v3", "/api/v3?x=1", "/a b", "/api/../v3", "/api#v3"] {
            assert_eq!(normalize_prefix(bad), None, "{bad}");
        }
    }
}

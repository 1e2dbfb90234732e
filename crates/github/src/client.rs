//! The HTTP client: authentication, pagination, conditional requests, rate limits, retries.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::auth::AppSigner;
use crate::paging::{Listing, NextPage, Page, Scan, read_items};
use crate::{Auth, Delivery, Error, Hook, HookRef, HookUpdate, NewHook, Owner, Result, Secret};

/// The most bytes read of one answer about hooks or a list page: a page of 100 hooks or delivery
/// items is well under a megabyte, so this is only reached by a broken or hostile answer.
pub const LIST_LIMIT: u64 = 32 * 1024 * 1024;
/// The most bytes read of one delivery: GitHub caps payloads at 25 MB, which JSON escaping can
/// double or more, plus its headers.
pub const DELIVERY_LIMIT: u64 = 100 * 1024 * 1024;
/// GitHub's rate-limit window. No rate limit is waited out for longer (plus up to a minute of jitter): a
/// reset or `retry-after` further ahead is a broken header, not a reason to stop for years.
pub const RATE_WINDOW: Duration = Duration::from_secs(3600);
/// Up to this much is added to a wait cut down to [`RATE_WINDOW`], so that many clients do not
/// all come back in the same second.
const WAIT_JITTER: Duration = Duration::from_secs(60);

/// How to reach GitHub.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API root: `https://api.github.com`, `https://HOST/api/v3`, or the fake.
    pub api_url: Url,
    /// How to authenticate.
    pub auth: Auth,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The rate budget as of the last response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed per window.
    pub limit: Option<u32>,
    /// Calls left in this window.
    pub remaining: Option<u32>,
    /// When the window resets.
    pub reset_at: Option<DateTime<Utc>>,
}

/// A rate-limit wait the client is in, for a status line: every call holds off until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// When calls resume.
    pub until: DateTime<Utc>,
    /// Why, in a few words: `GitHub's rate limit is exhausted`.
    pub reason: String,
}

/// How long to wait between retries, and for how long to wait out rate limits.
///
/// The defaults follow GitHub's guidance; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff after a server error or a transport failure.
    pub base: Duration,
    /// The longest backoff between two attempts.
    pub cap: Duration,
    /// Attempts in all (the first one included) before a server error or transport failure is returned.
    pub attempts: u32,
    /// The wait after a secondary rate limit that gives no `retry-after` (GitHub asks for at least a minute).
    pub secondary_wait: Duration,
    /// The longest wait after consecutive secondary rate limits.
    pub secondary_cap: Duration,
    /// Waits for a rate limit longer than this fail with [`Error::RateLimited`] instead; `None` always waits.
    pub max_rate_limit_wait: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            attempts: 5,
            secondary_wait: Duration::from_secs(60),
            secondary_cap: Duration::from_secs(15 * 60),
            max_rate_limit_wait: None,
        }
    }
}

/// A GitHub REST client. Cheap to clone; clones share the ETag cache and rate budget.
#[derive(Clone)]
pub struct Client {
    /// State shared by every clone.
    inner: Arc<Inner>,
    /// This handle's retry and wait policy.
    policy: RetryPolicy,
}

/// What clones share.
struct Inner {
    /// The HTTP client, with the default headers and timeout.
    http: reqwest::Client,
    /// The API root as configured.
    api_url: Url,
    /// The API root without a trailing slash, to which paths are appended.
    base: String,
    /// The path part of `base`, such as `/api/v3` on GitHub Enterprise Server (empty on github.com).
    base_path: String,
    /// How requests are authorized.
    auth: AuthState,
    /// The last ETag of each list URL, for `If-None-Match`.
    etags: Mutex<HashMap<String, String>>,
    /// The rate budget as of the last response.
    rate: Mutex<RateLimit>,
    /// Until when every call holds off because GitHub rate-limited one.
    pause: Mutex<Option<DateTime<Utc>>>,
    /// Secondary rate limits in a row, for exponential backoff.
    secondary_streak: AtomicU32,
    /// The wait in progress, if any, for whoever shows it to the user.
    waits: tokio::sync::watch::Sender<Option<Wait>>,
    /// Told about every answer, for metrics; set at most once.
    observer: std::sync::OnceLock<crate::Observer>,
}

/// The credentials in a ready-to-use form.
enum AuthState {
    /// A token sent as is.
    Token(Secret),
    /// A GitHub App: JWTs minted on demand, and a cached installation token.
    App {
        /// Mints the JWTs.
        signer: AppSigner,
        /// The installation token, once exchanged; the lock makes concurrent calls share one exchange.
        installation: tokio::sync::Mutex<Option<InstallationToken>>,
    },
}

/// An installation token and when it stops working.
struct InstallationToken {
    /// The token.
    token: Secret,
    /// When GitHub stops accepting it.
    expires_at: DateTime<Utc>,
}

/// How long before `expires_at` an installation token is replaced.
const INSTALLATION_TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The GitHub REST API version this client speaks.
const API_VERSION: &str = "2022-11-28";

/// One API call to make.
struct Call<'a> {
    /// The HTTP method.
    method: Method,
    /// The absolute URL.
    url: Url,
    /// A JSON body, if any.
    body: Option<Vec<u8>>,
    /// What is being accessed, for error messages: `the hooks of octo/hello`.
    what: &'a str,
    /// Whether repeating the call after it may have been processed is harmless.
    idempotent: bool,
    /// The ETag to send in `If-None-Match`.
    etag: Option<String>,
    /// The most bytes of the answer that are read.
    limit: u64,
}

impl<'a> Call<'a> {
    fn new(method: Method, url: Url, what: &'a str) -> Self {
        let idempotent = !matches!(method, Method::POST);
        Self { method, url, body: None, what, idempotent, etag: None, limit: LIST_LIMIT }
    }
}

/// A response that was read whole.
struct Reply {
    /// The status, 2xx or 304.
    status: StatusCode,
    /// The response headers.
    headers: HeaderMap,
    /// The body bytes, exactly as received.
    body: Vec<u8>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            AuthState::Token(_) => "token".to_string(),
            AuthState::App { signer, .. } => format!("GitHub App {}", signer.app_id),
        };
        f.debug_struct("Client").field("api_url", &self.inner.api_url.as_str()).field("auth", &auth).finish()
    }
}

impl Client {
    /// Builds a client.
    pub fn new(config: Config) -> Result<Self> {
        let api_url = checked_api_url(config.api_url)?;
        let base = api_url.as_str().trim_end_matches('/').to_string();
        let base_path = api_url.path().trim_end_matches('/').to_string();
        let auth = match &config.auth {
            Auth::Token(token) => {
                bearer(token)?;
                AuthState::Token(token.clone())
            }
            Auth::App(app) => {
                AuthState::App { signer: AppSigner::new(app)?, installation: tokio::sync::Mutex::new(None) }
            }
        };
        let timeout = if config.timeout.is_zero() { Duration::from_secs(30) } else { config.timeout };
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
        headers.insert("x-github-api-version", HeaderValue::from_static(API_VERSION));
        let http = reqwest::Client::builder()
            .user_agent(concat!("hookfwd/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .tls_certs_merge(crate::builtin_roots())
            .build()
            .map_err(|source| Error::Unreachable { url: base.clone(), source })?;
        let inner = Inner {
            http,
            api_url,
            base,
            base_path,
            auth,
            etags: Mutex::default(),
            rate: Mutex::default(),
            pause: Mutex::default(),
            secondary_streak: AtomicU32::new(0),
            waits: tokio::sync::watch::Sender::new(None),
            observer: std::sync::OnceLock::new(),
        };
        Ok(Self { inner: Arc::new(inner), policy: RetryPolicy::default() })
    }

    /// This client with another retry and wait policy. The ETag cache and rate budget stay shared.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The retry and wait policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Tells `observer` about every answer from now on, for this client and its clones.
    /// Only the first observer is kept; `false` if one was set already.
    pub fn observe(&self, observer: crate::Observer) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// Lists every hook of `owner`, following pagination.
    pub async fn list_hooks(&self, owner: &Owner) -> Result<Vec<Hook>> {
        let what = hooks_of(owner);
        let mut url = self.url(&format!("{}?per_page=100", owner.hooks_path()))?;
        let mut hooks = Vec::new();
        let mut scan = Scan::start(&what, &url);
        loop {
            let reply = self.execute(&Call::new(Method::GET, url.clone(), &what)).await?;
            let page: Vec<Hook> = decode(&reply.body, &what)?;
            let last = page.is_empty();
            hooks.extend(page);
            match next_link(&reply.headers, &url) {
                Some(next) if !last => {
                    scan.check(&next)?;
                    scan = scan.visited(&next);
                    url = self.own_url(next)?;
                }
                _ => return Ok(hooks),
            }
        }
    }

    /// Gets one hook.
    pub async fn get_hook(&self, hook: &HookRef) -> Result<Hook> {
        let what = self.hook_only(hook)?;
        let reply = self.execute(&Call::new(Method::GET, self.url(&hook.path())?, &what)).await?;
        decode(&reply.body, &what)
    }

    /// Creates a hook on `owner`.
    pub async fn create_hook(&self, owner: &Owner, hook: &NewHook) -> Result<Hook> {
        let what = hooks_of(owner);
        let mut call = Call::new(Method::POST, self.url(&owner.hooks_path())?, &what);
        call.body = Some(to_json(hook));
        let reply = self.execute(&call).await?;
        decode(&reply.body, &what)
    }

    /// Updates a hook.
    pub async fn update_hook(&self, hook: &HookRef, update: &HookUpdate) -> Result<Hook> {
        let what = self.hook_only(hook)?;
        let mut call = Call::new(Method::PATCH, self.url(&hook.path())?, &what);
        call.body = Some(to_json(update));
        let reply = self.execute(&call).await?;
        decode(&reply.body, &what)
    }

    /// Deletes a hook. Deleting a hook that is already gone after a retry counts as success.
    pub async fn delete_hook(&self, hook: &HookRef) -> Result<()> {
        let what = self.hook_only(hook)?;
        self.execute(&Call::new(Method::DELETE, self.url(&hook.path())?, &what)).await?;
        Ok(())
    }

    /// Asks GitHub to send a `ping` delivery to the hook.
    pub async fn ping_hook(&self, hook: &HookRef) -> Result<()> {
        let what = self.hook_only(hook)?;
        self.execute(&Call::new(Method::POST, self.url(&format!("{}/pings", hook.path()))?, &what)).await?;
        Ok(())
    }

    /// Lists the newest page of deliveries with `If-None-Match`, so an unchanged list answers 304 for free.
    ///
    /// `per_page` is kept between 1 and 100, GitHub's maximum.
    pub async fn list_deliveries(&self, hook: &HookRef, per_page: u8) -> Result<Listing> {
        let what = format!("the deliveries of {hook}");
        let per_page = per_page.clamp(1, 100);
        let url = self.url(&format!("{}/deliveries?per_page={per_page}", hook.path()))?;
        let key = url.to_string();
        let mut call = Call::new(Method::GET, url.clone(), &what);
        call.etag = lock(&self.inner.etags).get(&key).cloned();
        let reply = self.execute(&call).await?;
        if reply.status == StatusCode::NOT_MODIFIED {
            return Ok(Listing::NotModified);
        }
        let page = self.page(&reply, &url, Scan::start(&what, &url))?;
        let etag = reply.headers.get(header::ETAG).and_then(|value| value.to_str().ok());
        let mut etags = lock(&self.inner.etags);
        match etag {
            Some(etag) => etags.insert(key, etag.to_string()),
            None => etags.remove(&key),
        };
        Ok(Listing::Page(page))
    }

    /// Follows a `rel="next"` link to an older page.
    ///
    /// A link to a page this scan (the walk from the first page) already read, or past
    /// [`crate::MAX_PAGES`] pages, ends the scan with [`Error::PagingLoop`] or
    /// [`Error::TooManyPages`], so no caller can spin.
    pub async fn next_deliveries(&self, next: &NextPage) -> Result<Page> {
        next.scan.check(&next.url)?;
        let url = self.own_url(next.url.clone())?;
        let reply = self.execute(&Call::new(Method::GET, url.clone(), next.scan.what())).await?;
        self.page(&reply, &url, next.scan.visited(&url))
    }

    /// Gets one delivery with its request headers and payload.
    pub async fn get_delivery(&self, hook: &HookRef, id: u64) -> Result<Delivery> {
        let what = format!("delivery {id} of {hook}");
        let url = self.url(&format!("{}/deliveries/{id}", hook.path()))?;
        let mut call = Call::new(Method::GET, url, &what);
        call.limit = DELIVERY_LIMIT;
        let reply = self.execute(&call).await?;
        // From the bytes, so that the payload's RawValue keeps them exactly.
        decode(&reply.body, &what)
    }

    /// Asks GitHub to redeliver: a new delivery with the same guid and `redelivery: true`.
    pub async fn redeliver(&self, hook: &HookRef, id: u64) -> Result<()> {
        let what = format!("delivery {id} of {hook}");
        let url = self.url(&format!("{}/deliveries/{id}/attempts", hook.path()))?;
        self.execute(&Call::new(Method::POST, url, &what)).await?;
        Ok(())
    }

    /// The rate budget as of the last response.
    pub fn rate_limit(&self) -> RateLimit {
        *lock(&self.inner.rate)
    }

    /// The API root.
    pub fn api_url(&self) -> &Url {
        &self.inner.api_url
    }

    /// When calls resume, while the client is waiting out a rate limit; for a status line.
    pub fn waiting_until(&self) -> Option<DateTime<Utc>> {
        lock(&self.inner.pause).filter(|until| *until > Utc::now())
    }

    /// Every rate-limit wait as it begins (`Some`) and ends (`None`), shared by every clone.
    pub fn waits(&self) -> tokio::sync::watch::Receiver<Option<Wait>> {
        self.inner.waits.subscribe()
    }

    /// Forgets the ETags of `hook`'s delivery lists, so that the next list answers a full page
    /// even if nothing changed: for a caller that could not handle the last page it got.
    pub fn forget_etags(&self, hook: &HookRef) {
        let prefix = format!("{}{}/deliveries?", self.inner.base, hook.path());
        lock(&self.inner.etags).retain(|url, _| !url.starts_with(&prefix));
    }

    /// `path` (starting with `/`) under the API root, keeping a GHES `/api/v3` prefix.
    fn url(&self, path: &str) -> Result<Url> {
        let text = format!("{}{path}", self.inner.base);
        Url::parse(&text).map_err(|_| Error::ApiUrl(text))
    }

    /// `url` if it lies under the API root, so that the token is never sent elsewhere.
    fn own_url(&self, url: Url) -> Result<Url> {
        let api = &self.inner.api_url;
        let under_root =
            url.path() == self.inner.base_path || url.path().starts_with(&format!("{}/", self.inner.base_path));
        if url.origin() == api.origin() && under_root && url.username().is_empty() && url.password().is_none() {
            Ok(url)
        } else {
            Err(Error::ApiUrl(url.to_string()))
        }
    }

    /// `what` for a call that only a repository or organization hook supports.
    fn hook_only(&self, hook: &HookRef) -> Result<String> {
        match hook {
            HookRef::App => Err(Error::Unsupported { what: hook.to_string() }),
            _ => Ok(hook.to_string()),
        }
    }

    /// A page of deliveries from a 200 reply to `url`, read as part of `scan`.
    fn page(&self, reply: &Reply, url: &Url, scan: Scan) -> Result<Page> {
        let (items, skipped) = read_items(&reply.body, scan.what())?;
        // GitHub answers a link even to an empty page; an empty page ends the list.
        let empty = items.is_empty() && skipped.is_empty();
        let next = if empty { None } else { next_link(&reply.headers, url).map(|url| NextPage { url, scan }) };
        Ok(Page { items, next, skipped })
    }

    /// The path of `url` below the API root, such as `/repos/o/r/hooks`.
    fn api_path<'u>(&self, url: &'u Url) -> &'u str {
        url.path().strip_prefix(self.inner.base_path.as_str()).unwrap_or(url.path())
    }

    /// Makes one call: holds off while rate-limited, authorizes, retries what is safe, and maps errors.
    ///
    /// Boxed with a named type because it calls itself (through the installation-token exchange).
    fn execute<'a>(&'a self, call: &'a Call<'a>) -> Pin<Box<dyn Future<Output = Result<Reply>> + Send + 'a>> {
        Box::pin(self.run_call(call))
    }

    /// [`Client::execute`]'s body.
    async fn run_call(&self, call: &Call<'_>) -> Result<Reply> {
        let mut failures = 0u32;
        let mut reauthorized = false;
        loop {
            self.hold_off().await;
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), call.url.clone())
                .header(header::AUTHORIZATION, self.authorization(&call.url).await?);
            let validator = call.etag.as_deref().and_then(|etag| HeaderValue::from_str(etag).ok());
            let validated = validator.is_some();
            if let Some(etag) = validator {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(body) = &call.body {
                request = request.header(header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let received = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match read_capped(response, call.limit).await {
                        Ok(Some(body)) => Ok(Reply { status, headers, body }),
                        Ok(None) => return Err(Error::TooLarge { what: call.what.to_string(), limit: call.limit }),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            if let Some(observer) = self.inner.observer.get() {
                let status = received.as_ref().map_or_else(|_| "error".to_string(), |r| r.status.as_u16().to_string());
                observer(&crate::endpoint(call.method.as_str(), self.api_path(&call.url)), &status);
            }
            let reply = match received {
                Ok(reply) => reply,
                Err(error) => {
                    // A connection that was never made carried nothing, so any call may be repeated.
                    let retry = error.is_connect() || call.idempotent;
                    if retry && failures + 1 < self.policy.attempts {
                        let wait = backoff(&self.policy, failures);
                        failures += 1;
                        tracing::warn!(what = call.what, attempt = failures, wait_ms = wait.as_millis() as u64,
                            error = %error, "could not reach GitHub; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(Error::Unreachable { url: self.inner.base.clone(), source: error.without_url() });
                }
            };
            if let Some(rate) = parse_rate_limit(&reply.headers, Utc::now()) {
                *lock(&self.inner.rate) = rate;
            }
            let status = reply.status;
            // A 304 answers a validator; without one it is a broken answer, not "nothing new".
            if status.is_success() || (status == StatusCode::NOT_MODIFIED && validated) {
                self.inner.secondary_streak.store(0, Ordering::Relaxed);
                return Ok(reply);
            }
            if let Some(throttle) = throttle(status, &reply.headers, &reply.body) {
                self.wait_out(throttle, call.what).await?;
                continue;
            }
            let installation_call = !is_app_path(self.api_path(&call.url));
            if status == StatusCode::UNAUTHORIZED
                && installation_call
                && !reauthorized
                && self.drop_installation_token().await
            {
                reauthorized = true;
                continue;
            }
            if status.is_server_error() || status == StatusCode::NOT_MODIFIED {
                if call.idempotent && failures + 1 < self.policy.attempts {
                    let wait = backoff(&self.policy, failures);
                    failures += 1;
                    tracing::warn!(
                        what = call.what,
                        status = status.as_u16(),
                        attempt = failures,
                        wait_ms = wait.as_millis() as u64,
                        "GitHub answered a server error; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(Error::Server { status: status.as_u16(), what: call.what.to_string() });
            }
            if status == StatusCode::NOT_FOUND && call.method == Method::DELETE && failures > 0 {
                // An earlier attempt may have deleted it before its answer was lost.
                return Ok(reply);
            }
            return Err(self.status_error(call, status, &reply.headers, &reply.body));
        }
    }

    /// Waits until the rate limit that `throttle` describes is over, and makes every clone wait too.
    async fn wait_out(&self, throttle: Throttle, what: &str) -> Result<()> {
        let now = Utc::now();
        let streak = match throttle {
            Throttle::Primary { .. } => 0,
            Throttle::Secondary { .. } => self.inner.secondary_streak.fetch_add(1, Ordering::Relaxed),
        };
        let wait = throttle_wait(&throttle, now, streak, &self.policy);
        let until = chrono::TimeDelta::from_std(wait)
            .ok()
            .and_then(|delta| now.checked_add_signed(delta))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if self.policy.max_rate_limit_wait.is_some_and(|max| wait > max) {
            return Err(Error::RateLimited { reset_at: until });
        }
        {
            let mut pause = lock(&self.inner.pause);
            *pause = Some(pause.map_or(until, |other| other.max(until)));
        }
        let reason = match throttle {
            Throttle::Primary { .. } => {
                tracing::warn!(what, until = %until, wait_secs = wait.as_secs(),
                    "the GitHub rate limit is exhausted; waiting for it to reset");
                "GitHub's rate limit is exhausted"
            }
            Throttle::Secondary { .. } => {
                tracing::warn!(what, until = %until, wait_secs = wait.as_secs(),
                    in_a_row = streak + 1, "GitHub's secondary rate limit was hit; waiting");
                "GitHub's secondary rate limit was hit"
            }
        };
        let announced = Wait { until, reason: reason.to_string() };
        self.inner.waits.send_replace(Some(announced.clone()));
        tokio::time::sleep(wait).await;
        // Only this wait's own announcement is taken back; a longer one that began meanwhile stays.
        self.inner.waits.send_if_modified(|current| {
            let ours = current.as_ref() == Some(&announced);
            if ours {
                *current = None;
            }
            ours
        });
        Ok(())
    }

    /// Sleeps while another call has found the API rate-limited.
    async fn hold_off(&self) {
        let until = *lock(&self.inner.pause);
        if let Some(wait) = until.and_then(|until| (until - Utc::now()).to_std().ok()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// The `Authorization` header for `url`: the token, the App's JWT, or an installation token.
    async fn authorization(&self, url: &Url) -> Result<HeaderValue> {
        let token = match &self.inner.auth {
            AuthState::Token(token) => token.clone(),
            AuthState::App { signer, .. } if is_app_path(self.api_path(url)) => signer.jwt(Utc::now())?,
            AuthState::App { signer, installation } => self.installation_token(signer, installation).await?,
        };
        bearer(&token)
    }

    /// The cached installation token, exchanged anew when it is about to expire.
    async fn installation_token(
        &self,
        signer: &AppSigner,
        installation: &tokio::sync::Mutex<Option<InstallationToken>>,
    ) -> Result<Secret> {
        let mut cached = installation.lock().await;
        if let Some(current) =
            cached.as_ref().filter(|current| current.expires_at - INSTALLATION_TOKEN_MARGIN > Utc::now())
        {
            return Ok(current.token.clone());
        }
        let app = signer.app_id;
        let Some(id) = signer.installation_id else {
            return Err(Error::AppCredentials {
                reason: format!(
                    "App {app} needs an installation id to act on repositories and organizations; give the id of its installation"
                ),
            });
        };
        let what = format!("installation {id} of App {app}");
        let mut call = Call::new(Method::POST, self.url(&format!("/app/installations/{id}/access_tokens"))?, &what);
        // Minting a second token is harmless.
        call.idempotent = true;
        let reply = self.execute(&call).await.map_err(|error| match error {
            Error::NotFound { .. } => {
                Error::AppCredentials { reason: format!("{what} was not found; check the installation id") }
            }
            other => other,
        })?;
        /// `POST /app/installations/{id}/access_tokens`'s answer; no Debug, it holds a token.
        #[derive(Deserialize)]
        struct AccessToken {
            token: String,
            expires_at: DateTime<Utc>,
        }
        // The parse error is not shown: it could quote the token.
        let access: AccessToken = serde_json::from_slice(&reply.body).map_err(|_| Error::AppCredentials {
            reason: format!("GitHub's answer with the token of {what} could not be read"),
        })?;
        let token = Secret::new(access.token);
        *cached = Some(InstallationToken { token: token.clone(), expires_at: access.expires_at });
        Ok(token)
    }

    /// Forgets the installation token after a 401; true if there was one to forget.
    async fn drop_installation_token(&self) -> bool {
        match &self.inner.auth {
            AuthState::App { installation, .. } => installation.lock().await.take().is_some(),
            AuthState::Token(_) => false,
        }
    }

    /// The typed error for a 4xx (or unexpected) status.
    fn status_error(&self, call: &Call<'_>, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
        let what = call.what.to_string();
        let path = self.api_path(&call.url);
        match status {
            StatusCode::UNAUTHORIZED => match &self.inner.auth {
                AuthState::App { signer, .. } if is_app_path(path) => Error::AppCredentials {
                    reason: format!(
                        "GitHub rejected the JWT of App {} (401); check the App id and that the private key is the App's",
                        signer.app_id
                    ),
                },
                AuthState::Token(_) if is_app_path(path) => Error::AppCredentials {
                    reason: "the GitHub App hook needs the App's id and private key, not a token (401)".to_string(),
                },
                _ => Error::Unauthorized,
            },
            StatusCode::FORBIDDEN => {
                let scopes = headers.get("x-oauth-scopes").and_then(|value| value.to_str().ok()).map(str::to_string);
                Error::Forbidden { what, needed: needed_permission(path, &call.method), scopes }
            }
            StatusCode::NOT_FOUND => Error::NotFound { what },
            StatusCode::UNPROCESSABLE_ENTITY => Error::Unprocessable { what, message: validation_message(body) },
            _ => Error::Status {
                status: status.as_u16(),
                what,
                message: github_message(body)
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("unexpected status").to_string()),
            },
        }
    }
}

/// Locks a mutex, going on after a panic elsewhere: the data (ETags, counters) stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `api_url` if it is an http(s) URL that paths can be appended to.
fn checked_api_url(mut api_url: Url) -> Result<Url> {
    let usable = matches!(api_url.scheme(), "http" | "https")
        && api_url.host_str().is_some_and(|host| !host.is_empty())
        && !api_url.cannot_be_a_base()
        && api_url.query().is_none()
        && api_url.fragment().is_none()
        && api_url.username().is_empty()
        && api_url.password().is_none();
    if usable {
        Ok(api_url)
    } else {
        // Credentials in the URL are not repeated in the message.
        let _ = api_url.set_password(None);
        let _ = api_url.set_username("");
        Err(Error::ApiUrl(api_url.to_string()))
    }
}

/// `Bearer <token>`, marked sensitive so that no Debug output shows it.
fn bearer(token: &Secret) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| Error::MalformedToken)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whether an API path is authenticated with the App's JWT rather than an installation token.
fn is_app_path(path: &str) -> bool {
    path == "/app" || path.starts_with("/app/")
}

/// `the hooks of octo/hello` or `the hooks of org octo`.
fn hooks_of(owner: &Owner) -> String {
    match owner {
        Owner::Repo { .. } => format!("the hooks of {owner}"),
        Owner::Org { org } => format!("the hooks of org {org}"),
    }
}

/// Serializes a request body.
fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    // NewHook and HookUpdate hold only strings, booleans, lists and JSON values: serializing cannot fail.
    serde_json::to_vec(value).expect("hook bodies always serialize")
}

/// Parses a JSON answer.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|source| Error::Decode { what: what.to_string(), source })
}

/// The permission a 403 on `path` asks for, for classic and fine-grained tokens.
fn needed_permission(path: &str, method: &Method) -> String {
    let access = if *method == Method::GET { "read" } else { "write" };
    if path.starts_with("/repos/") || path.starts_with("/repositories/") {
        format!("the `admin:repo_hook` scope (classic token) or the \"Webhooks\" repository permission ({access})")
    } else if path.starts_with("/orgs/") || path.starts_with("/organizations/") {
        format!("the `admin:org_hook` scope (classic token) or the \"Webhooks\" organization permission ({access})")
    } else if is_app_path(path) {
        "a JWT of the GitHub App, made from its id and private key".to_string()
    } else {
        "a token with access to it".to_string()
    }
}

/// GitHub's error body: `{"message": ..., "errors": [{"message": ...}]}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorDetail>,
}

/// One entry of `errors` in GitHub's validation-error body.
#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

/// The `message` of an error body, if it has one.
fn github_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body).ok()?.message.filter(|message| !message.is_empty())
}

/// `Validation Failed: Hook already exists on this repository` from a 422 body.
fn validation_message(body: &[u8]) -> String {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return "the request was not valid".to_string();
    };
    let details: Vec<String> = parsed
        .errors
        .iter()
        .filter_map(|detail| {
            detail.message.clone().or_else(|| match (&detail.field, &detail.code) {
                (Some(field), Some(code)) => Some(format!("{field} is {code}")),
                (None, Some(code)) => Some(code.clone()),
                _ => None,
            })
        })
        .collect();
    let message = parsed.message.unwrap_or_else(|| "the request was not valid".to_string());
    if details.is_empty() { message } else { format!("{message}: {}", details.join("; ")) }
}

/// The `rel="next"` target of the `Link` headers, resolved against the URL that answered
/// (GitHub's are absolute, and are then kept exactly).
pub(crate) fn next_link(headers: &HeaderMap, request_url: &Url) -> Option<Url> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(next_target)
        .and_then(|target| request_url.join(target).ok())
}

/// The target of the `rel="next"` entry of one `Link` value.
fn next_target(value: &str) -> Option<&str> {
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let tail = &after[end + 1..];
        let params_end = tail.find('<').unwrap_or(tail.len());
        let is_next = tail[..params_end].split(';').any(|param| {
            param.trim().trim_end_matches(',').split_once('=').is_some_and(|(key, value)| {
                key.trim().eq_ignore_ascii_case("rel")
                    && value.trim().trim_matches('"').split_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target);
        }
        rest = &tail[params_end..];
    }
    None
}

/// The `x-ratelimit-*` headers, if the response had any. A reset further than one window from
/// `now` is cut to one window: GitHub's budget refills every hour, so a later one is a broken header.
pub(crate) fn parse_rate_limit(headers: &HeaderMap, now: DateTime<Utc>) -> Option<RateLimit> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    let limit = number("x-ratelimit-limit").and_then(|n| u32::try_from(n).ok());
    let remaining = number("x-ratelimit-remaining").and_then(|n| u32::try_from(n).ok());
    let window = chrono::TimeDelta::from_std(RATE_WINDOW).unwrap_or(chrono::TimeDelta::hours(1));
    let latest = now.checked_add_signed(window).unwrap_or(now);
    let reset_at =
        number("x-ratelimit-reset").and_then(|secs| DateTime::from_timestamp(secs, 0)).map(|reset| reset.min(latest));
    (limit.is_some() || remaining.is_some() || reset_at.is_some()).then_some(RateLimit { limit, remaining, reset_at })
}

/// A rate-limited answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// The hourly budget is spent until `reset_at`.
    Primary {
        /// When it refills.
        reset_at: Option<DateTime<Utc>>,
    },
    /// Too many requests too fast.
    Secondary {
        /// GitHub's `retry-after`.
        retry_after: Option<Duration>,
    },
}

/// Whether a 403 or 429 is a rate limit, and which one (as GitHub documents them).
pub(crate) fn throttle(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Throttle> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        // Longer than the window is a broken header, not a reason to sleep for years.
        .map(|secs| Duration::from_secs(secs).min(RATE_WINDOW));
    let message = github_message(body).unwrap_or_default().to_ascii_lowercase();
    let secondary_message = message.contains("secondary rate limit") || message.contains("abuse detection");
    // The reset as sent: `throttle_wait` cuts the wait, and a clock of its own keeps this pure.
    let rate = parse_rate_limit(headers, DateTime::<Utc>::MAX_UTC);
    let exhausted = rate.is_some_and(|rate| rate.remaining == Some(0));
    if secondary_message || (retry_after.is_some() && !exhausted) {
        Some(Throttle::Secondary { retry_after })
    } else if exhausted {
        Some(Throttle::Primary { reset_at: rate.and_then(|rate| rate.reset_at) })
    } else if status == StatusCode::TOO_MANY_REQUESTS || message.contains("rate limit") {
        Some(Throttle::Secondary { retry_after })
    } else {
        None
    }
}

/// How long to wait out `throttle` at `now`, after `streak` secondary limits in a row: as GitHub
/// asks (until the reset; `retry-after` if given, else at least a minute), never more than
/// [`RATE_WINDOW`] plus a little jitter.
pub(crate) fn throttle_wait(throttle: &Throttle, now: DateTime<Utc>, streak: u32, policy: &RetryPolicy) -> Duration {
    let wait = match throttle {
        Throttle::Primary { reset_at } => {
            // A second more than the reset, as GitHub's clock and ours may differ by a little
            // (and the header is rounded down to the second).
            let until_reset = match reset_at {
                Some(reset) => (*reset - now).to_std().unwrap_or(Duration::ZERO),
                None => policy.secondary_wait,
            };
            until_reset + Duration::from_secs(1)
        }
        Throttle::Secondary { retry_after } => {
            let first = retry_after.unwrap_or(policy.secondary_wait).max(Duration::from_secs(1));
            let cap = policy.secondary_cap.max(first);
            first.saturating_mul(1u32 << streak.min(16)).min(cap)
        }
    };
    if wait > RATE_WINDOW { RATE_WINDOW + WAIT_JITTER.mul_f64(rand::random_range(0.0..=1.0)) } else { wait }
}

/// The body of `response`, or `None` once it is longer than `limit` bytes: the declared length
/// is checked first, then a running count, so no more than `limit` bytes are ever held.
async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
) -> std::result::Result<Option<Vec<u8>>, reqwest::Error> {
    let declared = response.content_length();
    if declared.is_some_and(|length| length > limit) {
        return Ok(None);
    }
    // A length under the cap is reserved at once, so the buffer never grows past it by doubling.
    let mut body = Vec::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The jittered exponential backoff before retry number `attempt + 1`: between half and all of
/// `base * 2^attempt`, never more than `cap`.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let full = policy.base.saturating_mul(1u32 << attempt.min(16)).min(policy.cap);
    full.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn follows_the_next_link_exactly() {
        let request = Url::parse("https://api.github.com/repos/o/r/hooks/1/deliveries?per_page=2").unwrap();
        let link = r#"<https://api.github.com/repositories/42/hooks/1/deliveries?per_page=2&cursor=v1_1234%3D>; rel="next", <https://api.github.com/repositories/42/hooks/1/deliveries?per_page=2>; rel="first""#;
        let next = next_link(&headers(&[("link", link)]), &request).unwrap();
        assert_eq!(
            next.as_str(),
            "https://api.github.com/repositories/42/hooks/1/deliveries?per_page=2&cursor=v1_1234%3D"
        );
    }

    #[test]
    fn finds_next_in_any_position_and_header() {
        let request = Url::parse("http://127.0.0.1:1/x").unwrap();
        let first_only = r#"<http://127.0.0.1:1/a>; rel="first""#;
        let last = r#"<http://127.0.0.1:1/b?c=1,2>; rel="prev", <http://127.0.0.1:1/c>;rel=next"#;
        let next = next_link(&headers(&[("link", first_only), ("link", last)]), &request).unwrap();
        assert_eq!(next.as_str(), "http://127.0.0.1:1/c");
        assert_eq!(next_link(&headers(&[("link", first_only)]), &request), None);
        assert_eq!(next_link(&headers(&[]), &request), None);
        assert_eq!(next_link(&headers(&[("link", "garbage <no end")]), &request), None);
    }

    #[test]
    fn reads_rate_limit_headers() {
        let now = DateTime::from_timestamp(1_699_999_000, 0).unwrap();
        let rate = parse_rate_limit(
            &headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "4999"),
                ("x-ratelimit-reset", "1700000000"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(rate.limit, Some(5000));
        assert_eq!(rate.remaining, Some(4999));
        assert_eq!(rate.reset_at, DateTime::from_timestamp(1_700_000_000, 0));
        assert_eq!(parse_rate_limit(&headers(&[]), now), None);
        assert_eq!(parse_rate_limit(&headers(&[("x-ratelimit-remaining", "x")]), now), None);
    }

    #[test]
    fn a_reset_years_ahead_is_read_as_one_window() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ten_years = (now.timestamp() + 10 * 365 * 24 * 3600).to_string();
        let rate =
            parse_rate_limit(&headers(&[("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", &ten_years)]), now);
        assert_eq!(rate.unwrap().reset_at, Some(now + chrono::TimeDelta::hours(1)));
    }

    #[test]
    fn no_rate_limit_wait_is_longer_than_the_window_plus_jitter() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let policy = RetryPolicy::default();
        let most = RATE_WINDOW + WAIT_JITTER;
        let far = Throttle::Primary { reset_at: Some(now + chrono::TimeDelta::days(3650)) };
        let wait = throttle_wait(&far, now, 0, &policy);
        assert!(wait >= RATE_WINDOW && wait <= most, "{wait:?}");

        let exhausted = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "99999999999")]);
        let primary = throttle(StatusCode::FORBIDDEN, &exhausted, b"{}").unwrap();
        assert!(throttle_wait(&primary, now, 0, &policy) <= most);

        let retry = headers(&[("retry-after", "315360000")]);
        let secondary = throttle(StatusCode::TOO_MANY_REQUESTS, &retry, b"").unwrap();
        assert_eq!(secondary, Throttle::Secondary { retry_after: Some(RATE_WINDOW) });
        for streak in 0..20 {
            assert!(throttle_wait(&secondary, now, streak, &policy) <= most);
        }
        let long_cap = RetryPolicy { secondary_cap: Duration::from_secs(86_400 * 365), ..policy };
        assert!(throttle_wait(&Throttle::Secondary { retry_after: None }, now, 30, &long_cap) <= most);
    }

    #[test]
    fn a_secondary_limit_waits_retry_after_as_given_else_a_minute() {
        // GitHub: wait `retry-after` seconds when it is there; otherwise at least a minute.
        let now = Utc::now();
        let policy = RetryPolicy::default();
        let one = throttle(StatusCode::FORBIDDEN, &headers(&[("retry-after", "1")]), b"").unwrap();
        assert_eq!(throttle_wait(&one, now, 0, &policy), Duration::from_secs(1));
        let body = br#"{"message":"You have exceeded a secondary rate limit."}"#;
        let bare = throttle(StatusCode::FORBIDDEN, &headers(&[]), body).unwrap();
        assert_eq!(throttle_wait(&bare, now, 0, &policy), Duration::from_secs(60));
    }

    #[test]
    fn tells_primary_from_secondary_limits() {
        let exhausted = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000000")]);
        let reset_at = DateTime::from_timestamp(1_700_000_000, 0);
        assert_eq!(throttle(StatusCode::FORBIDDEN, &exhausted, b"{}"), Some(Throttle::Primary { reset_at }));
        assert_eq!(throttle(StatusCode::TOO_MANY_REQUESTS, &exhausted, b""), Some(Throttle::Primary { reset_at }));

        let retry = headers(&[("x-ratelimit-remaining", "10"), ("retry-after", "30")]);
        let secondary = Some(Throttle::Secondary { retry_after: Some(Duration::from_secs(30)) });
        assert_eq!(throttle(StatusCode::FORBIDDEN, &retry, b""), secondary);

        let body = br#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes."}"#;
        let remaining = headers(&[("x-ratelimit-remaining", "10")]);
        assert_eq!(throttle(StatusCode::FORBIDDEN, &remaining, body), Some(Throttle::Secondary { retry_after: None }));

        let denied = br#"{"message":"Resource not accessible by personal access token"}"#;
        assert_eq!(throttle(StatusCode::FORBIDDEN, &remaining, denied), None);
        assert_eq!(throttle(StatusCode::NOT_FOUND, &exhausted, b""), None);
    }

    #[test]
    fn waits_until_reset_plus_a_second() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let policy = RetryPolicy::default();
        let primary = Throttle::Primary { reset_at: Some(now + chrono::TimeDelta::seconds(100)) };
        assert_eq!(throttle_wait(&primary, now, 0, &policy), Duration::from_secs(101));
        let past = Throttle::Primary { reset_at: Some(now - chrono::TimeDelta::seconds(5)) };
        assert_eq!(throttle_wait(&past, now, 0, &policy), Duration::from_secs(1));
        let unknown = Throttle::Primary { reset_at: None };
        assert_eq!(throttle_wait(&unknown, now, 0, &policy), Duration::from_secs(61));
    }

    #[test]
    fn secondary_waits_grow_for_consecutive_limits() {
        let now = Utc::now();
        let policy = RetryPolicy::default();
        let bare = Throttle::Secondary { retry_after: None };
        let waits: Vec<u64> = (0..6).map(|streak| throttle_wait(&bare, now, streak, &policy).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 900, 900]);
        let given = Throttle::Secondary { retry_after: Some(Duration::from_secs(5)) };
        assert_eq!(throttle_wait(&given, now, 0, &policy), Duration::from_secs(5));
        assert_eq!(throttle_wait(&given, now, 1, &policy), Duration::from_secs(10));
        let zero = Throttle::Secondary { retry_after: Some(Duration::ZERO) };
        assert_eq!(throttle_wait(&zero, now, 0, &policy), Duration::from_secs(1), "never hammer");
    }

    fn token_client() -> Client {
        let config = Config {
            api_url: Url::parse("http://127.0.0.1:1").unwrap(),
            auth: Auth::Token(Secret::new("t")),
            timeout: Duration::from_secs(1),
        };
        Client::new(config).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn waits_out_a_secondary_limit_and_shows_it_to_clones() {
        let client = token_client();
        let clone = client.clone();
        let start = tokio::time::Instant::now();
        let throttle = Throttle::Secondary { retry_after: Some(Duration::from_secs(5)) };
        let wait = tokio::spawn(async move { clone.wait_out(throttle, "a test").await });
        tokio::task::yield_now().await;
        let until = client.waiting_until().expect("a clone is waiting");
        assert!(until > Utc::now() + chrono::TimeDelta::seconds(4), "{until}");
        wait.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // The next one in a row waits twice as long.
        let throttle = Throttle::Secondary { retry_after: Some(Duration::from_secs(5)) };
        let start = tokio::time::Instant::now();
        client.wait_out(throttle, "a test").await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_primary_reset_or_refuses_past_the_maximum() {
        let client = token_client();
        let start = tokio::time::Instant::now();
        let reset_at = Some(Utc::now() + chrono::TimeDelta::seconds(120));
        client.wait_out(Throttle::Primary { reset_at }, "a test").await.unwrap();
        let waited = start.elapsed();
        assert!(waited > Duration::from_secs(119) && waited <= Duration::from_secs(121), "{waited:?}");

        let policy = RetryPolicy { max_rate_limit_wait: Some(Duration::from_secs(60)), ..RetryPolicy::default() };
        let impatient = client.with_retry_policy(policy);
        let start = tokio::time::Instant::now();
        let error = impatient.wait_out(Throttle::Primary { reset_at }, "a test").await.unwrap_err();
        assert!(matches!(error, Error::RateLimited { .. }), "{error}");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let policy = RetryPolicy::default();
        for attempt in 0..40 {
            let full = Duration::from_secs(1).saturating_mul(1 << attempt.min(16)).min(policy.cap);
            for _ in 0..20 {
                let wait = backoff(&policy, attempt);
                assert!(wait <= policy.cap, "attempt {attempt}: {wait:?}");
                assert!(wait >= full / 2 && wait <= full, "attempt {attempt}: {wait:?}");
            }
        }
    }

    #[test]
    fn joins_paths_under_a_ghes_prefix() {
        let config = |url: &str| Config {
            api_url: Url::parse(url).unwrap(),
            auth: Auth::Token(Secret::new("t")),
            timeout: Duration::from_secs(1),
        };
        let client = Client::new(config("https://ghe.example/api/v3/")).unwrap();
        assert_eq!(client.url("/repos/o/r/hooks").unwrap().as_str(), "https://ghe.example/api/v3/repos/o/r/hooks");
        let link = Url::parse("https://ghe.example/api/v3/repositories/1/hooks/2/deliveries?cursor=x").unwrap();
        assert_eq!(client.api_path(&link), "/repositories/1/hooks/2/deliveries");
        assert!(client.own_url(link).is_ok());
        assert!(client.own_url(Url::parse("https://elsewhere.example/api/v3/x").unwrap()).is_err());
        assert!(client.own_url(Url::parse("https://ghe.example/other").unwrap()).is_err());

        let dotcom = Client::new(config("https://api.github.com")).unwrap();
        assert_eq!(dotcom.url("/app/hook/deliveries").unwrap().as_str(), "https://api.github.com/app/hook/deliveries");
    }

    #[test]
    fn rejects_api_urls_that_are_not_http() {
        for bad in ["ftp://api.github.com", "file:///tmp/x", "mailto:a@b.c", "https://u:pw@ghe.example/api/v3"] {
            let config = Config {
                api_url: Url::parse(bad).unwrap(),
                auth: Auth::Token(Secret::new("t")),
                timeout: Duration::from_secs(1),
            };
            let error = Client::new(config).unwrap_err();
            assert!(matches!(error, Error::ApiUrl(_)), "{bad}: {error}");
            assert!(!error.to_string().contains("pw"), "{error}");
        }
    }

    #[test]
    fn explains_validation_errors() {
        let body = br#"{"message":"Validation Failed","errors":[{"resource":"Hook","code":"custom","message":"Hook already exists on this repository"}],"documentation_url":"x"}"#;
        assert_eq!(validation_message(body), "Validation Failed: Hook already exists on this repository");
        let coded = br#"{"message":"Validation Failed","errors":[{"resource":"Hook","field":"url","code":"invalid"}]}"#;
        assert_eq!(validation_message(coded), "Validation Failed: url is invalid");
        assert_eq!(validation_message(b"<html>"), "the request was not valid");
    }

    #[test]
    fn names_the_permission_a_403_needs() {
        assert!(needed_permission("/repos/o/r/hooks", &Method::GET).contains("admin:repo_hook"));
        assert!(needed_permission("/orgs/o/hooks", &Method::POST).contains("admin:org_hook"));
        assert!(needed_permission("/orgs/o/hooks", &Method::POST).contains("\"Webhooks\""));
    }

    #[test]
    fn debug_shows_no_token() {
        let config = Config {
            api_url: Url::parse("https://api.github.com").unwrap(),
            auth: Auth::Token(Secret::new("ghp_supersecretvalue1234")),
            timeout: Duration::from_secs(1),
        };
        let client = Client::new(config.clone()).unwrap();
        let text = format!("{client:?} {config:?} {:?}", bearer(&Secret::new("ghp_supersecretvalue1234")).unwrap());
        assert!(!text.contains("supersecret"), "{text}");
    }
}

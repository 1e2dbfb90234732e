//! The HTTP client: the API calls, and the configuration and state that clones share.
//!
//! The transport (one call, authorized and retried) is in `transport`, rate limits and waits in `rate`,
//! and the credentials with the App's installation-token cache in `installation`; the status-to-error
//! mapping is `crate::status` and Link parsing `crate::link`.

mod installation;
mod pace;
mod rate;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::auth::AppSigner;
use crate::link::next_link;
use crate::paging::{Listing, NextPage, Page, Scan, read_items};
use crate::{Auth, Delivery, Error, Hook, HookRef, HookUpdate, NewHook, Owner, Result};
use installation::{AuthState, bearer};
pub use pace::{Pace, SECONDARY_CONCURRENT, SECONDARY_PER_MINUTE, SharedPace, Turn, points};
pub use rate::{RATE_WINDOW, RateLimit, RetryPolicy, Wait};
use transport::{Call, Reply};

/// The most bytes read of one answer about hooks or a list page: a page of 100 hooks or delivery
/// items is well under a megabyte, so this is only reached by a broken or hostile answer.
pub const LIST_LIMIT: u64 = 32 * 1024 * 1024;
/// The most bytes read of one delivery: GitHub caps payloads at 25 MB, which JSON escaping can
/// double or more, plus its headers.
pub const DELIVERY_LIMIT: u64 = 100 * 1024 * 1024;

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

/// A GitHub REST client. Cheap to clone; clones share the ETag cache and rate budget.
#[derive(Clone)]
pub struct Client {
    /// State shared by every clone.
    inner: Arc<Inner>,
    /// This handle's retry and wait policy.
    policy: RetryPolicy,
    /// Prefixes this handle's keys in the ETag cache (see [`Client::with_etag_scope`]); empty by default.
    etag_scope: Arc<str>,
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
    /// Keeps every clone under GitHub's secondary limits.
    pacer: pace::Pacer,
}

/// The GitHub REST API version this client speaks.
const API_VERSION: &str = "2022-11-28";

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
        let http = crate::http_client()
            .user_agent(concat!("hookfwd/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
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
            pacer: pace::Pacer::new(Pace::default()),
        };
        Ok(Self { inner: Arc::new(inner), policy: RetryPolicy::default(), etag_scope: Arc::from("") })
    }

    /// The id of the GitHub App this client authenticates as; `None` with a token.
    pub fn app_id(&self) -> Option<u64> {
        match &self.inner.auth {
            AuthState::Token(_) => None,
            AuthState::App { signer, .. } => Some(signer.app_id),
        }
    }

    /// This client with another retry and wait policy. The ETag cache and rate budget stay shared.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// This client with ETags of its own for delivery lists: for a second reader of the same list, which
    /// the first one's ETag would otherwise answer 304 about changes only the first one has seen. The rate
    /// budget stays shared.
    pub fn with_etag_scope(mut self, scope: &str) -> Self {
        self.etag_scope = Arc::from(scope);
        self
    }

    /// The retry and wait policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The pace every clone keeps under GitHub's secondary limits.
    pub fn pace(&self) -> Pace {
        self.inner.pacer.pace()
    }

    /// Sets the pace for this client and every clone (default: [`Pace::default`], under GitHub's figures).
    pub fn set_pace(&self, pace: Pace) {
        self.inner.pacer.set(pace);
    }

    /// Paces this client and every clone through `shared`, a budget kept with the other processes on
    /// the same credentials, rather than alone; `false` if one was set already.
    pub fn share_pace(&self, shared: Arc<dyn SharedPace>) -> bool {
        self.inner.pacer.share(shared)
    }

    /// A digest naming the credentials, for whatever keeps GitHub's per-credential limits across
    /// processes: a token's SHA-256 (never the token), or a GitHub App's installation, whose
    /// tokens change and whose limits stay. 32 hex digits.
    pub fn identity(&self) -> String {
        use sha2::Digest;
        let named = match &self.inner.auth {
            AuthState::Token(token) => sha2::Sha256::new().chain_update("token\0").chain_update(token.expose()),
            AuthState::App { signer, .. } => {
                let installation = signer.installation_id.map_or_else(String::new, |id| id.to_string());
                sha2::Sha256::new().chain_update(format!("app\0{}\0{installation}", signer.app_id))
            }
        };
        hex::encode(&named.finalize()[..16])
    }

    /// Tells `observer` about every answer from now on, for this client and its clones.
    /// Only the first observer is kept; `false` if one was set already.
    pub fn observe(&self, observer: crate::Observer) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// Checks that the API answers at all, within `within`, before anything is asked of it: any HTTP
    /// answer will do (`/rate_limit`, which costs no rate budget, asked without credentials). A
    /// connection that fails is tried twice more, briefly, in case the network is just coming up; an
    /// address that takes the connection and never answers is given up on at `within`. The retries and
    /// timeouts of every other call are for a GitHub that was there and will be again, and take longer.
    pub async fn reach(&self, within: Duration) -> Result<()> {
        let url = self.url("/rate_limit")?;
        let deadline = tokio::time::Instant::now() + within;
        let mut failures = 0;
        loop {
            let error = match tokio::time::timeout_at(deadline, self.inner.http.get(url.clone()).send()).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(error)) => error,
                Err(_) => return Err(Error::Silent { url: self.inner.base.clone(), within }),
            };
            let wait = crate::backoff::jittered(Duration::from_millis(200), Duration::from_secs(1), failures);
            if !error.is_connect() || failures >= 2 || tokio::time::Instant::now() + wait >= deadline {
                return Err(Error::Unreachable { url: self.inner.base.clone(), source: error.without_url() });
            }
            failures += 1;
            tracing::info!(attempt = failures, error = %error.without_url(), "could not reach GitHub; trying again");
            tokio::time::sleep(wait).await;
        }
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

    /// The id of a repository (`OWNER/REPO`), which delivery list items name it by.
    pub async fn repository_id(&self, repository: &Owner) -> Result<u64> {
        #[derive(serde::Deserialize)]
        struct Repository {
            id: u64,
        }
        let what = format!("the repository {repository}");
        let path = match repository {
            Owner::Repo { owner, repo } => format!("/repos/{owner}/{repo}"),
            Owner::Org { .. } => return Err(Error::Unsupported { what }),
        };
        let reply = self.execute(&Call::new(Method::GET, self.url(&path)?, &what)).await?;
        let found: Repository = decode(&reply.body, &what)?;
        Ok(found.id)
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
        let key = format!("{}{url}", self.etag_scope);
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
        let prefix = format!("{}{}{}/deliveries?", self.etag_scope, self.inner.base, hook.path());
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
            HookRef::App { .. } => Err(Error::Unsupported { what: hook.to_string() }),
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
}

/// Locks a mutex, going on after a panic elsewhere: the data (ETags, counters) stays usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

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
    fn the_identity_is_a_digest_of_the_token_and_never_the_token() {
        let client = |token: &str| {
            let config = Config {
                api_url: Url::parse("https://api.github.com").unwrap(),
                auth: Auth::Token(Secret::new(token)),
                timeout: Duration::from_secs(1),
            };
            Client::new(config).unwrap()
        };
        let one = client("ghp_supersecretvalue1234");
        assert_eq!(one.identity(), client("ghp_supersecretvalue1234").identity(), "one token, one identity");
        assert_ne!(one.identity(), client("ghp_anothersecretvalue99").identity());
        assert_eq!(one.identity().len(), 32);
        assert!(one.identity().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!one.identity().contains("supersecret"));
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

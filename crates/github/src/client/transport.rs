//! The transport: one API call, authorized, read within its size cap, retried where that is safe. An App's
//! installation token is fetched here too, since fetching it is itself such a call.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use chrono::Utc;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::installation::{AuthState, InstallationToken, bearer};
use super::rate::{backoff, parse_rate_limit, throttle};
use super::{Client, LIST_LIMIT, lock};
use crate::auth::{AppSigner, is_app_path};
use crate::{Error, Result, Secret};

/// One API call to make.
pub(super) struct Call<'a> {
    /// The HTTP method.
    pub(super) method: Method,
    /// The absolute URL.
    pub(super) url: Url,
    /// A JSON body, if any.
    pub(super) body: Option<Vec<u8>>,
    /// What is being accessed, for error messages: `the hooks of octo/hello`.
    pub(super) what: &'a str,
    /// Whether repeating the call after it may have been processed is harmless.
    pub(super) idempotent: bool,
    /// The ETag to send in `If-None-Match`.
    pub(super) etag: Option<String>,
    /// The most bytes of the answer that are read.
    pub(super) limit: u64,
}

impl<'a> Call<'a> {
    pub(super) fn new(method: Method, url: Url, what: &'a str) -> Self {
        let idempotent = !matches!(method, Method::POST);
        Self { method, url, body: None, what, idempotent, etag: None, limit: LIST_LIMIT }
    }
}

/// A response that was read whole.
pub(super) struct Reply {
    /// The status, 2xx or 304.
    pub(super) status: StatusCode,
    /// The response headers.
    pub(super) headers: HeaderMap,
    /// The body bytes, exactly as received.
    pub(super) body: Vec<u8>,
}

impl Client {
    /// Makes one call: holds off while rate-limited, authorizes, retries what is safe, and maps errors.
    ///
    /// Boxed with a named type because it calls itself (through the installation-token exchange).
    pub(super) fn execute<'a>(
        &'a self,
        call: &'a Call<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply>> + Send + 'a>> {
        Box::pin(self.run_call(call))
    }

    /// [`Client::execute`]'s body.
    async fn run_call(&self, call: &Call<'_>) -> Result<Reply> {
        let mut failures = 0u32;
        let mut reauthorized = false;
        let endpoint = crate::endpoint(call.method.as_str(), self.api_path(&call.url));
        let cost = super::pace::points(call.method.as_str());
        loop {
            self.hold_off().await;
            // Before the turn: an App's token exchange is a call of its own, which needs a turn too.
            let authorization = self.authorization(&call.url).await?;
            // Held until the answer is read, so that it counts among the requests in flight, and
            // not through a backoff or a rate-limit wait after it.
            let turn = self.inner.pacer.admit(&endpoint, cost).await;
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), call.url.clone())
                .header(header::AUTHORIZATION, authorization);
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
            drop(turn);
            if let Some(observer) = self.inner.observer.get() {
                let status = received.as_ref().map_or_else(|_| "error".to_string(), |r| r.status.as_u16().to_string());
                observer(&endpoint, &status);
            }
            let reply = match received {
                Ok(reply) => reply,
                Err(error) => {
                    // A connection that was never made carried nothing, so any call may be repeated.
                    let retry = error.is_connect() || call.idempotent;
                    if retry && failures + 1 < self.policy.attempts {
                        let wait = backoff(&self.policy, failures);
                        failures += 1;
                        // Logs (shown with -v), not warnings: the caller reports what comes of the
                        // call, and a rate-limit wait is announced through `waits`.
                        tracing::info!(what = call.what, attempt = failures, wait_ms = wait.as_millis() as u64,
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
                && self.inner.auth.forget_installation_token().await
            {
                reauthorized = true;
                continue;
            }
            if status.is_server_error() || status == StatusCode::NOT_MODIFIED {
                if call.idempotent && failures + 1 < self.policy.attempts {
                    let wait = backoff(&self.policy, failures);
                    failures += 1;
                    tracing::info!(
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

    /// The typed error for a 4xx (or unexpected) status answered to `call`.
    fn status_error(&self, call: &Call<'_>, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
        let answer = crate::status::Answer { status, headers, body };
        crate::status::status_error(call.what, self.api_path(&call.url), &call.method, answer, self.app_id())
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

    /// The cached installation token, exchanged anew when it is about to expire. The exchange is a
    /// call (authorized with the App's JWT), which is why it lives beside [`Client::execute`].
    async fn installation_token(
        &self,
        signer: &AppSigner,
        installation: &tokio::sync::Mutex<Option<InstallationToken>>,
    ) -> Result<Secret> {
        let mut cached = installation.lock().await;
        if let Some(token) = cached.as_ref().and_then(|current| current.fresh(Utc::now())) {
            return Ok(token.clone());
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
        let fresh = cached.insert(InstallationToken::read(&reply.body, &what)?);
        Ok(fresh.token().clone())
    }
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

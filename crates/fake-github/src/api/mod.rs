//! GitHub's REST endpoints for hooks, deliveries, the App hook and `/rate_limit`, with GitHub's
//! authentication, scopes, rate-limit headers, ETags, cursors and error bodies.
//!
//! `auth` finds the caller, `budget` counts its rate limit, and the routes live in `hooks`, `deliveries` and
//! `app`; the HTTP side of an answer is `crate::http`. The control surface (`/_fake/`) is dispatched by
//! `crate::server`, not from here.

mod app;
pub(crate) mod auth;
mod budget;
mod deliveries;
mod hooks;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::Inner;
use crate::secondary::Refusal;
use crate::state::{Account, Repo, Scope};
use tokio::time::Instant;

use crate::http::*;
use app::*;
use auth::*;
use budget::*;
use deliveries::*;
use hooks::*;

pub(crate) const DOCS: &str = "https://docs.github.com/rest";
pub(crate) const REPO_DOCS: &str = "https://docs.github.com/rest/repos/webhooks";
pub(crate) const ORG_DOCS: &str = "https://docs.github.com/rest/orgs/webhooks";
pub(crate) const APP_DOCS: &str = "https://docs.github.com/rest/apps/webhooks";
pub(crate) const RATE_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// Scopes that may read repository hooks.
pub(crate) const REPO_READ: &[&str] = &["admin:repo_hook", "read:repo_hook", "repo", "write:repo_hook"];
/// Scopes that may change repository hooks.
pub(crate) const REPO_WRITE: &[&str] = &["admin:repo_hook", "repo", "write:repo_hook"];
/// Scopes that may read or change organization hooks.
pub(crate) const ORG_ALL: &[&str] = &["admin:org_hook"];

/// The owner of the hooks a path is about.
#[derive(Clone)]
pub(crate) enum Owner {
    Repo(Repo),
    Org(Account),
}

impl Owner {
    pub(crate) fn scope(&self) -> Scope {
        match self {
            Self::Repo(repo) => Scope::Repo(repo.id),
            Self::Org(org) => Scope::Org(org.login.to_ascii_lowercase()),
        }
    }

    /// `repos/o/r` or `orgs/o`, as GitHub spells hook URLs.
    pub(crate) fn base(&self) -> String {
        match self {
            Self::Repo(repo) => format!("repos/{}/{}", repo.owner, repo.name),
            Self::Org(org) => format!("orgs/{}", org.login),
        }
    }

    pub(crate) fn docs(&self) -> &'static str {
        match self {
            Self::Repo(_) => REPO_DOCS,
            Self::Org(_) => ORG_DOCS,
        }
    }

    pub(crate) fn accepted(&self, write: bool) -> &'static [&'static str] {
        match (self, write) {
            (Self::Repo(_), false) => REPO_READ,
            (Self::Repo(_), true) => REPO_WRITE,
            (Self::Org(_), _) => ORG_ALL,
        }
    }

    pub(crate) fn noun(&self) -> &'static str {
        match self {
            Self::Repo(_) => "repository",
            Self::Org(_) => "organization",
        }
    }
}

/// One parsed request, after the body is read.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a Method,
    pub(crate) segments: Vec<&'a str>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Call<'_> {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// Answers one HTTP request; `Err` closes the connection without an answer.
pub(crate) async fn handle(inner: Arc<Inner>, request: Request<Incoming>) -> Result<Response<AnswerBody>, Dropped> {
    let (parts, body) = request.into_parts();
    // Under a prefix (GitHub Enterprise Server's `/api/v3`) only what lies below it is the API.
    let Some(path) = strip_prefix(parts.uri.path(), &inner.prefix) else {
        return Ok(finish(&inner, Reply::not_found(DOCS), None));
    };
    let path = path.to_string();
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|query| url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())
        .unwrap_or_default();

    inner.lock().stats.requests += 1;
    // Counted from arrival to answer, per credential, as GitHub counts concurrent requests.
    let credential = parts.headers.get(hyper::header::AUTHORIZATION).map(|value| value.as_bytes().to_vec());
    let in_flight = inner.secondary.enter(&String::from_utf8_lossy(credential.as_deref().unwrap_or_default()));
    let verdict = inner.faults.judge();
    if !verdict.latency.is_zero() {
        tokio::time::sleep(verdict.latency).await;
    }
    if verdict.drop {
        inner.lock().stats.dropped += 1;
        return Err(Dropped);
    }
    if let Some(code) = verdict.server_error {
        inner.lock().stats.server_errors += 1;
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        return Ok(finish(&inner, Reply::json(status, &json!({"message": "Server Error"})), None));
    }
    let Some(body) = read_body(body).await else {
        return Ok(finish(&inner, Reply::error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large", DOCS), None));
    };
    let call = Call { method: &parts.method, segments, query, body };

    let caller = match authenticate(&inner, &parts.headers, &call.segments) {
        Ok(caller) => caller,
        Err(reply) => {
            inner.lock().stats.unauthorized += 1;
            return Ok(finish(&inner, reply, None));
        }
    };
    let scopes = match &caller {
        Caller::Token { scopes, .. } => scopes.clone(),
        Caller::App { .. } => None,
    };
    let budget_key = caller.budget_key();
    let is_rate_limit = call.segments == ["rate_limit"];

    let endpoint = github::endpoint(call.method.as_str(), &path);
    let refused = match in_flight {
        Err(_) => Some(Duration::from_secs(1)),
        Ok(_) => {
            match inner.secondary.spend(&budget_key, &endpoint, github::points(call.method.as_str()), Instant::now()) {
                Err(Refusal::PerMinute { retry_after }) => Some(retry_after),
                Err(Refusal::Concurrent) => Some(Duration::from_secs(1)),
                Ok(()) => None,
            }
        }
    };
    if let Some(retry_after) = verdict.secondary.or(refused) {
        inner.lock().stats.secondary_limited += 1;
        let request_id = inner.request_id();
        let message = format!(
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {request_id}."
        );
        // GitHub says how long in whole seconds, rounded up.
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let reply = Reply::error(StatusCode::FORBIDDEN, &message, &format!("{RATE_DOCS}#about-secondary-rate-limits"))
            .header("retry-after", seconds.max(1).to_string());
        let limits = limits(&inner, &budget_key, false);
        return Ok(finish(&inner, with_scopes(reply, &scopes), Some(limits)));
    }

    let exhausted = limits(&inner, &budget_key, false).remaining == 0;
    if exhausted && !is_rate_limit {
        let account = {
            let mut state = inner.lock();
            state.stats.primary_limited += 1;
            state.next_account_id
        };
        let message = format!(
            "API rate limit exceeded for user ID {account}. If you reach out to GitHub Support for help, please include the request ID {}.",
            inner.request_id()
        );
        let reply = Reply::error(StatusCode::FORBIDDEN, &message, RATE_DOCS);
        let limits = limits(&inner, &budget_key, false);
        return Ok(finish(&inner, with_scopes(reply, &scopes), Some(limits)));
    }

    let mut reply = route(&inner, &caller, &call).await;
    if is_rate_limit {
        reply.counted = false;
    }

    // Conditional requests: a matching ETag answers 304 and costs nothing, as on GitHub.
    if call.method == Method::GET && reply.status == StatusCode::OK {
        let etag = etag(&reply.body);
        let matches = parts
            .headers
            .get_all(hyper::header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == etag.trim_start_matches("W/"));
        if matches {
            inner.lock().stats.not_modified += 1;
            let headers = std::mem::take(&mut reply.headers);
            reply = Reply::empty(StatusCode::NOT_MODIFIED);
            reply.headers = headers;
            reply.counted = false;
        }
        reply.headers.push(("etag", etag));
        reply.headers.push(("cache-control", "private, max-age=60, s-maxage=60".into()));
    }
    let reply = crate::hostile::apply(&inner, call.method, &call.segments, &call.query, reply);
    let mut limits = limits(&inner, &budget_key, reply.counted);
    if let Some((remaining, reset)) = crate::hostile::rate_override(&inner) {
        (limits.remaining, limits.reset) = (remaining, reset);
    }
    if reply.counted {
        inner.lock().stats.counted += 1;
    }
    Ok(finish(&inner, with_scopes(reply, &scopes), Some(limits)))
}

/// Dispatches on the path.
async fn route(inner: &Arc<Inner>, caller: &Caller, call: &Call<'_>) -> Reply {
    let method = call.method.clone();
    match call.segments.as_slice() {
        ["rate_limit"] if method == Method::GET => {
            let limits = limits(inner, &caller.budget_key(), false);
            let reset = Utc::now().timestamp() + 3600;
            let search = json!({"limit": 30, "remaining": 30, "reset": reset, "used": 0});
            let graphql = json!({"limit": 5000, "remaining": 5000, "reset": reset, "used": 0});
            Reply::json(
                StatusCode::OK,
                &json!({"resources": {"core": limits.json(), "search": search, "graphql": graphql}, "rate": limits.json()}),
            )
        }
        ["app", rest @ ..] => match caller {
            Caller::App { app_id } => app_route(inner, *app_id, &method, rest, call).await,
            Caller::Token { .. } => {
                Reply::error(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded", DOCS)
            }
        },
        ["repos", owner, repo, "installation"] if method == Method::GET => {
            let state = inner.lock();
            let (Caller::App { app_id }, Some(repo)) = (caller, state.find_repo(owner, repo)) else {
                return Reply::not_found(APP_DOCS);
            };
            let account = state.account_json_of(&repo.owner);
            match state.apps.get(app_id) {
                Some(app) => Reply::json(StatusCode::OK, &installation_json(app.id, app.installation_id, account)),
                None => Reply::not_found(APP_DOCS),
            }
        }
        ["repos", owner, repo] if method == Method::GET => {
            let state = inner.lock();
            match state.find_repo(owner, repo) {
                Some(repo) => Reply::json(StatusCode::OK, &repository_json(&state, repo)),
                None => Reply::not_found("https://docs.github.com/rest/repos/repos#get-a-repository"),
            }
        }
        ["repos", owner, repo, "hooks", rest @ ..] => {
            let found = inner.lock().find_repo(owner, repo).cloned();
            match found {
                Some(repo) => hooks_route(inner, caller, Owner::Repo(repo), &method, rest, call).await,
                None => Reply::not_found(REPO_DOCS),
            }
        }
        ["repositories", id, "hooks", rest @ ..] => {
            let found = id.parse().ok().and_then(|id| inner.lock().repo_by_id(id).cloned());
            match found {
                Some(repo) => hooks_route(inner, caller, Owner::Repo(repo), &method, rest, call).await,
                None => Reply::not_found(REPO_DOCS),
            }
        }
        ["orgs", org, "hooks", rest @ ..] => {
            let found = inner.lock().find_org(org).cloned();
            match found {
                Some(org) => hooks_route(inner, caller, Owner::Org(org), &method, rest, call).await,
                None => Reply::not_found(ORG_DOCS),
            }
        }
        _ => Reply::not_found(DOCS),
    }
}

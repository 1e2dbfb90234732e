//! GitHub's REST endpoints for hooks, deliveries, the App hook and `/rate_limit`, with GitHub's
//! authentication, scopes, rate-limit headers, ETags, cursors and error bodies.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::deliver::{Attempt, node_id};
use crate::hostile::Generated;
use crate::state::{Account, Budget, Hook, HookSpec, RecordedDelivery, Repo, Scope, State};
use crate::{Faults, Inner};

/// The largest request body accepted.
const BODY_LIMIT: usize = 5 * 1024 * 1024;

const DOCS: &str = "https://docs.github.com/rest";
const REPO_DOCS: &str = "https://docs.github.com/rest/repos/webhooks";
const ORG_DOCS: &str = "https://docs.github.com/rest/orgs/webhooks";
const APP_DOCS: &str = "https://docs.github.com/rest/apps/webhooks";
const RATE_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// Scopes that may read repository hooks.
const REPO_READ: &[&str] = &["admin:repo_hook", "read:repo_hook", "repo", "write:repo_hook"];
/// Scopes that may change repository hooks.
const REPO_WRITE: &[&str] = &["admin:repo_hook", "repo", "write:repo_hook"];
/// Scopes that may read or change organization hooks.
const ORG_ALL: &[&str] = &["admin:org_hook"];

/// An answer's body: whole, or generated as it is sent (a hostile answer).
pub(crate) type AnswerBody = Either<Full<Bytes>, Generated>;

/// The connection is closed without an answer (the drop fault).
#[derive(Debug)]
pub(crate) struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// An answer before the common headers are added.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
    /// Whether it counts against the primary budget.
    pub counted: bool,
    /// A body generated as it is sent, in place of `body`.
    pub generated: Option<Box<Generated>>,
}

impl Reply {
    pub fn json(status: StatusCode, value: &Value) -> Self {
        // Serialising a Value cannot fail: its keys are strings.
        Self::raw(status, serde_json::to_vec(value).unwrap_or_default())
    }

    pub fn raw(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self { status, body: body.into(), headers: Vec::new(), counted: true, generated: None }
    }

    /// `reply` with its body replaced by one generated as it is sent.
    pub(crate) fn generated(mut reply: Reply, body: Generated) -> Self {
        reply.body = Bytes::new();
        reply.generated = Some(Box::new(body));
        reply
    }

    pub fn empty(status: StatusCode) -> Self {
        Self::raw(status, Bytes::new())
    }

    /// GitHub's `basic-error`.
    pub fn error(status: StatusCode, message: &str, documentation_url: &str) -> Self {
        Self::json(
            status,
            &json!({"message": message, "documentation_url": documentation_url, "status": status.as_u16().to_string()}),
        )
    }

    pub fn not_found(documentation_url: &str) -> Self {
        Self::error(StatusCode::NOT_FOUND, "Not Found", documentation_url)
    }

    /// GitHub's `validation-error` with one custom error about a hook.
    pub fn invalid(message: &str, field: Option<&str>, documentation_url: &str) -> Self {
        let mut error = json!({"resource": "Hook", "code": "custom", "message": message});
        if let Some(field) = field {
            error["field"] = json!(field);
        }
        Self::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": "Validation Failed", "errors": [error], "documentation_url": documentation_url, "status": "422"}),
        )
    }

    /// GitHub's answer to a body that does not match the operation's schema.
    pub fn bad_request_body(detail: &str, documentation_url: &str) -> Self {
        Self::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": format!("Invalid request.\n\n{detail}"), "documentation_url": documentation_url, "status": "422"}),
        )
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Who is calling.
enum Caller {
    /// A classic token (with scopes) or an installation token (without).
    Token { key: String, scopes: Option<String> },
    /// A GitHub App, by its JWT.
    App { app_id: u64 },
}

impl Caller {
    fn budget_key(&self) -> String {
        match self {
            Self::Token { key, .. } => format!("token:{key}"),
            Self::App { app_id } => format!("app:{app_id}"),
        }
    }
}

/// The owner of the hooks a path is about.
#[derive(Clone)]
enum Owner {
    Repo(Repo),
    Org(Account),
}

impl Owner {
    fn scope(&self) -> Scope {
        match self {
            Self::Repo(repo) => Scope::Repo(repo.id),
            Self::Org(org) => Scope::Org(org.login.to_ascii_lowercase()),
        }
    }

    /// `repos/o/r` or `orgs/o`, as GitHub spells hook URLs.
    fn base(&self) -> String {
        match self {
            Self::Repo(repo) => format!("repos/{}/{}", repo.owner, repo.name),
            Self::Org(org) => format!("orgs/{}", org.login),
        }
    }

    fn docs(&self) -> &'static str {
        match self {
            Self::Repo(_) => REPO_DOCS,
            Self::Org(_) => ORG_DOCS,
        }
    }

    fn accepted(&self, write: bool) -> &'static [&'static str] {
        match (self, write) {
            (Self::Repo(_), false) => REPO_READ,
            (Self::Repo(_), true) => REPO_WRITE,
            (Self::Org(_), _) => ORG_ALL,
        }
    }

    fn noun(&self) -> &'static str {
        match self {
            Self::Repo(_) => "repository",
            Self::Org(_) => "organization",
        }
    }
}

/// One parsed request, after the body is read.
struct Call<'a> {
    method: &'a Method,
    segments: Vec<&'a str>,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Call<'_> {
    fn param(&self, name: &str) -> Option<&str> {
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

    if segments.first() == Some(&"_fake") {
        let body = read_body(body).await.unwrap_or_default();
        let reply = crate::control::handle(&inner, &parts.method, &segments[1..], &body).await;
        return Ok(finish(&inner, reply, None));
    }

    inner.lock().stats.requests += 1;
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

    if let Some(retry_after) = verdict.secondary {
        inner.lock().stats.secondary_limited += 1;
        let request_id = inner.request_id();
        let message = format!(
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {request_id}."
        );
        let reply = Reply::error(StatusCode::FORBIDDEN, &message, &format!("{RATE_DOCS}#about-secondary-rate-limits"))
            .header("retry-after", retry_after.as_secs().max(1).to_string());
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

/// `path` below `prefix` (`/api/v3/repos` → `/repos`); `None` when it lies outside. An empty prefix keeps every path.
fn strip_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    match path.strip_prefix(prefix)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// Reads a request body up to [`BODY_LIMIT`]; `None` when it is too large or broken.
async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, BODY_LIMIT).collect().await.ok().map(|collected| collected.to_bytes())
}

fn with_scopes(reply: Reply, scopes: &Option<String>) -> Reply {
    match scopes {
        Some(scopes) => reply.header("x-oauth-scopes", scopes.clone()),
        None => reply,
    }
}

/// A budget's numbers as GitHub reports them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    limit: u32,
    remaining: u32,
    used: u32,
    reset: i64,
}

impl Limits {
    fn json(&self) -> Value {
        json!({"limit": self.limit, "remaining": self.remaining, "reset": self.reset, "used": self.used})
    }
}

/// The budget of `key`, after counting one request when `count`.
fn limits(inner: &Inner, key: &str, count: bool) -> Limits {
    let exhausted_until = inner.faults.primary_exhausted();
    let now = Utc::now().timestamp();
    let mut state = inner.lock();
    let limit = state.per_hour;
    let budget = state.budgets.entry(key.to_string()).or_insert(Budget { used: 0, reset: now + 3600 });
    if budget.reset <= now {
        *budget = Budget { used: 0, reset: now + 3600 };
    }
    if count {
        budget.used = budget.used.saturating_add(1);
    }
    match exhausted_until {
        Some(until) => Limits { limit, remaining: 0, used: limit.max(budget.used), reset: until.timestamp() },
        None => Limits { limit, remaining: limit.saturating_sub(budget.used), used: budget.used, reset: budget.reset },
    }
}

/// Adds the headers every GitHub answer carries.
fn finish(inner: &Inner, reply: Reply, limits: Option<Limits>) -> Response<AnswerBody> {
    let body = match reply.generated {
        Some(generated) => Either::Right(*generated),
        None => Either::Left(Full::new(reply.body)),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    };
    set("content-type", "application/json; charset=utf-8");
    set("server", "github.com");
    set("x-github-media-type", "github.v3; format=json");
    set("x-github-api-version-selected", "2022-11-28");
    set("x-github-request-id", &inner.request_id());
    if let Some(limits) = limits {
        set("x-ratelimit-limit", &limits.limit.to_string());
        set("x-ratelimit-remaining", &limits.remaining.to_string());
        set("x-ratelimit-used", &limits.used.to_string());
        set("x-ratelimit-reset", &limits.reset.to_string());
        set("x-ratelimit-resource", "core");
    }
    for (name, value) in &reply.headers {
        set(name, value);
    }
    response
}

/// A weak ETag over the body, which changes whenever the answer does.
fn etag(body: &[u8]) -> String {
    let fnv = |seed: u64| body.iter().fold(seed, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3));
    format!("W/\"{:016x}{:016x}\"", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

/// Checks the `Authorization` header: a token for the REST paths, an App JWT for `/app/*`.
fn authenticate(inner: &Inner, headers: &HeaderMap, segments: &[&str]) -> Result<Caller, Reply> {
    let Some(value) = headers.get(hyper::header::AUTHORIZATION).and_then(|value| value.to_str().ok()) else {
        return Err(Reply::error(StatusCode::UNAUTHORIZED, "Requires authentication", DOCS));
    };
    let credential = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .or_else(|| value.strip_prefix("token "))
        .or_else(|| value.strip_prefix("Token "))
        .map(str::trim)
        .unwrap_or("");
    let wants_jwt = matches!(segments, ["app", ..] | ["repos", _, _, "installation"]);
    let state = inner.lock();
    if wants_jwt {
        return verify_jwt(&state, credential)
            .map(|app_id| Caller::App { app_id })
            .map_err(|message| Reply::error(StatusCode::UNAUTHORIZED, message, DOCS));
    }
    match state.tokens.get(credential) {
        Some(token) if token.expires_at.is_none_or(|expires| expires > Utc::now()) => {
            Ok(Caller::Token { key: credential.to_string(), scopes: token.scopes.clone() })
        }
        _ => Err(Reply::error(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS)),
    }
}

/// The claims GitHub reads from an App JWT; `iss` may be the App id as a number or a string.
#[derive(Deserialize)]
struct Claims {
    iss: Value,
    iat: i64,
    exp: i64,
}

/// The App whose key signed `token`, checking `iss` and GitHub's ten-minute lifetime.
fn verify_jwt(state: &State, token: &str) -> Result<u64, &'static str> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.leeway = 60;
    validation.validate_aud = false;
    // `iss` is checked below: GitHub accepts the App id as a number, which jsonwebtoken does not.
    validation.set_required_spec_claims(&["exp"]);
    for app in state.apps.values() {
        match jsonwebtoken::decode::<Claims>(token, &app.key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                let iss = match &claims.iss {
                    Value::Number(number) => number.as_u64(),
                    Value::String(text) => text.parse().ok(),
                    _ => None,
                };
                if iss != Some(app.id) {
                    return Err("'Issuer' claim ('iss') must be an Integer");
                }
                let now = Utc::now().timestamp();
                if claims.exp > now + 600 + 60 || claims.exp - claims.iat > 600 + 60 {
                    return Err(
                        "'Expiration time' claim ('exp') is too far in the future. Make sure the 'exp' claim is less than 10 minutes from now.",
                    );
                }
                if claims.iat > now + 60 {
                    return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past.");
                }
                return Ok(app.id);
            }
            Err(error) if matches!(error.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                return Err(
                    "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
                );
            }
            Err(_) => continue,
        }
    }
    Err("A JSON web token could not be decoded")
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

/// Repository and organization hooks, after the owner is known.
async fn hooks_route(
    inner: &Arc<Inner>,
    caller: &Caller,
    owner: Owner,
    method: &Method,
    rest: &[&str],
    call: &Call<'_>,
) -> Reply {
    let write = *method != Method::GET;
    let accepted = owner.accepted(write).join(", ");
    if let Caller::Token { scopes: Some(scopes), .. } = caller {
        let granted: Vec<&str> = scopes.split(',').map(str::trim).collect();
        if !owner.accepted(write).iter().any(|scope| granted.contains(scope)) {
            let message = match owner {
                Owner::Repo(_) => "Must have admin rights to Repository.",
                Owner::Org(_) => "Must have admin rights to Organization.",
            };
            return Reply::error(StatusCode::FORBIDDEN, message, owner.docs())
                .header("x-accepted-oauth-scopes", accepted);
        }
    }
    let docs = owner.docs();
    let hook_id = match rest.first().map(|id| id.parse::<u64>()) {
        None => None,
        Some(Ok(id)) if inner.lock().hooks.get(&id).is_some_and(|hook| hook.scope == owner.scope()) => Some(id),
        Some(_) => return Reply::not_found(docs).header("x-accepted-oauth-scopes", accepted),
    };
    let reply = match (method, hook_id, rest) {
        (&Method::GET, None, []) => list_hooks(inner, &owner, call),
        (&Method::POST, None, []) => create_hook(inner, &owner, &call.body),
        (_, Some(id), [_]) if method == Method::GET => get_hook(inner, &owner, id),
        (_, Some(id), [_]) if method == Method::PATCH => update_hook(inner, &owner, id, &call.body, false),
        (_, Some(id), [_]) if method == Method::DELETE => {
            let mut state = inner.lock();
            state.hooks.remove(&id);
            state.stats.hook_deletes += 1;
            Reply::empty(StatusCode::NO_CONTENT)
        }
        (_, Some(id), [_, "config"]) if method == Method::GET => config_reply(inner, id),
        (_, Some(id), [_, "config"]) if method == Method::PATCH => update_hook(inner, &owner, id, &call.body, true),
        (_, Some(id), [_, "pings"]) if method == Method::POST => {
            inner.lock().stats.pings += 1;
            ping(inner, &owner, id).await;
            Reply::empty(StatusCode::NO_CONTENT)
        }
        (_, Some(id), [_, "tests"]) if method == Method::POST && matches!(owner, Owner::Repo(_)) => {
            inner.lock().stats.pings += 1;
            test_push(inner, &owner, id).await;
            Reply::empty(StatusCode::NO_CONTENT)
        }
        (_, Some(id), [_, "deliveries"]) if method == Method::GET => {
            let repositories = match &owner {
                Owner::Repo(repo) => Some(format!("repositories/{}/hooks/{id}/deliveries", repo.id)),
                Owner::Org(_) => None,
            };
            list_deliveries(inner, id, call, format!("{}/hooks/{id}/deliveries", owner.base()), repositories, docs)
        }
        (_, Some(id), [_, "deliveries", delivery]) if method == Method::GET => get_delivery(inner, id, delivery, docs),
        (_, Some(id), [_, "deliveries", delivery, "attempts"]) if method == Method::POST => {
            redeliver(inner, id, delivery, docs).await
        }
        _ => Reply::not_found(docs),
    };
    reply.header("x-accepted-oauth-scopes", accepted)
}

/// The App's own endpoints, authenticated by its JWT.
async fn app_route(inner: &Arc<Inner>, app_id: u64, method: &Method, rest: &[&str], call: &Call<'_>) -> Reply {
    let (hook_id, installation_id) = {
        let state = inner.lock();
        match state.apps.get(&app_id) {
            Some(app) => (app.hook_id, app.installation_id),
            None => return Reply::not_found(APP_DOCS),
        }
    };
    let get = *method == Method::GET;
    match rest {
        [] if get => Reply::json(
            StatusCode::OK,
            &json!({"id": app_id, "slug": format!("fake-app-{app_id}"), "node_id": node_id("MDM6QXBw", app_id),
                "name": format!("Fake App {app_id}"), "description": "", "external_url": "https://example.com",
                "html_url": format!("https://github.com/apps/fake-app-{app_id}"), "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z", "permissions": {"metadata": "read", "repository_hooks": "write",
                "organization_hooks": "write"}, "events": []}),
        ),
        ["installations"] if get => {
            Reply::json(StatusCode::OK, &json!([installation_json(app_id, installation_id, Value::Null)]))
        }
        ["installations", id, "access_tokens"] if *method == Method::POST => {
            if id.parse::<u64>().ok() != Some(installation_id) {
                return Reply::not_found(APP_DOCS);
            }
            let token = format!("ghs_{}", uuid::Uuid::new_v4().simple());
            let expires_at = Utc::now() + chrono::Duration::hours(1);
            let mut state = inner.lock();
            state.stats.tokens_minted += 1;
            state.tokens.insert(token.clone(), crate::state::Token { scopes: None, expires_at: Some(expires_at) });
            Reply::json(
                StatusCode::CREATED,
                &json!({"token": token, "expires_at": time(expires_at), "repository_selection": "all",
                    "permissions": {"metadata": "read", "repository_hooks": "write", "organization_hooks": "write"}}),
            )
        }
        ["hook", "config"] if get => config_reply(inner, hook_id),
        ["hook", "config"] if *method == Method::PATCH => {
            let reply = patch_config(inner, hook_id, &call.body, None, APP_DOCS);
            if reply.status.is_success() { config_reply(inner, hook_id) } else { reply }
        }
        ["hook", "deliveries"] if get => {
            list_deliveries(inner, hook_id, call, "app/hook/deliveries".to_string(), None, APP_DOCS)
        }
        ["hook", "deliveries", delivery] if get => get_delivery(inner, hook_id, delivery, APP_DOCS),
        ["hook", "deliveries", delivery, "attempts"] if *method == Method::POST => {
            redeliver(inner, hook_id, delivery, APP_DOCS).await
        }
        _ => Reply::not_found(APP_DOCS),
    }
}

fn installation_json(app_id: u64, installation_id: u64, account: Value) -> Value {
    json!({"id": installation_id, "app_id": app_id, "app_slug": format!("fake-app-{app_id}"), "account": account,
        "repository_selection": "all", "target_type": "Organization",
        "access_tokens_url": format!("https://api.github.com/app/installations/{installation_id}/access_tokens"),
        "permissions": {"metadata": "read", "repository_hooks": "write", "organization_hooks": "write"},
        "events": [], "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"})
}

/// GitHub's time format: RFC 3339, whole seconds, `Z`.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn config_json(hook: &Hook) -> Value {
    let mut config = json!({"url": hook.url, "content_type": hook.content_type, "insecure_ssl": hook.insecure_ssl});
    if hook.secret.is_some() {
        config["secret"] = json!("********");
    }
    config
}

/// `hook` or `org-hook`.
pub(crate) fn hook_json(api_url: &url::Url, base: &str, hook: &Hook) -> Value {
    let url = format!("{api_url}{base}/hooks/{}", hook.id);
    let mut value = json!({
        "type": if matches!(hook.scope, Scope::Org(_)) { "Organization" } else { "Repository" },
        "id": hook.id,
        "name": "web",
        "active": hook.active,
        "events": hook.events,
        "config": config_json(hook),
        "updated_at": time(hook.updated_at),
        "created_at": time(hook.created_at),
        "url": url,
        "ping_url": format!("{url}/pings"),
        "deliveries_url": format!("{url}/deliveries"),
    });
    if let Scope::Repo(_) = hook.scope {
        value["test_url"] = json!(format!("{url}/test"));
        value["last_response"] = json!({
            "code": hook.last_response.code,
            "status": hook.last_response.status,
            "message": hook.last_response.message,
        });
    }
    value
}

fn list_hooks(inner: &Inner, owner: &Owner, call: &Call<'_>) -> Reply {
    let per_page = per_page(call.param("per_page"));
    let page: usize = call.param("page").and_then(|page| page.parse().ok()).filter(|page| *page > 0).unwrap_or(1);
    let mut state = inner.lock();
    state.stats.list_hooks += 1;
    let hooks: Vec<&Hook> = state.hooks.values().filter(|hook| hook.scope == owner.scope()).collect();
    let base = owner.base();
    let items: Vec<Value> = hooks
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|hook| hook_json(&inner.api_url, &base, hook))
        .collect();
    let last = hooks.len().div_ceil(per_page).max(1);
    let mut reply = Reply::json(StatusCode::OK, &Value::Array(items));
    if page < last {
        let link = |page: usize, rel: &str| {
            format!("<{}{base}/hooks?per_page={per_page}&page={page}>; rel=\"{rel}\"", inner.api_url)
        };
        reply = reply.header("link", format!("{}, {}", link(page + 1, "next"), link(last, "last")));
    }
    reply
}

fn get_hook(inner: &Inner, owner: &Owner, id: u64) -> Reply {
    let state = inner.lock();
    match state.hooks.get(&id) {
        Some(hook) => Reply::json(StatusCode::OK, &hook_json(&inner.api_url, &owner.base(), hook)),
        None => Reply::not_found(owner.docs()),
    }
}

fn config_reply(inner: &Inner, id: u64) -> Reply {
    match inner.lock().hooks.get(&id) {
        Some(hook) => Reply::json(StatusCode::OK, &config_json(hook)),
        None => Reply::not_found(DOCS),
    }
}

/// Parses a JSON body; an empty body is `{}`.
fn parse_body(body: &Bytes, docs: &str) -> Result<serde_json::Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(serde_json::Map::new()),
        Ok(_) => Err(Reply::bad_request_body("Body must be an object.", docs)),
        Err(_) => Err(Reply::error(StatusCode::BAD_REQUEST, "Problems parsing JSON", docs)),
    }
}

/// Whether GitHub would accept `url` as a hook URL.
fn valid_hook_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

fn string_list(value: &Value, field: &str, docs: &str) -> Result<Vec<String>, Reply> {
    let invalid = || Reply::bad_request_body(&format!("For 'properties/{field}', {value} is not an array."), docs);
    let items = value.as_array().ok_or_else(invalid)?;
    items.iter().map(|item| item.as_str().map(str::to_string).ok_or_else(invalid)).collect()
}

/// Applies a `config` object to `spec`.
fn apply_config(
    spec: &mut HookSpec,
    insecure_ssl: &mut String,
    config: &serde_json::Map<String, Value>,
    docs: &str,
) -> Result<(), Reply> {
    for (key, value) in config {
        match (key.as_str(), value) {
            ("url", Value::String(url)) => spec.url = url.clone(),
            ("content_type", Value::String(content_type)) => spec.content_type = content_type.clone(),
            ("secret", Value::String(secret)) => spec.secret = Some(secret.clone()).filter(|secret| !secret.is_empty()),
            ("secret", Value::Null) => spec.secret = None,
            ("insecure_ssl", Value::String(value)) => *insecure_ssl = value.clone(),
            ("insecure_ssl", Value::Number(value)) => *insecure_ssl = value.to_string(),
            ("url" | "content_type" | "secret" | "insecure_ssl", other) => {
                return Err(Reply::bad_request_body(
                    &format!("For 'properties/{key}', {other} is not a string."),
                    docs,
                ));
            }
            _ => {}
        }
    }
    if spec.url.is_empty() {
        return Err(Reply::invalid("Config must contain URL for webhooks", Some("url"), docs));
    }
    if !valid_hook_url(&spec.url) {
        return Err(Reply::invalid("url is not a valid URL", Some("url"), docs));
    }
    if !matches!(spec.content_type.as_str(), "json" | "form") {
        return Err(Reply::invalid("content_type must be either 'json' or 'form'", Some("content_type"), docs));
    }
    Ok(())
}

fn duplicate(state: &State, owner: &Owner, url: &str, except: Option<u64>) -> bool {
    state.hooks.values().any(|hook| hook.scope == owner.scope() && hook.url == url && Some(hook.id) != except)
}

fn create_hook(inner: &Arc<Inner>, owner: &Owner, body: &Bytes) -> Reply {
    let docs = owner.docs();
    let body = match parse_body(body, docs) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    match body.get("name") {
        None => {}
        Some(Value::String(name)) if name == "web" => {}
        Some(_) => return Reply::invalid("Name must be web", Some("name"), docs),
    }
    let mut spec = HookSpec {
        url: String::new(),
        events: vec!["push".into()],
        secret: None,
        content_type: "form".into(),
        active: true,
    };
    let mut insecure_ssl = "0".to_string();
    match body.get("config") {
        Some(Value::Object(config)) => {
            if let Err(reply) = apply_config(&mut spec, &mut insecure_ssl, config, docs) {
                return reply;
            }
        }
        None => return Reply::invalid("Config must contain URL for webhooks", Some("url"), docs),
        Some(other) => {
            return Reply::bad_request_body(&format!("For 'properties/config', {other} is not an object."), docs);
        }
    }
    if let Some(events) = body.get("events") {
        match string_list(events, "events", docs) {
            Ok(events) => spec.events = events,
            Err(reply) => return reply,
        }
    }
    match body.get("active") {
        None => {}
        Some(Value::Bool(active)) => spec.active = *active,
        Some(other) => {
            return Reply::bad_request_body(&format!("For 'properties/active', {other} is not a boolean."), docs);
        }
    }
    let (reply, id, ping_now) = {
        let mut state = inner.lock();
        if duplicate(&state, owner, &spec.url, None) {
            return Reply::invalid(&format!("Hook already exists on this {}", owner.noun()), None, docs);
        }
        let id = state.insert_hook(owner.scope(), &spec);
        state.stats.hook_creates += 1;
        if let Some(hook) = state.hooks.get_mut(&id) {
            hook.insecure_ssl = insecure_ssl;
        }
        let Some(hook) = state.hooks.get(&id) else { return Reply::not_found(docs) };
        let value = hook_json(&inner.api_url, &owner.base(), hook);
        let location = value["url"].as_str().unwrap_or_default().to_string();
        (Reply::json(StatusCode::CREATED, &value).header("location", location), id, state.ping_on_create)
    };
    if ping_now {
        // GitHub pings a new hook shortly after creating it, without holding up the answer.
        let (inner, owner) = (Arc::clone(inner), owner.clone());
        tokio::spawn(async move { ping(&inner, &owner, id).await });
    }
    reply
}

/// `PATCH` of a hook (`config_only: false`) or of its config.
fn update_hook(inner: &Inner, owner: &Owner, id: u64, body: &Bytes, config_only: bool) -> Reply {
    let docs = owner.docs();
    let reply = patch_config(inner, id, body, Some(owner), docs);
    if !reply.status.is_success() {
        return reply;
    }
    if config_only {
        return config_reply(inner, id);
    }
    get_hook(inner, owner, id)
}

/// Applies a PATCH body to hook `id`. With an `owner` it is a whole-hook PATCH (`config`,
/// `events`, `add_events`, `remove_events`, `active`); without one, a config PATCH.
fn patch_config(inner: &Inner, id: u64, body: &Bytes, owner: Option<&Owner>, docs: &str) -> Reply {
    let body = match parse_body(body, docs) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let mut state = inner.lock();
    let Some(hook) = state.hooks.get(&id).cloned() else { return Reply::not_found(docs) };
    let mut spec = HookSpec {
        url: hook.url.clone(),
        events: hook.events.clone(),
        secret: hook.secret.clone(),
        content_type: hook.content_type.clone(),
        active: hook.active,
    };
    let mut insecure_ssl = hook.insecure_ssl.clone();
    let whole = owner.is_some();
    let config = if whole {
        match body.get("config") {
            None => None,
            Some(Value::Object(config)) => Some(config.clone()),
            Some(other) => {
                return Reply::bad_request_body(&format!("For 'properties/config', {other} is not an object."), docs);
            }
        }
    } else {
        Some(body.clone())
    };
    if let Some(config) = &config
        && let Err(reply) = apply_config(&mut spec, &mut insecure_ssl, config, docs)
    {
        return reply;
    }
    if whole {
        if let Some(events) = body.get("events") {
            match string_list(events, "events", docs) {
                Ok(events) => spec.events = events,
                Err(reply) => return reply,
            }
        }
        if let Some(add) = body.get("add_events") {
            match string_list(add, "add_events", docs) {
                Ok(add) => spec.events.extend(add.into_iter().filter(|event| !hook.events.contains(event))),
                Err(reply) => return reply,
            }
        }
        if let Some(remove) = body.get("remove_events") {
            match string_list(remove, "remove_events", docs) {
                Ok(remove) => spec.events.retain(|event| !remove.contains(event)),
                Err(reply) => return reply,
            }
        }
        match body.get("active") {
            None => {}
            Some(Value::Bool(active)) => spec.active = *active,
            Some(other) => {
                return Reply::bad_request_body(&format!("For 'properties/active', {other} is not a boolean."), docs);
            }
        }
    }
    if let Some(owner) = owner
        && duplicate(&state, owner, &spec.url, Some(id))
    {
        return Reply::invalid(&format!("Hook already exists on this {}", owner.noun()), None, docs);
    }
    state.stats.hook_updates += 1;
    if let Some(hook) = state.hooks.get_mut(&id) {
        hook.url = spec.url;
        hook.events = spec.events;
        hook.secret = spec.secret;
        hook.content_type = spec.content_type;
        hook.active = spec.active;
        hook.insecure_ssl = insecure_ssl;
        hook.updated_at = Utc::now();
    }
    Reply::empty(StatusCode::OK)
}

impl State {
    /// A `simple-user`-shaped account, or `null`.
    pub(crate) fn account_json_of(&self, login: &str) -> Value {
        match self.accounts.get(&login.to_ascii_lowercase()) {
            Some(account) => account_json(account),
            None => Value::Null,
        }
    }
}

pub(crate) fn account_json(account: &Account) -> Value {
    let login = &account.login;
    json!({
        "login": login, "id": account.id, "node_id": node_id(if account.org { "O_kgDO" } else { "U_kgDO" }, account.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", account.id), "gravatar_id": "",
        "url": format!("https://api.github.com/users/{login}"), "html_url": format!("https://github.com/{login}"),
        "type": if account.org { "Organization" } else { "User" }, "site_admin": false,
    })
}

/// Sends hook `id` a `ping` with the payload GitHub sends: zen, hook_id, hook, and the owner.
async fn ping(inner: &Arc<Inner>, owner: &Owner, id: u64) {
    let (payload, repository_id) = {
        let state = inner.lock();
        let Some(hook) = state.hooks.get(&id) else { return };
        let mut payload = json!({
            "zen": "Design for failure.",
            "hook_id": id,
            "hook": hook_json(&inner.api_url, &owner.base(), hook),
        });
        let repository_id = match owner {
            Owner::Repo(repo) => {
                payload["repository"] = repository_json(&state, repo);
                payload["sender"] = state.account_json_of(&repo.owner);
                Some(repo.id)
            }
            Owner::Org(org) => {
                payload["organization"] = json!({"login": org.login, "id": org.id,
                    "node_id": node_id("O_kgDO", org.id), "url": format!("https://api.github.com/orgs/{}", org.login),
                    "hooks_url": format!("https://api.github.com/orgs/{}/hooks", org.login), "description": ""});
                payload["sender"] = account_json(org);
                None
            }
        };
        (payload, repository_id)
    };
    let Some(target) = inner.target(id, repository_id) else { return };
    inner.deliver(&target, Attempt::new("ping", &payload)).await;
}

/// `POST .../tests`: the latest push, to this hook only, if it subscribes to pushes.
async fn test_push(inner: &Arc<Inner>, owner: &Owner, id: u64) {
    let wants_push = inner.lock().hooks.get(&id).is_some_and(|hook| hook.active && hook.wants("push"));
    let Owner::Repo(repo) = owner else { return };
    if !wants_push {
        return;
    }
    let mut payload: Value =
        github::samples::sample("push").and_then(|text| serde_json::from_str(text).ok()).unwrap_or_else(|| json!({}));
    payload["repository"] = repository_json(&inner.lock(), repo);
    let Some(target) = inner.target(id, Some(repo.id)) else { return };
    inner.deliver(&target, Attempt::new("push", &payload)).await;
}

/// A compact `repository` object for payloads.
fn repository_json(state: &State, repo: &Repo) -> Value {
    let full_name = repo.full_name();
    json!({
        "id": repo.id, "node_id": node_id("R_kgDO", repo.id), "name": repo.name, "full_name": full_name,
        "private": false, "owner": state.account_json_of(&repo.owner),
        "html_url": format!("https://github.com/{full_name}"), "url": format!("https://api.github.com/repos/{full_name}"),
        "hooks_url": format!("https://api.github.com/repos/{full_name}/hooks"), "default_branch": "main",
    })
}

fn per_page(text: Option<&str>) -> usize {
    match text.and_then(|text| text.parse::<usize>().ok()) {
        None | Some(0) => 30,
        Some(n) => n.min(100),
    }
}

/// An opaque cursor: the page starts at deliveries older than `before`.
fn encode_cursor(hook_id: u64, before: u64) -> String {
    base64url(format!("v1:{hook_id}:{before}").as_bytes())
}

fn decode_cursor(cursor: &str, hook_id: u64) -> Option<u64> {
    let text = String::from_utf8(unbase64url(cursor)?).ok()?;
    let mut parts = text.split(':');
    match (parts.next(), parts.next().and_then(|id| id.parse::<u64>().ok()), parts.next(), parts.next()) {
        (Some("v1"), Some(id), Some(before), None) if id == hook_id => before.parse().ok(),
        _ => None,
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(BASE64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn unbase64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let value = BASE64URL.iter().position(|&b| b == c)? as u32;
        n = n << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits & 0xFF) as u8);
        }
    }
    Some(out)
}

/// `hook-delivery-item`.
#[derive(Serialize)]
struct ItemJson<'a> {
    id: u64,
    guid: &'a str,
    delivered_at: String,
    redelivery: bool,
    duration: f64,
    status: &'a str,
    status_code: u16,
    event: &'a str,
    action: Option<&'a str>,
    installation_id: Option<u64>,
    repository_id: Option<u64>,
    throttled_at: Option<String>,
}

impl<'a> ItemJson<'a> {
    /// The item, with the `delivered_at` that `faults` report for it.
    fn of(delivery: &'a RecordedDelivery, faults: &Faults) -> Self {
        Self {
            id: delivery.id,
            guid: &delivery.guid,
            delivered_at: time(faults.reported_time(delivery.id, delivery.delivered_at)),
            redelivery: delivery.redelivery,
            duration: delivery.duration,
            status: &delivery.status,
            status_code: delivery.status_code,
            event: &delivery.event,
            action: delivery.action.as_deref(),
            installation_id: delivery.installation_id,
            repository_id: delivery.repository_id,
            throttled_at: None,
        }
    }
}

/// `hook-delivery`: the payload goes out as the very bytes that were delivered.
#[derive(Serialize)]
struct DeliveryJson<'a> {
    #[serde(flatten)]
    item: ItemJson<'a>,
    url: &'a str,
    request: RequestJson<'a>,
    response: ResponseJson<'a>,
}

#[derive(Serialize)]
struct RequestJson<'a> {
    headers: std::collections::BTreeMap<&'a str, &'a str>,
    payload: Option<Box<RawValue>>,
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    headers: std::collections::BTreeMap<&'a str, &'a str>,
    payload: Option<&'a str>,
}

fn list_deliveries(
    inner: &Inner,
    hook_id: u64,
    call: &Call<'_>,
    path: String,
    repositories_path: Option<String>,
    docs: &str,
) -> Reply {
    inner.purge();
    let per_page = per_page(call.param("per_page"));
    let before = match call.param("cursor") {
        None | Some("") => u64::MAX,
        Some(cursor) => match decode_cursor(cursor, hook_id) {
            Some(before) => before,
            None => return Reply::error(StatusCode::BAD_REQUEST, "Invalid cursor", docs),
        },
    };
    let status = call.param("status");
    if status.is_some_and(|status| !matches!(status, "success" | "failure")) {
        return Reply::bad_request_body("For 'status', must be one of: success, failure.", docs);
    }
    let redelivery = call.param("redelivery").and_then(|value| value.parse::<bool>().ok());
    let mut state = inner.lock();
    state.stats.list_deliveries += 1;
    state.list_pages += 1;
    let alternate = state.list_pages.is_multiple_of(2);
    let Some(hook) = state.hooks.get(&hook_id) else { return Reply::not_found(docs) };
    let mut page: Vec<&RecordedDelivery> = hook
        .deliveries
        .iter()
        .rev()
        .filter(|delivery| delivery.id < before)
        .filter(|delivery| match status {
            Some("success") => (200..400).contains(&delivery.status_code),
            Some(_) => (400..600).contains(&delivery.status_code),
            None => true,
        })
        .filter(|delivery| redelivery.is_none_or(|wanted| delivery.redelivery == wanted))
        .take(per_page + 1)
        .collect();
    let more = page.len() > per_page;
    page.truncate(per_page);
    let items: Vec<ItemJson> = page.iter().map(|delivery| ItemJson::of(delivery, &inner.faults)).collect();
    // Serialising plain structs cannot fail.
    let mut reply = Reply::raw(StatusCode::OK, serde_json::to_vec(&items).unwrap_or_default());
    if let (true, Some(last)) = (more, page.last()) {
        // GitHub's own next links sometimes use the /repositories/{id}/... form; so do ours.
        let path = match repositories_path {
            Some(other) if alternate => other,
            _ => path,
        };
        let mut query = format!("per_page={per_page}&cursor={}", encode_cursor(hook_id, last.id));
        if let Some(status) = status {
            query.push_str(&format!("&status={status}"));
        }
        if let Some(redelivery) = redelivery {
            query.push_str(&format!("&redelivery={redelivery}"));
        }
        reply = reply.header("link", format!("<{}{path}?{query}>; rel=\"next\"", inner.api_url));
    }
    reply
}

fn find_delivery(inner: &Inner, hook_id: u64, delivery: &str) -> Option<RecordedDelivery> {
    let id: u64 = delivery.parse().ok()?;
    inner.purge();
    let state = inner.lock();
    state.hooks.get(&hook_id)?.deliveries.iter().find(|delivery| delivery.id == id).cloned()
}

fn get_delivery(inner: &Inner, hook_id: u64, delivery: &str, docs: &str) -> Reply {
    inner.lock().stats.get_delivery += 1;
    let Some(delivery) = find_delivery(inner, hook_id, delivery) else { return Reply::not_found(docs) };
    let poison = inner.faults.poisoned(delivery.id).unwrap_or_default();
    if let Some(body) = poison.body {
        return Reply::raw(StatusCode::OK, body);
    }
    let payload =
        std::str::from_utf8(&delivery.payload).ok().and_then(|text| RawValue::from_string(text.to_string()).ok());
    let headers = delivery.request_headers.iter().chain(&poison.headers);
    let body = DeliveryJson {
        item: ItemJson::of(&delivery, &inner.faults),
        url: &delivery.url,
        request: RequestJson {
            headers: headers.map(|(name, value)| (name.as_str(), value.as_str())).collect(),
            payload,
        },
        response: ResponseJson {
            headers: delivery.response_headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect(),
            payload: Some(delivery.response_body.as_str()),
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => Reply::raw(StatusCode::OK, bytes),
        Err(_) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", docs),
    }
}

async fn redeliver(inner: &Arc<Inner>, hook_id: u64, delivery: &str, docs: &str) -> Reply {
    inner.lock().stats.redeliver += 1;
    let Some(delivery) = find_delivery(inner, hook_id, delivery) else { return Reply::not_found(docs) };
    match inner.redeliver(&delivery).await {
        Some(_) => Reply::json(StatusCode::ACCEPTED, &json!({})),
        None => Reply::not_found(docs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_opaque() {
        for before in [0, 1, 10_000_000_123, u64::MAX] {
            let cursor = encode_cursor(42, before);
            assert!(cursor.parse::<u64>().is_err());
            assert_eq!(decode_cursor(&cursor, 42), Some(before));
            assert_eq!(decode_cursor(&cursor, 43), None);
        }
        assert_eq!(decode_cursor("2", 42), None);
    }
}

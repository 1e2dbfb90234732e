//! Repository and organization hooks: list, get, create, update, delete, config, ping and test.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Inner;
use crate::deliver::{Attempt, node_id};
use crate::state::{Account, Hook, HookSpec, Repo, Scope, State};

use super::*;

/// Repository and organization hooks, after the owner is known.
pub(crate) async fn hooks_route(
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

pub(crate) fn config_json(hook: &Hook) -> Value {
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

pub(crate) fn list_hooks(inner: &Inner, owner: &Owner, call: &Call<'_>) -> Reply {
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

pub(crate) fn get_hook(inner: &Inner, owner: &Owner, id: u64) -> Reply {
    let state = inner.lock();
    match state.hooks.get(&id) {
        Some(hook) => Reply::json(StatusCode::OK, &hook_json(&inner.api_url, &owner.base(), hook)),
        None => Reply::not_found(owner.docs()),
    }
}

pub(crate) fn config_reply(inner: &Inner, id: u64) -> Reply {
    match inner.lock().hooks.get(&id) {
        Some(hook) => Reply::json(StatusCode::OK, &config_json(hook)),
        None => Reply::not_found(DOCS),
    }
}

/// Parses a JSON body; an empty body is `{}`.
pub(crate) fn parse_body(body: &Bytes, docs: &str) -> Result<serde_json::Map<String, Value>, Reply> {
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
pub(crate) fn valid_hook_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

pub(crate) fn string_list(value: &Value, field: &str, docs: &str) -> Result<Vec<String>, Reply> {
    let invalid = || Reply::bad_request_body(&format!("For 'properties/{field}', {value} is not an array."), docs);
    let items = value.as_array().ok_or_else(invalid)?;
    items.iter().map(|item| item.as_str().map(str::to_string).ok_or_else(invalid)).collect()
}

/// Applies a `config` object to `spec`.
pub(crate) fn apply_config(
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

pub(crate) fn duplicate(state: &State, owner: &Owner, url: &str, except: Option<u64>) -> bool {
    state.hooks.values().any(|hook| hook.scope == owner.scope() && hook.url == url && Some(hook.id) != except)
}

pub(crate) fn create_hook(inner: &Arc<Inner>, owner: &Owner, body: &Bytes) -> Reply {
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
    if let Err(reply) = apply_events_and_active(&mut spec, &body, docs) {
        return reply;
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
pub(crate) fn update_hook(inner: &Inner, owner: &Owner, id: u64, body: &Bytes, config_only: bool) -> Reply {
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
pub(crate) fn patch_config(inner: &Inner, id: u64, body: &Bytes, owner: Option<&Owner>, docs: &str) -> Reply {
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
        if let Err(reply) = apply_events_and_active(&mut spec, &body, docs) {
            return reply;
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
pub(crate) async fn ping(inner: &Arc<Inner>, owner: &Owner, id: u64) {
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
pub(crate) async fn test_push(inner: &Arc<Inner>, owner: &Owner, id: u64) {
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
pub(crate) fn repository_json(state: &State, repo: &Repo) -> Value {
    let full_name = repo.full_name();
    json!({
        "id": repo.id, "node_id": node_id("R_kgDO", repo.id), "name": repo.name, "full_name": full_name,
        "private": false, "owner": state.account_json_of(&repo.owner),
        "html_url": format!("https://github.com/{full_name}"), "url": format!("https://api.github.com/repos/{full_name}"),
        "hooks_url": format!("https://api.github.com/repos/{full_name}/hooks"), "default_branch": "main",
    })
}

/// The `events` and `active` fields of a hook's create or update body, as GitHub validates them.
fn apply_events_and_active(
    spec: &mut HookSpec,
    body: &serde_json::Map<String, Value>,
    docs: &str,
) -> Result<(), Reply> {
    if let Some(events) = body.get("events") {
        spec.events = string_list(events, "events", docs)?;
    }
    match body.get("active") {
        None => Ok(()),
        Some(Value::Bool(active)) => {
            spec.active = *active;
            Ok(())
        }
        Some(other) => {
            Err(Reply::bad_request_body(&format!("For 'properties/active', {other} is not a boolean."), docs))
        }
    }
}

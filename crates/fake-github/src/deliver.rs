//! Delivering events like GitHub's Hookshot: POST to each matching hook, sign, and record what happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;

use crate::Inner;
use crate::state::{Hook, LastResponse, RecordedDelivery, Scope, State};

/// Hookshot's version, as it appears in `User-Agent`.
pub(crate) const HOOKSHOT: &str = "GitHub-Hookshot/5f3a1c9";

/// How long GitHub waits for a hook URL.
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a response body is recorded.
const RESPONSE_BODY_LIMIT: usize = 4096;

/// Everything needed to deliver to one hook, copied out of the state so no lock is held while POSTing.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub hook_id: u64,
    pub url: String,
    pub secret: Option<String>,
    pub content_type: String,
    /// `repository`, `organization` or `integration`.
    pub target_type: &'static str,
    /// The repository, organization or App id.
    pub target_id: u64,
    pub installation_id: Option<u64>,
    pub repository_id: Option<u64>,
}

/// One event to deliver to one hook.
pub(crate) struct Attempt {
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    /// The JSON payload bytes.
    pub payload: Bytes,
    pub redelivery: bool,
}

impl Attempt {
    /// A first attempt of a new event without an action, such as a ping: a fresh guid.
    pub(crate) fn new(event: &str, payload: &serde_json::Value) -> Self {
        Self {
            guid: uuid::Uuid::new_v4().to_string(),
            event: event.into(),
            action: None,
            // Serialising a Value cannot fail: its keys are strings.
            payload: Bytes::from(serde_json::to_vec(payload).unwrap_or_default()),
            redelivery: false,
        }
    }
}

impl Inner {
    /// The hooks that receive `event` for `owner` (`o/r` or `org`), with their delivery details.
    pub(crate) fn targets(&self, owner: &str, event: &str) -> Vec<Target> {
        let state = self.lock();
        let (org_login, repository_id) = match owner.split_once('/') {
            Some((login, name)) => match state.find_repo(login, name) {
                Some(repo) => (login, Some(repo.id)),
                None => return Vec::new(),
            },
            None => (owner, None),
        };
        let concerned = |hook: &Hook| match &hook.scope {
            Scope::Repo(id) => Some(*id) == repository_id,
            Scope::Org(login) => login.eq_ignore_ascii_case(org_login),
            Scope::App(_) => true,
        };
        state
            .hooks
            .values()
            .filter(|hook| hook.wants(event) && concerned(hook))
            .filter_map(|hook| target_of(&state, hook, repository_id))
            .collect()
    }

    /// The delivery details of one hook, whatever its events, or `None` when it is gone.
    pub(crate) fn target(&self, hook_id: u64, repository_id: Option<u64>) -> Option<Target> {
        let state = self.lock();
        target_of(&state, state.hooks.get(&hook_id)?, repository_id)
    }

    /// Delivers `payload` to every matching hook of `owner` under one new guid; returns the delivery ids.
    pub(crate) async fn emit(self: &Arc<Self>, owner: &str, event: &str, payload: Value) -> Vec<u64> {
        let targets = self.targets(owner, event);
        let guid = uuid::Uuid::new_v4().to_string();
        let action = payload.get("action").and_then(Value::as_str).map(str::to_string);
        let mut tasks = tokio::task::JoinSet::new();
        // An App's event names its installation in the payload; without one it is the App's own.
        let named_installation = payload.pointer("/installation/id").and_then(Value::as_u64);
        for mut target in targets {
            if target.installation_id.is_some() && named_installation.is_some() {
                target.installation_id = named_installation;
            }
            let mut payload = payload.clone();
            if let (Some(installation), Some(object)) = (target.installation_id, payload.as_object_mut()) {
                object
                    .entry("installation")
                    .or_insert_with(|| serde_json::json!({"id": installation, "node_id": node_id("MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u", installation)}));
            }
            // Serialising a Value cannot fail: its keys are strings.
            let payload = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
            let attempt = Attempt {
                guid: guid.clone(),
                event: event.to_string(),
                action: action.clone(),
                payload,
                redelivery: false,
            };
            let inner = Arc::clone(self);
            tasks.spawn(async move { inner.deliver(&target, attempt).await });
        }
        let mut ids: Vec<u64> = tasks.join_all().await;
        ids.sort_unstable();
        ids
    }

    /// POSTs one attempt to one hook, records it, and returns the new delivery id.
    pub(crate) async fn deliver(&self, target: &Target, attempt: Attempt) -> u64 {
        let form = target.content_type == "form";
        let body = if form {
            let encoded: String = url::form_urlencoded::byte_serialize(&attempt.payload).collect();
            Bytes::from(format!("payload={encoded}"))
        } else {
            attempt.payload.clone()
        };
        let mut headers = vec![
            ("Accept".to_string(), "*/*".to_string()),
            ("User-Agent".to_string(), HOOKSHOT.to_string()),
            ("X-GitHub-Delivery".to_string(), attempt.guid.clone()),
            ("X-GitHub-Event".to_string(), attempt.event.clone()),
            ("X-GitHub-Hook-ID".to_string(), target.hook_id.to_string()),
            ("X-GitHub-Hook-Installation-Target-ID".to_string(), target.target_id.to_string()),
            ("X-GitHub-Hook-Installation-Target-Type".to_string(), target.target_type.to_string()),
        ];
        if let Some(secret) = &target.secret {
            let secret = github::Secret::new(secret.clone());
            headers.push(("X-Hub-Signature".to_string(), github::signature::sha1(&secret, &body)));
            headers.push(("X-Hub-Signature-256".to_string(), github::signature::sha256(&secret, &body)));
        }
        let content_type = if form { "application/x-www-form-urlencoded" } else { "application/json" };
        headers.push(("content-type".to_string(), content_type.to_string()));

        let delivered_at = Utc::now();
        let started = Instant::now();
        let mut request = self.http.post(&target.url).body(body.clone());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let (status, status_code, response_headers, response_body) = match request.send().await {
            Ok(response) => {
                let code = response.status().as_u16();
                let response_headers = response
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                    .collect();
                let text = response.text().await.unwrap_or_default();
                let mut cut = text.len().min(RESPONSE_BODY_LIMIT);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                let status = if (200..300).contains(&code) {
                    "OK".to_string()
                } else {
                    format!("Invalid HTTP Response: {code}")
                };
                (status, code, response_headers, text[..cut].to_string())
            }
            Err(error) if error.is_timeout() => ("timed out".to_string(), 0, Vec::new(), String::new()),
            Err(_) => ("failed to connect to host".to_string(), 0, Vec::new(), String::new()),
        };
        let duration = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;

        let mut state = self.lock();
        let id = state.delivery_id();
        state.stats.deliveries_made += 1;
        if let Some(hook) = state.hooks.get_mut(&target.hook_id) {
            hook.last_response = LastResponse {
                code: Some(status_code),
                status: if status_code == 0 { "misconfigured".into() } else { "active".into() },
                message: Some(status.clone()),
            };
            hook.deliveries.push(RecordedDelivery {
                id,
                hook_id: target.hook_id,
                guid: attempt.guid,
                event: attempt.event,
                action: attempt.action,
                redelivery: attempt.redelivery,
                status,
                status_code,
                duration,
                delivered_at,
                installation_id: target.installation_id,
                repository_id: target.repository_id,
                url: target.url.clone(),
                request_headers: headers,
                payload: attempt.payload,
                body,
                response_headers,
                response_body,
            });
        }
        id
    }

    /// Delivers a recorded delivery again: same guid and payload, a new id, `redelivery: true`.
    pub(crate) async fn redeliver(&self, original: &RecordedDelivery) -> Option<u64> {
        let target = self.target(original.hook_id, original.repository_id)?;
        let attempt = Attempt {
            guid: original.guid.clone(),
            event: original.event.clone(),
            action: original.action.clone(),
            payload: original.payload.clone(),
            redelivery: true,
        };
        Some(self.deliver(&target, attempt).await)
    }
}

/// A GitHub-looking `node_id`.
pub(crate) fn node_id(prefix: &str, id: u64) -> String {
    format!("{prefix}{id}")
}

/// Where and how `hook` is delivered to, for an event of `repository_id`; `None` when its org or App is gone.
fn target_of(state: &State, hook: &Hook, repository_id: Option<u64>) -> Option<Target> {
    let (target_type, target_id, installation_id, repository_id) = match &hook.scope {
        Scope::Repo(id) => ("repository", *id, None, Some(*id)),
        Scope::Org(login) => ("organization", state.find_org(login)?.id, None, repository_id),
        Scope::App(app_id) => {
            let app = state.apps.get(app_id)?;
            ("integration", app.id, Some(app.installation_id), repository_id)
        }
    };
    Some(Target {
        hook_id: hook.id,
        url: hook.url.clone(),
        secret: hook.secret.clone(),
        content_type: hook.content_type.clone(),
        target_type,
        target_id,
        installation_id,
        repository_id,
    })
}

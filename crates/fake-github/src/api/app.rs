//! The GitHub App: its hook, its hook's config and deliveries, and installations.

use std::sync::Arc;

use chrono::Utc;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Inner;
use crate::deliver::node_id;

use super::*;

/// The App's own endpoints, authenticated by its JWT.
pub(crate) async fn app_route(
    inner: &Arc<Inner>,
    app_id: u64,
    method: &Method,
    rest: &[&str],
    call: &Call<'_>,
) -> Reply {
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

pub(crate) fn installation_json(app_id: u64, installation_id: u64, account: Value) -> Value {
    json!({"id": installation_id, "app_id": app_id, "app_slug": format!("fake-app-{app_id}"), "account": account,
        "repository_selection": "all", "target_type": "Organization",
        "access_tokens_url": format!("https://api.github.com/app/installations/{installation_id}/access_tokens"),
        "permissions": {"metadata": "read", "repository_hooks": "write", "organization_hooks": "write"},
        "events": [], "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"})
}

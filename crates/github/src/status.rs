//! GitHub's refusals as typed errors: the status of an answer, its body and the call it answered become
//! one [`Error`] variant with a sentence that names what to fix.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use crate::Error;
use crate::auth::is_app_path;

/// An answer that was not a success.
pub(crate) struct Answer<'a> {
    /// Its status.
    pub(crate) status: StatusCode,
    /// Its headers.
    pub(crate) headers: &'a HeaderMap,
    /// Its body.
    pub(crate) body: &'a [u8],
}

/// The typed error for a 4xx (or unexpected) status answered to a call on `what`, at `path` below the API
/// root; `app` is the App's id when the client authenticates as a GitHub App.
pub(crate) fn status_error(what: &str, path: &str, method: &Method, answer: Answer<'_>, app: Option<u64>) -> Error {
    let Answer { status, headers, body } = answer;
    let what = what.to_string();
    match status {
        StatusCode::UNAUTHORIZED => match app {
            Some(app_id) if is_app_path(path) => Error::AppCredentials {
                reason: format!(
                    "GitHub rejected the JWT of App {app_id} (401); check the App id and that the private key is the App's"
                ),
            },
            None if is_app_path(path) => Error::AppCredentials {
                reason: "the GitHub App hook needs the App's id and private key, not a token (401)".to_string(),
            },
            _ => Error::Unauthorized,
        },
        StatusCode::FORBIDDEN => {
            let scopes = headers.get("x-oauth-scopes").and_then(|value| value.to_str().ok()).map(str::to_string);
            Error::Forbidden { what, needed: needed_permission(path, method), scopes }
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
pub(crate) fn github_message(body: &[u8]) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

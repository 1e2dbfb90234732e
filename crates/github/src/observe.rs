//! Watching every call the client makes, for metrics: a route template and the answer's status.

use std::sync::Arc;

/// Told about every answer GitHub gave (or the lack of one): `(endpoint, status)`, such as
/// `("GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries", "304")`; the status is `error`
/// when no answer came. Retries are separate calls, so each is told.
pub type Observer = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The route template of a call: names and ids replaced by placeholders, so that a metric label
/// has a handful of values however many repositories and deliveries there are.
pub fn endpoint(method: &str, path: &str) -> String {
    let mut template = String::with_capacity(path.len() + 16);
    let mut segments = path.trim_matches('/').split('/').peekable();
    let mut previous = "";
    while let Some(segment) = segments.next() {
        template.push('/');
        let placeholder = match previous {
            "repos" => {
                // The owner, then the repository.
                template.push_str("{owner}/");
                segments.next();
                Some("{repo}")
            }
            "orgs" => Some("{org}"),
            "hooks" => Some("{hook_id}"),
            "deliveries" => Some("{delivery_id}"),
            "installations" => Some("{installation_id}"),
            _ if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) => Some("{id}"),
            _ => None,
        };
        match placeholder {
            Some(placeholder) => {
                template.push_str(placeholder);
                previous = "";
            }
            None => {
                template.push_str(segment);
                previous = segment;
            }
        }
    }
    format!("{method} {template}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_no_repository_hook_or_delivery() {
        assert_eq!(endpoint("GET", "/repos/octo/hello/hooks"), "GET /repos/{owner}/{repo}/hooks");
        assert_eq!(
            endpoint("GET", "/repos/octo/hello/hooks/42/deliveries"),
            "GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries"
        );
        assert_eq!(
            endpoint("POST", "/orgs/octo/hooks/7/deliveries/99/attempts"),
            "POST /orgs/{org}/hooks/{hook_id}/deliveries/{delivery_id}/attempts"
        );
        assert_eq!(endpoint("GET", "/app/hook/deliveries/5"), "GET /app/hook/deliveries/{delivery_id}");
        assert_eq!(
            endpoint("POST", "/app/installations/12/access_tokens"),
            "POST /app/installations/{installation_id}/access_tokens"
        );
    }
}

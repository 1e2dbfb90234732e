//! Sample webhook payloads written by this project, one per common event, for the fake GitHub (`hookfwd send`
//! sends GitHub's own examples, from `crates/webhooks`).
//!
//! They are GitHub-shaped (same fields and nesting as real deliveries) but every name,
//! id and URL in them is invented: `octo-org/hello-world`, `octo-dev`, and so on.

/// The events that have a sample, in the order `hookfwd send --help` lists them.
pub const EVENTS: &[&str] = &[
    "push",
    "ping",
    "pull_request",
    "issues",
    "issue_comment",
    "check_run",
    "check_suite",
    "workflow_run",
    "workflow_job",
    "release",
];

/// The sample payload of `event`, as pretty-printed JSON.
pub fn sample(event: &str) -> Option<&'static str> {
    Some(match event {
        "push" => include_str!("../samples/push.json"),
        "ping" => include_str!("../samples/ping.json"),
        "pull_request" => include_str!("../samples/pull_request.json"),
        "issues" => include_str!("../samples/issues.json"),
        "issue_comment" => include_str!("../samples/issue_comment.json"),
        "check_run" => include_str!("../samples/check_run.json"),
        "check_suite" => include_str!("../samples/check_suite.json"),
        "workflow_run" => include_str!("../samples/workflow_run.json"),
        "workflow_job" => include_str!("../samples/workflow_job.json"),
        "release" => include_str!("../samples/release.json"),
        _ => return None,
    })
}

/// The `action` of `event`'s sample, or `None` for events without actions (`push`, `ping`).
pub fn default_action(event: &str) -> Option<&'static str> {
    match event {
        "pull_request" | "issues" => Some("opened"),
        "issue_comment" => Some("created"),
        "check_run" | "check_suite" | "workflow_run" | "workflow_job" => Some("completed"),
        "release" => Some("published"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_a_json_object_with_its_default_action() {
        for event in EVENTS {
            let text = sample(event).unwrap_or_else(|| panic!("{event} has no sample"));
            let value: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{event}: {e}"));
            assert!(value.is_object(), "{event}");
            assert_eq!(value.get("action").and_then(|a| a.as_str()), default_action(event), "{event}");
            assert!(value.get("repository").is_some(), "{event} has a repository");
            assert!(value.get("sender").is_some(), "{event} has a sender");
        }
        assert!(sample("no_such_event").is_none());
    }
}

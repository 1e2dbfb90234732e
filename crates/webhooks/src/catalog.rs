//! The catalogue: one example payload per event/action pair, GitHub's own where it publishes one,
//! else generated from GitHub's schema for the pair (`scripts/webhook-catalog.mjs` says which).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::Error;

/// The compressed catalogue, written by `scripts/webhook-catalog.mjs`.
static COMPRESSED: &[u8] = include_bytes!("../data/examples.json.br");

/// The actions an event's bare name picks, in this order, when it has them; else its first example.
const PREFERRED: &[&str] = &["opened", "created", "completed", "published", "requested", "submitted", "added"];

/// Where an example's payload comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// GitHub's published example (`@octokit/webhooks-examples`).
    Example,
    /// Generated from GitHub's schema for the pair (`@octokit/openapi`), which has no example.
    Schema,
}

/// One event/action pair and its payload.
#[derive(Debug, Deserialize)]
pub struct Example {
    /// The event, as `X-GitHub-Event` names it.
    pub event: &'static str,
    /// The payload's `action`, for events that have one.
    #[serde(borrow)]
    pub action: Option<&'static str>,
    /// Where the payload comes from.
    pub origin: Origin,
    /// The payload, compact JSON as GitHub sends it.
    #[serde(borrow)]
    payload: &'static RawValue,
}

impl Example {
    /// `event.action`, or the event alone.
    pub fn name(&self) -> String {
        match self.action {
            Some(action) => format!("{}.{action}", self.event),
            None => self.event.to_string(),
        }
    }

    /// The payload's bytes.
    pub fn payload(&self) -> &'static str {
        self.payload.get()
    }
}

/// The package versions the data was extracted from.
#[derive(Debug, Deserialize)]
pub struct Versions {
    /// `@octokit/webhooks-examples`.
    #[serde(rename = "@octokit/webhooks-examples")]
    pub examples: &'static str,
    /// `@octokit/openapi`.
    #[serde(rename = "@octokit/openapi")]
    pub openapi: &'static str,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'static"))]
struct Catalogue {
    versions: Versions,
    examples: Vec<Example>,
}

fn catalogue() -> &'static Catalogue {
    static TEXT: OnceLock<String> = OnceLock::new();
    static PARSED: OnceLock<Catalogue> = OnceLock::new();
    PARSED.get_or_init(|| {
        let text = TEXT.get_or_init(|| crate::inflate(COMPRESSED));
        // The generator writes it and this crate's tests read every entry: it parses.
        serde_json::from_str(text).expect("the embedded catalogue is valid")
    })
}

/// Every example, sorted by name.
pub fn examples() -> &'static [Example] {
    &catalogue().examples
}

/// The versions of the npm packages the catalogue comes from.
pub fn versions() -> &'static Versions {
    &catalogue().versions
}

/// Every event that has an example, sorted.
pub fn events() -> Vec<&'static str> {
    examples().iter().map(|example| example.event).collect::<BTreeSet<_>>().into_iter().collect()
}

/// The actions of `event`'s examples, sorted (empty for events without actions); `None` for an unknown event.
pub fn actions(event: &str) -> Option<Vec<&'static str>> {
    let mut of_event = examples().iter().filter(|example| example.event == event).peekable();
    of_event.peek()?;
    Some(of_event.filter_map(|example| example.action).collect())
}

/// The example of `event` with `action`, or, without one, the event's usual one (`opened`, `created`…).
pub fn find(event: &str, action: Option<&str>) -> Option<&'static Example> {
    let of_event = || examples().iter().filter(move |example| example.event == event);
    match action {
        Some(action) => of_event().find(|example| example.action == Some(action)),
        None => PREFERRED
            .iter()
            .find_map(|preferred| of_event().find(|example| example.action == Some(preferred)))
            .or_else(|| of_event().find(|example| example.origin == Origin::Example))
            .or_else(|| of_event().next()),
    }
}

/// The example named `event` or `event.action`; a name that is not there gets the nearest one.
pub fn lookup(name: &str) -> Result<&'static Example, Error> {
    // Event names have no dots; actions may (repository_dispatch's are free text).
    let (event, action) = match name.split_once('.') {
        Some((event, action)) => (event, Some(action)),
        None => (name, None),
    };
    if let Some(example) = find(event, action) {
        return Ok(example);
    }
    match (action, actions(event)) {
        (Some(action), Some(known)) => Err(Error::UnknownAction {
            event: event.to_string(),
            action: action.to_string(),
            suggestion: nearest(action, known.into_iter().map(String::from)).map(|action| format!("{event}.{action}")),
        }),
        _ => {
            let names = examples().iter().map(Example::name).chain(events().into_iter().map(String::from));
            Err(Error::UnknownEvent { name: name.to_string(), suggestion: nearest(name, names) })
        }
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a slip.
pub(crate) fn nearest(name: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    let (distance, best) = candidates.map(|candidate| (distance(name, &candidate), candidate)).min()?;
    (distance <= name.chars().count().div_ceil(3).max(2)).then_some(best)
}

/// Levenshtein distance, by characters.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_an_object_with_its_own_action() {
        assert!(examples().len() >= 150, "{} pairs", examples().len());
        for example in examples() {
            let value: serde_json::Value = serde_json::from_str(example.payload()).unwrap();
            assert!(value.is_object(), "{}", example.name());
            if example.event != "repository_dispatch" {
                assert_eq!(value.get("action").and_then(|a| a.as_str()), example.action, "{}", example.name());
            }
        }
        let names: Vec<String> = examples().iter().map(Example::name).collect();
        assert!(names.windows(2).all(|pair| pair[0] < pair[1]), "sorted, each once");
    }

    #[test]
    fn the_data_comes_from_the_pinned_packages() {
        let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/receiver/package.json");
        let package: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(package).unwrap()).unwrap();
        let pinned = &package["dependencies"];
        assert_eq!(pinned["@octokit/webhooks-examples"], versions().examples, "run scripts/webhook-catalog.mjs");
        assert_eq!(pinned["@octokit/openapi"], versions().openapi, "run scripts/webhook-catalog.mjs");
    }

    #[test]
    fn a_bare_event_picks_its_usual_action() {
        assert_eq!(find("pull_request", None).unwrap().action, Some("opened"));
        assert_eq!(find("issue_comment", None).unwrap().action, Some("created"));
        assert_eq!(find("workflow_run", None).unwrap().action, Some("completed"));
        assert_eq!(find("push", None).unwrap().action, None);
        assert_eq!(lookup("pull_request.synchronize").unwrap().name(), "pull_request.synchronize");
        assert_eq!(lookup("workflow_run.completed").unwrap().origin, Origin::Example);
        assert!(actions("issues").unwrap().contains(&"typed"), "schema-only actions are listed too");
        assert_eq!(actions("push"), Some(vec![]));
        assert_eq!(actions("nope"), None);
    }

    #[test]
    fn a_misspelt_name_gets_the_nearest() {
        let error = lookup("isues.opened").unwrap_err();
        assert_eq!(error.to_string(), "GitHub documents no event `isues.opened`; did you mean `issues.opened`?");
        let error = lookup("pull_request.synchronise").unwrap_err();
        assert_eq!(
            error.to_string(),
            "GitHub never sends pull_request with action `synchronise`; did you mean `pull_request.synchronize`?"
        );
        assert_eq!(lookup("pushh").unwrap_err().to_string(), "GitHub documents no event `pushh`; did you mean `push`?");
        assert!(matches!(lookup("zzzzzzzzzzzz"), Err(Error::UnknownEvent { suggestion: None, .. })));
        assert!(matches!(lookup("issues.merged"), Err(Error::UnknownAction { suggestion: None, .. })), "not a slip");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}

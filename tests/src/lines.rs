//! The `--json` lines' schema, `docs/hookfwd-lines.schema.json`, and the check that holds every line a test
//! reads from a `hookfwd --json` to it ([`crate::Running`] checks each run's stdout when it finishes or drops).

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::{Value, json};

/// The schema as written, and its validator.
struct Schema {
    document: Value,
    validator: Validator,
}

/// The schema, built into the tests (so that cargo rebuilds them when it changes) and compiled once.
fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = include_str!("../../docs/hookfwd-lines.schema.json");
        let document: Value = serde_json::from_str(text).expect("docs/hookfwd-lines.schema.json is JSON");
        let validator = compile(&document);
        Schema { document, validator }
    })
}

/// Formats are checked too: `time` and the other instants must be RFC 3339.
fn compile(document: &Value) -> Validator {
    jsonschema::draft202012::options().should_validate_formats(true).build(document).expect("the schema compiles")
}

/// Why `line` is not a valid `--json` line; `None` when it is.
pub fn problem(line: &str) -> Option<String> {
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(error) => return Some(format!("not JSON ({error})")),
    };
    let schema = schema();
    if schema.validator.is_valid(&value) {
        return None;
    }
    // `oneOf` only says no branch matched: say why each branch of the line's type refused it.
    let kind = value["type"].as_str().unwrap_or("(none)");
    let branches = branches(&schema.document, kind);
    if branches.is_empty() {
        return Some(format!("no line has the type {kind}"));
    }
    let reasons: Vec<String> = branches
        .iter()
        .map(|name| {
            let errors: Vec<String> = branch(&schema.document, name)
                .iter_errors(&value)
                .map(|error| format!("{} at `{}`", error, error.instance_path()))
                .collect();
            format!("as {name}: {}", errors.join("; "))
        })
        .collect();
    Some(reasons.join(" | "))
}

/// A validator of the one branch `name`, whose errors say what is wrong rather than that no branch matched.
fn branch(document: &Value, name: &str) -> Validator {
    let mut alone = document.clone();
    if let Some(root) = alone.as_object_mut() {
        root.remove("oneOf");
        root.insert("$ref".into(), json!(format!("#/$defs/{name}")));
    }
    compile(&alone)
}

/// The `$defs` names of the lines whose `type` is `kind`.
fn branches(document: &Value, kind: &str) -> Vec<String> {
    let Some(defs) = document["$defs"].as_object() else { return Vec::new() };
    defs.iter().filter(|(_, def)| def["properties"]["type"]["const"] == kind).map(|(name, _)| name.clone()).collect()
}

/// Panics naming each line of `stdout`, the output of `what`, that is not a valid `--json` line.
pub fn assert_valid(what: &str, stdout: &str) {
    let bad: Vec<String> =
        stdout.lines().filter_map(|line| problem(line).map(|why| format!("{line}\n    {why}"))).collect();
    assert!(bad.is_empty(), "{what} printed lines that docs/hookfwd-lines.schema.json refuses:\n{}", bad.join("\n"));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The example lines of docs/json.md: each line of its `json` code blocks.
    fn documented() -> Vec<String> {
        let text = include_str!("../../docs/json.md");
        let mut lines = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            match line.trim() {
                "```json" => inside = true,
                "```" => inside = false,
                example if inside && !example.is_empty() => lines.push(example.to_string()),
                _ => {}
            }
        }
        lines
    }

    #[test]
    fn every_documented_example_is_valid_and_every_kind_of_line_has_one() {
        let examples = documented();
        assert_valid("docs/json.md", &examples.join("\n"));
        let shown: BTreeSet<String> = examples
            .iter()
            .flat_map(|line| {
                let value: Value = serde_json::from_str(line).unwrap();
                branches(&schema().document, value["type"].as_str().unwrap())
                    .into_iter()
                    .filter(move |name| branch(&schema().document, name).is_valid(&value))
                    .collect::<Vec<_>>()
            })
            .collect();
        let all: BTreeSet<String> = schema().document["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|branch| branch["$ref"].as_str().unwrap().trim_start_matches("#/$defs/").to_string())
            .collect();
        let missing: Vec<&String> = all.difference(&shown).collect();
        assert!(missing.is_empty(), "docs/json.md shows no example of {missing:?}");
    }

    #[test]
    fn a_line_off_the_schema_is_refused_with_the_reason() {
        let good = r#"{"type":"deleted","source":"o/r","hook_id":1,"time":"2026-01-02T03:04:05.678Z"}"#;
        assert_eq!(problem(good), None);
        let old = r#"{"type":"deleted","owner":"o/r","id":1,"time":"2026-01-02T03:04:05.678Z"}"#;
        let why = problem(old).unwrap_or_default();
        assert!(why.contains("as deleted") && why.contains("source"), "{why}");
        let untimed = r#"{"type":"deleted","source":"o/r","hook_id":1}"#;
        assert!(problem(untimed).is_some_and(|why| why.contains("time")));
        let local = r#"{"type":"deleted","source":"o/r","hook_id":1,"time":"2026-01-02 03:04:05"}"#;
        assert!(problem(local).is_some());
        assert!(
            problem(r#"{"type":"nonsense","time":"2026-01-02T03:04:05.678Z"}"#)
                .is_some_and(|why| why.contains("no line"))
        );
        assert!(problem("Ready!").is_some_and(|why| why.starts_with("not JSON")));
    }
}

//! Checks a payload against GitHub's schema for its event and action (the OpenAPI description's
//! webhook schemas, as JSON Schema 2020-12), naming each mismatch by its JSON pointer.
//!
//! GitHub's schemas are not always right about GitHub's own payloads; the mismatches known to be the
//! schema's fault are listed once, in [`FALSE_POSITIVES`], with why, and never reported.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The compressed schemas, written by `scripts/webhook-catalog.mjs`.
static COMPRESSED: &[u8] = include_bytes!("../data/schemas.json.br");

/// Mismatches between GitHub's schemas and GitHub's own payloads that are not the payload's fault, and why.
#[derive(Debug, Clone, Copy)]
pub struct FalsePositive {
    /// Why these are not worth reporting.
    pub reason: &'static str,
    /// The message they have (`missing (required)`), or `""` for any.
    pub message: &'static str,
    /// Each as (`event`, `event.action` or `*`; a JSON pointer where `*` stands for any one segment and
    /// a leading `**` for any number of them).
    pub cases: &'static [(&'static str, &'static str)],
}

/// The known false positives: every mismatch between GitHub's schemas and GitHub's own example payloads
/// (the catalogue's tests check each example against its schema with these left out).
pub const FALSE_POSITIVES: &[FalsePositive] = &[
    FalsePositive {
        reason: "GitHub added the member after recording its example, and its schema requires it now: the \
                 example is older than the schema, not wrong about GitHub",
        message: "missing (required)",
        cases: &[
            // a repository object, wherever it appears (head and base of a pull request, a fork…)
            ("*", "**/has_discussions"),
            ("*", "**/topics"),
            ("*", "**/visibility"),
            ("*", "**/disabled"),
            ("*", "**/reactions"),
            ("*", "/sender/node_id"),
            ("*", "/issue/active_lock_reason"),
            ("*", "/issue/labels/*/description"),
            ("*", "/pull_request/active_lock_reason"),
            ("*", "/pull_request/auto_merge"),
            ("*", "/pull_request/draft"),
            ("branch_protection_rule", "/rule/lock_branch_enforcement_level"),
            ("check_run", "/check_run/node_id"),
            ("check_run", "/check_run/details_url"),
            ("check_run", "**/app/events"),
            ("check_run", "**/app/permissions"),
            ("deployment", "/workflow"),
            ("deployment", "/workflow_run"),
            ("discussion", "**/state_reason"),
            ("discussion_comment", "/discussion/state_reason"),
            ("installation", "/installation/app_slug"),
            ("installation", "/installation/suspended_at"),
            ("installation", "/installation/suspended_by"),
            ("installation_repositories", "/installation/app_slug"),
            ("installation_repositories", "/installation/suspended_at"),
            ("installation_repositories", "/installation/suspended_by"),
            ("installation_repositories", "/requester"),
            ("issue_comment", "/comment/performed_via_github_app"),
            ("label", "/label/description"),
            ("pull_request_review_comment", "/comment/line"),
            ("pull_request_review_comment", "/comment/original_line"),
            ("pull_request_review_comment", "/comment/original_start_line"),
            ("pull_request_review_comment", "/comment/side"),
            ("pull_request_review_comment", "/comment/start_line"),
            ("pull_request_review_comment", "/comment/start_side"),
            ("release", "/release/immutable"),
            ("release", "/release/updated_at"),
            ("repository_vulnerability_alert", "/alert/node_id"),
            ("repository_vulnerability_alert", "/alert/number"),
            ("repository_vulnerability_alert", "/alert/state"),
            ("security_advisory", "/security_advisory/cvss"),
            ("security_advisory", "/security_advisory/cwes"),
            ("sponsorship", "/changes/tier/from/is_one_time"),
            ("status", "/commit/commit/verification/verified_at"),
            ("workflow_job", "/workflow_job/created_at"),
            ("workflow_job", "/workflow_job/head_branch"),
            ("workflow_job", "/workflow_job/run_attempt"),
            ("workflow_job", "/workflow_job/workflow_name"),
            ("workflow_run", "/workflow_run/actor"),
            ("workflow_run", "/workflow_run/path"),
            ("workflow_run", "/workflow_run/triggering_actor"),
        ],
    },
    FalsePositive {
        reason: "GitHub sends an installation's times as Unix seconds in installation events (so do its \
                 examples); the schema allows only a date-time string",
        message: "expected string",
        cases: &[
            ("installation", "/installation/created_at"),
            ("installation", "/installation/updated_at"),
            ("installation_repositories", "/installation/created_at"),
            ("installation_repositories", "/installation/updated_at"),
        ],
    },
    FalsePositive {
        reason: "GitHub's Marketplace examples spell a plan's price model in lower case with dashes \
                 (`per-unit`), the schema only in capitals (`PER_UNIT`)",
        message: "",
        cases: &[("marketplace_purchase", "**/plan/price_model")],
    },
];

/// One mismatch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Where, as a JSON pointer (`/issue/number`); empty for the whole payload.
    pub pointer: String,
    /// What is wrong, in a few words (`expected integer`); never the payload's own values.
    pub message: String,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The schema the payload was checked against (the OpenAPI component's name).
    pub schema: &'static str,
    /// The mismatches, in pointer order; none when the payload matches.
    pub problems: Vec<Problem>,
}

#[derive(Deserialize)]
struct Schemas {
    webhooks: Vec<Webhook>,
    components: Map<String, Value>,
}

#[derive(Deserialize)]
struct Webhook {
    event: String,
    action: Option<String>,
    schema: String,
}

fn schemas() -> &'static Schemas {
    static PARSED: OnceLock<Schemas> = OnceLock::new();
    // The generator writes it and this module's tests use every schema: it parses.
    PARSED.get_or_init(|| serde_json::from_str(&crate::inflate(COMPRESSED)).expect("the embedded schemas are valid"))
}

/// How many compiled schemas a [`Checker`] keeps: each takes about a megabyte, and compiling one again
/// takes milliseconds, so a long run that sees every event stays small.
const KEPT: usize = 16;

/// Checks payloads, compiling each schema when it is needed and keeping the [`KEPT`] used last.
#[derive(Default)]
pub struct Checker {
    /// Compiled validators, the one used last at the back; `None` for a schema that would not compile
    /// (then nothing is reported).
    validators: VecDeque<(&'static str, Option<Arc<Validator>>)>,
}

impl Checker {
    /// A checker with nothing compiled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schema GitHub documents for `event` with `action`, if any.
    pub fn schema_of(event: &str, action: Option<&str>) -> Option<&'static str> {
        let webhooks = &schemas().webhooks;
        let exact = webhooks.iter().find(|hook| hook.event == event && hook.action.as_deref() == action);
        // repository_dispatch's action is the dispatch's own event type: its schema takes any.
        let any = || webhooks.iter().find(|hook| hook.event == event && hook.action.as_deref() == Some("*"));
        exact.or_else(any).map(|hook| hook.schema.as_str())
    }

    /// The validator of `schema`, compiled on first use.
    fn validator(&mut self, schema: &'static str) -> Option<Arc<Validator>> {
        let entry = match self.validators.iter().position(|(name, _)| *name == schema) {
            Some(at) => self.validators.remove(at).expect("the position is in range"),
            None => (schema, compile(schema).map(Arc::new)),
        };
        let validator = entry.1.clone();
        self.validators.push_back(entry);
        if self.validators.len() > KEPT {
            self.validators.pop_front();
        }
        validator
    }

    /// Checks `payload` against the schema of `event` with `action`: `None` when GitHub documents no
    /// schema for them (a custom event, say).
    pub fn check(&mut self, event: &str, action: Option<&str>, payload: &[u8]) -> Option<Report> {
        let schema = Self::schema_of(event, action)?;
        let instance: Value = match serde_json::from_slice(payload) {
            Ok(instance) => instance,
            Err(_) => {
                let problem = Problem { pointer: String::new(), message: "not JSON".into() };
                return Some(Report { schema, problems: vec![problem] });
            }
        };
        let validator = self.validator(schema)?;
        let name = match action {
            Some(action) => format!("{event}.{action}"),
            None => event.to_string(),
        };
        let mut problems = BTreeSet::new();
        for error in validator.iter_errors(&instance) {
            describe(&error, &mut problems);
        }
        let problems = problems.into_iter().filter(|problem| !known(&name, event, problem)).collect();
        Some(Report { schema, problems })
    }
}

/// The validator of one schema: a document of it and every component it uses.
fn compile(schema: &str) -> Option<Validator> {
    let components = &schemas().components;
    let mut used = BTreeSet::new();
    let mut pending = vec![schema.to_string()];
    while let Some(name) = pending.pop() {
        if used.insert(name.clone())
            && let Some(component) = components.get(&name)
        {
            references(component, &mut pending);
        }
    }
    let subset: Map<String, Value> =
        used.into_iter().filter_map(|name| components.get(&name).map(|value| (name, value.clone()))).collect();
    let document = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{schema}"),
        "components": {"schemas": subset},
    });
    jsonschema::draft202012::options().build(&document).ok()
}

fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            if let Some(Value::String(reference)) = members.get("$ref")
                && let Some(name) = reference.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_string());
            }
            members.values().for_each(|value| references(value, out));
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, out)),
        _ => {}
    }
}

/// Whether `problem` of `name` (`event.action`) is a known false positive.
fn known(name: &str, event: &str, problem: &Problem) -> bool {
    FALSE_POSITIVES.iter().any(|known| {
        (known.message.is_empty() || known.message == problem.message)
            && known.cases.iter().any(|(events, pointer)| {
                (*events == "*" || *events == name || *events == event) && matches(pointer, &problem.pointer)
            })
    })
}

/// `pattern` matches `pointer` segment by segment, `*` matching any one segment and a leading `**`
/// any number of them.
fn matches(pattern: &str, pointer: &str) -> bool {
    if let Some(tail) = pattern.strip_prefix("**") {
        return pointer.ends_with(tail) && segments_match(tail, &pointer[pointer.len() - tail.len()..]);
    }
    segments_match(pattern, pointer)
}

fn segments_match(pattern: &str, pointer: &str) -> bool {
    let (mut pattern, mut pointer) = (pattern.split('/'), pointer.split('/'));
    loop {
        match (pattern.next(), pointer.next()) {
            (None, None) => return true,
            (Some(want), Some(got)) if want == "*" || want == got => {}
            _ => return false,
        }
    }
}

/// Adds the mismatches one validation error stands for. For `anyOf`/`oneOf`, where nullable members
/// and alternatives live, the problems are those of the alternative the value came closest to.
fn describe(error: &ValidationError<'_>, out: &mut BTreeSet<Problem>) {
    let pointer = error.instance_path().as_str().to_string();
    let problem = |message: String| Problem { pointer: pointer.clone(), message };
    match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // An alternative of another type (the `null` of a nullable member) says nothing useful.
            let closest = context
                .iter()
                .filter(|errors| {
                    !errors.iter().any(|e| {
                        e.instance_path().as_str() == pointer && matches!(e.kind(), ValidationErrorKind::Type { .. })
                    })
                })
                .min_by_key(|errors| errors.len());
            match closest {
                Some(errors) => errors.iter().for_each(|error| describe(error, out)),
                None => {
                    let mut types: Vec<String> = context
                        .iter()
                        .flatten()
                        .filter(|e| e.instance_path().as_str() == pointer)
                        .filter_map(|e| match e.kind() {
                            ValidationErrorKind::Type { kind } => Some(type_names(kind)),
                            _ => None,
                        })
                        .collect();
                    types.dedup();
                    out.insert(problem(if types.is_empty() {
                        "matches none of the forms its schema allows".into()
                    } else {
                        format!("expected {}", types.join(" or "))
                    }));
                }
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map(str::to_string).unwrap_or_else(|| property.to_string());
            let escaped = name.replace('~', "~0").replace('/', "~1");
            out.insert(Problem { pointer: format!("{pointer}/{escaped}"), message: "missing (required)".into() });
        }
        kind => {
            out.insert(problem(message(kind)));
        }
    }
}

fn message(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::Type { kind } => format!("expected {}", type_names(kind)),
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = match options.as_ref() {
                Value::Array(items) => items.iter().take(8).map(Value::to_string).collect(),
                other => vec![other.to_string()],
            };
            format!("expected one of {}", options.join(", "))
        }
        ValidationErrorKind::Constant { expected_value } => format!("expected {expected_value}"),
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("unexpected member(s) {}", unexpected.join(", "))
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => "matches more than one of the forms its schema allows".into(),
        ValidationErrorKind::Pattern { pattern } => format!("does not match the pattern {pattern}"),
        ValidationErrorKind::MinItems { limit } => format!("expected at least {limit} item(s)"),
        ValidationErrorKind::MaxItems { limit } => format!("expected at most {limit} item(s)"),
        ValidationErrorKind::MinLength { limit } => format!("expected at least {limit} character(s)"),
        ValidationErrorKind::MaxLength { limit } => format!("expected at most {limit} character(s)"),
        ValidationErrorKind::Minimum { limit } => format!("expected at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("expected at most {limit}"),
        _ => "does not match its schema".into(),
    }
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(one) => one.to_string(),
        TypeKind::Multiple(set) => set.iter().map(|one| one.to_string()).collect::<Vec<_>>().join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, payload: &str) -> Report {
        let example = crate::lookup(name).unwrap();
        Checker::new().check(example.event, example.action, payload.as_bytes()).unwrap()
    }

    fn issue_with(number: &str) -> String {
        let mut value: Value = serde_json::from_str(crate::lookup("issues.opened").unwrap().payload()).unwrap();
        value["issue"]["number"] = serde_json::from_str(number).unwrap();
        value.to_string()
    }

    #[test]
    fn every_example_matches_its_schema_but_for_the_known_false_positives() {
        let mut checker = Checker::new();
        let mut failures = Vec::new();
        let mut used = BTreeSet::new();
        for example in crate::examples() {
            let name = example.name();
            let Some(schema) = Checker::schema_of(example.event, example.action) else {
                failures.push(format!("{name}: no schema"));
                continue;
            };
            let Some(validator) = checker.validator(schema) else {
                failures.push(format!("{name}: {schema} does not compile"));
                continue;
            };
            let instance: Value = serde_json::from_str(example.payload()).unwrap();
            let mut problems = BTreeSet::new();
            validator.iter_errors(&instance).for_each(|error| describe(&error, &mut problems));
            for problem in problems {
                let case = FALSE_POSITIVES.iter().enumerate().find_map(|(group, known)| {
                    let message = known.message.is_empty() || known.message == problem.message;
                    let case = known.cases.iter().position(|(events, pointer)| {
                        (*events == "*" || *events == name || *events == example.event)
                            && matches(pointer, &problem.pointer)
                    });
                    case.filter(|_| message).map(|case| (group, case))
                });
                match case {
                    Some(case) => {
                        used.insert(case);
                    }
                    None => failures.push(format!("{name} ({schema}): {}: {}", problem.pointer, problem.message)),
                }
            }
        }
        assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
        assert!(checker.validators.len() <= KEPT, "a run that sees every event keeps {KEPT} schemas compiled");
        for (group, known) in FALSE_POSITIVES.iter().enumerate() {
            for (case, pointer) in known.cases.iter().enumerate() {
                assert!(used.contains(&(group, case)), "{pointer:?} excuses no example any more: remove it");
            }
        }
    }

    #[test]
    fn a_string_where_a_number_belongs_is_named_by_its_pointer() {
        let report = check("issues.opened", &issue_with("\"42\""));
        assert_eq!(report.schema, "webhook-issues-opened");
        assert_eq!(
            report.problems,
            vec![Problem { pointer: "/issue/number".into(), message: "expected integer".into() }]
        );
        assert!(check("issues.opened", &issue_with("42")).problems.is_empty());
    }

    #[test]
    fn a_missing_member_and_a_wrong_action_are_named() {
        let mut value: Value = serde_json::from_str(crate::lookup("issues.opened").unwrap().payload()).unwrap();
        value.as_object_mut().unwrap().remove("repository");
        value["sender"]["login"] = json!(7);
        let report = check("issues.opened", &value.to_string());
        assert_eq!(
            report.problems,
            vec![
                Problem { pointer: "/repository".into(), message: "missing (required)".into() },
                Problem { pointer: "/sender/login".into(), message: "expected string".into() },
            ]
        );
        let report = Checker::new().check("push", None, b"[1]").unwrap();
        assert_eq!(report.problems, vec![Problem { pointer: String::new(), message: "expected object".into() }]);
        let report = Checker::new().check("push", None, b"{").unwrap();
        assert_eq!(report.problems[0].message, "not JSON");
    }

    #[test]
    fn an_event_without_a_schema_is_not_checked() {
        assert_eq!(Checker::new().check("custom", None, b"{}"), None);
        assert_eq!(
            Checker::schema_of("repository_dispatch", Some("deploy-now")),
            Some("webhook-repository-dispatch-sample")
        );
    }

    #[test]
    fn pointer_patterns_match_whole_segments() {
        assert!(matches("/pull_request/labels/*/name", "/pull_request/labels/3/name"));
        assert!(!matches("/pull_request/labels/*/name", "/pull_request/labels/3/name/x"));
        assert!(!matches("/issue", "/issue/number"));
        assert!(matches("**/topics", "/pull_request/head/repo/topics"));
        assert!(matches("**/topics", "/topics"));
        assert!(!matches("**/topics", "/pull_request/subtopics"));
        assert!(matches("**/plan/price_model", "/previous_marketplace_purchase/plan/price_model"));
    }
}

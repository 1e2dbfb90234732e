//! `--check-schema`: each payload checked against GitHub's schema for its event and action, and every
//! mismatch named by its JSON pointer on one feed line (`!!! schema …`) or one `schema` JSON line.
//! It only ever reports: nothing is held back or changed.

use std::collections::{HashSet, VecDeque};

use console::style;
use relay::Outgoing;
use webhooks::{Checker, Report};

use crate::json::{Line, Problem};
use crate::term::{short_guid, visible};

/// How many deliveries are remembered as checked, so that a retried one is reported once.
const REMEMBERED: usize = 4096;

/// How many mismatches a feed line names; the JSON line has them all.
const SHOWN: usize = 5;

/// Checks payloads, each delivery once.
#[derive(Default)]
pub struct SchemaCheck {
    checker: Checker,
    /// The guids checked lately, oldest first (bounded: memory stays flat).
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
}

impl SchemaCheck {
    /// The mismatches of a forwarded delivery's payload, the first time the delivery is seen; `None`
    /// when it matches, when GitHub documents no schema for it, or when it was checked already.
    pub fn forwarded(&mut self, event: &str, action: Option<&str>, guid: &str, request: &Outgoing) -> Option<Report> {
        if !self.seen_set.insert(guid.to_string()) {
            return None;
        }
        self.seen.push_back(guid.to_string());
        if self.seen.len() > REMEMBERED
            && let Some(oldest) = self.seen.pop_front()
        {
            self.seen_set.remove(&oldest);
        }
        self.payload(event, action, &request.payload())
    }

    /// The mismatches of `payload`; `None` when it matches or GitHub documents no schema for it.
    pub fn payload(&mut self, event: &str, action: Option<&str>, payload: &[u8]) -> Option<Report> {
        self.checker.check(event, action, payload).filter(|report| !report.problems.is_empty())
    }
}

/// The feed line: `!!! schema issues.opened [5c1e0a80…]: /issue/number: expected integer; … (webhook-issues-opened)`.
pub fn text(kind: &str, guid: Option<&str>, report: &Report) -> String {
    let guid = guid.map(|guid| format!(" [{}]", short_guid(guid))).unwrap_or_default();
    let mut problems: Vec<String> = report
        .problems
        .iter()
        .take(SHOWN)
        .map(|problem| {
            let pointer = if problem.pointer.is_empty() { "the payload" } else { problem.pointer.as_str() };
            format!("{}: {}", visible(pointer), problem.message)
        })
        .collect();
    if report.problems.len() > SHOWN {
        problems.push(format!("and {} more", report.problems.len() - SHOWN));
    }
    format!(
        "{}  {} schema {}{guid} does not match GitHub's schema ({}): {}",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        style("!!!").yellow(),
        visible(kind),
        report.schema,
        problems.join("; ")
    )
}

/// The JSON line.
pub fn line<'a>(event: &'a str, action: Option<&'a str>, guid: Option<&'a str>, report: &'a Report) -> Line<'a> {
    Line::Schema { event, action, guid, schema: report.schema, problems: Problem::all(report) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let problem = |pointer: &str| webhooks::Problem { pointer: pointer.into(), message: "expected integer".into() };
        Report { schema: "webhook-issues-opened", problems: (0..7).map(|n| problem(&format!("/a/{n}"))).collect() }
    }

    #[test]
    fn the_line_names_the_first_pointers_and_counts_the_rest() {
        let text = text("issues.opened", Some("5c1e0a80-0000-4000-8000-000000000000"), &report());
        assert!(
            text.ends_with(
                "schema issues.opened [5c1e0a80…] does not match GitHub's schema (webhook-issues-opened): \
                 /a/0: expected integer; /a/1: expected integer; /a/2: expected integer; /a/3: expected integer; \
                 /a/4: expected integer; and 2 more"
            ),
            "{text}"
        );
        let report = report();
        let json = line("issues", Some("opened"), None, &report).to_json();
        assert!(json.starts_with(r#"{"type":"schema","event":"issues","action":"opened","schema":"webhook-issues-opened","problems":[{"pointer":"/a/0","message":"expected integer"}"#), "{json}");
    }

    #[test]
    fn a_delivery_is_checked_once_and_a_form_payload_is_read_from_its_field() {
        let mut check = SchemaCheck::default();
        let body = br#"{"action":"opened","issue":{"number":"1"}}"#;
        let request = Outgoing::synthetic("issues", body, None);
        let first = check.forwarded("issues", Some("opened"), "g1", &request);
        assert!(first.is_some_and(|report| report.problems.iter().any(|p| p.pointer == "/issue/number")));
        assert_eq!(check.forwarded("issues", Some("opened"), "g1", &request), None, "a retry is not reported again");
        let form = Outgoing {
            headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
            body: format!("payload={}", form_urlencoded::byte_serialize(body).collect::<String>()).into_bytes(),
        };
        assert_eq!(&*form.payload(), body);
        assert_eq!(check.forwarded("custom", None, "g2", &request), None, "no schema, nothing to say");
    }
}

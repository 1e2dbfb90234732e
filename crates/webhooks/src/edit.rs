//! Edits to a payload before it is signed: `--set PATH=VALUE`, and a payload made to follow `--repo`.
//!
//! A payload is parsed only along the edited paths: every member the edits do not reach keeps its
//! bytes (number forms, escapes, key order), so that an edited GitHub payload still reads as GitHub's.

use serde_json::value::RawValue;

use crate::catalog::{distance, nearest};
use crate::error::Error;

/// One `PATH=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The path as given, for messages.
    path: String,
    /// The path's segments, dots unescaped.
    segments: Vec<String>,
    /// The value as JSON text.
    value: String,
}

/// A path an edit created rather than changed, and the existing path nearest to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The edit's path.
    pub path: String,
    /// The nearest path the payload had, as `--set` spells it.
    pub nearest: Option<String>,
}

/// A payload after its edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The JSON bytes.
    pub payload: Vec<u8>,
    /// The edits whose path was not in the payload, in order.
    pub missing: Vec<Missing>,
}

impl Edit {
    /// `PATH=VALUE`, where VALUE is JSON when it parses as JSON (`42`, `true`, `{"a":1}`), else a string.
    pub fn parse(edit: &str) -> Result<Self, Error> {
        let (path, value) = split(edit)?;
        let value = match serde_json::from_str::<&RawValue>(value) {
            Ok(json) => json.get().to_string(),
            Err(_) => serde_json::Value::from(value).to_string(),
        };
        Ok(Self { path: path.to_string(), segments: segments(edit, path)?, value })
    }

    /// `PATH=VALUE` with VALUE always a string (`--set-string`).
    pub fn string(edit: &str) -> Result<Self, Error> {
        let (path, value) = split(edit)?;
        Ok(Self {
            path: path.to_string(),
            segments: segments(edit, path)?,
            value: serde_json::Value::from(value).to_string(),
        })
    }

    /// Sets `path` to the string `value`, for edits the program makes (such as `--action`).
    pub fn set_string(path: &str, value: &str) -> Self {
        let segments = path.split('.').map(str::to_string).collect();
        Self { path: path.to_string(), segments, value: serde_json::Value::from(value).to_string() }
    }

    /// The path as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Applies `edits` to `payload`, a JSON object, in order.
    pub fn apply(payload: &[u8], edits: &[Edit]) -> Result<Edited, Error> {
        let mut root = Node::parse(payload).ok_or(Error::NotAnObject)?;
        if !matches!(root.expand(), Ok(Expanded::Container)) || matches!(root, Node::Array(_)) {
            return Err(Error::NotAnObject);
        }
        let mut missing = Vec::new();
        for edit in edits {
            let mut created = false;
            root.set(edit, 0, &mut created)?;
            if created {
                missing.push(Missing { path: edit.path.clone(), nearest: nearest_path(payload, &edit.path) });
            }
        }
        Ok(Edited { payload: root.to_json().into_bytes(), missing })
    }
}

fn split(edit: &str) -> Result<(&str, &str), Error> {
    edit.split_once('=').ok_or_else(|| Error::NotAnEdit { edit: edit.to_string() })
}

/// A path's segments: split at dots, except `\.`, which is a dot in a name (`\\` is a backslash).
fn segments(edit: &str, path: &str) -> Result<Vec<String>, Error> {
    if path.is_empty() {
        return Err(Error::EmptyPath { edit: edit.to_string() });
    }
    let mut segments = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('.' | '\\')) => segments.last_mut().expect("never empty").push(next),
                Some(other) => segments.last_mut().expect("never empty").extend(['\\', other]),
                None => segments.last_mut().expect("never empty").push('\\'),
            },
            '.' => segments.push(String::new()),
            c => segments.last_mut().expect("never empty").push(c),
        }
    }
    if segments.iter().any(String::is_empty) {
        return Err(Error::EmptySegment { edit: edit.to_string() });
    }
    Ok(segments)
}

/// A JSON value parsed only as deep as an edit needed: the rest stays as its original text.
#[derive(Debug)]
enum Node {
    Raw(Box<RawValue>),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
}

/// What [`Node::expand`] found.
enum Expanded {
    Container,
    Null,
}

impl Node {
    fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Box<RawValue>>(bytes).ok().map(Node::Raw)
    }

    /// Parses one level of a raw object or array; a scalar is an error naming its kind.
    fn expand(&mut self) -> Result<Expanded, &'static str> {
        let Node::Raw(raw) = self else { return Ok(Expanded::Container) };
        let text = raw.get();
        // The text is valid JSON (serde_json produced it), so each parse below succeeds.
        *self = match text.as_bytes()[0] {
            b'{' => Node::Object(
                serde_json::from_str::<Members>(text)
                    .expect("a raw object parses")
                    .0
                    .into_iter()
                    .map(|(key, value)| (key, Node::Raw(value)))
                    .collect(),
            ),
            b'[' => Node::Array(
                serde_json::from_str::<Vec<Box<RawValue>>>(text)
                    .expect("a raw array parses")
                    .into_iter()
                    .map(Node::Raw)
                    .collect(),
            ),
            b'n' => return Ok(Expanded::Null),
            b'"' => return Err("a string"),
            b't' | b'f' => return Err("a boolean"),
            _ => return Err("a number"),
        };
        Ok(Expanded::Container)
    }

    /// Sets `edit`'s path from segment `depth` on; `created` says whether a member had to be added.
    fn set(&mut self, edit: &Edit, depth: usize, created: &mut bool) -> Result<(), Error> {
        let prefix = || edit.segments[..depth].join(".");
        match self.expand() {
            Ok(Expanded::Container) => {}
            // A null member (an issue's `milestone`, say) is filled in as a new object.
            Ok(Expanded::Null) => {
                *created = true;
                *self = Node::Object(Vec::new());
            }
            Err(kind) => return Err(Error::ThroughScalar { path: edit.path.clone(), scalar: prefix(), kind }),
        }
        let segment = &edit.segments[depth];
        let last = depth + 1 == edit.segments.len();
        let child = match self {
            Node::Object(members) => match members.iter().position(|(key, _)| key == segment) {
                Some(at) => &mut members[at].1,
                None => {
                    *created = true;
                    let fresh = if last { Node::Raw(raw(&edit.value)) } else { Node::Object(Vec::new()) };
                    // A payload's `action` comes first, where GitHub puts it; anything else goes last.
                    let at = if depth == 0 && segment == "action" { 0 } else { members.len() };
                    members.insert(at, (segment.clone(), fresh));
                    &mut members[at].1
                }
            },
            Node::Array(items) => {
                let index: usize =
                    segment.parse().map_err(|_| Error::NotAnIndex { path: edit.path.clone(), array: prefix() })?;
                let len = items.len();
                items.get_mut(index).ok_or_else(|| Error::OutOfRange {
                    path: edit.segments[..=depth].join("."),
                    array: prefix(),
                    len,
                })?
            }
            Node::Raw(_) => unreachable!("expanded above"),
        };
        if last {
            *child = Node::Raw(raw(&edit.value));
            Ok(())
        } else {
            child.set(edit, depth + 1, created)
        }
    }

    fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Node::Raw(raw) => out.push_str(raw.get()),
            Node::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(key.as_str()).to_string());
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
        }
    }

    /// The member at `path` (object keys only).
    fn get_mut(&mut self, path: &[&str]) -> Option<&mut Node> {
        let Some((first, rest)) = path.split_first() else { return Some(self) };
        self.expand().ok()?;
        let Node::Object(members) = self else { return None };
        members.iter_mut().find(|(key, _)| key == first)?.1.get_mut(rest)
    }

    /// The string this node holds, if it is one.
    fn as_str(&self) -> Option<String> {
        match self {
            Node::Raw(raw) => serde_json::from_str(raw.get()).ok(),
            _ => None,
        }
    }

    /// Rewrites every string under this node with `change` (only those it changes lose their form).
    fn map_strings(&mut self, change: &dyn Fn(&str) -> Option<String>) {
        if self.expand().is_err() {
            if let Some(text) = self.as_str()
                && let Some(changed) = change(&text)
            {
                *self = Node::Raw(raw(&serde_json::Value::from(changed).to_string()));
            }
            return;
        }
        match self {
            Node::Object(members) => members.iter_mut().for_each(|(_, value)| value.map_strings(change)),
            Node::Array(items) => items.iter_mut().for_each(|item| item.map_strings(change)),
            Node::Raw(_) => {}
        }
    }
}

/// JSON text this module produced or checked.
fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("the value is JSON")
}

/// An object's members in order, each value as its original text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// The path in `payload` nearest to `path`, by edit distance (ties: the shorter path).
fn nearest_path(payload: &[u8], path: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let mut paths = Vec::new();
    collect(&value, String::new(), &mut paths);
    let best = paths.iter().min_by_key(|known| (distance(path, known), known.len()))?;
    // Far-off guesses help no one; the longest existing prefix is a better hint then.
    nearest(path, std::iter::once(best.clone()))
        .or_else(|| paths.into_iter().filter(|known| path.starts_with(&format!("{known}."))).max_by_key(String::len))
}

fn collect(value: &serde_json::Value, prefix: String, paths: &mut Vec<String>) {
    let join = |name: &str| if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
    match value {
        serde_json::Value::Object(members) => {
            for (key, value) in members {
                let path = join(&key.replace('\\', "\\\\").replace('.', "\\."));
                paths.push(path.clone());
                collect(value, path, paths);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let path = join(&index.to_string());
                paths.push(path.clone());
                collect(item, path, paths);
            }
        }
        _ => {}
    }
}

/// The payload made to come from `owner/repo`: its repository's name, full name and URLs, the
/// repository owner's and the sender's login and URLs (and the organization's, when it is the owner).
pub fn follow_repo(payload: &[u8], owner: &str, repo: &str) -> Result<Vec<u8>, Error> {
    let mut root = Node::parse(payload).ok_or(Error::NotAnObject)?;
    let full_name = format!("{owner}/{repo}");
    let old_full = root.get_mut(&["repository", "full_name"]).and_then(|node| node.as_str());
    let old_owner = root.get_mut(&["repository", "owner", "login"]).and_then(|node| node.as_str());
    if let Some(old_full) = old_full.filter(|old| !old.is_empty()) {
        root.map_strings(&|text| text.contains(&old_full).then(|| text.replace(&old_full, &full_name)));
    }
    let old_sender = root.get_mut(&["sender", "login"]).and_then(|node| node.as_str());
    let mut accounts: Vec<(&[&str], Option<String>)> =
        vec![(&["repository", "owner"], old_owner.clone()), (&["sender"], old_sender)];
    let organization = root.get_mut(&["organization", "login"]).and_then(|node| node.as_str());
    if organization.is_some() && organization == old_owner {
        accounts.push((&["organization"], organization));
    }
    for (path, old_login) in accounts {
        let Some(account) = root.get_mut(path) else { continue };
        if let Some(old_login) = old_login.filter(|old| !old.is_empty()) {
            account.map_strings(&|text| replace_login(text, &old_login, owner));
        }
        if let Some(login) = account.get_mut(&["login"]) {
            *login = Node::Raw(raw(&serde_json::Value::from(owner).to_string()));
        }
    }
    for (path, value) in [(&["repository", "name"][..], repo), (&["repository", "full_name"], &full_name)] {
        if let Some(node) = root.get_mut(path) {
            *node = Node::Raw(raw(&serde_json::Value::from(value).to_string()));
        }
    }
    Ok(root.to_json().into_bytes())
}

/// `…/users/OLD/repos` → `…/users/NEW/repos`: the login as a whole URL segment only.
fn replace_login(text: &str, old: &str, new: &str) -> Option<String> {
    let needle = format!("/{old}");
    if !text.contains(&needle) {
        return None;
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        out.push_str(&rest[..at]);
        if after.is_empty() || after.starts_with(['/', '{', '?', '#']) {
            out.push('/');
            out.push_str(new);
        } else {
            out.push_str(&needle);
        }
        rest = after;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(payload: &str, edits: &[&str]) -> Result<Edited, Error> {
        let edits = edits.iter().map(|edit| Edit::parse(edit)).collect::<Result<Vec<_>, _>>()?;
        Edit::apply(payload.as_bytes(), &edits)
    }

    fn text(edited: Edited) -> String {
        String::from_utf8(edited.payload).unwrap()
    }

    #[test]
    fn a_value_is_json_when_it_parses_else_a_string() {
        let out = apply(r#"{"issue":{"number":1,"title":"x"}}"#, &["issue.number=42", "issue.title=hello"]).unwrap();
        assert_eq!(text(out), r#"{"issue":{"number":42,"title":"hello"}}"#);
        let out = apply("{}", &["a=true", "b=null", "c={\"x\": [1]}", "d=\"quoted\"", "e=feature/x", "f=", "g=1.50"]);
        assert_eq!(
            text(out.unwrap()),
            r#"{"a":true,"b":null,"c":{"x": [1]},"d":"quoted","e":"feature/x","f":"","g":1.50}"#
        );
        let forced = Edit::string("issue.number=42").unwrap();
        assert_eq!(text(Edit::apply(br#"{"issue":{"number":1}}"#, &[forced]).unwrap()), r#"{"issue":{"number":"42"}}"#);
    }

    #[test]
    fn members_the_edits_do_not_reach_keep_their_bytes_and_order() {
        let payload =
            r#"{"zen": "é \u00e9",  "n": 1.50, "pull_request": {"head": {"ref": "main", "sha": "abc"}, "z": [1, 2]}}"#;
        let out = apply(payload, &["pull_request.head.ref=feature/x"]).unwrap();
        assert!(out.missing.is_empty());
        assert_eq!(
            text(out),
            r#"{"zen":"é \u00e9","n":1.50,"pull_request":{"head":{"ref":"feature/x","sha":"abc"},"z":[1, 2]}}"#
        );
    }

    #[test]
    fn array_indices_reach_items_and_past_the_end_is_an_error() {
        let payload = r#"{"commits":[{"message":"a"},{"message":"b"}]}"#;
        let out = apply(payload, &["commits.1.message=fix: it"]).unwrap();
        assert_eq!(text(out), r#"{"commits":[{"message":"a"},{"message":"fix: it"}]}"#);
        let error = apply(payload, &["commits.2.message=x"]).unwrap_err();
        assert_eq!(error, Error::OutOfRange { path: "commits.2".into(), array: "commits".into(), len: 2 });
        assert_eq!(error.to_string(), "`commits.2` is past the end of `commits`, which has 2 item(s)");
        let error = apply(payload, &["commits.first.message=x"]).unwrap_err();
        assert!(matches!(error, Error::NotAnIndex { .. }), "{error}");
    }

    #[test]
    fn setting_through_a_scalar_is_an_error_naming_it() {
        let error = apply(r#"{"issue":{"number":1}}"#, &["issue.number.value=2"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`issue.number.value` goes through `issue.number`, which is a number, not an object or an array"
        );
        let error = apply(r#"{"ref":"main"}"#, &["ref.name=x"]).unwrap_err();
        assert!(matches!(error, Error::ThroughScalar { kind: "a string", .. }), "{error}");
    }

    #[test]
    fn an_empty_path_or_segment_or_no_equals_is_refused() {
        assert_eq!(
            Edit::parse("=1").unwrap_err().to_string(),
            "`=1` has an empty path; give one such as issue.title=hello"
        );
        assert!(matches!(Edit::parse("a..b=1"), Err(Error::EmptySegment { .. })));
        assert!(matches!(Edit::parse("a.=1"), Err(Error::EmptySegment { .. })));
        assert!(matches!(Edit::string(".a=1"), Err(Error::EmptySegment { .. })));
        assert!(matches!(Edit::parse("issue.title"), Err(Error::NotAnEdit { .. })));
        // Only the first `=` splits: values may hold more.
        let out = apply("{}", &["q=a=b"]).unwrap();
        assert_eq!(text(out), r#"{"q":"a=b"}"#);
    }

    #[test]
    fn an_escaped_dot_is_part_of_a_name() {
        let out = apply(r#"{"labels":{"a.b":1}}"#, &[r"labels.a\.b=2"]).unwrap();
        assert!(out.missing.is_empty());
        assert_eq!(text(out), r#"{"labels":{"a.b":2}}"#);
    }

    #[test]
    fn a_path_not_in_the_payload_is_created_and_named_with_the_nearest() {
        let payload = r#"{"issue":{"title":"x","milestone":null}}"#;
        let out = apply(payload, &["issue.titel=y", "issue.milestone.title=v1", "extra.deep=1"]).unwrap();
        assert_eq!(
            out.missing,
            vec![
                Missing { path: "issue.titel".into(), nearest: Some("issue.title".into()) },
                Missing { path: "issue.milestone.title".into(), nearest: Some("issue.milestone".into()) },
                Missing { path: "extra.deep".into(), nearest: None },
            ]
        );
        assert_eq!(text(out), r#"{"issue":{"title":"x","milestone":{"title":"v1"},"titel":"y"},"extra":{"deep":1}}"#);
    }

    #[test]
    fn a_new_action_goes_first_where_github_puts_it() {
        let out = Edit::apply(br#"{"ref":"main"}"#, &[Edit::set_string("action", "a\"b")]).unwrap();
        assert_eq!(text(out), r#"{"action":"a\"b","ref":"main"}"#);
        let out = apply(r#"{"issue":{"n":1}}"#, &["issue.action=x"]).unwrap();
        assert_eq!(text(out), r#"{"issue":{"n":1,"action":"x"}}"#, "only at the top");
    }

    #[test]
    fn only_an_object_can_be_edited() {
        for payload in ["[1]", "1", "not json", ""] {
            assert_eq!(apply(payload, &["a=1"]).unwrap_err(), Error::NotAnObject, "{payload}");
        }
    }

    #[test]
    fn following_a_repo_renames_the_repository_its_owner_and_the_sender() {
        let example = crate::find("issues", Some("opened")).unwrap();
        let out = follow_repo(example.payload().as_bytes(), "octo-org", "hello-world").unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["repository"]["full_name"], "octo-org/hello-world");
        assert_eq!(value["repository"]["name"], "hello-world");
        assert_eq!(value["repository"]["owner"]["login"], "octo-org");
        assert_eq!(value["sender"]["login"], "octo-org");
        assert_eq!(value["repository"]["html_url"], "https://github.com/octo-org/hello-world");
        assert_eq!(value["issue"]["repository_url"], "https://api.github.com/repos/octo-org/hello-world");
        assert_eq!(value["sender"]["repos_url"], "https://api.github.com/users/octo-org/repos");
        let original: serde_json::Value = serde_json::from_str(example.payload()).unwrap();
        assert_eq!(value["issue"]["number"], original["issue"]["number"], "the rest is as it was");
        assert!(!String::from_utf8(out).unwrap().contains("Codertocat/Hello-World"));
    }

    #[test]
    fn a_login_is_replaced_only_as_a_whole_segment() {
        assert_eq!(
            replace_login("https://x/users/Cat/repos", "Cat", "Dog").as_deref(),
            Some("https://x/users/Dog/repos")
        );
        assert_eq!(replace_login("https://x/users/Cats", "Cat", "Dog").as_deref(), Some("https://x/users/Cats"));
        assert_eq!(replace_login("https://x/Cat{/other}", "Cat", "Dog").as_deref(), Some("https://x/Dog{/other}"));
        assert_eq!(replace_login("nothing", "Cat", "Dog"), None);
    }
}

//! Filters on deliveries: a jq expression (run by jaq) that says whether a delivery goes to a target.
//!
//! The expression runs on the delivery's payload, with three variables bound:
//!
//! - `$headers`: the delivery's request headers, an object keyed by lower-case name
//!   (`$headers["x-github-event"]`);
//! - `$event`: the event name (`pull_request`);
//! - `$action`: the payload's `action`, or `null` for events without one.
//!
//! A delivery **matches** when the expression's first output is `true`. So:
//!
//! - several outputs: only the first counts (`.a, .b` is `.a`), and the rest are never computed;
//! - no output (`select(false)`, `empty`): no match;
//! - `false` or `null`: no match;
//! - any other value (a number, a string, an object: what `select(…)` yields when it lets the payload
//!   through): [`FilterError::NotBoolean`], since `select(.x)` and `.x` would otherwise silently be
//!   "no" for every delivery;
//! - an error (`.a.b` on a string, `error("…")`, `halt`): [`FilterError::Failed`].
//!
//! The caller counts an error as "no" (the delivery is not sent to that target) and warns once per
//! filter, not once per delivery: a filter that fails on some payloads would otherwise flood the feed.
//!
//! `env` and `$ENV` are not available: a filter has no business with the process's environment,
//! which holds the tokens, and an error message built from it would print them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, Vars, data::JustLut};
use jaq_json::Val;
use serde::Deserialize;

/// The variables a filter may use, in the order their values are given to [`Vars::new`].
const GLOBALS: [&str; 3] = ["$headers", "$event", "$action"];

/// Native filters left out: `env` would hand the process's environment (tokens) to the expression.
const LEFT_OUT: [&str; 1] = ["env"];

type Data = JustLut<Val>;

/// A compiled jq expression that decides whether a delivery goes to a target.
///
/// Compiled once ([`Filter::parse`]), run for each delivery ([`Filter::matches`]); cloning is cheap.
#[derive(Clone)]
pub struct Filter {
    /// The expression as written, for messages.
    expr: Arc<str>,
    /// The compiled program.
    program: Arc<jaq_core::compile::Filter<Native<Data>>>,
}

/// Why a filter could not be compiled or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The expression is not valid jq, or uses a filter or variable that does not exist.
    #[error("the filter does not compile: {message} at column {column}")]
    Compile {
        /// jaq's message: `expected term`, `undefined filter foo/1`.
        message: String,
        /// Where the error is, 1-based, in characters.
        column: usize,
    },
    /// The expression failed on this delivery.
    #[error("the filter failed: {message}")]
    Failed {
        /// jaq's message.
        message: String,
    },
    /// The expression's first output was neither `true` nor `false` (nor `null`).
    #[error("the filter gave {found}, not true or false")]
    NotBoolean {
        /// The kind of value: `a string`, `an object`.
        found: &'static str,
    },
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&&*self.expr).finish()
    }
}

impl Filter {
    /// Compiles `expr`.
    ///
    /// # Errors
    /// [`FilterError::Compile`], with jaq's first message and its column.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs::<Data>()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, ..)| !LEFT_OUT.contains(name));
        let arena = Arena::default();
        let file = File { code: expr, path: () };
        let modules = Loader::new(defs).load(&arena, file).map_err(|errors| load_error(expr, errors))?;
        let program =
            Compiler::default().with_funs(funs).with_global_vars(GLOBALS).compile(modules).map_err(|errors| {
                let (name, undefined) = errors
                    .into_iter()
                    .flat_map(|(_, errs)| errs)
                    .next()
                    // jaq returns Err only with at least one error.
                    .unwrap_or(("", jaq_core::compile::Undefined::Mod));
                let message = match undefined {
                    jaq_core::compile::Undefined::Filter(arity) => {
                        format!("undefined filter {name}/{arity}")
                    }
                    other => format!("undefined {} {name}", other.as_str()),
                };
                compile_error(expr, message, name)
            })?;
        Ok(Filter { expr: expr.into(), program: Arc::new(program) })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Whether the delivery matches: the expression's first output is `true` (see the module doc).
    ///
    /// `headers` are keyed by lower-case name; `action` is the payload's `action`, if any.
    ///
    /// # Errors
    /// [`FilterError::Failed`] when the expression fails on this payload, and
    /// [`FilterError::NotBoolean`] when its first output is not a boolean (nor `null`).
    pub fn matches(
        &self,
        payload: &serde_json::Value,
        headers: &BTreeMap<String, String>,
        event: &str,
        action: Option<&str>,
    ) -> Result<bool, FilterError> {
        let input = to_val(payload)?;
        let headers =
            Val::obj(headers.iter().map(|(name, value)| (Val::from(name.clone()), Val::from(value.clone()))).collect());
        let action = action.map_or(Val::Null, |a| Val::from(a.to_owned()));
        let vars = Vars::new([headers, Val::from(event.to_owned()), action]);
        let ctx = Ctx::<Data>::new(&self.program.lut, vars);
        let first = self.program.id.run((ctx, input)).next();
        match first {
            None => Ok(false),
            Some(Ok(Val::Bool(b))) => Ok(b),
            Some(Ok(Val::Null)) => Ok(false),
            Some(Ok(other)) => Err(FilterError::NotBoolean { found: kind(&other) }),
            Some(Err(exn)) => Err(FilterError::Failed {
                message: match exn.get_err() {
                    // `error("text")` says text, not "text".
                    Ok(error) => match error.into_val() {
                        Val::TStr(text) => String::from_utf8_lossy(&text).into_owned(),
                        other => other.to_string(),
                    },
                    // `halt`: jaq's own tool would exit the process; here it only ends this filter.
                    Err(_) => "it called halt".to_owned(),
                },
            }),
        }
    }
}

/// The payload as jaq's value.
fn to_val(payload: &serde_json::Value) -> Result<Val, FilterError> {
    Val::deserialize(payload).map_err(|e| FilterError::Failed { message: e.to_string() })
}

/// `a string`, `an object`: for [`FilterError::NotBoolean`].
fn kind(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::BStr(_) | Val::TStr(_) => "a string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

/// The first lexing or parsing error of a load.
fn load_error(expr: &str, errors: jaq_core::load::Errors<&str, ()>) -> FilterError {
    use jaq_core::load::Error;
    let first = errors.into_iter().find_map(|(_, e)| match e {
        Error::Lex(errs) => errs.into_iter().next().map(|(expect, at)| (format!("expected {}", expect.as_str()), at)),
        Error::Parse(errs) => errs.into_iter().next().map(|(expect, found)| {
            let message = if found.is_empty() {
                format!("expected {}, found the end", expect.as_str())
            } else {
                format!("expected {}, found `{}`", expect.as_str(), shorten(found))
            };
            (message, found)
        }),
        // Only `import`/`include` read files, and the loader is given no way to read any.
        Error::Io(errs) => errs.into_iter().next().map(|(at, e)| (e, at)),
    });
    let (message, at) = first.unwrap_or_else(|| ("invalid expression".to_owned(), expr));
    compile_error(expr, message, at)
}

/// A [`FilterError::Compile`] at `at`, a slice of `expr`.
fn compile_error(expr: &str, message: String, at: &str) -> FilterError {
    let start =
        (at.as_ptr() as usize).checked_sub(expr.as_ptr() as usize).filter(|&offset| offset <= expr.len()).unwrap_or(0);
    // A slice always starts on a character boundary; `get` keeps that from ever panicking anyway.
    let column = expr.get(..start).map_or(1, |before| before.chars().count() + 1);
    FilterError::Compile { message, column }
}

/// A token for a message: at most 20 characters.
fn shorten(token: &str) -> String {
    match token.char_indices().nth(20) {
        Some((end, _)) => format!("{}…", &token[..end]),
        None => token.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(expr: &str, payload: serde_json::Value) -> Result<bool, FilterError> {
        let headers = BTreeMap::from([
            ("x-github-event".to_owned(), "pull_request".to_owned()),
            ("x-github-delivery".to_owned(), "d-1".to_owned()),
        ]);
        let action = payload["action"].as_str().map(str::to_owned);
        Filter::parse(expr).expect("compiles").matches(&payload, &headers, "pull_request", action.as_deref())
    }

    fn column(expr: &str) -> usize {
        match Filter::parse(expr).expect_err("does not compile") {
            FilterError::Compile { column, .. } => column,
            other => panic!("not a compile error: {other:?}"),
        }
    }

    #[test]
    fn true_matches_and_false_does_not() {
        let opened = json!({"action": "opened", "number": 3});
        assert_eq!(run(r#".action == "opened""#, opened.clone()), Ok(true));
        assert_eq!(run(r#".action == "closed""#, opened.clone()), Ok(false));
        assert_eq!(run(".number > 2 and .number < 4", opened), Ok(true));
    }

    #[test]
    fn variables_are_bound() {
        let p = json!({"action": "opened"});
        assert_eq!(run(r#"$event == "pull_request""#, p.clone()), Ok(true));
        assert_eq!(run(r#"$action == "opened""#, p.clone()), Ok(true));
        assert_eq!(run(r#"$headers["x-github-delivery"] == "d-1""#, p.clone()), Ok(true));
        assert_eq!(run(r#"$headers["X-GitHub-Delivery"] == null"#, p), Ok(true));
        assert_eq!(run("$action == null", json!({"zen": "hi"})), Ok(true));
    }

    #[test]
    fn only_the_first_output_counts() {
        let p = json!({});
        assert_eq!(run("true, false", p.clone()), Ok(true));
        assert_eq!(run("false, true", p.clone()), Ok(false));
        // The outputs after the first are never computed.
        assert_eq!(run(r#"true, error("never")"#, p), Ok(true));
    }

    #[test]
    fn no_output_and_null_are_no() {
        let p = json!({"a": 1});
        assert_eq!(run("empty", p.clone()), Ok(false));
        assert_eq!(run("select(.a == 2) | true", p.clone()), Ok(false));
        assert_eq!(run(".missing", p), Ok(false));
    }

    #[test]
    fn a_value_other_than_a_boolean_is_an_error() {
        let p = json!({"a": 1, "s": "x"});
        assert_eq!(run("select(.a == 1)", p.clone()), Err(FilterError::NotBoolean { found: "an object" }));
        assert_eq!(run(".s", p.clone()), Err(FilterError::NotBoolean { found: "a string" }));
        assert_eq!(run(".a", p), Err(FilterError::NotBoolean { found: "a number" }));
    }

    #[test]
    fn a_runtime_error_is_failed_with_jaqs_message() {
        let err = run(".a.b == 1", json!({"a": "text"})).unwrap_err();
        assert!(matches!(err, FilterError::Failed { .. }), "{err:?}");
        assert_eq!(run(r#"error("boom")"#, json!({})), Err(FilterError::Failed { message: "boom".into() }));
        // The same filter is fine on a payload of the right shape.
        assert_eq!(run(".a.b == 1", json!({"a": {"b": 1}})), Ok(true));
    }

    #[test]
    fn halt_ends_the_filter_not_the_process() {
        let err = run("halt", json!({})).unwrap_err();
        assert!(matches!(err, FilterError::Failed { .. }), "{err:?}");
    }

    #[test]
    fn the_standard_library_is_there() {
        let p = json!({"labels": [{"name": "bug"}, {"name": "ci"}], "ref": "refs/heads/feature/x"});
        assert_eq!(run(r#"any(.labels[]; .name == "ci")"#, p.clone()), Ok(true));
        assert_eq!(run(r#".ref | test("^refs/heads/feature/")"#, p.clone()), Ok(true));
        assert_eq!(run(r#".ref | startswith("refs/tags/")"#, p.clone()), Ok(false));
        assert_eq!(run("(.labels | map(.name) | length) == 2", p), Ok(true));
    }

    #[test]
    fn a_syntax_error_gives_jaqs_message_and_the_column() {
        let err = Filter::parse(".action ==").unwrap_err();
        assert_eq!(err, FilterError::Compile { message: "expected term, found the end".into(), column: 11 });
        assert_eq!(err.to_string(), "the filter does not compile: expected term, found the end at column 11");
        assert_eq!(column(r#".a == "x" | )"#), 13);
        assert_eq!(column("(.a"), 4);
        // Columns count characters, not bytes.
        assert_eq!(column(r#""é" == .a )"#), 11);
    }

    #[test]
    fn an_undefined_name_is_a_compile_error_at_the_name() {
        let err = Filter::parse(".a | nosuch(1)").unwrap_err();
        assert_eq!(err, FilterError::Compile { message: "undefined filter nosuch/1".into(), column: 6 });
        assert_eq!(column(".a == $nope"), 7);
    }

    #[test]
    fn the_environment_is_out_of_reach() {
        assert!(matches!(Filter::parse("env | length > 0"), Err(FilterError::Compile { .. })));
        assert!(matches!(Filter::parse("$ENV | length > 0"), Err(FilterError::Compile { .. })));
    }

    #[test]
    fn is_shared_between_threads_and_shows_its_expression() {
        fn shared<T: Clone + Send + Sync + 'static>() {}
        shared::<Filter>();
        let f = Filter::parse(r#".action == "opened""#).unwrap();
        assert_eq!(format!("{f:?}"), r#"Filter(".action == \"opened\"")"#);
        assert_eq!(f.expr(), r#".action == "opened""#);
        let g = f.clone();
        let t = std::thread::spawn(move || g.matches(&json!({"action": "opened"}), &BTreeMap::new(), "e", None));
        assert_eq!(t.join().unwrap(), Ok(true));
    }
}

//! What can go wrong looking up an example or editing a payload, each variant one sentence.

/// A name that is not in the catalogue, or an edit that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No example has this event.
    #[error("GitHub documents no event `{name}`{}", did_you_mean(suggestion))]
    UnknownEvent {
        /// The name asked for.
        name: String,
        /// The nearest known name.
        suggestion: Option<String>,
    },
    /// The event is known, but not with this action.
    #[error("GitHub never sends {event} with action `{action}`{}", did_you_mean(suggestion))]
    UnknownAction {
        /// The event.
        event: String,
        /// The action asked for.
        action: String,
        /// The nearest known `event.action`.
        suggestion: Option<String>,
    },
    /// An edit without `=`.
    #[error("`{edit}` is not PATH=VALUE, such as issue.title=hello")]
    NotAnEdit {
        /// The edit as given.
        edit: String,
    },
    /// An edit's path is empty.
    #[error("`{edit}` has an empty path; give one such as issue.title=hello")]
    EmptyPath {
        /// The edit as given.
        edit: String,
    },
    /// An edit's path has an empty segment (`a..b`, a trailing dot).
    #[error(
        "`{edit}` has an empty path segment; a path is names and indices joined by dots, such as commits.0.message"
    )]
    EmptySegment {
        /// The edit as given.
        edit: String,
    },
    /// The payload is not a JSON object.
    #[error("the payload is not a JSON object, so it cannot be edited")]
    NotAnObject,
    /// An array index past the end.
    #[error("`{path}` is past the end of `{array}`, which has {len} item(s)")]
    OutOfRange {
        /// The path up to and including the index.
        path: String,
        /// The array's path.
        array: String,
        /// Its length.
        len: usize,
    },
    /// A path indexes an array with something other than a number.
    #[error("`{path}`: `{array}` is an array, so the next segment must be an index such as 0")]
    NotAnIndex {
        /// The whole path.
        path: String,
        /// The array's path.
        array: String,
    },
    /// A path goes through a value that has no members.
    #[error("`{path}` goes through `{scalar}`, which is {kind}, not an object or an array")]
    ThroughScalar {
        /// The whole path.
        path: String,
        /// The path of the scalar.
        scalar: String,
        /// `a string`, `a number`, `a boolean`.
        kind: &'static str,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|name| format!("; did you mean `{name}`?")).unwrap_or_default()
}

//! What a user probably meant: a handler given as a port, a repository given as its URL, a command
//! name with two letters swapped. Each returns the suggestion, or `None` when nothing fits.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory as _, Parser as _};
use github::Owner;

use crate::args::Cli;

/// Parses the command line as clap does, except that a mistyped command is matched to the nearest
/// name by edits: clap's Jaro score gives a swap in a three-letter name (`dve`) no match window, so
/// it would suggest `demo` rather than `dev`.
pub fn parse() -> Cli {
    Cli::try_parse_from(std::env::args_os()).unwrap_or_else(|error| crate::exit::parse_error(suggest(error)))
}

/// `error` with the nearest command name as its tip, when it is an unknown command one edit away.
fn suggest(mut error: clap::Error) -> clap::Error {
    if error.kind() != ErrorKind::InvalidSubcommand {
        return error;
    }
    let Some(ContextValue::String(typed)) = error.get(ContextKind::InvalidSubcommand) else { return error };
    let cli = Cli::command();
    let names = cli.get_subcommands().filter(|command| !command.is_hide_set()).map(|command| command.get_name());
    if let Some(name) = command(typed, names) {
        error.insert(ContextKind::SuggestedSubcommand, ContextValue::Strings(vec![name.to_string()]));
    }
    error
}

/// The first of `names` one edit from `typed`: a letter added, dropped, changed, or two neighbours swapped.
fn command<'a>(typed: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().find(|name| one_edit(typed, name))
}

/// Whether `a` and `b` differ by at most one edit (optimal string alignment distance ≤ 1).
fn one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[common..], &b[common..]);
    match (a.len(), b.len()) {
        (0, 0) => true,
        (x, y) if x == y => a[1..] == b[1..] || (x >= 2 && a[0] == b[1] && a[1] == b[0] && a[2..] == b[2..]),
        (x, y) if x + 1 == y => a == &b[1..],
        (x, y) if x == y + 1 => &a[1..] == b,
        _ => false,
    }
}

/// The handler's URL when `text` is a port with an optional path (`3000`, `:3000`, `3000/webhook`).
pub fn target(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_prefix(':').unwrap_or(text);
    let (port, path) = match text.split_once('/') {
        Some((port, path)) => (port, format!("/{path}")),
        None => (text, String::new()),
    };
    if port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|port| *port > 0)?;
    Some(format!("http://localhost:{port}{path}"))
}

/// `OWNER/REPO` when `text` is a repository's web, clone or API URL (`https://github.com/o/r`,
/// `git@github.com:o/r.git`, `github.com/o/r`).
pub fn repo(text: &str) -> Option<String> {
    let text = text.trim();
    let path = if let Some((_, rest)) = text.split_once("://") {
        rest.split_once('/')?.1
    } else if let Some(rest) = text.strip_prefix("git@") {
        rest.split_once(':')?.1
    } else {
        // `github.com/o/r`: a host (it has a dot) before the first slash.
        let (host, rest) = text.split_once('/')?;
        if !host.contains('.') {
            return None;
        }
        rest
    };
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    // An API URL: `/repos/o/r` (or `/api/v3/repos/o/r` on an Enterprise Server).
    let start = segments.iter().position(|segment| *segment == "repos").map_or(0, |at| at + 1);
    let [owner, name, ..] = segments.get(start..)? else { return None };
    let name = name.trim_end_matches(".git");
    let candidate = format!("{owner}/{name}");
    matches!(Owner::parse(&candidate), Ok(Owner::Repo { .. })).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_command_suggests_the_nearest_name() {
        let error = suggest(Cli::try_parse_from(["hookfwd", "dve"]).unwrap_err()).to_string();
        assert!(error.contains("'dev'") && !error.contains("'demo'"), "{error}");
        assert!(error.contains("unrecognized subcommand 'dve'"), "{error}");
        let error = suggest(Cli::try_parse_from(["hookfwd", "doctr"]).unwrap_err()).to_string();
        assert!(error.contains("'doctor'"), "{error}");
        // Nothing one edit away: clap's own suggestion, if any, stands.
        let error = suggest(Cli::try_parse_from(["hookfwd", "zzzzzz"]).unwrap_err()).to_string();
        assert!(error.contains("unrecognized subcommand 'zzzzzz'"), "{error}");
    }

    #[test]
    fn one_edit_is_a_letter_added_dropped_changed_or_swapped() {
        for (a, b) in [("dve", "dev"), ("de", "dev"), ("devv", "dev"), ("dav", "dev"), ("dev", "dev"), ("ed", "de")] {
            assert!(one_edit(a, b), "{a} {b}");
        }
        for (a, b) in [("dmeo", "dev"), ("vde", "dev"), ("d", "dev"), ("", "ab"), ("abcd", "badc")] {
            assert!(!one_edit(a, b), "{a} {b}");
        }
    }

    #[test]
    fn a_port_with_or_without_a_path_is_a_local_handler() {
        assert_eq!(target(":3000").as_deref(), Some("http://localhost:3000"));
        assert_eq!(target("3000").as_deref(), Some("http://localhost:3000"));
        assert_eq!(target("3000/webhook").as_deref(), Some("http://localhost:3000/webhook"));
        assert_eq!(target(":3000/webhook").as_deref(), Some("http://localhost:3000/webhook"));
        for nothing in ["nonsense", "+3000", "0", "70000", ":", "/webhook", "localhost"] {
            assert_eq!(target(nothing), None, "{nothing}");
        }
    }

    #[test]
    fn a_repository_url_suggests_owner_and_name() {
        for url in [
            "https://github.com/octo-org/hello-world",
            "https://github.com/octo-org/hello-world.git",
            "https://github.com/octo-org/hello-world/pulls",
            "github.com/octo-org/hello-world",
            "git@github.com:octo-org/hello-world.git",
            "ssh://git@github.com/octo-org/hello-world.git",
            "https://api.github.com/repos/octo-org/hello-world",
            "https://ghe.example.com/api/v3/repos/octo-org/hello-world/hooks",
        ] {
            assert_eq!(repo(url).as_deref(), Some("octo-org/hello-world"), "{url}");
        }
        for nothing in ["octo-org", "https://github.com/octo-org", "hello world", "a/b/c"] {
            assert_eq!(repo(nothing), None, "{nothing}");
        }
    }
}

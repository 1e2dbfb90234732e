//! Exit codes, and turning an error into one sentence and a hint on stderr.

use std::io::Write;
use std::process::ExitCode;

use crate::json::Line;

/// A runtime failure: GitHub unreachable, the ledger unwritable, …
pub const FAILURE: u8 = 1;
/// Bad flags or input (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// GitHub refused the credentials or a permission is missing.
pub const AUTH: u8 = 3;
/// The handler rejected a delivery.
pub const REJECTED: u8 = 4;
/// A wait timed out.
pub const TIMEOUT: u8 = 5;

/// An error that carries its own exit code, for outcomes that are not GitHub's or the relay's.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The exit code.
    pub code: u8,
    /// One sentence.
    pub message: String,
}

/// An error that exits with `code`.
pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit { code, message: message.into() })
}

/// Prints the error as a `--json` `error` line on stdout, whose `kind` names its exit code; nothing for a
/// closed stdout. stderr still gets the sentence ([`report`]).
pub fn json_line(error: &anyhow::Error) {
    if is_broken_pipe(error) {
        return;
    }
    let message = sentence(error);
    let line = Line::Error { message: &message, kind: kind(code(error)), hook: None, hint: hint(error) };
    let _ = crate::term::print(&line.to_json());
}

/// A command line clap refused: with `--json` anywhere in it, a `usage` `error` line on stdout first; then
/// clap's own message (or the help or version asked for), and its exit code.
pub fn parse_error(error: clap::Error) -> ! {
    let asked_json = std::env::args_os().skip(1).take_while(|arg| arg != "--").any(|arg| arg == "--json");
    if asked_json && error.use_stderr() {
        let text = error.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        let message = first.strip_prefix("error: ").unwrap_or(first);
        let line = Line::Error { message, kind: kind(USAGE), hook: None, hint: None };
        let _ = crate::term::print(&line.to_json());
    }
    error.exit()
}

/// The `kind` of a final `error` line: the exit code's name.
fn kind(code: u8) -> &'static str {
    match code {
        USAGE => "usage",
        AUTH => "auth",
        REJECTED => "rejected",
        TIMEOUT => "timeout",
        _ => "failure",
    }
}

/// Prints `hookfwd: <error>: <cause>…` and a hint, and returns the exit code for it.
pub fn report(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    let line = sentence(error);
    let mut stderr = std::io::stderr().lock();
    // GitHub's messages and the handler's answers are quoted in errors: no escape sequence gets through.
    let _ = writeln!(stderr, "hookfwd: {}", crate::term::visible(&line));
    if let Some(hint) = hint(error) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    ExitCode::from(code(error))
}

/// The error and its causes on one line, `error: cause: cause…`.
///
/// Each error in the chain says one level (hyper's rule, which `relay::Error` and `github::Error` follow), so
/// the levels are joined as they are, with nothing removed; except below an unreachable GitHub, where the
/// HTTP library's levels (`error sending request: client error (Connect): tcp connect error: …`) give way
/// to their root cause in a few words.
pub fn sentence(error: &anyhow::Error) -> String {
    let mut levels = Vec::new();
    for cause in error.chain() {
        levels.push(cause.to_string());
        if let Some(github::Error::Unreachable { .. }) = github_error(cause) {
            levels.extend(transport_reason(cause));
            break;
        }
    }
    levels.join(": ")
}

/// Why a connection failed, in a few words, from the causes below `error`.
fn transport_reason(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let causes: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(error.source(), |e| e.source()).collect();
    if causes.iter().any(|cause| cause.to_string().starts_with("dns error")) {
        return Some("its host name does not resolve".to_string());
    }
    let root = causes.last()?;
    let reason = match root.downcast_ref::<std::io::Error>().map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => "the connection was refused".to_string(),
        Some(std::io::ErrorKind::ConnectionReset) => "the connection was reset".to_string(),
        Some(std::io::ErrorKind::TimedOut) => "the connection timed out".to_string(),
        _ => root.to_string(),
    };
    // `(os error 111)` means nothing to a reader.
    Some(match reason.find(" (os error ") {
        Some(at) => reason[..at].to_string(),
        None => reason,
    })
}

/// The GitHub error at this level of a chain, directly or inside the relay's transparent `GitHub` variant.
pub fn github_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a github::Error> {
    match cause.downcast_ref::<relay::Error>() {
        Some(relay::Error::GitHub(error)) => Some(error),
        _ => cause.downcast_ref::<github::Error>(),
    }
}

fn code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return exit.code;
        }
        if let Some(error) = github_error(cause) {
            return match error {
                github::Error::Unauthorized
                | github::Error::Forbidden { .. }
                | github::Error::NoCredentials
                | github::Error::MalformedToken
                | github::Error::AppCredentials { .. } => AUTH,
                github::Error::ApiUrl(_) => USAGE,
                _ => FAILURE,
            };
        }
        match cause.downcast_ref::<relay::Error>() {
            Some(
                relay::Error::Rule(_)
                | relay::Error::Target(_)
                | relay::Error::LedgerUrl { .. }
                | relay::Error::PrivateHookUrl { .. },
            ) => return USAGE,
            Some(relay::Error::StreamRefused { .. }) => return AUTH,
            _ => {}
        }
    }
    FAILURE
}

fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| match github_error(cause)? {
        github::Error::Unreachable { .. } | github::Error::Silent { .. } => {
            Some("check --api-url (or GITHUB_API_URL) and your network")
        }
        github::Error::NotFound { .. } => Some("check the spelling, and that the token can see it"),
        github::Error::Forbidden { .. } => Some("create a token with the named permission, then set GITHUB_TOKEN"),
        github::Error::Unauthorized => Some("run `hookfwd doctor` to see which token is used"),
        _ => None,
    })
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_github_error_inside_the_relay_is_said_once_and_keeps_its_exit_code_and_hint() {
        let error = anyhow::Error::new(relay::Error::GitHub(github::Error::Unauthorized));
        assert_eq!(sentence(&error), github::Error::Unauthorized.to_string());
        assert_eq!(code(&error), AUTH);
        assert_eq!(hint(&error), Some("run `hookfwd doctor` to see which token is used"));
    }

    #[test]
    fn each_level_of_the_chain_is_joined_as_it_is() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let ledger = relay::Error::Ledger { path: "/state/ledger".into(), action: "written", source: io };
        let error = anyhow::Error::new(ledger).context("the relay stopped");
        assert_eq!(
            sentence(&error),
            "the relay stopped: the ledger at /state/ledger could not be written: permission denied"
        );
        assert_eq!(code(&error), FAILURE);
    }
}

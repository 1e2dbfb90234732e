//! Exit codes, and turning an error into one sentence and a hint on stderr.

use std::io::Write;
use std::process::ExitCode;

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

/// Prints `hookfwd: <error>: <cause>…` and a hint, and returns the exit code for it.
pub fn report(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    let mut stderr = std::io::stderr().lock();
    // GitHub's messages and the handler's answers are quoted in errors: no escape sequence gets through.
    let _ = writeln!(stderr, "hookfwd: {}", crate::feed::visible(&line));
    if let Some(hint) = hint(error) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    ExitCode::from(code(error))
}

fn code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return exit.code;
        }
        if let Some(error) = cause.downcast_ref::<github::Error>() {
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
            Some(relay::Error::Rule(_) | relay::Error::Target(_)) => return USAGE,
            Some(relay::Error::StreamRefused { .. }) => return AUTH,
            _ => {}
        }
    }
    FAILURE
}

fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| match cause.downcast_ref::<github::Error>()? {
        github::Error::Unreachable { .. } => Some("check --api-url (or GITHUB_API_URL) and your network"),
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

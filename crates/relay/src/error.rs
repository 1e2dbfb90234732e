//! What stops the relay, or makes a rule unusable.
//!
//! Each variant's `Display` is one level, hyper's rule: what failed here, never its cause's words, which
//! `source()` gives. A caller prints the whole chain by joining each level's `Display` with `: `.

/// A relay failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--rule` or config file entry is malformed.
    #[error("invalid rule: {0}")]
    Rule(String),
    /// `--to` is not a URL or `host:port[/path]`.
    #[error("`{0}` is not a target URL or host:port[/path]")]
    Target(String),
    /// No source could be set up; each one's reason, joined.
    #[error("no source could be set up: {0}")]
    NoSources(String),
    /// Another hookfwd is forwarding the same hook with the same state directory.
    #[error(
        "{hook} is already being forwarded by {holder} using {path}; stop that one first (Ctrl-C in its terminal), \
         since two runs on one hook would forward every delivery twice"
    )]
    Busy {
        /// The hook.
        hook: String,
        /// Who holds the lock: `hookfwd process 1234`, from the PID the holder wrote into the lock file.
        holder: String,
        /// Its lock file.
        path: std::path::PathBuf,
    },
    /// The ledger could not be read or written.
    #[error("the ledger at {path} could not be {action}")]
    Ledger {
        /// The ledger file.
        path: std::path::PathBuf,
        /// `read` or `written`.
        action: &'static str,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// `--ledger` (or `HOOKFWD_LEDGER`, or `ledger` in the config) is not a Redis URL hookfwd can use.
    #[error("the ledger URL {url} cannot be used: {reason}")]
    LedgerUrl {
        /// The URL, its password replaced by `***`.
        url: String,
        /// One clause: what is wrong with it.
        reason: String,
    },
    /// The shared ledger could not be reached when the run started.
    #[error("could not reach the ledger at {url}")]
    LedgerUnreachable {
        /// The URL, its password replaced by `***`.
        url: String,
        /// The client's failure.
        #[source]
        source: redis::RedisError,
    },
    /// The state directory is one another user could plant files or links in.
    #[error(
        "the state directory {} {problem}, who could make hookfwd overwrite their choice of files; run `chmod 700 {}` \
         (as its owner), or choose another with --state-dir",
        path.display(),
        path.display()
    )]
    StateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// `is owned by another user` or `can be written by other users`.
        problem: &'static str,
    },
    /// Against GitHub's cloud, a hook URL it cannot reach: a hook made there would never be delivered to.
    #[error(
        "GitHub cannot reach the hook URL {url}: its host is {}; give the public URL of a blackhole \
         (see docs/deploy.md), or --allow-private-hook-url if GitHub can reach it after all",
        match host {
            crate::PrivateHost::Loopback => "this machine (loopback)",
            crate::PrivateHost::Private => "a private address",
            crate::PrivateHost::LinkLocal => "a link-local address",
        }
    )]
    PrivateHookUrl {
        /// The hook URL.
        url: String,
        /// What kind of place it names.
        host: crate::PrivateHost,
    },
    /// The blackhole refused the stream token on the first attempt.
    #[error(
        "the blackhole at {url} refused the stream token (401); give the token it was started with in \
         --stream-token or HOOKFWD_STREAM_TOKEN"
    )]
    StreamRefused {
        /// The blackhole's origin.
        url: String,
    },
    /// One of the relay's own tasks panicked or was cancelled: a bug in hookfwd, not in its input.
    #[error("an internal task of hookfwd failed ({0}); please report it")]
    TaskFailed(String),
    /// A GitHub call failed in a way retrying will not fix, such as a rejected token.
    ///
    /// Transparent, as hyper's rule asks of a wrapper that adds no words: its `Display` is the GitHub error's
    /// sentence and its `source()` that error's cause, so a caller joining the chain says each level once.
    /// Callers looking for the GitHub error match this variant (the CLI's `exit::github_error`).
    #[error(transparent)]
    GitHub(#[from] github::Error),
}

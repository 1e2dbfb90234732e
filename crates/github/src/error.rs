//! What can go wrong talking to GitHub, each variant one actionable sentence.

use chrono::{DateTime, Utc};

/// A failed GitHub API call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the token is missing, expired or revoked.
    #[error("GitHub rejected the token (401); set a valid GITHUB_TOKEN or run `gh auth login`")]
    Unauthorized,
    /// 403 without a rate limit: the token lacks a permission.
    #[error("the token may not access {what} (403); it needs {needed}{}", scopes.as_ref().map(|s| format!(", and has scopes: {}", if s.is_empty() { "none" } else { s })).unwrap_or_default())]
    Forbidden {
        /// What was being accessed, such as `the hooks of octo/hello`.
        what: String,
        /// The permission that would allow it.
        needed: String,
        /// The classic token's `X-OAuth-Scopes`, when GitHub sent them.
        scopes: Option<String>,
    },
    /// 404: not there, or not visible to this token.
    #[error("{what}: not found, or not visible to this token (404)")]
    NotFound {
        /// What was looked up.
        what: String,
    },
    /// 422: GitHub refused the request's content.
    #[error("GitHub refused to change {what} (422): {message}")]
    Unprocessable {
        /// What was being changed.
        what: String,
        /// GitHub's reason, such as `Hook already exists on this repository`.
        message: String,
    },
    /// The primary rate limit is exhausted and the caller asked not to wait.
    #[error("the GitHub rate limit is exhausted until {reset_at}")]
    RateLimited {
        /// When the budget refills.
        reset_at: DateTime<Utc>,
    },
    /// GitHub kept answering 5xx after every retry.
    #[error("GitHub answered {status} for {what} after retrying")]
    Server {
        /// The last status code.
        status: u16,
        /// What was being requested.
        what: String,
    },
    /// Any other unexpected status.
    #[error("GitHub answered {status} for {what}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// What was being requested.
        what: String,
        /// GitHub's message.
        message: String,
    },
    /// The API could not be reached after retrying.
    #[error("could not reach the GitHub API at {url}")]
    Unreachable {
        /// The API URL without credentials.
        url: String,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
    },
    /// The API took the connection but did not answer within the time hookfwd gives it at start.
    #[error("could not reach the GitHub API at {url}: it did not answer within {} s", within.as_secs())]
    Silent {
        /// The API URL without credentials.
        url: String,
        /// How long it was given.
        within: std::time::Duration,
    },
    /// GitHub's answer did not have the documented shape.
    #[error("GitHub's answer for {what} could not be read")]
    Decode {
        /// What was being requested.
        what: String,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// No token in the environment, no `gh` login and no GitHub App.
    #[error(
        "no GitHub token found; set GITHUB_TOKEN, run `gh auth login`, or give a GitHub App id, key and installation"
    )]
    NoCredentials,
    /// The GitHub App settings cannot produce a token.
    #[error("the GitHub App credentials are unusable: {reason}")]
    AppCredentials {
        /// What is wrong, such as an unreadable private key. Never includes key material.
        reason: String,
    },
    /// The operating system gave no random bytes for a secret.
    #[error(
        "the operating system gave no random bytes ({reason}); a container or chroot needs the getrandom system \
         call or /dev/urandom"
    )]
    NoRandomness {
        /// The operating system's error.
        reason: String,
    },
    /// The API URL is not a usable http(s) URL, or a link GitHub gave points outside it.
    #[error("`{0}` is not a usable GitHub API URL")]
    ApiUrl(String),
    /// The call exists only for repository and organization hooks, not for the App's.
    #[error("{what} cannot be changed through the API this way; manage it in the GitHub App's settings")]
    Unsupported {
        /// The hook, such as `the GitHub App hook`.
        what: String,
    },
    /// GitHub's answer was larger than hookfwd reads for that kind of call.
    #[error("GitHub's answer for {what} is larger than the {limit} bytes hookfwd reads")]
    TooLarge {
        /// What was being requested.
        what: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// A list's `rel="next"` link pointed back to a page already read in the same scan.
    #[error("GitHub's list of {what} links back to a page it already gave (after {pages} pages), so paging stopped")]
    PagingLoop {
        /// What was being listed.
        what: String,
        /// Pages read in this scan before the loop was seen.
        pages: u32,
    },
    /// A list went on for more pages than one scan reads.
    #[error("GitHub's list of {what} went on past {limit} pages, so paging stopped")]
    TooManyPages {
        /// What was being listed.
        what: String,
        /// The most pages one scan reads.
        limit: u32,
    },
    /// The token cannot be sent in an HTTP header (a stray newline or quote, say).
    #[error("the GitHub token contains characters that cannot be sent; check it for stray quotes, spaces or newlines")]
    MalformedToken,
}

impl Error {
    /// Whether waiting and trying again later may succeed without the user changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Server { .. } | Self::Unreachable { .. } | Self::Silent { .. })
    }
}

impl Error {
    /// Whether asking again can never succeed for this one item (an oversized or unreadable
    /// delivery, a list whose links loop), so the caller should skip it rather than retry it forever.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. } | Self::Decode { .. } | Self::PagingLoop { .. } | Self::TooManyPages { .. }
        )
    }
}

/// The result of a GitHub API call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

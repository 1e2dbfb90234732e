//! Where the token comes from: environment, the GitHub CLI, or a GitHub App.

use std::path::PathBuf;

use crate::{Error, Result, Secret};

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A personal, fine-grained, OAuth or installation token.
    Token(Secret),
    /// A GitHub App: a JWT for `/app/*`, an installation token for the rest.
    App(AppCredentials),
}

/// A GitHub App's identity.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// The App id.
    pub app_id: u64,
    /// The private key, PEM.
    pub private_key: Secret,
    /// The installation to act as on repositories and organizations.
    pub installation_id: Option<u64>,
}

/// Where the credentials were found, for the Ready line and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An environment variable, such as `GITHUB_TOKEN`.
    Env(&'static str),
    /// `gh auth token`.
    GhCli,
    /// A GitHub App private key file.
    App(PathBuf),
}

/// Credentials and where they came from.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// How to authenticate.
    pub auth: Auth,
    /// Where it came from.
    pub source: CredentialSource,
}

impl Credentials {
    /// Finds credentials in order: `GITHUB_TOKEN`, `GH_TOKEN`, `gh auth token`
    /// (honouring `GH_HOST`, only when `gh` is installed), then `app`.
    /// `env` reads an environment variable, so tests need not touch the process's.
    pub fn discover(env: impl Fn(&str) -> Option<String>, app: Option<(AppCredentials, PathBuf)>) -> Result<Self> {
        let _ = (env, app);
        todo!("implemented with the client")
    }
}

#[allow(dead_code)]
fn _unused(_: Error) {}

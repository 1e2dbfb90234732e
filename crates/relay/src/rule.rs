//! Rules: which sources feed which target, from `--rule` JSON, a TOML config, or `dev` flags.

use github::{Owner, Secret};
use url::Url;

use crate::Error;

/// Where deliveries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A repository's or an organization's hook, found by URL or created.
    Owner(Owner),
    /// The GitHub App's hook.
    App,
}

/// The local handler deliveries are POSTed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub Url);

impl Target {
    /// Accepts a URL or `host:port[/path]` (http assumed).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let _ = text;
        todo!()
    }
}

/// Sources, their target, and how their hooks are set up.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Repositories, organizations, or the App.
    pub sources: Vec<Source>,
    /// Where their deliveries go.
    pub target: Target,
    /// The blackhole URL that identifies (or creates) each source's hook.
    pub hook_url: Option<String>,
    /// Events for a created hook; `*` for all.
    pub events: Vec<String>,
    /// The local secret the forwarded requests are signed with.
    pub secret: Option<Secret>,
}

impl Rule {
    /// Parses the seed's `--rule` format:
    /// `{"from":["org1/repo1","org2"],"to":"http://…/","hook":{"config":{"url":"https://…"},"events":["push"]}}`.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let _ = text;
        todo!()
    }

    /// Parses a TOML config file holding many rules.
    pub fn from_toml(text: &str) -> Result<Vec<Self>, Error> {
        let _ = text;
        todo!()
    }
}

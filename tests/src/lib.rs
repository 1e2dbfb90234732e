//! Support for the end-to-end tests: the kit every suite shares (`testkit`), and what only these tests need,
//! a blackhole child process, a round-robin balancer in front of several, a counting handler, an MCP client, a
//! WebDriver client for the inspector's page, and the schema every `--json` line is held to.

mod balancer;
pub mod bench;
mod blackhole;
mod counter;
pub mod lines;
pub mod mcp;
mod run;
mod webdriver;

pub use balancer::Balancer;
pub use blackhole::Blackhole;
pub use counter::{Counter, Seen};
pub use mcp::McpClient;
pub use run::{Account, Running};
pub use testkit::{
    Finished, Guard, OctokitReceiver, Received, Recorder, RedisServer, blackhole, eventually, fake_github, free_addr,
    hookfwd, workspace_root,
};
pub use webdriver::Browser;

/// An HTTP client for the tests, built as hookfwd builds its own (ring as the TLS backend), so the
/// tests link no second crypto library. A new one each time: a test's runtime owns its connections.
#[allow(clippy::disallowed_methods)] // github::http_client is the one allowed way
pub fn http() -> reqwest::Client {
    github::http_client().build().expect("a client with no settings beyond TLS builds")
}

/// `GET url` with a client from [`http`].
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

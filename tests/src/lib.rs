//! Support for the end-to-end tests: the kit every suite shares (`testkit`), and what only these tests need,
//! a blackhole child process, a round-robin balancer in front of several, a counting handler, a WebDriver
//! client for the inspector's page, and the schema every `--json` line is held to.

mod balancer;
pub mod bench;
mod blackhole;
mod counter;
pub mod lines;
mod run;
mod webdriver;

pub use balancer::Balancer;
pub use blackhole::Blackhole;
pub use counter::{Counter, Seen};
pub use run::{Account, Running};
pub use testkit::{
    Finished, Guard, OctokitReceiver, Received, Recorder, RedisServer, blackhole, eventually, fake_github, free_addr,
    hookfwd, workspace_root,
};
pub use webdriver::Browser;

//! Support for the end-to-end tests: the kit every suite shares (`testkit`), and what only these tests need,
//! a blackhole child process, a counting handler, and a WebDriver client for the inspector's page.

pub mod bench;
mod blackhole;
mod counter;
mod run;
mod webdriver;

pub use blackhole::Blackhole;
pub use counter::{Counter, Seen};
pub use run::Account;
pub use testkit::{
    Finished, Guard, OctokitReceiver, Received, Recorder, RedisServer, Running, blackhole, eventually, fake_github,
    free_addr, hookfwd, workspace_root,
};
pub use webdriver::Browser;

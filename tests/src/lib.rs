//! Support for the end-to-end tests: the kit every suite shares (`testkit`), and what only these tests need,
//! a blackhole child process and a counting handler.

mod blackhole;
mod counter;

pub use blackhole::Blackhole;
pub use counter::{Counter, Seen};
pub use testkit::{
    Finished, Guard, OctokitReceiver, Received, Recorder, Running, blackhole, eventually, fake_github, hookfwd,
    workspace_root,
};

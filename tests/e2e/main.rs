//! End-to-end tests through the real binaries. One test binary for the whole suite, to save link time.
mod action;
/// The handler's answer in the feed, `send` and `--json`.
mod answer;
mod commands;
mod dev;
mod enterprise;
/// Fixtures: --record, replay --save, send --fixture.
mod fixture;
mod forward;
mod hostile;
/// The local inspector: its page, API and safety, and a real browser.
mod inspect;
/// Push mode: the blackhole's stream, one ledger for both paths, polling as the safety net.
mod push;
mod send;

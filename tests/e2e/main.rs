//! End-to-end tests through the real binaries. One test binary for the whole suite, to save link time.
//!
//! Each module holds the tests of one promise; a new test goes in the module whose promise it checks.
//! Shared helpers live in `testkit` (recorder, Octokit receiver, process runner, `eventually`, `free_addr`) or
//! `tests/src/` (`Account`: the one way to start `hookfwd` and `hookfwd dev` with a test's credentials, and to
//! make an `issues.opened` payload).
//!
//! These tests are the full tier: they need the `full` feature and the binaries' paths, which `scripts/test`
//! passes (`scripts/test -E 'test(/push::/)'` runs one module). A plain `cargo test` leaves them out.

/// The GitHub Action's scripts (`scripts/action/`), run through bash as the action runs them.
mod action;
/// The handler's answer in the feed, `send` and `--json`.
mod answer;
/// Many sources on one token: the interval GitHub's limits sustain, spread polls, `--action`.
mod budget;
/// `replay`, `trigger`, `wait`, `hooks` and `doctor`: each command's output, exit codes and `--json` lines.
mod commands;
/// The container image and the Kubernetes manifests.
mod container;
/// `hookfwd demo`: the whole path on loopback, in one process.
mod demo;
/// `hookfwd dev`: crash recovery, shutdown, output hygiene (no secret, no escape sequence), bad credentials.
mod dev;
/// GitHub Enterprise Server (an API under a path) and GitHub App credentials, with no secret ever printed.
mod enterprise;
/// Fixtures: --record, replay --save, send --fixture.
mod fixture;
/// The relay's guarantees: backlog, ordering, redelivery, retries, `forward` rules and config files.
mod forward;
/// The help screens: `dev -h` fits one screen, examples in every `--help`, usage lines, one meaning per flag name.
mod help;
/// A broken or hostile GitHub: bounded memory, one clear sentence, and polling that goes on.
mod hostile;
/// Hostile state on disk: a clock that lies, poison deliveries, symlinks and foreign owners in the state directory.
mod hostile_state;
/// Issue 21's hygiene: `replay` with no selector, the hook URL rule, `hooks rm` and `prune`, the creation ping, hints.
mod hygiene;
/// The local inspector: its page, API and safety, and a real browser.
mod inspect;
/// One schema for every `--json` line (issue 21): the same names on every command's lines, errors as lines.
mod json;
/// `hookfwd mcp`: an MCP client drives every tool over stdio, against the fake GitHub and a streaming blackhole.
mod mcp;
/// Issue 12's newcomer's path: exit codes, local filters, the handler's timeout, the feed's shape (guids, where
/// lines go, `-q`, the JSON lines), an unreachable API at start, and `--cleanup`'s line.
mod newcomer;
/// One token's GitHub budget shared by replicas through Redis: no secondary-limit answer during a drain.
mod pace;
/// A handler bug never blocks the queue (parking, `replay --parked`, the `r` key), and overlapping sources forward once.
mod park;
/// Push mode: the blackhole's stream, one ledger for both paths, polling as the safety net.
mod push;
/// Replicas sharing one ledger in Redis: once each, fetched once, a replica killed -9, Redis down, bad URLs.
mod replicas;
/// Routing (issue 23): `--filter` and rule filters on `dev`, `wait`, `replay` and `forward`.
mod route;
/// `hookfwd send`: signed sample deliveries a real receiver (Octokit) verifies, and exit codes.
mod send;
/// Running as a service: /healthz, /readyz, /metrics, --max-stall, a taken admin address, redeliver --failed.
mod service;
/// Screens that need a terminal, on a pseudo-terminal: the status line drawn, fitted to the width and cleared,
/// and Ctrl-C's one summary line.
mod terminal;

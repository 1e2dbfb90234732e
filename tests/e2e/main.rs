//! End-to-end tests through the real binaries. One test binary for the whole suite, to save link time.
mod action;
mod commands;
mod container;
mod dev;
mod enterprise;
mod forward;
mod hostile;
/// Push mode: the blackhole's stream, one ledger for both paths, polling as the safety net.
mod push;
mod send;
mod service;

//! End-to-end tests through the real binaries. One test binary for the whole suite, to save link time.
mod action;
mod commands;
mod dev;
mod enterprise;
mod forward;
mod hostile;
/// Issue 12's newcomer's path: exit codes, local filters, the handler's timeout.
mod newcomer;
/// Push mode: the blackhole's stream, one ledger for both paths, polling as the safety net.
mod push;
mod send;

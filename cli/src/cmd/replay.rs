//! `hookfwd replay`: past deliveries to a handler.

use std::process::ExitCode;

use crate::args::{OutputArgs, ReplayArgs};
use crate::feed::Status;

/// Replays past deliveries.
pub async fn replay(args: ReplayArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let _ = (args, output, status);
    Err(crate::exit::Exit::new(1, "replay is being built"))
}

//! `hookfwd send`: a synthetic, GitHub-identical delivery.

use std::process::ExitCode;

use crate::args::{OutputArgs, SendArgs};
use crate::feed::Status;

/// Sends synthetic deliveries.
pub async fn send(args: SendArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let _ = (args, output, status);
    Err(crate::exit::Exit::new(1, "send is being built"))
}

//! `hookfwd wait`: forward until a matching delivery was handled.

use std::process::ExitCode;

use crate::args::{OutputArgs, WaitArgs};
use crate::feed::Status;

/// Waits for a matching delivery.
pub async fn wait(args: WaitArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let _ = (args, output, status);
    Err(crate::exit::Exit::new(1, "wait is being built"))
}

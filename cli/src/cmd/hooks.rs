//! `hookfwd hooks`: list and remove hooks.

use std::process::ExitCode;

use crate::args::{HooksArgs, OutputArgs};

/// Lists or removes hooks.
pub async fn hooks(args: HooksArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let _ = (args, output);
    Err(crate::exit::Exit::new(1, "hooks is being built"))
}

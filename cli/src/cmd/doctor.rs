//! `hookfwd doctor`: one line per check.

use std::process::ExitCode;

use crate::args::{DoctorArgs, OutputArgs};

/// Runs the checks.
pub async fn doctor(args: DoctorArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let _ = (args, output);
    Err(crate::exit::Exit::new(1, "doctor is being built"))
}

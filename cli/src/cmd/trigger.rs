//! `hookfwd trigger`: GitHub produces a delivery.

use std::process::ExitCode;

use crate::args::{OutputArgs, TriggerArgs};

/// Triggers a ping or a redelivery.
pub async fn trigger(args: TriggerArgs, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let _ = (args, output);
    Err(crate::exit::Exit::new(1, "trigger is being built"))
}

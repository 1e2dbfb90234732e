//! `hookfwd forward`: rules from `--rule` JSON or a TOML file, run like `dev`.

use std::process::ExitCode;

use anyhow::Context as _;
use relay::Rule;

use super::dev::run_forwarding;
use super::non_empty;
use crate::args::{ForwardArgs, OutputArgs};
use crate::term::Status;

/// `hookfwd forward`: rules from `--rule` JSON or a TOML file.
pub async fn forward(args: ForwardArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let mut forwarding = args.forwarding;
    let mut rules = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read the config file {}", path.display()))?;
            let load = || format!("could not load rules from {}", path.display());
            if forwarding.relay.ledger.is_none() {
                // --ledger and HOOKFWD_LEDGER win over the file, as flags do.
                forwarding.relay.ledger = Rule::ledger_in_toml(&text).with_context(load)?;
            }
            Rule::from_toml(&text).with_context(load)?
        }
        None => args.rules.iter().map(|text| Rule::from_json(text)).collect::<Result<_, _>>()?,
    };
    let relay = &forwarding.relay;
    let secret = relay.secret.clone();
    let (stream_token, hook_secret) = (non_empty(&relay.push.stream_token), non_empty(&relay.push.hook_secret));
    for rule in &mut rules {
        if rule.secret.is_none() {
            rule.secret = secret.clone();
        }
        if rule.stream_token.is_none() {
            rule.stream_token = stream_token.clone();
        }
        if rule.hook_secret.is_none() {
            rule.hook_secret = hook_secret.clone();
        }
    }
    run_forwarding(rules, forwarding, output, status).await
}

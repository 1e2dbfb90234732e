//! `hookfwd mcp`: the relay of `dev`, its deliveries kept for an agent that speaks the Model Context Protocol
//! on stdio. stdout is the protocol's channel: nothing else is written there; logs go to stderr.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use relay::Target;
use rmcp::ServiceExt as _;
use tokio::sync::mpsc;

use crate::args::{McpArgs, OnHandlerError};
use crate::mcp::{Deliveries, Server};

/// Runs the relay and serves the tools until the client closes stdin, or Ctrl-C or SIGTERM.
pub async fn mcp(args: McpArgs) -> anyhow::Result<ExitCode> {
    let McpArgs { sources, app_filter, to, keep, mut relay, github } = args;
    let target = to.clone().unwrap_or_else(Target::keep);
    let rule = super::dev::flag_rule(&sources, &app_filter, target, &relay, &github)?;
    // As in `dev`: a handler's bug must not hold up the deliveries behind it.
    relay.handler_error_default = OnHandlerError::Park;
    let settings = super::dev::settings(&relay)?;
    let (client, _) = super::github_client(&github).await?;

    let deliveries = Arc::new(Deliveries::new(usize::try_from(keep).unwrap_or(usize::MAX), to.is_none()));
    let cancel = super::cancel_on_signals();
    let (events, received) = mpsc::channel(1024);
    let secret = rule.secret.clone();
    let engine = tokio::spawn({
        let (client, deliveries, cancel) = (client.clone(), deliveries.clone(), cancel.clone());
        async move {
            let outcome = relay::run(client, vec![rule], settings, events, cancel).await.map_err(anyhow::Error::new);
            if let Err(error) = &outcome {
                let sentence = crate::exit::sentence(error);
                tracing::error!("{sentence}");
                deliveries.stopped(sentence);
            }
            outcome
        }
    });
    let keeping = tokio::spawn(crate::mcp::keep(received, deliveries.clone()));

    let server = Server::new(deliveries, client, to, secret);
    let served = match server.serve(rmcp::transport::stdio_pipes()).await {
        Ok(running) => {
            tokio::select! {
                _ = running.waiting() => {}
                () = cancel.cancelled() => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(anyhow::Error::new(error).context("the MCP client did not initialize")),
    };
    // The client is gone or a signal came: stop so that the ledger is flushed.
    cancel.cancel();
    let (engine, _) = tokio::join!(engine, keeping);
    // The relay's own failure was logged when it happened, and the tools said it since.
    let _ = engine.context("the relay stopped unexpectedly")?;
    served
}

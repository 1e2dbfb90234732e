//! `hookfwd`: forwards GitHub webhook deliveries to a local handler. Parses, sets up logging, runs, exits.

mod admin;
mod answer;
mod args;
mod cmd;
mod exit;
mod feed;
mod fixture;
mod hint;
mod inspect;
mod json;
mod keys;
mod mcp;
mod schema;
mod term;
mod warning;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = hint::parse();
    let status = term::init_logging(&cli.output);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return exit::report(&anyhow::Error::new(error).context("could not start the async runtime")),
    };
    let code = match runtime.block_on(cmd::run(cli, status)) {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    };
    term::restore();
    code
}

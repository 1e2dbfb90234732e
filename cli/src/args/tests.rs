//! The flags' tests: parsers and the sentences they refuse with.

use super::*;
use clap::CommandFactory;

#[test]
fn command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn rejects_zero_interval_and_garbage_durations() {
    assert!(parse_interval("0s").is_err());
    assert!(parse_interval("soon").is_err());
    assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
}

#[test]
fn distinguishes_repositories_from_organizations() {
    assert!(parse_repo("octo/hello").is_ok());
    assert!(parse_repo("octo").is_err());
    assert!(parse_org("octo").is_ok());
    assert!(parse_org("octo/hello").is_err());
    assert!(parse_hook_url("ftp://x").is_err());
    assert!(parse_hook_url("https://blackhole.example.com/alice").is_ok());
}

#[test]
fn a_bare_port_as_target_suggests_localhost() {
    let error = parse_target("3000").unwrap_err();
    assert!(error.ends_with("; did you mean http://localhost:3000?"), "{error}");
    assert!(!parse_target("nonsense").unwrap_err().contains("did you mean"));
}

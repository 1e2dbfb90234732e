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

/// Every command of the tree but clap's `help`, with its path (`hookfwd trigger ping`), built so that
/// global flags are in place.
fn commands() -> Vec<(String, clap::Command)> {
    fn walk(path: &str, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.to_string(), command.clone()));
        for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
            walk(&format!("{path} {}", sub.get_name()), sub, out);
        }
    }
    let mut root = Cli::command();
    root.build();
    let mut out = Vec::new();
    walk("hookfwd", &root, &mut out);
    out
}

/// `line` split as a shell would, for the examples: on spaces outside single quotes.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.trim().chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => words.extend((!word.is_empty()).then(|| std::mem::take(&mut word))),
            c => word.push(c),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    words
}

/// The command at `path`, as [`commands`] builds it.
fn command(path: &str) -> clap::Command {
    commands().into_iter().find(|(each, _)| each == path).unwrap().1
}

/// The option lines of a help screen, as `hookfwd dev -h | grep -E '^\s+-'` counts them.
fn option_lines(help: &str) -> Vec<String> {
    help.lines().filter(|line| line.trim_start().starts_with('-') && line.starts_with(' ')).map(String::from).collect()
}

#[test]
fn dev_short_help_shows_the_everyday_flags_only() {
    let dev = command("hookfwd dev").render_help().to_string();
    let lines = option_lines(&dev);
    let shown: Vec<&str> =
        lines.iter().map(|line| line.split_whitespace().find(|word| word.starts_with("--")).unwrap()).collect();
    let everyday = [
        "--repo",
        "--org",
        "--app",
        "--hook-url",
        "--to",
        "--secret",
        "--action",
        "--events",
        "--filter",
        "--inspect",
        "--json",
        "--quiet",
        "--verbose...",
        "--help",
    ];
    assert_eq!(shown, everyday, "{dev}");
    assert!(shown.len() <= 15);
    assert!(dev.trim_end().ends_with("every option and examples)"), "the global options come last:\n{dev}");
}

#[test]
fn every_short_help_fits_one_screen_and_every_long_help_ends_with_examples() {
    for (path, mut command) in commands() {
        let short = command.render_help().to_string();
        assert!(option_lines(&short).len() <= 15, "{path} -h shows {} options:\n{short}", option_lines(&short).len());
        let long = command.render_long_help().to_string();
        let examples = long.split("\nExamples:\n").nth(1).unwrap_or_else(|| panic!("{path} --help has no examples"));
        let lines: Vec<&str> = examples.lines().filter(|line| line.starts_with("  hookfwd")).collect();
        assert!((2..=3).contains(&lines.len()), "{path} --help has {} examples:\n{examples}", lines.len());
        let own = format!("  {path}");
        assert!(lines.iter().all(|line| line.starts_with(&own)), "{path}'s examples run another command:\n{examples}");
        for line in examples.lines() {
            let shape = ["  # ", "  hookfwd ", "      --"].iter().any(|start| line.starts_with(start));
            assert!(line.is_empty() || shape, "{path}: an example wrapped at the terminal's width: `{line}`");
        }
        for example in examples.replace(" \\\n      ", " ").lines().filter(|line| line.starts_with("  hookfwd")) {
            let words = shell_words(example.split(" > ").next().unwrap());
            if let Err(error) = Cli::try_parse_from(&words) {
                panic!("{path}: the example `{example}` does not parse: {error}");
            }
        }
    }
}

#[test]
fn every_flag_sits_under_a_heading_with_the_global_ones_last() {
    for (path, command) in commands() {
        for arg in command.get_arguments().filter(|arg| !arg.is_positional() && !arg.is_hide_set()) {
            assert!(arg.get_help_heading().is_some(), "{path}: --{} has no heading", arg.get_id());
        }
        let last = command.get_arguments().filter_map(|arg| arg.get_help_heading()).last();
        assert_eq!(last, Some(GLOBAL), "{path}");
    }
}

#[test]
fn usage_lines_show_no_flag_the_environment_can_give_as_required() {
    for (path, mut command) in commands() {
        let usage = command.render_usage().to_string();
        for line in usage.lines() {
            // What is outside [ ] must be typed.
            let mut depth = 0;
            let required: String = line
                .chars()
                .filter(|c| {
                    depth += (*c == '[') as i32;
                    let keep = depth == 0;
                    depth -= (*c == ']') as i32;
                    keep
                })
                .collect();
            for word in required.split(|c: char| c.is_whitespace() || "<>|".contains(c)) {
                let Some(long) = word.strip_prefix("--") else { continue };
                let arg = command.get_arguments().find(|arg| arg.get_long() == Some(long));
                let arg = arg.unwrap_or_else(|| panic!("{path}: the usage line names --{long}, which it has not"));
                assert!(
                    arg.get_env().is_none(),
                    "{path}: `{line}` shows --{long} as required, which its env var can give"
                );
            }
        }
    }
}

#[test]
fn dev_and_wait_usage_name_a_source_and_the_handler() {
    for path in ["hookfwd dev", "hookfwd wait"] {
        let usage = command(path).render_usage().to_string();
        assert!(usage.contains("<--repo <OWNER/REPO>|--org <ORG>|--app>") && usage.contains("--to <URL>"), "{usage}");
    }
}

#[test]
fn wait_gives_up_with_its_own_flag_and_still_takes_the_old_name() {
    let wait = |flag: &str| {
        let args = ["hookfwd", "wait", "--repo", "o/r", "--event", "push", "--to", "localhost:3000", flag, "7s"];
        match Cli::try_parse_from(args).unwrap().command {
            Command::Wait(args) => args.give_up_after,
            _ => unreachable!(),
        }
    };
    assert_eq!(wait("--give-up-after"), Duration::from_secs(7));
    assert_eq!(wait("--timeout"), Duration::from_secs(7));
    let help = command("hookfwd wait").render_long_help().to_string();
    assert!(!help.contains("--timeout"), "the old name is hidden: {help}");
}

#[test]
fn with_app_repo_stays_a_hook_source_and_only_repo_filters() {
    let dev = |args: &[&str]| Cli::try_parse_from([&["hookfwd", "dev", "--to", "localhost:3000"], args].concat());
    let Command::Dev(args) = dev(&["--app", "--repo", "o/r", "--only-repo", "o/s"]).unwrap().command else {
        unreachable!()
    };
    assert_eq!(args.sources.repos, [Owner::parse("o/r").unwrap()]);
    assert_eq!(args.app_filter.only_repos, [Owner::parse("o/s").unwrap()]);
    let error = dev(&["--repo", "o/r", "--only-repo", "o/s"]).unwrap_err();
    assert_eq!(error.kind(), clap::error::ErrorKind::MissingRequiredArgument, "--only-repo needs --app: {error}");
}

#[test]
fn mcp_needs_no_handler_and_shows_the_stream_token() {
    let Command::Mcp(args) = Cli::try_parse_from(["hookfwd", "mcp", "--repo", "o/r"]).unwrap().command else {
        unreachable!()
    };
    assert_eq!((args.to, args.keep), (None, 500));
    let help = command("hookfwd mcp").render_help().to_string();
    assert!(help.contains("--stream-token") && help.contains("--to <URL>"), "{help}");
    assert!(Cli::try_parse_from(["hookfwd", "mcp", "--repo", "o/r", "--keep", "0"]).is_err());
}

//! The help screens through the real binary: `dev -h` fits one screen, every `--help` ends with
//! examples, usage lines show only what must be typed, and `wait`'s give-up time has its own flag.

use std::collections::HashSet;

use e2e::{Account, Finished};

const TOKEN: &str = "ghp_e2eHelpTokenNeverPrinted000000042";
const SECRET: &str = "help-secret-never-printed-5d1e";
const REPO: &str = "octo-org/help";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

/// Runs `hookfwd ARGS` to the end with the account's token and secret in the environment.
async fn run(args: &[&str]) -> Finished {
    let finished = ACCOUNT.hookfwd(args, &[("NO_COLOR", "1")]).finish().await;
    finished.assert_never_printed(&[TOKEN, SECRET]);
    finished
}

/// `hookfwd ARGS --help` (or `-h`), which must succeed.
async fn help(args: &[&str], flag: &str) -> String {
    let finished = run(&[args, &[flag]].concat()).await;
    assert_eq!(finished.code, Some(0), "{args:?} {flag}: {}", finished.stderr);
    finished.stdout
}

/// The lines `grep -E '^\s+-'` counts: one per option.
fn option_lines(help: &str) -> Vec<&str> {
    help.lines().filter(|line| line.starts_with(' ') && line.trim_start().starts_with('-')).collect()
}

/// Every command, as the words that name it (`["trigger", "ping"]`), found from the help screens.
async fn commands() -> Vec<Vec<String>> {
    let mut found = vec![Vec::new()];
    let mut next = 0;
    while next < found.len() {
        let path = found[next].clone();
        next += 1;
        let words: Vec<&str> = path.iter().map(String::as_str).collect();
        let help = help(&words, "--help").await;
        let listed = help.split("\nCommands:\n").nth(1).map(|rest| rest.split("\n\n").next().unwrap_or_default());
        for line in listed.unwrap_or_default().lines() {
            // A command's line starts two spaces in; its wrapped description, further in.
            let Some(name) = line.strip_prefix("  ").filter(|rest| !rest.starts_with(' ')) else { continue };
            let name = name.split_whitespace().next().expect("a command name");
            if name != "help" {
                found.push([path.clone(), vec![name.to_string()]].concat());
            }
        }
    }
    found
}

#[tokio::test]
async fn dev_short_help_fits_one_screen_with_the_everyday_flags() {
    let short = help(&["dev"], "-h").await;
    let options = option_lines(&short);
    assert!(options.len() <= 15, "{} options:\n{short}", options.len());
    for everyday in ["--repo", "--org", "--app", "--hook-url", "--to", "--events", "--action", "--inspect", "--json"] {
        assert!(options.iter().any(|line| line.contains(&format!("{everyday} "))), "{everyday} in dev -h:\n{short}");
    }
    for tuning in ["--ledger", "--admin-listen", "--max-stall", "--secondary-limit", "--interval", "--api-url"] {
        assert!(!short.contains(tuning), "{tuning} is not in dev -h:\n{short}");
    }
    // The global options last, under one heading.
    let global = short.split("\nGlobal options:\n").nth(1).expect("a Global options heading");
    assert_eq!(option_lines(global).len(), 4, "--json, -q, -v, -h:\n{global}");
    assert!(!global.contains("\n\n"), "nothing after the global options:\n{global}");

    // `--help` has every flag, each under its heading.
    let long = help(&["dev"], "--help").await;
    let service = long.split("\nRunning as a service:\n").nth(1).expect("a service heading");
    assert!(service.contains("--admin-listen") && service.contains("--max-stall"), "{long}");
    assert!(long.split("\nState:\n").nth(1).expect("a State heading").contains("--ledger"), "{long}");
    assert!(!long.contains("\nOptions:\n"), "no flag without a heading:\n{long}");
}

#[tokio::test]
async fn every_help_ends_with_examples_of_its_own_command() {
    let commands = commands().await;
    assert!(commands.len() >= 15, "the tree of commands: {commands:?}");
    for path in commands {
        let words: Vec<&str> = path.iter().map(String::as_str).collect();
        let long = help(&words, "--help").await;
        let examples = long.split("\nExamples:\n").nth(1).unwrap_or_else(|| panic!("{words:?} --help has examples"));
        let own = ["hookfwd"].into_iter().chain(words.iter().copied()).collect::<Vec<_>>().join(" ");
        let lines: Vec<&str> = examples.lines().filter(|line| line.trim_start().starts_with("hookfwd")).collect();
        assert!((2..=3).contains(&lines.len()), "{own}: {} examples:\n{examples}", lines.len());
        assert!(lines.iter().all(|line| line.trim_start().starts_with(&own)), "{own}:\n{examples}");
        let short = help(&words, "-h").await;
        assert!(option_lines(&short).len() <= 15, "{own} -h fits one screen:\n{short}");
    }
}

#[tokio::test]
async fn no_usage_line_shows_a_flag_the_environment_gives_as_required() {
    for path in commands().await {
        let words: Vec<&str> = path.iter().map(String::as_str).collect();
        let long = help(&words, "--help").await;
        // Long help puts a flag on its own line and its `[env: NAME]` a few lines below.
        let mut from_env = HashSet::new();
        let mut flag = None;
        for line in long.lines() {
            if let Some(word) = line.split_whitespace().find(|word| word.starts_with("--"))
                && line.trim_start().starts_with('-')
            {
                flag = Some(word.trim_end_matches(',').to_string());
            }
            if line.contains("[env: ") {
                from_env.insert(flag.clone().expect("an [env:] below a flag"));
            }
        }
        if words == ["dev"] {
            let expected = ["--hook-url", "--secret", "--state-dir", "--api-url", "--stream-token"];
            assert!(expected.iter().all(|flag| from_env.contains(*flag)), "{from_env:?}");
        }
        let usage = long.split("Usage: ").nth(1).expect("a usage line").split("\n\n").next().unwrap_or_default();
        for line in usage.lines() {
            let mut depth = 0;
            let required: String = line
                .chars()
                .filter(|c| {
                    depth += i32::from(*c == '[');
                    let outside = depth == 0;
                    depth -= i32::from(*c == ']');
                    outside
                })
                .collect();
            for word in required.split(|c: char| c.is_whitespace() || "<>|".contains(c)) {
                assert!(
                    !from_env.contains(word),
                    "{words:?}: `{line}` shows {word} as required, which an env var gives"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_gives_up_after_its_own_flag_and_the_old_name_still_works() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let (api_url, hook_url) = (fake.api_url().to_string(), fake.blackhole_url());
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().expect("UTF-8 path");
    for flag in ["--give-up-after", "--timeout"] {
        let args = [
            "wait",
            "--repo",
            REPO,
            "--event",
            "issues",
            "--to",
            "localhost:9",
            "--hook-url",
            &hook_url,
            "--api-url",
            &api_url,
            "--state-dir",
            state,
            flag,
            "1s",
        ];
        let finished = run(&args).await;
        assert_eq!(finished.code, Some(5), "{flag}: {}", finished.stderr);
        assert!(
            finished.stderr.contains("no new issues delivery was handled within 1s"),
            "{flag}: {}",
            finished.stderr
        );
    }
    let long = help(&["wait"], "--help").await;
    assert!(long.contains("--give-up-after <DURATION>") && !long.contains("--timeout"), "{long}");
    assert!(help(&["dev"], "--help").await.contains("--timeout <DURATION>"), "dev's --timeout bounds one attempt");
}

#[tokio::test]
async fn only_repo_needs_app() {
    let finished = run(&["dev", "--repo", REPO, "--only-repo", REPO, "--to", "localhost:3000"]).await;
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    assert!(finished.stderr.contains("--app"), "{}", finished.stderr);
}

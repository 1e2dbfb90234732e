//! The GitHub Action's scripts (`scripts/action/`), run through bash as the action runs them: the
//! download step against a local directory laid out like a GitHub release, the run step against a
//! recording handler with the real `hookfwd`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{Recorder, hookfwd, workspace_root};
use fake_github::{FakeGitHub, HookSpec};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const VERSION: &str = "v0.1.0";

/// Every runner the release has a binary for: `RUNNER_OS`, `RUNNER_ARCH`, the Rust target.
const RUNNERS: [(&str, &str, &str); 5] = [
    ("Linux", "X64", "x86_64-unknown-linux-musl"),
    ("Linux", "ARM64", "aarch64-unknown-linux-musl"),
    ("macOS", "X64", "x86_64-apple-darwin"),
    ("macOS", "ARM64", "aarch64-apple-darwin"),
    ("Windows", "X64", "x86_64-pc-windows-msvc"),
];

/// A directory laid out like a GitHub repository's `releases/`: `download/<tag>/<asset>`
/// and `download/<tag>/sha256.sum`, packed the way release.yml packs them.
struct Release {
    root: TempDir,
}

impl Release {
    /// Every asset holds `hookfwd-<target>/hookfwd` (`.exe` on Windows) whose bytes name the target,
    /// except the asset for this machine, which holds the real `hookfwd`.
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("download").join(VERSION);
        fs::create_dir_all(&dir).unwrap();
        let staging = tempfile::tempdir().unwrap();
        let mut sums = String::new();
        for (os, arch, target) in RUNNERS {
            let folder = format!("hookfwd-{target}");
            fs::create_dir_all(staging.path().join(&folder)).unwrap();
            let exe = staging.path().join(&folder).join(if os == "Windows" { "hookfwd.exe" } else { "hookfwd" });
            if (os, arch) == this_runner() {
                fs::copy(hookfwd(), &exe).unwrap();
            } else {
                fs::write(&exe, format!("binary for {target}\n")).unwrap();
            }
            let asset = dir.join(asset_name(target));
            let packed = if os == "Windows" {
                Command::new("zip").arg("-qr").arg(&asset).arg(&folder).current_dir(staging.path()).status()
            } else {
                Command::new("tar").arg("-czf").arg(&asset).arg(&folder).current_dir(staging.path()).status()
            };
            assert!(packed.expect("tar and zip run").success(), "packing {target}");
            sums += &format!("{}  {}\n", sha256(&asset), asset_name(target));
        }
        fs::write(dir.join("sha256.sum"), sums).unwrap();
        // GitHub serves the newest release under latest/download/ as well.
        fs::create_dir_all(root.path().join("latest")).unwrap();
        copy_dir(&dir, &root.path().join("latest").join("download"));
        Self { root }
    }

    /// The `file://` URL the install script takes as `HOOKFWD_RELEASES_URL`.
    fn url(&self) -> String {
        format!("file://{}", self.root.path().display())
    }

    /// A file of the release, by name.
    fn file(&self, name: &str) -> PathBuf {
        self.root.path().join("download").join(VERSION).join(name)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The asset name release.yml gives a target.
fn asset_name(target: &str) -> String {
    let ext = if target.contains("windows") { "zip" } else { "tar.gz" };
    format!("hookfwd-{target}.{ext}")
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

/// `RUNNER_OS` and `RUNNER_ARCH` as GitHub would set them on this machine.
fn this_runner() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "macOS",
        "windows" => "Windows",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        other => other,
    };
    (os, arch)
}

/// One run of the install script on a pretend runner, with its own tool cache and GitHub files.
struct Install {
    output: Output,
    runner: TempDir,
}

impl Install {
    fn run(release: &str, os: &str, arch: &str, version: &str) -> Self {
        let runner = tempfile::tempdir().unwrap();
        fs::create_dir_all(runner.path().join("cache")).unwrap();
        fs::create_dir_all(runner.path().join("temp")).unwrap();
        Self::run_on(runner, release, os, arch, version)
    }

    /// Runs again on the same runner (same tool cache).
    fn again(self, release: &str, os: &str, arch: &str, version: &str) -> Self {
        Self::run_on(self.runner, release, os, arch, version)
    }

    fn run_on(runner: TempDir, release: &str, os: &str, arch: &str, version: &str) -> Self {
        // The runner gives every step fresh GITHUB_PATH and GITHUB_OUTPUT files.
        for file in ["github_path", "github_output"] {
            _ = fs::remove_file(runner.path().join(file));
        }
        let output = Command::new("bash")
            .arg(workspace_root().join("scripts/action/install.sh"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUNNER_OS", os)
            .env("RUNNER_ARCH", arch)
            .env("RUNNER_TOOL_CACHE", runner.path().join("cache"))
            .env("RUNNER_TEMP", runner.path().join("temp"))
            .env("GITHUB_PATH", runner.path().join("github_path"))
            .env("GITHUB_OUTPUT", runner.path().join("github_output"))
            .env("HOOKFWD_VERSION", version)
            .env("HOOKFWD_RELEASES_URL", release)
            .output()
            .expect("bash runs");
        Self { output, runner }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The directory the script appended to `GITHUB_PATH`.
    fn path_entry(&self) -> PathBuf {
        let path = fs::read_to_string(self.runner.path().join("github_path")).expect("GITHUB_PATH was written");
        PathBuf::from(path.lines().last().expect("one entry"))
    }

    /// A `key=value` the script wrote to `GITHUB_OUTPUT`.
    fn output(&self, key: &str) -> Option<String> {
        let outputs = fs::read_to_string(self.runner.path().join("github_output")).ok()?;
        outputs.lines().find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_string))
    }

    /// Asserts the run failed with exactly one line on stderr that contains `needle`, and installed nothing.
    fn assert_one_sentence(&self, needle: &str) {
        let stderr = self.stderr();
        assert_ne!(self.output.status.code(), Some(0), "expected a failure, got: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "expected one line, got: {stderr}");
        assert!(stderr.starts_with("hookfwd install: ") && stderr.contains(needle), "unexpected message: {stderr}");
        assert!(!self.runner.path().join("github_path").exists(), "nothing may be put on PATH after a failure");
    }
}

#[test]
fn install_picks_the_asset_for_each_runner_os_and_arch() {
    let release = Release::new();
    for (os, arch, target) in RUNNERS {
        let install = Install::run(&release.url(), os, arch, VERSION);
        assert!(install.output.status.success(), "{os}/{arch}: {}", install.stderr());
        let exe = install.path_entry().join(if os == "Windows" { "hookfwd.exe" } else { "hookfwd" });
        assert_eq!(install.output("path").as_deref(), exe.to_str(), "{os}/{arch}: the path output");
        assert_eq!(install.output("target").as_deref(), Some(target), "{os}/{arch}");
        if (os, arch) == this_runner() {
            assert_eq!(fs::read(&exe).unwrap(), fs::read(hookfwd()).unwrap(), "{os}/{arch}: the real binary");
        } else {
            assert_eq!(fs::read_to_string(&exe).unwrap(), format!("binary for {target}\n"), "{os}/{arch}");
        }
    }
}

#[test]
fn installed_hookfwd_runs_from_the_path_the_action_adds() {
    let release = Release::new();
    let (os, arch) = this_runner();
    let install = Install::run(&release.url(), os, arch, "0.1.0");
    assert!(install.output.status.success(), "{}", install.stderr());
    let version = Command::new(install.path_entry().join("hookfwd")).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("hookfwd "));
}

#[test]
fn install_refuses_a_checksum_mismatch_in_one_sentence() {
    let release = Release::new();
    let asset = asset_name("x86_64-unknown-linux-musl");
    let sums = fs::read_to_string(release.file("sha256.sum")).unwrap();
    let good = sha256(&release.file(&asset));
    fs::write(release.file("sha256.sum"), sums.replace(&good, &"0".repeat(64))).unwrap();
    let install = Install::run(&release.url(), "Linux", "X64", VERSION);
    install.assert_one_sentence(&format!("checksum mismatch for {asset}"));
    assert!(install.stderr().contains(&good), "the message names what the download hashed to");
}

#[test]
fn install_refuses_an_asset_the_sums_file_does_not_list() {
    let release = Release::new();
    let sums = fs::read_to_string(release.file("sha256.sum")).unwrap();
    let kept: String =
        sums.lines().filter(|line| !line.contains("aarch64-apple-darwin")).map(|l| format!("{l}\n")).collect();
    fs::write(release.file("sha256.sum"), kept).unwrap();
    Install::run(&release.url(), "macOS", "ARM64", VERSION).assert_one_sentence("sha256.sum lists no");
}

#[test]
fn install_fails_in_one_sentence_when_the_release_lacks_the_runners_asset() {
    let release = Release::new();
    fs::remove_file(release.file(&asset_name("aarch64-unknown-linux-musl"))).unwrap();
    let install = Install::run(&release.url(), "Linux", "ARM64", VERSION);
    install.assert_one_sentence("release v0.1.0 has no asset hookfwd-aarch64-unknown-linux-musl.tar.gz");
    Install::run(&release.url(), "Linux", "X64", "v9.9.9").assert_one_sentence("release v9.9.9 has no asset");
}

#[test]
fn install_refuses_an_unsupported_runner_or_version_in_one_sentence() {
    let release = Release::new();
    Install::run(&release.url(), "FreeBSD", "X64", VERSION).assert_one_sentence("no prebuilt hookfwd for runner OS");
    Install::run(&release.url(), "Windows", "ARM64", VERSION).assert_one_sentence("'Windows' on 'ARM64'");
    Install::run(&release.url(), "Linux", "X64", "main").assert_one_sentence("not a release tag");
    Install::run(&release.url(), "Linux", "X64", "v0.1.0/../../x").assert_one_sentence("not a release tag");
}

#[test]
fn install_reuses_a_pinned_version_from_the_tool_cache() {
    let release = Release::new();
    let first = Install::run(&release.url(), "macOS", "X64", VERSION);
    assert!(first.output.status.success(), "{}", first.stderr());
    // With the release gone, only the cache can satisfy the second run.
    let gone = format!("file://{}", first.runner.path().join("no-release").display());
    let second = first.again(&gone, "macOS", "X64", VERSION);
    assert!(second.output.status.success(), "{}", second.stderr());
    let exe = second.path_entry().join("hookfwd");
    assert_eq!(fs::read_to_string(exe).unwrap(), "binary for x86_64-apple-darwin\n");
}

#[test]
fn install_of_latest_downloads_the_newest_release_every_time() {
    let release = Release::new();
    let first = Install::run(&release.url(), "Linux", "ARM64", "latest");
    assert!(first.output.status.success(), "{}", first.stderr());
    let exe = first.path_entry().join("hookfwd");
    assert_eq!(fs::read_to_string(exe).unwrap(), "binary for aarch64-unknown-linux-musl\n");
    // "latest" moves, so a cached copy is never trusted: with the release gone, the run fails.
    let gone = format!("file://{}", first.runner.path().join("no-release").display());
    first.again(&gone, "Linux", "ARM64", "latest").assert_one_sentence("has no asset");
}

/// Runs the action's run step with `INPUT_*` variables, as action.yml sets them.
async fn run_step(inputs: &[(&str, &str)]) -> (Output, String) {
    let runner = tempfile::tempdir().unwrap();
    let github_output = runner.path().join("github_output");
    let output = tokio::time::timeout(Duration::from_secs(60), run_step_command(runner.path(), inputs).output())
        .await
        .expect("the run step ends")
        .expect("bash runs");
    // The step prints what `hookfwd --json` printed, and nothing else.
    e2e::lines::assert_valid("the action's run step", &String::from_utf8_lossy(&output.stdout));
    (output, fs::read_to_string(&github_output).unwrap_or_default())
}

/// The run step as a command, on a runner whose temporary files live in `runner`.
fn run_step_command(runner: &Path, inputs: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(workspace_root().join("scripts/action/run.sh"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("HOOKFWD", hookfwd())
        .env("RUNNER_TEMP", runner)
        .env("GITHUB_OUTPUT", runner.join("github_output"))
        .kill_on_drop(true);
    for (name, value) in inputs {
        command.env(name, value);
    }
    command
}

#[tokio::test]
async fn action_send_outputs_the_delivery_guid_and_the_handlers_status() {
    let handler = Recorder::start().await;
    let url = handler.url();
    let (output, outputs) = run_step(&[
        ("INPUT_COMMAND", "send"),
        ("INPUT_EVENT", "pull_request"),
        ("INPUT_ACTION", "opened"),
        ("INPUT_TO", &url),
        ("INPUT_SECRET", "action-secret"),
    ])
    .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let received = handler.received();
    assert_eq!(received.len(), 1);
    let guid = received[0].header("x-github-delivery").expect("a delivery guid");
    assert!(received[0].header("x-hub-signature-256").is_some(), "the secret input signs the delivery");
    assert!(outputs.lines().any(|line| line == format!("guid={guid}")), "outputs: {outputs}");
    assert!(outputs.lines().any(|line| line == "status=200"), "outputs: {outputs}");
}

#[tokio::test]
async fn action_send_fails_the_step_with_hookfwds_exit_code_and_still_reports_the_status() {
    let handler = Recorder::start().await;
    handler.answer(500);
    let url = handler.url();
    let (output, outputs) = run_step(&[("INPUT_COMMAND", "send"), ("INPUT_EVENT", "ping"), ("INPUT_TO", &url)]).await;
    assert_eq!(output.status.code(), Some(4), "a rejected delivery exits 4, as hookfwd does");
    assert!(outputs.lines().any(|line| line == "status=500"), "outputs: {outputs}");
    assert!(outputs.lines().any(|line| line.starts_with("guid=") && line.len() > "guid=".len()), "outputs: {outputs}");
}

#[tokio::test]
async fn action_refuses_an_unknown_command_in_one_sentence() {
    let (output, _) = run_step(&[("INPUT_COMMAND", "replay")]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("use send or wait"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn action_wait_outputs_the_matched_delivery_and_passes_extra_args_through() {
    const TOKEN: &str = "ghp_actionWaitTokenNeverPrinted000042";
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo("octo-org/hello-world");
    fake.add_hook("octo-org/hello-world", HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let (url, hook_url, api_url) = (handler.url(), fake.blackhole_url(), fake.api_url().to_string());
    // --api-url and --interval have no input of their own: they go through `args`, one per line.
    let extra = format!("--api-url\n{api_url}\n--interval\n100ms");
    let runner = tempfile::tempdir().unwrap();
    let state = runner.path().join("state");
    let state = state.to_str().unwrap();
    let mut step = run_step_command(
        runner.path(),
        &[
            ("INPUT_COMMAND", "wait"),
            ("INPUT_REPO", "octo-org/hello-world"),
            ("INPUT_EVENT", "issues"),
            ("INPUT_ACTION", "opened"),
            ("INPUT_TO", &url),
            ("INPUT_HOOK_URL", &hook_url),
            ("INPUT_TIMEOUT", "60s"),
            ("INPUT_TOKEN", TOKEN),
            ("INPUT_SECRET", "action-secret"),
            ("INPUT_ARGS", &extra),
            ("HOOKFWD_STATE_DIR", state),
        ],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("bash runs");

    // The step's output is read only when it ends, so emit until the wait has seen one.
    let status = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            fake.emit("octo-org/hello-world", "issues", serde_json::json!({"action": "opened"})).await;
            tokio::select! {
                status = step.wait() => break status.expect("the step runs"),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    })
    .await
    .expect("the wait ends");

    let outputs = fs::read_to_string(runner.path().join("github_output")).unwrap();
    assert!(status.success(), "outputs: {outputs}");
    let received = handler.received();
    let guid = received[0].header("x-github-delivery").expect("a delivery guid");
    assert!(outputs.lines().any(|line| line == format!("guid={guid}")), "outputs: {outputs}");
    assert!(outputs.lines().any(|line| line == "status=200"), "outputs: {outputs}");
    assert!(!outputs.contains(TOKEN));
}

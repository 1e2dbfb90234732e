//! The one way the end-to-end tests start `hookfwd` (with a test's credentials, its `--json` lines held to the
//! schema), start `hookfwd dev` against the fake GitHub, and make an `issues.opened` payload.

use std::ffi::{OsStr, OsString};
use std::ops::Deref;
use std::path::Path;
use std::process::Stdio;

use fake_github::FakeGitHub;
use serde_json::{Value, json};
use testkit::Finished;

/// A running `hookfwd` (the kit's, whose methods it has), killed when dropped. Started with `--json`, its
/// stdout is checked against docs/hookfwd-lines.schema.json when the test finishes or drops it: every line
/// any test sees is one the schema describes.
pub struct Running {
    /// `None` once finished.
    inner: Option<testkit::Running>,
    /// Its command line, to name it when a line is refused.
    args: Vec<OsString>,
    /// Whether `--json` was asked for.
    json: bool,
}

impl Running {
    /// Starts `hookfwd ARGS` with a clean environment: `PATH` and `env` only.
    pub fn hookfwd<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, env: &[(&str, &OsStr)]) -> Self {
        Self::hookfwd_reading(args, env, Stdio::null())
    }

    /// Like [`Running::hookfwd`], with `stdin` as its standard input (such as a pseudo-terminal).
    pub fn hookfwd_reading<S: AsRef<OsStr>>(
        args: impl IntoIterator<Item = S>,
        env: &[(&str, &OsStr)],
        stdin: Stdio,
    ) -> Self {
        let args: Vec<OsString> = args.into_iter().map(|arg| arg.as_ref().to_owned()).collect();
        let json = args.iter().any(|arg| arg == "--json");
        let inner = testkit::Running::hookfwd_reading(&args, env, stdin);
        Self { inner: Some(inner), args, json }
    }

    /// Waits for the process to exit and returns what it printed, its `--json` lines checked.
    pub async fn finish(mut self) -> Finished {
        let finished = self.inner.take().expect("finished once").finish().await;
        if self.json {
            crate::lines::assert_valid(&self.name(), &finished.stdout);
        }
        finished
    }

    /// `hookfwd ARGS`, for a failure message.
    fn name(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
        format!("hookfwd {}", args.join(" "))
    }
}

impl Deref for Running {
    type Target = testkit::Running;

    fn deref(&self) -> &testkit::Running {
        self.inner.as_ref().expect("not finished")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed already says why; a second panic while unwinding would abort.
        if let Some(inner) = &self.inner
            && self.json
            && !std::thread::panicking()
        {
            crate::lines::assert_valid(&self.name(), &inner.lines().join("\n"));
        }
    }
}

/// What a test module hands every `hookfwd` it starts: a token the fake knows, the local signing secret
/// (each never to be printed) and the repository it forwards. Each module has its own, so that a secret
/// found in output names the test that leaked it.
#[derive(Clone, Copy)]
pub struct Account {
    /// `GITHUB_TOKEN`; empty for none.
    pub token: &'static str,
    /// `HOOKFWD_SECRET`; empty for none.
    pub secret: &'static str,
    /// `OWNER/REPO`.
    pub repo: &'static str,
}

impl Account {
    /// A fake GitHub that knows the token (with `scopes`) and has the repository.
    pub async fn fake(&self, scopes: &str) -> FakeGitHub {
        let fake = FakeGitHub::start().await;
        fake.add_token(self.token, scopes);
        fake.add_repo(self.repo);
        fake
    }

    /// [`Account::fake`] with a hook on the repository delivering to the fake's blackhole URL, as if made
    /// by hand (not by hookfwd, so no creation ping); returns the hook's id too.
    pub async fn fake_with_hook(&self, scopes: &str) -> (FakeGitHub, u64) {
        let fake = self.fake(scopes).await;
        let hook = fake.add_hook(self.repo, fake_github::HookSpec::new(fake.blackhole_url()));
        (fake, hook)
    }

    /// Starts `hookfwd ARGS` with this account's token and secret, and `env`, in an otherwise empty
    /// environment (`PATH` aside).
    pub fn hookfwd<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>, env: &[(&str, &str)]) -> Running {
        self.hookfwd_reading(args, env, std::process::Stdio::null())
    }

    /// [`Account::hookfwd`] with `stdin` as its standard input.
    pub fn hookfwd_reading<S: AsRef<OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
        env: &[(&str, &str)],
        stdin: std::process::Stdio,
    ) -> Running {
        let mut vars = Vec::new();
        for (name, value) in [("GITHUB_TOKEN", self.token), ("HOOKFWD_SECRET", self.secret)] {
            if !value.is_empty() {
                vars.push((name, OsStr::new(value)));
            }
        }
        vars.extend(env.iter().map(|(name, value)| (*name, OsStr::new(*value))));
        Running::hookfwd_reading(args, &vars, stdin)
    }

    /// Starts `hookfwd ARGS --api-url (the fake's)` with `NO_COLOR` and `env`.
    pub fn against(&self, fake: &FakeGitHub, args: &[&str], env: &[(&str, &str)]) -> Running {
        let api_url = fake.api_url().to_string();
        let mut all = args.to_vec();
        all.extend(["--api-url", &api_url]);
        let mut vars = vec![("NO_COLOR", "1")];
        vars.extend(env);
        self.hookfwd(all, &vars)
    }

    /// Starts `hookfwd dev` on the repository against `fake`, its hook at the fake's blackhole URL, polling
    /// every 100 ms, with `state` as its state directory, then `extra`; `NO_COLOR` set.
    pub fn dev(&self, fake: &FakeGitHub, target: &str, state: &Path, extra: &[&str]) -> Running {
        self.dev_at(fake, &fake.blackhole_url(), target, state, extra, &[])
    }

    /// [`Account::dev`] with the hook at `hook_url`, and `env`.
    pub fn dev_at(
        &self,
        fake: &FakeGitHub,
        hook_url: &str,
        target: &str,
        state: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Running {
        let api_url = fake.api_url().to_string();
        let mut args: Vec<&OsStr> =
            ["dev", "--repo", self.repo, "--to", target, "--hook-url", hook_url, "--api-url", &api_url]
                .into_iter()
                .chain(["--interval", "100ms", "--state-dir"])
                .map(OsStr::new)
                .collect();
        args.push(state.as_os_str());
        args.extend(extra.iter().map(OsStr::new));
        let mut vars = vec![("NO_COLOR", "1")];
        vars.extend(env);
        self.hookfwd(args, &vars)
    }

    /// An `issues.opened` payload for issue `n` of the repository.
    pub fn issue_opened(&self, n: usize) -> Value {
        json!({"action": "opened", "number": n, "issue": {"number": n, "title": format!("issue {n}")},
               "repository": {"full_name": self.repo}, "sender": {"login": "octocat"}})
    }
}

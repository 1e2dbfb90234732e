//! Consent before acting on a hook hookfwd did not create: asked on a terminal, `--yes` otherwise.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use github::HookRef;

use crate::args::HookTarget;
use crate::exit::{FAILURE, USAGE, fail};

/// The record of the hooks hookfwd created, in the state directory of the GitHub instance in use.
pub struct Registry {
    /// The instance's ledger directory; `None` when there is no state directory at all.
    dir: Option<PathBuf>,
}

impl Registry {
    /// The registry for `target`'s state directory and GitHub instance.
    pub fn new(target: &HookTarget) -> Self {
        let dir = super::state_dir(target.state_dir.clone()).ok();
        Self { dir: dir.map(|dir| relay::ledger::dir(&dir, &target.github.api_url)) }
    }

    /// Whether hookfwd created `hook`.
    pub fn created(&self, hook: &HookRef) -> bool {
        self.dir.as_deref().is_some_and(|dir| relay::ledger::created_by_hookfwd(dir, hook))
    }

    /// Forgets a deleted hook.
    pub fn forget(&self, hook: &HookRef) -> anyhow::Result<()> {
        match &self.dir {
            Some(dir) => Ok(relay::ledger::forget_hook(dir, hook)?),
            None => Ok(()),
        }
    }

    /// Goes ahead only if hookfwd created `hook`, `--yes` was given, or the user agrees on a terminal.
    /// `doing` completes "… to {doing} anyway", such as "delete it".
    pub fn consent(&self, hook: &HookRef, doing: &str, yes: bool) -> anyhow::Result<()> {
        if yes || matches!(hook, HookRef::App { .. }) || self.created(hook) {
            return Ok(());
        }
        let question = format!("{hook} was not created by hookfwd");
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(fail(USAGE, format!("{question}; pass --yes to {doing} anyway")));
        }
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{question}; {doing} anyway? [y/N] ")?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(fail(FAILURE, format!("left {hook} alone"))),
        }
    }
}

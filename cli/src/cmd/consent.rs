//! Consent before acting on a hook hookfwd did not create, or doing much at once: asked on a terminal,
//! `--yes` otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

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

    /// The instance's ledger directory, if there is a state directory.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Each hook this state directory has files for (a ledger, a lock, a kept secret), read back from
    /// their names: every reading of each name (see [`HookRef::from_key`]), and whether hookfwd created it.
    pub fn known(&self) -> Vec<Known> {
        let Some(entries) = self.dir.as_deref().and_then(|dir| std::fs::read_dir(dir).ok()) else { return Vec::new() };
        let mut keys: BTreeMap<String, bool> = BTreeMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (key, created) = match name.strip_suffix(".secret") {
                Some(key) => (key, true),
                None => (name.strip_suffix(".lock").unwrap_or(&name), false),
            };
            *keys.entry(key.to_string()).or_default() |= created;
        }
        keys.into_iter()
            .map(|(key, created)| Known { readings: HookRef::from_key(&key), created })
            .filter(|known| !known.readings.is_empty())
            .collect()
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
        if !interactive() {
            return Err(fail(USAGE, format!("{question}; pass --yes to {doing} anyway")));
        }
        if ask(&format!("{question}; {doing} anyway?"))? {
            Ok(())
        } else {
            Err(fail(FAILURE, format!("left {hook} alone")))
        }
    }
}

/// A hook the state directory has files for.
pub struct Known {
    /// The hooks its files' name can stand for; GitHub tells which exists.
    pub readings: Vec<HookRef>,
    /// Whether hookfwd created it (it keeps the hook's secret).
    pub created: bool,
}

/// Whether a question can be asked: stdin and stderr are a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question` on stderr and reads the answer from stdin: yes only for `y` or `yes`.
pub fn ask(question: &str) -> anyhow::Result<bool> {
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

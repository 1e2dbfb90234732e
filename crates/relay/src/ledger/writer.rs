//! The ledger file's one writer: a thread that appends records off the async workers, and syncs
//! the records that arrived while the last sync ran in one `fdatasync` (group commit).
//!
//! Whoever wrote a record waits only for that record's sync ([`Durable::wait`]); the writer
//! never holds a lock that async code takes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::watch;

use crate::Error;

use super::files::{append, private, sync_dir};

/// One job for the writer thread, in the order written.
enum Job {
    /// Append these lines.
    Append(String),
    /// Replace the log with this snapshot: temporary file, fsync, rename, fsync of the directory.
    Replace(String),
}

/// How far the writer got: every record numbered up to `synced` is on disk, unless it failed.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The last record on disk.
    synced: u64,
    /// Why writing stopped, if it did: nothing after this is written.
    failed: Option<Arc<io::Error>>,
}

/// The handle on the writer thread of one ledger file.
#[derive(Debug)]
pub(super) struct Writer {
    /// The log file.
    path: PathBuf,
    /// Jobs for the thread; `None` once closed.
    jobs: Option<mpsc::Sender<(u64, Job)>>,
    /// What the thread has synced.
    progress: watch::Receiver<Progress>,
    /// The number of the last job sent.
    sent: u64,
    /// The thread, joined on close.
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A promise that the records written so far are on disk.
#[derive(Debug, Clone)]
pub struct Durable {
    /// The job to wait for.
    job: u64,
    /// What the writer has synced.
    progress: watch::Receiver<Progress>,
    /// The log, for the error.
    path: PathBuf,
}

impl Durable {
    /// A promise already kept: for a ledger whose writes are durable once answered.
    pub fn kept() -> Self {
        let (_, progress) = watch::channel(Progress::default());
        Self { job: 0, progress, path: PathBuf::new() }
    }

    /// Waits until the records are on disk; an error if the writer failed before.
    pub async fn wait(mut self) -> Result<(), Error> {
        let job = self.job;
        let progress = self.progress.wait_for(|p| p.synced >= job || p.failed.is_some()).await.map(|p| p.clone());
        self.settle(progress.ok())
    }

    /// The same, for code that is not async (the CLI's `replay --parked`, tests).
    pub fn block(self) -> Result<(), Error> {
        futures::executor::block_on(self.wait())
    }

    /// Whether the records are on disk already.
    pub fn is_done(&self) -> bool {
        self.progress.borrow().synced >= self.job
    }

    fn settle(&self, progress: Option<Progress>) -> Result<(), Error> {
        match progress {
            Some(Progress { synced, .. }) if synced >= self.job => Ok(()),
            Some(Progress { failed: Some(error), .. }) => Err(failure(&self.path, &error)),
            // The thread is gone without an error: it was closed before this record was written.
            _ => Err(failure(&self.path, &io::Error::other("the ledger was closed"))),
        }
    }
}

impl Writer {
    /// Starts the writer of the log at `path`, appending to `file`; with `None` (a new ledger),
    /// the first job must be a [`Writer::replace`], which creates the log.
    pub(super) fn start(path: PathBuf, file: Option<File>) -> Result<Self, Error> {
        let (jobs, receiver) = mpsc::channel();
        let (report, progress) = watch::channel(Progress::default());
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("hookfwd-ledger".into())
            .spawn(move || write_loop(&thread_path, file, &receiver, &report))
            .map_err(|source| Error::Ledger { path: path.clone(), action: "written", source })?;
        Ok(Self { path, jobs: Some(jobs), progress, sent: 0, thread: Some(thread) })
    }

    /// Appends `text` (whole lines); an error if an earlier write failed.
    pub(super) fn append(&mut self, text: String) -> Result<(), Error> {
        self.send(Job::Append(text))
    }

    /// Replaces the log with `snapshot`, after everything appended before.
    pub(super) fn replace(&mut self, snapshot: String) -> Result<(), Error> {
        self.send(Job::Replace(snapshot))
    }

    /// A promise for everything written so far.
    pub(super) fn durable(&self) -> Durable {
        Durable { job: self.sent, progress: self.progress.clone(), path: self.path.clone() }
    }

    /// Waits for everything written so far, then stops the thread.
    pub(super) fn close(&mut self) -> Result<(), Error> {
        let durable = self.durable();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // The thread only ends by its loop; a panic there is a bug worth surfacing as a failed write.
            let _ = thread.join();
        }
        durable.settle(Some(self.progress.borrow().clone()))
    }

    fn send(&mut self, job: Job) -> Result<(), Error> {
        if let Some(error) = &self.progress.borrow().failed {
            return Err(failure(&self.path, error));
        }
        let Some(jobs) = &self.jobs else {
            return Err(failure(&self.path, &io::Error::other("the ledger was closed")));
        };
        self.sent += 1;
        jobs.send((self.sent, job)).map_err(|_| failure(&self.path, &io::Error::other("the ledger's writer stopped")))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Everything sent is written before the file is let go, so a reopen reads it back.
        let _ = self.close();
    }
}

fn failure(path: &Path, error: &io::Error) -> Error {
    Error::Ledger {
        path: path.to_path_buf(),
        action: "written",
        source: io::Error::new(error.kind(), error.to_string()),
    }
}

/// The thread: takes every job waiting, writes them in order, syncs once, reports the last.
fn write_loop(
    path: &Path,
    mut file: Option<File>,
    jobs: &mpsc::Receiver<(u64, Job)>,
    report: &watch::Sender<Progress>,
) {
    while let Ok(first) = jobs.recv() {
        let mut last = first.0;
        let mut result = run(path, &mut file, first.1);
        // Group commit: whatever arrived meanwhile shares the sync.
        while result.is_ok() {
            let Ok((number, job)) = jobs.try_recv() else { break };
            last = number;
            result = run(path, &mut file, job);
        }
        let result = result.and_then(|()| file.as_ref().map_or(Ok(()), File::sync_data));
        match result {
            Ok(()) => report.send_modify(|p| p.synced = last),
            Err(error) => {
                report.send_modify(|p| p.failed = Some(Arc::new(error)));
                return;
            }
        }
    }
}

fn run(path: &Path, file: &mut Option<File>, job: Job) -> io::Result<()> {
    match job {
        Job::Append(text) => match file {
            Some(file) => file.write_all(text.as_bytes()),
            None => Err(io::Error::other("the ledger has no log yet")),
        },
        Job::Replace(snapshot) => {
            *file = Some(replace(path, &snapshot)?);
            Ok(())
        }
    }
}

/// Writes `snapshot` over the log at `path` atomically; the log open for appending again.
pub(super) fn replace(path: &Path, snapshot: &str) -> io::Result<File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    // Created afresh (`O_EXCL`, no links followed): whatever sits at that name, a leftover or a
    // planted link, is removed rather than written through.
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = private().write(true).create_new(true).open(&temp)?;
    file.write_all(snapshot.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    sync_dir(dir)?;
    append(path)
}

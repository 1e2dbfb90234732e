//! The ledger: which deliveries of one hook have been forwarded, durable across crashes.
//!
//! # Invariant
//!
//! The ledger holds a time `floor` and a set `done` of delivery ids (with their `delivered_at`):
//!
//! * every delivery with `delivered_at < floor` has been handled: forwarded and answered, or
//!   deliberately left out because it predates where forwarding started;
//! * a delivery with `delivered_at >= floor` has been handled if and only if its id is in `done`.
//!
//! `origin` (≤ `floor`) is where forwarding started: everything in `[origin, floor)` was forwarded.
//!
//! A delivery is added to `done` only after the target answered it (see [`Ledger::record`]),
//! so a crash can repeat the deliveries in flight but never skip one. Deduplication of listed
//! deliveries is by delivery **id**: a redelivery has a new id and is forwarded again.
//!
//! # Two paths, one ledger
//!
//! With push mode a delivery can also reach hookfwd from the blackhole's stream. A pushed POST
//! carries the **guid** (`X-GitHub-Delivery`), never the delivery id, and a redelivery has the
//! same guid as the original with a new id. The rule is: **each attempt of a guid is forwarded
//! once**, whichever path brings it first. So the ledger also counts, per guid, how many of its
//! attempts were handled through the API (`d` records that carry the guid) and how many through
//! the stream (`p` records):
//!
//! * a listed delivery `(id, guid)` not in `done` is already handled iff
//!   `#pushed(guid) > #api(guid)`: the stream brought that attempt. It is then recorded as a `d`
//!   too (a *claim*), costing no GET, which evens the counts again;
//! * a pushed attempt of `guid` is already handled iff `#api(guid) > #pushed(guid)`: the poll
//!   brought it first. It is then recorded as a `p` (a claim) without being forwarded.
//!
//! The engine adds what is queued or in flight on each path to these counts, so the safety poll
//! never fetches a delivery the stream is still forwarding, and the reverse. A pushed attempt
//! whose `received_at` is below the floor counts as handled. A guid's counts are kept while its
//! newest record is at or above the floor and dropped with it, both paths at once.
//!
//! The floor trails the newest recorded delivery by [`WINDOW`], and never passes a delivery
//! still waiting to be forwarded (`keep_from`). GitHub lists a delivery only once its attempt
//! has finished, so one can show up after newer ones; the poller pages back to the floor, so
//! such a late arrival is caught as long as it is less than [`WINDOW`] late. Entries below the
//! floor are dropped, which keeps the ledger bounded (and [`MAX_DONE`] caps it outright).
//!
//! # File
//!
//! An append-only text log, one record per line, each append fsynced:
//!
//! ```text
//! hookfwd-ledger 1
//! o <origin, unix ns>
//! f <floor, unix ns>
//! c <last successful poll, unix ns>
//! d <delivery id> <delivered_at, unix ns> [<guid>]
//! p <guid> <received_at, unix ns>
//! g <guid> <#api> <#pushed> <newest, unix ns>       (snapshots only)
//! ```
//!
//! A `d` without a guid (written before push mode existed) still parses; it counts for no guid.
//!
//! A torn last line (a crash mid-append) is ignored: it was not fsynced, so it was never
//! acknowledged. Every so often the log is compacted: a snapshot is written to a temporary
//! file, fsynced, renamed over the log, and the directory fsynced. Files are mode 0600 and a
//! directory the ledger creates is mode 0700.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use github::HookRef;

use crate::Error;

/// How late a delivery may show up in GitHub's list and still be caught.
pub const WINDOW: Duration = Duration::from_secs(3 * 60);
/// The most ids the ledger keeps, however busy the hook.
pub const MAX_DONE: usize = 50_000;
/// How often the time of the last successful poll is persisted.
const CHECKED_EVERY: TimeDelta = TimeDelta::seconds(60);
const MAGIC: &str = "hookfwd-ledger 1";

/// How many attempts of one guid were handled on each path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Through the Deliveries API (`d` records carrying the guid).
    pub api: u32,
    /// Through the blackhole's stream (`p` records).
    pub pushed: u32,
}

/// One guid's counts and its newest record.
#[derive(Debug, Clone, Copy)]
struct Guid {
    /// The counts.
    attempts: Attempts,
    /// The newest `d` or `p` of this guid: the counts go when the floor passes it.
    newest: DateTime<Utc>,
}

/// A delivery handled through the API, to record: its id, `delivered_at` and guid (if known).
pub type Handled<'a> = (u64, DateTime<Utc>, Option<&'a str>);

/// The forwarding record of one hook.
#[derive(Debug)]
pub struct Ledger {
    /// The log file.
    path: PathBuf,
    /// Open for appending.
    file: File,
    /// Where forwarding started.
    origin: DateTime<Utc>,
    /// Everything before this is handled.
    floor: DateTime<Utc>,
    /// The last successful poll, as persisted.
    checked: DateTime<Utc>,
    /// Handled deliveries at or after the floor: id → delivered_at.
    done: HashMap<u64, DateTime<Utc>>,
    /// The same, ordered by time, for pruning.
    by_time: BTreeSet<(DateTime<Utc>, u64)>,
    /// Per guid: attempts handled on each path, while its newest record is at or above the floor.
    guids: HashMap<String, Guid>,
    /// The guids ordered by their newest record, for pruning.
    guids_by_time: BTreeSet<(DateTime<Utc>, String)>,
    /// Records appended since the last compaction.
    appended: usize,
    /// The most ids kept ([`MAX_DONE`]; smaller in tests).
    max_done: usize,
}

impl Ledger {
    /// Where the ledger of `hook` lives in `dir`: the file is named [`HookRef::key`].
    pub fn path(dir: &Path, hook: &HookRef) -> PathBuf {
        dir.join(hook.key())
    }

    /// Opens the ledger of `hook`, or `None` if there is none yet.
    pub fn open(dir: &Path, hook: &HookRef) -> Result<Option<Self>, Error> {
        let path = Self::path(dir, hook);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Ledger { path, action: "read", source }),
        };
        let invalid = |line: usize| Error::Ledger {
            path: path.clone(),
            action: "read",
            source: io::Error::new(io::ErrorKind::InvalidData, format!("line {line} is not a ledger record")),
        };
        // Only lines ending in a newline were fully written; a torn last line was never fsynced.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        let mut lines = complete.split('\n');
        if lines.next() != Some(MAGIC) {
            return Err(invalid(1));
        }
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let (mut origin, mut floor, mut checked) = (epoch, epoch, epoch);
        let mut done = HashMap::new();
        let mut guids = HashMap::new();
        for (index, line) in lines.enumerate() {
            let mut fields = line.split(' ');
            let fields = [fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next()];
            let parsed = match fields {
                [Some("o"), Some(t), None, ..] => time(t).map(|t| origin = t),
                [Some("f"), Some(t), None, ..] => time(t).map(|t| floor = floor.max(t)),
                [Some("c"), Some(t), None, ..] => time(t).map(|t| checked = checked.max(t)),
                [Some("d"), Some(id), Some(t), guid, None, _] => id.parse::<u64>().ok().zip(time(t)).map(|(id, t)| {
                    done.insert(id, t);
                    if let Some(guid) = guid.filter(|guid| valid_guid(guid)) {
                        count(&mut guids, guid, t, Attempts { api: 1, pushed: 0 });
                    }
                }),
                [Some("p"), Some(guid), Some(t), None, ..] if valid_guid(guid) => {
                    time(t).map(|t| count(&mut guids, guid, t, Attempts { api: 0, pushed: 1 }))
                }
                [Some("g"), Some(guid), Some(api), Some(pushed), Some(t), None] if valid_guid(guid) => {
                    match (api.parse(), pushed.parse(), time(t)) {
                        (Ok(api), Ok(pushed), Some(t)) => {
                            count(&mut guids, guid, t, Attempts { api, pushed });
                            Some(())
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            if parsed.is_none() {
                return Err(invalid(index + 2));
            }
        }
        let file = append(&path).map_err(|source| Error::Ledger { path: path.clone(), action: "read", source })?;
        let by_time = done.iter().map(|(id, t)| (*t, *id)).collect();
        let guids_by_time = guids.iter().map(|(guid, entry): (&String, &Guid)| (entry.newest, guid.clone())).collect();
        let mut ledger = Self {
            path,
            file,
            origin,
            floor,
            checked,
            done,
            by_time,
            guids,
            guids_by_time,
            appended: 0,
            max_done: MAX_DONE,
        };
        ledger.prune();
        ledger.appended = complete.lines().count();
        Ok(Some(ledger))
    }

    /// Creates (or replaces) the ledger of `hook`: forwarding starts at `origin`, and the
    /// deliveries in `done` (at or after `origin`) count as handled.
    pub fn create(
        dir: &Path,
        hook: &HookRef,
        origin: DateTime<Utc>,
        done: impl IntoIterator<Item = (u64, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let path = Self::path(dir, hook);
        create_dir(dir).map_err(|source| Error::Ledger { path: path.clone(), action: "written", source })?;
        let done: HashMap<u64, DateTime<Utc>> = done.into_iter().filter(|(_, t)| *t >= origin).collect();
        let by_time = done.iter().map(|(id, t)| (*t, *id)).collect();
        // A placeholder handle until the snapshot exists; `compact` replaces it.
        let file = File::open(dir).map_err(|source| Error::Ledger { path: path.clone(), action: "written", source })?;
        let mut ledger = Self {
            path,
            file,
            origin,
            floor: origin,
            checked: now,
            done,
            by_time,
            guids: HashMap::new(),
            guids_by_time: BTreeSet::new(),
            appended: 0,
            max_done: MAX_DONE,
        };
        ledger.compact()?;
        Ok(ledger)
    }

    /// Whether the delivery `id`, delivered at `delivered_at`, has been handled.
    pub fn is_recorded(&self, id: u64, delivered_at: DateTime<Utc>) -> bool {
        delivered_at < self.floor || self.done.contains_key(&id)
    }

    /// How many attempts of `guid` were handled on each path (while the floor has not passed them).
    pub fn attempts(&self, guid: &str) -> Attempts {
        self.guids.get(guid).map(|entry| entry.attempts).unwrap_or_default()
    }

    /// Records a delivery as handled, durably, before returning.
    ///
    /// `keep_from` is the oldest delivery still waiting to be forwarded: the floor never
    /// moves past it, so a crash cannot make it look handled.
    pub fn record(
        &mut self,
        id: u64,
        delivered_at: DateTime<Utc>,
        keep_from: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        self.record_handled(&[(id, delivered_at, None)], keep_from)
    }

    /// Records deliveries handled through the API (forwarded, or claimed because the stream
    /// brought them), with their guids, in one append and one fsync; see [`Ledger::record`].
    pub fn record_handled(&mut self, handled: &[Handled<'_>], keep_from: Option<DateTime<Utc>>) -> Result<(), Error> {
        let Some(newest) = handled.iter().map(|(_, t, _)| *t).max() else { return Ok(()) };
        let window = TimeDelta::from_std(WINDOW).unwrap_or(TimeDelta::MAX);
        let limit = keep_from.unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut floor = newest.checked_sub_signed(window).unwrap_or(self.floor).min(limit);
        let new = handled.iter().filter(|(id, _, _)| !self.done.contains_key(id)).count();
        let len = self.done.len() + new;
        if len > self.max_done {
            // Too busy for the window: drop the oldest ids, but still never past a waiting delivery.
            if let Some((t, _)) = self.by_time.iter().nth(len - self.max_done) {
                floor = floor.max((*t).min(limit));
            }
        }
        let mut text = String::new();
        for (id, t, guid) in handled {
            match guid.filter(|guid| valid_guid(guid)) {
                Some(guid) => text.push_str(&format!("d {id} {} {guid}\n", nanos(*t))),
                None => text.push_str(&format!("d {id} {}\n", nanos(*t))),
            }
        }
        if floor > self.floor {
            text.push_str(&format!("f {}\n", nanos(floor)));
        }
        self.write(&text)?;
        for (id, t, guid) in handled {
            if *t >= self.floor {
                self.done.insert(*id, *t);
                self.by_time.insert((*t, *id));
            }
            if let Some(guid) = guid.filter(|guid| valid_guid(guid)) {
                self.count(guid, *t, Attempts { api: 1, pushed: 0 });
            }
        }
        if floor > self.floor {
            self.floor = floor;
            self.prune();
        }
        self.appended += handled.len();
        self.compact_if_due()
    }

    /// Records an attempt of `guid` handled through the stream (forwarded, or claimed because
    /// the API brought it), durably, before returning. It does not move the floor: only GitHub's
    /// `delivered_at` times do.
    pub fn record_pushed(&mut self, guid: &str, received_at: DateTime<Utc>) -> Result<(), Error> {
        if !valid_guid(guid) {
            // Not a guid GitHub would send; nothing can be matched against it, so nothing to keep.
            return Ok(());
        }
        self.write(&format!("p {guid} {}\n", nanos(received_at)))?;
        self.count(guid, received_at, Attempts { api: 0, pushed: 1 });
        // Only claims move the floor; should the safety poll fail for long while the stream goes on,
        // the oldest guids go first. Their listed twins would then be forwarded again: a repeat, never a loss.
        while self.guids.len() > self.max_done {
            let Some((_, oldest)) = self.guids_by_time.pop_first() else { break };
            self.guids.remove(&oldest);
        }
        self.appended += 1;
        self.compact_if_due()
    }

    /// Compacts once the log holds twice as many records as a snapshot would.
    fn compact_if_due(&mut self) -> Result<(), Error> {
        if self.appended > (2 * (self.done.len() + self.guids.len())).max(1024) {
            self.compact()?;
        }
        Ok(())
    }

    /// Adds `attempts` to `guid`'s counts, unless the floor has passed `at` already.
    fn count(&mut self, guid: &str, at: DateTime<Utc>, attempts: Attempts) {
        if at < self.floor {
            return;
        }
        let before = self.guids.get(guid).map(|entry| entry.newest);
        count(&mut self.guids, guid, at, attempts);
        let after = self.guids[guid].newest;
        if before != Some(after) {
            if let Some(before) = before {
                self.guids_by_time.remove(&(before, guid.to_string()));
            }
            self.guids_by_time.insert((after, guid.to_string()));
        }
    }

    /// Moves the start back to `origin` (for `--since`): deliveries from `origin` on count
    /// as unhandled unless in `known`, which must hold every delivery in `[old origin, floor)`
    /// (those were forwarded, but below the floor the ledger no longer keeps their ids).
    pub fn extend_back(
        &mut self,
        origin: DateTime<Utc>,
        known: impl IntoIterator<Item = (u64, DateTime<Utc>)>,
    ) -> Result<(), Error> {
        if origin >= self.origin {
            return Ok(());
        }
        for (id, t) in known {
            if t >= origin && self.done.insert(id, t).is_none() {
                self.by_time.insert((t, id));
            }
        }
        self.origin = origin;
        self.floor = origin;
        self.compact()
    }

    /// Notes a successful poll at `now`; persisted at most once a minute.
    pub fn checked(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if now - self.checked < CHECKED_EVERY {
            return Ok(());
        }
        self.write(&format!("c {}\n", nanos(now)))?;
        self.checked = now;
        self.appended += 1;
        Ok(())
    }

    /// Where forwarding started.
    pub fn origin(&self) -> DateTime<Utc> {
        self.origin
    }

    /// Every delivery before this time has been handled.
    pub fn floor(&self) -> DateTime<Utc> {
        self.floor
    }

    /// When the hook was last polled successfully (to within a minute).
    pub fn last_checked(&self) -> DateTime<Utc> {
        self.checked
    }

    /// How many delivery ids the ledger holds.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    /// Whether the ledger holds no delivery ids.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// The log file.
    pub fn file_path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the log as a snapshot: temporary file, fsync, rename, fsync of the directory.
    pub fn compact(&mut self) -> Result<(), Error> {
        let failed = |source| Error::Ledger { path: self.path.clone(), action: "written", source };
        let mut text =
            format!("{MAGIC}\no {}\nf {}\nc {}\n", nanos(self.origin), nanos(self.floor), nanos(self.checked));
        for (t, id) in &self.by_time {
            text.push_str(&format!("d {id} {}\n", nanos(*t)));
        }
        for (guid, entry) in &self.guids {
            let Attempts { api, pushed } = entry.attempts;
            text.push_str(&format!("g {guid} {api} {pushed} {}\n", nanos(entry.newest)));
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{name}.tmp"));
        let write = || -> io::Result<File> {
            let mut file = private().write(true).create(true).truncate(true).open(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&temp, &self.path)?;
            File::open(dir)?.sync_all()?;
            append(&self.path)
        };
        self.file = write().map_err(failed)?;
        self.appended = 0;
        Ok(())
    }

    /// Appends `text` and waits until it is on disk.
    fn write(&mut self, text: &str) -> Result<(), Error> {
        let result = self.file.write_all(text.as_bytes()).and_then(|()| self.file.sync_data());
        result.map_err(|source| Error::Ledger { path: self.path.clone(), action: "written", source })
    }

    /// Drops ids, and guids whose newest record is, below the floor: the floor covers them.
    fn prune(&mut self) {
        let keep = self.by_time.split_off(&(self.floor, 0));
        for (_, id) in std::mem::replace(&mut self.by_time, keep) {
            self.done.remove(&id);
        }
        let keep = self.guids_by_time.split_off(&(self.floor, String::new()));
        for (_, guid) in std::mem::replace(&mut self.guids_by_time, keep) {
            self.guids.remove(&guid);
        }
    }
}

/// The directory of one GitHub instance's ledgers under `state_dir`, named for its API host and
/// port (`api.github.com`, `ghe.example.com`, `127.0.0.1-8080`): hook ids are per instance.
pub fn dir(state_dir: &Path, api_url: &url::Url) -> PathBuf {
    let host = api_url.host_str().unwrap_or("github");
    state_dir.join(match api_url.port() {
        Some(port) => format!("{host}-{port}"),
        None => host.to_string(),
    })
}

/// A hook's ledger held by this process until dropped: two processes forwarding one hook
/// from one state directory would forward every delivery twice.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock of `hook`'s ledger in `dir`, or fails at once with [`Error::Busy`].
    pub fn take(dir: &Path, hook: &HookRef) -> Result<Self, Error> {
        let path = Ledger::path(dir, hook).with_extension("lock");
        let failed = |source| Error::Ledger { path: path.clone(), action: "locked", source };
        create_dir(dir).map_err(failed)?;
        let mut file = private().read(true).write(true).create(true).truncate(false).open(&path).map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {
                // The PID tells a second run whom to stop; the lock, not the text, is what excludes.
                file.set_len(0).and_then(|()| write!(file, "{}", std::process::id())).map_err(failed)?;
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = match std::fs::read_to_string(&path).map(|text| text.trim().parse::<u32>()) {
                    Ok(Ok(pid)) => format!("hookfwd process {pid}"),
                    _ => "another hookfwd".to_string(),
                };
                Err(Error::Busy { hook: hook.to_string(), holder, path })
            }
            Err(std::fs::TryLockError::Error(source)) => Err(failed(source)),
        }
    }
}

/// The upstream secret of a hook hookfwd created (the one GitHub signs with), kept beside its
/// ledger, mode 0600, so that pushed deliveries can be verified on later runs too.
pub fn store_hook_secret(dir: &Path, hook: &HookRef, secret: &github::Secret) -> Result<(), Error> {
    let path = Ledger::path(dir, hook).with_extension("secret");
    let failed = |source| Error::Ledger { path: path.clone(), action: "written", source };
    create_dir(dir).map_err(failed)?;
    let temp = path.with_extension("secret.tmp");
    let write = || -> io::Result<()> {
        let mut file = private().write(true).create(true).truncate(true).open(&temp)?;
        file.write_all(secret.expose().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(failed)
}

/// The upstream secret stored for `hook` by [`store_hook_secret`], if any.
pub fn load_hook_secret(dir: &Path, hook: &HookRef) -> Result<Option<github::Secret>, Error> {
    let path = Ledger::path(dir, hook).with_extension("secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(github::Secret::new(text.trim().to_string()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Ledger { path, action: "read", source }),
    }
}

/// Whether hookfwd created `hook`: the upstream secret kept by [`store_hook_secret`] is written
/// exactly when a run creates a hook, so it doubles as the record of the hooks hookfwd owns.
pub fn created_by_hookfwd(dir: &Path, hook: &HookRef) -> bool {
    Ledger::path(dir, hook).with_extension("secret").exists()
}

/// Forgets a deleted hook: its kept upstream secret, so that the record of created hooks stays true.
pub fn forget_hook(dir: &Path, hook: &HookRef) -> Result<(), Error> {
    let path = Ledger::path(dir, hook).with_extension("secret");
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Ledger { path, action: "removed", source: e }),
        _ => Ok(()),
    }
}

/// Open options for a file only the user may read.
fn private() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn append(path: &Path) -> io::Result<File> {
    private().append(true).open(path)
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Adds `attempts` to `guid`'s counts in `guids`, noting `at` if it is the newest.
fn count(guids: &mut HashMap<String, Guid>, guid: &str, at: DateTime<Utc>, attempts: Attempts) {
    let entry = guids.entry(guid.to_string()).or_insert(Guid { attempts: Attempts::default(), newest: at });
    entry.attempts.api += attempts.api;
    entry.attempts.pushed += attempts.pushed;
    entry.newest = entry.newest.max(at);
}

/// Whether `guid` can be written as one field of a ledger line: GitHub's are UUIDs.
fn valid_guid(guid: &str) -> bool {
    !guid.is_empty() && guid.len() <= 64 && guid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or_else(|| if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

fn time(text: &str) -> Option<DateTime<Utc>> {
    text.parse::<i64>().ok().map(DateTime::from_timestamp_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> HookRef {
        HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 1 }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn keeps_each_github_instance_in_its_own_directory() {
        let dir = |url: &str| dir(Path::new("/state"), &url::Url::parse(url).unwrap());
        assert_eq!(dir("https://api.github.com"), Path::new("/state/api.github.com"));
        assert_eq!(dir("https://ghe.example.com/api/v3"), Path::new("/state/ghe.example.com"));
        assert_eq!(dir("http://127.0.0.1:8080/"), Path::new("/state/127.0.0.1-8080"));
    }

    #[test]
    fn one_process_at_a_time_holds_a_hooks_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let held = Lock::take(dir.path(), &hook()).unwrap();
        match Lock::take(dir.path(), &hook()) {
            Err(Error::Busy { holder, .. }) => assert_eq!(holder, format!("hookfwd process {}", std::process::id())),
            other => panic!("{other:?}"),
        }
        let other = HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 2 };
        assert!(Lock::take(dir.path(), &other).is_ok(), "another hook is not blocked");
        drop(held);
        assert!(Lock::take(dir.path(), &hook()).is_ok(), "the lock goes with its holder");
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(0), [(1, at(0))], at(0)).unwrap();
        ledger.record(2, at(1), None).unwrap();
        ledger.record(3, at(2), Some(at(3))).unwrap();
        drop(ledger);
        let ledger = Ledger::open(dir.path(), &hook()).unwrap().unwrap();
        assert_eq!(ledger.origin(), at(0));
        for (id, t) in [(1, at(0)), (2, at(1)), (3, at(2))] {
            assert!(ledger.is_recorded(id, t), "{id}");
        }
        assert!(!ledger.is_recorded(4, at(2)));
        assert!(!ledger.is_recorded(4, at(0)), "same second as the start, not recorded");
    }

    #[test]
    fn no_ledger_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Ledger::open(dir.path(), &hook()).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/hookfwd");
        let mut ledger = Ledger::create(&state, &hook(), at(0), [], at(0)).unwrap();
        ledger.record(1, at(1), None).unwrap();
        let mode = std::fs::metadata(ledger.file_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(ledger.file_path().file_name().unwrap(), "repos-o-r-hooks-1");
        ledger.compact().unwrap();
        assert_eq!(std::fs::metadata(ledger.file_path()).unwrap().permissions().mode() & 0o777, 0o600);
        // The temporary file is gone after the rename.
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 1);
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
        ledger.record(1, at(1), None).unwrap();
        drop(ledger);
        let path = Ledger::path(dir.path(), &hook());
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"d 2 17000").unwrap();
        let mut ledger = Ledger::open(dir.path(), &hook()).unwrap().unwrap();
        assert!(ledger.is_recorded(1, at(1)));
        assert!(!ledger.is_recorded(2, at(1)));
        // The next append still parses: compaction on open is not needed for that.
        ledger.compact().unwrap();
        ledger.record(2, at(1), None).unwrap();
        drop(ledger);
        assert!(Ledger::open(dir.path(), &hook()).unwrap().unwrap().is_recorded(2, at(1)));
    }

    #[test]
    fn garbage_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Ledger::path(dir.path(), &hook()), "not a ledger\n").unwrap();
        let err = Ledger::open(dir.path(), &hook()).unwrap_err();
        assert!(err.to_string().contains("could not be read"), "{err}");
    }

    #[test]
    fn the_floor_trails_by_the_window_and_waits_for_pending_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
        let window = WINDOW.as_secs() as i64;
        ledger.record(1, at(10), None).unwrap();
        assert_eq!(ledger.floor(), at(0));
        ledger.record(2, at(window + 100), Some(at(50))).unwrap();
        assert_eq!(ledger.floor(), at(50), "held back by a waiting delivery");
        ledger.record(3, at(window + 200), None).unwrap();
        assert_eq!(ledger.floor(), at(200));
        assert!(ledger.is_recorded(1, at(10)), "below the floor");
        assert_eq!(ledger.len(), 2, "id 1 was pruned");
        // A late arrival inside the window is still unrecorded.
        assert!(!ledger.is_recorded(99, at(window + 150)));
    }

    #[test]
    fn stays_bounded_however_long_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
        for i in 0..3_000 {
            ledger.record(i, at(i as i64), None).unwrap();
        }
        let window = WINDOW.as_secs() as usize;
        assert!(ledger.len() <= window + 1, "{}", ledger.len());
        let size = std::fs::metadata(ledger.file_path()).unwrap().len();
        assert!(size < 200_000, "{size} bytes");
        drop(ledger);
        let ledger = Ledger::open(dir.path(), &hook()).unwrap().unwrap();
        assert!(ledger.is_recorded(2_999, at(2_999)));
        assert!(ledger.is_recorded(5, at(5)));
        assert!(!ledger.is_recorded(3_000, at(2_999)));
    }

    #[test]
    fn caps_the_ids_of_a_very_busy_hook() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
        ledger.max_done = 500;
        // Many deliveries per second: the window alone would keep them all.
        for i in 0..2_000 {
            ledger.record(i, at((i / 100) as i64), None).unwrap();
        }
        assert!(ledger.len() <= 500, "{}", ledger.len());
        assert!(ledger.is_recorded(0, at(0)));
    }

    #[test]
    fn extending_back_keeps_what_was_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(1000), [], at(1000)).unwrap();
        ledger.record(10, at(1000 + 1000), None).unwrap();
        assert!(ledger.floor() > at(1000));
        ledger.extend_back(at(0), [(5, at(1100)), (10, at(2000))]).unwrap();
        assert_eq!(ledger.origin(), at(0));
        assert!(!ledger.is_recorded(1, at(500)), "before the old start: to forward");
        assert!(ledger.is_recorded(5, at(1100)), "forwarded before");
        assert!(ledger.is_recorded(10, at(2000)));
        drop(ledger);
        let ledger = Ledger::open(dir.path(), &hook()).unwrap().unwrap();
        assert!(ledger.is_recorded(5, at(1100)));
        assert!(!ledger.is_recorded(1, at(500)));
    }

    const GUID: &str = "0b989ba4-242f-11e5-81e1-c7b6966d2516";

    #[test]
    fn counts_each_guids_attempts_per_path_across_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
        assert_eq!(ledger.attempts(GUID), Attempts::default());
        ledger.record_pushed(GUID, at(1)).unwrap();
        ledger.record_handled(&[(7, at(1), Some(GUID))], None).unwrap();
        ledger.record_pushed(GUID, at(5)).unwrap();
        assert_eq!(ledger.attempts(GUID), Attempts { api: 1, pushed: 2 });
        drop(ledger);
        let mut ledger = Ledger::open(dir.path(), &hook()).unwrap().unwrap();
        assert_eq!(ledger.attempts(GUID), Attempts { api: 1, pushed: 2 });
        assert!(ledger.is_recorded(7, at(1)));
        ledger.compact().unwrap();
        ledger.record_handled(&[(8, at(5), Some(GUID))], None).unwrap();
        drop(ledger);
        let ledger = Ledger::open(dir.path(), &hook()).unwrap().unwrap();
        assert_eq!(ledger.attempts(GUID), Attempts { api: 2, pushed: 2 }, "snapshot counts plus appends");
    }

    #[test]
    fn reads_ledgers_written_before_push_mode() {
        let dir = tempfile::tempdir().unwrap();
        let t = nanos(at(10));
        std::fs::write(Ledger::path(dir.path(), &hook()), format!("{MAGIC}\no 0\nf 0\nc 0\nd 3 {t}\n")).unwrap();
        let ledger = Ledger::open(dir.path(), &hook()).unwrap().unwrap();
        assert!(ledger.is_recorded(3, at(10)));
        assert_eq!(ledger.attempts(GUID), Attempts::default());
    }

    #[test]
    fn a_guids_counts_go_with_its_newest_record_below_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
        ledger.record_pushed(GUID, at(10)).unwrap();
        ledger.record_handled(&[(1, at(9), Some(GUID))], None).unwrap();
        let window = WINDOW.as_secs() as i64;
        ledger.record(2, at(window + 9), None).unwrap();
        assert_eq!(ledger.floor(), at(9));
        assert_eq!(ledger.attempts(GUID), Attempts { api: 1, pushed: 1 }, "the push at 10 keeps both counts");
        ledger.record(3, at(window + 11), None).unwrap();
        assert_eq!(ledger.attempts(GUID), Attempts::default(), "both paths' counts go at once");
        assert!(ledger.is_recorded(1, at(9)), "below the floor");
    }

    #[test]
    fn a_line_with_a_malformed_guid_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Ledger::path(dir.path(), &hook()), format!("{MAGIC}\np not/a-guid 5\n")).unwrap();
        assert!(Ledger::open(dir.path(), &hook()).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_created_hooks_upstream_secret_is_kept_private_beside_its_ledger() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(load_hook_secret(dir.path(), &hook()).unwrap().is_none());
        store_hook_secret(dir.path(), &hook(), &github::Secret::new("upstream")).unwrap();
        assert_eq!(load_hook_secret(dir.path(), &hook()).unwrap().unwrap().expose(), "upstream");
        let path = Ledger::path(dir.path(), &hook()).with_extension("secret");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(created_by_hookfwd(dir.path(), &hook()));
        forget_hook(dir.path(), &hook()).unwrap();
        assert!(!created_by_hookfwd(dir.path(), &hook()));
    }
}

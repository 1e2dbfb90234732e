//! The ledger: which deliveries of one hook have been forwarded, durable across crashes; in a
//! file (the default) or in Redis, shared by replicas ([`SharedLedger`]).
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
//! A delivery is added to `done` only after the target answered it (see [`FileLedger::record`]),
//! so a crash can repeat the deliveries in flight but never skip one. Deduplication of listed
//! deliveries is by delivery **id**: a redelivery has a new id and is forwarded again.
//!
//! # Two paths, one ledger
//!
//! With push mode a delivery can also reach hookfwd from the blackhole's stream. A pushed POST
//! carries the **guid** (`X-GitHub-Delivery`), never the delivery id, and a redelivery has the
//! same guid as the original with a new id. So the ledger also counts, per guid, how many of its
//! attempts were handled through the API (`d` records that carry the guid) and how many through
//! the stream (`p` records). A listed delivery not in `done` whose guid has more `p` than `d`
//! records is the *twin* of an attempt the stream forwarded: it is recorded as a `d` too, costing
//! no GET, which evens the counts again. The rule built on these counts (which pushed POST is a
//! new attempt, which a repeat) lives in the engine's `state` module, once. A pushed attempt whose
//! `received_at` is below the floor counts as handled. A guid's counts are kept while its newest
//! record is at or above the floor and dropped with it, both paths at once.
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
//! k <delivery id> <delivered_at, unix ns> [<guid>]
//! p <guid> <received_at, unix ns>
//! g <guid> <#api> <#pushed> <newest, unix ns>       (snapshots only)
//! x <delivery id> <delivered_at, unix ns> [<guid>]
//! u <delivery id> [<guid>]
//! ```
//!
//! A `d` without a guid counts for no guid: a duplicate that another source forwarded is recorded
//! so, as its next run must not take the guid for one it forwarded itself.
//!
//! A `k` line is a delivery that was **skipped**: it can never be forwarded (a header no HTTP
//! request can carry, an answer GitHub gives that cannot be read, a delivery GitHub no longer
//! keeps). It counts as handled like a `d` line, so a restart does not try it again, and its
//! guid counts as an API attempt like a `d`'s, so the stream's copy of that attempt is a repeat
//! rather than forwarded: skipped means handled on both paths.
//!
//! An `x` line is a delivery that was **parked**: the handler kept rejecting it (a 5xx from a
//! live handler, see the engine's forwarder), so it was set aside for the queue to move on. It
//! follows the `d` line (or, for a pushed delivery, which has no id and is written with id 0, the
//! `p` line) that counts it as handled, so a restart does not send it again; the `x` line only
//! remembers it, whatever the floor does, until a `u` line un-parks it (it was sent again and
//! answered). Snapshots keep every parked delivery as an `x` line; at most [`MAX_PARKED`] are
//! kept, the oldest dropped first.
//!
//! Records are appended by one writer thread per file, which syncs the records that arrive
//! together in one `fdatasync` (group commit, see [`Durable`]). A torn last line (a crash
//! mid-append, a full disk) was never synced, so it was never acknowledged: [`FileLedger::open`] cuts it off (and fsyncs) before appending, so the next record
//! starts on a line of its own. Every so often the log is compacted: a snapshot is written to a
//! temporary file, fsynced, renamed over the log, and the directory fsynced.
//!
//! # Clocks and clamps
//!
//! GitHub's `delivered_at` and the local clock may disagree by minutes, and a broken or hostile
//! API may send any time at all. The floor trails a delivery's time as far as it can be
//! [`trusted`]: never later than the local clock, and a time further ahead than [`SKEW`] counts
//! as [`SKEW`] before the clock. So the floor never passes the local clock less [`WINDOW`], and
//! one delivery stamped in the future cannot make later ones look handled; a clock that is
//! minutes off either way only keeps a few more ids. On open, a floor or origin line past the
//! clock is moved back to [`floor_limit`], and one further ahead than [`SKEW`] (a far-future
//! line, not a clock set back a little) is reported by [`FileLedger::take_warnings`], once.
//!
//! # Replicas: the ledger in Redis
//!
//! With `--ledger redis://…` the same invariant is kept in Redis (see [`SharedLedger`] for the
//! keys), for replicas on different machines. What changes:
//!
//! * `done` and the floor are shared: a Lua script marks a delivery done and moves the floor in
//!   one step, to a window before the newest done delivery as far as its time is [`trusted`];
//! * a listed delivery is **claimed** before it is fetched (its replica in a hash, a lease of
//!   [`CLAIM_TTL`] in a sorted set, renewed while the replica works on it), by the script that
//!   checks it is neither done nor below the floor, and the claim is released when it is marked
//!   done. The floor never passes a delivery claimed and not done (claimed ones are kept in a
//!   sorted set until done), so a dead replica's deliveries stay above the floor until another
//!   replica takes them over when the lease ends; a claim whose lease ended six leases ago with
//!   no replica taking it over (GitHub no longer lists it) is released, so that it cannot hold
//!   the floor forever;
//! * `keep_from` is not needed: whatever a replica waits to forward it has claimed;
//! * the per-guid counts of the two paths are shared too (plus the attempts claimed and not
//!   settled), and a pushed POST is claimed by its stream event id: the first replica to claim
//!   it forwards it, the others drop their copy; a listed delivery whose guid the stream forwarded
//!   more often than the API is its twin, done by the claim script with no GET; one whose pushed
//!   or listed attempt is under way waits. A pushed claim whose lease ended (its replica died with
//!   the bytes) is released at once, and the API brings that attempt. Each delivery is forwarded
//!   once (twice only if a replica dies between the handler's answer and the record, or its
//!   claim ends meanwhile);
//! * [`MAX_DONE`] does not apply: ids below the floor are dropped as the floor moves;
//! * what another program left at the keys is checked by every script, as the file is on open:
//!   a floor past the clock (or an origin past [`SKEW`]) is moved back, a floor below the origin
//!   or missing is set again at or above it, a value of another type is reset, and a claim that
//!   never expires (no live replica's: they renew theirs within [`CLAIM_TTL`]) is given a TTL;
//!   each fix is one warning naming the key.
//!
//! The state directory's other files (locks, kept upstream secrets) are in [`files`]; the clock
//! rules in [`clock`].

mod api;
mod clock;
mod files;
mod log;
mod pace;
mod redis;
mod replica;
mod writer;

pub use self::redis::{
    CLAIM_TTL, CONNECT_FOR, Claim, ClaimOf, Connection, Location, PushClaim, SharedLedger, State, claim_name,
};
pub use api::{Ledger, Push, Record};
pub use clock::{SKEW, floor_limit, is_future, trusted};
pub use files::{Lock, check_dir, created_by_hookfwd, dir, forget_hook, instance, load_hook_secret, store_hook_secret};
use files::{append, create_dir, private};
pub use pace::{FALLBACK_SHARE, RETRY_AFTER, RedisPace};
pub use replica::RedisLedger;
pub use writer::Durable;
use writer::Writer;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
/// The most parked deliveries the ledger remembers.
pub const MAX_PARKED: usize = 10_000;

/// A delivery parked because the handler kept rejecting it, until it is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The API's delivery id; 0 for a pushed delivery (GitHub gave it none).
    pub id: u64,
    /// When GitHub delivered it (for a pushed one, when the blackhole received it).
    pub delivered_at: DateTime<Utc>,
    /// Its guid, when known.
    pub guid: Option<String>,
}

/// How many attempts of one guid were handled on each path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Through the Deliveries API (`d` records carrying the guid).
    pub api: u32,
    /// Through the blackhole's stream (`p` records).
    pub pushed: u32,
}

/// One guid's counts and its newest record.
#[derive(Debug, Clone)]
struct Guid {
    /// The counts.
    attempts: Attempts,
    /// The newest `d` or `p` of this guid: the counts go when the floor passes it.
    newest: DateTime<Utc>,
    /// The key of the body the stream brought for it ([`body_key`]), if it did.
    body: Option<String>,
}

/// A delivery handled through the API, to record: its id, `delivered_at` and guid (if known).
/// [`Record`] is what the engine hands a ledger of either kind.
pub type Handled<'a> = (u64, DateTime<Utc>, Option<&'a str>);

/// The forwarding record of one hook, in a file.
#[derive(Debug)]
pub struct FileLedger {
    /// The log file.
    path: PathBuf,
    /// Appends to it off the async workers.
    writer: Writer,
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
    /// Skipped deliveries at or after the floor (a subset of `done`), written back as `k` lines.
    skipped: HashSet<u64>,
    /// Parked deliveries, whatever the floor: (id, guid or "") → delivered_at; `x` lines.
    parked: BTreeMap<(u64, String), DateTime<Utc>>,
    /// The local clock, which the floor never passes by more than [`SKEW`] (fixed in tests).
    clock: fn() -> DateTime<Utc>,
    /// What opening found and fixed that the user should hear about, once.
    warnings: Vec<crate::Warning>,
}

impl FileLedger {
    /// Where the ledger of `hook` lives in `dir`: the file is named [`HookRef::key`].
    pub fn path(dir: &Path, hook: &HookRef) -> PathBuf {
        dir.join(hook.key())
    }

    /// Opens the ledger of `hook`, or `None` if there is none yet.
    ///
    /// A torn last line is cut off first; a floor or origin beyond the local clock plus [`SKEW`]
    /// is clamped to it (see [`FileLedger::take_warnings`]).
    pub fn open(dir: &Path, hook: &HookRef) -> Result<Option<Self>, Error> {
        Self::open_at(dir, hook, Utc::now)
    }

    /// Creates (or replaces) the ledger of `hook`: forwarding starts at `origin`, and the
    /// deliveries in `done` (at or after `origin`) count as handled. The caller keeps `origin`
    /// at or before the clock (see [`trusted`]).
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
        // No log until the snapshot below creates it.
        let writer = Writer::start(path.clone(), None)?;
        let mut ledger = Self {
            path,
            writer,
            origin,
            floor: origin,
            checked: now,
            done,
            by_time,
            guids: HashMap::new(),
            guids_by_time: BTreeSet::new(),
            appended: 0,
            max_done: MAX_DONE,
            skipped: HashSet::new(),
            parked: BTreeMap::new(),
            clock: Utc::now,
            warnings: Vec::new(),
        };
        ledger.compact()?;
        ledger.durable().block()?;
        Ok(ledger)
    }

    /// A promise that every record written so far is on disk.
    pub fn durable(&self) -> Durable {
        self.writer.durable()
    }

    /// Waits for every record written so far, and stops the writer.
    pub fn close(mut self) -> Result<(), Error> {
        self.writer.close()
    }

    /// Whether the delivery `id`, delivered at `delivered_at`, has been handled.
    pub fn is_recorded(&self, id: u64, delivered_at: DateTime<Utc>) -> bool {
        delivered_at < self.floor || self.done.contains_key(&id)
    }

    /// The bodies the stream brought, by key, with their guid and newest record (while the floor
    /// has not passed them).
    pub fn pushed_bodies(&self) -> Vec<(String, String, DateTime<Utc>)> {
        let bodies =
            self.guids.iter().filter_map(|(guid, entry)| Some((entry.body.clone()?, guid.clone(), entry.newest)));
        bodies.collect()
    }

    /// The guids of which an attempt was handled (while the floor has not passed them).
    pub fn forwarded_guids(&self) -> Vec<String> {
        self.guids.keys().cloned().collect()
    }

    /// How many attempts of `guid` were handled on each path (while the floor has not passed them).
    pub fn attempts(&self, guid: &str) -> Attempts {
        self.guids.get(guid).map(|entry| entry.attempts).unwrap_or_default()
    }

    /// Records a delivery as handled, on the writer's thread ([`FileLedger::durable`] says when
    /// it is on disk).
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

    /// Records deliveries handled through the API (forwarded, or twins of what the stream
    /// brought), with their guids, in one append (the writer syncs it); see [`FileLedger::record`].
    pub fn record_handled(&mut self, handled: &[Handled<'_>], keep_from: Option<DateTime<Utc>>) -> Result<(), Error> {
        self.append_handled('d', handled, keep_from)
    }

    /// Records a delivery that can never be forwarded as skipped (a `k` line): it counts as
    /// handled, so no restart tries it again, and as an API attempt of its guid like a `d`.
    /// `keep_from` as for [`FileLedger::record`].
    pub fn skip(&mut self, skipped: Handled<'_>, keep_from: Option<DateTime<Utc>>) -> Result<(), Error> {
        let id = skipped.0;
        self.append_handled('k', &[skipped], keep_from)?;
        if self.done.contains_key(&id) {
            self.skipped.insert(id);
        }
        Ok(())
    }

    /// Whether the delivery `id` was recorded as skipped (while the ledger still holds its id).
    pub fn is_skipped(&self, id: u64) -> bool {
        self.skipped.contains(&id)
    }

    /// Records a delivery the handler kept rejecting as parked: handled like a forwarded one (a
    /// `d` line), so the queue moves on and no restart sends it again, and remembered (an `x`
    /// line) until [`FileLedger::unpark`]. A pushed delivery (id 0) is only remembered: the caller
    /// records it as pushed. `keep_from` as for [`FileLedger::record`].
    pub fn park(&mut self, parked: Handled<'_>, keep_from: Option<DateTime<Utc>>) -> Result<(), Error> {
        let (id, delivered_at, guid) = parked;
        let guid = guid.filter(|guid| valid_guid(guid));
        if id != 0 {
            self.append_handled('d', &[(id, delivered_at, guid)], keep_from)?;
        } else if guid.is_none() {
            // Neither an id nor a guid: nothing could ever find it again.
            return Ok(());
        }
        let line = match guid {
            Some(guid) => format!("x {id} {} {guid}\n", nanos(delivered_at)),
            None => format!("x {id} {}\n", nanos(delivered_at)),
        };
        self.write(&line)?;
        remember(&mut self.parked, id, delivered_at, guid);
        self.appended += 1;
        Ok(())
    }

    /// Un-parks a delivery that was sent again and answered (a `u` line); `false` if it was not parked.
    pub fn unpark(&mut self, id: u64, guid: Option<&str>) -> Result<bool, Error> {
        let guid = guid.filter(|guid| valid_guid(guid));
        let key = (id, guid.unwrap_or_default().to_string());
        if !self.parked.contains_key(&key) {
            return Ok(false);
        }
        let line = match guid {
            Some(guid) => format!("u {id} {guid}\n"),
            None => format!("u {id}\n"),
        };
        self.write(&line)?;
        self.parked.remove(&key);
        self.appended += 1;
        Ok(true)
    }

    /// The parked deliveries, oldest first.
    pub fn parked(&self) -> Vec<Parked> {
        let mut parked: Vec<Parked> = self
            .parked
            .iter()
            .map(|((id, guid), t)| Parked { id: *id, delivered_at: *t, guid: (!guid.is_empty()).then(|| guid.clone()) })
            .collect();
        parked.sort_by_key(|parked| (parked.delivered_at, parked.id));
        parked
    }

    /// What opening found and fixed (a clamped floor, a migrated App ledger), once.
    pub fn take_warnings(&mut self) -> Vec<crate::Warning> {
        std::mem::take(&mut self.warnings)
    }

    /// Appends one `kind` line (`d` or `k`) per handled delivery and moves the floor.
    fn append_handled(
        &mut self,
        kind: char,
        handled: &[Handled<'_>],
        keep_from: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        let Some(newest) = handled.iter().map(|(_, t, _)| *t).max() else { return Ok(()) };
        let window = TimeDelta::from_std(WINDOW).unwrap_or(TimeDelta::MAX);
        // Never past a waiting delivery, and trailing only what the clock allows: a delivery
        // stamped in the future must not make those delivered until then look handled.
        let limit = keep_from.unwrap_or(DateTime::<Utc>::MAX_UTC);
        let newest = trusted(newest, (self.clock)());
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
                Some(guid) => text.push_str(&format!("{kind} {id} {} {guid}\n", nanos(*t))),
                None => text.push_str(&format!("{kind} {id} {}\n", nanos(*t))),
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

    /// Records an attempt of `guid` handled through the stream (forwarded, or skipped), on the
    /// writer's thread ([`FileLedger::durable`] says when it is on disk). It does not move the
    /// floor: only GitHub's `delivered_at` times do.
    pub fn record_pushed(&mut self, guid: &str, received_at: DateTime<Utc>, body: Option<&str>) -> Result<(), Error> {
        if !valid_guid(guid) {
            // Not a guid GitHub would send; nothing can be matched against it, so nothing to keep.
            return Ok(());
        }
        let body = body.filter(|body| valid_body_key(body));
        match body {
            Some(body) => self.write(&format!("p {guid} {} {body}\n", nanos(received_at)))?,
            None => self.write(&format!("p {guid} {}\n", nanos(received_at)))?,
        }
        self.count(guid, received_at, Attempts { api: 0, pushed: 1 });
        if let (Some(body), Some(entry)) = (body, self.guids.get_mut(guid)) {
            entry.body = Some(body.to_string());
        }
        // Only API records move the floor; should the safety poll fail for long while the stream goes on,
        // the oldest guids go first. Their listed twins would then be forwarded again: a repeat, never a loss.
        while self.guids.len() > self.max_done {
            let Some((_, oldest)) = self.guids_by_time.pop_first() else { break };
            self.guids.remove(&oldest);
        }
        self.appended += 1;
        self.compact_if_due()
    }

    /// Notes the key of a listed delivery's body (see [`Record::Body`]).
    pub fn record_body(&mut self, guid: &str, at: DateTime<Utc>, body: &str) -> Result<(), Error> {
        if !valid_guid(guid) || !valid_body_key(body) || at < self.floor {
            return Ok(());
        }
        self.write(&format!("b {guid} {} {body}\n", nanos(at)))?;
        self.count(guid, at, Attempts::default());
        note_body(&mut self.guids, guid, Some(body));
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

    /// Drops ids, and guids whose newest record is, below the floor: the floor covers them.
    fn prune(&mut self) {
        let keep = self.by_time.split_off(&(self.floor, 0));
        for (_, id) in std::mem::replace(&mut self.by_time, keep) {
            self.done.remove(&id);
            self.skipped.remove(&id);
        }
        let keep = self.guids_by_time.split_off(&(self.floor, String::new()));
        for (_, guid) in std::mem::replace(&mut self.guids_by_time, keep) {
            self.guids.remove(&guid);
        }
    }
}

/// Adds `attempts` to `guid`'s counts in `guids`, noting `at` if it is the newest.
fn count(guids: &mut HashMap<String, Guid>, guid: &str, at: DateTime<Utc>, attempts: Attempts) {
    let entry = guids.entry(guid.to_string()).or_insert(Guid { attempts: Attempts::default(), newest: at, body: None });
    entry.attempts.api += attempts.api;
    entry.attempts.pushed += attempts.pushed;
    entry.newest = entry.newest.max(at);
}

/// Notes the key of the body the stream brought for `guid`.
fn note_body(guids: &mut HashMap<String, Guid>, guid: &str, body: Option<&str>) {
    if let (Some(body), Some(entry)) = (body, guids.get_mut(guid)) {
        entry.body = Some(body.to_string());
    }
}

/// Adds a parked delivery to `parked`, dropping the oldest beyond [`MAX_PARKED`].
fn remember(parked: &mut BTreeMap<(u64, String), DateTime<Utc>>, id: u64, at: DateTime<Utc>, guid: Option<&str>) {
    parked.insert((id, guid.unwrap_or_default().to_string()), at);
    if parked.len() > MAX_PARKED {
        let oldest = parked.iter().min_by_key(|(key, t)| (**t, key.0)).map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            parked.remove(&oldest);
        }
    }
}

/// A body's key: the first 32 hex digits of its signature (128 bits of an HMAC under the hook's
/// secret), so the same bytes under another guid can be told without keeping them.
pub fn body_key(signature: &str) -> Option<String> {
    let hex = signature.split_once('=').map_or(signature, |(_, hex)| hex);
    let key = hex.get(..32)?.to_ascii_lowercase();
    valid_body_key(&key).then_some(key)
}

fn valid_body_key(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
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
mod tests;

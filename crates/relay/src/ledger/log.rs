//! The ledger's file: reading the log back (cutting a torn tail, clamping the future), and
//! compacting it into a snapshot. The format is in the [module doc](super).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use github::HookRef;

use super::*;

impl FileLedger {
    pub(super) fn open_at(dir: &Path, hook: &HookRef, clock: fn() -> DateTime<Utc>) -> Result<Option<Self>, Error> {
        let path = Self::path(dir, hook);
        let mut warnings = Vec::new();
        let read = |source| Error::Ledger { path: path.clone(), action: "read", source };
        let mut file = match private().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(read(source)),
        };
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).map_err(read)?;
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
        if !text.is_empty() && complete.len() + 1 != text.len() {
            // Cut it off before appending, or the next record would continue it.
            let keep = if complete.is_empty() { 0 } else { complete.len() as u64 + 1 };
            file.set_len(keep).and_then(|()| file.sync_all()).map_err(read)?;
            tracing::info!(path = %path.display(), "cut off a torn last ledger line");
        }
        drop(file);
        let mut lines = complete.split('\n');
        if lines.next() != Some(MAGIC) {
            return Err(invalid(1));
        }
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let (mut origin, mut floor, mut checked) = (epoch, epoch, epoch);
        let mut done = HashMap::new();
        let mut guids = HashMap::new();
        let mut skipped = HashSet::new();
        let mut parked = BTreeMap::new();
        for (index, line) in lines.enumerate() {
            let mut fields = line.split(' ');
            let fields = [
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ];
            let parsed = match fields {
                [Some("o"), Some(t), None, ..] => time(t).map(|t| origin = t),
                [Some("f"), Some(t), None, ..] => time(t).map(|t| floor = floor.max(t)),
                [Some("c"), Some(t), None, ..] => time(t).map(|t| checked = checked.max(t)),
                [Some("d"), Some(id), Some(t), guid, None, ..] => id.parse::<u64>().ok().zip(time(t)).map(|(id, t)| {
                    done.insert(id, t);
                    if let Some(guid) = guid.filter(|guid| valid_guid(guid)) {
                        count(&mut guids, guid, t, Attempts { api: 1, pushed: 0 });
                    }
                }),
                [Some("k"), Some(id), Some(t), guid, None, ..] => id.parse::<u64>().ok().zip(time(t)).map(|(id, t)| {
                    done.insert(id, t);
                    skipped.insert(id);
                    if let Some(guid) = guid.filter(|guid| valid_guid(guid)) {
                        count(&mut guids, guid, t, Attempts { api: 1, pushed: 0 });
                    }
                }),
                [Some("x"), Some(id), Some(t), guid, None, ..] if guid.is_none_or(valid_guid) => {
                    id.parse::<u64>().ok().zip(time(t)).map(|(id, t)| remember(&mut parked, id, t, guid))
                }
                [Some("u"), Some(id), guid, None, ..] if guid.is_none_or(valid_guid) => {
                    id.parse::<u64>().ok().map(|id| {
                        parked.remove(&(id, guid.unwrap_or_default().to_string()));
                    })
                }
                [Some("p"), Some(guid), Some(t), body, None, ..]
                    if valid_guid(guid) && body.is_none_or(valid_body_key) =>
                {
                    time(t).map(|t| {
                        count(&mut guids, guid, t, Attempts { api: 0, pushed: 1 });
                        note_body(&mut guids, guid, body);
                    })
                }
                [Some("b"), Some(guid), Some(t), Some(body), None, ..] if valid_guid(guid) && valid_body_key(body) => {
                    time(t).map(|t| {
                        count(&mut guids, guid, t, Attempts::default());
                        note_body(&mut guids, guid, Some(body));
                    })
                }
                [Some("g"), Some(guid), Some(api), Some(pushed), Some(t), body, None]
                    if valid_guid(guid) && body.is_none_or(valid_body_key) =>
                {
                    match (api.parse(), pushed.parse(), time(t)) {
                        (Ok(api), Ok(pushed), Some(t)) => {
                            count(&mut guids, guid, t, Attempts { api, pushed });
                            note_body(&mut guids, guid, body);
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
        // A floor in the future would make every delivery until then look handled. No record
        // puts it past the clock, so one there is moved back; one far in the future (not a clock
        // set back a little) is worth telling.
        let now = clock();
        if is_future(floor.max(origin), now) {
            let ledger = path.display().to_string();
            warnings.push(crate::Warning::LedgerFloorInFuture { ledger, until: floor.max(origin) });
        }
        if floor > now {
            floor = floor_limit(now);
        }
        if origin > now {
            origin = floor_limit(now);
        }
        floor = floor.max(origin);
        checked = checked.min(now);
        let writer = Writer::start(path.clone(), Some(append(&path).map_err(read)?))?;
        let by_time = done.iter().map(|(id, t)| (*t, *id)).collect();
        let guids_by_time = guids.iter().map(|(guid, entry): (&String, &Guid)| (entry.newest, guid.clone())).collect();
        let mut ledger = Self {
            path,
            writer,
            origin,
            floor,
            checked,
            done,
            by_time,
            guids,
            guids_by_time,
            appended: 0,
            max_done: MAX_DONE,
            skipped,
            parked,
            clock,
            warnings,
        };
        ledger.prune();
        ledger.appended = complete.lines().count();
        Ok(Some(ledger))
    }

    /// The log as a snapshot: what [`FileLedger::compact`] writes over it.
    fn snapshot(&self) -> String {
        let mut text =
            format!("{MAGIC}\no {}\nf {}\nc {}\n", nanos(self.origin), nanos(self.floor), nanos(self.checked));
        for (t, id) in &self.by_time {
            let kind = if self.skipped.contains(id) { 'k' } else { 'd' };
            text.push_str(&format!("{kind} {id} {}\n", nanos(*t)));
        }
        for ((id, guid), t) in &self.parked {
            match guid.as_str() {
                "" => text.push_str(&format!("x {id} {}\n", nanos(*t))),
                guid => text.push_str(&format!("x {id} {} {guid}\n", nanos(*t))),
            }
        }
        for (guid, entry) in &self.guids {
            let Attempts { api, pushed } = entry.attempts;
            let body = entry.body.as_deref().map_or(String::new(), |body| format!(" {body}"));
            text.push_str(&format!("g {guid} {api} {pushed} {}{body}\n", nanos(entry.newest)));
        }
        text
    }

    /// Rewrites the log as a snapshot (temporary file, fsync, rename, fsync of the directory), on
    /// the writer's thread after every record written before.
    pub fn compact(&mut self) -> Result<(), Error> {
        let snapshot = self.snapshot();
        self.writer.replace(snapshot)?;
        self.appended = 0;
        Ok(())
    }

    /// Appends `text` on the writer's thread; [`FileLedger::durable`] says when it is on disk.
    pub(super) fn write(&mut self, text: &str) -> Result<(), Error> {
        self.writer.append(text.to_string())
    }
}

//! The ledger's tests: its invariant across reopening, compaction, clocks and hostile files.

use std::fs::OpenOptions;
use std::io::Write;

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
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [(1, at(0))], at(0)).unwrap();
    ledger.record(2, at(1), None).unwrap();
    ledger.record(3, at(2), Some(at(3))).unwrap();
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
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
    assert!(FileLedger::open(dir.path(), &hook()).unwrap().is_none());
}

#[cfg(unix)]
#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/hookfwd");
    let mut ledger = FileLedger::create(&state, &hook(), at(0), [], at(0)).unwrap();
    ledger.record(1, at(1), None).unwrap();
    ledger.durable().block().unwrap();
    let mode = std::fs::metadata(ledger.file_path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(ledger.file_path().file_name().unwrap(), "repos-o-r-hooks-1");
    ledger.compact().unwrap();
    // Written by the ledger's writer thread: wait for it before looking at the directory.
    ledger.durable().block().unwrap();
    assert_eq!(std::fs::metadata(ledger.file_path()).unwrap().permissions().mode() & 0o777, 0o600);
    // The temporary file is gone after the rename.
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 1);
}

#[test]
fn a_torn_last_line_is_cut_off_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
    ledger.record(1, at(1), None).unwrap();
    drop(ledger);
    let path = FileLedger::path(dir.path(), &hook());
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"d 1136 ").unwrap();
    let mut ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'), "the torn tail is gone from the file");
    assert!(ledger.is_recorded(1, at(1)));
    assert!(!ledger.is_recorded(1136, at(1)));
    // Appending straight after, without compacting, gives a ledger that still opens.
    ledger.record(2, at(1), None).unwrap();
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_recorded(2, at(1)));
}

#[test]
fn a_delivery_stamped_in_the_future_never_lifts_the_floor_past_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let mut ledger = FileLedger::create(dir.path(), &hook(), now - TimeDelta::hours(1), [], now).unwrap();
    ledger.record(1, now + TimeDelta::hours(1), None).unwrap();
    ledger.record(2, DateTime::<Utc>::MAX_UTC, None).unwrap();
    assert!(ledger.floor() <= floor_limit(Utc::now()), "{}", ledger.floor());
    assert!(!ledger.is_recorded(3, now), "a delivery made now is still to forward");
    assert!(ledger.is_recorded(1, now + TimeDelta::hours(1)));
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(!ledger.is_recorded(3, now));
}

#[test]
fn a_far_future_floor_line_is_clamped_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = FileLedger::path(dir.path(), &hook());
    let future = nanos(Utc::now() + TimeDelta::days(365 * 100));
    std::fs::write(&path, format!("{MAGIC}\no 0\nf {future}\nc 0\n")).unwrap();
    let mut ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.floor() <= floor_limit(Utc::now()));
    assert!(!ledger.is_recorded(1, Utc::now()));
    let warnings = ledger.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let crate::Warning::LedgerFloorInFuture { ledger: said, until } = &warnings[0] else { panic!("{warnings:?}") };
    assert_eq!((said, until.timestamp_nanos_opt()), (&path.display().to_string(), Some(future)), "{warnings:?}");
    assert!(ledger.take_warnings().is_empty(), "said once");
    let origin = nanos(Utc::now() + TimeDelta::days(1));
    std::fs::write(&path, format!("{MAGIC}\no {origin}\nf {origin}\nc 0\n")).unwrap();
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.origin() <= floor_limit(Utc::now()), "the origin is clamped too");
}

#[test]
fn skipped_deliveries_count_as_handled_across_reopening_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
    ledger.record(1, at(1), None).unwrap();
    ledger.skip((2, at(2), None), None).unwrap();
    drop(ledger);
    let text = std::fs::read_to_string(FileLedger::path(dir.path(), &hook())).unwrap();
    assert!(text.lines().any(|line| line.starts_with("k 2 ")), "{text}");
    let mut ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_recorded(2, at(2)) && ledger.is_skipped(2));
    assert!(ledger.is_recorded(1, at(1)) && !ledger.is_skipped(1));
    ledger.compact().unwrap();
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_recorded(2, at(2)) && ledger.is_skipped(2), "compaction keeps the kind");
}

#[cfg(unix)]
#[test]
fn planted_links_are_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious");
    std::fs::write(&precious, "keep me").unwrap();
    let state = dir.path().join("state");
    create_dir(&state).unwrap();
    let name = hook().key();
    std::os::unix::fs::symlink(&precious, state.join(format!(".{name}.tmp"))).unwrap();
    let created = outside.path().join("created-by-lock");
    std::os::unix::fs::symlink(&created, state.join(format!("{name}.lock"))).unwrap();

    let mut ledger = FileLedger::create(&state, &hook(), at(0), [], at(0)).unwrap();
    ledger.record(1, at(1), None).unwrap();
    ledger.compact().unwrap();
    ledger.durable().block().unwrap();
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(ledger.file_path()).unwrap().file_type().is_file());
    let error = Lock::take(&state, &hook()).unwrap_err();
    assert!(matches!(error, Error::Ledger { action: "locked", .. }), "{error}");
    assert!(!created.exists(), "the lock was not created through the link");

    // The ledger itself as a link is refused rather than followed.
    drop(ledger);
    let path = FileLedger::path(&state, &hook());
    std::fs::rename(&path, outside.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("moved"), &path).unwrap();
    assert!(FileLedger::open(&state, &hook()).is_err());
}

#[cfg(unix)]
#[test]
fn a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    check_dir(&state).unwrap();
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    for mode in [0o770, 0o707, 0o777] {
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = check_dir(&state).unwrap_err();
        assert!(error.to_string().contains(&format!("chmod 700 {}", state.display())), "{error}");
    }
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    check_dir(&state).unwrap();
}

#[test]
fn garbage_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(FileLedger::path(dir.path(), &hook()), "not a ledger\n").unwrap();
    let err = FileLedger::open(dir.path(), &hook()).unwrap_err();
    assert!(err.to_string().contains("could not be read"), "{err}");
}

#[test]
fn the_floor_trails_by_the_window_and_waits_for_pending_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
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
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
    for i in 0..3_000 {
        ledger.record(i, at(i as i64), None).unwrap();
    }
    let window = WINDOW.as_secs() as usize;
    assert!(ledger.len() <= window + 1, "{}", ledger.len());
    ledger.durable().block().unwrap();
    let size = std::fs::metadata(ledger.file_path()).unwrap().len();
    assert!(size < 200_000, "{size} bytes");
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_recorded(2_999, at(2_999)));
    assert!(ledger.is_recorded(5, at(5)));
    assert!(!ledger.is_recorded(3_000, at(2_999)));
}

#[test]
fn caps_the_ids_of_a_very_busy_hook() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
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
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(1000), [], at(1000)).unwrap();
    ledger.record(10, at(1000 + 1000), None).unwrap();
    assert!(ledger.floor() > at(1000));
    ledger.extend_back(at(0), [(5, at(1100)), (10, at(2000))]).unwrap();
    assert_eq!(ledger.origin(), at(0));
    assert!(!ledger.is_recorded(1, at(500)), "before the old start: to forward");
    assert!(ledger.is_recorded(5, at(1100)), "forwarded before");
    assert!(ledger.is_recorded(10, at(2000)));
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_recorded(5, at(1100)));
    assert!(!ledger.is_recorded(1, at(500)));
}

const GUID: &str = "0b989ba4-242f-11e5-81e1-c7b6966d2516";

#[test]
fn counts_each_guids_attempts_per_path_across_reopening_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
    assert_eq!(ledger.attempts(GUID), Attempts::default());
    let body = body_key("sha256=0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef");
    ledger.record_pushed(GUID, at(1), body.as_deref()).unwrap();
    ledger.record_handled(&[(7, at(1), Some(GUID))], None).unwrap();
    ledger.record_pushed(GUID, at(5), None).unwrap();
    assert_eq!(ledger.attempts(GUID), Attempts { api: 1, pushed: 2 });
    drop(ledger);
    let mut ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert_eq!(ledger.attempts(GUID), Attempts { api: 1, pushed: 2 });
    assert!(ledger.is_recorded(7, at(1)));
    let key = "0123456789abcdef0123456789abcdef".to_string();
    assert_eq!(ledger.pushed_bodies(), vec![(key.clone(), GUID.to_string(), at(5))], "the body's key is kept");
    ledger.compact().unwrap();
    ledger.record_handled(&[(8, at(5), Some(GUID))], None).unwrap();
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert_eq!(ledger.attempts(GUID), Attempts { api: 2, pushed: 2 }, "snapshot counts plus appends");
    assert_eq!(ledger.pushed_bodies(), vec![(key, GUID.to_string(), at(5))], "and survives compaction");
}

#[test]
fn a_skip_with_its_guid_counts_as_the_api_attempt_and_keeps_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
    ledger.skip((9, at(3), Some(GUID)), None).unwrap();
    drop(ledger);
    let text = std::fs::read_to_string(FileLedger::path(dir.path(), &hook())).unwrap();
    assert!(text.lines().any(|line| line == format!("k 9 {} {GUID}", nanos(at(3)))), "{text}");
    let mut ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_recorded(9, at(3)) && ledger.is_skipped(9));
    assert_eq!(ledger.attempts(GUID), Attempts { api: 1, pushed: 0 });
    ledger.compact().unwrap();
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_skipped(9), "compaction keeps the kind");
    assert_eq!(ledger.attempts(GUID), Attempts { api: 1, pushed: 0 }, "and the guid's count");
}

#[test]
fn reads_ledgers_written_before_push_mode() {
    let dir = tempfile::tempdir().unwrap();
    let t = nanos(at(10));
    std::fs::write(FileLedger::path(dir.path(), &hook()), format!("{MAGIC}\no 0\nf 0\nc 0\nd 3 {t}\n")).unwrap();
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert!(ledger.is_recorded(3, at(10)));
    assert_eq!(ledger.attempts(GUID), Attempts::default());
}

#[test]
fn a_guids_counts_go_with_its_newest_record_below_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
    ledger.record_pushed(GUID, at(10), None).unwrap();
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
    std::fs::write(FileLedger::path(dir.path(), &hook()), format!("{MAGIC}\np not/a-guid 5\n")).unwrap();
    assert!(FileLedger::open(dir.path(), &hook()).is_err());
}

#[cfg(unix)]
#[test]
fn a_created_hooks_upstream_secret_is_kept_private_beside_its_ledger() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    assert!(load_hook_secret(dir.path(), &hook()).unwrap().is_none());
    store_hook_secret(dir.path(), &hook(), &github::Secret::new("upstream")).unwrap();
    assert_eq!(load_hook_secret(dir.path(), &hook()).unwrap().unwrap().expose(), "upstream");
    let path = dir.path().join("repos-o-r-hooks-1.secret");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(created_by_hookfwd(dir.path(), &hook()));
    forget_hook(dir.path(), &hook()).unwrap();
    assert!(!created_by_hookfwd(dir.path(), &hook()));
}

#[test]
fn repositories_whose_names_have_a_dot_keep_their_own_record_of_creation() {
    let dir = tempfile::tempdir().unwrap();
    let world = HookRef::Repo { owner: "o".into(), repo: "hello.world".into(), id: 1 };
    let there = HookRef::Repo { owner: "o".into(), repo: "hello.there".into(), id: 2 };
    store_hook_secret(dir.path(), &world, &github::Secret::new("upstream")).unwrap();
    assert!(created_by_hookfwd(dir.path(), &world));
    assert!(!created_by_hookfwd(dir.path(), &there), "not the same file as hello.world's");
    assert!(dir.path().join("repos-o-hello.world-hooks-1.secret").exists());
}

#[test]
fn parked_deliveries_stay_handled_and_listed_across_reopening_the_floor_and_compaction() {
    const GUID: &str = "0b989ba4-242f-11e5-81e1-c7b6966d2516";
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = FileLedger::create(dir.path(), &hook(), at(0), [], at(0)).unwrap();
    ledger.park((7, at(1), Some(GUID)), None).unwrap();
    ledger.park((0, at(2), Some("pushed-guid")), None).unwrap();
    assert!(ledger.is_recorded(7, at(1)), "parked counts as handled");
    assert_eq!(ledger.attempts(GUID).api, 1, "and as an API attempt of its guid");
    // Far newer deliveries lift the floor past it: it is still handled, and still parked.
    let window = WINDOW.as_secs() as i64;
    ledger.record(8, at(10 * window), None).unwrap();
    assert!(ledger.floor() > at(1));
    drop(ledger);
    let mut ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    let parked = |ledger: &FileLedger| ledger.parked().into_iter().map(|p| (p.id, p.guid)).collect::<Vec<_>>();
    let both = vec![(7, Some(GUID.to_string())), (0, Some("pushed-guid".to_string()))];
    assert_eq!(parked(&ledger), both);
    assert!(ledger.is_recorded(7, at(1)));
    ledger.compact().unwrap();
    drop(ledger);
    let mut ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert_eq!(parked(&ledger), both, "compaction keeps them");
    assert!(ledger.unpark(7, Some(GUID)).unwrap());
    assert!(!ledger.unpark(7, Some(GUID)).unwrap(), "un-parked once");
    drop(ledger);
    let ledger = FileLedger::open(dir.path(), &hook()).unwrap().unwrap();
    assert_eq!(parked(&ledger), vec![(0, Some("pushed-guid".to_string()))]);
    assert!(ledger.is_recorded(7, at(1)), "un-parked is still handled: it was sent again");
}

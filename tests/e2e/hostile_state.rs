//! `hookfwd dev` against a broken or hostile GitHub (the fake's `Poison` records and skewed clock), and a
//! tampered state directory: each time a
//! delivery is stamped in the future, poisoned or oddly headed, each torn ledger and planted link.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use e2e::{Received, Recorder, Running};
use fake_github::{FakeGitHub, HookSpec, Poison};
use serde_json::json;

use super::dev::{ACCOUNT, REPO, SCOPES, assert_signed};

/// A fake whose repository already has the hook hookfwd will find by its URL, so deliveries
/// (and their poisons) can be made before hookfwd starts; returns the hook id.
async fn fake_with_hook() -> (FakeGitHub, u64) {
    let fake = ACCOUNT.fake(SCOPES).await;
    let hook = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    (fake, hook)
}

/// Emits `ACCOUNT.issue_opened(n)` and returns its delivery's id and guid.
async fn emit(fake: &FakeGitHub, hook: u64, n: usize) -> (u64, String) {
    let ids = fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    let delivery = fake.deliveries(hook).into_iter().find(|d| ids.contains(&d.id)).expect("recorded");
    (delivery.id, delivery.guid)
}

/// Waits until the handler has every guid in `guids`; returns what it got.
async fn wait_all(handler: &Recorder, guids: &[&str]) -> Vec<Received> {
    handler
        .wait_for(Duration::from_secs(60), "every delivery", |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.header("x-github-delivery")).collect();
            guids.iter().all(|guid| seen.contains(guid))
        })
        .await
}

/// The guids the handler got, in order.
fn guids(received: &[Received]) -> Vec<String> {
    received.iter().filter_map(|r| r.header("x-github-delivery")).map(str::to_string).collect()
}

/// The directory of this fake's ledgers in `state`.
fn instance_dir(fake: &FakeGitHub, state: &Path) -> PathBuf {
    state.join(format!("127.0.0.1-{}", fake.api_url().port().expect("the fake has a port")))
}

/// Stops `dev` with SIGTERM once it has reported `forwarded` answers (so none is still in flight,
/// to be forwarded again by the next run), and says it stopped cleanly; returns its stdout and stderr.
async fn stop(dev: Running, forwarded: usize) -> (String, String) {
    if forwarded > 0 {
        dev.wait_lines("\"type\":\"forwarded\"", forwarded).await;
    }
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
    (finished.stdout, finished.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_stamped_in_the_future_hides_none_of_the_later_ones_across_restarts() {
    let (fake, hook) = fake_with_hook().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_, before) = emit(&fake, hook, 1).await;
    let (hour_ahead, hour_ahead_guid) = emit(&fake, hook, 2).await;
    fake.faults()
        .poison(hour_ahead, Poison { delivered_at: Some(Utc::now() + TimeDelta::hours(1)), ..Poison::default() });
    let (year_9999, year_9999_guid) = emit(&fake, hook, 3).await;
    let far = "9999-12-31T23:59:59Z".parse().expect("a time");
    fake.faults().poison(year_9999, Poison { delivered_at: Some(far), ..Poison::default() });

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json", "--since", "10m"]);
    dev.wait_line("\"type\":\"ready\"").await;
    wait_all(&handler, &[&before, &hour_ahead_guid, &year_9999_guid]).await;
    let (_, after) = emit(&fake, hook, 4).await;
    wait_all(&handler, &[&after]).await;
    let (stdout, _) = stop(dev, 4).await;
    let warnings = stdout.lines().filter(|line| line.contains("ahead of this computer's clock")).count();
    assert_eq!(warnings, 1, "one warning per source: {stdout}");

    // The ledger kept no floor in the future: a restart still forwards what comes next.
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let (_, later) = emit(&fake, hook, 5).await;
    let received = wait_all(&handler, &[&later]).await;
    stop(dev, 1).await;
    assert_signed(&received);
    let got = guids(&received);
    assert_eq!(got.len(), got.iter().collect::<HashSet<_>>().len(), "each once: {got:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clock_minutes_off_either_way_loses_nothing() {
    for minutes in [10, -10] {
        let (fake, hook) = fake_with_hook().await;
        fake.faults().set_clock_skew(TimeDelta::minutes(minutes));
        let handler = Recorder::start().await;
        let state = tempfile::tempdir().unwrap();

        let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
        dev.wait_line("\"type\":\"ready\"").await;
        let mut expected = Vec::new();
        for n in 0..5 {
            expected.push(emit(&fake, hook, n).await.1);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        wait_all(&handler, &expected.iter().map(String::as_str).collect::<Vec<_>>()).await;
        stop(dev, 5).await;
        // What arrives while it is stopped and after the restart is forwarded too.
        expected.push(emit(&fake, hook, 5).await.1);
        let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
        dev.wait_line("\"type\":\"ready\"").await;
        for n in 6..9 {
            expected.push(emit(&fake, hook, n).await.1);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let received = wait_all(&handler, &expected.iter().map(String::as_str).collect::<Vec<_>>()).await;
        stop(dev, 4).await;
        assert_eq!(received.len(), expected.len(), "clock {minutes:+} min: each once: {:?}", guids(&received));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_delivery_is_skipped_once_and_the_rest_of_its_source_goes_on() {
    let (fake, hook) = fake_with_hook().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let header = |name: &str, value: &str| Poison { headers: vec![(name.into(), value.into())], ..Poison::default() };
    let poisons = [
        header("X-GitHub-Event", "issues\r\nX-Injected: yes"),
        header("X-GitHub-Hook-ID", "1\0"),
        header("X-GitHub-Bad Name", "1"),
        Poison { body: Some(r#"{"id": 1, "guid": "trunc"#.into()), ..Poison::default() },
    ];
    let mut good = vec![emit(&fake, hook, 0).await.1];
    let mut poisoned = Vec::new();
    for (n, poison) in poisons.into_iter().enumerate() {
        let (id, _) = emit(&fake, hook, 100 + n).await;
        fake.faults().poison(id, poison);
        poisoned.push(id);
        good.push(emit(&fake, hook, n + 1).await.1);
    }

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json", "--since", "10m"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let received = wait_all(&handler, &good.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_signed(&received);
    for id in &poisoned {
        dev.wait_line(&format!("delivery {id} (issues.opened) of {REPO} was skipped")).await;
    }
    let (stdout, _) = stop(dev, 5).await;
    for id in &poisoned {
        let warnings = stdout.lines().filter(|line| line.contains(&format!("delivery {id} "))).count();
        assert_eq!(warnings, 1, "one warning for {id}: {stdout}");
    }
    assert!(!stdout.contains("Injected"), "GitHub's bad header value is not echoed: {stdout}");

    // A restart does not try them again, and forwards what comes next.
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let (_, next) = emit(&fake, hook, 50).await;
    let received = wait_all(&handler, &[&next]).await;
    let (stdout, _) = stop(dev, 1).await;
    assert!(!stdout.contains("was skipped"), "{stdout}");
    assert_eq!(received.len(), good.len() + 1, "only the good ones, once each: {:?}", guids(&received));
    assert!(received.iter().all(|r| r.header("x-injected").is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handler_gets_one_of_each_header_whatever_case_github_recorded_it_in() {
    let (fake, hook) = fake_with_hook().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (id, guid) = emit(&fake, hook, 1).await;
    let extra = [("x-github-event", "push"), ("X-GITHUB-DELIVERY", "forged"), ("user-agent", "other")];
    let headers = extra.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    fake.faults().poison(id, Poison { headers, ..Poison::default() });

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json", "--since", "10m"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let received = wait_all(&handler, &[&guid]).await;
    stop(dev, 1).await;
    let request = &received[0];
    for name in ["x-github-event", "x-github-delivery", "user-agent", "x-github-hook-id"] {
        assert_eq!(request.header_count(name), 1, "{name}: {:?}", request.header_lines);
    }
    assert_eq!(request.header("x-github-event"), Some("issues"), "GitHub's own header is the one kept");
    assert_eq!(request.header("x-github-delivery"), Some(guid.as_str()));
    assert_signed(&received);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_ledger_line_does_not_stop_a_later_start() {
    let (fake, hook) = fake_with_hook().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let (_, first) = emit(&fake, hook, 1).await;
    wait_all(&handler, &[&first]).await;
    stop(dev, 1).await;
    // A full disk cut the last append short.
    let ledger = instance_dir(&fake, state.path()).join(format!("repos-{}-hooks-{hook}", REPO.replace('/', "-")));
    let mut text = std::fs::read_to_string(&ledger).expect("the ledger was written");
    text.push_str("d 1136 ");
    std::fs::write(&ledger, text).unwrap();

    // One run appends after it and is killed (so it cannot compact); the next must still start.
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let (_, second) = emit(&fake, hook, 2).await;
    wait_all(&handler, &[&second]).await;
    dev.wait_line("\"type\":\"forwarded\"").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    dev.signal(libc::SIGKILL);
    dev.finish().await;
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let (_, third) = emit(&fake, hook, 3).await;
    let received = wait_all(&handler, &[&third]).await;
    stop(dev, 1).await;
    assert_eq!(received.len(), 3, "{:?}", guids(&received));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_far_future_floor_in_the_ledger_is_not_trusted() {
    let (fake, hook) = fake_with_hook().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    stop(dev, 0).await;
    // The floor line says everything until 2200 was forwarded.
    let ledger = instance_dir(&fake, state.path()).join(format!("repos-{}-hooks-{hook}", REPO.replace('/', "-")));
    let mut text = std::fs::read_to_string(&ledger).expect("the ledger was written");
    text.push_str("f 7258118400000000000\n");
    std::fs::write(&ledger, text).unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let (_, guid) = emit(&fake, hook, 1).await;
    wait_all(&handler, &[&guid]).await;
    let (stdout, _) = stop(dev, 1).await;
    let warnings: Vec<&str> = stdout.lines().filter(|line| line.contains("which is in the future")).collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(warnings[0].contains("2200-01-01"), "{}", warnings[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_links_in_the_state_directory_are_never_written_through() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let (fake, hook) = fake_with_hook().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let dir = instance_dir(&fake, state.path());
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = format!("repos-{}-hooks-{hook}", REPO.replace('/', "-"));
    let precious = outside.path().join("precious");
    std::fs::write(&precious, "the user's file").unwrap();
    symlink(&precious, dir.join(format!(".{key}.tmp"))).unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let (_, guid) = emit(&fake, hook, 1).await;
    wait_all(&handler, &[&guid]).await;
    stop(dev, 1).await;
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "the user's file");
    assert!(std::fs::symlink_metadata(dir.join(&key)).unwrap().file_type().is_file());

    // A lock file planted as a link is refused, not followed.
    let lock = dir.join(format!("{key}.lock"));
    std::fs::remove_file(&lock).unwrap();
    let target = outside.path().join("made-through-the-lock");
    symlink(&target, &lock).unwrap();
    let finished = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]).finish().await;
    assert_eq!(finished.code, Some(1), "stdout: {}\nstderr: {}", finished.stdout, finished.stderr);
    assert!(finished.stderr.contains("could not be locked"), "{}", finished.stderr);
    assert!(!target.exists(), "nothing was created through the link");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_directory_others_can_write_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let fake = ACCOUNT.fake(SCOPES).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o770)).unwrap();

    let finished = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]).finish().await;
    assert_eq!(finished.code, Some(1), "stdout: {}\nstderr: {}", finished.stdout, finished.stderr);
    let sentences: Vec<&str> = finished.stderr.lines().filter(|line| line.starts_with("hookfwd: ")).collect();
    assert_eq!(sentences.len(), 1, "{}", finished.stderr);
    assert!(sentences[0].contains(&format!("chmod 700 {}", state.path().display())), "{}", sentences[0]);
    assert!(!finished.stderr.contains("panicked"));
    assert!(!finished.stdout.contains("\"type\":\"ready\""), "it never started");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn large_payloads_wait_within_a_byte_budget() {
    use super::hostile::peak_rss;
    const PAYLOADS: usize = 24;
    const SIZE: usize = 10 * 1024 * 1024;
    let (fake, hook) = fake_with_hook().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for n in 0..PAYLOADS {
        let ids = fake.emit(REPO, "issues", json!({"action": "opened", "number": n, "filler": "x".repeat(SIZE)})).await;
        expected.push(fake.deliveries(hook).into_iter().find(|d| ids.contains(&d.id)).expect("recorded").guid);
    }

    // A slow handler, so that fetching runs as far ahead as it may.
    handler.delay(Duration::from_millis(250));
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json", "--since", "10m"]);
    dev.wait_line("\"type\":\"ready\"").await;
    wait_all(&handler, &expected.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let peak = peak_rss(dev.pid());
    stop(dev, 24).await;
    eprintln!("peak RSS of hookfwd forwarding {PAYLOADS} payloads of {SIZE} bytes: {} MiB", peak / 1024 / 1024);
    // Fetched 16 ahead, 24 × 10 MB took over 300 MiB; within the 64 MiB budget (each payload
    // held a few times over on its way: read, parsed, rebuilt, sent) it stays well under that.
    let limit = 200 * 1024 * 1024;
    assert!(peak < limit, "peak RSS {} MiB", peak / 1024 / 1024);
}

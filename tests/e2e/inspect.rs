//! The local inspector through the real binary: its URL on the Ready line, its API, its safety (Host and
//! token), an address in use, and the page itself in headless Chromium over WebDriver.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use e2e::{Account, Browser, Recorder, Running, eventually, workspace_root};
use fake_github::FakeGitHub;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eInspectTokenNeverPrinted000051";
const SECRET: &str = "inspect-secret-never-printed-3e9a";
const REPO: &str = "octo-org/inspected";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

/// `hookfwd dev` with the inspector on a port of its own (`127.0.0.1:0`), and its URL from the Ready line.
async fn dev(fake: &FakeGitHub, target: &str, state: &Path) -> (Running, String) {
    let run = ACCOUNT.dev(fake, target, state, &["--inspect", "127.0.0.1:0"]);
    let line = run.wait_line("inspect deliveries at ").await;
    let url = line.split("inspect deliveries at ").nth(1).expect("a URL").trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (run, url)
}

/// Waits until the handler got GitHub's ping for the hook `dev` created: hookfwd forwards it always, first.
async fn the_creation_ping(handler: &Recorder) {
    let got = handler.wait_for(Duration::from_secs(30), "the creation ping", |got| !got.is_empty()).await;
    assert_eq!(got[0].header("x-github-event"), Some("ping"), "the hook's creation ping comes first");
}

/// The row of the first delivery of `kind` (`issues.opened`), once listed.
async fn row_of(url: &str, kind: &str) -> Value {
    eventually(format!("a {kind} row"), async || list(url).await.into_iter().find(|row| row["kind"] == kind)).await
}

/// A raw HTTP/1.1 GET with the given `Host`, for what a browser would never send; returns the status line.
fn raw_get(url: &str, host: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the inspector");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

async fn list(url: &str) -> Vec<Value> {
    reqwest::get(format!("{url}/api/deliveries")).await.unwrap().json().await.unwrap()
}

/// The page's per-run token, from its meta tag.
async fn page_token(url: &str) -> String {
    let page = reqwest::get(format!("{url}/")).await.unwrap().text().await.unwrap();
    let needle = "name=\"hookfwd-token\" content=\"";
    let start = page.find(needle).expect("the token meta tag") + needle.len();
    page[start..start + 32].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inspector_lists_a_delivery_with_its_request_and_the_handlers_answer() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_run, url) = dev(&fake, &handler.url(), state.path()).await;
    the_creation_ping(&handler).await;
    handler.answer_with(500, r#"{"error":"handler exploded"}"#);
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 7})).await;

    let row = eventually("the issue's row with two attempts", async || {
        let rows = list(&url).await.into_iter();
        rows.filter(|row| row["kind"] == "issues.opened").find(|row| row["attempts"].as_u64() >= Some(2))
    })
    .await;
    assert_eq!(row["kind"], "issues.opened");
    assert_eq!(row["via"], "api");
    assert_eq!(row["status"], 500);
    let detail: Value =
        reqwest::get(format!("{url}/api/deliveries/{}", row["seq"])).await.unwrap().json().await.unwrap();
    assert!(detail["payload"].as_str().unwrap().contains("\"number\":7"), "{detail}");
    assert_eq!(detail["headers"]["X-GitHub-Event"], "issues", "headers are an object, as on --json lines: {detail}");
    assert_eq!((&detail["source"], &detail["hook_id"]), (&json!(REPO), &row["hook_id"]), "{detail}");
    assert_eq!(detail["attempts_detail"][0]["answer"]["body"], r#"{"error":"handler exploded"}"#);

    // Copy as curl: signed for the local secret over the exact payload.
    let curl = reqwest::get(format!("{url}/api/deliveries/{}/curl", row["seq"])).await.unwrap().text().await.unwrap();
    assert!(curl.contains("X-Hub-Signature-256: sha256="), "{curl}");
    assert!(!curl.contains(SECRET), "{curl}");
    // Save as fixture: a fixture without signatures.
    let fixture = reqwest::get(format!("{url}/api/deliveries/{}/fixture", row["seq"])).await.unwrap();
    assert!(fixture.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let fixture = fixture.text().await.unwrap();
    assert!(fixture.contains("\"hookfwd_fixture\": 2") && !fixture.contains("sha256="), "{fixture}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_host_and_a_missing_token_are_refused_and_replay_needs_the_pages_token() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_run, url) = dev(&fake, &handler.url(), state.path()).await;

    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own name as Host.
    for path in ["/", "/api/deliveries", "/api/events"] {
        let answer = raw_get(&url, "evil.example:4040", path);
        assert!(answer.starts_with("HTTP/1.1 403"), "{path}: {answer}");
        assert!(!answer.contains("hookfwd-token"), "{answer}");
    }
    assert!(raw_get(&url, "localhost", "/api/deliveries").starts_with("HTTP/1.1 200"));

    the_creation_ping(&handler).await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 1})).await;
    handler.wait_for(Duration::from_secs(30), "the delivery", |got| got.len() == 2).await;
    let seq = row_of(&url, "issues.opened").await["seq"].clone();

    let client = reqwest::Client::new();
    let replay = format!("{url}/api/deliveries/{seq}/replay");
    let refused = client.post(&replay).send().await.unwrap();
    assert_eq!(refused.status(), 403, "no token, no replay");
    let refused = client.post(&replay).header("X-Hookfwd-Token", "0".repeat(32)).send().await.unwrap();
    assert_eq!(refused.status(), 403, "a wrong token, no replay");
    assert_eq!(handler.received().len(), 2, "the ping and the issue, and no replay");

    let token = page_token(&url).await;
    let done: Value =
        client.post(&replay).header("X-Hookfwd-Token", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(done["status"], 200, "{done}");
    let received = handler.wait_for(Duration::from_secs(10), "the replay", |got| got.len() == 3).await;
    assert_eq!(received[2].body, received[1].body);
    assert_eq!(received[2].header("x-hookfwd-replay"), Some("1"));
    let rows = list(&url).await;
    assert!(rows.iter().any(|row| row["replay"] == true), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redeliver_on_github_needs_the_token_and_brings_the_delivery_back_marked_as_a_redelivery() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_run, url) = dev(&fake, &handler.url(), state.path()).await;
    the_creation_ping(&handler).await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 3})).await;
    handler.wait_for(Duration::from_secs(30), "the delivery", |got| got.len() == 2).await;
    let seq = row_of(&url, "issues.opened").await["seq"].clone();

    let client = reqwest::Client::new();
    let redeliver = format!("{url}/api/deliveries/{seq}/redeliver");
    assert_eq!(client.post(&redeliver).send().await.unwrap().status(), 403, "no token, no redelivery");
    assert_eq!(fake.stats().redeliver, 0, "a refused request never reaches GitHub");

    let token = page_token(&url).await;
    let asked = client.post(&redeliver).header("X-Hookfwd-Token", &token).send().await.unwrap();
    assert_eq!(asked.status(), 200);
    let asked: Value = asked.json().await.unwrap();
    assert!(asked["redelivering"].as_u64().is_some(), "{asked}");
    assert_eq!(fake.stats().redeliver, 1);

    // GitHub sends it again with the same guid; hookfwd forwards that attempt, and the page marks it.
    let received = handler.wait_for(Duration::from_secs(30), "the redelivery", |got| got.len() == 3).await;
    assert_eq!(received[2].header("x-github-delivery"), received[1].header("x-github-delivery"));
    assert_eq!(received[2].body, received[1].body);
    let rows = eventually("a redelivery row", async || Some(list(&url).await).filter(|rows| rows.len() == 3)).await;
    assert_eq!(rows.iter().filter(|row| row["redelivery"] == true).count(), 1, "{rows:?}");
}

#[tokio::test]
async fn an_inspector_address_in_use_is_one_sentence_and_exit_2() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (hook_url, api_url) = (fake.blackhole_url(), fake.api_url().to_string());
    let args = [
        "dev",
        "--repo",
        REPO,
        "--to",
        "localhost:9",
        "--hook-url",
        &hook_url,
        "--api-url",
        &api_url,
        "--inspect",
        &addr,
    ];
    let run = Running::hookfwd(args, &[("GITHUB_TOKEN", OsStr::new(TOKEN))]).finish().await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains(&format!("the inspector address {addr} is in use")), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_rows_appear_live_open_filter_and_replay() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_run, url) = dev(&fake, &handler.url(), state.path()).await;
    let shots = workspace_root().join("target/inspector-screenshots");
    let browser = Browser::start().await;
    browser.goto(&format!("{url}/")).await;
    browser.wait_for("#live.on").await;
    the_creation_ping(&handler).await;

    // A delivery's row appears without a reload.
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 41, "title": "from the browser test"})).await;
    fake.emit(REPO, "push", json!({"ref": "refs/heads/main"})).await;
    let rows_text = eventually("both rows", async || {
        let text = browser.eval("return document.getElementById('rows').innerText", vec![]).await;
        let text = text.as_str().unwrap_or_default().to_string();
        (text.contains("issues.opened") && text.contains("push") && !text.contains("pending")).then_some(text)
    })
    .await;
    assert!(rows_text.contains("200"), "{rows_text}");
    browser.screenshot(&shots.join("1-list.png")).await;

    // Opening the issues row (with the keyboard: focus it, Enter) shows its headers and payload.
    browser
        .eval(
            "const row = [...document.querySelectorAll('#rows tr')].find(r => r.innerText.includes('issues.opened'));\
             row.focus(); row.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));",
            vec![],
        )
        .await;
    browser.wait_for("#req-headers tr").await;
    let table = browser.text(&browser.wait_for("#req-headers").await).await;
    assert!(table.contains("X-GitHub-Event") && table.contains("issues"), "{table}");
    assert!(table.contains("X-Hub-Signature-256"), "{table}");
    let payload = browser.text(&browser.wait_for("#payload").await).await;
    assert!(payload.contains("\"title\": \"from the browser test\""), "pretty-printed: {payload}");
    browser.screenshot(&shots.join("2-detail.png")).await;

    // Replay: the handler receives it again, and a replay row appears.
    let before = handler.received().len();
    browser.click(&browser.wait_for("#btn-replay").await).await;
    let received = handler.wait_for(Duration::from_secs(20), "the replay", |got| got.len() > before).await;
    assert_eq!(received.last().unwrap().header("x-hookfwd-replay"), Some("1"));
    // The ping's row, the two deliveries' and the replay's.
    browser.wait_for("#rows tr:nth-child(4)").await;
    let notice = browser.text(&browser.wait_for("#notice").await).await;
    assert!(notice.contains("answered 200"), "{notice}");
    browser.screenshot(&shots.join("3-replayed.png")).await;

    // Filtering by text hides the other rows.
    let filter = browser.wait_for("#filter-text").await;
    browser.send_keys(&filter, "push").await;
    let shown = browser
        .eval("return [...document.querySelectorAll('#rows tr')].filter(r => !r.hidden).map(r => r.innerText)", vec![])
        .await;
    let shown = shown.as_array().unwrap();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(shown[0].as_str().unwrap().contains("push"), "{shown:?}");
    browser.screenshot(&shots.join("4-filtered.png")).await;
    browser.quit().await;
}

//! The local inspector through the real binary: its URL on the Ready line, its API, its safety (Host and
//! token), an address in use, and the page itself in headless Chromium over WebDriver.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use e2e::{Account, Blackhole, Browser, Recorder, Running, eventually, workspace_root};
use fake_github::FakeGitHub;
use serde_json::{Value, json};
use testkit::PATIENCE;

const TOKEN: &str = "ghp_e2eInspectTokenNeverPrinted000051";
const SECRET: &str = "inspect-secret-never-printed-3e9a";
const REPO: &str = "octo-org/inspected";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

/// `hookfwd dev` with the inspector on a port of its own (`127.0.0.1:0`), and its URL from the Ready line.
async fn dev(fake: &FakeGitHub, target: &str, state: &Path) -> (Running, String) {
    inspected(ACCOUNT.dev(fake, target, state, &["--inspect", "127.0.0.1:0"])).await
}

/// A `hookfwd dev` started with `--inspect 127.0.0.1:0`, and its inspector's URL from the Ready line.
async fn inspected(run: Running) -> (Running, String) {
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
    e2e::get(format!("{url}/api/deliveries")).await.unwrap().json().await.unwrap()
}

/// The page's per-run token, from its meta tag.
async fn page_token(url: &str) -> String {
    let page = e2e::get(format!("{url}/")).await.unwrap().text().await.unwrap();
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
    let detail: Value = e2e::get(format!("{url}/api/deliveries/{}", row["seq"])).await.unwrap().json().await.unwrap();
    assert!(detail["payload"].as_str().unwrap().contains("\"number\":7"), "{detail}");
    assert_eq!(detail["headers"]["X-GitHub-Event"], "issues", "headers are an object, as on --json lines: {detail}");
    assert_eq!((&detail["source"], &detail["hook_id"]), (&json!(REPO), &row["hook_id"]), "{detail}");
    assert_eq!(detail["attempts_detail"][0]["answer"]["body"], r#"{"error":"handler exploded"}"#);

    // Copy as curl: signed for the local secret over the exact payload.
    let curl = e2e::get(format!("{url}/api/deliveries/{}/curl", row["seq"])).await.unwrap().text().await.unwrap();
    assert!(curl.contains("X-Hub-Signature-256: sha256="), "{curl}");
    assert!(!curl.contains(SECRET), "{curl}");
    // Save as fixture: a fixture without signatures.
    let fixture = e2e::get(format!("{url}/api/deliveries/{}/fixture", row["seq"])).await.unwrap();
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

    let client = e2e::http();
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

/// POSTs `body` to a delivery's replay with the page's token.
async fn replay_with(url: &str, seq: &Value, token: &str, body: &str) -> (u16, Value) {
    let answer = e2e::http()
        .post(format!("{url}/api/deliveries/{seq}/replay"))
        .header("X-Hookfwd-Token", token)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// Whether `received` carries signatures made with the local secret over the bytes it carries.
fn signed_for_its_bytes(received: &e2e::Received) -> bool {
    let secret = github::Secret::new(SECRET);
    let sha256 = received.header("x-hub-signature-256").unwrap_or_default();
    let sha1 = received.header("x-hub-signature").unwrap_or_default();
    github::signature::verify_sha256(&secret, &received.body, sha256)
        && sha1 == github::signature::sha1(&secret, &received.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_replay_reaches_the_handler_with_the_edited_bytes_signed_for_them() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_run, url) = dev(&fake, &handler.url(), state.path()).await;
    the_creation_ping(&handler).await;
    fake.emit(REPO, "issues", json!({"action": "opened", "issue": {"number": 5, "title": "before"}})).await;
    handler.wait_for(PATIENCE, "the delivery", |got| got.len() == 2).await;
    let seq = row_of(&url, "issues.opened").await["seq"].clone();
    let token = page_token(&url).await;

    // Bad edits: one sentence each, a 400, and nothing sent.
    for (body, says) in [
        ("{not json", "must be a JSON object"),
        (r#"{"payload": {"n": 1}}"#, "\"payload\" must be a string"),
        (r#"{"headers": {"X-Hub-Signature-256": "sha256=00"}}"#, "is set by hookfwd"),
        (r#"{"headers": {"Transfer-Encoding": "chunked"}}"#, "is set by HTTP itself"),
        (r#"{"headers": {"Bad Name": "x"}}"#, "not a valid HTTP header name"),
    ] {
        let (status, answer) = replay_with(&url, &seq, &token, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says) && !error.contains('\n'), "{body}: {error}");
    }
    assert_eq!(handler.received().len(), 2, "no bad edit reached the handler");

    // The payload as exact bytes (spacing, a non-ASCII title), and headers edited.
    let payload = "{ \"action\": \"opened\",  \"issue\": {\"number\": 5, \"title\": \"after, édité\"} }\n";
    let edit = json!({"payload": payload, "headers": {"X-GitHub-Event": "issues", "Content-Type": "application/json",
        "X-Edited-By": "the inspector"}});
    let (status, answer) = replay_with(&url, &seq, &token, &edit.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    let received = handler.wait_for(PATIENCE, "the edited replay", |got| got.len() == 3).await;
    let edited = &received[2];
    assert_eq!(edited.body, payload.as_bytes(), "the edited bytes, exactly");
    assert!(signed_for_its_bytes(edited), "signed with the local secret over the edited bytes: {:?}", edited.headers);
    assert_eq!(edited.header("x-hookfwd-replay"), Some("1"));
    assert_eq!(edited.header("x-edited-by"), Some("the inspector"));
    assert_eq!(edited.header("x-github-delivery"), None, "the headers given replace the delivery's");
    assert!(!edited.header_lines.iter().any(|(_, value)| value.contains(SECRET)));

    // A payload alone keeps the delivery's headers, signatures made anew.
    let (status, answer) = replay_with(&url, &seq, &token, &json!({"payload": "{}"}).to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let received = handler.wait_for(PATIENCE, "the second edited replay", |got| got.len() == 4).await;
    assert_eq!(received[3].body, "{}".as_bytes());
    assert!(signed_for_its_bytes(&received[3]), "{:?}", received[3].headers);
    assert_eq!(received[3].header("x-github-delivery"), received[1].header("x-github-delivery"));
    assert_eq!(received[3].header("x-github-event"), Some("issues"));

    // Each is a row of its own, following the original.
    let rows = list(&url).await;
    let edits: Vec<&Value> = rows.iter().filter(|row| row["edited"] == true).collect();
    assert_eq!(edits.len(), 2, "{rows:?}");
    assert!(edits.iter().all(|row| row["replay"] == true && row["original"] == seq), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_through_the_stream_is_marked_and_follows_its_original() {
    const STREAM_TOKEN: &str = "inspect-stream-token-never-printed-77";
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let blackhole = Blackhole::start(&["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let extra = ["--inspect", "127.0.0.1:0", "--safety-interval", "200ms"];
    let env = [("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN)];
    let run = ACCOUNT.dev_at(&fake, &blackhole.url("/inspect"), &handler.url(), state.path(), &extra, &env);
    let (_run, url) = inspected(run).await;
    the_creation_ping(&handler).await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 9})).await;
    handler.wait_for(PATIENCE, "the delivery", |got| got.len() == 2).await;
    let original = row_of(&url, "issues.opened").await;
    assert_eq!(original["via"], "stream", "{original}");
    assert_eq!(original["redelivery"], false, "{original}");

    let token = page_token(&url).await;
    let redeliver = format!("{url}/api/deliveries/{}/redeliver", original["seq"]);
    let asked = e2e::http().post(&redeliver).header("X-Hookfwd-Token", &token).send().await.unwrap();
    assert_eq!(asked.status(), 200);
    handler.wait_for(PATIENCE, "the redelivery", |got| got.len() == 3).await;
    let again = eventually("the redelivery's row", async || {
        list(&url).await.into_iter().find(|row| row["kind"] == "issues.opened" && row["seq"] != original["seq"])
    })
    .await;
    assert_eq!(again["redelivery"], true, "GitHub's list says so, whichever path brought the bytes: {again}");
    assert_eq!(again["original"], original["seq"], "{again}");
    assert_eq!(again["guid"], original["guid"]);
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

    let client = e2e::http();
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

    // Filtering by text hides the other rows; the text is searched for in payloads too.
    let filter = browser.wait_for("#filter-text").await;
    browser.send_keys(&filter, "refs/heads/main").await;
    let shown = eventually("one row shown", async || {
        let script = "return [...document.querySelectorAll('#rows tr')].filter(r => !r.hidden).map(r => r.innerText)";
        let shown = browser.eval(script, vec![]).await;
        shown.as_array().filter(|shown| shown.len() == 1).cloned()
    })
    .await;
    assert!(shown[0].as_str().unwrap().contains("push"), "{shown:?}");
    browser.screenshot(&shots.join("4-filtered.png")).await;
    browser.quit().await;
}

/// The visible text of the first element matching `css`, once there.
async fn text_of(browser: &Browser, css: &str) -> String {
    browser.text(&browser.wait_for(css).await).await
}

/// Waits until the visible text of the first element matching `css` holds `needle`; returns that text.
async fn until_text(browser: &Browser, css: &str, needle: &str) -> String {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''";
    eventually(format!("`{needle}` in `{css}`"), async || {
        let text = browser.eval(script, vec![json!(css)]).await.as_str().unwrap_or_default().to_string();
        text.contains(needle).then_some(text)
    })
    .await
}

/// Clicks the first button under `css` whose text is `label`.
async fn click_button(browser: &Browser, css: &str, label: &str) {
    assert!(try_click_button(browser, css, label).await, "no `{label}` button under `{css}`");
}

/// Clicks the first button under `css` whose text is `label`; whether there was one.
async fn try_click_button(browser: &Browser, css: &str, label: &str) -> bool {
    let script = "const b = [...document.querySelectorAll(arguments[0] + ' button')].find(b => b.innerText === arguments[1]);\
                  if (b) b.click(); return !!b";
    browser.eval(script, vec![json!(css), json!(label)]).await == json!(true)
}

#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_nothing_is_hidden_a_parked_delivery_is_sent_again_and_an_edited_replay_compares() {
    // A hook made by hand, so no creation ping comes before the deliveries.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    // The handler's address with nothing listening yet: the first delivery is not answered.
    let addr = e2e::free_addr();
    let target = format!("http://{addr}/webhook");
    let state = tempfile::tempdir().unwrap();
    let (run, url) = dev(&fake, &target, state.path()).await;
    let shots = workspace_root().join("target/inspector-screenshots");
    let browser = Browser::start().await;
    browser.goto(&format!("{url}/")).await;
    browser.wait_for("#live.on").await;
    let served = until_text(&browser, "#served", REPO).await;
    assert!(served.contains(&target), "the header names the target: {served}");

    // A title with a right-to-left override: `evil` would display as `live`.
    let title = "\u{202E}evil";
    fake.emit(REPO, "issues", json!({"action": "opened", "issue": {"number": 1, "title": title}})).await;
    until_text(&browser, "#rows", "unreachable").await;
    let first = row_of(&url, "issues.opened").await["seq"].clone();
    // Its own address opens it.
    browser.goto(&format!("{url}/#/deliveries/{first}")).await;
    let payload = until_text(&browser, "#payload", "\"number\": 1").await;
    assert!(payload.contains("\\u202Eevil") && !payload.contains('\u{202E}'), "escaped, not applied: {payload}");
    let headers = text_of(&browser, "#req-headers").await;
    assert!(headers.contains("X-GitHub-Event") && headers.contains("X-Hub-Signature-256"), "{headers}");
    let state_text = until_text(&browser, "#state", "has not taken it yet").await;
    assert!(state_text.contains("could not be reached"), "{state_text}");
    browser.screenshot(&shots.join("5-unanswered.png")).await;

    // The handler comes up with a bug one payload hits; Retry now skips the wait under way.
    let handler = Recorder::on(tokio::net::TcpListener::bind(addr).await.expect("the handler's address again"));
    handler.reject("\"title\":\"poison\"", 500, r#"{"error":"no such user: ghost"}"#);
    // hookfwd retries a refused connection within 2 s on its own, so on a busy machine it may reach the
    // handler before the click, and the page no longer offers the button: the wait below checks either way.
    let clicked = try_click_button(&browser, "#state", "Retry now").await;
    let received = handler.wait_for(PATIENCE, "the first delivery", |got| got.len() == 1).await;
    assert!(String::from_utf8_lossy(&received[0].body).contains(title), "the exact title");
    assert!(clicked || !until_text(&browser, "#rows", "200").await.is_empty(), "no Retry now, and no answer");

    // The poison delivery is parked; its row and detail say so, and Send again sends it once the bug is fixed.
    fake.emit(REPO, "issues", json!({"action": "opened", "issue": {"number": 2, "title": "poison"}})).await;
    until_text(&browser, "#rows", "parked").await;
    let rows = list(&url).await;
    let parked = rows.iter().find(|row| row["parked"] == true).expect("a parked row")["seq"].clone();
    browser.goto(&format!("{url}/#/deliveries/{parked}")).await;
    let state_text = until_text(&browser, "#state", "Parked").await;
    assert!(state_text.contains("Send again"), "{state_text}");
    browser.screenshot(&shots.join("6-parked.png")).await;
    handler.accept_all();
    click_button(&browser, "#state", "Send again").await;
    let received = handler.wait_for(PATIENCE, "the parked delivery", |got| got.len() == 2).await;
    assert!(String::from_utf8_lossy(&received[1].body).contains("poison"));
    until_text(&browser, "#rows", "sent again").await;
    until_text(&browser, "#state", "sent again as").await;

    // Edit and replay the first: the handler gets the edited bytes, signed for them.
    browser.goto(&format!("{url}/#/deliveries/{first}")).await;
    until_text(&browser, "#payload", "\"number\": 1").await;
    browser.click(&browser.wait_for("#btn-edit").await).await;
    let hint = until_text(&browser, "#edit-invisible", "U+202E").await;
    assert!(hint.contains("1 invisible character"), "{hint}");
    browser.screenshot(&shots.join("7-edit.png")).await;
    // Written as a JSON escape, the character shows in the editor too (and the hint goes).
    click_button(&browser, "#edit-invisible", "Escape them").await;
    let script = "return document.getElementById('edit-payload').value";
    let escaped = browser.eval(script, vec![]).await.as_str().unwrap_or_default().to_string();
    assert!(escaped.contains(r#""title":"\u202eevil""#), "{escaped}");
    assert_eq!(browser.eval("return document.getElementById('edit-invisible').hidden", vec![]).await, true);
    browser
        .eval(
            "const p = document.getElementById('edit-payload'); p.value = p.value.replace('\\\\u202eevil', 'good');",
            vec![],
        )
        .await;
    browser.click(&browser.wait_for("#btn-send-edit").await).await;
    let received = handler.wait_for(PATIENCE, "the edited replay", |got| got.len() == 3).await;
    let expected = String::from_utf8_lossy(&received[0].body).replace(title, "good");
    assert_eq!(received[2].body, expected.as_bytes(), "the edited bytes");
    assert!(signed_for_its_bytes(&received[2]), "{:?}", received[2].headers);
    assert_eq!(received[2].header("x-hookfwd-replay"), Some("1"));
    until_text(&browser, "#state", "An edited replay of").await;
    let notice = until_text(&browser, "#notice", "answered 200").await;
    assert!(notice.contains("Edited and replayed as #"), "{notice}");

    // Compare: pick the original's row and the replay's.
    let replayed =
        list(&url).await.into_iter().find(|row| row["edited"] == true).expect("the replay's row")["seq"].clone();
    for seq in [&first, &replayed] {
        let pick = browser.wait_for(&format!("#rows tr[data-seq=\"{seq}\"] td.pick input")).await;
        browser.click(&pick).await;
    }
    let diff = until_text(&browser, "#diff-payload", "/issue/title").await;
    assert!(diff.contains("\\u202Eevil") && diff.contains("\"good\""), "{diff}");
    let headers = text_of(&browser, "#diff-headers").await;
    assert!(headers.contains("X-Hub-Signature-256") && headers.contains("X-Hookfwd-Replay"), "{headers}");
    assert!(!headers.contains("X-GitHub-Delivery"), "the same guid is no difference: {headers}");
    browser.screenshot(&shots.join("8-compare.png")).await;

    // The text filter searches payloads: only the poison delivery's two rows hold "poison".
    browser.send_keys(&browser.wait_for("#filter-text").await, "poison").await;
    let shown = eventually("only the poison rows", async || {
        let shown = browser
            .eval(
                "return [...document.querySelectorAll('#rows tr')].filter(r => !r.hidden).map(r => r.dataset.seq)",
                vec![],
            )
            .await;
        let shown: Vec<u64> = shown.as_array()?.iter().filter_map(|seq| seq.as_str()?.parse().ok()).collect();
        (shown.len() == 2).then_some(shown)
    })
    .await;
    assert!(shown.contains(&parked.as_u64().unwrap()), "{shown:?}");

    // hookfwd stops: the page says so.
    run.signal(libc::SIGTERM);
    let stopped = until_text(&browser, "#stopped", "hookfwd stopped").await;
    browser.screenshot(&shots.join("9-stopped.png")).await;
    browser.quit().await;
    assert!(stopped.contains("nothing new arrives"), "{stopped}");
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    // Sent again and taken, it is parked no more.
    let hook_url = fake.blackhole_url();
    let state_dir = state.path().to_str().unwrap();
    let args =
        ["replay", "--parked", "--repo", REPO, "--hook-url", &hook_url, "--to", &target, "--state-dir", state_dir];
    let replayed = ACCOUNT.against(&fake, &args, &[]).finish().await;
    assert_eq!(replayed.code, Some(0), "{}", replayed.stderr);
    assert!(replayed.stdout.contains("nothing is parked"), "{}", replayed.stdout);
}

//! `hookfwd mcp` as an agent's client drives it: the real binary on stdio, JSON-RPC in and out, against the
//! fake GitHub and a real blackhole with a stream token; every tool, a bad argument, and nothing secret in
//! anything it writes.

use std::time::Duration;

use e2e::mcp::parse_ok;
use e2e::{Account, Blackhole, McpClient, Recorder, eventually};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eMcpTokenThatMustNeverBePrinted0001";
const SECRET: &str = "local-secret-never-printed-mcp-3f7a";
const STREAM_TOKEN: &str = "stream-token-never-printed-mcp-c21e";
const REPO: &str = "octo-org/agent";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
const TOOLS: [&str; 6] =
    ["get_delivery", "recent_deliveries", "redeliver", "replay", "send_event", "wait_for_delivery"];

/// `hookfwd mcp` on the repository against `fake`, hook at `hook_url`, then `extra`.
async fn start(fake: &fake_github::FakeGitHub, hook_url: &str, state: &std::path::Path, extra: &[&str]) -> McpClient {
    let api_url = fake.api_url().to_string();
    let state = state.to_str().expect("a UTF-8 path");
    let mut args = vec!["mcp", "--repo", REPO, "--hook-url", hook_url, "--api-url", &api_url];
    args.extend(["--interval", "100ms", "--state-dir", state, "-v"]);
    args.extend(extra);
    let env = [("GITHUB_TOKEN", TOKEN), ("HOOKFWD_SECRET", SECRET), ("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN)];
    McpClient::start(args, &env).await
}

/// The text of a tool's error, which must be one.
fn error_text(result: &Value) -> String {
    assert_eq!(result["isError"], true, "not an error: {result}");
    let text = result["content"][0]["text"].as_str().expect("a sentence").to_string();
    assert!(!text.is_empty() && !text.contains('\n'), "one sentence: {text:?}");
    text
}

/// Checks what a finished server wrote: only JSON-RPC on stdout, no secret anywhere, exit 0.
fn assert_clean_exit(ended: &e2e::mcp::Ended) {
    assert_eq!(ended.code, Some(0), "stderr: {}", ended.stderr);
    for line in &ended.stdout {
        let message: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON-RPC on stdout: {line}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
    }
    let stdout = ended.stdout.join("\n");
    for secret in [TOKEN, SECRET, STREAM_TOKEN] {
        assert!(!stdout.contains(secret) && !ended.stderr.contains(secret), "a secret was written: {secret:.12}…");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_waits_reads_replays_redelivers_and_sends_over_stdio() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    fake.set_ping_on_create(false);
    let blackhole = Blackhole::start(&["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut mcp = start(&fake, &blackhole.url("/agent"), state.path(), &["--to", &handler.url()]).await;

    // The tools and their input schemas.
    let listed = mcp.request("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().expect("tools").clone();
    let mut names: Vec<&str> = tools.iter().map(|tool| tool["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS, "{listed}");
    let schema = |name: &str| tools.iter().find(|tool| tool["name"] == name).unwrap()["inputSchema"].clone();
    let keys = |schema: &Value| {
        let mut keys: Vec<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        keys.sort_unstable();
        keys
    };
    let required = |schema: &Value| schema["required"].as_array().cloned().unwrap_or_default();
    let wait = schema("wait_for_delivery");
    assert_eq!(keys(&wait), ["action", "cursor", "event", "filter", "timeout_s"], "{wait}");
    assert!(required(&wait).is_empty(), "{wait}");
    assert_eq!(keys(&schema("recent_deliveries")), ["filter", "limit"]);
    let get = schema("get_delivery");
    assert_eq!((keys(&get), required(&get)), (vec!["id".into(), "length".into(), "offset".into()], vec![json!("id")]));
    let replay = schema("replay");
    assert_eq!((keys(&replay), required(&replay)), (vec!["id".into(), "payload".into()], vec![json!("id")]));
    assert_eq!(required(&schema("redeliver")), [json!("id")]);
    let send = schema("send_event");
    assert_eq!(
        (keys(&send), required(&send)),
        (vec!["event_action".into(), "set".into()], vec![json!("event_action")])
    );

    // Bad arguments are tool errors, each one sentence, and the server goes on.
    error_text(&mcp.call("recent_deliveries", json!({"limit": "many"})).await);
    assert!(error_text(&mcp.call("get_delivery", json!({"id": "5c1e"})).await).contains("too short"));
    assert!(error_text(&mcp.call("replay", json!({"id": "5c1e0a80-none"})).await).contains("no delivery"));
    let bad_filter = error_text(&mcp.call("wait_for_delivery", json!({"filter": ".action ==", "timeout_s": 1})).await);
    assert!(bad_filter.contains("does not compile") && bad_filter.contains("column"), "{bad_filter}");
    let unknown = error_text(&mcp.call("send_event", json!({"event_action": "pull_request.nonsense"})).await);
    assert!(unknown.contains("nonsense"), "{unknown}");

    eventually("the blackhole's stream", async || mcp.stderr().contains("stream up")).await;
    let cursor = mcp.ok("recent_deliveries", json!({})).await["cursor"].as_u64().expect("a cursor");

    // A delivery POSTed through the blackhole ends a wait under way.
    let waiting = mcp.call_later("wait_for_delivery", json!({"event": "issues", "cursor": cursor})).await;
    // Other calls are answered while a wait is under way.
    assert_eq!(mcp.ok("recent_deliveries", json!({})).await["deliveries"], json!([]));
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let first = parse_ok("wait_for_delivery", &mcp.result(waiting).await);
    let delivery = &first["delivery"];
    let guid = delivery["guid"].as_str().expect("a guid").to_string();
    assert_eq!(
        (&delivery["event"], &delivery["action"], &delivery["via"]),
        (&json!("issues"), &json!("opened"), &json!("stream"))
    );
    let header = |name: &str| {
        let headers = delivery["headers"].as_object().expect("headers");
        headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.clone())
    };
    assert_eq!(header("X-GitHub-Delivery"), Some(json!(guid)), "{delivery}");
    let payload: Value = serde_json::from_str(delivery["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["issue"]["number"], 1);
    assert_eq!(delivery["payload_truncated"], false);
    let hook = delivery["hook_id"].as_u64().expect("a hook id");
    assert_eq!(fake.deliveries(hook)[0].guid, guid);

    // Without a cursor, a wait is for what comes after the call: the delivery before it is not returned.
    let later = mcp.ok("wait_for_delivery", json!({"timeout_s": 1})).await;
    assert_eq!((&later["delivery"], &later["timed_out"]), (&Value::Null, &json!(true)), "{later}");

    // A payload larger than one result is truncated with a marker, and read whole by ranges.
    let body = format!("{}é", "ü".repeat(80_000));
    let mut edited = ACCOUNT.issue_opened(2);
    edited["action"] = json!("edited");
    edited["issue"]["body"] = json!(body);
    fake.emit(REPO, "issues", edited).await;
    let long = r#"$headers["x-github-event"] == "issues" and (.issue.body | length) > 1000"#;
    let second = mcp.ok("wait_for_delivery", json!({"filter": long, "cursor": first["cursor"]})).await;
    let big = &second["delivery"];
    let big_guid = big["guid"].as_str().unwrap().to_string();
    assert_eq!(big["payload_truncated"], true, "{}", big["note"]);
    assert!(big["note"].as_str().unwrap().contains("truncated"));
    assert!(big["payload"].as_str().unwrap().len() <= 64 * 1024);
    let mut whole = big["payload"].as_str().unwrap().to_string();
    let mut offset = big["next_offset"].as_u64();
    while let Some(at) = offset {
        let part = mcp.ok("get_delivery", json!({"id": big_guid, "offset": at})).await;
        assert_eq!(part["payload_offset"], at);
        whole.push_str(part["payload"].as_str().unwrap());
        offset = part["next_offset"].as_u64();
    }
    let whole: Value = serde_json::from_str(&whole).expect("the parts join to the payload");
    assert_eq!(whole["issue"]["body"], body);

    // The latest, newest first, without payloads.
    let recent = mcp.ok("recent_deliveries", json!({"limit": 10})).await;
    let rows = recent["deliveries"].as_array().unwrap();
    let guids: Vec<&str> = rows.iter().map(|row| row["guid"].as_str().unwrap()).collect();
    assert_eq!(guids, [big_guid.as_str(), guid.as_str()]);
    assert!(rows.iter().all(|row| row.get("payload").is_none() && row.get("headers").is_none()), "{recent}");

    let opened = mcp.ok("recent_deliveries", json!({"filter": r#"$action == "opened""#})).await;
    assert_eq!(opened["deliveries"].as_array().unwrap().len(), 1, "{opened}");
    assert_eq!(opened["deliveries"][0]["guid"], guid.as_str());
    // A filter that fails on a payload counts as no, and says so once.
    let failing = mcp.ok("recent_deliveries", json!({"filter": r#".issue.number + "x""#})).await;
    assert_eq!(failing["deliveries"], json!([]), "{failing}");
    assert!(failing["filter_failed"].as_str().unwrap().contains("on 2 deliveries"), "{failing}");

    // replay reaches the handler again; redeliver makes GitHub deliver it again, and the agent sees it.
    let replayed = mcp.ok("replay", json!({"id": guid})).await;
    assert_eq!((&replayed["status"], &replayed["ok"]), (&json!(200), &json!(true)), "{replayed}");
    handler
        .wait_for(Duration::from_secs(30), "the replay", |seen| {
            seen.iter().any(|request| request.guid() == guid && request.header("x-hookfwd-replay").is_some())
        })
        .await;
    let asked = mcp.ok("redeliver", json!({"id": &guid[..8]})).await;
    assert_eq!(asked["guid"], guid.as_str());
    eventually("the fake's redelivery", async || fake.deliveries(hook).iter().any(|d| d.guid == guid && d.redelivery))
        .await;
    let again = mcp.ok("wait_for_delivery", json!({"cursor": second["cursor"]})).await;
    assert_eq!((&again["delivery"]["guid"], &again["delivery"]["redelivery"]), (&json!(guid), &json!(true)), "{again}");

    // send_event sends `send`'s payload, edited, signed, to the handler.
    let sent = mcp
        .ok("send_event", json!({"event_action": "pull_request.opened", "set": ["pull_request.head.ref=feature/x"]}))
        .await;
    assert_eq!(
        (&sent["status"], &sent["event"], &sent["action"]),
        (&json!(200), &json!("pull_request"), &json!("opened"))
    );
    let sent_guid = sent["guid"].as_str().unwrap().to_string();
    let received = handler
        .wait_for(Duration::from_secs(30), "the synthetic delivery", |seen| {
            seen.iter().any(|request| request.guid() == sent_guid)
        })
        .await;
    let request = received.iter().find(|request| request.guid() == sent_guid).unwrap();
    assert_eq!(request.header("x-github-event"), Some("pull_request"));
    assert!(request.header("x-hub-signature-256").is_some_and(|value| value.starts_with("sha256=")));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["pull_request"]["head"]["ref"], "feature/x");

    assert_clean_exit(&mcp.finish().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_handler_deliveries_are_only_kept_for_the_agent() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    fake.set_ping_on_create(false);
    let state = tempfile::tempdir().unwrap();
    // Polling only (the fake's own blackhole URL streams nothing): the safety net brings it too.
    let mut mcp = start(&fake, &fake.blackhole_url(), state.path(), &[]).await;
    let waiting = mcp.call_later("wait_for_delivery", json!({"event": "issues", "cursor": 0})).await;
    eventually("the hook", async || fake.emit(REPO, "issues", ACCOUNT.issue_opened(7)).await.first().copied()).await;
    let kept = parse_ok("wait_for_delivery", &mcp.result(waiting).await);
    let delivery = &kept["delivery"];
    assert_eq!(
        (&delivery["via"], &delivery["target"], &delivery["status"]),
        (&json!("api"), &Value::Null, &Value::Null)
    );
    let guid = delivery["guid"].as_str().unwrap();
    let refused = error_text(&mcp.call("replay", json!({"id": guid})).await);
    assert!(refused.contains("--to"), "{refused}");
    assert!(error_text(&mcp.call("send_event", json!({"event_action": "push"})).await).contains("--to"));
    assert_clean_exit(&mcp.finish().await);
}

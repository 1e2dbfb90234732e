//! The fake against GitHub's own description (`@octokit/openapi`, installed under `tests/receiver`) and
//! GitHub's documented behaviour, driven with a plain HTTP client.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fake_github::{FakeGitHub, HookSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::Recorder;

const TOKEN: &str = "ghp_faketoken0000000000000000000000000";

// ---------------------------------------------------------------------------------------------
// Helpers

/// The npm packages that `scripts/test` installs under `tests/receiver` (pinned in its `package.json`):
/// `@octokit/openapi` for GitHub's REST description and `@octokit/webhooks-examples` for payloads.
fn octokit(package: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/receiver/node_modules/@octokit").join(package);
    assert!(dir.is_dir(), "{} is missing: run `npm ci` in tests/receiver (scripts/test does)", dir.display());
    dir
}

/// The events whose examples the round trip sends: the ones this project's tests have always used.
const EXAMPLE_EVENTS: [&str; 10] = [
    "check_run",
    "check_suite",
    "issue_comment",
    "issues",
    "ping",
    "pull_request",
    "push",
    "release",
    "workflow_job",
    "workflow_run",
];

/// GitHub's example payloads for `event`, from `@octokit/webhooks-examples`.
fn webhook_examples(event: &str) -> Vec<Value> {
    static INDEX: OnceLock<Vec<Value>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let path = octokit("webhooks-examples").join("api.github.com/index.json");
        let text = std::fs::read_to_string(&path).expect("the webhook examples read");
        serde_json::from_str(&text).expect("the webhook examples are a JSON array")
    });
    let entry = index.iter().find(|entry| entry["name"] == event).expect("the event has examples");
    entry["examples"].as_array().expect("examples is an array").clone()
}

/// Every `#/components/...` entry that `value` refers to, followed transitively, copied into `out`.
fn copy_refs(value: &Value, all: &Value, out: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref")
                && let Some(path) = reference.strip_prefix("#/components/")
                && let Some((kind, name)) = path.split_once('/')
                && out[kind].get(name).is_none()
            {
                let target = all[kind][name].clone();
                assert!(!target.is_null(), "dangling $ref {reference}");
                out[kind][name] = target.clone();
                copy_refs(&target, all, out);
            }
            map.values().for_each(|inner| copy_refs(inner, all, out));
        }
        Value::Array(items) => items.iter().for_each(|inner| copy_refs(inner, all, out)),
        _ => {}
    }
}

/// GitHub's schemas with OpenAPI's `nullable` turned into JSON Schema: the components that the hook
/// paths, `/rate_limit` and the ping and push webhooks refer to, so each schema check compiles a small document.
fn components() -> &'static Value {
    static COMPONENTS: OnceLock<Value> = OnceLock::new();
    COMPONENTS.get_or_init(|| {
        let path = octokit("openapi").join("generated/api.github.com.json");
        let text = std::fs::read_to_string(&path).expect("api.github.com.json reads");
        let spec: Value = serde_json::from_str(&text).expect("api.github.com.json is JSON");
        let mut components = json!({"schemas": {}, "parameters": {}, "responses": {}, "examples": {}, "headers": {}});
        for (path, item) in spec["paths"].as_object().expect("paths is an object") {
            if served_path(path) {
                copy_refs(item, &spec["components"], &mut components);
            }
        }
        for webhook in ["ping", "push"] {
            copy_refs(&spec["webhooks"][webhook], &spec["components"], &mut components);
            copy_refs(&spec["x-webhooks"][webhook], &spec["components"], &mut components);
        }
        denullable(&mut components);
        components
    })
}

/// The paths the fake serves: hook CRUD, config, deliveries and redelivery for apps, orgs and repos.
fn served_path(path: &str) -> bool {
    path.starts_with("/app/hook")
        || path.starts_with("/orgs/{org}/hooks")
        || path.starts_with("/repos/{owner}/{repo}/hooks")
        || path == "/rate_limit"
}

/// OpenAPI 3.0's `nullable: true` is not JSON Schema: `type: T` becomes `type: [T, "null"]`.
fn denullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get("type").cloned() {
                    Some(Value::String(kind)) => {
                        map.insert("type".into(), json!([kind, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
                if let Some(Value::Array(options)) = map.get_mut("enum") {
                    options.push(Value::Null);
                }
            }
            map.values_mut().for_each(denullable);
        }
        Value::Array(items) => items.iter_mut().for_each(denullable),
        _ => {}
    }
}

/// Asserts that `instance` matches `#/components/schemas/{schema}` (or an array of it with `[]`).
fn conforms(schema: &str, instance: &Value) {
    let components = components();
    let (name, array) = match schema.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (schema, false),
    };
    let reference = json!({"$ref": format!("#/components/schemas/{name}")});
    let root = if array {
        json!({"type": "array", "items": reference, "components": components})
    } else {
        json!({"allOf": [reference], "components": components})
    };
    let validator = jsonschema::options().should_validate_formats(true).build(&root).expect("the schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|error| format!("{} at {}", error, error.instance_path())).collect();
    assert!(errors.is_empty(), "{schema} does not match:\n{}\n{instance:#}", errors.join("\n"));
}

/// A fake with a token that may do everything, and a client.
struct Setup {
    fake: FakeGitHub,
    http: reqwest::Client,
}

impl Setup {
    async fn new() -> Self {
        let fake = FakeGitHub::start().await;
        fake.add_token(TOKEN, "repo, admin:repo_hook, admin:org_hook");
        fake.set_ping_on_create(false);
        let http = github::http_client().no_proxy().build().expect("client builds");
        Self { fake, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.fake.api_url(), path.trim_start_matches('/'))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(TOKEN)
    }

    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).header("authorization", format!("token {TOKEN}")).json(&body)
    }

    async fn json(&self, request: reqwest::RequestBuilder, status: StatusCode) -> Value {
        let response = request.send().await.expect("the fake answers");
        assert_eq!(response.status(), status, "{}", response.url());
        assert!(
            response.headers()["content-type"].to_str().unwrap().starts_with("application/json"),
            "JSON content type"
        );
        assert!(response.headers().contains_key("x-github-request-id"));
        let text = response.text().await.unwrap();
        if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
    }
}

/// A URL on which nothing listens.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

fn sample(event: &str) -> Value {
    serde_json::from_str(github::samples::sample(event).unwrap()).unwrap()
}

/// `X-Hub-Signature-256` as GitHub documents it, `sha256=` and the hex HMAC-SHA256 of the body, computed here
/// with the `hmac` crate: the fake signs with `github::signature`, which these tests must not check it with.
fn sha256_header(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The legacy `X-Hub-Signature`: `sha1=` and the hex HMAC-SHA1 of the body, computed here.
fn sha1_header(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn the_tests_own_hmac_gives_githubs_published_signature() {
    // GitHub's example in "Validating webhook deliveries".
    assert_eq!(
        sha256_header("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).map(|value| value.to_str().unwrap().to_string()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Conformance

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn every_kind_of_response_matches_githubs_schemas() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    s.fake.add_repo("octo-org/hello-world");
    s.fake.add_org("octo-org");

    let body = json!({"name": "web", "events": ["push", "issues"],
        "config": {"url": receiver.url(), "content_type": "json", "secret": "s3cret"}});
    let hook = s.json(s.post("/repos/octo-org/hello-world/hooks", body), StatusCode::CREATED).await;
    conforms("hook", &hook);
    assert_eq!(hook["config"]["secret"], "********");
    let id = hook["id"].as_u64().unwrap();
    conforms("hook", &s.json(s.get(&format!("/repos/octo-org/hello-world/hooks/{id}")), StatusCode::OK).await);
    conforms("hook[]", &s.json(s.get("/repos/octo-org/hello-world/hooks"), StatusCode::OK).await);
    let config = s.json(s.get(&format!("/repos/octo-org/hello-world/hooks/{id}/config")), StatusCode::OK).await;
    conforms("webhook-config", &config);
    let patched = s
        .http
        .patch(s.url(&format!("/repos/octo-org/hello-world/hooks/{id}")))
        .bearer_auth(TOKEN)
        .json(&json!({"add_events": ["release"], "active": true}));
    let patched = s.json(patched, StatusCode::OK).await;
    conforms("hook", &patched);
    assert_eq!(patched["events"], json!(["push", "issues", "release"]));

    let org_body = json!({"name": "web", "config": {"url": receiver.url(), "content_type": "form"}, "events": ["*"]});
    let org_hook = s.json(s.post("/orgs/octo-org/hooks", org_body), StatusCode::CREATED).await;
    conforms("org-hook", &org_hook);
    assert_eq!(org_hook["type"], "Organization");
    conforms("org-hook[]", &s.json(s.get("/orgs/octo-org/hooks"), StatusCode::OK).await);

    let ids = s.fake.emit("octo-org/hello-world", "issues", sample("issues")).await;
    assert_eq!(ids.len(), 2, "the repository hook and the organization hook");
    let list = s.json(s.get(&format!("/repos/octo-org/hello-world/hooks/{id}/deliveries")), StatusCode::OK).await;
    conforms("hook-delivery-item[]", &list);
    let delivery_id = list[0]["id"].as_u64().unwrap();
    let delivery = s
        .json(s.get(&format!("/repos/octo-org/hello-world/hooks/{id}/deliveries/{delivery_id}")), StatusCode::OK)
        .await;
    conforms("hook-delivery", &delivery);
    assert_eq!(delivery["action"], "opened");

    conforms("basic-error", &s.json(s.get("/repos/octo-org/nope/hooks"), StatusCode::NOT_FOUND).await);
    let duplicate = json!({"config": {"url": receiver.url()}});
    let error = s.json(s.post("/repos/octo-org/hello-world/hooks", duplicate), StatusCode::UNPROCESSABLE_ENTITY).await;
    conforms("validation-error", &error);
    conforms("rate-limit-overview", &s.json(s.get("/rate_limit"), StatusCode::OK).await);
}

// ---------------------------------------------------------------------------------------------
// Behaviour

#[tokio::test]
async fn deliveries_page_newest_first_with_opaque_cursors_in_both_link_forms() {
    let s = Setup::new().await;
    let repo_id = s.fake.add_repo("o/r");
    let hook = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    let mut emitted = Vec::new();
    for n in 0..7 {
        emitted.extend(s.fake.emit("o/r", "push", json!({"n": n})).await);
    }
    let mut url = s.url(&format!("/repos/o/r/hooks/{hook}/deliveries?per_page=2"));
    let (mut seen, mut pages, mut forms) = (Vec::new(), 0, std::collections::HashSet::new());
    loop {
        let response = s.http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let link = header(&response, "link");
        let page: Vec<Value> = response.json().await.unwrap();
        pages += 1;
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|item| item["id"].as_u64().unwrap()));
        let Some(next) = link.strip_prefix('<').and_then(|rest| rest.split_once(">; rel=\"next\"")).map(|(u, _)| u)
        else {
            break;
        };
        let cursor = url::Url::parse(next).unwrap().query_pairs().find(|(k, _)| k == "cursor").unwrap().1.to_string();
        assert!(cursor.parse::<u64>().is_err(), "the cursor is opaque, not a page number: {cursor}");
        forms.insert(if next.contains(&format!("/repositories/{repo_id}/hooks/{hook}/deliveries")) {
            "repositories"
        } else {
            assert!(next.contains(&format!("/repos/o/r/hooks/{hook}/deliveries")), "{next}");
            "repos"
        });
        url = next.to_string();
    }
    assert_eq!(pages, 4);
    emitted.reverse();
    assert_eq!(seen, emitted, "every delivery once, newest first");
    assert_eq!(forms.len(), 2, "both the /repos/ and /repositories/ forms appear: {forms:?}");

    let bad = s.get(&format!("/repos/o/r/hooks/{hook}/deliveries?cursor=3"));
    assert_eq!(bad.send().await.unwrap().status(), 400);
    let max = s.json(s.get(&format!("/repos/o/r/hooks/{hook}/deliveries?per_page=500")), StatusCode::OK).await;
    assert_eq!(max.as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn matching_etag_answers_304_without_spending_rate_limit() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    let hook = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    s.fake.emit("o/r", "push", sample("push")).await;
    let path = format!("/repos/o/r/hooks/{hook}/deliveries");
    let first = s.get(&path).send().await.unwrap();
    let etag = header(&first, "etag");
    let remaining = header(&first, "x-ratelimit-remaining");
    assert!(!etag.is_empty());

    let counted = s.fake.stats().counted;
    let again = s.get(&path).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "x-ratelimit-remaining"), remaining, "a 304 costs nothing");
    assert_eq!(s.fake.stats().counted, counted);
    assert_eq!(s.fake.stats().not_modified, 1);

    s.fake.emit("o/r", "push", sample("push")).await;
    let changed = s.get(&path).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200, "a new delivery changes the ETag");
    assert_ne!(header(&changed, "etag"), etag);
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn requests_without_a_known_token_are_401() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    let missing = s.http.get(s.url("/repos/o/r/hooks")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let unknown = s.http.get(s.url("/repos/o/r/hooks")).bearer_auth("ghp_nope").send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["message"], "Bad credentials");
    conforms("basic-error", &body);
    s.fake.revoke_token(TOKEN);
    assert_eq!(s.get("/rate_limit").send().await.unwrap().status(), 401);
    assert_eq!(s.fake.stats().unauthorized, 3);
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn tokens_without_hook_scopes_are_403_with_scope_headers() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    s.fake.add_org("o");
    s.fake.add_token("ghp_readonly", "read:org, gist");
    s.fake.add_token("ghp_repo", "repo");
    let repo = s.http.get(s.url("/repos/o/r/hooks")).bearer_auth("ghp_readonly").send().await.unwrap();
    assert_eq!(repo.status(), 403);
    assert_eq!(header(&repo, "x-oauth-scopes"), "read:org, gist");
    assert!(header(&repo, "x-accepted-oauth-scopes").contains("admin:repo_hook"));
    conforms("basic-error", &repo.json().await.unwrap());

    let ok = s.http.get(s.url("/repos/o/r/hooks")).bearer_auth("ghp_repo").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let org = s.http.get(s.url("/orgs/o/hooks")).bearer_auth("ghp_repo").send().await.unwrap();
    assert_eq!(org.status(), 403, "organization hooks need admin:org_hook");
    assert_eq!(header(&org, "x-accepted-oauth-scopes"), "admin:org_hook");
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn unknown_repositories_organizations_hooks_and_deliveries_are_404() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    s.fake.add_repo("o/other");
    let hook = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    for path in [
        "/repos/o/missing/hooks".to_string(),
        "/orgs/missing/hooks".to_string(),
        "/repos/o/r/hooks/1".to_string(),
        format!("/repos/o/other/hooks/{hook}"),
        format!("/repos/o/r/hooks/{hook}/deliveries/12345"),
        "/repos/o/r/hooks/not-a-number".to_string(),
        "/no/such/endpoint".to_string(),
    ] {
        let error = s.json(s.get(&path), StatusCode::NOT_FOUND).await;
        assert_eq!(error["message"], "Not Found", "{path}");
        conforms("basic-error", &error);
    }
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn duplicate_or_invalid_hooks_are_422() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    let create = |config: Value| s.post("/repos/o/r/hooks", json!({"config": config}));
    s.json(create(json!({"url": "https://hooks.example.com/a"})), StatusCode::CREATED).await;
    let duplicate =
        s.json(create(json!({"url": "https://hooks.example.com/a"})), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(duplicate["errors"][0]["message"], "Hook already exists on this repository");
    for bad in [
        json!({"url": "not a url"}),
        json!({"url": "ftp://x.example.com"}),
        json!({}),
        json!({"url": "https://a.example.com", "content_type": "xml"}),
    ] {
        let error = s.json(create(bad.clone()), StatusCode::UNPROCESSABLE_ENTITY).await;
        conforms("validation-error", &error);
    }
    let broken = s.http.post(s.url("/repos/o/r/hooks")).bearer_auth(TOKEN).body("{").send().await.unwrap();
    assert_eq!(broken.status(), 400);
    assert_eq!(s.fake.stats().hook_creates, 1);
}

#[tokio::test]
async fn emit_posts_githubs_headers_and_a_valid_signature_over_the_exact_body() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    let repo_id = s.fake.add_repo("octo-org/hello-world");
    let hook = s.fake.add_hook("octo-org/hello-world", HookSpec::new(receiver.url()).secret("It's a Secret"));
    let ids = s.fake.emit("octo-org/hello-world", "pull_request", sample("pull_request")).await;
    assert_eq!(ids.len(), 1);

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.headers["x-hub-signature-256"], sha256_header("It's a Secret", &request.body));
    assert_eq!(request.headers["x-hub-signature"], sha1_header("It's a Secret", &request.body));
    assert_eq!(request.headers["x-github-event"], "pull_request");
    assert_eq!(request.headers["x-github-hook-id"], hook.to_string());
    assert_eq!(request.headers["x-github-hook-installation-target-type"], "repository");
    assert_eq!(request.headers["x-github-hook-installation-target-id"], repo_id.to_string());
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(request.headers["user-agent"].starts_with("GitHub-Hookshot/"));

    let recorded = &s.fake.deliveries(hook)[0];
    assert_eq!(recorded.id, ids[0]);
    assert_eq!(recorded.guid, request.headers["x-github-delivery"]);
    assert_eq!((recorded.status_code, recorded.status.as_str()), (200, "OK"));
    assert_eq!(recorded.action.as_deref(), Some("opened"));
    assert_eq!(recorded.payload, request.body);

    // The API serves the payload as the very bytes that were sent.
    let text = s.get(&format!("/repos/octo-org/hello-world/hooks/{hook}/deliveries/{}", ids[0])).send().await;
    let delivery: github::Delivery = serde_json::from_str(&text.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(delivery.request.payload.as_ref().unwrap().get().as_bytes(), &request.body[..]);
    assert_eq!(delivery.header("X-GitHub-Delivery"), Some(recorded.guid.as_str()));
}

#[tokio::test]
async fn form_hooks_receive_a_urlencoded_payload() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    s.fake.add_repo("o/r");
    let hook = s.fake.add_hook("o/r", HookSpec::new(receiver.url()).content_type("form").secret("k"));
    s.fake.emit("o/r", "push", sample("push")).await;
    let request = &receiver.received()[0];
    assert_eq!(request.headers["content-type"], "application/x-www-form-urlencoded");
    let (key, value) = url::form_urlencoded::parse(&request.body).next().unwrap();
    assert_eq!(key, "payload");
    assert_eq!(value.as_bytes(), &s.fake.deliveries(hook)[0].payload[..]);
    assert_eq!(request.headers["x-hub-signature-256"], sha256_header("k", &request.body));
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn failed_deliveries_are_recorded_with_what_github_saw() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    receiver.answer(503);
    s.fake.add_repo("o/r");
    let down = s.fake.add_hook("o/r", HookSpec::new(receiver.url()));
    let refused = s.fake.add_hook("o/r", HookSpec::new(refused_url().await));
    let inactive = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()).active(false));
    let issues_only =
        s.fake.add_hook("o/r", HookSpec::new(format!("{}?2", s.fake.blackhole_url())).events(&["issues"]));
    assert_eq!(s.fake.emit("o/r", "push", sample("push")).await.len(), 2);

    let failed = &s.fake.deliveries(down)[0];
    assert_eq!((failed.status_code, failed.status.as_str()), (503, "Invalid HTTP Response: 503"));
    let unreachable = &s.fake.deliveries(refused)[0];
    assert_eq!((unreachable.status_code, unreachable.status.as_str()), (0, "failed to connect to host"));
    assert!(s.fake.deliveries(inactive).is_empty());
    assert!(s.fake.deliveries(issues_only).is_empty());

    let list = s.json(s.get(&format!("/repos/o/r/hooks/{refused}/deliveries")), StatusCode::OK).await;
    assert_eq!(list[0]["status_code"], 0);
    conforms("hook-delivery-item[]", &list);
    let failures = s.json(s.get(&format!("/repos/o/r/hooks/{down}/deliveries?status=failure")), StatusCode::OK).await;
    assert_eq!(failures.as_array().unwrap().len(), 1);
    let hook = s.json(s.get(&format!("/repos/o/r/hooks/{down}")), StatusCode::OK).await;
    assert_eq!(hook["last_response"]["code"], 503);
}

#[tokio::test]
async fn redelivery_posts_again_with_the_same_guid_and_a_new_id() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    s.fake.add_repo("o/r");
    let hook = s.fake.add_hook("o/r", HookSpec::new(receiver.url()).secret("x"));
    let original = s.fake.emit("o/r", "issues", sample("issues")).await[0];
    let path = format!("/repos/o/r/hooks/{hook}/deliveries/{original}/attempts");
    let accepted = s.json(s.post(&path, json!({})), StatusCode::ACCEPTED).await;
    assert!(accepted.is_object());

    let got = receiver.received();
    assert_eq!(got.len(), 2, "actually POSTed again");
    assert_eq!(got[0].headers["x-github-delivery"], got[1].headers["x-github-delivery"]);
    assert_eq!(got[0].body, got[1].body);
    let list = s.json(s.get(&format!("/repos/o/r/hooks/{hook}/deliveries")), StatusCode::OK).await;
    assert_eq!(list[0]["redelivery"], true);
    assert_eq!(list[1]["redelivery"], false);
    assert_eq!(list[0]["guid"], list[1]["guid"]);
    assert!(list[0]["id"].as_u64().unwrap() > original);
    let only = s.json(s.get(&format!("/repos/o/r/hooks/{hook}/deliveries?redelivery=true")), StatusCode::OK).await;
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(
        s.json(s.post(&format!("/repos/o/r/hooks/{hook}/deliveries/1/attempts"), json!({})), StatusCode::NOT_FOUND)
            .await["message"],
        "Not Found"
    );
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn pings_deliver_githubs_ping_payload() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    s.fake.add_repo("o/r");
    s.fake.set_ping_on_create(true);
    let created = s
        .json(
            s.post("/repos/o/r/hooks", json!({"config": {"url": receiver.url(), "content_type": "json"}})),
            StatusCode::CREATED,
        )
        .await;
    let hook = created["id"].as_u64().unwrap();
    testkit::eventually("the ping", async || receiver.count() > 0).await;
    assert_eq!(receiver.received().len(), 1, "GitHub pings a new hook");

    let answer = s.http.post(s.url(&format!("/repos/o/r/hooks/{hook}/pings"))).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(answer.status(), 204);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let ping: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(got[1].headers["x-github-event"], "ping");
    assert_eq!(ping["hook_id"], hook);
    assert!(ping["zen"].is_string());
    assert_eq!(ping["hook"]["id"], hook);
    assert_eq!(ping["repository"]["full_name"], "o/r");
    // Compare with GitHub's own ping examples: the same top-level fields.
    let example = &webhook_examples("ping")[0];
    for key in ["zen", "hook_id", "hook", "repository", "sender"] {
        assert!(example.get(key).is_some() == ping.get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn rate_limit_budget_is_per_token_and_rate_limit_endpoint_is_free() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    s.fake.set_rate_limit(3);
    for expected in ["2", "1", "0"] {
        let response = s.get("/repos/o/r/hooks").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-remaining"), expected);
        assert_eq!(header(&response, "x-ratelimit-resource"), "core");
        assert_eq!(header(&response, "x-ratelimit-limit"), "3");
    }
    let limited = s.get("/repos/o/r/hooks").send().await.unwrap();
    assert_eq!(limited.status(), 403);
    assert_eq!(header(&limited, "x-ratelimit-remaining"), "0");
    assert!(header(&limited, "x-ratelimit-reset").parse::<i64>().unwrap() > chrono::Utc::now().timestamp());
    let body: Value = limited.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("API rate limit exceeded"));

    let overview = s.json(s.get("/rate_limit"), StatusCode::OK).await;
    assert_eq!(overview["resources"]["core"]["remaining"], 0);
    assert_eq!(overview["rate"]["used"], 3);
    s.fake.add_token("ghp_other", "repo");
    let other = s.http.get(s.url("/repos/o/r/hooks")).bearer_auth("ghp_other").send().await.unwrap();
    assert_eq!(other.status(), 200, "another token has its own budget");
}

#[tokio::test]
async fn faults_latency_server_errors_and_drops_hit_api_requests() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    let faults = s.fake.faults();

    faults.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(s.get("/repos/o/r/hooks").send().await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    faults.set_latency(Duration::ZERO);

    faults.set_server_error_rate(0.5);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = s.get("/repos/o/r/hooks").send().await.unwrap();
        statuses.push(response.status().as_u16());
        assert!(header(&response, "content-type").starts_with("application/json"));
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 500, 502]);
    faults.set_server_error_rate(0.0);

    faults.set_drop_rate(1.0);
    let dropped = s.get("/repos/o/r/hooks").send().await;
    assert!(dropped.is_err(), "the connection closes without an answer");
    faults.set_drop_rate(0.0);
    assert_eq!(s.get("/repos/o/r/hooks").send().await.unwrap().status(), 200);
    let stats = s.fake.stats();
    assert_eq!((stats.server_errors, stats.dropped), (2, 1));

    // Emits are not API requests: faults leave them alone.
    faults.set_server_error_rate(1.0);
    let hook = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    assert_eq!(s.fake.emit("o/r", "push", sample("push")).await.len(), 1);
    assert_eq!(s.fake.deliveries(hook)[0].status_code, 200);
}

#[tokio::test]
async fn faults_secondary_and_primary_rate_limits() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    let faults = s.fake.faults();

    faults.secondary_limit(2, Duration::from_secs(7));
    for _ in 0..2 {
        let response = s.get("/repos/o/r/hooks").send().await.unwrap();
        assert_eq!(response.status(), 403);
        assert_eq!(header(&response, "retry-after"), "7");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("secondary rate limit"));
    }
    assert_eq!(s.get("/repos/o/r/hooks").send().await.unwrap().status(), 200);

    faults.exhaust_primary(Duration::from_secs(90));
    let response = s.get("/repos/o/r/hooks").send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, "x-ratelimit-remaining"), "0");
    let reset: i64 = header(&response, "x-ratelimit-reset").parse().unwrap();
    assert!((80..=95).contains(&(reset - chrono::Utc::now().timestamp())), "{reset}");
    faults.exhaust_primary(Duration::ZERO);
    assert_eq!(s.get("/repos/o/r/hooks").send().await.unwrap().status(), 200);
    assert_eq!(s.fake.stats().secondary_limited, 2);
    assert_eq!(s.fake.stats().primary_limited, 1);
}

#[tokio::test]
async fn the_secondary_limit_counts_points_per_endpoint_and_requests_in_flight_as_github_does() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    s.fake.add_repo("o/s");
    let r = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    let other = s.fake.add_hook("o/s", HookSpec::new(s.fake.blackhole_url()));
    // Through the control surface, as another process would lower it.
    let control = format!("{}_fake/secondary", s.fake.api_url());
    let lowered = s.http.post(&control).json(&json!({"per_minute": 4, "concurrent": null})).send().await.unwrap();
    assert_eq!(lowered.status(), 204);

    // Four GETs a minute on one endpoint; a 304 counts as much as a 200.
    let list = format!("/repos/o/r/hooks/{r}/deliveries");
    let first = s.get(&list).send().await.unwrap();
    let etag = header(&first, "etag");
    let conditional = s.get(&list).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(conditional.status(), 304);
    for _ in 0..2 {
        assert_eq!(s.get(&list).send().await.unwrap().status(), 200);
    }
    let refused = s.get(&list).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let wait: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "retry-after says when the minute frees a point: {wait}");
    assert_eq!(header(&refused, "x-ratelimit-remaining").parse::<u32>().unwrap(), 5000 - 3, "not counted");
    let body: Value = refused.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("You have exceeded a secondary rate limit."), "{body}");
    assert!(body["documentation_url"].as_str().unwrap().ends_with("#about-secondary-rate-limits"), "{body}");

    // The same route template for another repository is the same endpoint; another route is not.
    assert_eq!(s.get(&format!("/repos/o/s/hooks/{other}/deliveries")).send().await.unwrap().status(), 403);
    assert_eq!(s.get("/repos/o/r/hooks").send().await.unwrap().status(), 200);
    // A write costs five points: more than a minute of four allows on its endpoint.
    let create = s.post("/repos/o/r/hooks", json!({"config": {"url": "https://example.com/"}}));
    assert_eq!(create.send().await.unwrap().status(), 403);
    assert_eq!(s.fake.stats().secondary_limited, 3);

    // No more than `concurrent` requests at once: the fake's latency keeps them in flight together.
    s.fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: Some(3) });
    s.fake.faults().set_latency(Duration::from_millis(300));
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..5 {
        at_once.spawn(s.get("/repos/o/r/hooks").send());
    }
    let mut statuses: Vec<u16> =
        at_once.join_all().await.into_iter().map(|answer| answer.unwrap().status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 403, 403]);
    assert_eq!(s.fake.stats().peak_in_flight, 3);

    // GitHub's figures are the default: 900 points a minute per endpoint.
    s.fake.faults().set_latency(Duration::ZERO);
    s.fake.set_secondary_limits(fake_github::SecondaryLimits::default());
    for n in 0..900 {
        assert_eq!(s.get("/repos/o/r/hooks").send().await.unwrap().status(), 200, "point {}", n + 1);
    }
    assert_eq!(s.get("/repos/o/r/hooks").send().await.unwrap().status(), 403, "the 901st point in a minute");
}

#[tokio::test]
async fn retention_forgets_old_deliveries_and_age_moves_time() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    let hook = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    s.fake.emit("o/r", "push", sample("push")).await;
    s.fake.age(Duration::from_secs(2 * 24 * 3600));
    s.fake.emit("o/r", "push", sample("push")).await;
    let list = s.json(s.get(&format!("/repos/o/r/hooks/{hook}/deliveries")), StatusCode::OK).await;
    let old = chrono::DateTime::parse_from_rfc3339(list[1]["delivered_at"].as_str().unwrap()).unwrap();
    assert!(chrono::Utc::now().signed_duration_since(old) > chrono::Duration::hours(47));

    s.fake.age(Duration::from_secs(2 * 24 * 3600));
    assert_eq!(s.fake.deliveries(hook).len(), 1, "GitHub keeps three days by default");
    s.fake.faults().set_retention(Duration::from_secs(3600));
    assert!(s.fake.deliveries(hook).is_empty());
    let list = s.json(s.get(&format!("/repos/o/r/hooks/{hook}/deliveries")), StatusCode::OK).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn org_hooks_receive_their_repositories_events() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    s.fake.add_org("octo-org");
    s.fake.add_repo("octo-org/a");
    let hook = s.fake.add_hook("octo-org", HookSpec::new(receiver.url()));
    s.fake.emit("octo-org/a", "release", sample("release")).await;
    s.fake.emit("octo-org", "organization", json!({"action": "member_added"})).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["x-github-hook-installation-target-type"], "organization");
    let list = s.json(s.get(&format!("/orgs/octo-org/hooks/{hook}/deliveries?per_page=1")), StatusCode::OK).await;
    assert_eq!(list[0]["action"], "member_added");
    let items = s.json(s.get(&format!("/orgs/octo-org/hooks/{hook}/deliveries")), StatusCode::OK).await;
    conforms("hook-delivery-item[]", &items);
    let id = items[1]["id"].as_u64().unwrap();
    let delivery = s.json(s.get(&format!("/orgs/octo-org/hooks/{hook}/deliveries/{id}")), StatusCode::OK).await;
    conforms("hook-delivery", &delivery);
    s.json(s.post(&format!("/orgs/octo-org/hooks/{hook}/deliveries/{id}/attempts"), json!({})), StatusCode::ACCEPTED)
        .await;
    assert_eq!(receiver.received().len(), 3);
    let deleted =
        s.http.delete(s.url(&format!("/orgs/octo-org/hooks/{hook}"))).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    s.json(s.get(&format!("/orgs/octo-org/hooks/{hook}")), StatusCode::NOT_FOUND).await;
}

/// An RS256 JWT as an App makes one, signed here rather than by the `github` crate's code.
fn app_jwt(app_id: u64, lifetime: i64) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let pem = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys/app.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "a PKCS#1 key, as GitHub hands out");
    let der = STANDARD.decode(pem.lines().filter(|line| !line.starts_with("-----")).collect::<String>()).unwrap();
    let key = ring::signature::RsaKeyPair::from_der(&der).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now - 30, "exp": now + lifetime, "iss": app_id});
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let message = format!("{}.{}", encode(&header), encode(&claims));
    let mut signature = vec![0; key.public().modulus_len()];
    let rng = ring::rand::SystemRandom::new();
    key.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, message.as_bytes(), &mut signature).unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn app_hook_answers_only_to_the_apps_jwt_and_mints_installation_tokens() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    let public =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys/app.pub.pem")).unwrap();
    s.fake.add_app(4242, &public, 77);
    s.fake.set_app_hook(4242, HookSpec::new(receiver.url()).secret("app-secret"));
    s.fake.add_repo("o/r");
    s.fake.emit("o/r", "check_run", sample("check_run")).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["x-github-hook-installation-target-type"], "integration");
    assert_eq!(got[0].headers["x-github-hook-installation-target-id"], "4242");
    let payload: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(payload["installation"]["id"], 77);

    let jwt = app_jwt(4242, 540);
    let app_get = |path: &str| s.http.get(s.url(path)).bearer_auth(&jwt);
    assert_eq!(s.get("/app/hook/deliveries").send().await.unwrap().status(), 401, "a token is not a JWT");
    let too_long = s.http.get(s.url("/app/hook/config")).bearer_auth(app_jwt(4242, 3600)).send().await.unwrap();
    assert_eq!(too_long.status(), 401, "exp more than ten minutes away");
    let config = s.json(app_get("/app/hook/config"), StatusCode::OK).await;
    conforms("webhook-config", &config);
    let list = s.json(app_get("/app/hook/deliveries"), StatusCode::OK).await;
    conforms("hook-delivery-item[]", &list);
    assert_eq!(list[0]["installation_id"], 77);
    let id = list[0]["id"].as_u64().unwrap();
    let delivery = s.json(app_get(&format!("/app/hook/deliveries/{id}")), StatusCode::OK).await;
    conforms("hook-delivery", &delivery);
    let redeliver = s.http.post(s.url(&format!("/app/hook/deliveries/{id}/attempts"))).bearer_auth(&jwt);
    s.json(redeliver, StatusCode::ACCEPTED).await;
    assert_eq!(receiver.received().len(), 2);

    let minted = s.http.post(s.url("/app/installations/77/access_tokens")).bearer_auth(&jwt);
    let minted = s.json(minted, StatusCode::CREATED).await;
    let token = minted["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_"));
    assert!(minted["expires_at"].as_str().is_some());
    let hooks = s.http.get(s.url("/repos/o/r/hooks")).bearer_auth(token).send().await.unwrap();
    assert_eq!(hooks.status(), 200, "an installation token works on repository hooks");
    assert!(hooks.headers().get("x-oauth-scopes").is_none());
    let other = s.http.post(s.url("/app/installations/78/access_tokens")).bearer_auth(&jwt).send().await.unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
async fn githubs_example_payloads_round_trip_byte_exact() {
    let s = Setup::new().await;
    let receiver = Recorder::start().await;
    s.fake.add_repo("Codertocat/Hello-World");
    let hook = s.fake.add_hook("Codertocat/Hello-World", HookSpec::new(receiver.url()).secret("s"));
    let mut events: Vec<(String, Value)> = Vec::new();
    for event in EXAMPLE_EVENTS {
        events.extend(webhook_examples(event).into_iter().map(|example| (event.to_string(), example)));
    }
    for event in github::samples::EVENTS {
        events.push((event.to_string(), sample(event)));
    }
    for (event, payload) in &events {
        s.fake.emit("Codertocat/Hello-World", event, payload.clone()).await;
    }
    let got = receiver.received();
    assert_eq!(got.len(), events.len());
    let recorded = s.fake.deliveries(hook);
    for ((event, payload), (request, delivery)) in events.iter().zip(got.iter().zip(&recorded)) {
        assert_eq!(&request.headers["x-github-event"], event);
        assert_eq!(delivery.action.as_deref(), payload.get("action").and_then(Value::as_str));
        assert_eq!(&serde_json::from_slice::<Value>(&request.body).unwrap(), payload);
        let text = s.get(&format!("/repos/Codertocat/Hello-World/hooks/{hook}/deliveries/{}", delivery.id)).send();
        let served: github::Delivery = serde_json::from_str(&text.await.unwrap().text().await.unwrap()).unwrap();
        assert_eq!(served.request.payload.unwrap().get().as_bytes(), &request.body[..], "{event}");
    }
}

#[tokio::test]
async fn emit_many_seeds_a_large_backlog_quickly() {
    let s = Setup::new().await;
    s.fake.add_repo("o/r");
    let hook = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    let started = Instant::now();
    let payloads = (0..2000).map(|n| json!({"n": n})).collect();
    let ids = s.fake.emit_many("o/r", "push", payloads).await;
    assert_eq!(ids.len(), 2000);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let deliveries = s.fake.deliveries(hook);
    assert_eq!(deliveries.len(), 2000);
    assert!(deliveries.windows(2).all(|pair| pair[0].id < pair[1].id), "ids ascend in recording order");
}

#[tokio::test]
async fn binary_prints_its_url_first_and_is_driven_over_http() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-github"))
        .args(["--token", "t1:repo", "--repo", "o/r"])
        .arg("--hook=o/r=http://127.0.0.1:1/x")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next_line().await.unwrap().unwrap();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");
    let hook_line = lines.next_line().await.unwrap().unwrap();
    let hook: u64 = hook_line.strip_prefix("hook o/r ").unwrap().parse().unwrap();

    let http = github::http_client().no_proxy().build().unwrap();
    let hooks: Value =
        http.get(format!("{url}repos/o/r/hooks")).bearer_auth("t1").send().await.unwrap().json().await.unwrap();
    assert_eq!(hooks[0]["id"], hook);
    let blackhole = format!("{url}_fake/blackhole");
    http.post(format!("{url}_fake/hooks")).json(&json!({"owner": "o/r", "url": blackhole})).send().await.unwrap();
    let emitted: Value = http
        .post(format!("{url}_fake/emit"))
        .json(&json!({"owner": "o/r", "event": "push"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(emitted["deliveries"].as_array().unwrap().len(), 2);
    let recorded: Value =
        http.get(format!("{url}_fake/hooks/{hook}/deliveries")).send().await.unwrap().json().await.unwrap();
    assert_eq!(recorded[0]["status_code"], 0);
    http.post(format!("{url}_fake/faults")).json(&json!({"server_error_rate": 1.0})).send().await.unwrap();
    let failing = http.get(format!("{url}repos/o/r/hooks")).bearer_auth("t1").send().await.unwrap();
    assert_eq!(failing.status(), 502);
    let stats: Value = http.get(format!("{url}_fake/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["server_errors"], 1);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_prefix_puts_every_path_url_and_link_under_it_like_github_enterprise_server() {
    let fake = FakeGitHub::start_with_prefix("/api/v3").await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.set_ping_on_create(false);
    fake.add_repo("o/r");
    let api = fake.api_url().to_string();
    assert_eq!(api, format!("http://{}/api/v3/", fake.addr()));
    assert!(fake.blackhole_url().starts_with(&api), "{}", fake.blackhole_url());
    let http = github::http_client().no_proxy().build().unwrap();

    // The API root as users type it (no trailing slash) plus a path, the way clients join them.
    let created: Value = http
        .post(format!("{}/repos/o/r/hooks", api.trim_end_matches('/')))
        .bearer_auth(TOKEN)
        .json(&json!({"config": {"url": fake.blackhole_url()}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook = created["id"].as_u64().unwrap();
    for field in ["url", "ping_url", "deliveries_url", "test_url"] {
        let url = created[field].as_str().unwrap();
        assert!(url.starts_with(&format!("{api}repos/o/r/hooks/{hook}")), "{field}: {url}");
    }
    for n in 0..5 {
        fake.emit("o/r", "push", json!({"n": n})).await;
    }
    let mut url = format!("{api}repos/o/r/hooks/{hook}/deliveries?per_page=2");
    let mut seen = 0;
    loop {
        let response = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let link = header(&response, "link");
        seen += response.json::<Vec<Value>>().await.unwrap().len();
        let Some(next) = link.strip_prefix('<').and_then(|rest| rest.split_once(">; rel=\"next\"")).map(|(u, _)| u)
        else {
            break;
        };
        assert!(next.starts_with(&api), "the next link keeps the prefix: {next}");
        url = next.to_string();
    }
    assert_eq!(seen, 5);

    // Outside the prefix there is no API, as on GitHub Enterprise Server.
    let root = format!("http://{}/", fake.addr());
    for path in ["repos/o/r/hooks", "rate_limit", "_fake/stats", "api/v30/rate_limit"] {
        let response = http.get(format!("{root}{path}")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let stats: Value = http.get(format!("{api}_fake/stats")).send().await.unwrap().json().await.unwrap();
    assert!(stats["requests"].as_u64().unwrap() >= 4, "{stats}");
}

#[tokio::test]
async fn binary_serves_under_prefix() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-github"))
        .args(["--token", "t1:repo", "--repo", "o/r", "--prefix", "/api/v3"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next_line().await.unwrap().unwrap();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/api/v3/"), "{url}");
    let http = github::http_client().no_proxy().build().unwrap();
    let hooks = http.get(format!("{url}repos/o/r/hooks")).bearer_auth("t1").send().await.unwrap();
    assert_eq!(hooks.status(), 200);
    let root = url.trim_end_matches("api/v3/");
    let outside = http.get(format!("{root}repos/o/r/hooks")).bearer_auth("t1").send().await.unwrap();
    assert_eq!(outside.status(), 404);
    child.kill().await.unwrap();
}

#[test]
#[ignore = "needs GitHub's description or examples from npm (tests/receiver); scripts/test installs them"]
fn schema_check_is_not_vacuous() {
    let wrong = json!({"id": "1", "guid": 2});
    let caught = std::panic::catch_unwind(|| conforms("hook-delivery-item", &wrong));
    assert!(caught.is_err(), "a wrong shape must fail the schema check");
    let nullable = json!({"code": null, "status": null, "message": null});
    conforms("hook-response", &nullable);
}

#[tokio::test]
async fn hostile_answers_are_set_over_http_and_end_after_their_count() {
    let s = Setup::new().await;
    let hook = s.fake.add_hook("o/r", HookSpec::new(s.fake.blackhole_url()));
    s.fake.emit("o/r", "push", sample("push")).await;
    let list = format!("/repos/o/r/hooks/{hook}/deliveries?per_page=1");
    let control = |body: Value| s.http.post(s.url("/_fake/hostile")).json(&body).send();

    assert_eq!(control(json!({"answer": "link_loop", "times": 1})).await.unwrap().status(), 204);
    let looped = s.get(&list).send().await.unwrap();
    let link = header(&looped, "link");
    assert!(link.contains("cursor=>; rel=\"next\""), "the link leads back to the first page: {link}");
    let plain = s.get(&list).send().await.unwrap();
    assert!(plain.headers().get("link").is_none(), "one answer only: a single delivery has no next page");

    assert_eq!(control(json!({"answer": "spurious_not_modified"})).await.unwrap().status(), 204);
    assert_eq!(s.get(&list).send().await.unwrap().status(), 304, "without any If-None-Match");
    assert_eq!(control(json!({"clear": true})).await.unwrap().status(), 204);
    assert_eq!(s.get(&list).send().await.unwrap().status(), 200);

    // A huge delivery is generated as it is sent, with its length declared, and is still JSON.
    let id = s.fake.deliveries(hook)[0].id;
    assert_eq!(control(json!({"answer": "huge_delivery", "bytes": 3_000_000})).await.unwrap().status(), 204);
    let huge = s.get(&format!("/repos/o/r/hooks/{hook}/deliveries/{id}")).send().await.unwrap();
    let declared = huge.content_length().expect("a declared length");
    let body = huge.bytes().await.unwrap();
    assert_eq!(body.len() as u64, declared);
    assert!(declared > 3_000_000);
    let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
    assert_eq!(parsed["id"], id);

    assert_eq!(control(json!({"answer": "no_such_answer"})).await.unwrap().status(), 400);
}

//! The GitHub client against the fake GitHub: pagination, conditional requests, rate limits,
//! retries, typed errors, App authentication, and tokens kept out of every message.

use std::error::Error as _;
use std::time::{Duration, Instant};

use fake_github::{FakeGitHub, HookSpec};
use github::{
    AppCredentials, Auth, Client, Config, Error, HookConfig, HookRef, Listing, NewHook, Owner, RetryPolicy, Secret,
};
use serde_json::json;

/// A classic token with every hook scope.
const TOKEN: &str = "ghp_integrationTestToken0123456789abcd";

/// Retries that keep tests quick; rate-limit waits stay as GitHub asks, with a short floor.
fn quick() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        attempts: 4,
        secondary_wait: Duration::from_secs(1),
        secondary_cap: Duration::from_secs(4),
        max_rate_limit_wait: Some(Duration::from_secs(30)),
    }
}

fn client_with(fake: &FakeGitHub, auth: Auth) -> Client {
    let config = Config { api_url: fake.api_url(), auth, timeout: Duration::from_secs(10) };
    Client::new(config).unwrap().with_retry_policy(quick())
}

fn client(fake: &FakeGitHub, token: &str) -> Client {
    client_with(fake, Auth::Token(Secret::new(token)))
}

/// A fake with `octo/hello`, one hook on it, and a client for it.
async fn setup() -> (FakeGitHub, Client, HookRef, Owner) {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook, admin:org_hook");
    fake.add_repo("octo/hello");
    let id = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    let owner = Owner::parse("octo/hello").unwrap();
    let client = client(&fake, TOKEN);
    (fake, client, owner.hook(id), owner)
}

async fn emit_pushes(fake: &FakeGitHub, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.extend(fake.emit("octo/hello", "push", json!({"ref": "refs/heads/main", "n": i})).await);
    }
    ids
}

/// Every message and Debug form of `error` and its sources.
fn all_text(error: &Error) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn pages_through_deliveries_following_each_link_exactly() {
    let (fake, client, hook, _) = setup().await;
    let mut emitted = emit_pushes(&fake, 8).await;
    emitted.reverse();

    let Listing::Page(mut page) = client.list_deliveries(&hook, 3).await.unwrap() else {
        panic!("a first list is never 304");
    };
    let mut ids: Vec<u64> = page.items.iter().map(|item| item.id).collect();
    let mut links = Vec::new();
    while let Some(next) = page.next.take() {
        links.push(next.url().clone());
        page = client.next_deliveries(&next).await.unwrap();
        ids.extend(page.items.iter().map(|item| item.id));
    }
    assert_eq!(ids, emitted, "newest first, nothing skipped or repeated");
    assert_eq!(links.len(), 2, "8 deliveries at 3 a page are 3 pages");
    assert!(links.iter().any(|link| link.path().starts_with("/repositories/")), "{links:?}");
    assert!(links.iter().all(|link| link.query().is_some_and(|query| query.contains("cursor="))), "{links:?}");
}

#[tokio::test]
async fn lists_every_hook_across_pages() {
    let (fake, client, _, owner) = setup().await;
    for i in 0..204 {
        fake.add_hook("octo/hello", HookSpec::new(format!("{}?hook={i}", fake.blackhole_url())));
    }
    let hooks = client.list_hooks(&owner).await.unwrap();
    assert_eq!(hooks.len(), 205);
    assert_eq!(fake.stats().list_hooks, 3);
}

#[tokio::test]
async fn unchanged_list_answers_304_and_costs_no_rate_limit() {
    let (fake, client, hook, _) = setup().await;
    emit_pushes(&fake, 2).await;
    assert!(matches!(client.list_deliveries(&hook, 100).await.unwrap(), Listing::Page(_)));
    let counted = fake.stats().counted;
    let remaining = client.rate_limit().remaining.unwrap();

    // A clone shares the ETag cache.
    assert!(matches!(client.clone().list_deliveries(&hook, 100).await.unwrap(), Listing::NotModified));
    assert!(matches!(client.list_deliveries(&hook, 100).await.unwrap(), Listing::NotModified));
    assert_eq!(fake.stats().not_modified, 2);
    assert_eq!(fake.stats().counted, counted, "304s are free");
    assert_eq!(client.rate_limit().remaining, Some(remaining));

    let new = emit_pushes(&fake, 1).await;
    let Listing::Page(page) = client.list_deliveries(&hook, 100).await.unwrap() else {
        panic!("a new delivery changes the list");
    };
    assert_eq!(page.items[0].id, new[0]);

    client.forget_etags(&hook);
    assert!(matches!(client.list_deliveries(&hook, 100).await.unwrap(), Listing::Page(_)));
}

#[tokio::test]
async fn reads_the_rate_budget() {
    let (fake, client, hook, _) = setup().await;
    fake.set_rate_limit(100);
    client.get_hook(&hook).await.unwrap();
    let rate = client.rate_limit();
    assert_eq!(rate.limit, Some(100));
    assert_eq!(rate.remaining, Some(99));
    assert!(rate.reset_at.unwrap() > chrono::Utc::now());
}

#[tokio::test]
async fn waits_out_an_exhausted_primary_limit() {
    let (fake, client, hook, _) = setup().await;
    fake.faults().exhaust_primary(Duration::from_millis(1500));
    let start = Instant::now();
    let call = tokio::spawn({
        let client = client.clone();
        let hook = hook.clone();
        async move { client.get_hook(&hook).await }
    });
    // The wait is visible to a status line while the call waits (1.5 s), not only after.
    testkit::eventually("the wait to be visible", async || client.waiting_until().is_some() || call.is_finished())
        .await;
    assert!(client.waiting_until().is_some(), "the wait is visible to a status line");
    call.await.unwrap().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500), "{:?}", start.elapsed());
    assert_eq!(fake.stats().primary_limited, 1, "one refused call, then a wait, not a retry loop");
    assert_eq!(client.waiting_until(), None);
}

#[tokio::test]
async fn refuses_to_wait_longer_than_the_policy_allows() {
    let (fake, client, hook, _) = setup().await;
    fake.faults().exhaust_primary(Duration::from_secs(3600));
    let start = Instant::now();
    let error = client.get_hook(&hook).await.unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn backs_off_from_consecutive_secondary_limits() {
    let (fake, client, hook, _) = setup().await;
    fake.faults().secondary_limit(2, Duration::from_secs(1));
    let start = Instant::now();
    client.get_hook(&hook).await.unwrap();
    // retry-after 1 s, then twice that for the second in a row.
    assert!(start.elapsed() >= Duration::from_secs(3), "{:?}", start.elapsed());
    assert_eq!(fake.stats().secondary_limited, 2);
}

#[tokio::test]
async fn retries_reads_through_server_errors() {
    let (fake, client, hook, owner) = setup().await;
    emit_pushes(&fake, 1).await;
    fake.faults().set_server_error_rate(0.5);
    client.list_hooks(&owner).await.unwrap();
    client.get_hook(&hook).await.unwrap();
    client.list_deliveries(&hook, 10).await.unwrap();
    assert!(fake.stats().server_errors >= 2);
}

#[tokio::test]
async fn gives_up_on_persistent_server_errors_after_a_few_attempts() {
    let (fake, client, hook, _) = setup().await;
    fake.faults().set_server_error_rate(1.0);
    let before = fake.stats().requests;
    let error = client.get_hook(&hook).await.unwrap_err();
    assert!(matches!(error, Error::Server { status: 500 | 502, .. }), "{error}");
    assert_eq!(fake.stats().requests - before, u64::from(quick().attempts));
}

#[tokio::test]
async fn never_repeats_a_create_that_may_have_been_processed() {
    let (fake, client, _, owner) = setup().await;
    fake.faults().set_server_error_rate(1.0);
    let before = fake.stats().requests;
    let error = client.create_hook(&owner, &new_hook(&format!("{}?new", fake.blackhole_url()))).await.unwrap_err();
    assert!(matches!(error, Error::Server { .. }), "{error}");
    assert_eq!(fake.stats().requests - before, 1);

    fake.faults().clear();
    fake.faults().set_drop_rate(1.0);
    let error = client.create_hook(&owner, &new_hook(&format!("{}?new", fake.blackhole_url()))).await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
    assert_eq!(fake.stats().dropped, 1, "a dropped POST is not sent again");
}

#[tokio::test]
async fn retries_reads_over_dropped_connections() {
    let (fake, client, hook, _) = setup().await;
    fake.faults().set_drop_rate(0.5);
    for _ in 0..4 {
        client.get_hook(&hook).await.unwrap();
    }
    assert!(fake.stats().dropped >= 2);
}

#[tokio::test]
async fn an_unreachable_api_is_reported_after_retrying() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = Config {
        api_url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        auth: Auth::Token(Secret::new(TOKEN)),
        timeout: Duration::from_secs(2),
    };
    let client = Client::new(config).unwrap().with_retry_policy(quick());
    let error = client.list_hooks(&Owner::parse("octo/hello").unwrap()).await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
    assert!(!all_text(&error).contains(TOKEN));
}

fn new_hook(url: &str) -> NewHook {
    NewHook {
        name: "web".into(),
        active: true,
        events: vec!["push".into()],
        config: HookConfig {
            url: Some(url.into()),
            content_type: Some("json".into()),
            secret: Some("hook-secret".into()),
            insecure_ssl: None,
        },
    }
}

#[tokio::test]
async fn manages_hooks_pings_and_redeliveries() {
    let (fake, client, _, owner) = setup().await;
    // The ping GitHub sends on create would race with the one asked for below.
    fake.set_ping_on_create(false);
    let created = client.create_hook(&owner, &new_hook(&format!("{}?managed", fake.blackhole_url()))).await.unwrap();
    assert_eq!(created.config.url, Some(format!("{}?managed", fake.blackhole_url())));
    let hook = owner.hook(created.id);

    let update = github::HookUpdate { events: Some(vec!["push".into(), "issues".into()]), ..Default::default() };
    let updated = client.update_hook(&hook, &update).await.unwrap();
    assert_eq!(updated.events, ["push", "issues"]);
    assert_eq!(client.get_hook(&hook).await.unwrap().events, ["push", "issues"]);

    let before = fake.deliveries(created.id).len();
    client.ping_hook(&hook).await.unwrap();
    let deliveries = fake.deliveries(created.id);
    assert_eq!(deliveries.len(), before + 1);
    let ping = deliveries.last().unwrap();
    assert_eq!(ping.event, "ping");

    client.redeliver(&hook, ping.id).await.unwrap();
    let redelivered = fake.deliveries(created.id).last().cloned().unwrap();
    assert!(redelivered.redelivery);
    assert_eq!(redelivered.guid, ping.guid);

    client.delete_hook(&hook).await.unwrap();
    assert!(matches!(client.get_hook(&hook).await.unwrap_err(), Error::NotFound { .. }));
}

#[tokio::test]
async fn keeps_delivery_payload_bytes_exactly() {
    let (fake, client, hook, _) = setup().await;
    let ids =
        fake.emit("octo/hello", "issues", json!({"action": "opened", "issue": {"title": "é \u{2028} \"q\""}})).await;
    let delivery = client.get_delivery(&hook, ids[0]).await.unwrap();
    let recorded = fake.deliveries(hook.id().unwrap()).into_iter().find(|d| d.id == ids[0]).unwrap();
    assert_eq!(delivery.request.payload.as_ref().unwrap().get().as_bytes(), &recorded.payload[..]);
    assert_eq!(delivery.event, "issues");
    assert_eq!(delivery.action.as_deref(), Some("opened"));
    assert_eq!(delivery.header("x-github-event"), Some("issues"));
}

#[tokio::test]
async fn a_rejected_token_is_unauthorized() {
    let (fake, _, hook, _) = setup().await;
    let stranger = "ghp_neverIssuedToken000000000000000000";
    let error = client(&fake, stranger).get_hook(&hook).await.unwrap_err();
    assert!(matches!(error, Error::Unauthorized), "{error}");
    assert!(!all_text(&error).contains(stranger));

    // The App hook takes the App's JWT; a token there gets a sentence that says so.
    let error = client(&fake, TOKEN).list_deliveries(&HookRef::App { app_id: None }, 10).await.unwrap_err();
    assert!(matches!(error, Error::AppCredentials { .. }), "{error}");
}

#[tokio::test]
async fn a_missing_permission_names_the_scope_needed_and_the_scopes_held() {
    let (fake, _, _, _) = setup().await;
    fake.add_org("octo-org");
    let narrow = "ghp_narrowScopesToken00000000000000000";
    fake.add_token(narrow, "repo, read:org");
    let error = client(&fake, narrow).list_hooks(&Owner::parse("octo-org").unwrap()).await.unwrap_err();
    let Error::Forbidden { what, needed, scopes } = &error else { panic!("{error}") };
    assert_eq!(what, "the hooks of org octo-org");
    assert!(needed.contains("admin:org_hook"), "{needed}");
    assert_eq!(scopes.as_deref(), Some("repo, read:org"));
    let text = error.to_string();
    assert!(text.contains("admin:org_hook") && text.contains("repo, read:org"), "{text}");
    assert!(!all_text(&error).contains(narrow));
}

#[tokio::test]
async fn an_unknown_repository_is_not_found() {
    let (_fake, client, _, _) = setup().await;
    let error = client.list_hooks(&Owner::parse("octo/missing").unwrap()).await.unwrap_err();
    let Error::NotFound { what } = &error else { panic!("{error}") };
    assert_eq!(what, "the hooks of octo/missing");
    let delivery = client.get_delivery(&Owner::parse("octo/hello").unwrap().hook(999_999), 12).await.unwrap_err();
    assert!(matches!(delivery, Error::NotFound { .. }), "{delivery}");
    assert!(delivery.to_string().contains("delivery 12 of octo/hello hook 999999"), "{delivery}");
}

#[tokio::test]
async fn a_duplicate_hook_is_unprocessable_with_githubs_reason() {
    let (fake, client, _, owner) = setup().await;
    client.create_hook(&owner, &new_hook(&format!("{}?twice", fake.blackhole_url()))).await.unwrap();
    let error = client.create_hook(&owner, &new_hook(&format!("{}?twice", fake.blackhole_url()))).await.unwrap_err();
    let Error::Unprocessable { message, .. } = &error else { panic!("{error}") };
    assert!(message.contains("Hook already exists on this repository"), "{message}");
}

#[tokio::test]
async fn the_app_hook_is_read_with_a_jwt_and_repositories_with_an_installation_token() {
    let fake = FakeGitHub::start().await;
    fake.add_app(42, include_str!("keys/app-test-key.pub.pem"), 7);
    fake.add_repo("octo/hello");
    let hook_id = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    fake.emit("octo/hello", "push", json!({"ref": "refs/heads/main"})).await;

    let app = AppCredentials {
        app_id: 42,
        private_key: Secret::new(include_str!("keys/app-test-key.pem")),
        installation_id: Some(7),
    };
    let client = client_with(&fake, Auth::App(app.clone()));
    let Listing::Page(page) = client.list_deliveries(&HookRef::App { app_id: None }, 50).await.unwrap() else {
        panic!("first list")
    };
    assert!(!page.items.is_empty(), "the App hook got the push");
    let delivery = client.get_delivery(&HookRef::App { app_id: None }, page.items[0].id).await.unwrap();
    assert_eq!(delivery.event, "push");

    let owner = Owner::parse("octo/hello").unwrap();
    assert_eq!(client.list_hooks(&owner).await.unwrap().len(), 1);
    client.get_hook(&owner.hook(hook_id)).await.unwrap();
    client.clone().list_deliveries(&owner.hook(hook_id), 10).await.unwrap();
    assert_eq!(fake.stats().tokens_minted, 1, "the installation token is cached and shared by clones");

    assert!(matches!(client.get_hook(&HookRef::App { app_id: None }).await.unwrap_err(), Error::Unsupported { .. }));

    let wrong_installation = AppCredentials { installation_id: Some(8), ..app };
    let error = client_with(&fake, Auth::App(wrong_installation)).list_hooks(&owner).await.unwrap_err();
    assert!(matches!(error, Error::AppCredentials { .. }), "{error}");
}

#[tokio::test]
async fn a_jwt_signed_with_the_wrong_key_is_an_app_credentials_error() {
    let fake = FakeGitHub::start().await;
    fake.add_app(42, include_str!("keys/app-test-key.pub.pem"), 7);
    let pem = include_str!("keys/other-test-key.pem");
    let app = AppCredentials { app_id: 42, private_key: Secret::new(pem), installation_id: Some(7) };
    let error =
        client_with(&fake, Auth::App(app)).list_deliveries(&HookRef::App { app_id: None }, 10).await.unwrap_err();
    assert!(matches!(error, Error::AppCredentials { .. }), "{error}");
    let text = all_text(&error);
    assert!(!text.contains("PRIVATE KEY") && !text.contains(&pem[40..80]), "{text}");
}

#[tokio::test]
async fn no_token_appears_in_debug_or_errors() {
    let (fake, client, hook, _) = setup().await;
    let debug = format!("{client:?}");
    assert!(!debug.contains(TOKEN), "{debug}");

    let mut errors = vec![client.get_delivery(&hook, 424_242).await.unwrap_err()];
    fake.faults().set_server_error_rate(1.0);
    errors.push(client.get_hook(&hook).await.unwrap_err());
    fake.faults().clear();
    fake.revoke_token(TOKEN);
    errors.push(client.get_hook(&hook).await.unwrap_err());
    for error in &errors {
        let text = all_text(error);
        assert!(!text.contains(TOKEN) && !text.contains(&TOKEN[4..]), "{text}");
    }
}

// A broken or hostile GitHub: every answer below comes from the fake's `Hostile` answers.

fn listed(listing: Listing) -> github::Page {
    match listing {
        Listing::Page(page) => page,
        Listing::NotModified => panic!("a first list answers a page"),
    }
}

#[tokio::test]
async fn a_link_loop_ends_the_scan_with_one_sentence_after_two_calls() {
    let (fake, client, hook, _) = setup().await;
    emit_pushes(&fake, 3).await;
    fake.faults().set_hostile(fake_github::Hostile::LinkLoop, None);
    let mut page = listed(client.list_deliveries(&hook, 1).await.unwrap());
    let error = loop {
        let next = page.next.take().expect("a looping list always links on");
        match client.next_deliveries(&next).await {
            Ok(next_page) => page = next_page,
            Err(error) => break error,
        }
    };
    assert!(matches!(error, Error::PagingLoop { pages: 2, .. }), "{error}");
    assert!(error.is_permanent());
    assert_eq!(error.to_string().lines().count(), 1, "{error}");
    assert_eq!(fake.stats().list_deliveries, 2, "the first page, and the link back to it once");

    // Paging back to a cutoff goes through the same check.
    let error = client.deliveries_since(&hook, chrono::DateTime::<chrono::Utc>::MIN_UTC).await.unwrap_err();
    assert!(matches!(error, Error::PagingLoop { .. }), "{error}");
}

#[tokio::test]
async fn a_list_that_never_ends_stops_at_the_page_cap() {
    let (fake, client, hook, _) = setup().await;
    emit_pushes(&fake, 2).await;
    // A thousand pages in a test: no secondary limit on either side, so pacing does not stretch it to minutes.
    fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: None });
    client.set_pace(github::Pace::under(1_000_000, github::SECONDARY_CONCURRENT));
    fake.faults().set_hostile(fake_github::Hostile::EndlessPages, None);
    let error = client.deliveries_since(&hook, chrono::DateTime::<chrono::Utc>::MIN_UTC).await.unwrap_err();
    assert!(matches!(error, Error::TooManyPages { limit: github::MAX_PAGES, .. }), "{error}");
    assert_eq!(fake.stats().list_deliveries, u64::from(github::MAX_PAGES));
}

#[tokio::test]
async fn an_endless_list_is_cut_at_the_cap_as_too_large() {
    let (fake, client, hook, _) = setup().await;
    emit_pushes(&fake, 1).await;
    fake.faults().set_hostile(fake_github::Hostile::EndlessList, Some(1));
    let error = client.list_deliveries(&hook, 100).await.unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: github::LIST_LIMIT, .. }), "{error}");
    assert!(error.is_permanent());
    // The next answer is GitHub's own again, and reads as usual.
    assert_eq!(listed(client.list_deliveries(&hook, 100).await.unwrap()).items.len(), 1);
}

#[tokio::test]
async fn a_delivery_declared_larger_than_the_cap_is_refused_unread() {
    let (fake, client, hook, _) = setup().await;
    let id = emit_pushes(&fake, 1).await[0];
    let bytes = 500 * 1024 * 1024;
    fake.faults().set_hostile(fake_github::Hostile::HugeDelivery { bytes }, Some(1));
    let error = client.get_delivery(&hook, id).await.unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: github::DELIVERY_LIMIT, .. }), "{error}");
    assert!(error.is_permanent(), "the relay skips it rather than asking forever");

    // Padding under the cap is read whole: the cap is not a limit on honest deliveries.
    fake.faults().set_hostile(fake_github::Hostile::HugeDelivery { bytes: 30 * 1024 * 1024 }, Some(1));
    let delivery = client.get_delivery(&hook, id).await.unwrap();
    assert_eq!(delivery.id, id);
}

#[tokio::test]
async fn a_malformed_list_item_is_skipped_and_the_rest_of_the_page_kept() {
    let (fake, client, hook, _) = setup().await;
    let pushes = emit_pushes(&fake, 2).await;
    let issue = fake.emit("octo/hello", "issues", json!({"action": "opened"})).await;
    fake.faults().set_hostile(fake_github::Hostile::MalformedItem { event: "issues".into() }, None);
    let page = listed(client.list_deliveries(&hook, 100).await.unwrap());
    let mut ids: Vec<u64> = page.items.iter().map(|item| item.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, pushes);
    assert_eq!(page.skipped.len(), 1, "{:?}", page.skipped);
    assert_eq!(page.skipped[0].id, Some(issue[0]), "{:?}", page.skipped);
    assert!(!page.skipped[0].reason.is_empty(), "the reason is given: {:?}", page.skipped);
}

#[tokio::test]
async fn a_304_to_a_list_without_a_validator_is_retried_not_read_as_empty() {
    let (fake, client, hook, _) = setup().await;
    emit_pushes(&fake, 2).await;
    fake.faults().set_hostile(fake_github::Hostile::SpuriousNotModified, Some(2));
    let page = client.newest_deliveries(&hook, 100).await.unwrap();
    assert_eq!(page.items.len(), 2, "the third answer is the real page");

    fake.faults().set_hostile(fake_github::Hostile::SpuriousNotModified, None);
    client.forget_etags(&hook);
    let error = client.list_deliveries(&hook, 100).await.unwrap_err();
    assert!(matches!(error, Error::Server { status: 304, .. }), "{error}");
    assert!(error.is_transient());
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_wait_is_announced_and_cut_to_the_window() {
    let (fake, client, hook, _) = setup().await;
    let client = client.with_retry_policy(RetryPolicy { max_rate_limit_wait: None, ..quick() });
    let mut waits = client.waits();
    fake.faults().exhaust_primary(Duration::from_secs(10 * 365 * 24 * 3600));
    let listing = tokio::spawn({
        let (client, hook) = (client.clone(), hook.clone());
        async move { client.list_deliveries(&hook, 100).await }
    });
    waits.changed().await.unwrap();
    let wait = waits.borrow_and_update().clone().expect("a wait is announced");
    let longest = chrono::Utc::now() + chrono::TimeDelta::seconds(3600 + 61);
    assert!(wait.until <= longest, "waits at most the window plus jitter, not ten years: {wait:?}");
    assert!(wait.reason.contains("rate limit"), "{wait:?}");
    listing.abort();
}

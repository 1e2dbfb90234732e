//! The rules' tests: every format, every refusal, and what a rule forwards.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn parses_urls_and_host_port() {
    assert_eq!(Target::parse("localhost:3000").unwrap().0.as_str(), "http://localhost:3000/");
    assert_eq!(Target::parse("127.0.0.1:8080/webhook").unwrap().0.as_str(), "http://127.0.0.1:8080/webhook");
    assert_eq!(Target::parse("[::1]:9000/x").unwrap().0.as_str(), "http://[::1]:9000/x");
    assert_eq!(Target::parse("https://example.com/hook").unwrap().0.as_str(), "https://example.com/hook");
    assert_eq!(Target::parse("http://localhost:3000/a?b=c").unwrap().0.as_str(), "http://localhost:3000/a?b=c");
}

#[test]
fn rejects_garbage_and_other_schemes() {
    for bad in [
        "",
        " ",
        "localhost",
        "ftp://example.com/",
        "file:///etc/passwd",
        "host:port",
        ":3000",
        "a b:1",
        "http://",
        "mailto:x@y",
    ] {
        assert!(matches!(Target::parse(bad), Err(Error::Target(_))), "{bad:?} should be rejected");
    }
}

#[test]
fn parses_the_seed_rule_format() {
    let rule = Rule::from_json_with_env(
        r#"{"from":["org1/repo1","org2"],"to":"http://localhost:3000/","hook":{"config":{"url":"https://bh.example/"},"events":["check_run","push"]}}"#,
        no_env,
    )
    .unwrap();
    assert_eq!(
        rule.sources,
        vec![
            Source::Owner(Owner::Repo { owner: "org1".into(), repo: "repo1".into() }),
            Source::Owner(Owner::Org { org: "org2".into() })
        ]
    );
    assert_eq!(rule.target.0.as_str(), "http://localhost:3000/");
    assert_eq!(rule.hook_url.as_deref(), Some("https://bh.example/"));
    assert_eq!(rule.events, ["check_run", "push"]);
    assert!(rule.secret.is_none());
}

#[test]
fn reads_the_secret_from_the_named_env_var() {
    let env = |name: &str| (name == "MY_SECRET").then(|| "s3cr3t".to_string());
    let rule =
        Rule::from_json_with_env(r#"{"from":["o/r"],"to":"localhost:1","secret_env":"MY_SECRET"}"#, env).unwrap();
    assert_eq!(rule.secret.unwrap().expose(), "s3cr3t");
    let err = Rule::from_json_with_env(r#"{"from":["o/r"],"to":"localhost:1","secret_env":"NOPE"}"#, env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`NOPE`"), "{err}");
}

#[test]
fn reads_the_stream_token_and_hook_secret_from_named_env_vars() {
    let env = |name: &str| match name {
        "BH_TOKEN" => Some("tok".to_string()),
        "UPSTREAM" => Some("up".to_string()),
        _ => None,
    };
    let rule = Rule::from_toml_with_env(
        "[[rule]]\nfrom=[\"o/r\"]\nto=\"localhost:1\"\nstream_token_env=\"BH_TOKEN\"\nhook_secret_env=\"UPSTREAM\"\n",
        env,
    )
    .unwrap()
    .remove(0);
    assert_eq!(rule.stream_token.unwrap().expose(), "tok");
    assert_eq!(rule.hook_secret.unwrap().expose(), "up");
    let err = Rule::from_json_with_env(r#"{"from":["o/r"],"to":"localhost:1","stream_token_env":"NOPE"}"#, env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`stream_token_env` names `NOPE`"), "{err}");
}

#[test]
fn the_ledger_of_a_config_file_is_read_from_its_top() {
    let text = "ledger = \"redis://redis:6379/0\"\n[[rule]]\nfrom = [\"o/r\"]\nto = \"localhost:1\"\n";
    assert_eq!(Rule::ledger_in_toml(text).unwrap().as_deref(), Some("redis://redis:6379/0"));
    assert_eq!(Rule::from_toml_with_env(text, no_env).unwrap().len(), 1, "the rules load beside it");
    assert_eq!(Rule::ledger_in_toml("[[rule]]\nfrom = [\"o/r\"]\nto = \"x:1\"\n").unwrap(), None);
    assert!(Rule::ledger_in_toml("ledger = 5\n").is_err(), "a ledger that is not a string is a bad rule file");
}

#[test]
fn app_is_an_explicit_field() {
    let rule = Rule::from_json_with_env(r#"{"app":true,"to":"localhost:1"}"#, no_env).unwrap();
    assert_eq!(rule.sources, vec![Source::App]);
    // An organization may be called `app`; it stays an organization.
    let rule = Rule::from_json_with_env(r#"{"from":["app"],"to":"localhost:1"}"#, no_env).unwrap();
    assert_eq!(rule.sources, vec![Source::Owner(Owner::Org { org: "app".into() })]);
}

#[test]
fn malformed_rules_get_one_clear_sentence() {
    let cases = [
        (r#"{"from":["o/r"]}"#, "missing field `to`"),
        (r#"{"from":["o/r"],"to":"localhost:1","form":1}"#, "unknown field `form`"),
        (r#"{"from":["a/b/c"],"to":"localhost:1"}"#, "`from` entry `a/b/c`"),
        (r#"{"from":[],"to":"localhost:1"}"#, "names no repository"),
        (r#"{"from":["o/r"],"to":"gopher://x"}"#, "`to` is `gopher://x`"),
        (r#"{"from":["o/r"],"to":"localhost:1","secret":"x"}"#, "secret_env"),
        (r#"{"from":["o/r"],"to":"localhost:1","hook":{"config":{"url":"nope"}}}"#, "hook URL `nope`"),
        (r#"{"from":"o/r","to":"localhost:1"}"#, "invalid type"),
        (r#"{"from":["o/r"],"#, "not valid JSON"),
    ];
    for (text, expected) in cases {
        let err = Rule::from_json_with_env(text, no_env).unwrap_err();
        assert!(matches!(err, Error::Rule(_)), "{text}: {err:?}");
        let message = err.to_string();
        assert!(message.contains(expected), "{text}: {message}");
        assert!(!message.contains('\n'), "{text}: {message}");
    }
}

#[test]
fn parses_many_rules_from_toml() {
    let env = |name: &str| (name == "S").then(|| "x".to_string());
    let rules = Rule::from_toml_with_env(
        r#"
        [[rule]]
        from = ["o/r", "org"]
        to = "localhost:3000/hook"
        hook_url = "https://bh.example/"
        events = ["push"]
        secret_env = "S"

        [[rule]]
        app = true
        to = "http://127.0.0.1:4000/"
        "#,
        env,
    )
    .unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].sources.len(), 2);
    assert_eq!(rules[0].hook_url.as_deref(), Some("https://bh.example/"));
    assert!(rules[0].secret.is_some());
    assert_eq!(rules[1].sources, vec![Source::App]);
}

#[test]
fn malformed_toml_names_the_rule_and_field() {
    let err = Rule::from_toml_with_env("[[rule]]\nfrom=[\"o/r\"]\nto=\"localhost:1\"\nhookurl=\"x\"\n", no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `hookurl`"), "{err}");
    let err =
        Rule::from_toml_with_env("[[rule]]\nfrom=[\"o/r\"]\nto=\"nope\"\n[[rule]]\n", no_env).unwrap_err().to_string();
    // The second [[rule]] (line 4) lacks `to`: the file fails to parse there, before any rule is checked.
    assert_eq!(err, "invalid rule: missing field `to` (line 4)");
    let err = Rule::from_toml_with_env("", no_env).unwrap_err().to_string();
    assert!(err.contains("no [[rule]]"), "{err}");
}

#[test]
fn a_rules_events_filter_what_is_forwarded_and_name_what_a_hook_lacks() {
    let mut rule =
        Rule::from_json(r#"{"from":["o/r"],"to":"http://localhost:3000/","hook":{"events":["push","check_run"]}}"#)
            .unwrap();
    assert!(rule.wants_event("push") && rule.wants_event("check_run") && !rule.wants_event("issues"));
    let hook = |events: &[&str]| events.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    assert_eq!(rule.missing_events(&hook(&["push"])), ["check_run"]);
    assert!(rule.missing_events(&hook(&["*"])).is_empty());
    assert!(rule.missing_events(&[]).is_empty(), "the App's hook lists none");
    rule.events = vec!["push".into(), "ping".into()];
    assert!(rule.wants_event("ping") && !rule.wants_event("issues"), "the creation ping is filtered like any event");
    assert!(rule.missing_events(&hook(&["push"])).is_empty(), "GitHub pings every hook it makes");
    rule.events = vec!["*".into()];
    assert!(rule.wants_event("issues"));
    assert!(rule.missing_events(&hook(&["push"])).is_empty(), "`*` asks for nothing in particular");
}

fn item(event: &str, action: Option<&str>, installation: Option<u64>) -> DeliveryItem {
    serde_json::from_value(serde_json::json!({"id": 1, "guid": "g", "delivered_at": "2026-12-01T00:00:00Z",
        "redelivery": false, "duration": 0.1, "status": "OK", "status_code": 200, "event": event,
        "action": action, "installation_id": installation, "repository_id": 9}))
    .unwrap()
}

#[test]
fn actions_and_installations_filter_on_the_list_item() {
    let toml = r#"
        [[rule]]
        app = true
        to = "localhost:3000"
        events = ["pull_request", "push"]
        actions = ["opened", "reopened"]
        installations = [7]
        repositories = ["acme/widgets"]
    "#;
    let rule = Rule::from_toml_with_env(toml, no_env).unwrap().remove(0);
    assert_eq!(rule.repositories, [Owner::parse("acme/widgets").unwrap()]);
    let app = |item: &DeliveryItem| rule.wants_from_app(item, &[9]);
    assert!(app(&item("pull_request", Some("opened"), Some(7))));
    assert!(app(&item("pull_request", Some("reopened"), Some(7))));
    assert!(!app(&item("pull_request", Some("closed"), Some(7))), "another action");
    assert!(!app(&item("push", None, Some(7))), "no action is not one of the actions asked");
    assert!(!app(&item("pull_request", Some("opened"), Some(8))), "another installation");
    assert!(!app(&item("pull_request", Some("opened"), None)));
    assert!(!app(&item("issues", Some("opened"), Some(7))), "another event");
    assert!(!rule.wants_from_app(&item("pull_request", Some("opened"), Some(7)), &[10]), "another repository");

    let json = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000","actions":["opened"]}"#).unwrap();
    assert!(json.wants(&item("issues", Some("opened"), None)) && !json.wants(&item("issues", Some("closed"), None)));
    let every = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000"}"#).unwrap();
    assert!(every.wants(&item("push", None, None)) && every.wants(&item("issues", Some("closed"), Some(3))));
}

#[test]
fn installation_and_repository_filters_need_the_app_hook() {
    let err = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000","installations":[7]}"#).unwrap_err();
    assert!(err.to_string().contains("need `app = true`"), "{err}");
    let err = Rule::from_json(r#"{"app":true,"to":"localhost:3000","repositories":["nope"]}"#).unwrap_err();
    assert!(err.to_string().contains("`repositories` entry `nope` is not OWNER/REPO"), "{err}");
    let err = Rule::from_json(r#"{"from":["o/r"],"to":"localhost:3000","actions":[""]}"#).unwrap_err();
    assert!(err.to_string().contains("not an action name"), "{err}");
}

#[test]
fn a_rule_fans_out_to_each_target_with_its_own_filter_and_secret() {
    let env = |name: &str| (name == "B_SECRET").then(|| "b-secret".to_string());
    let text = r#"
        [[rule]]
        from = ["o/r"]
        filter = '$event == "push"'
        to = ["localhost:1", { url = "localhost:2", filter = '.action == "opened"', secret_env = "B_SECRET" }, "localhost:3"]
    "#;
    let rules = Rule::from_toml_with_env(text, env).unwrap();
    let routes = rules[0].routes();
    let urls: Vec<&str> = routes.iter().map(|route| route.target.0.as_str()).collect();
    assert_eq!(urls, ["http://localhost:1/", "http://localhost:2/", "http://localhost:3/"]);
    let filters: Vec<Option<&str>> = routes.iter().map(|route| route.filter.as_ref().map(Filter::expr)).collect();
    // A target's own filter, else the rule's.
    assert_eq!(filters, [Some(r#"$event == "push""#), Some(r#".action == "opened""#), Some(r#"$event == "push""#)]);
    let secrets: Vec<bool> = routes.iter().map(|route| route.secret.is_some()).collect();
    assert_eq!(secrets, [false, true, false]);
    // One target is the rule of old.
    let one = Rule::from_json_with_env(r#"{"from":["o/r"],"to":"localhost:1"}"#, no_env).unwrap();
    assert_eq!(one.routes().len(), 1);
}

#[test]
fn a_bad_target_list_gets_one_clear_sentence() {
    let cases = [
        (r#"{"from":["o/r"],"to":[]}"#, "`to` lists no target"),
        (r#"{"from":["o/r"],"to":["localhost:1","localhost:1"]}"#, "names `localhost:1` twice"),
        (r#"{"from":["o/r"],"to":["localhost:1",{"url":"nope"}]}"#, "`to` is `nope`"),
        (r#"{"from":["o/r"],"to":[{"url":"localhost:2","filter":".a =="}]}"#, "at column 6"),
        (r#"{"from":["o/r"],"to":[{"url":"localhost:2","secret_env":"NOPE"}]}"#, "`NOPE`, which is not set"),
        (r#"{"from":["o/r"],"to":[{"url":"localhost:2","secret":"x"}]}"#, "`to` must be a target URL"),
        (r#"{"from":["o/r"],"to":"localhost:1","filter":"nosuch"}"#, "undefined filter nosuch/0 at column 1"),
    ];
    for (text, expected) in cases {
        let err = Rule::from_json_with_env(text, no_env).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(expected), "{text}: {message}");
        assert!(!message.contains('\n'), "{text}: {message}");
    }
}

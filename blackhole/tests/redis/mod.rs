//! `--redis`: two blackhole instances on one real `redis-server` share every path's stream.

use super::*;
use testkit::RedisServer;

/// The password the Redis of these tests asks for, which must appear in no output.
const PASSWORD: &str = "s3cret-redis-pw";

/// A blackhole streaming through `redis` with extra flags.
fn instance(redis: &str, extra: &[&str]) -> Server {
    Server::start(&[&["--stream-token", TOKEN, "--redis", redis], extra].concat())
}

/// The URL of `redis` with the test password.
fn with_password(redis: &RedisServer) -> String {
    format!("redis://:{PASSWORD}@{}/0", redis.addr())
}

/// Makes `redis` ask for the test password (set at run time: a restart forgets it).
fn require_password(redis: &RedisServer) {
    let reply = redis.command(&format!("CONFIG SET requirepass {PASSWORD}"));
    assert!(reply.as_deref().is_some_and(|reply| reply.starts_with("+OK")), "{reply:?}");
}

#[test]
fn a_post_to_one_instance_reaches_a_subscriber_on_another_and_resumes_there() {
    let redis = RedisServer::start();
    let (a, b) = (instance(&redis.url(), &[]), instance(&redis.url(), &[]));
    let on_b = Subscriber::open(&b, "/alice", TOKEN, None);
    let on_a = Subscriber::open(&a, "/alice", TOKEN, None);
    assert_eq!(on_a.hello()["boot"], on_b.hello()["boot"], "one stream, one boot");
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let headers = [
        "X-GitHub-Event: push",
        "X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256: sha256=abc",
        "Content-Type: application/json",
        "User-Agent: GitHub-Hookshot/044aadd",
        "Authorization: Bearer not-for-subscribers",
    ];
    assert_ok(&post(&a, "/alice", &headers, &body));
    assert_ok(&post(&b, "/bob", &[], b"not alice's"));
    let delivered = on_b.wait_events(2)[1].clone();
    assert_eq!(decode_body(&delivered), body);
    let sent = &delivered.json()["headers"];
    assert_eq!(sent["x-github-event"], "push");
    assert_eq!(sent["x-github-delivery"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(sent["x-hub-signature-256"], "sha256=abc");
    assert_eq!(sent["content-type"], "application/json");
    assert_eq!(sent["user-agent"], "GitHub-Hookshot/044aadd");
    assert_eq!(sent.as_object().unwrap().len(), 5, "{sent}");
    // The same POST has the same id on every instance: what replicas claim it by.
    let seen = on_a.wait_events(2)[1].clone();
    assert_eq!((seen.id.clone(), seen.data.clone()), (delivered.id.clone(), delivered.data.clone()));
    drop((on_a, on_b));

    // The id taken from A resumes on B with exactly what came after, posted to either.
    assert_ok(&post(&b, "/alice", &[], b"two"));
    assert_ok(&post(&a, "/alice", &[], b"three"));
    let resumed = Subscriber::open(&b, "/alice", TOKEN, seen.id.as_deref());
    assert_eq!(resumed.hello()["resumed"], true);
    resumed.wait_events(3);
    std::thread::sleep(Duration::from_millis(200));
    let bodies: Vec<Vec<u8>> = resumed.deliveries().iter().map(decode_body).collect();
    assert_eq!(bodies, vec![b"two".to_vec(), b"three".to_vec()]);
}

#[test]
fn the_shared_stream_is_trimmed_by_count_and_bytes_and_a_lost_stream_gets_gap() {
    let redis = RedisServer::start();
    let bounds = ["--stream-buffer-count", "2", "--stream-buffer-bytes", "4000"];
    let (a, b) = (instance(&redis.url(), &bounds), instance(&redis.url(), &bounds));
    let first = Subscriber::open(&a, "/count", TOKEN, None);
    for body in ["1", "2", "3", "4"] {
        assert_ok(&post(&a, "/count", &[], body.as_bytes()));
    }
    let ids: Vec<String> = first.wait_events(5)[1..].iter().map(|event| event.id.clone().unwrap()).collect();
    // Count: two are kept, so after the first the second is missing: not a resume (hookfwd asks the API).
    assert_eq!(Subscriber::open(&b, "/count", TOKEN, Some(&ids[0])).hello()["resumed"], false);
    // After the second, all that followed is kept, though the second itself is gone.
    let resumed = Subscriber::open(&b, "/count", TOKEN, Some(&ids[1]));
    assert_eq!(resumed.hello()["resumed"], true);
    let bodies: Vec<Vec<u8>> = resumed.wait_events(3)[1..].iter().map(decode_body).collect();
    assert_eq!(bodies, vec![b"3".to_vec(), b"4".to_vec()]);
    // Bytes: 1500-byte bodies in 4000 bytes: two are kept.
    for _ in 0..3 {
        assert_ok(&post(&b, "/bytes", &[], &[b'x'; 1500]));
    }
    assert_eq!(redis.command("XLEN blackhole:{/bytes}:stream").as_deref(), Some(":2\r\n"));

    // Redis lost everything (a restart without persistence): a subscriber that was following gets `gap`.
    assert_eq!(redis.command("FLUSHALL").as_deref(), Some("+OK\r\n"));
    assert_ok(&post(&b, "/count", &[], b"after the loss"));
    first.wait_ended(Duration::from_secs(10));
    let last = first.events.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.kind, "gap", "{:?}", first.events.lock().unwrap());
}

#[test]
fn the_shared_stream_is_trimmed_by_age_and_expires_when_quiet() {
    let redis = RedisServer::start();
    let a = instance(&redis.url(), &["--stream-buffer-age", "1s"]);
    assert_ok(&post(&a, "/age", &[], b"old"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_ok(&post(&a, "/age", &[], b"new"));
    assert_eq!(redis.command("XLEN blackhole:{/age}:stream").as_deref(), Some(":1\r\n"));
    assert_eq!(redis.command("LLEN blackhole:{/age}:index").as_deref(), Some(":1\r\n"));
    // A quiet path's deliveries leave Redis with the age: the keys expire.
    let ttl = redis.command("PTTL blackhole:{/age}:stream").unwrap();
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    assert!((1..=1000).contains(&ttl), "{ttl}");
}

#[test]
fn while_redis_is_down_posts_get_503_said_once_and_streaming_resumes_when_it_is_back() {
    let mut redis = RedisServer::start_persistent();
    require_password(&redis);
    let url = with_password(&redis);
    // Given in the environment, as a deployment would (so not on the command line).
    let start = |extra: &[&str]| {
        let args = [&["--listen", "127.0.0.1:0", "--stream-token", TOKEN], extra].concat();
        Server::spawn(&args, &[("BLACKHOLE_REDIS_URL", url.as_str())])
    };
    let (a, b) = (start(&["--log-requests"]), start(&[]));
    let subscriber = Subscriber::open(&b, "/alice", TOKEN, None);
    assert_ok(&post(&a, "/alice", &[], b"before"));
    subscriber.wait_events(2);

    redis.stop();
    for _ in 0..3 {
        let response = post(&a, "/alice", &[], b"refused");
        assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
    }
    let said = |server: &Server| server.log_text().matches("cannot append to Redis").count();
    assert_eq!(said(&a), 1, "{}", a.log_text());

    redis.restart();
    require_password(&redis);
    // Back by itself: the next POSTs that Redis takes are answered 200 and reach the open stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !post(&a, "/alice", &[], b"after").starts_with("HTTP/1.1 200 ") {
        assert!(Instant::now() < deadline, "POSTs never got 200 again: {}", a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = subscriber.wait_events(3);
    assert_eq!(decode_body(&events[2]), b"after", "{events:?}");
    assert!(events.iter().all(|event| event.kind != "gap"), "{events:?}");
    assert!(a.log_text().contains("Redis takes deliveries again"), "{}", a.log_text());
    for server in [&a, &b] {
        assert!(!server.log_text().contains(PASSWORD), "{}", server.log_text());
    }
    assert!(a.log_text().contains("redis://:***@"), "{}", a.log_text());
}

#[test]
fn a_bad_redis_url_gets_one_sentence_with_no_password_and_exit_2() {
    for url in ["http://:s3cret@127.0.0.1:6379", "redis://:s3cret@127.0.0.1:notaport", "s3cret@host"] {
        let output = Command::new(env!("CARGO_BIN_EXE_blackhole"))
            .args(["--listen", "127.0.0.1:0", "--stream-token", TOKEN, "--redis", url])
            .stdin(Stdio::null())
            .output()
            .expect("run blackhole");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{url}: {stderr}");
        assert!(stderr.starts_with("blackhole: --redis "), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{url}: {stderr}");
    }
}

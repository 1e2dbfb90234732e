//! A small W3C WebDriver client over `chromedriver` and headless Chromium (Debian's `chromium` and
//! `chromium-driver`), for the inspector's browser tests. Just the calls those tests make.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::Guard;

/// A browser session; the browser and its driver are killed when dropped.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    _driver: Guard,
}

/// The WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts `chromedriver` on a free port and a headless Chromium session.
    ///
    /// Panics with what to install when either is missing: the browser tests must fail, not skip.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("could not start chromedriver ({error}); install Debian's chromium and chromium-driver")
            });
        let driver = Guard(driver);
        let base = format!("http://127.0.0.1:{port}");
        let http = crate::http();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let binary = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .unwrap_or("chromium");
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--no-first-run", "--no-default-browser-check"]}}}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        let id =
            answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {answer}")).to_string();
        Self { http, session: format!("{base}/session/{id}"), _driver: driver }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.expect("chromedriver answers").json().await.expect("JSON");
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// Runs `script` (a function body) with `args`, and returns what it returns.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let answer: Value = self
            .http
            .post(format!("{}/element", self.session))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON");
        answer["value"][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits up to 20 s for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(Instant::now() < deadline, "no `{css}` on the page within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An element's visible text.
    pub async fn text(&self, element: &str) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await.as_str().unwrap_or("").into()
    }

    /// Clicks an element.
    pub async fn click(&self, element: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    /// Types into an element.
    pub async fn send_keys(&self, element: &str, text: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    /// Ends the session, so that Chromium exits before its driver is killed.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }

    /// Saves a PNG screenshot of the page at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default()).expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("screenshot written");
    }
}

//! A Model Context Protocol client for `hookfwd mcp`, as agents' clients are: the real binary as a child
//! process, newline-delimited JSON-RPC on its stdin and stdout.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long one answer may take, however busy the machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `hookfwd mcp`, initialized; killed when dropped.
pub struct McpClient {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Each stdout line, as it comes.
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stdout line so far, to check that nothing but JSON-RPC was written there.
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    /// Answers read while waiting for another, by id.
    early: HashMap<u64, Value>,
    next: u64,
}

/// What the finished process left.
pub struct Ended {
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Every stdout line.
    pub stdout: Vec<String>,
    /// Everything on stderr.
    pub stderr: String,
}

impl McpClient {
    /// Starts `hookfwd ARGS` in a clean environment (`PATH` and `env`) and initializes the session.
    pub async fn start<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(crate::hookfwd())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("hookfwd starts");
        let (sender, lines) = mpsc::unbounded_channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (all, out) = (stdout.clone(), child.stdout.take().expect("piped stdout"));
        tokio::spawn(async move {
            let mut out = BufReader::new(out).lines();
            while let Ok(Some(line)) = out.next_line().await {
                all.lock().expect("stdout lock").push(line.clone());
                let _ = sender.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (text, mut err) = (stderr.clone(), child.stderr.take().expect("piped stderr"));
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buffer).await {
                text.lock().expect("stderr lock").push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let stdin = child.stdin.take();
        let mut client = Self { child, stdin, lines, stdout, stderr, early: HashMap::new(), next: 1 };
        let hello = json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hookfwd-e2e", "version": "1"}});
        let answer = client.request("initialize", hello).await;
        assert_eq!(answer["result"]["serverInfo"]["name"], "hookfwd", "{answer}");
        client.notify("notifications/initialized", json!({})).await;
        client
    }

    /// Sends a request and returns its id, without waiting for the answer.
    pub async fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next;
        self.next += 1;
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        id
    }

    /// The answer to request `id`: the whole JSON-RPC message.
    pub async fn answer(&mut self, id: u64) -> Value {
        loop {
            if let Some(answer) = self.early.remove(&id) {
                return answer;
            }
            let line = match tokio::time::timeout(PATIENCE, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!("hookfwd mcp closed stdout; stderr: {}", self.stderr()),
                Err(_) => panic!("no answer to request {id} in {PATIENCE:?}; stderr: {}", self.stderr()),
            };
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON on stdout: {line}"));
            if let Some(answered) = message["id"].as_u64().filter(|_| message.get("method").is_none()) {
                self.early.insert(answered, message);
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params).await;
        self.answer(id).await
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) {
        self.write(json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    /// Calls a tool and waits: its `result` (`content`, `isError`).
    pub async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let id = self.call_later(tool, arguments).await;
        self.result(id).await
    }

    /// Calls a tool without waiting; [`McpClient::result`] waits.
    pub async fn call_later(&mut self, tool: &str, arguments: Value) -> u64 {
        self.send("tools/call", json!({"name": tool, "arguments": arguments})).await
    }

    /// The `result` of tool call `id`; a JSON-RPC error fails the test.
    pub async fn result(&mut self, id: u64) -> Value {
        let answer = self.answer(id).await;
        assert!(answer.get("error").is_none(), "a JSON-RPC error, not a tool result: {answer}");
        answer["result"].clone()
    }

    /// Calls a tool that must succeed, and parses the JSON text it returns.
    pub async fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments.clone()).await;
        parse_ok(tool, &result)
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Closes stdin, as a client does when it is done, and waits for the process to exit.
    pub async fn finish(mut self) -> Ended {
        drop(self.stdin.take());
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await;
        let status = status.unwrap_or_else(|_| panic!("hookfwd mcp did not exit; stderr: {}", self.stderr()));
        // The readers reach the end of the pipes once the process is gone.
        let stdout = crate::eventually("stdout read to its end", async || {
            self.lines.is_closed().then(|| self.stdout.lock().expect("stdout lock").clone())
        })
        .await;
        Ended { code: status.expect("wait for hookfwd").code(), stdout, stderr: self.stderr() }
    }

    async fn write(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{message}\n").as_bytes()).await.expect("write to hookfwd mcp");
        stdin.flush().await.expect("flush");
    }
}

/// The JSON text a successful tool `result` holds.
pub fn parse_ok(tool: &str, result: &Value) -> Value {
    assert_ne!(result["isError"], true, "{tool} failed: {result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{tool}: no text: {result}"));
    serde_json::from_str(text).unwrap_or_else(|_| panic!("{tool}: not JSON: {text}"))
}

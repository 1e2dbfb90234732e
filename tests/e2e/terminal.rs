//! Screens that need a terminal, through a pseudo-terminal against the fake GitHub: the status line drawn,
//! fitted to a narrow terminal and cleared, and Ctrl-C's one summary line. A `vt100` screen reads what
//! hookfwd drew, as a user would see it.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Account, Recorder, eventually};
use fake_github::FakeGitHub;
use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

const TOKEN: &str = "ghp_e2eTerminalTokenNeverPrinted000001";
const REPO: &str = "octo-org/terminal";
const ACCOUNT: Account = Account { token: TOKEN, secret: "terminal-local-secret", repo: REPO };
/// Enough rows that nothing in these tests scrolls off the screen.
const ROWS: u16 = 60;

/// `hookfwd` on a pseudo-terminal of `columns` columns, its screen kept up to date; killed when dropped.
struct Terminal {
    child: Box<dyn Child + Send + Sync>,
    screen: Arc<Mutex<vt100::Parser>>,
    keys: Box<dyn Write + Send>,
    /// Kept open for as long as the child runs: closing it hangs the terminal up.
    _master: Box<dyn MasterPty + Send>,
}

impl Terminal {
    fn start(columns: u16, args: &[&str]) -> Self {
        let pair = native_pty_system()
            .openpty(PtySize { rows: ROWS, cols: columns, pixel_width: 0, pixel_height: 0 })
            .expect("a pseudo-terminal");
        let mut command = CommandBuilder::new(e2e::hookfwd());
        command.args(args);
        command.env_clear();
        command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        command.env("TERM", "xterm-256color");
        command.env("GITHUB_TOKEN", TOKEN);
        command.env("HOOKFWD_SECRET", ACCOUNT.secret);
        let child = pair.slave.spawn_command(command).expect("hookfwd starts");
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, columns, 0)));
        let mut output = pair.master.try_clone_reader().expect("the terminal's output");
        let drawn = screen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = output.read(&mut buffer) {
                drawn.lock().expect("screen lock").process(&buffer[..n]);
            }
        });
        let keys = pair.master.take_writer().expect("the terminal's input");
        Self { child, screen, keys, _master: pair.master }
    }

    /// The screen's rows, trailing blanks trimmed.
    fn rows(&self) -> Vec<String> {
        let parser = self.screen.lock().expect("screen lock");
        let (_, columns) = parser.screen().size();
        parser.screen().rows(0, columns).map(|row| row.trim_end().to_string()).collect()
    }

    /// The screen's lines as written: a row the terminal wrapped joins the next one.
    fn lines(&self) -> Vec<String> {
        let parser = self.screen.lock().expect("screen lock");
        let (_, columns) = parser.screen().size();
        let mut lines = vec![String::new()];
        for (index, row) in parser.screen().rows(0, columns).enumerate() {
            let last = lines.last_mut().expect("a line");
            last.push_str(&row);
            if !parser.screen().row_wrapped(index as u16) {
                *last = last.trim_end().to_string();
                lines.push(String::new());
            }
        }
        lines.retain(|line| !line.is_empty());
        lines
    }

    /// Waits until a row satisfies `check`, and returns that row.
    async fn row(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        eventually(format!("{what} on the screen"), async || self.rows().into_iter().find(|row| check(row))).await
    }

    /// Presses Ctrl-C: the terminal sends SIGINT, as it would for a user.
    fn ctrl_c(&mut self) {
        self.keys.write_all(b"\x03").and_then(|()| self.keys.flush()).expect("a key press");
    }

    /// Waits for hookfwd to exit and returns its exit code.
    async fn exit_code(&mut self) -> u32 {
        let deadline = Instant::now() + testkit::PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.exit_code();
            }
            assert!(Instant::now() < deadline, "hookfwd did not exit; screen: {:#?}", self.rows());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A handler address nothing listens on: every attempt is refused.
fn closed_handler() -> String {
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/webhook", down.local_addr().unwrap())
}

fn dev_args(fake: &FakeGitHub, to: &str, state: &std::path::Path) -> Vec<String> {
    let state = state.to_str().unwrap();
    let api = fake.api_url().to_string();
    let hook_url = fake.blackhole_url();
    ["dev", "--repo", REPO, "--to", to, "--hook-url", &hook_url, "--api-url", &api, "--interval", "100ms"]
        .into_iter()
        .chain(["--state-dir", state, "--no-inspect"])
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_line_is_drawn_and_ctrl_c_clears_it_with_one_summary_line() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let args = dev_args(&fake, &handler.url(), state.path());
    let mut terminal = Terminal::start(120, &args.iter().map(String::as_str).collect::<Vec<_>>());
    terminal.row("the Ready line", |row| row.starts_with("Ready! Forwarding")).await;
    let status = terminal.row("the status line", |row| row.contains("polling · last poll")).await;
    assert!(!status.contains("Ready"), "the status line is a line of its own: {status}");
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    terminal.row("the answer", |row| row.contains("<-- [200]")).await;

    terminal.ctrl_c();
    assert_eq!(terminal.exit_code().await, 0, "{:#?}", terminal.rows());
    // A thread of its own reads the screen, maybe behind the exit: the summary is the last thing written.
    terminal.row("the summary line", |row| row.starts_with("Stopped:")).await;
    let rows = terminal.rows();
    let stopped: Vec<&String> = rows.iter().filter(|row| row.starts_with("Stopped:")).collect();
    assert_eq!(stopped, ["Stopped: 1 delivery forwarded; nothing is waiting."], "{rows:#?}");
    assert!(!rows.iter().any(|row| row.contains("last poll")), "the status line was left behind: {rows:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_line_fits_a_narrow_terminal_without_cutting_a_word() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    // A handler that is down makes the longest status: why, when it is retried, what waits, the last poll.
    let to = closed_handler();
    let state = tempfile::tempdir().unwrap();
    let args = dev_args(&fake, &to, state.path());
    let terminal = Terminal::start(60, &args.iter().map(String::as_str).collect::<Vec<_>>());
    terminal.row("the Ready line", |row| row.starts_with("Ready! Forwarding")).await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    // Once a poll has counted what waits, the status is too wide for 60 columns: whole trailing parts are
    // dropped, and `…` says so (a cut word would run to the edge instead, and wrap).
    let status =
        terminal.row("the fitted status line", |row| row.contains("handler unreachable") && row.ends_with(" …")).await;
    assert!(status.chars().count() < 60, "{status}");
    let rows = terminal.rows();
    let at = rows.iter().position(|row| *row == status).unwrap();
    let next = rows.get(at + 1).map(String::as_str).unwrap_or_default();
    assert!(next.is_empty(), "the status line wrapped onto the next row: {rows:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_no_selector_on_a_terminal_asks_naming_how_many_it_would_send() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    for n in 0..2 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let (to, api, hook_url) = (handler.url(), fake.api_url().to_string(), fake.blackhole_url());
    let args = ["replay", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--api-url", &api];
    for (answer, code, sent) in [("n", 1, 0), ("y", 0, 2)] {
        let mut terminal = Terminal::start(200, &args);
        let question = format!("send 2 deliveries of the last 24h to {to} again? [y/N]");
        terminal.row("the question", |row| row == question).await;
        terminal.keys.write_all(format!("{answer}\r").as_bytes()).and_then(|()| terminal.keys.flush()).unwrap();
        assert_eq!(terminal.exit_code().await, code, "{answer}: {:#?}", terminal.rows());
        assert_eq!(handler.received().len(), sent, "after {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_delivery_keeps_one_line_updated_in_place_and_the_status_line_counts_down() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let state = tempfile::tempdir().unwrap();
    let args = dev_args(&fake, &closed_handler(), state.path());
    let terminal = Terminal::start(120, &args.iter().map(String::as_str).collect::<Vec<_>>());
    terminal.row("the Ready line", |row| row.starts_with("Ready! Forwarding")).await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    terminal.row("the fourth attempt's retry", |row| row.contains("connection refused, retry 4 in")).await;
    let rows = terminal.rows();
    let retries: Vec<&String> = rows.iter().filter(|row| row.contains(", retry ")).collect();
    assert_eq!(retries.len(), 1, "one line for the delivery's retry state: {rows:#?}");
    // The status line counts the wait down, and says what `r` does (stdin is the terminal).
    for second in ["2s", "1s"] {
        let status =
            terminal.row(&format!("{second} to go"), |row| row.contains(&format!("retrying in {second}"))).await;
        assert!(status.contains("handler unreachable (connection refused), retrying in"), "{status}");
        assert!(status.contains(" · r: retry now · "), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_60_columns_a_parked_delivery_takes_two_lines() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    handler.answer_with(500, r#"{"error":"no such user: ghost"}"#);
    let state = tempfile::tempdir().unwrap();
    let args = dev_args(&fake, &handler.url(), state.path());
    let terminal = Terminal::start(60, &args.iter().map(String::as_str).collect::<Vec<_>>());
    terminal.row("the Ready line", |row| row.starts_with("Ready! Forwarding")).await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let parked = eventually("the parked line", async || {
        terminal.lines().into_iter().find(|line| line.contains(" parked after 3 attempts"))
    })
    .await;
    assert!(parked.contains(r#"(500 {"error":"no such user: ghost"})"#), "{parked}");
    // The delivery's `-->` line, and its retry state: three answers and two retries, replaced in place.
    let lines = terminal.lines();
    // Feed lines start with their time; the status line (which names the event while it retries) does not.
    let feed = |line: &&String| line.starts_with(|c: char| c.is_ascii_digit());
    let delivery: Vec<&String> = lines.iter().filter(feed).filter(|line| line.contains("issues.opened")).collect();
    assert_eq!(delivery.len(), 2, "{lines:#?}");
    assert!(delivery[0].contains("--> issues.opened"), "{lines:#?}");
    assert!(!lines.iter().any(|line| line.contains("<-- [500]") || line.contains(", retry ")), "{lines:#?}");
}

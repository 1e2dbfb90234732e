//! The terminal: stdout and stderr lines that do not garble the live status line, logging, and escaping.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::ProgressStyle;
use tracing::Span;
use tracing_indicatif::IndicatifLayer;
use tracing_indicatif::span_ext::IndicatifSpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::args::OutputArgs;

/// The live status line on stderr; absent when stderr is not a terminal, or with `--json` or `-q`.
#[derive(Clone)]
pub struct Status(Option<Span>);

impl Status {
    /// Clears the status line (a finished progress bar included), leaving no stale copy behind.
    pub fn clear(&self) {
        if let Some(span) = &self.0 {
            span.pb_set_style(&ProgressStyle::with_template("").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            span.pb_set_message("");
        }
    }

    /// Replaces the status text, fitted to the terminal's width.
    pub fn set(&self, message: impl Into<String>) {
        if let Some(span) = &self.0 {
            span.pb_set_style(&spinner_style());
            // The spinner and its space.
            span.pb_set_message(&fit(&message.into(), columns().saturating_sub(2)));
        }
    }

    /// Shows a progress bar of `done` out of `total`, its text fitted to the terminal's width.
    pub fn progress(&self, message: impl Into<String>, done: u64, total: u64) {
        if let Some(span) = &self.0 {
            span.pb_set_style(&bar_style());
            span.pb_set_length(total);
            span.pb_set_position(done);
            // The spinner, the bar and `done/total`, each followed by a space.
            let used = 2 + BAR_WIDTH + 3 + format!("{done}/{total} ").len();
            span.pb_set_message(&fit(&message.into(), columns().saturating_sub(used)));
        }
    }
}

/// The progress bar's width in columns, in [`bar_style`]'s template.
const BAR_WIDTH: usize = 30;

/// The columns the status line may use: the terminal's width less three. A line that reached the last
/// column would wrap when the terminal echoes `^C` after it, and clearing the status line would then clear
/// the echo's row and leave the status behind.
fn columns() -> usize {
    let (_, columns) = console::Term::stderr().size();
    usize::from(columns).saturating_sub(3)
}

/// `message` in at most `width` columns without cutting a word: whole trailing ` · ` parts are dropped
/// and `…` ends what is left; a first part too long alone keeps its whole leading words.
pub fn fit(message: &str, width: usize) -> String {
    let measure = console::measure_text_width;
    if measure(message) <= width {
        return message.to_string();
    }
    let parts: Vec<&str> = message.split(" · ").collect();
    for kept in (1..parts.len()).rev() {
        let shortened = format!("{} …", parts[..kept].join(" · "));
        if measure(&shortened) <= width {
            return shortened;
        }
    }
    let mut words = String::new();
    for word in parts[0].split(' ') {
        let longer = if words.is_empty() { word.to_string() } else { format!("{words} {word}") };
        if measure(&longer) + 2 > width {
            break;
        }
        words = longer;
    }
    if words.is_empty() { "…".to_string() } else { format!("{words} …") }
}

/// A delivery's guid as the human feed shows it: its first 8 characters and `…` (`--json` keeps it whole).
pub fn short_guid(guid: &str) -> String {
    let shown = visible(guid);
    match shown.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &shown[..end]),
        None => shown.into_owned(),
    }
}

fn spinner_style() -> ProgressStyle {
    // `msg`, not `wide_msg`: the text is fitted already (`fit`), and padding it to the edge would make it wrap.
    ProgressStyle::with_template("{spinner:.cyan} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    // 30 is BAR_WIDTH.
    ProgressStyle::with_template("{spinner:.cyan} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Sets up tracing on stderr (quiet by default, `-v` for more, `RUST_LOG` overrides) and the status line.
pub fn init_logging(output: &OutputArgs) -> Status {
    let colors = std::env::var_os("NO_COLOR").is_none();
    console::set_colors_enabled(colors && std::io::stdout().is_terminal());
    console::set_colors_enabled_stderr(colors && std::io::stderr().is_terminal());

    let level = match (output.quiet, output.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let indicatif = IndicatifLayer::new().with_max_progress_bars(1, None);
    let show_status = !output.json && !output.quiet && std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(indicatif.get_stderr_writer())
        .with_ansi(console::colors_enabled_stderr())
        .with_target(false)
        .with_filter(filter);
    let status_only = tracing_subscriber::filter::filter_fn(|meta| meta.name() == "status");
    let _ = tracing_subscriber::registry().with(fmt).with(indicatif.with_filter(status_only)).try_init();

    if !show_status {
        return Status(None);
    }
    #[cfg(unix)]
    echo::quiet_control_characters();
    let span = tracing::info_span!("status");
    span.pb_set_style(&spinner_style());
    span.pb_start();
    Status(Some(span))
}

/// Puts the terminal's settings back as they were before the status line, if they were changed.
pub fn restore() {
    #[cfg(unix)]
    echo::restore();
}

/// The terminal's echo of control characters.
///
/// indicatif pads the status line to the terminal's right edge, leaving the cursor there, so the `^C` a
/// terminal echoes on Ctrl-C wraps onto a row of its own; clearing the status line then clears that row
/// and leaves the status behind, above the stop line. So while the status line is drawn the terminal
/// does not echo control characters (Ctrl-C still stops hookfwd), and [`restore`] undoes it on exit.
#[cfg(unix)]
mod echo {
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;

    /// The settings before hookfwd changed them.
    static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

    pub(super) fn quiet_control_characters() {
        let fd = std::io::stderr().as_raw_fd();
        // SAFETY: a zeroed termios is a valid value of a plain C struct, and tcgetattr only writes into it.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is stderr, open for the life of the process; `settings` outlives the call.
        if unsafe { libc::tcgetattr(fd, &mut settings) } != 0 || settings.c_lflag & libc::ECHOCTL == 0 {
            return;
        }
        let saved = settings;
        settings.c_lflag &= !libc::ECHOCTL;
        // SAFETY: as above; tcsetattr only reads `settings`.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &settings) } == 0
            && let Ok(mut slot) = SAVED.lock()
        {
            *slot = Some(saved);
        }
    }

    pub(super) fn restore() {
        let saved = SAVED.lock().ok().and_then(|mut slot| slot.take());
        if let Some(saved) = saved {
            // SAFETY: stderr is open for the life of the process; `saved` outlives the call.
            unsafe { libc::tcsetattr(std::io::stderr().as_raw_fd(), libc::TCSANOW, &saved) };
        }
    }
}

/// Lines printed to stdout so far: a line may be printed over only while this has not moved.
static PRINTED: AtomicU64 = AtomicU64::new(0);

/// Writes one line to stdout without garbling the status line; a closed stdout is an error, not a panic.
pub fn print(line: &str) -> std::io::Result<()> {
    write(&format!("{line}\n"))
}

/// The count of lines printed so far, to tell later whether anything was printed since.
pub fn printed() -> u64 {
    PRINTED.load(Ordering::SeqCst)
}

/// Replaces the last `rows` rows of a terminal's stdout with `line` (the caller checked with
/// [`printed`] that nothing was printed since, and [`rows`] counted them).
pub fn print_over(rows: usize, line: &str) -> std::io::Result<()> {
    // Up to the first of those rows, and clear from there down; one write, so the status line is
    // cleared once before it and drawn again once after.
    write(&format!("\x1b[{rows}A\r\x1b[J{line}\n"))
}

/// The rows `text` takes on stdout's terminal, its lines wrapped at the terminal's width.
pub fn rows(text: &str) -> usize {
    let (_, columns) = console::Term::stdout().size();
    let columns = usize::from(columns).max(1);
    text.split('\n').map(|line| console::measure_text_width(line).div_ceil(columns).max(1)).sum()
}

/// Whether stdout is a terminal, where a line can be printed over.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

fn write(text: &str) -> std::io::Result<()> {
    PRINTED.fetch_add(1, Ordering::SeqCst);
    match tracing_indicatif::writer::get_indicatif_stdout_writer() {
        Some(mut out) => out.write_all(text.as_bytes()),
        None => std::io::stdout().lock().write_all(text.as_bytes()),
    }
}

/// `text` with every control character (an escape sequence's ESC, BEL, CR, a newline, …) written
/// out as `\u{1b}`-style text, so that text from GitHub, the handler or the network cannot retitle
/// the terminal, clear it, or forge a feed line. JSON output needs none of this: it escapes them.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out() {
        assert_eq!(visible("push.opened"), "push.opened");
        assert!(matches!(visible("plain ünïcode"), Cow::Borrowed(_)));
        let shown = visible("a\u{1b}]0;title\u{7}b\r\n[fake line\u{9b}c\u{7f}");
        assert_eq!(shown, "a\\u{1b}]0;title\\u{7}b\\u{d}\\u{a}[fake line\\u{9b}c\\u{7f}");
        assert!(!shown.chars().any(char::is_control), "{shown}");
    }

    #[test]
    fn a_status_that_is_too_wide_drops_whole_trailing_parts() {
        let status = "handler unreachable (connection refused), retrying in 1s · 1 waiting · last poll 21:14:03";
        assert_eq!(fit(status, 200), status);
        assert_eq!(fit(status, 80), "handler unreachable (connection refused), retrying in 1s · 1 waiting …");
        assert_eq!(fit(status, 60), "handler unreachable (connection refused), retrying in 1s …");
        // A first part too long alone keeps its whole leading words.
        assert_eq!(fit(status, 30), "handler unreachable …");
        assert_eq!(fit(status, 3), "…");
        for width in 1..100 {
            let fitted = fit(status, width);
            assert!(console::measure_text_width(&fitted) <= width.max(1), "{width}: {fitted}");
            let kept = fitted.trim_end_matches('…').trim_end();
            assert!(status.starts_with(kept), "{width}: {fitted}");
            let next = status[kept.len()..].chars().next();
            assert!(kept.is_empty() || matches!(next, None | Some(' ')), "a word was cut at {width}: {fitted}");
        }
    }

    #[test]
    fn a_guid_is_shortened_to_eight_characters() {
        assert_eq!(short_guid("5c1e0a80-6f2b-11ef-8f0e-1c2b3a4d5e6f"), "5c1e0a80…");
        assert_eq!(short_guid("short"), "short");
        assert_eq!(short_guid("12345678"), "12345678");
        assert_eq!(short_guid("ünïcödé-guid"), "ünïcödé-…");
    }
}

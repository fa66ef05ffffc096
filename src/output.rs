//! Writing to the terminal: a closed pipe (`elbmedic demo | head`) ends output quietly instead
//! of panicking, and errors are one line on standard error.

use std::io::{self, Write};

pub fn print(text: &str) {
    let mut stdout = io::stdout().lock();
    // A closed pipe or full disk is not worth a panic: the reader is gone.
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

pub fn error(error: &anyhow::Error) {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    let line = chain.join(": ").replace('\n', " ");
    let _ = writeln!(io::stderr().lock(), "elbmedic: error: {line}");
}

pub fn warn(message: &str) {
    let _ = writeln!(io::stderr().lock(), "elbmedic: {message}");
}

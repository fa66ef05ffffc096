//! Reading the user's files: bounded in size, with errors that name the file and say what to do.

use std::fs::File;
use std::io::{self, Read};

use anyhow::{bail, Context, Result};

/// Reads `path` (or standard input for `-`), refusing more than `limit` bytes.
pub fn read_bounded(path: &str, what: &str, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path == "-" {
        io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
    } else {
        let metadata = std::fs::metadata(path)
            .with_context(|| format!("cannot read the {what} file {path}"))?;
        if metadata.is_dir() {
            bail!("the {what} file {path} is a directory; give the path of a JSON file");
        }
        File::open(path)
            .and_then(|file| file.take(limit + 1).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read the {what} file {path}"))?;
    }
    if bytes.len() as u64 > limit {
        bail!(
            "the {what} {} is larger than {} MiB; is it the right file?",
            display(path),
            limit / (1024 * 1024)
        );
    }
    Ok(bytes)
}

pub fn display(path: &str) -> String {
    if path == "-" {
        "on standard input".into()
    } else {
        path.to_string()
    }
}

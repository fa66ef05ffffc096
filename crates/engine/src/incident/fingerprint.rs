//! What makes two reports "the same cause": the verdict, and each cause's code with the
//! resources that decide it (the NACL, the security group, the listener). Kept readable, not
//! only hashed, so that a changed fingerprint can say what changed.

use serde::{Deserialize, Serialize};

use crate::report::Report;
use crate::untrusted::one_line;

/// Resources kept per cause: enough to tell a NACL from another, bounded for the ledger item.
const MAX_RESOURCES: usize = 12;
/// Causes kept: a report has a handful; a forged or freak one is bounded.
const MAX_CAUSES: usize = 24;
/// A resource name longer than this is not an AWS id or ARN anyone compares by eye.
const MAX_RESOURCE_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub verdict: String,
    pub causes: Vec<Cause>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cause {
    pub code: String,
    pub resources: Vec<String>,
}

impl Fingerprint {
    /// The report's fingerprint: its verdict and its causes (not `check-incomplete`), sorted,
    /// each with its resources sorted, so order in the report does not matter.
    pub fn of(report: &Report) -> Self {
        let mut causes: Vec<Cause> = report
            .findings
            .iter()
            .filter(|f| f.code.is_cause())
            .map(|f| {
                let mut resources: Vec<String> = f
                    .resources
                    .iter()
                    .map(|r| bounded(r))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                resources.truncate(MAX_RESOURCES);
                Cause {
                    code: f.code.as_str().to_string(),
                    resources,
                }
            })
            .collect();
        causes.sort();
        causes.dedup();
        causes.truncate(MAX_CAUSES);
        Self {
            verdict: report.verdict.status.as_str().to_string(),
            causes,
        }
    }

    /// A short stable digest, for logs and the `incidents` listing.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        format!("{:016x}", crate::stable_hash::stable_hash(&text))
    }

    /// What changed from `before` to `self`, one line each, in the order an engineer reads
    /// them: the verdict, causes gone, causes new, then resources within a cause.
    pub fn changes_since(&self, before: &Fingerprint) -> Vec<String> {
        let mut lines = Vec::new();
        if self.verdict != before.verdict {
            lines.push(format!(
                "verdict {} (was {})",
                one_line(&self.verdict),
                one_line(&before.verdict)
            ));
        }
        let code_of =
            |causes: &[Cause], code: &str| causes.iter().find(|c| c.code == code).cloned();
        for gone in before
            .causes
            .iter()
            .filter(|c| code_of(&self.causes, &c.code).is_none())
        {
            lines.push(format!("no longer found: {}", one_line(&gone.code)));
        }
        for cause in &self.causes {
            match code_of(&before.causes, &cause.code) {
                None => lines.push(format!(
                    "new cause: {}{}",
                    one_line(&cause.code),
                    on(&cause.resources)
                )),
                Some(old) if old.resources != cause.resources => {
                    let added: Vec<String> = difference(&cause.resources, &old.resources);
                    let removed: Vec<String> = difference(&old.resources, &cause.resources);
                    let mut parts = Vec::new();
                    if !added.is_empty() {
                        parts.push(format!("now also {}", added.join(", ")));
                    }
                    if !removed.is_empty() {
                        parts.push(format!("no longer {}", removed.join(", ")));
                    }
                    lines.push(format!("{}: {}", one_line(&cause.code), parts.join("; ")));
                }
                Some(_) => {}
            }
        }
        lines
    }
}

fn difference(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .filter(|r| !b.contains(r))
        .map(|r| one_line(r))
        .collect()
}

fn on(resources: &[String]) -> String {
    match resources {
        [] => String::new(),
        some => format!(
            " on {}",
            some.iter()
                .map(|r| one_line(r))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn bounded(resource: &str) -> String {
    let line = one_line(resource);
    match line.char_indices().nth(MAX_RESOURCE_CHARS) {
        Some((at, _)) => line[..at].to_string(),
        None => line,
    }
}

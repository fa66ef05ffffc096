//! What a report says about its incident: the line on-call reads first ("ALARM again (4th
//! time in 22 min), same cause"), what changed, and what the incident proposed already. Set on
//! the report, so every renderer (email, chat, JSON) says the same.

use serde::{Deserialize, Serialize};

use super::{Decision, Incident};
use crate::untrusted::one_line;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentNote {
    /// The chat thread of the incident.
    pub thread: String,
    pub opened_at: i64,
    /// ALARMs so far, this one included.
    pub alarms: u32,
    /// `opened`, `update`, `changed`, `recovered`.
    pub decision: String,
    pub line: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The first report's subject: an update or recovery replies to it.
    pub first_subject: String,
    /// The last full report's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_report_url: Option<String>,
    /// Plans this incident proposed already, which are not proposed again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans_proposed: Vec<String>,
    pub quiet_minutes: i64,
}

impl IncidentNote {
    /// A short message (an update, the recovery), not a full report.
    pub fn is_short(&self) -> bool {
        matches!(self.decision.as_str(), "update" | "recovered")
    }
}

/// The note for a report the incident sends; `None` for a decision that sends nothing or
/// sends the report as it is (standalone).
pub fn note(
    incident: &Incident,
    decision: &Decision,
    headline: &str,
    quiet_minutes: i64,
) -> Option<IncidentNote> {
    let line = match decision {
        Decision::Opened => format!(
            "Incident opened at {}. Further alarms on this load balancer come as short updates in this thread until it has stayed OK for {quiet_minutes} min; a changed cause gets a full report.",
            clock(incident.opened_at)
        ),
        Decision::Update {
            nth,
            minutes,
            recovered_at,
        } => {
            let between = recovered_at
                .map(|at| format!(" (it had recovered at {})", clock(at)))
                .unwrap_or_default();
            format!(
                "ALARM again ({} time in {minutes} min){between}, same cause: {}",
                ordinal(*nth),
                one_line(headline)
            )
        }
        Decision::Changed {
            nth,
            minutes,
            since,
            ..
        } => format!(
            "ALARM again ({} time in {minutes} min), and the cause changed since the report at {}.",
            ordinal(*nth),
            clock(*since)
        ),
        Decision::Recovered { minutes, alarms } => format!(
            "Recovered after {minutes} min, {alarms} {}. This thread stays open for {quiet_minutes} min: if the load balancer alarms again, the updates come here.",
            if *alarms == 1 { "alarm" } else { "alarms" }
        ),
        Decision::Standalone | Decision::Quiet { .. } => return None,
    };
    let changes = match decision {
        Decision::Changed { changes, .. } => changes.clone(),
        _ => Vec::new(),
    };
    let plans_proposed = incident
        .plans
        .iter()
        .map(|p| format!("{} at {}", one_line(&p.id), clock(p.at)))
        .collect();
    Some(IncidentNote {
        thread: incident.thread.clone(),
        opened_at: incident.opened_at,
        alarms: incident.alarms,
        decision: decision.name().to_string(),
        line,
        changes,
        first_subject: incident.subject.clone(),
        last_full_report_url: incident.full_report_url.clone(),
        plans_proposed,
        quiet_minutes,
    })
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`.
pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `03:14 UTC`: the time of day on-call compares with the alarm's.
pub fn clock(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map_or_else(|| at.to_string(), |t| t.format("%H:%M UTC").to_string())
}

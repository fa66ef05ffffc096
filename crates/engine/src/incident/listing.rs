//! `elbmedic incidents`: the open and recent incidents as on-call reads them: status, alarms,
//! the cause and its changes, plans, and every event with what became of it.

use std::fmt::Write;

use super::{Decision, EntryDelivery, Incident};
use crate::untrusted::one_line;

/// The listing, newest first as given; `now` tells open from closed.
pub fn render(incidents: &[Incident], now: i64, quiet_minutes: i64) -> String {
    if incidents.is_empty() {
        return "No incidents in the ledger (kept a week after their last alarm).\n".into();
    }
    let mut out = format!("INCIDENTS ({})\n", incidents.len());
    for incident in incidents {
        out.push('\n');
        one(incident, now, quiet_minutes, &mut out);
    }
    out
}

fn one(incident: &Incident, now: i64, quiet_minutes: i64, out: &mut String) {
    let key = &incident.key;
    let _ = writeln!(
        out,
        "{}  {}  account {} {}",
        one_line(&incident.load_balancer_name),
        one_line(&key.load_balancer),
        one_line(&key.account),
        one_line(&key.region)
    );
    let status = match (
        incident.is_open(now, quiet_minutes * 60),
        incident.firing.is_empty(),
    ) {
        (true, false) => "OPEN, in ALARM".to_string(),
        (true, true) => format!(
            "OPEN, OK since {}",
            incident.ok_since.map_or("?".into(), when)
        ),
        (false, _) => "CLOSED".to_string(),
    };
    let _ = writeln!(
        out,
        "  {status}; opened {}, {} {}, last event {}",
        when(incident.opened_at),
        incident.alarms,
        if incident.alarms == 1 {
            "alarm"
        } else {
            "alarms"
        },
        when(incident.last_event_at)
    );
    if !incident.firing.is_empty() {
        let firing: Vec<String> = incident.firing.iter().map(|f| one_line(&f.alarm)).collect();
        let _ = writeln!(out, "  in ALARM: {}", firing.join(", "));
    }
    let causes: Vec<String> = incident
        .fingerprint
        .causes
        .iter()
        .map(|c| one_line(&c.code))
        .collect();
    let _ = writeln!(
        out,
        "  cause ({}): {}",
        one_line(&incident.fingerprint.verdict),
        if causes.is_empty() {
            "none found".into()
        } else {
            causes.join(", ")
        }
    );
    let _ = writeln!(out, "  {}", one_line(&incident.headline));
    let _ = writeln!(out, "  first report: {}", one_line(&incident.subject));
    if let Some(url) = &incident.full_report_url {
        let _ = writeln!(out, "  last full report: {}", one_line(url));
    }
    let _ = writeln!(out, "  chat thread: {}", one_line(&incident.thread));
    for plan in &incident.plans {
        let _ = writeln!(
            out,
            "  plan {} proposed {}",
            one_line(&plan.id),
            when(plan.at)
        );
    }
    for entry in &incident.timeline {
        let what = match &entry.decision {
            Decision::Changed { changes, .. } => format!(
                "cause changed: {}",
                changes
                    .iter()
                    .map(|c| one_line(c))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Decision::Quiet { reason } => format!("nothing sent ({})", reason.as_str()),
            other => other.name().to_string(),
        };
        let delivery = match &entry.delivery {
            EntryDelivery::Claimed { .. } => " [being sent]",
            EntryDelivery::Delivered { .. } => "",
            EntryDelivery::Failed { .. } => " [not sent: the retry sends it]",
        };
        let state = match entry.state {
            super::EventState::Alarm => "ALARM",
            super::EventState::Ok => "OK",
        };
        let _ = writeln!(
            out,
            "    {} {state:<5} {}: {what}{delivery}",
            when(entry.at),
            one_line(&entry.alarm)
        );
    }
}

/// `2026-12-06 03:14 UTC`.
fn when(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0).map_or_else(
        || at.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

//! Plain-text rendering for email: the first line is the verdict, prose is wrapped at 100
//! columns, commands are left whole so they paste.

use std::fmt::Write;

use super::escape::{one_line, quoted};
use super::wrap::wrap;
use super::{AlarmSummary, Report};
use crate::finding::{Finding, Fix};
use crate::incident::note::IncidentNote;

const WIDTH: usize = 100;

pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let (label, headline) = report.headline();
    out.push_str(&verdict_lines(&format!("{label}: {headline}")));
    out.push('\n');
    if let Some(first) = &report.follow_up_of {
        let id = first
            .message_id
            .as_deref()
            .map(|id| format!(" (SNS message {})", one_line(id)))
            .unwrap_or_default();
        let line = format!(
            "Follow-up to \"{}\"{id}: evidence that arrived after it. The first report's findings stand.",
            one_line(&first.subject)
        );
        out.push_str(&wrap(&line, WIDTH, ""));
        out.push('\n');
    }
    if let Some(incident) = &report.incident {
        incident_lines(incident, &mut out);
    }
    header(report, &mut out);
    if let Some(section) = &report.remediation {
        super::remediation::render_text(section, &mut out);
    }
    if !report.findings.is_empty() {
        let _ = writeln!(out, "\nFINDINGS ({})", report.findings.len());
        for (index, finding) in report.findings.iter().enumerate() {
            out.push('\n');
            render_finding(index + 1, finding, &mut out);
        }
    }
    if !report.next_steps.is_empty() {
        out.push_str("\nNEXT STEPS\n");
        for step in &report.next_steps {
            out.push_str(&bullet(step, "  "));
        }
    }
    if !report.recent_changes.is_empty() {
        out.push_str("\nRECENT CHANGES (CloudTrail; none explains a finding)\n");
        for change in &report.recent_changes {
            out.push_str(&bullet(change, "  "));
        }
    }
    if !report.checked.is_empty() {
        out.push_str("\nWHAT WAS CHECKED\n");
        for check in &report.checked {
            let line = format!(
                "[{}] {}: {}",
                check.status.as_str(),
                check.name,
                check.detail
            );
            out.push_str(&bullet(&line, "  "));
        }
    }
    if !report.gaps.is_empty() {
        out.push_str("\nNOT OBSERVED\n");
        for gap in &report.gaps {
            let line = gap.to_string();
            out.push_str(&bullet(&line, "  "));
        }
    }
    let _ = writeln!(out, "\n-- {}", report.generator);
    out
}

/// Where the report stands in its incident: the first report opens it, a changed cause says
/// what changed.
fn incident_lines(incident: &IncidentNote, out: &mut String) {
    out.push_str(&wrap(&incident.line, WIDTH, ""));
    for change in &incident.changes {
        out.push_str(&bullet(change, "  "));
    }
}

/// A short message in an incident's thread (an update, the recovery): the line on-call reads
/// first, the alarm and its new data points, the strongest evidence, and the way to the full
/// report; the rest is in the full report, unchanged.
pub fn render_short(report: &Report, incident: &IncidentNote) -> String {
    let mut out = verdict_lines(&incident.line);
    out.push('\n');
    header(report, &mut out);
    let causes: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.code.is_cause())
        .collect();
    if let Some(top) = causes.first() {
        out.push_str("\nLATEST EVIDENCE\n");
        for evidence in top.evidence.iter().take(SHORT_EVIDENCE) {
            out.push_str(&bullet(evidence.summary(), "  "));
        }
    }
    if causes.len() > 1 {
        let codes: Vec<&str> = causes.iter().map(|f| f.code.as_str()).collect();
        out.push_str(&wrap(&format!("Causes: {}", codes.join(", ")), WIDTH, ""));
    }
    out.push('\n');
    if report.full_report_url.is_none() {
        if let Some(url) = &incident.last_full_report_url {
            let _ = writeln!(
                out,
                "The last full report (S3 console):\n  {}",
                one_line(url)
            );
        }
    }
    for plan in &incident.plans_proposed {
        out.push_str(&wrap(
            &format!("Plan {plan} was proposed in this incident; it is not proposed again."),
            WIDTH,
            "",
        ));
    }
    out.push_str(&wrap(
        &format!(
            "Incident: opened {}, {} so far; first report: \"{}\". The JSON of this message (SQS, HTTPS subscribers) carries the full report.",
            crate::incident::note::clock(incident.opened_at),
            match incident.alarms { 1 => "1 alarm".to_string(), n => format!("{n} alarms") },
            one_line(&incident.first_subject)
        ),
        WIDTH,
        "",
    ));
    let _ = writeln!(out, "\n-- {}", report.generator);
    out
}

/// Evidence lines a short update shows: the new data points.
const SHORT_EVIDENCE: usize = 3;

/// The verdict: its first line at most 100 columns, like the subject, and the detail on
/// indented lines below it.
fn verdict_lines(verdict: &str) -> String {
    let wrapped = wrap(verdict, WIDTH, "");
    let Some((first, rest)) = wrapped.split_once('\n') else {
        return wrapped;
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return format!("{first}\n");
    }
    format!("{first}\n{}", wrap(rest, WIDTH, "  "))
}

fn header(report: &Report, out: &mut String) {
    let alarm = &report.alarm;
    if let Some(account) = alarm.account_line() {
        let _ = writeln!(out, "Account: {}", one_line(&account));
    }
    if let Some(lb) = &report.load_balancer {
        let _ = writeln!(
            out,
            "Load balancer: {} ({}) in {}",
            one_line(&lb.name),
            lb.kind.display(),
            one_line(&alarm.region)
        );
        if let Some(arn) = &lb.arn {
            out.push_str(&wrap(arn, WIDTH, "  "));
        }
        if let Some(owner) = lb.owner_line() {
            let _ = writeln!(out, "Owner: {}", one_line(&owner));
        }
        if let Some(timeout) = lb.idle_timeout_seconds {
            let _ = writeln!(out, "Idle timeout: {timeout} s");
        }
        if let Some(tg) = &lb.target_group {
            let _ = writeln!(out, "Target group: {}", one_line(tg));
        }
    }
    let line = format!("Alarm: {}", alarm_line(alarm));
    out.push_str(&wrap(&line, WIDTH, ""));
    if let Some(reason) = &alarm.reason {
        out.push_str(&wrap(&format!("Reason: {}", quoted(reason)), WIDTH, "  "));
    }
    if let Some(url) = &report.full_report_url {
        // Whole, on a line of its own: mail clients link it only unbroken.
        let _ = writeln!(
            out,
            "Full report with the path diagram (S3 console):\n  {}",
            one_line(url)
        );
    }
}

/// The alarm in one line: its name, what it watches against which threshold, its state and
/// when it changed (the text and HTML headers share it).
pub(super) fn alarm_line(alarm: &AlarmSummary) -> String {
    let what = match (&alarm.metric, &alarm.expression) {
        _ if alarm.rule.is_some() => {
            format!(
                "composite rule {}",
                alarm.rule.as_deref().unwrap_or_default()
            )
        }
        (_, Some(expression)) => format!("metric math {expression}"),
        (Some(metric), None) => format!(
            "{metric}{}",
            alarm
                .statistic
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ),
        (None, None) => "no metric".into(),
    };
    let threshold = match (&alarm.comparison, alarm.threshold) {
        (Some(op), Some(t)) => format!(", {op} {}", crate::context::format_value(t)),
        _ => String::new(),
    };
    let when = alarm
        .state_change_time
        .as_deref()
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    let via = alarm
        .via_composite
        .as_deref()
        .map(|c| format!(" (fired composite alarm {c})"))
        .unwrap_or_default();
    format!(
        "{}{via} on {what}{threshold}: {}{when}",
        alarm.name, alarm.state
    )
}

fn bullet(text: &str, indent: &str) -> String {
    let wrapped = wrap(text, WIDTH - 2, &format!("{indent}  "));
    let mut lines = wrapped.lines();
    let mut out = String::new();
    if let Some(first) = lines.next() {
        let _ = writeln!(out, "{indent}- {}", first.trim_start());
    }
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn render_finding(number: usize, finding: &Finding, out: &mut String) {
    let head = format!(
        "{number}. [{}] {}",
        finding.severity.as_str().to_uppercase(),
        finding.code
    );
    let _ = writeln!(out, "{head}");
    out.push_str(&wrap(&finding.title, WIDTH, "   "));
    if let Some(confidence) = finding.confidence {
        let reason = finding.confidence_reason.as_deref().unwrap_or_default();
        out.push_str(&wrap(
            &format!("Confidence: {}. {reason}", confidence.as_str()),
            WIDTH,
            "   ",
        ));
    }
    out.push('\n');
    out.push_str(&wrap(&finding.explanation, WIDTH, "   "));
    if !finding.evidence.is_empty() {
        out.push_str("\n   Evidence:\n");
        for evidence in &finding.evidence {
            out.push_str(&bullet(evidence.summary(), "   "));
        }
    }
    render_fix(&finding.fix, out);
}

fn render_fix(fix: &Fix, out: &mut String) {
    out.push_str("\n   Fix:\n");
    out.push_str(&wrap(&fix.summary, WIDTH, "   "));
    for command in &fix.commands {
        let _ = writeln!(out, "   # {}", one_line(&command.description));
        for line in command.command.lines() {
            let _ = writeln!(out, "   $ {line}");
        }
    }
    if let Some(durable) = &fix.durable {
        out.push_str("\n   Make it durable:\n");
        out.push_str(&wrap(&durable.description, WIDTH, "   "));
        if let Some(command) = &durable.command {
            for line in command.lines() {
                let _ = writeln!(out, "   $ {line}");
            }
        }
        if let Some(manifest) = &durable.manifest {
            for line in manifest.lines() {
                let _ = writeln!(out, "     {line}");
            }
        }
        out.push_str(&wrap(
            &format!("Warning: {}", durable.warning),
            WIDTH,
            "   ",
        ));
    }
    if !fix.notes.is_empty() {
        out.push_str("\n   Notes:\n");
        for note in &fix.notes {
            out.push_str(&bullet(note, "   "));
        }
    }
}

//! Markdown rendering: for chat tools, tickets and pull requests.

use std::fmt::Write;

use super::escape::{code_block, code_span, markdown as escape, markdown_cell, one_line};
use super::Report;
use crate::finding::Finding;

pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let (label, headline) = report.headline();
    let _ = writeln!(out, "# {label}: {}\n", escape(headline));
    if let Some(first) = &report.follow_up_of {
        let id = first
            .message_id
            .as_deref()
            .map(|id| format!(" (SNS message {})", code_span(id)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Follow-up to \"{}\"{id}: evidence that arrived after it. The first report's findings stand.\n",
            escape(&one_line(&first.subject))
        );
    }
    render_facts(report, &mut out);
    if let Some(section) = &report.remediation {
        // The plain-text rendering, verbatim: it holds commands that must paste unchanged.
        let mut text = String::new();
        super::remediation::render_text(section, &mut text);
        let _ = write!(
            out,
            "\n## Remediation\n\n{}",
            code_block("text", text.trim())
        );
    }
    for (index, finding) in report.findings.iter().enumerate() {
        render_finding(index + 1, finding, &mut out);
    }
    render_lists(report, &mut out);
    let _ = writeln!(out, "\n_{}_", report.generator);
    out
}

/// The load balancer and the alarm, one bullet each.
fn render_facts(report: &Report, out: &mut String) {
    let alarm = &report.alarm;
    if let Some(lb) = &report.load_balancer {
        let _ = writeln!(
            out,
            "- **Load balancer:** {} ({}) in {}",
            code_span(&lb.name),
            lb.kind.display(),
            code_span(&alarm.region)
        );
        if let Some(arn) = &lb.arn {
            let _ = writeln!(out, "- **ARN:** {}", code_span(arn));
        }
        if let Some(owner) = &lb.owner {
            let _ = writeln!(
                out,
                "- **Owner:** {}{}",
                escape(owner),
                lb.cluster
                    .as_deref()
                    .map(|c| format!(" in EKS cluster {}", code_span(c)))
                    .unwrap_or_default()
            );
        }
        if let Some(timeout) = lb.idle_timeout_seconds {
            let _ = writeln!(out, "- **Idle timeout:** {timeout} s");
        }
    }
    let _ = writeln!(
        out,
        "- **Alarm:** {}{} on {}: {}{}",
        code_span(&alarm.name),
        alarm
            .via_composite
            .as_deref()
            .map(|c| format!(" (fired composite alarm {})", code_span(c)))
            .unwrap_or_default(),
        code_span(
            alarm
                .rule
                .as_deref()
                .or(alarm.expression.as_deref())
                .or(alarm.metric.as_deref())
                .unwrap_or("-")
        ),
        alarm.state,
        alarm
            .state_change_time
            .as_deref()
            .map(|t| format!(" at {}", escape(t)))
            .unwrap_or_default()
    );
    if let Some(reason) = &alarm.reason {
        let _ = writeln!(out, "- **Reason:** {}", code_span(reason));
    }
    if let Some(url) = &report.full_report_url {
        let _ = writeln!(out, "- **Full report** (path diagram): {}", code_span(url));
    }
}

/// Next steps, recent changes, what was checked and what was not observed.
fn render_lists(report: &Report, out: &mut String) {
    if !report.next_steps.is_empty() {
        out.push_str("\n## Next steps\n\n");
        for step in &report.next_steps {
            let _ = writeln!(out, "- {}", escape(step));
        }
    }
    if !report.recent_changes.is_empty() {
        out.push_str("\n## Recent changes (CloudTrail; none explains a finding)\n\n");
        for change in &report.recent_changes {
            let _ = writeln!(out, "- {}", escape(change));
        }
    }
    if !report.checked.is_empty() {
        out.push_str("\n## What was checked\n\n| check | status | detail |\n|---|---|---|\n");
        for check in &report.checked {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                markdown_cell(&check.name),
                check.status.as_str(),
                markdown_cell(&check.detail)
            );
        }
    }
    if !report.gaps.is_empty() {
        out.push_str("\n## Not observed\n\n");
        for gap in &report.gaps {
            let _ = writeln!(out, "- {}", escape(&gap.to_string()));
        }
    }
}

fn render_finding(number: usize, finding: &Finding, out: &mut String) {
    let _ = writeln!(
        out,
        "\n## {number}. {} — `{}` ({})\n",
        escape(&finding.title),
        finding.code,
        finding.severity.as_str()
    );
    if let (Some(confidence), Some(reason)) = (finding.confidence, &finding.confidence_reason) {
        let _ = writeln!(
            out,
            "**Confidence:** {} — {}\n",
            confidence.as_str(),
            escape(reason)
        );
    }
    let _ = writeln!(out, "{}\n", escape(&finding.explanation));
    if !finding.evidence.is_empty() {
        out.push_str("**Evidence**\n\n");
        for evidence in &finding.evidence {
            let _ = writeln!(out, "- {}", escape(evidence.summary()));
        }
        out.push('\n');
    }
    let fix = &finding.fix;
    let _ = writeln!(out, "**Fix:** {}\n", escape(&fix.summary));
    if !fix.commands.is_empty() {
        let body: String = fix
            .commands
            .iter()
            .map(|c| format!("# {}\n{}\n", one_line(&c.description), c.command))
            .collect();
        let _ = writeln!(out, "{}", code_block("sh", &body));
    }
    if let Some(durable) = &fix.durable {
        let _ = writeln!(
            out,
            "**Make it durable:** {}\n",
            escape(&durable.description)
        );
        if let Some(command) = &durable.command {
            let _ = writeln!(out, "{}", code_block("sh", command));
        }
        if let Some(manifest) = &durable.manifest {
            let _ = writeln!(out, "{}", code_block("yaml", manifest));
        }
        let _ = writeln!(out, "> {}\n", escape(&durable.warning));
    }
    for note in &fix.notes {
        let _ = writeln!(out, "- {}", escape(note));
    }
}

//! Markdown rendering: for chat tools, tickets and pull requests.

use std::fmt::Write;

use super::Report;
use crate::finding::Finding;

pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let (label, headline) = report.headline();
    let _ = writeln!(out, "# {label}: {}\n", escape(headline));
    let alarm = &report.alarm;
    if let Some(lb) = &report.load_balancer {
        let _ = writeln!(
            out,
            "- **Load balancer:** `{}` ({}) in `{}`",
            lb.name,
            lb.kind.display(),
            alarm.region
        );
        if let Some(arn) = &lb.arn {
            let _ = writeln!(out, "- **ARN:** `{arn}`");
        }
        if let Some(owner) = &lb.owner {
            let _ = writeln!(
                out,
                "- **Owner:** {owner}{}",
                lb.cluster
                    .as_deref()
                    .map(|c| format!(" in EKS cluster `{c}`"))
                    .unwrap_or_default()
            );
        }
        if let Some(timeout) = lb.idle_timeout_seconds {
            let _ = writeln!(out, "- **Idle timeout:** {timeout} s");
        }
    }
    let _ = writeln!(
        out,
        "- **Alarm:** `{}`{} on `{}`: {}{}",
        alarm.name,
        alarm
            .via_composite
            .as_deref()
            .map(|c| format!(" (fired composite alarm `{c}`)"))
            .unwrap_or_default(),
        alarm
            .rule
            .as_deref()
            .or(alarm.expression.as_deref())
            .or(alarm.metric.as_deref())
            .unwrap_or("-"),
        alarm.state,
        alarm
            .state_change_time
            .as_deref()
            .map(|t| format!(" at {t}"))
            .unwrap_or_default()
    );
    if let Some(section) = &report.remediation {
        // The plain-text rendering, verbatim: it holds commands that must paste unchanged.
        let mut text = String::new();
        super::remediation::render_text(section, &mut text);
        let _ = writeln!(out, "\n## Remediation\n\n```text\n{}\n```", text.trim());
    }
    for (index, finding) in report.findings.iter().enumerate() {
        render_finding(index + 1, finding, &mut out);
    }
    if !report.next_steps.is_empty() {
        out.push_str("\n## Next steps\n\n");
        for step in &report.next_steps {
            let _ = writeln!(out, "- {step}");
        }
    }
    if !report.checked.is_empty() {
        out.push_str("\n## What was checked\n\n| check | status | detail |\n|---|---|---|\n");
        for check in &report.checked {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                escape(&check.name),
                check.status.as_str(),
                escape(&check.detail)
            );
        }
    }
    if !report.gaps.is_empty() {
        out.push_str("\n## Not observed\n\n");
        for gap in &report.gaps {
            let _ = writeln!(out, "- {}", escape(&gap.to_string()));
        }
    }
    let _ = writeln!(out, "\n_{}_", report.generator);
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
        let _ = writeln!(out, "**Confidence:** {} — {reason}\n", confidence.as_str());
    }
    let _ = writeln!(out, "{}\n", finding.explanation);
    if !finding.evidence.is_empty() {
        out.push_str("**Evidence**\n\n");
        for evidence in &finding.evidence {
            let _ = writeln!(out, "- {}", evidence.summary());
        }
        out.push('\n');
    }
    let fix = &finding.fix;
    let _ = writeln!(out, "**Fix:** {}\n", fix.summary);
    if !fix.commands.is_empty() {
        out.push_str("```sh\n");
        for command in &fix.commands {
            let _ = writeln!(out, "# {}\n{}", command.description, command.command);
        }
        out.push_str("```\n\n");
    }
    if let Some(durable) = &fix.durable {
        let _ = writeln!(out, "**Make it durable:** {}\n", durable.description);
        if let Some(command) = &durable.command {
            let _ = writeln!(out, "```sh\n{command}\n```\n");
        }
        if let Some(manifest) = &durable.manifest {
            let _ = writeln!(out, "```yaml\n{manifest}\n```\n");
        }
        let _ = writeln!(out, "> {}\n", durable.warning);
    }
    for note in &fix.notes {
        let _ = writeln!(out, "- {note}");
    }
}

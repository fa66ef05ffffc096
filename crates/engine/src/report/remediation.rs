//! The remediation part of a report: the plan and how to approve it (from `diagnose`), or what
//! was changed, how to roll it back and what keeps it (from `remediate`).

use std::fmt::Write;

use serde::Serialize;

use super::escape::one_line;
use super::wrap::wrap;
use crate::plan::message::Mode;
use crate::plan::outcome::{Outcome, StepStatus};
use crate::plan::proposal::ShownPlan;
use crate::plan::Plan;
use crate::shell::Script;

const WIDTH: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum RemediationSection {
    /// `diagnose`'s plan, not applied by it.
    Planned {
        mode: Mode,
        plan: Plan,
        /// In approve mode: the one command that approves the plan.
        #[serde(skip_serializing_if = "Option::is_none")]
        approve_command: Option<Script>,
        /// In approve mode: the topic that takes an approval by plan id (`approve:PLAN_ID`),
        /// which a chat button publishes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approval_topic: Option<String>,
        note: String,
    },
    /// What `remediate` did.
    Outcome(Outcome),
}

impl RemediationSection {
    /// `diagnose`'s section for a plan the report shows (dry-run, approve or auto mode).
    pub fn planned(shown: &ShownPlan) -> Self {
        let ShownPlan {
            mode,
            message,
            topic,
            published,
        } = shown;
        let (mode, topic, published) = (*mode, topic.as_deref(), *published);
        let plan = &message.plan;
        let (approve_command, note) = match (mode, topic) {
            _ if plan.actions.is_empty() => (
                None,
                "Nothing to remediate automatically: no action passed the policy.".to_string(),
            ),
            (Mode::Approve, Some(topic)) => (
                Some(message.approve_command(topic)),
                "Remediation waits for approval. remediate will gather the state again and apply only what is still needed and passes its guardrails.".into(),
            ),
            (Mode::Approve, None) => (None, "REMEDIATION_TOPIC_ARN is not set, so no approve command can be given.".into()),
            (_, None) => (None, "REMEDIATION_TOPIC_ARN is not set: the plan was not sent to remediate.".into()),
            (Mode::DryRun, Some(_)) if published => (None, "Sent to remediate for a dry run: its report says what would change. Nothing will be changed.".into()),
            (_, Some(_)) if published => (None, "Sent to remediate once this report is out; it re-checks the plan against fresh state and applies it: its outcome follows in a separate report.".into()),
            (_, Some(topic)) => (None, format!("The plan is not sent to {topic}.")),
        };
        let approval_topic = approve_command.as_ref().and(topic).map(str::to_string);
        Self::Planned {
            mode,
            plan: plan.clone(),
            approve_command,
            approval_topic,
            note,
        }
    }
}

pub fn render_text(section: &RemediationSection, out: &mut String) {
    match section {
        RemediationSection::Planned {
            mode,
            plan,
            approve_command,
            note,
            ..
        } => {
            let _ = writeln!(
                out,
                "\nREMEDIATION PLAN ({}, plan {})",
                mode.as_str(),
                plan.id
            );
            out.push_str(&wrap(note, WIDTH, "  "));
            for action in &plan.actions {
                let _ = writeln!(out, "  - {}", one_line(&action.describe()));
            }
            for refusal in &plan.refused {
                out.push_str(&wrap(
                    &format!(
                        "- not planned: {}: {}",
                        refusal.action.describe(),
                        refusal.reason
                    ),
                    WIDTH,
                    "  ",
                ));
            }
            if let Some(command) = approve_command {
                out.push_str("  To approve it (valid until the plan expires):\n");
                for line in command.lines() {
                    let _ = writeln!(out, "  $ {line}");
                }
            }
        }
        RemediationSection::Outcome(outcome) => render_outcome(outcome, out),
    }
}

fn render_outcome(outcome: &Outcome, out: &mut String) {
    let _ = writeln!(
        out,
        "\nREMEDIATION ({}, plan {}): {}",
        outcome.mode.as_str(),
        outcome.plan_id,
        outcome.status.label()
    );
    out.push_str(&wrap(&outcome.headline, WIDTH, "  "));
    for step in &outcome.steps {
        let status = match step.status {
            StepStatus::Applied => "APPLIED",
            StepStatus::InPlace => "ALREADY IN PLACE",
            StepStatus::WouldApply => "WOULD APPLY",
            StepStatus::Refused => "REFUSED",
            StepStatus::Failed => "FAILED",
        };
        out.push_str(&wrap(
            &format!("- [{status}] {}: {}", step.description, step.detail),
            WIDTH,
            "  ",
        ));
        if let (Some(before), Some(after)) = (&step.before, &step.after) {
            let _ = writeln!(out, "      before: {}", one_line(before));
            let _ = writeln!(out, "      after:  {}", one_line(after));
        }
        if let Some(rollback) = &step.rollback {
            out.push_str("      rollback:\n");
            for line in rollback.lines() {
                let _ = writeln!(out, "      $ {line}");
            }
        }
    }
    for refusal in &outcome.refused {
        out.push_str(&wrap(
            &format!(
                "- [REFUSED] {}: {}",
                refusal.action.describe(),
                refusal.reason
            ),
            WIDTH,
            "  ",
        ));
    }
    if !outcome.verification.is_empty() {
        out.push_str("  Verified against the state read again afterwards:\n");
        for check in &outcome.verification {
            let mark = if check.open { "OPEN" } else { "STILL BLOCKED" };
            out.push_str(&wrap(
                &format!("- [{mark}] {}: {}", check.action, check.detail),
                WIDTH,
                "    ",
            ));
        }
    }
    for durable in &outcome.durable {
        out.push_str("  Make it durable in Kubernetes:\n");
        out.push_str(&wrap(&durable.description, WIDTH, "    "));
        if let Some(command) = &durable.command {
            for line in command.lines() {
                let _ = writeln!(out, "    $ {line}");
            }
        }
        out.push_str(&wrap(
            &format!("Warning: {}", durable.warning),
            WIDTH,
            "    ",
        ));
    }
    for note in &outcome.notes {
        out.push_str(&wrap(&format!("Note: {note}"), WIDTH, "  "));
    }
}

//! The report as a custom notification of Amazon Q Developer in chat applications (formerly
//! AWS Chatbot), for Slack and Microsoft Teams channels: the documented JSON (`version` "1.0",
//! `source` "custom", `content`, `metadata`), published as the plain SNS body, since an
//! off-schema message is dropped without an error. The report, its follow-up and its recovery
//! share a thread: the alarm's episode (the alarm, and when it went into ALARM) names it.
//! Text from alarms and AWS is escaped for chat ([`super::escape::chat`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::escape::{chat, chat_code};
use super::remediation::RemediationSection;
use super::{FirstReport, Report};
use crate::diagnosis::VerdictStatus;
use crate::finding::Finding;
use crate::untrusted::clipped;

/// SNS's limit on a message: the only limit a chat message is cut to (it has no subject).
pub const MAX_SNS_MESSAGE_BYTES: usize = super::sns::SNS_MAX_BYTES;

/// Evidence lines a finding shows in chat; the full report has all of them.
const EVIDENCE_IN_CHAT: usize = 3;

/// What the caller knows beyond the report.
#[derive(Debug, Clone, Default)]
pub struct ChatContext<'a> {
    /// Unique per message: the invocation's request id and the record.
    pub id: &'a str,
    /// When the alarm went into ALARM (RFC 3339), for a message sent after it left ALARM (the
    /// recovery): read from the alarm's history. An ALARM report's own state-change time is that
    /// moment already.
    pub episode_began: Option<&'a str>,
}

#[derive(Serialize)]
struct Notification {
    version: &'static str,
    source: &'static str,
    id: String,
    content: Content,
    metadata: Metadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Content {
    text_type: &'static str,
    title: String,
    description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    next_steps: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    keywords: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    thread_id: String,
    summary: String,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_resources: Vec<String>,
    additional_context: BTreeMap<&'static str, String>,
}

/// The notification's JSON, at most [`MAX_SNS_MESSAGE_BYTES`]: a report too large loses its
/// evidence lines first, then findings from the end, each loss said in the message.
pub fn render_chat(report: &Report, context: &ChatContext<'_>) -> String {
    for detail in [
        Detail::Full,
        Detail::NoEvidence,
        Detail::Causes(3),
        Detail::Causes(1),
    ] {
        let text =
            serde_json::to_string(&notification(report, context, detail)).unwrap_or_default();
        if text.len() <= MAX_SNS_MESSAGE_BYTES {
            return text;
        }
    }
    // Still too large (a headline or link of hundreds of KiB): the description is cut.
    let mut note = notification(report, context, Detail::Causes(0));
    super::sns::truncate_chars(&mut note.content.description, MAX_SNS_MESSAGE_BYTES / 4);
    note.content.next_steps.clear();
    note.metadata.related_resources.truncate(1);
    serde_json::to_string(&note).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Detail {
    Full,
    NoEvidence,
    /// Only this many findings.
    Causes(usize),
}

/// The thread of an alarm's episode: the same for the report, its follow-up and its recovery,
/// different for the next time the alarm fires.
pub fn thread_id(report: &Report, episode_began: Option<&str>) -> String {
    let alarm = &report.alarm;
    // As epoch seconds: the alarm message and the alarm's history write the same moment
    // differently (`.281+0000`, `Z`).
    let began = episode_began
        .or(if alarm.state == "ALARM" {
            alarm.state_change_time.as_deref()
        } else {
            None
        })
        .and_then(crate::alarm::parse_timestamp)
        .map_or_else(|| "episode unknown".to_string(), |at| at.to_string());
    let key = format!(
        "{}|{}|{}|{began}",
        alarm.account_id.as_deref().unwrap_or_default(),
        alarm.region,
        alarm.name
    );
    format!("elbmedic-{:016x}", crate::stable_hash::stable_hash(&key))
}

fn notification(report: &Report, context: &ChatContext<'_>, detail: Detail) -> Notification {
    let (label, headline) = report.headline();
    let emoji = match report.verdict.status {
        VerdictStatus::CauseFound => ":rotating_light:",
        VerdictStatus::NoKnownCause => ":warning:",
        VerdictStatus::Recovered => ":white_check_mark:",
        VerdictStatus::Skipped => ":information_source:",
        VerdictStatus::Unsupported | VerdictStatus::LoadBalancerNotRead => ":grey_question:",
    };
    let lb_name = report.load_balancer.as_ref().map(|lb| lb.name.as_str());
    let causes: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.code.is_cause())
        .collect();
    let short = report.incident.as_ref().filter(|i| i.is_short());
    let shown = match (detail, short) {
        (Detail::Causes(n), _) => n.min(causes.len()),
        // An update shows its strongest cause's new evidence; the rest is in the thread above.
        (_, Some(_)) => 1.min(causes.len()),
        _ => causes.len(),
    };
    let mut context_values = BTreeMap::new();
    context_values.insert("alarm", report.alarm.name.clone());
    context_values.insert("region", report.alarm.region.clone());
    context_values.insert("verdict", report.verdict.status.as_str().to_string());
    if let Some(account) = &report.alarm.account_id {
        context_values.insert("account", account.clone());
    }
    if let Some(name) = lb_name {
        context_values.insert("loadBalancer", name.to_string());
    }
    let plan = planned(report);
    if let Some((plan_id, approval_topic)) = plan {
        context_values.insert("planId", plan_id.to_string());
        // What an Approve button publishes, and where: `approve:$planId` to `$approvalTopic`.
        if let Some(topic) = approval_topic {
            context_values.insert("approvalTopic", topic.to_string());
        }
    }
    let awaits_approval = plan.is_some_and(|(_, topic)| topic.is_some());
    // Values a custom action may carry: no spaces, nothing that breaks a line or markup.
    for value in context_values.values_mut() {
        *value = chat(value).replace(' ', "_");
    }
    Notification {
        version: "1.0",
        source: "custom",
        id: chat(context.id),
        content: Content {
            text_type: "client-markdown",
            title: match short {
                Some(incident) => format!(":repeat: {}", chat(&clipped(&incident.line, 200))),
                None => format!("{emoji} {}", chat(&report.subject())),
            },
            description: description(report, &causes[..shown], detail, causes.len() - shown),
            next_steps: match short {
                Some(_) => Vec::new(),
                None => next_steps(report, &causes[..shown], plan),
            },
            keywords: keywords(report, &causes),
        },
        metadata: Metadata {
            thread_id: match (&report.incident, &report.follow_up_of) {
                (Some(incident), _) => chat(&incident.thread),
                // A follow-up joins its first report's incident thread.
                (
                    None,
                    Some(FirstReport {
                        thread: Some(thread),
                        ..
                    }),
                ) => chat(thread),
                _ => thread_id(report, context.episode_began),
            },
            summary: chat(&format!(
                "{label}: {}",
                lb_name.map_or(headline.to_string(), |name| format!("{name}: {headline}"))
            )),
            event_type: if awaits_approval {
                "elbmedic-plan-awaiting-approval"
            } else {
                "elbmedic-report"
            },
            related_resources: related_resources(report, &causes),
            additional_context: context_values,
        },
    }
}

/// Where the message stands in its incident: the first line, what changed, plans not
/// proposed again.
fn incident_lines(incident: &crate::incident::note::IncidentNote) -> Vec<String> {
    let mut lines = vec![format!("*{}*", chat(&incident.line))];
    lines.extend(incident.changes.iter().map(|c| format!("• {}", chat(c))));
    for plan in incident
        .plans_proposed
        .iter()
        .filter(|_| incident.is_short())
    {
        lines.push(format!(
            "Plan {} was proposed in this incident; it is not proposed again.",
            chat(plan)
        ));
    }
    lines.push(String::new());
    lines
}

fn description(report: &Report, causes: &[&Finding], detail: Detail, left_out: usize) -> String {
    let mut lines = Vec::new();
    let alarm = &report.alarm;
    if let Some(incident) = &report.incident {
        lines.extend(incident_lines(incident));
    }
    if let Some(first) = &report.follow_up_of {
        lines.push(format!(
            "*Follow-up* to {}: evidence that arrived after it. Its findings stand.",
            chat_code(&first.subject)
        ));
    }
    if let Some(lb) = &report.load_balancer {
        let owner = lb
            .owner
            .as_deref()
            .map(|o| {
                let cluster = lb
                    .cluster
                    .as_deref()
                    .map(|c| format!(" in EKS cluster {}", chat_code(c)))
                    .unwrap_or_default();
                format!(", owned by {}{cluster}", chat(o))
            })
            .unwrap_or_default();
        lines.push(format!(
            "*Load balancer:* {} ({}) in {}{owner}",
            chat_code(&lb.name),
            lb.kind.display(),
            chat_code(&alarm.region)
        ));
    }
    if let Some(account) = alarm.account_line() {
        lines.push(format!("*Account:* {}", chat_code(&account)));
    }
    lines.push(format!(
        "*Alarm:* {}",
        chat(&super::text::alarm_line(alarm))
    ));
    if !causes.is_empty() {
        lines.push(String::new());
        lines.push(format!("*Findings ({})*", causes.len() + left_out));
        for finding in causes {
            lines.push(format!(
                "• *{}* {}",
                finding.severity.as_str().to_uppercase(),
                chat(&finding.title)
            ));
            if detail == Detail::Full {
                for evidence in finding.evidence.iter().take(EVIDENCE_IN_CHAT) {
                    lines.push(format!("    ◦ {}", chat(evidence.summary())));
                }
            }
        }
        if left_out > 0 {
            lines.push(format!(
                "• {left_out} more in the full report (left out: the message would exceed SNS's 256 KiB)"
            ));
        }
    }
    if let Some(section) = &report.remediation {
        lines.push(String::new());
        lines.push(match section {
            RemediationSection::Planned {
                mode, plan, note, ..
            } => format!(
                "*Remediation ({}):* plan {} with {}. {}",
                mode.as_str(),
                chat_code(&plan.id),
                crate::context::count(plan.actions.len(), "action", "actions"),
                chat(note)
            ),
            RemediationSection::Outcome(outcome) => format!(
                "*Remediation:* {}: {}",
                outcome.status.label(),
                chat(&outcome.headline)
            ),
        });
    }
    if let Some(link) = report
        .full_report_url
        .as_deref()
        .filter(|l| is_console_link(l))
    {
        lines.push(String::new());
        lines.push(format!(
            "*Full report* (path diagram, evidence, commands): [open in the S3 console]({link})"
        ));
    }
    lines.join("\n")
}

/// The fix of each cause shown, with its first command when that is one line; without a
/// cause, the report's next steps.
fn next_steps(report: &Report, causes: &[&Finding], plan: Option<Plan<'_>>) -> Vec<String> {
    let mut steps: Vec<String> = causes
        .iter()
        .map(|finding| {
            let command = finding
                .fix
                .commands
                .first()
                .map(|c| c.command.to_string())
                .filter(|c| !c.contains('\n'))
                .map(|c| format!(": {}", chat_code(&c)))
                .unwrap_or_default();
            let summary = chat(&finding.fix.summary);
            let summary = if command.is_empty() {
                summary.as_str()
            } else {
                summary.trim_end_matches('.')
            };
            format!("{summary}{command}")
        })
        .collect();
    if causes.is_empty() {
        steps.extend(report.next_steps.iter().map(|s| chat(s)));
    }
    if let Some((plan_id, Some(_))) = plan {
        steps.push(format!(
            "Approve plan {} with this message's Approve button (it publishes {} to the remediation topic; your channel's role must be the approver), or with the command in the full report.",
            chat_code(plan_id),
            chat_code(&format!("approve:{plan_id}"))
        ));
    }
    steps
}

fn keywords(report: &Report, causes: &[&Finding]) -> Vec<String> {
    let mut words = vec![report.headline().0.to_string()];
    words.extend(causes.iter().map(|f| f.code.as_str().to_string()));
    words.dedup();
    if let Some(lb) = &report.load_balancer {
        words.push(chat(&lb.name));
    }
    words
}

fn related_resources(report: &Report, causes: &[&Finding]) -> Vec<String> {
    let mut resources: Vec<String> = Vec::new();
    if let Some(lb) = &report.load_balancer {
        resources.push(lb.arn.clone().unwrap_or_else(|| lb.name.clone()));
    }
    for finding in causes {
        for resource in &finding.resources {
            if !resources.contains(resource) {
                resources.push(resource.clone());
            }
        }
    }
    resources.iter().map(|r| chat(r)).collect()
}

/// The plan of a diagnose report, and the topic of its approval when it waits for one.
fn planned(report: &Report) -> Option<Plan<'_>> {
    match &report.remediation {
        Some(RemediationSection::Planned {
            plan,
            approval_topic,
            ..
        }) if !plan.actions.is_empty() => Some((plan.id.as_str(), approval_topic.as_deref())),
        _ => None,
    }
}

/// A plan's id, and the topic that takes its approval by id (approve mode only).
type Plan<'a> = (&'a str, Option<&'a str>);

/// Only a link elbmedic built: the S3 console, over HTTPS, with nothing that could end the
/// Markdown link early.
fn is_console_link(link: &str) -> bool {
    let console = [
        "https://console.aws.amazon.com/s3/object/",
        "https://console.amazonaws-us-gov.com/s3/object/",
        "https://console.amazonaws.cn/s3/object/",
    ];
    console.iter().any(|prefix| link.starts_with(prefix))
        && !link.contains([' ', ')', '(', '<', '>', '\n', '"', '`', '[', ']'])
}

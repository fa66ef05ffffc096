//! The report the on-call engineer reads: one [`Report`] value, rendered as plain text
//! (email), Markdown, or JSON. The JSON field names are a contract: `alarm`,
//! `load_balancer`, `verdict`, `findings[]` (`code`, `severity`, `title`, `evidence`, `fix`),
//! `checked[]`, `gaps[]`.

pub mod chat;
pub mod escape;
mod html;
pub mod link;
mod markdown;
pub mod remediation;
pub mod sns;
pub mod storm;
mod text;
mod wrap;

use serde::Serialize;

use crate::account::AccountRefusal;
use crate::alarm::{Alarm, AlarmState, Intake, LbKind, LbRef};
use crate::context::{Context, Owner};
use crate::diagnosis::{diagnose_in, Verdict, VerdictStatus};
use crate::finding::Finding;
use crate::picture::Picture;
use crate::rules::Check;
use crate::snapshot::{Gap, Snapshot};

pub use html::{render_html, render_html_page};
pub use markdown::render_markdown;
pub use text::render_text;
pub use wrap::wrap;

/// Version of the report's JSON shape.
pub const REPORT_VERSION: u32 = 1;

/// SNS rejects subjects of 100 characters or more.
pub const MAX_SUBJECT_CHARS: usize = 99;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
    /// A self-contained page: inline CSS and SVG, no script, nothing fetched.
    Html,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmSummary {
    pub name: String,
    pub state: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_change_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The account's alias, when the role that read it may list it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_alias: Option<String>,
    /// A composite alarm's rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The composite alarm that notified, when this alarm is one of its children.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_composite: Option<String>,
}

impl AlarmSummary {
    /// `210987654321 (prod-payments)`: the account, with its alias when known.
    pub fn account_line(&self) -> Option<String> {
        let account = self.account_id.as_deref()?;
        Some(match &self.account_alias {
            Some(alias) => format!("{account} ({alias})"),
            None => account.to_string(),
        })
    }

    pub fn of(alarm: &Alarm) -> Self {
        let metric = alarm.primary_metric();
        Self {
            name: alarm.alarm_name.clone(),
            state: alarm.state.as_str().into(),
            region: alarm.region.clone(),
            metric: metric
                .map(|m| m.metric_name.clone())
                .filter(|m| !m.is_empty()),
            namespace: metric
                .map(|m| m.namespace.clone())
                .filter(|n| !n.is_empty()),
            statistic: metric.and_then(|m| m.statistic.clone()),
            threshold: alarm.threshold,
            comparison: alarm.comparison.clone(),
            expression: alarm.expression.clone(),
            state_change_time: alarm.state_change_time.clone(),
            reason: alarm.reason.clone(),
            account_id: alarm.account_id.clone(),
            account_alias: None,
            rule: alarm.rule.clone(),
            via_composite: alarm.via_composite.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LbSummary {
    pub kind: LbKind,
    pub name: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
    /// `Ingress shop/checkout`, `Service shop/orders`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
}

impl LbSummary {
    /// `Ingress shop/checkout in EKS cluster shop-prod`: the Kubernetes owner, when known.
    pub fn owner_line(&self) -> Option<String> {
        let owner = self.owner.as_deref()?;
        Some(match &self.cluster {
            Some(cluster) => format!("{owner} in EKS cluster {cluster}"),
            None => owner.to_string(),
        })
    }

    fn of_ref(lb: &LbRef) -> Self {
        Self {
            kind: lb.kind,
            name: lb.name.clone(),
            id: lb.id.clone(),
            arn: None,
            dns_name: None,
            vpc_id: None,
            idle_timeout_seconds: None,
            owner: None,
            cluster: None,
            target_group: lb.target_group.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub report_version: u32,
    pub generator: String,
    pub alarm: AlarmSummary,
    pub load_balancer: Option<LbSummary>,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    pub checked: Vec<Check>,
    pub gaps: Vec<Gap>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub next_steps: Vec<String>,
    /// Changes CloudTrail recorded on the path that explain no finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_changes: Vec<String>,
    /// The plan (from `diagnose`) or what was changed (from `remediate`), when remediation is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<remediation::RemediationSection>,
    /// Set on a follow-up: the first report it adds late evidence to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<FirstReport>,
    /// The S3 console URL of this report's HTML page (`REPORT_BUCKET`), which needs a console
    /// login: never a public or presigned URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_report_url: Option<String>,
    /// The incident this report belongs to (set when incidents are kept): an update or a
    /// recovery is a short message in its thread, a changed cause says what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<crate::incident::note::IncidentNote>,
    /// What the HTML report draws; not part of the JSON (the findings carry the same facts).
    #[serde(skip)]
    pub picture: Option<Picture>,
}

/// The report a follow-up continues: its subject (the follow-up's subject repeats it, so mail
/// clients thread the two) and its SNS message id.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FirstReport {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The chat thread of the first report's incident, which the follow-up joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

fn generator() -> String {
    format!("elbmedic {}", env!("CARGO_PKG_VERSION"))
}

impl Report {
    /// Diagnoses an alarm against a snapshot of its load balancer.
    pub fn diagnosed(alarm: &Alarm, lb: &LbRef, snapshot: &Snapshot) -> Self {
        let ctx = Context::new(alarm, snapshot);
        let diagnosis = diagnose_in(&ctx);
        // A load balancer that could not be read has no paths to draw.
        let picture = snapshot
            .unread_load_balancer()
            .is_none()
            .then(|| Picture::of(&ctx));
        let s = &snapshot.load_balancer;
        let (owner, owner_gap) = Owner::read_tags(snapshot);
        let cluster = snapshot.cluster_name();
        Self {
            report_version: REPORT_VERSION,
            generator: generator(),
            alarm: AlarmSummary {
                account_alias: snapshot
                    .account_alias
                    .as_deref()
                    .and_then(crate::account::clean_alias),
                ..AlarmSummary::of(alarm)
            },
            load_balancer: Some(LbSummary {
                kind: s.kind,
                name: s.name.clone(),
                id: s.id.clone(),
                arn: s.arn.clone(),
                dns_name: s.dns_name.clone(),
                vpc_id: Some(s.vpc_id.clone()),
                idle_timeout_seconds: s.idle_timeout_seconds,
                owner: (owner != Owner::Unknown).then(|| owner.describe()),
                cluster,
                target_group: lb.target_group.clone(),
            }),
            verdict: diagnosis.verdict,
            findings: diagnosis.findings,
            checked: diagnosis.checked,
            gaps: snapshot.gaps.iter().cloned().chain(owner_gap).collect(),
            next_steps: diagnosis.next_steps,
            recent_changes: diagnosis.recent_changes,
            remediation: None,
            follow_up_of: None,
            full_report_url: None,
            incident: None,
            picture,
        }
    }

    /// The short report for an alarm that is not diagnosed (OK, INSUFFICIENT_DATA,
    /// unsupported); `None` for one that needs a snapshot.
    pub fn without_diagnosis(intake: &Intake) -> Option<Self> {
        let (status, headline, lb) = match intake {
            Intake::Diagnose { .. } => return None,
            Intake::Recovered {
                alarm,
                load_balancer,
            } => (
                VerdictStatus::Recovered,
                format!(
                    "{} is back to OK on {}",
                    alarm.alarm_name, load_balancer.name
                ),
                Some(load_balancer),
            ),
            Intake::Skipped {
                alarm,
                load_balancer,
                reason,
            } => (
                VerdictStatus::Skipped,
                format!("{} is INSUFFICIENT_DATA: {reason}", alarm.alarm_name),
                Some(load_balancer),
            ),
            Intake::Unsupported { alarm, reason } => (
                VerdictStatus::Unsupported,
                format!(
                    "{} is not an alarm elbmedic diagnoses: {reason}",
                    alarm.alarm_name
                ),
                None,
            ),
            Intake::Composite { alarm, children } => {
                let name = &alarm.alarm_name;
                match alarm.state {
                    AlarmState::Ok => (
                        VerdictStatus::Recovered,
                        format!("composite alarm {name} is back to OK"),
                        None,
                    ),
                    AlarmState::InsufficientData => (
                        VerdictStatus::Skipped,
                        format!("composite alarm {name} is INSUFFICIENT_DATA; there is nothing to diagnose"),
                        None,
                    ),
                    AlarmState::Alarm => (
                        VerdictStatus::Unsupported,
                        format!(
                            "{name} is a composite alarm; its child alarms ({}) are read from CloudWatch only in a live diagnosis. Offline, replay a child alarm's message",
                            if children.is_empty() { "none named".to_string() } else { children.join(", ") }
                        ),
                        None,
                    ),
                }
            }
        };
        Some(Self {
            report_version: REPORT_VERSION,
            generator: generator(),
            alarm: AlarmSummary::of(intake.alarm()),
            load_balancer: lb.map(LbSummary::of_ref),
            verdict: Verdict { status, headline },
            findings: Vec::new(),
            checked: Vec::new(),
            gaps: Vec::new(),
            next_steps: Vec::new(),
            recent_changes: Vec::new(),
            remediation: None,
            follow_up_of: None,
            full_report_url: None,
            incident: None,
            picture: None,
        })
    }

    /// The report for an alarm whose account cannot be read from this deployment: outside
    /// `ALLOWED_ACCOUNTS`, or its member role not assumed. Nothing was checked, and it says so.
    pub fn account_refused(alarm: &Alarm, lb: &LbRef, refusal: &AccountRefusal) -> Self {
        Self {
            report_version: REPORT_VERSION,
            generator: generator(),
            alarm: AlarmSummary::of(alarm),
            load_balancer: Some(LbSummary::of_ref(lb)),
            verdict: Verdict {
                status: VerdictStatus::Unsupported,
                headline: format!("{}: {}", alarm.alarm_name, refusal.headline()),
            },
            findings: Vec::new(),
            checked: Vec::new(),
            gaps: Vec::new(),
            next_steps: vec![
                refusal.next_step(),
                "Nothing about the load balancer was read, so nothing is ruled out.".into(),
            ],
            recent_changes: Vec::new(),
            remediation: None,
            follow_up_of: None,
            full_report_url: None,
            incident: None,
            picture: None,
        }
    }

    /// How the subject and the first lines name the account: its alias, else its id.
    pub fn account_label(&self) -> Option<&str> {
        self.alarm
            .account_alias
            .as_deref()
            .or(self.alarm.account_id.as_deref())
    }

    /// An SNS subject: starts with the verdict, under 100 characters, one line.
    pub fn subject(&self) -> String {
        if let Some(first) = &self.follow_up_of {
            return reply_subject(&first.subject, " (follow-up)");
        }
        // An update or a recovery replies to the incident's first report: one email thread.
        if let Some(incident) = self.incident.as_ref().filter(|i| i.is_short()) {
            return reply_subject(&incident.first_subject, "");
        }
        let (label, headline) = self.headline();
        let tag = match self.account_label() {
            Some(account) => format!("[elbmedic {account}]"),
            None => "[elbmedic]".into(),
        };
        let text = format!("{tag} {label}: {headline}");
        let clean = escape::one_line(&text);
        if clean.chars().count() <= MAX_SUBJECT_CHARS {
            return clean;
        }
        let mut cut: String = clean.chars().take(MAX_SUBJECT_CHARS - 3).collect();
        cut.truncate(cut.trim_end().len());
        cut + "..."
    }

    /// The first line: the remediation's outcome when there is one, else the verdict.
    pub fn headline(&self) -> (&'static str, &str) {
        match &self.remediation {
            Some(remediation::RemediationSection::Outcome(outcome)) => {
                (outcome.status.label(), &outcome.headline)
            }
            _ => (self.verdict.status.label(), &self.verdict.headline),
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => render_text(self),
            Format::Markdown => render_markdown(self),
            Format::Html => render_html(self),
            Format::Json => {
                serde_json::to_string_pretty(self)
                    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                    + "\n"
            }
        }
    }
}

/// A reply's subject: the first report's, as a reply, with `marker` ("(follow-up)"), so mail
/// clients put them in one thread. The first subject is cut, never the marker.
fn reply_subject(first: &str, marker: &str) -> String {
    let first = escape::one_line(first);
    let first = first.strip_prefix("Re: ").unwrap_or(&first);
    let room = MAX_SUBJECT_CHARS - "Re: ".len() - marker.len();
    let cut: String = if first.chars().count() <= room {
        first.to_string()
    } else {
        let cut: String = first.chars().take(room - 3).collect();
        format!("{}...", cut.trim_end())
    };
    format!("Re: {cut}{marker}")
}

#[cfg(test)]
mod tests;

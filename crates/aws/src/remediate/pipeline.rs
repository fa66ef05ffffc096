//! The remediation pipeline, beside the diagnosis's (`crate::pipeline`): every record of an
//! event from the remediation topic goes through one flow. The topic rule, an approval by id
//! (the plan `diagnose` kept in the ledger), the plan parsed once, the account scope, the
//! account reached, and then the plan's own run (lock, reconcile, apply, record). The
//! `remediate` function hands it the event; the CLI's in-process remediation enters at
//! [`remediate_plan`] with the plan it made. Publishing and the summary stay with the caller.

use elbmedic_engine::alarm::formats::topic_arn;
use elbmedic_engine::plan::message::{approval_of, PlanMessage, PlanParseError, Request};
use elbmedic_engine::plan::outcome::Outcome;
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::Report;
use serde_json::Value;

use super::plan_run::{configured_ledger, remediate, unreachable};
use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::ledger::{Ledger, LedgerError};
use crate::settings::{Config, Organization};

/// One run of the remediation pipeline.
pub struct Run<'a> {
    pub config: &'a Config,
    pub accounts: &'a Accounts,
    /// The deployment's own clients, where its ledger keeps the plans awaiting approval.
    pub home: &'a Clients,
    /// The deployment's own account: the remediation topic's (the function), or the caller's
    /// (the CLI).
    pub own_account: Option<&'a str>,
    /// The clock, read by the caller.
    pub now: i64,
    /// Names this run in the ledger's lock (the request id).
    pub run_id: &'a str,
}

/// What happened to one record.
#[derive(Debug)]
pub enum Handled {
    /// Not acted on, and nothing read: the reason is the answer.
    Refused {
        number: usize,
        refusal: RecordRefusal,
    },
    Remediated(Box<Remediated>),
}

/// A plan taken through its run: the report of its outcome, to publish.
#[derive(Debug)]
pub struct Remediated {
    /// The record's 1-based number in the event.
    pub number: usize,
    pub message: PlanMessage,
    pub report: Report,
    /// The ledger the run used: it marks the plan reported once the outcome is out.
    pub ledger: Option<Ledger>,
}

impl Remediated {
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.report.remediation {
            Some(RemediationSection::Outcome(outcome)) => Some(outcome),
            _ => None,
        }
    }
}

/// Why a record is not acted on. The function's resource policy is the real control (only
/// SNS, for the remediation topic, may invoke it); an envelope can be forged by a direct
/// invoker, so the topic rule is defence in depth.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordRefusal {
    #[error("a bare plan (not an SNS notification) is refused: remediate takes plans only from REMEDIATION_TOPIC_ARN")]
    BarePlan,
    #[error(
        "REMEDIATION_TOPIC_ARN is not set, so no record can be from it; remediate acts on none"
    )]
    NoRemediationTopic,
    #[error("the record is from topic {:?}, not REMEDIATION_TOPIC_ARN; refused", .topic.as_deref().unwrap_or("(none)"))]
    OtherTopic { topic: Option<String> },
    #[error("approval of {plan_id} refused: approvals by id need the ledger (LEDGER_TABLE); publish the approve command of the report instead")]
    ApprovalWithoutLedger { plan_id: String },
    #[error("approval of {plan_id} refused: the plan kept under that id is not that id's content")]
    ApprovalOfOtherContent { plan_id: String },
    #[error("approval of {plan_id} refused: no such plan awaits approval (never proposed by this deployment, or expired)")]
    ApprovalOfUnknownPlan { plan_id: String },
    #[error("approval of {plan_id} not taken: the ledger could not be read ({error})")]
    ApprovalUnread { plan_id: String, error: LedgerError },
    #[error(transparent)]
    NotAPlan(#[from] PlanParseError),
    #[error("the plan is for region {plan_region:?}; this deployment serves {region}")]
    OtherRegion { plan_region: String, region: String },
    #[error("the plan names no account; this deployment acts only in the account a plan names ({own} or one in ALLOWED_ACCOUNTS)")]
    NoAccount { own: String },
    #[error("the plan is for account {account:?}; this deployment serves {own} and the accounts in ALLOWED_ACCOUNTS")]
    OtherAccount { account: String, own: String },
}

/// The records of an SNS event, each the text of its message or the topic rule's refusal, in
/// the event's order: the pipeline's first stage, and what the caller walks.
pub fn records(run: &Run<'_>, payload: &Value) -> Vec<Result<String, RecordRefusal>> {
    messages(payload, run.config.remediation.topic_arn.as_deref())
}

/// Takes one record through the rest of the pipeline: approval by id, parse, account scope,
/// reach and the plan's run. One record at a time, and the caller publishes each outcome
/// before the next record runs: a replay of the same plan in one event then finds it
/// reported, and an invocation cut short has published what it did.
pub async fn handle_one(
    run: &Run<'_>,
    number: usize,
    record: Result<String, RecordRefusal>,
) -> Handled {
    let topic = run.config.remediation.topic_arn.as_deref();
    let plan = match record {
        Ok(text) => Box::pin(plan_of(run, &text)).await,
        Err(refusal) => Err(refusal),
    };
    let scoped = plan.and_then(|message| {
        match topic.and_then(|t| foreign_plan(&message, t, &run.config.organization)) {
            Some(refusal) => Err(refusal),
            None => Ok(message),
        }
    });
    match scoped {
        Ok(message) => {
            let remediated = Box::pin(remediate_plan(run, number, message)).await;
            Handled::Remediated(Box::new(remediated))
        }
        Err(refusal) => {
            tracing::error!(record = number, error = %refusal, "record refused");
            Handled::Refused { number, refusal }
        }
    }
}

/// Reaches the plan's own account (never the one a message claims: `remediate` checks the
/// plan against the account reached) and runs the plan there.
pub async fn remediate_plan(run: &Run<'_>, number: usize, message: PlanMessage) -> Remediated {
    let target = &message.plan.load_balancer;
    let reached = run
        .accounts
        .clients_for(
            run.own_account,
            target.account.as_deref(),
            &target.region,
            &message.alarm.alarm_name,
            run.now,
        )
        .await;
    let (report, ledger) = match reached {
        Err(refusal) => (unreachable(run.config, &message, &refusal), None),
        Ok(clients) => {
            let ledger = configured_ledger(&clients, &run.config.remediation);
            let reached = clients.member_account.as_deref().or(run.own_account);
            // Boxed: three gathers deep, and a runtime worker's stack is 2 MiB.
            let report = Box::pin(remediate(
                &clients,
                ledger.as_ref(),
                run.config,
                &message,
                reached,
                run.now,
                run.run_id,
            ))
            .await;
            (report, ledger)
        }
    };
    Remediated {
        number,
        message,
        report,
        ledger,
    }
}

/// The messages of an SNS event's records that come from the remediation topic; anything
/// else is refused with the reason: a bare plan, or a record of another topic, is never
/// acted on.
fn messages(
    payload: &Value,
    remediation_topic: Option<&str>,
) -> Vec<Result<String, RecordRefusal>> {
    let Some(records) = payload.get("Records").and_then(Value::as_array) else {
        return vec![Err(RecordRefusal::BarePlan)];
    };
    records
        .iter()
        .map(|record| {
            let topic = record.pointer("/Sns/TopicArn").and_then(Value::as_str);
            match (remediation_topic, topic) {
                (None, _) => Err(RecordRefusal::NoRemediationTopic),
                (Some(expected), Some(topic)) if topic == expected => Ok(record
                    .pointer("/Sns/Message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()),
                (Some(_), topic) => Err(RecordRefusal::OtherTopic {
                    topic: topic.map(str::to_string),
                }),
            }
        })
        .collect()
}

/// The plan a record carries, parsed once: the record's own, or, for an approval by id, the
/// one `diagnose` kept in the ledger when it proposed it, marked approved.
async fn plan_of(run: &Run<'_>, text: &str) -> Result<PlanMessage, RecordRefusal> {
    let Some(plan_id) = approval_of(text) else {
        return Ok(PlanMessage::parse(text)?);
    };
    let refused_id = plan_id.to_string();
    let Some(ledger) = configured_ledger(run.home, &run.config.remediation) else {
        return Err(RecordRefusal::ApprovalWithoutLedger {
            plan_id: refused_id,
        });
    };
    match ledger.proposal(plan_id, run.now).await {
        Ok(Some(stored)) => {
            let mut message = PlanMessage::parse(&stored)?;
            // Exactly the stored content is applied, and it must be the approved id's.
            if message.plan.id != plan_id || !message.plan.id_matches_content() {
                return Err(RecordRefusal::ApprovalOfOtherContent {
                    plan_id: refused_id,
                });
            }
            message.request = Request::Approved;
            Ok(message)
        }
        Ok(None) => Err(RecordRefusal::ApprovalOfUnknownPlan {
            plan_id: refused_id,
        }),
        Err(error) => Err(RecordRefusal::ApprovalUnread {
            plan_id: refused_id,
            error,
        }),
    }
}

/// Why a plan is not for this deployment: its load balancer in another region than the
/// remediation topic's, or in an account that is neither the topic's nor in
/// `ALLOWED_ACCOUNTS`, or in none. The plan's own account decides which account is reached;
/// `remediate` then checks the plan against the account actually reached.
fn foreign_plan(
    message: &PlanMessage,
    remediation_topic: &str,
    organization: &Organization,
) -> Option<RecordRefusal> {
    let topic = topic_arn(remediation_topic)?;
    let (region, own) = (topic.region, topic.account);
    let plan_region = message.plan.load_balancer.region.as_str();
    if plan_region != region {
        return Some(RecordRefusal::OtherRegion {
            plan_region: plan_region.to_string(),
            region: region.to_string(),
        });
    }
    let Some(account) = message.plan.load_balancer.account.as_deref() else {
        return Some(RecordRefusal::NoAccount {
            own: own.to_string(),
        });
    };
    let is_member = |account: &str| organization.allows(account);
    elbmedic_engine::account::scope(Some(account), Some(own), is_member)
        .err()
        .map(|_| RecordRefusal::OtherAccount {
            account: account.to_string(),
            own: own.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:elbmedic-remediation";

    fn record(topic: Option<&str>) -> Value {
        let mut sns = json!({"Type": "Notification", "Message": "{}"});
        if let Some(topic) = topic {
            sns["TopicArn"] = json!(topic);
        }
        json!({"EventSource": "aws:sns", "Sns": sns})
    }

    #[test]
    fn only_records_of_the_remediation_topic_are_taken() {
        let event = json!({"Records": [
            record(Some(TOPIC)),
            record(Some("arn:aws:sns:eu-west-1:111122223333:elbmedic-alarms")),
            record(None),
        ]});
        let taken = messages(&event, Some(TOPIC));
        assert!(taken[0].is_ok());
        assert!(taken[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("elbmedic-alarms"));
        assert!(taken[2]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("not REMEDIATION_TOPIC_ARN"));
        assert!(messages(&event, None).iter().all(Result::is_err));
        let bare = messages(&json!({"kind": "elbmedic-remediation-plan"}), Some(TOPIC));
        assert!(bare[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("bare plan"));
    }

    #[test]
    fn plans_for_another_region_or_account_are_refused_in_every_partition() {
        let s = elbmedic_engine::scenarios::find("nacl-ephemeral-node-subnets").unwrap();
        let intake = elbmedic_engine::alarm::parse_input(s.event.as_bytes())
            .unwrap()
            .remove(0)
            .unwrap();
        let elbmedic_engine::alarm::Intake::Diagnose {
            alarm,
            load_balancer,
        } = intake
        else {
            panic!()
        };
        let world = elbmedic_engine::snapshot::from_json(s.snapshot).unwrap();
        let findings = elbmedic_engine::diagnosis::diagnose(&alarm, &world).findings;
        let plan = elbmedic_engine::plan::plan(&world, &findings, &Default::default(), 1000, None);
        let message = PlanMessage::new(
            elbmedic_engine::plan::message::Request::Apply,
            &alarm,
            &load_balancer,
            &plan,
        );
        let own = format!(
            "arn:aws:sns:{}:{}:t",
            plan.load_balancer.region,
            alarm.account_id.clone().unwrap()
        );
        let none = Organization::default();
        assert_eq!(foreign_plan(&message, &own, &none), None);
        for (region, account) in [
            ("cn-north-1", alarm.account_id.clone().unwrap()),
            ("us-gov-west-1", alarm.account_id.clone().unwrap()),
            ("eusc-de-east-1", alarm.account_id.clone().unwrap()),
            (
                plan.load_balancer.region.as_str(),
                "999999999999".to_string(),
            ),
        ] {
            let topic = format!("arn:aws:sns:{region}:{account}:t");
            assert!(foreign_plan(&message, &topic, &none).is_some(), "{topic}");
        }
        // A plan of a member account in ALLOWED_ACCOUNTS is this deployment's.
        let central = format!("arn:aws:sns:{}:999999999999:t", plan.load_balancer.region);
        let members = Organization {
            allowed_accounts: [alarm.account_id.clone().unwrap()].into(),
            member_role_name: Some("elbmedic-member-remediate".into()),
            external_id: None,
        };
        assert_eq!(foreign_plan(&message, &central, &members), None);
    }
}

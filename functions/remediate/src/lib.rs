//! The `remediate` function: for each SNS record from the remediation topic, parse the plan,
//! gather the load balancer again, review the plan against that state, apply what is still
//! needed within the guardrails, verify, and publish the outcome to `REPORT_TOPIC_ARN`.
//!
//! The invocation fails (so Lambda retries it) only when an outcome could not be published.
//! A refused plan is a success: retrying cannot make it acceptable. Kept apart from `main` so
//! tests drive it in-process.

use elbmedic_aws::accounts::Accounts;
use elbmedic_aws::clients::{CallLimits, Clients, Regions};
use elbmedic_aws::publish::{deliver_later, publisher, PublishFailed};
use elbmedic_aws::remediate::{configured_ledger, remediate, reported, unreachable};
use elbmedic_aws::settings::{Config, Organization};
use elbmedic_engine::plan::message::{approval_of, PlanMessage, Request};
use elbmedic_engine::report::remediation::RemediationSection;
use serde_json::{json, Value};

pub struct Handler {
    config: Config,
    /// Clients per account and region, loaded on first use and kept for warm invocations.
    pub accounts: Accounts,
}

/// The messages of an SNS event's records that come from the remediation topic; anything
/// else is refused with the reason. The function's resource policy is the real control (only
/// SNS, for that topic, may invoke it); an envelope can be forged by a direct invoker, so this
/// is defence in depth: a bare plan, or a record of another topic, is never acted on.
fn messages(payload: &Value, remediation_topic: Option<&str>) -> Vec<Result<String, String>> {
    let Some(records) = payload.get("Records").and_then(Value::as_array) else {
        return vec![Err("a bare plan (not an SNS notification) is refused: remediate takes plans only from REMEDIATION_TOPIC_ARN".into())];
    };
    records
        .iter()
        .map(|record| {
            let topic = record.pointer("/Sns/TopicArn").and_then(Value::as_str);
            match (remediation_topic, topic) {
                (None, _) => Err("REMEDIATION_TOPIC_ARN is not set, so no record can be from it; remediate acts on none".into()),
                (Some(expected), Some(topic)) if topic == expected => Ok(record
                    .pointer("/Sns/Message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()),
                (Some(_), topic) => Err(format!(
                    "the record is from topic {:?}, not REMEDIATION_TOPIC_ARN; refused",
                    topic.unwrap_or("(none)")
                )),
            }
        })
        .collect()
}

/// Why a plan is not for this deployment: its load balancer in another region than the
/// remediation topic's, or in an account that is neither the topic's nor in
/// `ALLOWED_ACCOUNTS`, or in none. The plan's own account decides which account is reached;
/// `remediate` then checks the plan against the account actually reached.
fn foreign_plan(
    message: &PlanMessage,
    remediation_topic: &str,
    organization: &Organization,
) -> Option<String> {
    let topic = elbmedic_engine::alarm::formats::topic_arn(remediation_topic)?;
    let (region, account) = (topic.region, topic.account);
    let plan_region = message.plan.load_balancer.region.as_str();
    if plan_region != region {
        return Some(format!(
            "the plan is for region {plan_region:?}; this deployment serves {region}"
        ));
    }
    match message.plan.load_balancer.account.as_deref() {
        None => Some(format!(
            "the plan names no account; this deployment acts only in the account a plan names ({account} or one in ALLOWED_ACCOUNTS)"
        )),
        Some(other) if other != account && !organization.allows(other) => Some(format!(
            "the plan is for account {other:?}; this deployment serves {account} and the accounts in ALLOWED_ACCOUNTS"
        )),
        _ => None,
    }
}

impl Handler {
    pub fn new(config: Config) -> Self {
        let regions = Regions::new(CallLimits::default());
        Self {
            accounts: Accounts::new(regions, config.organization.clone()),
            config,
        }
    }

    pub fn remediation_topic(&self) -> Option<&str> {
        self.config.remediation.topic_arn.as_deref()
    }

    /// The plan an approval by id approves: the one `diagnose` kept in the ledger when it
    /// proposed it, marked approved; an error naming why there is none.
    async fn approved(&self, clients: &Clients, plan_id: &str, now: i64) -> Result<String, String> {
        let Some(ledger) = configured_ledger(clients, &self.config.remediation) else {
            return Err(format!("approval of {plan_id} refused: approvals by id need the ledger (LEDGER_TABLE); publish the approve command of the report instead"));
        };
        match ledger.proposal(plan_id, now).await {
            Ok(Some(stored)) => {
                let mut message = PlanMessage::parse(&stored)?;
                // Exactly the stored content is applied, and it must be the approved id's.
                if message.plan.id != plan_id || !message.plan.id_matches_content() {
                    return Err(format!("approval of {plan_id} refused: the plan kept under that id is not that id's content"));
                }
                message.request = Request::Approved;
                Ok(message.to_json())
            }
            Ok(None) => Err(format!("approval of {plan_id} refused: no such plan awaits approval (never proposed by this deployment, or expired)")),
            Err(error) => Err(format!("approval of {plan_id} not taken: the ledger could not be read ({error})")),
        }
    }

    /// Handles one invocation. `run_id` names this run in the ledger's lock (the request id).
    pub async fn handle(
        &self,
        payload: &Value,
        now: i64,
        run_id: &str,
    ) -> Result<Value, PublishFailed> {
        self.accounts.clear_logs().await;
        let topic = self.config.report_topic_arn.as_deref().unwrap_or_default();
        let publisher = publisher(&self.accounts.regions, topic).await;
        let mut summary = Vec::new();
        let mut failures = Vec::new();
        let remediation_topic = self.remediation_topic();
        // The remediation topic is the deployment's own: its account is ours.
        let own = remediation_topic
            .and_then(elbmedic_engine::alarm::formats::topic_arn)
            .map(|t| t.account);
        for (index, record) in messages(payload, remediation_topic).iter().enumerate() {
            // An approval by id stands for the plan diagnose kept in the ledger.
            let record = match record {
                Ok(text) => match approval_of(text) {
                    Some(plan_id) => self.approved(&publisher, plan_id, now).await,
                    None => Ok(text.clone()),
                },
                Err(error) => Err(error.clone()),
            };
            let parsed = record.and_then(|text| {
                let message = PlanMessage::parse(&text)?;
                let organization = &self.config.organization;
                match remediation_topic.and_then(|t| foreign_plan(&message, t, organization)) {
                    Some(reason) => Err(reason),
                    None => Ok(message),
                }
            });
            let message = match parsed {
                Ok(message) => message,
                Err(error) => {
                    tracing::error!(record = index + 1, error = %error, "record refused");
                    summary.push(json!({"record": index + 1, "error": error}));
                    continue;
                }
            };
            let reached = self
                .accounts
                .clients_for(
                    own,
                    message.plan.load_balancer.account.as_deref(),
                    &message.plan.load_balancer.region,
                    &message.alarm.alarm_name,
                    now,
                )
                .await;
            let (report, ledger) = match reached {
                Err(refusal) => (unreachable(&self.config, &message, &refusal), None),
                Ok(clients) => {
                    let ledger = configured_ledger(&clients, &self.config.remediation);
                    let reached = clients.member_account.as_deref().or(own);
                    // Boxed: three gathers deep, and a runtime worker's stack is 2 MiB.
                    let report = Box::pin(remediate(
                        &clients,
                        ledger.as_ref(),
                        &self.config,
                        &message,
                        reached,
                        now,
                        run_id,
                    ))
                    .await;
                    (report, ledger)
                }
            };
            let Some(RemediationSection::Outcome(outcome)) = &report.remediation else {
                continue;
            };
            tracing::info!(
                plan = %outcome.plan_id,
                load_balancer = %message.plan.load_balancer.id,
                status = ?outcome.status,
                headline = %outcome.headline,
                "remediation"
            );
            let mut entry = json!({
                "record": index + 1,
                "plan": outcome.plan_id,
                "status": outcome.status,
                "headline": outcome.headline,
                "steps": outcome.steps.iter().map(|s| json!({"action": s.description, "status": s.status})).collect::<Vec<_>>(),
            });
            // The outcome joins the chat thread of the alarm episode it remedies.
            let unique = format!("{run_id}#{}", index + 1);
            let delivering = deliver_later(
                &self.accounts.regions,
                &publisher,
                &self.config,
                &report,
                &unique,
                now,
            );
            match delivering.await {
                Ok(published) => {
                    entry["message_id"] = json!(published.message_id);
                    reported(ledger.as_ref(), &report, &message, now).await;
                }
                Err(error) => {
                    tracing::error!(error = %error, "outcome not published");
                    failures.push(error.to_string());
                }
            }
            summary.push(entry);
        }
        if !failures.is_empty() {
            return Err(PublishFailed::of(failures, summary.len()));
        }
        Ok(json!({ "records": summary }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(taken[1].as_ref().unwrap_err().contains("elbmedic-alarms"));
        assert!(taken[2]
            .as_ref()
            .unwrap_err()
            .contains("not REMEDIATION_TOPIC_ARN"));
        assert!(messages(&event, None).iter().all(Result::is_err));
        let bare = messages(&json!({"kind": "elbmedic-remediation-plan"}), Some(TOPIC));
        assert!(bare[0].as_ref().unwrap_err().contains("bare plan"));
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

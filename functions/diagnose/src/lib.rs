//! The `diagnose` function: for each record of an SNS event, parse the alarm, gather the
//! load balancer's snapshot, diagnose, and publish the report to `REPORT_TOPIC_ARN`.
//!
//! The invocation fails (so Lambda retries it) only when a report could not be published: a
//! partial diagnosis, with gaps, is still a success, and a malformed event is logged, not
//! retried, since a retry cannot fix it. Kept apart from `main` so tests drive it in-process.

use std::collections::HashMap;

use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::composite;
use elbmedic_aws::concurrent::join_all;
use elbmedic_aws::pipeline;
use elbmedic_aws::publish::publish_report;
use elbmedic_aws::remediate;
use elbmedic_engine::alarm::{parse_input, Intake};
use elbmedic_engine::plan::config::RemediationConfig;
use elbmedic_engine::plan::message::PlanMessage;
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::Snapshot;
use serde_json::{json, Value};
use tokio::sync::Mutex;

pub use elbmedic_aws::settings::{account_of_function, topic_region, Config, ConfigError};

#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} reports could not be published: {detail}")]
pub struct PublishFailed {
    pub failed: usize,
    pub total: usize,
    pub detail: String,
}

pub struct Handler {
    config: Config,
    remediation: RemediationConfig,
    /// Clients per region, loaded on first use and kept for warm invocations.
    clients: Mutex<HashMap<String, Clients>>,
}

impl Handler {
    pub fn new(config: Config, remediation: RemediationConfig) -> Self {
        Self {
            config,
            remediation,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Every IAM action this handler's clients have called, in every region, since it was
    /// built: what the template's role must grant (tests/iam.rs checks it).
    pub async fn actions(&self) -> std::collections::BTreeSet<String> {
        let cache = self.clients.lock().await;
        cache.values().flat_map(|c| c.log.actions_ever()).collect()
    }

    async fn clients(&self, region: &str) -> Clients {
        let mut cache = self.clients.lock().await;
        if let Some(clients) = cache.get(region) {
            return clients.clone();
        }
        let limits = CallLimits::default();
        let clients = Clients::load(region, limits).await;
        cache.insert(region.to_string(), clients.clone());
        clients
    }

    /// Handles one invocation. `own_account` comes from the function's ARN; `now` from the clock.
    pub async fn handle(
        &self,
        payload: &Value,
        own_account: Option<&str>,
        now: i64,
    ) -> Result<Value, PublishFailed> {
        // The call log is per invocation (a warm instance must not grow it forever), and the
        // records are diagnosed concurrently: cleared once, here, not per record.
        for clients in self.clients.lock().await.values() {
            clients.log.clear();
        }
        let bytes = serde_json::to_vec(payload).unwrap_or_default();
        let records = match parse_input(&bytes) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(error = %error, "the event is not an SNS alarm event; nothing to do");
                return Ok(json!({"records": [], "error": error.to_string()}));
            }
        };
        let topic = &self.config.report_topic_arn;
        let publisher = self
            .clients(topic_region(topic).unwrap_or("us-east-1"))
            .await;
        let mut summary = Vec::new();
        let mut failures = Vec::new();
        let mut intakes = Vec::new();
        for (index, record) in records.into_iter().enumerate() {
            match record {
                Ok(intake @ Intake::Composite { .. }) => {
                    let alarm = intake.alarm();
                    if let (Some(theirs), Some(own)) = (alarm.account_id.as_deref(), own_account) {
                        if theirs != own {
                            // Its children live in that account, out of this role's reach.
                            let reason = format!("composite alarm of account {theirs}; elbmedic runs in account {own} and can only read the child alarms there. Deploy elbmedic in account {theirs} and point this alarm at that deployment's alarm topic");
                            intakes.push((
                                index,
                                Intake::Unsupported {
                                    alarm: alarm.clone(),
                                    reason,
                                },
                            ));
                            continue;
                        }
                    }
                    let clients = self.clients(&alarm.region).await;
                    let max = self.config.max_composite_children;
                    for child in composite::expand(&clients, intake, max).await {
                        intakes.push((index, child));
                    }
                }
                Ok(intake) => intakes.push((index, intake)),
                Err(error) => {
                    tracing::error!(record = index + 1, error = %error, "record skipped: not a readable alarm");
                    summary.push(json!({"record": index + 1, "error": error.to_string()}));
                }
            }
        }
        // Every record's diagnosis at once: each gather is bounded by the deadline, so an
        // event (or a composite alarm) of several load balancers fits the function's timeout.
        let prepared = join_all(
            intakes
                .iter()
                .map(|(_, intake)| self.prepare(intake, own_account, now))
                .collect(),
        )
        .await;
        let mut plans = Vec::new();
        for ((index, intake), (report, plan)) in intakes.iter().zip(prepared) {
            let mut entry = json!({
                "record": index + 1,
                "alarm": intake.alarm().alarm_name,
                "verdict": report.verdict.status,
                "headline": report.verdict.headline,
                "findings": report.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(),
                "gaps": report.gaps.len(),
            });
            if pipeline::worth_publishing(intake) {
                match publish_report(&publisher.sns, topic, &report).await {
                    Ok(published) => {
                        entry["message_id"] = json!(published.message_id);
                        entry["trimmed"] = json!(published.trimmed);
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "report not published");
                        failures.push(error.to_string());
                    }
                }
            }
            tracing::info!(
                alarm = %intake.alarm().alarm_name,
                verdict = ?report.verdict.status,
                findings = ?entry["findings"],
                gaps = report.gaps.len(),
                "diagnosed"
            );
            plans.extend(plan);
            summary.push(entry);
        }
        // Plans go out only once every report is: a failed report fails the invocation, and
        // Lambda's retry must not send a plan a second time.
        if failures.is_empty() {
            self.send_plans(&publisher, &plans).await;
        } else if !plans.is_empty() {
            tracing::warn!(
                plans = plans.len(),
                "plans held back: a report failed, and the retry will send them"
            );
        }
        if !failures.is_empty() {
            return Err(PublishFailed {
                failed: failures.len(),
                total: summary.len(),
                detail: failures.join("; "),
            });
        }
        Ok(json!({ "records": summary }))
    }

    /// One record's report and, when remediation proposes one, the plan to send after it.
    async fn prepare(
        &self,
        intake: &Intake,
        own_account: Option<&str>,
        now: i64,
    ) -> (Report, Option<PlanMessage>) {
        let (mut report, world) = self.report(intake, own_account, now).await;
        let plan = match (intake, &world) {
            (
                Intake::Diagnose {
                    alarm,
                    load_balancer,
                },
                Some(world),
            ) => remediate::proposal(
                &self.remediation,
                alarm,
                load_balancer,
                world,
                &mut report,
                now,
            ),
            _ => None,
        };
        (report, plan)
    }

    async fn send_plans(&self, publisher: &Clients, plans: &[PlanMessage]) {
        let Some(topic) = self.remediation.topic_arn.as_deref() else {
            return;
        };
        for plan in plans {
            match remediate::send_plan(&publisher.sns, topic, plan).await {
                Ok(id) => {
                    tracing::info!(message_id = %id, plan = %plan.plan.id, mode = self.remediation.mode.as_str(), "plan sent to remediate")
                }
                Err(error) => {
                    tracing::error!(topic, plan = %plan.plan.id, error = %error, "the plan could not be sent to remediate")
                }
            }
        }
    }

    async fn report(
        &self,
        intake: &Intake,
        own_account: Option<&str>,
        now: i64,
    ) -> (Report, Option<Snapshot>) {
        if let (
            Intake::Diagnose {
                alarm,
                load_balancer,
            },
            Some(own),
        ) = (intake, own_account)
        {
            if alarm.account_id.as_deref().is_some_and(|a| a != own) {
                return (Report::cross_account(alarm, load_balancer, own), None);
            }
        }
        let clients = match intake {
            Intake::Diagnose { alarm, .. } => Some(self.clients(&alarm.region).await),
            _ => None,
        };
        let deadline = self.config.gather_deadline;
        let ledger = self.remediation.ledger_table.as_deref();
        pipeline::report_for(intake, clients.as_ref(), now, deadline, ledger).await
    }
}

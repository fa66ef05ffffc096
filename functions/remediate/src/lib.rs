//! The `remediate` function: for each SNS record from the remediation topic, parse the plan,
//! gather the load balancer again, review the plan against that state, apply what is still
//! needed within the guardrails, verify, and publish the outcome to `REPORT_TOPIC_ARN`.
//!
//! The invocation fails (so Lambda retries it) only when an outcome could not be published.
//! A refused plan is a success: retrying cannot make it acceptable. Kept apart from `main` so
//! tests drive it in-process.

use std::collections::HashMap;

use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::publish::publish_report;
use elbmedic_aws::remediate::{configured_ledger, remediate, Settings};
use elbmedic_aws::settings::{topic_region, Config};
use elbmedic_engine::plan::config::RemediationConfig;
use elbmedic_engine::plan::message::PlanMessage;
use elbmedic_engine::report::remediation::RemediationSection;
use serde_json::{json, Value};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} outcomes could not be published: {detail}")]
pub struct PublishFailed {
    pub failed: usize,
    pub total: usize,
    pub detail: String,
}

pub struct Handler {
    config: Config,
    remediation: RemediationConfig,
    clients: Mutex<HashMap<String, Clients>>,
}

/// The messages of an SNS event's records; a bare plan (a direct invocation) is one message.
fn messages(payload: &Value) -> Vec<String> {
    match payload.get("Records").and_then(Value::as_array) {
        Some(records) => records
            .iter()
            .map(|r| {
                r.pointer("/Sns/Message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect(),
        None => vec![payload.to_string()],
    }
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
        let clients = Clients::load(region, CallLimits::default()).await;
        cache.insert(region.to_string(), clients.clone());
        clients
    }

    /// Handles one invocation. `run_id` names this run in the ledger's lock (the request id).
    pub async fn handle(
        &self,
        payload: &Value,
        now: i64,
        run_id: &str,
    ) -> Result<Value, PublishFailed> {
        let topic = &self.config.report_topic_arn;
        let publisher = self
            .clients(topic_region(topic).unwrap_or("us-east-1"))
            .await;
        let settings = Settings::new(&self.remediation, self.config.gather_deadline);
        let mut summary = Vec::new();
        let mut failures = Vec::new();
        for (index, text) in messages(payload).iter().enumerate() {
            let message = match PlanMessage::parse(text) {
                Ok(message) => message,
                Err(error) => {
                    tracing::error!(record = index + 1, error = %error, "record skipped: not a plan");
                    summary.push(json!({"record": index + 1, "error": error}));
                    continue;
                }
            };
            let clients = self.clients(&message.plan.load_balancer.region).await;
            clients.log.clear();
            let ledger = configured_ledger(&clients, &self.remediation);
            let report =
                remediate(&clients, ledger.as_ref(), &settings, &message, now, run_id).await;
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
            match publish_report(&publisher.sns, topic, &report).await {
                Ok(published) => entry["message_id"] = json!(published.message_id),
                Err(error) => {
                    tracing::error!(error = %error, "outcome not published");
                    failures.push(error.to_string());
                }
            }
            summary.push(entry);
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
}

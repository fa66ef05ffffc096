//! The `remediate` function: each record of an SNS event goes through the remediation
//! pipeline (`elbmedic_aws::remediate`: the topic rule, approval by id, the plan parsed once,
//! the account scope, then the plan's run under the lock); this publishes each outcome to
//! `REPORT_TOPIC_ARN`, and marks it reported in the ledger, before the next record runs.
//!
//! The invocation fails (so Lambda retries it) only when an outcome could not be published.
//! A refused plan is a success: retrying cannot make it acceptable. Kept apart from `main` so
//! tests drive it in-process.

use elbmedic_aws::accounts::Accounts;
use elbmedic_aws::clients::{CallLimits, Clients, Regions};
use elbmedic_aws::publish::{deliver_later, publisher, PublishFailed};
use elbmedic_aws::remediate::{self, reported, Handled, Remediated, Run};
use elbmedic_aws::settings::Config;
use serde_json::{json, Value};

pub struct Handler {
    config: Config,
    /// Clients per account and region, loaded on first use and kept for warm invocations.
    pub accounts: Accounts,
}

/// One outcome's line in the invocation's summary, and why it was not published, if it was not.
struct Delivered {
    entry: Value,
    error: Option<String>,
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
        // The remediation topic is the deployment's own: its account is ours.
        let own = self
            .remediation_topic()
            .and_then(elbmedic_engine::alarm::formats::topic_arn)
            .map(|t| t.account);
        let run = Run {
            config: &self.config,
            accounts: &self.accounts,
            home: &publisher,
            own_account: own,
            now,
            run_id,
        };
        let mut summary = Vec::new();
        let mut failures = Vec::new();
        // One record at a time, each outcome published before the next record runs.
        for (index, record) in remediate::records(&run, payload).into_iter().enumerate() {
            match Box::pin(remediate::handle_one(&run, index + 1, record)).await {
                Handled::Refused { number, refusal } => {
                    summary.push(json!({"record": number, "error": refusal.to_string()}));
                }
                Handled::Remediated(remediated) => {
                    let delivered = self.deliver(&publisher, &remediated, run_id, now);
                    if let Some(delivered) = Box::pin(delivered).await {
                        failures.extend(delivered.error);
                        summary.push(delivered.entry);
                    }
                }
            }
        }
        if !failures.is_empty() {
            return Err(PublishFailed::of(failures, summary.len()));
        }
        Ok(json!({ "records": summary }))
    }

    /// Publishes one outcome and, once it is out, marks the plan reported. The summary entry,
    /// with the delivery's error when it failed; `None` when there is no outcome.
    async fn deliver(
        &self,
        publisher: &Clients,
        remediated: &Remediated,
        run_id: &str,
        now: i64,
    ) -> Option<Delivered> {
        let Remediated {
            number,
            message,
            report,
            ledger,
        } = remediated;
        let outcome = remediated.outcome()?;
        tracing::info!(
            plan = %outcome.plan_id,
            load_balancer = %message.plan.load_balancer.id,
            status = ?outcome.status,
            headline = %outcome.headline,
            "remediation"
        );
        let mut entry = json!({
            "record": number,
            "plan": outcome.plan_id,
            "status": outcome.status,
            "headline": outcome.headline,
            "steps": outcome.steps.iter().map(|s| json!({"action": s.description, "status": s.status})).collect::<Vec<_>>(),
        });
        // The outcome joins the chat thread of the alarm episode it remedies.
        let unique = format!("{run_id}#{number}");
        let regions = &self.accounts.regions;
        let delivering = deliver_later(regions, publisher, &self.config, report, &unique, now);
        match delivering.await {
            Ok(published) => {
                entry["message_id"] = json!(published.message_id);
                reported(ledger.as_ref(), report, message, now).await;
                Some(Delivered { entry, error: None })
            }
            Err(error) => {
                tracing::error!(error = %error, "outcome not published");
                Some(Delivered {
                    entry,
                    error: Some(error.to_string()),
                })
            }
        }
    }
}

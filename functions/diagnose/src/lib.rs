//! The `diagnose` function: each SNS event goes through the shared pipeline
//! (`elbmedic_aws::pipeline`); this publishes the reports to `REPORT_TOPIC_ARN`, then the
//! plans to the remediation topic, then each live diagnosis to the follow-up queue. An SQS
//! event from that queue is the follow-up pass (`elbmedic_aws::follow_up`).
//!
//! The invocation fails (so Lambda retries it) only when a report could not be published: a
//! partial diagnosis, with gaps, is still a success, and a malformed event is logged, not
//! retried, since a retry cannot fix it. Kept apart from `main` so tests drive it in-process.

use elbmedic_aws::accounts::Accounts;
use elbmedic_aws::clients::{CallLimits, Regions};
use elbmedic_aws::follow_up;
use elbmedic_aws::pipeline::{self, Facts, Handled, OwnAccount, Run};
use elbmedic_aws::publish::{failures, publish_all, send_plans, Delivery, Outlets, PublishFailed};
use elbmedic_aws::settings::topic_region;
use elbmedic_engine::alarm::parse_value;
use elbmedic_engine::plan::proposal::Handoff;
use serde_json::{json, Value};

pub use elbmedic_aws::settings::{account_of_function, Config, ConfigError, Role};

pub struct Handler {
    config: Config,
    /// Clients per account and region, loaded on first use and kept for warm invocations.
    pub accounts: Accounts,
}

impl Handler {
    pub fn new(config: Config) -> Self {
        let regions = Regions::new(CallLimits::default());
        Self {
            accounts: Accounts::new(regions, config.organization.clone()),
            config,
        }
    }

    /// Handles one invocation. `own_account` comes from the function's ARN; `now` from the clock.
    pub async fn handle(
        &self,
        payload: &Value,
        own_account: Option<&str>,
        now: i64,
    ) -> Result<Value, PublishFailed> {
        self.accounts.clear_logs().await;
        if let Some(queued) = follow_up::queued_records(payload) {
            // Boxed: the pass's future is deep, and the handler's is deep already.
            return Ok(Box::pin(self.follow_up(&queued, own_account, now)).await);
        }
        let records = match parse_value(payload) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(error = %error, "the event is not an SNS alarm event; nothing to do");
                return Ok(json!({"records": [], "error": error.to_string()}));
            }
        };
        let run = Run {
            config: &self.config,
            facts: Facts::Live(&self.accounts),
            handoff: Handoff::Topic,
            own_account: OwnAccount::known(own_account.map(str::to_string)),
            now,
            run_id: "diagnose",
        };
        // Boxed: the pipeline's future is deep (every round of the gather), and a runtime
        // worker's stack is 2 MiB.
        let handled = Box::pin(pipeline::handle(&run, records)).await;
        let topic = self.config.report_topic_arn.as_deref().unwrap_or_default();
        // Alarms of one second are one moment: a redelivered event overwrites its own page.
        let invocation = format!("diagnose-{now}");
        let outlets = Outlets::of(&self.config);
        let delivering = publish_all(
            &self.accounts.regions,
            topic,
            outlets,
            &handled,
            &invocation,
            now,
        );
        let deliveries = Box::pin(delivering).await;
        if let Some(failed) = failures(&deliveries) {
            if handled
                .iter()
                .any(|h| matches!(h, Handled::Reported(r) if r.plan.is_some()))
            {
                tracing::warn!("plans held back: a report failed, and the retry will send them");
            }
            return Err(failed);
        }
        // Plans go out only once every report is: Lambda's retry must not send one twice.
        send_plans(&self.accounts.regions, &self.config.remediation, &handled).await;
        let follow_ups = match &self.config.follow_up {
            Some(queue) => {
                let fallback = topic_region(topic).unwrap_or("us-east-1");
                Box::pin(follow_up::send_all(
                    &self.accounts.regions,
                    queue,
                    fallback,
                    &handled,
                    &deliveries,
                ))
                .await
            }
            None => 0,
        };
        let summary: Vec<Value> = handled.iter().zip(&deliveries).map(summary).collect();
        Ok(json!({ "records": summary, "follow_ups_queued": follow_ups }))
    }

    /// The follow-up pass over an SQS event: the answer is SQS's partial-batch response, so
    /// only a record whose report could not be published is retried.
    async fn follow_up(
        &self,
        queued: &[follow_up::QueuedRecord],
        own_account: Option<&str>,
        now: i64,
    ) -> Value {
        let outcomes = follow_up::run(&self.accounts, own_account, &self.config, queued, now).await;
        let failures: Vec<Value> = outcomes
            .iter()
            .filter(|(_, outcome)| matches!(outcome, follow_up::Outcome::Failed(_)))
            .map(|(id, _)| json!({ "itemIdentifier": id }))
            .collect();
        // Exactly SQS's partial-batch response: each record's outcome is in the logs.
        json!({ "batchItemFailures": failures })
    }
}

/// The invocation's result for one record.
fn summary((handled, delivery): (&Handled, &Delivery)) -> Value {
    let record = match handled {
        Handled::Refused { number, error } => {
            return json!({"record": number, "error": error.to_string()})
        }
        Handled::Reported(record) => record,
    };
    let report = &record.report;
    let mut entry = json!({
        "record": record.number,
        "alarm": record.intake.alarm().alarm_name,
        "verdict": report.verdict.status,
        "headline": report.verdict.headline,
        "findings": report.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(),
        "gaps": report.gaps.len(),
    });
    if let Delivery::Published(published) = delivery {
        entry["message_id"] = json!(published.message_id);
        entry["trimmed"] = json!(published.trimmed);
        if let Some(key) = &published.page_key {
            entry["page_key"] = json!(key);
        }
        if let Some(id) = &published.chat_message_id {
            entry["chat_message_id"] = json!(id);
        }
    }
    entry
}

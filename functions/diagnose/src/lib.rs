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
use elbmedic_aws::incidents::{self, Send};
use elbmedic_aws::ledger::Ledger;
use elbmedic_aws::pipeline::{self, Facts, Handled, OwnAccount, Run};
use elbmedic_aws::publish::{
    failures, page_url, publish_all, send_plans, Delivery, Outlets, PublishFailed,
};
use elbmedic_aws::settings::topic_region;
use elbmedic_engine::alarm::{parse_queued, parse_value, Intake, IntakeError};
use elbmedic_engine::plan::proposal::Handoff;
use serde_json::{json, Value};

pub use elbmedic_aws::settings::{account_of_function, Config, ConfigError, Role};

pub struct Handler {
    config: Config,
    /// Clients per account and region, loaded on first use and kept for warm invocations.
    pub accounts: Accounts,
    /// Names this process's invocations in incident claims: unique per execution environment
    /// (its process id and start time), counted per invocation.
    nonce: String,
    invocations: std::sync::atomic::AtomicU64,
}

impl Handler {
    pub fn new(config: Config) -> Self {
        let regions = Regions::new(CallLimits::default());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            accounts: Accounts::new(regions, config.organization.clone()),
            config,
            nonce: format!("{:x}-{started:x}", std::process::id()),
            invocations: std::sync::atomic::AtomicU64::new(0),
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
            return Ok(Box::pin(self.queued(&queued, own_account, now)).await);
        }
        let records = match parse_value(payload) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(error = %error, "the event is not an SNS alarm event; nothing to do");
                return Ok(json!({"records": [], "error": error.to_string()}));
            }
        };
        // Alarms of one second are one moment: a redelivered event overwrites its own page.
        let invocation = format!("diagnose-{now}");
        let done = Box::pin(self.diagnose(records, own_account, now, &invocation)).await;
        if let Some(failed) = failures(&done.deliveries) {
            if done
                .handled
                .iter()
                .any(|h| matches!(h, Handled::Reported(r) if r.plan.is_some()))
            {
                tracing::warn!("plans held back: a report failed, and the retry will send them");
            }
            return Err(failed);
        }
        Ok(Box::pin(self.hand_on(&done)).await)
    }

    /// The records diagnosed, claimed in their incidents and published.
    async fn diagnose(
        &self,
        records: Vec<Result<Intake, IntakeError>>,
        own_account: Option<&str>,
        now: i64,
        invocation: &str,
    ) -> Diagnosed {
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
        let mut handled = Box::pin(pipeline::handle(&run, records)).await;
        let topic = self.config.report_topic_arn.as_deref().unwrap_or_default();
        let outlets = Outlets::of(&self.config);
        let publisher_region = topic_region(topic).unwrap_or("us-east-1").to_string();
        let ledger = self.incident_ledger(&publisher_region).await;
        let run_id = format!(
            "{}-{}",
            self.nonce,
            self.invocations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (sends, claims): (Vec<Send>, Vec<_>) = match &ledger {
            Some(ledger) => {
                let page = |index: usize, record: &pipeline::Record| {
                    let unique = format!("{invocation}#{}", index + 1);
                    page_url(outlets, &publisher_region, &record.report, now, &unique)
                };
                let settings = self.config.incidents;
                Box::pin(incidents::claim_all(
                    ledger,
                    settings,
                    &mut handled,
                    &run_id,
                    now,
                    page,
                ))
                .await
            }
            None => incidents::unclaimed(&handled),
        }
        .into_iter()
        .unzip();
        let delivering = publish_all(
            &self.accounts.regions,
            topic,
            outlets,
            &handled,
            &sends,
            invocation,
            now,
        );
        let deliveries = Box::pin(delivering).await;
        if let Some(ledger) = &ledger {
            for (claim, delivery) in claims.iter().zip(&deliveries) {
                let Some(claim) = claim else { continue };
                let (delivered, url) = match delivery {
                    Delivery::Published(published) => (true, published.page_url.clone()),
                    Delivery::Failed(_) | Delivery::Kept => (false, None),
                };
                incidents::settle(ledger, claim, delivered, url, now).await;
            }
        }
        Diagnosed {
            handled,
            deliveries,
        }
    }

    /// The ledger incidents are kept in: `LEDGER_TABLE`, unless incidents are off.
    async fn incident_ledger(&self, region: &str) -> Option<Ledger> {
        let table = self.config.remediation.ledger_table.as_deref()?;
        if self.config.incidents.quiet_minutes == 0 {
            return None;
        }
        let clients = self.accounts.regions.get(region).await;
        Some(Ledger::new(clients.dynamodb.clone(), table))
    }

    /// Once reports are out: the plans to remediate, then the follow-ups, for the records
    /// whose report went out; the invocation's summary.
    async fn hand_on(&self, done: &Diagnosed) -> Value {
        let topic = self.config.report_topic_arn.as_deref().unwrap_or_default();
        // Plans go out only once their report is: a retry must not send one twice.
        send_plans(
            &self.accounts.regions,
            &self.config.remediation,
            &done.handled,
            &done.deliveries,
        )
        .await;
        let follow_ups = match &self.config.follow_up {
            Some(queue) => {
                let fallback = topic_region(topic).unwrap_or("us-east-1");
                Box::pin(follow_up::send_all(
                    &self.accounts.regions,
                    queue,
                    fallback,
                    &done.handled,
                    &done.deliveries,
                ))
                .await
            }
            None => 0,
        };
        let summary: Vec<Value> = done
            .handled
            .iter()
            .zip(&done.deliveries)
            .map(summary)
            .collect();
        json!({ "records": summary, "follow_ups_queued": follow_ups })
    }

    /// An SQS event: alarms from `ALARM_QUEUE_ARN`, or the follow-up pass. The answer is
    /// SQS's partial-batch response, so only a record that failed is retried.
    async fn queued(
        &self,
        queued: &[follow_up::QueuedRecord],
        own_account: Option<&str>,
        now: i64,
    ) -> Value {
        let (alarms, others): (Vec<_>, Vec<_>) = queued.iter().cloned().partition(|r| {
            self.config
                .alarm_queue
                .as_ref()
                .is_some_and(|q| q.is_source(&r.source_arn))
        });
        let mut failures = Vec::new();
        if !alarms.is_empty() {
            failures.extend(Box::pin(self.queued_alarms(&alarms, own_account, now)).await);
        }
        if !others.is_empty() {
            failures.extend(Box::pin(self.follow_up(&others, own_account, now)).await);
        }
        let failures: Vec<Value> = failures
            .into_iter()
            .map(|id| json!({ "itemIdentifier": id }))
            .collect();
        // Exactly SQS's partial-batch response: each record's outcome is in the logs.
        json!({ "batchItemFailures": failures })
    }

    /// Alarm records from the alarm queue, diagnosed like SNS records; the message ids of
    /// those that failed: unreadable (so that they reach the dead-letter queue, where they can
    /// be read), or whose report could not be published.
    async fn queued_alarms(
        &self,
        records: &[follow_up::QueuedRecord],
        own_account: Option<&str>,
        now: i64,
    ) -> Vec<String> {
        let intakes: Vec<Result<Intake, IntakeError>> = records
            .iter()
            .enumerate()
            .map(|(index, r)| parse_queued(index + 1, &r.body))
            .collect();
        let mut failed: Vec<String> = Vec::new();
        for (record, intake) in records.iter().zip(&intakes) {
            if let Err(error) = intake {
                tracing::error!(message_id = %record.message_id, error = %error, "queued record is not an alarm; it fails alone");
                failed.push(record.message_id.clone());
            }
        }
        let invocation = format!(
            "diagnose-{now}-{}",
            records.first().map_or("", |r| r.message_id.as_str())
        );
        let done = Box::pin(self.diagnose(intakes, own_account, now, &invocation)).await;
        for (handled, delivery) in done.handled.iter().zip(&done.deliveries) {
            if let (Handled::Reported(record), Delivery::Failed(error)) = (handled, delivery) {
                let id = &records[record.number - 1].message_id;
                tracing::error!(message_id = %id, error = %error, "report not published; SQS retries the record");
                if !failed.contains(id) {
                    failed.push(id.clone());
                }
            }
        }
        let summary = Box::pin(self.hand_on(&done)).await;
        tracing::info!(summary = %summary, "queued alarms handled");
        failed
    }

    /// The follow-up pass over an SQS event's records: the ids of those to retry (a
    /// follow-up report that could not be published).
    async fn follow_up(
        &self,
        queued: &[follow_up::QueuedRecord],
        own_account: Option<&str>,
        now: i64,
    ) -> Vec<String> {
        let outcomes = follow_up::run(&self.accounts, own_account, &self.config, queued, now).await;
        outcomes
            .into_iter()
            .filter(|(_, outcome)| matches!(outcome, follow_up::Outcome::Failed(_)))
            .map(|(id, _)| id)
            .collect()
    }
}

/// What one batch of records became.
struct Diagnosed {
    handled: Vec<Handled>,
    deliveries: Vec<Delivery>,
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

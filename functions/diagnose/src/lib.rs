//! The `diagnose` function: for each record of an SNS event, parse the alarm, gather the
//! load balancer's snapshot, diagnose, and publish the report to `REPORT_TOPIC_ARN`.
//!
//! The invocation fails (so Lambda retries it) only when a report could not be published: a
//! partial diagnosis, with gaps, is still a success, and a malformed event is logged, not
//! retried, since a retry cannot fix it. Kept apart from `main` so tests drive it in-process.

use std::collections::HashMap;
use std::time::Duration;

use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::pipeline;
use elbmedic_aws::publish::publish_report;
use elbmedic_engine::alarm::{parse_input, Intake};
use elbmedic_engine::report::Report;
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// Configuration, read once at start (**contract**: the variable names).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `REPORT_TOPIC_ARN`: where reports go.
    pub report_topic_arn: String,
    /// `GATHER_DEADLINE_SECONDS` (default 20): the whole gather finishes within this; keep
    /// it below the function's timeout.
    pub gather_deadline: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "REPORT_TOPIC_ARN is not set: set it to the ARN of the SNS topic that receives the reports"
    )]
    MissingTopic,
    #[error("REPORT_TOPIC_ARN {0:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")]
    BadTopic(String),
    #[error("GATHER_DEADLINE_SECONDS {0:?} is not a number of seconds between 1 and 900")]
    BadDeadline(String),
}

/// The region of an SNS topic ARN, if it is one.
pub fn topic_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, name]
            if partition.starts_with("aws")
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty() =>
        {
            Some(region)
        }
        _ => None,
    }
}

impl Config {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let topic = get("REPORT_TOPIC_ARN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::MissingTopic)?;
        if topic_region(&topic).is_none() {
            return Err(ConfigError::BadTopic(topic));
        }
        let gather_deadline = match get("GATHER_DEADLINE_SECONDS") {
            None => Duration::from_secs(20),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(seconds @ 1..=900) => Duration::from_secs(seconds),
                _ => return Err(ConfigError::BadDeadline(text)),
            },
        };
        Ok(Self {
            report_topic_arn: topic,
            gather_deadline,
        })
    }
}

/// The account of the running function, from its ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).
pub fn account_of_function(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12)
        .map(str::to_string)
}

#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} reports could not be published: {detail}")]
pub struct PublishFailed {
    pub failed: usize,
    pub total: usize,
    pub detail: String,
}

pub struct Handler {
    config: Config,
    /// Clients per region, loaded on first use and kept for warm invocations.
    clients: Mutex<HashMap<String, Clients>>,
}

impl Handler {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
        }
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
        for (index, record) in records.into_iter().enumerate() {
            let intake = match record {
                Ok(intake) => intake,
                Err(error) => {
                    tracing::error!(record = index + 1, error = %error, "record skipped: not a readable alarm");
                    summary.push(json!({"record": index + 1, "error": error.to_string()}));
                    continue;
                }
            };
            let report = self.report(&intake, own_account, now).await;
            let mut entry = json!({
                "record": index + 1,
                "alarm": intake.alarm().alarm_name,
                "verdict": report.verdict.status,
                "headline": report.verdict.headline,
                "findings": report.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(),
                "gaps": report.gaps.len(),
            });
            if pipeline::worth_publishing(&intake) {
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

    async fn report(&self, intake: &Intake, own_account: Option<&str>, now: i64) -> Report {
        if let (
            Intake::Diagnose {
                alarm,
                load_balancer,
            },
            Some(own),
        ) = (intake, own_account)
        {
            if alarm.account_id.as_deref().is_some_and(|a| a != own) {
                return Report::cross_account(alarm, load_balancer, own);
            }
        }
        let clients = match intake {
            Intake::Diagnose { alarm, .. } => {
                let clients = self.clients(&alarm.region).await;
                // The call log is per invocation: a warm instance must not grow it forever.
                clients.log.clear();
                Some(clients)
            }
            _ => None,
        };
        let deadline = self.config.gather_deadline;
        let (report, _) = pipeline::report_for(intake, clients.as_ref(), now, deadline).await;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn configuration_is_validated_with_clear_messages() {
        let ok = Config::from_env(env(&[(
            "REPORT_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:111122223333:reports",
        )]))
        .unwrap();
        assert_eq!(ok.gather_deadline, Duration::from_secs(20));
        assert_eq!(Config::from_env(env(&[])), Err(ConfigError::MissingTopic));
        assert!(matches!(
            Config::from_env(env(&[("REPORT_TOPIC_ARN", "reports")])),
            Err(ConfigError::BadTopic(_))
        ));
        assert!(matches!(
            Config::from_env(env(&[(
                "REPORT_TOPIC_ARN",
                "arn:aws:sqs:eu-west-1:111122223333:q"
            )])),
            Err(ConfigError::BadTopic(_))
        ));
        let bad = Config::from_env(env(&[
            ("REPORT_TOPIC_ARN", "arn:aws:sns:eu-west-1:111122223333:r"),
            ("GATHER_DEADLINE_SECONDS", "0"),
        ]));
        assert!(bad.unwrap_err().to_string().contains("between 1 and 900"));
        let custom = Config::from_env(env(&[
            ("REPORT_TOPIC_ARN", "arn:aws:sns:eu-west-1:111122223333:r"),
            ("GATHER_DEADLINE_SECONDS", "8"),
        ]));
        assert_eq!(custom.unwrap().gather_deadline, Duration::from_secs(8));
    }

    #[test]
    fn account_comes_from_the_function_arn() {
        assert_eq!(
            account_of_function("arn:aws:lambda:eu-west-1:111122223333:function:diagnose")
                .as_deref(),
            Some("111122223333")
        );
        assert_eq!(account_of_function("nonsense"), None);
    }
}

//! Publishing to SNS: reports to the on-call topic (the message is shaped by the engine,
//! `report::sns::sns_message`; this only sends it) and plans to the remediation topic.

use aws_sdk_sns::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use elbmedic_engine::plan::config::RemediationConfig;
use elbmedic_engine::plan::message::PlanMessage;
use elbmedic_engine::report::sns::{sns_message, SNS_MAX_BYTES};
use elbmedic_engine::report::Report;

use crate::clients::{Clients, Regions};
use crate::pipeline::Handled;
use crate::settings::topic_region;

#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub message_id: Option<String>,
    pub bytes: usize,
    pub trimmed: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("could not publish the report to {topic}: {detail}")]
pub struct PublishError {
    pub topic: String,
    pub detail: String,
}

/// Some reports of an invocation did not reach their topic: the invocation fails, so that
/// Lambda retries it.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} reports could not be published: {detail}")]
pub struct PublishFailed {
    pub failed: usize,
    pub total: usize,
    pub detail: String,
}

impl PublishFailed {
    pub fn of(errors: Vec<String>, total: usize) -> Self {
        Self {
            failed: errors.len(),
            total,
            detail: errors.join("; "),
        }
    }
}

/// What became of one record's report.
#[derive(Debug)]
pub enum Delivery {
    /// Not for the topic (INSUFFICIENT_DATA, an unreadable record).
    Kept,
    Published(Published),
    Failed(PublishError),
}

pub async fn publish_report(
    sns: &Client,
    topic_arn: &str,
    report: &Report,
) -> Result<Published, PublishError> {
    let message = sns_message(report, SNS_MAX_BYTES);
    let bytes = message.message.len();
    let sent = sns
        .publish()
        .topic_arn(topic_arn)
        .subject(&message.subject)
        .message(&message.message)
        .message_structure("json")
        .send()
        .await
        .map_err(|e| PublishError {
            topic: topic_arn.to_string(),
            detail: DisplayErrorContext(&e).to_string(),
        })?;
    Ok(Published {
        message_id: sent.message_id().map(str::to_string),
        bytes,
        trimmed: message.trimmed,
    })
}

/// The clients of a topic's own region (`arn:aws:sns:REGION:ACCOUNT:NAME`).
pub async fn publisher(regions: &Regions, topic: &str) -> Clients {
    regions
        .get(topic_region(topic).unwrap_or("us-east-1"))
        .await
}

/// Publishes every report the pipeline marked for the topic, in the event's order; one
/// delivery per handled record.
pub async fn publish_all(regions: &Regions, topic: &str, handled: &[Handled]) -> Vec<Delivery> {
    let publisher = publisher(regions, topic).await;
    let mut deliveries = Vec::with_capacity(handled.len());
    for record in handled {
        let delivery = match record {
            Handled::Reported(record) if record.publish => {
                match publish_report(&publisher.sns, topic, &record.report).await {
                    Ok(published) => Delivery::Published(published),
                    Err(error) => {
                        tracing::error!(error = %error, "report not published");
                        Delivery::Failed(error)
                    }
                }
            }
            _ => Delivery::Kept,
        };
        deliveries.push(delivery);
    }
    deliveries
}

/// The invocation's failure when some report did not reach its topic.
pub fn failures(deliveries: &[Delivery]) -> Option<PublishFailed> {
    let errors: Vec<String> = deliveries
        .iter()
        .filter_map(|d| match d {
            Delivery::Failed(error) => Some(error.to_string()),
            _ => None,
        })
        .collect();
    (!errors.is_empty()).then(|| PublishFailed::of(errors, deliveries.len()))
}

/// Sends the plans the pipeline handed on to the remediation topic. Call it only once every
/// report is out: a failed report fails the invocation, and Lambda's retry must not send a
/// plan a second time.
pub async fn send_plans(regions: &Regions, config: &RemediationConfig, handled: &[Handled]) {
    let Some(topic) = config.topic_arn.as_deref() else {
        return;
    };
    let plans: Vec<&PlanMessage> = handled
        .iter()
        .filter_map(|h| match h {
            Handled::Reported(record) => record.plan.as_ref(),
            Handled::Refused { .. } => None,
        })
        .collect();
    if plans.is_empty() {
        return;
    }
    let publisher = publisher(regions, topic).await;
    for plan in plans {
        match send_plan(&publisher.sns, topic, plan).await {
            Ok(id) => {
                tracing::info!(message_id = %id, plan = %plan.plan.id, mode = config.mode.as_str(), "plan sent to remediate")
            }
            Err(error) => {
                tracing::error!(topic, plan = %plan.plan.id, error = %error, "the plan could not be sent to remediate")
            }
        }
    }
}

/// Sends a plan to the remediation topic; the published message's id.
pub async fn send_plan(sns: &Client, topic: &str, message: &PlanMessage) -> Result<String, String> {
    sns.publish()
        .topic_arn(topic)
        .subject(format!(
            "elbmedic plan {} for {}",
            message.plan.id, message.plan.load_balancer.name
        ))
        .message(message.to_json())
        .send()
        .await
        .map(|out| out.message_id.unwrap_or_default())
        .map_err(|error| DisplayErrorContext(&error).to_string())
}

//! Publishing a report to an SNS topic. The message is shaped by the engine
//! (`report::sns::sns_message`); this only sends it.

use aws_sdk_sns::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use elbmedic_engine::report::sns::{sns_message, SNS_MAX_BYTES};
use elbmedic_engine::report::Report;

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

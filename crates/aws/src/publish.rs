//! Delivering reports: the HTML page to `REPORT_BUCKET` (its console link joins the report),
//! then the on-call topic (the message is shaped by the engine, `report::sns::sns_message`;
//! this only sends it), then the chat topic as a custom notification; and plans to the
//! remediation topic. Only the on-call topic is a must: a page or a chat message that fails is
//! logged, and the report still goes out.

use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_sns::operation::publish::PublishError as SnsPublishError;
use aws_sdk_sns::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use elbmedic_engine::plan::config::RemediationConfig;
use elbmedic_engine::plan::message::PlanMessage;
use elbmedic_engine::report::chat::{render_chat, ChatContext};
use elbmedic_engine::report::sns::{sns_message, SnsMessage, SNS_MAX_BYTES};
use elbmedic_engine::report::storm::{render_chat as storm_chat, sns_message as storm_sns};
use elbmedic_engine::report::{link, Format, Report};

use crate::clients::{Clients, Regions};
pub use crate::incidents::Send;
use crate::pipeline::Handled;
use crate::settings::topic_region;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Published {
    pub message_id: Option<String>,
    pub bytes: usize,
    pub trimmed: bool,
    /// The HTML page's object key in `REPORT_BUCKET`, when it was stored.
    pub page_key: Option<String>,
    /// The chat message's id, when `CHAT_TOPIC_ARN` took it.
    pub chat_message_id: Option<String>,
    /// The page's console link, when it was stored.
    pub page_url: Option<String>,
    /// The report itself went out (not a storm summary in its place, not its page only): a
    /// follow-up may continue it.
    pub sent_report: bool,
}

/// Where reports go besides the on-call topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outlets<'a> {
    pub chat_topic: Option<&'a str>,
    pub report_bucket: Option<&'a str>,
}

impl<'a> Outlets<'a> {
    pub fn of(config: &'a crate::settings::Config) -> Self {
        Self {
            chat_topic: config.chat_topic_arn.as_deref(),
            report_bucket: config.report_bucket.as_deref(),
        }
    }
}

/// The console link a report's page will have, before it is stored (the storm summary links
/// its members' pages).
pub fn page_url(
    outlets: Outlets<'_>,
    publisher_region: &str,
    report: &Report,
    now: i64,
    unique: &str,
) -> Option<String> {
    let bucket = outlets.report_bucket?;
    Some(link::console_url(
        bucket,
        publisher_region,
        &link::object_key(report, now, unique),
    ))
}

/// One record, delivered as the incident decided (`send`): its page to the bucket, then the
/// report (linking the page) or the storm summary in its place to the on-call topic, then the
/// chat message; only the page for a storm member whose summary is out. `publisher` holds the
/// clients of the on-call topic's region, where the stack keeps its bucket; `chat.id` names
/// this report among the invocation's.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    regions: &Regions,
    publisher: &Clients,
    topic: &str,
    outlets: Outlets<'_>,
    report: &Report,
    chat: &ChatContext<'_>,
    now: i64,
    send: &Send,
) -> Result<Published, PublishError> {
    let mut report = std::borrow::Cow::Borrowed(report);
    let mut page_key = None;
    if let Some(bucket) = outlets.report_bucket {
        let key = link::object_key(&report, now, chat.id);
        match store_page(&publisher.s3, bucket, &key, &report.render(Format::Html)).await {
            Ok(()) => {
                report.to_mut().full_report_url =
                    Some(link::console_url(bucket, &publisher.region, &key));
                page_key = Some(key);
            }
            Err(error) => {
                let error = DisplayErrorContext(&error);
                tracing::error!(bucket, key = %key, error = %error, "the HTML report could not be stored; the report goes out without its link")
            }
        }
    }
    let mut published = match send {
        Send::Report => publish_report(&publisher.sns, topic, &report).await?,
        Send::Storm(storm) => publish_message(&publisher.sns, topic, &storm_sns(storm)).await?,
        Send::PageOnly | Send::Nothing | Send::Retry => Published::default(),
    };
    published.sent_report = *send == Send::Report;
    published.page_key = page_key;
    published.page_url = report.full_report_url.clone();
    if let Some(chat_topic) = outlets.chat_topic {
        let chat_publisher = self::publisher(regions, chat_topic).await;
        let message = match send {
            Send::Report => render_chat(&report, chat),
            Send::Storm(storm) => storm_chat(storm),
            Send::PageOnly | Send::Nothing | Send::Retry => return Ok(published),
        };
        match chat_publisher
            .sns
            .publish()
            .topic_arn(chat_topic)
            .message(message)
            .send()
            .await
        {
            Ok(sent) => published.chat_message_id = sent.message_id().map(str::to_string),
            Err(error) => tracing::error!(
                topic = chat_topic,
                error = %DisplayErrorContext(&error),
                "the chat message could not be published; the report went to the on-call topic"
            ),
        }
    }
    Ok(published)
}

/// A report that continues an alarm's episode (a follow-up, a remediation's outcome): its
/// alarm is still the ALARM that began it, so it joins that chat thread. `unique` names it.
pub async fn deliver_later(
    regions: &Regions,
    publisher: &Clients,
    config: &crate::settings::Config,
    report: &Report,
    unique: &str,
    now: i64,
) -> Result<Published, PublishError> {
    let topic = config.report_topic_arn.as_deref().unwrap_or_default();
    let chat = ChatContext {
        id: unique,
        episode_began: None,
    };
    let delivering = deliver(
        regions,
        publisher,
        topic,
        Outlets::of(config),
        report,
        &chat,
        now,
        &Send::Report,
    );
    Box::pin(delivering).await
}

/// Stores an HTML page, encrypted with S3's own keys (SSE-S3), so that a console reader needs
/// no KMS grant.
async fn store_page(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    html: &str,
) -> Result<(), SdkError<PutObjectError, HttpResponse>> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/html; charset=utf-8")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(aws_sdk_s3::primitives::ByteStream::from(
            html.as_bytes().to_vec(),
        ))
        .send()
        .await
        .map(|_| ())
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
    publish_message(sns, topic_arn, &sns_message(report, SNS_MAX_BYTES)).await
}

/// Publishes a message the engine shaped (`MessageStructure=json`).
async fn publish_message(
    sns: &Client,
    topic_arn: &str,
    message: &SnsMessage,
) -> Result<Published, PublishError> {
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
        ..Published::default()
    })
}

/// The clients of a topic's own region (`arn:aws:sns:REGION:ACCOUNT:NAME`).
pub async fn publisher(regions: &Regions, topic: &str) -> Clients {
    regions
        .get(topic_region(topic).unwrap_or("us-east-1"))
        .await
}

/// Delivers every report the pipeline marked for the topic, in the event's order; one
/// delivery per handled record. `invocation` (the request id) makes each page's key and chat
/// message id unique.
pub async fn publish_all(
    regions: &Regions,
    topic: &str,
    outlets: Outlets<'_>,
    handled: &[Handled],
    sends: &[Send],
    invocation: &str,
    now: i64,
) -> Vec<Delivery> {
    let publisher = publisher(regions, topic).await;
    let mut deliveries = Vec::with_capacity(handled.len());
    for (index, (record, send)) in handled.iter().zip(sends).enumerate() {
        let delivery = match record {
            Handled::Reported(_) if *send == Send::Retry => Delivery::Failed(PublishError {
                topic: topic.to_string(),
                detail: "another invocation claimed this alarm's message less than 2 minutes ago; this one fails so that the retry makes sure it went out".into(),
            }),
            Handled::Reported(record) if *send != Send::Nothing => {
                let unique = format!("{invocation}#{}", index + 1);
                let chat = ChatContext {
                    id: &unique,
                    episode_began: record.episode_began.as_deref(),
                };
                let delivering = deliver(
                    regions,
                    &publisher,
                    topic,
                    outlets,
                    &record.report,
                    &chat,
                    now,
                    send,
                );
                match Box::pin(delivering).await {
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

/// Sends the plans the pipeline handed on to the remediation topic, for the records whose
/// report went out: a failed report is retried, and the retry must not send its plan twice.
pub async fn send_plans(
    regions: &Regions,
    config: &RemediationConfig,
    handled: &[Handled],
    deliveries: &[Delivery],
) {
    let Some(topic) = config.topic_arn.as_deref() else {
        return;
    };
    let plans: Vec<&PlanMessage> = handled
        .iter()
        .zip(deliveries)
        .filter_map(|(h, delivery)| match (h, delivery) {
            (_, Delivery::Failed(_)) => None,
            (Handled::Reported(record), _) => record.plan.as_ref(),
            (Handled::Refused { .. }, _) => None,
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
                let error = DisplayErrorContext(&error);
                tracing::error!(topic, plan = %plan.plan.id, error = %error, "the plan could not be sent to remediate")
            }
        }
    }
}

/// Sends a plan to the remediation topic; the published message's id.
pub async fn send_plan(
    sns: &Client,
    topic: &str,
    message: &PlanMessage,
) -> Result<String, SdkError<SnsPublishError, HttpResponse>> {
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
}

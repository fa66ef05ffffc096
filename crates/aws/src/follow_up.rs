//! The follow-up pass's I/O. `diagnose` sends each report it published from a live diagnosis
//! to the SQS delay queue, with the snapshot it diagnosed; minutes later the queue invokes
//! `diagnose` again, which reads only the late sources (every CloudTrail lookup), and the
//! engine (`elbmedic_engine::follow_up`) decides whether there is anything new to publish.
//!
//! The message body is a small JSON envelope naming the alarm and the load balancer (readable
//! in the dead-letter queue), with the engine's message gzipped in base64 inside: a snapshot of
//! thousands of targets still fits SQS's 256 KiB. Decoding is bounded at every step.

use std::io::Read;

use aws_smithy_types::base64;
use aws_smithy_types::error::display::DisplayErrorContext;
use elbmedic_engine::account::AccountRefusal;
use elbmedic_engine::alarm::Intake;
use elbmedic_engine::follow_up::{FollowUpMessage, FollowUpRefused, FOLLOW_UP_KIND};
use elbmedic_engine::report::FirstReport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::accounts::Accounts;
use crate::clients::Regions;
use crate::gather::late_evidence;
use crate::pipeline::Handled;
use crate::publish::{deliver_later, publisher, Delivery, PublishError};
use crate::settings::{Config, FollowUpQueue};

/// SQS's message size limit, which the body must fit.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A decompressed message larger than this is refused: gzip can inflate a thousandfold.
const MAX_INFLATED_BYTES: u64 = 16 * 1024 * 1024;

/// CloudTrail allows 2 lookups a second per account and region: one follow-up's lookups fill
/// that rate, so the next record waits this long.
const BETWEEN_RECORDS: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    kind: String,
    alarm: String,
    load_balancer: String,
    /// The engine's [`FollowUpMessage`] as JSON, gzipped, in base64.
    message_gzip_base64: String,
}

/// Why a follow-up cannot be sent, or a queued body is not one.
#[derive(Debug, thiserror::Error)]
pub enum FollowUpCodecError {
    #[error("could not compress the follow-up: {0}")]
    Compress(std::io::Error),
    #[error("the follow-up is {0} bytes, more than SQS's {MAX_BODY_BYTES}")]
    TooLargeToSend(usize),
    #[error("the message is {0} bytes, more than SQS's {MAX_BODY_BYTES}: not one elbmedic sent")]
    TooLarge(usize),
    #[error("the message is not an elbmedic follow-up ({0})")]
    NotAFollowUp(serde_json::Error),
    #[error("the message's kind is {0:?}, not {FOLLOW_UP_KIND:?}")]
    OtherKind(String),
    #[error("the follow-up's payload is not base64 ({0})")]
    NotBase64(base64::DecodeError),
    #[error("the follow-up's payload is not gzipped UTF-8 ({0})")]
    NotGzip(std::io::Error),
    #[error("the follow-up's payload inflates past {MAX_INFLATED_BYTES} bytes: refused")]
    Inflates,
    #[error(transparent)]
    Refused(#[from] FollowUpRefused),
}

/// The SQS message body for `message`, or why it cannot be sent.
pub fn encode(message: &FollowUpMessage) -> Result<String, FollowUpCodecError> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let bytes = std::io::Write::write_all(&mut gzip, message.to_json().as_bytes())
        .and_then(|()| gzip.finish())
        .map_err(FollowUpCodecError::Compress)?;
    let envelope = Envelope {
        kind: FOLLOW_UP_KIND.into(),
        alarm: message.alarm.alarm_name.clone(),
        load_balancer: message.load_balancer.id.clone(),
        message_gzip_base64: base64::encode(bytes),
    };
    let body = serde_json::to_string(&envelope).unwrap_or_default();
    if body.len() > MAX_BODY_BYTES {
        return Err(FollowUpCodecError::TooLargeToSend(body.len()));
    }
    Ok(body)
}

/// The engine's message from an SQS body, refusing anything oversized, inflated past
/// [`MAX_INFLATED_BYTES`], or not a follow-up.
pub fn decode(body: &str) -> Result<FollowUpMessage, FollowUpCodecError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(FollowUpCodecError::TooLarge(body.len()));
    }
    let envelope: Envelope =
        serde_json::from_str(body).map_err(FollowUpCodecError::NotAFollowUp)?;
    if envelope.kind != FOLLOW_UP_KIND {
        return Err(FollowUpCodecError::OtherKind(
            elbmedic_engine::untrusted::one_line(&envelope.kind),
        ));
    }
    let gzipped =
        base64::decode(&envelope.message_gzip_base64).map_err(FollowUpCodecError::NotBase64)?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(gzipped.as_slice())
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(FollowUpCodecError::NotGzip)?;
    if text.len() as u64 > MAX_INFLATED_BYTES {
        return Err(FollowUpCodecError::Inflates);
    }
    Ok(FollowUpMessage::parse(&text)?)
}

/// Sends one follow-up for every report that went out from a live diagnosis, delayed by the
/// queue's delay. Called once the reports are out; a follow-up that cannot be sent is logged
/// (the first report already names what was not looked up), never a failed invocation.
pub async fn send_all(
    regions: &Regions,
    queue: &FollowUpQueue,
    fallback_region: &str,
    handled: &[Handled],
    deliveries: &[Delivery],
) -> usize {
    let mut sent = 0;
    let clients = regions
        .get(queue.region.as_deref().unwrap_or(fallback_region))
        .await;
    for (handled, delivery) in handled.iter().zip(deliveries) {
        let (Handled::Reported(record), Delivery::Published(published)) = (handled, delivery)
        else {
            continue;
        };
        // A storm member's report was kept, not sent: its follow-up would send it after all.
        if !published.sent_report {
            continue;
        }
        let (
            Some(world),
            Intake::Diagnose {
                alarm,
                load_balancer,
            },
        ) = (&record.world, &record.intake)
        else {
            continue;
        };
        let first = FirstReport {
            subject: record.report.subject(),
            message_id: published.message_id.clone(),
            thread: record.report.incident.as_ref().map(|i| i.thread.clone()),
        };
        let message = FollowUpMessage::new(alarm, load_balancer, first, world);
        let body = match encode(&message) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(alarm = %alarm.alarm_name, error = %error, "no follow-up for this report");
                continue;
            }
        };
        let bytes = body.len();
        let result = clients
            .sqs
            .send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .delay_seconds(queue.delay_seconds)
            .send()
            .await;
        match result {
            Ok(_) => {
                sent += 1;
                tracing::info!(alarm = %alarm.alarm_name, bytes, delay_seconds = queue.delay_seconds, "follow-up queued");
            }
            Err(error) => tracing::error!(
                alarm = %alarm.alarm_name,
                queue = %queue.url,
                error = %DisplayErrorContext(&error),
                "the follow-up could not be queued; the first report stands alone"
            ),
        }
    }
    sent
}

/// One record of an SQS event, as Lambda delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRecord {
    pub message_id: String,
    pub body: String,
    pub source_arn: String,
}

/// The records of `payload` when it is an SQS event (`eventSource` `aws:sqs`); `None` for
/// anything else, which is then read as an SNS alarm event.
pub fn queued_records(payload: &Value) -> Option<Vec<QueuedRecord>> {
    let records = payload.get("Records")?.as_array()?;
    let is_sqs = |r: &Value| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs");
    if records.is_empty() || !records.iter().all(is_sqs) {
        return None;
    }
    let text = |r: &Value, key: &str| {
        r.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some(
        records
            .iter()
            .map(|r| QueuedRecord {
                message_id: text(r, "messageId"),
                body: text(r, "body"),
                source_arn: text(r, "eventSourceARN"),
            })
            .collect(),
    )
}

/// What became of one queued follow-up.
#[derive(Debug)]
pub enum Outcome {
    /// Something new: the follow-up report went out.
    Published { message_id: Option<String> },
    /// The late sources said nothing the first report did not.
    NothingNew { gaps: usize },
    /// Not a follow-up elbmedic sent, or not from its queue: logged, never retried.
    Dropped(Dropped),
    /// The follow-up report could not be published: the record is retried.
    Failed(PublishError),
}

/// Why a queued record is dropped.
#[derive(Debug, thiserror::Error)]
pub enum Dropped {
    #[error("the follow-up pass is off (FOLLOW_UP_DELAY=0 or no FOLLOW_UP_QUEUE_URL)")]
    Off,
    #[error("the record comes from {source_arn:?}, not from the follow-up queue {queue}")]
    OtherQueue { source_arn: String, queue: String },
    #[error(transparent)]
    Undecodable(#[from] FollowUpCodecError),
    #[error("{}", .0.headline())]
    Account(AccountRefusal),
}

/// The follow-up pass over an SQS event's records, one at a time (CloudTrail's rate is per
/// account and region). Returns each record's message id and outcome.
pub async fn run(
    accounts: &Accounts,
    own_account: Option<&str>,
    config: &Config,
    records: &[QueuedRecord],
    now: i64,
) -> Vec<(String, Outcome)> {
    let mut outcomes = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(BETWEEN_RECORDS).await;
        }
        let outcome = Box::pin(one(accounts, own_account, config, record, now)).await;
        match &outcome {
            Outcome::Dropped(reason) => {
                tracing::error!(message_id = %record.message_id, reason = %reason, "follow-up dropped")
            }
            Outcome::Failed(error) => {
                tracing::error!(message_id = %record.message_id, error = %error, "follow-up not published; SQS retries it")
            }
            other => {
                tracing::info!(message_id = %record.message_id, outcome = ?other, "follow-up done")
            }
        }
        outcomes.push((record.message_id.clone(), outcome));
    }
    outcomes
}

async fn one(
    accounts: &Accounts,
    own_account: Option<&str>,
    config: &Config,
    record: &QueuedRecord,
    now: i64,
) -> Outcome {
    let Some(queue) = &config.follow_up else {
        return Outcome::Dropped(Dropped::Off);
    };
    if !queue.is_source(&record.source_arn) {
        return Outcome::Dropped(Dropped::OtherQueue {
            source_arn: elbmedic_engine::untrusted::one_line(&record.source_arn),
            queue: queue.name.clone(),
        });
    }
    let message = match decode(&record.body) {
        Ok(message) => message,
        Err(reason) => return Outcome::Dropped(reason.into()),
    };
    let clients = match accounts
        .clients_for(
            own_account,
            message.alarm.account_id.as_deref(),
            &message.alarm.region,
            &message.alarm.alarm_name,
            now,
        )
        .await
    {
        Ok(clients) => clients,
        Err(refusal) => return Outcome::Dropped(Dropped::Account(refusal)),
    };
    // Boxed: the reads' futures are deep.
    let late = Box::pin(late_evidence(
        &clients,
        &message.alarm,
        &message.load_balancer,
        &message.snapshot,
        now,
        config.gather_deadline,
    ))
    .await;
    let gaps: Vec<String> = late.gaps.iter().map(ToString::to_string).collect();
    let Some(report) = message.compose(late) else {
        if !gaps.is_empty() {
            tracing::warn!(gaps = ?gaps, "the late reads were incomplete");
        }
        return Outcome::NothingNew { gaps: gaps.len() };
    };
    let topic = config.report_topic_arn.as_deref().unwrap_or_default();
    let publisher = publisher(&accounts.regions, topic).await;
    // The follow-up belongs to the first report's episode: the same chat thread.
    let unique = format!("follow-up-{now}-{}", message.alarm.alarm_name);
    match deliver_later(&accounts.regions, &publisher, config, &report, &unique, now).await {
        Ok(published) => Outcome::Published {
            message_id: published.message_id,
        },
        Err(error) => Outcome::Failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> FollowUpMessage {
        let scenario = elbmedic_engine::scenarios::find("nacl-rule-added-recently").unwrap();
        let (alarm, load_balancer) = scenario.alarm().unwrap();
        let world = scenario.world().unwrap();
        let first = FirstReport {
            subject: "s".into(),
            message_id: None,
            thread: None,
        };
        FollowUpMessage::new(&alarm, &load_balancer, first, &world)
    }

    #[test]
    fn a_message_survives_the_queue_and_stays_small() {
        let message = message();
        let body = encode(&message).unwrap();
        assert!(
            body.len() < message.to_json().len() / 3,
            "{} bytes",
            body.len()
        );
        assert_eq!(decode(&body).unwrap(), message);
    }

    /// Whoever can send to the queue controls the body: every layer is checked and bounded.
    #[test]
    fn a_forged_body_is_refused_at_each_layer() {
        let envelope = |kind: &str, payload: &str| {
            serde_json::json!({"kind": kind, "alarm": "a", "load_balancer": "b", "message_gzip_base64": payload}).to_string()
        };
        assert!(decode("not json")
            .unwrap_err()
            .to_string()
            .contains("not an elbmedic follow-up"));
        assert!(decode(&envelope("elbmedic-remediation-plan", ""))
            .unwrap_err()
            .to_string()
            .contains("kind"));
        assert!(decode(&envelope(FOLLOW_UP_KIND, "%%%"))
            .unwrap_err()
            .to_string()
            .contains("base64"));
        let plain = base64::encode(b"{\"kind\":\"elbmedic-follow-up\"}");
        assert!(decode(&envelope(FOLLOW_UP_KIND, &plain))
            .unwrap_err()
            .to_string()
            .contains("gzip"));
        assert!(decode(&"x".repeat(MAX_BODY_BYTES + 1))
            .unwrap_err()
            .to_string()
            .contains("bytes"));
        // A gzip bomb: 64 MiB of zeros in a few tens of KiB.
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1024 * 1024];
        for _ in 0..64 {
            std::io::Write::write_all(&mut gzip, &zeros).unwrap();
        }
        let bomb = base64::encode(gzip.finish().unwrap());
        assert!(bomb.len() < MAX_BODY_BYTES);
        assert!(decode(&envelope(FOLLOW_UP_KIND, &bomb))
            .unwrap_err()
            .to_string()
            .contains("inflates past"));
    }

    #[test]
    fn only_sqs_events_are_queued_records() {
        let sqs = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m", "body": "b", "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:q"}]});
        let records = queued_records(&sqs).unwrap();
        assert_eq!(records[0].message_id, "m");
        assert_eq!(
            records[0].source_arn,
            "arn:aws:sqs:eu-west-1:111122223333:q"
        );
        let sns = serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]});
        assert_eq!(queued_records(&sns), None);
        assert_eq!(queued_records(&serde_json::json!({"Records": []})), None);
        assert_eq!(queued_records(&serde_json::json!("x")), None);
    }
}

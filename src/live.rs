//! The CLI's live side: a small async runtime, AWS clients from the standard configuration
//! (credentials, `AWS_ENDPOINT_URL*`), and the same pipeline as the `diagnose` function.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::gather::DEFAULT_DEADLINE;
use elbmedic_aws::pipeline;
use elbmedic_aws::publish::publish_report;
use elbmedic_engine::alarm::{Alarm, Intake, LbRef};
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::Snapshot;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The clock is read here, at the edge; everything below takes it as a value.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub async fn snapshot(alarm: &Alarm, lb: &LbRef) -> Snapshot {
    let clients = Clients::load(&alarm.region, CallLimits::default()).await;
    pipeline::snapshot_for(&clients, alarm, lb, now(), DEFAULT_DEADLINE).await
}

pub async fn report(intake: &Intake) -> Report {
    pipeline::report_for(intake, None, now(), DEFAULT_DEADLINE)
        .await
        .0
}

pub async fn publish(topic: &str, region: &str, report: &Report) -> Result<String> {
    // The topic's own region wins over the alarm's: `arn:aws:sns:REGION:ACCOUNT:NAME`.
    let topic_region = topic
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .unwrap_or(region);
    let clients = Clients::load(topic_region, CallLimits::default()).await;
    let published = publish_report(&clients.sns, topic, report).await?;
    Ok(published.message_id.unwrap_or_default())
}

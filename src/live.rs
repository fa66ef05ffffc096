//! The CLI's live side: a small async runtime, AWS clients from the standard configuration
//! (credentials, `AWS_ENDPOINT_URL*`), and the same pipeline as the `diagnose` function.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use elbmedic_aws::errors::classify;

use crate::alarms::AlarmedLb;
use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::gather::DEFAULT_DEADLINE;
use elbmedic_aws::ledger::Ledger;
use elbmedic_aws::pipeline;
use elbmedic_aws::publish::publish_report;
use elbmedic_aws::remediate::{self, Settings};
use elbmedic_engine::alarm::{Alarm, Intake, LbRef};
use elbmedic_engine::plan::config::RemediationConfig;
use elbmedic_engine::plan::message::{Mode, PlanMessage, Request};
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::{GapReason, Snapshot};

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

/// The snapshot of the alarmed LB, with elbmedic's history from `ledger_table` if given.
pub async fn snapshot(alarm: &Alarm, lb: &LbRef, ledger_table: Option<&str>) -> Snapshot {
    let clients = Clients::load(&alarm.region, CallLimits::default()).await;
    pipeline::snapshot_for(&clients, alarm, lb, now(), DEFAULT_DEADLINE, ledger_table).await
}

/// A composite alarm followed to its children, read in the alarm's region.
pub async fn expand(intake: Intake) -> Vec<Intake> {
    let clients = Clients::load(&intake.alarm().region, CallLimits::default()).await;
    elbmedic_aws::composite::expand(
        &clients,
        intake,
        elbmedic_engine::alarm::composite::DEFAULT_MAX_COMPOSITE_LOAD_BALANCERS,
    )
    .await
}

pub async fn report(intake: &Intake) -> Report {
    pipeline::report_for(intake, None, now(), DEFAULT_DEADLINE, None)
        .await
        .0
}

/// The live report with remediation in `config.mode`: off adds nothing; approve adds the
/// plan and its approve command; dry-run and auto run the plan in-process through the same
/// code as the `remediate` function (re-gather, review, apply or validate, verify).
pub async fn remediated(intake: &Intake, config: &RemediationConfig) -> Report {
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = intake
    else {
        return report(intake).await;
    };
    let clients = Clients::load(&alarm.region, CallLimits::default()).await;
    let now = now();
    let (mut report, world) = Box::pin(pipeline::report_for(
        intake,
        Some(&clients),
        now,
        DEFAULT_DEADLINE,
        config.ledger_table.as_deref(),
    ))
    .await;
    let Some(world) = world else { return report };
    let request = match config.mode {
        Mode::Off => return report,
        Mode::Approve => {
            // Approve mode sends nothing: the report carries the approve command.
            let _ = remediate::proposal(config, alarm, load_balancer, &world, &mut report, now);
            return report;
        }
        Mode::DryRun => Request::DryRun,
        Mode::Auto => Request::Apply,
    };
    let plan = elbmedic_engine::plan::plan(
        &world,
        &report.findings,
        &config.policy,
        now,
        alarm.state_change_epoch,
    );
    let message = PlanMessage::new(request, alarm, load_balancer, &plan);
    if plan.actions.is_empty() {
        report.remediation = Some(RemediationSection::planned(
            config.mode,
            &message,
            None,
            false,
        ));
        return report;
    }
    let ledger = remediate::configured_ledger(&clients, config);
    let settings = Settings::new(config, DEFAULT_DEADLINE);
    let run_id = format!("elbmedic-cli-{}-{now}", std::process::id());
    let report = Box::pin(remediate::remediate(
        &clients,
        ledger.as_ref(),
        &settings,
        &message,
        now,
        &run_id,
    ))
    .await;
    // The CLI hands the outcome to the engineer directly: it is delivered.
    remediate::reported(ledger.as_ref(), &report, &message, now).await;
    report
}

/// The ALB or, failing that, the Classic LB named `name` in `region`.
pub async fn find_load_balancer(name: &str, region: &str) -> Result<AlarmedLb> {
    let clients = Clients::load(region, CallLimits::default()).await;
    match clients
        .elbv2
        .describe_load_balancers()
        .names(name)
        .send()
        .await
    {
        Ok(out) => {
            if let Some(arn) = out
                .load_balancers()
                .first()
                .and_then(|lb| lb.load_balancer_arn())
            {
                return AlarmedLb::from_alb_arn(arn);
            }
        }
        Err(e) if classify(&e).0 == GapReason::NotFound => {}
        Err(e) => bail!(
            "cannot look up the load balancer {name} in {region}: {}",
            classify(&e).1
        ),
    }
    match clients
        .elb
        .describe_load_balancers()
        .load_balancer_names(name)
        .send()
        .await
    {
        Ok(out) if !out.load_balancer_descriptions().is_empty() => Ok(AlarmedLb::Classic {
            name: name.to_string(),
        }),
        Ok(_) => bail!("no load balancer named {name} in {region}"),
        Err(e) if classify(&e).0 == GapReason::NotFound => {
            bail!("no ALB or Classic LB named {name} in {region}: check the name (kubectl get svc,ingress -A shows the LB hostnames) and the region")
        }
        Err(e) => bail!(
            "cannot look up the load balancer {name} in {region}: {}",
            classify(&e).1
        ),
    }
}

/// Creates the DynamoDB ledger table.
pub async fn create_ledger(table: &str, region: &str) -> Result<&'static str> {
    let clients = Clients::load(region, CallLimits::default()).await;
    Ledger::new(clients.dynamodb.clone(), table)
        .create_table()
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the ledger table {table}: {e}"))
}

pub async fn publish(topic: &str, region: &str, report: &Report) -> Result<String> {
    // The topic's own region wins over the alarm's: `arn:aws:sns:REGION:ACCOUNT:NAME`.
    let topic_region =
        elbmedic_engine::alarm::formats::topic_arn(topic).map_or(region, |t| t.region);
    let clients = Clients::load(topic_region, CallLimits::default()).await;
    let published = publish_report(&clients.sns, topic, report).await?;
    Ok(published.message_id.unwrap_or_default())
}

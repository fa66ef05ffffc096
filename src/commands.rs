//! The subcommands: each reads its inputs, calls the engine, and returns the exit code.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use elbmedic_engine::alarm::{self, Alarm, Intake, IntakeError, LbRef};
use elbmedic_engine::plan::config::RemediationConfig;
use elbmedic_engine::plan::message::{Mode, PlanMessage, Request};
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::{Format, Report};
use elbmedic_engine::scenarios;
use elbmedic_engine::snapshot::{self, Snapshot};
use serde_json::json;

use crate::input::{display, read_bounded};
use crate::{live, output};

/// Exit codes (**contract**).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Whatever the alarm's state and the findings.
    Ok = 0,
    /// Unreadable file, invalid JSON, not an alarm, snapshot of another load balancer.
    BadInput = 2,
    /// A valid alarm elbmedic does not handle.
    Unsupported = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A snapshot of a realistic fleet is a few MiB; anything far larger is the wrong file.
const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

pub fn demo(name: &str, list: bool, format: Format) -> Result<Exit> {
    if list {
        let lines: Vec<String> = scenarios::SCENARIOS
            .iter()
            .map(|s| {
                format!(
                    "{:<30} {}",
                    s.name,
                    scenarios::title(s.name).unwrap_or_default()
                )
            })
            .collect();
        output::print(&(lines.join("\n") + "\n"));
        return Ok(Exit::Ok);
    }
    let scenario = scenarios::find(name).ok_or_else(|| {
        let names: Vec<&str> = scenarios::SCENARIOS.iter().map(|s| s.name).collect();
        anyhow!("no scenario {name:?}; choose one of: {}", names.join(", "))
    })?;
    let records = alarm::parse_input(scenario.event.as_bytes())
        .map_err(|e| anyhow!("embedded scenario {name}: {e}"))?;
    let world = snapshot::from_json(scenario.snapshot)
        .map_err(|e| anyhow!("embedded scenario {name}: {e}"))?;
    Ok(run_records(
        records,
        &Source::Snapshot {
            world: Box::new(world),
            name: "(embedded)".into(),
        },
        format,
        None,
        &RemediationConfig::default(),
    ))
}

pub fn diagnose(
    event_path: &str,
    snapshot_path: Option<&str>,
    format: Format,
    publish: Option<&str>,
    mode: Option<Mode>,
) -> Result<Exit> {
    let mut remediation =
        RemediationConfig::from_env(|key| std::env::var(key).ok()).map_err(anyhow::Error::msg)?;
    if let Some(mode) = mode {
        remediation.mode = mode;
    }
    if snapshot_path.is_some() && remediation.mode == Mode::Auto {
        anyhow::bail!("--mode auto changes AWS and needs the live state: drop --snapshot, or use --mode dry-run or approve to see the plan");
    }
    let records = read_event(event_path)?;
    let source = match snapshot_path {
        Some(path) => Source::Snapshot {
            world: Box::new(read_snapshot(path)?),
            name: path.to_string(),
        },
        None => Source::Live,
    };
    Ok(run_records(records, &source, format, publish, &remediation))
}

/// Gathers the snapshot of each alarmed load balancer from AWS and prints it as JSON.
pub fn snapshot(event_path: &str) -> Result<Exit> {
    let records = read_event(event_path)?;
    let runtime = live::runtime()?;
    let mut exit = Exit::Ok;
    let mut worlds = Vec::new();
    for (number, record) in expand_composites(records, &runtime) {
        match record {
            Err(error) => {
                output::warn(&format!("error: record {number}: {error}"));
                exit = Exit::BadInput;
            }
            Ok(Intake::Diagnose {
                alarm,
                load_balancer,
            }) => {
                let ledger = std::env::var("LEDGER_TABLE")
                    .ok()
                    .filter(|t| !t.trim().is_empty());
                let world = runtime.block_on(live::snapshot(
                    &alarm,
                    &load_balancer,
                    ledger.as_deref().map(str::trim),
                ));
                worlds.push(serde_json::to_value(world)?);
            }
            Ok(other) => {
                if is_unsupported(&other) && exit == Exit::Ok {
                    exit = Exit::Unsupported;
                }
                output::warn(&format!(
                    "record {number}: {} is not diagnosed ({:?}), so nothing was gathered",
                    other.alarm().alarm_name,
                    other.alarm().state
                ));
            }
        }
    }
    let value = if worlds.len() == 1 {
        worlds.remove(0)
    } else {
        serde_json::Value::Array(worlds)
    };
    output::print(&(serde_json::to_string_pretty(&value)? + "\n"));
    Ok(exit)
}

pub fn alarm(event_path: &str) -> Result<Exit> {
    let records = read_event(event_path)?;
    let mut exit = Exit::Ok;
    let mut values = Vec::new();
    for (index, record) in records.into_iter().enumerate() {
        match record {
            Err(error) => {
                output::warn(&format!("error: record {}: {error}", index + 1));
                exit = Exit::BadInput;
            }
            Ok(intake) => {
                if matches!(intake, Intake::Unsupported { .. }) && exit == Exit::Ok {
                    exit = Exit::Unsupported;
                }
                values.push(understood(&intake));
            }
        }
    }
    let value = if values.len() == 1 {
        values.remove(0)
    } else {
        serde_json::Value::Array(values)
    };
    output::print(&(serde_json::to_string_pretty(&value)? + "\n"));
    Ok(exit)
}

/// The `alarm` subcommand's view of one record (**contract** for the first six fields).
fn understood(intake: &Intake) -> serde_json::Value {
    let alarm = intake.alarm();
    let metric = alarm.primary_metric();
    let (outcome, reason) = match intake {
        Intake::Diagnose { .. } => ("diagnose", None),
        Intake::Recovered { .. } => ("recovered", None),
        Intake::Skipped { reason, .. } => ("skipped", Some(reason.as_str())),
        Intake::Unsupported { reason, .. } => ("unsupported", Some(reason.as_str())),
        Intake::Composite { .. } => ("composite", None),
    };
    let mut value = json!({
        "alarm_name": alarm.alarm_name,
        "state": alarm.state,
        "region": alarm.region,
        "metric": metric.map(|m| m.metric_name.as_str()),
        "namespace": metric.map(|m| m.namespace.as_str()),
        "load_balancer": intake.load_balancer(),
        "outcome": outcome,
        "reason": reason,
        "expression": alarm.expression,
    });
    if let Intake::Composite { children, .. } = intake {
        value["children"] = json!(children);
    }
    value
}

fn read_event(path: &str) -> Result<Vec<Result<Intake, IntakeError>>> {
    let bytes = read_bounded(path, "event", alarm::MAX_INPUT_BYTES as u64)?;
    alarm::parse_input(&bytes).map_err(|e| anyhow!("event {}: {e}", display(path)))
}

fn read_snapshot(path: &str) -> Result<Snapshot> {
    let bytes = read_bounded(path, "snapshot", MAX_SNAPSHOT_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        anyhow!(
            "snapshot {}: not UTF-8 text (bad byte at offset {})",
            display(path),
            e.valid_up_to()
        )
    })?;
    snapshot::from_json(text).with_context(|| format!("snapshot {}", display(path)))
}

fn same_lb(lb: &LbRef, world: &Snapshot) -> bool {
    lb.kind == world.load_balancer.kind && lb.id == world.load_balancer.id
}

/// Exit 3 territory: an alarm elbmedic does not diagnose, or a composite alarm in ALARM that
/// could not be followed to its children (offline replay cannot read them).
fn is_unsupported(intake: &Intake) -> bool {
    match intake {
        Intake::Unsupported { .. } => true,
        Intake::Composite { alarm, .. } => alarm.state == alarm::AlarmState::Alarm,
        _ => false,
    }
}

type Numbered = Vec<(usize, Result<Intake, IntakeError>)>;

/// Records with their 1-based numbers, as the messages name them.
fn numbered(records: Vec<Result<Intake, IntakeError>>) -> Numbered {
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| (index + 1, record))
        .collect()
}

/// Follows each composite alarm to the child alarms that fired it (this reads CloudWatch);
/// children keep their composite's record number.
fn expand_composites(
    records: Vec<Result<Intake, IntakeError>>,
    runtime: &tokio::runtime::Runtime,
) -> Numbered {
    let mut expanded = Vec::new();
    for (number, record) in numbered(records) {
        match record {
            Ok(intake @ Intake::Composite { .. }) => {
                for child in runtime.block_on(live::expand(intake)) {
                    expanded.push((number, Ok(child)));
                }
            }
            other => expanded.push((number, other)),
        }
    }
    expanded
}

/// Where the facts about the load balancer come from.
enum Source {
    Snapshot { world: Box<Snapshot>, name: String },
    Live,
}

/// Diagnoses every record, prints the reports, publishes them if asked, and returns the exit
/// code: 2 if any record was bad input (or a publish failed), else 3 if any was unsupported,
/// else 0.
fn run_records(
    records: Vec<Result<Intake, IntakeError>>,
    source: &Source,
    format: Format,
    publish: Option<&str>,
    remediation: &RemediationConfig,
) -> Exit {
    let mut exit = Exit::Ok;
    let mut reports: Vec<(Intake, Report)> = Vec::new();
    let runtime = match (source, publish) {
        (Source::Live, _) | (_, Some(_)) => match live::runtime() {
            Ok(runtime) => Some(runtime),
            Err(error) => {
                output::error(&error);
                return Exit::BadInput;
            }
        },
        _ => None,
    };
    let records = match (source, &runtime) {
        (Source::Live, Some(runtime)) => expand_composites(records, runtime),
        _ => numbered(records),
    };
    for (number, record) in records {
        let intake = match record {
            Err(error) => {
                output::warn(&format!("error: record {number}: {error}"));
                exit = Exit::BadInput;
                continue;
            }
            Ok(intake) => intake,
        };
        if is_unsupported(&intake) && exit == Exit::Ok {
            exit = Exit::Unsupported;
        }
        let report = match (&intake, source) {
            (
                Intake::Diagnose {
                    alarm,
                    load_balancer,
                },
                Source::Snapshot { world, name },
            ) => {
                if !same_lb(load_balancer, world) {
                    output::warn(&format!(
                        "error: record {number}: the alarm names load balancer {} but the snapshot {name} is of {}; record a snapshot of the alarmed load balancer",
                        load_balancer.id, world.load_balancer.id
                    ));
                    exit = Exit::BadInput;
                    continue;
                }
                let mut report = Report::diagnosed(alarm, load_balancer, world);
                offline_plan(remediation, alarm, load_balancer, world, &mut report);
                report
            }
            (Intake::Diagnose { .. }, Source::Live) => match &runtime {
                Some(runtime) => runtime.block_on(live::remediated(&intake, remediation)),
                None => continue,
            },
            (other, _) => match Report::without_diagnosis(other) {
                Some(report) => report,
                None => continue,
            },
        };
        reports.push((intake, report));
    }
    let rendered: Vec<Report> = reports.iter().map(|(_, r)| r.clone()).collect();
    output::print(&render_all(&rendered, format));
    if let (Some(topic), Some(runtime)) = (publish, &runtime) {
        for (intake, report) in &reports {
            if !elbmedic_aws::pipeline::worth_publishing(intake) {
                continue;
            }
            match runtime.block_on(live::publish(topic, &intake.alarm().region, report)) {
                Ok(message_id) => {
                    output::warn(&format!("published to {topic} (message {message_id})"))
                }
                Err(error) => {
                    output::error(&error);
                    exit = Exit::BadInput;
                }
            }
        }
    }
    exit
}

/// Replaying a snapshot: the plan the mode would act on, without touching AWS.
fn offline_plan(
    config: &RemediationConfig,
    alarm: &Alarm,
    lb: &LbRef,
    world: &Snapshot,
    report: &mut Report,
) {
    if config.mode == Mode::Off {
        return;
    }
    // Dated at the alarm's state change, so a replay gives the same plan every time.
    let created = alarm.state_change_epoch.unwrap_or(0);
    let plan = elbmedic_engine::plan::plan(
        world,
        &report.findings,
        &config.policy,
        created,
        alarm.state_change_epoch,
    );
    let message = PlanMessage::new(Request::Apply, alarm, lb, &plan);
    report.remediation = Some(RemediationSection::planned(
        Mode::Approve.min(config.mode),
        &message,
        config
            .topic_arn
            .as_deref()
            .filter(|_| config.mode == Mode::Approve),
        false,
    ));
}

fn render_all(reports: &[Report], format: Format) -> String {
    match format {
        Format::Json => {
            let value = match reports {
                [one] => serde_json::to_value(one),
                many => serde_json::to_value(many),
            };
            value
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
                .unwrap_or_default()
        }
        Format::Text => reports
            .iter()
            .map(|r| r.render(Format::Text))
            .collect::<Vec<_>>()
            .join(&format!("\n{}\n\n", "=".repeat(100))),
        Format::Markdown => reports
            .iter()
            .map(|r| r.render(Format::Markdown))
            .collect::<Vec<_>>()
            .join("\n---\n\n"),
    }
}

/// Creates the DynamoDB table of the remediation ledger (`LEDGER_TABLE`).
/// `--region`, else the SDK's usual variables.
fn region_or_env(region: Option<&str>) -> Result<String> {
    region
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| anyhow!("no region: pass --region or set AWS_REGION"))
}

pub fn alarms(lb: &str, topic: &str, region: Option<&str>) -> Result<Exit> {
    let region = region_or_env(region)?;
    let runtime = live::runtime()?;
    let found = runtime.block_on(live::find_load_balancer(lb, &region))?;
    output::print(&crate::alarms::deploy_command(&found, topic, &region)?);
    Ok(Exit::Ok)
}

pub fn ledger_create(table: &str, region: Option<&str>) -> Result<Exit> {
    let region = region_or_env(region)?;
    let runtime = live::runtime()?;
    let outcome = runtime.block_on(live::create_ledger(table, &region))?;
    output::print(&format!("ledger table {table} in {region}: {outcome}\n"));
    Ok(Exit::Ok)
}

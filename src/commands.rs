//! The subcommands: each reads its inputs, calls the engine, and returns the exit code.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use elbmedic_aws::accounts::Accounts;
use elbmedic_aws::clients::{CallLimits, Regions};
use elbmedic_aws::incidents::unclaimed;
use elbmedic_aws::pipeline::{self, Facts, Handled, OwnAccount, Run};
use elbmedic_aws::publish::{publish_all, Delivery, Outlets};
use elbmedic_aws::settings::{sdk_variable, Config, Role};
use elbmedic_engine::alarm::{self, Intake, IntakeError};
use elbmedic_engine::plan::message::Mode;
use elbmedic_engine::plan::proposal::Handoff;
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
    /// `undo`: a change was left as it is (refused by a guardrail, or failed).
    NotUndone = 4,
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
    // The demo reads nothing from the environment: remediation off, nothing published.
    let config = Config::from_env(Role::Cli, |_| None)?;
    run_records(records, &config, Some((&world, "(embedded)")), format)
}

pub fn diagnose(
    event_path: &str,
    snapshot_path: Option<&str>,
    format: Format,
    publish: Option<&str>,
    mode: Option<Mode>,
    follow_up: bool,
) -> Result<Exit> {
    let mut config = Config::from_process_env(Role::Cli)?;
    if follow_up {
        if snapshot_path.is_some() {
            bail!("--follow-up looks up CloudTrail and needs the live state: drop --snapshot");
        }
        config.change_lookups = elbmedic_aws::gather::ChangeLookups::All;
    }
    if let Some(mode) = mode {
        config.remediation.mode = mode;
    }
    if snapshot_path.is_some() && config.remediation.mode == Mode::Auto {
        bail!("--mode auto changes AWS and needs the live state: drop --snapshot, or use --mode dry-run or approve to see the plan");
    }
    if let Some(topic) = publish {
        if elbmedic_engine::alarm::formats::topic_arn(topic).is_none() {
            bail!("--publish {topic:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)");
        }
    }
    config.report_topic_arn = publish.map(str::to_string);
    let records = read_event(event_path)?;
    match snapshot_path {
        Some(path) => run_records(
            records,
            &config,
            Some((&read_snapshot(path)?, path)),
            format,
        ),
        None => run_records(records, &config, None, format),
    }
}

/// Gathers the snapshot of each alarmed load balancer from AWS and prints it as JSON.
pub fn snapshot(event_path: &str) -> Result<Exit> {
    let config = Config::from_process_env(Role::Cli)?;
    let records = read_event(event_path)?;
    let accounts = Accounts::new(
        Regions::new(CallLimits::default()),
        config.organization.clone(),
    );
    let run = Run {
        config: &config,
        facts: Facts::Live(&accounts),
        handoff: Handoff::Replay,
        own_account: OwnAccount::of_caller(),
        now: live::now(),
        run_id: "snapshot",
    };
    // The diagnosis pipeline, as `diagnose` runs it: the snapshot is what it gathered.
    let handled = live::runtime()?.block_on(Box::pin(pipeline::handle(&run, records)));
    let mut exit = Exit::Ok;
    let mut worlds = Vec::new();
    for handled in handled {
        let record = match handled {
            Handled::Refused { number, error } => {
                output::warn(&format!("error: record {number}: {error}"));
                exit = Exit::BadInput;
                continue;
            }
            Handled::Reported(record) => record,
        };
        if let Some(world) = &record.world {
            worlds.push(serde_json::to_value(world)?);
            continue;
        }
        let (number, alarm) = (record.number, record.intake.alarm());
        if let Intake::Diagnose { .. } = record.intake {
            // Its account could not be reached: nothing was read.
            let report = &record.report;
            let next = report.next_steps.first().cloned().unwrap_or_default();
            output::warn(&format!(
                "error: record {number}: {}. {next}",
                report.verdict.headline
            ));
            exit = Exit::Unsupported;
            continue;
        }
        if record.unsupported() && exit == Exit::Ok {
            exit = Exit::Unsupported;
        }
        output::warn(&format!(
            "record {number}: {} is not diagnosed ({:?}), so nothing was gathered",
            alarm.alarm_name, alarm.state
        ));
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

/// Takes every record through the shared pipeline (live, or replayed against `replay`),
/// prints the reports, publishes them if `config` names a report topic, and returns the exit
/// code: 2 if any record was bad input (or a publish failed), else 3 if any was unsupported,
/// else 0.
fn run_records(
    records: Vec<Result<Intake, IntakeError>>,
    config: &Config,
    replay: Option<(&Snapshot, &str)>,
    format: Format,
) -> Result<Exit> {
    let accounts = Accounts::new(
        Regions::new(CallLimits::default()),
        config.organization.clone(),
    );
    let (facts, handoff, own_account) = match replay {
        Some((world, name)) => (
            Facts::Replay { world, name },
            Handoff::Replay,
            OwnAccount::known(None),
        ),
        None => (
            Facts::Live(&accounts),
            Handoff::InProcess,
            OwnAccount::of_caller(),
        ),
    };
    let now = live::now();
    let run_id = format!("elbmedic-cli-{}-{now}", std::process::id());
    let run = Run {
        config,
        facts,
        handoff,
        own_account,
        now,
        run_id: &run_id,
    };
    let runtime = live::runtime()?;
    let handled = runtime.block_on(Box::pin(pipeline::handle(&run, records)));
    let mut exit = Exit::Ok;
    let mut reports = Vec::new();
    for handled in &handled {
        match handled {
            Handled::Refused { number, error } => {
                output::warn(&format!("error: record {number}: {error}"));
                exit = Exit::BadInput;
            }
            Handled::Reported(record) => {
                if record.unsupported() && exit == Exit::Ok {
                    exit = Exit::Unsupported;
                }
                reports.push(record.report.clone());
            }
        }
    }
    output::print(&render_all(&reports, format));
    if let Some(topic) = &config.report_topic_arn {
        let outlets = Outlets::of(config);
        // The CLI reports what was asked, every time: incidents are the function's.
        let sends: Vec<_> = unclaimed(&handled)
            .into_iter()
            .map(|(send, _)| send)
            .collect();
        let delivering = publish_all(
            &accounts.regions,
            topic,
            outlets,
            &handled,
            &sends,
            &run_id,
            now,
        );
        for delivery in runtime.block_on(Box::pin(delivering)) {
            match delivery {
                Delivery::Published(published) => output::warn(&format!(
                    "published to {topic} (message {})",
                    published.message_id.unwrap_or_default()
                )),
                Delivery::Failed(error) => {
                    output::error(&anyhow::Error::new(error));
                    exit = Exit::BadInput;
                }
                Delivery::Kept => {}
            }
        }
    }
    Ok(exit)
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
        Format::Html => elbmedic_engine::report::render_html_page(reports),
    }
}

/// `--region`, else the SDK's usual variables.
fn region_or_env(region: Option<&str>) -> Result<String> {
    region
        .map(str::to_string)
        .or_else(|| sdk_variable("AWS_REGION"))
        .or_else(|| sdk_variable("AWS_DEFAULT_REGION"))
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| anyhow!("no region: pass --region or set AWS_REGION"))
}

pub fn alarms(lb: &str, topic: &str, region: Option<&str>) -> Result<Exit> {
    let region = region_or_env(region)?;
    let runtime = live::runtime()?;
    let (found, account) = runtime.block_on(live::find_load_balancer(lb, &region))?;
    output::print(&crate::alarms::deploy_command(
        &found,
        topic,
        &region,
        account.as_deref(),
    )?);
    Ok(Exit::Ok)
}

/// `elbmedic undo PLAN_ID`: the plan's changes in the cluster put back, one line each.
pub fn undo(
    plan_id: &str,
    table: Option<&str>,
    region: Option<&str>,
    mode: Option<Mode>,
) -> Result<Exit> {
    use elbmedic_aws::remediate::undo::UndoStatus;
    if !plan_id.starts_with("plan-")
        || plan_id.len() > 80
        || !plan_id[5..].bytes().all(|b| b.is_ascii_hexdigit())
    {
        bail!(
            "{plan_id:?} is not a plan id (plan- and hex digits, as the outcome report names it)"
        );
    }
    let mut config = Config::from_process_env(Role::Cli)?;
    if let Some(mode) = mode {
        config.remediation.mode = mode;
    }
    let table = ledger_table(table, &config)?;
    let region = region_or_env(region)?;
    let runtime = live::runtime()?;
    let now = live::now();
    let run_id = format!("elbmedic-cli-undo-{}-{now}", std::process::id());
    let lines = runtime.block_on(live::undo(&table, &region, &config, plan_id, &run_id, now))?;
    let mut text = format!("undo of plan {plan_id}:\n");
    for line in &lines {
        // What the cluster or the ledger said is shown, never interpreted by the terminal.
        text.push_str(&format!(
            "- {}: {}: {}\n",
            printable(&line.object),
            line.status.label(),
            printable(&line.detail)
        ));
    }
    output::print(&text);
    let all_done = lines.iter().all(|l| {
        matches!(
            l.status,
            UndoStatus::Restored | UndoStatus::WouldRestore | UndoStatus::InPlace
        )
    });
    Ok(if all_done { Exit::Ok } else { Exit::NotUndone })
}

/// `text` with control characters (an escape sequence from an annotation) made visible.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The ledger table: `--table`, or `LEDGER_TABLE`.
fn ledger_table(table: Option<&str>, config: &Config) -> Result<String> {
    table
        .map(str::to_string)
        .or_else(|| config.remediation.ledger_table.clone())
        .ok_or_else(|| anyhow!("no ledger: pass --table or set LEDGER_TABLE"))
}

/// `elbmedic incidents`: the ledger's incidents, newest first.
pub fn incidents(
    lb: Option<&str>,
    table: Option<&str>,
    region: Option<&str>,
    json: bool,
) -> Result<Exit> {
    let config = Config::from_process_env(Role::Cli)?;
    let table = ledger_table(table, &config)?;
    let region = region_or_env(region)?;
    let runtime = live::runtime()?;
    let incidents = runtime.block_on(live::incidents(&table, &region, lb))?;
    if json {
        output::print(&(serde_json::to_string_pretty(&incidents)? + "\n"));
    } else {
        let text = elbmedic_engine::incident::listing::render(
            &incidents,
            live::now(),
            config.incidents.quiet_minutes,
        );
        output::print(&printable_lines(&text));
    }
    Ok(Exit::Ok)
}

/// Control characters shown, never interpreted by the terminal; line breaks kept.
fn printable_lines(text: &str) -> String {
    text.lines().map(printable).collect::<Vec<_>>().join("\n") + "\n"
}

/// Creates the DynamoDB table of the remediation ledger (`LEDGER_TABLE`).
pub fn ledger_create(table: &str, region: Option<&str>) -> Result<Exit> {
    let region = region_or_env(region)?;
    let runtime = live::runtime()?;
    let outcome = runtime.block_on(live::create_ledger(table, &region))?;
    output::print(&format!("ledger table {table} in {region}: {outcome}\n"));
    Ok(Exit::Ok)
}

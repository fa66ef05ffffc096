//! One event from intake to the decision to publish, for the `diagnose` function and the CLI
//! alike, so they cannot drift apart: parse → composite expansion (with the account rule) →
//! gather (or replay) → diagnose → plan → publish decision. Callers keep only their
//! configuration, their I/O (printing, publishing, sending plans) and their exit codes.

pub mod composite;
mod episode;

use elbmedic_engine::account::{self, AccountRefusal, Scope};
use elbmedic_engine::alarm::{Alarm, AlarmState, Intake, IntakeError, LbRef};
use elbmedic_engine::diagnosis::VerdictStatus;
use elbmedic_engine::plan::message::PlanMessage;
use elbmedic_engine::plan::proposal::{propose, Handoff};
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::Snapshot;
use elbmedic_engine::untrusted::one_line;

use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::concurrent::join_all;
use crate::gather;
use crate::remediate;
use crate::settings::Config;

/// Where the facts about each load balancer come from.
pub enum Facts<'a> {
    /// Gathered from AWS, in each alarm's account and region.
    Live(&'a Accounts),
    /// Replayed offline from a recorded snapshot of one load balancer (`name` is its file).
    Replay { world: &'a Snapshot, name: &'a str },
}

/// Why a record was not diagnosed (its text names no record: the caller says which).
#[derive(Debug, thiserror::Error)]
pub enum RecordRefused {
    #[error("{}", .0.within_record())]
    NotAnAlarm(IntakeError),
    #[error("the alarm names load balancer {alarmed} but the snapshot {snapshot} is of {recorded}; record a snapshot of the alarmed load balancer")]
    SnapshotOfAnotherLoadBalancer {
        alarmed: String,
        snapshot: String,
        recorded: String,
    },
    #[error("the alarm is in region {alarm} but the snapshot {snapshot} was recorded in {recorded}; record a snapshot of the alarmed load balancer")]
    SnapshotOfAnotherRegion {
        alarm: String,
        snapshot: String,
        recorded: String,
    },
    #[error("the alarm is in account {alarm} but the snapshot {snapshot} was recorded in {recorded}; record a snapshot of the alarmed load balancer")]
    SnapshotOfAnotherAccount {
        alarm: String,
        snapshot: String,
        recorded: String,
    },
    #[error("nothing to report for this record")]
    NothingToReport,
}

/// One run of the pipeline over an event's records.
pub struct Run<'a> {
    pub config: &'a Config,
    pub facts: Facts<'a>,
    pub handoff: Handoff,
    /// The account these credentials read: an alarm of another account is read through its
    /// member role when `ALLOWED_ACCOUNTS` names it, and refused with a report otherwise.
    pub own_account: OwnAccount,
    /// The clock, read by the caller.
    pub now: i64,
    /// Names the in-process remediation run in the ledger's lock.
    pub run_id: &'a str,
}

/// The account the pipeline runs in: known up front (a function's ARN names it), looked up
/// once from the credentials on first need (the CLI), or unknown (offline replay).
#[derive(Debug, Default)]
pub struct OwnAccount {
    account: tokio::sync::OnceCell<Option<String>>,
}

impl OwnAccount {
    pub fn known(account: Option<String>) -> Self {
        Self {
            account: tokio::sync::OnceCell::new_with(Some(account)),
        }
    }

    /// Looked up with `sts:GetCallerIdentity` the first time it is needed.
    pub fn of_caller() -> Self {
        Self::default()
    }

    async fn get(&self, clients: &Clients) -> Option<&str> {
        self.account
            .get_or_init(|| clients.caller_account())
            .await
            .as_deref()
    }

    /// Offline: nothing to ask, and nothing to compare with.
    fn get_offline(&self) -> Option<&str> {
        self.account.get().and_then(|a| a.as_deref())
    }
}

/// What happened to one record (or, for a composite alarm, one of its children).
#[derive(Debug)]
pub enum Handled {
    /// The record could not be taken: not an alarm, a forged field, a snapshot of another LB.
    Refused {
        number: usize,
        error: RecordRefused,
    },
    Reported(Box<Record>),
}

#[derive(Debug)]
pub struct Record {
    /// The record's 1-based number in the event; a composite's children share theirs.
    pub number: usize,
    pub intake: Intake,
    pub report: Report,
    /// Whether the report goes to the on-call topic.
    pub publish: bool,
    /// The plan to send to remediate once every report is out (the function's handoff).
    pub plan: Option<PlanMessage>,
    /// The live snapshot the report was diagnosed from, which the follow-up pass re-reads
    /// with the late evidence; `None` offline, across accounts, or without a diagnosis.
    pub world: Option<Snapshot>,
    /// For a recovery sent to chat: when the alarm went into ALARM, from its history, so the
    /// recovery joins that episode's thread.
    pub episode_began: Option<String>,
}

impl Record {
    /// Exit-3 territory for the CLI: an alarm elbmedic cannot diagnose from here, or whose
    /// load balancer it could not read.
    pub fn unsupported(&self) -> bool {
        matches!(
            self.report.verdict.status,
            VerdictStatus::Unsupported | VerdictStatus::LoadBalancerNotRead
        )
    }
}

/// Takes every record of an event through the pipeline; the records are diagnosed
/// concurrently, each gather bounded by the deadline, and returned in the event's order.
pub async fn handle(run: &Run<'_>, records: Vec<Result<Intake, IntakeError>>) -> Vec<Handled> {
    let expanded = expand(run, records).await;
    join_all(
        expanded
            .into_iter()
            .map(|(number, record)| async move {
                let handled = match record {
                    Ok(intake) => handle_one(run, number, intake).await,
                    Err(error) => Handled::Refused { number, error },
                };
                if let Handled::Refused { number, error } = &handled {
                    tracing::error!(record = number, error = %error, "record skipped: not a readable alarm");
                }
                handled
            })
            .collect(),
    )
    .await
}

/// Each record numbered, with every composite alarm in ALARM followed to the child alarms that
/// fired it (read from CloudWatch when live); children keep their composite's number.
pub async fn expand(
    run: &Run<'_>,
    records: Vec<Result<Intake, IntakeError>>,
) -> Vec<(usize, Result<Intake, RecordRefused>)> {
    let mut expanded = Vec::new();
    for (index, record) in records.into_iter().enumerate() {
        let number = index + 1;
        match record {
            Err(error) => expanded.push((number, Err(RecordRefused::NotAnAlarm(error)))),
            Ok(intake @ Intake::Composite { .. }) if intake.alarm().state == AlarmState::Alarm => {
                let alarm = intake.alarm().clone();
                let children = match &run.facts {
                    Facts::Live(accounts) => {
                        // The children live in the composite's own account.
                        match Box::pin(reach(run, accounts, &alarm)).await {
                            Ok(clients) => {
                                let max = run.config.max_composite_children;
                                composite::expand(&clients, intake, max).await
                            }
                            Err(refusal) => vec![refused_composite(alarm, &refusal)],
                        }
                    }
                    // Offline, the children cannot be read: the composite is reported as such.
                    Facts::Replay { .. } => match offline_scope(run, &alarm) {
                        Err(refusal) => vec![refused_composite(alarm, &refusal)],
                        Ok(_) => vec![intake],
                    },
                };
                expanded.extend(children.into_iter().map(|child| (number, Ok(child))));
            }
            Ok(intake) => expanded.push((number, Ok(intake))),
        }
    }
    expanded
}

/// A composite whose account cannot be read: a notice saying why, in place of its children.
fn refused_composite(alarm: Alarm, refusal: &AccountRefusal) -> Intake {
    let reason = format!(
        "composite alarm whose child alarms cannot be read: {}. {}",
        refusal.headline(),
        refusal.next_step()
    );
    Intake::Unsupported { alarm, reason }
}

/// The clients for an alarm's account, the own account being looked up first (for a
/// composite's children, which must be read in the right account before anything else).
pub async fn reach(
    run: &Run<'_>,
    accounts: &Accounts,
    alarm: &Alarm,
) -> Result<Clients, AccountRefusal> {
    let central = accounts.regions.get(&alarm.region).await;
    let own = run.own_account.get(&central).await;
    let account = alarm.account_id.as_deref();
    let reaching = accounts.clients_for(own, account, &alarm.region, &alarm.alarm_name, run.now);
    Box::pin(reaching).await
}

/// Offline, an alarm is ours unless the own account is known and differs: no member role
/// can be assumed from a replay.
fn offline_scope(run: &Run<'_>, alarm: &Alarm) -> Result<Scope, AccountRefusal> {
    let own = run.own_account.get_offline();
    account::scope(alarm.account_id.as_deref(), own, |_| false)
}

async fn handle_one(run: &Run<'_>, number: usize, intake: Intake) -> Handled {
    let publish = worth_publishing(&intake);
    let Diagnosed {
        report,
        plan,
        world,
    } = match &intake {
        Intake::Diagnose {
            alarm,
            load_balancer,
        } => match diagnosed(run, alarm, load_balancer).await {
            Ok(diagnosed) => diagnosed,
            Err(error) => return Handled::Refused { number, error },
        },
        other => match Report::without_diagnosis(other) {
            Some(report) => Diagnosed::report(report),
            None => {
                return Handled::Refused {
                    number,
                    error: RecordRefused::NothingToReport,
                }
            }
        },
    };
    tracing::info!(
        record = number,
        alarm = %intake.alarm().alarm_name,
        verdict = ?report.verdict.status,
        findings = ?report.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(),
        gaps = report.gaps.len(),
        "diagnosed"
    );
    let episode_began = match &intake {
        Intake::Recovered { alarm, .. } if run.config.chat_topic_arn.is_some() => {
            Box::pin(episode_began(run, alarm)).await
        }
        _ => None,
    };
    Handled::Reported(Box::new(Record {
        number,
        intake,
        report,
        publish,
        plan,
        world,
        episode_began,
    }))
}

/// When a recovered alarm's episode began, read live from its account; offline, unknown.
async fn episode_began(run: &Run<'_>, alarm: &Alarm) -> Option<String> {
    let Facts::Live(accounts) = &run.facts else {
        return None;
    };
    let clients = Box::pin(reach(run, accounts, alarm)).await.ok()?;
    let before = alarm
        .state_change_time
        .as_deref()
        .and_then(elbmedic_engine::alarm::parse_timestamp);
    episode::began(&clients.cloudwatch, &alarm.alarm_name, before).await
}

/// One alarm's diagnosis, as [`handle_one`] takes it apart.
struct Diagnosed {
    report: Report,
    plan: Option<PlanMessage>,
    world: Option<Snapshot>,
}

impl Diagnosed {
    /// The report of an alarm whose account cannot be read from here.
    fn refused(alarm: &Alarm, lb: &LbRef, refusal: &AccountRefusal) -> Self {
        Self::report(Report::account_refused(alarm, lb, refusal))
    }

    fn report(report: Report) -> Self {
        Self {
            report,
            plan: None,
            world: None,
        }
    }
}

/// What one alarm is diagnosed from: the snapshot and, when live, the clients that read it;
/// or why its account cannot be read from here.
type Read = Result<(Snapshot, Option<Clients>), AccountRefusal>;

/// The diagnosis of one alarm, with its remediation proposal; in-process remediation (the
/// live CLI in dry-run or auto) runs here and its outcome becomes the report.
async fn diagnosed(run: &Run<'_>, alarm: &Alarm, lb: &LbRef) -> Result<Diagnosed, RecordRefused> {
    let read = match &run.facts {
        Facts::Replay { world, name } => replayed(run, alarm, lb, world, name)?,
        Facts::Live(accounts) => Box::pin(gathered(run, accounts, alarm, lb)).await,
    };
    let (world, clients) = match read {
        Ok(read) => read,
        Err(refusal) => return Ok(Diagnosed::refused(alarm, lb, &refusal)),
    };
    let remediation = &run.config.remediation;
    let mut report = Report::diagnosed(alarm, lb, &world);
    let proposal = propose(
        remediation,
        run.handoff,
        alarm,
        lb,
        &world,
        &report.findings,
        run.now,
    );
    report.remediation = proposal.shown.as_ref().map(RemediationSection::planned);
    // An approve-mode plan is kept where an approval by its id (a chat button) finds it,
    // before the report that offers the approval goes out.
    if let (Some(waiting), Some(clients)) = (&proposal.awaiting_approval, &clients) {
        keep_for_approval(clients, remediation, waiting).await;
    }
    match (run.handoff, proposal.plan, &run.facts, clients) {
        (Handoff::InProcess, Some(message), Facts::Live(accounts), Some(clients)) => {
            let remediating = remediate_here(run, accounts, &clients, message);
            Ok(Diagnosed::report(Box::pin(remediating).await))
        }
        (_, plan, _, clients) => Ok(Diagnosed {
            report,
            plan,
            // Only a live diagnosis has late evidence to come.
            world: clients.map(|_| world),
        }),
    }
}

/// The recorded snapshot, when it is of the alarmed load balancer, region and account.
fn replayed(
    run: &Run<'_>,
    alarm: &Alarm,
    lb: &LbRef,
    world: &Snapshot,
    name: &str,
) -> Result<Read, RecordRefused> {
    if (lb.kind, lb.id.as_str()) != (world.load_balancer.kind, world.load_balancer.id.as_str()) {
        return Err(RecordRefused::SnapshotOfAnotherLoadBalancer {
            alarmed: lb.id.clone(),
            snapshot: name.to_string(),
            recorded: world.load_balancer.id.clone(),
        });
    }
    // Commands are built for the snapshot's region and account: they must be the alarm's, or
    // they would name the right load balancer in the wrong place.
    if world.region != alarm.region {
        return Err(RecordRefused::SnapshotOfAnotherRegion {
            alarm: alarm.region.clone(),
            snapshot: name.to_string(),
            recorded: one_line(&world.region),
        });
    }
    if let (Some(theirs), Some(recorded)) = (&alarm.account_id, &world.account_id) {
        if theirs != recorded {
            return Err(RecordRefused::SnapshotOfAnotherAccount {
                alarm: theirs.clone(),
                snapshot: name.to_string(),
                recorded: one_line(recorded),
            });
        }
    }
    Ok(offline_scope(run, alarm).map(|_| (world.clone(), None)))
}

/// The load balancer gathered in the alarm's account: its own, or a member's through its role.
async fn gathered(run: &Run<'_>, accounts: &Accounts, alarm: &Alarm, lb: &LbRef) -> Read {
    let named = alarm.account_id.as_deref();
    // An account this deployment does not serve is refused before anything is read, when the
    // own account is known up front (a function's ARN names it).
    let member = matches!(
        accounts.scope(named, run.own_account.get_offline())?,
        Scope::Member(_)
    );
    // A member account's role is assumed before the gather; otherwise the own account is asked
    // beside it, not before it: the critical path stays the API depth.
    let clients = match member {
        true => Box::pin(reach(run, accounts, alarm)).await?,
        false => accounts.regions.get(&alarm.region).await,
    };
    // Boxed: the gather's future is deep, and callers nest it further.
    let gathering = Box::pin(gather::for_alarm(
        &clients,
        alarm,
        lb,
        run.now,
        run.config.gather_deadline,
        run.config.remediation.ledger_table.as_deref(),
        gather::Sources {
            recent_changes: run.config.change_lookups,
            cluster: run.config.cluster_reads.clone(),
        },
    ));
    let (own, world) = tokio::join!(run.own_account.get(&clients), gathering);
    if !member {
        // Scoped again with the own account known: no member role was assumed.
        account::scope(named, own, |_| false)?;
    }
    Ok((world, Some(clients)))
}

/// The live CLI's dry-run or auto plan, run here through the remediation pipeline (the same
/// code as the `remediate` function); the engineer gets the outcome directly: it is delivered.
async fn remediate_here(
    run: &Run<'_>,
    accounts: &Accounts,
    clients: &Clients,
    message: PlanMessage,
) -> Report {
    let remediation_run = remediate::Run {
        config: run.config,
        accounts,
        home: clients,
        own_account: run.own_account.get_offline(),
        now: run.now,
        run_id: run.run_id,
    };
    let remediated = Box::pin(remediate::remediate_plan(&remediation_run, 1, message)).await;
    let ledger = remediated.ledger.as_ref();
    remediate::reported(ledger, &remediated.report, &remediated.message, run.now).await;
    remediated.report
}

/// Stores a plan awaiting approval in the ledger (the deployment's own table, whatever the
/// load balancer's account). Without a ledger, or when it fails, only the full approve
/// command of the report approves it; that is logged.
async fn keep_for_approval(
    clients: &Clients,
    remediation: &elbmedic_engine::plan::config::RemediationConfig,
    waiting: &elbmedic_engine::plan::message::PlanMessage,
) {
    let Some(ledger) = remediate::configured_ledger(clients, remediation) else {
        tracing::info!(plan = %waiting.plan.id, "no LEDGER_TABLE: the plan can be approved with the report's command, not by its id");
        return;
    };
    let stored = ledger
        .store_proposal(
            &waiting.plan.id,
            &waiting.to_json(),
            waiting.plan.expires_at,
        )
        .await;
    if let Err(error) = stored {
        tracing::error!(plan = %waiting.plan.id, error = %error, "the plan could not be kept for an approval by id; the report's command still approves it");
    }
}

/// Whether a record's report goes to the on-call topic: INSUFFICIENT_DATA (of a metric or a
/// composite alarm) is acknowledged and not published; everything else is.
pub fn worth_publishing(intake: &Intake) -> bool {
    match intake {
        Intake::Skipped { .. } => false,
        Intake::Composite { alarm, .. } => alarm.state != AlarmState::InsufficientData,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elbmedic_engine::alarm::parse_input;

    fn composite(state: &str, account: &str) -> Intake {
        let message = serde_json::json!({
            "AlarmName": "c", "NewStateValue": state, "AlarmRule": "ALARM(\"a\")",
            "AlarmArn": format!("arn:aws:cloudwatch:eu-west-1:{account}:alarm:c"),
        });
        parse_input(message.to_string().as_bytes())
            .unwrap()
            .remove(0)
            .unwrap()
    }

    /// The CLI and the function say "record N: ..." once, not twice.
    #[test]
    fn intake_errors_name_their_record_once() {
        let records = parse_input(br#"{"Records":[{"Sns":{"Message":"{}"}}]}"#).unwrap();
        let Err(error) = &records[0] else { panic!() };
        assert!(error.to_string().starts_with("record 1: "));
        assert_eq!(error.detail(), "not a CloudWatch alarm: no AlarmName");
    }

    #[test]
    fn insufficient_data_is_not_published_for_metric_or_composite_alarms() {
        let composite = |state| composite(state, "123456789012");
        assert!(worth_publishing(&composite("ALARM")));
        assert!(worth_publishing(&composite("OK")));
        assert!(!worth_publishing(&composite("INSUFFICIENT_DATA")));
    }

    /// A composite of another account is not followed: its children are out of reach.
    #[tokio::test]
    async fn a_composite_of_another_account_is_a_notice_not_a_read() {
        let config = Config::from_env(crate::settings::Role::Cli, |_| None).unwrap();
        let scenario = elbmedic_engine::scenarios::find("clb-idle-timeout").unwrap();
        let world = elbmedic_engine::snapshot::from_json(scenario.snapshot).unwrap();
        let run = Run {
            config: &config,
            facts: Facts::Replay {
                world: &world,
                name: "test",
            },
            handoff: Handoff::Replay,
            own_account: OwnAccount::known(Some("123456789012".into())),
            now: 0,
            run_id: "test",
        };
        let records = vec![Ok(composite("ALARM", "210987654321"))];
        let expanded = expand(&run, records).await;
        let Ok(Intake::Unsupported { reason, .. }) = &expanded[0].1 else {
            panic!("{expanded:?}")
        };
        assert!(
            reason.contains("account 210987654321 is not one this deployment serves"),
            "{reason}"
        );
        assert!(reason.contains("ALLOWED_ACCOUNTS"), "{reason}");
    }
}

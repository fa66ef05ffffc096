//! One plan's run against AWS: one plan in, one report out. The plan is never trusted as
//! given: the load balancer is gathered again, and the engine decides against that state and
//! the ledger's history (`plan::reconcile`: any guardrail broken refuses it whole); this module
//! only locks, applies what the engine lets through, records, and reads the state a third
//! time for the engine to verify each path.

use elbmedic_engine::account::AccountRefusal;
use elbmedic_engine::plan::message::PlanMessage;
use elbmedic_engine::plan::outcome::{Outcome, Step, StepStatus};
use elbmedic_engine::plan::reconcile::{self, Decision, History};
use elbmedic_engine::plan::Action;
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::{IdleTimeoutRaise, Snapshot};

use super::apply;
use crate::clients::Clients;
// The lock's lease counts from when the lock is taken, not from when the invocation started.
use crate::edge::epoch_now;
use crate::gather::for_alarm;
use crate::ledger::{self, AuditRecord, Ledger, LockOutcome};
use crate::settings::Config;
use elbmedic_engine::plan::config::RemediationConfig;

/// The ledger `LEDGER_TABLE` names, on these clients; `None` when it is off.
pub fn configured_ledger(clients: &Clients, config: &RemediationConfig) -> Option<Ledger> {
    Some(Ledger::for_clients(clients, config.ledger_table.as_ref()?))
}

/// Reviews and applies one plan; the report is about the state after it.
///
/// `reached` is the account these clients act in (the function's own, or the member role's):
/// a plan that names another, or none, is refused before anything is read, so the ledger's
/// keys, the lock and the cooldown are always the reached account's.
///
/// With the ledger, the LB's lock is taken first and released on every path; everything is
/// decided under it, by the engine (`plan::reconcile`), from state gathered after it was
/// taken, so a change someone made meanwhile (a timeout raised higher, an entry added) is
/// seen, and never undone.
pub async fn remediate(
    clients: &Clients,
    ledger: Option<&Ledger>,
    config: &Config,
    message: &PlanMessage,
    reached: Option<&str>,
    now: i64,
    run_id: &str,
) -> Report {
    let scope = elbmedic_engine::account::plan_scope(
        message.plan.load_balancer.account.as_deref(),
        message.alarm.account_id.as_deref(),
        reached,
    );
    if let Err(refusal) = scope {
        return unreachable(config, message, &refusal);
    }
    let plan = &message.plan;
    let mode = config.remediation.mode;
    if let Some(outcome) = reconcile::admit(message, mode) {
        return stopped(clients, config, message, outcome).await;
    }
    let dry_run = reconcile::is_dry_run(mode, message.request);
    let lock = match ledger.filter(|_| !dry_run) {
        None => None,
        Some(ledger) => match ledger.lock(&plan.load_balancer, run_id, epoch_now()).await {
            Ok(LockOutcome::Acquired(lock)) => Some(lock),
            Ok(LockOutcome::Held { owner, until }) => {
                let outcome = reconcile::lock_held(message, mode, &owner, until);
                return stopped(clients, config, message, outcome).await;
            }
            Err(error) => {
                let outcome = reconcile::lock_failed(message, mode, ledger.table(), &error);
                return stopped(clients, config, message, outcome).await;
            }
        },
    };
    let mut report = Box::pin(under_lock(
        clients, ledger, config, message, now, dry_run, run_id,
    ))
    .await;
    if let (Some(ledger), Some(lock)) = (ledger, &lock) {
        if let Err(error) = ledger.unlock(lock).await {
            if let Some(RemediationSection::Outcome(outcome)) = &mut report.remediation {
                outcome.notes.push(format!(
                    "the lock could not be released ({error}); its lease ends within {} s",
                    ledger::LOCK_LEASE_SECONDS
                ));
            }
        }
    }
    report
}

async fn gather(clients: &Clients, message: &PlanMessage, config: &Config) -> Snapshot {
    Box::pin(for_alarm(
        clients,
        &message.alarm,
        &message.alarmed,
        epoch_now(),
        config.gather_deadline,
        None,
        sources(message, config),
    ))
    .await
}

/// The state only; the cluster too when the plan changes something there (its guardrails
/// and the before values are read from it).
fn sources(message: &PlanMessage, config: &Config) -> crate::gather::Sources {
    let in_cluster = message.plan.actions.iter().any(|a| a.place().is_some());
    crate::gather::Sources {
        cluster: match in_cluster {
            true => config.cluster_reads.clone(),
            false => crate::gather::ClusterReads::Off,
        },
        ..crate::gather::Sources::STATE_ONLY
    }
}

/// The report of a run that stops before deciding anything: the state as it is, and why.
async fn stopped(
    clients: &Clients,
    config: &Config,
    message: &PlanMessage,
    outcome: Outcome,
) -> Report {
    let world = gather(clients, message, config).await;
    with_outcome(
        Report::diagnosed(&message.alarm, &message.alarmed, &world),
        outcome,
    )
}

/// The report of a plan whose account cannot be reached with the remediation role (outside
/// `ALLOWED_ACCOUNTS`, or no write role there): nothing is read or applied, and it says why.
pub fn unreachable(config: &Config, message: &PlanMessage, refusal: &AccountRefusal) -> Report {
    let outcome =
        reconcile::account_unreachable(message, config.remediation.mode, &refusal.headline());
    with_outcome(
        Report::account_refused(&message.alarm, &message.alarmed, refusal),
        outcome,
    )
}

fn with_outcome(mut report: Report, outcome: Outcome) -> Report {
    report.remediation = Some(RemediationSection::Outcome(outcome));
    report
}

/// What the ledger knows of this plan and load balancer, read under the lock: the plan's
/// record (not in a dry run, which may repeat) and, when the plan raises the idle timeout,
/// the last raise.
async fn history(ledger: &Ledger, message: &PlanMessage, dry_run: bool) -> History {
    let target = &message.plan.load_balancer;
    let plan = async {
        if dry_run {
            return Ok(None);
        }
        ledger.plan_record(target, &message.plan.id).await
    };
    let last_raise = async {
        if !reconcile::needs_cooldown(message) {
            return Ok(None);
        }
        ledger
            .last_idle_timeout_raise(target.account.as_deref(), &target.region, &target.id)
            .await
    };
    let (plan, last_raise) = tokio::join!(plan, last_raise);
    History {
        plan,
        last_raise,
        table: ledger.table().to_string(),
    }
}

/// Everything `remediate` does while it holds the lock (or, without the ledger, alone):
/// gather, let the engine decide, apply, record, verify.
async fn under_lock(
    clients: &Clients,
    ledger: Option<&Ledger>,
    config: &Config,
    message: &PlanMessage,
    now: i64,
    dry_run: bool,
    run_id: &str,
) -> Report {
    let plan = &message.plan;
    let remediation = &config.remediation;
    let (before, history) = tokio::join!(gather(clients, message, config), async {
        match ledger {
            Some(ledger) => Some(history(ledger, message, dry_run).await),
            None => None,
        }
    });
    let report = Report::diagnosed(&message.alarm, &message.alarmed, &before);
    let decision = reconcile::reconcile(
        message,
        &before,
        &report.findings,
        history.as_ref(),
        remediation,
        now,
    );
    let (mut outcome, actions) = match decision {
        Decision::Stop(outcome) => return with_outcome(report, outcome),
        Decision::Resend => return resend(ledger, config, message, &before, report).await,
        Decision::Proceed { outcome, apply } => (outcome, apply),
    };
    let writer = apply::Writer::for_actions(clients, &actions, &before, config).await;
    // The locks of objects in the cluster: none in a dry run, which changes nothing.
    let locks = ledger.filter(|_| !dry_run);
    for action in &actions {
        if let Some(reason) = reconcile::keep_without_raise(action, &outcome.steps) {
            outcome
                .steps
                .push(Step::new(action, StepStatus::Refused, reason));
            continue;
        }
        let object_lock = match lock_object(locks, &plan.load_balancer, action, run_id).await {
            Ok(lock) => lock,
            Err(refused) => {
                outcome.steps.push(*refused);
                continue;
            }
        };
        let (mut step, watch) = apply::apply(
            clients,
            &writer,
            action,
            &before,
            &plan.load_balancer,
            &remediation.policy,
            dry_run,
        )
        .await;
        // Audited before the watch: a change in the cluster whose run dies while watching is
        // still in the ledger, for undo.
        if step.status == StepStatus::Applied || step.field.is_some() {
            record(
                ledger,
                message,
                &step,
                outcome.steps.len(),
                now,
                &mut outcome.notes,
            )
            .await;
        }
        if let Some(watch) = watch {
            super::in_cluster::settle(&writer, &mut step, watch).await;
        }
        outcome.steps.push(step);
        if let (Some(ledger), Some(lock)) = (ledger, object_lock) {
            if let Err(error) = ledger.unlock(&lock).await {
                tracing::warn!(error = %error, "the lock of an object in the cluster could not be released; its lease ends by itself");
            }
        }
    }
    reconcile::finish(&mut outcome, &plan.load_balancer, &remediation.policy);
    if !reconcile::applied_any(&outcome) {
        return with_outcome(report, outcome);
    }
    mark_applied(ledger, message, now, &mut outcome.notes).await;
    let after = gather(clients, message, config).await;
    // One diagnosis of the state read again: the report's, which the verification reads too.
    let report = Report::diagnosed(&message.alarm, &message.alarmed, &after);
    outcome.verification =
        reconcile::verify(&outcome.steps, &after, &report.findings, &message.alarmed);
    with_outcome(report, outcome)
}

/// Marks the plan applied before its outcome is published: a retry after a failed publish
/// sends this outcome again instead of reporting "nothing to do".
async fn mark_applied(
    ledger: Option<&Ledger>,
    message: &PlanMessage,
    now: i64,
    notes: &mut Vec<String>,
) {
    let (Some(ledger), plan) = (ledger, &message.plan) else {
        return;
    };
    if let Err(error) = ledger
        .record_plan(&plan.load_balancer, &plan.id, now, false)
        .await
    {
        notes.push(format!(
            "the ledger could not record plan {} as applied: {error}",
            plan.id
        ));
    }
}

/// The outcome of a plan applied before whose outcome was not published: sent again, from
/// the audit trail.
async fn resend(
    ledger: Option<&Ledger>,
    config: &Config,
    message: &PlanMessage,
    before: &Snapshot,
    report: Report,
) -> Report {
    let plan = &message.plan;
    let mode = reconcile::shown_mode(config.remediation.mode, message.request);
    let changes = match ledger {
        Some(ledger) => {
            ledger
                .audited_changes(&plan.load_balancer, &plan.id, plan.actions.len())
                .await
        }
        None => Ok(Vec::new()),
    };
    let outcome = reconcile::resent(message, mode, changes, before, &report.findings);
    with_outcome(report, outcome)
}

/// The lock of the object a change in the cluster is made to (a plan of another load
/// balancer may change it too), taken for that step only; `None` for an AWS change, in a dry
/// run, or without the ledger. A lock held elsewhere refuses the step, and it says by whom.
async fn lock_object(
    ledger: Option<&Ledger>,
    target: &elbmedic_engine::plan::PlanTarget,
    action: &Action,
    run_id: &str,
) -> Result<Option<ledger::Lock>, Box<Step>> {
    let (Some(ledger), Some((cluster, place))) = (ledger, action.place()) else {
        return Ok(None);
    };
    let refused = |reason: String| Box::new(Step::new(action, StepStatus::Refused, reason));
    match ledger
        .lock_object(target, cluster, place, run_id, epoch_now())
        .await
    {
        Ok(LockOutcome::Acquired(lock)) => Ok(Some(lock)),
        Ok(LockOutcome::Held { owner, until }) => Err(refused(format!(
            "another elbmedic run ({owner}) is changing {} until {until} (epoch seconds): this step waits for the next alarm",
            place.describe()
        ))),
        Err(error) => Err(refused(format!(
            "the lock of {} could not be taken in ledger {}: {error}",
            place.describe(),
            ledger.table()
        ))),
    }
}

/// After the outcome of `message` reached the report topic: the ledger marks the plan as
/// reported, so a replay of it is refused from now on.
pub async fn reported(ledger: Option<&Ledger>, report: &Report, message: &PlanMessage, now: i64) {
    let (Some(ledger), Some(RemediationSection::Outcome(outcome))) = (ledger, &report.remediation)
    else {
        return;
    };
    if reconcile::applied_any(outcome) {
        if let Err(error) = ledger
            .record_plan(&message.plan.load_balancer, &message.plan.id, now, true)
            .await
        {
            tracing::warn!(plan = %message.plan.id, error = %error, "the ledger could not mark the plan as reported");
        }
    }
}

/// The audit record and, for idle timeouts, the cooldown mark. A ledger failure after the
/// change is a note: the change is made and reported either way.
async fn record(
    ledger: Option<&Ledger>,
    message: &PlanMessage,
    step: &Step,
    index: usize,
    now: i64,
    notes: &mut Vec<String>,
) {
    let Some(ledger) = ledger else { return };
    let target = &message.plan.load_balancer;
    let audit = AuditRecord {
        plan_id: &message.plan.id,
        index,
        action: &step.description,
        before: step.before.as_deref().unwrap_or_default(),
        after: step.after.as_deref().unwrap_or_default(),
        at: now,
        action_json: &serde_json::to_string(&step.action).unwrap_or_default(),
        field: step.field.as_ref(),
    };
    // The plan's index first: an audited change in the cluster is always found by undo.
    let mut result = match step.action.place() {
        Some(_) => ledger.record_cluster_change(&message.plan.id, target).await,
        None => Ok(()),
    };
    if result.is_ok() {
        result = ledger.audit(target, &audit).await;
    }
    // One cooldown per load balancer, whichever idle timeout was raised (an NLB listener's too).
    let raised = match &step.action {
        Action::RaiseIdleTimeout { from, to }
        | Action::RaiseListenerIdleTimeout { from, to, .. } => Some((from, to)),
        _ => None,
    };
    if let (Some((from, to)), Ok(())) = (raised, &result) {
        let raise = IdleTimeoutRaise {
            at: now,
            from_seconds: Some(*from),
            to_seconds: Some(*to),
            plan_id: Some(message.plan.id.clone()),
        };
        result = ledger.record_idle_timeout_raise(target, &raise).await;
    }
    if let Err(error) = result {
        notes.push(format!(
            "the ledger could not record \"{}\": {error}",
            step.description
        ));
    }
}

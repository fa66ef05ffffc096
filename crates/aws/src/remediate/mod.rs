//! Remediation against AWS: one plan in, one report out. The plan is never trusted as given:
//! the load balancer is gathered again, the engine reviews the plan against that state (any
//! guardrail broken refuses it whole), only still-needed actions are applied, and the state is
//! read a third time to verify each path. Shared by the `remediate` function and the CLI's
//! `--mode auto`/`dry-run`, so they cannot drift apart.

pub mod apply;

use elbmedic_engine::finding::DurableFix;
use elbmedic_engine::plan::guardrails::still_needed;
use elbmedic_engine::plan::message::{Mode, PlanMessage, Request};
use elbmedic_engine::plan::outcome::{Outcome, OutcomeStatus, PathCheck, Step, StepStatus};
use elbmedic_engine::plan::review::{review, Review};
use elbmedic_engine::plan::Action;
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::{IdleTimeoutRaise, Snapshot};

use crate::clients::Clients;
use crate::ledger::{self, AuditRecord, Ledger, LockOutcome};
use crate::pipeline::snapshot_for;
use crate::settings::Config;
use elbmedic_engine::plan::config::RemediationConfig;

/// The ledger `LEDGER_TABLE` names, on these clients; `None` when it is off.
pub fn configured_ledger(clients: &Clients, config: &RemediationConfig) -> Option<Ledger> {
    config
        .ledger_table
        .as_ref()
        .map(|table| Ledger::new(clients.dynamodb.clone(), table))
}

/// Why the applier's mode refuses a request, if it does.
fn mode_refusal(mode: Mode, request: Request) -> Option<String> {
    match (mode, request) {
        (Mode::Off, _) => Some("REMEDIATION_MODE is off for remediate: it refuses every plan (the kill switch)".into()),
        (Mode::Approve, Request::Apply) => Some("remediate runs in approve mode: a plan is applied only once approved with the command in the diagnosis report".into()),
        _ => None,
    }
}

/// The clock, for the lock's lease: it counts from when the lock is taken, not from when the
/// invocation started.
fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Reviews and applies one plan; the report is about the state after it.
///
/// With the ledger, the LB's lock is taken first and released on every path; everything is
/// decided under it, from state gathered after it was taken, so a change someone made
/// meanwhile (a timeout raised higher, an entry added) is seen, and never undone.
pub async fn remediate(
    clients: &Clients,
    ledger: Option<&Ledger>,
    config: &Config,
    message: &PlanMessage,
    now: i64,
    run_id: &str,
) -> Report {
    let plan = &message.plan;
    let dry_run = config.remediation.mode == Mode::DryRun || message.request == Request::DryRun;
    let shown_mode = if dry_run {
        Mode::DryRun
    } else {
        config.remediation.mode
    };
    if let Some(reason) = mode_refusal(config.remediation.mode, message.request) {
        let outcome = Outcome::without_steps(
            &plan.id,
            config.remediation.mode,
            OutcomeStatus::Refused,
            reason,
        );
        return stopped(clients, config, message, outcome).await;
    }
    let locking = ledger.filter(|_| !dry_run);
    let lock = match locking {
        None => None,
        Some(ledger) => match ledger.lock(&plan.load_balancer, run_id, epoch_now()).await {
            Ok(LockOutcome::Acquired(lock)) => Some(lock),
            Ok(LockOutcome::Held { owner, until }) => {
                let outcome = Outcome::without_steps(&plan.id, shown_mode, OutcomeStatus::Skipped, format!("skipped: remediation in progress ({owner} holds the lock of {} until {until})", plan.load_balancer.name));
                return stopped(clients, config, message, outcome).await;
            }
            Err(error) => {
                let outcome = Outcome::without_steps(
                    &plan.id,
                    shown_mode,
                    OutcomeStatus::Refused,
                    format!(
                        "the ledger {} could not be locked ({error}); nothing was applied",
                        ledger.table()
                    ),
                );
                return stopped(clients, config, message, outcome).await;
            }
        },
    };
    let mut report = Box::pin(under_lock(
        clients, ledger, config, message, now, dry_run, shown_mode,
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
    Box::pin(snapshot_for(
        clients,
        &message.alarm,
        &message.alarmed,
        epoch_now(),
        config.gather_deadline,
        None,
    ))
    .await
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

fn with_outcome(mut report: Report, outcome: Outcome) -> Report {
    report.remediation = Some(RemediationSection::Outcome(outcome));
    report
}

/// Everything `remediate` decides and does while it holds the lock (or, without the ledger,
/// alone): gather, review, apply, record, verify.
async fn under_lock(
    clients: &Clients,
    ledger: Option<&Ledger>,
    config: &Config,
    message: &PlanMessage,
    now: i64,
    dry_run: bool,
    shown_mode: Mode,
) -> Report {
    let plan = &message.plan;
    let before = gather(clients, message, config).await;
    let mut report = Report::diagnosed(&message.alarm, &message.alarmed, &before);
    if let Some(ledger) = ledger.filter(|_| !dry_run) {
        match ledger.plan_record(&plan.load_balancer, &plan.id).await {
            Ok(None) => {}
            Ok(Some(record)) if record.published => {
                let outcome = Outcome::without_steps(&plan.id, shown_mode, OutcomeStatus::Refused, format!("plan {} was applied at {} and its outcome reported; a replay of an applied plan is refused (a new alarm makes a new plan)", plan.id, record.at));
                return with_outcome(report, outcome);
            }
            Ok(Some(_)) => {
                let outcome = resend(ledger, message, shown_mode, &before).await;
                return with_outcome(report, outcome);
            }
            Err(error) => {
                let outcome = Outcome::without_steps(&plan.id, shown_mode, OutcomeStatus::Refused, format!("the ledger {} could not tell whether plan {} was applied already ({error}); nothing was applied", ledger.table(), plan.id));
                return with_outcome(report, outcome);
            }
        }
    }
    let (needed, in_place) = match review(
        plan,
        &message.alarmed,
        &before,
        &config.remediation.policy,
        now,
    ) {
        Review::Refused { reason, refusals } => {
            let mut outcome =
                Outcome::without_steps(&plan.id, shown_mode, OutcomeStatus::Refused, reason);
            outcome.refused = refusals;
            return with_outcome(report, outcome);
        }
        Review::Proceed { needed, in_place } => (needed, in_place),
    };
    let mut outcome = Outcome::without_steps(&plan.id, shown_mode, OutcomeStatus::NothingToDo, "");
    // What the policy left out when the plan was made: the report says so again.
    outcome.refused = plan.refused.clone();
    outcome.durable = durable_fixes(&report, &plan.actions);
    outcome.steps = in_place
        .iter()
        .map(|a| Step::new(a, StepStatus::InPlace, "already in place: nothing to do"))
        .collect();
    if ledger.is_none() && !dry_run {
        outcome.notes.push("LEDGER_TABLE is not set: no lock, no idle-timeout cooldown and no audit trail. Remediation stays idempotent without it.".into());
    }
    for action in &needed {
        let step = match cooldown_refusal(ledger, config, message, action, now).await {
            Some(reason) => Step::new(action, StepStatus::Refused, reason),
            None => {
                apply::apply(
                    clients,
                    action,
                    &before,
                    &plan.load_balancer,
                    &config.remediation.policy,
                    dry_run,
                )
                .await
            }
        };
        if step.status == StepStatus::Applied {
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
        outcome.steps.push(step);
    }
    outcome.settle(&plan.load_balancer.name);
    if outcome.steps.iter().any(|s| {
        s.action.kind() == elbmedic_engine::plan::ActionKind::RaiseIdleTimeout
            && s.status == StepStatus::Applied
    }) {
        outcome.notes.push(format!("ASSUMPTION: MAX_IDLE_TIMEOUT ({} s) is below every backend's keep-alive timeout. If a backend closes idle connections sooner than the new idle timeout, these 504s become 502s: raise the backends' keep-alive above it.", config.remediation.policy.max_idle_timeout));
    }
    let applied = outcome
        .steps
        .iter()
        .any(|s| s.status == StepStatus::Applied);
    if let (Some(ledger), true) = (ledger, applied) {
        // Marked applied before the outcome is published: a retry after a failed publish
        // sends this outcome again instead of reporting "nothing to do".
        if let Err(error) = ledger
            .record_plan(&plan.load_balancer, &plan.id, now, false)
            .await
        {
            outcome.notes.push(format!(
                "the ledger could not record plan {} as applied: {error}",
                plan.id
            ));
        }
    }
    if applied {
        let after = gather(clients, message, config).await;
        outcome.verification = verify(&outcome.steps, &after, &message.alarm, &message.alarmed);
        report = Report::diagnosed(&message.alarm, &message.alarmed, &after);
    }
    with_outcome(report, outcome)
}

/// The outcome of a plan applied by an earlier run whose report never reached the topic,
/// rendered again from the changes the audit trail recorded and checked against `now_world`.
async fn resend(
    ledger: &Ledger,
    message: &PlanMessage,
    mode: Mode,
    now_world: &Snapshot,
) -> Outcome {
    let plan = &message.plan;
    let mut outcome = Outcome::without_steps(&plan.id, mode, OutcomeStatus::NothingToDo, "");
    match ledger
        .audited_changes(&plan.load_balancer, &plan.id, plan.actions.len())
        .await
    {
        Ok(changes) => {
            for change in changes {
                let Ok(action) = serde_json::from_str::<Action>(&change.action_json) else {
                    continue;
                };
                let mut step = Step::new(
                    &action,
                    StepStatus::Applied,
                    "applied by an earlier run of this plan",
                );
                step.before = Some(change.before);
                step.after = Some(change.after);
                step.rollback = Some(elbmedic_engine::plan::outcome::rollback(
                    &action,
                    &plan.load_balancer,
                ));
                outcome.steps.push(step);
            }
        }
        Err(error) => outcome.notes.push(format!(
            "the audit trail could not be read ({error}), so the changes are not listed"
        )),
    }
    outcome.settle(&plan.load_balancer.name);
    outcome.notes.push(format!("This outcome is sent again: plan {} was applied by an earlier run, whose report could not be published. Nothing was changed now.", plan.id));
    outcome.verification = verify(&outcome.steps, now_world, &message.alarm, &message.alarmed);
    outcome
}

/// After the outcome of `message` reached the report topic: the ledger marks the plan as
/// reported, so a replay of it is refused from now on.
pub async fn reported(ledger: Option<&Ledger>, report: &Report, message: &PlanMessage, now: i64) {
    let (Some(ledger), Some(RemediationSection::Outcome(outcome))) = (ledger, &report.remediation)
    else {
        return;
    };
    if outcome
        .steps
        .iter()
        .any(|s| s.status == StepStatus::Applied)
    {
        if let Err(error) = ledger
            .record_plan(&message.plan.load_balancer, &message.plan.id, now, true)
            .await
        {
            tracing::warn!(plan = %message.plan.id, error = %error, "the ledger could not mark the plan as reported");
        }
    }
}

/// At most one idle-timeout raise per LB per cooldown, when the ledger is on.
async fn cooldown_refusal(
    ledger: Option<&Ledger>,
    config: &Config,
    message: &PlanMessage,
    action: &Action,
    now: i64,
) -> Option<String> {
    let ledger = ledger?;
    if !matches!(action, Action::RaiseIdleTimeout { .. }) {
        return None;
    }
    let target = &message.plan.load_balancer;
    match ledger
        .last_idle_timeout_raise(&target.region, &target.id)
        .await
    {
        Ok(Some(raise)) if now - raise.at < config.remediation.cooldown_seconds => Some(format!(
            "the idle timeout was raised {} s ago; COOLDOWN allows one raise per {} s",
            now - raise.at,
            config.remediation.cooldown_seconds
        )),
        Ok(_) => None,
        Err(error) => Some(format!(
            "the cooldown could not be read from {} ({error})",
            ledger.table()
        )),
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
    };
    let mut result = ledger.audit(target, &audit).await;
    if let (Action::RaiseIdleTimeout { from, to }, Ok(())) = (&step.action, &result) {
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

/// Each changed path, checked against the state read after the changes.
fn verify(
    steps: &[Step],
    after: &Snapshot,
    alarm: &elbmedic_engine::alarm::Alarm,
    alarmed: &elbmedic_engine::alarm::LbRef,
) -> Vec<PathCheck> {
    let diagnosis = elbmedic_engine::diagnosis::diagnose(alarm, after);
    steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Applied | StepStatus::InPlace))
        .map(|step| {
            let open = !still_needed(&step.action, after);
            let resource = match &step.action {
                Action::AllowNaclEntry { nacl_id, .. } => nacl_id.as_str(),
                Action::AllowSgIngress { group_id, .. } => group_id.as_str(),
                Action::RaiseIdleTimeout { .. } => alarmed.name.as_str(),
            };
            let blocker = diagnosis
                .findings
                .iter()
                .filter(|f| f.code.is_cause() && !f.remedies.is_empty())
                .find(|f| f.resources.iter().any(|r| r == resource));
            let detail = match (open, blocker) {
                (true, None) => "open: the re-evaluation finds nothing blocking it".to_string(),
                (true, Some(f)) => format!(
                    "this change is in place, but something else still blocks: {}",
                    f.title
                ),
                (false, Some(f)) => format!("still blocked: {}", f.title),
                (false, None) => {
                    "the change is not visible in the state read again (it may not be applied yet)"
                        .to_string()
                }
            };
            PathCheck {
                action: step.description.clone(),
                open: open && blocker.is_none(),
                detail,
            }
        })
        .collect()
}

/// The Kubernetes changes that keep what the plan changes, from the findings that proposed it.
fn durable_fixes(report: &Report, actions: &[Action]) -> Vec<DurableFix> {
    let mut fixes: Vec<DurableFix> = Vec::new();
    for finding in &report.findings {
        if !finding.remedies.iter().any(|r| actions.contains(r)) {
            continue;
        }
        if let Some(durable) = &finding.fix.durable {
            if !fixes.contains(durable) {
                fixes.push(durable.clone());
            }
        }
    }
    fixes
}

//! Remediation against AWS: one plan in, one report out. The plan is never trusted as given:
//! the load balancer is gathered again, the engine reviews the plan against that state (any
//! guardrail broken refuses it whole), only still-needed actions are applied, and the state is
//! read a third time to verify each path. Shared by the `remediate` function and the CLI's
//! `--mode auto`/`dry-run`, so they cannot drift apart.

mod apply;
pub mod ledger;

use std::time::Duration;

use elbmedic_engine::finding::DurableFix;
use elbmedic_engine::plan::guardrails::still_needed;
use elbmedic_engine::plan::message::{Mode, PlanMessage, Request};
use elbmedic_engine::plan::outcome::{Outcome, OutcomeStatus, PathCheck, Step, StepStatus};
use elbmedic_engine::plan::review::{review, Review};
use elbmedic_engine::plan::{Action, Policy};
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::{IdleTimeoutRaise, Snapshot};

use crate::clients::Clients;
use crate::pipeline::snapshot_for;
use ledger::{AuditRecord, Ledger, LockOutcome};

/// How `remediate` (or the CLI) is configured.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The applier's own mode: `off` refuses every plan (the kill switch).
    pub mode: Mode,
    pub policy: Policy,
    /// At most one idle-timeout raise per LB per this many seconds (needs the ledger).
    pub cooldown_seconds: i64,
    /// Bound on each gather.
    pub deadline: Duration,
}

impl Settings {
    pub fn new(
        config: &elbmedic_engine::plan::config::RemediationConfig,
        deadline: Duration,
    ) -> Self {
        Self {
            mode: config.mode,
            policy: config.policy.clone(),
            cooldown_seconds: config.cooldown_seconds,
            deadline,
        }
    }
}

/// The ledger `LEDGER_TABLE` names, on these clients; `None` when it is off.
pub fn configured_ledger(
    clients: &Clients,
    config: &elbmedic_engine::plan::config::RemediationConfig,
) -> Option<Ledger> {
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

/// Reviews and applies one plan; the report is about the state after it.
pub async fn remediate(
    clients: &Clients,
    ledger: Option<&Ledger>,
    settings: &Settings,
    message: &PlanMessage,
    now: i64,
    run_id: &str,
) -> Report {
    let plan = &message.plan;
    let dry_run = settings.mode == Mode::DryRun || message.request == Request::DryRun;
    let shown_mode = if dry_run { Mode::DryRun } else { settings.mode };
    let gather = || {
        Box::pin(snapshot_for(
            clients,
            &message.alarm,
            &message.alarmed,
            now,
            settings.deadline,
            None,
        ))
    };
    let before = gather().await;
    let mut report = Report::diagnosed(&message.alarm, &message.alarmed, &before);
    let finish = |mut report: Report, outcome: Outcome| {
        report.remediation = Some(RemediationSection::Outcome(outcome));
        report
    };
    if let Some(reason) = mode_refusal(settings.mode, message.request) {
        let outcome =
            Outcome::without_steps(&plan.id, settings.mode, OutcomeStatus::Refused, reason);
        return finish(report, outcome);
    }
    let (needed, in_place) = match review(plan, &message.alarmed, &before, &settings.policy, now) {
        Review::Refused { reason, refusals } => {
            let mut outcome =
                Outcome::without_steps(&plan.id, shown_mode, OutcomeStatus::Refused, reason);
            outcome.refused = refusals;
            return finish(report, outcome);
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
    let lock = match (ledger, dry_run || needed.is_empty()) {
        (Some(ledger), false) => match ledger.lock(&plan.load_balancer, run_id, now).await {
            Ok(LockOutcome::Acquired(lock)) => Some(lock),
            Ok(LockOutcome::Held { owner, until }) => {
                let outcome = Outcome::without_steps(&plan.id, shown_mode, OutcomeStatus::Skipped, format!("skipped: remediation in progress ({owner} holds the lock of {} until {until})", plan.load_balancer.name));
                return finish(report, outcome);
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
                return finish(report, outcome);
            }
        },
        _ => None,
    };
    for action in &needed {
        let step = match cooldown_refusal(ledger, settings, message, action, now).await {
            Some(reason) => Step::new(action, StepStatus::Refused, reason),
            None => {
                apply::apply(
                    clients,
                    action,
                    &before,
                    &plan.load_balancer,
                    &settings.policy,
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
    if let (Some(ledger), Some(lock)) = (ledger, &lock) {
        if let Err(error) = ledger.unlock(lock).await {
            outcome.notes.push(format!(
                "the lock could not be released ({error}); its lease ends within {} s",
                ledger::LOCK_LEASE_SECONDS
            ));
        }
    }
    outcome.settle(&plan.load_balancer.name);
    if outcome.steps.iter().any(|s| {
        s.action.kind() == elbmedic_engine::plan::ActionKind::RaiseIdleTimeout
            && s.status == StepStatus::Applied
    }) {
        outcome.notes.push(format!("ASSUMPTION: MAX_IDLE_TIMEOUT ({} s) is below every backend's keep-alive timeout. If a backend closes idle connections sooner than the new idle timeout, these 504s become 502s: raise the backends' keep-alive above it.", settings.policy.max_idle_timeout));
    }
    if outcome
        .steps
        .iter()
        .any(|s| s.status == StepStatus::Applied)
    {
        let after = gather().await;
        outcome.verification = verify(&outcome.steps, &after, &message.alarm, &message.alarmed);
        report = Report::diagnosed(&message.alarm, &message.alarmed, &after);
    }
    finish(report, outcome)
}

/// At most one idle-timeout raise per LB per cooldown, when the ledger is on.
async fn cooldown_refusal(
    ledger: Option<&Ledger>,
    settings: &Settings,
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
        Ok(Some(raise)) if now - raise.at < settings.cooldown_seconds => Some(format!(
            "the idle timeout was raised {} s ago; COOLDOWN allows one raise per {} s",
            now - raise.at,
            settings.cooldown_seconds
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

/// `diagnose`'s side: plans the report's remedies under `config`, sends the plan to the
/// remediation topic in auto and dry-run, and puts the plan (and in approve mode the command
/// that approves it) in the report. Off: nothing. Returns the published message's id.
pub async fn propose(
    sns: &aws_sdk_sns::Client,
    config: &elbmedic_engine::plan::config::RemediationConfig,
    alarm: &elbmedic_engine::alarm::Alarm,
    alarmed: &elbmedic_engine::alarm::LbRef,
    world: &Snapshot,
    report: &mut Report,
    now: i64,
) -> Option<String> {
    let request = match config.mode {
        Mode::Off => return None,
        Mode::DryRun => Request::DryRun,
        Mode::Approve | Mode::Auto => Request::Apply,
    };
    let plan = elbmedic_engine::plan::plan(
        world,
        &report.findings,
        &config.policy,
        now,
        alarm.state_change_epoch,
    );
    if plan.actions.is_empty() && plan.refused.is_empty() {
        return None;
    }
    let message = PlanMessage::new(request, alarm, alarmed, &plan);
    let topic = config.topic_arn.as_deref();
    let mut message_id = None;
    if let (Some(topic), false, false) =
        (topic, config.mode == Mode::Approve, plan.actions.is_empty())
    {
        match sns
            .publish()
            .topic_arn(topic)
            .subject(format!(
                "elbmedic plan {} for {}",
                plan.id, plan.load_balancer.name
            ))
            .message(message.to_json())
            .send()
            .await
        {
            Ok(out) => message_id = Some(out.message_id.unwrap_or_default()),
            Err(error) => tracing::error!(
                topic,
                error = %aws_smithy_types::error::display::DisplayErrorContext(&error),
                "the plan could not be sent to remediate"
            ),
        }
    }
    report.remediation = Some(RemediationSection::planned(
        config.mode,
        &message,
        topic,
        message_id.is_some(),
    ));
    message_id
}

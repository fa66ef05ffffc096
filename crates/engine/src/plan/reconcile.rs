//! Every decision `remediate` makes, pure: (plan, fresh snapshot, ledger history, policy) →
//! what to apply, what is refused and why, and, once applied, the verification of each path.
//! The AWS side only takes the lock, reads the history, applies, records and publishes, so
//! the guardrails are tested here without AWS.

use super::config::RemediationConfig;
use super::guardrails::still_needed;
use super::message::{Mode, PlanMessage, Request};
use super::outcome::{rollback, Outcome, OutcomeStatus, PathCheck, Step, StepStatus};
use super::review::{review, Review};
use super::{Action, ActionKind, PlanTarget, Policy};
use crate::alarm::LbRef;
use crate::finding::{DurableFix, Finding};
use crate::snapshot::{IdleTimeoutRaise, Snapshot};

/// A plan the ledger saw applied, and whether its outcome report reached the report topic.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRecord {
    pub at: i64,
    pub published: bool,
}

/// An applied action as the audit trail holds it (the action as JSON, so an outcome can be
/// rendered again from the ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditedChange {
    pub action_json: String,
    pub before: String,
    pub after: String,
    /// A change in the cluster: its field exactly as it was and as elbmedic set it; `None`
    /// when the record keeps none (an AWS change, or a record written before it was kept).
    pub field: Option<super::outcome::FieldChange>,
}

/// A ledger call that failed: DynamoDB's error code (what callers decide on) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LedgerError {
    pub code: String,
    pub message: String,
}

/// What elbmedic's ledger says, read under the lock; an `Err` is a read that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// This plan, if an earlier run applied it.
    pub plan: Result<Option<PlanRecord>, LedgerError>,
    /// The load balancer's last idle-timeout raise, for the cooldown; read only when the
    /// plan raises the idle timeout.
    pub last_raise: Result<Option<IdleTimeoutRaise>, LedgerError>,
    /// The ledger's table, for the messages.
    pub table: String,
}

/// How a run goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing is applied; the outcome says why.
    Stop(Outcome),
    /// An earlier run applied this plan and its outcome never reached the topic: render that
    /// outcome again from the audit trail ([`resent`]); nothing is changed now.
    Resend,
    /// Apply `apply`, in order; `outcome` already holds what is in place, what the cooldown
    /// refused, what the plan left out, the durable fixes and the notes.
    Proceed {
        outcome: Outcome,
        apply: Vec<Action>,
    },
}

/// Whether the run is a dry run, whatever the plan asked: the applier's mode wins.
pub fn is_dry_run(mode: Mode, request: Request) -> bool {
    mode == Mode::DryRun || request == Request::DryRun
}

/// The mode the outcome is reported in.
pub fn shown_mode(mode: Mode, request: Request) -> Mode {
    if is_dry_run(mode, request) {
        Mode::DryRun
    } else {
        mode
    }
}

/// Why the applier's own mode refuses a request before anything is read, if it does.
pub fn admit(message: &PlanMessage, mode: Mode) -> Option<Outcome> {
    let reason = match (mode, message.request) {
        (Mode::Off, _) => "REMEDIATION_MODE is off for remediate: it refuses every plan (the kill switch)",
        (Mode::Approve, Request::Apply) => "remediate runs in approve mode: a plan is applied only once approved with the command in the diagnosis report",
        // An id names one content: a plan whose id is not its content's would take another
        // plan's replay and approval records (or dodge them). The account is checked before
        // this, against the one reached (`account::plan_scope`).
        _ if !message.plan.id_matches_content() => {
            return Some(Outcome::without_steps(
                &message.plan.id,
                mode,
                OutcomeStatus::Refused,
                format!(
                    "plan {} is not the id of its content ({}): altered or forged, refused; nothing was read or applied",
                    message.plan.id,
                    message.plan.content_id()
                ),
            ))
        }
        _ => return None,
    };
    Some(Outcome::without_steps(
        &message.plan.id,
        mode,
        OutcomeStatus::Refused,
        reason,
    ))
}

/// The alarm's account could not be reached with the remediation role: nothing is read or
/// applied, and the reason (outside `ALLOWED_ACCOUNTS`, or no write role there) is the outcome.
pub fn account_unreachable(message: &PlanMessage, mode: Mode, reason: &str) -> Outcome {
    Outcome::without_steps(
        &message.plan.id,
        shown_mode(mode, message.request),
        OutcomeStatus::Refused,
        format!("refused: {reason}; nothing was applied"),
    )
}

/// Another run holds the load balancer's lock: this one skips.
pub fn lock_held(message: &PlanMessage, mode: Mode, owner: &str, until: i64) -> Outcome {
    let plan = &message.plan;
    Outcome::without_steps(
        &plan.id,
        shown_mode(mode, message.request),
        OutcomeStatus::Skipped,
        format!(
            "skipped: remediation in progress ({owner} holds the lock of {} until {until})",
            plan.load_balancer.name
        ),
    )
}

/// The lock could not be taken: nothing is applied without it.
pub fn lock_failed(message: &PlanMessage, mode: Mode, table: &str, error: &LedgerError) -> Outcome {
    Outcome::without_steps(
        &message.plan.id,
        shown_mode(mode, message.request),
        OutcomeStatus::Refused,
        format!("the ledger {table} could not be locked ({error}); nothing was applied"),
    )
}

/// Decides a run from the state gathered under the lock. `history` is `None` without a
/// ledger (or in a dry run, which does not lock); `findings` are the fresh diagnosis's.
pub fn reconcile(
    message: &PlanMessage,
    before: &Snapshot,
    findings: &[Finding],
    history: Option<&History>,
    config: &RemediationConfig,
    now: i64,
) -> Decision {
    let plan = &message.plan;
    let mode = shown_mode(config.mode, message.request);
    let stop = |reason: String| {
        Decision::Stop(Outcome::without_steps(
            &plan.id,
            mode,
            OutcomeStatus::Refused,
            reason,
        ))
    };
    if let Some(history) = history {
        match &history.plan {
            Ok(None) => {}
            Ok(Some(record)) if record.published => {
                return stop(format!("plan {} was applied at {} and its outcome reported; a replay of an applied plan is refused (a new alarm makes a new plan)", plan.id, record.at));
            }
            Ok(Some(_)) => return Decision::Resend,
            Err(error) => {
                return stop(format!("the ledger {} could not tell whether plan {} was applied already ({error}); nothing was applied", history.table, plan.id));
            }
        }
    }
    let (needed, in_place) = match review(plan, &message.alarmed, before, &config.policy, now) {
        Review::Refused { reason, refusals } => {
            let mut outcome =
                Outcome::without_steps(&plan.id, mode, OutcomeStatus::Refused, reason);
            outcome.refused = refusals;
            return Decision::Stop(outcome);
        }
        Review::Proceed { needed, in_place } => (needed, in_place),
    };
    let mut outcome = Outcome::without_steps(&plan.id, mode, OutcomeStatus::NothingToDo, "");
    // What the policy left out when the plan was made: the report says so again.
    outcome.refused = plan.refused.clone();
    outcome.durable = durable_fixes(findings, &plan.actions);
    outcome.steps = in_place
        .iter()
        .map(|a| Step::new(a, StepStatus::InPlace, "already in place: nothing to do"))
        .collect();
    if history.is_none() && mode != Mode::DryRun {
        outcome.notes.push("LEDGER_TABLE is not set: no lock, no idle-timeout cooldown and no audit trail. Remediation stays idempotent without it.".into());
    }
    let mut apply = Vec::new();
    for action in needed {
        match history.and_then(|h| cooldown_refusal(h, &action, config.cooldown_seconds, now)) {
            Some(reason) => outcome
                .steps
                .push(Step::new(&action, StepStatus::Refused, reason)),
            None => apply.push(action),
        }
    }
    Decision::Proceed { outcome, apply }
}

/// At most one idle-timeout raise per load balancer per cooldown.
fn cooldown_refusal(history: &History, action: &Action, cooldown: i64, now: i64) -> Option<String> {
    if action.kind() != ActionKind::RaiseIdleTimeout {
        return None;
    }
    match &history.last_raise {
        Ok(Some(raise)) if now.saturating_sub(raise.at) < cooldown => Some(format!(
            "the idle timeout was raised {} s ago; COOLDOWN allows one raise per {cooldown} s",
            now.saturating_sub(raise.at)
        )),
        Ok(_) => None,
        Err(error) => Some(format!(
            "the cooldown could not be read from {} ({error})",
            history.table
        )),
    }
}

/// Whether the plan needs the cooldown read from the ledger.
pub fn needs_cooldown(message: &PlanMessage) -> bool {
    message
        .plan
        .actions
        .iter()
        .any(|a| a.kind() == ActionKind::RaiseIdleTimeout)
}

/// Closes an outcome once its steps ran: the status and headline, and the assumption a raise
/// rests on.
pub fn finish(outcome: &mut Outcome, target: &PlanTarget, policy: &Policy) {
    outcome.settle(&target.name);
    let raised = outcome.steps.iter().any(|s| {
        s.action.kind() == ActionKind::RaiseIdleTimeout && s.status == StepStatus::Applied
    });
    halves(outcome, target, raised);
    match (raised, target.kind) {
        (false, _) => {}
        (true, crate::alarm::LbKind::Network) => outcome.notes.push("A longer idle timeout only moves the limit: connections idle longer still get reset. Keep-alives below it on the clients and the targets are the lasting fix.".into()),
        (true, _) => outcome.notes.push(format!("ASSUMPTION: MAX_IDLE_TIMEOUT ({} s) is below every backend's keep-alive timeout. If a backend closes idle connections sooner than the new idle timeout, these 504s become 502s: raise the backends' keep-alive above it.", policy.max_idle_timeout)),
    }
}

/// Which half of an idle-timeout fix applied, in the headline's one line; and when only the
/// AWS half did, the warning that it will be written back, and when.
fn halves(outcome: &mut Outcome, target: &PlanTarget, raised: bool) {
    let done = |s: &&Step| matches!(s.status, StepStatus::Applied | StepStatus::InPlace);
    let kept = outcome
        .steps
        .iter()
        .filter(done)
        .find_map(|s| match &s.action {
            Action::KeepIdleTimeout { place, seconds, .. } => Some((place.describe(), *seconds)),
            _ => None,
        });
    let durable = outcome
        .steps
        .iter()
        .find(|s| s.action.kind() == ActionKind::KeepIdleTimeout);
    match (raised, kept, durable) {
        (true, Some((place, seconds)), _) => {
            outcome.headline = format!(
                "{}; both halves: the idle timeout raised on the load balancer and kept at {seconds} s in {place}",
                outcome.headline
            );
        }
        // The controller reconciles only the listener attributes its annotation names.
        (true, None, _) if target.kind == crate::alarm::LbKind::Network => {
            outcome.notes.insert(
                0,
                "Only the AWS half applied: the load balancer controller writes the old value back only if the Service's listener-attributes annotation names tcp.idle_timeout.seconds. Set it there (the durable fix below) so the manifest says what AWS holds.".into(),
            );
        }
        (true, None, refused) => {
            let why = refused.map_or_else(
                || "no change in the cluster was planned (see the durable fix below)".to_string(),
                |s| format!("the change in the cluster was not made: {}", s.detail),
            );
            let when = match target.kind {
                crate::alarm::LbKind::Classic => "at the next sync of its Service (any update to it, or a restart of the cloud controller)",
                crate::alarm::LbKind::Application => "at the load balancer controller's next reconcile of its Ingress (any change to it or its group, a controller restart, or its resync, every 10 hours by default)",
                crate::alarm::LbKind::Network => "at the load balancer controller's next reconcile of its Service",
            };
            outcome.notes.insert(
                0,
                format!("WARNING: only the AWS half applied; {why}. The raise will be written back {when}, unless the durable fix below is made."),
            );
        }
        (false, _, _) => {}
    }
}

/// Whether anything was changed: then the plan is recorded and the state read again.
pub fn applied_any(outcome: &Outcome) -> bool {
    outcome
        .steps
        .iter()
        .any(|s| s.status == StepStatus::Applied)
}

/// The outcome of a plan an earlier run applied, rendered again from the audit trail (or,
/// when it could not be read, from nothing but the note) and checked against `now_world` and
/// its findings.
pub fn resent(
    message: &PlanMessage,
    mode: Mode,
    changes: Result<Vec<AuditedChange>, LedgerError>,
    now_world: &Snapshot,
    now_findings: &[Finding],
) -> Outcome {
    let plan = &message.plan;
    let mut outcome = Outcome::without_steps(&plan.id, mode, OutcomeStatus::NothingToDo, "");
    match changes {
        Ok(changes) => {
            for change in changes {
                // An entry that does not read back as an action was not written by elbmedic.
                let Ok(action) = serde_json::from_str::<Action>(&change.action_json) else {
                    continue;
                };
                let mut step = Step::new(
                    &action,
                    StepStatus::Applied,
                    "applied by an earlier run of this plan",
                );
                step.rollback = rollback(
                    &action,
                    &plan.load_balancer,
                    Some(change.before.as_str()).filter(|b| !b.is_empty()),
                );
                step.before = Some(change.before);
                step.after = Some(change.after);
                outcome.steps.push(step);
            }
        }
        Err(error) => outcome.notes.push(format!(
            "the audit trail could not be read ({error}), so the changes are not listed"
        )),
    }
    outcome.settle(&plan.load_balancer.name);
    outcome.notes.push(format!("This outcome is sent again: plan {} was applied by an earlier run, whose report could not be published. Nothing was changed now.", plan.id));
    outcome.verification = verify(&outcome.steps, now_world, now_findings, &message.alarmed);
    outcome
}

/// Each changed path, checked against the state read after the changes (`after`, and
/// `findings_after`, its diagnosis): open, still blocked by this, or open here but blocked by
/// something else.
pub fn verify(
    steps: &[Step],
    after: &Snapshot,
    findings_after: &[Finding],
    alarmed: &LbRef,
) -> Vec<PathCheck> {
    steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Applied | StepStatus::InPlace))
        .map(|step| {
            let open = !still_needed(&step.action, after);
            let resource = match &step.action {
                Action::AllowNaclEntry { nacl_id, .. } => nacl_id.as_str(),
                Action::AllowSgIngress { group_id, .. } => group_id.as_str(),
                Action::RaiseIdleTimeout { .. } => alarmed.name.as_str(),
                Action::RaiseListenerIdleTimeout { listener_arn, .. } => listener_arn.as_str(),
                Action::KeepIdleTimeout { place, .. }
                | Action::EnableReadinessGates { place, .. } => place.name(),
            };
            let blocker = findings_after
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

/// Why a durable half is not applied in this run: only beside its raise, applied or already
/// in place in this run. Without it (refused by the cooldown, failed, or missing from a
/// forged plan), keeping the value would make the controller raise the load balancer itself,
/// past every guardrail of the raise.
pub fn keep_without_raise(action: &Action, steps: &[Step]) -> Option<String> {
    let Action::KeepIdleTimeout { seconds, .. } = action else {
        return None;
    };
    let raised = steps.iter().any(|s| {
        matches!(s.action, Action::RaiseIdleTimeout { to, .. } if to == *seconds)
            && matches!(
                s.status,
                StepStatus::Applied | StepStatus::InPlace | StepStatus::WouldApply
            )
    });
    (!raised).then(|| {
        format!("the raise to {seconds} s it keeps was not applied in this run, so the cluster is not changed either")
    })
}

/// The Kubernetes changes that keep what the plan changes, from the findings that proposed it.
fn durable_fixes(findings: &[Finding], actions: &[Action]) -> Vec<DurableFix> {
    let mut fixes: Vec<DurableFix> = Vec::new();
    for finding in findings {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::diagnose;
    use crate::rules::testing::scenario_alarm;
    use crate::testkit::{alarmed, scenario_snapshot};

    const NOW: i64 = 1_795_457_000;

    /// The plan diagnose would send for scenario `name`, and the world it was made from.
    fn planned(name: &str, request: Request) -> (PlanMessage, Snapshot, Vec<Finding>) {
        let world = scenario_snapshot(name);
        let alarm = scenario_alarm(name);
        let findings = diagnose(&alarm, &world).findings;
        let plan = super::super::plan(&world, &findings, &Policy::default(), NOW, None);
        assert!(!plan.actions.is_empty(), "{name}: {plan:?}");
        let message = PlanMessage::new(request, &alarm, &alarmed(&world), &plan);
        (message, world, findings)
    }

    fn auto() -> RemediationConfig {
        RemediationConfig {
            mode: Mode::Auto,
            ..RemediationConfig::default()
        }
    }

    /// A ledger read that DynamoDB refused with `message`.
    fn failed(message: &str) -> LedgerError {
        LedgerError {
            code: "ProvisionedThroughputExceededException".into(),
            message: message.into(),
        }
    }

    fn history(plan: Result<Option<PlanRecord>, LedgerError>) -> History {
        History {
            plan,
            last_raise: Ok(None),
            table: "ledger".into(),
        }
    }

    fn refusal(decision: &Decision) -> &str {
        match decision {
            Decision::Stop(outcome) => &outcome.headline,
            other => panic!("not stopped: {other:?}"),
        }
    }

    /// Trust round two, defect 5, as reproduced: a forged plan reusing a real id with other
    /// actions (an entry at rule 1) would take the real plan's replay record; the real content
    /// under a new id would apply twice. An id names exactly one content.
    #[test]
    fn a_plan_whose_id_is_not_its_content_is_refused_before_anything_is_read() {
        let (real, ..) = planned("nacl-ephemeral-node-subnets", Request::Approved);
        assert!(real.plan.id_matches_content());
        assert_eq!(admit(&real, Mode::Approve), None);

        let mut other_actions = real.clone();
        if let Action::AllowNaclEntry { rule_number, .. } = &mut other_actions.plan.actions[0] {
            *rule_number = 1;
        } else {
            panic!("{:?}", other_actions.plan.actions);
        }
        let mut new_id = real.clone();
        new_id.plan.id = "plan-0123456789abcdef".into();
        let mut other_account = real.clone();
        other_account.plan.load_balancer.account = Some("000000000000".into());
        let mut other_episode = real.clone();
        other_episode.plan.episode += 3600;
        for forged in [other_actions, new_id, other_account, other_episode] {
            let outcome = admit(&forged, Mode::Approve).expect("refused");
            assert_eq!(outcome.status, OutcomeStatus::Refused);
            assert!(
                outcome.headline.contains("is not the id of its content"),
                "{}",
                outcome.headline
            );
        }
        // The dates and the refusals are not content: a retried alarm makes the same id.
        let mut retried = real.clone();
        retried.plan.created_at += 60;
        retried.plan.expires_at += 60;
        retried.plan.refused.clear();
        assert_eq!(retried.plan.content_id(), real.plan.id);
    }

    #[test]
    fn the_kill_switch_and_approve_mode_refuse_before_anything_is_read() {
        let (apply, ..) = planned("alb-idle-timeout", Request::Apply);
        let (dry, ..) = planned("alb-idle-timeout", Request::DryRun);
        assert!(admit(&apply, Mode::Off)
            .unwrap()
            .headline
            .contains("kill switch"));
        assert!(admit(&dry, Mode::Off).is_some());
        assert!(admit(&apply, Mode::Approve)
            .unwrap()
            .headline
            .contains("approve mode"));
        assert_eq!(admit(&dry, Mode::Approve), None);
        assert_eq!(admit(&apply, Mode::Auto), None);
        assert_eq!(shown_mode(Mode::Auto, Request::DryRun), Mode::DryRun);
    }

    #[test]
    fn a_fresh_plan_applies_what_is_needed_and_without_a_ledger_says_so() {
        let (message, world, findings) = planned("nacl-ephemeral-node-subnets", Request::Apply);
        let Decision::Proceed { outcome, apply } =
            reconcile(&message, &world, &findings, None, &auto(), NOW + 1)
        else {
            panic!("stopped")
        };
        assert_eq!(apply, message.plan.actions);
        assert!(outcome.steps.is_empty());
        assert!(outcome
            .notes
            .iter()
            .any(|n| n.contains("LEDGER_TABLE is not set")));
        let with_ledger = history(Ok(None));
        let Decision::Proceed { outcome, .. } = reconcile(
            &message,
            &world,
            &findings,
            Some(&with_ledger),
            &auto(),
            NOW + 1,
        ) else {
            panic!("stopped")
        };
        assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    }

    #[test]
    fn the_ledger_refuses_a_replay_resends_an_unreported_plan_and_fails_closed() {
        let (message, world, findings) = planned("alb-idle-timeout", Request::Apply);
        let decide =
            |h: History| reconcile(&message, &world, &findings, Some(&h), &auto(), NOW + 1);
        let replay = decide(history(Ok(Some(PlanRecord {
            at: NOW,
            published: true,
        }))));
        assert!(refusal(&replay).contains("a replay of an applied plan is refused"));
        let unreported = decide(history(Ok(Some(PlanRecord {
            at: NOW,
            published: false,
        }))));
        assert_eq!(unreported, Decision::Resend);
        let unreadable = decide(history(Err(failed("throttled"))));
        assert!(refusal(&unreadable).contains("could not tell whether plan"));
    }

    #[test]
    fn the_cooldown_refuses_a_second_raise_and_an_unreadable_cooldown_too() {
        let (message, world, findings) = planned("alb-idle-timeout", Request::Apply);
        assert!(needs_cooldown(&message));
        let config = RemediationConfig {
            cooldown_seconds: 3600,
            ..auto()
        };
        let raised = |at| History {
            last_raise: Ok(Some(IdleTimeoutRaise {
                at,
                from_seconds: Some(60),
                to_seconds: Some(120),
                plan_id: None,
            })),
            ..history(Ok(None))
        };
        let decide =
            |h: History| reconcile(&message, &world, &findings, Some(&h), &config, NOW + 1);
        let Decision::Proceed { outcome, apply } = decide(raised(NOW - 600)) else {
            panic!("stopped")
        };
        assert!(apply.is_empty());
        assert_eq!(outcome.steps[0].status, StepStatus::Refused);
        assert!(
            outcome.steps[0].detail.contains("raised 601 s ago"),
            "{:?}",
            outcome.steps
        );
        let Decision::Proceed { apply, .. } = decide(raised(NOW - 7200)) else {
            panic!("stopped")
        };
        assert_eq!(apply, message.plan.actions);
        let unreadable = History {
            last_raise: Err(failed("denied")),
            ..history(Ok(None))
        };
        let Decision::Proceed { outcome, apply } = decide(unreadable) else {
            panic!("stopped")
        };
        assert!(apply.is_empty() && outcome.steps[0].detail.contains("could not be read"));
    }

    #[test]
    fn what_is_in_place_is_not_applied_again_and_verifies_open() {
        let (message, mut world, findings) = planned("alb-idle-timeout", Request::Apply);
        let [Action::RaiseIdleTimeout { to, .. }] = message.plan.actions.as_slice() else {
            panic!("{:?}", message.plan.actions)
        };
        world.load_balancer.idle_timeout_seconds = Some(*to);
        let Decision::Proceed { outcome, apply } =
            reconcile(&message, &world, &findings, None, &auto(), NOW + 1)
        else {
            panic!("stopped")
        };
        assert!(apply.is_empty());
        assert_eq!(outcome.steps[0].status, StepStatus::InPlace);
        let after = diagnose(&message.alarm, &world).findings;
        let checks = verify(&outcome.steps, &world, &after, &message.alarmed);
        assert_eq!(checks.len(), 1);
        assert!(
            checks[0].detail.contains("in place") || checks[0].open,
            "{checks:?}"
        );
    }

    #[test]
    fn a_forged_plan_is_stopped_whole_by_the_review() {
        let (mut message, world, findings) = planned("nacl-ephemeral-node-subnets", Request::Apply);
        if let Some(Action::AllowNaclEntry { cidr, .. }) = message.plan.actions.first_mut() {
            *cidr = "0.0.0.0/0".parse().unwrap();
        }
        let decision = reconcile(&message, &world, &findings, None, &auto(), NOW + 1);
        let Decision::Stop(outcome) = &decision else {
            panic!("{decision:?}")
        };
        assert_eq!(outcome.status, OutcomeStatus::Refused);
        assert!(!outcome.refused.is_empty());
    }

    #[test]
    fn a_resent_outcome_lists_only_what_reads_back_as_an_action() {
        let (message, world, findings) = planned("alb-idle-timeout", Request::Apply);
        let action = serde_json::to_string(&message.plan.actions[0]).unwrap();
        let changes = vec![
            AuditedChange {
                action_json: action,
                before: "60".into(),
                after: "120".into(),
                field: None,
            },
            AuditedChange {
                action_json: "{\"kind\":\"rm -rf\"}".into(),
                before: String::new(),
                after: String::new(),
                field: None,
            },
        ];
        let outcome = resent(&message, Mode::Auto, Ok(changes), &world, &findings);
        assert_eq!(outcome.steps.len(), 1);
        assert_eq!(outcome.steps[0].after.as_deref(), Some("120"));
        assert!(outcome.notes.iter().any(|n| n.contains("sent again")));
        let unread = resent(
            &message,
            Mode::Auto,
            Err(failed("denied")),
            &world,
            &findings,
        );
        assert!(unread.steps.is_empty());
        assert!(unread.notes[0].contains("audit trail could not be read"));
    }
}

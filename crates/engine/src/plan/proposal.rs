//! What a diagnosis hands to remediation, decided once for every caller: the remediation mode
//! is interpreted here (and, for the applier's own kill switch, in `reconcile`), nowhere else.

use super::config::RemediationConfig;
use super::message::{Mode, PlanMessage, Request};
use crate::alarm::{Alarm, LbRef};
use crate::finding::Finding;
use crate::snapshot::Snapshot;

/// Where a plan goes once the report is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// The `diagnose` function: dry-run and auto plans go to `REMEDIATION_TOPIC_ARN`.
    Topic,
    /// The live CLI: dry-run and auto plans run in this process, through the same code as the
    /// `remediate` function.
    InProcess,
    /// Offline replay: nothing runs. The plan is shown at most as approve would show it, dated
    /// at the alarm's state change, so a replay gives the same plan every time.
    Replay,
}

/// The remediation part of one diagnosis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposal {
    /// The plan the report shows (its section is written by `report::remediation`); `None`
    /// when there is nothing to say, or when the plan runs in-process (its outcome then
    /// becomes the report).
    pub shown: Option<ShownPlan>,
    /// The plan to hand on: to send to the topic once every report is out, or to run here.
    pub plan: Option<PlanMessage>,
    /// In approve mode: the plan to keep in the ledger, so that an approval by its id
    /// (`approve:PLAN_ID`, a chat button) finds it.
    pub awaiting_approval: Option<PlanMessage>,
}

/// A plan as the report shows it: what it is, in which mode, and whether it goes to `topic`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownPlan {
    pub mode: Mode,
    pub message: PlanMessage,
    /// The remediation topic, if one is configured.
    pub topic: Option<String>,
    /// Whether the plan is sent to the topic (after the report).
    pub published: bool,
}

impl ShownPlan {
    /// Whether the report offers an approval by plan id: approve mode, a topic to send the
    /// approval to, and something to approve.
    pub fn offers_approval(&self) -> bool {
        self.mode == Mode::Approve && self.topic.is_some() && !self.message.plan.actions.is_empty()
    }
}

/// Plans the remedies of `findings` under `config`, for a handoff of `handoff`.
pub fn propose(
    config: &RemediationConfig,
    handoff: Handoff,
    alarm: &Alarm,
    alarmed: &LbRef,
    world: &Snapshot,
    findings: &[Finding],
    now: i64,
) -> Proposal {
    let mode = match handoff {
        Handoff::Replay => config.mode.min(Mode::Approve),
        _ => config.mode,
    };
    if mode == Mode::Off {
        return Proposal::default();
    }
    let created = match handoff {
        Handoff::Replay => alarm.state_change_epoch.unwrap_or(0),
        _ => now,
    };
    let plan = super::plan(
        world,
        findings,
        &config.policy,
        created,
        alarm.state_change_epoch,
    );
    if plan.actions.is_empty() && plan.refused.is_empty() {
        return Proposal::default();
    }
    let request = match mode {
        Mode::DryRun => Request::DryRun,
        _ => Request::Apply,
    };
    let message = PlanMessage::new(request, alarm, alarmed, &plan);
    let acts = matches!(mode, Mode::DryRun | Mode::Auto) && !plan.actions.is_empty();
    let topic = config.topic_arn.clone();
    let shown = |message: PlanMessage, published: bool| ShownPlan {
        mode,
        message,
        topic: topic.clone(),
        published,
    };
    match handoff {
        Handoff::InProcess if acts => Proposal {
            shown: None,
            plan: Some(message),
            awaiting_approval: None,
        },
        Handoff::Topic if acts && topic.is_some() => Proposal {
            shown: Some(shown(message.clone(), true)),
            plan: Some(message),
            awaiting_approval: None,
        },
        _ => {
            let shown = shown(message, false);
            let waits = handoff == Handoff::Topic && shown.offers_approval();
            Proposal {
                awaiting_approval: waits.then(|| shown.message.clone()),
                shown: Some(shown),
                plan: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::diagnose;
    use crate::report::remediation::RemediationSection;
    use crate::rules::testing::scenario_alarm;
    use crate::testkit::scenario_snapshot;

    const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:plans";

    fn proposed(mode: Mode, topic: Option<&str>, handoff: Handoff) -> Proposal {
        let name = "nacl-ephemeral-node-subnets";
        let world = scenario_snapshot(name);
        let alarm = scenario_alarm(name);
        let findings = diagnose(&alarm, &world).findings;
        let alarmed = crate::testkit::alarmed(&world);
        let config = RemediationConfig {
            mode,
            topic_arn: topic.map(str::to_string),
            ..RemediationConfig::default()
        };
        propose(&config, handoff, &alarm, &alarmed, &world, &findings, 5_000)
    }

    /// The section the report shows for `proposal`.
    fn section(proposal: &Proposal) -> Option<RemediationSection> {
        proposal.shown.as_ref().map(RemediationSection::planned)
    }

    fn approve_command(proposal: &Proposal) -> Option<String> {
        match section(proposal) {
            Some(RemediationSection::Planned {
                approve_command, ..
            }) => approve_command.map(|c| c.to_string()),
            _ => None,
        }
    }

    #[test]
    fn off_proposes_nothing_anywhere() {
        for handoff in [Handoff::Topic, Handoff::InProcess, Handoff::Replay] {
            assert_eq!(
                proposed(Mode::Off, Some(TOPIC), handoff),
                Proposal::default()
            );
        }
    }

    #[test]
    fn the_function_sends_dry_run_and_auto_plans_only_with_a_topic() {
        for mode in [Mode::DryRun, Mode::Auto] {
            let sent = proposed(mode, Some(TOPIC), Handoff::Topic);
            assert_eq!(
                sent.plan.as_ref().map(|m| m.request),
                Some(match mode {
                    Mode::DryRun => Request::DryRun,
                    _ => Request::Apply,
                })
            );
            assert!(sent.shown.is_some());
            let unsent = proposed(mode, None, Handoff::Topic);
            assert!(unsent.plan.is_none() && unsent.shown.is_some());
        }
        let approve = proposed(Mode::Approve, Some(TOPIC), Handoff::Topic);
        assert!(approve.plan.is_none());
        let waiting = approve
            .awaiting_approval
            .as_ref()
            .expect("kept for an approval by id");
        assert_eq!(waiting.request, Request::Apply);
        assert!(proposed(Mode::Approve, None, Handoff::Topic)
            .awaiting_approval
            .is_none());
        assert!(proposed(Mode::Auto, Some(TOPIC), Handoff::Topic)
            .awaiting_approval
            .is_none());
        assert!(proposed(Mode::Approve, Some(TOPIC), Handoff::Replay)
            .awaiting_approval
            .is_none());
        assert!(approve_command(&approve).is_some_and(|c| c.contains(TOPIC)));
    }

    #[test]
    fn the_cli_runs_dry_run_and_auto_here_and_shows_approve() {
        for mode in [Mode::DryRun, Mode::Auto] {
            let here = proposed(mode, None, Handoff::InProcess);
            assert!(here.plan.is_some() && here.shown.is_none());
        }
        let approve = proposed(Mode::Approve, Some(TOPIC), Handoff::InProcess);
        assert!(approve.plan.is_none() && approve_command(&approve).is_some());
    }

    #[test]
    fn a_replay_never_acts_and_is_dated_at_the_alarm() {
        let auto = proposed(Mode::Auto, Some(TOPIC), Handoff::Replay);
        assert!(auto.plan.is_none());
        let Some(RemediationSection::Planned { mode, plan, .. }) = &section(&auto) else {
            panic!("{auto:?}")
        };
        assert_eq!(*mode, Mode::Approve);
        let alarm = scenario_alarm("nacl-ephemeral-node-subnets");
        assert_eq!(Some(plan.created_at), alarm.state_change_epoch);
        assert_eq!(proposed(Mode::Auto, Some(TOPIC), Handoff::Replay), auto);
    }
}

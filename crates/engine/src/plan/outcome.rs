//! What remediation did, for the report: each action with its status, before and after, and
//! the command that rolls it back; what was refused; and whether each path is open now.

use serde::Serialize;

use super::message::Mode;
use super::{Action, PlanTarget, Refusal};
/// `1 change`, `3 changes`.
fn changes(n: usize) -> String {
    crate::context::count(n, "change", "changes")
}

#[cfg(test)]
use crate::alarm::LbKind;
use crate::finding::DurableFix;
use crate::fixes;
use crate::netcheck::Direction;
use crate::shell::Script;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Changed now.
    Applied,
    /// Already in place (another run, or someone, did it): nothing to do.
    InPlace,
    /// Dry-run: would be applied; `detail` says how far it was validated.
    WouldApply,
    /// Not applied, by a rule that holds for this action only (the cooldown, a quota).
    Refused,
    /// The call failed; `detail` has AWS's answer.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The action as applied (its rule number may have moved on a collision).
    pub action: Action,
    pub description: String,
    pub status: StepStatus,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Script>,
    /// For a change in the cluster, the field exactly as it was and as elbmedic set it: what
    /// the ledger keeps for `elbmedic undo`. Not in the report (`before` and `after` say it).
    #[serde(skip)]
    pub field: Option<FieldChange>,
}

impl Step {
    pub fn new(action: &Action, status: StepStatus, detail: impl Into<String>) -> Self {
        Self {
            description: action.describe(),
            action: action.clone(),
            status,
            detail: detail.into(),
            before: None,
            after: None,
            rollback: None,
            field: None,
        }
    }
}

/// One field of an object in the cluster, exactly as it was and as elbmedic set it (`None`:
/// absent), in the form of `plan::durable::field_before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldChange {
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeStatus {
    /// Every needed action was applied (or was in place).
    Applied,
    /// Some actions were applied and some were not: `steps` say which.
    Partial,
    /// Nothing needed doing.
    NothingToDo,
    /// Dry-run: validated, nothing changed.
    DryRun,
    /// The plan was refused whole; nothing changed.
    Refused,
    /// Another remediation of this load balancer holds the lock.
    Skipped,
}

impl OutcomeStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "REMEDIATED",
            Self::Partial => "PARTLY REMEDIATED",
            Self::NothingToDo => "NOTHING TO REMEDIATE",
            Self::DryRun => "DRY RUN",
            Self::Refused => "REMEDIATION REFUSED",
            Self::Skipped => "REMEDIATION SKIPPED",
        }
    }
}

/// Whether a path an action was meant to open is open after remediation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathCheck {
    pub action: String,
    pub open: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub plan_id: String,
    pub mode: Mode,
    pub status: OutcomeStatus,
    pub headline: String,
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verification: Vec<PathCheck>,
    /// The Kubernetes changes that keep what was changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub durable: Vec<DurableFix>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Outcome {
    /// An outcome where nothing was attempted.
    pub fn without_steps(
        plan_id: &str,
        mode: Mode,
        status: OutcomeStatus,
        headline: impl Into<String>,
    ) -> Self {
        Self {
            plan_id: plan_id.into(),
            mode,
            status,
            headline: headline.into(),
            steps: Vec::new(),
            refused: Vec::new(),
            verification: Vec::new(),
            durable: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The overall status and headline, from the steps.
    pub fn settle(&mut self, lb_name: &str) {
        let count = |status| self.steps.iter().filter(|s| s.status == status).count();
        let (applied, would, in_place) = (
            count(StepStatus::Applied),
            count(StepStatus::WouldApply),
            count(StepStatus::InPlace),
        );
        let not_done = count(StepStatus::Failed) + count(StepStatus::Refused);
        (self.status, self.headline) = if would > 0 {
            (
                OutcomeStatus::DryRun,
                format!(
                    "{} would be made to {lb_name}; nothing was changed",
                    changes(would)
                ),
            )
        } else if not_done > 0 && applied > 0 {
            (
                OutcomeStatus::Partial,
                format!(
                    "{} made to {lb_name}, {not_done} not made: see why below",
                    changes(applied)
                ),
            )
        } else if not_done > 0 {
            (
                OutcomeStatus::Refused,
                format!(
                    "no change made to {lb_name}: {} not be applied",
                    if not_done == 1 {
                        "1 action could".to_string()
                    } else {
                        format!("{not_done} actions could")
                    }
                ),
            )
        } else if applied > 0 {
            (
                OutcomeStatus::Applied,
                format!("{} made to {lb_name}", changes(applied)),
            )
        } else {
            (
                OutcomeStatus::NothingToDo,
                format!(
                    "nothing to change on {lb_name}: {} already in place",
                    crate::context::count(in_place, "action", "actions")
                ),
            )
        };
    }
}

/// The command that undoes an applied action. `before` is what a change in the cluster
/// replaced (`None`: the field was absent); the AWS actions carry their own.
pub fn rollback(action: &Action, target: &PlanTarget, before: Option<&str>) -> Option<Script> {
    let region = target.region.as_str();
    let script = match action {
        Action::KeepIdleTimeout { place, .. } | Action::EnableReadinessGates { place, .. } => {
            return fixes::put_back(place, before)
        }
        Action::RaiseIdleTimeout { from, .. } => fixes::idle_timeout_script(
            target.kind,
            region,
            &target.name,
            target.arn.as_deref(),
            *from,
        ),
        Action::RaiseListenerIdleTimeout {
            listener_arn, from, ..
        } => fixes::nlb_listener_idle_timeout(region, listener_arn, *from),
        Action::AllowNaclEntry {
            nacl_id,
            egress,
            rule_number,
            ..
        } => fixes::delete_nacl_entry(region, nacl_id, Direction::of_egress(*egress), *rule_number),
        Action::AllowSgIngress {
            group_id,
            source_group_id,
            port,
            ..
        } => fixes::security_group_rule(
            "revoke",
            region,
            Direction::Ingress,
            group_id,
            *port,
            source_group_id,
            None,
        ),
    };
    Some(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PortRange;

    fn target(kind: LbKind) -> PlanTarget {
        PlanTarget {
            kind,
            name: "web".into(),
            id: "web".into(),
            arn: None,
            region: "eu-west-1".into(),
            vpc_id: "vpc-1".into(),
            account: None,
        }
    }

    #[test]
    fn rollbacks_restore_the_previous_value_and_remove_what_was_added() {
        let clb = rollback(
            &Action::RaiseIdleTimeout { from: 60, to: 120 },
            &target(LbKind::Classic),
            None,
        )
        .unwrap();
        assert!(clb.contains("\"IdleTimeout\":60") && clb.contains("--load-balancer-name web"));
        let nacl = Action::AllowNaclEntry {
            kind: super::super::NaclActionKind::Ephemeral,
            nacl_id: "acl-1".into(),
            egress: true,
            rule_number: 100,
            cidr: "10.0.0.0/24".into(),
            ports: PortRange::EPHEMERAL,
            in_front_of_deny: None,
        };
        assert_eq!(
            rollback(&nacl, &target(LbKind::Application), None)
                .unwrap()
                .as_str(),
            "aws ec2 delete-network-acl-entry --region eu-west-1 --network-acl-id acl-1 --egress --rule-number 100"
        );
    }

    #[test]
    fn the_status_follows_the_steps() {
        let action = Action::RaiseIdleTimeout { from: 60, to: 120 };
        let mut outcome = Outcome::without_steps("p", Mode::Auto, OutcomeStatus::Applied, "");
        outcome.steps = vec![Step::new(&action, StepStatus::InPlace, "")];
        outcome.settle("web");
        assert_eq!(outcome.status, OutcomeStatus::NothingToDo);
        outcome
            .steps
            .push(Step::new(&action, StepStatus::Applied, ""));
        outcome.settle("web");
        assert_eq!(outcome.status, OutcomeStatus::Applied);
        outcome
            .steps
            .push(Step::new(&action, StepStatus::Failed, ""));
        outcome.settle("web");
        assert_eq!(outcome.status, OutcomeStatus::Partial);
        outcome.steps = vec![Step::new(&action, StepStatus::WouldApply, "")];
        outcome.settle("web");
        assert_eq!(outcome.status, OutcomeStatus::DryRun);
    }
}

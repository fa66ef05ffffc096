//! The decision `remediate` makes before touching anything: is this plan, against the state
//! just gathered, one to apply? A plan that breaks a guardrail anywhere is refused whole, so
//! nothing of a forged or stale plan is ever half-applied.

use super::guardrails::{refusal, still_needed};
use super::{Action, Plan, Policy, Refusal, DEFAULT_PLAN_LIFETIME};
use crate::alarm::LbRef;
use crate::snapshot::{GapFact, Snapshot};

#[derive(Debug, Clone, PartialEq)]
pub enum Review {
    /// Nothing is applied; `reason` says why, `refusals` which actions broke a guardrail.
    Refused {
        reason: String,
        refusals: Vec<Refusal>,
    },
    /// Every action passed: `needed` are to apply, `in_place` are already done.
    Proceed {
        needed: Vec<Action>,
        in_place: Vec<Action>,
    },
}

fn refused(reason: impl Into<String>) -> Review {
    Review::Refused {
        reason: reason.into(),
        refusals: Vec::new(),
    }
}

/// The facts an action rests on: when one of them could not be read in this gather, the
/// guardrails would be judging from a partial world, so the action is refused (fail closed).
fn required_facts(action: &Action) -> &'static [GapFact] {
    match action {
        // Every read of the cluster: which object keeps the value, who manages it, and its
        // group and class all come from there.
        Action::KeepIdleTimeout { .. } => &[GapFact::KubernetesApi, GapFact::LbAttributes],
        Action::EnableReadinessGates { .. } => &[GapFact::KubernetesApi],
        Action::RaiseIdleTimeout { .. } => &[GapFact::LbAttributes],
        Action::RaiseListenerIdleTimeout { .. } => &[GapFact::Listeners],
        Action::AllowNaclEntry { .. } => &[
            GapFact::NetworkAcls,
            GapFact::Subnets,
            GapFact::TargetGroups,
            GapFact::TargetHealth,
            GapFact::TargetPlacement,
        ],
        Action::AllowSgIngress { .. } => &[
            GapFact::SecurityGroups,
            GapFact::PrefixList,
            GapFact::TargetGroups,
            GapFact::TargetHealth,
            GapFact::TargetPlacement,
        ],
    }
}

fn unread_fact(action: &Action, world: &Snapshot) -> Option<String> {
    let facts = required_facts(action);
    let gap = world.gaps.iter().find(|g| facts.contains(&g.fact))?;
    Some(format!(
        "this action rests on what could not be read ({}); nothing is applied on a partial view",
        crate::untrusted::one_line(&gap.to_string())
    ))
}

/// Reviews `plan` for the load balancer `alarmed` against `world`, gathered just now.
pub fn review(plan: &Plan, alarmed: &LbRef, world: &Snapshot, policy: &Policy, now: i64) -> Review {
    let target = &plan.load_balancer;
    // Checked arithmetic throughout: the dates are the plan's, so anyone's.
    let lifetime = plan.expires_at.checked_sub(plan.created_at);
    if plan.created_at > now || !lifetime.is_some_and(|l| (0..=DEFAULT_PLAN_LIFETIME).contains(&l))
    {
        return refused(format!(
            "plan {} has impossible dates (created {}, expires {}, now {now}): a plan is made before it is applied and lives at most {DEFAULT_PLAN_LIFETIME} s; it was not made by elbmedic",
            plan.id, plan.created_at, plan.expires_at
        ));
    }
    if plan.is_expired(now) {
        return refused(format!(
            "plan {} expired {} s ago; plans live {DEFAULT_PLAN_LIFETIME} s, so a new alarm makes a new one",
            plan.id,
            now.saturating_sub(plan.expires_at)
        ));
    }
    if (alarmed.kind, alarmed.id.as_str()) != (target.kind, target.id.as_str()) {
        return refused(format!(
            "the plan is for {} but its alarm names {}",
            target.id, alarmed.id
        ));
    }
    if let Some(gap) = world.gaps.iter().find(|g| g.fact == GapFact::LoadBalancer) {
        return refused(format!(
            "{} could not be read again ({}), so nothing can be checked",
            target.name, gap.detail
        ));
    }
    if world.region != target.region || world.load_balancer.vpc_id != target.vpc_id {
        return refused(format!(
            "{} is now in {} {}, not in {} {} as planned",
            target.name, world.region, world.load_balancer.vpc_id, target.region, target.vpc_id
        ));
    }
    let refusals: Vec<Refusal> = plan
        .actions
        .iter()
        .filter_map(|action| {
            unread_fact(action, world)
                .or_else(|| refusal(action, world, policy))
                .map(|reason| Refusal {
                    action: action.clone(),
                    reason,
                })
        })
        .collect();
    if let Some(first) = refusals.first() {
        return Review::Refused {
            reason: format!(
                "{} of {} actions break a guardrail, so none is applied; first: {}",
                refusals.len(),
                plan.actions.len(),
                first.reason
            ),
            refusals,
        };
    }
    let (needed, in_place) = plan
        .actions
        .iter()
        .cloned()
        .partition(|action| still_needed(action, world));
    Review::Proceed { needed, in_place }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::diagnose;
    use crate::plan::plan;
    use crate::rules::testing::scenario_alarm;
    use crate::testkit::scenario_snapshot;

    fn planned(name: &str) -> (Snapshot, Plan, LbRef) {
        let world = scenario_snapshot(name);
        let plan = plan(
            &world,
            &diagnose(&scenario_alarm(name), &world).findings,
            &Policy::default(),
            1000,
            None,
        );
        let alarmed = crate::testkit::alarmed(&world);
        (world, plan, alarmed)
    }

    #[test]
    fn a_fresh_plan_proceeds_and_an_expired_or_misdirected_one_is_refused() {
        let (world, plan, alarmed) = planned("nacl-ephemeral-node-subnets");
        let policy = Policy::default();
        let Review::Proceed { needed, in_place } = review(&plan, &alarmed, &world, &policy, 1001)
        else {
            panic!("refused")
        };
        assert_eq!(needed, plan.actions);
        assert!(in_place.is_empty());

        let expired = review(&plan, &alarmed, &world, &policy, plan.expires_at);
        assert!(matches!(&expired, Review::Refused { reason, .. } if reason.contains("expired")));

        let mut forever = plan.clone();
        forever.expires_at = forever.created_at + 10 * 24 * 3600;
        assert!(matches!(
            review(&forever, &alarmed, &world, &policy, 1001),
            Review::Refused { reason, .. } if reason.contains("impossible dates")
        ));

        let other = LbRef {
            id: "app/other/1".into(),
            ..alarmed.clone()
        };
        assert!(matches!(
            review(&plan, &other, &world, &policy, 1001),
            Review::Refused { reason, .. } if reason.contains("its alarm names")
        ));

        let mut moved = world.clone();
        moved.load_balancer.vpc_id = "vpc-elsewhere".into();
        assert!(matches!(
            review(&plan, &alarmed, &moved, &policy, 1001),
            Review::Refused { reason, .. } if reason.contains("not in")
        ));
    }

    #[test]
    fn one_forged_action_refuses_the_whole_plan() {
        let (world, mut plan, alarmed) = planned("nacl-ephemeral-node-subnets");
        let Some(Action::AllowNaclEntry { .. }) = plan.actions.first().cloned() else {
            panic!("{:?}", plan.actions)
        };
        let mut forged = plan.actions[0].clone();
        if let Action::AllowNaclEntry { cidr, .. } = &mut forged {
            *cidr = "0.0.0.0/0".into();
        }
        plan.actions.push(forged);
        let Review::Refused { reason, refusals } =
            review(&plan, &alarmed, &world, &Policy::default(), 1001)
        else {
            panic!("a forged action passed")
        };
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert!(reason.contains("none is applied"), "{reason}");
        assert!(refusals[0].reason.contains("open everything"));
    }

    #[test]
    fn plan_dates_are_checked_without_overflow() {
        let (world, plan, alarmed) = planned("nacl-ephemeral-node-subnets");
        let policy = Policy::default();
        let dated = |created_at: i64, expires_at: i64| Plan {
            created_at,
            expires_at,
            ..plan.clone()
        };
        for (forged, now) in [
            (dated(2000, 2000 + 60), 1001),    // made in the future
            (dated(1000, 1000 + 3601), 1001),  // lives longer than an hour
            (dated(1000, 999), 1001),          // expires before it is made
            (dated(i64::MIN, i64::MAX), 1001), // overflows a naive subtraction
            (dated(i64::MAX, i64::MIN), i64::MAX),
            (dated(1000, 4600), i64::MIN),
        ] {
            let review = review(&forged, &alarmed, &world, &policy, now);
            assert!(
                matches!(&review, Review::Refused { reason, .. } if reason.contains("impossible dates")),
                "{forged:?}: {review:?}"
            );
        }
        let late = review(&dated(1000, 4600), &alarmed, &world, &policy, i64::MAX);
        assert!(matches!(&late, Review::Refused { reason, .. } if reason.contains("expired")));
    }

    #[test]
    fn a_retried_alarm_makes_the_same_plan_and_another_episode_another() {
        let world = scenario_snapshot("nacl-ephemeral-node-subnets");
        let findings = diagnose(&scenario_alarm("nacl-ephemeral-node-subnets"), &world).findings;
        let policy = Policy::default();
        let first = plan(&world, &findings, &policy, 1000, Some(900));
        let retried = plan(&world, &findings, &policy, 1300, Some(900));
        let next = plan(&world, &findings, &policy, 5000, Some(4900));
        assert_eq!(first.id, retried.id);
        assert_ne!(first.id, next.id);
    }

    #[test]
    fn an_action_resting_on_an_unread_fact_is_refused() {
        let (world, plan, alarmed) = planned("nacl-ephemeral-node-subnets");
        for fact in [
            GapFact::NetworkAcls,
            GapFact::Subnets,
            GapFact::TargetPlacement,
        ] {
            let mut partial = world.clone();
            partial.gaps.push(crate::snapshot::Gap {
                fact,
                resource: None,
                reason: crate::snapshot::GapReason::Throttled,
                detail: "Rate exceeded".into(),
            });
            let review = review(&plan, &alarmed, &partial, &Policy::default(), 1001);
            assert!(
                matches!(&review, Review::Refused { refusals, .. } if refusals.iter().all(|r| r.reason.contains("partial view"))),
                "{fact:?}: {review:?}"
            );
        }
        // A gap that no NACL action rests on (metrics) changes nothing.
        let mut quiet = world.clone();
        quiet.gaps.push(crate::snapshot::Gap {
            fact: GapFact::Metrics,
            resource: None,
            reason: crate::snapshot::GapReason::Throttled,
            detail: String::new(),
        });
        assert!(matches!(
            review(&plan, &alarmed, &quiet, &Policy::default(), 1001),
            Review::Proceed { .. }
        ));
    }
}

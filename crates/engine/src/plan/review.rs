//! The decision `remediate` makes before touching anything: is this plan, against the state
//! just gathered, one to apply? A plan that breaks a guardrail anywhere is refused whole, so
//! nothing of a forged or stale plan is ever half-applied.

use super::guardrails::{refusal, still_needed};
use super::{Action, Plan, Policy, Refusal, DEFAULT_PLAN_LIFETIME};
use crate::alarm::LbRef;
use crate::snapshot::{GapFact, Snapshot};

/// Plans claiming to live longer than this are not ours.
const MAX_PLAN_LIFETIME: i64 = 24 * 3600;
/// Clock skew tolerated between the function that made a plan and the one applying it.
const CLOCK_SKEW: i64 = 300;

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

/// Reviews `plan` for the load balancer `alarmed` against `world`, gathered just now.
pub fn review(plan: &Plan, alarmed: &LbRef, world: &Snapshot, policy: &Policy, now: i64) -> Review {
    let target = &plan.load_balancer;
    if plan.is_expired(now) {
        return refused(format!(
            "plan {} expired {} s ago; plans live {} s, so a new alarm makes a new one",
            plan.id,
            now - plan.expires_at,
            DEFAULT_PLAN_LIFETIME
        ));
    }
    if plan.created_at > now + CLOCK_SKEW || plan.expires_at - plan.created_at > MAX_PLAN_LIFETIME {
        return refused(format!(
            "plan {} has impossible dates (created {}, expires {}); it was not made by elbmedic",
            plan.id, plan.created_at, plan.expires_at
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
            refusal(action, world, policy).map(|reason| Refusal {
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
        );
        let lb = &world.load_balancer;
        let alarmed = LbRef {
            kind: lb.kind,
            name: lb.name.clone(),
            id: lb.id.clone(),
            target_group: None,
        };
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
}

use super::*;
use crate::diagnosis::diagnose;
use crate::rules::testing::scenario_alarm;
use crate::testkit::scenario_snapshot;

const NOW: i64 = 1_795_457_000;

fn plan_for(name: &str, policy: &Policy) -> Plan {
    let world = scenario_snapshot(name);
    let diagnosis = diagnose(&scenario_alarm(name), &world);
    plan(&world, &diagnosis.findings, policy, NOW)
}

#[test]
fn ephemeral_drop_plans_exact_entries_per_lb_subnet() {
    let plan = plan_for("nacl-ephemeral-node-subnets", &Policy::default());
    assert!(plan.refused.is_empty(), "{:?}", plan.refused);
    let entries: Vec<(u16, &str)> = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::AllowNaclEntry {
                kind: NaclActionKind::Ephemeral,
                egress: true,
                rule_number,
                cidr,
                ports,
                in_front_of_deny: None,
                ..
            } => {
                assert_eq!(*ports, PortRange::EPHEMERAL);
                (*rule_number, cidr.as_str())
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        entries,
        [
            (120, "10.0.0.0/24"),
            (130, "10.0.1.0/24"),
            (140, "10.0.2.0/24")
        ]
    );
    assert_eq!(plan.expires_at - plan.created_at, DEFAULT_PLAN_LIFETIME);
    assert_eq!(plan.load_balancer.vpc_id, "vpc-0a7c3e91d2b4f6058");
}

#[test]
fn an_explicit_deny_is_refused_unless_overridden() {
    let refused = plan_for("nacl-ephemeral-lb-subnets", &Policy::default());
    assert!(refused.actions.is_empty());
    assert!(
        refused.refused[0].reason.contains("OVERRIDE_EXPLICIT_DENY"),
        "{:?}",
        refused.refused
    );
    let overridden = plan_for(
        "nacl-ephemeral-lb-subnets",
        &Policy {
            override_explicit_deny: true,
            ..Policy::default()
        },
    );
    let [Action::AllowNaclEntry {
        rule_number,
        in_front_of_deny,
        egress,
        cidr,
        ..
    }] = overridden.actions.as_slice()
    else {
        panic!("{:?}", overridden.actions)
    };
    assert_eq!(
        (*rule_number, *in_front_of_deny, *egress, cidr.as_str()),
        (89, Some(90), false, "10.0.48.0/20")
    );
}

#[test]
fn idle_timeout_raise_respects_the_cap_and_the_allowlist() {
    let plan = plan_for("alb-idle-timeout", &Policy::default());
    assert_eq!(
        plan.actions,
        [Action::RaiseIdleTimeout { from: 60, to: 120 }]
    );
    let capped = plan_for(
        "alb-idle-timeout",
        &Policy {
            max_idle_timeout: 100,
            ..Policy::default()
        },
    );
    assert!(capped.actions.is_empty());
    assert!(capped.refused[0]
        .reason
        .contains("MAX_IDLE_TIMEOUT (100 s)"));
    let allowlist: BTreeSet<ActionKind> = [ActionKind::AllowNaclEphemeral].into_iter().collect();
    let off_list = plan_for(
        "alb-idle-timeout",
        &Policy {
            allowed_actions: allowlist,
            ..Policy::default()
        },
    );
    assert!(off_list.refused[0]
        .reason
        .contains("raise-idle-timeout is not in ALLOWED_ACTIONS"));
}

#[test]
fn never_lowers_the_idle_timeout() {
    let lower = Action::RaiseIdleTimeout { from: 120, to: 60 };
    assert!(policy_refusal(&lower, &Policy::default())
        .unwrap()
        .contains("never lowers"));
}

#[test]
fn missing_lb_rule_plans_a_group_reference_with_a_dated_description() {
    let plan = plan_for("sg-node-missing-lb-rule", &Policy::default());
    let [Action::AllowSgIngress {
        group_id,
        source_group_id,
        port,
        description,
    }] = plan.actions.as_slice()
    else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(
        (group_id.as_str(), source_group_id.as_str(), *port),
        ("sg-0c5e7a9b1d3f24680", "sg-0a1f2e3d4c5b60792", 8080)
    );
    assert!(
        description.contains("elbmedic")
            && description.contains("k8s-shop-checkout-6f1e2d3c4b")
            && description.contains("2026-11-23")
    );
}

#[test]
fn a_cluster_off_the_allowlist_refuses_everything() {
    let plan = plan_for(
        "nacl-ephemeral-node-subnets",
        &Policy {
            allowed_clusters: Some(vec!["other".into()]),
            ..Policy::default()
        },
    );
    assert!(plan.actions.is_empty());
    assert_eq!(plan.refused.len(), 3);
    assert!(plan.refused[0]
        .reason
        .contains("cluster shop-prod is not in ALLOWED_CLUSTERS"));
}

#[test]
fn causes_without_a_remedy_plan_nothing() {
    for name in [
        "unhealthy-targets",
        "stale-pod-ip",
        "backend-keepalive-502",
        "no-known-cause",
        "check-incomplete",
    ] {
        let plan = plan_for(name, &Policy::default());
        assert!(
            plan.actions.is_empty() && plan.refused.is_empty(),
            "{name}: {plan:?}"
        );
    }
}

#[test]
fn plans_travel_as_json_and_ids_are_deterministic() {
    let plan = plan_for("nacl-ephemeral-node-subnets", &Policy::default());
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("\"action\":\"allow-nacl-entry\""));
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    assert_eq!(
        plan_for("nacl-ephemeral-node-subnets", &Policy::default()).id,
        plan.id
    );
    assert!(plan.id.starts_with("plan-"));
    assert!(!plan.is_expired(NOW + 3599) && plan.is_expired(NOW + 3600));
    assert_eq!(
        ActionKind::parse("allow-sg-target-port"),
        Some(ActionKind::AllowSgTargetPort)
    );
    assert_eq!(ActionKind::parse("rm -rf"), None);
}

use super::*;
use crate::diagnosis::diagnose;
use crate::rules::testing::scenario_alarm;
use crate::snapshot::PortRange;
use crate::testkit::scenario_snapshot;

const NOW: i64 = 1_795_457_000;

fn plan_for(name: &str, policy: &Policy) -> Plan {
    let world = scenario_snapshot(name);
    let diagnosis = diagnose(&scenario_alarm(name), &world);
    plan(&world, &diagnosis.findings, policy, NOW, Some(NOW - 60))
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

const NODE_ACL: &str = "acl-0d4c3b2a1f0e98761";
const LB_ACL: &str = "acl-0b1e2d3c4f5a69870";

/// The node subnets' NACL of `nacl-ephemeral-node-subnets` with an unrelated explicit deny
/// in front of its egress: rule 50, TCP 3389 to 0.0.0.0/0.
fn with_unrelated_deny() -> crate::snapshot::Snapshot {
    let mut world = scenario_snapshot("nacl-ephemeral-node-subnets");
    let acl = world
        .network_acls
        .iter_mut()
        .find(|a| a.id == NODE_ACL)
        .unwrap();
    acl.entries.push(crate::snapshot::NaclEntry {
        rule_number: 50,
        egress: true,
        protocol: "6".into(),
        rule_action: "deny".into(),
        cidr_block: Some("0.0.0.0/0".into()),
        ipv6_cidr_block: None,
        port_range: Some(PortRange::single(3389)),
    });
    world
}

/// The reproduced defect 1: the allows were numbered 47-49, in front of the deny, without
/// `in_front_of_deny`, and the plan passed; applying it would have let 3389 through. There
/// were also two findings for one NACL and direction.
#[test]
fn an_unrelated_deny_keeps_deciding_and_the_allows_go_after_it() {
    let name = "nacl-ephemeral-node-subnets";
    let world = with_unrelated_deny();
    let diagnosis = diagnose(&scenario_alarm(name), &world);
    let on_node_acl: Vec<_> = diagnosis
        .findings
        .iter()
        .filter(|f| f.resources.first().map(String::as_str) == Some(NODE_ACL))
        .collect();
    assert_eq!(on_node_acl.len(), 1, "one finding per NACL and direction");
    assert!(
        on_node_acl[0]
            .title
            .contains("rule 50 and the implicit deny"),
        "{}",
        on_node_acl[0].title
    );
    for policy in [
        Policy::default(),
        Policy {
            override_explicit_deny: true,
            ..Policy::default()
        },
    ] {
        let plan = plan(&world, &diagnosis.findings, &policy, NOW, None);
        assert!(plan.refused.is_empty(), "{:?}", plan.refused);
        assert_eq!(plan.actions.len(), 3);
        for action in &plan.actions {
            let Action::AllowNaclEntry {
                rule_number,
                in_front_of_deny,
                ..
            } = action
            else {
                panic!("{action:?}")
            };
            assert!(*rule_number > 50, "{action:?}");
            assert_eq!(*in_front_of_deny, None);
            assert_eq!(guardrails::refusal(action, &world, &policy), None);
        }
    }
}

fn node_entry(
    egress: bool,
    rule_number: u16,
    cidr: &str,
    kind: NaclActionKind,
    nacl: &str,
) -> Action {
    Action::AllowNaclEntry {
        kind,
        nacl_id: nacl.into(),
        egress,
        rule_number,
        cidr: cidr.into(),
        ports: match kind {
            NaclActionKind::Ephemeral => PortRange::EPHEMERAL,
            NaclActionKind::TargetPort => PortRange::single(8080),
        },
        in_front_of_deny: None,
    }
}

/// Forged NACL actions, each breaking one guardrail that ties an entry to its path and its
/// number to the engine's own window: each is refused with its own reason.
#[test]
fn forged_nacl_actions_are_refused_each_with_its_reason() {
    let world = with_unrelated_deny();
    let policy = Policy::default();
    let eph = NaclActionKind::Ephemeral;
    let cases = [
        // The real plan's entry, for reference: accepted.
        (node_entry(true, 120, "10.0.0.0/24", eph, NODE_ACL), None),
        (
            node_entry(false, 120, "10.0.0.0/24", eph, NODE_ACL),
            Some("belongs on the NACL of a load balancer subnet"),
        ),
        (
            node_entry(true, 120, "10.0.16.0/20", eph, LB_ACL),
            Some("belongs on the NACL of a target subnet"),
        ),
        (
            node_entry(true, 120, "10.0.0.0/16", eph, NODE_ACL),
            Some("not the CIDR block of a load balancer subnet"),
        ),
        (
            node_entry(true, 120, "10.0.16.0/20", eph, NODE_ACL),
            Some("not the CIDR block of a load balancer subnet"),
        ),
        (
            node_entry(true, 1, "10.0.0.0/24", eph, NODE_ACL),
            Some("OVERRIDE_EXPLICIT_DENY"),
        ),
        (
            node_entry(true, 49, "10.0.0.0/24", eph, NODE_ACL),
            Some("OVERRIDE_EXPLICIT_DENY"),
        ),
        (
            node_entry(
                true,
                100,
                "10.0.0.0/24",
                NaclActionKind::TargetPort,
                NODE_ACL,
            ),
            Some("belongs on the NACL of a load balancer subnet"),
        ),
    ];
    for (action, expected) in cases {
        let reason = guardrails::refusal(&action, &world, &policy);
        match (expected, &reason) {
            (None, None) => {}
            (Some(text), Some(reason)) => assert!(reason.contains(text), "{action:?}: {reason}"),
            _ => panic!("{action:?}: {reason:?}, expected {expected:?}"),
        }
    }
    // The field a plan carries decides nothing: claiming the override in the plan does not
    // make rule 1 acceptable, and the override makes it acceptable only below the entry that
    // decides (rule 50 decides 3389; the implicit deny the rest).
    let mut claimed = node_entry(true, 1, "10.0.0.0/24", eph, NODE_ACL);
    if let Action::AllowNaclEntry {
        in_front_of_deny, ..
    } = &mut claimed
    {
        *in_front_of_deny = None;
    }
    assert!(guardrails::refusal(&claimed, &world, &policy).is_some());
    let overriding = Policy {
        override_explicit_deny: true,
        ..Policy::default()
    };
    assert_eq!(guardrails::refusal(&claimed, &world, &overriding), None);
}

/// The guardrails the other forged-plan tests do not reach: each refuses with its reason.
#[test]
fn the_remaining_guardrails_refuse_forged_actions() {
    let policy = Policy::default();
    let world = with_unrelated_deny();
    let eph = NaclActionKind::Ephemeral;
    for (action, expected) in [
        (
            node_entry(true, 0, "10.0.0.0/24", eph, NODE_ACL),
            "outside 1-32766",
        ),
        (
            node_entry(true, 32767, "10.0.0.0/24", eph, NODE_ACL),
            "outside 1-32766",
        ),
        (
            node_entry(true, 120, "10.0.0.0/33", eph, NODE_ACL),
            "not a CIDR block",
        ),
    ] {
        let reason = guardrails::refusal(&action, &world, &policy).unwrap_or_default();
        assert!(reason.contains(expected), "{action:?}: {reason:?}");
    }
    // Facts that could not be read: the VPC's blocks, the NACL's entries, the group, the
    // current idle timeout.
    let mut blind = world.clone();
    blind.load_balancer.vpc_cidrs.clear();
    let reason = guardrails::refusal(
        &node_entry(true, 120, "10.0.0.0/24", eph, NODE_ACL),
        &blind,
        &policy,
    );
    assert!(reason
        .unwrap()
        .contains("VPC's CIDR blocks could not be read"));
    let mut no_acl = world.clone();
    no_acl.network_acls.retain(|a| a.id != NODE_ACL);
    let reason = guardrails::refusal(
        &node_entry(true, 120, "10.0.0.0/24", eph, NODE_ACL),
        &no_acl,
        &policy,
    );
    assert!(reason.unwrap().contains("could not be read"));
    let idle = scenario_snapshot("alb-idle-timeout");
    for (to, expected) in [(0, "never lowers"), (5000, "outside the AWS range")] {
        let generous = Policy {
            max_idle_timeout: 5000,
            ..Policy::default()
        };
        let reason =
            guardrails::refusal(&Action::RaiseIdleTimeout { from: 0, to }, &idle, &generous);
        assert!(reason.unwrap_or_default().contains(expected), "{to}");
    }
    let mut unread = idle.clone();
    unread.load_balancer.idle_timeout_seconds = None;
    let reason = guardrails::refusal(
        &Action::RaiseIdleTimeout { from: 60, to: 120 },
        &unread,
        &policy,
    );
    assert!(reason.unwrap().contains("could not be read"));
    let sg_world = scenario_snapshot("sg-node-missing-lb-rule");
    let sg_plan = plan(
        &sg_world,
        &diagnose(&scenario_alarm("sg-node-missing-lb-rule"), &sg_world).findings,
        &policy,
        NOW,
        None,
    );
    let sg_action = sg_plan.actions[0].clone();
    let Action::AllowSgIngress { group_id, .. } = &sg_action else {
        panic!("{sg_action:?}")
    };
    let mut no_group = sg_world.clone();
    no_group.security_groups.retain(|g| &g.id != group_id);
    assert!(guardrails::refusal(&sg_action, &no_group, &policy)
        .unwrap()
        .contains("could not be read"));
    // ALLOWED_CLUSTERS: a load balancer of another cluster, or of none.
    let elsewhere = Policy {
        allowed_clusters: Some(vec!["other-cluster".into()]),
        ..Policy::default()
    };
    let reason = guardrails::refusal(&sg_action, &sg_world, &elsewhere).unwrap();
    assert!(reason.contains("not in ALLOWED_CLUSTERS"), "{reason}");
}

/// Someone raised the idle timeout above the plan's value meanwhile: the raise is in place,
/// never applied, so the timeout is never lowered.
#[test]
fn a_timeout_raised_meanwhile_is_never_lowered() {
    let name = "alb-idle-timeout";
    let mut world = scenario_snapshot(name);
    let planned = plan_for(name, &Policy::default());
    let [Action::RaiseIdleTimeout { to, .. }] = planned.actions.as_slice() else {
        panic!("{:?}", planned.actions)
    };
    world.load_balancer.idle_timeout_seconds = Some(to + 300);
    let alarmed = crate::testkit::alarmed(&world);
    let review::Review::Proceed { needed, in_place } =
        review::review(&planned, &alarmed, &world, &Policy::default(), NOW + 1)
    else {
        panic!("refused")
    };
    assert!(needed.is_empty(), "{needed:?}");
    assert_eq!(in_place, planned.actions);
}

/// A policy that opts in to changes in the cluster.
fn with_cluster_writes() -> Policy {
    let mut policy = Policy::default();
    policy.allowed_actions.insert(ActionKind::KeepIdleTimeout);
    policy
}

/// The Classic LB scenario with the cluster read: its Service `shop/orders`, no annotation.
fn clb_with_cluster() -> crate::snapshot::Snapshot {
    use crate::kubernetes::{Kubernetes, Service};
    let mut world = scenario_snapshot("clb-idle-timeout");
    world.kubernetes = Some(Kubernetes {
        cluster: "shop-prod".into(),
        services: vec![Service {
            namespace: "shop".into(),
            name: "orders".into(),
            ..Service::default()
        }],
        ..Kubernetes::default()
    });
    world
}

fn keep(place: Place, seconds: u32) -> Action {
    Action::KeepIdleTimeout {
        cluster: "shop-prod".into(),
        place,
        seconds,
    }
}

fn params(name: &str) -> Place {
    Place::IngressClassParams { name: name.into() }
}

#[test]
fn the_durable_half_is_planned_beside_the_raise_where_the_cluster_keeps_it() {
    let world = clb_with_cluster();
    let diagnosis = diagnose(&scenario_alarm("clb-idle-timeout"), &world);
    let planned = plan(
        &world,
        &diagnosis.findings,
        &with_cluster_writes(),
        NOW,
        None,
    );
    let service = Place::Service {
        namespace: "shop".into(),
        name: "orders".into(),
    };
    assert!(
        planned.actions.contains(&keep(service.clone(), 120)),
        "{:?}",
        planned.actions
    );
    assert!(matches!(
        planned.actions[0],
        Action::RaiseIdleTimeout { from: 60, to: 120 }
    ));
    // The AWS side alone unless the operator opts in.
    let default = plan(&world, &diagnosis.findings, &Policy::default(), NOW, None);
    assert_eq!(default.actions.len(), 1);
    assert!(default.refused[0]
        .reason
        .contains("keep-idle-timeout is not in ALLOWED_ACTIONS"));
    // Where IngressClassParams set the key, there.
    let class = plan_for("eks-idle-timeout-class-params", &with_cluster_writes());
    assert!(
        class.actions.contains(&keep(params("alb-internet"), 120)),
        "{:?}",
        class.actions
    );
    // A group whose two members declare the key: no single place, so no durable half.
    let group = plan_for("eks-ingress-group-conflict", &with_cluster_writes());
    assert!(
        !group
            .actions
            .iter()
            .any(|a| a.kind() == ActionKind::KeepIdleTimeout),
        "{:?}",
        group.actions
    );
}

/// Forged or stale plans against the state read just now: each names its reason, and the
/// true one passes.
#[test]
fn a_forged_durable_half_is_refused_with_its_reason() {
    let policy = with_cluster_writes();
    let world = scenario_snapshot("eks-idle-timeout-class-params");
    assert_eq!(
        guardrails::refusal(&keep(params("alb-internet"), 120), &world, &policy),
        None
    );
    let refused = |action: &Action, world: &crate::snapshot::Snapshot, policy: &Policy| {
        guardrails::refusal(action, world, policy).unwrap_or_else(|| panic!("{action:?} passed"))
    };
    // Another object than the one that keeps the value: another class, the Ingress (whose
    // value the params override), an object of another namespace.
    for place in [
        params("internal"),
        Place::Ingress {
            namespace: "shop".into(),
            name: "checkout".into(),
        },
        Place::Service {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
        },
        Place::Namespace {
            name: "shop".into(),
        },
    ] {
        let reason = refused(&keep(place, 120), &world, &policy);
        assert!(
            reason.contains("kept at IngressClassParams alb-internet"),
            "{reason}"
        );
    }
    let other_cluster = Action::KeepIdleTimeout {
        cluster: "staging".into(),
        place: params("alb-internet"),
        seconds: 120,
    };
    assert!(refused(&other_cluster, &world, &policy).contains("names cluster staging"));
    assert!(
        refused(&keep(params("alb-internet"), 4000), &world, &policy).contains("MAX_IDLE_TIMEOUT")
    );
    assert!(refused(&keep(params("alb-internet"), 0), &world, &policy).contains("outside 1 s"));
    // Below the load balancer's own value: the controller would lower it.
    let mut raised = world.clone();
    raised.load_balancer.idle_timeout_seconds = Some(300);
    assert!(refused(&keep(params("alb-internet"), 120), &raised, &policy).contains("lower it"));
    // A cluster-scoped object needs * in ALLOWED_NAMESPACES.
    let shop_only = Policy {
        allowed_namespaces: Some(vec!["shop".into()]),
        ..policy.clone()
    };
    assert!(
        refused(&keep(params("alb-internet"), 120), &world, &shop_only).contains("cluster-scoped")
    );
    let everywhere = Policy {
        allowed_namespaces: Some(vec!["*".into()]),
        ..policy.clone()
    };
    assert_eq!(
        guardrails::refusal(&keep(params("alb-internet"), 120), &world, &everywhere),
        None
    );
    // Re-applied by Helm: refused with where to change it, unless OVERRIDE_GITOPS.
    let mut helm = world.clone();
    helm.kubernetes.as_mut().unwrap().ingress_class_params[0].managed_by =
        Some(crate::kubernetes::Manager::Helm {
            release: "aws-load-balancer-controller".into(),
            namespace: Some("kube-system".into()),
        });
    let reason = refused(&keep(params("alb-internet"), 120), &helm, &policy);
    assert!(
        reason.contains("Helm release aws-load-balancer-controller")
            && reason.contains("OVERRIDE_GITOPS"),
        "{reason}"
    );
    let overriding = Policy {
        override_gitops: true,
        ..policy.clone()
    };
    assert_eq!(
        guardrails::refusal(&keep(params("alb-internet"), 120), &helm, &overriding),
        None
    );
    // The cluster not read now: nothing is checked, so nothing is applied.
    let mut unread = world.clone();
    unread.kubernetes = None;
    assert!(
        refused(&keep(params("alb-internet"), 120), &unread, &policy).contains("could not be read")
    );
    // A group with no single place names why.
    let group = scenario_snapshot("eks-ingress-group-conflict");
    let member = Place::Ingress {
        namespace: "shop".into(),
        name: "checkout".into(),
    };
    assert!(
        refused(&keep(member, 300), &group, &policy).contains("2 Ingresses of the group declare")
    );
}

#[test]
fn a_kept_value_at_or_above_the_plans_is_in_place_and_never_lowered() {
    let mut world = scenario_snapshot("eks-idle-timeout-class-params");
    let action = keep(params("alb-internet"), 120);
    assert!(guardrails::still_needed(&action, &world));
    let attributes =
        &mut world.kubernetes.as_mut().unwrap().ingress_class_params[0].load_balancer_attributes;
    attributes[1].value = "300".into();
    assert!(!guardrails::still_needed(&action, &world));
}

/// The outcome's one line names both halves when both applied; when only the AWS half did,
/// a warning says the raise will be written back, by whom and when.
#[test]
fn the_outcome_says_which_half_applied_and_warns_when_only_aws_did() {
    use super::message::Mode;
    use super::outcome::{Outcome, OutcomeStatus, Step, StepStatus};
    let world = clb_with_cluster();
    let target = PlanTarget::of(&world);
    let raise = Action::RaiseIdleTimeout { from: 60, to: 120 };
    let service = Place::Service {
        namespace: "shop".into(),
        name: "orders".into(),
    };
    let mut both = Outcome::without_steps("p", Mode::Auto, OutcomeStatus::Applied, "");
    both.steps = vec![
        Step::new(&raise, StepStatus::Applied, ""),
        Step::new(&keep(service.clone(), 120), StepStatus::Applied, ""),
    ];
    reconcile::finish(&mut both, &target, &Policy::default());
    assert!(
        both.headline.ends_with("both halves: the idle timeout raised on the load balancer and kept at 120 s in Service shop/orders"),
        "{}",
        both.headline
    );
    let mut half = Outcome::without_steps("p", Mode::Auto, OutcomeStatus::Applied, "");
    half.steps = vec![
        Step::new(&raise, StepStatus::Applied, ""),
        Step::new(
            &keep(service, 120),
            StepStatus::Refused,
            "argocd-controller own what elbmedic would set",
        ),
    ];
    reconcile::finish(&mut half, &target, &Policy::default());
    assert!(!half.headline.contains("both halves"));
    assert!(
        half.notes[0].starts_with("WARNING: only the AWS half applied; the change in the cluster was not made: argocd-controller")
            && half.notes[0].contains("next sync of its Service"),
        "{:?}",
        half.notes
    );
}

/// The content id does not depend on the order serde_json keeps keys in: the canonical text
/// sorts every object's keys, as serde_json writes a map without `preserve_order`.
#[test]
fn the_content_id_is_the_same_whatever_order_keys_are_kept_in() {
    let shuffled: serde_json::Value =
        serde_json::from_str(r#"{"b":{"z":1,"a":[{"y":2,"c":3}]},"a":"x"}"#).unwrap();
    assert_eq!(
        canonical(&shuffled),
        r#"{"a":"x","b":{"a":[{"c":3,"y":2}],"z":1}}"#
    );
    let plan = plan_for("nacl-ephemeral-node-subnets", &Policy::default());
    assert!(plan.id_matches_content());
}

/// The rolling-deploy scenario with its namespace's readiness-gate label taken off: the
/// churn finding proposes the label (new pods only), the plan carries it when allowed, the
/// guardrails pass it on this state and refuse a forged one (another namespace, another
/// kind of object, another cluster, a namespace Argo CD re-applies), and once the label is
/// there it is in place.
#[test]
fn the_readiness_gate_label_is_planned_for_the_culprits_namespace_only() {
    let name = "eks-rolling-deploy-no-prestop";
    let mut world = scenario_snapshot(name);
    let section = world.kubernetes.as_mut().unwrap();
    for namespace in &mut section.namespaces {
        namespace.labels.remove(READINESS_GATE);
    }
    let namespace = section.namespaces[0].name.clone();
    let diagnosis = diagnose(&scenario_alarm(name), &world);
    let gate = Action::EnableReadinessGates {
        cluster: world.cluster_name().unwrap(),
        place: Place::Namespace {
            name: namespace.clone(),
        },
    };
    let mut policy = Policy::default();
    let default = plan(&world, &diagnosis.findings, &policy, NOW, None);
    assert!(!default.actions.contains(&gate), "an opt-in of its own");
    policy
        .allowed_actions
        .insert(ActionKind::EnableReadinessGates);
    let planned = plan(&world, &diagnosis.findings, &policy, NOW, None);
    assert!(planned.actions.contains(&gate), "{:?}", planned);
    assert_eq!(guardrails::refusal(&gate, &world, &policy), None);
    assert!(guardrails::still_needed(&gate, &world));

    let forged = |place: Place| Action::EnableReadinessGates {
        cluster: world.cluster_name().unwrap(),
        place,
    };
    let refused = |action: &Action| guardrails::refusal(action, &world, &policy).unwrap();
    assert!(refused(&forged(Place::Namespace {
        name: "kube-system".into()
    }))
    .contains("holds none of this load balancer's pods"));
    assert!(refused(&forged(Place::Service {
        namespace: namespace.clone(),
        name: "web".into()
    }))
    .contains("is not a namespace"));
    let elsewhere = Action::EnableReadinessGates {
        cluster: "other".into(),
        place: Place::Namespace {
            name: namespace.clone(),
        },
    };
    assert!(refused(&elsewhere).contains("but this load balancer's is"));
    let mut managed = world.clone();
    let tracked = &mut managed.kubernetes.as_mut().unwrap().namespaces[0];
    tracked.managed_by = Some(crate::kubernetes::Manager::ArgoCd {
        application: "platform".into(),
    });
    assert!(guardrails::refusal(&gate, &managed, &policy)
        .unwrap()
        .contains("Argo CD application platform"));
    let mut limited = policy.clone();
    limited.allowed_namespaces = Some(vec!["other".into()]);
    assert!(policy_refusal(&gate, &limited)
        .unwrap()
        .contains("ALLOWED_NAMESPACES"));

    // Applied: in place, and its rollback takes the label off again.
    let mut after = world.clone();
    after.kubernetes.as_mut().unwrap().namespaces[0]
        .labels
        .insert(READINESS_GATE.into(), "enabled".into());
    assert!(!guardrails::still_needed(&gate, &after));
    let rollback = outcome::rollback(&gate, &planned.load_balancer, None).unwrap();
    assert_eq!(
        rollback.to_string(),
        format!("kubectl label namespace {namespace} {READINESS_GATE}-")
    );
}

const READINESS_GATE: &str = crate::rollout::READINESS_GATE_LABEL;

/// A durable half goes only with its raise in the same run: refused by the cooldown, failed,
/// or missing from a forged plan, the raise's guardrails would be passed by the controller.
#[test]
fn a_durable_half_without_its_raise_is_not_applied() {
    use outcome::{Step, StepStatus};
    let service = Place::Service {
        namespace: "shop".into(),
        name: "orders".into(),
    };
    let kept = keep(service, 120);
    let raise = Action::RaiseIdleTimeout { from: 60, to: 120 };
    assert!(reconcile::keep_without_raise(&kept, &[])
        .unwrap()
        .contains("was not applied in this run"));
    for (status, alone) in [
        (StepStatus::Applied, false),
        (StepStatus::InPlace, false),
        (StepStatus::WouldApply, false),
        (StepStatus::Refused, true),
        (StepStatus::Failed, true),
    ] {
        let steps = [Step::new(&raise, status, "")];
        assert_eq!(
            reconcile::keep_without_raise(&kept, &steps).is_some(),
            alone,
            "{status:?}"
        );
    }
    // A raise to another value does not carry it.
    let other = [Step::new(
        &Action::RaiseIdleTimeout { from: 60, to: 90 },
        StepStatus::Applied,
        "",
    )];
    assert!(reconcile::keep_without_raise(&kept, &other).is_some());
    assert_eq!(reconcile::keep_without_raise(&raise, &[]), None);
}

/// A Network Load Balancer's snapshot: diagnosed without a panic, the rules built on HTTP
/// stand aside and say why, and an ALB's kind of raise is never planned or let through.
#[test]
fn a_network_load_balancer_gets_no_load_balancer_idle_timeout_raise() {
    use crate::rules::CheckStatus;
    let name = "alb-idle-timeout";
    let mut world = scenario_snapshot(name);
    world.load_balancer.kind = LbKind::Network;
    let diagnosis = diagnose(&scenario_alarm(name), &world);
    let idle = diagnosis
        .checked
        .iter()
        .find(|c| c.name == "idle timeout vs. latency")
        .expect("the idle-timeout check");
    assert_eq!(idle.status, CheckStatus::NotApplicable);
    assert!(idle.detail.contains("Network Load Balancer"), "{idle:?}");
    assert!(diagnosis
        .findings
        .iter()
        .all(|f| f.code != crate::finding::FindingCode::IdleTimeoutExceeded));
    let planned = plan(&world, &diagnosis.findings, &Policy::default(), NOW, None);
    assert!(planned.actions.is_empty(), "{planned:?}");
    let raise = Action::RaiseIdleTimeout { from: 60, to: 120 };
    assert!(guardrails::refusal(&raise, &world, &Policy::default())
        .unwrap()
        .contains("Network Load Balancer"));
}

/// The NLB idle-timeout scenario plans one listener raise, 350 s to 700 s, that passes every
/// guardrail; each forged variant of it is refused, and so is a listener raise on an ALB.
#[test]
fn an_nlb_listener_raise_is_planned_and_its_forgeries_refused() {
    let name = "nlb-idle-timeout-resets";
    let world = scenario_snapshot(name);
    let diagnosis = diagnose(&scenario_alarm(name), &world);
    let policy = Policy::default();
    let planned = plan(&world, &diagnosis.findings, &policy, NOW, None);
    let [genuine @ Action::RaiseListenerIdleTimeout {
        listener_arn,
        port: 1883,
        from: 350,
        to: 700,
    }] = planned.actions.as_slice()
    else {
        panic!("{planned:?}")
    };
    assert_eq!(guardrails::refusal(genuine, &world, &policy), None);
    let forge = |arn: &str, port: u16, to: u32| Action::RaiseListenerIdleTimeout {
        listener_arn: arn.into(),
        port,
        from: 350,
        to,
    };
    let other = listener_arn.replace("k8s-iot-mqtt-1a2b3c4d5e", "k8s-iot-other-1a2b3c4d5e");
    let app = listener_arn.replace("listener/net/", "listener/app/");
    for (why, action, expected) in [
        (
            "another NLB",
            forge(&other, 1883, 700),
            "is not a listener of",
        ),
        (
            "an ALB's listener",
            forge(&app, 1883, 700),
            "is not a listener of",
        ),
        (
            "a made-up listener",
            forge(&format!("{listener_arn}9"), 1883, 700),
            "not among",
        ),
        (
            "the wrong port",
            forge(listener_arn, 8883, 700),
            "serves port 1883",
        ),
        (
            "above the cap",
            forge(listener_arn, 1883, 2400),
            "MAX_NLB_IDLE_TIMEOUT",
        ),
        ("a lowering", forge(listener_arn, 1883, 200), "never lowers"),
    ] {
        let refused = guardrails::refusal(&action, &world, &policy).unwrap_or_default();
        assert!(refused.contains(expected), "{why}: {refused:?}");
    }
    let mut wide = policy.clone();
    wide.max_nlb_idle_timeout = 6000;
    assert!(
        guardrails::refusal(&forge(listener_arn, 1883, 7000), &world, &wide)
            .unwrap()
            .contains("6000")
    );
    let alb = scenario_snapshot("alb-idle-timeout");
    assert!(guardrails::refusal(genuine, &alb, &policy)
        .unwrap()
        .contains("only a Network Load Balancer"));
    // A listener whose attributes were not read: its current value is unknown.
    let mut unread = world.clone();
    unread.load_balancer.listeners[0].attributes = None;
    assert!(guardrails::refusal(genuine, &unread, &policy)
        .unwrap()
        .contains("could not be read"));
}

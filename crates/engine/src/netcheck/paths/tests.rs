use super::*;
use crate::netcheck::NaclRuleRef;
use crate::snapshot::{NaclEntry, Placement};
use crate::testkit::{healthy_alb, healthy_clb, scenario_snapshot};

fn drops(analysis: &NetworkAnalysis) -> Vec<(&NaclCheck, NaclRuleRef)> {
    analysis
        .nacl_checks
        .iter()
        .flat_map(|c| c.outcome.drops().map(move |d| (c, d.rule)))
        .collect()
}

#[test]
fn healthy_world_checks_every_leg_of_every_pair_and_finds_them_open() {
    let analysis = analyse(&healthy_alb());
    // 3 LB subnets x 3 target subnets, 2 forward legs + 2 reply legs each.
    assert_eq!(analysis.subnet_pairs, 9);
    assert_eq!(analysis.nacl_checks.len(), 36);
    assert!(analysis.nacl_checks.iter().all(|c| c.outcome.allowed()));
    assert_eq!(analysis.sg_checks.len(), 2);
    assert!(analysis
        .sg_checks
        .iter()
        .all(|c| matches!(c.outcome, SgOutcome::Allowed { .. })));
    assert!(analysis.unresolved.is_empty());
    assert_eq!(analysis.targets_checked, 3);
}

#[test]
fn reply_leg_dropped_by_the_implicit_deny_on_the_low_ephemeral_ports() {
    let analysis = analyse(&scenario_snapshot("nacl-ephemeral-node-subnets"));
    let drops = drops(&analysis);
    assert!(!drops.is_empty());
    for (check, rule) in &drops {
        assert_eq!(check.leg, Leg::TargetSubnetReplyEgress);
        assert_eq!(*rule, NaclRuleRef::ImplicitDeny);
        let dropped = check.outcome.drops().next().unwrap();
        assert_eq!(
            dropped.flows.ports,
            PortRange {
                from: 1024,
                to: 32767
            }
        );
    }
    // Every pair is affected: 9 reply-egress checks.
    assert_eq!(drops.len(), 9);
}

#[test]
fn explicit_deny_names_its_rule_and_only_the_denied_subnet() {
    let analysis = analyse(&scenario_snapshot("nacl-ephemeral-lb-subnets"));
    let drops = drops(&analysis);
    assert_eq!(
        drops.len(),
        3,
        "one per LB subnet, all from the third node subnet"
    );
    for (check, rule) in drops {
        assert_eq!(check.leg, Leg::LbSubnetReplyIngress);
        assert_eq!(rule, NaclRuleRef::Entry { rule_number: 90 });
        assert_eq!(check.target_subnet, "subnet-07c9d8e7f6a5b4303");
        assert_eq!(check.targets, [TargetId::from("10.0.53.9")]);
    }
}

#[test]
fn same_subnet_traffic_skips_the_nacl_except_classic_lb_outbound() {
    for (mut world, expected_legs) in [
        (healthy_alb(), vec![]),
        (healthy_clb(), vec![Leg::LbSubnetEgress]),
    ] {
        let lb_subnet = world.load_balancer.subnets[0].clone();
        world.load_balancer.subnets.truncate(1);
        for (_, target) in world
            .target_groups
            .iter_mut()
            .flat_map(|g| g.targets.iter_mut().map(|t| ((), t)))
        {
            if let Placement::Interface(interface) = &mut target.placement {
                interface.subnet_id = lb_subnet.clone();
                interface.private_ip = "10.0.0.77".into();
            }
        }
        let analysis = analyse(&world);
        let legs: Vec<Leg> = analysis.nacl_checks.iter().map(|c| c.leg).collect();
        assert_eq!(legs, expected_legs, "{:?}", world.load_balancer.kind);
    }
}

#[test]
fn classic_lb_without_cross_zone_only_pairs_its_own_zone() {
    let mut world = healthy_clb();
    assert_eq!(analyse(&world).subnet_pairs, 9);
    world.load_balancer.cross_zone = Some(false);
    let analysis = analyse(&world);
    assert_eq!(analysis.subnet_pairs, 3);
    for check in &analysis.nacl_checks {
        let zone = |id: &str| world.subnet(id).unwrap().availability_zone.clone();
        assert_eq!(zone(&check.lb_subnet), zone(&check.target_subnet));
    }
}

#[test]
fn a_separate_health_check_port_is_checked_on_its_own() {
    let mut world = healthy_clb();
    world.target_groups[0].health_check.as_mut().unwrap().port = Some("32001".into());
    let private = world
        .network_acls
        .iter_mut()
        .find(|a| a.id.starts_with("acl-0d4c"))
        .unwrap();
    private.entries.insert(
        0,
        NaclEntry {
            rule_number: 50,
            egress: false,
            protocol: "6".into(),
            rule_action: "deny".into(),
            cidr_block: Some("0.0.0.0/0".into()),
            ipv6_cidr_block: None,
            port_range: Some(PortRange::single(32001)),
        },
    );
    let analysis = analyse(&world);
    let dropped: Vec<_> = drops(&analysis);
    assert_eq!(dropped.len(), 9);
    assert!(dropped
        .iter()
        .all(|(c, _)| c.purpose == Purpose::HealthCheck && c.ports == PortRange::single(32001)));
    assert!(analysis
        .sg_checks
        .iter()
        .any(|c| c.port == 32001 && c.purpose == Purpose::HealthCheck));
}

#[test]
fn ipv6_targets_use_ipv6_cidrs_and_entries() {
    let mut world = healthy_alb();
    for subnet in &mut world.subnets {
        let third = subnet
            .cidr_ipv4
            .as_ref()
            .unwrap()
            .split('.')
            .nth(2)
            .unwrap()
            .parse::<u16>()
            .unwrap();
        subnet.cidr_ipv6 = vec![format!("2a05:d018:1:{third:x}::/64")];
    }
    for (i, target) in world.target_groups[0].targets.iter_mut().enumerate() {
        if let Placement::Interface(interface) = &mut target.placement {
            let third = [16u16, 32, 48][i];
            interface.private_ip = format!("2a05:d018:1:{third:x}::a{i}");
            target.id = interface.private_ip.clone();
        }
    }
    // The private NACL has no IPv6 entries: everything is the implicit deny.
    let analysis = analyse(&world);
    let target_side: Vec<_> = drops(&analysis)
        .into_iter()
        .filter(|(c, _)| !c.leg.on_lb_subnet())
        .collect();
    assert_eq!(target_side.len(), 18);
    assert!(target_side
        .iter()
        .all(|(c, rule)| *rule == NaclRuleRef::ImplicitDeny && c.peer_cidrs()[0].contains(':')));
    for acl in &mut world.network_acls {
        for egress in [false, true] {
            acl.entries.push(NaclEntry {
                rule_number: 200,
                egress,
                protocol: "-1".into(),
                rule_action: "allow".into(),
                cidr_block: None,
                ipv6_cidr_block: Some("::/0".into()),
                port_range: None,
            });
        }
    }
    assert!(analyse(&world)
        .nacl_checks
        .iter()
        .all(|c| c.outcome.allowed()));
}

#[test]
fn missing_nacl_and_subnet_are_unresolved_not_passed() {
    let mut world = healthy_alb();
    world.network_acls.clear();
    world.subnets.retain(|s| s.id != "subnet-07c9d8e7f6a5b4303");
    let analysis = analyse(&world);
    assert!(analysis.nacl_checks.is_empty());
    assert!(analysis
        .unresolved
        .iter()
        .any(|u| u.fact == GapFact::NetworkAcls));
    assert!(analysis
        .unresolved
        .iter()
        .any(|u| u.fact == GapFact::Subnets && u.resource == "subnet-07c9d8e7f6a5b4303"));
}

#[test]
fn stale_and_unused_targets_are_not_path_checked() {
    let world = scenario_snapshot("stale-pod-ip");
    assert_eq!(analyse(&world).targets_checked, 2);
}

#[test]
fn known_node_addresses_narrow_the_lb_side() {
    let mut world = healthy_alb();
    world.load_balancer.nodes = vec![crate::snapshot::LbNode {
        subnet_id: world.load_balancer.subnets[0].clone(),
        private_ip: "10.0.0.37".into(),
    }];
    let analysis = analyse(&world);
    let check = analysis
        .nacl_checks
        .iter()
        .find(|c| {
            c.leg == Leg::TargetSubnetIngress && c.lb_subnet == world.load_balancer.subnets[0]
        })
        .unwrap();
    assert_eq!(check.peer_cidrs(), ["10.0.0.37/32"]);
}

use proptest::prelude::*;

use super::*;

fn entry(
    rule_number: u16,
    egress: bool,
    protocol: &str,
    action: &str,
    cidr: &str,
    ports: Option<(u16, u16)>,
) -> NaclEntry {
    let ipv6 = cidr.contains(':');
    NaclEntry {
        rule_number,
        egress,
        protocol: protocol.into(),
        rule_action: action.into(),
        cidr_block: (!ipv6).then(|| cidr.to_string()),
        ipv6_cidr_block: ipv6.then(|| cidr.to_string()),
        port_range: ports.map(|(from, to)| PortRange { from, to }),
    }
}

fn acl(entries: Vec<NaclEntry>) -> NetworkAcl {
    NetworkAcl {
        id: "acl-test".into(),
        is_default: false,
        entries,
    }
}

fn flows(cidr: &str, from: u16, to: u16) -> Vec<FlowBox> {
    vec![FlowBox {
        addrs: AddrRange::parse(cidr).unwrap(),
        ports: PortRange { from, to },
    }]
}

#[test]
fn first_matching_entry_in_rule_order_decides_regardless_of_listing_order() {
    let acl = acl(vec![
        entry(200, true, "6", "allow", "10.0.0.0/16", Some((1024, 65535))),
        entry(100, true, "6", "deny", "10.0.0.0/24", Some((1024, 65535))),
    ]);
    let outcome = evaluate(
        &acl,
        Direction::Egress,
        TCP,
        &flows("10.0.0.0/24", 1024, 65535),
    );
    assert!(!outcome.allowed());
    let drop = outcome.drops().next().unwrap();
    assert_eq!(drop.rule, NaclRuleRef::Entry { rule_number: 100 });
}

#[test]
fn nothing_matching_is_the_implicit_deny_not_an_entry() {
    let acl = acl(vec![entry(
        100,
        false,
        "6",
        "allow",
        "10.0.0.0/16",
        Some((443, 443)),
    )]);
    let outcome = evaluate(
        &acl,
        Direction::Ingress,
        TCP,
        &flows("10.0.1.0/24", 8080, 8080),
    );
    let drops: Vec<_> = outcome.drops().collect();
    assert_eq!(drops.len(), 1);
    assert_eq!(drops[0].rule, NaclRuleRef::ImplicitDeny);
}

#[test]
fn listed_star_entry_32767_counts_as_implicit_deny() {
    let acl = acl(vec![entry(32767, false, "-1", "deny", "0.0.0.0/0", None)]);
    let outcome = evaluate(&acl, Direction::Ingress, TCP, &flows("10.0.1.0/24", 80, 80));
    assert_eq!(
        outcome.drops().next().unwrap().rule,
        NaclRuleRef::ImplicitDeny
    );
}

#[test]
fn partial_port_coverage_reports_the_uncovered_ports() {
    // The classic trap: only the Linux ephemeral range is allowed.
    let acl = acl(vec![entry(
        100,
        true,
        "6",
        "allow",
        "0.0.0.0/0",
        Some((32768, 65535)),
    )]);
    let outcome = evaluate(
        &acl,
        Direction::Egress,
        TCP,
        &flows("10.0.0.0/24", 1024, 65535),
    );
    assert!(!outcome.allowed());
    let drop = outcome.drops().next().unwrap();
    assert_eq!(drop.rule, NaclRuleRef::ImplicitDeny);
    assert_eq!(
        drop.flows.ports,
        PortRange {
            from: 1024,
            to: 32767
        }
    );
    assert_eq!(outcome.allowing_rules(), vec![100]);
}

#[test]
fn partial_address_coverage_reports_the_uncovered_block() {
    let acl = acl(vec![entry(100, false, "-1", "allow", "10.0.0.0/25", None)]);
    let outcome = evaluate(&acl, Direction::Ingress, TCP, &flows("10.0.0.0/24", 80, 80));
    let drop = outcome.drops().next().unwrap();
    assert_eq!(drop.flows.addrs.to_cidrs(), ["10.0.0.128/25"]);
}

#[test]
fn protocols_all_tcp_udp_and_numbers() {
    let cases = [
        ("-1", true),
        ("6", true),
        ("tcp", true),
        ("17", false),
        ("udp", false),
        ("1", false),
        ("50", false),
    ];
    for (protocol, expected) in cases {
        let acl = acl(vec![entry(
            100,
            false,
            protocol,
            "allow",
            "0.0.0.0/0",
            Some((80, 80)),
        )]);
        let outcome = evaluate(&acl, Direction::Ingress, TCP, &flows("10.0.0.1/32", 80, 80));
        assert_eq!(outcome.allowed(), expected, "protocol {protocol}");
    }
    // All-protocol entries ignore their port range.
    let acl = acl(vec![entry(
        100,
        false,
        "-1",
        "allow",
        "0.0.0.0/0",
        Some((1, 2)),
    )]);
    assert!(evaluate(
        &acl,
        Direction::Ingress,
        TCP,
        &flows("10.0.0.1/32", 8080, 8080)
    )
    .allowed());
}

#[test]
fn ipv4_entries_do_not_apply_to_ipv6_flows_and_back() {
    let acl = acl(vec![
        entry(100, false, "-1", "allow", "0.0.0.0/0", None),
        entry(110, false, "-1", "deny", "::/0", None),
    ]);
    assert!(evaluate(&acl, Direction::Ingress, TCP, &flows("10.0.0.0/24", 80, 80)).allowed());
    let v6 = evaluate(
        &acl,
        Direction::Ingress,
        TCP,
        &flows("2001:db8:1::/64", 80, 80),
    );
    assert_eq!(
        v6.drops().next().unwrap().rule,
        NaclRuleRef::Entry { rule_number: 110 }
    );
}

#[test]
fn direction_is_respected() {
    let acl = acl(vec![entry(100, true, "-1", "allow", "0.0.0.0/0", None)]);
    assert!(evaluate(&acl, Direction::Egress, TCP, &flows("10.0.0.0/24", 80, 80)).allowed());
    assert!(!evaluate(&acl, Direction::Ingress, TCP, &flows("10.0.0.0/24", 80, 80)).allowed());
}

#[test]
fn unreadable_entries_are_reported_and_skipped() {
    let acl = acl(vec![
        entry(90, false, "6", "allow", "not-a-cidr", Some((80, 80))),
        entry(95, false, "6", "maybe", "0.0.0.0/0", Some((80, 80))),
        entry(100, false, "6", "allow", "0.0.0.0/0", Some((80, 80))),
    ]);
    let outcome = evaluate(&acl, Direction::Ingress, TCP, &flows("10.0.0.1/32", 80, 80));
    assert!(outcome.allowed());
    assert_eq!(outcome.unreadable_entries, vec![90, 95]);
}

#[test]
fn rule_number_goes_below_the_explicit_deny_or_in_a_conventional_slot() {
    let flows = flows("10.0.0.0/24", 1024, 65535);
    let with_deny = acl(vec![
        entry(50, true, "6", "deny", "0.0.0.0/0", Some((1024, 65535))),
        entry(49, true, "6", "allow", "192.168.0.0/16", None),
        entry(100, true, "-1", "allow", "0.0.0.0/0", None),
    ]);
    let without = rule_number_for_allow(&with_deny, Direction::Egress, TCP, &flows, false);
    assert!(
        without
            .as_ref()
            .is_err_and(|e| e.to_string().contains("explicit deny rule 50")),
        "{without:?}"
    );
    assert_eq!(
        rule_number_for_allow(&with_deny, Direction::Egress, TCP, &flows, true),
        Ok((48, Some(50)))
    );
    let implicit_only = acl(vec![entry(
        100,
        true,
        "6",
        "allow",
        "0.0.0.0/0",
        Some((443, 443)),
    )]);
    for override_deny in [false, true] {
        assert_eq!(
            rule_number_for_allow(
                &implicit_only,
                Direction::Egress,
                TCP,
                &flows,
                override_deny
            ),
            Ok((110, None))
        );
    }
    let full_below = acl((1..=5)
        .map(|n| entry(n, true, "6", "deny", "0.0.0.0/0", Some((1024, 65535))))
        .collect());
    assert!(rule_number_for_allow(&full_below, Direction::Egress, TCP, &flows, true).is_err());
}

/// The reproduced defect: an unrelated deny (3389) in front of an implicit-deny drop. The
/// allow goes after it, so the deny keeps deciding port 3389, and never in front of it.
#[test]
fn an_allow_goes_after_an_overlapping_deny_that_the_implicit_deny_drop_shares() {
    let flows = flows("10.0.0.0/24", 1024, 65535);
    for (deny, expected) in [(50, 100), (200, 210), (32765, 32766)] {
        let table = acl(vec![
            entry(deny, true, "6", "deny", "0.0.0.0/0", Some((3389, 3389))),
            entry(32767, true, "-1", "deny", "0.0.0.0/0", None),
        ]);
        for override_deny in [false, true] {
            let (number, in_front) =
                rule_number_for_allow(&table, Direction::Egress, TCP, &flows, override_deny)
                    .unwrap();
            if override_deny && deny < 100 {
                // With the override the engine still prefers to keep the deny deciding.
                assert_eq!((number, in_front), (expected, None));
            } else {
                assert_eq!((number, in_front), (expected, None), "deny {deny}");
            }
            assert!(
                check_allow_number(&table, Direction::Egress, TCP, &flows, number, false).is_ok()
            );
        }
        // In front of the deny: refused without the override, accepted with it only below
        // the entry that decides (the deny itself decides 3389).
        let reason = check_allow_number(&table, Direction::Egress, TCP, &flows, deny - 1, false)
            .unwrap_err()
            .to_string();
        assert!(reason.contains("OVERRIDE_EXPLICIT_DENY"), "{reason}");
        assert!(check_allow_number(&table, Direction::Egress, TCP, &flows, deny - 1, true).is_ok());
    }
    // No number after the deny: refused with the reason.
    let table = acl(vec![entry(
        32766,
        true,
        "6",
        "deny",
        "0.0.0.0/0",
        Some((3389, 3389)),
    )]);
    let error = rule_number_for_allow(&table, Direction::Egress, TCP, &flows, false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("32766"), "{error}");
}

fn arb_entry() -> impl Strategy<Value = NaclEntry> {
    (
        1u16..200,
        any::<bool>(),
        prop_oneof![Just("-1"), Just("6"), Just("17")],
        prop_oneof![Just("allow"), Just("deny")],
        (0u8..4, 0u8..=32),
        (0u16..=65535, 0u16..=65535),
    )
        .prop_map(|(n, egress, protocol, action, (octet, prefix), (a, b))| {
            let cidr = format!("10.{octet}.0.0/{}", prefix.max(8));
            let cidr = cidr
                .parse::<ipnet::IpNet>()
                .map(|n| n.trunc().to_string())
                .unwrap_or(cidr);
            entry(
                n,
                egress,
                protocol,
                action,
                &cidr,
                Some((a.min(b), a.max(b))),
            )
        })
}

fn arb_flows() -> impl Strategy<Value = Vec<FlowBox>> {
    (0u8..4, 16u8..=32, 0u16..=65535, 0u16..=65535).prop_map(|(octet, prefix, a, b)| {
        let net: ipnet::IpNet = format!("10.{octet}.0.0/{prefix}").parse().unwrap();
        vec![FlowBox {
            addrs: AddrRange::from_net(&net),
            ports: PortRange {
                from: a.min(b),
                to: a.max(b),
            },
        }]
    })
}

/// Total number of (address, port) pairs in a set of boxes, for conservation checks.
fn volume(boxes: impl Iterator<Item = FlowBox>) -> u128 {
    boxes
        .map(|b| (b.addrs.end - b.addrs.start + 1) * u128::from(b.ports.to - b.ports.from + 1))
        .sum()
}

proptest! {
    #[test]
    fn an_allow_numbered_below_every_other_entry_admits_the_flow(
        entries in proptest::collection::vec(arb_entry(), 0..30),
        flows in arb_flows(),
        egress in any::<bool>(),
    ) {
        let mut acl = acl(entries.into_iter().map(|mut e| { e.rule_number += 1; e }).collect());
        let direction = if egress { Direction::Egress } else { Direction::Ingress };
        let block = flows[0];
        acl.entries.push(NaclEntry {
            rule_number: 1, egress, protocol: "6".into(), rule_action: "allow".into(),
            cidr_block: Some(block.addrs.to_cidrs()[0].clone()), ipv6_cidr_block: None,
            port_range: Some(block.ports),
        });
        // Only a box that is exactly one CIDR is expressible as one entry.
        prop_assume!(block.addrs.to_cidrs().len() == 1);
        prop_assert!(evaluate(&acl, direction, TCP, &flows).allowed());
    }

    #[test]
    fn evaluation_does_not_depend_on_listing_order(
        entries in proptest::collection::vec(arb_entry(), 0..30),
        flows in arb_flows(),
        seed in any::<u64>(),
    ) {
        // Rule numbers are unique per direction in AWS.
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<_> = entries.into_iter().filter(|e| seen.insert((e.egress, e.rule_number))).collect();
        let mut shuffled = entries.clone();
        let len = shuffled.len();
        if len > 1 {
            for i in 0..len { shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % len); }
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            let a = evaluate(&acl(entries.clone()), direction, TCP, &flows);
            let b = evaluate(&acl(shuffled.clone()), direction, TCP, &flows);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn every_flow_is_decided_exactly_once(
        entries in proptest::collection::vec(arb_entry(), 0..30),
        flows in arb_flows(),
    ) {
        let outcome = evaluate(&acl(entries), Direction::Ingress, TCP, &flows);
        prop_assert_eq!(volume(outcome.decisions.iter().map(|d| d.flows)), volume(flows.into_iter()));
    }

    #[test]
    fn the_chosen_rule_number_fixes_what_it_may_and_keeps_every_deny(
        entries in proptest::collection::vec(arb_entry(), 0..30),
        flows in arb_flows(),
        override_deny in any::<bool>(),
    ) {
        let block = flows[0];
        prop_assume!(block.addrs.to_cidrs().len() == 1);
        let mut acl = acl(entries);
        let before = evaluate(&acl, Direction::Egress, TCP, &flows);
        if let Ok((n, in_front)) = rule_number_for_allow(&acl, Direction::Egress, TCP, &flows, override_deny) {
            prop_assert!(!acl.entries.iter().any(|e| e.egress && e.rule_number == n));
            prop_assert!(check_allow_number(&acl, Direction::Egress, TCP, &flows, n, override_deny).is_ok());
            let denies = overlapping_denies(&acl, Direction::Egress, TCP, &flows);
            acl.entries.push(NaclEntry {
                rule_number: n, egress: true, protocol: "6".into(), rule_action: "allow".into(),
                cidr_block: Some(block.addrs.to_cidrs()[0].clone()), ipv6_cidr_block: None,
                port_range: Some(block.ports),
            });
            let after = evaluate(&acl, Direction::Egress, TCP, &flows);
            match in_front {
                // In front of a deny (override only): everything is allowed now.
                Some(_) => {
                    prop_assert!(override_deny);
                    prop_assert!(after.allowed());
                }
                // Behind every overlapping deny: the implicit deny drops nothing any more,
                // and every explicit deny still decides exactly what it decided.
                None => {
                    prop_assert!(denies.iter().all(|d| *d < n));
                    prop_assert!(after.drops().all(|d| d.rule != NaclRuleRef::ImplicitDeny));
                    let explicit = |o: &NaclOutcome| volume(o.drops().filter(|d| d.rule != NaclRuleRef::ImplicitDeny).map(|d| d.flows));
                    prop_assert_eq!(explicit(&before), explicit(&after));
                }
            }
        }
    }
}

//! Security group evaluation: allow-only and stateful (replies always pass), the union of all
//! groups on an interface, a peer matched by group reference, CIDR or prefix list. A prefix
//! list that cannot be resolved makes the verdict unknown, never a silent pass.

use serde::Serialize;

use super::addr::{merge_ranges, AddrRange};
use super::nacl::Direction;
use crate::snapshot::{SgRule, Snapshot};

/// Who is on the other side of the connection.
#[derive(Debug, Clone)]
pub struct SgPeer<'a> {
    /// Security groups the peer's interfaces carry.
    pub groups: &'a [String],
    /// Every address the peer may use (all of one family).
    pub addrs: Vec<AddrRange>,
}

/// The rule that admitted the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SgAllow {
    pub group_id: String,
    /// What matched: `sg-...`, a CIDR, or a prefix list id.
    pub via: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum SgOutcome {
    /// Allowed; the rules that admitted it (one per address part when CIDRs combine).
    Allowed { by: Vec<SgAllow> },
    /// No rule of any of the groups admits (all of) the flow.
    Denied {
        /// The peer addresses left uncovered, as CIDRs, when CIDR rules covered only part.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        uncovered: Vec<String>,
    },
    /// Cannot tell: groups or prefix lists that could not be observed.
    Unknown { missing: Vec<String> },
}

impl SgOutcome {
    pub fn is_denied(&self) -> bool {
        matches!(self, Self::Denied { .. })
    }
}

pub(crate) fn protocol_allows_tcp_port(rule: &SgRule, port: u16) -> bool {
    match rule.ip_protocol.trim().to_ascii_lowercase().as_str() {
        "-1" | "all" => true,
        "tcp" | "6" => {
            let from = rule.from_port.unwrap_or(0);
            let to = rule.to_port.unwrap_or(65535);
            // -1 in both means all ports for some tools' output.
            (from == -1 && to == -1) || (from <= i32::from(port) && i32::from(port) <= to)
        }
        _ => false,
    }
}

/// Does the union of `group_ids` allow TCP `port` in `direction` with `peer`?
pub fn evaluate(
    snapshot: &Snapshot,
    group_ids: &[String],
    direction: Direction,
    port: u16,
    peer: &SgPeer<'_>,
) -> SgOutcome {
    let mut missing = Vec::new();
    let mut remaining = merge_ranges(peer.addrs.clone());
    let mut by = Vec::new();
    for group_id in group_ids {
        let Some(group) = snapshot.security_group(group_id) else {
            missing.push(group_id.clone());
            continue;
        };
        let rules = match direction {
            Direction::Ingress => &group.ingress,
            Direction::Egress => &group.egress,
        };
        for rule in rules.iter().filter(|r| protocol_allows_tcp_port(r, port)) {
            if let Some(reference) = rule
                .security_groups
                .iter()
                .find(|g| peer.groups.contains(g))
            {
                return SgOutcome::Allowed {
                    by: vec![SgAllow {
                        group_id: group.id.clone(),
                        via: reference.clone(),
                    }],
                };
            }
            let mut cidrs: Vec<(String, AddrRange)> = rule
                .ipv4_ranges
                .iter()
                .chain(&rule.ipv6_ranges)
                .filter_map(|c| AddrRange::parse(c).map(|r| (c.clone(), r)))
                .collect();
            for list_id in &rule.prefix_list_ids {
                match snapshot.prefix_list(list_id) {
                    Some(list) => cidrs.extend(
                        list.cidrs
                            .iter()
                            .filter_map(|c| AddrRange::parse(c))
                            .map(|r| (list_id.clone(), r)),
                    ),
                    None => missing.push(list_id.clone()),
                }
            }
            for (label, range) in cidrs {
                let covered_any = remaining.iter().any(|r| r.intersect(&range).is_some());
                remaining = remaining.iter().flat_map(|r| r.minus(&range)).collect();
                if covered_any {
                    by.push(SgAllow {
                        group_id: group.id.clone(),
                        via: label,
                    });
                }
            }
            if remaining.is_empty() && !peer.addrs.is_empty() {
                return SgOutcome::Allowed { by };
            }
        }
    }
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        return SgOutcome::Unknown { missing };
    }
    let uncovered = if by.is_empty() {
        Vec::new()
    } else {
        remaining.iter().flat_map(AddrRange::to_cidrs).collect()
    };
    SgOutcome::Denied { uncovered }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{PrefixList, SecurityGroup};

    fn rule(protocol: &str, from: i32, to: i32) -> SgRule {
        SgRule {
            ip_protocol: protocol.into(),
            from_port: Some(from),
            to_port: Some(to),
            ipv4_ranges: vec![],
            ipv6_ranges: vec![],
            prefix_list_ids: vec![],
            security_groups: vec![],
            description: None,
        }
    }

    fn group(id: &str, ingress: Vec<SgRule>) -> SecurityGroup {
        SecurityGroup {
            id: id.into(),
            name: id.into(),
            vpc_id: None,
            tags: Default::default(),
            ingress,
            egress: vec![],
        }
    }

    fn snapshot(groups: Vec<SecurityGroup>) -> Snapshot {
        let mut snapshot: Snapshot = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "region": "eu-west-1",
            "load_balancer": {"kind": "application", "name": "x", "id": "app/x/1", "vpc_id": "vpc-1", "subnets": []}
        }))
        .unwrap();
        snapshot.security_groups = groups;
        snapshot
    }

    fn lb_peer(groups: &[String]) -> SgPeer<'_> {
        SgPeer {
            groups,
            addrs: vec![
                AddrRange::parse("10.0.0.0/24").unwrap(),
                AddrRange::parse("10.0.1.0/24").unwrap(),
            ],
        }
    }

    #[test]
    fn group_reference_admits_the_lb() {
        let mut r = rule("tcp", 8080, 8080);
        r.security_groups = vec!["sg-lb".into()];
        let s = snapshot(vec![group("sg-node", vec![r])]);
        let lb = ["sg-lb".to_string()];
        let outcome = evaluate(
            &s,
            &["sg-node".into()],
            Direction::Ingress,
            8080,
            &lb_peer(&lb),
        );
        assert!(matches!(outcome, SgOutcome::Allowed { .. }), "{outcome:?}");
        let other_port = evaluate(
            &s,
            &["sg-node".into()],
            Direction::Ingress,
            9090,
            &lb_peer(&lb),
        );
        assert!(other_port.is_denied());
    }

    #[test]
    fn union_of_groups_and_cidrs_combine() {
        let mut a = rule("tcp", 8000, 9000);
        a.ipv4_ranges = vec!["10.0.0.0/24".into()];
        let mut b = rule("-1", -1, -1);
        b.ipv4_ranges = vec!["10.0.1.0/24".into()];
        let s = snapshot(vec![group("sg-a", vec![a]), group("sg-b", vec![b])]);
        let lb = ["sg-lb".to_string()];
        let both = evaluate(
            &s,
            &["sg-a".into(), "sg-b".into()],
            Direction::Ingress,
            8080,
            &lb_peer(&lb),
        );
        assert!(
            matches!(both, SgOutcome::Allowed { ref by } if by.len() == 2),
            "{both:?}"
        );
        let only_a = evaluate(
            &s,
            &["sg-a".into()],
            Direction::Ingress,
            8080,
            &lb_peer(&lb),
        );
        assert_eq!(
            only_a,
            SgOutcome::Denied {
                uncovered: vec!["10.0.1.0/24".into()]
            }
        );
    }

    #[test]
    fn udp_and_icmp_rules_do_not_admit_tcp() {
        let mut u = rule("udp", 0, 65535);
        u.security_groups = vec!["sg-lb".into()];
        let mut i = rule("icmp", -1, -1);
        i.security_groups = vec!["sg-lb".into()];
        let s = snapshot(vec![group("sg-node", vec![u, i])]);
        let lb = ["sg-lb".to_string()];
        assert!(evaluate(
            &s,
            &["sg-node".into()],
            Direction::Ingress,
            80,
            &lb_peer(&lb)
        )
        .is_denied());
    }

    #[test]
    fn unresolved_prefix_list_is_unknown_resolved_one_is_used() {
        let mut r = rule("tcp", 80, 80);
        r.prefix_list_ids = vec!["pl-123".into()];
        let mut s = snapshot(vec![group("sg-node", vec![r])]);
        let lb = ["sg-lb".to_string()];
        let unknown = evaluate(
            &s,
            &["sg-node".into()],
            Direction::Ingress,
            80,
            &lb_peer(&lb),
        );
        assert_eq!(
            unknown,
            SgOutcome::Unknown {
                missing: vec!["pl-123".into()]
            }
        );
        s.prefix_lists.push(PrefixList {
            id: "pl-123".into(),
            cidrs: vec!["10.0.0.0/16".into()],
        });
        assert!(matches!(
            evaluate(
                &s,
                &["sg-node".into()],
                Direction::Ingress,
                80,
                &lb_peer(&lb)
            ),
            SgOutcome::Allowed { .. }
        ));
    }

    #[test]
    fn unobserved_group_is_unknown() {
        let s = snapshot(vec![]);
        let lb = ["sg-lb".to_string()];
        let outcome = evaluate(
            &s,
            &["sg-gone".into()],
            Direction::Ingress,
            80,
            &lb_peer(&lb),
        );
        assert_eq!(
            outcome,
            SgOutcome::Unknown {
                missing: vec!["sg-gone".into()]
            }
        );
    }
}

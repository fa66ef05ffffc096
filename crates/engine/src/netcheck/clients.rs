//! A load balancer's clients as address ranges, per family: who a target sees when an NLB
//! preserves the client's address, and who a dual-stack load balancer's subnets answer.
//!
//! Clients of an internet-facing load balancer come from outside the VPC; those of an internal
//! one from the VPC, outside the load balancer's own subnets. A rule that admits only some of
//! them (an allow-list of partners, a block-list) is a choice, not a fault: the rules call a
//! path broken only when it admits no client at all.

use super::addr::{merge_ranges, AddrRange, Family};
use crate::snapshot::Snapshot;

/// The clients of one family, and how a report names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clients {
    pub family: Family,
    pub ranges: Vec<AddrRange>,
    /// `clients outside the VPC (internet-facing)`, ...
    pub described: String,
}

/// Every address of a family.
fn everything(family: Family) -> AddrRange {
    AddrRange {
        family,
        start: 0,
        end: match family {
            Family::Ipv4 => u128::from(u32::MAX),
            Family::Ipv6 => u128::MAX,
        },
    }
}

fn ranges_of<'a>(cidrs: impl Iterator<Item = &'a String>, family: Family) -> Vec<AddrRange> {
    cidrs
        .filter_map(|c| AddrRange::parse(c))
        .filter(|r| r.family == family)
        .collect()
}

/// `ranges` without any address of `cut`.
fn without(ranges: Vec<AddrRange>, cut: &[AddrRange]) -> Vec<AddrRange> {
    let mut left = merge_ranges(ranges);
    for c in cut {
        left = left.iter().flat_map(|r| r.minus(c)).collect();
    }
    merge_ranges(left)
}

/// The load balancer's clients of `family`; empty when it has none of that family (an
/// internal load balancer in a VPC without IPv6, say).
pub fn of(snapshot: &Snapshot, family: Family) -> Clients {
    let lb = &snapshot.load_balancer;
    let vpc = ranges_of(lb.vpc_cidrs.iter(), family);
    let internet_facing = !lb.is_internal();
    let family_name = family.name();
    if internet_facing {
        return Clients {
            family,
            ranges: without(vec![everything(family)], &vpc),
            described: format!(
                "{family_name} clients outside the VPC (the load balancer is internet-facing)"
            ),
        };
    }
    let lb_subnets: Vec<AddrRange> = lb
        .subnets
        .iter()
        .filter_map(|id| snapshot.subnet(id))
        .flat_map(|s| ranges_of(s.cidr_ipv4.iter().chain(&s.cidr_ipv6), family))
        .collect();
    Clients {
        family,
        ranges: without(vpc, &lb_subnets),
        described: format!(
            "{family_name} clients in the VPC outside the load balancer's subnets (the load balancer is internal)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(scheme: &str) -> Snapshot {
        serde_json::from_value(serde_json::json!({
            "schema_version": 2, "region": "eu-west-1",
            "load_balancer": {"kind": "network", "name": "n", "id": "net/n/0123456789abcdef",
                "scheme": scheme, "vpc_id": "vpc-1", "vpc_cidrs": ["10.0.0.0/16", "2600:1f18:1::/56"],
                "subnets": ["subnet-a"]},
            "subnets": [{"id": "subnet-a", "cidr_ipv4": "10.0.0.0/24", "cidr_ipv6": ["2600:1f18:1:1::/64"]}]
        }))
        .unwrap()
    }

    fn contains(clients: &Clients, ip: &str) -> bool {
        let probe = AddrRange::parse(ip).unwrap();
        clients.ranges.iter().any(|r| r.contains(&probe))
    }

    #[test]
    fn internet_clients_are_everyone_outside_the_vpc() {
        let s = snapshot("internet-facing");
        let v4 = of(&s, Family::Ipv4);
        assert!(contains(&v4, "198.51.100.7"));
        assert!(!contains(&v4, "10.0.200.1"));
        let v6 = of(&s, Family::Ipv6);
        assert!(contains(&v6, "2001:db8::1"));
        assert!(!contains(&v6, "2600:1f18:1:5::1"));
    }

    #[test]
    fn internal_clients_are_the_vpc_outside_the_lb_subnets() {
        let s = snapshot("internal");
        let v4 = of(&s, Family::Ipv4);
        assert!(contains(&v4, "10.0.200.1"));
        assert!(!contains(&v4, "10.0.0.9"), "the LB's own subnet");
        assert!(!contains(&v4, "198.51.100.7"));
        let v6 = of(&s, Family::Ipv6);
        assert!(contains(&v6, "2600:1f18:1:5::1"));
        assert!(!contains(&v6, "2600:1f18:1:1::9"));
    }
}

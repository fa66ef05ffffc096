//! Address ranges and (address x port) boxes: the sets of flows the evaluators reason about.
//! A NACL entry may cover part of a subnet or part of the ephemeral range, so verdicts are
//! computed on sets, not on one sample flow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use serde::Serialize;

use crate::snapshot::PortRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        }
    }

    /// The families a finding names, where naming them says something: an IPv6 path, or a
    /// dual-stack load balancer; `None` in a VPC of one family.
    pub fn named(v4: bool, v6: bool, dual_stack: bool) -> Option<&'static str> {
        match (v4, v6, dual_stack) {
            (true, true, _) => Some("IPv4 and IPv6"),
            (false, true, _) => Some("IPv6"),
            (true, false, true) => Some("IPv4"),
            _ => None,
        }
    }
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrRange {
    pub family: Family,
    pub start: u128,
    pub end: u128,
}

impl AddrRange {
    pub fn from_net(net: &IpNet) -> Self {
        match net.trunc() {
            IpNet::V4(v4) => Self {
                family: Family::Ipv4,
                start: u128::from(u32::from(v4.network())),
                end: u128::from(u32::from(v4.broadcast())),
            },
            IpNet::V6(v6) => Self {
                family: Family::Ipv6,
                start: u128::from(v6.network()),
                end: u128::from(v6.broadcast()),
            },
        }
    }

    pub fn from_ip(ip: IpAddr) -> Self {
        let (family, value) = match ip {
            IpAddr::V4(v4) => (Family::Ipv4, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (Family::Ipv6, u128::from(v6)),
        };
        Self {
            family,
            start: value,
            end: value,
        }
    }

    /// Parses `10.0.0.0/24`, `2001:db8::/56`, or a bare address; `None` if malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Some(Self::from_net(&net));
        }
        text.parse::<IpAddr>().ok().map(Self::from_ip)
    }

    pub fn intersect(&self, other: &Self) -> Option<Self> {
        if self.family != other.family {
            return None;
        }
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start <= end).then_some(Self {
            family: self.family,
            start,
            end,
        })
    }

    pub fn contains(&self, other: &Self) -> bool {
        self.family == other.family && self.start <= other.start && other.end <= self.end
    }

    /// The parts of `self` outside `cut` (zero, one or two ranges).
    pub fn minus(&self, cut: &Self) -> Vec<Self> {
        let Some(overlap) = self.intersect(cut) else {
            return vec![*self];
        };
        let mut parts = Vec::with_capacity(2);
        if self.start < overlap.start {
            parts.push(Self {
                end: overlap.start - 1,
                ..*self
            });
        }
        if overlap.end < self.end {
            parts.push(Self {
                start: overlap.end + 1,
                ..*self
            });
        }
        parts
    }

    /// The smallest list of CIDR blocks that exactly covers the range, for display.
    pub fn to_cidrs(&self) -> Vec<String> {
        match self.family {
            Family::Ipv4 => {
                let start = Ipv4Addr::from(self.start as u32);
                let end = Ipv4Addr::from(self.end as u32);
                Ipv4Subnets::new(start, end, 0)
                    .map(|n: Ipv4Net| n.to_string())
                    .collect()
            }
            Family::Ipv6 => {
                let start = Ipv6Addr::from(self.start);
                let end = Ipv6Addr::from(self.end);
                Ipv6Subnets::new(start, end, 0)
                    .map(|n: Ipv6Net| n.to_string())
                    .collect()
            }
        }
    }
}

/// A set of flows: every address of `addrs` on every port of `ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowBox {
    pub addrs: AddrRange,
    pub ports: PortRange,
}

impl FlowBox {
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        let addrs = self.addrs.intersect(&other.addrs)?;
        let from = self.ports.from.max(other.ports.from);
        let to = self.ports.to.min(other.ports.to);
        (from <= to).then_some(Self {
            addrs,
            ports: PortRange { from, to },
        })
    }

    /// The parts of `self` outside `cut`: up to two address slices at full ports, plus up to
    /// two port slices of the overlapping addresses.
    pub fn minus(&self, cut: &Self) -> Vec<Self> {
        let Some(overlap) = self.intersect(cut) else {
            return vec![*self];
        };
        let mut parts: Vec<Self> = self
            .addrs
            .minus(&overlap.addrs)
            .into_iter()
            .map(|addrs| Self {
                addrs,
                ports: self.ports,
            })
            .collect();
        if self.ports.from < overlap.ports.from {
            parts.push(Self {
                addrs: overlap.addrs,
                ports: PortRange {
                    from: self.ports.from,
                    to: overlap.ports.from - 1,
                },
            });
        }
        if overlap.ports.to < self.ports.to {
            parts.push(Self {
                addrs: overlap.addrs,
                ports: PortRange {
                    from: overlap.ports.to + 1,
                    to: self.ports.to,
                },
            });
        }
        parts
    }
}

/// Merges adjacent or overlapping ranges so that sets stay small and display stays short.
pub fn merge_ranges(mut ranges: Vec<AddrRange>) -> Vec<AddrRange> {
    ranges.sort();
    let mut merged: Vec<AddrRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last)
                if last.family == range.family && range.start <= last.end.saturating_add(1) =>
            {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> AddrRange {
        AddrRange::parse(text).unwrap()
    }

    #[test]
    fn minus_splits_around_the_cut() {
        let parts = range("10.0.0.0/24").minus(&range("10.0.0.64/26"));
        let cidrs: Vec<String> = parts.iter().flat_map(AddrRange::to_cidrs).collect();
        assert_eq!(cidrs, ["10.0.0.0/26", "10.0.0.128/25"]);
        assert!(range("10.0.0.0/24").minus(&range("10.0.0.0/16")).is_empty());
        assert_eq!(range("10.0.0.0/24").minus(&range("2001:db8::/32")).len(), 1);
    }

    #[test]
    fn flow_box_minus_keeps_ports_outside_the_cut() {
        let flows = FlowBox {
            addrs: range("10.0.1.0/24"),
            ports: PortRange::EPHEMERAL,
        };
        let cut = FlowBox {
            addrs: range("10.0.0.0/16"),
            ports: PortRange {
                from: 32768,
                to: 65535,
            },
        };
        let rest = flows.minus(&cut);
        assert_eq!(
            rest,
            vec![FlowBox {
                addrs: range("10.0.1.0/24"),
                ports: PortRange {
                    from: 1024,
                    to: 32767
                }
            }]
        );
    }

    #[test]
    fn merge_joins_adjacent_addresses() {
        let merged = merge_ranges(vec![
            range("10.0.0.1"),
            range("10.0.0.3"),
            range("10.0.0.2"),
            range("::1"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].to_cidrs(), ["10.0.0.1/32", "10.0.0.2/31"]);
    }
}

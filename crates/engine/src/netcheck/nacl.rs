//! Network ACL evaluation exactly as the VPC evaluates it: the entries of one direction in
//! ascending rule number, the first entry matching protocol, CIDR and port decides, and the
//! implicit `*` entry denies whatever none matched. Evaluated over a *set* of flows, so that
//! an entry covering only part of the ephemeral range or part of a subnet is caught.

use serde::Serialize;

use super::addr::{Family, FlowBox};
use super::AddrRange;
use crate::snapshot::{NaclEntry, NetworkAcl, PortRange};

/// TCP: the only protocol load balancers use towards targets.
pub const TCP: u8 = 6;

/// AWS lists the implicit deny as an entry with this number (`*` in the console).
pub const IMPLICIT_DENY_RULE_NUMBER: u16 = 32767;

/// Highest rule number a user may create.
pub const MAX_RULE_NUMBER: u16 = 32766;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn is_egress(self) -> bool {
        self == Self::Egress
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// Which entry decided: an explicit one (someone wrote it) or the implicit deny.
/// Remediation treats them differently, so they are never conflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NaclRuleRef {
    Entry { rule_number: u16 },
    ImplicitDeny,
}

impl std::fmt::Display for NaclRuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entry { rule_number } => write!(f, "rule {rule_number}"),
            Self::ImplicitDeny => write!(f, "the implicit deny (*)"),
        }
    }
}

/// The verdict on one part of the flow set.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub rule: NaclRuleRef,
    pub allow: bool,
    pub flows: FlowBox,
}

/// The verdict on a whole flow set: which entries decided which parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NaclOutcome {
    pub decisions: Vec<Decision>,
    /// Entries that could not be read (bad CIDR, unknown action) and were skipped.
    pub unreadable_entries: Vec<u16>,
}

impl NaclOutcome {
    pub fn allowed(&self) -> bool {
        self.decisions.iter().all(|d| d.allow)
    }

    /// The dropping decisions, in evaluation order.
    pub fn drops(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.allow)
    }

    /// Rule numbers of the explicit entries that allowed some part of the flows.
    pub fn allowing_rules(&self) -> Vec<u16> {
        let mut numbers: Vec<u16> = self
            .decisions
            .iter()
            .filter(|d| d.allow)
            .filter_map(|d| match d.rule {
                NaclRuleRef::Entry { rule_number } => Some(rule_number),
                NaclRuleRef::ImplicitDeny => None,
            })
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }
}

/// How one entry reads for a given protocol and address family.
enum EntryMatch {
    /// The entry applies to these flows (address block x port range).
    Applies(FlowBox, bool),
    /// Another protocol or family: the entry is not consulted for these flows.
    NotApplicable,
    /// Malformed: reported, then skipped.
    Unreadable,
}

fn protocol_number(text: &str) -> Option<i16> {
    match text.trim().to_ascii_lowercase().as_str() {
        "-1" | "all" => Some(-1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" | "58" => Some(58),
        other => other.parse().ok(),
    }
}

fn read_entry(entry: &NaclEntry, protocol: u8, family: Family) -> EntryMatch {
    let allow = match entry.rule_action.trim().to_ascii_lowercase().as_str() {
        "allow" => true,
        "deny" => false,
        _ => return EntryMatch::Unreadable,
    };
    let Some(entry_protocol) = protocol_number(&entry.protocol) else {
        return EntryMatch::Unreadable;
    };
    let cidr = match family {
        Family::Ipv4 => entry.cidr_block.as_deref(),
        Family::Ipv6 => entry.ipv6_cidr_block.as_deref(),
    };
    let Some(cidr) = cidr else {
        return EntryMatch::NotApplicable;
    };
    let Some(addrs) = AddrRange::parse(cidr).filter(|r| r.family == family) else {
        return EntryMatch::Unreadable;
    };
    let ports = if entry_protocol == -1 {
        PortRange::ALL
    } else if entry_protocol == i16::from(protocol) {
        match entry.port_range {
            Some(range) if range.from > range.to => return EntryMatch::Unreadable,
            Some(range) => range,
            None => PortRange::ALL,
        }
    } else {
        return EntryMatch::NotApplicable;
    };
    EntryMatch::Applies(FlowBox { addrs, ports }, allow)
}

/// Evaluates `flows` (all of one family) against the `direction` entries of `acl`.
pub fn evaluate(
    acl: &NetworkAcl,
    direction: Direction,
    protocol: u8,
    flows: &[FlowBox],
) -> NaclOutcome {
    let mut entries: Vec<&NaclEntry> = acl
        .entries
        .iter()
        .filter(|e| e.egress == direction.is_egress())
        .collect();
    entries.sort_by_key(|e| e.rule_number);
    let mut outcome = NaclOutcome::default();
    let mut remaining: Vec<FlowBox> = flows.to_vec();
    for entry in entries {
        if remaining.is_empty() {
            break;
        }
        // The listed `*` entry is the implicit deny: handled after the loop.
        if entry.rule_number >= IMPLICIT_DENY_RULE_NUMBER {
            continue;
        }
        let Some(family) = remaining.first().map(|f| f.addrs.family) else {
            break;
        };
        let (entry_box, allow) = match read_entry(entry, protocol, family) {
            EntryMatch::Applies(entry_box, allow) => (entry_box, allow),
            EntryMatch::NotApplicable => continue,
            EntryMatch::Unreadable => {
                outcome.unreadable_entries.push(entry.rule_number);
                continue;
            }
        };
        let mut rest = Vec::with_capacity(remaining.len());
        for flow in &remaining {
            if let Some(part) = flow.intersect(&entry_box) {
                outcome.decisions.push(Decision {
                    rule: NaclRuleRef::Entry {
                        rule_number: entry.rule_number,
                    },
                    allow,
                    flows: part,
                });
                rest.extend(flow.minus(&entry_box));
            } else {
                rest.push(*flow);
            }
        }
        remaining = rest;
    }
    outcome
        .decisions
        .extend(remaining.into_iter().map(|flows| Decision {
            rule: NaclRuleRef::ImplicitDeny,
            allow: false,
            flows,
        }));
    outcome
}

/// A rule number for a new allow entry that must decide `flows` before anything drops them:
/// below the first explicit entry that would drop part of them, deterministic (so concurrent
/// runs agree), preferring the conventional multiples of 10 and else the highest free number.
/// `None` when no free number exists below that entry.
pub fn rule_number_for_allow(
    acl: &NetworkAcl,
    direction: Direction,
    protocol: u8,
    flows: &[FlowBox],
) -> Option<u16> {
    let outcome = evaluate(acl, direction, protocol, flows);
    let ceiling = outcome
        .drops()
        .filter_map(|d| match d.rule {
            NaclRuleRef::Entry { rule_number } => Some(rule_number),
            NaclRuleRef::ImplicitDeny => None,
        })
        .min()
        .unwrap_or(IMPLICIT_DENY_RULE_NUMBER);
    let taken = |n: u16| {
        acl.entries
            .iter()
            .any(|e| e.egress == direction.is_egress() && e.rule_number == n)
    };
    // With no explicit deny in the way, a conventional slot: the first free multiple of 10
    // from 100 that is below the ceiling.
    if ceiling == IMPLICIT_DENY_RULE_NUMBER {
        if let Some(n) = (100..MAX_RULE_NUMBER).step_by(10).find(|n| !taken(*n)) {
            return Some(n);
        }
    }
    (1..ceiling.min(IMPLICIT_DENY_RULE_NUMBER))
        .rev()
        .find(|n| !taken(*n))
}

#[cfg(test)]
mod tests;

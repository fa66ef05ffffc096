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

/// One entry, parsed once: the evaluator runs hundreds of times per diagnosis.
#[derive(Debug, Clone)]
struct ParsedEntry {
    rule_number: u16,
    /// `None` when the entry is unreadable (unknown action, protocol or CIDR).
    parsed: Option<Parsed>,
}

#[derive(Debug, Clone, Copy)]
struct Parsed {
    allow: bool,
    /// -1 for all protocols.
    protocol: i16,
    v4: Option<AddrRange>,
    v6: Option<AddrRange>,
    /// `None` means every port.
    ports: Option<PortRange>,
}

/// A NACL's entries parsed and sorted by rule number, per direction.
#[derive(Debug, Clone)]
pub struct CompiledAcl {
    ingress: Vec<ParsedEntry>,
    egress: Vec<ParsedEntry>,
}

fn protocol_number(text: &str) -> Option<i16> {
    let text = text.trim();
    for (name, number) in [
        ("-1", -1),
        ("all", -1),
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("icmpv6", 58),
    ] {
        if text.eq_ignore_ascii_case(name) {
            return Some(number);
        }
    }
    text.parse().ok()
}

fn parse_entry(entry: &NaclEntry) -> Option<Parsed> {
    let action = entry.rule_action.trim();
    let allow = if action.eq_ignore_ascii_case("allow") {
        true
    } else if action.eq_ignore_ascii_case("deny") {
        false
    } else {
        return None;
    };
    let cidr = |text: &Option<String>, family: Family| -> Result<Option<AddrRange>, ()> {
        match text {
            None => Ok(None),
            Some(text) => AddrRange::parse(text)
                .filter(|r| r.family == family)
                .map(Some)
                .ok_or(()),
        }
    };
    let v4 = cidr(&entry.cidr_block, Family::Ipv4).ok()?;
    let v6 = cidr(&entry.ipv6_cidr_block, Family::Ipv6).ok()?;
    let ports = match entry.port_range {
        Some(range) if range.from > range.to => return None,
        other => other,
    };
    Some(Parsed {
        allow,
        protocol: protocol_number(&entry.protocol)?,
        v4,
        v6,
        ports,
    })
}

impl CompiledAcl {
    pub fn new(acl: &NetworkAcl) -> Self {
        let direction = |egress: bool| {
            let mut entries: Vec<ParsedEntry> = acl
                .entries
                .iter()
                .filter(|e| e.egress == egress)
                .map(|e| ParsedEntry {
                    rule_number: e.rule_number,
                    parsed: parse_entry(e),
                })
                .collect();
            entries.sort_by_key(|e| e.rule_number);
            entries
        };
        Self {
            ingress: direction(false),
            egress: direction(true),
        }
    }

    /// Evaluates `flows` (all of one family) against the `direction` entries.
    pub fn evaluate(&self, direction: Direction, protocol: u8, flows: &[FlowBox]) -> NaclOutcome {
        let entries = match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        };
        let mut outcome = NaclOutcome::default();
        let mut remaining: Vec<FlowBox> = flows.to_vec();
        let Some(family) = remaining.first().map(|f| f.addrs.family) else {
            return outcome;
        };
        for entry in entries {
            if remaining.is_empty() {
                break;
            }
            // The listed `*` entry is the implicit deny: handled after the loop.
            if entry.rule_number >= IMPLICIT_DENY_RULE_NUMBER {
                continue;
            }
            let Some(parsed) = entry.parsed else {
                outcome.unreadable_entries.push(entry.rule_number);
                continue;
            };
            let addrs = match family {
                Family::Ipv4 => parsed.v4,
                Family::Ipv6 => parsed.v6,
            };
            let Some(addrs) = addrs else { continue };
            let ports = if parsed.protocol == -1 {
                PortRange::ALL
            } else if parsed.protocol == i16::from(protocol) {
                parsed.ports.unwrap_or(PortRange::ALL)
            } else {
                continue;
            };
            let entry_box = FlowBox { addrs, ports };
            // Most entries touch none of the flows: skip them without allocating.
            if !remaining
                .iter()
                .any(|flow| flow.intersect(&entry_box).is_some())
            {
                continue;
            }
            let mut rest = Vec::with_capacity(remaining.len() + 2);
            for flow in &remaining {
                if let Some(part) = flow.intersect(&entry_box) {
                    outcome.decisions.push(Decision {
                        rule: NaclRuleRef::Entry {
                            rule_number: entry.rule_number,
                        },
                        allow: parsed.allow,
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
}

/// Evaluates `flows` (all of one family) against the `direction` entries of `acl`.
pub fn evaluate(
    acl: &NetworkAcl,
    direction: Direction,
    protocol: u8,
    flows: &[FlowBox],
) -> NaclOutcome {
    CompiledAcl::new(acl).evaluate(direction, protocol, flows)
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

//! Network ACL evaluation exactly as the VPC evaluates it: the entries of one direction in
//! ascending rule number, the first entry matching protocol, CIDR and port decides, and the
//! implicit `*` entry denies whatever none matched. Evaluated over a *set* of flows, so that
//! an entry covering only part of the ephemeral range or part of a subnet is caught.

use serde::Serialize;

use super::addr::{Family, FlowBox};
use super::AddrRange;
use crate::snapshot::{protocol_number, NaclEntry, NetworkAcl, PortRange};

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
    /// The direction of a NACL entry's `Egress` flag.
    pub fn of_egress(egress: bool) -> Self {
        if egress {
            Self::Egress
        } else {
            Self::Ingress
        }
    }

    pub fn is_egress(self) -> bool {
        self == Self::Egress
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
    /// The `aws ec2 *-network-acl-entry` flag that names this direction.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Ingress => "--ingress",
            Self::Egress => "--egress",
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

/// Why no allow entry can be numbered for a flow set, or why a given number is not one the
/// engine would choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoAllow {
    #[error("explicit deny rule {deny} decides the dropped traffic; an allow in front of it needs OVERRIDE_EXPLICIT_DENY=true")]
    ExplicitDenyDecides { deny: u16 },
    #[error("explicit deny rule {deny} overlaps the traffic and no rule number follows it")]
    NothingAfterDeny { deny: u16 },
    #[error("no rule number is free {window}")]
    NoFreeNumber { window: AllowWindow },
    #[error("rule number {rule_number} is outside the window {window}{}", .safe.map(|w| format!(" or {w}")).unwrap_or_default())]
    OutsideWindow {
        rule_number: u16,
        window: AllowWindow,
        safe: Option<AllowWindow>,
    },
    #[error("rule number {rule_number} is outside the window {window}; elbmedic never puts an allow in front of an explicit deny that overlaps it unless OVERRIDE_EXPLICIT_DENY=true")]
    InFrontOfDeny {
        rule_number: u16,
        window: AllowWindow,
    },
}

/// Where a new allow entry for a flow set may be numbered: strictly between `after` and
/// `before`. Computed from the NACL's entries as they are, never taken from a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowWindow {
    /// The highest explicit deny the allow must stay behind (0: none).
    pub after: u16,
    /// The entry that decides the dropped flows today ([`IMPLICIT_DENY_RULE_NUMBER`]: the
    /// implicit deny): the allow must come first.
    pub before: u16,
    /// The explicit deny an allow in this window overrides (only with the override).
    pub in_front_of_deny: Option<u16>,
}

impl AllowWindow {
    pub fn contains(&self, rule_number: u16) -> bool {
        self.after < rule_number && rule_number < self.before
    }
}

impl std::fmt::Display for AllowWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let before = if self.before >= IMPLICIT_DENY_RULE_NUMBER {
            "the implicit deny (*)".to_string()
        } else {
            format!("rule {}", self.before)
        };
        match self.after {
            0 => write!(f, "below {before}"),
            after => write!(f, "after explicit deny rule {after} and before {before}"),
        }
    }
}

/// Rule numbers of the explicit deny entries of `direction` that overlap `flows` in
/// protocol, ports and addresses, whether or not they decide any of them today. An unreadable
/// entry might be a deny, so it counts as one: nothing is put in front of it.
pub fn overlapping_denies(
    acl: &NetworkAcl,
    direction: Direction,
    protocol: u8,
    flows: &[FlowBox],
) -> Vec<u16> {
    CompiledAcl::new(acl).overlapping_denies(direction, protocol, flows)
}

impl CompiledAcl {
    fn overlapping_denies(
        &self,
        direction: Direction,
        protocol: u8,
        flows: &[FlowBox],
    ) -> Vec<u16> {
        let entries = match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        };
        let Some(family) = flows.first().map(|f| f.addrs.family) else {
            return Vec::new();
        };
        let mut numbers: Vec<u16> = entries
            .iter()
            .filter(|e| e.rule_number < IMPLICIT_DENY_RULE_NUMBER)
            .filter(|e| {
                let Some(parsed) = e.parsed else {
                    return true;
                };
                let addrs = match family {
                    Family::Ipv4 => parsed.v4,
                    Family::Ipv6 => parsed.v6,
                };
                let ports = match parsed.protocol {
                    -1 => Some(PortRange::ALL),
                    p if p == i16::from(protocol) => Some(parsed.ports.unwrap_or(PortRange::ALL)),
                    _ => None,
                };
                match (parsed.allow, addrs, ports) {
                    (false, Some(addrs), Some(ports)) => {
                        let entry_box = FlowBox { addrs, ports };
                        flows.iter().any(|f| f.intersect(&entry_box).is_some())
                    }
                    _ => false,
                }
            })
            .map(|e| e.rule_number)
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }
}

/// The window for a new allow entry that decides `flows`.
///
/// Without `override_explicit_deny` the allow goes after every explicit deny that overlaps
/// it, so each deny keeps deciding its ports, and it fixes only what the implicit deny drops;
/// when explicit denies drop everything that is dropped, there is no such window and the
/// error says which deny decides. With the override, the allow goes in front of the first
/// entry that drops.
pub fn allow_window(
    acl: &NetworkAcl,
    direction: Direction,
    protocol: u8,
    flows: &[FlowBox],
    override_explicit_deny: bool,
) -> Result<AllowWindow, NoAllow> {
    let compiled = CompiledAcl::new(acl);
    let outcome = compiled.evaluate(direction, protocol, flows);
    let first_explicit_drop = outcome
        .drops()
        .filter_map(|d| match d.rule {
            NaclRuleRef::Entry { rule_number } => Some(rule_number),
            NaclRuleRef::ImplicitDeny => None,
        })
        .min();
    if override_explicit_deny {
        return Ok(AllowWindow {
            after: 0,
            before: first_explicit_drop.unwrap_or(IMPLICIT_DENY_RULE_NUMBER),
            in_front_of_deny: first_explicit_drop,
        });
    }
    let implicit_drops = outcome.drops().any(|d| d.rule == NaclRuleRef::ImplicitDeny);
    if let (Some(deny), false) = (first_explicit_drop, implicit_drops) {
        return Err(NoAllow::ExplicitDenyDecides { deny });
    }
    let after = compiled
        .overlapping_denies(direction, protocol, flows)
        .last()
        .copied()
        .unwrap_or(0);
    if after >= MAX_RULE_NUMBER {
        return Err(NoAllow::NothingAfterDeny { deny: after });
    }
    Ok(AllowWindow {
        after,
        before: IMPLICIT_DENY_RULE_NUMBER,
        in_front_of_deny: None,
    })
}

/// A free rule number in `window` for `direction`: deterministic (so concurrent runs agree).
/// Before the implicit deny it prefers the conventional multiples of 10 from 100; in front
/// of an explicit entry it takes the highest free number. `None` when the window is full.
pub fn choose_rule_number(
    acl: &NetworkAcl,
    direction: Direction,
    window: AllowWindow,
) -> Option<u16> {
    let taken = |n: u16| {
        acl.entries
            .iter()
            .any(|e| e.egress == direction.is_egress() && e.rule_number == n)
    };
    let free = |n: &u16| window.contains(*n) && !taken(*n);
    if window.before >= IMPLICIT_DENY_RULE_NUMBER {
        let start = if window.after < 100 {
            100
        } else {
            (window.after / 10 + 1).saturating_mul(10)
        };
        if let Some(n) = (start..=MAX_RULE_NUMBER).step_by(10).find(free) {
            return Some(n);
        }
    }
    (window.after.saturating_add(1)..window.before.min(IMPLICIT_DENY_RULE_NUMBER))
        .rev()
        .find(free)
}

/// A rule number for a new allow entry that decides `flows`, and the explicit deny it is put
/// in front of, if any: behind every overlapping deny when that fixes the drops, else (only
/// when `override_explicit_deny` allows it) in front of the deny that drops.
pub fn rule_number_for_allow(
    acl: &NetworkAcl,
    direction: Direction,
    protocol: u8,
    flows: &[FlowBox],
    override_explicit_deny: bool,
) -> Result<(u16, Option<u16>), NoAllow> {
    let window = match allow_window(acl, direction, protocol, flows, false) {
        Ok(window) => window,
        Err(_) if override_explicit_deny => allow_window(acl, direction, protocol, flows, true)?,
        Err(reason) => return Err(reason),
    };
    choose_rule_number(acl, direction, window)
        .map(|n| (n, window.in_front_of_deny))
        .ok_or(NoAllow::NoFreeNumber { window })
}

/// Whether an allow numbered `rule_number` for `flows` lies in a window the engine itself
/// would choose from under this override setting; `Err` says why not.
pub fn check_allow_number(
    acl: &NetworkAcl,
    direction: Direction,
    protocol: u8,
    flows: &[FlowBox],
    rule_number: u16,
    override_explicit_deny: bool,
) -> Result<(), NoAllow> {
    let safe = allow_window(acl, direction, protocol, flows, false);
    if safe.as_ref().is_ok_and(|w| w.contains(rule_number)) {
        return Ok(());
    }
    if override_explicit_deny {
        let window = allow_window(acl, direction, protocol, flows, true)?;
        if window.contains(rule_number) {
            return Ok(());
        }
        return Err(NoAllow::OutsideWindow {
            rule_number,
            window,
            safe: safe.ok(),
        });
    }
    match safe {
        Ok(window) => Err(NoAllow::InFrontOfDeny {
            rule_number,
            window,
        }),
        Err(reason) => Err(reason),
    }
}

#[cfg(test)]
mod tests;

//! Path analysis: every leg between the load balancer's nodes and its targets, checked
//! against the NACLs and security groups on the way.
//!
//! For each (LB subnet, target subnet) pair there are four NACL legs: LB-subnet egress to the
//! target port, target-subnet ingress on the target port, target-subnet egress back to the
//! nodes' ephemeral ports 1024-65535, LB-subnet ingress on those ports; the traffic port and the
//! health-check port both. Traffic within one subnet does not cross its NACL, except a Classic
//! LB's outbound traffic. A Classic LB with cross-zone balancing off only talks to targets in
//! its own zone. Targets are grouped so that each NACL is evaluated once per group, not once per
//! target.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::addr::{merge_ranges, AddrRange, Family, FlowBox};
use super::nacl::{CompiledAcl, Direction, NaclOutcome, TCP};
use super::sg::{self, SgOutcome, SgPeer};
use crate::alarm::LbKind;
use crate::snapshot::{GapFact, HealthClass, NetworkAcl, PortRange, Snapshot, Subnet};

/// One of the four NACL crossings of a request and its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leg {
    /// LB subnet, egress, to the target port.
    LbSubnetEgress,
    /// Target subnet, ingress, on the target port.
    TargetSubnetIngress,
    /// Target subnet, egress, replies to the nodes' ports 1024-65535.
    TargetSubnetReplyEgress,
    /// LB subnet, ingress, replies arriving on ports 1024-65535.
    LbSubnetReplyIngress,
}

impl Leg {
    pub const ALL: [Leg; 4] = [
        Leg::LbSubnetEgress,
        Leg::TargetSubnetIngress,
        Leg::TargetSubnetReplyEgress,
        Leg::LbSubnetReplyIngress,
    ];

    pub fn direction(self) -> Direction {
        match self {
            Self::LbSubnetEgress | Self::TargetSubnetReplyEgress => Direction::Egress,
            Self::TargetSubnetIngress | Self::LbSubnetReplyIngress => Direction::Ingress,
        }
    }

    pub fn on_lb_subnet(self) -> bool {
        matches!(self, Self::LbSubnetEgress | Self::LbSubnetReplyIngress)
    }

    pub fn is_reply(self) -> bool {
        matches!(
            self,
            Self::TargetSubnetReplyEgress | Self::LbSubnetReplyIngress
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::LbSubnetEgress => "LB subnet egress: LB nodes -> targets",
            Self::TargetSubnetIngress => "target subnet ingress: LB nodes -> targets",
            Self::TargetSubnetReplyEgress => {
                "target subnet egress: replies from targets -> LB nodes"
            }
            Self::LbSubnetReplyIngress => "LB subnet ingress: replies from targets -> LB nodes",
        }
    }
}

/// What a checked port is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    Traffic,
    HealthCheck,
    TrafficAndHealthCheck,
    /// The nodes' ephemeral ports 1024-65535, where replies arrive.
    Replies,
}

impl Purpose {
    /// The purpose of a port that carries traffic, health checks, or both.
    pub fn of(traffic: bool, health_check: bool) -> Self {
        match (traffic, health_check) {
            (true, true) => Self::TrafficAndHealthCheck,
            (false, true) => Self::HealthCheck,
            _ => Self::Traffic,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Traffic => "traffic port",
            Self::HealthCheck => "health-check port",
            Self::TrafficAndHealthCheck => "traffic and health-check port",
            Self::Replies => "ephemeral ports",
        }
    }
}

/// One NACL evaluation of one leg for a group of targets.
#[derive(Debug, Clone)]
pub struct NaclCheck {
    pub leg: Leg,
    pub purpose: Purpose,
    pub ports: PortRange,
    pub lb_subnet: String,
    pub target_subnet: String,
    /// The subnet whose NACL was evaluated (one of the two above).
    pub subnet_id: String,
    pub nacl_id: String,
    /// The far side's addresses.
    pub peer: Vec<AddrRange>,
    pub outcome: NaclOutcome,
    /// Ids of the targets behind this check (shared, not copied, between checks).
    pub targets: Vec<TargetId>,
}

/// A target's id, shared by every check it appears in.
pub type TargetId = std::sync::Arc<str>;

impl NaclCheck {
    pub fn direction(&self) -> Direction {
        self.leg.direction()
    }

    /// The far side's addresses as CIDRs, for display (computed on demand: it is costly).
    pub fn peer_cidrs(&self) -> Vec<String> {
        self.peer.iter().flat_map(AddrRange::to_cidrs).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SgSide {
    /// The target interface's groups, ingress from the LB.
    TargetIngress,
    /// The LB's groups, egress to the targets.
    LbEgress,
}

/// One security group evaluation for a group of targets sharing the same groups and port.
#[derive(Debug, Clone)]
pub struct SgCheck {
    pub side: SgSide,
    /// The groups evaluated (target interface's or the LB's).
    pub group_ids: Vec<String>,
    /// The groups on the other side (LB's or target's).
    pub peer_groups: Vec<String>,
    pub port: u16,
    pub purpose: Purpose,
    /// The family of the targets' addresses: an IPv6 path is judged on its own rules.
    pub family: Family,
    pub outcome: SgOutcome,
    pub targets: Vec<TargetId>,
}

/// A port on which one LB subnet's nodes reach a group of targets in one subnet, whether the
/// path crosses a NACL or not (within one subnet it does not): what the path picture draws.
#[derive(Debug, Clone)]
pub struct Flow {
    pub lb_subnet: String,
    pub target_subnet: String,
    pub port: u16,
    pub purpose: Purpose,
    pub targets: Vec<TargetId>,
}

/// Something the analysis needed and the snapshot does not hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unresolved {
    pub fact: GapFact,
    pub resource: String,
    pub needed_for: String,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkAnalysis {
    pub nacl_checks: Vec<NaclCheck>,
    pub sg_checks: Vec<SgCheck>,
    pub flows: Vec<Flow>,
    pub unresolved: Vec<Unresolved>,
    /// Targets whose paths were checked.
    pub targets_checked: usize,
    /// (LB subnet, target subnet) pairs with traffic between them.
    pub subnet_pairs: usize,
}

/// Every NACL of the snapshot, parsed once, by id.
type Acls<'a> = std::collections::HashMap<&'a str, (&'a NetworkAcl, CompiledAcl)>;

/// A located target, ready to be grouped.
struct Placed<'a> {
    id: TargetId,
    addr: AddrRange,
    subnet: &'a Subnet,
    groups: Vec<String>,
    traffic_port: u16,
    health_port: u16,
}

/// One LB subnet with the addresses its nodes may use.
struct LbSide<'a> {
    subnet: &'a Subnet,
    nacl_id: Option<&'a str>,
}

impl LbSide<'_> {
    fn addrs(&self, snapshot: &Snapshot, family: Family) -> Vec<AddrRange> {
        lb_node_addrs(snapshot, self.subnet, family)
    }
}

/// Addresses the LB's nodes in `subnet` use: the known node IPs, else the whole subnet.
fn lb_node_addrs(snapshot: &Snapshot, subnet: &Subnet, family: Family) -> Vec<AddrRange> {
    let nodes: Vec<AddrRange> = snapshot
        .load_balancer
        .nodes
        .iter()
        .filter(|n| n.subnet_id == subnet.id)
        .filter_map(|n| AddrRange::parse(&n.private_ip))
        .filter(|r| r.family == family)
        .collect();
    if !nodes.is_empty() {
        return nodes;
    }
    subnet
        .cidr_ipv4
        .iter()
        .chain(&subnet.cidr_ipv6)
        .filter_map(|c| AddrRange::parse(c))
        .filter(|r| r.family == family)
        .collect()
}

pub fn analyse(snapshot: &Snapshot) -> NetworkAnalysis {
    let mut analysis = NetworkAnalysis::default();
    let lb = &snapshot.load_balancer;
    let lb_sides = lb_sides(snapshot, &mut analysis);
    let placed = place_targets(snapshot, &mut analysis);
    analysis.targets_checked = placed.len();

    // Forward legs per (LB subnet, target subnet, port); reply legs per subnet pair.
    type Members<'a> = Vec<&'a Placed<'a>>;
    type ForwardKey<'a> = (usize, &'a str, u16, Family);
    let mut forward: BTreeMap<ForwardKey<'_>, (bool, bool, Members<'_>)> = BTreeMap::new();
    let mut replies: BTreeMap<(usize, &str, Family), Members<'_>> = BTreeMap::new();
    let zonal = !lb.cross_zone_enabled();
    for target in &placed {
        for (index, side) in lb_sides.iter().enumerate() {
            if zonal && !same_zone(side.subnet, target.subnet) {
                continue;
            }
            let family = target.addr.family;
            for (port, traffic, health) in ports_of(target) {
                let entry = forward
                    .entry((index, target.subnet.id.as_str(), port, family))
                    .or_insert((false, false, Vec::new()));
                entry.0 |= traffic;
                entry.1 |= health;
                entry.2.push(target);
            }
            replies
                .entry((index, target.subnet.id.as_str(), family))
                .or_default()
                .push(target);
        }
    }
    analysis.subnet_pairs = replies.len();
    let acls: Acls<'_> = snapshot
        .network_acls
        .iter()
        .map(|acl| (acl.id.as_str(), (acl, CompiledAcl::new(acl))))
        .collect();

    for ((index, _, port, family), (traffic, health, members)) in &forward {
        let purpose = Purpose::of(*traffic, *health);
        let side = &lb_sides[*index];
        if let Some(first) = members.first() {
            analysis.flows.push(Flow {
                lb_subnet: side.subnet.id.clone(),
                target_subnet: first.subnet.id.clone(),
                port: *port,
                purpose,
                targets: target_ids(members),
            });
        }
        for leg in [Leg::LbSubnetEgress, Leg::TargetSubnetIngress] {
            check_leg(
                snapshot,
                &acls,
                &mut analysis,
                side,
                members,
                leg,
                purpose,
                PortRange::single(*port),
                *family,
            );
        }
    }
    for ((index, _, family), members) in &replies {
        let side = &lb_sides[*index];
        for leg in [Leg::TargetSubnetReplyEgress, Leg::LbSubnetReplyIngress] {
            check_leg(
                snapshot,
                &acls,
                &mut analysis,
                side,
                members,
                leg,
                Purpose::Replies,
                PortRange::EPHEMERAL,
                *family,
            );
        }
    }
    check_security_groups(snapshot, &mut analysis, &placed, &lb_sides);
    analysis.unresolved.sort();
    analysis.unresolved.dedup();
    analysis
}

/// The load balancer's subnets with their NACLs; a subnet not read is a gap.
fn lb_sides<'a>(snapshot: &'a Snapshot, analysis: &mut NetworkAnalysis) -> Vec<LbSide<'a>> {
    snapshot
        .load_balancer
        .subnets
        .iter()
        .filter_map(|id| match snapshot.subnet(id) {
            Some(subnet) => Some(LbSide {
                subnet,
                nacl_id: subnet.network_acl_id.as_deref(),
            }),
            None => {
                analysis.unresolved.push(Unresolved {
                    fact: GapFact::Subnets,
                    resource: id.clone(),
                    needed_for: "NACL checks of the load balancer's subnet".into(),
                });
                None
            }
        })
        .collect()
}

fn same_zone(a: &Subnet, b: &Subnet) -> bool {
    match (&a.availability_zone, &b.availability_zone) {
        (Some(x), Some(y)) => x == y,
        // Unknown zone: check the pair rather than miss a path.
        _ => true,
    }
}

/// The distinct ports of a target: (port, carries traffic, carries health checks).
fn ports_of(target: &Placed<'_>) -> Vec<(u16, bool, bool)> {
    if target.traffic_port == target.health_port {
        vec![(target.traffic_port, true, true)]
    } else {
        vec![
            (target.traffic_port, true, false),
            (target.health_port, false, true),
        ]
    }
}

fn place_targets<'a>(snapshot: &'a Snapshot, analysis: &mut NetworkAnalysis) -> Vec<Placed<'a>> {
    let mut placed = Vec::new();
    for (group, target) in snapshot.targets() {
        if group.target_type.eq_ignore_ascii_case("lambda")
            || target.health.class() == HealthClass::Unused
        {
            continue;
        }
        let Some(interface) = target.interface() else {
            continue;
        };
        let Some(addr) = interface
            .private_ip
            .parse::<IpAddr>()
            .ok()
            .map(AddrRange::from_ip)
        else {
            analysis.unresolved.push(Unresolved {
                fact: GapFact::TargetPlacement,
                resource: target.id.clone(),
                needed_for: format!(
                    "path checks (unreadable address {:?})",
                    interface.private_ip
                ),
            });
            continue;
        };
        let Some(subnet) = snapshot.subnet(&interface.subnet_id) else {
            analysis.unresolved.push(Unresolved {
                fact: GapFact::Subnets,
                resource: interface.subnet_id.clone(),
                needed_for: format!("NACL checks of target {}", target.id),
            });
            continue;
        };
        let health_port = group
            .health_check
            .as_ref()
            .map_or(target.port, |hc| hc.port_for(target.port));
        let mut groups = interface.security_groups.clone();
        groups.sort();
        groups.dedup();
        placed.push(Placed {
            id: TargetId::from(target.id.as_str()),
            addr,
            subnet,
            groups,
            traffic_port: target.port,
            health_port,
        });
    }
    placed
}

#[allow(clippy::too_many_arguments)]
fn check_leg(
    snapshot: &Snapshot,
    acls: &Acls<'_>,
    analysis: &mut NetworkAnalysis,
    side: &LbSide<'_>,
    members: &[&Placed<'_>],
    leg: Leg,
    purpose: Purpose,
    ports: PortRange,
    family: Family,
) {
    let Some(first) = members.first() else { return };
    let target_subnet = first.subnet;
    let same_subnet = side.subnet.id == target_subnet.id;
    // Within one subnet no NACL is crossed, except by a Classic LB's outbound traffic.
    if same_subnet
        && !(leg == Leg::LbSubnetEgress && snapshot.load_balancer.kind == LbKind::Classic)
    {
        return;
    }
    let (subnet, nacl_id) = if leg.on_lb_subnet() {
        (side.subnet, side.nacl_id)
    } else {
        (target_subnet, target_subnet.network_acl_id.as_deref())
    };
    let peer: Vec<AddrRange> = if leg.on_lb_subnet() {
        merge_ranges(members.iter().map(|t| t.addr).collect())
    } else {
        merge_ranges(side.addrs(snapshot, family))
    };
    let Some((acl, compiled)) = nacl_id.and_then(|id| acls.get(id)) else {
        analysis.unresolved.push(Unresolved {
            fact: GapFact::NetworkAcls,
            resource: nacl_id.map_or_else(|| format!("NACL of {}", subnet.id), str::to_string),
            needed_for: format!("NACL checks of subnet {}", subnet.id),
        });
        return;
    };
    if peer.is_empty() {
        analysis.unresolved.push(Unresolved {
            fact: GapFact::Subnets,
            resource: side.subnet.id.clone(),
            needed_for: format!("{family:?} path checks (the LB subnet has no {family:?} CIDR)"),
        });
        return;
    }
    let flows: Vec<FlowBox> = peer
        .iter()
        .map(|addrs| FlowBox {
            addrs: *addrs,
            ports,
        })
        .collect();
    let outcome = compiled.evaluate(leg.direction(), TCP, &flows);
    let targets = target_ids(members);
    analysis.nacl_checks.push(NaclCheck {
        leg,
        purpose,
        ports,
        lb_subnet: side.subnet.id.clone(),
        target_subnet: target_subnet.id.clone(),
        subnet_id: subnet.id.clone(),
        nacl_id: acl.id.clone(),
        peer,
        outcome,
        targets,
    });
}

/// The ids of a group of targets, in snapshot order. Each target is placed once per group
/// key, so they are already distinct.
fn target_ids(members: &[&Placed<'_>]) -> Vec<TargetId> {
    members.iter().map(|t| t.id.clone()).collect()
}

fn check_security_groups(
    snapshot: &Snapshot,
    analysis: &mut NetworkAnalysis,
    placed: &[Placed<'_>],
    lb_sides: &[LbSide<'_>],
) {
    let lb = &snapshot.load_balancer;
    type Key<'a> = (&'a [String], u16, Family);
    let mut groups: BTreeMap<Key<'_>, (bool, bool, Vec<&Placed<'_>>)> = BTreeMap::new();
    for target in placed {
        for (port, traffic, health) in ports_of(target) {
            let entry = groups
                .entry((target.groups.as_slice(), port, target.addr.family))
                .or_insert((false, false, Vec::new()));
            entry.0 |= traffic;
            entry.1 |= health;
            entry.2.push(target);
        }
    }
    for ((target_groups, port, family), (traffic, health, members)) in groups {
        let purpose = Purpose::of(traffic, health);
        let targets = target_ids(&members);
        let lb_addrs: Vec<AddrRange> = lb_sides
            .iter()
            .flat_map(|s| s.addrs(snapshot, family))
            .collect();
        let ingress = sg::evaluate(
            snapshot,
            target_groups,
            Direction::Ingress,
            port,
            &SgPeer {
                groups: &lb.security_groups,
                addrs: lb_addrs,
            },
        );
        analysis.sg_checks.push(SgCheck {
            side: SgSide::TargetIngress,
            group_ids: target_groups.to_vec(),
            peer_groups: lb.security_groups.clone(),
            port,
            purpose,
            family,
            outcome: ingress,
            targets: targets.clone(),
        });
        // A load balancer without security groups (a Classic LB outside a VPC) has no egress to check.
        if lb.security_groups.is_empty() {
            continue;
        }
        let egress = sg::evaluate(
            snapshot,
            &lb.security_groups,
            Direction::Egress,
            port,
            &SgPeer {
                groups: target_groups,
                addrs: members.iter().map(|t| t.addr).collect(),
            },
        );
        analysis.sg_checks.push(SgCheck {
            side: SgSide::LbEgress,
            group_ids: lb.security_groups.clone(),
            peer_groups: target_groups.to_vec(),
            port,
            purpose,
            family,
            outcome: egress,
            targets,
        });
    }
}

#[cfg(test)]
mod tests;

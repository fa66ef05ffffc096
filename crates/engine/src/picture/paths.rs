//! The path diagram's model: per zone of the load balancer, the paths from its nodes to its
//! targets as rows of lanes (the request on the target port, health checks on their own port,
//! replies on 1024-65535), each hop with its verdict and, where the packet dies, the entry that
//! decided. Target subnets whose hops read the same share one row, so 20 subnets and 1,000
//! targets stay a handful of rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::context::{count, Context};
use crate::netcheck::{Flow, Leg, NaclCheck, NaclRuleRef, Purpose, SgCheck, SgOutcome, SgSide};
use crate::snapshot::HealthClass;

/// The places a packet crosses, left (the load balancer) to right (the targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    LbNodes,
    LbSecurityGroups,
    LbSubnetNacl,
    TargetSubnetNacl,
    TargetSecurityGroups,
    Targets,
}

impl Column {
    pub const ALL: [Column; 6] = [
        Self::LbNodes,
        Self::LbSecurityGroups,
        Self::LbSubnetNacl,
        Self::TargetSubnetNacl,
        Self::TargetSecurityGroups,
        Self::Targets,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::LbNodes => "LB nodes",
            Self::LbSecurityGroups => "LB security groups",
            Self::LbSubnetNacl => "LB subnet NACL",
            Self::TargetSubnetNacl => "target subnet NACL",
            Self::TargetSecurityGroups => "target security groups",
            Self::Targets => "targets",
        }
    }
}

/// A hop's verdict, worst last: a row's verdict is its worst hop's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing to evaluate: no NACL between two addresses of one subnet, no security group
    /// on the load balancer, a stateful group's replies.
    NotCrossed,
    Pass,
    /// Some of the targets fail their health checks, others pass.
    Degraded,
    /// Could not be evaluated: something on the way was not read.
    Unknown,
    /// Packets die here (all of them, or those of some addresses).
    Drop,
}

impl Verdict {
    /// The CSS class and the word a legend uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotCrossed => "not-crossed",
            Self::Pass => "pass",
            Self::Degraded => "degraded",
            Self::Unknown => "unknown",
            Self::Drop => "drop",
        }
    }
}

/// One place on one lane.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    pub column: Column,
    pub verdict: Verdict,
    /// The resources here: NACL ids, security group ids, target ids (the failing ones first).
    pub ids: Vec<String>,
    /// How many resources there are in all (targets are many; the ids name a few).
    pub total: usize,
    /// What decided, in a few words: `egress rule 90 deny`, `egress implicit deny (*)`.
    pub note: String,
}

/// Ids a target hop names; the rest is counted.
const NAMED_TARGETS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LaneKind {
    Request,
    HealthCheck,
    Reply,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    pub kind: LaneKind,
    /// `request, port 8080`, `replies, ports 1024-65535`.
    pub label: String,
    /// What travels, for a sentence: `requests on port 8080`, `replies on ports 1024-65535`.
    pub traffic: String,
    /// One hop per [`Column`], in column order.
    pub hops: Vec<Hop>,
}

impl Lane {
    /// The hops in the direction the packet travels: replies go from the targets back.
    pub fn in_travel_order(&self) -> Vec<&Hop> {
        let mut hops: Vec<&Hop> = self.hops.iter().collect();
        if self.kind == LaneKind::Reply {
            hops.reverse();
        }
        hops
    }

    /// Where the packet dies, first on its way.
    pub fn first_drop(&self) -> Option<&Hop> {
        self.in_travel_order()
            .into_iter()
            .find(|h| h.verdict == Verdict::Drop)
    }
}

/// The paths from one LB subnet to one or more target subnets that read the same.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRow {
    pub target_subnets: Vec<String>,
    pub target_zones: Vec<String>,
    pub targets: usize,
    pub lanes: Vec<Lane>,
}

impl PathRow {
    pub fn verdict(&self) -> Verdict {
        self.lanes
            .iter()
            .flat_map(|l| &l.hops)
            .map(|h| h.verdict)
            .max()
            .unwrap_or(Verdict::Pass)
    }
}

/// One LB subnet (one zone's nodes) and the paths from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneBlock {
    pub zone: Option<String>,
    pub lb_subnet: String,
    pub rows: Vec<PathRow>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PathDiagram {
    pub zones: Vec<ZoneBlock>,
    /// What the path checks could not read, one line each.
    pub unresolved: Vec<String>,
}

impl PathDiagram {
    pub fn of(ctx: &Context<'_>) -> Self {
        let index = Index::new(ctx);
        let snapshot = ctx.snapshot;
        let mut zones = Vec::new();
        for lb_subnet in &snapshot.load_balancer.subnets {
            let Some(subnet) = snapshot.subnet(lb_subnet) else {
                continue;
            };
            let mut by_target: BTreeMap<&str, Vec<&Flow>> = BTreeMap::new();
            for flow in ctx
                .network
                .flows
                .iter()
                .filter(|f| &f.lb_subnet == lb_subnet)
            {
                by_target
                    .entry(flow.target_subnet.as_str())
                    .or_default()
                    .push(flow);
            }
            let rows = if by_target.is_empty() {
                vec![index.no_targets_row(lb_subnet)]
            } else {
                index.rows(lb_subnet, by_target)
            };
            zones.push(ZoneBlock {
                zone: subnet.availability_zone.clone(),
                lb_subnet: lb_subnet.clone(),
                rows,
            });
        }
        let unresolved = ctx
            .network
            .unresolved
            .iter()
            .map(|u| format!("{} not read: needed for {}", u.resource, u.needed_for))
            .collect();
        Self { zones, unresolved }
    }
}

/// The analysis's checks, looked up by what a hop needs.
struct Index<'a> {
    ctx: &'a Context<'a>,
    nacl: HashMap<(&'a str, &'a str, Leg, u16), &'a NaclCheck>,
    /// Every target of the flows once, by slot: its id, its health, and the security group
    /// evaluations it is in. Lanes work on slots, so the diagram of 1,000 targets hashes each id
    /// a few times in all, not a few times per lane.
    ids: Vec<&'a str>,
    health: Vec<HealthClass>,
    groups: Vec<Vec<&'a SgCheck>>,
    /// Each flow's targets as slots, by the flow's address.
    slots_of: HashMap<usize, Vec<Slot>>,
}

/// A target's place in [`Index`]'s tables.
type Slot = u32;

fn flow_key(flow: &Flow) -> usize {
    std::ptr::from_ref(flow) as usize
}

impl<'a> Index<'a> {
    fn new(ctx: &'a Context<'a>) -> Self {
        let nacl = ctx
            .network
            .nacl_checks
            .iter()
            .map(|c| {
                let key = (
                    c.lb_subnet.as_str(),
                    c.target_subnet.as_str(),
                    c.leg,
                    c.ports.from,
                );
                (key, c)
            })
            .collect();
        let mut health_of: HashMap<&str, HealthClass> = HashMap::new();
        for (_, target) in ctx.snapshot.targets() {
            let class = target.health.class();
            // A target registered twice counts as unhealthy if either registration is.
            let entry = health_of.entry(target.id.as_str()).or_insert(class);
            if class == HealthClass::Unhealthy {
                *entry = class;
            }
        }
        let mut slot_of: HashMap<&str, Slot> = HashMap::new();
        let mut ids: Vec<&str> = Vec::new();
        let mut slots_of = HashMap::new();
        for flow in &ctx.network.flows {
            let slots: Vec<Slot> = flow
                .targets
                .iter()
                .map(|target| {
                    *slot_of.entry(&**target).or_insert_with(|| {
                        ids.push(&**target);
                        (ids.len() - 1) as Slot
                    })
                })
                .collect();
            slots_of.insert(flow_key(flow), slots);
        }
        let health = ids
            .iter()
            .map(|id| health_of.get(id).copied().unwrap_or(HealthClass::Unknown))
            .collect();
        let mut groups = vec![Vec::new(); ids.len()];
        for check in &ctx.network.sg_checks {
            for target in &check.targets {
                if let Some(slot) = slot_of.get(&**target) {
                    groups[*slot as usize].push(check);
                }
            }
        }
        Self {
            ctx,
            nacl,
            ids,
            health,
            groups,
            slots_of,
        }
    }

    /// The distinct targets of `flows`, as slots in the order they first appear.
    fn slots(&self, flows: &[&Flow]) -> Vec<Slot> {
        let mut seen = vec![false; self.ids.len()];
        let mut slots = Vec::new();
        for flow in flows {
            for &slot in self.slots_of.get(&flow_key(flow)).into_iter().flatten() {
                if !std::mem::replace(&mut seen[slot as usize], true) {
                    slots.push(slot);
                }
            }
        }
        slots
    }

    /// The rows from one LB subnet: target subnets whose lanes read the same are merged.
    fn rows(&self, lb_subnet: &str, by_target: BTreeMap<&str, Vec<&Flow>>) -> Vec<PathRow> {
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (target_subnet, flows) in by_target {
            let lanes = self.lanes(lb_subnet, &[target_subnet], &flows);
            let signature = signature(&lanes);
            match groups.iter_mut().find(|g| g.signature == signature) {
                Some(group) => {
                    group.subnets.push(target_subnet);
                    group.flows.extend(flows);
                    // Several subnets: drawn again from all their flows.
                    group.lanes = None;
                }
                None => groups.push(Group {
                    signature,
                    subnets: vec![target_subnet],
                    flows,
                    lanes: Some(lanes),
                }),
            }
        }
        // The failing rows first: they are what the reader came for.
        groups.sort_by_key(|g| std::cmp::Reverse(g.signature.worst));
        groups
            .into_iter()
            .map(|group| {
                let targets = self.slots(&group.flows);
                let mut zones: Vec<String> = group
                    .subnets
                    .iter()
                    .filter_map(|s| self.ctx.snapshot.subnet(s))
                    .filter_map(|s| s.availability_zone.clone())
                    .collect();
                zones.sort();
                zones.dedup();
                PathRow {
                    lanes: group
                        .lanes
                        .unwrap_or_else(|| self.lanes(lb_subnet, &group.subnets, &group.flows)),
                    target_subnets: group.subnets.iter().map(|s| s.to_string()).collect(),
                    target_zones: zones,
                    targets: targets.len(),
                }
            })
            .collect()
    }

    /// The lanes from `lb_subnet` to `target_subnets`: one per port the flows use, then the
    /// replies.
    fn lanes(&self, lb_subnet: &str, target_subnets: &[&str], flows: &[&Flow]) -> Vec<Lane> {
        let mut by_port: BTreeMap<(LaneKind, u16), (Purpose, Vec<&Flow>)> = BTreeMap::new();
        for flow in flows {
            let kind = match flow.purpose {
                Purpose::HealthCheck => LaneKind::HealthCheck,
                _ => LaneKind::Request,
            };
            let entry = by_port
                .entry((kind, flow.port))
                .or_insert((flow.purpose, Vec::new()));
            entry.1.push(*flow);
        }
        let mut lanes = Vec::new();
        for ((kind, port), (purpose, flows)) in &by_port {
            let targets = self.slots(flows);
            let (label, traffic) = match purpose {
                Purpose::TrafficAndHealthCheck => (
                    format!("request and health check, port {port}"),
                    format!("requests and health checks on port {port}"),
                ),
                Purpose::HealthCheck => (
                    format!("health check, port {port}"),
                    format!("health checks on port {port}"),
                ),
                _ => (
                    format!("request, port {port}"),
                    format!("requests on port {port}"),
                ),
            };
            lanes.push(Lane {
                kind: *kind,
                label,
                traffic,
                hops: vec![
                    self.lb_nodes(lb_subnet),
                    self.security_groups(SgSide::LbEgress, *port, &targets),
                    self.nacl(
                        Column::LbSubnetNacl,
                        Leg::LbSubnetEgress,
                        lb_subnet,
                        target_subnets,
                        *port,
                    ),
                    self.nacl(
                        Column::TargetSubnetNacl,
                        Leg::TargetSubnetIngress,
                        lb_subnet,
                        target_subnets,
                        *port,
                    ),
                    self.security_groups(SgSide::TargetIngress, *port, &targets),
                    self.targets(&targets),
                ],
            });
        }
        let targets = self.slots(flows);
        let replies = crate::snapshot::PortRange::EPHEMERAL;
        lanes.push(Lane {
            kind: LaneKind::Reply,
            label: format!("replies, ports {}-{}", replies.from, replies.to),
            traffic: format!("replies on ports {}-{}", replies.from, replies.to),
            hops: vec![
                self.lb_nodes(lb_subnet),
                stateful(Column::LbSecurityGroups),
                self.nacl(
                    Column::LbSubnetNacl,
                    Leg::LbSubnetReplyIngress,
                    lb_subnet,
                    target_subnets,
                    replies.from,
                ),
                self.nacl(
                    Column::TargetSubnetNacl,
                    Leg::TargetSubnetReplyEgress,
                    lb_subnet,
                    target_subnets,
                    replies.from,
                ),
                stateful(Column::TargetSecurityGroups),
                self.reply_origin(&targets),
            ],
        });
        lanes
    }

    /// Where replies start: the targets, whatever their health (the request lanes show it).
    fn reply_origin(&self, targets: &[Slot]) -> Hop {
        Hop {
            column: Column::Targets,
            verdict: Verdict::Pass,
            ids: self.first_named(targets),
            total: targets.len(),
            note: count(targets.len(), "target", "targets"),
        }
    }

    /// The ids a target hop names; the rest it counts.
    fn first_named(&self, slots: &[Slot]) -> Vec<String> {
        slots
            .iter()
            .take(NAMED_TARGETS)
            .map(|slot| self.ids[*slot as usize].to_string())
            .collect()
    }

    /// The zone's nodes: their subnet, and their addresses when known.
    fn lb_nodes(&self, lb_subnet: &str) -> Hop {
        let nodes: Vec<&str> = self
            .ctx
            .snapshot
            .load_balancer
            .nodes
            .iter()
            .filter(|n| n.subnet_id == lb_subnet)
            .map(|n| n.private_ip.as_str())
            .collect();
        let note = match nodes.as_slice() {
            [] => "nodes anywhere in it".to_string(),
            [one] => format!("node {one}"),
            many => count(many.len(), "node", "nodes"),
        };
        Hop {
            column: Column::LbNodes,
            verdict: Verdict::Pass,
            ids: vec![lb_subnet.to_string()],
            total: 1,
            note,
        }
    }

    /// The NACL of one side on one leg, over every target subnet of the row.
    fn nacl(
        &self,
        column: Column,
        leg: Leg,
        lb_subnet: &str,
        target_subnets: &[&str],
        port: u16,
    ) -> Hop {
        let mut checks: Vec<&NaclCheck> = Vec::new();
        let mut in_subnet = false;
        let mut unread: Vec<String> = Vec::new();
        for target_subnet in target_subnets {
            match self.nacl.get(&(lb_subnet, *target_subnet, leg, port)) {
                Some(check) => checks.push(check),
                None if lb_subnet == *target_subnet => in_subnet = true,
                None => {
                    let subnet = if leg.on_lb_subnet() {
                        lb_subnet
                    } else {
                        target_subnet
                    };
                    let id = self
                        .ctx
                        .snapshot
                        .subnet(subnet)
                        .and_then(|s| s.network_acl_id.clone())
                        .unwrap_or_else(|| format!("NACL of {subnet}"));
                    unread.push(id);
                }
            }
        }
        let direction = leg.direction().as_str();
        // The dropping checks first: their NACL is the one the reader must see.
        checks.sort_by_key(|c| c.outcome.allowed());
        let mut ids: Vec<String> = checks.iter().map(|c| c.nacl_id.clone()).collect();
        ids.extend(unread.iter().cloned());
        dedup_keep_order(&mut ids);
        let total = ids.len();
        let (verdict, note) =
            if let Some(drop) = checks.first().and_then(|c| c.outcome.drops().next()) {
                let rule = match drop.rule {
                    NaclRuleRef::Entry { rule_number } => format!("rule {rule_number} deny"),
                    NaclRuleRef::ImplicitDeny => "implicit deny (*)".to_string(),
                };
                (Verdict::Drop, format!("{direction} {rule}"))
            } else if !unread.is_empty() {
                (Verdict::Unknown, "not read".to_string())
            } else if let Some(check) = checks.first() {
                let rules: Vec<String> = check
                    .outcome
                    .allowing_rules()
                    .iter()
                    .map(u16::to_string)
                    .collect();
                let note = match rules.as_slice() {
                    [] => format!("{direction} allowed"),
                    [one] => format!("{direction} rule {one} allows"),
                    many => format!("{direction} rules {} allow", many.join(", ")),
                };
                (Verdict::Pass, note)
            } else if in_subnet {
                (
                    Verdict::NotCrossed,
                    "same subnet: no NACL crossed".to_string(),
                )
            } else {
                (Verdict::Unknown, "not evaluated".to_string())
            };
        Hop {
            column,
            verdict,
            ids,
            total,
            note,
        }
    }

    /// The security groups of one side for the targets of a lane: every evaluation whose
    /// targets are among them.
    fn security_groups(&self, side: SgSide, port: u16, targets: &[Slot]) -> Hop {
        let column = match side {
            SgSide::LbEgress => Column::LbSecurityGroups,
            SgSide::TargetIngress => Column::TargetSecurityGroups,
        };
        if side == SgSide::LbEgress && self.ctx.snapshot.load_balancer.security_groups.is_empty() {
            return Hop {
                column,
                verdict: Verdict::NotCrossed,
                ids: Vec::new(),
                total: 0,
                note: "no security groups".into(),
            };
        }
        let mut relevant: Vec<&SgCheck> = targets
            .iter()
            .flat_map(|slot| &self.groups[*slot as usize])
            .copied()
            .filter(|c| c.side == side && c.port == port)
            .collect();
        // Each evaluation once, in the analysis's order.
        relevant.sort_by_key(|c| std::ptr::from_ref::<SgCheck>(c) as usize);
        relevant.dedup_by(|a, b| std::ptr::eq(*a, *b));
        // The denying evaluations first, then the unknown: they decide the hop.
        relevant.sort_by_key(|c| match c.outcome {
            SgOutcome::Denied { .. } => 0,
            SgOutcome::Unknown { .. } => 1,
            SgOutcome::Allowed { .. } => 2,
        });
        let mut ids: Vec<String> = relevant
            .iter()
            .flat_map(|c| c.group_ids.iter().cloned())
            .collect();
        dedup_keep_order(&mut ids);
        let total = ids.len();
        let direction = match side {
            SgSide::LbEgress => "egress",
            SgSide::TargetIngress => "ingress",
        };
        let (verdict, note) = match relevant.first().map(|c| &c.outcome) {
            None => (Verdict::Unknown, "not evaluated".to_string()),
            Some(SgOutcome::Denied { uncovered }) if uncovered.is_empty() => (
                Verdict::Drop,
                format!("no {direction} rule admits port {port}"),
            ),
            Some(SgOutcome::Denied { uncovered }) => (
                Verdict::Drop,
                format!(
                    "{direction} port {port} not admitted from {}",
                    uncovered.join(", ")
                ),
            ),
            Some(SgOutcome::Unknown { missing }) => (
                Verdict::Unknown,
                format!("not read: {}", missing.join(", ")),
            ),
            Some(SgOutcome::Allowed { by }) => {
                let via = by.first().map(|a| a.via.as_str()).unwrap_or("a rule");
                (
                    Verdict::Pass,
                    format!("{direction} {port} allowed via {via}"),
                )
            }
        };
        Hop {
            column,
            verdict,
            ids,
            total,
            note,
        }
    }

    /// The targets of a lane, the unhealthy named first.
    fn targets(&self, targets: &[Slot]) -> Hop {
        let unhealthy: Vec<Slot> = targets
            .iter()
            .copied()
            .filter(|slot| self.health[*slot as usize] == HealthClass::Unhealthy)
            .collect();
        let total = targets.len();
        let (verdict, named, note) = if total == 0 {
            (Verdict::Drop, Vec::new(), "no targets".to_string())
        } else if unhealthy.len() == total {
            let note = if total == 1 {
                "fails its health checks".to_string()
            } else {
                format!("all {total} fail health checks")
            };
            (Verdict::Drop, unhealthy, note)
        } else if !unhealthy.is_empty() {
            let note = format!("{} of {total} fail health checks", unhealthy.len());
            (Verdict::Degraded, unhealthy, note)
        } else {
            (
                Verdict::Pass,
                targets.to_vec(),
                count(total, "target", "targets"),
            )
        };
        Hop {
            column: Column::Targets,
            verdict,
            ids: self.first_named(&named),
            total,
            note,
        }
    }

    /// A zone whose nodes reach no target: nothing to cross, nowhere to send.
    fn no_targets_row(&self, lb_subnet: &str) -> PathRow {
        let snapshot = self.ctx.snapshot;
        let registered = snapshot.targets().count();
        let note = if registered == 0 {
            "no registered targets".to_string()
        } else {
            format!(
                "none of the {} reachable from this zone",
                count(registered, "target", "targets")
            )
        };
        let groups: Vec<String> = snapshot
            .target_groups
            .iter()
            .map(|g| g.name.clone())
            .collect();
        let mut hops = vec![self.lb_nodes(lb_subnet)];
        hops.extend(
            [
                Column::LbSecurityGroups,
                Column::LbSubnetNacl,
                Column::TargetSubnetNacl,
                Column::TargetSecurityGroups,
            ]
            .map(|column| Hop {
                column,
                verdict: Verdict::NotCrossed,
                ids: Vec::new(),
                total: 0,
                note: "nothing to reach".into(),
            }),
        );
        hops.push(Hop {
            column: Column::Targets,
            verdict: Verdict::Drop,
            total: groups.len(),
            ids: groups,
            note,
        });
        PathRow {
            target_subnets: Vec::new(),
            target_zones: Vec::new(),
            targets: 0,
            lanes: vec![Lane {
                kind: LaneKind::Request,
                label: "request".into(),
                traffic: "requests".into(),
                hops,
            }],
        }
    }
}

/// A stateful group's replies: security groups let them back whatever their rules.
fn stateful(column: Column) -> Hop {
    Hop {
        column,
        verdict: Verdict::NotCrossed,
        ids: Vec::new(),
        total: 0,
        note: "stateful: replies pass".into(),
    }
}

/// Target subnets that make one row, and their lanes while there is only one of them.
struct Group<'f> {
    signature: Signature,
    subnets: Vec<&'f str>,
    flows: Vec<&'f Flow>,
    lanes: Option<Vec<Lane>>,
}

/// What makes two target subnets' paths one row: the same lanes, and wherever a hop does not
/// pass, the same resources and the same deciding entry.
#[derive(Debug, PartialEq, Eq)]
struct Signature {
    worst: Verdict,
    /// Per lane, its label and its hops.
    lanes: Vec<(String, Vec<HopSignature>)>,
}

/// A hop's column and verdict, and where it does not pass, its resources and deciding entry.
type HopSignature = (Column, Verdict, Option<(Vec<String>, String)>);

fn signature(lanes: &[Lane]) -> Signature {
    let worst = lanes
        .iter()
        .flat_map(|l| &l.hops)
        .map(|h| h.verdict)
        .max()
        .unwrap_or(Verdict::Pass);
    let lanes = lanes
        .iter()
        .map(|lane| {
            let hops = lane
                .hops
                .iter()
                .map(|hop| {
                    let decisive = matches!(hop.verdict, Verdict::Drop | Verdict::Unknown)
                        && hop.column != Column::Targets;
                    let detail = decisive.then(|| (hop.ids.clone(), hop.note.clone()));
                    (hop.column, hop.verdict, detail)
                })
                .collect();
            (lane.label.clone(), hops)
        })
        .collect();
    Signature { worst, lanes }
}

fn dedup_keep_order(ids: &mut Vec<String>) {
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

//! `client-ip-not-admitted`: an NLB target group that preserves the client's address, behind
//! security groups or NACLs that admit no client.
//!
//! With `preserve_client_ip.enabled` (the default for instance targets, and for IP targets
//! on UDP), a target sees each packet from the client's own address, not the NLB's. Its
//! security groups and its subnet's NACL must then admit the clients, not only the NLB's
//! subnets. Health checks still come from the NLB's nodes, so the targets stay healthy while
//! every client connection times out: the trap is invisible in target health. An NLB with
//! security groups of its own lets the targets' groups reference them instead, so only the
//! NACLs are checked then.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{count, Context};
use crate::finding::{Command, Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::netcheck::addr::{AddrRange, Family, FlowBox};
use crate::netcheck::clients::{self, Clients};
use crate::netcheck::nacl::{CompiledAcl, TCP};
use crate::netcheck::sg::{self, SgPeer};
use crate::netcheck::{Direction, NaclRuleRef, SgOutcome};
use crate::shell::Script;
use crate::snapshot::{Interface, PortRange, Snapshot, TargetGroup};

const NAME: &str = "client IP preservation: targets admit the clients";

/// Whether a group preserves the client's address, and whether that is the AWS default
/// rather than a value read from its attributes.
pub fn preserves_client_ip(group: &TargetGroup) -> (bool, bool) {
    if always_preserves(group) {
        return (true, false);
    }
    if let Some(read) = group.preserve_client_ip {
        return (read, false);
    }
    (group.target_type.eq_ignore_ascii_case("instance"), true)
}

/// UDP, TCP_UDP, QUIC and TCP_QUIC groups always preserve the client's address (AWS offers
/// no way to turn it off for them). Their rules are not TCP's, which is all the path checks
/// evaluate, so these groups are not judged here.
pub fn always_preserves(group: &TargetGroup) -> bool {
    group.protocol.as_deref().is_some_and(|p| {
        let p = p.trim().to_ascii_uppercase();
        p.contains("UDP") || p.contains("QUIC")
    })
}

/// One place where the clients are stopped.
enum Blocked {
    SecurityGroups {
        groups: Vec<String>,
        port: u16,
    },
    Nacl {
        nacl_id: String,
        subnet_id: String,
        egress: bool,
        ports: PortRange,
        rule: NaclRuleRef,
    },
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    if ctx.kind() != LbKind::Network {
        return RuleOutput::default();
    }
    let snapshot = ctx.snapshot;
    let mut out = RuleOutput::default();
    let mut checked_groups = Vec::new();
    let mut unjudged = Vec::new();
    for group in &snapshot.target_groups {
        let (preserves, _) = preserves_client_ip(group);
        if !preserves || group.target_type.eq_ignore_ascii_case("lambda") {
            continue;
        }
        if always_preserves(group) || located(group).is_empty() {
            unjudged.push(group.name.clone());
            continue;
        }
        checked_groups.push(group.name.clone());
        let (blocked, families) = blocked_paths(snapshot, group);
        if !blocked.is_empty() {
            out.findings.push(finding(ctx, group, &blocked, &families));
        }
    }
    let status = if !out.findings.is_empty() {
        CheckStatus::Problem
    } else if !unjudged.is_empty() {
        CheckStatus::Incomplete
    } else if checked_groups.is_empty() {
        CheckStatus::NotApplicable
    } else {
        CheckStatus::Ok
    };
    let detail = if !unjudged.is_empty() && out.findings.is_empty() {
        format!(
            "{} preserve the client's address but were not judged: no target located, or a UDP or QUIC group (only TCP rules are evaluated)",
            list_some(&unjudged, 3)
        )
    } else if checked_groups.is_empty() {
        "no target group preserves the client's address: the targets see the NLB's own addresses"
            .to_string()
    } else if out.findings.is_empty() {
        format!(
            "{} preserve the client's address, and their security groups and NACLs admit clients",
            list_some(&checked_groups, 3)
        )
    } else {
        out.findings
            .iter()
            .map(|f| f.title.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    out.checked.push(Check::new(NAME, status, detail));
    out
}

/// The located targets of a group with their address family.
fn located(group: &TargetGroup) -> Vec<(&Interface, Family, u16)> {
    group
        .targets
        .iter()
        .filter_map(|t| {
            let interface = t.interface()?;
            let ip = interface.private_ip.parse::<IpAddr>().ok()?;
            Some((interface, AddrRange::from_ip(ip).family, t.port))
        })
        .collect()
}

/// Where the group's clients are stopped, and the client families that were checked.
fn blocked_paths(snapshot: &Snapshot, group: &TargetGroup) -> (Vec<Blocked>, Vec<Clients>) {
    let mut by_groups: BTreeSet<(Vec<String>, u16, Family)> = BTreeSet::new();
    let mut by_subnet: BTreeSet<(String, u16, Family)> = BTreeSet::new();
    for (interface, family, port) in located(group) {
        let mut groups = interface.security_groups.clone();
        groups.sort();
        groups.dedup();
        by_groups.insert((groups, port, family));
        by_subnet.insert((interface.subnet_id.clone(), port, family));
    }
    let mut families: BTreeMap<Family, Clients> = BTreeMap::new();
    let mut clients_of = |family: Family| {
        families
            .entry(family)
            .or_insert_with(|| clients::of(snapshot, family))
            .clone()
    };
    let mut blocked = Vec::new();
    // The NLB's own security groups can be referenced by the targets' instead.
    if snapshot.load_balancer.security_groups.is_empty() {
        for (groups, port, family) in by_groups {
            let clients = clients_of(family);
            if clients.ranges.is_empty() {
                continue;
            }
            let peer = SgPeer {
                groups: &[],
                addrs: clients.ranges.clone(),
            };
            // Denied with nothing covered: no rule admits any client at all.
            if let SgOutcome::Denied { uncovered } =
                sg::evaluate(snapshot, &groups, Direction::Ingress, port, &peer)
            {
                if uncovered.is_empty() {
                    blocked.push(Blocked::SecurityGroups { groups, port });
                }
            }
        }
    }
    for (subnet_id, port, family) in by_subnet {
        let clients = clients_of(family);
        let Some(acl) = snapshot
            .subnet(&subnet_id)
            .and_then(|s| s.network_acl_id.as_deref())
            .and_then(|id| snapshot.network_acl(id))
        else {
            continue;
        };
        if clients.ranges.is_empty() {
            continue;
        }
        let compiled = CompiledAcl::new(acl);
        for (egress, ports) in [
            (false, PortRange::single(port)),
            (true, PortRange::EPHEMERAL),
        ] {
            let flows: Vec<FlowBox> = clients
                .ranges
                .iter()
                .map(|addrs| FlowBox {
                    addrs: *addrs,
                    ports,
                })
                .collect();
            let outcome = compiled.evaluate(Direction::of_egress(egress), TCP, &flows);
            if !outcome.decisions.is_empty() && outcome.decisions.iter().all(|d| !d.allow) {
                blocked.push(Blocked::Nacl {
                    nacl_id: acl.id.clone(),
                    subnet_id: subnet_id.clone(),
                    egress,
                    ports,
                    rule: outcome.decisions[0].rule,
                });
            }
        }
    }
    (blocked, families.into_values().collect())
}

fn rule_name(rule: NaclRuleRef) -> String {
    match rule {
        NaclRuleRef::Entry { rule_number } => format!("rule {rule_number}"),
        NaclRuleRef::ImplicitDeny => "the `*` deny".into(),
    }
}

fn blocked_evidence(blocked: &Blocked, clients: &str) -> Evidence {
    match blocked {
        Blocked::SecurityGroups { groups, port } => Evidence::SecurityGroup {
            group_ids: groups.clone(),
            direction: Direction::Ingress,
            port: *port,
            peer_groups: Vec::new(),
            summary: format!(
                "{} ingress: no rule admits TCP {port} from {clients}",
                groups.join(" + ")
            ),
        },
        Blocked::Nacl {
            nacl_id,
            subnet_id,
            egress,
            ports,
            rule,
        } => Evidence::observation(if *egress {
            format!("NACL {nacl_id} of target subnet {subnet_id}, egress: {} drops the replies to {clients} (ports {}-{})", rule_name(*rule), ports.from, ports.to)
        } else {
            format!("NACL {nacl_id} of target subnet {subnet_id}, ingress: {} drops TCP {}-{} from {clients}", rule_name(*rule), ports.from, ports.to)
        }),
    }
}

fn finding(
    ctx: &Context<'_>,
    group: &TargetGroup,
    blocked: &[Blocked],
    families: &[Clients],
) -> Finding {
    let lb = &ctx.snapshot.load_balancer;
    let internal = lb.is_internal();
    let clients = families
        .iter()
        .map(|c| c.described.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let stoppers: Vec<String> = blocked
        .iter()
        .map(|b| match b {
            Blocked::SecurityGroups { groups, port } => {
                format!("{} (TCP {port})", groups.join(" + "))
            }
            Blocked::Nacl {
                nacl_id, egress, ..
            } => format!(
                "NACL {nacl_id} ({})",
                if *egress { "egress" } else { "ingress" }
            ),
        })
        .collect();
    let title = format!(
        "Clients of {} cannot reach the targets of {}: it preserves the client's address, and {} {} no client",
        lb.name,
        group.name,
        list_some(&stoppers, 3),
        if stoppers.len() == 1 { "admits" } else { "admit" }
    );
    let (fix, group_ids) = fix(ctx, group, blocked);
    let mut resources: Vec<String> = vec![group.resource_id()];
    resources.extend(group_ids);
    resources.extend(blocked.iter().filter_map(|b| match b {
        Blocked::Nacl { nacl_id, .. } => Some(nacl_id.clone()),
        Blocked::SecurityGroups { .. } => None,
    }));
    resources.dedup();
    Finding {
        code: FindingCode::ClientIpNotAdmitted,
        severity: Severity::Critical,
        // An internal NLB's clients may also come over peering, a VPN or Direct Connect,
        // from ranges the snapshot does not know.
        confidence: Some(if internal { Confidence::Likely } else { Confidence::Confirmed }),
        confidence_reason: Some(if internal {
            "no address of the VPC outside the NLB's subnets is admitted; clients from peered or on-premises networks are not known here".into()
        } else {
            "the security groups and NACLs were evaluated for every address outside the VPC".into()
        }),
        title,
        explanation: "A Network Load Balancer that preserves the client's address forwards each packet with the client's own source address. The target's security groups and its subnet's NACL judge that address, not the NLB's. Rules written for a load balancer in front, admitting only the VPC or the load balancer's subnets, then drop every client connection, while the health checks, which come from the NLB's nodes, still pass.".into(),
        evidence: evidence(ctx, group, blocked, &clients),
        fix,
        resources,
        remedies: Vec::new(),
    }
}

/// The setting, where the clients are stopped, and why health shows nothing.
fn evidence(
    ctx: &Context<'_>,
    group: &TargetGroup,
    blocked: &[Blocked],
    clients: &str,
) -> Vec<Evidence> {
    let (_, assumed) = preserves_client_ip(group);
    let healthy = group
        .targets
        .iter()
        .filter(|t| t.health.class() == crate::snapshot::HealthClass::Healthy)
        .count();
    let mut evidence = vec![Evidence::setting(
        "preserve_client_ip.enabled",
        true,
        if assumed {
            format!(
                "{} preserves the client's address (not read: the default for {} targets on {})",
                group.name,
                group.target_type,
                group.protocol.as_deref().unwrap_or("TCP")
            )
        } else {
            format!("{} has preserve_client_ip.enabled=true", group.name)
        },
    )];
    evidence.extend(blocked.iter().map(|b| blocked_evidence(b, clients)));
    evidence.push(Evidence::observation(format!(
        "{} of {} healthy: health checks come from the NLB's own addresses, which the targets admit, so health shows nothing wrong",
        healthy,
        count(group.targets.len(), "target", "targets")
    )));
    evidence.extend(ctx.metric_evidence("TCP_Target_Reset_Count", "Sum", ""));
    evidence.extend(ctx.metric_evidence("NewFlowCount", "Sum", ""));
    evidence
}

/// The fix: preservation off (never possible for UDP), or the clients admitted; and the
/// targets' security groups that stop the clients.
fn fix(ctx: &Context<'_>, group: &TargetGroup, blocked: &[Blocked]) -> (Fix, Vec<String>) {
    let lb = &ctx.snapshot.load_balancer;
    let region = ctx.region();
    let udp = always_preserves(group);
    let mut commands = Vec::new();
    let mut durable = None;
    if let (Some(arn), false) = (group.arn.as_deref(), udp) {
        commands.push(Command::new(
            "Turn client IP preservation off: the targets then see the NLB's addresses, which they already admit",
            fixes::target_group_attribute(region, arn, "preserve_client_ip.enabled", "false"),
        ));
        durable = Some(fixes::nlb_service_attribute(
            ctx,
            fixes::NLB_GROUP_ATTRIBUTES_KEY,
            "preserve_client_ip.enabled",
            "false",
            "client IP preservation off",
        ));
    }
    let group_ids: BTreeSet<&str> = blocked
        .iter()
        .filter_map(|b| match b {
            Blocked::SecurityGroups { groups, .. } => Some(groups.iter().map(String::as_str)),
            Blocked::Nacl { .. } => None,
        })
        .flatten()
        .collect();
    if !group_ids.is_empty() {
        let mut words = argv![
            "aws",
            "ec2",
            "describe-security-groups",
            "--region",
            region,
            "--group-ids"
        ];
        words.extend(
            group_ids
                .iter()
                .map(|g| crate::shell::Word::from(g.to_string())),
        );
        commands.push(Command::new(
            "See what the targets' security groups admit",
            Script::line(words),
        ));
    }
    let mut notes = vec![
        "To keep the clients' addresses instead, admit the real client CIDRs on the target port: list them in the Service's spec.loadBalancerSourceRanges and let the AWS Load Balancer Controller manage the backend rules, or add them to the targets' security groups and NACLs. elbmedic never opens 0.0.0.0/0 or ::/0.".into(),
        "An application that needs the client address with preservation off can read it from proxy protocol v2 (the target group attribute proxy_protocol_v2.enabled, if the application speaks it).".into(),
    ];
    if lb.is_internal() {
        notes.push("This NLB is internal: with the client's address preserved, a pod that connects to it and is sent to a target on its own node times out (the reply never leaves the node: the hairpin the NLB guide warns of). Turning preservation off fixes that too.".into());
    }
    if udp {
        notes.push("A UDP or TCP_UDP target group always preserves the client's address: admitting the clients is the only fix.".into());
    }
    let fix = Fix {
        summary: "Turn client IP preservation off on the target group, or admit the real client CIDRs on the target port in the targets' security groups and NACLs.".into(),
        commands,
        durable,
        notes,
    };
    (fix, group_ids.iter().map(|g| g.to_string()).collect())
}

//! `nlb-sg-blocks-clients`: the NLB's own security groups admit no client on a listener port.
//!
//! An NLB created with security groups filters its clients by their inbound rules, and
//! `SecurityGroupBlockedFlowCount_Inbound_TCP` counts what they drop. Groups can be attached
//! only when the NLB is created, so an NLB without them is not checked here. Dropped flows on
//! a port the groups admit from somewhere are an allow-list at work, not a fault: the finding
//! needs a listener port that no rule admits at all. Health checks leave by the outbound rules,
//! which the security-group path check already holds against every target.

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context};
use crate::finding::{
    Command, Confidence, DurableFix, Evidence, Finding, FindingCode, Fix, Severity,
};
use crate::netcheck::addr::Family;
use crate::netcheck::sg::protocol_allows_tcp_port;
use crate::netcheck::Direction;
use crate::shell::{Script, Word};
use crate::snapshot::SgRule;

const NAME: &str = "NLB security groups admit the clients";
const INBOUND: &str = "SecurityGroupBlockedFlowCount_Inbound_TCP";
const OUTBOUND: &str = "SecurityGroupBlockedFlowCount_Outbound_TCP";

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    if ctx.kind() != LbKind::Network {
        return RuleOutput::default();
    }
    let lb = &ctx.snapshot.load_balancer;
    if lb.security_groups.is_empty() {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::NotApplicable,
            "the NLB was created without security groups (they can be attached only at creation): its clients are filtered at the targets",
        ));
    }
    let dropped = ctx.sum(INBOUND).unwrap_or(0.0);
    let closed = closed_ports(ctx);
    if dropped < 1.0 || closed.is_empty() {
        let outbound = ctx.sum(OUTBOUND).unwrap_or(0.0);
        let mut detail = format!("{} flows dropped inbound", format_value(dropped));
        if dropped >= 1.0 {
            detail.push_str(
                ", all on ports the groups admit from some sources: an allow-list at work",
            );
        }
        if outbound > 0.0 {
            detail.push_str(&format!("; {} dropped outbound (towards targets or health checks: see the security-group path check)", format_value(outbound)));
        }
        return RuleOutput::only(Check::new(NAME, CheckStatus::Ok, detail));
    }
    let finding = finding(ctx, dropped, &closed);
    RuleOutput {
        checked: vec![Check::new(
            NAME,
            CheckStatus::Problem,
            finding.title.clone(),
        )],
        findings: vec![finding],
    }
}

/// Listener ports (TCP and TLS) that no inbound rule of the NLB's groups admits from
/// anywhere of a family the NLB serves: no CIDR of that family, no prefix list, no group. A
/// rule admitting some source, whoever the clients are (a partner's range, a peered VPC), is
/// a choice, not a closed port.
fn closed_ports(ctx: &Context<'_>) -> Vec<(u16, Family)> {
    let snapshot = ctx.snapshot;
    let lb = &snapshot.load_balancer;
    let mut families = vec![Family::Ipv4];
    if lb.is_dual_stack() {
        families.push(Family::Ipv6);
    }
    let rules: Vec<&SgRule> = lb
        .security_groups
        .iter()
        .filter_map(|id| snapshot.security_group(id))
        .flat_map(|g| &g.ingress)
        .collect();
    let mut closed = Vec::new();
    for listener in lb.listeners.iter().take(crate::snapshot::MAX_LISTENERS) {
        let protocol = listener.protocol.trim().to_ascii_uppercase();
        if protocol != "TCP" && protocol != "TLS" {
            continue;
        }
        for family in &families {
            let admitted = rules
                .iter()
                .filter(|r| protocol_allows_tcp_port(r, listener.port))
                .any(|r| {
                    let ranges = match family {
                        Family::Ipv4 => &r.ipv4_ranges,
                        Family::Ipv6 => &r.ipv6_ranges,
                    };
                    !ranges.is_empty()
                        || !r.prefix_list_ids.is_empty()
                        || !r.security_groups.is_empty()
                });
            if !admitted {
                closed.push((listener.port, *family));
            }
        }
    }
    closed.sort_unstable();
    closed.dedup();
    closed
}

/// `8883`, or `8883 (IPv6)` on a dual-stack NLB, where the family must be named.
fn port_text(ctx: &Context<'_>, port: u16, family: Family) -> String {
    match ctx.snapshot.load_balancer.is_dual_stack() {
        false => port.to_string(),
        true => format!("{port} ({})", family.name()),
    }
}

fn finding(ctx: &Context<'_>, dropped: f64, closed: &[(u16, Family)]) -> Finding {
    let lb = &ctx.snapshot.load_balancer;
    let ports: Vec<String> = closed.iter().map(|(p, f)| port_text(ctx, *p, *f)).collect();
    let groups = lb.security_groups.join(" + ");
    let title = format!(
        "{}'s security groups {groups} admit no client on port {}: they dropped {} flows",
        lb.name,
        list_some(&ports, 4),
        format_value(dropped)
    );
    let mut evidence: Vec<Evidence> = ctx
        .metric_evidence(INBOUND, "Sum", "")
        .into_iter()
        .collect();
    for (port, family) in closed {
        let family = family.name();
        evidence.push(Evidence::SecurityGroup {
            group_ids: lb.security_groups.clone(),
            direction: Direction::Ingress,
            port: *port,
            peer_groups: Vec::new(),
            summary: format!("{groups} ingress: no rule admits TCP {port} from any {family} address, prefix list or security group"),
        });
    }
    let mut describe = argv![
        "aws",
        "ec2",
        "describe-security-groups",
        "--region",
        ctx.region(),
        "--group-ids"
    ];
    describe.extend(lb.security_groups.iter().map(|g| Word::from(g.clone())));
    let manifest = "spec:\n  loadBalancerSourceRanges:\n  - CLIENT_CIDR   # each network your clients connect from; never 0.0.0.0/0 unless the service is public\n".to_string();
    Finding {
        code: FindingCode::NlbSgBlocksClients,
        severity: Severity::Critical,
        confidence: Some(Confidence::Confirmed),
        confidence_reason: Some(format!("{INBOUND} counted dropped flows, and no inbound rule admits the listener port")),
        title,
        explanation: "A Network Load Balancer with security groups checks every new client flow against their inbound rules, like an instance does. A listener port that no rule admits drops every client, which SecurityGroupBlockedFlowCount_Inbound counts; the targets never see the traffic and stay healthy.".into(),
        evidence,
        fix: Fix {
            summary: format!("Admit the clients' CIDRs on port {} in {groups}.", list_some(&ports, 4)),
            commands: vec![Command::new("See the groups' inbound rules", Script::line(describe))],
            durable: Some(DurableFix {
                description: "Under the AWS Load Balancer Controller, the Service's loadBalancerSourceRanges become the NLB security group's inbound rules: list the client networks there".into(),
                command: None,
                manifest: Some(manifest),
                warning: "A rule added by hand to a group the controller manages is removed at its next reconcile: change the Service instead.".into(),
            }),
            notes: vec!["elbmedic does not add client CIDRs itself: it cannot know who your clients are, and it never opens 0.0.0.0/0 or ::/0.".into()],
        },
        resources: lb.security_groups.clone(),
        remedies: Vec::new(),
    }
}

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
use crate::netcheck::clients;
use crate::netcheck::sg::{self, protocol_allows_tcp_port, SgPeer};
use crate::netcheck::{Direction, SgOutcome};
use crate::shell::{Script, Word};

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
    if dropped <= 0.0 || closed.is_empty() {
        let outbound = ctx.sum(OUTBOUND).unwrap_or(0.0);
        let mut detail = format!("{} flows dropped inbound", format_value(dropped));
        if dropped > 0.0 {
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

/// Listener ports (TCP and TLS) that no inbound rule of the NLB's groups admits from any
/// client address or security group.
fn closed_ports(ctx: &Context<'_>) -> Vec<u16> {
    let snapshot = ctx.snapshot;
    let lb = &snapshot.load_balancer;
    let mut families = vec![Family::Ipv4];
    if lb.is_dual_stack() {
        families.push(Family::Ipv6);
    }
    let mut closed: Vec<u16> = lb
        .listeners
        .iter()
        .filter(|l| !l.protocol.eq_ignore_ascii_case("UDP"))
        .map(|l| l.port)
        .filter(|port| {
            let referenced = lb
                .security_groups
                .iter()
                .filter_map(|id| snapshot.security_group(id))
                .any(|g| {
                    g.ingress.iter().any(|r| {
                        !r.security_groups.is_empty() && protocol_allows_tcp_port(r, *port)
                    })
                });
            !referenced && families.iter().all(|family| {
                let clients = clients::of(snapshot, *family);
                let peer = SgPeer {
                    groups: &[],
                    addrs: clients.ranges,
                };
                matches!(
                    sg::evaluate(snapshot, &lb.security_groups, Direction::Ingress, *port, &peer),
                    SgOutcome::Denied { uncovered } if uncovered.is_empty()
                )
            })
        })
        .collect();
    closed.sort_unstable();
    closed.dedup();
    closed
}

fn finding(ctx: &Context<'_>, dropped: f64, closed: &[u16]) -> Finding {
    let lb = &ctx.snapshot.load_balancer;
    let ports: Vec<String> = closed.iter().map(ToString::to_string).collect();
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
    for port in closed {
        evidence.push(Evidence::SecurityGroup {
            group_ids: lb.security_groups.clone(),
            direction: Direction::Ingress,
            port: *port,
            peer_groups: Vec::new(),
            summary: format!("{groups} ingress: no rule admits TCP {port} from any client address or security group"),
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

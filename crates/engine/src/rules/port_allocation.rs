//! `port-allocation-exhausted`: an NLB that ran out of source ports towards a target.
//!
//! When an NLB does not preserve the client's address, it opens each connection to a target
//! from one of its own addresses and ports: about 55,000 concurrent connections per unique
//! target (address and port). Past that, new flows fail and `PortAllocationErrorCount` counts
//! them. More targets, or preserving the client's address, spreads or removes the limit.

use super::client_ip::preserves_client_ip;
use super::{Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::context::{count, format_value, Context};
use crate::finding::{Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;

const NAME: &str = "NLB source ports towards the targets";
const METRIC: &str = "PortAllocationErrorCount";

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    if ctx.kind() != LbKind::Network {
        return RuleOutput::default();
    }
    let errors = ctx.sum(METRIC).unwrap_or(0.0);
    if errors < 1.0 {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Ok,
            format!("no port allocation error ({METRIC} 0 or no data)"),
        ));
    }
    let lb = &ctx.snapshot.load_balancer;
    let translated: Vec<_> = ctx
        .snapshot
        .target_groups
        .iter()
        .filter(|g| !preserves_client_ip(g).0)
        .collect();
    let title = format!(
        "{} could not open {} connections to its targets: it ran out of source ports (about 55,000 per target)",
        lb.name,
        format_value(errors)
    );
    let mut evidence: Vec<Evidence> = [METRIC, "NewFlowCount"]
        .iter()
        .filter_map(|m| ctx.metric_evidence(m, "Sum", ""))
        .collect();
    evidence.extend(ctx.metric_evidence("ActiveFlowCount", "Maximum", ""));
    for group in &translated {
        evidence.push(Evidence::setting(
            "preserve_client_ip.enabled",
            false,
            format!(
                "{} translates the client's address to the NLB's, across {}",
                group.name,
                count(group.targets.len(), "target", "targets")
            ),
        ));
    }
    let mut commands = vec![fixes::describe_health(
        ctx,
        translated.first().and_then(|g| g.arn.as_deref()),
    )];
    let mut durable = None;
    if let Some(arn) = translated.iter().find_map(|g| g.arn.as_deref()) {
        commands.push(crate::finding::Command::new(
            "Or preserve the client's address, which takes the NLB's ports out of the connection (the targets' security groups and NACLs must then admit the clients)",
            fixes::target_group_attribute(ctx.region(), arn, "preserve_client_ip.enabled", "true"),
        ));
        durable = Some(fixes::nlb_service_attribute(
            ctx,
            fixes::NLB_GROUP_ATTRIBUTES_KEY,
            "preserve_client_ip.enabled",
            "true",
            "client IP preservation on",
        ));
    }
    let finding = Finding {
        code: FindingCode::PortAllocationExhausted,
        severity: Severity::High,
        confidence: Some(Confidence::Confirmed),
        confidence_reason: Some(format!("{METRIC} counts exactly these failures")),
        title: title.clone(),
        explanation: "Without client IP preservation, a Network Load Balancer connects to a target from its own address, so each target address and port can hold about 55,000 concurrent connections from one NLB node. A few targets with many long-lived connections (a connection pool per client, a message broker) reach that, and new flows fail while the targets themselves are idle.".into(),
        evidence,
        fix: Fix {
            summary: "Spread the connections over more targets (more replicas, or more ports per pod), or preserve the client's address so the NLB's ports are not used.".into(),
            commands,
            durable,
            notes: vec!["Scaling the workload adds targets: each new pod IP (IP targets) or node (instance targets) brings another 55,000 ports.".into()],
        },
        resources: translated.iter().map(|g| g.resource_id()).collect(),
        remedies: Vec::new(),
    };
    RuleOutput {
        checked: vec![Check::new(NAME, CheckStatus::Problem, title)],
        findings: vec![finding],
    }
}

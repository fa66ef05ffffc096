//! `zone-concentrated`: most of the 5xx come from the load balancer node in one zone. Runs
//! after the other rules: the breakdown is evidence for every cause, and a finding of its own
//! only when no cause already names that zone's subnet. On an ALB (or a Classic LB with
//! cross-zone on) the zone points at the LB node's subnet, its NACL and route table; on a
//! Classic LB with cross-zone off, at that zone's own targets too.

use super::{Check, CheckStatus, PostOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context};
use crate::finding::{Command, Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::shell::{Script, Word};
use crate::snapshot::HealthClass;
use crate::zones::Zones;

/// Zones whose targets are all unhealthy or draining, with those targets.
fn zones_down(ctx: &Context<'_>) -> Vec<(String, Vec<String>)> {
    let mut zones: std::collections::BTreeMap<&str, (bool, Vec<String>)> = Default::default();
    for (_, target) in ctx.snapshot.targets() {
        let Some(zone) = target.availability_zone.as_deref() else {
            continue;
        };
        let entry = zones.entry(zone).or_insert((true, Vec::new()));
        entry.0 &= matches!(
            target.health.class(),
            HealthClass::Unhealthy | HealthClass::Draining
        );
        entry.1.push(target.id.clone());
    }
    zones
        .into_iter()
        .filter(|(_, (down, _))| *down)
        .map(|(zone, (_, ids))| (zone.to_string(), ids))
        .collect()
}

/// The post-pass rule: the 5xx per zone as evidence for every cause, and the zone finding,
/// placed by its severity, when it decides alone.
pub fn post(ctx: &Context<'_>, findings: &mut Vec<Finding>) -> PostOutput {
    let (zone, check) = link(ctx, findings);
    if let Some(zone) = zone {
        let at = findings
            .iter()
            .position(|f| f.severity > zone.severity)
            .unwrap_or(findings.len());
        findings.insert(at, zone);
    }
    PostOutput {
        checked: vec![check],
        ..PostOutput::default()
    }
}

/// Adds the breakdown to every cause (and to the health finding, the zones left without a
/// healthy target), and returns the zone finding when it decides.
pub fn link(ctx: &Context<'_>, findings: &mut [Finding]) -> (Option<Finding>, Check) {
    let down = zones_down(ctx);
    if let Some(health) = findings
        .iter_mut()
        .find(|f| f.code == FindingCode::TargetsUnhealthy)
    {
        for (zone, ids) in &down {
            health.evidence.push(Evidence::observation(format!(
                "Every target in {zone} is unhealthy or draining ({})",
                super::list_some(ids, 4)
            )));
        }
    }
    let name = "5xx by load balancer zone";
    let zones = Zones::of(ctx.snapshot);
    let Some(summary) = zones.summary() else {
        return (
            None,
            Check::new(
                name,
                CheckStatus::NotApplicable,
                "no per-zone 5xx in the window",
            ),
        );
    };
    for finding in findings.iter_mut().filter(|f| f.code.is_cause()) {
        finding
            .evidence
            .push(Evidence::observation(summary.clone()));
    }
    let Some((top, share)) = zones.dominant() else {
        return (
            None,
            Check::new(
                name,
                CheckStatus::Ok,
                format!("{summary}: no zone dominates"),
            ),
        );
    };
    let percent = (share * 100.0).round();
    let lb = &ctx.snapshot.load_balancer;
    let lb_subnets: Vec<&str> = ctx
        .snapshot
        .subnets
        .iter()
        .filter(|s| {
            lb.subnets.contains(&s.id) && s.availability_zone.as_deref() == Some(top.zone.as_str())
        })
        .map(|s| s.id.as_str())
        .collect();
    let named = findings
        .iter()
        .any(|f| f.code.is_cause() && f.resources.iter().any(|r| lb_subnets.contains(&r.as_str())));
    let check = Check::new(
        name,
        CheckStatus::Problem,
        format!("{percent} % in {}", top.zone),
    );
    if named {
        return (None, check);
    }
    let finding = finding(ctx, &zones, &top.zone, percent, summary, &lb_subnets);
    (Some(finding), check)
}

/// The zone finding: the node in `zone` answers `percent` % of the 5xx and no cause names its
/// subnets. With cross-zone off (Classic), its own targets are the suspects; otherwise what is
/// particular to the node: its subnet, NACL and route table.
fn finding(
    ctx: &Context<'_>,
    zones: &Zones,
    zone: &str,
    percent: f64,
    summary: String,
    lb_subnets: &[&str],
) -> Finding {
    let lb = &ctx.snapshot.load_balancer;
    let zone_targets: Vec<(String, HealthClass)> = ctx
        .snapshot
        .targets()
        .filter(|(_, t)| t.availability_zone.as_deref() == Some(zone))
        .map(|(_, t)| (t.id.clone(), t.health.class()))
        .collect();
    let own_targets = lb.kind == LbKind::Classic && lb.cross_zone == Some(false);
    let all_down = !zone_targets.is_empty()
        && zone_targets
            .iter()
            .all(|(_, c)| matches!(c, HealthClass::Unhealthy | HealthClass::Draining));
    let mut evidence = vec![Evidence::observation(summary)];
    if all_down {
        evidence.push(Evidence::observation(format!(
            "Every target in {} is unhealthy or draining ({})",
            zone,
            zone_targets
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let lines = subnet_commands(ctx, lb_subnets);
    let explanation = if own_targets {
        format!("This Classic LB has cross-zone load balancing off, so its node in {} sends only to the targets in {}: those targets, or the node's subnet, fail.", zone, zone)
    } else {
        format!("The load balancer node in {} answers most of the 5xx. The load balancer balances across zones, so the targets are the same for every node: look at what is particular to that node, its subnet ({}), the subnet's NACL and route table.", zone, if lb_subnets.is_empty() { "unknown".to_string() } else { lb_subnets.join(", ") })
    };
    Finding {
        code: FindingCode::ZoneConcentrated,
        severity: if all_down {
            Severity::High
        } else {
            Severity::Medium
        },
        confidence: Some(Confidence::Likely),
        confidence_reason: Some(format!(
            "{percent} % of {} 5xx came from the node in {}",
            format_value(zones.total),
            zone
        )),
        title: format!(
            "{percent} % of the 5xx come from the load balancer node in {}",
            zone
        ),
        explanation,
        evidence,
        fix: if own_targets {
            cross_zone_off_fix(ctx, zone, lines)
        } else {
            Fix {
                summary: format!("Compare the {} subnet's NACL and route table with the other zones' (the commands show them); until it is fixed, the other zones can carry the traffic.", zone),
                commands: if lines.is_empty() {
                    Vec::new()
                } else {
                    vec![Command::new(format!("The NACL and route table of the LB subnet in {}", zone), Script::lines(lines))]
                },
                durable: None,
                notes: Vec::new(),
            }
        },
        resources: lb_subnets.iter().map(|s| s.to_string()).collect(),
        remedies: Vec::new(),
    }
}

/// The NACL and route table of each of the load balancer's subnets in the zone.
fn subnet_commands(ctx: &Context<'_>, lb_subnets: &[&str]) -> Vec<Vec<Word>> {
    let region = ctx.region();
    let mut lines = Vec::new();
    for subnet in lb_subnets {
        lines.push(argv![
            "aws",
            "ec2",
            "describe-network-acls",
            "--region",
            region,
            "--filters",
            format!("Name=association.subnet-id,Values={subnet}")
        ]);
        lines.push(argv![
            "aws",
            "ec2",
            "describe-route-tables",
            "--region",
            region,
            "--filters",
            format!("Name=association.subnet-id,Values={subnet}")
        ]);
    }
    lines
}

/// With cross-zone load balancing off, the node in the hot zone sends only to that zone's
/// targets, and DNS keeps sending it a share of the clients: the other zones cannot carry its
/// traffic. Turning cross-zone on spreads every node over all targets; otherwise the zone needs
/// healthy capacity of its own.
fn cross_zone_off_fix(
    ctx: &Context<'_>,
    zone: &str,
    subnet_lines: Vec<Vec<crate::shell::Word>>,
) -> Fix {
    const ANNOTATION: &str =
        "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled";
    let lb = &ctx.snapshot.load_balancer;
    let mut commands = vec![
        Command::new(
            "Turn cross-zone load balancing on, so every node spreads over the targets of all zones",
            crate::fixes::classic_attributes(
                ctx,
                "{\"CrossZoneLoadBalancing\":{\"Enabled\":true}}".into(),
            ),
        ),
        Command::new(
            format!("See the health of the instances, {zone}'s among them"),
            Script::line(argv![
                "aws",
                "elb",
                "describe-instance-health",
                "--region",
                ctx.region(),
                "--load-balancer-name",
                &lb.name
            ]),
        ),
    ];
    if !subnet_lines.is_empty() {
        commands.push(Command::new(
            format!("The NACL and route table of the LB subnet in {zone}"),
            Script::lines(subnet_lines),
        ));
    }
    let manifest = format!("metadata:\n  annotations:\n    {ANNOTATION}: \"true\"");
    let durable = match &ctx.owner {
        crate::context::Owner::Service { namespace, name } => crate::finding::DurableFix {
            description: format!("Annotate Service {namespace}/{name} so the cloud provider keeps cross-zone load balancing on"),
            command: Some(crate::fixes::annotate_service(namespace, name, ANNOTATION, "true")),
            manifest: Some(manifest),
            warning: "Without the annotation the cloud provider may set cross-zone load balancing back at the next sync of the Service.".into(),
        },
        other => crate::finding::DurableFix {
            description: format!("Set the annotation on the Service that owns this load balancer ({})", other.describe()),
            command: None,
            manifest: Some(manifest),
            warning: "Without the annotation the cloud provider may set cross-zone load balancing back at the next sync of the Service.".into(),
        },
    };
    Fix {
        summary: format!(
            "Cross-zone load balancing is off, so the other zones cannot carry {zone}'s traffic: DNS keeps sending clients to the node in {zone}, which sends only to {zone}'s targets. Turn cross-zone load balancing on, or give {zone} healthy capacity of its own (more, or healthy, instances there)."
        ),
        commands,
        durable: Some(durable),
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::diagnosis::diagnose;
    use crate::finding::FindingCode;
    use crate::rules::testing::scenario_alarm;
    use crate::testkit::scenario_snapshot;

    /// A zone left without a healthy target is named on the health finding, once.
    #[test]
    fn zones_without_a_healthy_target_are_named() {
        let name = "unhealthy-targets";
        let d = diagnose(&scenario_alarm(name), &scenario_snapshot(name));
        let health = d
            .findings
            .iter()
            .find(|f| f.code == FindingCode::TargetsUnhealthy)
            .unwrap();
        let zones: Vec<&str> = health
            .evidence
            .iter()
            .map(|e| e.summary())
            .filter(|s| s.starts_with("Every target in"))
            .collect();
        assert_eq!(
            zones,
            [
                "Every target in eu-west-1a is unhealthy or draining (i-0a1b2c3d4e5f60011)",
                "Every target in eu-west-1b is unhealthy or draining (i-0a1b2c3d4e5f60012)"
            ]
        );
    }
}

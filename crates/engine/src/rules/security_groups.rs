//! `sg-blocks-target-port`: the load balancer's security groups do not let it out to the
//! target port, or the targets' security groups do not let it in.
//!
//! Security groups are stateful, so only the request direction matters: LB SG egress to the
//! target's SG (or address), and target SG ingress from the LB's SG (or its subnets). The fix
//! references the LB's SG, never a CIDR, and goes on the SG the controllers themselves use.

use crate::argv;
use crate::shell::{Script, Word};
use std::collections::{BTreeMap, BTreeSet};

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::action::Action;
use crate::alarm::LbKind;
use crate::context::Context;
use crate::finding::{Command, DurableFix, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::netcheck::{Direction, Family, SgCheck, SgOutcome, SgSide};

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let name = "security groups: load balancer to targets";
    let mut out = RuleOutput::default();
    let checks = &ctx.network.sg_checks;
    if checks.is_empty() {
        out.checked.push(Check::new(
            name,
            CheckStatus::NotApplicable,
            "no located target to check",
        ));
        return out;
    }
    let unknown: Vec<&SgCheck> = checks
        .iter()
        .filter(|c| matches!(c.outcome, SgOutcome::Unknown { .. }))
        .collect();
    let mut denied: BTreeMap<(SgSide, &[String]), Vec<&SgCheck>> = BTreeMap::new();
    for c in checks.iter().filter(|c| c.outcome.is_denied()) {
        denied
            .entry((c.side, c.group_ids.as_slice()))
            .or_default()
            .push(c);
    }
    let status = if !denied.is_empty() {
        CheckStatus::Problem
    } else if !unknown.is_empty() {
        CheckStatus::Incomplete
    } else {
        CheckStatus::Ok
    };
    out.checked.push(Check::new(name, status, format!(
        "{} checks (LB egress and target ingress per port and group set): {} denied, {} undecidable",
        checks.len(),
        denied.values().map(Vec::len).sum::<usize>(),
        unknown.len()
    )));
    for ((side, groups), group_checks) in denied {
        out.findings.push(finding(ctx, side, groups, &group_checks));
    }
    out
}

/// `over IPv6 ` where the family must be named: an IPv6 path, or a dual-stack load balancer.
fn family_label(ctx: &Context<'_>, checks: &[&SgCheck]) -> String {
    Family::named(
        checks.iter().any(|c| c.family == Family::Ipv4),
        checks.iter().any(|c| c.family == Family::Ipv6),
        ctx.snapshot.load_balancer.is_dual_stack(),
    )
    .map(|f| format!("over {f} "))
    .unwrap_or_default()
}

fn finding(ctx: &Context<'_>, side: SgSide, groups: &[String], checks: &[&SgCheck]) -> Finding {
    let lb = &ctx.snapshot.load_balancer;
    let ports: BTreeSet<u16> = checks.iter().map(|c| c.port).collect();
    let port_list = ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let targets: BTreeSet<&str> = checks
        .iter()
        .flat_map(|c| c.targets.iter().map(|t| &**t))
        .collect();
    let peer_groups = checks[0].peer_groups.clone();
    let severity = if targets.len() >= ctx.network.targets_checked {
        Severity::Critical
    } else {
        Severity::High
    };
    let group_text = groups.join(" + ");
    let family = family_label(ctx, checks);
    let (title, explanation) = match side {
        SgSide::TargetIngress => (
            format!("Security group {group_text} of the targets does not admit the load balancer {family}on port {port_list}"),
            format!(
                "No inbound rule of the targets' security groups ({group_text}) allows TCP {port_list} from the load balancer's security groups ({}) or from all of its subnets. \
                 Requests and health checks are dropped at the target's network interface: targets fail their health checks and connections time out (504).",
                peer_groups.join(", ")
            ),
        ),
        SgSide::LbEgress => (
            format!("Security group {group_text} of the load balancer does not let it reach the targets {family}on port {port_list}"),
            format!(
                "No outbound rule of the load balancer's security groups ({group_text}) allows TCP {port_list} to the targets' security groups ({}) or addresses. \
                 The load balancer cannot open connections to its targets.",
                peer_groups.join(", ")
            ),
        ),
    };
    let mut evidence = rule_evidence(side, checks);
    evidence.push(Evidence::observation(format!(
        "{} of {} targets affected ({})",
        targets.len(),
        ctx.network.targets_checked,
        list_some(
            &targets.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            5
        )
    )));
    let mut resources: Vec<String> = groups.to_vec();
    resources.extend(peer_groups.iter().cloned());
    let (mut fix, remedies) = match side {
        SgSide::TargetIngress => target_ingress_fix(ctx, groups, &ports),
        SgSide::LbEgress => (lb_egress_fix(ctx, &peer_groups, &ports), Vec::new()),
    };
    if lb.kind == LbKind::Classic {
        fix.notes.push("A Classic LB's health checks come from the same nodes and security group, so the same rule fixes them.".into());
    }
    Finding {
        code: FindingCode::SgBlocksTargetPort,
        severity,
        confidence: None,
        confidence_reason: None,
        title,
        explanation,
        evidence,
        fix,
        resources,
        remedies,
    }
}

/// One line per group set and port that no rule opens, with the CIDRs left uncovered.
fn rule_evidence(side: SgSide, checks: &[&SgCheck]) -> Vec<Evidence> {
    checks
        .iter()
        .map(|c| {
            let uncovered = match &c.outcome {
                SgOutcome::Denied { uncovered } if !uncovered.is_empty() => {
                    format!("; CIDR rules leave {} uncovered", list_some(uncovered, 3))
                }
                _ => String::new(),
            };
            let direction = match side {
                SgSide::TargetIngress => Direction::Ingress,
                SgSide::LbEgress => Direction::Egress,
            };
            Evidence::SecurityGroup {
                group_ids: c.group_ids.clone(),
                direction,
                port: c.port,
                peer_groups: c.peer_groups.clone(),
                summary: format!(
                    "{} {}: no rule allows TCP {} ({}) {} {}{uncovered}",
                    c.group_ids.join(" + "),
                    direction.as_str(),
                    c.port,
                    c.purpose.describe(),
                    if direction == Direction::Ingress {
                        "from"
                    } else {
                        "to"
                    },
                    c.peer_groups.join(", ")
                ),
            }
        })
        .collect()
}

/// The LB security group to reference: the controller's shared backend SG when present.
fn lb_source_group(ctx: &Context<'_>) -> Option<String> {
    let lb = &ctx.snapshot.load_balancer;
    lb.security_groups
        .iter()
        .find(|id| {
            ctx.snapshot.security_group(id).is_some_and(|g| {
                g.tags.get("elbv2.k8s.aws/resource").map(String::as_str) == Some("backend-sg")
            })
        })
        .or_else(|| lb.security_groups.first())
        .cloned()
}

/// The target SG to add the rule to: the one tagged for the cluster (the controllers'
/// choice), else the EKS cluster SG, else the only one; `None` when that leaves several.
fn target_group_to_fix(ctx: &Context<'_>, groups: &[String]) -> Option<String> {
    if let Some(cluster) = &ctx.cluster {
        let key = format!("kubernetes.io/cluster/{cluster}");
        let tagged: Vec<&String> = groups
            .iter()
            .filter(|id| {
                ctx.snapshot
                    .security_group(id)
                    .is_some_and(|g| g.tags.contains_key(&key))
            })
            .collect();
        if tagged.len() == 1 {
            return Some(tagged[0].clone());
        }
    }
    if let Some(cluster_sg) = ctx
        .snapshot
        .eks
        .as_ref()
        .and_then(|e| e.cluster_security_group_id.as_ref())
    {
        if groups.contains(cluster_sg) {
            return Some(cluster_sg.clone());
        }
    }
    match groups {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// Why no target group is chosen: several, none tagged for the cluster.
fn several_groups_note(ctx: &Context<'_>, groups: &[String]) -> String {
    format!(
        "The targets carry several security groups ({}) and none is tagged kubernetes.io/cluster/{}: add the rule to the one meant for load balancer traffic.",
        groups.join(", "),
        ctx.cluster.as_deref().unwrap_or("CLUSTER")
    )
}

/// Names elbmedic, the load balancer and the date the state was observed (no clock here).
fn description(ctx: &Context<'_>) -> String {
    let date = ctx
        .snapshot
        .captured_at
        .as_deref()
        .and_then(|t| t.get(..10))
        .unwrap_or("undated");
    format!(
        "elbmedic: {} to targets, {date}",
        ctx.snapshot.load_balancer.name
    )
}

/// The commands, and the same rules as remediation actions (none for a group a controller
/// reconciles: it would revoke them).
fn target_ingress_fix(
    ctx: &Context<'_>,
    groups: &[String],
    ports: &BTreeSet<u16>,
) -> (Fix, Vec<Action>) {
    let mut notes = Vec::new();
    let Some(source) = lb_source_group(ctx) else {
        let fix = Fix {
            summary: "The load balancer has no security group to reference; allow the target port from its subnets' CIDRs on the targets' security group.".into(),
            ..Fix::default()
        };
        return (fix, Vec::new());
    };
    let mut remedies = Vec::new();
    let (target, commands) = match target_group_to_fix(ctx, groups) {
        Some(target) => {
            remedies = ports
                .iter()
                .map(|port| Action::AllowSgIngress {
                    group_id: target.clone(),
                    source_group_id: source.clone(),
                    port: *port,
                    description: description(ctx),
                })
                .collect();
            let commands = ports
                .iter()
                .map(|port| Command::new(
                    format!("Allow TCP {port} into {target} from the load balancer's group {source}"),
                    fixes::security_group_rule("authorize", ctx.region(), Direction::Ingress, &target, *port, &source, Some(&description(ctx))),
                ))
                .collect();
            (target, commands)
        }
        None => {
            notes.push(several_groups_note(ctx, groups));
            (groups.join(" or "), Vec::new())
        }
    };
    if let Some(group) = ctx.snapshot.security_group(&target) {
        if group.is_controller_managed() {
            notes.push(format!("{target} is fully reconciled by a Kubernetes controller, which would revoke a rule added by hand."));
            remedies.clear();
        }
    }
    let cluster = ctx.cluster.as_deref().unwrap_or("CLUSTER");
    let durable = match ctx.kind() {
        LbKind::Classic => DurableFix {
            description: format!(
                "The cloud provider itself adds an all-traffic rule from the load balancer's group to the node security group tagged kubernetes.io/cluster/{cluster}, at each sync of the Service. If it is missing, exactly one group on the nodes must carry that tag."
            ),
            command: Some(Script::line(argv!["aws", "ec2", "create-tags", "--region", ctx.region(), "--resources", &target, "--tags", format!("Key=kubernetes.io/cluster/{cluster},Value=owned")])),
            manifest: None,
            warning: "If two groups on the nodes carry the tag, the cloud provider adds no rule at all; if none does, likewise.".into(),
        },
        LbKind::Application | LbKind::Network => DurableFix {
            description: format!(
                "The AWS Load Balancer Controller adds this rule itself (description elbv2.k8s.aws/targetGroupBinding=shared) on the target ENI's group tagged kubernetes.io/cluster/{cluster}, when it manages backend rules. A rule added by hand is never removed by it."
            ),
            command: Some(Script::line(
                argv!["kubectl", "-n", "kube-system", "logs", "deploy/aws-load-balancer-controller", "--since=1h"]
                    .into_iter()
                    .chain([Word::Op("|")])
                    .chain(argv!["grep", "-iE", "securitygroup|networking"])
                    .collect(),
            )),
            manifest: None,
            warning: "If the controller should own this rule, check that exactly one group on the target ENIs is tagged for the cluster and that the controller runs; otherwise it will not add it back after a clean-up.".into(),
        },
    };
    let fix = Fix {
        summary: format!(
            "Allow TCP {} into {target} from the load balancer's security group {source} (a group reference, not a CIDR).",
            ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
        commands,
        durable: Some(durable),
        notes,
    };
    (fix, remedies)
}

fn lb_egress_fix(ctx: &Context<'_>, target_groups: &[String], ports: &BTreeSet<u16>) -> Fix {
    let Some(source) = lb_source_group(ctx) else {
        return Fix::default();
    };
    let Some(destination) = target_groups.first() else {
        return Fix::default();
    };
    let commands = ports
        .iter()
        .map(|port| {
            Command::new(
                format!("Allow TCP {port} out of {source} to the targets' group {destination}"),
                fixes::security_group_rule(
                    "authorize",
                    ctx.region(),
                    Direction::Egress,
                    &source,
                    *port,
                    destination,
                    Some(&description(ctx)),
                ),
            )
        })
        .collect();
    let mut notes = Vec::new();
    if ctx
        .snapshot
        .security_group(&source)
        .is_some_and(crate::snapshot::SecurityGroup::is_controller_managed)
    {
        notes.push(format!(
            "{source} is fully reconciled by its controller: a rule added by hand will be revoked. Fix it where the controller takes its configuration (the Service or Ingress, or the controller's security group settings)."
        ));
    }
    Fix {
        summary: format!("Allow TCP {} out of the load balancer's group {source} to the targets' group {destination}.",
            ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
        commands,
        durable: None,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, healthy_clb, scenario_snapshot};

    #[test]
    fn node_sg_without_the_lb_rule_gets_a_group_reference_fix() {
        let out = run(
            check,
            "sg-node-missing-lb-rule",
            &scenario_snapshot("sg-node-missing-lb-rule"),
        );
        assert_eq!(out.findings.len(), 1);
        let f = &out.findings[0];
        assert_eq!(f.code, FindingCode::SgBlocksTargetPort);
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.title.contains("sg-0c5e7a9b1d3f24680"));
        let command = &f.fix.commands[0].command;
        assert!(command.contains("authorize-security-group-ingress"));
        assert!(command.contains("--group-id sg-0c5e7a9b1d3f24680"));
        assert!(
            command.contains("GroupId=sg-0a1f2e3d4c5b60792"),
            "references the shared backend SG: {command}"
        );
        assert!(command.contains("FromPort=8080,ToPort=8080"));
        assert!(!command.contains("0.0.0.0/0") && !command.contains("CidrIp"));
    }

    /// An IPv6 path is named as one: the ALB's groups let only IPv4 out, so the IPv6 pods
    /// are unreachable while the same rules would pass IPv4 ones.
    #[test]
    fn an_ipv6_path_names_its_family() {
        let name = "ipv6-nacl-ephemeral-lb-subnets";
        let mut world = scenario_snapshot(name);
        for group in &mut world.security_groups {
            for rule in &mut group.egress {
                rule.ipv6_ranges.clear();
            }
        }
        let out = run(check, name, &world);
        let f = &out.findings[0];
        assert!(
            f.title.contains(
                "of the load balancer does not let it reach the targets over IPv6 on port 8080"
            ),
            "{}",
            f.title
        );
        // The IPv4-only world says nothing of families.
        let mut v4 = scenario_snapshot("sg-node-missing-lb-rule");
        v4.load_balancer.ip_address_type = None;
        let out = run(check, "sg-node-missing-lb-rule", &v4);
        assert!(
            !out.findings[0].title.contains("IPv"),
            "{}",
            out.findings[0].title
        );
    }

    #[test]
    fn missing_lb_egress_is_found_on_the_lb_side() {
        let mut world = healthy_clb();
        let lb_sg = world
            .security_groups
            .iter_mut()
            .find(|g| g.name.starts_with("k8s-elb-"))
            .unwrap();
        lb_sg.egress.clear();
        let out = run(check, "clb-idle-timeout", &world);
        let f = &out.findings[0];
        assert!(f.title.contains("of the load balancer"));
        assert!(f.fix.commands[0]
            .command
            .contains("authorize-security-group-egress"));
        assert!(
            f.fix.notes.iter().any(|n| n.contains("revoked")),
            "k8s-elb-* groups are reconciled"
        );
    }

    #[test]
    fn several_untagged_groups_refuse_to_guess() {
        let mut world = scenario_snapshot("sg-node-missing-lb-rule");
        world.eks = None;
        for group in &mut world.security_groups {
            group.tags.clear();
        }
        world.load_balancer.tags.clear();
        let mut extra = world
            .security_groups
            .iter()
            .find(|g| g.id == "sg-0c5e7a9b1d3f24680")
            .unwrap()
            .clone();
        extra.id = "sg-0123456789abcdef0".into();
        world.security_groups.push(extra);
        for target in &mut world.target_groups[0].targets {
            if let crate::snapshot::Placement::Interface(i) = &mut target.placement {
                i.security_groups.push("sg-0123456789abcdef0".into());
            }
        }
        let out = run(check, "sg-node-missing-lb-rule", &world);
        let f = &out.findings[0];
        assert!(f.fix.commands.is_empty());
        assert!(f
            .fix
            .notes
            .iter()
            .any(|n| n.contains("several security groups")));
    }

    #[test]
    fn open_groups_are_ok() {
        for world in [healthy_alb(), healthy_clb()] {
            let out = run(check, "no-known-cause", &world);
            assert!(out.findings.is_empty());
            assert_eq!(out.checked[0].status, CheckStatus::Ok);
        }
    }
}

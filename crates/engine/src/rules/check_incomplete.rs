//! `check-incomplete`: a fact could not be observed, so a check could not conclude. One
//! finding per kind of missing fact, saying what it prevented and how to restore it (usually
//! an IAM permission). Gaps are data: the rest of the diagnosis still runs.

use std::collections::BTreeMap;

use super::{list_some, RuleOutput};
use crate::context::Context;
use crate::finding::{Evidence, Finding, FindingCode, Fix, Severity};
use crate::netcheck::SgOutcome;
use crate::snapshot::{GapFact, GapReason};

/// What a missing fact prevents, and the IAM actions that read it.
fn consequence(fact: GapFact) -> (&'static str, &'static str, Severity) {
    match fact {
        GapFact::LoadBalancer => ("the load balancer itself could not be read; nothing about it was checked", "elasticloadbalancing:DescribeLoadBalancers", Severity::High),
        GapFact::LbAttributes => ("the idle timeout and cross-zone setting are unknown, so idle timeouts were not checked", "elasticloadbalancing:DescribeLoadBalancerAttributes", Severity::Medium),
        GapFact::Listeners => ("listeners are unknown", "elasticloadbalancing:DescribeListeners", Severity::Low),
        GapFact::TargetGroups => ("target groups are unknown, so targets, ports and health checks were not checked", "elasticloadbalancing:DescribeTargetGroups", Severity::High),
        GapFact::TargetHealth => ("target health is unknown", "elasticloadbalancing:DescribeTargetHealth, elasticloadbalancing:DescribeInstanceHealth", Severity::Medium),
        GapFact::TargetPlacement => ("where the targets live is unknown, so their paths and stale IPs were not checked", "ec2:DescribeNetworkInterfaces, ec2:DescribeInstances", Severity::Medium),
        GapFact::Subnets => ("subnets are unknown, so NACL paths through them were not checked", "ec2:DescribeSubnets", Severity::Medium),
        GapFact::NetworkAcls => ("network ACLs were not checked: one could be dropping requests, or replies on ports 1024-65535", "ec2:DescribeNetworkAcls", Severity::Medium),
        GapFact::SecurityGroups => ("security groups were not fully checked: one could be missing the rule for the target port", "ec2:DescribeSecurityGroups", Severity::Medium),
        GapFact::PrefixList => ("a security group rule names a prefix list whose entries are unknown, so whether it admits the load balancer is undecided", "ec2:GetManagedPrefixListEntries", Severity::Medium),
        GapFact::Metrics => ("some metrics are missing, so conclusions that need them are weaker", "cloudwatch:GetMetricData", Severity::Low),
        GapFact::EksCluster => ("the EKS cluster could not be read; its security group is inferred from tags", "eks:DescribeCluster", Severity::Low),
        GapFact::AccessLogs => ("the access logs could not be read, so the counts that would confirm the cause are missing", "s3:GetObject and s3:ListBucket on the log bucket", Severity::Low),
        GapFact::RecentChanges => ("recent changes were not (all) looked up, so a change someone made on the path may not be named", "cloudtrail:LookupEvents", Severity::Low),
        GapFact::KubernetesOwner => ("the owner tag holds no valid Kubernetes name, so no kubectl command names the owner", "elasticloadbalancing:DescribeTags", Severity::Low),
        GapFact::KubernetesApi => ("the cluster behind the load balancer was not (fully) read, so its workloads, pods and Events are not part of this report", "the access entry and the read-only ClusterRole of infra/ (get, list, watch)", Severity::Low),
        GapFact::RemediationHistory => ("elbmedic's own past changes are unknown, so a reverted idle-timeout raise would go unnoticed", "dynamodb:GetItem on the ledger table", Severity::Low),
    }
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    // fact -> (evidence, resources, reasons)
    type Collected = (Vec<Evidence>, Vec<String>, Vec<GapReason>);
    let mut by_fact: BTreeMap<GapFact, Collected> = BTreeMap::new();
    for gap in &ctx.snapshot.gaps {
        let entry = by_fact.entry(gap.fact).or_default();
        let on = gap
            .resource
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        entry.0.push(Evidence::observation(format!(
            "{}{on}: {}: {}",
            gap.fact, gap.reason, gap.detail
        )));
        entry.1.extend(gap.resource.clone());
        entry.2.push(gap.reason);
    }
    for unresolved in &ctx.network.unresolved {
        let entry = by_fact.entry(unresolved.fact).or_default();
        entry.0.push(Evidence::observation(format!(
            "{} is not in the snapshot; needed for {}",
            unresolved.resource, unresolved.needed_for
        )));
        entry.1.push(unresolved.resource.clone());
    }
    for check in &ctx.network.sg_checks {
        if let SgOutcome::Unknown { missing } = &check.outcome {
            for id in missing {
                let fact = if id.starts_with("pl-") {
                    GapFact::PrefixList
                } else {
                    GapFact::SecurityGroups
                };
                let entry = by_fact.entry(fact).or_default();
                entry.0.push(Evidence::observation(format!(
                    "{id} could not be resolved; needed for {} of {} on port {}",
                    side(check),
                    check.group_ids.join(" + "),
                    check.port
                )));
                entry.1.push(id.clone());
            }
        }
    }
    let mut out = RuleOutput::default();
    for (fact, (mut evidence, mut resources, reasons)) in by_fact {
        evidence.dedup();
        resources.sort();
        resources.dedup();
        let (prevented, actions, severity) = consequence(fact);
        let denied = reasons.contains(&GapReason::AccessDenied);
        let fix = if denied {
            format!("Grant the diagnose function's role {actions} (read-only), then run the diagnosis again.")
        } else {
            format!("Run the diagnosis again; if it keeps failing, check that the role can call {actions} and that the resources exist.")
        };
        out.findings.push(Finding {
            code: FindingCode::CheckIncomplete,
            severity,
            confidence: None,
            confidence_reason: None,
            title: format!(
                "Could not check {}: {}",
                fact,
                if resources.is_empty() {
                    reasons.first().map_or_else(
                        || "missing from the snapshot".to_string(),
                        ToString::to_string,
                    )
                } else {
                    list_some(&resources, 3)
                }
            ),
            explanation: format!("Because {prevented}."),
            evidence,
            fix: Fix {
                summary: fix,
                ..Fix::default()
            },
            resources,
            remedies: Vec::new(),
        });
    }
    out
}

fn side(check: &crate::netcheck::SgCheck) -> &'static str {
    match check.side {
        crate::netcheck::SgSide::TargetIngress => "target ingress",
        crate::netcheck::SgSide::LbEgress => "load balancer egress",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn denied_nacls_and_throttled_metrics_are_named_with_their_remedy() {
        let out = run(
            check,
            "check-incomplete",
            &scenario_snapshot("check-incomplete"),
        );
        let nacl = out
            .findings
            .iter()
            .find(|f| f.title.contains("network ACLs"))
            .unwrap();
        assert_eq!(nacl.severity, Severity::Medium);
        assert!(nacl.fix.summary.contains("ec2:DescribeNetworkAcls"));
        assert!(nacl
            .evidence
            .iter()
            .any(|e| e.summary().contains("access denied")));
        let metrics = out
            .findings
            .iter()
            .find(|f| f.title.contains("metrics"))
            .unwrap();
        assert_eq!(metrics.severity, Severity::Low);
        assert!(metrics.evidence[0]
            .summary()
            .contains("TargetResponseTime p99"));
    }

    #[test]
    fn a_complete_snapshot_has_nothing_to_report() {
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
    }

    #[test]
    fn unresolved_prefix_list_is_reported() {
        let mut world = healthy_alb();
        let node = world
            .security_groups
            .iter_mut()
            .find(|g| g.id == "sg-0c5e7a9b1d3f24680")
            .unwrap();
        node.ingress[1].security_groups.clear();
        node.ingress[1].prefix_list_ids = vec!["pl-0abc1234def567890".into()];
        let out = run(check, "no-known-cause", &world);
        let f = &out.findings[0];
        assert!(f.title.contains("prefix lists"));
        assert_eq!(f.resources, ["pl-0abc1234def567890"]);
    }
}

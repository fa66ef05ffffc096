//! `stale-targets`: IP targets that sit on no network interface any more.
//!
//! An IP target is a pod IP. When the pod is gone and nothing deregistered it (the AWS Load
//! Balancer Controller down, lagging, or a target registered by hand), the load balancer keeps
//! sending it requests until health checks fail, and the IP may be handed to another pod.

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::argv;
use crate::context::Context;
use crate::finding::{Command, DurableFix, Evidence, Finding, FindingCode, Fix, Severity};
use crate::shell::{Script, Word};
use crate::snapshot::{Placement, Target, TargetGroup};

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let name = "target placement (IP targets on a network interface)";
    let mut out = RuleOutput::default();
    let stale: Vec<_> = ctx
        .snapshot
        .targets()
        .filter(|(_, t)| t.placement == Placement::NoInterface)
        .collect();
    let located = ctx
        .snapshot
        .targets()
        .filter(|(_, t)| t.interface().is_some())
        .count();
    let unobserved = ctx
        .snapshot
        .targets()
        .filter(|(_, t)| t.placement == Placement::Unobserved)
        .count();
    let status = if !stale.is_empty() {
        CheckStatus::Problem
    } else if unobserved > 0 {
        CheckStatus::Incomplete
    } else {
        CheckStatus::Ok
    };
    out.checked.push(Check::new(
        name,
        status,
        format!(
            "{located} of {} targets found on an interface, {} on none, {unobserved} not looked up",
            ctx.health.total,
            stale.len()
        ),
    ));
    if stale.is_empty() {
        return out;
    }
    let ids: Vec<String> = stale.iter().map(|(_, t)| t.id.clone()).collect();
    out.findings.push(finding(ctx, &stale, ids));
    out
}

/// The stale targets' finding: deregister them, then see why the controller did not.
fn finding(ctx: &Context<'_>, stale: &[(&TargetGroup, &Target)], ids: Vec<String>) -> Finding {
    let mut evidence: Vec<Evidence> = stale
        .iter()
        .take(10)
        .map(|(group, target)| {
            Evidence::observation(format!(
                "{} in {}: no network interface holds this IP (health {}{})",
                target.endpoint(),
                group.name,
                target.health.state,
                target
                    .health
                    .reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            ))
        })
        .collect();
    let mut commands = deregister_commands(ctx, stale);
    commands.push(what_the_controller_registers(&ids));
    let (cluster_evidence, confirmed) = in_the_cluster(ctx, &ids);
    evidence.extend(cluster_evidence);
    Finding {
        code: FindingCode::StaleTargets,
        severity: Severity::High,
        confidence: confirmed.then_some(crate::finding::Confidence::Confirmed),
        confidence_reason: confirmed.then(|| {
            "no pod of the cluster's read namespaces holds these IPs, and no network interface does".to_string()
        }),
        title: format!(
            "{} of {} {} at pods that no longer exist ({})",
            crate::context::count(stale.len(), "IP target", "IP targets"),
            ctx.snapshot.load_balancer.name,
            if stale.len() == 1 { "points" } else { "point" },
            list_some(&ids, 3)
        ),
        explanation: "These targets are registered by IP, and no network interface in the VPC holds that IP any more: the pod is gone but the target was never deregistered. \
            Requests sent there time out (504) until health checks mark it unhealthy, and if the IP is handed to another pod, traffic reaches the wrong application. \
            The AWS Load Balancer Controller deregisters pods as they go, so a stale target means it is not running, is failing, or did not register this target."
            .into(),
        evidence,
        fix: Fix {
            summary: "Deregister the stale targets, then find out why the controller did not.".into(),
            commands,
            durable: Some(DurableFix {
                description: "Make sure the AWS Load Balancer Controller runs and reconciles the TargetGroupBinding of this target group.".into(),
                command: Some(Script::lines(vec![
                    argv!["kubectl", "-n", "kube-system", "get", "deploy", "aws-load-balancer-controller"],
                    argv!["kubectl", "-n", "kube-system", "logs", "deploy/aws-load-balancer-controller", "--since=1h"]
                        .into_iter()
                        .chain([Word::Op("|")])
                        .chain(argv!["grep", "-iE", "error|deregister"])
                        .collect(),
                ])),
                manifest: None,
                warning: "A target deregistered by hand comes back if a TargetGroupBinding still lists it; one nobody manages stays gone.".into(),
            }),
            notes: vec![],
        },
        resources: ids,
        remedies: Vec::new(),
    }
}

/// What the cluster says about the stale IPs: whether a pod holds one now, and which pod last
/// held it when an Event names the IP. Confirmed when the pods were read and none holds any.
fn in_the_cluster(ctx: &Context<'_>, ips: &[String]) -> (Vec<Evidence>, bool) {
    let Some(cluster) = ctx.snapshot.kubernetes.as_ref() else {
        return (Vec::new(), false);
    };
    // Only pods that were read, from at least one namespace, prove an absence.
    let pods_read =
        !crate::backends::unread(ctx.snapshot, "pods") && !cluster.namespaces.is_empty();
    let mut evidence = Vec::new();
    let mut held = false;
    for ip in ips.iter().take(10) {
        if let Some(pod) = cluster
            .pods
            .iter()
            .find(|p| p.ip.as_deref() == Some(ip.as_str()))
        {
            held = true;
            evidence.push(Evidence::observation(format!(
                "{ip} now belongs to pod {}/{}: requests to the stale target reach it",
                pod.namespace, pod.name
            )));
            continue;
        }
        // The IP as a word of the message (10.0.1.5 is not in http://10.0.1.57:8080).
        let names_ip = |message: &str| {
            message
                .split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
                .flat_map(|word| [word, word.rsplit_once(':').map_or(word, |(ip, _)| ip)])
                .any(|word| word == ip.as_str())
        };
        let last =
            cluster.events.iter().rev().find(|e| {
                e.object.as_ref().is_some_and(|o| o.kind == "Pod") && names_ip(&e.message)
            });
        if let Some(object) = last.and_then(|e| e.object.as_ref()) {
            evidence.push(Evidence::observation(format!(
                "{ip} was last held by pod {}{} (its Events name the IP); no pod holds it now",
                object
                    .namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                object.name
            )));
        } else if pods_read {
            evidence.push(Evidence::observation(format!("No pod holds {ip} now")));
        }
    }
    (evidence, pods_read && !held)
}

fn deregister_commands(ctx: &Context<'_>, stale: &[(&TargetGroup, &Target)]) -> Vec<Command> {
    stale
        .iter()
        .filter_map(|(group, target)| {
            group.arn.as_ref().map(|arn| {
                Command::new(
                    format!("Deregister {}", target.id),
                    Script::line(argv![
                        "aws",
                        "elbv2",
                        "deregister-targets",
                        "--region",
                        ctx.region(),
                        "--target-group-arn",
                        arn,
                        "--targets",
                        format!("Id={},Port={}", target.id, target.port)
                    ]),
                )
            })
        })
        .collect()
}

/// The controller's bindings, and where the stale IPs still stand among the endpoints.
fn what_the_controller_registers(ids: &[String]) -> Command {
    Command::new(
        "See which pods the controller registers",
        Script::lines(vec![
            argv!["kubectl", "get", "targetgroupbindings", "-A", "-o", "wide"],
            // Every address of every slice (`-o wide` shows three, then "+ N more..."), and
            // whole addresses only (10.0.1.2 is not 10.0.1.20): a live IP must never look gone.
            argv![
                "kubectl",
                "get",
                "endpointslices",
                "-A",
                "-o",
                "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\t\"}{.endpoints[*].addresses[*]}{\"\\n\"}{end}"
            ]
            .into_iter()
            .chain([Word::Op("|"), Word::from("grep"), Word::from("-wF")])
            .chain(ids.iter().take(3).flat_map(|ip| argv!["-e", ip]))
            .collect(),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn an_ip_on_no_interface_is_stale_with_a_deregister_command() {
        let out = run(check, "stale-pod-ip", &scenario_snapshot("stale-pod-ip"));
        let f = &out.findings[0];
        assert_eq!(f.code, FindingCode::StaleTargets);
        assert_eq!(f.resources, ["10.0.35.77"]);
        assert!(f.fix.commands[0].command.contains("deregister-targets"));
        assert!(f.fix.commands[0]
            .command
            .contains("Id=10.0.35.77,Port=8080"));
    }

    #[test]
    fn located_targets_are_not_stale_and_unobserved_ones_are_incomplete() {
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
        let mut world = healthy_alb();
        world.target_groups[0].targets[0].placement = Placement::Unobserved;
        let out = run(check, "no-known-cause", &world);
        assert!(out.findings.is_empty());
        assert_eq!(out.checked[0].status, CheckStatus::Incomplete);
    }
}

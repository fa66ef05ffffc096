//! `no-registered-targets`: 503s because the listener (or one of its rules) forwards to a target
//! group with no registered targets. A target registered but `unused` (`Target.NotInUse`, e.g.
//! in a zone the load balancer does not serve) counts as absent. In Kubernetes the group is
//! empty when the Service selects no ready pods, the TargetGroupBinding is stale, or the load
//! balancer controller is failing. A Classic LB with no instance registered answers 503 too.

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context, Owner};
use crate::finding::{
    Command, Confidence, DurableFix, Evidence, Finding, FindingCode, Fix, Severity,
};
use crate::fixes;
use crate::shell::{Script, Word};
use crate::snapshot::{GapFact, TargetGroup};

/// Whether a group has no target that can take a request. Unknown (its health was not read)
/// is not empty.
fn is_empty(ctx: &Context<'_>, group: &TargetGroup) -> bool {
    let unread = ctx.snapshot.gaps.iter().any(|g| {
        g.fact == GapFact::TargetHealth
            && g.resource
                .as_deref()
                .is_some_and(|r| Some(r) == group.arn.as_deref())
    });
    !unread
        && group
            .targets
            .iter()
            .all(|t| t.health.reason.as_deref() == Some("Target.NotInUse"))
}

/// Where each listener sends traffic to `arn`: "listener HTTPS:443 (default action)", "rule 10
/// of listener HTTPS:443 (path-pattern /api/*)".
fn forwarded_by(ctx: &Context<'_>, arn: &str) -> Vec<String> {
    let mut by = Vec::new();
    for listener in &ctx.snapshot.load_balancer.listeners {
        let name = format!("{}:{}", listener.protocol, listener.port);
        if listener.forwards_to.iter().any(|g| g == arn) {
            by.push(format!("listener {name} (default action)"));
        }
        for rule in listener.rules.iter().flatten() {
            if rule.forwards_to.iter().any(|g| g == arn) {
                by.push(format!(
                    "rule {} of listener {name} ({})",
                    rule.priority,
                    rule.conditions.join("; ")
                ));
            }
        }
    }
    by
}

/// The Service behind an Ingress's target group, from the controller's tag
/// `ingress.k8s.aws/resource` = `NAMESPACE/INGRESS-SERVICE:PORT`.
fn service_of(owner: &Owner, group: &TargetGroup) -> Option<String> {
    let (namespace, ingress) = owner.namespaced()?;
    let resource = group.tags.get("ingress.k8s.aws/resource")?;
    let rest = resource.strip_prefix(&format!("{namespace}/{ingress}-"))?;
    let service = rest.rsplit_once(':').map_or(rest, |(s, _)| s);
    // A tag anyone may write: only a name the API server could hold names a Service.
    crate::kubernetes_name::is_dns1035_label(service).then(|| service.to_string())
}

/// The commands that show each Kubernetes cause: the Service's ready endpoints and selector,
/// the TargetGroupBinding, and the controller's errors.
fn kubernetes_commands(ctx: &Context<'_>, group: &TargetGroup) -> Vec<Command> {
    let namespace = ctx.owner.namespaced().map(|(ns, _)| ns.to_string());
    let ns = namespace.as_deref().unwrap_or("NAMESPACE");
    let service = match &ctx.owner {
        Owner::Service { name, .. } => Some(name.clone()),
        owner => service_of(owner, group),
    };
    let service = service.as_deref().unwrap_or("SERVICE");
    let mut logs = argv![
        "kubectl",
        "-n",
        "kube-system",
        "logs",
        "deployment/aws-load-balancer-controller",
        "--since=30m"
    ];
    logs.push(Word::Op("|"));
    logs.extend(argv![
        "grep",
        "-i",
        "-e",
        "error",
        "-e",
        group.name.as_str()
    ]);
    vec![
        fixes::service_endpoints(
            "Does the Service select ready pods? Its selector, and its ready endpoints",
            ns,
            service,
        ),
        Command::new(
            "Is the TargetGroupBinding stale (another target group ARN, or an old Service)?",
            Script::line(argv![
                "kubectl",
                "-n",
                ns,
                "get",
                "targetgroupbindings",
                "-o",
                "wide"
            ]),
        ),
        Command::new(
            "Is the load balancer controller failing to register targets?",
            Script::line(logs),
        ),
    ]
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let name = "target groups with registered targets";
    let mut out = RuleOutput::default();
    let lb = &ctx.snapshot.load_balancer;
    if lb.kind == LbKind::Classic {
        return classic(ctx, name);
    }
    let empty: Vec<&TargetGroup> = ctx
        .snapshot
        .target_groups
        .iter()
        .filter(|g| is_empty(ctx, g))
        .collect();
    if empty.is_empty() {
        out.checked.push(Check::new(
            name,
            CheckStatus::Ok,
            format!(
                "{}, each with targets",
                crate::context::count(
                    ctx.snapshot.target_groups.len(),
                    "target group",
                    "target groups"
                )
            ),
        ));
        return out;
    }
    let names: Vec<String> = empty.iter().map(|g| g.name.clone()).collect();
    let errors_503 = ctx.sum("HTTPCode_ELB_503_Count").unwrap_or(0.0);
    if errors_503 <= 0.0 {
        out.checked.push(Check::new(
            name,
            CheckStatus::Ok,
            format!(
                "{} has no registered targets, but no 503s in the window",
                list_some(&names, 3)
            ),
        ));
        return out;
    }
    let all_5xx = ctx.sum("HTTPCode_ELB_5XX_Count").unwrap_or(errors_503);
    let group = empty[0];
    let arn = group.arn.as_deref().unwrap_or(group.name.as_str());
    let by = forwarded_by(ctx, arn);
    let title = format!(
        "Target group {} has no registered targets: {} answers its requests with 503",
        group.name, lb.name
    );
    let (title, evidence, summary) = with_reasons(ctx, group, title, evidence(ctx, group, &by));
    out.checked
        .push(Check::new(name, CheckStatus::Problem, title.clone()));
    let share = errors_503 / all_5xx.max(errors_503);
    let confident = share >= 0.9;
    let mut commands = kubernetes_commands(ctx, group);
    commands.insert(0, fixes::describe_health(ctx, group.arn.as_deref()));
    out.findings.push(Finding {
        code: FindingCode::NoRegisteredTargets,
        severity: Severity::Critical,
        confidence: Some(if confident { Confidence::Confirmed } else { Confidence::Likely }),
        confidence_reason: Some(format!(
            "{} of {} load-balancer 5xx are 503s, the answer of a load balancer with no target to send to",
            format_value(errors_503),
            format_value(all_5xx.max(errors_503))
        )),
        title,
        explanation: format!(
            "A request that a listener or rule sends to a target group with no registered target gets a 503 from the load balancer itself.{} \
             In Kubernetes the group is empty when the Service selects no ready pods (a wrong selector, or every pod failing its readiness probe), when the TargetGroupBinding points at an old target group or Service, or when the load balancer controller fails to register targets (its logs say why).",
            if empty.len() > 1 {
                format!(" {} empty too: {}.", if empty.len() == 2 { "1 other group is".to_string() } else { format!("{} other groups are", empty.len() - 1) }, list_some(&names[1..], 3))
            } else {
                String::new()
            }
        ),
        evidence,
        fix: Fix {
            summary,
            commands,
            durable: Some(DurableFix {
                description: "The Service's selector must match the labels of ready pods; the controller registers exactly those.".into(),
                command: None,
                manifest: Some("spec:\n  selector:\n    app: checkout   # the labels of the pod template, exactly".into()),
                warning: "Registering targets by hand with the AWS CLI does not last: the controller deregisters whatever the Service does not select.".into(),
            }),
            notes: Vec::new(),
        },
        resources: empty.iter().map(|g| g.resource_id()).collect(),
        remedies: Vec::new(),
    });
    out
}

/// The title, evidence and fix summary, with what the cluster says emptied the group when it
/// was read.
fn with_reasons(
    ctx: &Context<'_>,
    group: &TargetGroup,
    mut title: String,
    mut evidence: Vec<Evidence>,
) -> (String, Vec<Evidence>, String) {
    let tagged = service_of(&ctx.owner, group);
    match super::empty_group_reasons::of(ctx, group, tagged.as_deref()) {
        Some(reasons) => {
            title.push_str(&format!("; {}", reasons.why));
            evidence.extend(reasons.evidence);
            let summary = format!("The cluster says why: {}. Fix that; the controller then registers the ready pods.", reasons.why);
            (title, evidence, summary)
        }
        None => (title, evidence, "Find which of the three Kubernetes causes emptied the group and fix it there; the controller then registers the pods.".to_string()),
    }
}

/// The empty group, what forwards to it, and the 503s.
fn evidence(ctx: &Context<'_>, group: &TargetGroup, by: &[String]) -> Vec<Evidence> {
    let lb = &ctx.snapshot.load_balancer;
    let unused = group.targets.len();
    let mut evidence = vec![Evidence::observation(format!(
        "{}: 0 targets that can take requests{}",
        group.name,
        if unused > 0 {
            format!(" ({unused} registered but unused, Target.NotInUse: in a zone the load balancer does not serve, or the group is not used)")
        } else {
            " (none registered)".into()
        }
    ))];
    match (
        by.is_empty(),
        lb.listeners.iter().any(|l| l.rules.is_some()),
    ) {
        (false, _) => evidence.extend(
            by.iter()
                .map(|b| Evidence::observation(format!("Forwarded to by {b}"))),
        ),
        (true, true) => evidence.push(Evidence::observation(
            "No listener rule forwards to it now: the 503s may come from a rule changed since",
        )),
        (true, false) => {}
    }
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_503_Count", "Sum", ""));
    evidence
}

/// A Classic LB with no instance registered: every request is a 503.
fn classic(ctx: &Context<'_>, name: &str) -> RuleOutput {
    let mut out = RuleOutput::default();
    let registered = ctx.health.total;
    let read = !ctx
        .snapshot
        .gaps
        .iter()
        .any(|g| g.fact == GapFact::TargetHealth);
    if registered > 0 || !read || ctx.sum("HTTPCode_ELB_5XX").unwrap_or(0.0) <= 0.0 {
        out.checked.push(Check::new(
            name,
            if registered > 0 || !read {
                CheckStatus::Ok
            } else {
                CheckStatus::NotApplicable
            },
            format!(
                "{} registered",
                crate::context::count(registered, "instance", "instances")
            ),
        ));
        return out;
    }
    let lb = &ctx.snapshot.load_balancer;
    let title = format!("{} has no instances registered: it answers 503", lb.name);
    out.checked
        .push(Check::new(name, CheckStatus::Problem, title.clone()));
    let mut evidence = vec![Evidence::observation(
        "describe-instance-health lists no instance",
    )];
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_5XX", "Sum", ""));
    let mut commands = vec![fixes::describe_health(ctx, None)];
    commands.extend(fixes::show_backends(ctx));
    out.findings.push(Finding {
        code: FindingCode::NoRegisteredTargets,
        severity: Severity::Critical,
        confidence: Some(Confidence::Confirmed),
        confidence_reason: Some("no instance is registered, so the load balancer has nowhere to send a request".into()),
        title,
        explanation: "The cloud provider registers the cluster's nodes with a Service's Classic LB. None is registered: the node group may be empty or excluded (the node.kubernetes.io/exclude-from-external-load-balancers label), or the cloud controller manager failed to update the load balancer (its events on the Service say why).".into(),
        evidence,
        fix: Fix {
            summary: "See the Service's events and the nodes' labels; the cloud provider registers every schedulable node that is not excluded.".into(),
            commands,
            durable: None,
            notes: Vec::new(),
        },
        resources: vec![lb.name.clone()],
        remedies: Vec::new(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn an_empty_group_behind_a_rule_is_named_with_the_rule() {
        let name = "alb-empty-target-group";
        let out = run(check, name, &scenario_snapshot(name));
        let f = &out.findings[0];
        assert_eq!(f.confidence, Some(Confidence::Confirmed));
        assert!(f.title.contains("has no registered targets"), "{}", f.title);
        assert!(f.evidence.iter().any(|e| e
            .summary()
            .contains("rule 10 of listener HTTPS:443 (path-pattern /api/*)")));
        let commands: Vec<&str> = f.fix.commands.iter().map(|c| c.command.as_str()).collect();
        assert!(
            commands
                .iter()
                .any(|c| c.contains("kubernetes.io/service-name=checkout-api")),
            "{commands:?}"
        );
        assert!(commands.iter().any(|c| c.contains("targetgroupbindings")));
        assert!(commands
            .iter()
            .any(|c| c.contains("aws-load-balancer-controller")));
    }

    #[test]
    fn groups_with_targets_or_without_503s_are_not_findings() {
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
        let mut quiet = scenario_snapshot("alb-empty-target-group");
        quiet
            .metrics
            .retain(|m| m.metric_name != "HTTPCode_ELB_503_Count");
        assert!(run(check, "alb-empty-target-group", &quiet)
            .findings
            .is_empty());
    }

    #[test]
    fn unused_targets_count_as_absent_and_unread_health_as_unknown() {
        let mut world = scenario_snapshot("alb-empty-target-group");
        let mut target = healthy_alb().target_groups[0].targets[0].clone();
        target.health.state = "unused".into();
        target.health.reason = Some("Target.NotInUse".into());
        let empty = world
            .target_groups
            .iter_mut()
            .find(|g| g.targets.is_empty())
            .unwrap();
        empty.targets.push(target);
        let arn = empty.arn.clone();
        let out = run(check, "alb-empty-target-group", &world);
        assert!(out.findings[0].evidence[0]
            .summary()
            .contains("1 registered but unused"));
        world.gaps.push(crate::snapshot::Gap {
            fact: GapFact::TargetHealth,
            resource: arn,
            reason: crate::snapshot::GapReason::AccessDenied,
            detail: "denied".into(),
        });
        assert!(run(check, "alb-empty-target-group", &world)
            .findings
            .is_empty());
    }

    /// The outside review: the Service name in the controller's target-group tag reached
    /// `kubectl describe service` unchecked. Only a valid Service name is taken.
    #[test]
    fn a_service_name_from_a_tag_must_be_one() {
        let world = crate::testkit::scenario_snapshot("alb-empty-target-group");
        let owner = crate::context::Owner::from_tags(&world);
        let mut group = world.target_groups[1].clone();
        assert_eq!(
            super::service_of(&owner, &group).as_deref(),
            Some("checkout-api")
        );
        for hostile in [
            "shop/checkout-checkout-api --context=x:8080",
            "shop/checkout-Evil:8080",
            "shop/checkout-a.b:8080",
            "shop/checkout---server=evil:8080",
            "shop/checkout-checkout-api:8080:9",
        ] {
            group
                .tags
                .insert("ingress.k8s.aws/resource".into(), hostile.into());
            assert_eq!(super::service_of(&owner, &group), None, "{hostile}");
        }
    }
}

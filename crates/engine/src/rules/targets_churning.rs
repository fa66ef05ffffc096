//! `targets-churning`: 5xx in the periods when targets were being registered or deregistered.
//!
//! A rolling deploy, a scale-in or a node drain removes a pod (or a node) while the load
//! balancer still sends it requests: the pod is terminated before the deregistration has
//! reached every load balancer node, or exits before its in-flight requests finish. The
//! requests fail with 502 (connection refused or reset) or 504. New targets can fail the same
//! way while they start. `HealthyHostCount` per period (Minimum and Maximum) shows when the set
//! of targets moved; lined up with the 5xx, it says whether the churn explains them.

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::churn::Period;
use crate::context::{format_value, Context};
use crate::finding::{
    Command, Confidence, DurableFix, Evidence, Finding, FindingCode, Fix, Severity,
};
use crate::fixes;
use crate::snapshot::HealthClass;

use super::churning_workload::{self, Culprit};
use crate::action::{Action, Place};
use crate::rollout::{self, PRE_STOP_SECONDS};

/// A Classic LB's connection draining, when it is off: a minute covers most requests.
const CONNECTION_DRAINING_SECONDS: u32 = 60;

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let name = "target churn during the 5xx";
    let mut out = RuleOutput::default();
    let churn = &ctx.churn;
    if !churn.observed {
        out.checked.push(Check::new(
            name,
            CheckStatus::Incomplete,
            "HealthyHostCount was not observed, so target churn cannot be lined up with the 5xx",
        ));
        return out;
    }
    let (churning, with_errors) = churn.overlap();
    if with_errors == 0 || churning == 0 {
        let detail = if with_errors == 0 {
            "no 5xx periods in the window".to_string()
        } else {
            format!("the healthy-host count held steady in all {with_errors} periods with 5xx")
        };
        out.checked.push(Check::new(name, CheckStatus::Ok, detail));
        return out;
    }
    out.checked.push(Check::new(
        name,
        CheckStatus::Problem,
        format!("targets churned in {churning} of {with_errors} periods with 5xx"),
    ));
    let every = churning == with_errors;
    let needs = churning_workload::needs(ctx, longest_request_seconds(ctx));
    let culprits = churning_workload::culprits(ctx, &needs);
    // Its pods replaced in the churn periods confirm it only when its spec cuts requests.
    let rolled = culprits
        .iter()
        .find(|c| c.rolled_during_churn && c.cuts_requests())
        .map(|c| churning_workload::describe(c.workload));
    let (confidence, severity) = if every || rolled.is_some() {
        (Confidence::Confirmed, Severity::High)
    } else {
        (Confidence::Likely, Severity::Medium)
    };
    let lb = &ctx.snapshot.load_balancer;
    let errors: f64 = churn
        .error_periods()
        .filter(|p| p.churning)
        .filter_map(|p| p.errors)
        .sum();
    let mut evidence = evidence(ctx);
    evidence.extend(churning_workload::evidence(&culprits));
    let title = title(ctx, churning, with_errors, culprits.first());
    let explanation = explanation(ctx.kind());
    let mut notes = vec![format!(
        "{} of the 5xx fell in periods when the set of healthy targets changed.",
        format_value(errors)
    )];
    if !every {
        notes.push(format!(
            "{} with 5xx saw no churn: something else may cause those; see the other findings.",
            crate::context::count(with_errors - churning, "period", "periods")
        ));
    }
    let draining_off = lb.connection_draining_seconds == Some(0);
    let mut commands = commands(ctx, draining_off);
    let durable = durable_fix(ctx, culprits.first(), &needs, &mut commands);
    let summary = if draining_off {
        "Turn on connection draining (now, and on the Service so it lasts), and let pods and nodes outlive their deregistration: a preStop sleep and a termination grace period above it plus the longest request."
    } else {
        "Make pods outlive their deregistration: a preStop sleep, a termination grace period above it plus the longest request, and no old pod stopped before a new one is healthy."
    };
    out.findings.push(Finding {
        code: FindingCode::TargetsChurning,
        severity,
        confidence: Some(confidence),
        confidence_reason: Some(match (every, rolled) {
            (true, _) => format!(
                "every one of the {with_errors} periods with 5xx saw the healthy-host count move"
            ),
            (false, Some(workload)) => format!(
                "{workload} replaced its pods in the periods with churn and 5xx ({churning} of {with_errors} periods with 5xx)"
            ),
            (false, None) => format!(
                "{churning} of {with_errors} periods with 5xx saw the healthy-host count move"
            ),
        }),
        title,
        explanation: explanation.into(),
        evidence,
        fix: Fix {
            summary: summary.into(),
            commands,
            durable: Some(durable),
            notes,
        },
        resources: churn.in_motion.iter().map(|m| m.target.clone()).collect(),
        remedies: readiness_gates(ctx, &culprits),
    });
    out
}

/// The one change in the cluster remediation may make for churn: the readiness-gate label on
/// each culprit's namespace that lacks it (new pods only; no pod restarts). The pod template
/// changes stay a patch to apply by hand.
fn readiness_gates(ctx: &Context<'_>, culprits: &[Culprit<'_>]) -> Vec<Action> {
    let Some(cluster) = ctx.snapshot.cluster_name() else {
        return Vec::new();
    };
    let mut actions: Vec<Action> = Vec::new();
    for problem in culprits.iter().flat_map(|c| &c.problems) {
        if let rollout::Problem::NoReadinessGate { namespace } = problem {
            let action = Action::EnableReadinessGates {
                cluster: cluster.clone(),
                place: Place::Namespace {
                    name: namespace.clone(),
                },
            };
            if crate::kubernetes_name::is_label(namespace) && !actions.contains(&action) {
                actions.push(action);
            }
        }
    }
    actions
}

/// Why churn makes this kind of load balancer fail.
fn explanation(kind: LbKind) -> &'static str {
    match kind {
        LbKind::Application => "The load balancer kept sending requests to targets that were going away, or to new ones not ready yet: during a rolling deploy or scale-in a pod is terminated while it is still registered, or before the deregistration has reached every load balancer node. \
            Its requests fail with 502 (refused or reset) or 504. The pods must outlive their deregistration, and new pods must pass the load balancer's health checks before old ones go.",
        LbKind::Classic => "The load balancer kept sending requests to instances that were leaving it (a node drain or scale-in, or NodePort endpoints moving during a rollout). \
            A Classic LB stops routing to a deregistered instance at once; without connection draining its in-flight requests are cut.",

        LbKind::Network => "The load balancer kept sending connections to targets that were going away, or to new ones not ready yet: during a rolling deploy or scale-in a pod is terminated while it is still registered. \
            Its flows are reset (TCP_Target_Reset_Count). The pods must outlive their deregistration, and new pods must pass the health checks before old ones go.",
    }
}

/// The finding's title: the periods, and the workload when the cluster names one.
fn title(
    ctx: &Context<'_>,
    churning: usize,
    with_errors: usize,
    culprit: Option<&Culprit<'_>>,
) -> String {
    let mut title = format!(
        "5xx on {} while its targets were being replaced: {} of {} periods with 5xx saw the healthy-host count move",
        ctx.snapshot.load_balancer.name, churning, with_errors
    );
    if let Some(first) = culprit {
        title.push_str(&format!("; {}", first.headline()));
    }
    title
}

fn period_line(p: &Period) -> String {
    let time = p.at.get(11..16).unwrap_or(&p.at);
    let errors = p
        .errors
        .map(|e| format!("{} 5xx", format_value(e)))
        .unwrap_or_else(|| "5xx unknown".into());
    let healthy = match p.healthy {
        Some((low, high)) if low < high => {
            format!(
                "healthy hosts between {} and {}",
                format_value(low),
                format_value(high)
            )
        }
        Some((low, _)) => format!("{} healthy hosts", format_value(low)),
        None => "healthy hosts unknown".into(),
    };
    let moved = if p.churning { ", targets moving" } else { "" };
    format!("{time}: {errors}, {healthy}{moved}")
}

/// The settings that decide how a target leaves and joins.
fn timings(ctx: &Context<'_>) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    for group in &ctx.snapshot.target_groups {
        if let Some(delay) = group.deregistration_delay_seconds {
            evidence.push(Evidence::Setting {
                name: format!("{} deregistration_delay.timeout_seconds", group.name),
                value: delay.to_string(),
                summary: format!("{}: deregistration delay {delay} s (in-flight requests get this long once a target is deregistered)", group.name),
            });
        }
        if let Some(slow) = group.slow_start_seconds.filter(|s| *s > 0) {
            evidence.push(Evidence::Setting {
                name: format!("{} slow_start.duration_seconds", group.name),
                value: slow.to_string(),
                summary: format!("{}: slow start {slow} s", group.name),
            });
        }
    }
    if let Some(draining) = ctx.snapshot.load_balancer.connection_draining_seconds {
        let summary = if draining == 0 {
            "Connection draining is off: a deregistered instance's in-flight requests are cut"
                .to_string()
        } else {
            format!("Connection draining is on, {draining} s")
        };
        evidence.push(Evidence::Setting {
            name: "ConnectionDraining".into(),
            value: draining.to_string(),
            summary,
        });
    }
    evidence
}

/// The longest request the window saw, rounded up: what the grace period must cover after the
/// preStop sleep.
fn longest_request_seconds(ctx: &Context<'_>) -> u32 {
    let metric = match ctx.kind() {
        LbKind::Application | LbKind::Network => "TargetResponseTime",
        LbKind::Classic => "Latency",
    };
    ctx.max(metric, "Maximum")
        .map_or(30, |s| s.ceil().clamp(1.0, 3600.0) as u32)
}

/// The workload's own fix when the cluster names one, else the general pod spec.
fn durable_fix(
    ctx: &Context<'_>,
    culprit: Option<&Culprit<'_>>,
    needs: &crate::rollout::Needs,
    commands: &mut Vec<Command>,
) -> DurableFix {
    match culprit {
        Some(culprit) => {
            let (fix, more) = churning_workload::durable(culprit, needs);
            commands.extend(more);
            fix
        }
        None => durable(ctx),
    }
}

fn durable(ctx: &Context<'_>) -> DurableFix {
    let grace = PRE_STOP_SECONDS + longest_request_seconds(ctx).max(10) + 5;
    let workload = match ctx.owner.namespaced() {
        Some((namespace, name)) => format!("the Deployment behind {namespace}/{name}"),
        None => "the Deployment behind the load balancer".into(),
    };
    let pod_spec = format!(
        "spec:\n  strategy:\n    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 25%\n  template:\n    spec:\n      terminationGracePeriodSeconds: {grace}\n      containers:\n        - name: app\n          lifecycle:\n            preStop:\n              exec:\n                command: [\"sleep\", \"{PRE_STOP_SECONDS}\"]"
    );
    let ip_targets = ctx
        .snapshot
        .target_groups
        .iter()
        .any(|g| g.target_type == "ip");
    match (ctx.kind(), ip_targets) {
        (LbKind::Application | LbKind::Network, true) => {
            let namespace = ctx.owner.namespaced().map_or("NAMESPACE", |(ns, _)| ns);
            DurableFix {
                description: format!("In {workload}: sleep in preStop ({PRE_STOP_SECONDS} s) so the pod outlives its deregistration, a grace period above that plus the longest request ({grace} s), and maxUnavailable 0. Then turn on pod readiness gates in {namespace}, so a rollout waits until each new pod is healthy in the target group."),
                command: Some(crate::shell::Script::line(crate::argv![
                    "kubectl", "label", "namespace", namespace, "elbv2.k8s.aws/pod-readiness-gate-inject=enabled"
                ])),
                manifest: Some(pod_spec),
                warning: "Readiness gates apply to pods created after the label: restart the Deployment once. A preStop sleep needs a sleep binary in the image (or use the sleep action of Kubernetes 1.30+).".into(),
            }
        }
        (LbKind::Application | LbKind::Network, false) => DurableFix {
            description: format!("In {workload}: sleep in preStop ({PRE_STOP_SECONDS} s), a grace period of {grace} s, and maxUnavailable 0. With instance targets, nodes must also leave the target group before they drain: let the AWS Load Balancer Controller exclude them (the node label node.kubernetes.io/exclude-from-external-load-balancers) or drain only after the deregistration delay."),
            command: None,
            manifest: Some(pod_spec),
            warning: "A node drain that ignores the deregistration delay cuts in-flight requests whatever the pods do.".into(),
        },
        (LbKind::Classic, _) => {
            let draining_manifest = format!("metadata:\n  annotations:\n    service.beta.kubernetes.io/aws-load-balancer-connection-draining-enabled: \"true\"\n    service.beta.kubernetes.io/aws-load-balancer-connection-draining-timeout: \"{CONNECTION_DRAINING_SECONDS}\"");
            DurableFix {
                description: format!("Turn on connection draining on the Service (the cloud provider keeps it), and in {workload} sleep in preStop ({PRE_STOP_SECONDS} s) with a grace period of {grace} s. Drain nodes only after they have left the load balancer."),
                command: None,
                manifest: Some(format!("{draining_manifest}\n---\n{pod_spec}")),
                warning: "The cloud provider rewrites the Classic LB's attributes from the Service's annotations at every sync: set draining there, not on the load balancer.".into(),
            }
        }
    }
}

/// Whether the targets the health rule would report are all explained by the churn: then it
/// stands aside and this finding lists them.
pub fn explains_target_states(ctx: &Context<'_>) -> bool {
    ctx.churn.overlap().0 > 0
        && ctx
            .snapshot
            .targets()
            .filter(|(_, t)| t.health.class() != HealthClass::Healthy)
            .all(|(_, t)| {
                matches!(
                    t.health.class(),
                    HealthClass::Draining | HealthClass::Initial
                )
            })
}

/// The periods with churn or 5xx, the targets still moving when elbmedic looked, and the
/// timings that decide whether pods outlive their deregistration.
fn evidence(ctx: &Context<'_>) -> Vec<Evidence> {
    let churn = &ctx.churn;
    let mut evidence: Vec<Evidence> = churn
        .periods
        .iter()
        .filter(|p| p.churning || p.errors.is_some_and(|e| e > 0.0))
        .take(15)
        .map(|p| Evidence::observation(period_line(p)))
        .collect();
    if !churn.in_motion.is_empty() {
        let ids: Vec<String> = churn
            .in_motion
            .iter()
            .map(|m| {
                let reason = m
                    .reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default();
                format!("{} ({}{reason})", m.target, m.state)
            })
            .collect();
        evidence.push(Evidence::observation(format!(
            "When elbmedic looked (after the alarm), {} still moving: {}",
            if ids.len() == 1 {
                "1 target was".to_string()
            } else {
                format!("{} targets were", ids.len())
            },
            list_some(&ids, 4)
        )));
    }
    evidence.extend(timings(ctx));
    evidence
}

fn commands(ctx: &Context<'_>, draining_off: bool) -> Vec<Command> {
    let mut commands = Vec::new();
    if draining_off {
        commands.push(fixes::enable_connection_draining(
            ctx,
            CONNECTION_DRAINING_SECONDS,
        ));
    }
    commands.push(fixes::describe_health(ctx, None));
    commands.extend(fixes::show_backends(ctx));
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::scenario_snapshot;

    #[test]
    fn a_rolling_deploy_is_confirmed_with_the_pod_spec_that_prevents_it() {
        let out = run(
            check,
            "alb-rolling-deploy",
            &scenario_snapshot("alb-rolling-deploy"),
        );
        let f = &out.findings[0];
        assert_eq!(f.code, FindingCode::TargetsChurning);
        assert_eq!(f.confidence, Some(Confidence::Confirmed));
        assert!(f.title.contains("3 of 3 periods"), "{}", f.title);
        let durable = f.fix.durable.as_ref().unwrap();
        assert!(durable.manifest.as_ref().unwrap().contains("preStop"));
        assert!(durable
            .command
            .as_ref()
            .unwrap()
            .as_str()
            .contains("pod-readiness-gate-inject=enabled"));
        assert!(f.evidence.iter().any(|e| e.summary().contains("draining")));
    }

    #[test]
    fn a_node_scale_in_behind_a_classic_lb_names_connection_draining() {
        let out = run(
            check,
            "clb-node-scale-in",
            &scenario_snapshot("clb-node-scale-in"),
        );
        let f = &out.findings[0];
        assert!(f
            .evidence
            .iter()
            .any(|e| e.summary().contains("Connection draining is off")));
        assert!(f
            .fix
            .durable
            .as_ref()
            .unwrap()
            .manifest
            .as_ref()
            .unwrap()
            .contains("connection-draining-enabled"));
    }

    #[test]
    fn steady_targets_are_no_churn() {
        for name in [
            "alb-idle-timeout",
            "targets-refuse-connections",
            "no-known-cause",
        ] {
            let out = run(check, name, &scenario_snapshot(name));
            assert!(out.findings.is_empty(), "{name}: {:?}", out.findings);
        }
    }
}

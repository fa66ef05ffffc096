//! `targets-unhealthy`: targets that fail their health checks or are draining, with the
//! reason the load balancer gives and what it means.
//!
//! Unhealthy targets get no traffic; when all are unhealthy an ALB fails open and sends to
//! all of them. Either way 5xx follow. When a NACL or security group drops the health checks,
//! that is the root cause and this finding says so.

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::context::Context;
use crate::finding::{DurableFix, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::snapshot::{HealthClass, Placement, Target, TargetGroup};

/// What a health reason code means, and where to look.
pub fn explain_reason(reason: &str) -> &'static str {
    match reason {
        "Target.Timeout" => "the health check timed out: the target answers too slowly, or a security group or NACL drops the check",
        "Target.ResponseCodeMismatch" => "the health check got an HTTP status outside the success codes: check the health-check path and matcher",
        "Target.FailedHealthChecks" => "the health check connection failed or the response was malformed: is anything listening on the health-check port?",
        "Target.NotRegistered" => "the target is not registered with the target group",
        "Target.NotInUse" => "the target group is not used by any listener rule, or the target is in a zone the load balancer does not serve",
        "Target.InvalidState" => "the instance is stopped or terminated",
        "Target.IpUnusable" => "the IP address is in use by a load balancer",
        "Target.HealthCheckDisabled" => "health checks are disabled",
        "Target.DeregistrationInProgress" => "the target is being deregistered and drains its connections",
        "Elb.InternalError" => "health checks failed because of an internal load balancer error",
        "Instance" => "the instance failed its health checks (Classic LB)",
        "ELB" => "the load balancer could not check the instance (Classic LB)",
        _ => "see the description",
    }
}

fn is_reported(target: &Target) -> bool {
    target.placement != Placement::NoInterface
        && matches!(
            target.health.class(),
            HealthClass::Unhealthy | HealthClass::Draining | HealthClass::Unknown
        )
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let bad: Vec<(&TargetGroup, &Target)> = ctx
        .snapshot
        .targets()
        .filter(|(_, t)| is_reported(t))
        .collect();
    let mut out = RuleOutput::only(health_check(ctx, bad.is_empty()));
    if bad.is_empty() {
        return out;
    }
    if super::targets_churning::explains_target_states(ctx) {
        // Draining and starting targets in the middle of the churn: that finding lists them.
        if let Some(check) = out.checked.last_mut() {
            check.status = CheckStatus::NotApplicable;
            check.detail = format!(
                "{}; the draining ones are part of the target churn",
                check.detail
            );
        }
        return out;
    }
    let only_draining = bad
        .iter()
        .all(|(_, t)| t.health.class() == HealthClass::Draining);
    let none_healthy = ctx.snapshot.target_groups.iter().any(|g| {
        !g.targets.is_empty()
            && g.targets
                .iter()
                .all(|t| t.health.class() != HealthClass::Healthy)
    });
    let severity = if only_draining {
        Severity::Low
    } else if none_healthy {
        Severity::Critical
    } else {
        Severity::High
    };
    let lb = &ctx.snapshot.load_balancer;
    let ids: Vec<String> = bad.iter().map(|(_, t)| t.id.clone()).collect();
    let mut evidence = health_evidence(ctx, &bad);
    let mut notes = Vec::new();
    if ctx.paths_blocked() {
        notes.push("The network findings in this report drop the health checks too: fix them first, and these targets should recover on their own.".into());
    }
    match (none_healthy, lb.kind) {
        (true, LbKind::Application) => {
            notes.push("With no healthy target an ALB fails open: it routes to all targets anyway, so the 5xx come from the targets themselves (HTTPCode_Target_5XX_Count), and some requests may still succeed.".into());
            evidence.extend(ctx.metric_evidence("HTTPCode_Target_5XX_Count", "Sum", ""));
        }
        (true, LbKind::Classic) => notes.push("With every instance OutOfService a Classic LB has nowhere to send a request and answers 503 itself.".into()),
        (true, LbKind::Network) => notes.push("With no healthy target an NLB fails open: it routes to all targets anyway, and the connections fail at the targets themselves (TCP_Target_Reset_Count).".into()),
        (false, _) => {}
    }
    let arn = bad.iter().find_map(|(g, _)| g.arn.as_deref());
    let mut commands = vec![fixes::describe_health(ctx, arn)];
    commands.extend(fixes::show_backends(ctx));
    out.findings.push(Finding {
        code: FindingCode::TargetsUnhealthy,
        severity,
        confidence: None,
        confidence_reason: None,
        title: title(ctx, bad.len(), &ids, only_draining),
        explanation: if only_draining {
            "These targets are being deregistered, usually during a rollout or scale-in. Requests already in flight finish; new ones go elsewhere. \
             If the pods exit before the deregistration delay ends, in-flight requests fail with 502."
                .into()
        } else {
            "The load balancer sends no new requests to targets that fail their health checks; fewer healthy targets means overload and 5xx, and with none the requests fail. \
             Each target's reason code below says what the health check saw."
                .into()
        },
        evidence,
        fix: Fix {
            summary: "Find out why the health checks fail (reasons above), fix the targets or the health-check settings, and watch them return to healthy.".into(),
            commands,
            durable: Some(health_check_durable(ctx)),
            notes,
        },
        resources: ids,
        remedies: Vec::new(),
    });
    out
}

/// The health check's line: how many targets in each state.
fn health_check(ctx: &Context<'_>, all_fine: bool) -> Check {
    let name = "target health";
    let h = &ctx.health;
    if h.total == 0 {
        return Check::new(name, CheckStatus::Problem, "no registered targets");
    }
    Check::new(
        name,
        if all_fine {
            CheckStatus::Ok
        } else {
            CheckStatus::Problem
        },
        format!(
            "{} targets: {} healthy, {} unhealthy, {} draining, {} other",
            h.total, h.healthy, h.unhealthy, h.draining, h.other
        ),
    )
}

/// Each reported target's state and reason (at most 12, the rest counted), and the metric.
fn health_evidence(ctx: &Context<'_>, bad: &[(&TargetGroup, &Target)]) -> Vec<Evidence> {
    let mut evidence: Vec<Evidence> = bad
        .iter()
        .take(12)
        .map(|(group, t)| {
            let reason = t.health.reason.as_deref();
            Evidence::TargetHealth {
                target: t.id.clone(),
                port: t.port,
                state: t.health.state.clone(),
                reason: t.health.reason.clone(),
                description: t.health.description.clone(),
                summary: format!(
                    "{} ({}): {}{}{}",
                    t.endpoint(),
                    group.name,
                    t.health.state,
                    reason
                        .map(|r| format!(", {r}: {}", explain_reason(r)))
                        .unwrap_or_default(),
                    t.health
                        .description
                        .as_deref()
                        .map(|d| format!(" — \"{d}\""))
                        .unwrap_or_default()
                ),
            }
        })
        .collect();
    if bad.len() > 12 {
        evidence.push(Evidence::observation(format!(
            "... and {} more",
            bad.len() - 12
        )));
    }
    evidence.extend(ctx.metric_evidence("UnHealthyHostCount", "Maximum", ""));
    evidence
}

/// "2 targets of LB are draining (...)" or "3 of the 4 targets of LB fail their health
/// checks (...)".
fn title(ctx: &Context<'_>, bad: usize, ids: &[String], only_draining: bool) -> String {
    let lb = &ctx.snapshot.load_balancer;
    if only_draining {
        format!(
            "{} of {} {} draining ({})",
            crate::context::count(bad, "target", "targets"),
            lb.name,
            if bad == 1 { "is" } else { "are" },
            list_some(ids, 3)
        )
    } else {
        let which = match (bad, ctx.health.total) {
            (1, 1) => "The only target".to_string(),
            (n, total) if n == total => format!("All {n} targets"),
            (n, total) => format!("{n} of the {total} targets"),
        };
        format!(
            "{which} of {} {} ({})",
            lb.name,
            if bad == 1 {
                "fails its health checks"
            } else {
                "fail their health checks"
            },
            list_some(ids, 3)
        )
    }
}

fn health_check_durable(ctx: &Context<'_>) -> DurableFix {
    match ctx.kind() {
        LbKind::Network => DurableFix {
            description: "If the health-check settings are wrong, set them on the Service so the controller keeps them.".into(),
            command: None,
            manifest: Some("metadata:\n  annotations:\n    service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol: HTTP\n    service.beta.kubernetes.io/aws-load-balancer-healthcheck-path: /healthz".into()),
            warning: "The controller overwrites health-check settings changed directly on the target group with the annotations' values (or its defaults).".into(),
        },
        LbKind::Application => DurableFix {
            description: "If the health-check settings are wrong, set them on the Ingress (or Service) so the controller keeps them.".into(),
            command: None,
            manifest: Some("metadata:\n  annotations:\n    alb.ingress.kubernetes.io/healthcheck-path: /healthz\n    alb.ingress.kubernetes.io/success-codes: \"200\"".into()),
            warning: "The controller overwrites health-check settings changed directly on the target group with the annotations' values (or its defaults).".into(),
        },
        LbKind::Classic => DurableFix {
            description: "If the health-check settings are wrong, set them on the Service so the cloud provider keeps them.".into(),
            command: None,
            manifest: Some("metadata:\n  annotations:\n    service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol: HTTP\n    service.beta.kubernetes.io/aws-load-balancer-healthcheck-path: /healthz".into()),
            warning: "The cloud provider rewrites a Classic LB's health check from the Service at every sync.".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn out_of_service_instances_are_reported_with_their_reasons() {
        let out = run(
            check,
            "unhealthy-targets",
            &scenario_snapshot("unhealthy-targets"),
        );
        let f = &out.findings[0];
        assert_eq!(f.severity, Severity::High);
        assert!(f.title.starts_with("2 of the 3 targets"), "{}", f.title);
        assert!(f.fix.commands[0]
            .command
            .contains("describe-instance-health"));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.summary().contains("UnhealthyThreshold")));
    }

    #[test]
    fn all_unhealthy_behind_a_blocked_path_is_critical_and_points_at_the_network() {
        let out = run(
            check,
            "sg-node-missing-lb-rule",
            &scenario_snapshot("sg-node-missing-lb-rule"),
        );
        let f = &out.findings[0];
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.fix.notes.iter().any(|n| n.contains("network findings")));
        assert!(f.evidence.iter().any(|e| e
            .summary()
            .contains("Target.Timeout: the health check timed out")));
    }

    #[test]
    fn draining_alone_is_low_and_stale_targets_are_left_to_their_rule() {
        let out = run(
            check,
            "targets-refuse-connections",
            &scenario_snapshot("targets-refuse-connections"),
        );
        assert_eq!(out.findings[0].severity, Severity::Low);
        let out = run(check, "stale-pod-ip", &scenario_snapshot("stale-pod-ip"));
        assert!(out.findings.is_empty());
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
    }
}

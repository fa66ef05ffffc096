//! `protocol-version-mismatch`, on the target side: a target group that speaks HTTP/2 or gRPC
//! to pods that do not (502s, and health checks failing on the protocol), or one that speaks
//! HTTP/1.1 while its health check calls the gRPC health service. A client-side mismatch is a
//! 4xx (464) and not in scope. A gRPC group's success codes are gRPC codes (`0-99`), not HTTP
//! ones; the default is `12`.

use super::{Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::context::{format_value, Context};
use crate::finding::{Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::snapshot::{HealthClass, TargetGroup};

/// Health-check reasons a protocol the pods do not speak produces.
const PROTOCOL_REASONS: [&str; 2] = ["Target.ResponseCodeMismatch", "Target.FailedHealthChecks"];

/// A group whose protocol version the failing health checks contradict, and why.
struct Mismatch<'a> {
    group: &'a TargetGroup,
    version: &'a str,
    /// The targets failing their health checks on the protocol, of all the group's.
    failing: usize,
    /// The success codes look like HTTP codes on a gRPC group.
    http_codes_on_grpc: bool,
    /// An HTTP/1.1 group whose health check calls the gRPC health service.
    grpc_check_on_http1: bool,
}

fn mismatch(group: &TargetGroup) -> Option<Mismatch<'_>> {
    let version = group.protocol_version.as_deref()?;
    let check = group.health_check.as_ref();
    let failing = group
        .targets
        .iter()
        .filter(|t| {
            t.health.class() == HealthClass::Unhealthy
                && t.health
                    .reason
                    .as_deref()
                    .is_some_and(|r| PROTOCOL_REASONS.contains(&r))
        })
        .count();
    let codes = check.and_then(|c| c.success_codes.as_deref()).unwrap_or("");
    let http_codes_on_grpc = version == "GRPC"
        && codes
            .split([',', '-'])
            .filter_map(|c| c.trim().parse::<u32>().ok())
            .any(|c| c >= 100);
    let grpc_check_on_http1 = version == "HTTP1"
        && check
            .and_then(|c| c.path.as_deref())
            .is_some_and(|p| p.starts_with("/grpc.health.v1.Health"));
    let suspicious = match version {
        "HTTP2" | "GRPC" => failing > 0 || http_codes_on_grpc,
        "HTTP1" => grpc_check_on_http1,
        _ => false,
    };
    suspicious.then_some(Mismatch {
        group,
        version,
        failing,
        http_codes_on_grpc,
        grpc_check_on_http1,
    })
}

/// Whether a mismatch explains the 502s: the keep-alive rule stands aside for it.
pub fn explains_502s(ctx: &Context<'_>) -> bool {
    ctx.kind() == LbKind::Application
        && ctx.sum("HTTPCode_ELB_502_Count").unwrap_or(0.0) > 0.0
        && ctx
            .snapshot
            .target_groups
            .iter()
            .any(|g| mismatch(g).is_some())
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let name = "protocol version to the targets";
    let mut out = RuleOutput::default();
    if ctx.kind() != LbKind::Application {
        out.checked.push(Check::new(
            name,
            CheckStatus::NotApplicable,
            "reported for ALBs only",
        ));
        return out;
    }
    let errors = ctx.sum("HTTPCode_ELB_502_Count").unwrap_or(0.0);
    let found = ctx.snapshot.target_groups.iter().find_map(mismatch);
    let (Some(m), true) = (found, errors > 0.0) else {
        out.checked.push(Check::new(
            name,
            CheckStatus::Ok,
            "no target group whose protocol version its health checks contradict, with 502s",
        ));
        return out;
    };
    let lb = &ctx.snapshot.load_balancer;
    let group = m.group;
    let speaks = match m.version {
        "HTTP2" => "HTTP/2",
        "GRPC" => "gRPC",
        _ => "HTTP/1.1",
    };
    let title = format!(
        "Target group {} speaks {speaks} to its targets, which do not: {} answers 502",
        group.name, lb.name
    );
    out.checked
        .push(Check::new(name, CheckStatus::Problem, title.clone()));
    let evidence = evidence(ctx, &m);
    let all_failing = m.failing > 0 && m.failing == group.targets.len();
    let (annotations, what) = durable_change(&m);
    let arns: Vec<&str> = group.arn.as_deref().into_iter().collect();
    let mut commands = vec![fixes::describe_health(ctx, group.arn.as_deref())];
    if !arns.is_empty() {
        commands.push(fixes::describe_target_groups(ctx, &arns));
    }
    let reason = if m.grpc_check_on_http1 {
        "the health check calls the gRPC health service over HTTP/1.1".to_string()
    } else if m.failing > 0 {
        format!(
            "{} of {} targets fail their health checks on the protocol, with {} 502s",
            m.failing,
            group.targets.len(),
            format_value(errors)
        )
    } else {
        "the success codes are HTTP codes on a gRPC target group".to_string()
    };
    out.findings.push(Finding {
        code: FindingCode::ProtocolVersionMismatch,
        severity: Severity::Critical,
        confidence: Some(if all_failing { Confidence::Confirmed } else { Confidence::Likely }),
        confidence_reason: Some(reason),
        title,
        explanation: format!(
            "The target group's ProtocolVersion ({}) is what the load balancer speaks to the pods, whatever the client speaks. \
             Pods that serve only HTTP/1.1 fail an HTTP/2 or gRPC connection, and the load balancer answers 502; the health checks fail the same way. \
             A gRPC group's health-check success codes are gRPC status codes (0-99; the default is 12, UNIMPLEMENTED, which the default path returns), not HTTP codes. \
             The controller sets the version from alb.ingress.kubernetes.io/backend-protocol-version.",
            m.version
        ),
        evidence,
        fix: Fix {
            summary: format!("Make the target group {what}."),
            commands,
            durable: Some(fixes::ingress_annotations(ctx, &annotations, what)),
            notes: vec!["A client speaking HTTP/2 or gRPC to the listener is a different matter: a mismatch there is a 464, not a 5xx.".into()],
        },
        resources: vec![group.resource_id()],
        remedies: Vec::new(),
    });
    out
}

/// The group's protocol settings, its health-check failures and the 502s.
fn evidence(ctx: &Context<'_>, m: &Mismatch<'_>) -> Vec<Evidence> {
    let group = m.group;
    let check = group.health_check.as_ref();
    let mut evidence = vec![Evidence::setting(
        "ProtocolVersion",
        m.version,
        format!("Target group {}: ProtocolVersion {}", group.name, m.version),
    )];
    if let Some(codes) = check.and_then(|c| c.success_codes.as_deref()) {
        evidence.push(Evidence::setting(
            "Matcher",
            codes,
            format!(
                "Health-check success codes: {codes}{}",
                if m.http_codes_on_grpc {
                    " (HTTP codes; a gRPC group takes gRPC codes 0-99, default 12)"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some(path) = check.and_then(|c| c.path.as_deref()) {
        evidence.push(Evidence::setting(
            "HealthCheckPath",
            path,
            format!("Health-check path: {path}"),
        ));
    }
    if m.failing > 0 {
        evidence.push(Evidence::observation(format!(
            "{} of {} targets fail their health checks with {}",
            m.failing,
            group.targets.len(),
            PROTOCOL_REASONS.join(" or ")
        )));
    }
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_502_Count", "Sum", ""));
    evidence
}

/// The Ingress annotations that make the group speak what its pods speak, and what they do.
fn durable_change(m: &Mismatch<'_>) -> (Vec<(&'static str, &'static str)>, &'static str) {
    if m.version == "HTTP1" {
        (
            vec![
                ("alb.ingress.kubernetes.io/backend-protocol-version", "GRPC"),
                ("alb.ingress.kubernetes.io/success-codes", "0-99"),
            ],
            "speak gRPC to gRPC pods, with gRPC success codes",
        )
    } else if m.http_codes_on_grpc && m.failing == 0 {
        (
            vec![("alb.ingress.kubernetes.io/success-codes", "0-99")],
            "gRPC success codes for the gRPC health checks",
        )
    } else {
        (
            vec![("alb.ingress.kubernetes.io/backend-protocol-version", "HTTP1")],
            "speak HTTP/1.1 to pods that speak HTTP/1.1 (use HTTP2 or GRPC only for pods that serve it, h2c included)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn a_grpc_group_in_front_of_http1_pods_is_named_with_the_annotation() {
        let name = "alb-grpc-to-http1-pods";
        let out = run(check, name, &scenario_snapshot(name));
        let f = &out.findings[0];
        assert_eq!(f.confidence, Some(Confidence::Confirmed));
        assert!(f.title.contains("speaks gRPC"), "{}", f.title);
        let durable = f.fix.durable.as_ref().unwrap();
        assert!(durable
            .command
            .as_ref()
            .unwrap()
            .as_str()
            .contains("backend-protocol-version=HTTP1"));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.summary().contains("gRPC codes 0-99, default 12")));
    }

    #[test]
    fn http1_groups_and_healthy_grpc_groups_are_not_findings() {
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
        let mut grpc = scenario_snapshot("backend-keepalive-502");
        grpc.target_groups[0].protocol_version = Some("GRPC".into());
        grpc.target_groups[0]
            .health_check
            .as_mut()
            .unwrap()
            .success_codes = Some("12".into());
        assert!(run(check, "backend-keepalive-502", &grpc)
            .findings
            .is_empty());
        let mut http1 = scenario_snapshot("backend-keepalive-502");
        http1.target_groups[0].protocol_version = Some("HTTP1".into());
        http1.target_groups[0].health_check.as_mut().unwrap().path =
            Some("/grpc.health.v1.Health/Check".into());
        assert_eq!(
            run(check, "backend-keepalive-502", &http1).findings.len(),
            1
        );
    }
}

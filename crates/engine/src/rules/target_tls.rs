//! `target-tls-failing`: ALB 502s alongside `TargetTLSNegotiationErrorCount`. The load
//! balancer speaks TLS to an HTTPS target group and the handshake fails; the usual cause is the
//! `backend-protocol: HTTPS` annotation in front of pods that speak plain HTTP, otherwise no
//! common protocol version or cipher. The ALB does not verify the target's certificate, so a
//! self-signed one is not the cause.

use super::{Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context};
use crate::finding::{Command, Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::shell::Script;
use crate::snapshot::TargetGroup;

const METRIC: &str = "TargetTLSNegotiationErrorCount";

/// The TLS errors in the window, when there are any alongside 502s: the other 502 rules
/// stand aside for them.
pub fn tls_errors(ctx: &Context<'_>) -> Option<f64> {
    let errors = ctx.sum(METRIC).filter(|e| *e > 0.0)?;
    (ctx.sum("HTTPCode_ELB_502_Count").unwrap_or(0.0) > 0.0).then_some(errors)
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let name = "TLS to the targets";
    let mut out = RuleOutput::default();
    if ctx.kind() != LbKind::Application {
        out.checked.push(Check::new(
            name,
            CheckStatus::NotApplicable,
            "reported for ALBs only",
        ));
        return out;
    }
    let https: Vec<&TargetGroup> = ctx
        .snapshot
        .target_groups
        .iter()
        .filter(|g| g.protocol.as_deref() == Some("HTTPS"))
        .collect();
    let Some(errors) = tls_errors(ctx) else {
        out.checked.push(Check::new(
            name,
            CheckStatus::Ok,
            format!(
                "no TLS negotiation errors with 502s; {}",
                crate::context::count(https.len(), "HTTPS target group", "HTTPS target groups")
            ),
        ));
        return out;
    };
    let lb = &ctx.snapshot.load_balancer;
    let groups: Vec<String> = https
        .iter()
        .map(|g| format!("{} (HTTPS:{})", g.name, g.port.unwrap_or(0)))
        .collect();
    let title = match https.first() {
        Some(g) => format!(
            "TLS handshakes from {} to target group {} fail: 502s",
            lb.name, g.name
        ),
        None => format!("TLS handshakes from {} to its targets fail: 502s", lb.name),
    };
    out.checked
        .push(Check::new(name, CheckStatus::Problem, title.clone()));
    let (overlap, periods) = ctx.co_occurrence(METRIC, "Sum", 0.0).unwrap_or((0, 0));
    let evidence = evidence(ctx, &https, overlap, periods);
    let commands = commands(ctx, &https);
    let confident = periods > 0 && overlap == periods;
    out.findings.push(Finding {
        code: FindingCode::TargetTlsFailing,
        severity: Severity::Critical,
        confidence: Some(if confident { Confidence::Confirmed } else { Confidence::Likely }),
        confidence_reason: Some(format!(
            "{} TLS negotiation errors with targets, in {overlap} of the {periods} periods with 5xx",
            format_value(errors)
        )),
        title,
        explanation: format!(
            "The load balancer opens TLS to the targets of an HTTPS target group ({}), and the handshakes fail, so it answers 502. \
             The usual cause is the alb.ingress.kubernetes.io/backend-protocol: HTTPS annotation in front of pods that speak plain HTTP on that port; otherwise the pods accept no TLS version or cipher the load balancer offers. \
             The load balancer does not verify the target's certificate: a self-signed or expired one is not the cause.",
            if groups.is_empty() { "none was read".to_string() } else { groups.join(", ") }
        ),
        evidence,
        fix: Fix {
            summary: "If the pods speak plain HTTP, set the backend protocol to HTTP; if they serve TLS, allow TLS 1.2 and a current cipher suite in the pods.".into(),
            commands,
            durable: Some(fixes::ingress_annotations(
                ctx,
                &[("alb.ingress.kubernetes.io/backend-protocol", "HTTP")],
                "speak plain HTTP to pods that serve plain HTTP",
            )),
            notes: Vec::new(),
        },
        resources: https.iter().map(|g| g.resource_id()).collect(),
        remedies: Vec::new(),
    });
    out
}

/// The HTTPS groups, the TLS errors beside the 502s, and how often they coincide.
fn evidence(
    ctx: &Context<'_>,
    https: &[&TargetGroup],
    overlap: usize,
    periods: usize,
) -> Vec<Evidence> {
    let mut evidence: Vec<Evidence> = https
        .iter()
        .map(|g| {
            Evidence::setting(
                "protocol",
                "HTTPS",
                format!(
                    "Target group {}: protocol HTTPS, port {}",
                    g.name,
                    g.port.unwrap_or(0)
                ),
            )
        })
        .collect();
    evidence.extend(ctx.metric_evidence(METRIC, "Sum", ""));
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_502_Count", "Sum", ""));
    evidence.push(Evidence::observation(format!(
        "TLS errors in {overlap} of {periods} periods with 5xx"
    )));
    evidence
}

/// What the pod speaks on the port, and the groups' settings.
fn commands(ctx: &Context<'_>, https: &[&TargetGroup]) -> Vec<Command> {
    let port = https.first().and_then(|g| g.port).unwrap_or(8443);
    let arns: Vec<&str> = https.iter().filter_map(|g| g.arn.as_deref()).collect();
    let mut commands = vec![Command::new(
        "What does the pod speak on that port? A TLS handshake answers with a certificate; plain HTTP answers an error or nothing",
        Script::lines(vec![
            fixes::port_forward(ctx, port),
            argv!["sleep", "2"],
            argv!["openssl", "s_client", "-connect", format!("127.0.0.1:{port}"), "-brief"],
        ]),
    )];
    if !arns.is_empty() {
        commands.push(fixes::describe_target_groups(ctx, &arns));
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn tls_errors_in_every_502_period_confirm_it() {
        let name = "alb-target-tls";
        let out = run(check, name, &scenario_snapshot(name));
        let f = &out.findings[0];
        assert_eq!(f.confidence, Some(Confidence::Confirmed));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.summary().contains("protocol HTTPS, port 8080")));
        let durable = f.fix.durable.as_ref().unwrap();
        assert!(durable
            .command
            .as_ref()
            .unwrap()
            .as_str()
            .contains("alb.ingress.kubernetes.io/backend-protocol=HTTP"));
    }

    #[test]
    fn no_tls_errors_no_finding() {
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
        let out = run(
            check,
            "backend-keepalive-502",
            &scenario_snapshot("backend-keepalive-502"),
        );
        assert!(out.findings.is_empty());
    }
}

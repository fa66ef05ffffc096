//! `capacity-exceeded`: the 5xx periods show a capacity limit, and the evidence says whose.
//! - An ALB's `RejectedConnectionCount`: the load balancer reached its maximum connections and
//!   refused some. For known peaks, a capacity reservation keeps capacity provisioned.
//! - A Classic LB's `SurgeQueueLength` at its 1,024 ceiling with `SpilloverCount` above 0:
//!   requests queued for the backends overflowed and were refused with 503. AWS reads this as
//!   backends that cannot keep up: the fix is more or faster targets, not the load balancer.

use super::{Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context};
use crate::finding::{Command, Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::shell::Script;

/// A Classic LB queues at most this many requests for its backends.
const SURGE_QUEUE_CEILING: f64 = 1024.0;

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    match ctx.kind() {
        LbKind::Application => alb(ctx),
        LbKind::Classic => classic(ctx),
        LbKind::Network => RuleOutput::not_for_nlb("load balancer capacity"),
    }
}

fn confidence(overlap: usize, periods: usize) -> Confidence {
    if periods > 0 && overlap == periods {
        Confidence::Confirmed
    } else {
        Confidence::Likely
    }
}

fn alb(ctx: &Context<'_>) -> RuleOutput {
    let name = "load balancer capacity (rejected connections)";
    let mut out = RuleOutput::default();
    let rejected = ctx.sum("RejectedConnectionCount").unwrap_or(0.0);
    let (overlap, periods) = ctx
        .co_occurrence("RejectedConnectionCount", "Sum", 0.0)
        .unwrap_or((0, 0));
    if rejected <= 0.0 || overlap == 0 {
        out.checked.push(Check::new(
            name,
            CheckStatus::Ok,
            "no connections rejected in the periods with 5xx",
        ));
        return out;
    }
    let lb = &ctx.snapshot.load_balancer;
    let title = format!(
        "{} rejected {} connections at its connection limit, in {overlap} of {periods} periods with 5xx",
        lb.name,
        format_value(rejected)
    );
    out.checked
        .push(Check::new(name, CheckStatus::Problem, title.clone()));
    let mut evidence: Vec<Evidence> = [
        "RejectedConnectionCount",
        "HTTPCode_ELB_5XX_Count",
        "RequestCount",
    ]
    .iter()
    .filter_map(|m| ctx.metric_evidence(m, "Sum", ""))
    .collect();
    evidence.push(Evidence::observation(format!(
        "Connections rejected in {overlap} of the {periods} periods with 5xx"
    )));
    let arn = lb
        .arn
        .clone()
        .unwrap_or_else(|| fixes::ALB_ARN_PLACEHOLDER.to_string());
    let region = ctx.region();
    let commands = vec![
        Command::new(
            "See the load balancer's current capacity reservation and its state",
            Script::line(argv!["aws", "elbv2", "describe-capacity-reservation", "--region", region, "--load-balancer-arn", &arn]),
        ),
        Command::new(
            "Reserve capacity ahead of a known peak (LCUs; size it from the peak's RequestCount and new connections, and release it after)",
            Script::line(argv![
                "aws", "elbv2", "modify-capacity-reservation", "--region", region,
                "--load-balancer-arn", &arn, "--minimum-load-balancer-capacity", "CapacityUnits=100"
            ]),
        ),
    ];
    out.findings.push(Finding {
        code: FindingCode::CapacityExceeded,
        severity: Severity::High,
        confidence: Some(confidence(overlap, periods)),
        confidence_reason: Some(format!(
            "connections rejected in {overlap} of the {periods} periods with 5xx"
        )),
        title,
        explanation: "RejectedConnectionCount counts the connections the load balancer refused because it had reached its maximum number of connections: its capacity, not the targets', fell short of the traffic. An ALB scales on its own, but a sudden peak arrives faster than it scales. For peaks you know of (a launch, a sale, a batch), a capacity reservation keeps the capacity provisioned ahead of time.".into(),
        evidence,
        fix: Fix {
            summary: "Reserve load balancer capacity for known peaks; for an unforeseen one, the load balancer catches up as it scales, and clients should retry with back-off.".into(),
            commands,
            durable: None,
            notes: vec!["A capacity reservation is billed while it is held: set it before the peak and reset it after (--reset-capacity-reservation).".into()],
        },
        resources: vec![lb.arn.clone().unwrap_or_else(|| lb.name.clone())],
        remedies: Vec::new(),
    });
    out
}

fn classic(ctx: &Context<'_>) -> RuleOutput {
    let name = "backend capacity (surge queue and spillover)";
    let mut out = RuleOutput::default();
    let spilled = ctx.sum("SpilloverCount").unwrap_or(0.0);
    let queue = ctx.max("SurgeQueueLength", "Maximum").unwrap_or(0.0);
    let (overlap, periods) = ctx
        .co_occurrence("SpilloverCount", "Sum", 0.0)
        .unwrap_or((0, 0));
    if spilled <= 0.0 || overlap == 0 || queue < SURGE_QUEUE_CEILING {
        out.checked.push(Check::new(
            name,
            CheckStatus::Ok,
            format!(
                "surge queue at most {} of {}; {} requests spilled over",
                format_value(queue),
                format_value(SURGE_QUEUE_CEILING),
                format_value(spilled)
            ),
        ));
        return out;
    }
    let lb = &ctx.snapshot.load_balancer;
    let title = format!(
        "The backends of {} cannot keep up: its surge queue is full ({}) and {} requests spilled over as 503s",
        lb.name,
        format_value(queue),
        format_value(spilled)
    );
    out.checked
        .push(Check::new(name, CheckStatus::Problem, title.clone()));
    let mut evidence: Vec<Evidence> = ctx
        .metric_evidence("SurgeQueueLength", "Maximum", "")
        .into_iter()
        .chain(ctx.metric_evidence("SpilloverCount", "Sum", ""))
        .chain(ctx.metric_evidence("Latency", "Maximum", " s"))
        .collect();
    evidence.push(Evidence::observation(format!(
        "Spillover in {overlap} of the {periods} periods with 5xx"
    )));
    let mut commands = vec![fixes::describe_health(ctx, None)];
    commands.extend(fixes::show_backends(ctx));
    if let Some((namespace, _)) = ctx.owner.namespaced() {
        commands.push(Command::new(
            "How busy are the pods? (then scale the Deployment or its autoscaler's maximum)",
            Script::line(argv!["kubectl", "-n", namespace, "top", "pods"]),
        ));
    }
    out.findings.push(Finding {
        code: FindingCode::CapacityExceeded,
        severity: Severity::High,
        confidence: Some(confidence(overlap, periods)),
        confidence_reason: Some(format!(
            "the surge queue reached its ceiling of {} and requests spilled over in {overlap} of the {periods} periods with 5xx",
            format_value(SURGE_QUEUE_CEILING)
        )),
        title,
        explanation: "A Classic LB queues requests while every backend connection is busy, up to 1,024; past that it refuses them with 503 and counts them in SpilloverCount. AWS reads a full surge queue as backends that cannot process requests as fast as they arrive: the load balancer is not the bottleneck, the targets are.".into(),
        evidence,
        fix: Fix {
            summary: "Add capacity behind the load balancer: more pods (and nodes for them), or faster requests. No load balancer setting helps here.".into(),
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
    use crate::testkit::{healthy_alb, healthy_clb, scenario_snapshot};

    #[test]
    fn rejected_connections_name_the_load_balancer_and_a_reservation() {
        let name = "alb-connections-rejected";
        let out = run(check, name, &scenario_snapshot(name));
        let f = &out.findings[0];
        assert_eq!(f.confidence, Some(Confidence::Confirmed));
        assert!(f
            .fix
            .commands
            .iter()
            .any(|c| c.command.as_str().contains("modify-capacity-reservation")));
    }

    #[test]
    fn a_full_surge_queue_points_at_the_backends() {
        let name = "clb-surge-queue-full";
        let out = run(check, name, &scenario_snapshot(name));
        let f = &out.findings[0];
        assert!(f.title.contains("backends"), "{}", f.title);
        assert!(f.explanation.contains("the targets are"));
    }

    #[test]
    fn no_limit_reached_no_finding() {
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
        assert!(run(check, "clb-idle-timeout", &healthy_clb())
            .findings
            .is_empty());
    }
}

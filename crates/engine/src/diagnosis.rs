//! Runs every rule over one alarm and snapshot and decides the verdict. Never an all-clear
//! while 5xx are happening: with no cause found the verdict says so, with what was checked and
//! what to look at next.

use serde::Serialize;

use crate::alarm::Alarm;
use crate::context::{format_value, Context};
use crate::finding::{Finding, FindingCode};
use crate::rules::{Check, POST_RULES, RULES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictStatus {
    /// At least one rule explains the alarm.
    CauseFound,
    /// The alarm is real and no rule explains it.
    NoKnownCause,
    /// The alarm went back to OK.
    Recovered,
    /// INSUFFICIENT_DATA: nothing to diagnose.
    Skipped,
    /// An alarm elbmedic does not handle.
    Unsupported,
    /// The load balancer itself could not be read (deleted, another region or account,
    /// denied): nothing was checked.
    LoadBalancerNotRead,
}

impl VerdictStatus {
    /// The name the JSON report uses (`cause-found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CauseFound => "cause-found",
            Self::NoKnownCause => "no-known-cause",
            Self::Recovered => "recovered",
            Self::Skipped => "skipped",
            Self::Unsupported => "unsupported",
            Self::LoadBalancerNotRead => "load-balancer-not-read",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::CauseFound => "CAUSE FOUND",
            Self::NoKnownCause => "NO KNOWN CAUSE FOUND",
            Self::Recovered => "RECOVERED",
            Self::Skipped => "SKIPPED",
            Self::Unsupported => "UNSUPPORTED",
            Self::LoadBalancerNotRead => "LOAD BALANCER NOT READ",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub status: VerdictStatus,
    /// One line: the cause, or what the situation is.
    pub headline: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub verdict: Verdict,
    /// Most severe first.
    pub findings: Vec<Finding>,
    pub checked: Vec<Check>,
    /// What to do when no cause was found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub next_steps: Vec<String>,
    /// Changes CloudTrail recorded that explain no finding, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent_changes: Vec<String>,
}

pub fn diagnose(alarm: &Alarm, snapshot: &crate::snapshot::Snapshot) -> Diagnosis {
    diagnose_in(&Context::new(alarm, snapshot))
}

/// The diagnosis from a context already built (the report draws its picture from it too).
pub fn diagnose_in(ctx: &Context<'_>) -> Diagnosis {
    let snapshot = ctx.snapshot;
    if let Some(gap) = snapshot.unread_load_balancer() {
        return not_read(ctx, gap);
    }
    let mut findings = Vec::new();
    let mut checked = Vec::new();
    for (order, rule) in RULES.iter().enumerate() {
        let output = (rule.run)(ctx);
        debug_assert!(output.findings.iter().all(|f| f.code == rule.code));
        findings.extend(output.findings.into_iter().map(|f| (order, f)));
        checked.extend(output.checked);
    }
    // Most severe first; equal severities in rule order (root causes before symptoms).
    findings.sort_by(|(a_order, a), (b_order, b)| {
        a.severity.cmp(&b.severity).then(a_order.cmp(b_order))
    });
    let mut findings: Vec<Finding> = findings.into_iter().map(|(_, f)| f).collect();
    let mut recent_changes = Vec::new();
    for rule in POST_RULES {
        let output = (rule.run)(ctx, &mut findings);
        debug_assert!(findings
            .iter()
            .all(|f| RULES.iter().any(|r| r.code == f.code)
                || POST_RULES.iter().any(|r| r.code == Some(f.code))));
        checked.extend(output.checked);
        recent_changes.extend(output.recent_changes);
    }
    crate::ownership::apply(snapshot.kubernetes.as_ref(), &mut findings);
    let causes: Vec<&Finding> = findings.iter().filter(|f| f.code.is_cause()).collect();
    let incomplete = findings
        .iter()
        .any(|f| f.code == FindingCode::CheckIncomplete);
    let (verdict, next_steps) = match causes.first() {
        Some(top) => {
            let more = if causes.len() > 1 {
                format!(" (+{} more)", causes.len() - 1)
            } else {
                String::new()
            };
            (
                Verdict {
                    status: VerdictStatus::CauseFound,
                    headline: format!("{}{more}", top.title),
                },
                Vec::new(),
            )
        }
        None => (
            Verdict {
                status: VerdictStatus::NoKnownCause,
                headline: format!(
                    "{} on {}: none of the causes checked explains them{}",
                    alarm_symptom(ctx),
                    snapshot.load_balancer.name,
                    if incomplete {
                        " (some checks could not run)"
                    } else {
                        ""
                    }
                ),
            },
            next_steps(ctx, &checked),
        ),
    };
    Diagnosis {
        verdict,
        findings,
        checked,
        next_steps,
        recent_changes,
    }
}

/// "12 HTTPCode_ELB_5XX_Count" or the alarm's metric name.
fn alarm_symptom(ctx: &Context<'_>) -> String {
    let metric = ctx
        .alarm
        .primary_metric()
        .map(|m| m.metric_name.clone())
        .unwrap_or_else(|| "the alarm".into());
    match ctx.sum(&metric) {
        Some(total) if total > 0.0 => format!("{} {metric}", format_value(total)),
        _ => metric,
    }
}

/// The diagnosis of a load balancer that could not be read: the first line says so and where
/// it was looked for, and no step claims a check, since none ran.
fn not_read(ctx: &Context<'_>, gap: &crate::snapshot::Gap) -> Diagnosis {
    let lb = &ctx.snapshot.load_balancer;
    let account = ctx
        .snapshot
        .account_id
        .as_deref()
        .map(|a| format!(" of account {a}"))
        .unwrap_or_default();
    let place = format!("{}{account}", ctx.region());
    let headline = match gap.reason {
        crate::snapshot::GapReason::NotFound => format!(
            "{} was not found in {place}: deleted, or the alarm names another region or account",
            lb.name
        ),
        reason => format!("{} could not be read in {place} ({reason})", lb.name),
    };
    let describe = match lb.kind {
        crate::alarm::LbKind::Application | crate::alarm::LbKind::Network => {
            crate::shell::Script::line(crate::argv![
                "aws",
                "elbv2",
                "describe-load-balancers",
                "--region",
                ctx.region(),
                "--names",
                &lb.name
            ])
        }
        crate::alarm::LbKind::Classic => crate::shell::Script::line(crate::argv![
            "aws",
            "elb",
            "describe-load-balancers",
            "--region",
            ctx.region(),
            "--load-balancer-names",
            &lb.name
        ]),
    };
    let next_steps = vec![
        format!("Nothing about the load balancer was read ({}), so nothing is ruled out.", gap.detail),
        format!("Check that it exists where the alarm says, with credentials for that account: `{describe}`"),
        "If it was deleted or replaced (a Service or Ingress recreated gets a new load balancer name), point the alarm at the new one (`elbmedic alarms --lb NAME --topic ALARM_TOPIC_ARN`) and delete this one.".into(),
    ];
    Diagnosis {
        verdict: Verdict {
            status: VerdictStatus::LoadBalancerNotRead,
            headline,
        },
        findings: Vec::new(),
        checked: vec![Check::new(
            "the load balancer",
            crate::rules::CheckStatus::Incomplete,
            gap.detail.clone(),
        )],
        next_steps,
        recent_changes: Vec::new(),
    }
}

/// What to look at when no cause was found. The first step names only the checks that ran
/// and passed, and those that could not run: none is claimed that did not.
fn next_steps(ctx: &Context<'_>, checked: &[Check]) -> Vec<String> {
    use crate::rules::CheckStatus;
    let lb = &ctx.snapshot.load_balancer;
    let names = |status: CheckStatus| -> Vec<&str> {
        checked
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.name.as_str())
            .collect()
    };
    let (passed, not_run) = (names(CheckStatus::Ok), names(CheckStatus::Incomplete));
    let mut steps = Vec::new();
    if passed.is_empty() {
        steps.push(
            "No check could rule a cause out; NOT OBSERVED below says what could not be read."
                .to_string(),
        );
    } else {
        steps.push(format!(
            "These 5xx are real. The checks below rule out, as far as the evidence goes: {}.",
            passed.join("; ")
        ));
    }
    if !not_run.is_empty() {
        steps.push(format!(
            "Not settled, because data was missing: {}. NOT OBSERVED below says what could not be read.",
            not_run.join("; ")
        ));
    }
    match lb.kind {
        crate::alarm::LbKind::Application => {
            let (start, end) = ctx.window_times();
            steps.push("Read the access log for the alarm window: `elb_status_code`, `target_status_code` and `error_reason` name the failing requests (503: no healthy target or no rule; 500: an internal error or a WAF/auth action; 460: the client closed first; 561: the identity provider failed).".into());
            let command = crate::shell::Script::line(crate::argv![
                "aws",
                "cloudwatch",
                "get-metric-statistics",
                "--region",
                ctx.region(),
                "--namespace",
                "AWS/ApplicationELB",
                "--metric-name",
                "HTTPCode_ELB_503_Count",
                "--dimensions",
                format!("Name=LoadBalancer,Value={}", lb.id),
                "--statistics",
                "Sum",
                "--period",
                "60",
                "--start-time",
                &start,
                "--end-time",
                &end
            ]);
            steps.push(format!(
                "Compare HTTPCode_ELB_5XX_Count with HTTPCode_ELB_502/503/504_Count and HTTPCode_Target_5XX_Count per target group: `{command}`"
            ));
        }
        crate::alarm::LbKind::Network => {
            steps.push("Compare TCP_ELB_Reset_Count (the NLB reset the flow: an idle flow expired, or no healthy target), TCP_Target_Reset_Count (the target reset it) and TCP_Client_Reset_Count; NLB metrics exist only while traffic flows, so no data is not zero.".into());
        }
        crate::alarm::LbKind::Classic => {
            steps.push("Read the access log for the alarm window: `elb_status_code` and `backend_status_code` (`-` means the back end never answered).".into());
            steps.push(
                "Check SurgeQueueLength and SpilloverCount: a full surge queue answers 503.".into(),
            );
        }
    }
    steps.push("If access logs are off, enable them now so the next occurrence can be read (they cost only S3 storage).".into());
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{codes, scenario_alarm};
    use crate::scenarios::SCENARIOS;
    use crate::testkit::scenario_snapshot;

    #[test]
    fn status_names_are_the_json_names() {
        for status in [
            VerdictStatus::CauseFound,
            VerdictStatus::NoKnownCause,
            VerdictStatus::Recovered,
            VerdictStatus::Skipped,
            VerdictStatus::Unsupported,
            VerdictStatus::LoadBalancerNotRead,
        ] {
            assert_eq!(serde_json::json!(status), status.as_str());
        }
    }

    #[test]
    fn every_scenario_gets_its_expected_codes() {
        use FindingCode::*;
        let expected: &[(&str, &[FindingCode])] = &[
            ("clb-idle-timeout", &[IdleTimeoutExceeded]),
            ("clb-idle-timeout-reverted", &[IdleTimeoutExceeded]),
            ("alb-idle-timeout", &[IdleTimeoutExceeded]),
            (
                "nacl-ephemeral-node-subnets",
                &[NaclBlocksEphemeralPorts, TargetsUnhealthy],
            ),
            (
                "nacl-ephemeral-lb-subnets",
                &[NaclBlocksEphemeralPorts, TargetsUnhealthy],
            ),
            (
                "ipv6-nacl-ephemeral-lb-subnets",
                &[NaclBlocksEphemeralPorts, TargetsUnhealthy],
            ),
            (
                "nacl-blocks-target-port",
                &[NaclBlocksTargetPort, TargetsUnhealthy],
            ),
            (
                "sg-node-missing-lb-rule",
                &[SgBlocksTargetPort, TargetsUnhealthy],
            ),
            ("unhealthy-targets", &[TargetsUnhealthy]),
            ("stale-pod-ip", &[StaleTargets]),
            (
                "targets-refuse-connections",
                &[TargetsRefuseConnections, TargetsUnhealthy],
            ),
            ("alb-rolling-deploy", &[TargetsChurning, RecentChange]),
            ("eks-rolling-deploy-no-prestop", &[TargetsChurning]),
            (
                "eks-ingress-group-conflict",
                &[ControllerCannotReconcile, IdleTimeoutExceeded],
            ),
            ("eks-idle-timeout-class-params", &[IdleTimeoutExceeded]),
            ("eks-no-ready-pods", &[NoRegisteredTargets]),
            ("clb-node-scale-in", &[TargetsChurning]),
            ("alb-node-drain", &[TargetsChurning, RecentChange]),
            (
                "sg-egress-unrelated-revoke",
                &[SgBlocksTargetPort, TargetsUnhealthy],
            ),
            ("clb-cross-zone-off", &[TargetsUnhealthy, ZoneConcentrated]),
            (
                "nacl-rule-added-recently",
                &[NaclBlocksEphemeralPorts, RecentChange, TargetsUnhealthy],
            ),
            ("unrelated-change", &[]),
            ("one-zone-failure", &[ZoneConcentrated]),
            ("alb-empty-target-group", &[NoRegisteredTargets]),
            ("alb-target-tls", &[TargetTlsFailing]),
            (
                "alb-grpc-to-http1-pods",
                &[ProtocolVersionMismatch, TargetsUnhealthy],
            ),
            ("alb-connections-rejected", &[CapacityExceeded]),
            ("clb-surge-queue-full", &[CapacityExceeded]),
            ("nlb-idle-timeout-resets", &[NlbIdleTimeoutResets]),
            ("nlb-client-ip-not-admitted", &[ClientIpNotAdmitted]),
            ("nlb-sg-blocks-clients", &[NlbSgBlocksClients]),
            ("nlb-port-allocation", &[PortAllocationExhausted]),
            ("backend-keepalive-502", &[BackendClosesConnections]),
            ("no-known-cause", &[]),
            ("check-incomplete", &[CheckIncomplete, CheckIncomplete]),
        ];
        assert_eq!(expected.len(), SCENARIOS.len());
        for (name, codes_expected) in expected {
            let diagnosis = diagnose(&scenario_alarm(name), &scenario_snapshot(name));
            assert_eq!(
                &codes(&diagnosis.findings),
                codes_expected,
                "scenario {name}"
            );
        }
    }

    #[test]
    fn every_code_is_produced_by_some_scenario() {
        let mut seen = std::collections::BTreeSet::new();
        for name in SCENARIOS.iter().map(|s| s.name) {
            seen.extend(codes(
                &diagnose(&scenario_alarm(name), &scenario_snapshot(name)).findings,
            ));
        }
        for code in FindingCode::ALL {
            assert!(seen.contains(&code), "no scenario produces {code}");
        }
    }

    #[test]
    fn no_cause_is_never_an_all_clear() {
        let d = diagnose(
            &scenario_alarm("no-known-cause"),
            &scenario_snapshot("no-known-cause"),
        );
        assert_eq!(d.verdict.status, VerdictStatus::NoKnownCause);
        assert!(
            d.verdict
                .headline
                .starts_with("11 HTTPCode_ELB_5XX_Count on k8s-shop-checkout-6f1e2d3c4b: none of the causes checked"),
            "{}",
            d.verdict.headline
        );
        assert!(d.next_steps.iter().any(|s| s.contains("access log")));
        // The first step names the checks that ran, from below, and no other.
        assert!(
            d.next_steps[0].starts_with("These 5xx are real. The checks below rule out"),
            "{:?}",
            d.next_steps
        );
        for check in &d.checked {
            let named = d.next_steps[0].contains(&check.name);
            assert_eq!(
                named,
                check.status == crate::rules::CheckStatus::Ok,
                "{}: {:?}",
                check.name,
                check.status
            );
        }
        assert!(!d
            .next_steps
            .iter()
            .any(|s| s.contains("START") || s.contains("END")));
        assert!(
            d.next_steps
                .iter()
                .any(|s| s.contains("--start-time 2026-")),
            "{:?}",
            d.next_steps
        );
        let incomplete = diagnose(
            &scenario_alarm("check-incomplete"),
            &scenario_snapshot("check-incomplete"),
        );
        assert_eq!(incomplete.verdict.status, VerdictStatus::NoKnownCause);
        assert!(incomplete
            .verdict
            .headline
            .contains("some checks could not run"));
    }

    #[test]
    fn root_cause_leads_the_verdict() {
        let d = diagnose(
            &scenario_alarm("sg-node-missing-lb-rule"),
            &scenario_snapshot("sg-node-missing-lb-rule"),
        );
        assert_eq!(d.verdict.status, VerdictStatus::CauseFound);
        assert!(d
            .verdict
            .headline
            .starts_with("Security group sg-0c5e7a9b1d3f24680"));
        assert!(d.verdict.headline.ends_with("(+1 more)"));
    }
}

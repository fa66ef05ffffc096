//! Runs every rule over one alarm and snapshot and decides the verdict. Never an all-clear
//! while 5xx are happening: with no cause found the verdict says so, with what was checked and
//! what to look at next.

use serde::Serialize;

use crate::alarm::Alarm;
use crate::context::{format_value, Context};
use crate::finding::{Finding, FindingCode};
use crate::rules::{Check, RULES};

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
}

impl VerdictStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::CauseFound => "CAUSE FOUND",
            Self::NoKnownCause => "NO KNOWN CAUSE FOUND",
            Self::Recovered => "RECOVERED",
            Self::Skipped => "SKIPPED",
            Self::Unsupported => "UNSUPPORTED",
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
    let ctx = Context::new(alarm, snapshot);
    let mut findings = Vec::new();
    let mut checked = Vec::new();
    for (order, rule) in RULES.iter().enumerate() {
        let output = (rule.run)(&ctx);
        debug_assert!(output.findings.iter().all(|f| f.code == rule.code));
        findings.extend(output.findings.into_iter().map(|f| (order, f)));
        checked.extend(output.checked);
    }
    // Most severe first; equal severities in rule order (root causes before symptoms).
    findings.sort_by(|(a_order, a), (b_order, b)| {
        a.severity.cmp(&b.severity).then(a_order.cmp(b_order))
    });
    let mut findings: Vec<Finding> = findings.into_iter().map(|(_, f)| f).collect();
    // The 5xx per zone: evidence for every cause, a finding when it decides alone.
    let (zone, zone_check) = crate::rules::zone_concentrated::link(&ctx, &mut findings);
    checked.push(zone_check);
    if let Some(zone) = zone {
        let at = findings
            .iter()
            .position(|f| f.severity > zone.severity)
            .unwrap_or(findings.len());
        findings.insert(at, zone);
    }
    // The access logs, when read, confirm or point within the findings.
    checked.extend(crate::rules::access_logs::apply(&ctx, &mut findings));
    // Changes from CloudTrail are read against the findings: which one each change explains.
    let linked = crate::rules::recent_change::link(&ctx, &mut findings);
    checked.extend(linked.check);
    if let Some((change, after)) = linked.finding {
        // Right after the finding it explains: the cause first, then what changed.
        findings.insert((after + 1).min(findings.len()), change);
    }
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
                    "No known cause found for {} on {}{}",
                    alarm_symptom(&ctx),
                    snapshot.load_balancer.name,
                    if incomplete {
                        " (some checks could not run)"
                    } else {
                        ""
                    }
                ),
            },
            next_steps(&ctx),
        ),
    };
    Diagnosis {
        verdict,
        findings,
        checked,
        next_steps,
        recent_changes: linked.unlinked,
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

fn next_steps(ctx: &Context<'_>) -> Vec<String> {
    let lb = &ctx.snapshot.load_balancer;
    let mut steps = vec![
        "These 5xx are real: the checks above rule out the idle timeout, keep-alive races, blocked NACLs and security groups, and unhealthy or stale targets as far as the evidence goes.".to_string(),
    ];
    match lb.kind {
        crate::alarm::LbKind::Application => {
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
                "START",
                "--end-time",
                "END"
            ]);
            steps.push(format!(
                "Compare HTTPCode_ELB_5XX_Count with HTTPCode_ELB_502/503/504_Count and HTTPCode_Target_5XX_Count per target group: `{command}`"
            ));
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
            ("clb-node-scale-in", &[TargetsChurning]),
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
                .starts_with("No known cause found for 11 HTTPCode_ELB_5XX_Count"),
            "{}",
            d.verdict.headline
        );
        assert!(d.next_steps.iter().any(|s| s.contains("access log")));
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

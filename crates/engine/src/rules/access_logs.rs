//! Access logs as proof: after the rules, the counts read from the alarm window's access logs
//! are laid against the findings. A 502 with `target_status_code` `-` is a connection the
//! target closed or reset, which confirms `backend-closes-connections`; a 504 with no target
//! response that lasted the idle timeout confirms `idle-timeout-exceeded`; the 5xx by
//! `target:port` show one bad pod among healthy ones.

use super::{Check, CheckStatus, PostOutput};
use crate::access_log::AccessLogs;
use crate::context::Context;
use crate::finding::{Confidence, Evidence, Finding, FindingCode};

/// The annotation that turns an ALB's access logs on (the controller owns the attribute).
pub const ENABLE_ALB_LOGS: &str = "alb.ingress.kubernetes.io/load-balancer-attributes: access_logs.s3.enabled=true,access_logs.s3.bucket=BUCKET,access_logs.s3.prefix=PREFIX";

/// NLB: the Service annotation that turns its (TLS listeners') access logs on.
pub const ENABLE_NLB_LOGS: &str = "service.beta.kubernetes.io/aws-load-balancer-attributes: access_logs.s3.enabled=true,access_logs.s3.bucket=BUCKET,access_logs.s3.prefix=PREFIX (an NLB logs its TLS listeners only)";

/// Classic LB: the Service annotations that turn access logs on.
pub const ENABLE_CLB_LOGS: &str = "service.beta.kubernetes.io/aws-load-balancer-access-log-enabled: \"true\" and service.beta.kubernetes.io/aws-load-balancer-access-log-s3-bucket-name: BUCKET";

/// A finding raised to *confirmed* by the logs, with the line that shows why.
fn confirm(finding: &mut Finding, reason: String) {
    finding.confidence = Some(Confidence::Confirmed);
    finding.confidence_reason = Some(reason.clone());
    finding.evidence.push(Evidence::observation(reason));
}

const NAME: &str = "access logs (S3)";

/// The post-pass rule: the access logs, when read, confirm or point within the findings.
// The registry's one signature: the other post-pass rules insert findings.
#[allow(clippy::ptr_arg)]
pub fn post(ctx: &Context<'_>, findings: &mut Vec<Finding>) -> PostOutput {
    PostOutput {
        checked: apply(ctx, findings).into_iter().collect(),
        ..PostOutput::default()
    }
}

/// The check line; `None` when nothing is known of the logs (neither read nor their settings).
pub fn apply(ctx: &Context<'_>, findings: &mut [Finding]) -> Option<Check> {
    let Some(logs) = &ctx.snapshot.access_logs else {
        return unread(ctx);
    };
    if ctx.kind() == crate::alarm::LbKind::Network {
        return Some(tls(logs, findings));
    }
    let total = logs.total_5xx();
    let by_code: Vec<String> = logs
        .elb_5xx
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    let read = format!(
        "{}; load-balancer 5xx: {}",
        logs.read_summary(),
        if by_code.is_empty() {
            "none".into()
        } else {
            by_code.join(", ")
        }
    );
    let upgraded = back_findings(ctx, logs, findings, &read);
    let classes: Vec<String> = logs
        .classifications
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    Some(Check::new(
        NAME,
        if upgraded > 0 {
            CheckStatus::Problem
        } else {
            CheckStatus::Ok
        },
        format!(
            "{read}{}{}",
            if classes.is_empty() {
                String::new()
            } else {
                format!("; classification {}", classes.join(", "))
            },
            if total > 0 && upgraded > 0 {
                format!(
                    "; {} backed by them",
                    crate::context::count(upgraded, "finding", "findings")
                )
            } else {
                String::new()
            }
        ),
    ))
}

/// An NLB's TLS connection log: what it read, and the long-lived connections as evidence on
/// an idle-timeout finding (evidence only: a long connection was not necessarily idle).
fn tls(logs: &AccessLogs, findings: &mut [Finding]) -> Check {
    let timeout = crate::snapshot::NLB_TCP_IDLE_TIMEOUT;
    let read = format!(
        "{}; {} TLS connections: {} handshakes failed, {} lasted at least the {timeout} s idle timeout",
        logs.read_summary(),
        logs.tls_connections,
        logs.tls_handshake_failures,
        logs.long_connections
    );
    if logs.long_connections > 0 {
        for finding in findings
            .iter_mut()
            .filter(|f| f.code == FindingCode::NlbIdleTimeoutResets)
        {
            finding.evidence.push(Evidence::observation(format!(
                "The TLS access logs show {} of {} connections lasting at least {timeout} s: long-lived connections, the kind an idle timeout cuts",
                logs.long_connections, logs.tls_connections
            )));
        }
    }
    Check::new(NAME, CheckStatus::Ok, read)
}

/// The check line when the logs were not read: off (and how to turn them on), or where they
/// are written for the follow-up to read; `None` when nothing is known of them.
fn unread(ctx: &Context<'_>) -> Option<Check> {
    let lb = &ctx.snapshot.load_balancer;
    let tls = |l: &crate::snapshot::Listener| l.protocol.eq_ignore_ascii_case("TLS");
    if ctx.kind() == crate::alarm::LbKind::Network && !lb.listeners.iter().any(tls) {
        return Some(Check::new(
            NAME,
            CheckStatus::NotApplicable,
            "an NLB writes access logs for its TLS listeners only, and this one has none",
        ));
    }
    let (status, detail) = match &lb.access_log {
        Some(config) if !config.enabled => (
            CheckStatus::NotApplicable,
            format!(
                "access logs are off, so no request-level proof exists; turn them on with {}",
                match lb.kind {
                    crate::alarm::LbKind::Application => ENABLE_ALB_LOGS,
                    crate::alarm::LbKind::Network => ENABLE_NLB_LOGS,
                    crate::alarm::LbKind::Classic => ENABLE_CLB_LOGS,
                }
            ),
        ),
        Some(config) => (
            CheckStatus::NotApplicable,
            format!(
                "written to s3://{}/{}; not read in this pass (the window's logs arrive about 5 minutes late for an ALB, up to an hour for a Classic LB): the follow-up reads them",
                config.bucket.as_deref().unwrap_or("?"),
                config.prefix
            ),
        ),
        None => return None,
    };
    Some(Check::new(NAME, status, detail))
}

/// Backs the findings the logs prove: a 504 that lasted the idle timeout, a 502 the target
/// closed, 5xx concentrated on one target. Returns how many were backed.
fn back_findings(
    ctx: &Context<'_>,
    logs: &AccessLogs,
    findings: &mut [Finding],
    read: &str,
) -> usize {
    let lb = &ctx.snapshot.load_balancer;
    let mut upgraded = 0;
    let one_target = one_bad_target(logs);
    for finding in findings.iter_mut() {
        let evidence_before = finding.evidence.len();
        if let Some(line) = one_target.as_ref().filter(|_| on_targets(finding.code)) {
            finding
                .evidence
                .push(Evidence::observation(format!("{line} ({read})")));
        }
        match finding.code {
            FindingCode::IdleTimeoutExceeded if logs.idle_timeouts > 0 => {
                let timeout = lb
                    .idle_timeout_seconds
                    .unwrap_or(crate::snapshot::DEFAULT_IDLE_TIMEOUT);
                confirm(finding, format!(
                    "The access logs show {} 504s that lasted the {timeout} s idle timeout with no response from the target ({read})",
                    logs.idle_timeouts
                ));
            }
            FindingCode::BackendClosesConnections if logs.closed_by_target > 0 => {
                let of = logs
                    .elb_5xx
                    .get("502")
                    .copied()
                    .unwrap_or(logs.closed_by_target);
                confirm(finding, format!(
                    "The access logs show {} of {of} 502s with target_status_code \"-\": the target closed or reset the connection ({read})",
                    logs.closed_by_target
                ));
            }
            _ => {}
        }
        // Backed: confirmed by the logs, or a health finding pinned on one target. The line
        // on other findings points within them; it proves nothing about their cause.
        let pinned = matches!(
            finding.code,
            FindingCode::TargetsUnhealthy | FindingCode::TargetsRefuseConnections
        );
        if finding
            .confidence_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("The access logs"))
            && finding.evidence.len() > evidence_before
            || pinned && finding.evidence.len() > evidence_before
        {
            upgraded += 1;
        }
    }
    upgraded
}

/// Fewer 5xx than this on targets say nothing about one of them.
const MIN_5XX_FOR_ONE_TARGET: u64 = 4;

/// "The access logs put 83 % of the 5xx (25) on 10.0.18.41:8080", when at least half of the
/// 5xx the logs tie to a target are on one.
fn one_bad_target(logs: &AccessLogs) -> Option<String> {
    let total: u64 = logs.by_target.values().sum();
    let (target, count, share) = logs.top_target()?;
    (total >= MIN_5XX_FOR_ONE_TARGET && share >= 0.5).then(|| {
        format!(
            "The access logs put {:.0} % of the 5xx ({count} of {total}) on {}",
            share * 100.0,
            crate::untrusted::one_line(target)
        )
    })
}

/// The causes that live on the targets, which one bad target may be: keep-alive 502s,
/// idle-timeout 504s, resets and refusals, failing health, TLS and protocol mismatches. A path
/// (NACL, security group) fails for every target behind it, so it gets no such line.
fn on_targets(code: FindingCode) -> bool {
    matches!(
        code,
        FindingCode::IdleTimeoutExceeded
            | FindingCode::BackendClosesConnections
            | FindingCode::TargetsUnhealthy
            | FindingCode::TargetsRefuseConnections
            | FindingCode::TargetTlsFailing
            | FindingCode::ProtocolVersionMismatch
            | FindingCode::TargetsChurning
    )
}

#[cfg(test)]
mod tests {
    use crate::access_log::AccessLogs;
    use crate::diagnosis::diagnose;
    use crate::finding::{Confidence, FindingCode};
    use crate::rules::testing::scenario_alarm;
    use crate::testkit::scenario_snapshot;

    fn logs(idle: u64, closed: u64) -> AccessLogs {
        AccessLogs {
            bucket: "logs".into(),
            objects_found: 2,
            objects_read: 2,
            lines: 900,
            elb_5xx: [("502".to_string(), closed), ("504".to_string(), idle)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            idle_timeouts: idle,
            closed_by_target: closed,
            ..AccessLogs::default()
        }
    }

    #[test]
    fn the_logs_confirm_the_idle_timeout_and_the_closed_connections() {
        let name = "backend-keepalive-502";
        let mut world = scenario_snapshot(name);
        let before = diagnose(&scenario_alarm(name), &world);
        assert_eq!(before.findings[0].confidence, Some(Confidence::Likely));
        world.access_logs = Some(logs(0, 14));
        let after = diagnose(&scenario_alarm(name), &world);
        let f = &after.findings[0];
        assert_eq!(
            (f.code, f.confidence),
            (
                FindingCode::BackendClosesConnections,
                Some(Confidence::Confirmed)
            )
        );
        assert!(f
            .confidence_reason
            .as_deref()
            .unwrap()
            .contains("14 of 14 502s"));
        let name = "alb-idle-timeout";
        let mut world = scenario_snapshot(name);
        world.access_logs = Some(logs(21, 0));
        let after = diagnose(&scenario_alarm(name), &world);
        assert!(after.findings[0].evidence.iter().any(|e| e
            .summary()
            .contains("21 504s that lasted the 60 s idle timeout")));
    }

    /// One pod behind most of the 5xx is named on every finding the logs back, not only on
    /// the health findings; a path finding gets no such line, nor do 5xx spread evenly.
    #[test]
    fn one_bad_target_is_named_on_every_5xx_finding_it_may_be() {
        for (name, code) in [
            (
                "backend-keepalive-502",
                FindingCode::BackendClosesConnections,
            ),
            ("alb-idle-timeout", FindingCode::IdleTimeoutExceeded),
        ] {
            let mut world = scenario_snapshot(name);
            let mut read = logs(21, 14);
            read.by_target = [
                ("10.0.18.41:8080".to_string(), 25),
                ("10.0.37.152:8080".to_string(), 5),
            ]
            .into_iter()
            .collect();
            world.access_logs = Some(read.clone());
            let after = diagnose(&scenario_alarm(name), &world);
            let finding = after.findings.iter().find(|f| f.code == code).unwrap();
            assert!(
                finding.evidence.iter().any(|e| e.summary().starts_with(
                    "The access logs put 83 % of the 5xx (25 of 30) on 10.0.18.41:8080"
                )),
                "{name}: {:#?}",
                finding.evidence
            );
            read.by_target = [
                ("10.0.18.41:8080".to_string(), 15),
                ("10.0.37.152:8080".to_string(), 15),
                ("10.0.5.9:8080".to_string(), 15),
            ]
            .into_iter()
            .collect();
            world.access_logs = Some(read);
            let after = diagnose(&scenario_alarm(name), &world);
            assert!(after
                .findings
                .iter()
                .flat_map(|f| &f.evidence)
                .all(|e| !e.summary().contains("of the 5xx")));
        }
        // The bucket of targets past the first 50 seen is not a target.
        let name = "backend-keepalive-502";
        let mut world = scenario_snapshot(name);
        let mut read = logs(0, 14);
        read.by_target = [
            ("others".to_string(), 40),
            ("10.0.18.41:8080".to_string(), 3),
        ]
        .into_iter()
        .collect();
        world.access_logs = Some(read);
        let after = diagnose(&scenario_alarm(name), &world);
        assert!(after
            .findings
            .iter()
            .flat_map(|f| &f.evidence)
            .all(|e| !e.summary().contains("of the 5xx")));
        let name = "nacl-ephemeral-node-subnets";
        let mut world = scenario_snapshot(name);
        let mut read = logs(0, 0);
        read.by_target = [("10.0.18.41:8080".to_string(), 9)].into_iter().collect();
        world.access_logs = Some(read);
        let after = diagnose(&scenario_alarm(name), &world);
        let nacl = after
            .findings
            .iter()
            .find(|f| f.code == FindingCode::NaclBlocksEphemeralPorts)
            .unwrap();
        assert!(nacl
            .evidence
            .iter()
            .all(|e| !e.summary().contains("of the 5xx")));
    }

    #[test]
    fn logs_that_show_nothing_change_nothing() {
        let name = "backend-keepalive-502";
        let mut world = scenario_snapshot(name);
        world.access_logs = Some(logs(0, 0));
        let after = diagnose(&scenario_alarm(name), &world);
        assert_eq!(after.findings[0].confidence, Some(Confidence::Likely));
        assert!(after
            .checked
            .iter()
            .any(|c| c.name == "access logs (S3)" && c.detail.contains("900 lines")));
    }
}

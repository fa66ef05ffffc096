//! `idle-timeout-exceeded`: requests run into the load balancer's idle timeout.
//!
//! The metrics cannot show this directly, so the rule reasons about what they can show:
//! a Classic LB records the `Latency` of a timed-out request *at* the timeout, so a maximum
//! sitting at the timeout in periods with 5xx confirms it (and hides the true duration); an
//! ALB leaves timed-out requests out of `TargetResponseTime` altogether, so 504s with healthy
//! targets and open paths carry the diagnosis and a maximum or p99 close to the timeout
//! strengthens it.

use super::{Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::context::{format_value, Context};
use crate::finding::{Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;

/// AWS accepts idle timeouts of 1-4000 s on both Classic LBs and ALBs.
pub const MAX_AWS_IDLE_TIMEOUT: u32 = 4000;

/// The timeout to recommend. When the true duration is known (`observed` above the current
/// timeout), observed + 25 % rounded up to 10 s; when it is capped at the timeout, a bounded
/// step: double, by at least 30 s and at most 300 s. `None` when already at the AWS maximum.
pub fn recommend_idle_timeout(current: u32, observed: Option<f64>, capped: bool) -> Option<u32> {
    if current >= MAX_AWS_IDLE_TIMEOUT {
        return None;
    }
    let from_observed = observed
        .filter(|v| !capped && v.is_finite() && *v > f64::from(current))
        .map(|v| ((v * 1.25 / 10.0).ceil() * 10.0).min(f64::from(MAX_AWS_IDLE_TIMEOUT)) as u32);
    let step = current.clamp(30, 300);
    let value = from_observed.unwrap_or(current.saturating_add(step));
    Some(value.clamp(current + 1, MAX_AWS_IDLE_TIMEOUT))
}

/// Periods whose value sits at the timeout (CloudWatch rounds; allow 2 %).
fn at_timeout(value: f64, timeout: u32) -> bool {
    value >= f64::from(timeout) * 0.98
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    if ctx.kind() == LbKind::Network {
        return RuleOutput::not_for_nlb(NAME);
    }
    let mut out = RuleOutput::default();
    let Some(timeout) = ctx.snapshot.load_balancer.idle_timeout_seconds else {
        out.checked.push(Check::new(
            NAME,
            CheckStatus::Incomplete,
            "the idle timeout could not be read",
        ));
        return out;
    };
    let found = match ctx.kind() {
        LbKind::Classic => classic(ctx, timeout),
        LbKind::Application | LbKind::Network => application(ctx, timeout),
    };
    let history = past_raise(ctx, timeout);
    // After elbmedic's raise, only 5xx after it can argue for another: the window's older
    // periods are from before the fix.
    let found = match (found, after_the_fix(ctx, timeout)) {
        (Ok(_), Some(waiting)) => Err(waiting),
        (found, _) => found,
    };
    match found {
        Ok(mut finding) => {
            finding
                .evidence
                .extend(super::idle_annotation::evidence(ctx, timeout));
            if let Some(past) = history {
                with_past_raise(&mut finding, past);
            }
            out.checked.push(Check::new(
                NAME,
                CheckStatus::Problem,
                finding.title.clone(),
            ));
            out.findings.push(*finding);
        }
        Err(mut check) => {
            if let Some(past) = history {
                check.detail = format!("{}; {}", check.detail, past.text);
            }
            out.checked.push(check)
        }
    }
    out
}

/// The check that waits, when every 5xx period of the window began before elbmedic's raise of
/// this idle timeout, which still holds: those periods are "before the fix", and a raise on
/// top of a raise needs 5xx after the first one. `None` when there is no such raise, or 5xx
/// came after it.
fn after_the_fix(ctx: &Context<'_>, timeout: u32) -> Option<Check> {
    let raise = ctx.snapshot.history.as_ref()?.idle_timeout_raise.as_ref()?;
    if raise.to_seconds.is_some_and(|to| timeout < to) {
        return None; // put back: the reverted-raise evidence says so
    }
    let metric = match ctx.kind() {
        LbKind::Classic => "HTTPCode_ELB_5XX",
        LbKind::Application | LbKind::Network => {
            if ctx.series("HTTPCode_ELB_504_Count", "Sum").is_some() {
                "HTTPCode_ELB_504_Count"
            } else {
                "HTTPCode_ELB_5XX_Count"
            }
        }
    };
    if !ctx.only_before(metric, raise.at) {
        return None;
    }
    let when = crate::incident::note::clock(raise.at);
    let change = match (raise.from_seconds, raise.to_seconds) {
        (Some(from), Some(to)) => format!("from {from} s to {to} s "),
        _ => String::new(),
    };
    Some(Check::new(
        NAME,
        CheckStatus::Ok,
        format!(
            "elbmedic raised the idle timeout {change}at {when}; every {metric} period of the window is before the fix at {when}, and none since: not raised again until 5xx come after it (idle timeout {timeout} s)"
        ),
    ))
}

/// elbmedic's own last raise of this LB's idle timeout, read against the current value.
struct PastRaise {
    text: String,
    /// The value is below what elbmedic set: something put it back.
    reverted: bool,
}

fn past_raise(ctx: &Context<'_>, timeout: u32) -> Option<PastRaise> {
    let raise = ctx.snapshot.history.as_ref()?.idle_timeout_raise.as_ref()?;
    let when = chrono::DateTime::from_timestamp(raise.at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("epoch {}", raise.at));
    let plan = raise
        .plan_id
        .as_deref()
        .map(|id| format!(" (plan {id})"))
        .unwrap_or_default();
    let change = match (raise.from_seconds, raise.to_seconds) {
        (Some(from), Some(to)) => format!(" from {from} s to {to} s"),
        (None, Some(to)) => format!(" to {to} s"),
        _ => String::new(),
    };
    let done = format!("elbmedic raised the idle timeout{change} at {when}{plan}");
    Some(match raise.to_seconds {
        Some(to) if timeout < to => {
            let who = match ctx.kind() {
                LbKind::Classic => "most likely the Kubernetes cloud provider, which rewrites ConnectionSettings.IdleTimeout from the Service's annotation (60 s without one) at every Service sync",
                LbKind::Application | LbKind::Network => "most likely the AWS Load Balancer Controller, whose load-balancer-attributes annotation names idle_timeout.timeout_seconds, or an infrastructure-as-code run",
            };
            PastRaise {
                text: format!("{done}, and it is {timeout} s again: something put it back, {who}"),
                reverted: true,
            }
        }
        Some(_) => PastRaise {
            text: format!("{done}; it still holds ({timeout} s)"),
            reverted: false,
        },
        None => PastRaise {
            text: done,
            reverted: false,
        },
    })
}

/// A raise that was put back is not made again: the owner of the setting would revert it
/// again. Only the durable fix lasts, so the remedy is withdrawn and the report says why.
fn with_past_raise(finding: &mut Finding, past: PastRaise) {
    if !past.reverted {
        finding.evidence.push(Evidence::observation(format!(
            "{}, and requests still run into it: they take longer than that",
            past.text
        )));
        return;
    }
    finding.evidence.push(Evidence::observation(past.text));
    {
        finding.remedies.clear();
        finding.fix.notes.insert(
            0,
            "The direct change was reverted before: apply the durable fix (the annotation) first, or it will be reverted again. elbmedic does not raise it again by itself.".into(),
        );
    }
}

const NAME: &str = "idle timeout vs. latency";

/// A maximum `TargetResponseTime` below this share of the idle timeout contradicts a timeout.
const FAR_BELOW: f64 = 0.5;

fn classic(ctx: &Context<'_>, timeout: u32) -> Result<Box<Finding>, Check> {
    let Some(latency) = ctx.series("Latency", "Maximum") else {
        return Err(Check::new(
            NAME,
            CheckStatus::Incomplete,
            format!("idle timeout {timeout} s; Latency (Maximum) was not observed"),
        ));
    };
    let errors = ctx.series("HTTPCode_ELB_5XX", "Sum");
    let capped: Vec<&str> = latency
        .points
        .iter()
        .filter(|p| at_timeout(p.value, timeout))
        .map(|p| p.timestamp.as_str())
        .collect();
    let max = ctx.max("Latency", "Maximum").unwrap_or(0.0);
    if capped.is_empty() {
        return Err(Check::new(
            NAME,
            CheckStatus::Ok,
            format!(
                "idle timeout {timeout} s; Latency maximum {} s stays below it",
                format_value(max)
            ),
        ));
    }
    let with_errors = errors.map_or(0, |series| {
        series
            .points
            .iter()
            .filter(|p| p.value > 0.0 && capped.contains(&p.timestamp.as_str()))
            .count()
    });
    let (confidence, reason) = if with_errors > 0 {
        (Confidence::Confirmed, format!(
            "Latency sat at the {timeout} s timeout in {}, {with_errors} of them with 5xx: that is how a Classic LB records a request it closed at the idle timeout",
            crate::context::count(capped.len(), "period", "periods")
        ))
    } else {
        (Confidence::Likely, format!(
            "Latency reached the {timeout} s timeout in {}, but no HTTPCode_ELB_5XX data points fell in the same periods",
            crate::context::count(capped.len(), "period", "periods")
        ))
    };
    let recommended = recommend_idle_timeout(timeout, Some(max), true);
    let explanation = format!(
        "The load balancer closed connections whose back end had not answered within the {timeout} s idle timeout, and answered the clients with 504. \
         A Classic LB records such a request's Latency at the timeout, so the maximum sits at {timeout} s and the requests' true duration is unknown: \
         raise the timeout by a bounded step, and if 504s continue the requests take longer still, so make the application answer sooner \
         (send data while it works, or move long work to a background job)."
    );
    let mut evidence = vec![Evidence::setting(
        "ConnectionSettings.IdleTimeout",
        timeout,
        format!("Idle timeout: {timeout} s"),
    )];
    evidence.extend(ctx.metric_evidence("Latency", "Maximum", " s"));
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_5XX", "Sum", ""));
    Ok(Box::new(finding(
        ctx,
        timeout,
        recommended,
        confidence,
        reason,
        explanation,
        evidence,
    )))
}

/// The ALB's 504s (or 5xx) and their metric, when they are this rule's to explain; otherwise
/// the check that says why it stands aside.
fn application_errors(ctx: &Context<'_>, timeout: u32) -> Result<(&'static str, f64), Check> {
    let (errors_metric, errors) = match ctx.sum("HTTPCode_ELB_504_Count") {
        Some(count) => ("HTTPCode_ELB_504_Count", count),
        None => (
            "HTTPCode_ELB_5XX_Count",
            ctx.sum("HTTPCode_ELB_5XX_Count").unwrap_or(0.0),
        ),
    };
    if errors <= 0.0 {
        return Err(Check::new(
            NAME,
            CheckStatus::Ok,
            format!("idle timeout {timeout} s; no 504s in the window"),
        ));
    }
    if ctx.paths_blocked() {
        return Err(Check::new(
            NAME,
            CheckStatus::NotApplicable,
            "504s are explained by blocked paths (see the network findings)",
        ));
    }
    if ctx.network_incomplete() {
        return Err(Check::new(NAME, CheckStatus::Incomplete, format!(
            "{} 504s, but not every path could be checked; an ALB idle timeout is only concluded with the paths known to be open",
            format_value(errors)
        )));
    }
    if !ctx.health.mostly_healthy() {
        return Err(Check::new(
            NAME,
            CheckStatus::NotApplicable,
            "most targets fail their health checks; 504s are not read as idle timeouts",
        ));
    }
    let connection_errors = ctx.sum("TargetConnectionErrorCount").unwrap_or(0.0);
    if connection_errors >= errors {
        return Err(Check::new(NAME, CheckStatus::NotApplicable, format!(
            "{} 504s and {} target connection errors: the 504s are failed connections, not idle timeouts",
            format_value(errors), format_value(connection_errors)
        )));
    }
    if ctx.churn.explains_every_error() {
        return Err(Check::new(NAME, CheckStatus::NotApplicable, format!(
            "{} 504s, all in periods when targets churned (see target churn): requests cut by a target leaving, not idle timeouts",
            format_value(errors)
        )));
    }
    Ok((errors_metric, errors))
}

fn application(ctx: &Context<'_>, timeout: u32) -> Result<Box<Finding>, Check> {
    let (errors_metric, errors) = application_errors(ctx, timeout)?;
    let max = ctx.max("TargetResponseTime", "Maximum");
    // An ALB leaves a timed-out request out of TargetResponseTime, so a low maximum cannot
    // confirm a timeout; but requests that run past the timeout are not the only slow ones,
    // and when nothing came within half of it, the 504s are not read as idle timeouts.
    if let Some(peak) = max.filter(|m| *m < f64::from(timeout) * FAR_BELOW) {
        return Err(Check::new(NAME, CheckStatus::Ok, format!(
            "{} 504s, but TargetResponseTime peaked at {} s against the {timeout} s idle timeout: no request came near it, so they are not read as idle timeouts",
            format_value(errors),
            format_value(peak)
        )));
    }
    let p99 = ctx.max("TargetResponseTime", "p99");
    let near = max.is_some_and(|m| m >= f64::from(timeout) * 0.9)
        || p99.is_some_and(|p| p >= f64::from(timeout) * 0.8);
    let shown = |v: Option<f64>| {
        v.map_or_else(
            || "not observed".to_string(),
            |v| format!("{} s", format_value(v)),
        )
    };
    let (confidence, reason) = if near {
        (Confidence::Confirmed, format!(
            "{} 504s with healthy targets and open paths, and TargetResponseTime reached {} (max) / {} (p99) against a {timeout} s timeout",
            format_value(errors), shown(max), shown(p99)
        ))
    } else {
        (Confidence::Likely, format!(
            "{} 504s with healthy targets, open paths and few connection errors; TargetResponseTime (max {}, p99 {}) cannot confirm it because an ALB leaves requests that hit the timeout out of that metric",
            format_value(errors), shown(max), shown(p99)
        ))
    };
    // Durations above the timeout are real (streaming responses are not idle); otherwise capped.
    let capped = max.is_none_or(|m| m <= f64::from(timeout));
    let recommended = recommend_idle_timeout(timeout, max, capped);
    let explanation = format!(
        "The load balancer answered {} requests with 504 while its targets passed their health checks and every path between its nodes and the targets is open: \
         the targets accepted the requests but sent nothing for {timeout} s, the idle timeout, and the load balancer gave up. \
         An ALB records no TargetResponseTime for such a request (its target_processing_time is -1 in the access log), so the true duration is unknown; \
         the access log's `elb_status_code=504` lines with `target_processing_time=-1` name the slow requests.",
        format_value(errors)
    );
    let evidence = application_evidence(ctx, timeout, errors_metric);
    Ok(Box::new(finding(
        ctx,
        timeout,
        recommended,
        confidence,
        reason,
        explanation,
        evidence,
    )))
}

fn application_evidence(ctx: &Context<'_>, timeout: u32, errors_metric: &str) -> Vec<Evidence> {
    let mut evidence = vec![Evidence::setting(
        "idle_timeout.timeout_seconds",
        timeout,
        format!("Idle timeout: {timeout} s"),
    )];
    evidence.extend(ctx.metric_evidence(errors_metric, "Sum", ""));
    evidence.extend(ctx.metric_evidence("TargetResponseTime", "Maximum", " s"));
    evidence.extend(ctx.metric_evidence("TargetResponseTime", "p99", " s"));
    evidence.extend(ctx.metric_evidence("TargetConnectionErrorCount", "Sum", ""));
    evidence.push(Evidence::observation(format!(
        "{} of {} targets healthy; all {} NACL legs and security group checks open",
        ctx.health.healthy,
        ctx.health.total,
        ctx.network.nacl_checks.len()
    )));
    evidence
}

fn finding(
    ctx: &Context<'_>,
    timeout: u32,
    recommended: Option<u32>,
    confidence: Confidence,
    reason: String,
    explanation: String,
    evidence: Vec<Evidence>,
) -> Finding {
    let lb = &ctx.snapshot.load_balancer;
    let fix = match recommended {
        Some(seconds) => Fix {
            summary: format!("Raise the idle timeout from {timeout} s to {seconds} s, or make the slow requests finish (or send data) sooner."),
            commands: vec![fixes::set_idle_timeout(ctx, seconds)],
            durable: Some(fixes::durable_idle_timeout(ctx, seconds)),
            notes: vec![
                format!(
                    "Keep every backend's HTTP keep-alive timeout above {seconds} s (nginx keepalive_timeout, Node.js server.keepAliveTimeout and headersTimeout, gunicorn --keep-alive, Apache KeepAliveTimeout, Go http.Server.IdleTimeout): a backend that closes idle connections before the load balancer turns these 504s into 502s."
                ),
                format!("Roll back with the same command and {timeout} instead of {seconds}."),
            ],
        },
        None => Fix {
            summary: format!("The idle timeout is already {timeout} s, the AWS maximum: the requests must finish (or send data) sooner."),
            ..Fix::default()
        },
    };
    Finding {
        code: FindingCode::IdleTimeoutExceeded,
        severity: Severity::High,
        confidence: Some(confidence),
        confidence_reason: Some(reason),
        title: format!(
            "Requests run into the {timeout} s idle timeout of {} {}",
            lb.kind.display(),
            lb.name
        ),
        explanation,
        evidence,
        fix,
        resources: vec![lb.arn.clone().unwrap_or_else(|| lb.name.clone())],
        remedies: recommended
            .map(|to| crate::action::Action::RaiseIdleTimeout { from: timeout, to })
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::scenario_snapshot;

    #[test]
    fn recommendation_steps_when_capped_and_adds_headroom_when_known() {
        assert_eq!(recommend_idle_timeout(60, Some(60.0), true), Some(120));
        assert_eq!(recommend_idle_timeout(10, None, true), Some(40));
        assert_eq!(recommend_idle_timeout(600, Some(600.0), true), Some(900));
        assert_eq!(recommend_idle_timeout(3900, None, true), Some(4000));
        assert_eq!(recommend_idle_timeout(4000, None, true), None);
        assert_eq!(recommend_idle_timeout(60, Some(95.0), false), Some(120));
        assert_eq!(recommend_idle_timeout(60, Some(300.0), false), Some(380));
        assert_eq!(
            recommend_idle_timeout(60, Some(40.0), false),
            Some(120),
            "below the timeout: step"
        );
    }

    #[test]
    fn classic_latency_at_the_timeout_with_5xx_is_confirmed() {
        let out = run(
            check,
            "clb-idle-timeout",
            &scenario_snapshot("clb-idle-timeout"),
        );
        let finding = &out.findings[0];
        assert_eq!(finding.confidence, Some(Confidence::Confirmed));
        assert!(finding.fix.commands[0]
            .command
            .contains("\"IdleTimeout\":120"));
        let durable = finding.fix.durable.as_ref().unwrap();
        assert!(durable
            .command
            .as_ref()
            .unwrap()
            .contains("aws-load-balancer-connection-idle-timeout=120"));
        assert!(durable
            .command
            .as_ref()
            .unwrap()
            .contains("-n shop annotate service orders"));
        assert!(finding.fix.notes[0].contains("502"));
    }

    fn raised(to: u32) -> crate::snapshot::History {
        crate::snapshot::History {
            idle_timeout_raise: Some(crate::snapshot::IdleTimeoutRaise {
                at: 1_795_000_000,
                from_seconds: Some(60),
                to_seconds: Some(to),
                plan_id: Some("p-7f3a".into()),
            }),
        }
    }

    /// The Classic LB is at 60 s again after elbmedic set 120 s: the Service sync put it
    /// back. The report says so, and the raise is not offered again, only the annotation.
    #[test]
    fn a_reverted_raise_is_named_and_not_remedied_again() {
        let mut world = scenario_snapshot("clb-idle-timeout");
        world.history = Some(raised(120));
        let out = run(check, "clb-idle-timeout", &world);
        let finding = &out.findings[0];
        let said: Vec<&str> = finding.evidence.iter().map(|e| e.summary()).collect();
        let history = said
            .iter()
            .find(|s| s.starts_with("elbmedic raised"))
            .expect("the past raise is evidence");
        assert!(
            history.contains(
                "from 60 s to 120 s at 2026-11-18 11:06 UTC (plan p-7f3a), and it is 60 s again"
            ),
            "{history}"
        );
        assert!(history.contains("Service sync"), "{history}");
        assert!(finding.remedies.is_empty(), "not raised again by elbmedic");
        assert!(finding.fix.notes[0].contains("reverted before"));
        assert!(
            finding.fix.durable.is_some(),
            "the annotation is still given"
        );
    }

    /// A raise that holds and 504s at the new value: the requests are longer still.
    #[test]
    fn a_raise_that_holds_is_evidence_that_requests_take_longer() {
        let mut world = scenario_snapshot("clb-idle-timeout");
        world.history = Some(raised(60));
        let out = run(check, "clb-idle-timeout", &world);
        let finding = &out.findings[0];
        assert!(!finding.remedies.is_empty());
        assert!(finding.evidence.iter().any(|e| e
            .summary()
            .contains("it still holds (60 s), and requests still run into it")));

        // No finding: the check line carries the history.
        world.load_balancer.idle_timeout_seconds = Some(120);
        world.history = Some(raised(120));
        let out = run(check, "clb-idle-timeout", &world);
        assert!(out.findings.is_empty());
        assert!(
            out.checked[0].detail.contains("it still holds (120 s)"),
            "{}",
            out.checked[0].detail
        );
    }

    /// Right after elbmedic's raise, the window's 5xx are all from before it: no finding, no
    /// second raise; the check says they are before the fix. 5xx in a period that began after
    /// the raise argue for another raise.
    #[test]
    fn a_raise_on_top_of_a_raise_needs_5xx_after_the_first() {
        let mut world = scenario_snapshot("clb-idle-timeout");
        world.load_balancer.idle_timeout_seconds = Some(60);
        let mut history = raised(60);
        // 18:00 UTC, after the last 5xx period (17:58).
        history.idle_timeout_raise.as_mut().unwrap().at = 1_795_456_800;
        world.history = Some(history.clone());
        let out = run(check, "clb-idle-timeout", &world);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        let detail = &out.checked[0].detail;
        assert!(
            detail.contains("before the fix at 18:00 UTC, and none since: not raised again"),
            "{detail}"
        );
        // 17:56:30: the 5xx of 17:57 and 17:58 came after it.
        history.idle_timeout_raise.as_mut().unwrap().at = 1_795_456_590;
        world.history = Some(history);
        let out = run(check, "clb-idle-timeout", &world);
        assert!(!out.findings[0].remedies.is_empty());
    }

    #[test]
    fn classic_latency_below_the_timeout_is_not_a_finding() {
        let mut world = scenario_snapshot("clb-idle-timeout");
        world.load_balancer.idle_timeout_seconds = Some(120);
        let out = run(check, "clb-idle-timeout", &world);
        assert!(out.findings.is_empty());
        assert_eq!(out.checked[0].status, CheckStatus::Ok);
    }

    #[test]
    fn alb_504s_near_the_timeout_are_confirmed_midway_likely_and_far_below_not_claimed() {
        let world = scenario_snapshot("alb-idle-timeout");
        let out = run(check, "alb-idle-timeout", &world);
        assert_eq!(out.findings[0].confidence, Some(Confidence::Confirmed));
        let durable = out.findings[0]
            .fix
            .durable
            .as_ref()
            .unwrap()
            .command
            .clone()
            .unwrap();
        assert!(
            durable.contains("grep -v -e '^idle_timeout.timeout_seconds=' -e '^$'"),
            "merges the list: {durable}"
        );
        assert!(out.findings[0].fix.commands[0]
            .command
            .contains("Key=idle_timeout.timeout_seconds,Value=120"));

        let with_latency = |value: f64| {
            let mut world = world.clone();
            for series in world
                .metrics
                .iter_mut()
                .filter(|s| s.metric_name == "TargetResponseTime")
            {
                series.points.iter_mut().for_each(|p| p.value = value);
            }
            run(check, "alb-idle-timeout", &world)
        };
        let midway = with_latency(35.0);
        assert_eq!(midway.findings[0].confidence, Some(Confidence::Likely));
        assert!(midway.findings[0]
            .confidence_reason
            .as_ref()
            .unwrap()
            .contains("leaves requests that hit the timeout out"));
        // Trust round two, defect 7: latency far below the timeout contradicts it.
        let low = with_latency(1.8);
        assert!(low.findings.is_empty(), "{:?}", low.findings);
        assert!(
            low.checked[0]
                .detail
                .contains("peaked at 1.8 s against the 60 s idle timeout"),
            "{}",
            low.checked[0].detail
        );
    }

    #[test]
    fn alb_504s_explained_elsewhere_are_not_idle_timeouts() {
        // Connection errors account for the 504s.
        let out = run(
            check,
            "alb-idle-timeout",
            &scenario_snapshot("nacl-ephemeral-node-subnets"),
        );
        assert!(out.findings.is_empty());
        let out = run(
            check,
            "alb-idle-timeout",
            &scenario_snapshot("sg-node-missing-lb-rule"),
        );
        assert!(out.findings.is_empty());
        // No 504s at all.
        let out = run(
            check,
            "alb-idle-timeout",
            &scenario_snapshot("backend-keepalive-502"),
        );
        assert!(out.findings.is_empty());
    }

    #[test]
    fn unknown_idle_timeout_is_incomplete() {
        let mut world = scenario_snapshot("alb-idle-timeout");
        world.load_balancer.idle_timeout_seconds = None;
        let out = run(check, "alb-idle-timeout", &world);
        assert!(out.findings.is_empty());
        assert_eq!(out.checked[0].status, CheckStatus::Incomplete);
    }
}

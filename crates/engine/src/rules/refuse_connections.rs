//! `targets-refuse-connections`: connections to targets fail while the network paths are open
//! and the targets pass their health checks.
//!
//! `TargetConnectionErrorCount` (ALB) and `BackendConnectionErrors` (Classic LB) count
//! connections that could not be *established*. With the paths open, something on the target
//! side refuses or drops them. The hypotheses are ranked by what the snapshot shows, each with
//! the way to confirm it.

use super::backend_closes_connections::sysctl_commands;
use super::{Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context};
use crate::finding::{Command, Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::shell::{Script, Word};
use crate::snapshot::HealthClass;

struct Hypothesis {
    score: u8,
    text: String,
}

/// Connection errors below this share of the load balancer's 5xx cannot be their cause.
const MIN_SHARE_OF_5XX: f64 = 0.25;

const NAME: &str = "connection errors with open paths";

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let metric = match ctx.kind() {
        LbKind::Application => "TargetConnectionErrorCount",
        LbKind::Classic => "BackendConnectionErrors",
        LbKind::Network => return RuleOutput::not_for_nlb(NAME),
    };
    let errors = match detect(ctx, metric) {
        Ok(errors) => errors,
        Err(stands_aside) => return RuleOutput::only(stands_aside),
    };
    let mut out = RuleOutput::default();
    let lb = &ctx.snapshot.load_balancer;
    let title = format!(
        "Targets of {} refuse connections while paths are open and health checks pass",
        lb.name
    );
    out.checked
        .push(Check::new(NAME, CheckStatus::Problem, title.clone()));
    let delay = ctx
        .snapshot
        .target_groups
        .iter()
        .find_map(|g| g.deregistration_delay_seconds);
    let mut explanation = format!(
        "The load balancer could not establish {} connections to its targets ({metric}), yet every NACL and security group on the way allows them and the targets pass their health checks. \
         Something on the targets refuses or drops new connections: the hypotheses below are ranked, most likely first.",
        format_value(errors)
    );
    if ctx.kind() == LbKind::Classic {
        explanation.push_str(" BackendConnectionErrors also counts failed health-check connections and retries, so it can exceed the request count.");
    }
    out.findings.push(Finding {
        code: FindingCode::TargetsRefuseConnections,
        severity: Severity::High,
        confidence: Some(Confidence::Likely),
        confidence_reason: Some("connection errors with open paths and passing health checks point at the targets; which hypothesis holds needs a look inside the cluster".into()),
        title,
        explanation: explanation.trim_end().to_string(),
        evidence: evidence(ctx, metric, delay),
        fix: fix(ctx, hypotheses(ctx, delay)),
        resources: vec![lb.arn.clone().unwrap_or_else(|| lb.name.clone())],
        remedies: Vec::new(),
    });
    out
}

/// The connection errors, when they are this rule's to explain; otherwise the check that says
/// why it stands aside (none, explained by churn, blocked paths, unhealthy or stale targets,
/// or too few against the load balancer's 5xx).
fn detect(ctx: &Context<'_>, metric: &str) -> Result<f64, Check> {
    let aside = |status, detail: String| Check::new(NAME, status, detail);
    let Some(errors) = ctx.sum(metric) else {
        return Err(aside(
            CheckStatus::Incomplete,
            format!("{metric} was not observed"),
        ));
    };
    if errors <= 0.0 {
        return Err(aside(
            CheckStatus::Ok,
            format!("{metric}: none in the window"),
        ));
    }
    let shown = format_value(errors);
    if ctx.churn.explains_every_error() {
        return Err(aside(
            CheckStatus::NotApplicable,
            format!("{shown} {metric}, with every 5xx period in target churn (see target churn)"),
        ));
    }
    if ctx.paths_blocked() {
        return Err(aside(
            CheckStatus::NotApplicable,
            format!("{shown} {metric} explained by the blocked paths reported"),
        ));
    }
    if ctx.network_incomplete() {
        return Err(aside(
            CheckStatus::Incomplete,
            format!("{shown} {metric}, but not every path could be checked: refused connections are only concluded with the paths known to be open"),
        ));
    }
    if !ctx.health.mostly_healthy() {
        return Err(aside(
            CheckStatus::NotApplicable,
            format!("{shown} {metric} with most targets unhealthy (see target health)"),
        ));
    }
    // The path is open now; if it was opened after every error, the errors are from before
    // the fix and say nothing about the targets.
    if let Some((change, at)) = ctx
        .last_path_change()
        .filter(|(_, at)| ctx.only_before(metric, *at))
    {
        return Err(aside(
            CheckStatus::NotApplicable,
            format!(
                "{shown} {metric}, all before the fix at {} ({} on the path), and none since: the targets are not blamed for them",
                crate::incident::note::clock(at),
                crate::untrusted::clipped(&change.event_name, 60)
            ),
        ));
    }
    let stale = ctx.stale_target_count();
    if stale > 0 {
        return Err(aside(
            CheckStatus::NotApplicable,
            format!(
                "{shown} {metric} explained by {}",
                crate::context::count(stale, "stale target", "stale targets")
            ),
        ));
    }
    // A connection error fails at most one request: a handful cannot be the cause of many
    // more 5xx, and naming them so would send the reader after the wrong thing.
    let elb_5xx = ctx.elb_5xx().unwrap_or(0.0);
    if errors < elb_5xx * MIN_SHARE_OF_5XX {
        return Err(aside(
            CheckStatus::NotApplicable,
            format!(
                "{shown} {metric} against {} 5xx from the load balancer: too few to be their cause",
                format_value(elb_5xx)
            ),
        ));
    }
    Ok(errors)
}

/// What refuses the connections, ranked by what the snapshot shows, most likely first.
fn hypotheses(ctx: &Context<'_>, delay: Option<u32>) -> Vec<Hypothesis> {
    let ns = crate::fixes::namespace_of(ctx);
    let mut hypotheses = Vec::new();
    let draining = ctx
        .snapshot
        .targets()
        .any(|(_, t)| t.health.class() == HealthClass::Draining);
    let ip_targets = ctx
        .snapshot
        .target_groups
        .iter()
        .any(|g| g.target_type == "ip");
    let rollout = format!(
        "Pods stop accepting connections before the load balancer stops sending them: during a rollout or scale-in a pod exits while its target is still registered or draining{}. \
         Confirm: `kubectl -n {ns} rollout history deployment/DEPLOYMENT` and pod events around the alarm time. Fix: a preStop hook that sleeps longer than the controller needs to deregister (e.g. `sleep 15`), \
         and terminationGracePeriodSeconds above that sleep plus the longest request.",
        delay.map(|d| format!(" (deregistration delay {d} s)")).unwrap_or_default()
    );
    hypotheses.push(Hypothesis {
        score: if draining {
            90
        } else if ip_targets {
            60
        } else {
            40
        },
        text: rollout,
    });
    hypotheses.push(not_listening(ctx, ns));
    let surge = ctx.max("SurgeQueueLength", "Maximum").filter(|v| *v > 0.0);
    hypotheses.push(Hypothesis {
        score: if surge.is_some() { 70 } else { 35 },
        text: format!(
            "Targets are overloaded and their accept queue overflows{}. Confirm: CPU throttling and restarts (`kubectl -n {ns} top pods`, `kubectl -n {ns} get pods`), and the application's connection limits.",
            surge.map(|s| format!(" (SurgeQueueLength reached {})", format_value(s))).unwrap_or_default()
        ),
    });
    hypotheses.push(Hypothesis {
        score: 20,
        text: "Backends drop connections the load balancer still holds (the article's keep-alive check): keep the HTTP keep-alive timeout above the idle timeout, and see the TCP keepalive sysctls below.".into(),
    });
    hypotheses.sort_by_key(|h| std::cmp::Reverse(h.score));
    hypotheses
}

/// Nothing listening on the traffic port: likely when health checks go to another port.
fn not_listening(ctx: &Context<'_>, ns: &str) -> Hypothesis {
    let split_port = ctx
        .snapshot
        .targets()
        .filter_map(|(g, t)| {
            g.health_check
                .as_ref()
                .map(|hc| (t.port, hc.port_for(t.port)))
        })
        .find(|(traffic, health)| traffic != health);
    match split_port {
        Some((traffic, health)) => Hypothesis {
            score: 80,
            text: format!(
                "Nothing listens on the traffic port {traffic}: health checks go to port {health}, so targets look healthy while requests are refused. \
                 Confirm: `kubectl -n {ns} exec POD -- ss -ltn` shows no listener on {traffic}; check the Service's targetPort against the container port."
            ),
        },
        None => Hypothesis {
            score: 30,
            text: format!("Some pods do not listen on the target port (a wrong targetPort, or a container that binds only to 127.0.0.1). \
                   Confirm: `kubectl -n {ns} exec POD -- ss -ltn` on a pod behind a failing target."),
        },
    }
}

fn evidence(ctx: &Context<'_>, metric: &str, delay: Option<u32>) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    evidence.extend(ctx.metric_evidence(metric, "Sum", ""));
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_502_Count", "Sum", ""));
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_5XX", "Sum", ""));
    evidence.push(Evidence::observation(format!(
        "{} of {} targets healthy, {} draining; all {} NACL legs and the security groups allow the traffic",
        ctx.health.healthy, ctx.health.total, ctx.health.draining, ctx.network.nacl_checks.len()
    )));
    if let Some(d) = delay {
        evidence.push(Evidence::setting(
            "deregistration_delay.timeout_seconds",
            d,
            format!("Deregistration delay: {d} s"),
        ));
    }
    evidence
}

/// The commands that confirm the hypotheses, the hypotheses themselves as notes, and the
/// workload change that makes pods outlive their deregistration.
fn fix(ctx: &Context<'_>, hypotheses: Vec<Hypothesis>) -> Fix {
    let ranked: Vec<String> = hypotheses
        .iter()
        .enumerate()
        .map(|(rank, h)| format!("Hypothesis {}: {}", rank + 1, h.text))
        .collect();
    let mut commands: Vec<Command> = fixes::show_backends(ctx).into_iter().collect();
    commands.push(Command::new(
        "Recent pod terminations and restarts",
        Script::line(
            argv![
                "kubectl",
                "get",
                "events",
                "-A",
                "--field-selector",
                "reason=Killing",
                "--sort-by=.lastTimestamp"
            ]
            .into_iter()
            .chain([Word::Op("|")])
            .chain(argv!["tail", "-20"])
            .collect(),
        ),
    ));
    commands.extend(sysctl_commands(ctx));
    Fix {
        summary: "Confirm the top hypothesis with the commands below, then fix it in the workload (preStop hook and grace period, container port, capacity).".into(),
        commands,
        durable: Some(crate::finding::DurableFix {
            description: "Make pods outlive their deregistration".into(),
            command: None,
            manifest: Some("spec:\n  terminationGracePeriodSeconds: 60\n  containers:\n  - name: app\n    lifecycle:\n      preStop:\n        exec:\n          command: [\"sleep\", \"15\"]".into()),
            warning: "The sleep must cover the time the controller takes to deregister the pod; the grace period must cover the sleep plus the longest request.".into(),
        }),
        notes: ranked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::snapshot::{DataPoint, MetricSeries};
    use crate::testkit::{healthy_clb, scenario_snapshot};

    #[test]
    fn rollout_is_ranked_first_when_targets_drain() {
        let out = run(
            check,
            "targets-refuse-connections",
            &scenario_snapshot("targets-refuse-connections"),
        );
        let f = &out.findings[0];
        assert_eq!(f.code, FindingCode::TargetsRefuseConnections);
        let first = &f.fix.notes[0];
        assert!(
            first.starts_with("Hypothesis 1: Pods stop accepting connections"),
            "{first}"
        );
        assert!(first.contains("deregistration delay 300 s"));
    }

    #[test]
    fn a_separate_health_check_port_ranks_nothing_listening_first_on_a_classic_lb() {
        let mut world = healthy_clb();
        world.target_groups[0].health_check.as_mut().unwrap().port = Some("32001".into());
        world.metrics.push(MetricSeries {
            metric_name: "BackendConnectionErrors".into(),
            statistic: "Sum".into(),
            target_group: None,
            availability_zone: None,
            period_seconds: Some(60),
            points: vec![DataPoint {
                timestamp: "2026-11-23T17:59:00Z".into(),
                value: 40.0,
            }],
        });
        let out = run(check, "clb-idle-timeout", &world);
        let f = &out.findings[0];
        let first = &f.fix.notes[0];
        assert!(
            first.contains("Nothing listens on the traffic port 31380"),
            "{first}"
        );
        assert!(f
            .explanation
            .contains("BackendConnectionErrors also counts failed health-check"));
    }

    /// After a NACL fix the paths are open, and the window's old connection errors are from
    /// before it: not refused connections. Errors after the fix still are.
    #[test]
    fn connection_errors_before_a_path_fix_blame_no_target() {
        let name = "targets-refuse-connections";
        let mut world = scenario_snapshot(name);
        let change = |time: &str| crate::snapshot::ChangeEvent {
            event_id: "ev-fix".into(),
            event_name: "CreateNetworkAclEntry".into(),
            event_time: time.into(),
            actor: Some("arn:aws:sts::111122223333:assumed-role/oncall/jane".into()),
            resources: vec!["acl-0123456789abcdef0".into()],
            request: serde_json::json!({"ruleAction": "allow", "egress": true, "ruleNumber": 120}),
            error_code: None,
            read_only: false,
        };
        world.changes = Some(crate::snapshot::Changes {
            since: "2026-11-23T15:55:00Z".into(),
            until: "2026-11-23T18:00:00Z".into(),
            events: vec![change("2026-11-23T17:59:10Z")],
            not_looked_up: vec![],
        });
        let out = run(check, name, &world);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(
            out.checked[0]
                .detail
                .contains("all before the fix at 17:59 UTC (CreateNetworkAclEntry on the path)"),
            "{}",
            out.checked[0].detail
        );
        // The fix at 17:57:30: the errors of 17:58 came after it.
        world.changes.as_mut().unwrap().events = vec![change("2026-11-23T17:57:30Z")];
        assert!(!run(check, name, &world).findings.is_empty());
        // A denied attempt fixed nothing; a deny entry, or a record CloudTrail dropped, may
        // have closed something as well.
        let mut denied = change("2026-11-23T17:59:10Z");
        denied.error_code = Some("Client.UnauthorizedOperation".into());
        let mut deny = change("2026-11-23T17:59:10Z");
        deny.request["ruleAction"] = "deny".into();
        let mut dropped = change("2026-11-23T17:59:10Z");
        dropped.request = serde_json::Value::Null;
        for event in [denied, deny, dropped] {
            world.changes.as_mut().unwrap().events = vec![event];
            assert!(!run(check, name, &world).findings.is_empty());
        }
        // Inside the last period with errors (17:58-17:59): it may hold errors after the fix.
        world.changes.as_mut().unwrap().events = vec![change("2026-11-23T17:58:30Z")];
        assert!(!run(check, name, &world).findings.is_empty());
    }

    #[test]
    fn blocked_paths_take_the_errors() {
        let out = run(
            check,
            "nacl-ephemeral-node-subnets",
            &scenario_snapshot("nacl-ephemeral-node-subnets"),
        );
        assert!(out.findings.is_empty());
        assert_eq!(out.checked[0].status, CheckStatus::NotApplicable);
    }

    /// The outside review: with the NACLs unread, "all 0 NACL legs allow the traffic" was
    /// evidence for refused connections. Paths not known to be open conclude nothing.
    #[test]
    fn unknown_paths_conclude_no_refused_connections() {
        let name = "targets-refuse-connections";
        let mut world = scenario_snapshot(name);
        assert!(!run(check, name, &world).findings.is_empty());
        world.network_acls.clear();
        let out = run(check, name, &world);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(out.checked[0]
            .detail
            .contains("not every path could be checked"));
    }
}

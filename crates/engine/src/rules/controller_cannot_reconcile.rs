//! `controller-cannot-reconcile`: the AWS Load Balancer Controller reports, as Warning Events
//! on the load balancer's Ingress, Service or TargetGroupBinding, that it cannot build or
//! deploy the load balancer's model (`FailedBuildModel`, `FailedDeployModel`), load the
//! Ingress group, or reconcile a binding. The load balancer then keeps a stale configuration
//! (targets not registered, rules not updated), and no fix made through annotations reaches
//! AWS until the failure is fixed. Two causes are common and named: an AWS call the
//! controller's role may not make, and Ingresses of one group that disagree on an exclusive
//! attribute ("conflicting load balancer attributes KEY: A | B"), which stops the whole group.

use super::{Check, CheckStatus, RuleOutput};
use crate::backends::Backends;
use crate::context::Context;
use crate::finding::{
    Command, Confidence, DurableFix, Evidence, Finding, FindingCode, Fix, Severity,
};
use crate::kubernetes::{Event, ObjectRef, CONTROLLER_FAILURES, CONTROLLER_RECONCILED};

const NAME: &str = "load balancer controller reconciles the owner";

pub fn check(ctx: &Context<'_>) -> RuleOutput {
    // Without the cluster there is nothing to check, and nothing to say: its gap, if it
    // could not be read, is reported by check-incomplete.
    let Some(backends) = Backends::of(ctx.snapshot, &ctx.owner) else {
        return RuleOutput::default();
    };
    if crate::backends::unread(ctx.snapshot, "events") {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Incomplete,
            "the cluster's Events were not (all) read",
        ));
    }
    let objects = watched(ctx, &backends);
    if objects.is_empty() {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Incomplete,
            "none of the objects the controller reconciles for this load balancer was found in the cluster",
        ));
    }
    let now = ctx
        .snapshot
        .captured_at
        .as_deref()
        .and_then(crate::alarm::parse_timestamp);
    let failures = current_failures(&backends.cluster.events, &objects, now);
    let Some(latest) = failures.last() else {
        return RuleOutput::only(Check::new(
            NAME,
            CheckStatus::Ok,
            format!(
                "no failure Events from the controller on the {} objects it reconciles for this load balancer",
                objects.len()
            ),
        ));
    };
    let mut out = RuleOutput::only(Check::new(
        NAME,
        CheckStatus::Problem,
        format!(
            "{} {}: {}",
            latest.reason,
            on(latest),
            clip(&latest.message)
        ),
    ));
    out.findings.push(finding(ctx, &backends, &failures));
    out
}

/// The objects the controller reconciles for this load balancer.
fn watched(ctx: &Context<'_>, backends: &Backends<'_>) -> Vec<ObjectRef> {
    let mut objects: Vec<ObjectRef> = backends
        .ingresses
        .iter()
        .map(|i| ObjectRef {
            kind: "Ingress".into(),
            namespace: Some(i.namespace.clone()),
            name: i.name.clone(),
        })
        .collect();
    if let Some((namespace, name)) = ctx.owner.namespaced() {
        objects.push(ObjectRef {
            kind: "Service".into(),
            namespace: Some(namespace.into()),
            name: name.into(),
        });
    }
    let arns: Vec<&str> = ctx
        .snapshot
        .target_groups
        .iter()
        .filter_map(|g| g.arn.as_deref())
        .collect();
    objects.extend(
        backends
            .cluster
            .target_group_bindings
            .iter()
            .filter(|b| arns.contains(&b.target_group_arn.as_str()))
            .map(|b| ObjectRef {
                kind: "TargetGroupBinding".into(),
                namespace: Some(b.namespace.clone()),
                name: b.name.clone(),
            }),
    );
    objects
}

/// The components the controller reports as (`ingress`, `service`, `targetGroupBinding`):
/// an Event from anyone else is not the controller's word.
const SOURCES: &[&str] = &["ingress", "service", "targetGroupBinding"];

/// Failure Events of the controller on `objects` that no later `SuccessfullyReconciled` of
/// the same object cleared, oldest first. Times are compared parsed; one after `now` (the
/// snapshot's capture) is forged or skewed and clears nothing.
fn current_failures<'e>(
    events: &'e [Event],
    objects: &[ObjectRef],
    now: Option<i64>,
) -> Vec<&'e Event> {
    let about = |e: &Event| e.object.as_ref().is_some_and(|o| objects.contains(o));
    let by_controller = |e: &Event| e.source.as_deref().is_none_or(|s| SOURCES.contains(&s));
    let at = |e: &Event| {
        e.last_at
            .as_deref()
            .and_then(crate::alarm::parse_timestamp)
            .filter(|t| now.is_none_or(|now| *t <= now))
    };
    events
        .iter()
        .filter(|e| {
            about(e)
                && by_controller(e)
                && e.event_type == "Warning"
                && CONTROLLER_FAILURES.contains(&e.reason.as_str())
        })
        .filter(|failure| {
            !events.iter().any(|e| {
                e.reason == CONTROLLER_RECONCILED
                    && by_controller(e)
                    && e.object == failure.object
                    && at(e).is_some_and(|fixed| at(failure).is_none_or(|failed| fixed > failed))
            })
        })
        .collect()
}

fn on(event: &Event) -> String {
    event
        .object
        .as_ref()
        .map(|o| {
            format!(
                "on {} {}{}",
                o.kind,
                o.namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                o.name
            )
        })
        .unwrap_or_default()
}

fn clip(message: &str) -> String {
    crate::untrusted::clipped(message, 300)
}

/// `conflicting load balancer attributes KEY: A | B` (older controllers: `conflicting
/// attributes KEY: A | B`): the key, and the two values.
fn conflict(message: &str) -> Option<(String, String, String)> {
    let rest = message
        .split_once("conflicting load balancer attributes ")
        .or_else(|| message.split_once("conflicting attributes "))?
        .1;
    let (key, values) = rest.split_once(": ")?;
    let (a, b) = values.split_once(" | ")?;
    let b = b.split([',', ';', '\n']).next().unwrap_or(b);
    Some((key.trim().into(), a.trim().into(), b.trim().into()))
}

/// `is not authorized to perform: elasticloadbalancing:AddTags`: the action denied.
fn denied_action(message: &str) -> Option<String> {
    let action: String = message
        .split_once("not authorized to perform: ")?
        .1
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-')
        .collect();
    action.contains(':').then_some(action)
}

fn finding(ctx: &Context<'_>, backends: &Backends<'_>, failures: &[&Event]) -> Finding {
    let latest = failures.last().expect("at least one failure");
    let mut evidence: Vec<Evidence> = failures
        .iter()
        .rev()
        .take(5)
        .map(|e| {
            Evidence::observation(format!(
                "{} {} {}x, last {}: {}",
                e.reason,
                on(e),
                e.count,
                e.last_at.as_deref().unwrap_or("at an unknown time"),
                clip(&e.message)
            ))
        })
        .collect();
    let lb = &ctx.snapshot.load_balancer.name;
    let group_conflict = conflict(&latest.message).is_some();
    let (title, summary, notes) = match (conflict(&latest.message), denied_action(&latest.message)) {
        (Some((key, a, b)), _) => {
            let holders: Vec<String> = backends
                .ingresses
                .iter()
                .filter_map(|i| {
                    let list = i.annotations.get("alb.ingress.kubernetes.io/load-balancer-attributes")?;
                    let value = list.split(',').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        (k.trim() == key).then(|| v.trim().to_string())
                    })?;
                    Some(format!("Ingress {}/{} sets {key}={value}", i.namespace, i.name))
                })
                .collect();
            evidence.extend(holders.iter().map(|h| Evidence::observation(h.clone())));
            (
                format!("The load balancer controller cannot reconcile {lb}: Ingresses of its group disagree on {key} ({a} | {b})"),
                format!("Make every Ingress of the group set {key} to one value (or drop it from all but one), or set it once in the IngressClassParams, which wins over every Ingress."),
                vec![format!("The conflict stops reconciliation of the whole group: no change to any of its Ingresses reaches {lb} until it is resolved.")],
            )
        }
        (None, Some(action)) => (
            format!("The load balancer controller cannot reconcile {lb}: its IAM role may not call {action}"),
            format!("Grant {action} to the controller's IAM role (the policy the controller's installation guide publishes for your version), then let it reconcile."),
            vec!["Compare the role's policy with the iam_policy.json of the controller's release: new versions call new actions.".to_string()],
        ),
        (None, None) => (
            format!("The load balancer controller cannot reconcile {lb}: {} {}", latest.reason, on(latest)),
            "Fix what the controller's Event names; its logs (kubectl -n kube-system logs deployment/aws-load-balancer-controller) give the detail.".to_string(),
            Vec::new(),
        ),
    };
    let mut notes = notes;
    notes.push("Until the controller reconciles, fixes made through annotations do not reach the load balancer, and it keeps its last configuration (targets, rules, attributes).".into());
    Finding {
        code: FindingCode::ControllerCannotReconcile,
        severity: Severity::High,
        confidence: Some(Confidence::Confirmed),
        confidence_reason: Some(format!(
            "the controller's own {} Event, with no successful reconcile after it",
            latest.reason
        )),
        title,
        explanation: "The AWS Load Balancer Controller turns the Ingress or Service into the load balancer's configuration. When it fails, it records a Warning Event on the object and retries, and the load balancer keeps what it had: pods that came or went are not registered or deregistered, and annotation changes are not applied.".into(),
        evidence,
        fix: Fix {
            summary,
            commands: describe_commands(latest),
            durable: group_conflict.then(|| DurableFix {
                description: "Keep the group's Ingresses in agreement: settings that apply to the whole load balancer belong in one place (the IngressClassParams, or one Ingress of the group).".into(),
                command: None,
                manifest: None,
                warning: "Fixes that annotate an Ingress or Service do not apply until this failure is fixed.".into(),
            }),
            notes,
        },
        resources: failures
            .iter()
            .filter_map(|e| e.object.as_ref().map(|o| o.name.clone()))
            .collect(),
        remedies: Vec::new(),
    }
}

/// `kubectl describe` of the object the failure is on, when its names are valid.
fn describe_commands(event: &Event) -> Vec<Command> {
    use crate::kubernetes_name::{is_label, is_subdomain};
    let Some(object) = &event.object else {
        return Vec::new();
    };
    let Some(resource) = crate::kubernetes::resource_of(&object.kind) else {
        return Vec::new();
    };
    let Some(namespace) = object.namespace.as_deref().filter(|n| is_label(n)) else {
        return Vec::new();
    };
    if !is_subdomain(&object.name) {
        return Vec::new();
    }
    vec![Command::new(
        format!(
            "See the controller's Events on {} {namespace}/{}",
            object.kind, object.name
        ),
        crate::shell::Script::line(crate::argv![
            "kubectl",
            "-n",
            namespace,
            "describe",
            crate::shell::Word::Fixed(resource),
            &object.name
        ]),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflicting_key_and_values_are_read_from_the_controllers_message() {
        assert_eq!(
            conflict("Failed build model due to conflicting load balancer attributes idle_timeout.timeout_seconds: 60 | 300"),
            Some(("idle_timeout.timeout_seconds".into(), "60".into(), "300".into()))
        );
        assert_eq!(
            conflict("Failed build model due to conflicting attributes deletion_protection.enabled: true | false"),
            Some(("deletion_protection.enabled".into(), "true".into(), "false".into()))
        );
        assert_eq!(conflict("Failed deploy model due to AccessDenied"), None);
        assert_eq!(
            denied_action("Failed deploy model due to AccessDenied: User: arn:aws:sts::111122223333:assumed-role/lbc/1 is not authorized to perform: elasticloadbalancing:AddTags on resource: arn"),
            Some("elasticloadbalancing:AddTags".into())
        );
    }

    #[test]
    fn a_failure_cleared_by_a_later_successful_reconcile_is_not_current() {
        let ingress = ObjectRef {
            kind: "Ingress".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        let event = |reason: &str, kind: &str, at: &str| Event {
            object: Some(ingress.clone()),
            event_type: kind.into(),
            reason: reason.into(),
            last_at: Some(at.into()),
            ..Event::default()
        };
        let failed = event("FailedDeployModel", "Warning", "2026-12-06T00:01:00Z");
        let fixed = event("SuccessfullyReconciled", "Normal", "2026-12-06T00:02:00Z");
        let objects = [ingress.clone()];
        let now = crate::alarm::parse_timestamp("2026-12-06T00:10:00Z");
        assert_eq!(
            current_failures(std::slice::from_ref(&failed), &objects, now).len(),
            1
        );
        assert!(current_failures(&[failed.clone(), fixed], &objects, now).is_empty());
        // A success dated in the future clears nothing; nor does one from another component.
        let forged = event("SuccessfullyReconciled", "Normal", "2099-01-01T00:00:00Z");
        assert_eq!(
            current_failures(&[failed.clone(), forged], &objects, now).len(),
            1
        );
        let mut someone = event("SuccessfullyReconciled", "Normal", "2026-12-06T00:02:00Z");
        someone.source = Some("kubectl".into());
        assert_eq!(
            current_failures(&[failed.clone(), someone], &objects, now).len(),
            1
        );
        // Another object's failure is not this load balancer's.
        assert!(current_failures(&[failed], &[], now).is_empty());
    }
}

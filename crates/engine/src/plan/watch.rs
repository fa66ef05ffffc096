//! What the controller says after elbmedic changed the cluster: which objects' Events to
//! watch for a change at a place, and whether a new Event there is a reconcile failure (then
//! the change is rolled back), a success (the watch ends early), or nothing yet.
//!
//! New means: not among the Events read just before the change, or one of them seen again
//! (its count or last time moved). Compared by the Events' own counts and times, never by
//! the function's clock against the API server's.
//!
//! Not for: reading Events or rolling back (the Kubernetes shell does both).

use crate::action::Place;
use crate::kubernetes::{Event, Kubernetes, ObjectRef, CONTROLLER_FAILURES, CONTROLLER_RECONCILED};

/// The legacy cloud provider's Events on a Service of type LoadBalancer.
pub const SERVICE_SYNC_FAILED: &str = "SyncLoadBalancerFailed";
pub const SERVICE_SYNCED: &str = "EnsuredLoadBalancer";

/// At most this many objects are watched for one change (an IngressClassParams may serve
/// many Ingresses: their controller reports on each).
pub const MAX_WATCHED: usize = 5;

/// What the Events say after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The controller failed to reconcile: the change is to be rolled back.
    Failed {
        object: String,
        reason: String,
        message: String,
    },
    /// The controller reconciled every watched object after the change.
    Reconciled { reasons: Vec<String> },
    /// Nothing new yet.
    Quiet,
}

/// The objects whose Events tell whether the controller took a change at `place`: the
/// Service or the Ingress itself; for an IngressClassParams, the Ingresses of its classes
/// (the controller reports on them), at most [`MAX_WATCHED`]. A namespace label has no
/// controller to report.
pub fn watched(place: &Place, cluster: &Kubernetes) -> Vec<ObjectRef> {
    let object = |kind: &str| ObjectRef {
        kind: kind.into(),
        namespace: place.namespace().map(str::to_string),
        name: place.name().to_string(),
    };
    match place {
        Place::Service { .. } => vec![object("Service")],
        Place::Ingress { .. } => vec![object("Ingress")],
        Place::IngressClassParams { name } => cluster
            .ingresses
            .iter()
            .filter(|i| cluster.params_of(i).is_some_and(|p| &p.name == name))
            .take(MAX_WATCHED)
            .map(|i| ObjectRef {
                kind: "Ingress".into(),
                namespace: Some(i.namespace.clone()),
                name: i.name.clone(),
            })
            .collect(),
        Place::Namespace { .. } => Vec::new(),
    }
}

/// The reasons that say a controller failed, and the one that says it reconciled, for
/// Events about an object of `kind`.
fn reasons_for(kind: &str) -> (&'static [&'static str], &'static str) {
    match kind {
        "Service" => (&[SERVICE_SYNC_FAILED], SERVICE_SYNCED),
        _ => (CONTROLLER_FAILURES, CONTROLLER_RECONCILED),
    }
}

/// Whether `event` happened after the Events of `before` were read.
fn is_new(event: &Event, before: &[Event]) -> bool {
    !before.iter().any(|old| {
        old.object == event.object
            && old.reason == event.reason
            && old.message == event.message
            && old.count == event.count
            && old.last_at == event.last_at
    })
}

/// The verdict on the Events about `objects` read now, against those read before the change.
/// A failure wins over a success (a group reconciles every member; one failing is enough).
pub fn judge(objects: &[ObjectRef], before: &[Event], now: &[Event]) -> Verdict {
    let mut reconciled = Vec::new();
    for object in objects {
        let (failures, success) = reasons_for(&object.kind);
        let fresh = now
            .iter()
            .filter(|e| e.object.as_ref() == Some(object))
            .filter(|e| is_new(e, before));
        let mut saw_success = false;
        for event in fresh {
            if failures.contains(&event.reason.as_str()) {
                return Verdict::Failed {
                    object: format!(
                        "{} {}/{}",
                        object.kind,
                        object.namespace.as_deref().unwrap_or_default(),
                        object.name
                    ),
                    reason: event.reason.clone(),
                    message: event.message.clone(),
                };
            }
            saw_success |= event.reason == success;
        }
        if saw_success {
            reconciled.push(success.to_string());
        }
    }
    match !objects.is_empty() && reconciled.len() == objects.len() {
        true => Verdict::Reconciled {
            reasons: reconciled,
        },
        false => Verdict::Quiet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, name: &str, reason: &str, count: u32, last: &str) -> Event {
        Event {
            object: Some(ObjectRef {
                kind: kind.into(),
                namespace: Some("shop".into()),
                name: name.into(),
            }),
            event_type: "Warning".into(),
            reason: reason.into(),
            message: format!("{reason} message"),
            source: None,
            count,
            first_at: None,
            last_at: Some(last.into()),
        }
    }

    fn service() -> Vec<ObjectRef> {
        vec![ObjectRef {
            kind: "Service".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        }]
    }

    #[test]
    fn an_old_failure_is_not_blamed_on_the_change_and_a_repeat_of_it_is() {
        let old = event(
            "Service",
            "web",
            SERVICE_SYNC_FAILED,
            3,
            "2026-12-06T08:00:00Z",
        );
        // The failure that was there before the change is not the change's.
        assert_eq!(
            judge(
                &service(),
                std::slice::from_ref(&old),
                std::slice::from_ref(&old)
            ),
            Verdict::Quiet
        );
        // Seen again after the change: its count moved.
        let again = event(
            "Service",
            "web",
            SERVICE_SYNC_FAILED,
            4,
            "2026-12-06T08:01:00Z",
        );
        assert!(matches!(
            judge(&service(), std::slice::from_ref(&old), &[again]),
            Verdict::Failed { reason, object, .. } if reason == SERVICE_SYNC_FAILED && object == "Service shop/web"
        ));
        // A success after the change ends the watch; another object's failure is not ours.
        let synced = event("Service", "web", SERVICE_SYNCED, 1, "2026-12-06T08:01:00Z");
        let other = event(
            "Service",
            "api",
            SERVICE_SYNC_FAILED,
            1,
            "2026-12-06T08:01:00Z",
        );
        assert_eq!(
            judge(&service(), &[old], &[other, synced]),
            Verdict::Reconciled {
                reasons: vec![SERVICE_SYNCED.into()]
            }
        );
        // An Ingress's controller speaks in its own reasons.
        let ingress = vec![ObjectRef {
            kind: "Ingress".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        }];
        let failed = event(
            "Ingress",
            "web",
            "FailedDeployModel",
            1,
            "2026-12-06T08:01:00Z",
        );
        assert!(matches!(
            judge(&ingress, &[], &[failed]),
            Verdict::Failed { .. }
        ));
        assert_eq!(judge(&[], &[], &[]), Verdict::Quiet);
    }
}

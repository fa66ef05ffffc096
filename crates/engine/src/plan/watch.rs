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
    /// The controller failed again as it failed before the change: not the change's doing,
    /// so it stays.
    AlreadyFailing { object: String, reason: String },
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

/// The reasons that say a controller failed, the one that says it reconciled, and the
/// component that reports them, for Events about an object of `kind`. An Event from anyone
/// else (any workload allowed to create Events can post one) is not the controller's word.
fn reasons_for(kind: &str) -> (&'static [&'static str], &'static str, &'static str) {
    match kind {
        "Service" => (&[SERVICE_SYNC_FAILED], SERVICE_SYNCED, SERVICE_CONTROLLER),
        _ => (
            CONTROLLER_FAILURES,
            CONTROLLER_RECONCILED,
            INGRESS_CONTROLLER,
        ),
    }
}

/// The component that reports on Services of type LoadBalancer (the cloud provider's).
pub const SERVICE_CONTROLLER: &str = "service-controller";
/// The component the load balancer controller reports on Ingresses as.
pub const INGRESS_CONTROLLER: &str = "ingress";

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
    let mut already = None;
    for object in objects {
        let (failures, success, reporter) = reasons_for(&object.kind);
        let about = |e: &&Event| e.object.as_ref() == Some(object);
        let fresh = now
            .iter()
            .filter(about)
            .filter(|e| e.source.as_deref() == Some(reporter))
            .filter(|e| is_new(e, before));
        let named = format!(
            "{} {}/{}",
            object.kind,
            object.namespace.as_deref().unwrap_or_default(),
            object.name
        );
        let mut saw_success = false;
        for event in fresh {
            if failures.contains(&event.reason.as_str()) {
                let failed_before = before
                    .iter()
                    .filter(about)
                    .any(|old| old.reason == event.reason);
                if failed_before {
                    already = Some(Verdict::AlreadyFailing {
                        object: named.clone(),
                        reason: event.reason.clone(),
                    });
                    continue;
                }
                return Verdict::Failed {
                    object: named,
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
    match (
        already,
        !objects.is_empty() && reconciled.len() == objects.len(),
    ) {
        (Some(already), _) => already,
        (None, true) => Verdict::Reconciled {
            reasons: reconciled,
        },
        (None, false) => Verdict::Quiet,
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
            source: Some(
                if kind == "Service" {
                    SERVICE_CONTROLLER
                } else {
                    INGRESS_CONTROLLER
                }
                .into(),
            ),
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
    fn only_the_controllers_new_failure_is_blamed_on_the_change() {
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
        // Seen again after the change: the controller was failing already; the change stays.
        let again = event(
            "Service",
            "web",
            SERVICE_SYNC_FAILED,
            4,
            "2026-12-06T08:01:00Z",
        );
        assert!(matches!(
            judge(&service(), std::slice::from_ref(&old), std::slice::from_ref(&again)),
            Verdict::AlreadyFailing { reason, .. } if reason == SERVICE_SYNC_FAILED
        ));
        // A failure that first comes after the change is the change's.
        assert!(matches!(
            judge(&service(), &[], std::slice::from_ref(&again)),
            Verdict::Failed { reason, object, .. } if reason == SERVICE_SYNC_FAILED && object == "Service shop/web"
        ));
        // Posted by anyone but the controller: not its word, neither a failure nor a success.
        let mut forged = again.clone();
        forged.source = Some("my-app".into());
        assert_eq!(judge(&service(), &[], &[forged]), Verdict::Quiet);
        let mut unsigned = again.clone();
        unsigned.source = None;
        assert_eq!(judge(&service(), &[], &[unsigned]), Verdict::Quiet);
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
        // An Ingress's controller speaks in its own reasons, as its own component.
        let ingress = vec![ObjectRef {
            kind: "Ingress".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        }];
        let mut failed = event(
            "Ingress",
            "web",
            "FailedDeployModel",
            1,
            "2026-12-06T08:01:00Z",
        );
        failed.source = Some(INGRESS_CONTROLLER.into());
        assert!(matches!(
            judge(&ingress, &[], &[failed]),
            Verdict::Failed { .. }
        ));
        assert_eq!(judge(&[], &[], &[]), Verdict::Quiet);
    }
}

//! The Events about a few objects, read just before and after elbmedic changes one, so that
//! the engine (`plan::watch`) can tell whether the controller took the change.
//!
//! Not for: the diagnosis's Events (`read` lists a namespace's, bounded by time).

use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, ListParams};
use tokio::time::Instant;

use elbmedic_engine::kubernetes::{Event, ObjectRef};
use elbmedic_engine::plan::Place;

use crate::write::{call, WriteRefusal};

/// At most this many Events are read about one object (a repeating Event is one, with its
/// count): more than this about one object is not a cluster elbmedic can judge from Events.
const MAX_PER_OBJECT: u32 = 500;

/// Why the Events could not be read: the API server's words (RBAC lacking `list events`),
/// or the deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Events could not be read: {0}")]
pub struct EventsUnread(pub String);

/// The Events about each of `objects`, in their own namespaces.
pub async fn about(
    client: &kube::Client,
    objects: &[ObjectRef],
    deadline: Instant,
) -> Result<Vec<Event>, EventsUnread> {
    let mut events = Vec::new();
    for object in objects {
        let Some(namespace) = object.namespace.as_deref() else {
            continue;
        };
        let api = Api::<CoreEvent>::namespaced(client.clone(), namespace);
        let params = ListParams::default()
            .fields(&format!(
                "involvedObject.kind={},involvedObject.name={}",
                object.kind, object.name
            ))
            .limit(MAX_PER_OBJECT);
        let place = Place::Namespace {
            name: namespace.to_string(),
        };
        let listed = call(&place, deadline, api.list(&params))
            .await
            .map_err(|refusal| {
                EventsUnread(match refusal {
                    WriteRefusal::Forbidden { message, .. } => message,
                    other => other.to_string(),
                })
            })?;
        events.extend(
            listed
                .items
                .iter()
                .filter(|e| e.involved_object.namespace.as_deref() == Some(namespace))
                .map(crate::convert::event)
                .filter(|e| e.object.as_ref() == Some(object)),
        );
    }
    Ok(events)
}

//! Changes to the cluster, as elbmedic makes them: server-side apply under its own field
//! manager (`elbmedic`), a dry run (`dryRun=All`) first, never forced unless the policy says
//! so. One object, one apply: nothing is half-applied. Every failure is a refusal that names
//! its reason: the manager that owns a field, the verb RBAC lacks, the webhook's message.
//!
//! Not for: deciding what to apply (the engine computes the body from the object as read).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Client;
use serde_json::Value;
use tokio::time::Instant;

use elbmedic_engine::plan::durable::FIELD_MANAGER;
use elbmedic_engine::plan::Place;

/// Why a change was not made. Each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefusal {
    #[error("the API server did not accept elbmedic's token (401): give the remediate function's role an EKS access entry with the Kubernetes group elbmedic-remediate (infra/)")]
    Unauthorized,
    #[error("{message} (403): bind the ClusterRole elbmedic-remediate of infra/ to the group elbmedic-remediate; it may patch {resource}")]
    Forbidden { resource: String, message: String },
    #[error("{} own what elbmedic would set ({}) (409): elbmedic does not take a field over unless FORCE_CONFLICTS=true; change it where {} keeps it", .managers.join(", "), .fields.join(", "), .managers.join(" and "))]
    Conflict {
        managers: Vec<String>,
        fields: Vec<String>,
    },
    #[error("the object changed while elbmedic applied (409): {message}")]
    Modified { message: String },
    #[error("refused by admission: {message}")]
    Denied { message: String },
    #[error("the API server found the change invalid (422): {message}")]
    Invalid { message: String },
    #[error("{0} was not found (404)")]
    NotFound(String),
    #[error("the API server did not answer before the deadline")]
    Timeout,
    #[error("the API server answered {code}: {message}")]
    Failed { code: u16, message: String },
    #[error("the API server could not be reached: {0}")]
    Unreachable(String),
}

/// Every (API group, resource) elbmedic patches: what the ClusterRoles of
/// `infra/kubernetes/elbmedic-remediate.yaml` must grant, and all they may (a test holds them
/// together, and [`resource_of`] to it).
pub const WRITES: &[(&str, &str)] = &[
    ("", "services"),
    ("networking.k8s.io", "ingresses"),
    ("elbv2.k8s.aws", "ingressclassparams"),
    ("", "namespaces"),
];

/// The API group and the resource (plural) of the object at `place`.
pub fn resource_of(place: &Place) -> (&'static str, &'static str) {
    match place {
        Place::Service { .. } => WRITES[0],
        Place::Ingress { .. } => WRITES[1],
        Place::IngressClassParams { .. } => WRITES[2],
        Place::Namespace { .. } => WRITES[3],
    }
}

/// The API of the object at `place`, as a dynamic object.
fn api_of(client: &Client, place: &Place) -> Api<DynamicObject> {
    let (api_version, kind, _) = place.api();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (_, plural) = resource_of(place);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    match place.namespace() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// A server-side apply as elbmedic's field manager; `force` takes fields over.
fn apply_params(force: bool) -> PatchParams {
    let params = PatchParams::apply(FIELD_MANAGER);
    match force {
        true => params.force(),
        false => params,
    }
}

/// Applies `body` to the object at `place`: a dry run first, then the change. `force` takes
/// fields over from other managers (`FORCE_CONFLICTS`). Answers the object as changed.
pub async fn apply(
    client: &Client,
    place: &Place,
    body: &Value,
    force: bool,
    deadline: Instant,
) -> Result<Value, WriteRefusal> {
    dry_run(client, place, body, force, deadline).await?;
    patch(client, place, body, apply_params(force), deadline).await
}

/// Only the dry run of [`apply`]: what the API server, its admission and the field managers
/// would say, with nothing changed.
pub async fn dry_run(
    client: &Client,
    place: &Place,
    body: &Value,
    force: bool,
    deadline: Instant,
) -> Result<Value, WriteRefusal> {
    patch(client, place, body, apply_params(force).dry_run(), deadline).await
}

/// Refuses a place whose names are not Kubernetes names before any call: kube puts the name
/// in the request path as it is, so `web?force=true` would become a query string.
fn named(place: &Place) -> Result<(), WriteRefusal> {
    use elbmedic_engine::kubernetes_name::{is_label, is_subdomain};
    let valid = match place {
        Place::Namespace { name } => is_label(name),
        _ => is_subdomain(place.name()) && place.namespace().is_none_or(is_label),
    };
    match valid {
        true => Ok(()),
        false => Err(WriteRefusal::Invalid {
            message: format!(
                "{:?} is not a Kubernetes object name",
                crate::clipped(&place.describe(), 300)
            ),
        }),
    }
}

/// One server-side apply of `body` with `params`; the object as the API server answered it.
async fn patch(
    client: &Client,
    place: &Place,
    body: &Value,
    params: PatchParams,
    deadline: Instant,
) -> Result<Value, WriteRefusal> {
    named(place)?;
    let api = api_of(client, place);
    let answered = call(
        place,
        deadline,
        api.patch(place.name(), &params, &Patch::Apply(body)),
    )
    .await?;
    Ok(serde_json::to_value(answered).unwrap_or(Value::Null))
}

/// The object at `place` as it is now; `None` when it does not exist.
pub async fn read(
    client: &Client,
    place: &Place,
    deadline: Instant,
) -> Result<Option<Value>, WriteRefusal> {
    named(place)?;
    let api = api_of(client, place);
    let found = call(place, deadline, api.get_opt(place.name())).await?;
    Ok(found.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)))
}

pub(crate) async fn call<T>(
    place: &Place,
    deadline: Instant,
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, WriteRefusal> {
    match tokio::time::timeout_at(deadline, request).await {
        Err(_) => Err(WriteRefusal::Timeout),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(refusal_of(&error, place)),
    }
}

/// A failed call as the refusal that names its reason.
pub fn refusal_of(error: &kube::Error, place: &Place) -> WriteRefusal {
    let (_, _, resource) = place.api();
    let kube::Error::Api(status) = error else {
        return WriteRefusal::Unreachable(crate::clipped(&error.to_string(), 300));
    };
    let message = crate::clipped(&status.message, 600);
    match status.code {
        401 => WriteRefusal::Unauthorized,
        // A webhook's denial comes as a 403 (controller-runtime's) or another code, always
        // worded by the API server as "admission webhook ... denied the request".
        _ if status.message.starts_with("admission webhook") => WriteRefusal::Denied { message },
        403 => WriteRefusal::Forbidden {
            resource: format!("{resource}s"),
            message,
        },
        404 => WriteRefusal::NotFound(place.describe()),
        409 if status.reason == "Conflict" && status.message.starts_with("Apply failed") => {
            let causes = status
                .details
                .as_ref()
                .map(|d| d.causes.as_slice())
                .unwrap_or_default();
            let mut managers: Vec<String> = causes
                .iter()
                .filter_map(|c| manager_in(&c.message))
                .chain(manager_in(&status.message))
                .collect();
            managers.sort();
            managers.dedup();
            let fields = causes
                .iter()
                .map(|c| crate::clipped(&c.field, 200))
                .collect();
            WriteRefusal::Conflict { managers, fields }
        }
        409 => WriteRefusal::Modified { message },
        422 => WriteRefusal::Invalid { message },
        code => WriteRefusal::Failed { code, message },
    }
}

/// The manager a conflict message names: `conflict with "NAME" using ...`.
fn manager_in(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("with \"")?;
    let (name, _) = rest.split_once('"')?;
    Some(crate::clipped(name, 128))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_a_kubernetes_name_is_refused_before_any_call() {
        for place in [
            Place::Ingress {
                namespace: "shop".into(),
                name: "web?force=true&".into(),
            },
            Place::Service {
                namespace: "../kube-system".into(),
                name: "web".into(),
            },
            Place::Namespace {
                name: "Kube-System".into(),
            },
            Place::IngressClassParams { name: "".into() },
        ] {
            assert!(
                matches!(named(&place), Err(WriteRefusal::Invalid { .. })),
                "{place:?}"
            );
        }
        assert_eq!(
            named(&Place::Ingress {
                namespace: "shop".into(),
                name: "web.v2".into()
            }),
            Ok(())
        );
    }

    #[test]
    fn each_place_is_written_in_its_own_api_group() {
        for place in [
            Place::Service {
                namespace: "a".into(),
                name: "b".into(),
            },
            Place::Ingress {
                namespace: "a".into(),
                name: "b".into(),
            },
            Place::IngressClassParams { name: "b".into() },
            Place::Namespace { name: "a".into() },
        ] {
            let (api_version, kind, _) = place.api();
            let (group, resource) = resource_of(&place);
            let expected_group = api_version.split_once('/').map_or("", |(g, _)| g);
            assert_eq!(group, expected_group, "{kind}");
            assert!(
                resource.starts_with(&kind.to_ascii_lowercase()),
                "{kind}: {resource}"
            );
        }
    }

    #[test]
    fn the_manager_is_read_from_the_api_servers_wording() {
        assert_eq!(
            manager_in("conflict with \"argocd-controller\" using networking.k8s.io/v1"),
            Some("argocd-controller".into())
        );
        assert_eq!(
            manager_in(
                "Apply failed with 2 conflicts: conflicts with \"helm\" using v1:\n- .a\n- .b"
            ),
            Some("helm".into())
        );
        assert_eq!(manager_in("no manager here"), None);
    }
}

//! The cluster reads: the owner's namespaces, its Ingresses (the whole group when it has one,
//! across namespaces), Services, workloads, pods, TargetGroupBindings and Events, turned into
//! the engine's plain [`Kubernetes`] section. Every list is paged and bounded, every call
//! retried and stopped at the deadline; every failure is a gap that names its fix, never an
//! abort: the AWS half of the report goes out regardless.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, Namespace as CoreNamespace, Pod as CorePod, Service as CoreService,
};
use k8s_openapi::api::networking::v1::Ingress as CoreIngress;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::Client;
use tokio::time::Instant;

use elbmedic_engine::kubernetes::{
    Event, Kubernetes, Namespace, CONTROLLER_FAILURES, CONTROLLER_RECONCILED, GROUP_ANNOTATION,
    MAX_EVENTS, MAX_OBJECTS, MAX_PODS,
};
use elbmedic_engine::kubernetes_name::is_label;
use elbmedic_engine::snapshot::{Gap, GapFact, GapReason};

use crate::convert::{self, annotations};
use crate::list::{get, list, list_where, Listed};
use crate::workload;

/// Every (API group, resource) the reads call, with `get` or `list`: what the ClusterRole of
/// `infra/kubernetes/elbmedic-read.yaml` must grant (a test holds them together).
pub const READS: &[(&str, &str)] = &[
    ("", "namespaces"),
    ("", "pods"),
    ("", "services"),
    ("", "events"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("networking.k8s.io", "ingresses"),
    ("elbv2.k8s.aws", "targetgroupbindings"),
];

/// An Ingress group's members may sit in this many namespaces at most; the rest is not read.
pub const MAX_NAMESPACES: usize = 10;

/// Whose objects to read: the owner the load balancer's tags name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A Service or a lone Ingress: everything is in its namespace.
    Namespace(String),
    /// An Ingress group (`alb.ingress.kubernetes.io/group.name`): its members may sit in
    /// several namespaces, found by listing the Ingresses first.
    IngressGroup(String),
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub cluster: String,
    pub owner: Owner,
    /// Events last seen before this (epoch seconds) are left out: the alarm window's start.
    pub events_since: Option<i64>,
}

/// Reads everything the scope needs before `deadline`; what could not be read is a gap.
pub async fn read(client: &Client, scope: &Scope, deadline: Instant) -> (Kubernetes, Vec<Gap>) {
    let mut gaps = Vec::new();
    let mut truncated = Vec::new();
    if matches!(&scope.owner, Owner::Namespace(namespace) if !is_label(namespace)) {
        return (Kubernetes::default(), vec![not_a_name()]);
    }
    let (ingresses, read) = match &scope.owner {
        // The namespace is known: its Ingresses are listed beside its other reads.
        Owner::Namespace(namespace) => {
            let api = Api::<CoreIngress>::namespaced(client.clone(), namespace);
            let (ingresses, one) = tokio::join!(
                list(api, MAX_OBJECTS, "ingresses.networking.k8s.io", deadline),
                in_namespace(client, namespace, deadline)
            );
            (ingresses, vec![one])
        }
        // A group's namespaces are known only from its members: they are listed first.
        Owner::IngressGroup(group) => {
            let (namespaces, ingresses) =
                group_namespaces(client, group, deadline, &mut truncated).await;
            let per_namespace = namespaces
                .iter()
                .map(|namespace| in_namespace(client, namespace, deadline));
            (ingresses, futures::future::join_all(per_namespace).await)
        }
    };
    let mut cluster = Kubernetes {
        cluster: scope.cluster.clone(),
        ..Kubernetes::default()
    };
    let mut take = Taker {
        truncated: &mut truncated,
        gaps: &mut gaps,
    };
    cluster.ingresses = take
        .items(ingresses, "ingresses")
        .iter()
        .map(convert::ingress)
        .collect();
    let mut events = Vec::new();
    let mut workloads = Vec::new();
    for one in read {
        match one.namespace {
            Ok(Some(found)) => cluster.namespaces.push(Namespace {
                name: found.metadata.name.clone().unwrap_or_default(),
                labels: convert::labels(&found.metadata),
            }),
            Ok(None) => {}
            Err(gap) => take.gaps.push(gap),
        }
        cluster
            .pods
            .extend(take.items(one.pods, "pods").iter().map(convert::pod));
        cluster.services.extend(
            take.items(one.services, "services")
                .iter()
                .map(convert::service),
        );
        workloads.extend(
            take.items(one.deployments, "deployments")
                .iter()
                .map(workload::of_deployment),
        );
        workloads.extend(
            take.items(one.statefulsets, "statefulsets")
                .iter()
                .map(workload::of_statefulset),
        );
        events.extend(
            take.items(one.events, "events")
                .iter()
                .filter(|e| own_namespace(e) && kept(e, scope.events_since))
                .map(convert::event),
        );
        cluster.target_group_bindings.extend(
            take.items(one.bindings, "targetgroupbindings")
                .iter()
                .map(convert::binding),
        );
    }
    cluster.pods = bounded(cluster.pods, MAX_PODS, "pods", take.truncated);
    cluster.services = bounded(cluster.services, MAX_OBJECTS, "services", take.truncated);
    cluster.workloads = bounded(workloads, MAX_OBJECTS, "workloads", take.truncated);
    cluster.target_group_bindings = bounded(
        cluster.target_group_bindings,
        MAX_OBJECTS,
        "targetgroupbindings",
        take.truncated,
    );
    cluster.events = newest(events);
    cluster.truncated = truncated;
    (cluster.clamped(), gaps)
}

/// The namespaces that hold a member of the group (at most [`MAX_NAMESPACES`]), and the
/// members.
async fn group_namespaces(
    client: &Client,
    group: &str,
    deadline: Instant,
    truncated: &mut Vec<String>,
) -> (Vec<String>, Result<Listed<CoreIngress>, Gap>) {
    let listed = group_members(client, group, deadline).await;
    let mut namespaces: Vec<String> = listed
        .as_ref()
        .map(|l| {
            l.items
                .iter()
                .filter_map(|i| i.metadata.namespace.clone())
                .collect()
        })
        .unwrap_or_default();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.len() > MAX_NAMESPACES {
        truncated.push(format!(
            "namespaces: the group's first {MAX_NAMESPACES} of {} read",
            namespaces.len()
        ));
        namespaces.truncate(MAX_NAMESPACES);
    }
    (namespaces, listed)
}

/// One namespace's reads, all at once.
struct InNamespace {
    namespace: Result<Option<CoreNamespace>, Gap>,
    pods: Result<Listed<CorePod>, Gap>,
    services: Result<Listed<CoreService>, Gap>,
    deployments: Result<Listed<Deployment>, Gap>,
    statefulsets: Result<Listed<StatefulSet>, Gap>,
    events: Result<Listed<CoreEvent>, Gap>,
    bindings: Result<Listed<DynamicObject>, Gap>,
}

async fn in_namespace(client: &Client, ns: &str, deadline: Instant) -> InNamespace {
    let c = || client.clone();
    let (namespace, pods, services, deployments, statefulsets, events, bindings) = tokio::join!(
        get(Api::<CoreNamespace>::all(c()), ns, "namespaces", deadline),
        list(
            Api::<CorePod>::namespaced(c(), ns),
            MAX_PODS,
            "pods",
            deadline
        ),
        list(
            Api::<CoreService>::namespaced(c(), ns),
            MAX_OBJECTS,
            "services",
            deadline
        ),
        list(
            Api::<Deployment>::namespaced(c(), ns),
            MAX_OBJECTS,
            "deployments.apps",
            deadline
        ),
        list(
            Api::<StatefulSet>::namespaced(c(), ns),
            MAX_OBJECTS,
            "statefulsets.apps",
            deadline
        ),
        list(
            Api::<CoreEvent>::namespaced(c(), ns),
            4 * MAX_EVENTS,
            "events",
            deadline
        ),
        list(
            target_group_bindings(client, ns),
            MAX_OBJECTS,
            "targetgroupbindings.elbv2.k8s.aws",
            deadline
        ),
    );
    InNamespace {
        namespace,
        pods,
        services,
        deployments,
        statefulsets,
        events,
        bindings,
    }
}

/// The Ingresses of one group, across namespaces; the bound counts members only.
async fn group_members(
    client: &Client,
    group: &str,
    deadline: Instant,
) -> Result<Listed<CoreIngress>, Gap> {
    let all = Api::<CoreIngress>::all(client.clone());
    list_where(
        all,
        MAX_OBJECTS,
        "ingresses.networking.k8s.io",
        deadline,
        |i| {
            annotations(&i.metadata)
                .get(GROUP_ANNOTATION)
                .map(String::as_str)
                == Some(group)
        },
    )
    .await
}

fn target_group_bindings(client: &Client, ns: &str) -> Api<DynamicObject> {
    let kind = GroupVersionKind::gvk("elbv2.k8s.aws", "v1beta1", "TargetGroupBinding");
    let resource = ApiResource::from_gvk_with_plural(&kind, "targetgroupbindings");
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Whether an Event is kept: the load balancer controller's reconcile outcomes whatever their
/// age (a failure that goes on is one Event whose last sighting moves only when the controller
/// retries, with a back-off of up to about 17 minutes; a later success says it is over), any
/// other when seen inside the window (an Event with no time at all is kept).
fn kept(event: &CoreEvent, since: Option<i64>) -> bool {
    let reason = event.reason.as_deref().unwrap_or_default();
    if CONTROLLER_FAILURES.contains(&reason) || reason == CONTROLLER_RECONCILED {
        return true;
    }
    match (since, convert::last_seen(event)) {
        (Some(since), Some((seen, _))) => seen >= since,
        _ => true,
    }
}

/// Whether an Event is about an object of its own namespace. Anyone who may create Events in
/// a namespace (a member of the Ingress group, say) could otherwise post one "about" another
/// namespace's Ingress.
fn own_namespace(event: &CoreEvent) -> bool {
    match (&event.metadata.namespace, &event.involved_object.namespace) {
        (Some(own), Some(about)) => own == about,
        // A cluster-scoped object (a Node): not one the rules read.
        _ => false,
    }
}

/// The newest [`MAX_EVENTS`], oldest first.
fn newest(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by(|a, b| a.last_at.cmp(&b.last_at));
    let keep_from = events.len().saturating_sub(MAX_EVENTS);
    events.split_off(keep_from)
}

/// `items` cut to `bound`, noting the cut.
fn bounded<T>(mut items: Vec<T>, bound: usize, what: &str, truncated: &mut Vec<String>) -> Vec<T> {
    if items.len() > bound {
        truncated.push(format!("{what}: {bound} kept, more not kept"));
        items.truncate(bound);
    }
    items
}

fn not_a_name() -> Gap {
    Gap {
        fact: GapFact::KubernetesApi,
        resource: None,
        reason: GapReason::Invalid,
        detail: "the owner's namespace is not a Kubernetes name, so nothing was read".into(),
    }
}

/// Where the lists go: their items, or a gap; a list cut at its bound says so.
struct Taker<'a> {
    truncated: &'a mut Vec<String>,
    gaps: &'a mut Vec<Gap>,
}

impl Taker<'_> {
    fn items<K>(&mut self, result: Result<Listed<K>, Gap>, what: &str) -> Vec<K> {
        match result {
            Ok(listed) => {
                if listed.truncated {
                    self.truncated.push(format!(
                        "{what}: {} read, more not read",
                        listed.items.len()
                    ));
                }
                listed.items
            }
            Err(gap) => {
                self.gaps.push(gap);
                Vec::new()
            }
        }
    }
}

//! The cluster reads: the owner's namespaces, its Ingresses (the whole group when it has one,
//! across namespaces) with their IngressClasses and IngressClassParams, Services, workloads,
//! pods, TargetGroupBindings and Events, turned into
//! the engine's plain [`Kubernetes`] section. Every list is paged and bounded, every call
//! retried and stopped at the deadline; every failure is a gap that names its fix, never an
//! abort: the AWS half of the report goes out regardless.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, Namespace as CoreNamespace, Pod as CorePod, Service as CoreService,
};
use k8s_openapi::api::networking::v1::{Ingress as CoreIngress, IngressClass as CoreIngressClass};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::Client;
use tokio::time::Instant;

use elbmedic_engine::kubernetes::{
    Event, Kubernetes, Namespace, CONTROLLER_FAILURES, CONTROLLER_RECONCILED, MAX_EVENTS,
    MAX_OBJECTS, MAX_PODS,
};
use elbmedic_engine::kubernetes_name::is_label;
use elbmedic_engine::snapshot::{Gap, GapFact, GapReason};

use crate::convert;
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
    ("networking.k8s.io", "ingressclasses"),
    ("elbv2.k8s.aws", "targetgroupbindings"),
    ("elbv2.k8s.aws", "ingressclassparams"),
];

/// An Ingress group's members may sit in this many namespaces at most; the rest is not read.
pub const MAX_NAMESPACES: usize = 10;

/// Whose objects to read: the owner the load balancer's tags name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A Service (a Classic LB or an NLB): everything is in its namespace.
    Service(String),
    /// A lone Ingress: in its namespace, with its class's settings.
    Ingress(String),
    /// An Ingress group (`alb.ingress.kubernetes.io/group.name`, or the `spec.group.name` of
    /// an IngressClassParams): its members may sit in several namespaces, found by listing
    /// the classes and then the Ingresses first.
    IngressGroup(String),
}

impl Owner {
    /// The namespace, when the owner has one.
    fn namespace(&self) -> Option<&str> {
        match self {
            Self::Service(namespace) | Self::Ingress(namespace) => Some(namespace),
            Self::IngressGroup(_) => None,
        }
    }
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
    if scope
        .owner
        .namespace()
        .is_some_and(|namespace| !is_label(namespace))
    {
        return (Kubernetes::default(), vec![not_a_name()]);
    }
    let mut cluster = Kubernetes {
        cluster: scope.cluster.clone(),
        ..Kubernetes::default()
    };
    let (ingresses, read) = by_owner(
        client,
        scope,
        deadline,
        &mut cluster,
        &mut gaps,
        &mut truncated,
    )
    .await;
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
                managed_by: convert::manager(&found.metadata),
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

/// The owner's Ingresses and the reads of its namespaces; the classes, when the owner needs
/// them, go straight into `cluster`.
async fn by_owner(
    client: &Client,
    scope: &Scope,
    deadline: Instant,
    cluster: &mut Kubernetes,
    gaps: &mut Vec<Gap>,
    truncated: &mut Vec<String>,
) -> (Result<Listed<CoreIngress>, Gap>, Vec<InNamespace>) {
    match &scope.owner {
        // The namespace is known: its Ingresses (and for an Ingress, the classes) are listed
        // beside its other reads, all in one round.
        Owner::Service(namespace) | Owner::Ingress(namespace) => {
            let api = Api::<CoreIngress>::namespaced(client.clone(), namespace);
            let with_classes = matches!(scope.owner, Owner::Ingress(_));
            let (ingresses, one, found) = tokio::join!(
                list(api, MAX_OBJECTS, "ingresses.networking.k8s.io", deadline),
                in_namespace(client, namespace, deadline),
                async {
                    match with_classes {
                        true => Some(classes(client, deadline).await),
                        false => None,
                    }
                }
            );
            if let Some(found) = found {
                found.put_into(cluster, gaps, truncated);
            }
            (ingresses, vec![one])
        }
        // A group's members are known only once the classes are (one may name the group for
        // all its Ingresses), and its namespaces only from its members: they come first.
        Owner::IngressGroup(group) => {
            classes(client, deadline)
                .await
                .put_into(cluster, gaps, truncated);
            let (namespaces, ingresses) =
                group_namespaces(client, cluster, group, deadline, truncated).await;
            let per_namespace = namespaces
                .iter()
                .map(|namespace| in_namespace(client, namespace, deadline));
            (ingresses, futures::future::join_all(per_namespace).await)
        }
    }
}

/// The namespaces that hold a member of the group (at most [`MAX_NAMESPACES`]), and the
/// members.
async fn group_namespaces(
    client: &Client,
    classes: &Kubernetes,
    group: &str,
    deadline: Instant,
    truncated: &mut Vec<String>,
) -> (Vec<String>, Result<Listed<CoreIngress>, Gap>) {
    let listed = group_members(client, classes, group, deadline).await;
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

/// The Ingresses of one group, across namespaces, as the controller groups them (`classes`
/// holds the IngressClasses and their params); the bound counts members only.
async fn group_members(
    client: &Client,
    classes: &Kubernetes,
    group: &str,
    deadline: Instant,
) -> Result<Listed<CoreIngress>, Gap> {
    let all = Api::<CoreIngress>::all(client.clone());
    list_where(
        all,
        MAX_OBJECTS,
        "ingresses.networking.k8s.io",
        deadline,
        |i| classes.group_of(&convert::ingress(i)) == Some(group),
    )
    .await
}

/// The two cluster-scoped lists of the classes: IngressClasses and IngressClassParams.
struct Classes {
    classes: Result<Listed<CoreIngressClass>, Gap>,
    params: Result<Listed<DynamicObject>, Gap>,
}

async fn classes(client: &Client, deadline: Instant) -> Classes {
    let kind = GroupVersionKind::gvk("elbv2.k8s.aws", "v1beta1", "IngressClassParams");
    let resource = ApiResource::from_gvk_with_plural(&kind, "ingressclassparams");
    let (classes, params) = tokio::join!(
        list(
            Api::<CoreIngressClass>::all(client.clone()),
            MAX_OBJECTS,
            "ingressclasses.networking.k8s.io",
            deadline
        ),
        list(
            Api::<DynamicObject>::all_with(client.clone(), &resource),
            MAX_OBJECTS,
            "ingressclassparams.elbv2.k8s.aws",
            deadline
        ),
    );
    Classes { classes, params }
}

impl Classes {
    /// Into the section: the load balancer controller's classes, and the params they name.
    fn put_into(self, cluster: &mut Kubernetes, gaps: &mut Vec<Gap>, truncated: &mut Vec<String>) {
        let mut take = Taker { truncated, gaps };
        cluster.ingress_classes = take
            .items(self.classes, "ingressclasses")
            .iter()
            .filter_map(convert::ingress_class)
            .collect();
        let named = |params: &DynamicObject| {
            let name = params.metadata.name.as_ref();
            name.is_some()
                && cluster
                    .ingress_classes
                    .iter()
                    .any(|c| c.params.as_ref() == name)
        };
        cluster.ingress_class_params = take
            .items(self.params, "ingressclassparams")
            .iter()
            .filter(|p| named(p))
            .map(convert::ingress_class_params)
            .collect();
    }
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

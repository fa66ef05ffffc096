//! The cluster reads: the owner's namespace, its Ingresses (the whole group when it has one),
//! Services, workloads, pods, TargetGroupBindings and Events, turned into the engine's plain
//! [`Kubernetes`] section. Lists are paged (`limit`, `continue`) and bounded; every failure is
//! a gap that names its fix, never an abort: the AWS half of the report goes out regardless.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, Namespace as CoreNamespace, Pod as CorePod, Service as CoreService,
};
use k8s_openapi::api::networking::v1::Ingress as CoreIngress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::Client;
use serde::de::DeserializeOwned;

use elbmedic_engine::kubernetes::{
    Backend, Event, Ingress, Kubernetes, Manager, Namespace, ObjectRef, Pod, Service, ServicePort,
    TargetGroupBinding, MAX_EVENTS, MAX_OBJECTS, MAX_PODS,
};
use elbmedic_engine::snapshot::{Gap, GapFact, GapReason};

use crate::workload;

/// One page of a list.
const PAGE: u32 = 500;

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

/// What to read: the owner the load balancer's tags name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub cluster: String,
    pub namespace: String,
    /// `alb.ingress.kubernetes.io/group.name`, when the owner is an Ingress group.
    pub ingress_group: Option<String>,
}

/// Reads everything the scope needs; what could not be read is a gap.
pub async fn read(client: &Client, scope: &Scope) -> (Kubernetes, Vec<Gap>) {
    if !elbmedic_engine::kubernetes_name::is_label(&scope.namespace) {
        let gap = Gap {
            fact: GapFact::KubernetesApi,
            resource: None,
            reason: GapReason::Invalid,
            detail: "the owner's namespace is not a Kubernetes name, so nothing was read".into(),
        };
        return (Kubernetes::default(), vec![gap]);
    }
    let ns = scope.namespace.as_str();
    let mut gaps = Vec::new();
    let mut cluster = Kubernetes {
        cluster: scope.cluster.clone(),
        ..Kubernetes::default()
    };
    let (namespace, pods, services, deployments, statefulsets, ingresses, events, bindings) = tokio::join!(
        get(Api::<CoreNamespace>::all(client.clone()), ns, "namespaces"),
        list(
            Api::<CorePod>::namespaced(client.clone(), ns),
            MAX_PODS,
            "pods"
        ),
        list(
            Api::<CoreService>::namespaced(client.clone(), ns),
            MAX_OBJECTS,
            "services"
        ),
        list(
            Api::<Deployment>::namespaced(client.clone(), ns),
            MAX_OBJECTS,
            "deployments.apps"
        ),
        list(
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            MAX_OBJECTS,
            "statefulsets.apps"
        ),
        ingresses(client, scope),
        list(
            Api::<CoreEvent>::namespaced(client.clone(), ns),
            4 * MAX_EVENTS,
            "events"
        ),
        list(
            target_group_bindings(client, ns),
            MAX_OBJECTS,
            "targetgroupbindings.elbv2.k8s.aws"
        ),
    );
    match namespace {
        Ok(Some(found)) => cluster.namespaces.push(Namespace {
            name: found.metadata.name.clone().unwrap_or_default(),
            labels: found.metadata.labels.clone().unwrap_or_default(),
        }),
        Ok(None) => {}
        Err(gap) => gaps.push(gap),
    }
    let mut truncated = Vec::new();
    let mut take = Taker {
        truncated: &mut truncated,
        gaps: &mut gaps,
    };
    cluster.pods = take.items(pods, "pods").iter().map(pod).collect();
    cluster.services = take
        .items(services, "services")
        .iter()
        .map(service)
        .collect();
    let deployments = take.items(deployments, "deployments");
    let statefulsets = take.items(statefulsets, "statefulsets");
    cluster.workloads = deployments
        .iter()
        .map(workload::of_deployment)
        .chain(statefulsets.iter().map(workload::of_statefulset))
        .take(MAX_OBJECTS)
        .collect();
    if deployments.len() + statefulsets.len() > MAX_OBJECTS {
        take.truncated
            .push(format!("workloads: {MAX_OBJECTS} kept, more not kept"));
    }
    cluster.ingresses = take
        .items(ingresses, "ingresses")
        .iter()
        .map(ingress)
        .collect();
    let mut events: Vec<Event> = take.items(events, "events").iter().map(event).collect();
    events.sort_by(|a, b| a.last_at.cmp(&b.last_at));
    let keep_from = events.len().saturating_sub(MAX_EVENTS);
    cluster.events = events.split_off(keep_from);
    cluster.target_group_bindings = take
        .items(bindings, "targetgroupbindings")
        .iter()
        .map(binding)
        .collect();
    cluster.truncated = truncated;
    (cluster, gaps)
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

/// A list, paged, and whether it stopped at its bound.
struct Listed<K> {
    items: Vec<K>,
    truncated: bool,
}

async fn list<K>(api: Api<K>, bound: usize, resource: &str) -> Result<Listed<K>, Gap>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|error| gap_of(&error, resource))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => {
                if items.len() >= bound {
                    items.truncate(bound);
                    return Ok(Listed {
                        items,
                        truncated: true,
                    });
                }
                params = params.continue_token(&token);
            }
            _ => {
                let truncated = items.len() > bound;
                items.truncate(bound);
                return Ok(Listed { items, truncated });
            }
        }
    }
}

async fn get<K>(api: Api<K>, name: &str, resource: &str) -> Result<Option<K>, Gap>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|error| gap_of(&error, resource))
}

/// The Ingresses of the group, across namespaces (a group may span them), or the namespace's.
async fn ingresses(client: &Client, scope: &Scope) -> Result<Listed<CoreIngress>, Gap> {
    match &scope.ingress_group {
        Some(group) => {
            let all = Api::<CoreIngress>::all(client.clone());
            let mut listed = list(all, MAX_OBJECTS, "ingresses.networking.k8s.io").await?;
            listed.items.retain(|i| {
                annotations(&i.metadata).get("alb.ingress.kubernetes.io/group.name") == Some(group)
            });
            Ok(listed)
        }
        None => {
            list(
                Api::<CoreIngress>::namespaced(client.clone(), &scope.namespace),
                MAX_OBJECTS,
                "ingresses.networking.k8s.io",
            )
            .await
        }
    }
}

fn target_group_bindings(client: &Client, ns: &str) -> Api<DynamicObject> {
    let kind = GroupVersionKind::gvk("elbv2.k8s.aws", "v1beta1", "TargetGroupBinding");
    let resource = ApiResource::from_gvk_with_plural(&kind, "targetgroupbindings");
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// A failed call as a gap that names its fix.
fn gap_of(error: &kube::Error, resource: &str) -> Gap {
    let (reason, detail) = match error {
        kube::Error::Api(status) if status.code == 401 => (
            GapReason::AccessDenied,
            "the API server did not accept elbmedic's token (401): give the function's role an EKS access entry (infra/: AccessEntry, with the Kubernetes group elbmedic-read) and make the cluster's authentication mode include API".to_string(),
        ),
        kube::Error::Api(status) if status.code == 403 => (
            GapReason::AccessDenied,
            format!(
                "{} (403): bind the ClusterRole elbmedic-read of infra/ to the access entry's group; it may get, list and watch {resource}",
                one_line(&status.message)
            ),
        ),
        kube::Error::Api(status) if status.code == 404 => (
            GapReason::NotFound,
            format!("{resource}: not served by this cluster (404): {}", one_line(&status.message)),
        ),
        kube::Error::Api(status) if status.code == 429 => (
            GapReason::Throttled,
            format!("{resource}: the API server is throttling (429)"),
        ),
        kube::Error::Api(status) => (
            GapReason::Error,
            format!("{resource}: the API server answered {} ({})", status.code, one_line(&status.message)),
        ),
        other if in_chain::<rustls::Error>(other) => (
            GapReason::Error,
            format!(
                "the API server's certificate is not one the cluster's CA signed (TLS: {}); elbmedic trusts only the certificateAuthority of DescribeCluster",
                one_line(&other.to_string())
            ),
        ),
        other if timed_out(other) => (
            GapReason::Timeout,
            "the API server did not answer in time".to_string(),
        ),
        other => (
            GapReason::Error,
            format!(
                "the API server could not be reached ({}): a private endpoint needs the function in the cluster's VPC, and the cluster security group must admit 443 from it",
                one_line(&other.to_string())
            ),
        ),
    };
    Gap {
        fact: GapFact::KubernetesApi,
        resource: Some(resource.to_string()),
        reason,
        detail,
    }
}

/// Every error in `error`'s chain. `io::Error::source` skips the error it wraps (it answers
/// that error's own source), so a wrapped one is visited through `get_ref`.
fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut found = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        found.push(error);
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    found
}

/// Whether an error of type `E` is somewhere in `error`'s chain.
fn in_chain<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    chain(error).iter().any(|e| e.downcast_ref::<E>().is_some())
}

fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    chain(error).iter().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
    })
}

fn one_line(text: &str) -> String {
    crate::clipped(text, 300)
}

pub(crate) fn annotations(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

pub(crate) fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

pub(crate) fn manager(meta: &ObjectMeta) -> Option<Manager> {
    Manager::of(&annotations(meta), &labels(meta))
}

/// Only the annotations the engine reads: the load balancer controllers' and the managers'.
fn relevant(meta: &ObjectMeta) -> BTreeMap<String, String> {
    annotations(meta)
        .into_iter()
        .map(|(key, value)| (key, Kubernetes::bounded_text(&value)))
        .filter(|(key, _)| {
            key.starts_with("alb.ingress.kubernetes.io/")
                || key.starts_with("service.beta.kubernetes.io/")
                || key.starts_with("service.kubernetes.io/")
                || key.starts_with("kubernetes.io/ingress")
                || key.starts_with("argocd.argoproj.io/")
                || key.starts_with("meta.helm.sh/")
        })
        .collect()
}

fn name_of(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn pod(raw: &CorePod) -> Pod {
    let (namespace, name) = name_of(&raw.metadata);
    let status = raw.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .cloned()
        .unwrap_or_default();
    let reason = containers.iter().find_map(|c| {
        let state = c.state.as_ref()?;
        state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .or_else(|| state.terminated.as_ref().and_then(|t| t.reason.clone()))
    });
    Pod {
        namespace,
        name,
        labels: labels(&raw.metadata),
        ip: status.and_then(|s| s.pod_ip.clone()),
        node: raw.spec.as_ref().and_then(|s| s.node_name.clone()),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        restarts: containers
            .iter()
            .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
            .sum(),
        reason,
        owner: raw
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first())
            .map(|o| ObjectRef {
                kind: o.kind.clone(),
                namespace: raw.metadata.namespace.clone(),
                name: o.name.clone(),
            }),
        readiness_gates: raw
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.as_ref())
            .map(|g| g.iter().map(|g| g.condition_type.clone()).collect())
            .unwrap_or_default(),
        created_at: raw
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        deleting_since: raw
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    }
}

fn service(raw: &CoreService) -> Service {
    let (namespace, name) = name_of(&raw.metadata);
    let spec = raw.spec.clone().unwrap_or_default();
    Service {
        namespace,
        name,
        service_type: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
        selector: spec.selector.unwrap_or_default(),
        ports: spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| ServicePort {
                name: p.name,
                port: u16::try_from(p.port).unwrap_or(0),
                target_port: p.target_port.as_ref().map(workload::int_or_string),
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
            })
            .collect(),
        annotations: relevant(&raw.metadata),
        managed_by: manager(&raw.metadata),
    }
}

fn ingress(raw: &CoreIngress) -> Ingress {
    let (namespace, name) = name_of(&raw.metadata);
    let spec = raw.spec.clone().unwrap_or_default();
    let mut backends = Vec::new();
    let mut add = |backend: &k8s_openapi::api::networking::v1::IngressBackend| {
        if let Some(service) = &backend.service {
            let port = service.port.as_ref().map(|p| match (&p.name, p.number) {
                (Some(name), _) => name.clone(),
                (None, Some(number)) => number.to_string(),
                (None, None) => String::new(),
            });
            let backend = Backend {
                service: service.name.clone(),
                port: port.unwrap_or_default(),
            };
            if !backends.contains(&backend) {
                backends.push(backend);
            }
        }
    };
    if let Some(default) = &spec.default_backend {
        add(default);
    }
    for rule in spec.rules.iter().flatten() {
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            add(&path.backend);
        }
    }
    let annotations = relevant(&raw.metadata);
    Ingress {
        namespace,
        name,
        class: spec
            .ingress_class_name
            .or_else(|| annotations.get("kubernetes.io/ingress.class").cloned()),
        annotations,
        backends,
        managed_by: manager(&raw.metadata),
    }
}

fn event(raw: &CoreEvent) -> Event {
    let involved = &raw.involved_object;
    Event {
        object: involved.name.clone().map(|name| ObjectRef {
            kind: involved.kind.clone().unwrap_or_default(),
            namespace: involved.namespace.clone(),
            name,
        }),
        event_type: raw.type_.clone().unwrap_or_default(),
        reason: raw.reason.clone().unwrap_or_default(),
        message: Kubernetes::bounded_text(raw.message.as_deref().unwrap_or_default()),
        source: raw
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .or_else(|| raw.reporting_component.clone()),
        count: raw.count.and_then(|c| u32::try_from(c).ok()).unwrap_or(1),
        first_at: raw.first_timestamp.as_ref().map(|t| t.0.to_string()),
        last_at: raw
            .last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| raw.event_time.as_ref().map(|t| t.0.to_string())),
    }
}

fn binding(raw: &DynamicObject) -> TargetGroupBinding {
    let (namespace, name) = name_of(&raw.metadata);
    let spec = &raw.data["spec"];
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    TargetGroupBinding {
        namespace,
        name,
        target_group_arn: text(&spec["targetGroupARN"]).unwrap_or_default(),
        service: text(&spec["serviceRef"]["name"]),
        service_port: text(&spec["serviceRef"]["port"]),
        target_type: text(&spec["targetType"]),
    }
}

//! The API's objects as the engine's plain data: pods, Services, Ingresses and their classes,
//! Events and TargetGroupBindings. Only what the rules read is kept, and every text is bounded.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod as CorePod, Service as CoreService};
use k8s_openapi::api::networking::v1::{Ingress as CoreIngress, IngressClass as CoreIngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;

use elbmedic_engine::kubernetes::{
    Attribute, Backend, Event, Ingress, IngressClass, IngressClassParams, Kubernetes, Manager,
    ObjectRef, Pod, Service, ServicePort, TargetGroupBinding,
};

use crate::workload;

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

pub(crate) fn pod(raw: &CorePod) -> Pod {
    let (namespace, name) = name_of(&raw.metadata);
    let status = raw.status.as_ref();
    // Init containers first: a pod stuck in one never starts the others.
    let containers: Vec<_> = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect();
    let reason = containers
        .iter()
        .find_map(|c| {
            let state = c.state.as_ref()?;
            state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .or_else(|| state.terminated.as_ref().and_then(|t| t.reason.clone()))
        })
        // `Evicted`, `NodeLost`: the pod's own reason when no container has one.
        .or_else(|| status.and_then(|s| s.reason.clone()));
    let last_reason = containers
        .iter()
        .find_map(|c| c.last_state.as_ref()?.terminated.as_ref()?.reason.clone());
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
        reason: reason.map(|r| crate::clipped(&r, 120)),
        last_reason: last_reason.map(|r| crate::clipped(&r, 120)),
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

pub(crate) fn service(raw: &CoreService) -> Service {
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

pub(crate) fn ingress(raw: &CoreIngress) -> Ingress {
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
        class: spec.ingress_class_name,
        annotations,
        backends,
        managed_by: manager(&raw.metadata),
    }
}

pub(crate) fn event(raw: &CoreEvent) -> Event {
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
        // A repeating event counts in its series (`events.k8s.io/v1` writes it there).
        count: raw
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(raw.count)
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(1),
        first_at: raw
            .first_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| raw.event_time.as_ref().map(|t| t.0.to_string())),
        last_at: last_seen(raw).map(|(_, text)| text),
    }
}

/// The load balancer controller's name for itself in an IngressClass's `spec.controller`.
const ALB_CONTROLLER: &str = "ingress.k8s.aws/alb";

/// An IngressClass, if the load balancer controller implements it or it is a default class
/// (the controller counts every default class: with two, it picks none).
pub(crate) fn ingress_class(raw: &CoreIngressClass) -> Option<IngressClass> {
    let spec = raw.spec.as_ref()?;
    let default = annotations(&raw.metadata)
        .get("ingressclass.kubernetes.io/is-default-class")
        .is_some_and(|v| v == "true");
    if spec.controller.as_deref() != Some(ALB_CONTROLLER) {
        return default.then(|| IngressClass {
            name: raw.metadata.name.clone().unwrap_or_default(),
            params: None,
            default,
        });
    }
    let params = spec
        .parameters
        .as_ref()
        .filter(|p| {
            p.api_group.as_deref() == Some("elbv2.k8s.aws") && p.kind == "IngressClassParams"
        })
        .map(|p| p.name.clone());
    Some(IngressClass {
        name: raw.metadata.name.clone().unwrap_or_default(),
        params,
        default,
    })
}

/// An IngressClassParams: its group and load balancer attributes (a list of key and value,
/// as the CRD has it, kept in order; the list ends at a malformed entry, so that every kept
/// entry's index is its index on the object).
pub(crate) fn ingress_class_params(raw: &DynamicObject) -> IngressClassParams {
    let spec = &raw.data["spec"];
    let load_balancer_attributes = spec["loadBalancerAttributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map_while(|entry| {
            Some(Attribute {
                key: entry["key"].as_str()?.to_string(),
                value: Kubernetes::bounded_text(entry["value"].as_str()?),
            })
        })
        .collect();
    IngressClassParams {
        name: raw.metadata.name.clone().unwrap_or_default(),
        load_balancer_attributes,
        group: spec["group"]["name"].as_str().map(str::to_string),
        managed_by: manager(&raw.metadata),
    }
}

pub(crate) fn binding(raw: &DynamicObject) -> TargetGroupBinding {
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

/// When an Event last happened (epoch seconds, RFC 3339): its series' last observation, its
/// last timestamp, when it was emitted, or when it was created.
pub(crate) fn last_seen(raw: &CoreEvent) -> Option<(i64, String)> {
    let seen = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
        (t.0.as_second(), t.0.to_string())
    };
    let micro = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime| {
        (t.0.as_second(), t.0.to_string())
    };
    raw.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(micro)
        .or_else(|| raw.last_timestamp.as_ref().map(seen))
        .or_else(|| raw.event_time.as_ref().map(micro))
        .or_else(|| raw.metadata.creation_timestamp.as_ref().map(seen))
}

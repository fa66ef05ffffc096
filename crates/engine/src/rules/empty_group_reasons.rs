//! Why the cluster left a target group empty, for `no-registered-targets`: the Service's
//! selector matches no pod, its pods are not ready (with their reasons, counted), or the
//! TargetGroupBinding reports an error. Only when the snapshot holds the cluster.

use std::collections::BTreeMap;

use crate::backends::Backends;
use crate::context::{Context, Owner};
use crate::finding::Evidence;
use crate::kubernetes::{Kubernetes, ObjectRef, Pod, Service};
use crate::snapshot::TargetGroup;

/// What the cluster says about one empty group: one line for the title, and the evidence.
pub struct Reasons {
    pub why: String,
    pub evidence: Vec<Evidence>,
}

/// The Service behind `group`: the TargetGroupBinding that names its ARN, else the one the
/// controller's tag names, else the owning Service.
fn service_for<'a>(
    ctx: &Context<'_>,
    cluster: &'a Kubernetes,
    group: &TargetGroup,
    tagged: Option<&str>,
) -> Option<&'a Service> {
    let bound = cluster
        .target_group_bindings
        .iter()
        .find(|b| Some(b.target_group_arn.as_str()) == group.arn.as_deref())
        .and_then(|b| Some((b.namespace.as_str(), b.service.as_deref()?)));
    let named = match (&ctx.owner, tagged) {
        (Owner::Service { namespace, name }, _) => Some((namespace.as_str(), name.as_str())),
        (owner, Some(service)) => owner.namespaced().map(|(ns, _)| (ns, service)),
        _ => None,
    };
    let (namespace, name) = bound.or(named)?;
    cluster
        .services
        .iter()
        .find(|s| s.namespace == namespace && s.name == name)
}

pub fn of(ctx: &Context<'_>, group: &TargetGroup, tagged_service: Option<&str>) -> Option<Reasons> {
    let backends = Backends::of(ctx.snapshot, &ctx.owner)?;
    let cluster = backends.cluster;
    let mut evidence = binding_errors(cluster, group);
    let binding_error = evidence.first().map(|e| e.summary().to_string());
    let unread = |resource| crate::backends::unread(ctx.snapshot, resource);
    if unread("pods") || unread("services") {
        return binding_error.map(|why| Reasons { why, evidence });
    }
    let Some(service) = service_for(ctx, cluster, group, tagged_service) else {
        return binding_error.map(|why| Reasons { why, evidence });
    };
    let name = format!("Service {}/{}", service.namespace, service.name);
    let selector = service
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Vec<&Pod> = cluster.pods_of(service).collect();
    let ready = pods.iter().filter(|p| p.ready).count();
    let why = if service.selector.is_empty() {
        format!("{name} has no selector, so no pod backs it")
    } else if pods.is_empty() {
        format!(
            "{name}'s selector {selector} matches no pod in namespace {}",
            service.namespace
        )
    } else if ready == 0 {
        format!(
            "{name} selects {}, none ready ({})",
            crate::context::count(pods.len(), "pod", "pods"),
            not_ready_reasons(&pods)
        )
    } else {
        // Ready pods and still no target: the registration failed, which the binding says.
        binding_error.clone().unwrap_or_else(|| {
            format!("{name} selects {ready} ready pods, but none is registered: the controller did not register them")
        })
    };
    evidence.insert(0, Evidence::observation(why.clone()));
    for pod in pods.iter().filter(|p| !p.ready).take(5) {
        evidence.push(Evidence::observation(format!(
            "pod {}/{}: {}, not ready{}, {} restarts{}",
            pod.namespace,
            pod.name,
            if pod.phase.is_empty() {
                "phase unknown"
            } else {
                pod.phase.as_str()
            },
            pod.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            pod.restarts,
            pod.last_reason
                .as_deref()
                .map(|r| format!(", last exit {r}"))
                .unwrap_or_default()
        )));
    }
    Some(Reasons { why, evidence })
}

/// `CrashLoopBackOff x3, readiness failing x1`: why the pods are not ready, counted.
fn not_ready_reasons(pods: &[&Pod]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for pod in pods.iter().filter(|p| !p.ready) {
        let reason = match (&pod.reason, pod.phase.as_str()) {
            (Some(reason), _) => reason.clone(),
            (None, "Running") => "running, readiness probe failing".into(),
            (None, "") => "not ready".into(),
            (None, phase) => phase.to_string(),
        };
        *counts.entry(reason).or_default() += 1;
    }
    counts
        .iter()
        .map(|(reason, n)| format!("{reason} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Warning Events on the TargetGroupBinding of `group`.
fn binding_errors(cluster: &Kubernetes, group: &TargetGroup) -> Vec<Evidence> {
    let Some(binding) = cluster
        .target_group_bindings
        .iter()
        .find(|b| Some(b.target_group_arn.as_str()) == group.arn.as_deref())
    else {
        return Vec::new();
    };
    let object = ObjectRef {
        kind: "TargetGroupBinding".into(),
        namespace: Some(binding.namespace.clone()),
        name: binding.name.clone(),
    };
    cluster
        .events_of(&object)
        .rev()
        .filter(|e| e.event_type == "Warning")
        .take(3)
        .map(|e| {
            Evidence::observation(format!(
                "TargetGroupBinding {}/{}: {} ({})",
                binding.namespace,
                binding.name,
                e.reason,
                crate::untrusted::clipped(&e.message, 300)
            ))
        })
        .collect()
}

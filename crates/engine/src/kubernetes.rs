//! The cluster behind the load balancer, as plain data: the snapshot's `kubernetes` section
//! (schema version 2). The Kubernetes shell (`elbmedic-kubernetes`) reads it beside the AWS
//! rounds; the engine sees owners, workloads, pods, Events, and who re-applies each object,
//! never a client type. Everything here came from the cluster's API and is untrusted: names,
//! annotations and Event messages are data, rendered escaped like every AWS string.
//!
//! Not for: deciding anything; the rules do that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The load balancer controller's Event reasons that mean it stopped short of AWS (its
/// `pkg/k8s/events.go`), and the one that says a reconcile succeeded after them.
pub const CONTROLLER_FAILURES: &[&str] = &[
    "FailedBuildModel",
    "FailedDeployModel",
    "FailedLoadGroupID",
    "ConflictingIngressClass",
    "FailedNetworkReconcile",
    "BackendNotFound",
];
pub const CONTROLLER_RECONCILED: &str = "SuccessfullyReconciled";

/// The kinds elbmedic names in a `kubectl` command, and the resource word kubectl takes for
/// each: the one place both spellings meet, and elbmedic's own words (never the cluster's).
const RESOURCES: &[(&str, &str)] = &[
    ("Ingress", "ingress"),
    ("Service", "service"),
    ("Deployment", "deployment"),
    ("StatefulSet", "statefulset"),
    ("DaemonSet", "daemonset"),
    ("TargetGroupBinding", "targetgroupbinding"),
    ("IngressClassParams", "ingressclassparams"),
];

/// kubectl's resource word for a kind (`StatefulSet` -> `statefulset`).
pub fn resource_of(kind: &str) -> Option<&'static str> {
    RESOURCES.iter().find(|(k, _)| *k == kind).map(|(_, r)| *r)
}

/// The kind a kubectl resource word names (`statefulset` -> `StatefulSet`).
pub fn kind_of(resource: &str) -> Option<&'static str> {
    RESOURCES
        .iter()
        .find(|(_, r)| *r == resource)
        .map(|(k, _)| *k)
}

/// At most this many pods are read; the section says where the reads stopped.
pub const MAX_PODS: usize = 2_000;
/// At most this many Events are kept (the newest): a flapping pod writes many.
pub const MAX_EVENTS: usize = 500;
/// At most this many of each other kind (Services, workloads, Ingresses, bindings, ...).
pub const MAX_OBJECTS: usize = 500;
/// A text from the cluster (an Event's message, an annotation's value) is kept at most this
/// long; the reads cut it, and a snapshot holding a longer one was not made by elbmedic.
pub const MAX_TEXT: usize = 2_048;
/// The longest name the API server holds (a DNS subdomain); a longer one is not kept.
pub const MAX_NAME: usize = 253;
/// Labels, annotations, containers, ports, backends or gates of one object: at most this many.
pub const MAX_PER_OBJECT: usize = 100;

/// What was read from the cluster. Each list holds only what concerns the alarmed load
/// balancer: its owner (Ingress group or Service), their backends, and what runs them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubernetes {
    /// The EKS cluster's name.
    pub cluster: String,
    /// The Ingresses of the owner's group (or the owning Ingress alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingresses: Vec<Ingress>,
    /// The load balancer controller's IngressClasses (`spec.controller` `ingress.k8s.aws/alb`),
    /// and any other controller's default class (so two defaults are seen as two).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_classes: Vec<IngressClass>,
    /// The IngressClassParams those classes name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_class_params: Vec<IngressClassParams>,
    /// The owning Service of a Classic LB (or NLB), and the Ingresses' backend Services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Deployments, StatefulSets and DaemonSets whose pods back those Services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Workload>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<Pod>,
    /// The namespaces involved, with their labels (the readiness-gate label is one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_group_bindings: Vec<TargetGroupBinding>,
    /// Events of the objects above inside the alarm window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Where a read stopped at its bound (`"pods: 2000 read, more not read"`), if one did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// An object of the section that elbmedic may change, found by its place.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    Ingress(&'a Ingress),
    Service(&'a Service),
    Params(&'a IngressClassParams),
    Namespace(&'a Namespace),
}

/// One object, by kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// Who re-applies an object from its own copy, so that a durable fix is made there: in Git
/// for Argo CD and Flux, in the chart's values for Helm. `None` on an object means nothing
/// known does, and a `kubectl` change lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "kebab-case")]
pub enum Manager {
    /// `argocd.argoproj.io/tracking-id` (`APP:GROUP/KIND:NS/NAME`), or the
    /// `app.kubernetes.io/instance` label Argo CD sets by default.
    ArgoCd { application: String },
    /// `kustomize.toolkit.fluxcd.io/name` and `/namespace`.
    Flux {
        kustomization: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// `meta.helm.sh/release-name` and `/release-namespace`.
    Helm {
        release: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

impl Manager {
    /// Who manages an object, from its annotations and labels; Argo CD's tracking id first
    /// (it is set only by Argo CD), then Flux, then Helm, then Argo CD's instance label (which
    /// other tools set too, so it counts only with Argo CD's own managed-by annotation absent
    /// of any other tool).
    pub fn of(
        annotations: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Option<Self> {
        let value = |map: &BTreeMap<String, String>, key: &str| {
            map.get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        if let Some(tracking) = value(annotations, "argocd.argoproj.io/tracking-id") {
            let application = tracking.split(':').next().unwrap_or_default().to_string();
            if !application.is_empty() {
                return Some(Self::ArgoCd { application });
            }
        }
        // A Flux HelmRelease's objects carry Helm's annotations too: Flux re-applies them.
        if let Some(release) = value(labels, "helm.toolkit.fluxcd.io/name") {
            return Some(Self::Flux {
                kustomization: format!("HelmRelease {release}"),
                namespace: value(labels, "helm.toolkit.fluxcd.io/namespace"),
            });
        }
        if let Some(kustomization) = value(labels, "kustomize.toolkit.fluxcd.io/name") {
            return Some(Self::Flux {
                kustomization,
                namespace: value(labels, "kustomize.toolkit.fluxcd.io/namespace"),
            });
        }
        if let Some(release) = value(annotations, "meta.helm.sh/release-name") {
            return Some(Self::Helm {
                release,
                namespace: value(annotations, "meta.helm.sh/release-namespace"),
            });
        }
        let managed_by = value(labels, "app.kubernetes.io/managed-by");
        match (value(labels, "app.kubernetes.io/instance"), managed_by) {
            (Some(application), None)
                if annotations
                    .keys()
                    .any(|k| k.starts_with("argocd.argoproj.io/")) =>
            {
                Some(Self::ArgoCd { application })
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ingress {
    pub namespace: String,
    pub name: String,
    /// `spec.ingressClassName`. The legacy `kubernetes.io/ingress.class` annotation, kept
    /// among the annotations, wins over it for the controller, and brings no IngressClassParams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Only the load balancer controller's (`alb.ingress.kubernetes.io/*`) and the managers'.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The backend Services, with the port each rule names (a number or a port name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<Manager>,
}

/// The annotation that puts an Ingress in a group: Ingresses of one group share a load
/// balancer.
pub const GROUP_ANNOTATION: &str = "alb.ingress.kubernetes.io/group.name";

/// The legacy class annotation: the controller reads it before `spec.ingressClassName`.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

impl Ingress {
    /// Its group annotation ([`GROUP_ANNOTATION`]), if it has one. The group in effect may
    /// come from its class instead: [`Kubernetes::group_of`].
    pub fn group(&self) -> Option<&str> {
        self.annotations.get(GROUP_ANNOTATION).map(String::as_str)
    }
}

/// An IngressClass of the load balancer controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngressClass {
    pub name: String,
    /// `spec.parameters.name`, when it names an `elbv2.k8s.aws` IngressClassParams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    /// `ingressclass.kubernetes.io/is-default-class: "true"`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub service: String,
    pub port: String,
}

/// One entry of an IngressClassParams' `spec.loadBalancerAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

impl IngressClassParams {
    /// The entry that sets `key`, and its index: the last, as the controller reads the list
    /// into a map.
    pub fn attribute(&self, key: &str) -> Option<(usize, &str)> {
        self.load_balancer_attributes
            .iter()
            .enumerate()
            .rev()
            .find(|(_, a)| a.key == key)
            .map(|(index, a)| (index, a.value.as_str()))
    }
}

/// `elbv2.k8s.aws` IngressClassParams: settings that win over every Ingress of the class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngressClassParams {
    pub name: String,
    /// `spec.loadBalancerAttributes`, in the list's order: a patch names an entry by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_attributes: Vec<Attribute>,
    /// `spec.group.name`: every Ingress of the class is in this group, whatever its
    /// annotation says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<Manager>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer`.
    #[serde(rename = "type", default)]
    pub service_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Only the load balancer annotations (`service.beta.kubernetes.io/aws-load-balancer-*`,
    /// `service.kubernetes.io/*`) and the managers'.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<Manager>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    /// A number or a container port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// A Deployment, StatefulSet or DaemonSet, with what decides how its pods leave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<u32>,
    /// `spec.strategy.rollingUpdate.maxUnavailable`, as written (`25%` or `1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<String>,
    /// `spec.strategy.type` (`RollingUpdate`, `Recreate`; a StatefulSet's `updateStrategy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// The pod template's labels: how its pods are found.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// `terminationGracePeriodSeconds` (Kubernetes' default is 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    /// When its newest ReplicaSet was created (RFC 3339): when the last rollout began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<Manager>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    /// `lifecycle.preStop`; `None` when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<PreStop>,
    #[serde(default)]
    pub readiness_probe: bool,
    /// Declared container ports: (name, number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<(Option<String>, u16)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreStop {
    /// Seconds it waits, when that can be read: `lifecycle.preStop.sleep.seconds`, or an
    /// exec of `sleep N` (directly or in `sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_seconds: Option<u32>,
    /// What it runs, for the report (`sleep 15`, `httpGet /drain`).
    pub description: String,
    /// Which handler it is: a patch must replace a hook with one of the same kind (the API
    /// server refuses two handlers), and must not drop what a hook does besides waiting.
    #[serde(default)]
    pub form: HookForm,
}

/// The kind of a `preStop` handler, as far as a patch is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookForm {
    /// `lifecycle.preStop.sleep` (Kubernetes 1.30+).
    SleepAction,
    /// An exec of `sleep N` and nothing else.
    ExecSleep,
    /// Anything else (a drain script, `sh -c "sleep 5; nginx -s quit"`, an httpGet): only its
    /// owner can change it without losing what it does.
    #[default]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    #[serde(default)]
    pub phase: String,
    /// The `Ready` condition.
    #[serde(default)]
    pub ready: bool,
    /// Restarts of all its containers.
    #[serde(default)]
    pub restarts: u32,
    /// A container's waiting or terminated reason (`CrashLoopBackOff`, `OOMKilled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why a container last stopped (`lastState.terminated.reason`: `OOMKilled`, `Error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// The ReplicaSet (or StatefulSet, DaemonSet) that owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ObjectRef>,
    /// `spec.readinessGates` condition types (the controller's `target-health.elbv2.k8s.aws/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness_gates: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Set while the pod terminates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_since: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Who re-applies it (a namespace can be an Argo CD or Flux resource too): then its
    /// label is changed there, not in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<Manager>,
}

impl Namespace {
    /// Whether the controller injects readiness gates into this namespace's new pods.
    pub fn injects_readiness_gates(&self) -> bool {
        self.labels
            .get(crate::rollout::READINESS_GATE_LABEL)
            .is_some_and(|v| v == "enabled")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetGroupBinding {
    pub namespace: String,
    pub name: String,
    pub target_group_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<String>,
    /// `instance` or `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
}

/// A `v1` or `events.k8s.io/v1` Event, in one shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What it is about (`involvedObject` or `regarding`).
    pub object: Option<ObjectRef>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type", default)]
    pub event_type: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// Who reported it (`ingress`, `service`, `targetGroupBinding` for the load balancer
    /// controller; `kubelet`; `deployment-controller`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How many times it happened, and when first and last (RFC 3339).
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<String>,
}

fn one() -> u32 {
    1
}

/// Why a `kubernetes` section cannot be what a cluster read produced: more than the reads'
/// bounds hold. A snapshot from elbmedic never is; a forged one could make every rule that
/// walks the pods slow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeyondBounds {
    #[error("{0} pods (elbmedic reads at most {MAX_PODS})")]
    Pods(usize),
    #[error("{0} Events (elbmedic keeps at most {MAX_EVENTS})")]
    Events(usize),
    #[error("{count} {kind} (elbmedic reads at most {MAX_OBJECTS})")]
    Objects { kind: &'static str, count: usize },
    #[error("a text of {0} characters (elbmedic keeps at most {MAX_TEXT})")]
    Text(usize),
    #[error("a name of {0} characters (Kubernetes names hold at most {MAX_NAME})")]
    Name(usize),
    #[error("an object with {0} labels, annotations, containers or ports (elbmedic keeps at most {MAX_PER_OBJECT})")]
    PerObject(usize),
}

impl Kubernetes {
    /// Whether the section stays within the reads' bounds.
    pub fn within_bounds(&self) -> Result<(), BeyondBounds> {
        if self.pods.len() > MAX_PODS {
            return Err(BeyondBounds::Pods(self.pods.len()));
        }
        if self.events.len() > MAX_EVENTS {
            return Err(BeyondBounds::Events(self.events.len()));
        }
        for (kind, count) in [
            ("Ingresses", self.ingresses.len()),
            ("IngressClasses", self.ingress_classes.len()),
            ("IngressClassParams", self.ingress_class_params.len()),
            ("Services", self.services.len()),
            ("workloads", self.workloads.len()),
            ("namespaces", self.namespaces.len()),
            ("TargetGroupBindings", self.target_group_bindings.len()),
        ] {
            if count > MAX_OBJECTS {
                return Err(BeyondBounds::Objects { kind, count });
            }
        }
        let annotations = self
            .ingresses
            .iter()
            .flat_map(|i| i.annotations.values())
            .chain(self.services.iter().flat_map(|s| s.annotations.values()))
            .chain(
                self.ingress_class_params
                    .iter()
                    .flat_map(|p| p.load_balancer_attributes.iter().map(|a| &a.value)),
            );
        let longest = annotations
            .chain(self.events.iter().map(|e| &e.message))
            .map(|text| text.chars().count())
            .max()
            .unwrap_or(0);
        if longest > MAX_TEXT {
            return Err(BeyondBounds::Text(longest));
        }
        if let Some(name) = self
            .names()
            .map(|n| n.chars().count())
            .find(|n| *n > MAX_NAME)
        {
            return Err(BeyondBounds::Name(name));
        }
        if let Some(many) = self.per_object().find(|n| *n > MAX_PER_OBJECT) {
            return Err(BeyondBounds::PerObject(many));
        }
        Ok(())
    }

    /// Every name and namespace in the section, and every label's key and value.
    fn names(&self) -> impl Iterator<Item = &String> + '_ {
        fn labels(map: &BTreeMap<String, String>) -> impl Iterator<Item = &String> {
            map.iter().flat_map(|(k, v)| [k, v])
        }
        self.ingresses
            .iter()
            .flat_map(|i| [&i.namespace, &i.name])
            .chain(self.ingresses.iter().filter_map(|i| i.class.as_ref()))
            .chain(
                self.ingress_classes
                    .iter()
                    .flat_map(|c| std::iter::once(&c.name).chain(&c.params)),
            )
            .chain(
                self.ingress_class_params
                    .iter()
                    .flat_map(|p| std::iter::once(&p.name).chain(&p.group)),
            )
            .chain(
                self.ingress_class_params
                    .iter()
                    .flat_map(|p| p.load_balancer_attributes.iter().map(|a| &a.key)),
            )
            .chain(self.services.iter().flat_map(|s| [&s.namespace, &s.name]))
            .chain(self.services.iter().flat_map(|s| labels(&s.selector)))
            .chain(self.workloads.iter().flat_map(|w| [&w.namespace, &w.name]))
            .chain(self.workloads.iter().flat_map(|w| labels(&w.pod_labels)))
            .chain(
                self.workloads
                    .iter()
                    .flat_map(|w| w.containers.iter().map(|c| &c.name)),
            )
            .chain(self.pods.iter().flat_map(|p| [&p.namespace, &p.name]))
            .chain(self.pods.iter().flat_map(|p| labels(&p.labels)))
            .chain(self.namespaces.iter().map(|n| &n.name))
            .chain(self.namespaces.iter().flat_map(|n| labels(&n.labels)))
            .chain(
                self.target_group_bindings
                    .iter()
                    .flat_map(|b| [&b.namespace, &b.name]),
            )
            .chain(
                self.events
                    .iter()
                    .flat_map(|e| e.object.iter().map(|o| &o.name)),
            )
            .chain(self.events.iter().map(|e| &e.reason))
    }

    /// How many labels, annotations, containers, ports, backends and gates each object holds.
    fn per_object(&self) -> impl Iterator<Item = usize> + '_ {
        self.ingresses
            .iter()
            .flat_map(|i| [i.annotations.len(), i.backends.len()])
            .chain(
                self.ingress_class_params
                    .iter()
                    .map(|p| p.load_balancer_attributes.len()),
            )
            .chain(
                self.services
                    .iter()
                    .flat_map(|s| [s.selector.len(), s.ports.len(), s.annotations.len()]),
            )
            .chain(self.workloads.iter().flat_map(|w| {
                [w.pod_labels.len(), w.containers.len()]
                    .into_iter()
                    .chain(w.containers.iter().map(|c| c.ports.len()))
            }))
            .chain(
                self.pods
                    .iter()
                    .flat_map(|p| [p.labels.len(), p.readiness_gates.len()]),
            )
            .chain(self.namespaces.iter().map(|n| n.labels.len()))
    }

    /// The section cut to the bounds [`Kubernetes::within_bounds`] checks: objects whose name
    /// is longer than a Kubernetes name are dropped, and each object's lists and maps are cut.
    /// The reads pass what they read through here, so their snapshot is never refused.
    pub fn clamped(mut self) -> Self {
        fn cut<K: Ord, V>(map: &mut BTreeMap<K, V>) {
            while map.len() > MAX_PER_OBJECT {
                map.pop_last();
            }
        }
        fn cut_text(map: &mut BTreeMap<String, String>) {
            cut(map);
            map.retain(|k, v| k.chars().count() <= MAX_NAME && v.chars().count() <= MAX_NAME);
        }
        let short = |name: &String| name.chars().count() <= MAX_NAME;
        self.ingresses
            .retain(|i| short(&i.namespace) && short(&i.name));
        for ingress in &mut self.ingresses {
            cut(&mut ingress.annotations);
            ingress.backends.truncate(MAX_PER_OBJECT);
            ingress.class = ingress.class.take().filter(short);
        }
        self.ingress_classes
            .retain(|c| short(&c.name) && c.params.as_ref().is_none_or(short));
        self.ingress_class_params
            .retain(|p| short(&p.name) && p.group.as_ref().is_none_or(short));
        for params in &mut self.ingress_class_params {
            // Cut, never filtered: an entry's index is how a patch names it. A cut list may
            // have lost the entry the controller uses (the last of a key), so it is said, and
            // the params then count as unread.
            let mut keep = params.load_balancer_attributes.len().min(MAX_PER_OBJECT);
            if let Some(long) = params
                .load_balancer_attributes
                .iter()
                .position(|a| !short(&a.key))
            {
                keep = keep.min(long);
            }
            if keep < params.load_balancer_attributes.len() {
                self.truncated.push(format!(
                    "ingressclassparams: the attribute list of {} cut at {keep} of {} entries",
                    params.name,
                    params.load_balancer_attributes.len()
                ));
                params.load_balancer_attributes.truncate(keep);
            }
        }
        self.services
            .retain(|s| short(&s.namespace) && short(&s.name));
        for service in &mut self.services {
            cut_text(&mut service.selector);
            cut(&mut service.annotations);
            service.ports.truncate(MAX_PER_OBJECT);
        }
        self.workloads
            .retain(|w| short(&w.namespace) && short(&w.name));
        for workload in &mut self.workloads {
            cut_text(&mut workload.pod_labels);
            workload.containers.retain(|c| short(&c.name));
            workload.containers.truncate(MAX_PER_OBJECT);
            for container in &mut workload.containers {
                container.ports.truncate(MAX_PER_OBJECT);
            }
        }
        self.pods.retain(|p| short(&p.namespace) && short(&p.name));
        for pod in &mut self.pods {
            cut_text(&mut pod.labels);
            pod.readiness_gates.truncate(MAX_PER_OBJECT);
        }
        self.namespaces.retain(|n| short(&n.name));
        for namespace in &mut self.namespaces {
            cut_text(&mut namespace.labels);
        }
        self.target_group_bindings
            .retain(|b| short(&b.namespace) && short(&b.name));
        self.events
            .retain(|e| short(&e.reason) && e.object.as_ref().is_none_or(|o| short(&o.name)));
        self
    }

    /// `text` cut to [`MAX_TEXT`] characters, as the reads keep it.
    pub fn bounded_text(text: &str) -> String {
        text.chars().take(MAX_TEXT).collect()
    }

    /// The IngressClass the controller reads for `ingress`: none under the legacy annotation
    /// (which wins), the named one, or else the cluster's one default class.
    pub fn class_of(&self, ingress: &Ingress) -> Option<&IngressClass> {
        if ingress.annotations.contains_key(CLASS_ANNOTATION) {
            return None;
        }
        match &ingress.class {
            Some(name) => self.ingress_classes.iter().find(|c| &c.name == name),
            None => {
                let mut defaults = self.ingress_classes.iter().filter(|c| c.default);
                match (defaults.next(), defaults.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }

    /// The IngressClassParams of `ingress`'s class: its settings win over the Ingress's
    /// annotations, key by key.
    pub fn params_of(&self, ingress: &Ingress) -> Option<&IngressClassParams> {
        let name = self.class_of(ingress)?.params.as_ref()?;
        self.ingress_class_params.iter().find(|p| &p.name == name)
    }

    /// The group `ingress` belongs to: its class's `spec.group.name`, which wins, or its
    /// group annotation.
    pub fn group_of<'a>(&'a self, ingress: &'a Ingress) -> Option<&'a str> {
        self.params_of(ingress)
            .and_then(|p| p.group.as_deref())
            .or_else(|| ingress.group())
    }

    /// The object at `place`, when the section holds it.
    pub fn object_at(&self, place: &crate::action::Place) -> Option<Object<'_>> {
        use crate::action::Place;
        let here = |ns: &str, n: &str| Some(ns) == place.namespace() && n == place.name();
        match place {
            Place::Ingress { .. } => self
                .ingresses
                .iter()
                .find(|i| here(&i.namespace, &i.name))
                .map(Object::Ingress),
            Place::Service { .. } => self
                .services
                .iter()
                .find(|s| here(&s.namespace, &s.name))
                .map(Object::Service),
            Place::IngressClassParams { name } => self
                .ingress_class_params
                .iter()
                .find(|p| &p.name == name)
                .map(Object::Params),
            Place::Namespace { name } => self.namespace(name).map(Object::Namespace),
        }
    }

    /// Who re-applies the object at `place`: `Some(None)` when it was read and nothing
    /// manages it, `None` when it was not read.
    pub fn managed_by(&self, place: &crate::action::Place) -> Option<Option<&Manager>> {
        Some(match self.object_at(place)? {
            Object::Ingress(i) => i.managed_by.as_ref(),
            Object::Service(s) => s.managed_by.as_ref(),
            Object::Params(p) => p.managed_by.as_ref(),
            Object::Namespace(n) => n.managed_by.as_ref(),
        })
    }

    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.name == name)
    }

    /// The pods a Service selects: every selector label matches (an empty selector selects
    /// none: such a Service has hand-made endpoints).
    pub fn pods_of<'a>(&'a self, service: &'a Service) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().filter(move |pod| {
            pod.namespace == service.namespace
                && !service.selector.is_empty()
                && service
                    .selector
                    .iter()
                    .all(|(k, v)| pod.labels.get(k) == Some(v))
        })
    }

    /// The workload whose pod template matches `pod`'s labels, in its namespace.
    ///
    /// By the pod's owner first: a Deployment's ReplicaSet is named `DEPLOYMENT-HASH`, a
    /// StatefulSet owns its pods itself. By labels only when exactly one workload's template
    /// matches (`web` and `web-canary` may both match a canary pod's labels).
    pub fn workload_of(&self, pod: &Pod) -> Option<&Workload> {
        let here = self
            .workloads
            .iter()
            .filter(|w| w.namespace == pod.namespace);
        if let Some(owner) = &pod.owner {
            let owned = here
                .clone()
                .find(|w| match (owner.kind.as_str(), w.kind.as_str()) {
                    ("ReplicaSet", "Deployment") => owner
                        .name
                        .rsplit_once('-')
                        .is_some_and(|(deployment, _)| deployment == w.name),
                    (kind, workload) => kind == workload && owner.name == w.name,
                });
            if owned.is_some() {
                return owned;
            }
        }
        let mut matching = here.filter(|w| {
            !w.pod_labels.is_empty()
                && w.pod_labels
                    .iter()
                    .all(|(k, v)| pod.labels.get(k) == Some(v))
        });
        match (matching.next(), matching.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// Events about `object`, oldest first.
    pub fn events_of<'a>(
        &'a self,
        object: &'a ObjectRef,
    ) -> impl DoubleEndedIterator<Item = &'a Event> + 'a {
        self.events
            .iter()
            .filter(move |e| e.object.as_ref() == Some(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// As the controller reads classes: the legacy annotation wins and brings no params; a
    /// named class, else the one default class; the params' group wins over the annotation.
    #[test]
    fn an_ingress_class_and_its_params_are_found_as_the_controller_finds_them() {
        let params = |name: &str, group: Option<&str>| IngressClassParams {
            name: name.into(),
            group: group.map(str::to_string),
            load_balancer_attributes: vec![
                Attribute {
                    key: "idle_timeout.timeout_seconds".into(),
                    value: "60".into(),
                },
                Attribute {
                    key: "idle_timeout.timeout_seconds".into(),
                    value: "120".into(),
                },
            ],
            ..IngressClassParams::default()
        };
        let class = |name: &str, params: &str, default: bool| IngressClass {
            name: name.into(),
            params: Some(params.into()),
            default,
        };
        let mut cluster = Kubernetes {
            ingress_classes: vec![
                class("grouped", "grouped-params", false),
                class("plain", "plain-params", true),
            ],
            ingress_class_params: vec![
                params("grouped-params", Some("shared")),
                params("plain-params", None),
            ],
            ..Kubernetes::default()
        };
        let ingress = |class: Option<&str>, annotations: &[(&str, &str)]| Ingress {
            namespace: "shop".into(),
            name: "web".into(),
            class: class.map(str::to_string),
            annotations: map(annotations),
            ..Ingress::default()
        };
        let annotated = [(GROUP_ANNOTATION, "own")];
        assert_eq!(
            cluster.group_of(&ingress(Some("grouped"), &annotated)),
            Some("shared")
        );
        assert_eq!(
            cluster.group_of(&ingress(Some("plain"), &annotated)),
            Some("own")
        );
        // No class named: the default one.
        let unnamed = ingress(None, &[]);
        assert_eq!(cluster.params_of(&unnamed).unwrap().name, "plain-params");
        // The legacy annotation wins over the field, and has no params.
        let legacy = ingress(Some("grouped"), &[(CLASS_ANNOTATION, "alb")]);
        assert!(cluster.class_of(&legacy).is_none());
        assert_eq!(cluster.group_of(&legacy), None);
        // A duplicated key: the last entry, as the controller's map keeps it.
        assert_eq!(
            cluster.ingress_class_params[0].attribute("idle_timeout.timeout_seconds"),
            Some((1, "120"))
        );
        // Two default classes: none is the default.
        cluster.ingress_classes[0].default = true;
        assert!(cluster.class_of(&unnamed).is_none());
    }

    #[test]
    fn the_manager_is_read_from_each_tools_own_marks() {
        let none = BTreeMap::new();
        assert_eq!(
            Manager::of(
                &map(&[(
                    "argocd.argoproj.io/tracking-id",
                    "shop:networking.k8s.io/Ingress:shop/web"
                )]),
                &none
            ),
            Some(Manager::ArgoCd {
                application: "shop".into()
            })
        );
        assert_eq!(
            Manager::of(
                &none,
                &map(&[
                    ("kustomize.toolkit.fluxcd.io/name", "apps"),
                    ("kustomize.toolkit.fluxcd.io/namespace", "flux-system")
                ])
            ),
            Some(Manager::Flux {
                kustomization: "apps".into(),
                namespace: Some("flux-system".into())
            })
        );
        assert_eq!(
            Manager::of(
                &map(&[
                    ("meta.helm.sh/release-name", "web"),
                    ("meta.helm.sh/release-namespace", "shop")
                ]),
                &map(&[
                    ("app.kubernetes.io/managed-by", "Helm"),
                    ("app.kubernetes.io/instance", "web")
                ])
            ),
            Some(Manager::Helm {
                release: "web".into(),
                namespace: Some("shop".into())
            })
        );
        // A Flux HelmRelease: Flux, not `helm upgrade`, is where the fix goes.
        assert_eq!(
            Manager::of(
                &map(&[("meta.helm.sh/release-name", "web")]),
                &map(&[
                    ("helm.toolkit.fluxcd.io/name", "web"),
                    ("helm.toolkit.fluxcd.io/namespace", "flux-system")
                ])
            ),
            Some(Manager::Flux {
                kustomization: "HelmRelease web".into(),
                namespace: Some("flux-system".into())
            })
        );
        // The instance label alone is everyone's convention: not proof of Argo CD.
        assert_eq!(
            Manager::of(&none, &map(&[("app.kubernetes.io/instance", "web")])),
            None
        );
        assert_eq!(
            Manager::of(
                &map(&[("argocd.argoproj.io/sync-wave", "1")]),
                &map(&[("app.kubernetes.io/instance", "web")])
            ),
            Some(Manager::ArgoCd {
                application: "web".into()
            })
        );
        assert_eq!(Manager::of(&none, &none), None);
    }

    #[test]
    fn a_service_selects_the_pods_that_carry_every_label_of_its_selector() {
        let pod = |name: &str, labels: &[(&str, &str)]| Pod {
            namespace: "shop".into(),
            name: name.into(),
            labels: map(labels),
            ..Pod::default()
        };
        let cluster = Kubernetes {
            pods: vec![
                pod("web-1", &[("app", "web"), ("tier", "front")]),
                pod("web-2", &[("app", "web")]),
                pod("db-1", &[("app", "db")]),
            ],
            workloads: vec![Workload {
                kind: "Deployment".into(),
                namespace: "shop".into(),
                name: "web".into(),
                pod_labels: map(&[("app", "web")]),
                ..Workload::default()
            }],
            ..Kubernetes::default()
        };
        let service = Service {
            namespace: "shop".into(),
            name: "web".into(),
            selector: map(&[("app", "web"), ("tier", "front")]),
            ..Service::default()
        };
        let selected: Vec<&str> = cluster.pods_of(&service).map(|p| p.name.as_str()).collect();
        assert_eq!(selected, ["web-1"]);
        let headless = Service {
            selector: BTreeMap::new(),
            ..service
        };
        assert_eq!(cluster.pods_of(&headless).count(), 0);
        assert_eq!(
            cluster
                .workload_of(&cluster.pods[1])
                .map(|w| w.name.as_str()),
            Some("web")
        );
        assert!(cluster.workload_of(&cluster.pods[2]).is_none());
    }

    #[test]
    fn a_section_beyond_the_reads_bounds_is_refused() {
        let many = Kubernetes {
            pods: vec![Pod::default(); MAX_PODS + 1],
            ..Kubernetes::default()
        };
        assert_eq!(many.within_bounds(), Err(BeyondBounds::Pods(MAX_PODS + 1)));
        assert!(Kubernetes::default().within_bounds().is_ok());
        let services = Kubernetes {
            services: vec![Service::default(); MAX_OBJECTS + 1],
            ..Kubernetes::default()
        };
        assert!(matches!(
            services.within_bounds(),
            Err(BeyondBounds::Objects {
                kind: "Services",
                ..
            })
        ));
        let long = Kubernetes {
            events: vec![Event {
                message: "x".repeat(MAX_TEXT + 1),
                ..Event::default()
            }],
            ..Kubernetes::default()
        };
        assert_eq!(long.within_bounds(), Err(BeyondBounds::Text(MAX_TEXT + 1)));
        let long_name = Kubernetes {
            pods: vec![Pod {
                name: "p".repeat(MAX_NAME + 1),
                ..Pod::default()
            }],
            ..Kubernetes::default()
        };
        assert_eq!(
            long_name.within_bounds(),
            Err(BeyondBounds::Name(MAX_NAME + 1))
        );
        assert_eq!(long_name.clamped().within_bounds(), Ok(()));
        let labelled = Kubernetes {
            namespaces: vec![Namespace {
                name: "shop".into(),
                labels: (0..=MAX_PER_OBJECT)
                    .map(|i| (format!("k{i}"), "v".into()))
                    .collect(),
                ..Namespace::default()
            }],
            ..Kubernetes::default()
        };
        assert_eq!(
            labelled.within_bounds(),
            Err(BeyondBounds::PerObject(MAX_PER_OBJECT + 1))
        );
        let clamped = labelled.clamped();
        assert_eq!(clamped.within_bounds(), Ok(()));
        assert_eq!(clamped.namespaces[0].labels.len(), MAX_PER_OBJECT);
    }
}

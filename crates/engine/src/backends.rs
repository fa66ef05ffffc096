//! Who stands behind the load balancer in the cluster: the owner's Ingresses, their backend
//! Services (and those the TargetGroupBindings of its target groups name), the pods those
//! Services select, and the workloads that run them. Read from the snapshot's `kubernetes`
//! section; `None` when the cluster was not read.

use crate::context::Owner;
use crate::kubernetes::{Ingress, IngressClassParams, Kubernetes, Pod, Service, Workload};
use crate::snapshot::{GapFact, Snapshot};

/// Whether the cluster's `resource` (`pods`, `events`, `services`, `ingresses`) could not be
/// read, or was cut at its bound: then its absence proves nothing, and no rule claims it.
pub fn unread(snapshot: &Snapshot, resource: &str) -> bool {
    let failed = snapshot.gaps.iter().any(|g| {
        g.fact == GapFact::KubernetesApi
            && g.resource
                .as_deref()
                .is_none_or(|r| r.split('.').next() == Some(resource))
    });
    let cut = snapshot
        .kubernetes
        .iter()
        .flat_map(|k| &k.truncated)
        .any(|t| t.starts_with(resource));
    failed || cut
}

pub struct Backends<'a> {
    pub cluster: &'a Kubernetes,
    /// The owning Ingress, or every member of the owning group.
    pub ingresses: Vec<&'a Ingress>,
    pub services: Vec<&'a Service>,
    pub pods: Vec<&'a Pod>,
    pub workloads: Vec<&'a Workload>,
}

impl<'a> Backends<'a> {
    pub fn of(snapshot: &'a Snapshot, owner: &Owner) -> Option<Self> {
        let cluster = snapshot.kubernetes.as_ref()?;
        let ingresses: Vec<&Ingress> = cluster
            .ingresses
            .iter()
            .filter(|i| match owner {
                Owner::Ingress { namespace, name } => &i.namespace == namespace && &i.name == name,
                Owner::IngressGroup { group } => cluster.group_of(i) == Some(group.as_str()),
                _ => false,
            })
            .collect();
        let group_arns: Vec<&str> = snapshot
            .target_groups
            .iter()
            .filter_map(|g| g.arn.as_deref())
            .collect();
        let mut services: Vec<&Service> = Vec::new();
        for service in &cluster.services {
            let named_by_ingress = ingresses.iter().any(|i| {
                i.namespace == service.namespace
                    && i.backends.iter().any(|b| b.service == service.name)
            });
            let owns = matches!(owner, Owner::Service { namespace, name }
                if &service.namespace == namespace && &service.name == name);
            let bound = cluster.target_group_bindings.iter().any(|b| {
                b.namespace == service.namespace
                    && b.service.as_deref() == Some(service.name.as_str())
                    && group_arns.contains(&b.target_group_arn.as_str())
            });
            if named_by_ingress || owns || bound {
                services.push(service);
            }
        }
        let mut pods: Vec<&Pod> = services.iter().flat_map(|s| cluster.pods_of(s)).collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        pods.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        let mut workloads: Vec<&Workload> = Vec::new();
        let selected = pods.iter().filter_map(|p| cluster.workload_of(p));
        // A workload with no pod left still backs a Service whose selector its template matches.
        let templated = cluster.workloads.iter().filter(|w| {
            services.iter().any(|s| {
                s.namespace == w.namespace
                    && !s.selector.is_empty()
                    && s.selector
                        .iter()
                        .all(|(k, v)| w.pod_labels.get(k) == Some(v))
            })
        });
        for workload in selected.chain(templated) {
            if !workloads.iter().any(|w| std::ptr::eq(*w, workload)) {
                workloads.push(workload);
            }
        }
        Some(Self {
            cluster,
            ingresses,
            services,
            pods,
            workloads,
        })
    }

    /// The Ingress whose class the controller reads for the whole load balancer: the first
    /// member by `group.order` (0 when absent), then by namespace and name, as its
    /// `sortGroupMembers` orders them.
    pub fn first_member(&self) -> Option<&'a Ingress> {
        let order = |i: &Ingress| {
            i.annotations
                .get("alb.ingress.kubernetes.io/group.order")
                .and_then(|o| o.trim().parse::<i64>().ok())
                .unwrap_or(0)
        };
        self.ingresses.iter().copied().min_by(|a, b| {
            (order(a), &a.namespace, &a.name).cmp(&(order(b), &b.namespace, &b.name))
        })
    }

    /// The IngressClassParams whose settings win over every member's annotations: those of
    /// the first member's class (the controller reads no other member's class).
    pub fn class_params(&self) -> Option<&'a IngressClassParams> {
        self.cluster.params_of(self.first_member()?)
    }

    /// The pods a workload runs, among the backends' pods.
    pub fn pods_of(&self, workload: &Workload) -> Vec<&'a Pod> {
        self.pods
            .iter()
            .copied()
            .filter(|p| {
                self.cluster
                    .workload_of(p)
                    .is_some_and(|w| std::ptr::eq(w, workload))
            })
            .collect()
    }

    /// The Services a workload's pods serve.
    pub fn services_of(&self, workload: &Workload) -> Vec<&'a Service> {
        self.services
            .iter()
            .copied()
            .filter(|s| {
                s.namespace == workload.namespace
                    && !s.selector.is_empty()
                    && s.selector
                        .iter()
                        .all(|(k, v)| workload.pod_labels.get(k) == Some(v))
            })
            .collect()
    }
}

//! Who re-applies the object a "make it durable" command changes. Argo CD, Flux and Helm keep
//! their own copy of a manifest and put it back at their next sync, so a `kubectl annotate` or
//! `kubectl patch` there is undone: the change belongs in Git, or in the chart's values. Runs
//! after the rules, over every finding, from the snapshot's `kubernetes` section; without the
//! section nothing is known and nothing changes.
//!
//! Not for: deciding anything about the cause.

use crate::action::Place;
use crate::finding::{DurableFix, Finding};
use crate::kubernetes::{Kubernetes, Manager};
use crate::shell::Word;

/// Where a managed object's change belongs, one sentence.
pub fn where_to_change(manager: &Manager, object: &str) -> String {
    match manager {
        Manager::ArgoCd { application } => format!(
            "Argo CD application {application} re-applies {object}: make this change in the application's Git source (a kubectl change is reverted at its next sync)"
        ),
        Manager::Flux {
            kustomization,
            namespace,
        } => format!(
            "Flux ({kustomization}{}) re-applies {object}: make this change in its Git source (a kubectl change is reverted at its next reconciliation)",
            namespace
                .as_deref()
                .map(|ns| format!(" in {ns}"))
                .unwrap_or_default()
        ),
        Manager::Helm { release, namespace } => format!(
            "Helm release {release}{} installed {object}: make this change in the chart's values and run helm upgrade (the next upgrade overwrites a kubectl change)",
            namespace
                .as_deref()
                .map(|ns| format!(" (namespace {ns})"))
                .unwrap_or_default()
        ),
    }
}

/// The object a command changes, as `(kind, namespace, name)`, when the command is elbmedic's
/// own `kubectl [-n NS] annotate|patch KIND NAME` (read from its words, never from text); only
/// a cluster-scoped kind goes without a namespace.
fn changed_object(words: &[Word]) -> Option<(&'static str, Option<String>, String)> {
    let namespace = words.windows(2).find_map(|pair| match pair {
        [Word::Fixed("-n"), value] => Some(value.intended()),
        _ => None,
    });
    words.windows(3).find_map(|three| match three {
        [Word::Fixed("annotate" | "patch"), Word::Fixed(kind), name]
            if namespace.is_some() || CLUSTER_SCOPED.contains(kind) =>
        {
            Some((*kind, namespace.clone(), name.intended()))
        }
        _ => None,
    })
}

/// The kinds elbmedic changes that have no namespace.
const CLUSTER_SCOPED: &[&str] = &["ingressclassparams"];

/// The manager of an object the section holds: `Some(None)` when it was read and nothing
/// manages it, `None` when it was not read.
fn manager_of<'c>(
    cluster: &'c Kubernetes,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<Option<&'c Manager>> {
    let here = |ns: &str, n: &str| Some(ns) == namespace && n == name;
    let owned = |text: &str| text.to_string();
    let place = match (kind, namespace) {
        ("ingressclassparams", None) => Some(Place::IngressClassParams { name: owned(name) }),
        ("ingress", Some(ns)) => Some(Place::Ingress {
            namespace: owned(ns),
            name: owned(name),
        }),
        ("service", Some(ns)) => Some(Place::Service {
            namespace: owned(ns),
            name: owned(name),
        }),
        _ => None,
    };
    if let Some(place) = place {
        return cluster.managed_by(&place);
    }
    match kind {
        "deployment" | "statefulset" | "daemonset" => cluster
            .workloads
            .iter()
            .find(|w| w.kind.eq_ignore_ascii_case(kind) && here(&w.namespace, &w.name))
            .map(|w| w.managed_by.as_ref()),
        _ => None,
    }
}

/// Each durable fix's command, weighed against who re-applies its object.
pub fn apply(cluster: Option<&Kubernetes>, findings: &mut [Finding]) {
    let Some(cluster) = cluster else { return };
    for durable in findings.iter_mut().filter_map(|f| f.fix.durable.as_mut()) {
        settle(cluster, durable);
    }
}

fn settle(cluster: &Kubernetes, durable: &mut DurableFix) {
    let Some(script) = &durable.command else {
        return;
    };
    let Some((kind, namespace, name)) = script.words().iter().find_map(|l| changed_object(l))
    else {
        return;
    };
    let kind_name = crate::kubernetes::kind_of(kind).unwrap_or("Deployment");
    let object = match &namespace {
        Some(namespace) => format!("{kind_name} {namespace}/{name}"),
        None => format!("{kind_name} {name}"),
    };
    match manager_of(cluster, kind, namespace.as_deref(), &name) {
        Some(Some(manager)) => {
            let note = where_to_change(manager, &object);
            durable.description = format!("{note}. {}", durable.description);
            durable.command = None;
            durable.warning = format!(
                "{} The kubectl command is left out for that reason; the lines above are what to change.",
                durable.warning
            );
        }
        Some(None) => {
            durable.warning = format!(
                "{} No Argo CD, Flux or Helm marks were found on {object}: unless something else re-applies it (a pipeline's kubectl apply, Terraform, Argo CD tracking by label only), the kubectl change lasts. Put it in your manifests too.",
                durable.warning
            );
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::{Ingress, IngressClassParams, Workload};
    use crate::shell::Script;

    fn fix(command: Script) -> DurableFix {
        DurableFix {
            description: "Annotate it".into(),
            command: Some(command),
            manifest: Some("metadata: {}".into()),
            warning: "Careful.".into(),
        }
    }

    #[test]
    fn a_managed_objects_kubectl_change_gives_way_to_its_source() {
        let cluster = Kubernetes {
            ingresses: vec![Ingress {
                namespace: "shop".into(),
                name: "web".into(),
                managed_by: Some(Manager::ArgoCd {
                    application: "shop-app".into(),
                }),
                ..Ingress::default()
            }],
            workloads: vec![Workload {
                kind: "Deployment".into(),
                namespace: "shop".into(),
                name: "api".into(),
                ..Workload::default()
            }],
            ..Kubernetes::default()
        };
        let mut managed = fix(Script::line(crate::argv![
            "kubectl",
            "-n",
            "shop",
            "annotate",
            "ingress",
            "web",
            "--overwrite",
            "a=b"
        ]));
        settle(&cluster, &mut managed);
        assert!(managed.command.is_none());
        assert!(managed
            .description
            .starts_with("Argo CD application shop-app re-applies Ingress shop/web"));
        let mut unmanaged = fix(Script::line(crate::argv![
            "kubectl",
            "-n",
            "shop",
            "patch",
            "deployment",
            "api",
            "-p",
            "{}"
        ]));
        settle(&cluster, &mut unmanaged);
        assert!(unmanaged.command.is_some());
        assert!(unmanaged
            .warning
            .contains("No Argo CD, Flux or Helm marks were found on Deployment shop/api"));
        // An object the section does not hold: nothing is claimed.
        let mut unknown = fix(Script::line(crate::argv![
            "kubectl", "-n", "other", "annotate", "service", "x", "a=b"
        ]));
        settle(&cluster, &mut unknown);
        assert_eq!(
            unknown,
            fix(Script::line(crate::argv![
                "kubectl", "-n", "other", "annotate", "service", "x", "a=b"
            ]))
        );
    }

    /// IngressClassParams have no namespace: the load balancer controller's Helm chart often
    /// installs them, and then the chart's values are where the change goes. A namespaced
    /// kind without `-n` is not elbmedic's command and is left alone.
    #[test]
    fn cluster_scoped_params_are_weighed_too() {
        let cluster = Kubernetes {
            ingress_class_params: vec![IngressClassParams {
                name: "alb".into(),
                managed_by: Some(Manager::Helm {
                    release: "aws-load-balancer-controller".into(),
                    namespace: Some("kube-system".into()),
                }),
                ..IngressClassParams::default()
            }],
            ..Kubernetes::default()
        };
        let mut managed = fix(Script::line(crate::argv![
            "kubectl",
            "patch",
            "ingressclassparams",
            "alb",
            "--type=json",
            "-p",
            "[]"
        ]));
        settle(&cluster, &mut managed);
        assert!(managed.command.is_none());
        assert!(managed.description.starts_with(
            "Helm release aws-load-balancer-controller (namespace kube-system) installed IngressClassParams alb"
        ));
        let unscoped = fix(Script::line(crate::argv![
            "kubectl", "annotate", "ingress", "alb", "a=b"
        ]));
        let mut left = unscoped.clone();
        settle(&cluster, &mut left);
        assert_eq!(left, unscoped);
    }
}

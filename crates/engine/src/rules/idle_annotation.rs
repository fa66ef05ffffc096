//! Where the cluster sets the idle timeout, read against the load balancer's, for
//! `idle-timeout-exceeded`: the controller writes an Ingress's `idle_timeout.timeout_seconds`
//! back at each reconcile (the IngressClassParams of its class, when they set the key, win
//! over every Ingress's annotation), and the legacy cloud provider
//! writes a Classic LB's idle timeout from its Service's annotation (60 s without one) at each
//! Service sync. A value there that differs from the load balancer's is drift: one of them is
//! about to change. Only when the snapshot holds the cluster.

use crate::alarm::LbKind;
use crate::backends::{unread, Backends};
use crate::context::{Context, Owner};
use crate::finding::Evidence;

const ALB_ATTRIBUTES: &str = "alb.ingress.kubernetes.io/load-balancer-attributes";
const ALB_KEY: &str = "idle_timeout.timeout_seconds";
const CLB_ANNOTATION: &str = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout";

/// One place in the cluster that sets the idle timeout, and its value as written.
struct Setting {
    place: String,
    value: String,
}

/// The idle timeout an Ingress's attributes annotation sets, as written.
fn annotated(ingress: &crate::kubernetes::Ingress) -> Option<String> {
    let list = ingress.annotations.get(ALB_ATTRIBUTES)?;
    list.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == ALB_KEY).then(|| value.trim().to_string())
    })
}

/// Where the cluster sets the idle timeout in effect. For an ALB: the IngressClassParams of
/// the members' class when they set the key (the controller takes the first member's class;
/// the members' own values are then overridden, and said so), else the members' annotations.
fn settings(ctx: &Context<'_>, backends: &Backends<'_>) -> (Vec<Setting>, Vec<Evidence>) {
    match ctx.kind() {
        LbKind::Application => {
            // Params read only in part say nothing sure: the entry the controller uses (the
            // last of the key) may be the part not read.
            let from_class: Vec<Setting> = backends
                .class_params()
                .filter(|_| !classes_unread(ctx.snapshot))
                .into_iter()
                .filter_map(|params| {
                    Some(Setting {
                        place: format!("IngressClassParams {}", params.name),
                        value: params.attribute(ALB_KEY)?.1.to_string(),
                    })
                })
                .collect();
            let from_ingresses = backends.ingresses.iter().filter_map(|i| {
                Some(Setting {
                    place: format!("Ingress {}/{}", i.namespace, i.name),
                    value: annotated(i)?,
                })
            });
            if from_class.is_empty() {
                return (from_ingresses.collect(), Vec::new());
            }
            let overridden = from_ingresses
                .map(|s| {
                    Evidence::observation(format!(
                        "{} sets the idle timeout to {:?} in {ALB_ATTRIBUTES}, but the IngressClassParams of this load balancer's class set it too, and win: change it there",
                        s.place,
                        crate::untrusted::clipped(&s.value, 40)
                    ))
                })
                .collect();
            (from_class, overridden)
        }
        LbKind::Classic => (backends
            .services
            .iter()
            .filter(|s| matches!(&ctx.owner, Owner::Service { namespace, name } if &s.namespace == namespace && &s.name == name))
            .filter_map(|s| {
                Some(Setting {
                    place: format!("Service {}/{}", s.namespace, s.name),
                    value: s.annotations.get(CLB_ANNOTATION)?.clone(),
                })
            })
            .collect(), Vec::new()),
        // An NLB's idle timeout is per listener (issue 26): nothing read yet.
        LbKind::Network => (Vec::new(), Vec::new()),
    }
}

/// What the cluster says about the idle timeout in effect (`timeout`, on the load balancer).
pub fn evidence(ctx: &Context<'_>, timeout: u32) -> Vec<Evidence> {
    let Some(backends) = Backends::of(ctx.snapshot, &ctx.owner) else {
        return Vec::new();
    };
    let (found, overridden) = settings(ctx, &backends);
    let clip = |text: &str| crate::untrusted::clipped(text, 40);
    let classes_unread = ctx.kind() == LbKind::Application && classes_unread(ctx.snapshot);
    if found.is_empty() {
        // Only what was read is said to lack the setting.
        let line = match (ctx.kind(), ctx.owner.namespaced()) {
            (LbKind::Classic, Some((ns, name))) if !backends.services.is_empty() => format!("Service {ns}/{name} has no {CLB_ANNOTATION} annotation: the cloud provider writes 60 s back at every sync of the Service, so a raise made only on AWS does not last"),
            (LbKind::Application, _) if !backends.ingresses.is_empty() && classes_unread => format!("No Ingress of this load balancer sets {ALB_KEY} in {ALB_ATTRIBUTES}, and the IngressClassParams of its class could not be read: if they set loadBalancerAttributes, that value wins over the annotation"),
            (LbKind::Application, _) if !backends.ingresses.is_empty() => format!("Neither the Ingresses of this load balancer nor the IngressClassParams of their class set {ALB_KEY}: the {ALB_ATTRIBUTES} annotation is where to keep a new value"),
            _ => return Vec::new(),
        };
        return vec![Evidence::observation(line)];
    }
    let trouble = match classes_unread {
        true => None,
        false => class_trouble(&backends),
    };
    let in_effect: Vec<Evidence> = found
        .iter()
        .map(|s| {
            let value = clip(&s.value);
            let line = match value.parse::<u32>() {
                Ok(seconds) if seconds == timeout => format!("{} sets the idle timeout to {seconds} s, the value in effect: raise it there", s.place),
                Ok(seconds) if trouble.is_some() => format!(
                    "{} sets the idle timeout to {seconds} s, but the load balancer has {timeout} s: not drift, the controller cannot apply it (below)",
                    s.place
                ),
                Ok(seconds) => format!(
                    "{} sets the idle timeout to {seconds} s, but the load balancer has {timeout} s: drift. {}",
                    s.place,
                    match ctx.kind() {
                        LbKind::Application => "The controller writes the annotation's value back at its next reconcile; if it has not, it may be failing to reconcile (see its Events)",
                        LbKind::Classic => "The cloud provider writes the annotation's value back at the next sync of the Service",
                        LbKind::Network => "The controller writes the annotation's value back at its next reconcile of the Service",
                    }
                ),
                Err(_) => format!("{} sets the idle timeout to {value:?}, which is not a number of seconds: the controller rejects it", s.place),
            };
            Evidence::observation(line)
        })
        .collect();
    // An Ingress's value is in effect only if the class's params do not set the key, and
    // those could not be read.
    let caveat = classes_unread.then(|| Evidence::observation(CLASSES_UNREAD.to_string()));
    in_effect
        .into_iter()
        .chain(overridden)
        .chain(trouble.map(Evidence::observation))
        .chain(caveat)
        .collect()
}

/// Why the load balancer controller cannot reconcile this load balancer's Ingresses, from the
/// classes read whole: the first member's class names IngressClassParams that do not exist
/// (the controller fails on it). Then a value in the cluster is not drift: it never reaches
/// AWS.
fn class_trouble(backends: &Backends<'_>) -> Option<String> {
    let cluster = backends.cluster;
    let first = backends.first_member()?;
    if first
        .annotations
        .contains_key(crate::kubernetes::CLASS_ANNOTATION)
    {
        return None;
    }
    let clip = |text: &str| crate::untrusted::clipped(text, 63);
    // A class that was not read is not claimed missing: a cluster without IngressClass
    // objects, or a snapshot from before they were read, says nothing about it.
    let named = first.class.as_deref()?;
    let class = cluster.ingress_classes.iter().find(|c| c.name == named)?;
    let params = class.params.as_deref()?;
    (!cluster.ingress_class_params.iter().any(|p| p.name == params)).then(|| {
        format!(
            "IngressClass {:?} names IngressClassParams {:?}, which do not exist: the load balancer controller fails to reconcile its Ingresses (see its Events), so nothing set on them reaches the load balancer",
            clip(named),
            clip(params)
        )
    })
}

/// Said wherever an Ingress's annotation is named while the classes could not be read.
pub const CLASSES_UNREAD: &str = "The IngressClasses or IngressClassParams could not be read (whole): if the class's IngressClassParams set idle_timeout.timeout_seconds, their value wins over every Ingress's annotation, and a change there does nothing";

/// Whether the classes, or their params, could not be read whole.
pub fn classes_unread(snapshot: &crate::snapshot::Snapshot) -> bool {
    unread(snapshot, "ingressclasses") || unread(snapshot, "ingressclassparams")
}

#[cfg(test)]
mod tests {
    use crate::diagnosis::diagnose;
    use crate::finding::FindingCode;
    use crate::kubernetes::{Attribute, IngressClass, IngressClassParams};
    use crate::rules::testing::scenario_alarm;
    use crate::snapshot::{Gap, GapFact, GapReason, Snapshot};
    use crate::testkit::scenario_snapshot;

    const SCENARIO: &str = "eks-idle-timeout-class-params";

    /// The idle-timeout finding's evidence lines and durable fix, on `world`.
    fn read(world: &Snapshot) -> (Vec<String>, crate::finding::DurableFix) {
        let diagnosis = diagnose(&scenario_alarm(SCENARIO), world);
        let finding = diagnosis
            .findings
            .iter()
            .find(|f| f.code == FindingCode::IdleTimeoutExceeded)
            .unwrap();
        let lines = finding
            .evidence
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        (lines, finding.fix.durable.clone().unwrap())
    }

    /// The params could not be read: an Ingress's own value is named with the caveat that
    /// the params would win, and the annotation fix says so.
    #[test]
    fn an_annotation_is_not_claimed_in_effect_when_the_params_could_not_be_read() {
        let mut world = scenario_snapshot(SCENARIO);
        world
            .kubernetes
            .as_mut()
            .unwrap()
            .ingress_class_params
            .clear();
        world.gaps.push(Gap {
            fact: GapFact::KubernetesApi,
            resource: Some("ingressclassparams.elbv2.k8s.aws".into()),
            reason: GapReason::AccessDenied,
            detail: "forbidden".into(),
        });
        let (lines, durable) = read(&world);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("Ingress shop/checkout sets the idle timeout to 300 s")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("could not be read (whole)")),
            "{lines:?}"
        );
        assert!(
            durable.warning.contains("could not be read (whole)"),
            "{}",
            durable.warning
        );
    }

    /// Read whole, a class whose params do not exist is named instead of "drift" (the
    /// controller fails on it); a class that was not read is not claimed missing. Last
    /// session's review, defect 6.
    #[test]
    fn a_missing_class_or_params_is_not_called_drift() {
        let mut world = scenario_snapshot(SCENARIO);
        let section = world.kubernetes.as_mut().unwrap();
        section.ingress_class_params.clear();
        let (lines, _) = read(&world);
        assert!(
            lines.iter().any(|l| l
                .contains("which do not exist: the load balancer controller fails to reconcile")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("not drift, the controller cannot apply it")),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.contains(": drift.")), "{lines:?}");

        // An Ingress whose class was not read is not claimed broken.
        let mut world = scenario_snapshot(SCENARIO);
        for ingress in &mut world.kubernetes.as_mut().unwrap().ingresses {
            ingress.class = Some("nginx".into());
        }
        let (lines, _) = read(&world);
        assert!(!lines.iter().any(|l| l.contains("not drift")), "{lines:?}");
    }

    /// In a group, only the first member's class counts (by group.order, then namespace and
    /// name), as the controller reads it: another member's params are not patched.
    #[test]
    fn only_the_first_members_class_counts_in_a_group() {
        let mut world = scenario_snapshot("eks-ingress-group-conflict");
        let section = world.kubernetes.as_mut().unwrap();
        // shop/admin sorts first; give shop/checkout's class params that set 60 s.
        let checkout = section
            .ingresses
            .iter_mut()
            .find(|i| i.name == "checkout")
            .unwrap();
        checkout.class = Some("other".into());
        section.ingress_classes.push(IngressClass {
            name: "other".into(),
            params: Some("other-params".into()),
            default: false,
        });
        section.ingress_class_params.push(IngressClassParams {
            name: "other-params".into(),
            load_balancer_attributes: vec![Attribute {
                key: "idle_timeout.timeout_seconds".into(),
                value: "60".into(),
            }],
            ..IngressClassParams::default()
        });
        let (lines, durable) = read(&world);
        assert!(
            !lines.iter().any(|l| l.contains("other-params")),
            "{lines:?}"
        );
        assert!(
            !durable.description.contains("other-params"),
            "{}",
            durable.description
        );
        // With group.order putting checkout first, its class's params are the ones.
        let section = world.kubernetes.as_mut().unwrap();
        let checkout = section
            .ingresses
            .iter_mut()
            .find(|i| i.name == "checkout")
            .unwrap();
        checkout
            .annotations
            .insert("alb.ingress.kubernetes.io/group.order".into(), "-1".into());
        let (lines, durable) = read(&world);
        assert!(
            lines.iter().any(
                |l| l.contains("IngressClassParams other-params sets the idle timeout to 60 s")
            ),
            "{lines:?}"
        );
        assert!(
            durable
                .description
                .contains("IngressClassParams other-params"),
            "{}",
            durable.description
        );
    }

    /// A list cut at its bound may have lost the entry the controller uses: the params count
    /// as unread, so no entry is patched by index.
    #[test]
    fn a_cut_attribute_list_is_never_patched_by_index() {
        let mut world = scenario_snapshot(SCENARIO);
        let section = world.kubernetes.take().unwrap();
        let mut section = section;
        let attributes = &mut section.ingress_class_params[0].load_balancer_attributes;
        for n in 0..crate::kubernetes::MAX_PER_OBJECT {
            attributes.push(Attribute {
                key: format!("tags.k{n}"),
                value: "v".into(),
            });
        }
        world.kubernetes = Some(section.clamped());
        let (lines, durable) = read(&world);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("could not be read (whole)")),
            "{lines:?}"
        );
        assert!(
            !durable.description.contains("IngressClassParams"),
            "{}",
            durable.description
        );
    }
}

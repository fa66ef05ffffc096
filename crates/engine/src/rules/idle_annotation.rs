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
            let from_class: Vec<Setting> = backends
                .class_params()
                .iter()
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
                        "{} sets the idle timeout to {:?} in {ALB_ATTRIBUTES}, but the IngressClassParams of its class set it too, and win: change it there",
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
    }
}

/// What the cluster says about the idle timeout in effect (`timeout`, on the load balancer).
pub fn evidence(ctx: &Context<'_>, timeout: u32) -> Vec<Evidence> {
    let Some(backends) = Backends::of(ctx.snapshot, &ctx.owner) else {
        return Vec::new();
    };
    let (found, overridden) = settings(ctx, &backends);
    let clip = |text: &str| crate::untrusted::clipped(text, 40);
    if found.is_empty() {
        // Only what was read is said to lack the setting.
        let classes_unread =
            unread(ctx.snapshot, "ingressclasses") || unread(ctx.snapshot, "ingressclassparams");
        let line = match (ctx.kind(), ctx.owner.namespaced()) {
            (LbKind::Classic, Some((ns, name))) if !backends.services.is_empty() => format!("Service {ns}/{name} has no {CLB_ANNOTATION} annotation: the cloud provider writes 60 s back at every sync of the Service, so a raise made only on AWS does not last"),
            (LbKind::Application, _) if !backends.ingresses.is_empty() && classes_unread => format!("No Ingress of this load balancer sets {ALB_KEY} in {ALB_ATTRIBUTES}, and the IngressClassParams of its class could not be read: if they set loadBalancerAttributes, that value wins over the annotation"),
            (LbKind::Application, _) if !backends.ingresses.is_empty() => format!("Neither the Ingresses of this load balancer nor the IngressClassParams of their class set {ALB_KEY}: the {ALB_ATTRIBUTES} annotation is where to keep a new value"),
            _ => return Vec::new(),
        };
        return vec![Evidence::observation(line)];
    }
    let in_effect: Vec<Evidence> = found
        .iter()
        .map(|s| {
            let value = clip(&s.value);
            let line = match value.parse::<u32>() {
                Ok(seconds) if seconds == timeout => format!("{} sets the idle timeout to {seconds} s, the value in effect: raise it there", s.place),
                Ok(seconds) => format!(
                    "{} sets the idle timeout to {seconds} s, but the load balancer has {timeout} s: drift. {}",
                    s.place,
                    match ctx.kind() {
                        LbKind::Application => "The controller writes the annotation's value back at its next reconcile; if it has not, it may be failing to reconcile (see its Events)",
                        LbKind::Classic => "The cloud provider writes the annotation's value back at the next sync of the Service",
                    }
                ),
                Err(_) => format!("{} sets the idle timeout to {value:?}, which is not a number of seconds: the controller rejects it", s.place),
            };
            Evidence::observation(line)
        })
        .collect();
    in_effect.into_iter().chain(overridden).collect()
}

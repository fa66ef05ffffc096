//! Where the cluster sets the idle timeout, read against the load balancer's, for
//! `idle-timeout-exceeded`: the controller writes an Ingress's (or the IngressClassParams')
//! `idle_timeout.timeout_seconds` back at each reconcile, and the legacy cloud provider
//! writes a Classic LB's idle timeout from its Service's annotation (60 s without one) at each
//! Service sync. A value there that differs from the load balancer's is drift: one of them is
//! about to change. Only when the snapshot holds the cluster.

use crate::alarm::LbKind;
use crate::backends::Backends;
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

fn settings(ctx: &Context<'_>, backends: &Backends<'_>) -> Vec<Setting> {
    match ctx.kind() {
        LbKind::Application => {
            let from_ingresses = backends.ingresses.iter().filter_map(|i| {
                let list = i.annotations.get(ALB_ATTRIBUTES)?;
                let value = list.split(',').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    (key.trim() == ALB_KEY).then(|| value.trim().to_string())
                })?;
                Some(Setting {
                    place: format!("Ingress {}/{}", i.namespace, i.name),
                    value,
                })
            });
            let from_class = backends.cluster.ingress_class_params.iter().filter_map(|p| {
                Some(Setting {
                    place: format!("IngressClassParams {}", p.name),
                    value: p.load_balancer_attributes.get(ALB_KEY)?.clone(),
                })
            });
            from_class.chain(from_ingresses).collect()
        }
        LbKind::Classic => backends
            .services
            .iter()
            .filter(|s| matches!(&ctx.owner, Owner::Service { namespace, name } if &s.namespace == namespace && &s.name == name))
            .filter_map(|s| {
                Some(Setting {
                    place: format!("Service {}/{}", s.namespace, s.name),
                    value: s.annotations.get(CLB_ANNOTATION)?.clone(),
                })
            })
            .collect(),
    }
}

/// What the cluster says about the idle timeout in effect (`timeout`, on the load balancer).
pub fn evidence(ctx: &Context<'_>, timeout: u32) -> Vec<Evidence> {
    let Some(backends) = Backends::of(ctx.snapshot, &ctx.owner) else {
        return Vec::new();
    };
    let found = settings(ctx, &backends);
    let clip = |text: &str| crate::untrusted::clipped(text, 40);
    if found.is_empty() {
        // Only what was read is said to lack the setting.
        let line = match (ctx.kind(), ctx.owner.namespaced()) {
            (LbKind::Classic, Some((ns, name))) if !backends.services.is_empty() => format!("Service {ns}/{name} has no {CLB_ANNOTATION} annotation: the cloud provider writes 60 s back at every sync of the Service, so a raise made only on AWS does not last"),
            (LbKind::Application, _) if !backends.ingresses.is_empty() => format!("No Ingress of this load balancer sets {ALB_KEY} in {ALB_ATTRIBUTES}: the annotation is where to keep a new value (unless the IngressClassParams of its class sets loadBalancerAttributes, which elbmedic does not read and which would win)"),
            _ => return Vec::new(),
        };
        return vec![Evidence::observation(line)];
    }
    found
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
        .collect()
}

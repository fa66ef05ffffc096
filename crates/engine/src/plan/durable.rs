//! The durable half of a remediation: the setting kept in the cluster, where the controller
//! that owns the load balancer reads it, so that the AWS-side change is not written back (the
//! legacy cloud provider resets a Classic LB's idle timeout at every Service sync; the load
//! balancer controller puts back what an annotation or the IngressClassParams declare).
//!
//! Pure, like the rest of the plan: where to keep a setting is chosen from the snapshot's
//! `kubernetes` section, and what to apply is computed from the object as read just before,
//! never taken from the plan. A plan names only the place and the number of seconds.
//!
//! Not for: applying (the Kubernetes shell does that, with server-side apply).

use serde_json::{json, Value};

pub use crate::action::Place;
use crate::alarm::LbKind;
use crate::backends::{unread, Backends};
use crate::context::Owner;
use crate::kubernetes::{Kubernetes, Object, GROUP_ANNOTATION};
use crate::snapshot::Snapshot;

/// The annotation that holds an ALB's attributes: one comma-separated list.
pub const ALB_ATTRIBUTES: &str = "alb.ingress.kubernetes.io/load-balancer-attributes";
/// The key of the idle timeout, in that list and in an IngressClassParams.
pub const IDLE_KEY: &str = "idle_timeout.timeout_seconds";
/// A Classic LB's idle timeout, on its Service.
pub const CLB_IDLE: &str = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout";
pub use crate::rollout::READINESS_GATE_LABEL;

/// elbmedic's field manager: what it applies is owned under this name, and only this.
pub const FIELD_MANAGER: &str = "elbmedic";

/// Why no single object of the cluster is the right place for a setting: said to the reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoPlace(pub String);

impl From<&str> for NoPlace {
    fn from(reason: &str) -> Self {
        Self(reason.to_string())
    }
}

impl From<String> for NoPlace {
    fn from(reason: String) -> Self {
        Self(reason)
    }
}

fn no(reason: String) -> Result<Place, NoPlace> {
    Err(NoPlace(reason))
}

/// Where the idle timeout of this load balancer is kept, or why no single place is right.
///
/// - A Classic LB: its Service's annotation.
/// - An ALB whose class's IngressClassParams set the key: there (they win over every Ingress).
/// - A lone Ingress: its annotation list.
/// - A group: the one member that declares the key. None that does: the only member, if
///   there is one. Several: refused, since changing them one by one would make them disagree
///   meanwhile, and a disagreement stops the controller for the whole group.
pub fn idle_timeout_place(snapshot: &Snapshot, owner: &Owner) -> Result<Place, NoPlace> {
    let Some(cluster) = snapshot.kubernetes.as_ref() else {
        return Err(
            "the cluster was not read, so where the idle timeout is kept is not known".into(),
        );
    };
    let backends =
        Backends::of(snapshot, owner).ok_or_else(|| "the cluster was not read".to_string())?;
    match (snapshot.load_balancer.kind, owner) {
        (LbKind::Classic, Owner::Service { namespace, name }) => {
            let place = Place::Service {
                namespace: namespace.clone(),
                name: name.clone(),
            };
            match cluster.object_at(&place) {
                Some(_) => Ok(place),
                None => no(format!(
                    "Service {namespace}/{name} was not found in the cluster"
                )),
            }
        }
        (LbKind::Application, Owner::Ingress { .. } | Owner::IngressGroup { .. }) => {
            if unread(snapshot, "ingressclasses") || unread(snapshot, "ingressclassparams") {
                return Err("the IngressClasses or IngressClassParams could not be read (whole): their value would win over any annotation".into());
            }
            if let Some(params) = backends
                .class_params()
                .filter(|p| p.attribute(IDLE_KEY).is_some())
            {
                return Ok(Place::IngressClassParams {
                    name: params.name.clone(),
                });
            }
            let declaring: Vec<_> = backends
                .ingresses
                .iter()
                .filter(|i| list_value(i.annotations.get(ALB_ATTRIBUTES), IDLE_KEY).is_some())
                .collect();
            let chosen = match (declaring.as_slice(), backends.ingresses.as_slice()) {
                ([one], _) => *one,
                ([], [only]) => *only,
                ([], []) => return Err("no Ingress of this load balancer was found in the cluster".into()),
                ([], _) => return no(format!(
                    "no Ingress of the group declares {IDLE_KEY}, and it has {} members: elbmedic does not choose which one keeps a setting of the whole load balancer",
                    backends.ingresses.len()
                )),
                (_, _) => return no(format!(
                    "{} Ingresses of the group declare {IDLE_KEY}: changing them one at a time would make them disagree meanwhile, which stops the controller for the whole group",
                    declaring.len()
                )),
            };
            Ok(Place::Ingress {
                namespace: chosen.namespace.clone(),
                name: chosen.name.clone(),
            })
        }
        (_, Owner::Unknown) => Err("the load balancer's tags name no owner in the cluster".into()),
        (_, _) => Err("this load balancer's owner keeps no idle timeout elbmedic can set".into()),
    }
}

/// The value `key` has in a comma-separated `key=value` list, as written (trimmed).
pub fn list_value<'a>(list: Option<&'a String>, key: &str) -> Option<&'a str> {
    list?.split(',').rev().find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The list with `key` set to `value`: every other entry kept exactly as written, never
/// re-parsed (a hostile value stays one entry), and every entry of `key` replaced by one.
pub fn rewrite_list(current: &str, key: &str, value: &str) -> String {
    let mut kept: Vec<&str> = current
        .split(',')
        .filter(|pair| !pair.trim().is_empty())
        .filter(|pair| pair.split_once('=').is_none_or(|(k, _)| k.trim() != key))
        .collect();
    let pair = format!("{key}={value}");
    kept.push(&pair);
    kept.join(",")
}

/// The idle timeout kept at `place` today (seconds as written), if any.
pub fn idle_timeout_kept(place: &Place, cluster: &Kubernetes) -> Option<String> {
    match cluster.object_at(place)? {
        Object::Service(s) => s.annotations.get(CLB_IDLE).cloned(),
        Object::Ingress(i) => {
            list_value(i.annotations.get(ALB_ATTRIBUTES), IDLE_KEY).map(str::to_string)
        }
        Object::Params(p) => p.attribute(IDLE_KEY).map(|(_, v)| v.to_string()),
        Object::Namespace(_) => None,
    }
}

/// The field elbmedic changes at `place`, as it is in `cluster` (`None`: absent): what the
/// ledger keeps as the before value, and what a rollback puts back. The Service's or the
/// Ingress's annotation as written; for an IngressClassParams, its whole attribute list as JSON.
pub fn field_before(place: &Place, cluster: &Kubernetes) -> Option<String> {
    match cluster.object_at(place)? {
        Object::Service(s) => s.annotations.get(CLB_IDLE).cloned(),
        Object::Ingress(i) => i.annotations.get(ALB_ATTRIBUTES).cloned(),
        Object::Params(p) => serde_json::to_string(&p.load_balancer_attributes).ok(),
        Object::Namespace(n) => n.labels.get(READINESS_GATE_LABEL).cloned(),
    }
}

/// The field elbmedic changes at `place`, in the object as the API server returns it (JSON),
/// in the same form as [`field_before`]: to tell whether it changed since it was read.
pub fn field_in(place: &Place, object: &Value) -> Option<String> {
    let annotation = |key: &str| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match place {
        Place::Service { .. } => annotation(CLB_IDLE),
        Place::Ingress { .. } => annotation(ALB_ATTRIBUTES),
        Place::IngressClassParams { .. } => {
            let list = object.pointer("/spec/loadBalancerAttributes")?;
            let list: Vec<crate::kubernetes::Attribute> =
                serde_json::from_value(list.clone()).ok()?;
            serde_json::to_string(&list).ok()
        }
        Place::Namespace { .. } => object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(READINESS_GATE_LABEL))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// The server-side apply body of a change in the cluster, computed from the object as read
/// in `cluster`; `None` for an AWS action or an object that was not read.
pub fn body_for(action: &crate::action::Action, cluster: &Kubernetes) -> Option<Value> {
    use crate::action::Action;
    match action {
        Action::KeepIdleTimeout { place, seconds, .. } => {
            idle_timeout_body(place, cluster, *seconds)
        }
        Action::EnableReadinessGates { place, .. } => match cluster.object_at(place)? {
            Object::Namespace(n) => Some(readiness_gate_body(&n.name)),
            _ => None,
        },
        _ => None,
    }
}

/// The field a change in the cluster leaves, given the field `before` it: what elbmedic's
/// body for that object would set. `None` when the action has no such field. Undo checks the
/// ledger's record against it, so a record cannot name a value elbmedic never sets.
pub fn expected_after(action: &crate::action::Action, before: Option<&str>) -> Option<String> {
    use crate::action::Action;
    use crate::kubernetes::Attribute;
    match action {
        Action::KeepIdleTimeout { place, seconds, .. } => match place {
            Place::Service { .. } => Some(seconds.to_string()),
            Place::Ingress { .. } => Some(rewrite_list(
                before.unwrap_or_default(),
                IDLE_KEY,
                &seconds.to_string(),
            )),
            Place::IngressClassParams { .. } => {
                let mut list: Vec<Attribute> = match before {
                    Some(text) => serde_json::from_str(text).ok()?,
                    None => Vec::new(),
                };
                list.retain(|a| a.key != IDLE_KEY);
                list.push(Attribute {
                    key: IDLE_KEY.into(),
                    value: seconds.to_string(),
                });
                serde_json::to_string(&list).ok()
            }
            Place::Namespace { .. } => None,
        },
        Action::EnableReadinessGates {
            place: Place::Namespace { .. },
            ..
        } => Some("enabled".into()),
        _ => None,
    }
}

/// What a change in the cluster leaves, for the outcome's "after".
pub fn after_text(action: &crate::action::Action) -> String {
    use crate::action::Action;
    match action {
        Action::KeepIdleTimeout { place, seconds, .. } => {
            format!("idle timeout {seconds} s kept on {}", place.describe())
        }
        Action::EnableReadinessGates { place, .. } => {
            format!("{READINESS_GATE_LABEL}=enabled on {}", place.describe())
        }
        other => other.describe(),
    }
}

/// The server-side apply body that keeps `seconds` at `place`, from the object as read in
/// `cluster`: only the field elbmedic sets (for an IngressClassParams the whole attribute
/// list, which the CRD holds as one atomic field). `None` when the object was not read.
pub fn idle_timeout_body(place: &Place, cluster: &Kubernetes, seconds: u32) -> Option<Value> {
    let value = seconds.to_string();
    match cluster.object_at(place)? {
        Object::Service(_) => Some(annotation_body(place, CLB_IDLE, &value)),
        Object::Ingress(ingress) => {
            let current = ingress
                .annotations
                .get(ALB_ATTRIBUTES)
                .map_or("", String::as_str);
            Some(annotation_body(
                place,
                ALB_ATTRIBUTES,
                &rewrite_list(current, IDLE_KEY, &value),
            ))
        }
        Object::Params(params) => {
            let mut list: Vec<Value> = params
                .load_balancer_attributes
                .iter()
                .filter(|a| a.key != IDLE_KEY)
                .map(|a| json!({"key": a.key, "value": a.value}))
                .collect();
            list.push(json!({"key": IDLE_KEY, "value": value}));
            let (api_version, kind, _) = place.api();
            Some(json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": params.name},
                "spec": {"loadBalancerAttributes": list},
            }))
        }
        Object::Namespace(_) => None,
    }
}

/// The body that sets one annotation, and nothing else.
fn annotation_body(place: &Place, key: &str, value: &str) -> Value {
    let (api_version, kind, _) = place.api();
    let mut metadata = json!({"name": place.name(), "annotations": {key: value}});
    if let Some(namespace) = place.namespace() {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
}

/// The body that labels a namespace for readiness-gate injection.
pub fn readiness_gate_body(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {READINESS_GATE_LABEL: "enabled"}},
    })
}

/// The body that gives up every field elbmedic applied to an object: the rollback, since
/// fields only elbmedic owns are then removed, and ones others own too stay.
pub fn release_body(place: &Place) -> Value {
    let (api_version, kind, _) = place.api();
    let mut metadata = json!({"name": place.name()});
    if let Some(namespace) = place.namespace() {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
}

/// The body that puts the field elbmedic changed at `place` back as the ledger keeps it
/// ([`field_before`]: `None` when it was absent): the value as it was, or, for an absent field,
/// the release of elbmedic's fields, which removes what only elbmedic owns. `None` when a kept
/// value cannot be a body (an IngressClassParams list that is not a JSON list of entries).
pub fn restore_body(place: &Place, before: Option<&str>) -> Option<Value> {
    let Some(before) = before else {
        return Some(release_body(place));
    };
    match place {
        Place::Service { .. } => Some(annotation_body(place, CLB_IDLE, before)),
        Place::Ingress { .. } => Some(annotation_body(place, ALB_ATTRIBUTES, before)),
        Place::Namespace { name } => Some(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {READINESS_GATE_LABEL: before}},
        })),
        Place::IngressClassParams { name } => {
            let list: Vec<crate::kubernetes::Attribute> = serde_json::from_str(before).ok()?;
            let (api_version, kind, _) = place.api();
            Some(json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": name},
                "spec": {"loadBalancerAttributes": list},
            }))
        }
    }
}

/// Whether the Ingress group annotation, or the group an IngressClassParams declares, would
/// be changed by a body: never (a body that did would move Ingresses between load
/// balancers). A guard against a bug, checked before every apply.
pub fn touches_grouping(body: &Value) -> bool {
    body.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(GROUP_ANNOTATION))
        || body.pointer("/spec/group").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_put_back_as_kept_and_an_absent_one_is_released() {
        let service = Place::Service {
            namespace: "shop".into(),
            name: "web".into(),
        };
        assert_eq!(restore_body(&service, None), Some(release_body(&service)));
        let hostile = "60,$(reboot)";
        let body = restore_body(&service, Some(hostile)).unwrap();
        assert_eq!(body["metadata"]["annotations"][CLB_IDLE], hostile);
        assert_eq!(body["metadata"]["namespace"], "shop");
        let params = Place::IngressClassParams { name: "web".into() };
        let list = r#"[{"key":"idle_timeout.timeout_seconds","value":"60"}]"#;
        let body = restore_body(&params, Some(list)).unwrap();
        assert_eq!(
            body["spec"]["loadBalancerAttributes"][0]["value"], "60",
            "{body}"
        );
        // A kept list that is not a list of entries is never made into a body.
        assert_eq!(
            restore_body(&params, Some(r#"{"spec":{"group":{}}}"#)),
            None
        );
        assert_eq!(restore_body(&params, Some("not json")), None);
    }

    #[test]
    fn only_the_key_changes_and_every_other_entry_stays_as_written() {
        assert_eq!(
            rewrite_list(
                "deletion_protection.enabled=true, idle_timeout.timeout_seconds=60,routing.http2.enabled=false",
                IDLE_KEY,
                "120"
            ),
            "deletion_protection.enabled=true,routing.http2.enabled=false,idle_timeout.timeout_seconds=120"
        );
        // A hostile entry is kept as one entry, never split into others.
        let hostile = "access_logs.s3.prefix=a b;c$(x),idle_timeout.timeout_seconds=1";
        assert_eq!(
            rewrite_list(hostile, IDLE_KEY, "120"),
            "access_logs.s3.prefix=a b;c$(x),idle_timeout.timeout_seconds=120"
        );
        assert_eq!(
            rewrite_list("", IDLE_KEY, "120"),
            "idle_timeout.timeout_seconds=120"
        );
        // Duplicates of the key become one entry.
        assert_eq!(
            rewrite_list(
                "idle_timeout.timeout_seconds=1,a=b,idle_timeout.timeout_seconds=2",
                IDLE_KEY,
                "9"
            ),
            "a=b,idle_timeout.timeout_seconds=9"
        );
        assert_eq!(
            list_value(
                Some(&"a=1, idle_timeout.timeout_seconds = 60".to_string()),
                IDLE_KEY
            ),
            Some("60")
        );
    }
}

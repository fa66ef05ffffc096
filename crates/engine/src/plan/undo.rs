//! `elbmedic undo PLAN_ID`: a plan's changes in the cluster put back from the ledger's
//! before values, under the guardrails that held for the change. Pure: what to undo comes
//! from the audit trail, whether it may be undone from the policy and the object as read just
//! now; the CLI's shell reads, locks and applies.
//!
//! An undo puts back only a field that is still exactly as elbmedic set it: one that someone
//! changed since is theirs now, and is left alone.
//!
//! Not for: the AWS half (its rollback command is in the outcome report).

use serde_json::Value;

use super::durable::{expected_after, field_in, restore_body};
use super::message::Mode;
use super::outcome::FieldChange;
use super::reconcile::AuditedChange;
use super::{namespace_refusal, Action, ActionKind, Place, Policy};

/// One change in the cluster, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    pub cluster: String,
    pub place: Place,
    /// The kind of the change undone: `ALLOWED_ACTIONS` must allow it, as for the change.
    pub kind: ActionKind,
    pub field: FieldChange,
}

/// A change in the cluster the ledger cannot undo, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotUndoable(pub String);

/// What to do about one change now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Apply this body: it puts the field back.
    Restore(Value),
    /// The field is already as it was.
    InPlace,
    /// Left alone, and why.
    Refused(String),
}

/// The changes in the cluster among a plan's audited changes: each with its field as it
/// was and as set. A change in the cluster recorded without them cannot be undone from the
/// ledger, and says so.
pub fn changes(audited: &[AuditedChange]) -> Vec<Result<Undo, NotUndoable>> {
    audited
        .iter()
        .filter_map(|change| {
            let action: Action = serde_json::from_str(&change.action_json).ok()?;
            let (cluster, place) = action.place()?;
            let (cluster, place) = (cluster.to_string(), place.clone());
            let kind = action.kind();
            Some(match &change.field {
                Some(field) if !is_elbmedics(&action, field) => Err(NotUndoable(format!(
                    "the ledger's record of a change to {} is not one elbmedic makes (a name that is not a Kubernetes name, or a value it never sets): nothing is put back from it",
                    place.describe()
                ))),
                Some(field) => Ok(Undo {
                    cluster,
                    place,
                    kind,
                    field: field.clone(),
                }),
                None => Err(NotUndoable(format!(
                    "{}: the ledger keeps no before value for it (recorded before undo existed); use the rollback command of its outcome report",
                    place.describe()
                ))),
            })
        })
        .collect()
}

/// Whether a record's change is one elbmedic makes: names that are Kubernetes names, and a
/// value after that elbmedic's body sets from the value before. A record altered to write
/// anything else, anywhere else, is refused.
fn is_elbmedics(action: &Action, field: &FieldChange) -> bool {
    use crate::kubernetes_name::{is_label, is_subdomain};
    let Some((cluster, place)) = action.place() else {
        return false;
    };
    let names = match place {
        Place::Namespace { name } => is_label(name),
        _ => is_subdomain(place.name()) && place.namespace().is_none_or(is_label),
    };
    names
        && !cluster.is_empty()
        && field.after.is_some()
        && expected_after(action, field.before.as_deref()) == field.after
}

/// Why an undo must not be applied under the operator's policy: the kill switch, or a
/// cluster, namespace or kind the policy does not allow a change to.
pub fn policy_refusal(undo: &Undo, policy: &Policy, mode: Mode) -> Option<String> {
    if mode == Mode::Off {
        return Some("REMEDIATION_MODE is off: undo changes nothing (the kill switch)".into());
    }
    if !policy.allowed_actions.contains(&undo.kind) {
        return Some(format!("{} is not in ALLOWED_ACTIONS", undo.kind.as_str()));
    }
    if let Some(allowed) = &policy.allowed_clusters {
        if !allowed.contains(&undo.cluster) {
            return Some(format!(
                "cluster {} is not in ALLOWED_CLUSTERS ({})",
                undo.cluster,
                allowed.join(", ")
            ));
        }
    }
    namespace_refusal(&undo.place, policy)
}

/// What to do about `undo` given the object as read now (`None`: it is gone).
pub fn verdict(undo: &Undo, object: Option<&Value>) -> Verdict {
    let Some(object) = object else {
        return Verdict::Refused(format!("{} no longer exists", undo.place.describe()));
    };
    let now = field_in(&undo.place, object);
    if now == undo.field.before {
        return Verdict::InPlace;
    }
    if now != undo.field.after {
        return Verdict::Refused(format!(
            "{} changed since elbmedic's change (now {}): that change is someone else's, and undo leaves it",
            undo.place.describe(),
            now.as_deref().map_or("absent".to_string(), |v| format!("{v:?}"))
        ));
    }
    match restore_body(&undo.place, undo.field.before.as_deref()) {
        Some(body) => Verdict::Restore(body),
        None => Verdict::Refused(format!(
            "the before value the ledger keeps for {} is not one elbmedic can put back",
            undo.place.describe()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::durable::CLB_IDLE;
    use serde_json::json;

    fn service() -> Place {
        Place::Service {
            namespace: "shop".into(),
            name: "orders".into(),
        }
    }

    fn undo(before: Option<&str>, after: Option<&str>) -> Undo {
        Undo {
            cluster: "prod".into(),
            place: service(),
            kind: ActionKind::KeepIdleTimeout,
            field: FieldChange {
                before: before.map(str::to_string),
                after: after.map(str::to_string),
            },
        }
    }

    fn object(value: Option<&str>) -> Value {
        let mut o = json!({"metadata": {"name": "orders", "namespace": "shop", "annotations": {"team": "a"}}});
        if let Some(value) = value {
            o["metadata"]["annotations"][CLB_IDLE] = json!(value);
        }
        o
    }

    #[test]
    fn only_a_field_still_as_elbmedic_set_it_is_put_back() {
        let change = undo(Some("60"), Some("120"));
        let Verdict::Restore(body) = verdict(&change, Some(&object(Some("120")))) else {
            panic!()
        };
        assert_eq!(body["metadata"]["annotations"][CLB_IDLE], "60");
        assert_eq!(
            verdict(&change, Some(&object(Some("60")))),
            Verdict::InPlace
        );
        // Someone changed it since: theirs now.
        assert!(matches!(
            verdict(&change, Some(&object(Some("240")))),
            Verdict::Refused(r) if r.contains("now \"240\"")
        ));
        assert!(matches!(verdict(&change, None), Verdict::Refused(_)));
        // Absent before: elbmedic's fields are released.
        let added = undo(None, Some("120"));
        let Verdict::Restore(body) = verdict(&added, Some(&object(Some("120")))) else {
            panic!()
        };
        assert_eq!(body["metadata"].get("annotations"), None);
    }

    #[test]
    fn the_kill_switch_and_the_policy_hold_for_undo() {
        let change = undo(Some("60"), Some("120"));
        let mut policy = Policy::default();
        assert!(policy_refusal(&change, &policy, Mode::Auto)
            .unwrap()
            .contains("ALLOWED_ACTIONS"));
        policy.allowed_actions.insert(ActionKind::KeepIdleTimeout);
        assert_eq!(policy_refusal(&change, &policy, Mode::Auto), None);
        assert!(policy_refusal(&change, &policy, Mode::Off)
            .unwrap()
            .contains("kill switch"));
        policy.allowed_clusters = Some(vec!["staging".into()]);
        assert!(policy_refusal(&change, &policy, Mode::Approve)
            .unwrap()
            .contains("ALLOWED_CLUSTERS"));
        policy.allowed_clusters = None;
        policy.allowed_namespaces = Some(vec!["web".into()]);
        assert!(policy_refusal(&change, &policy, Mode::Auto)
            .unwrap()
            .contains("ALLOWED_NAMESPACES"));
    }

    #[test]
    fn only_changes_in_the_cluster_are_undone_and_a_forged_record_is_not_one() {
        let keep = Action::KeepIdleTimeout {
            cluster: "prod".into(),
            place: service(),
            seconds: 120,
        };
        let audited = |action_json: String, field| AuditedChange {
            action_json,
            before: String::new(),
            after: String::new(),
            field,
        };
        let found = changes(&[
            audited(
                serde_json::to_string(&Action::RaiseIdleTimeout { from: 60, to: 120 }).unwrap(),
                None,
            ),
            audited("{\"action\":\"rm -rf /\"}".into(), None),
            audited(serde_json::to_string(&keep).unwrap(), None),
            audited(
                serde_json::to_string(&keep).unwrap(),
                Some(FieldChange {
                    before: None,
                    after: Some("120".into()),
                }),
            ),
        ]);
        assert_eq!(found.len(), 2);
        assert!(found[0].as_ref().unwrap_err().0.contains("no before value"));
        assert_eq!(found[1].as_ref().unwrap().cluster, "prod");
    }

    /// A ledger record altered to put anything back anywhere: each is refused before the
    /// cluster is reached.
    #[test]
    fn a_tampered_record_is_never_undone() {
        use crate::plan::durable::IDLE_KEY;
        let record = |action: &Action, before: Option<&str>, after: Option<&str>| AuditedChange {
            action_json: serde_json::to_string(action).unwrap(),
            before: String::new(),
            after: String::new(),
            field: Some(FieldChange {
                before: before.map(str::to_string),
                after: after.map(str::to_string),
            }),
        };
        let keep = |place: Place| Action::KeepIdleTimeout {
            cluster: "prod".into(),
            place,
            seconds: 120,
        };
        let ingress = |name: &str| Place::Ingress {
            namespace: "shop".into(),
            name: name.into(),
        };
        let genuine = record(
            &keep(ingress("web")),
            Some("a=b,idle_timeout.timeout_seconds=60"),
            Some(&format!("a=b,{IDLE_KEY}=120")),
        );
        let tampered = [
            // Another entry slipped into what is put back.
            record(
                &keep(ingress("web")),
                Some("access_logs.s3.bucket=attacker,idle_timeout.timeout_seconds=60"),
                Some(&format!("a=b,{IDLE_KEY}=120")),
            ),
            // A value after that elbmedic never sets (absent), so anything "restores".
            record(&keep(service()), Some("1"), None),
            // A name that would become a query string.
            record(
                &keep(ingress("web?force=true&")),
                None,
                Some(&format!("{IDLE_KEY}=120")),
            ),
            // A label value elbmedic never sets.
            record(
                &Action::EnableReadinessGates {
                    cluster: "prod".into(),
                    place: Place::Namespace {
                        name: "kube-system".into(),
                    },
                },
                None,
                Some("privileged"),
            ),
            // The label on something that is not a namespace.
            record(
                &Action::EnableReadinessGates {
                    cluster: "prod".into(),
                    place: service(),
                },
                None,
                Some("enabled"),
            ),
        ];
        assert!(changes(&[genuine])[0].is_ok());
        for (index, found) in changes(&tampered).iter().enumerate() {
            assert!(
                found
                    .as_ref()
                    .is_err_and(|e| e.0.contains("not one elbmedic makes")),
                "{index}: {found:?}"
            );
        }
    }
}

//! Remediation planning: from the actions the rules propose to a plan that respects the
//! operator's policy. Pure, like the rest of the engine: `remediate` (the AWS side) re-checks
//! every action against freshly gathered state before it applies anything.
//!
//! Not for: applying. Not for: deciding causes (the rules propose the actions with the
//! evidence that justifies them).

pub mod config;
pub mod durable;
pub mod guardrails;
pub mod message;
pub mod outcome;
pub mod proposal;
pub mod reconcile;
pub mod review;
pub mod undo;
pub mod watch;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use crate::action::{Action, ActionKind, NaclActionKind, Place};
use crate::alarm::LbKind;
use crate::finding::Finding;
use crate::snapshot::Snapshot;

/// What the operator allows (**contract**: `MAX_IDLE_TIMEOUT`, `MAX_NLB_IDLE_TIMEOUT`, `ALLOWED_ACTIONS`,
/// `OVERRIDE_EXPLICIT_DENY`, `ALLOWED_CLUSTERS`, `ALLOWED_NAMESPACES`, `OVERRIDE_GITOPS`,
/// `FORCE_CONFLICTS`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_idle_timeout: u32,
    /// The cap on a raised NLB listener idle timeout: an NLB starts at 350 s, above the
    /// HTTP cap, and AWS allows up to 6000 s.
    pub max_nlb_idle_timeout: u32,
    pub allowed_actions: BTreeSet<ActionKind>,
    pub override_explicit_deny: bool,
    /// `None`: any cluster. Otherwise the LB's tags must name one of these.
    pub allowed_clusters: Option<Vec<String>>,
    /// `None`: any namespace. Otherwise a change in the cluster must be to an object of one
    /// of these; a cluster-scoped object (an IngressClassParams) then needs `*` in the list.
    pub allowed_namespaces: Option<Vec<String>>,
    /// Change an object that Argo CD, Flux or Helm re-applies anyway (logged, and said in the
    /// report): the change lasts only until their next sync.
    pub override_gitops: bool,
    /// Take a field over from another field manager on a server-side apply conflict.
    pub force_conflicts: bool,
}

/// `MAX_NLB_IDLE_TIMEOUT` when unset: 30 minutes, past the idle gaps of most pooled and
/// device connections, and well inside AWS's 6000 s.
pub const DEFAULT_MAX_NLB_IDLE_TIMEOUT: u32 = 1800;

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_idle_timeout: 300,
            max_nlb_idle_timeout: DEFAULT_MAX_NLB_IDLE_TIMEOUT,
            allowed_actions: ActionKind::DEFAULT.into_iter().collect(),
            override_explicit_deny: false,
            allowed_clusters: None,
            allowed_namespaces: None,
            override_gitops: false,
            force_conflicts: false,
        }
    }
}

/// An action left out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub action: Action,
    pub reason: String,
}

/// The load balancer a plan is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTarget {
    pub kind: LbKind,
    pub name: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub region: String,
    pub vpc_id: String,
    /// The account the load balancer is in (the alarm's); `None` in plans made before the
    /// organization deployment, which are the deployment's own account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl PlanTarget {
    /// The load balancer of `snapshot`, where it was found.
    pub fn of(snapshot: &Snapshot) -> Self {
        let lb = &snapshot.load_balancer;
        Self {
            kind: lb.kind,
            name: lb.name.clone(),
            id: lb.id.clone(),
            arn: lb.arn.clone(),
            region: snapshot.region.clone(),
            vpc_id: lb.vpc_id.clone(),
            account: snapshot.account_id.clone(),
        }
    }
}

/// Plans live an hour: after that the state they were made from is stale. `remediate`
/// refuses a plan claiming to live longer.
pub const DEFAULT_PLAN_LIFETIME: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `plan-` and the first 16 hex digits of the SHA-256 of the plan's content (see
    /// [`Plan::content_id`]): one id names exactly one content, so the ledger's replay and
    /// approval records cannot be claimed by other actions.
    pub id: String,
    pub load_balancer: PlanTarget,
    /// The alarm episode the plan answers: its state-change time (epoch seconds), else the
    /// time the plan was made. A retried alarm makes the same plan; a new episode a new one.
    pub episode: i64,
    /// Epoch seconds.
    pub created_at: i64,
    pub expires_at: i64,
    pub actions: Vec<Action>,
    pub refused: Vec<Refusal>,
}

impl Plan {
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// The id the plan's content gives: the digest of what it changes and where (its load
    /// balancer, account included, its episode and its actions), so a retried or redelivered
    /// alarm makes the same id and any other content another. `remediate` recomputes it and
    /// refuses a plan whose id is not its content's. The dates are checked on their own
    /// (`review`); refusals change nothing and are left out.
    pub fn content_id(&self) -> String {
        content_id(&self.load_balancer, self.episode, &self.actions)
    }

    /// Whether the id is the one the content gives.
    pub fn id_matches_content(&self) -> bool {
        self.id == self.content_id()
    }
}

fn content_id(target: &PlanTarget, episode: i64, actions: &[Action]) -> String {
    use sha2::{Digest, Sha256};
    let content = serde_json::json!({
        "load_balancer": target,
        "episode": episode,
        "actions": actions,
    });
    let digest = Sha256::digest(canonical(&content).as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("plan-{hex}")
}

/// `value` as JSON with every object's keys sorted: the same text whatever order serde_json
/// keeps keys in (its `preserve_order` feature is switched on by whichever crate of a build
/// asks for it, so `diagnose` and `remediate` built apart could otherwise disagree on an id).
fn canonical(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// The plan for a diagnosis's findings: every action they propose, minus what the policy
/// forbids. `alarm_changed_at` is the alarm's state-change time (epoch seconds), which names
/// the episode; without it, `now` stands in.
pub fn plan(
    snapshot: &Snapshot,
    findings: &[Finding],
    policy: &Policy,
    now: i64,
    alarm_changed_at: Option<i64>,
) -> Plan {
    let target = PlanTarget::of(snapshot);
    let mut actions = Vec::new();
    let mut refused = Vec::new();
    let proposed: Vec<&Action> = findings.iter().flat_map(|f| &f.remedies).collect();
    let durable = durable_halves(snapshot, &proposed);
    let cluster_refusal = cluster_refusal(snapshot, policy);
    for action in proposed.into_iter().chain(&durable) {
        let refusal = kind_refusal(snapshot, action)
            .or_else(|| cluster_refusal.clone())
            .or_else(|| policy_refusal(action, policy))
            .or_else(|| managed_refusal(snapshot, action, policy));
        match refusal {
            Some(reason) => refused.push(Refusal {
                action: action.clone(),
                reason,
            }),
            None if !actions.contains(action) => actions.push(action.clone()),
            None => {}
        }
    }
    let episode = alarm_changed_at.unwrap_or(now);
    Plan {
        id: content_id(&target, episode, &actions),
        load_balancer: target,
        episode,
        created_at: now,
        expires_at: now.saturating_add(DEFAULT_PLAN_LIFETIME),
        actions,
        refused,
    }
}

/// `ALLOWED_NAMESPACES`: the object's namespace must be listed; a cluster-scoped object
/// needs `*`, since a change there reaches every namespace's load balancers.
pub(crate) fn namespace_refusal(place: &Place, policy: &Policy) -> Option<String> {
    let allowed = policy.allowed_namespaces.as_ref()?;
    let listed = |name: &str| allowed.iter().any(|a| a == name);
    // A namespace's own label is a change in that namespace only.
    let namespace = match place {
        Place::Namespace { name } => Some(name.as_str()),
        _ => place.namespace(),
    };
    match namespace {
        Some(namespace) if listed(namespace) || listed("*") => None,
        Some(namespace) => Some(format!(
            "namespace {namespace} is not in ALLOWED_NAMESPACES ({})",
            allowed.join(", ")
        )),
        None if listed("*") => None,
        None => Some(format!(
            "{} is cluster-scoped: a change there reaches every load balancer of its class, so ALLOWED_NAMESPACES must hold * to allow it",
            place.describe()
        )),
    }
}

/// The durable half of each idle-timeout raise, when the snapshot holds the cluster: the
/// timeout kept where the controller reads it, so the raise is not written back. Where no
/// single place is right, none is proposed (the finding's durable fix says why).
fn durable_halves(snapshot: &Snapshot, proposed: &[&Action]) -> Vec<Action> {
    let (Some(cluster), Some(_)) = (snapshot.cluster_name(), snapshot.kubernetes.as_ref()) else {
        return Vec::new();
    };
    let owner = crate::context::Owner::from_tags(snapshot);
    proposed
        .iter()
        .filter_map(|action| match action {
            Action::RaiseIdleTimeout { to, .. } => {
                let place = durable::idle_timeout_place(snapshot, &owner).ok()?;
                Some(Action::KeepIdleTimeout {
                    cluster: cluster.clone(),
                    place,
                    seconds: *to,
                })
            }
            _ => None,
        })
        .collect()
}

/// A change in the cluster to an object Argo CD, Flux or Helm re-applies is not planned
/// (unless `OVERRIDE_GITOPS`): the refusal says where to make it instead.
fn managed_refusal(snapshot: &Snapshot, action: &Action, policy: &Policy) -> Option<String> {
    let (_, place) = action.place()?;
    guardrails::gitops_refusal(snapshot.kubernetes.as_ref()?, place, policy)
}

/// Which actions fit which kind of load balancer: an NLB has no load-balancer idle timeout
/// (its TCP listeners each have one), and elbmedic keeps no NLB setting in the cluster yet
/// (the report gives the listener annotation). A forged plan mixing them up is refused.
pub(crate) fn kind_refusal(snapshot: &Snapshot, action: &Action) -> Option<String> {
    let network = snapshot.load_balancer.kind == LbKind::Network;
    match action {
        Action::RaiseIdleTimeout { .. } if network => Some(
            "a Network Load Balancer has no load-balancer idle timeout: each TCP listener has its own"
                .into(),
        ),
        Action::RaiseListenerIdleTimeout { .. } if !network => Some(
            "only a Network Load Balancer's listeners have an idle timeout of their own".into(),
        ),
        Action::KeepIdleTimeout { .. } if network => Some(
            "elbmedic does not keep an NLB listener's idle timeout in the cluster yet: the report gives the Service annotation"
                .into(),
        ),
        _ => None,
    }
}

/// `ALLOWED_CLUSTERS`: the LB's tags must name one of them.
fn cluster_refusal(snapshot: &Snapshot, policy: &Policy) -> Option<String> {
    let allowed = policy.allowed_clusters.as_ref()?;
    let cluster = snapshot.cluster_name();
    match cluster {
        Some(c) if allowed.iter().any(|a| a == &c) => None,
        Some(c) => Some(format!(
            "cluster {c} is not in ALLOWED_CLUSTERS ({})",
            allowed.join(", ")
        )),
        None => Some("the load balancer names no EKS cluster, and ALLOWED_CLUSTERS is set".into()),
    }
}

/// Why the policy refuses an action, if it does.
pub fn policy_refusal(action: &Action, policy: &Policy) -> Option<String> {
    if !policy.allowed_actions.contains(&action.kind()) {
        return Some(format!(
            "{} is not in ALLOWED_ACTIONS",
            action.kind().as_str()
        ));
    }
    match action {
        Action::RaiseListenerIdleTimeout { from, to, .. } => {
            if to <= from {
                Some(format!("{to} s does not raise the idle timeout from {from} s; elbmedic never lowers it"))
            } else if *to > policy.max_nlb_idle_timeout {
                Some(format!("{to} s is above MAX_NLB_IDLE_TIMEOUT ({} s)", policy.max_nlb_idle_timeout))
            } else {
                None
            }
        }
        Action::RaiseIdleTimeout { from, to } => {
            if to <= from {
                Some(format!("{to} s does not raise the idle timeout from {from} s; elbmedic never lowers it"))
            } else if *to > policy.max_idle_timeout {
                Some(format!("{to} s is above MAX_IDLE_TIMEOUT ({} s)", policy.max_idle_timeout))
            } else {
                None
            }
        }
        Action::AllowNaclEntry { in_front_of_deny: Some(deny), .. } if !policy.override_explicit_deny => Some(format!(
            "rule {deny} is an explicit deny someone wrote; elbmedic does not override it unless OVERRIDE_EXPLICIT_DENY=true"
        )),
        Action::AllowNaclEntry { .. } | Action::AllowSgIngress { .. } => None,
        Action::EnableReadinessGates { place, .. } => match place {
            Place::Namespace { .. } => namespace_refusal(place, policy),
            other => Some(format!("{} is not a namespace", other.describe())),
        },
        Action::KeepIdleTimeout { seconds, place, .. } => {
            if !(1..=policy.max_idle_timeout).contains(seconds) {
                Some(format!("{seconds} s is outside 1 s to MAX_IDLE_TIMEOUT ({} s)", policy.max_idle_timeout))
            } else {
                namespace_refusal(place, policy)
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The changes remediation can make, as data: what a finding proposes, a plan carries and
//! `remediate` applies. Apart from `plan` so that findings can carry them without the
//! planning logic (and without an import circle).

use serde::{Deserialize, Serialize};

use crate::snapshot::PortRange;

/// Kinds of action (**contract**: the names used by `ALLOWED_ACTIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    RaiseIdleTimeout,
    AllowNaclEphemeral,
    AllowNaclTargetPort,
    AllowSgTargetPort,
    /// The durable half in the cluster: the idle timeout kept where the controller reads it.
    KeepIdleTimeout,
    /// The namespace label that makes the controller inject readiness gates into new pods.
    EnableReadinessGates,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        Self::RaiseIdleTimeout,
        Self::AllowNaclEphemeral,
        Self::AllowNaclTargetPort,
        Self::AllowSgTargetPort,
        Self::KeepIdleTimeout,
        Self::EnableReadinessGates,
    ];

    /// What `ALLOWED_ACTIONS` allows when unset: the AWS side only. A change in the cluster is
    /// an opt-in of its own (it also needs the write group's access entry).
    pub const DEFAULT: [ActionKind; 4] = [
        Self::RaiseIdleTimeout,
        Self::AllowNaclEphemeral,
        Self::AllowNaclTargetPort,
        Self::AllowSgTargetPort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RaiseIdleTimeout => "raise-idle-timeout",
            Self::AllowNaclEphemeral => "allow-nacl-ephemeral",
            Self::AllowNaclTargetPort => "allow-nacl-target-port",
            Self::AllowSgTargetPort => "allow-sg-target-port",
            Self::KeepIdleTimeout => "keep-idle-timeout",
            Self::EnableReadinessGates => "enable-readiness-gates",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text.trim())
    }
}

/// One change to make, fully specified, so that applying it needs no further decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Raise the idle timeout from `from` to `to` seconds.
    RaiseIdleTimeout { from: u32, to: u32 },
    /// Raise an NLB TCP listener's idle timeout (`tcp.idle_timeout.seconds`) from `from` to
    /// `to` seconds. An NLB has no load-balancer idle timeout: each TCP listener has its own.
    RaiseListenerIdleTimeout {
        listener_arn: String,
        port: u16,
        from: u32,
        to: u32,
    },
    /// A NACL allow entry for TCP `ports` to/from `cidr`.
    AllowNaclEntry {
        kind: NaclActionKind,
        nacl_id: String,
        egress: bool,
        rule_number: u16,
        cidr: String,
        ports: PortRange,
        /// The explicit deny entry this allow is numbered in front of, if any: someone wrote it,
        /// so overriding it needs `OVERRIDE_EXPLICIT_DENY=true`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_front_of_deny: Option<u16>,
    },
    /// An ingress rule on `group_id` for TCP `port` from the security group `source_group_id`.
    AllowSgIngress {
        group_id: String,
        source_group_id: String,
        port: u16,
        description: String,
    },
    /// Keep the idle timeout at `seconds` in cluster `cluster`, at `place`: the annotation or
    /// IngressClassParams entry the controller reads. What is applied is computed from the
    /// object as read when applying; the plan names only where and how much.
    KeepIdleTimeout {
        cluster: String,
        place: Place,
        seconds: u32,
    },
    /// Label the namespace at `place` so that the load balancer controller injects its
    /// readiness gates into new pods: a rollout then waits until each new pod is healthy in
    /// the target group. Running pods are not touched.
    EnableReadinessGates { cluster: String, place: Place },
}

/// An object of the cluster where elbmedic may keep a setting: exactly the kinds its write
/// group may patch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Place {
    Ingress { namespace: String, name: String },
    Service { namespace: String, name: String },
    IngressClassParams { name: String },
    Namespace { name: String },
}

impl Place {
    /// `(apiVersion, kind, kubectl's resource word)`.
    pub fn api(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Ingress { .. } => ("networking.k8s.io/v1", "Ingress", "ingress"),
            Self::Service { .. } => ("v1", "Service", "service"),
            Self::IngressClassParams { .. } => (
                "elbv2.k8s.aws/v1beta1",
                "IngressClassParams",
                "ingressclassparams",
            ),
            Self::Namespace { .. } => ("v1", "Namespace", "namespace"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Ingress { name, .. }
            | Self::Service { name, .. }
            | Self::IngressClassParams { name }
            | Self::Namespace { name } => name,
        }
    }

    /// Its namespace; `None` for the cluster-scoped kinds.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Ingress { namespace, .. } | Self::Service { namespace, .. } => Some(namespace),
            Self::IngressClassParams { .. } | Self::Namespace { .. } => None,
        }
    }

    /// `Ingress shop/web`, `IngressClassParams alb`.
    pub fn describe(&self) -> String {
        let (_, kind, _) = self.api();
        match self.namespace() {
            Some(namespace) => format!("{kind} {namespace}/{}", self.name()),
            None => format!("{kind} {}", self.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NaclActionKind {
    /// Replies on the nodes' ephemeral ports 1024-65535.
    Ephemeral,
    /// Requests and health checks on the target port.
    TargetPort,
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::RaiseIdleTimeout { .. } | Self::RaiseListenerIdleTimeout { .. } => {
                ActionKind::RaiseIdleTimeout
            }
            Self::AllowNaclEntry {
                kind: NaclActionKind::Ephemeral,
                ..
            } => ActionKind::AllowNaclEphemeral,
            Self::AllowNaclEntry {
                kind: NaclActionKind::TargetPort,
                ..
            } => ActionKind::AllowNaclTargetPort,
            Self::AllowSgIngress { .. } => ActionKind::AllowSgTargetPort,
            Self::KeepIdleTimeout { .. } => ActionKind::KeepIdleTimeout,
            Self::EnableReadinessGates { .. } => ActionKind::EnableReadinessGates,
        }
    }

    /// The object of the cluster the action changes, if it is a change in the cluster.
    pub fn place(&self) -> Option<(&str, &Place)> {
        match self {
            Self::KeepIdleTimeout { cluster, place, .. }
            | Self::EnableReadinessGates { cluster, place } => Some((cluster, place)),
            _ => None,
        }
    }

    /// One line for reports and logs.
    pub fn describe(&self) -> String {
        match self {
            Self::RaiseIdleTimeout { from, to } => {
                format!("raise the idle timeout from {from} s to {to} s")
            }
            Self::RaiseListenerIdleTimeout { port, from, to, .. } => {
                format!("raise the idle timeout of TCP listener {port} from {from} s to {to} s")
            }
            Self::AllowNaclEntry {
                nacl_id,
                egress,
                rule_number,
                cidr,
                ports,
                ..
            } => format!(
                "add {} entry {rule_number} to {nacl_id}: allow TCP {ports} {} {cidr}",
                if *egress { "egress" } else { "ingress" },
                if *egress { "to" } else { "from" }
            ),
            Self::AllowSgIngress {
                group_id,
                source_group_id,
                port,
                ..
            } => {
                format!("allow TCP {port} into {group_id} from {source_group_id}")
            }
            Self::KeepIdleTimeout {
                cluster,
                place,
                seconds,
            } => format!(
                "keep the idle timeout at {seconds} s in {} of cluster {cluster}",
                place.describe()
            ),
            Self::EnableReadinessGates { cluster, place } => format!(
                "turn on pod readiness gates in {} of cluster {cluster} (new pods only)",
                place.describe()
            ),
        }
    }
}

//! What a rule produces: a finding with a stable code, its evidence, and the fix.
//! The codes, severities and JSON field names are a public contract (see docs/contracts.md).

use serde::Serialize;

use crate::shell::Script;

use crate::netcheck::{Direction, Leg, NaclRuleRef};
use crate::snapshot::PortRange;

/// Stable finding codes (**contract**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    IdleTimeoutExceeded,
    NaclBlocksEphemeralPorts,
    NaclBlocksTargetPort,
    SgBlocksTargetPort,
    TargetsUnhealthy,
    StaleTargets,
    BackendClosesConnections,
    TargetsRefuseConnections,
    TargetsChurning,
    RecentChange,
    ZoneConcentrated,
    NoRegisteredTargets,
    TargetTlsFailing,
    ProtocolVersionMismatch,
    CapacityExceeded,
    ControllerCannotReconcile,
    NlbIdleTimeoutResets,
    ClientIpNotAdmitted,
    NlbSgBlocksClients,
    PortAllocationExhausted,
    CheckIncomplete,
}

impl FindingCode {
    pub const ALL: [FindingCode; 21] = [
        Self::IdleTimeoutExceeded,
        Self::NaclBlocksEphemeralPorts,
        Self::NaclBlocksTargetPort,
        Self::SgBlocksTargetPort,
        Self::TargetsUnhealthy,
        Self::StaleTargets,
        Self::BackendClosesConnections,
        Self::TargetsRefuseConnections,
        Self::TargetsChurning,
        Self::RecentChange,
        Self::ZoneConcentrated,
        Self::NoRegisteredTargets,
        Self::TargetTlsFailing,
        Self::ProtocolVersionMismatch,
        Self::CapacityExceeded,
        Self::ControllerCannotReconcile,
        Self::NlbIdleTimeoutResets,
        Self::ClientIpNotAdmitted,
        Self::NlbSgBlocksClients,
        Self::PortAllocationExhausted,
        Self::CheckIncomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdleTimeoutExceeded => "idle-timeout-exceeded",
            Self::NaclBlocksEphemeralPorts => "nacl-blocks-ephemeral-ports",
            Self::NaclBlocksTargetPort => "nacl-blocks-target-port",
            Self::SgBlocksTargetPort => "sg-blocks-target-port",
            Self::TargetsUnhealthy => "targets-unhealthy",
            Self::StaleTargets => "stale-targets",
            Self::BackendClosesConnections => "backend-closes-connections",
            Self::TargetsRefuseConnections => "targets-refuse-connections",
            Self::TargetsChurning => "targets-churning",
            Self::RecentChange => "recent-change",
            Self::ZoneConcentrated => "zone-concentrated",
            Self::NoRegisteredTargets => "no-registered-targets",
            Self::TargetTlsFailing => "target-tls-failing",
            Self::ProtocolVersionMismatch => "protocol-version-mismatch",
            Self::CapacityExceeded => "capacity-exceeded",
            Self::ControllerCannotReconcile => "controller-cannot-reconcile",
            Self::NlbIdleTimeoutResets => "nlb-idle-timeout-resets",
            Self::ClientIpNotAdmitted => "client-ip-not-admitted",
            Self::NlbSgBlocksClients => "nlb-sg-blocks-clients",
            Self::PortAllocationExhausted => "port-allocation-exhausted",
            Self::CheckIncomplete => "check-incomplete",
        }
    }

    /// A cause explains 5xx; `check-incomplete` only says what could not be concluded.
    pub fn is_cause(self) -> bool {
        self != Self::CheckIncomplete
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
        }
    }
}

/// How sure a finding is, when the metrics cannot show the cause directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// The evidence shows the cause itself.
    Confirmed,
    /// The evidence fits this cause and rules out the usual alternatives.
    Likely,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Likely => "likely",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// Why the confidence is what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_reason: Option<String>,
    /// One line naming the cause and the resource.
    pub title: String,
    /// What happens and why, in prose.
    pub explanation: String,
    pub evidence: Vec<Evidence>,
    pub fix: Fix,
    /// Ids of the resources concerned (NACL, SG, targets, ...).
    pub resources: Vec<String>,
    /// The changes that would fix it, fully specified, for remediation to plan from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remedies: Vec<crate::action::Action>,
}

/// One observed fact that supports a finding. `summary` is the human sentence; the other
/// fields are the same fact for machines.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    Metric {
        metric: String,
        statistic: String,
        period_seconds: Option<u32>,
        values: Vec<f64>,
        summary: String,
    },
    NaclRule {
        nacl_id: String,
        subnet_id: String,
        direction: Direction,
        rule: NaclRuleRef,
        leg: Leg,
        ports: PortRange,
        /// Addresses on the far side whose traffic is dropped.
        peer_cidrs: Vec<String>,
        summary: String,
    },
    SecurityGroup {
        group_ids: Vec<String>,
        direction: Direction,
        port: u16,
        peer_groups: Vec<String>,
        summary: String,
    },
    TargetHealth {
        target: String,
        port: u16,
        state: String,
        reason: Option<String>,
        description: Option<String>,
        summary: String,
    },
    Setting {
        name: String,
        value: String,
        summary: String,
    },
    Observation {
        summary: String,
    },
}

impl Evidence {
    pub fn summary(&self) -> &str {
        match self {
            Self::Metric { summary, .. }
            | Self::NaclRule { summary, .. }
            | Self::SecurityGroup { summary, .. }
            | Self::TargetHealth { summary, .. }
            | Self::Setting { summary, .. }
            | Self::Observation { summary } => summary,
        }
    }

    pub fn observation(summary: impl Into<String>) -> Self {
        Self::Observation {
            summary: summary.into(),
        }
    }

    pub fn setting(name: &str, value: impl std::fmt::Display, summary: impl Into<String>) -> Self {
        Self::Setting {
            name: name.into(),
            value: value.to_string(),
            summary: summary.into(),
        }
    }
}

/// How to fix it: the exact commands, then what makes the fix survive the controllers.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fix {
    pub summary: String,
    pub commands: Vec<Command>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable: Option<DurableFix>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Command {
    pub description: String,
    /// Command lines ready to paste, built from argument vectors (see [`crate::shell`]).
    pub command: Script,
}

impl Command {
    pub fn new(description: impl Into<String>, command: Script) -> Self {
        Self {
            description: description.into(),
            command,
        }
    }
}

/// The Kubernetes side of a fix: without it a controller puts the old state back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurableFix {
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Script>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    pub warning: String,
}

//! The diagnosis rules: each a small unit with its finding code, what it detects and why, and
//! its own tests. [`RULES`] registers them all, in the order their findings are reported
//! when severities tie (root causes in the network first, symptoms after).

use serde::Serialize;

use crate::context::Context;
use crate::finding::{Finding, FindingCode};

pub mod access_logs;
mod backend_closes_connections;
mod capacity;
mod check_incomplete;
mod churning_workload;
mod client_ip;
mod controller_cannot_reconcile;
mod empty_group_reasons;
mod idle_annotation;
pub use idle_annotation::{classes_unread, CLASSES_UNREAD};
mod idle_timeout;
mod nacl;
mod nlb_idle_timeout;
pub use nlb_idle_timeout::recommend_flow_idle_timeout;
#[cfg(test)]
mod nlb_attacks;
mod nlb_security_groups;
mod no_registered_targets;
mod port_allocation;
mod protocol_version;
pub mod recent_change;
mod refuse_connections;
mod security_groups;
mod stale_targets;
mod target_tls;
mod targets_churning;
mod unhealthy_targets;
pub mod zone_concentrated;

pub use idle_timeout::recommend_idle_timeout;

/// One line of the report's "what was checked" list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Ok,
    Problem,
    Incomplete,
    NotApplicable,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Problem => "problem",
            Self::Incomplete => "incomplete",
            Self::NotApplicable => "n/a",
        }
    }
}

impl Check {
    pub fn new(name: &str, status: CheckStatus, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// What one rule returns: its findings and the checks it ran.
#[derive(Debug, Default)]
pub struct RuleOutput {
    pub findings: Vec<Finding>,
    pub checked: Vec<Check>,
}

/// Why a rule built on HTTP stands aside on a Network Load Balancer.
pub(crate) const NOT_FOR_NLB: &str =
    "a Network Load Balancer passes TCP through and answers no HTTP of its own: this check does not apply to it";

impl RuleOutput {
    /// A rule that stands aside on a Network Load Balancer.
    pub fn not_for_nlb(name: &str) -> Self {
        Self::only(Check::new(name, CheckStatus::NotApplicable, NOT_FOR_NLB))
    }

    /// A rule that stands aside, or found nothing: only its check.
    pub fn only(check: Check) -> Self {
        Self {
            findings: Vec::new(),
            checked: vec![check],
        }
    }
}

pub struct Rule {
    pub code: FindingCode,
    pub run: fn(&Context<'_>) -> RuleOutput,
}

/// A rule that reads the other rules' findings: it backs them with evidence, and may add a
/// finding of its own where it belongs (`code`; `None` when it only adds evidence).
pub struct PostRule {
    pub code: Option<FindingCode>,
    pub run: fn(&Context<'_>, &mut Vec<Finding>) -> PostOutput,
}

/// What a post-pass rule returns besides the findings it changed.
#[derive(Debug, Default)]
pub struct PostOutput {
    pub checked: Vec<Check>,
    /// Changes CloudTrail recorded that explain no finding, one line each.
    pub recent_changes: Vec<String>,
}

/// The post-pass rules, run in this order once every rule of [`RULES`] has: the 5xx per zone,
/// the access logs, then the CloudTrail changes (which may explain the findings before them).
pub const POST_RULES: &[PostRule] = &[
    PostRule {
        code: Some(FindingCode::ZoneConcentrated),
        run: zone_concentrated::post,
    },
    PostRule {
        code: None,
        run: access_logs::post,
    },
    PostRule {
        code: Some(FindingCode::RecentChange),
        run: recent_change::post,
    },
];

/// Every rule, in report order for equal severities.
pub const RULES: &[Rule] = &[
    Rule {
        code: FindingCode::ControllerCannotReconcile,
        run: controller_cannot_reconcile::check,
    },
    Rule {
        code: FindingCode::NaclBlocksTargetPort,
        run: nacl::blocks_target_port,
    },
    Rule {
        code: FindingCode::NaclBlocksEphemeralPorts,
        run: nacl::blocks_ephemeral_ports,
    },
    Rule {
        code: FindingCode::SgBlocksTargetPort,
        run: security_groups::check,
    },
    Rule {
        code: FindingCode::NlbSgBlocksClients,
        run: nlb_security_groups::check,
    },
    Rule {
        code: FindingCode::ClientIpNotAdmitted,
        run: client_ip::check,
    },
    Rule {
        code: FindingCode::StaleTargets,
        run: stale_targets::check,
    },
    Rule {
        code: FindingCode::NoRegisteredTargets,
        run: no_registered_targets::check,
    },
    Rule {
        code: FindingCode::IdleTimeoutExceeded,
        run: idle_timeout::check,
    },
    Rule {
        code: FindingCode::NlbIdleTimeoutResets,
        run: nlb_idle_timeout::check,
    },
    Rule {
        code: FindingCode::PortAllocationExhausted,
        run: port_allocation::check,
    },
    Rule {
        code: FindingCode::TargetTlsFailing,
        run: target_tls::check,
    },
    Rule {
        code: FindingCode::ProtocolVersionMismatch,
        run: protocol_version::check,
    },
    Rule {
        code: FindingCode::BackendClosesConnections,
        run: backend_closes_connections::check,
    },
    Rule {
        code: FindingCode::TargetsChurning,
        run: targets_churning::check,
    },
    Rule {
        code: FindingCode::TargetsRefuseConnections,
        run: refuse_connections::check,
    },
    Rule {
        code: FindingCode::CapacityExceeded,
        run: capacity::check,
    },
    Rule {
        code: FindingCode::TargetsUnhealthy,
        run: unhealthy_targets::check,
    },
    Rule {
        code: FindingCode::CheckIncomplete,
        run: check_incomplete::check,
    },
];

/// Lists at most `limit` items, then how many more.
pub(crate) fn list_some(items: &[String], limit: usize) -> String {
    if items.len() <= limit {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..limit].join(", "),
            items.len() - limit
        )
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::alarm::{parse_input, Alarm, Intake};
    use crate::context::Context;
    use crate::finding::{Finding, FindingCode};
    use crate::snapshot::Snapshot;

    /// The alarm of a committed scenario.
    pub fn scenario_alarm(name: &str) -> Alarm {
        let event = crate::scenarios::find(name).unwrap().event;
        match parse_input(event.as_bytes()).unwrap().remove(0).unwrap() {
            Intake::Diagnose { alarm, .. } => alarm,
            other => panic!("{other:?}"),
        }
    }

    /// Runs one rule on a snapshot with the given scenario's alarm.
    pub fn run(
        rule: fn(&Context<'_>) -> super::RuleOutput,
        alarm_of: &str,
        snapshot: &Snapshot,
    ) -> super::RuleOutput {
        let alarm = scenario_alarm(alarm_of);
        let ctx = Context::new(&alarm, snapshot);
        rule(&ctx)
    }

    pub fn codes(findings: &[Finding]) -> Vec<FindingCode> {
        findings.iter().map(|f| f.code).collect()
    }
}

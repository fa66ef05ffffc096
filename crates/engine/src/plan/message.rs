//! The remediation mode and the plan message `diagnose` (or an approving human) publishes to
//! the remediation topic for `remediate` to consume.

use serde::{Deserialize, Serialize};

use super::Plan;
use crate::alarm::{Alarm, LbRef};
use crate::shell::Script;

/// How far remediation goes (**contract**: `REMEDIATION_MODE`, `--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Report only.
    #[default]
    Off,
    /// Plan and validate, report what would change, change nothing.
    DryRun,
    /// The report carries the plan and the command that approves it.
    Approve,
    /// Apply right away.
    Auto,
}

/// A remediation mode name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not one of: {}", Mode::NAMES)]
pub struct UnknownMode;

impl std::str::FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(text: &str) -> Result<Self, UnknownMode> {
        Mode::parse(text).ok_or(UnknownMode)
    }
}

impl Mode {
    pub const NAMES: &'static str = "off, dry-run, approve, auto";

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "off" => Some(Self::Off),
            "dry-run" | "dryrun" => Some(Self::DryRun),
            "approve" => Some(Self::Approve),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::DryRun => "dry-run",
            Self::Approve => "approve",
            Self::Auto => "auto",
        }
    }
}

/// What the publisher of a plan asks of `remediate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    /// Validate only (from `diagnose` in dry-run).
    DryRun,
    /// Apply (from `diagnose` in auto).
    Apply,
    /// Apply, approved by a human (the command in an approve-mode report).
    Approved,
}

/// An approval by plan id, `approve:plan-…` (or with a space): what a chat button or a person
/// publishes to the remediation topic. The plan itself is not in it: `remediate` reads the one
/// `diagnose` stored in the ledger when it proposed it, so an approval cannot carry a forged plan.
pub fn approval_of(text: &str) -> Option<&str> {
    let rest = text.trim().strip_prefix("approve")?;
    let id = rest.strip_prefix([':', ' '])?.trim();
    is_plan_id(id).then_some(id)
}

/// `plan-` and 16 lowercase hex digits, as [`super::plan`] names plans.
pub fn is_plan_id(id: &str) -> bool {
    id.len() == 21
        && id.starts_with("plan-")
        && id[5..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Tags the message so `remediate` can tell a plan from anything else on its topic.
pub const PLAN_MESSAGE_KIND: &str = "elbmedic-remediation-plan";

/// The message on the remediation topic. The alarm travels with the plan so that the outcome
/// report speaks of the same alarm; the actions are re-checked against fresh state anyway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanMessage {
    pub kind: String,
    pub request: Request,
    pub alarm: Alarm,
    pub alarmed: LbRef,
    pub plan: Plan,
}

/// Why a message from the remediation topic is not a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanParseError {
    #[error("the message is not an elbmedic remediation plan ({0}); publish the command from an approve-mode report unchanged")]
    NotAPlan(String),
    #[error("the message's kind is {0:?}, not {PLAN_MESSAGE_KIND:?}")]
    OtherKind(String),
}

impl PlanMessage {
    pub fn new(request: Request, alarm: &Alarm, alarmed: &LbRef, plan: &Plan) -> Self {
        Self {
            kind: PLAN_MESSAGE_KIND.into(),
            request,
            alarm: alarm.clone(),
            alarmed: alarmed.clone(),
            plan: plan.clone(),
        }
    }

    /// Parses a message from the remediation topic, naming what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, PlanParseError> {
        let message: Self =
            serde_json::from_str(text).map_err(|e| PlanParseError::NotAPlan(e.to_string()))?;
        if message.kind != PLAN_MESSAGE_KIND {
            return Err(PlanParseError::OtherKind(message.kind));
        }
        Ok(message)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The one command that approves this plan: it publishes it, marked approved, to the
    /// remediation topic.
    pub fn approve_command(&self, topic_arn: &str) -> Script {
        let approved = Self {
            request: Request::Approved,
            ..self.clone()
        };
        let region = crate::alarm::formats::topic_arn(topic_arn)
            .map_or(self.plan.load_balancer.region.as_str(), |t| t.region);
        Script::line(crate::argv![
            "aws",
            "sns",
            "publish",
            "--region",
            region,
            "--topic-arn",
            topic_arn,
            "--subject",
            format!("elbmedic approve {}", self.plan.id),
            "--message",
            approved.to_json()
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_names_one_plan_id_and_nothing_else() {
        let id = "plan-0123456789abcdef";
        for text in [
            "approve:plan-0123456789abcdef",
            "approve plan-0123456789abcdef",
            " approve:plan-0123456789abcdef\n",
        ] {
            assert_eq!(approval_of(text), Some(id), "{text:?}");
        }
        for text in [
            "approve:plan-0123456789ABCDEF",
            "approve:plan-0123456789abcde",
            "approve:plan-0123456789abcdef0",
            "approve:plan-0123456789abcdef; rm -rf /",
            "approve:../plan-0123456789abcdef",
            "approveplan-0123456789abcdef",
            "{\"kind\":\"elbmedic-remediation-plan\"}",
            "",
        ] {
            assert_eq!(approval_of(text), None, "{text:?}");
        }
    }
}

//! Remediation settings from the environment (**contract**: the variable names), shared by
//! `diagnose`, `remediate` and the CLI so they read them the same way. Every bad value is an
//! error naming the variable and what it accepts.

use std::collections::BTreeSet;

use super::message::Mode;
use super::{ActionKind, Policy};

/// One idle-timeout raise per LB per hour, unless `COOLDOWN` says otherwise.
pub const DEFAULT_COOLDOWN_SECONDS: i64 = 3600;

#[derive(Debug, Clone, PartialEq)]
pub struct RemediationConfig {
    /// `REMEDIATION_MODE`: off (default), dry-run, approve, auto.
    pub mode: Mode,
    pub policy: Policy,
    /// `COOLDOWN`: seconds (or `30m`, `1h`) between two idle-timeout raises of one LB.
    pub cooldown_seconds: i64,
    /// `REMEDIATION_TOPIC_ARN`: where plans go.
    pub topic_arn: Option<String>,
    /// `LEDGER_TABLE`: the DynamoDB ledger; without it, no lock, cooldown or audit.
    pub ledger_table: Option<String>,
}

fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text.as_str(), "s"),
    };
    let factor = match unit.trim() {
        "s" | "" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return None,
    };
    number.parse::<i64>().ok()?.checked_mul(factor)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" | "" => Some(false),
        _ => None,
    }
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Off, with the default policy: what an unset environment means.
impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            policy: Policy::default(),
            cooldown_seconds: DEFAULT_COOLDOWN_SECONDS,
            topic_arn: None,
            ledger_table: None,
        }
    }
}

/// A remediation setting that is not valid: each names its variable and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemediationConfigError {
    #[error("REMEDIATION_MODE {0:?} is not one of: {names}", names = Mode::NAMES)]
    Mode(String),
    #[error("MAX_IDLE_TIMEOUT {0:?} is not a number of seconds between 1 and 4000")]
    MaxIdleTimeout(String),
    #[error("MAX_NLB_IDLE_TIMEOUT {0:?} is not a number of seconds between 60 and 6000")]
    MaxNlbIdleTimeout(String),
    #[error("ALLOWED_ACTIONS names {0:?}; the actions are: {names}", names = action_names())]
    Action(String),
    #[error("OVERRIDE_EXPLICIT_DENY {0:?} is not true or false")]
    OverrideExplicitDeny(String),
    #[error("{0} {1:?} is not true or false")]
    Flag(&'static str, String),
    #[error("ALLOWED_NAMESPACES names {0:?}, which is not a namespace name (or *)")]
    Namespace(String),
    #[error("COOLDOWN {0:?} is not a duration such as 3600, 90m or 1h")]
    Cooldown(String),
    #[error(
        "REMEDIATION_TOPIC_ARN {0:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
    )]
    TopicArn(String),
}

fn action_names() -> String {
    let names: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
    names.join(", ")
}

impl RemediationConfig {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, RemediationConfigError> {
        use RemediationConfigError as Bad;
        let set = |key: &str| crate::variables::set(&get, key);
        let mode = match set("REMEDIATION_MODE") {
            None => Mode::Off,
            Some(text) => Mode::parse(&text).ok_or(Bad::Mode(text))?,
        };
        let mut policy = Policy::default();
        if let Some(text) = set("MAX_IDLE_TIMEOUT") {
            policy.max_idle_timeout = text
                .parse()
                .ok()
                .filter(|s| (1..=4000).contains(s))
                .ok_or(Bad::MaxIdleTimeout(text))?;
        }
        if let Some(text) = set("MAX_NLB_IDLE_TIMEOUT") {
            policy.max_nlb_idle_timeout = text
                .parse()
                .ok()
                .filter(|s| crate::snapshot::NLB_TCP_IDLE_TIMEOUT_RANGE.contains(s))
                .ok_or(Bad::MaxNlbIdleTimeout(text))?;
        }
        if let Some(text) = set("ALLOWED_ACTIONS") {
            let mut allowed = BTreeSet::new();
            for name in list(&text) {
                allowed.insert(ActionKind::parse(&name).ok_or(Bad::Action(name))?);
            }
            policy.allowed_actions = allowed;
        }
        if let Some(text) = set("OVERRIDE_EXPLICIT_DENY") {
            policy.override_explicit_deny =
                parse_bool(&text).ok_or(Bad::OverrideExplicitDeny(text))?;
        }
        if let Some(text) = set("ALLOWED_CLUSTERS") {
            policy.allowed_clusters = Some(list(&text));
        }
        if let Some(text) = set("ALLOWED_NAMESPACES") {
            let names = list(&text);
            if let Some(bad) = names
                .iter()
                .find(|n| *n != "*" && !crate::kubernetes_name::is_label(n))
            {
                return Err(Bad::Namespace(bad.clone()));
            }
            policy.allowed_namespaces = Some(names);
        }
        for (key, flag) in [
            ("OVERRIDE_GITOPS", &mut policy.override_gitops),
            ("FORCE_CONFLICTS", &mut policy.force_conflicts),
        ] {
            if let Some(text) = set(key) {
                *flag = parse_bool(&text).ok_or(Bad::Flag(key, text))?;
            }
        }
        let cooldown_seconds = match set("COOLDOWN") {
            None => DEFAULT_COOLDOWN_SECONDS,
            Some(text) => parse_duration(&text)
                .filter(|s| *s >= 0)
                .ok_or(Bad::Cooldown(text))?,
        };
        let topic_arn = set("REMEDIATION_TOPIC_ARN");
        if let Some(topic) = &topic_arn {
            if crate::alarm::formats::topic_arn(topic).is_none() {
                return Err(Bad::TopicArn(topic.clone()));
            }
        }
        Ok(Self {
            mode,
            policy,
            cooldown_seconds,
            topic_arn,
            ledger_table: set("LEDGER_TABLE"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<RemediationConfig, RemediationConfigError> {
        RemediationConfig::from_env(|key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_are_off_with_every_action_and_an_hour_of_cooldown() {
        let c = config(&[]).unwrap();
        assert_eq!(c, RemediationConfig::default());
        assert_eq!(c.mode, Mode::Off);
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.cooldown_seconds, 3600);
        assert_eq!((c.topic_arn, c.ledger_table), (None, None));
    }

    #[test]
    fn every_variable_is_read_and_bad_values_name_the_variable() {
        let c = config(&[
            ("REMEDIATION_MODE", "Auto"),
            ("MAX_IDLE_TIMEOUT", "120"),
            ("MAX_NLB_IDLE_TIMEOUT", "900"),
            (
                "ALLOWED_ACTIONS",
                "raise-idle-timeout, allow-sg-target-port",
            ),
            ("OVERRIDE_EXPLICIT_DENY", "true"),
            ("ALLOWED_CLUSTERS", "prod,staging"),
            ("ALLOWED_NAMESPACES", "shop, *"),
            ("OVERRIDE_GITOPS", "yes"),
            ("FORCE_CONFLICTS", "false"),
            ("COOLDOWN", "90m"),
            (
                "REMEDIATION_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:111122223333:plans",
            ),
            ("LEDGER_TABLE", "elbmedic-ledger"),
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Auto);
        assert_eq!(c.policy.max_idle_timeout, 120);
        assert_eq!(c.policy.max_nlb_idle_timeout, 900);
        assert_eq!(c.policy.allowed_actions.len(), 2);
        assert!(c.policy.override_explicit_deny);
        assert_eq!(
            c.policy.allowed_clusters,
            Some(vec!["prod".into(), "staging".into()])
        );
        assert_eq!(
            c.policy.allowed_namespaces,
            Some(vec!["shop".into(), "*".into()])
        );
        assert!(c.policy.override_gitops && !c.policy.force_conflicts);
        assert_eq!(c.cooldown_seconds, 5400);
        assert_eq!(c.ledger_table.as_deref(), Some("elbmedic-ledger"));
        for (key, value) in [
            ("REMEDIATION_MODE", "yolo"),
            ("MAX_IDLE_TIMEOUT", "5000"),
            ("MAX_NLB_IDLE_TIMEOUT", "30"),
            ("MAX_NLB_IDLE_TIMEOUT", "7000"),
            ("ALLOWED_ACTIONS", "delete-everything"),
            ("OVERRIDE_EXPLICIT_DENY", "maybe"),
            ("COOLDOWN", "1 fortnight"),
            ("REMEDIATION_TOPIC_ARN", "plans"),
            ("ALLOWED_NAMESPACES", "shop,--all"),
            ("OVERRIDE_GITOPS", "please"),
            ("FORCE_CONFLICTS", "1x"),
        ] {
            let error = config(&[(key, value)]).unwrap_err().to_string();
            assert!(error.starts_with(key), "{error}");
        }
    }
}

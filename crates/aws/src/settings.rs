//! The one configuration of elbmedic (**contract**: the variable names), read once at start
//! by each Lambda function and by the CLI, and validated with messages that name the variable
//! and what it accepts. What each of them requires differs only by [`Role`].

use std::time::Duration;

use elbmedic_engine::plan::config::{RemediationConfig, RemediationConfigError};
use elbmedic_engine::plan::message::Mode;
use elbmedic_engine::variables::set;

use crate::environment::process_env;
pub use crate::environment::sdk_variable;

/// Who reads the configuration: the functions need their topics; the CLI publishes only
/// when asked (`--publish`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Diagnose,
    Remediate,
    Cli,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `REPORT_TOPIC_ARN`: where reports go (required by the functions; the CLI's `--publish`).
    pub report_topic_arn: Option<String>,
    /// `CHAT_TOPIC_ARN`: a topic that Amazon Q Developer in chat applications maps to a Slack
    /// or Teams channel; each report goes there too, as a custom notification.
    pub chat_topic_arn: Option<String>,
    /// `REPORT_BUCKET`: the S3 bucket that receives each diagnosis as an HTML page, which the
    /// email and chat reports link to.
    pub report_bucket: Option<String>,
    /// `GATHER_DEADLINE_SECONDS` (default 20): the whole gather finishes within this; keep
    /// it below the function's timeout.
    pub gather_deadline: Duration,
    /// `MAX_COMPOSITE_CHILDREN` (default 5, 1-20): load balancers diagnosed, concurrently,
    /// for one composite alarm in one invocation; the rest are named in a notice.
    pub max_composite_children: usize,
    /// `REMEDIATION_MODE`, the guardrails, `COOLDOWN`, `REMEDIATION_TOPIC_ARN`, `LEDGER_TABLE`.
    pub remediation: RemediationConfig,
    /// How far the diagnosis looks up CloudTrail: the first pass; the CLI's `--follow-up`, all.
    pub change_lookups: crate::gather::ChangeLookups,
    /// `FOLLOW_UP_QUEUE_URL` and `FOLLOW_UP_DELAY`: where `diagnose` sends each diagnosed
    /// alarm for the follow-up pass, and how long it waits there. `None` is off.
    pub follow_up: Option<FollowUpQueue>,
    /// `ALLOWED_ACCOUNTS`, `MEMBER_ROLE_NAME`, `MEMBER_EXTERNAL_ID`: the other accounts this
    /// deployment serves, through a role it assumes in each.
    pub organization: Organization,
    /// `KUBERNETES_READS` (`on`, the default, or `off`): whether the diagnosis reads the
    /// cluster behind the load balancer; `KUBERNETES_API_URL` replaces every cluster's endpoint
    /// (tests only). `remediate` never reads it.
    pub cluster_reads: crate::gather::ClusterReads,
    /// How long `remediate` watches the controller's Events after a change in the cluster
    /// (`KUBERNETES_WATCH_SECONDS`, 0 to 60; 0: not watched).
    pub cluster_watch: Duration,
    /// `INCIDENT_QUIET_MINUTES` and `STORM_THRESHOLD`: how alarms group into incidents and
    /// storms (kept in `LEDGER_TABLE`; without it, every alarm is a full report).
    pub incidents: IncidentSettings,
    /// `ALARM_QUEUE_ARN`: the queue that hands alarms to `diagnose` as SQS records (SNS → SQS
    /// → Lambda, the buffer for bursts); records of any other queue are not read as alarms.
    pub alarm_queue: Option<QueueArn>,
}

/// How alarms group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncidentSettings {
    /// Minutes a load balancer stays OK before its incident closes; 0: no incidents.
    pub quiet_minutes: i64,
    /// More incidents than this opening in one VPC within 5 minutes are a storm; 0: no storms.
    pub storm_threshold: usize,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        Self {
            quiet_minutes: elbmedic_engine::incident::DEFAULT_QUIET_MINUTES,
            storm_threshold: elbmedic_engine::incident::storm::DEFAULT_THRESHOLD,
        }
    }
}

/// An SQS queue named by its ARN (`arn:PARTITION:sqs:REGION:ACCOUNT:NAME`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueArn {
    pub arn: String,
    pub account: String,
    pub name: String,
}

impl QueueArn {
    pub fn parse(arn: &str) -> Option<Self> {
        let parts: Vec<&str> = arn.split(':').collect();
        let ["arn", _, "sqs", region, account, name] = parts.as_slice() else {
            return None;
        };
        let valid = elbmedic_engine::alarm::formats::is_region_code(region)
            && is_account(account)
            && is_queue_name(name);
        valid.then(|| Self {
            arn: arn.to_string(),
            account: account.to_string(),
            name: name.to_string(),
        })
    }

    /// Whether an SQS record's `eventSourceARN` is this queue.
    pub fn is_source(&self, arn: &str) -> bool {
        names_queue(arn, &self.account, &self.name)
    }
}

/// The organization deployment: alarms of these accounts are read (and, by `remediate`,
/// changed) through `member_role_name` in their account. Empty: only the own account.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Organization {
    pub allowed_accounts: std::collections::BTreeSet<String>,
    /// The read role for `diagnose` and the CLI; the write role for `remediate`.
    pub member_role_name: Option<String>,
    pub external_id: Option<String>,
}

impl Organization {
    /// Whether alarms of `account` may be served through its member role.
    pub fn allows(&self, account: &str) -> bool {
        self.allowed_accounts.contains(account)
    }
}

/// The follow-up pass's delay queue.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpQueue {
    pub url: String,
    /// SQS delays a message at most 900 s.
    pub delay_seconds: i32,
    /// The queue's region, account and name, read from its URL.
    pub region: Option<String>,
    pub account: String,
    pub name: String,
}

/// CloudTrail delivers an event about 5 minutes after the call, with no guarantee: the
/// follow-up waits twice that by default.
pub const DEFAULT_FOLLOW_UP_DELAY: i32 = 600;

impl FollowUpQueue {
    /// Reads `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (or any host, as a VPC endpoint
    /// or a local SQS serves it): the account and name are the URL's last two segments.
    pub fn parse(url: &str, delay_seconds: i32) -> Option<Self> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let mut parts = rest.trim_end_matches('/').split('/');
        let host = parts.next()?;
        let (account, name) = (parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_account(account) || !is_queue_name(name) {
            return None;
        }
        let region = host
            .strip_prefix("sqs.")
            .and_then(|h| h.split('.').next())
            .filter(|r| elbmedic_engine::alarm::formats::is_region_code(r))
            .map(str::to_string);
        Some(Self {
            url: url.to_string(),
            delay_seconds,
            region,
            account: account.to_string(),
            name: name.to_string(),
        })
    }

    /// Whether an SQS record's `eventSourceARN` (`arn:aws:sqs:REGION:ACCOUNT:NAME`) is this queue.
    pub fn is_source(&self, arn: &str) -> bool {
        names_queue(arn, &self.account, &self.name)
    }
}

/// Whether an SQS record's `eventSourceARN` (`arn:PARTITION:sqs:REGION:ACCOUNT:NAME`) is the
/// queue `name` of `account`.
fn names_queue(arn: &str, account: &str, name: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    matches!(parts.as_slice(), ["arn", _, "sqs", _, a, n] if *a == account && *n == name)
}

/// Twelve digits.
fn is_account(account: &str) -> bool {
    account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
}

/// SQS's rule for a queue name: 1 to 80 letters, digits, hyphens, underscores (and the
/// `.fifo` suffix's dot).
fn is_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "REPORT_TOPIC_ARN is not set: set it to the ARN of the SNS topic that receives the reports"
    )]
    MissingTopic,
    #[error("REPORT_TOPIC_ARN {0:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")]
    BadTopic(String),
    #[error("CHAT_TOPIC_ARN {0:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME); set it to the topic your chat channel's Amazon Q Developer configuration subscribes to, or leave it empty")]
    BadChatTopic(String),
    #[error("REPORT_BUCKET {0:?} is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)")]
    BadReportBucket(String),
    #[error("GATHER_DEADLINE_SECONDS {0:?} is not a number of seconds between 1 and 900")]
    BadDeadline(String),
    #[error("MAX_COMPOSITE_CHILDREN {0:?} is not a number between 1 and 20")]
    BadCompositeChildren(String),
    #[error(transparent)]
    Remediation(#[from] RemediationConfigError),
    #[error("FOLLOW_UP_QUEUE_URL {0:?} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")]
    BadFollowUpQueue(String),
    #[error("FOLLOW_UP_DELAY {0:?} is not a number of seconds between 0 (off) and 900 (SQS delays no longer)")]
    BadFollowUpDelay(String),
    #[error("ALLOWED_ACCOUNTS {0:?} is not a comma-separated list of 12-digit account ids")]
    BadAllowedAccounts(String),
    #[error(
        "MEMBER_ROLE_NAME {0:?} is not an IAM role name (1-64 of letters, digits and +=,.@_-)"
    )]
    BadMemberRole(String),
    #[error(
        "MEMBER_EXTERNAL_ID is not an STS external id (2-1224 of letters, digits and +=,.@:/_-)"
    )]
    BadExternalId,
    #[error("ALLOWED_ACCOUNTS names other accounts but MEMBER_ROLE_NAME is not set: set it to the member role the StackSet creates in each (elbmedic-member-read for diagnose, elbmedic-member-remediate for remediate)")]
    AccountsWithoutRole,
    #[error("KUBERNETES_READS {0:?} is neither on nor off")]
    BadClusterReads(String),
    #[error("KUBERNETES_WATCH_SECONDS {0:?} is not a whole number of seconds from 0 to 60 (the remediate function's timeout bounds the run)")]
    BadClusterWatch(String),
    #[error("INCIDENT_QUIET_MINUTES {0:?} is not a whole number of minutes from 0 (no incidents) to 1440")]
    BadIncidentQuiet(String),
    #[error("STORM_THRESHOLD {0:?} is not a whole number from 0 (no storms) to 100")]
    BadStormThreshold(String),
    #[error("ALARM_QUEUE_ARN {0:?} is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)")]
    BadAlarmQueue(String),
    #[error("KUBERNETES_API_URL {0:?} is not a loopback URL (http://127.0.0.1:PORT, tests only) nor an https URL")]
    BadKubernetesApiUrl(String),
    #[error("REMEDIATION_MODE is approve but REMEDIATION_TOPIC_ARN is not set: the approve command publishes to that topic")]
    ApproveWithoutTopic,
    #[error("REMEDIATION_TOPIC_ARN is not set: remediate takes plans only from that topic, so it would refuse every one; set it to the remediation topic's ARN")]
    RemediateWithoutTopic,
}

/// An S3 bucket name as S3 accepts it for new buckets: 3-63 of lowercase letters, digits,
/// dots and hyphens, a letter or digit at each end, no `..`, not an IP address.
pub fn is_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// The region of an SNS topic ARN, if it is one.
pub fn topic_region(arn: &str) -> Option<&str> {
    elbmedic_engine::alarm::formats::topic_arn(arn).map(|t| t.region)
}

/// How long `remediate` watches the controller's Events after a change in the cluster: the
/// load balancer controller reconciles within seconds of an annotation change.
pub const DEFAULT_CLUSTER_WATCH: Duration = Duration::from_secs(30);

impl Config {
    pub fn from_env(role: Role, get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let report_topic_arn = match set(&get, "REPORT_TOPIC_ARN") {
            Some(topic) if topic_region(&topic).is_none() => {
                return Err(ConfigError::BadTopic(topic))
            }
            None if role != Role::Cli => return Err(ConfigError::MissingTopic),
            topic => topic,
        };
        let gather_deadline = match set(&get, "GATHER_DEADLINE_SECONDS") {
            None => crate::gather::DEFAULT_DEADLINE,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(seconds @ 1..=900) => Duration::from_secs(seconds),
                _ => return Err(ConfigError::BadDeadline(text)),
            },
        };
        let max_composite_children = match set(&get, "MAX_COMPOSITE_CHILDREN") {
            None => elbmedic_engine::alarm::composite::DEFAULT_MAX_COMPOSITE_LOAD_BALANCERS,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n @ 1..=20) => n,
                _ => return Err(ConfigError::BadCompositeChildren(text)),
            },
        };
        let chat_topic_arn = match set(&get, "CHAT_TOPIC_ARN") {
            Some(topic) if topic_region(&topic).is_none() => {
                return Err(ConfigError::BadChatTopic(topic))
            }
            topic => topic,
        };
        let report_bucket = match set(&get, "REPORT_BUCKET") {
            Some(bucket) if !is_bucket_name(&bucket) => {
                return Err(ConfigError::BadReportBucket(bucket))
            }
            bucket => bucket,
        };
        let remediation = RemediationConfig::from_env(&get)?;
        let follow_up = follow_up_from_env(&get)?;
        let organization = organization_from_env(&get)?;
        let cluster_reads = cluster_reads_from_env(&get)?;
        let cluster_watch = match set(&get, "KUBERNETES_WATCH_SECONDS") {
            None => DEFAULT_CLUSTER_WATCH,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(seconds @ 0..=60) => Duration::from_secs(seconds),
                _ => return Err(ConfigError::BadClusterWatch(text)),
            },
        };
        let incidents = incidents_from_env(&get)?;
        let alarm_queue = match set(&get, "ALARM_QUEUE_ARN") {
            None => None,
            Some(arn) => Some(QueueArn::parse(&arn).ok_or(ConfigError::BadAlarmQueue(arn))?),
        };
        let has_topic = remediation.topic_arn.is_some();
        match (role, remediation.mode) {
            (Role::Diagnose, Mode::Approve) if !has_topic => {
                return Err(ConfigError::ApproveWithoutTopic)
            }
            (Role::Remediate, mode) if mode != Mode::Off && !has_topic => {
                return Err(ConfigError::RemediateWithoutTopic)
            }
            _ => {}
        }
        Ok(Self {
            report_topic_arn,
            chat_topic_arn,
            report_bucket,
            gather_deadline,
            max_composite_children,
            remediation,
            change_lookups: crate::gather::ChangeLookups::FirstPass,
            follow_up,
            organization,
            cluster_reads,
            cluster_watch,
            incidents,
            alarm_queue,
        })
    }

    /// Reads the process environment.
    pub fn from_process_env(role: Role) -> Result<Self, ConfigError> {
        Self::from_env(role, process_env)
    }
}

/// Whether, and (in tests) where, the diagnosis reads clusters.
fn cluster_reads_from_env(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::gather::ClusterReads, ConfigError> {
    use crate::gather::ClusterReads;
    // `remediate` reads (and then writes) a cluster only for a plan that changes one.
    let on = match set(get, "KUBERNETES_READS").as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => return Err(ConfigError::BadClusterReads(other.to_string())),
    };
    let test_url = match set(get, "KUBERNETES_API_URL") {
        Some(url)
            if !(url.starts_with("https://")
                || url.starts_with("http://127.0.0.1:")
                || url.starts_with("http://[::1]:")
                || url.starts_with("http://localhost:")) =>
        {
            return Err(ConfigError::BadKubernetesApiUrl(url))
        }
        url => url,
    };
    Ok(match on {
        true => ClusterReads::On { test_url },
        false => ClusterReads::Off,
    })
}

/// The accounts served and the role assumed in them; the external id is never logged.
fn organization_from_env(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Organization, ConfigError> {
    use elbmedic_engine::account::{is_external_id, is_role_name};
    use elbmedic_engine::alarm::formats::is_account_id;
    let allowed_accounts = match set(get, "ALLOWED_ACCOUNTS") {
        None => Default::default(),
        Some(text) => {
            let accounts: std::collections::BTreeSet<String> = text
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
            if !accounts.iter().all(|a| is_account_id(a)) {
                return Err(ConfigError::BadAllowedAccounts(text));
            }
            accounts
        }
    };
    let member_role_name = match set(get, "MEMBER_ROLE_NAME") {
        Some(name) if !is_role_name(&name) => return Err(ConfigError::BadMemberRole(name)),
        name => name,
    };
    let external_id = match set(get, "MEMBER_EXTERNAL_ID") {
        Some(id) if !is_external_id(&id) => return Err(ConfigError::BadExternalId),
        id => id,
    };
    if !allowed_accounts.is_empty() && member_role_name.is_none() {
        return Err(ConfigError::AccountsWithoutRole);
    }
    Ok(Organization {
        allowed_accounts,
        member_role_name,
        external_id,
    })
}

/// The incident and storm settings; each 0 switches its part off.
fn incidents_from_env(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<IncidentSettings, ConfigError> {
    let mut settings = IncidentSettings::default();
    if let Some(text) = set(get, "INCIDENT_QUIET_MINUTES") {
        settings.quiet_minutes = match text.trim().parse::<i64>() {
            Ok(minutes @ 0..=1440) => minutes,
            _ => return Err(ConfigError::BadIncidentQuiet(text)),
        };
    }
    if let Some(text) = set(get, "STORM_THRESHOLD") {
        settings.storm_threshold = match text.trim().parse::<usize>() {
            Ok(n @ 0..=100) => n,
            _ => return Err(ConfigError::BadStormThreshold(text)),
        };
    }
    Ok(settings)
}

/// The follow-up queue, unless `FOLLOW_UP_DELAY` is 0 or no queue is set.
fn follow_up_from_env(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<FollowUpQueue>, ConfigError> {
    let delay = match set(get, "FOLLOW_UP_DELAY") {
        None => DEFAULT_FOLLOW_UP_DELAY,
        Some(text) => match text.trim().parse::<i32>() {
            Ok(seconds @ 0..=900) => seconds,
            _ => return Err(ConfigError::BadFollowUpDelay(text)),
        },
    };
    let Some(url) = set(get, "FOLLOW_UP_QUEUE_URL") else {
        return Ok(None);
    };
    let queue = FollowUpQueue::parse(&url, delay).ok_or(ConfigError::BadFollowUpQueue(url))?;
    Ok((delay > 0).then_some(queue))
}

/// The account of the running function, from its ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).
pub fn account_of_function(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:reports";

    #[test]
    fn chat_topic_and_report_bucket_are_validated() {
        let both = Config::from_env(
            Role::Diagnose,
            env(&[
                ("REPORT_TOPIC_ARN", TOPIC),
                ("CHAT_TOPIC_ARN", "arn:aws:sns:eu-west-1:111122223333:chat"),
                ("REPORT_BUCKET", "elbmedic-reports-111122223333"),
            ]),
        )
        .unwrap();
        assert_eq!(
            both.report_bucket.as_deref(),
            Some("elbmedic-reports-111122223333")
        );
        assert!(both.chat_topic_arn.is_some());
        let none = Config::from_env(
            Role::Diagnose,
            env(&[("REPORT_TOPIC_ARN", TOPIC), ("CHAT_TOPIC_ARN", " ")]),
        )
        .unwrap();
        assert_eq!((none.chat_topic_arn, none.report_bucket), (None, None));
        let chat = Config::from_env(
            Role::Diagnose,
            env(&[
                ("REPORT_TOPIC_ARN", TOPIC),
                ("CHAT_TOPIC_ARN", "hooks.slack.com/x"),
            ]),
        );
        assert!(chat.unwrap_err().to_string().starts_with("CHAT_TOPIC_ARN"));
        for bad in [
            "Reports",
            "ab",
            "a..b",
            "192.168.1.1",
            "-reports",
            "reports/x",
        ] {
            let bucket = Config::from_env(
                Role::Diagnose,
                env(&[("REPORT_TOPIC_ARN", TOPIC), ("REPORT_BUCKET", bad)]),
            );
            assert!(
                matches!(bucket, Err(ConfigError::BadReportBucket(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn configuration_is_validated_with_clear_messages() {
        let ok = Config::from_env(Role::Diagnose, env(&[("REPORT_TOPIC_ARN", TOPIC)])).unwrap();
        assert_eq!(ok.gather_deadline, Duration::from_secs(20));
        assert_eq!(ok.remediation, RemediationConfig::default());
        assert_eq!(
            Config::from_env(Role::Diagnose, env(&[])),
            Err(ConfigError::MissingTopic)
        );
        assert!(matches!(
            Config::from_env(Role::Diagnose, env(&[("REPORT_TOPIC_ARN", "reports")])),
            Err(ConfigError::BadTopic(_))
        ));
        assert!(matches!(
            Config::from_env(
                Role::Cli,
                env(&[("REPORT_TOPIC_ARN", "arn:aws:sqs:eu-west-1:111122223333:q")])
            ),
            Err(ConfigError::BadTopic(_))
        ));
        let bad = Config::from_env(
            Role::Diagnose,
            env(&[
                ("REPORT_TOPIC_ARN", TOPIC),
                ("GATHER_DEADLINE_SECONDS", "0"),
            ]),
        );
        assert!(bad.unwrap_err().to_string().contains("between 1 and 900"));
        let custom = Config::from_env(
            Role::Diagnose,
            env(&[
                ("REPORT_TOPIC_ARN", TOPIC),
                ("GATHER_DEADLINE_SECONDS", "8"),
            ]),
        );
        assert_eq!(custom.unwrap().gather_deadline, Duration::from_secs(8));
        let mode = Config::from_env(Role::Cli, env(&[("REMEDIATION_MODE", "sometimes")]));
        assert!(mode
            .unwrap_err()
            .to_string()
            .starts_with("REMEDIATION_MODE"));
    }

    /// The CLI needs no topic; each function needs the topics it cannot work without.
    #[test]
    fn each_role_requires_its_own_topics() {
        let cli = Config::from_env(Role::Cli, env(&[("REMEDIATION_MODE", "approve")])).unwrap();
        assert_eq!(cli.report_topic_arn, None);
        assert_eq!(
            Config::from_env(
                Role::Diagnose,
                env(&[("REPORT_TOPIC_ARN", TOPIC), ("REMEDIATION_MODE", "approve")])
            ),
            Err(ConfigError::ApproveWithoutTopic)
        );
        assert_eq!(
            Config::from_env(
                Role::Remediate,
                env(&[("REPORT_TOPIC_ARN", TOPIC), ("REMEDIATION_MODE", "auto")])
            ),
            Err(ConfigError::RemediateWithoutTopic)
        );
        // Off is the kill switch: remediate starts, and refuses every plan.
        assert!(Config::from_env(Role::Remediate, env(&[("REPORT_TOPIC_ARN", TOPIC)])).is_ok());
    }

    #[test]
    fn the_follow_up_queue_is_read_and_can_be_switched_off() {
        const URL: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/elbmedic-follow-up";
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![("REPORT_TOPIC_ARN", TOPIC)];
            all.extend_from_slice(pairs);
            Config::from_env(Role::Diagnose, env(&all))
        };
        let on = with(&[("FOLLOW_UP_QUEUE_URL", URL)])
            .unwrap()
            .follow_up
            .unwrap();
        assert_eq!(on.delay_seconds, 600);
        assert_eq!(on.region.as_deref(), Some("eu-west-1"));
        assert!(on.is_source("arn:aws:sqs:eu-west-1:111122223333:elbmedic-follow-up"));
        assert!(!on.is_source("arn:aws:sqs:eu-west-1:444455556666:elbmedic-follow-up"));
        assert!(!on.is_source("arn:aws:sqs:eu-west-1:111122223333:other"));
        let off = with(&[("FOLLOW_UP_QUEUE_URL", URL), ("FOLLOW_UP_DELAY", "0")]);
        assert_eq!(off.unwrap().follow_up, None);
        assert_eq!(with(&[]).unwrap().follow_up, None);
        let local = with(&[(
            "FOLLOW_UP_QUEUE_URL",
            "http://127.0.0.1:5000/123456789012/q",
        )]);
        assert_eq!(local.unwrap().follow_up.unwrap().region, None);
        for (key, value, starts) in [
            ("FOLLOW_UP_DELAY", "901", "FOLLOW_UP_DELAY"),
            ("FOLLOW_UP_DELAY", "-1", "FOLLOW_UP_DELAY"),
            (
                "FOLLOW_UP_QUEUE_URL",
                "elbmedic-follow-up",
                "FOLLOW_UP_QUEUE_URL",
            ),
            (
                "FOLLOW_UP_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/q",
                "FOLLOW_UP_QUEUE_URL",
            ),
            (
                "FOLLOW_UP_QUEUE_URL",
                "https://h/111122223333/q/../x",
                "FOLLOW_UP_QUEUE_URL",
            ),
        ] {
            let error = with(&[(key, value)]).unwrap_err().to_string();
            assert!(error.starts_with(starts), "{value}: {error}");
        }
    }

    #[test]
    fn the_organization_is_read_and_validated() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![("REPORT_TOPIC_ARN", TOPIC)];
            all.extend_from_slice(pairs);
            Config::from_env(Role::Diagnose, env(&all))
        };
        assert_eq!(with(&[]).unwrap().organization, Organization::default());
        let org = with(&[
            ("ALLOWED_ACCOUNTS", " 210987654321, 444455556666 ,"),
            ("MEMBER_ROLE_NAME", "elbmedic-member-read"),
            ("MEMBER_EXTERNAL_ID", "elbmedic-7f3a"),
        ])
        .unwrap()
        .organization;
        assert!(org.allows("210987654321") && org.allows("444455556666"));
        assert!(!org.allows("111122223333"));
        assert_eq!(org.external_id.as_deref(), Some("elbmedic-7f3a"));
        for (pairs, starts) in [
            (
                vec![
                    ("ALLOWED_ACCOUNTS", "210987654321,prod"),
                    ("MEMBER_ROLE_NAME", "r"),
                ],
                "ALLOWED_ACCOUNTS",
            ),
            (
                vec![("ALLOWED_ACCOUNTS", "210987654321")],
                "ALLOWED_ACCOUNTS names",
            ),
            (vec![("MEMBER_ROLE_NAME", "a/b")], "MEMBER_ROLE_NAME"),
            (
                vec![("MEMBER_EXTERNAL_ID", "has space")],
                "MEMBER_EXTERNAL_ID",
            ),
        ] {
            let error = with(&pairs).unwrap_err().to_string();
            assert!(error.starts_with(starts), "{pairs:?}: {error}");
            assert!(
                !error.contains("has space"),
                "the external id is not echoed"
            );
        }
    }

    #[test]
    fn account_comes_from_the_function_arn() {
        assert_eq!(
            account_of_function("arn:aws:lambda:eu-west-1:111122223333:function:diagnose")
                .as_deref(),
            Some("111122223333")
        );
        assert_eq!(account_of_function("nonsense"), None);
    }
}

//! Function settings every elbmedic Lambda reads at start (**contract**: the variable names),
//! validated once with messages that name the variable and what it accepts.

use std::time::Duration;

/// Configuration, read once at start (**contract**: the variable names).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `REPORT_TOPIC_ARN`: where reports go.
    pub report_topic_arn: String,
    /// `GATHER_DEADLINE_SECONDS` (default 20): the whole gather finishes within this; keep
    /// it below the function's timeout.
    pub gather_deadline: Duration,
    /// `MAX_COMPOSITE_CHILDREN` (default 5, 1-20): load balancers diagnosed, concurrently,
    /// for one composite alarm in one invocation; the rest are named in a notice.
    pub max_composite_children: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "REPORT_TOPIC_ARN is not set: set it to the ARN of the SNS topic that receives the reports"
    )]
    MissingTopic,
    #[error("REPORT_TOPIC_ARN {0:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")]
    BadTopic(String),
    #[error("GATHER_DEADLINE_SECONDS {0:?} is not a number of seconds between 1 and 900")]
    BadDeadline(String),
    #[error("MAX_COMPOSITE_CHILDREN {0:?} is not a number between 1 and 20")]
    BadCompositeChildren(String),
}

/// The region of an SNS topic ARN, if it is one.
pub fn topic_region(arn: &str) -> Option<&str> {
    elbmedic_engine::alarm::formats::topic_arn(arn).map(|t| t.region)
}

impl Config {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let topic = get("REPORT_TOPIC_ARN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::MissingTopic)?;
        if topic_region(&topic).is_none() {
            return Err(ConfigError::BadTopic(topic));
        }
        let gather_deadline = match get("GATHER_DEADLINE_SECONDS") {
            None => Duration::from_secs(20),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(seconds @ 1..=900) => Duration::from_secs(seconds),
                _ => return Err(ConfigError::BadDeadline(text)),
            },
        };
        let max_composite_children = match get("MAX_COMPOSITE_CHILDREN") {
            None => elbmedic_engine::alarm::composite::DEFAULT_MAX_COMPOSITE_LOAD_BALANCERS,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n @ 1..=20) => n,
                _ => return Err(ConfigError::BadCompositeChildren(text)),
            },
        };
        Ok(Self {
            report_topic_arn: topic,
            gather_deadline,
            max_composite_children,
        })
    }
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

    #[test]
    fn configuration_is_validated_with_clear_messages() {
        let ok = Config::from_env(env(&[(
            "REPORT_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:111122223333:reports",
        )]))
        .unwrap();
        assert_eq!(ok.gather_deadline, Duration::from_secs(20));
        assert_eq!(Config::from_env(env(&[])), Err(ConfigError::MissingTopic));
        assert!(matches!(
            Config::from_env(env(&[("REPORT_TOPIC_ARN", "reports")])),
            Err(ConfigError::BadTopic(_))
        ));
        assert!(matches!(
            Config::from_env(env(&[(
                "REPORT_TOPIC_ARN",
                "arn:aws:sqs:eu-west-1:111122223333:q"
            )])),
            Err(ConfigError::BadTopic(_))
        ));
        let bad = Config::from_env(env(&[
            ("REPORT_TOPIC_ARN", "arn:aws:sns:eu-west-1:111122223333:r"),
            ("GATHER_DEADLINE_SECONDS", "0"),
        ]));
        assert!(bad.unwrap_err().to_string().contains("between 1 and 900"));
        let custom = Config::from_env(env(&[
            ("REPORT_TOPIC_ARN", "arn:aws:sns:eu-west-1:111122223333:r"),
            ("GATHER_DEADLINE_SECONDS", "8"),
        ]));
        assert_eq!(custom.unwrap().gather_deadline, Duration::from_secs(8));
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

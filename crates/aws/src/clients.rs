//! The AWS clients, built once from the standard configuration chain: credentials from the
//! environment, profile or role; endpoints from the standard `AWS_ENDPOINT_URL*` variables
//! (that is how tests point at moto); the region from the alarm. Every call is bounded by a
//! timeout and retried by the SDK's standard strategy; every call is recorded.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::recorder::{CallLog, Recorder};

#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub eks: aws_sdk_eks::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sns: aws_sdk_sns::Client,
    pub region: String,
    /// Every operation performed by these clients.
    pub log: CallLog,
}

/// Bounds on each call. The gather as a whole has its own deadline on top.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(4),
            operation_timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}

impl Clients {
    /// Loads the shared configuration for `region` and builds every client from it.
    pub async fn load(region: &str, limits: CallLimits) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(limits.attempt_timeout)
                    .operation_timeout(limits.operation_timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(limits.max_attempts))
            .load()
            .await;
        Self::from_config(&config, region)
    }

    /// Builds every client from an existing configuration (tests pass mocks through here).
    pub fn from_config(config: &SdkConfig, region: &str) -> Self {
        let log = CallLog::default();
        let recorder = Recorder::new(log.clone());
        Self {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            elb: aws_sdk_elasticloadbalancing::Client::from_conf(
                aws_sdk_elasticloadbalancing::config::Builder::from(config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            eks: aws_sdk_eks::Client::from_conf(
                aws_sdk_eks::config::Builder::from(config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(config)
                    .interceptor(recorder.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .interceptor(recorder)
                    .build(),
            ),
            region: region.to_string(),
            log,
        }
    }
}

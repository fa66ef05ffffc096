//! The AWS clients, built once from the standard configuration chain: credentials from the
//! environment, profile or role; endpoints from the standard `AWS_ENDPOINT_URL*` variables
//! (that is how tests point at moto); the region from the alarm. Every call is bounded by a
//! timeout and retried by the SDK's standard strategy; every call is recorded.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;

use crate::recorder::{CallLog, Recorder};

/// An SDK client's configuration built from `config`, with the call recorder and, in tests,
/// one more interceptor: every client of [`Clients`] is made this one way.
macro_rules! client_config {
    ($sdk:ident, $config:expr, $recorder:expr, $extra:expr) => {{
        let mut builder = $sdk::config::Builder::from($config).interceptor($recorder.clone());
        if let Some(extra) = $extra {
            builder.push_interceptor(extra.clone());
        }
        builder
    }};
}

#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub eks: aws_sdk_eks::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sns: aws_sdk_sns::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sts: aws_sdk_sts::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub region: String,
    /// Every operation performed by these clients.
    pub log: CallLog,
    /// The member account whose role these clients' readers and writers act with; `None` for
    /// the deployment's own account. The topics, queue and ledger stay the deployment's own.
    pub member_account: Option<String>,
    /// What they were built from, so a member account's clients can be built beside them.
    config: SdkConfig,
    extra: Option<SharedInterceptor>,
    /// The account's alias once read, shared by clones.
    alias: std::sync::Arc<tokio::sync::OnceCell<Option<String>>>,
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

    /// Builds every client from an existing configuration.
    pub fn from_config(config: &SdkConfig, region: &str) -> Self {
        Self::with_interceptor(config, region, None)
    }

    /// As [`Clients::from_config`], with one more interceptor on every client: tests inject
    /// faults and responses a local AWS cannot produce through here.
    pub fn with_interceptor(
        config: &SdkConfig,
        region: &str,
        extra: Option<SharedInterceptor>,
    ) -> Self {
        let log = CallLog::default();
        let recorder = Recorder::new(log.clone());
        let account = AccountClients::build(config, &recorder, extra.as_ref());
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    client_config!($sdk, config, recorder, extra.as_ref()).build(),
                )
            };
        }
        Self {
            ec2: account.ec2,
            elb: account.elb,
            elbv2: account.elbv2,
            eks: account.eks,
            cloudwatch: account.cloudwatch,
            cloudtrail: account.cloudtrail,
            s3: account.s3,
            iam: account.iam,
            sns: client!(aws_sdk_sns),
            dynamodb: client!(aws_sdk_dynamodb),
            sts: client!(aws_sdk_sts),
            sqs: client!(aws_sdk_sqs),
            region: region.to_string(),
            log,
            member_account: None,
            config: config.clone(),
            extra,
            alias: Default::default(),
        }
    }

    /// The credentials these clients sign with (a member's assumed role for its clients), for
    /// what the SDK does not sign itself: the EKS cluster token. `None` when none resolve.
    pub async fn credentials(&self) -> Option<aws_credential_types::Credentials> {
        use aws_credential_types::provider::ProvideCredentials;
        let provider = self.config.credentials_provider()?;
        match provider.provide_credentials().await {
            Ok(credentials) => Some(credentials),
            Err(error) => {
                tracing::warn!(%error, "no credentials for the cluster token");
                None
            }
        }
    }

    /// These clients with everything that reads or changes a load balancer's account acting
    /// in `account` with `credentials` (an assumed member role), logged on their own; the
    /// topics, queue, ledger and STS stay this deployment's.
    pub fn for_member(&self, account: &str, credentials: aws_sdk_sts::config::Credentials) -> Self {
        let config = self
            .config
            .to_builder()
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                credentials,
            ))
            .build();
        let log = CallLog::default();
        let member =
            AccountClients::build(&config, &Recorder::new(log.clone()), self.extra.as_ref());
        Self {
            ec2: member.ec2,
            elb: member.elb,
            elbv2: member.elbv2,
            eks: member.eks,
            cloudwatch: member.cloudwatch,
            cloudtrail: member.cloudtrail,
            s3: member.s3,
            iam: member.iam,
            log,
            member_account: Some(account.to_string()),
            config,
            alias: Default::default(),
            ..self.clone()
        }
    }
}

/// The clients that read and change what is in a load balancer's account.
struct AccountClients {
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancing::Client,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    eks: aws_sdk_eks::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    cloudtrail: aws_sdk_cloudtrail::Client,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
}

impl AccountClients {
    fn build(config: &SdkConfig, recorder: &Recorder, extra: Option<&SharedInterceptor>) -> Self {
        macro_rules! client {
            ($sdk:ident) => {
                client_config!($sdk, config, recorder, extra)
            };
        }
        // A local S3 (moto, a VPC endpoint by IP) has no per-bucket host names.
        let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|v| crate::environment::is_present(v));
        Self {
            ec2: aws_sdk_ec2::Client::from_conf(client!(aws_sdk_ec2).build()),
            elb: aws_sdk_elasticloadbalancing::Client::from_conf(
                client!(aws_sdk_elasticloadbalancing).build(),
            ),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                client!(aws_sdk_elasticloadbalancingv2).build(),
            ),
            eks: aws_sdk_eks::Client::from_conf(client!(aws_sdk_eks).build()),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(client!(aws_sdk_cloudwatch).build()),
            cloudtrail: aws_sdk_cloudtrail::Client::from_conf(client!(aws_sdk_cloudtrail).build()),
            s3: aws_sdk_s3::Client::from_conf(
                client!(aws_sdk_s3)
                    .force_path_style(custom_endpoint)
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(client!(aws_sdk_iam).build()),
        }
    }
}

impl Clients {
    /// The account these credentials belong to (`sts:GetCallerIdentity`, which needs no
    /// permission); `None` when it cannot be read.
    pub async fn caller_account(&self) -> Option<String> {
        match self.sts.get_caller_identity().send().await {
            Ok(identity) => identity.account().map(str::to_string),
            Err(error) => {
                tracing::warn!(error = %crate::errors::classify(&error).1, "the caller's account is unknown: alarms of other accounts are not recognised as such");
                None
            }
        }
    }
}

impl Clients {
    /// The account's alias (`iam:ListAccountAliases`), which names it in reports; read once
    /// per these clients. `None` when it has none or the role may not list it (a denial is
    /// kept too: it will not change); any other failure is asked again next time.
    pub async fn account_alias(&self) -> Option<String> {
        if let Some(alias) = self.alias.get() {
            return alias.clone();
        }
        match self.iam.list_account_aliases().send().await {
            Ok(answer) => {
                let alias = answer
                    .account_aliases()
                    .first()
                    .and_then(|a| elbmedic_engine::account::clean_alias(a));
                self.alias.set(alias.clone()).ok();
                alias
            }
            Err(error) => {
                let (reason, text) = crate::errors::classify(&error);
                tracing::debug!(error = %text, "no account alias: the report names the account by id");
                if reason == elbmedic_engine::snapshot::GapReason::AccessDenied {
                    self.alias.set(None).ok();
                }
                None
            }
        }
    }
}

/// Clients per region, loaded on first use and kept: a warm Lambda instance, or one CLI run,
/// reuses them for every alarm of that region.
#[derive(Debug, Default)]
pub struct Regions {
    limits: CallLimits,
    loaded: tokio::sync::Mutex<std::collections::HashMap<String, Clients>>,
}

impl Regions {
    pub fn new(limits: CallLimits) -> Self {
        Self {
            limits,
            loaded: Default::default(),
        }
    }

    /// Clients already built (tests inject faulty or scripted AWS through here), used for
    /// their region instead of loading the standard configuration.
    pub fn preloaded(clients: Clients) -> Self {
        let regions = Self::default();
        regions
            .loaded
            .try_lock()
            .expect("a new lock is free")
            .insert(clients.region.clone(), clients);
        regions
    }

    /// The clients for `region`, loaded the first time it is asked for.
    pub async fn get(&self, region: &str) -> Clients {
        let mut loaded = self.loaded.lock().await;
        if let Some(clients) = loaded.get(region) {
            return clients.clone();
        }
        let clients = Clients::load(region, self.limits).await;
        loaded.insert(region.to_string(), clients.clone());
        clients
    }

    /// Starts a new invocation's call log in every region: a warm instance must not grow it
    /// forever.
    pub async fn clear_logs(&self) {
        for clients in self.loaded.lock().await.values() {
            clients.log.clear();
        }
    }

    /// Every IAM action called through these clients, in every region, since they were
    /// loaded: what a role must grant (the functions' tests/iam.rs checks it).
    pub async fn actions(&self) -> std::collections::BTreeSet<String> {
        let loaded = self.loaded.lock().await;
        loaded.values().flat_map(|c| c.log.actions_ever()).collect()
    }
}

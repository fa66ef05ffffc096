//! What moto cannot show, through SDK-level mocks: pod IPs inside delegated prefixes
//! (moto ignores `Ipv4Prefixes` and `Ipv6Prefixes`), and faults answered as AWS answers them (access denied,
//! throttled, not found), each of which must become a gap (or, for a composite alarm's children,
//! an unsupported notice), never a failure.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::types::{
    Filter, Ipv4PrefixSpecification, Ipv6PrefixSpecification, NetworkInterface,
    NetworkInterfaceAttachment, NetworkInterfaceIpv6Address, Subnet,
    SubnetIpv6CidrBlockAssociation,
};
use aws_sdk_elasticloadbalancingv2::types::{
    AvailabilityZone, LoadBalancer, LoadBalancerAttribute, TargetDescription, TargetGroup,
    TargetHealth, TargetHealthDescription, TargetHealthStateEnum, TargetTypeEnum,
};
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use elbmedic_aws::clients::Clients;
use elbmedic_aws::gather::{gather, GatherOptions};
use elbmedic_engine::alarm::{LbKind, LbRef};
use elbmedic_engine::snapshot::{GapFact, GapReason, Placement};

const LB_ARN: &str = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/checkout/0123456789abcdef";
const TG_ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/checkout/0123456789abcdef";

fn http(status: u16, body: &'static str) -> HttpResponse {
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn has_filter(filters: &[Filter], name: &str) -> bool {
    filters.iter().any(|f| f.name() == Some(name))
}

/// The ALB side, answered as AWS would.
fn alb_rules() -> Vec<Rule> {
    vec![
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_load_balancers).then_output(|| {
            aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput::builder()
                .load_balancers(
                    LoadBalancer::builder()
                        .load_balancer_arn(LB_ARN)
                        .vpc_id("vpc-1")
                        .availability_zones(AvailabilityZone::builder().zone_name("eu-west-1a").subnet_id("subnet-public").build())
                        .security_groups("sg-lb")
                        .build(),
                )
                .build()
        }),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_load_balancer_attributes).then_output(|| {
            aws_sdk_elasticloadbalancingv2::operation::describe_load_balancer_attributes::DescribeLoadBalancerAttributesOutput::builder()
                .attributes(LoadBalancerAttribute::builder().key("idle_timeout.timeout_seconds").value("90").build())
                .build()
        }),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_tags).then_output(|| {
            aws_sdk_elasticloadbalancingv2::operation::describe_tags::DescribeTagsOutput::builder()
                .tag_descriptions(
                    aws_sdk_elasticloadbalancingv2::types::TagDescription::builder()
                        .resource_arn(LB_ARN)
                        .tags(aws_sdk_elasticloadbalancingv2::types::Tag::builder().key("elbv2.k8s.aws/cluster").value("prod").build())
                        .build(),
                )
                .build()
        }),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_listeners)
            .then_output(|| aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput::builder().build()),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups).then_output(|| {
            aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput::builder()
                .target_groups(
                    TargetGroup::builder().target_group_arn(TG_ARN).target_group_name("checkout").target_type(TargetTypeEnum::Ip).port(8080).build(),
                )
                .build()
        }),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_output(|| {
            let healthy = |ip: &str| {
                TargetHealthDescription::builder()
                    .target(TargetDescription::builder().id(ip).port(8080).build())
                    .target_health(TargetHealth::builder().state(TargetHealthStateEnum::Healthy).build())
                    .build()
            };
            aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput::builder()
                .target_health_descriptions(healthy("10.0.18.10"))
                .target_health_descriptions(healthy("10.0.99.5"))
                // An IPv6 cluster's pods: one inside the node's delegated /80, one an address
                // of the ENI written another way than the ENI lists it.
                .target_health_descriptions(healthy("2600:1f18:4e2a:7d10:8f3a::a1"))
                .target_health_descriptions(healthy("2600:1f18:4e2a:7d10:0:0:0:5"))
                // In no subnet that was read: not looked up, so not known to be stale.
                .target_health_descriptions(healthy("2600:1f18:ffff::9"))
                .build()
        }),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_group_attributes).then_output(|| {
            aws_sdk_elasticloadbalancingv2::operation::describe_target_group_attributes::DescribeTargetGroupAttributesOutput::builder().build()
        }),
    ]
}

/// The VPC: subnets, an ENI found by address for nobody, and a node ENI with a delegated prefix.
fn vpc_rules() -> Vec<Rule> {
    vec![
        mock!(aws_sdk_ec2::Client::describe_subnets).then_output(|| {
            aws_sdk_ec2::operation::describe_subnets::DescribeSubnetsOutput::builder()
                .subnets(Subnet::builder().subnet_id("subnet-public").cidr_block("10.0.0.0/24").availability_zone("eu-west-1a").build())
                .subnets(
                    Subnet::builder()
                        .subnet_id("subnet-nodes")
                        .cidr_block("10.0.16.0/20")
                        .ipv6_cidr_block_association_set(SubnetIpv6CidrBlockAssociation::builder().ipv6_cidr_block("2600:1f18:4e2a:7d10::/64").build())
                        .availability_zone("eu-west-1a")
                        .build(),
                )
                .subnets(Subnet::builder().subnet_id("subnet-other").cidr_block("10.0.96.0/20").availability_zone("eu-west-1a").build())
                .build()
        }),
        mock!(aws_sdk_ec2::Client::describe_security_groups)
            .then_output(|| aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput::builder().build()),
        mock!(aws_sdk_ec2::Client::describe_vpcs).then_output(|| {
            aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsOutput::builder()
                .vpcs(aws_sdk_ec2::types::Vpc::builder().vpc_id("vpc-1").cidr_block("10.0.0.0/16").build())
                .build()
        }),
        // The address lookup finds neither IP: one sits in a prefix, the other nowhere.
        mock!(aws_sdk_ec2::Client::describe_network_interfaces)
            .match_requests(|r| has_filter(r.filters(), "addresses.private-ip-address") || has_filter(r.filters(), "description"))
            .then_output(|| aws_sdk_ec2::operation::describe_network_interfaces::DescribeNetworkInterfacesOutput::builder().build()),
        mock!(aws_sdk_ec2::Client::describe_network_interfaces).match_requests(|r| has_filter(r.filters(), "subnet-id")).then_output(|| {
            aws_sdk_ec2::operation::describe_network_interfaces::DescribeNetworkInterfacesOutput::builder()
                .network_interfaces(
                    NetworkInterface::builder()
                        .network_interface_id("eni-node")
                        .subnet_id("subnet-nodes")
                        .private_ip_address("10.0.17.4")
                        .ipv4_prefixes(Ipv4PrefixSpecification::builder().ipv4_prefix("10.0.18.0/28").build())
                        .ipv6_prefixes(Ipv6PrefixSpecification::builder().ipv6_prefix("2600:1f18:4e2a:7d10:8f3a::/80").build())
                        .ipv6_addresses(NetworkInterfaceIpv6Address::builder().ipv6_address("2600:1f18:4e2a:7d10::5").build())
                        .groups(aws_sdk_ec2::types::GroupIdentifier::builder().group_id("sg-nodes").build())
                        .attachment(NetworkInterfaceAttachment::builder().instance_id("i-node").device_index(0).build())
                        .build(),
                )
                .build()
        }),
    ]
}

fn fault_rules() -> Vec<Rule> {
    vec![
        mock!(aws_sdk_ec2::Client::describe_network_acls).then_http_response(|| {
            http(
                403,
                "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>r1</RequestID></Response>",
            )
        }),
        mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_http_response(|| {
            http(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r2</RequestId></ErrorResponse>",
            )
        }),
        mock!(aws_sdk_eks::Client::describe_cluster).then_http_response(|| {
            // EKS (REST-JSON) names the error in a header, as AWS sends it.
            let mut response = http(404, r#"{"message":"No cluster found for name: prod."}"#);
            response.headers_mut().insert("x-amzn-errortype", "ResourceNotFoundException");
            response
        }),
    ]
}

async fn clients(rules: &[Rule]) -> Clients {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    // Every gather asks the account's alias; these tests are about other calls.
    let alias = mock!(aws_sdk_iam::Client::list_account_aliases)
        .sequence()
        .output(|| {
            aws_sdk_iam::operation::list_account_aliases::ListAccountAliasesOutput::builder()
                .set_account_aliases(Some(Vec::new()))
                .build()
                .unwrap()
        })
        .repeatedly()
        .build();
    interceptor = interceptor.with_rule(&alias);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "k", "s", None, None, "mock",
        ))
        .http_client(create_mock_http_client())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Clients::with_interceptor(
        &config,
        "eu-west-1",
        Some(SharedInterceptor::new(interceptor)),
    )
}

#[tokio::test]
async fn delegated_prefixes_place_pod_ips_and_faults_become_gaps() {
    let mut rules = alb_rules();
    rules.extend(vpc_rules());
    rules.extend(fault_rules());
    let clients = clients(&rules).await;
    let lb = LbRef {
        kind: LbKind::Application,
        name: "checkout".into(),
        id: "app/checkout/0123456789abcdef".into(),
        target_group: None,
    };
    let world = gather(
        &clients,
        &lb,
        &GatherOptions::new(1_795_456_800, None, Some(60), Some(1)),
    )
    .await;

    assert_eq!(world.load_balancer.idle_timeout_seconds, Some(90));
    assert_eq!(world.load_balancer.vpc_cidrs, ["10.0.0.0/16"]);
    let targets = &world.target_groups[0].targets;
    let Placement::Interface(delegated) = &targets[0].placement else {
        panic!("{:?}", targets[0])
    };
    assert!(delegated.via_prefix);
    assert_eq!(delegated.eni_id.as_deref(), Some("eni-node"));
    assert_eq!(delegated.private_ip, "10.0.18.10");
    assert_eq!(delegated.security_groups, ["sg-nodes"]);
    assert_eq!(
        targets[1].placement,
        Placement::NoInterface,
        "on no ENI and in no prefix: stale"
    );
    // IPv6 pods: found in the node's /80 and among its addresses, never by the IPv4 filter.
    let Placement::Interface(in_80) = &targets[2].placement else {
        panic!("{:?}", targets[2])
    };
    assert!(in_80.via_prefix && in_80.eni_id.as_deref() == Some("eni-node"));
    assert_eq!(in_80.private_ip, "2600:1f18:4e2a:7d10:8f3a::a1");
    let Placement::Interface(address) = &targets[3].placement else {
        panic!("{:?}", targets[3])
    };
    assert!(!address.via_prefix && address.subnet_id == "subnet-nodes");
    assert_eq!(targets[4].placement, Placement::Unobserved);

    let gap = |fact: GapFact| {
        world
            .gaps
            .iter()
            .find(|g| g.fact == fact)
            .unwrap_or_else(|| panic!("no {fact:?} gap: {:?}", world.gaps))
    };
    assert_eq!(gap(GapFact::NetworkAcls).reason, GapReason::AccessDenied);
    assert!(gap(GapFact::NetworkAcls)
        .detail
        .starts_with("UnauthorizedOperation"));
    assert_eq!(gap(GapFact::Metrics).reason, GapReason::Throttled);
    assert_eq!(gap(GapFact::EksCluster).reason, GapReason::NotFound);
    // The cluster is still named, from the tags.
    assert_eq!(world.eks.as_ref().map(|e| e.name.as_str()), Some("prod"));

    // The diagnosis still runs and says what it could not check.
    let alarm_event = r#"{"AlarmName":"a","NewStateValue":"ALARM","AlarmArn":"arn:aws:cloudwatch:eu-west-1:111122223333:alarm:a",
        "Trigger":{"MetricName":"HTTPCode_ELB_504_Count","Namespace":"AWS/ApplicationELB","Dimensions":[{"name":"LoadBalancer","value":"app/checkout/0123456789abcdef"}]}}"#;
    let elbmedic_engine::alarm::Intake::Diagnose {
        alarm,
        load_balancer,
    } = elbmedic_engine::alarm::parse_input(alarm_event.as_bytes())
        .unwrap()
        .remove(0)
        .unwrap()
    else {
        panic!()
    };
    let report = elbmedic_engine::report::Report::diagnosed(&alarm, &load_balancer, &world);
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&"stale-targets"), "{codes:?}");
    assert!(report
        .findings
        .iter()
        .any(|f| f.code.as_str() == "check-incomplete"
            && f.fix.summary.contains("ec2:DescribeNetworkAcls")));
}

/// A role without the newer permissions: DescribeAlarms denied leaves the composite alarm
/// unsupported, naming the permission; the ledger denied becomes a remediation-history gap.
/// Neither fails the diagnosis.
#[tokio::test]
async fn denied_composite_children_and_ledger_are_reported_not_failed() {
    let mut rules = alb_rules();
    rules.extend(vpc_rules());
    rules.extend(fault_rules());
    rules.push(
        mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_http_response(|| {
            http(
                403,
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::111122223333:assumed-role/elbmedic-diagnose/run is not authorized to perform: cloudwatch:DescribeAlarms</Message></Error><RequestId>r3</RequestId></ErrorResponse>",
            )
        }),
    );
    rules.push(mock!(aws_sdk_dynamodb::Client::get_item).then_http_response(|| {
        http(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"User: arn:aws:sts::111122223333:assumed-role/elbmedic-diagnose/run is not authorized to perform: dynamodb:GetItem on resource: arn:aws:dynamodb:eu-west-1:111122223333:table/elbmedic-ledger"}"#,
        )
    }));
    let clients = clients(&rules).await;

    let composite = r#"{"AlarmName":"ingress-5xx","NewStateValue":"ALARM","AlarmArn":"arn:aws:cloudwatch:eu-west-1:111122223333:alarm:ingress-5xx",
        "AlarmRule":"ALARM(\"alb-504\")","TriggeringChildren":[{"Arn":"arn:aws:cloudwatch:eu-west-1:111122223333:alarm:alb-504","State":{"Value":"ALARM"}}]}"#;
    let intake = elbmedic_engine::alarm::parse_input(composite.as_bytes())
        .unwrap()
        .remove(0)
        .unwrap();
    let expanded = elbmedic_aws::pipeline::composite::expand(&clients, intake, 5).await;
    let [elbmedic_engine::alarm::Intake::Unsupported { alarm, reason }] = expanded.as_slice()
    else {
        panic!("{expanded:?}")
    };
    assert_eq!(alarm.alarm_name, "ingress-5xx");
    assert!(reason.contains("(alb-504)"), "{reason}");
    assert!(reason.contains("AccessDenied"), "{reason}");
    assert!(
        reason.contains("needs cloudwatch:DescribeAlarms"),
        "{reason}"
    );

    let lb = LbRef {
        kind: LbKind::Application,
        name: "checkout".into(),
        id: "app/checkout/0123456789abcdef".into(),
        target_group: None,
    };
    let mut options = GatherOptions::new(1_795_456_800, None, Some(60), Some(1));
    options.ledger_table = Some("elbmedic-ledger".into());
    let world = gather(&clients, &lb, &options).await;
    assert_eq!(world.history, None);
    let gap = world
        .gaps
        .iter()
        .find(|g| g.fact == GapFact::RemediationHistory)
        .unwrap_or_else(|| panic!("no history gap: {:?}", world.gaps));
    assert_eq!(gap.reason, GapReason::AccessDenied, "{gap:?}");
    assert_eq!(gap.resource.as_deref(), Some("elbmedic-ledger"));
    assert_eq!(world.load_balancer.idle_timeout_seconds, Some(90));
}

/// `remediate` changes one load balancer attribute, the idle timeout, and sends nothing else
/// in the same call (a value it did not read could be written back stale): the requests are
/// captured as the SDK built them.
#[tokio::test]
async fn remediation_sends_no_lb_attribute_but_the_idle_timeout() {
    use elbmedic_engine::plan::outcome::StepStatus;
    use elbmedic_engine::plan::{Action, PlanTarget, Policy};
    use std::sync::{Arc, Mutex};

    /// The attributes of each ALB request, as (key, value).
    type Sent = Arc<Mutex<Vec<Vec<(String, String)>>>>;
    let albs: Sent = Arc::default();
    let clbs: Arc<Mutex<Vec<String>>> = Arc::default();
    let (seen_alb, seen_clb) = (albs.clone(), clbs.clone());
    let rules = vec![
        mock!(aws_sdk_elasticloadbalancingv2::Client::modify_load_balancer_attributes)
            .match_requests(move |input| {
                seen_alb.lock().unwrap().push(
                    input
                        .attributes()
                        .iter()
                        .map(|a| (a.key().unwrap_or_default().to_string(), a.value().unwrap_or_default().to_string()))
                        .collect(),
                );
                true
            })
            .then_output(|| aws_sdk_elasticloadbalancingv2::operation::modify_load_balancer_attributes::ModifyLoadBalancerAttributesOutput::builder().build()),
        mock!(aws_sdk_elasticloadbalancing::Client::modify_load_balancer_attributes)
            .match_requests(move |input| {
                seen_clb.lock().unwrap().push(format!("{:?}", input.load_balancer_attributes()));
                true
            })
            .then_output(|| aws_sdk_elasticloadbalancing::operation::modify_load_balancer_attributes::ModifyLoadBalancerAttributesOutput::builder().build()),
    ];
    let clients = clients(&rules).await;
    for name in ["alb-idle-timeout", "clb-idle-timeout"] {
        let scenario = elbmedic_engine::scenarios::find(name).unwrap();
        let world = elbmedic_engine::snapshot::from_json(scenario.snapshot).unwrap();
        let target = PlanTarget::of(&world);
        let action = Action::RaiseIdleTimeout { from: 60, to: 120 };
        let (step, _) = elbmedic_aws::remediate::apply::apply(
            &clients,
            &elbmedic_aws::remediate::apply::Writer::None,
            &action,
            &world,
            &target,
            &Policy::default(),
            false,
        )
        .await;
        assert_eq!(step.status, StepStatus::Applied, "{name}: {step:?}");
    }
    assert_eq!(
        *albs.lock().unwrap(),
        [vec![(
            "idle_timeout.timeout_seconds".to_string(),
            "120".to_string()
        )]]
    );
    let clb = clbs.lock().unwrap();
    assert_eq!(clb.len(), 1);
    assert!(
        clb[0].contains("connection_settings: Some(ConnectionSettings { idle_timeout: 120 })")
            && clb[0].contains("cross_zone_load_balancing: None")
            && clb[0].contains("access_log: None")
            && clb[0].contains("connection_draining: None")
            && clb[0].contains("additional_attributes: None"),
        "{}",
        clb[0]
    );
}

// --- The organization deployment: what moto cannot show (it ignores trust policies and
// external ids, and its credentials never expire). ---

const CENTRAL: &str = "123456789012";
const MEMBER: &str = "111122223333";

fn organization() -> elbmedic_aws::settings::Organization {
    elbmedic_aws::settings::Organization {
        allowed_accounts: [MEMBER.to_string()].into(),
        member_role_name: Some("elbmedic-member-read".into()),
        external_id: Some("elbmedic-7f3a".into()),
    }
}

fn assumed_until(expires_at: i64) -> aws_sdk_sts::operation::assume_role::AssumeRoleOutput {
    aws_sdk_sts::operation::assume_role::AssumeRoleOutput::builder()
        .credentials(
            aws_sdk_sts::types::Credentials::builder()
                .access_key_id("ASIAMEMBER")
                .secret_access_key("secret")
                .session_token("token")
                .expiration(aws_smithy_types::DateTime::from_secs(expires_at))
                .build()
                .unwrap(),
        )
        .build()
}

/// An alarm of the member account is assumed into with the role, the external id and a
/// session named for the alarm; a role that does not trust the deployment (STS answers
/// AccessDenied) becomes a report that says so and names the StackSet, not a failure.
#[tokio::test]
async fn a_member_role_that_cannot_be_assumed_is_a_report_naming_the_stack_set() {
    use elbmedic_aws::accounts::Accounts;
    use elbmedic_aws::clients::Regions;
    use elbmedic_aws::pipeline::{handle, Facts, Handled, OwnAccount, Run};
    let refused = mock!(aws_sdk_sts::Client::assume_role)
        .match_requests(|r| {
            r.role_arn() == Some("arn:aws:iam::111122223333:role/elbmedic-member-read")
                && r.external_id() == Some("elbmedic-7f3a")
                && r.role_session_name() == Some("elbmedic-checkout-alb-HTTPCode_ELB_504_Count")
        })
        .then_http_response(|| {
            http(
                403,
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/elbmedic-diagnose-eu-west-1/diagnose is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/elbmedic-member-read</Message></Error><RequestId>r1</RequestId></ErrorResponse>",
            )
        });
    let clients = clients(std::slice::from_ref(&refused)).await;
    let accounts = Accounts::new(Regions::preloaded(clients), organization());
    let config =
        elbmedic_aws::settings::Config::from_env(elbmedic_aws::settings::Role::Cli, |_| None)
            .unwrap();
    let run = Run {
        config: &config,
        facts: Facts::Live(&accounts),
        handoff: elbmedic_engine::plan::proposal::Handoff::Topic,
        own_account: OwnAccount::known(Some(CENTRAL.into())),
        now: 1_795_456_800,
        run_id: "test",
    };
    let event = elbmedic_engine::scenarios::find("alb-idle-timeout")
        .unwrap()
        .event;
    let records = elbmedic_engine::alarm::parse_input(event.as_bytes()).unwrap();
    let handled = handle(&run, records).await;
    let [Handled::Reported(record)] = handled.as_slice() else {
        panic!("{handled:?}")
    };
    assert_eq!(refused.num_calls(), 1);
    let report = &record.report;
    assert_eq!(
        report.verdict.status,
        elbmedic_engine::diagnosis::VerdictStatus::Unsupported
    );
    assert!(
        report.verdict.headline.contains(
            "account 111122223333 could not be read: role arn:aws:iam::111122223333:role/elbmedic-member-read was not assumed"
        ),
        "{}",
        report.verdict.headline
    );
    assert!(
        report.next_steps[0].contains("AccessDenied"),
        "{:?}",
        report.next_steps
    );
    assert!(report.next_steps[0].contains("elbmedic-member-roles"));
    assert!(report.checked.is_empty() && report.findings.is_empty());
    assert!(record.plan.is_none() && record.world.is_none());
}

/// Assumed clients are kept per (account, region) until their credentials are within five
/// minutes of expiry, then assumed again; the clock is the caller's.
#[tokio::test]
async fn assumed_clients_are_kept_until_their_credentials_near_expiry() {
    use elbmedic_aws::accounts::{Accounts, RENEW_BEFORE_EXPIRY_SECONDS};
    use elbmedic_aws::clients::Regions;
    let t0 = 1_795_456_800;
    let assume = mock!(aws_sdk_sts::Client::assume_role)
        .sequence()
        .output(move || assumed_until(t0 + 3600))
        .output(move || assumed_until(t0 + 7200))
        .build();
    let accounts = Accounts::new(
        Regions::preloaded(clients(std::slice::from_ref(&assume)).await),
        organization(),
    );
    let reach = |now: i64| {
        let accounts = &accounts;
        async move {
            accounts
                .clients_for(Some(CENTRAL), Some(MEMBER), "eu-west-1", "a", now)
                .await
                .expect("assumed")
        }
    };
    let first = reach(t0).await;
    assert_eq!(first.member_account.as_deref(), Some(MEMBER));
    reach(t0 + 1000).await;
    reach(t0 + 3600 - RENEW_BEFORE_EXPIRY_SECONDS - 1).await;
    assert_eq!(assume.num_calls(), 1, "kept while the credentials last");
    reach(t0 + 3600 - RENEW_BEFORE_EXPIRY_SECONDS + 1).await;
    assert_eq!(assume.num_calls(), 2, "renewed near expiry");
    reach(t0 + 4000).await;
    assert_eq!(assume.num_calls(), 2, "the renewed credentials are kept");
    // The own account, and an alarm naming none, never assume anything.
    let own = accounts
        .clients_for(Some(CENTRAL), Some(CENTRAL), "eu-west-1", "a", t0)
        .await
        .unwrap();
    assert_eq!(own.member_account, None);
    assert!(accounts
        .clients_for(Some(CENTRAL), None, "eu-west-1", "a", t0)
        .await
        .is_ok());
    assert!(matches!(
        accounts
            .clients_for(Some(CENTRAL), Some("444455556666"), "eu-west-1", "a", t0)
            .await,
        Err(elbmedic_engine::account::AccountRefusal::NotAllowed { .. })
    ));
    assert_eq!(assume.num_calls(), 2);
}

/// A member account whose StackSet left remediation off has no write role: remediate's
/// assume is refused, and the plan is refused with that reason, nothing read or applied.
#[tokio::test]
async fn a_missing_write_role_refuses_the_plan_with_its_reason() {
    use elbmedic_aws::accounts::Accounts;
    use elbmedic_aws::clients::Regions;
    use elbmedic_engine::plan::message::{PlanMessage, Request};
    use elbmedic_engine::report::remediation::RemediationSection;
    let refused = mock!(aws_sdk_sts::Client::assume_role).then_http_response(|| {
        http(
            403,
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/elbmedic-member-remediate</Message></Error><RequestId>r1</RequestId></ErrorResponse>",
        )
    });
    let mut org = organization();
    org.member_role_name = Some("elbmedic-member-remediate".into());
    let accounts = Accounts::new(
        Regions::preloaded(clients(std::slice::from_ref(&refused)).await),
        org,
    );
    let scenario = elbmedic_engine::scenarios::find("nacl-ephemeral-node-subnets").unwrap();
    let (alarm, lb) = scenario.alarm().unwrap();
    let world = scenario.world().unwrap();
    let findings = elbmedic_engine::diagnosis::diagnose(&alarm, &world).findings;
    let plan = elbmedic_engine::plan::plan(&world, &findings, &Default::default(), 1000, None);
    let message = PlanMessage::new(Request::Apply, &alarm, &lb, &plan);
    let config = elbmedic_aws::settings::Config::from_env(elbmedic_aws::settings::Role::Cli, |k| {
        (k == "REMEDIATION_MODE").then(|| "auto".to_string())
    })
    .unwrap();
    let refusal = accounts
        .clients_for(
            Some(CENTRAL),
            Some(MEMBER),
            "eu-west-1",
            &alarm.alarm_name,
            1000,
        )
        .await
        .unwrap_err();
    let report = elbmedic_aws::remediate::unreachable(&config, &message, &refusal);
    let Some(RemediationSection::Outcome(outcome)) = &report.remediation else {
        panic!("{:?}", report.remediation)
    };
    assert_eq!(
        outcome.status,
        elbmedic_engine::plan::outcome::OutcomeStatus::Refused
    );
    assert!(
        outcome
            .headline
            .contains("elbmedic-member-remediate was not assumed"),
        "{}",
        outcome.headline
    );
    assert!(outcome.steps.is_empty());
    assert!(report.next_steps[0].contains("EnableRemediation"));
}

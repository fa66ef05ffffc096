//! An ALB. Its ARN is known from the alarm (the `LoadBalancer` dimension is its resource part,
//! the account and region are the alarm's), so round 1 reads the load balancer and everything
//! read by its ARN at once; round 2 the VPC, the LB's nodes and target health; round 3 where
//! the targets live. The EKS cluster (needing the tags) and the prefix lists (needing the
//! security groups) are leaves joined at the end, and metrics are a leaf of the whole gather
//! (`gather::gather`): the critical path is the API depth. Without the account (old alarm
//! messages) what needs the ARN takes a round of its own.

use std::collections::BTreeMap;

use elbmedic_engine::snapshot::{
    GapFact, HealthCheck, Listener, Placement, Snapshot, Target, TargetGroup, DEFAULT_IDLE_TIMEOUT,
};
use tokio::time::Instant;

use super::{all_pages, bounded, join_all, not_found, settle, targets, vpc};
use crate::clients::Clients;
use crate::convert;

/// The ALB's ARN, known before any call when the alarm names the account: the `LoadBalancer`
/// dimension is the ARN's resource part (`app/NAME/ID`).
fn derived_arn(region: &str, account: Option<&str>, id: &str) -> Option<String> {
    let account = account.filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))?;
    let partition = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    };
    Some(format!(
        "arn:{partition}:elasticloadbalancing:{region}:{account}:loadbalancer/{id}"
    ))
}

/// What is read by the load balancer's ARN: attributes, tags, listeners, target groups.
async fn by_arn(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
    deadline: Instant,
) -> ByArn {
    tokio::join!(
        bounded(
            deadline,
            elbv2
                .describe_load_balancer_attributes()
                .load_balancer_arn(arn)
                .send()
        ),
        bounded(deadline, elbv2.describe_tags().resource_arns(arn).send()),
        bounded(deadline, async {
            all_pages!(elbv2
                .describe_listeners()
                .load_balancer_arn(arn)
                .into_paginator())
        }),
        bounded(deadline, async {
            all_pages!(elbv2
                .describe_target_groups()
                .load_balancer_arn(arn)
                .into_paginator())
        }),
    )
}

type Sdk<T, E> = Option<
    Result<
        T,
        aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
>;
type ByArn = (
    Sdk<
        aws_sdk_elasticloadbalancingv2::operation::describe_load_balancer_attributes::DescribeLoadBalancerAttributesOutput,
        aws_sdk_elasticloadbalancingv2::operation::describe_load_balancer_attributes::DescribeLoadBalancerAttributesError,
    >,
    Sdk<
        aws_sdk_elasticloadbalancingv2::operation::describe_tags::DescribeTagsOutput,
        aws_sdk_elasticloadbalancingv2::operation::describe_tags::DescribeTagsError,
    >,
    Sdk<
        Vec<aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput>,
        aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersError,
    >,
    Sdk<
        Vec<aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput>,
        aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsError,
    >,
);

pub async fn gather(clients: &Clients, deadline: Instant, world: &mut Snapshot) {
    let name = world.load_balancer.name.clone();
    let elbv2 = &clients.elbv2;
    let id = world.load_balancer.id.clone();
    // Round 1: the load balancer and, when its ARN is known from the alarm, everything read
    // by that ARN beside it.
    let derived = derived_arn(&clients.region, world.account_id.as_deref(), &id);
    let describe = |arn: Option<String>| {
        let name = name.clone();
        async move {
            bounded(deadline, async {
                let request = match &arn {
                    Some(arn) => elbv2.describe_load_balancers().load_balancer_arns(arn),
                    None => elbv2.describe_load_balancers().names(&name),
                };
                all_pages!(request.into_paginator())
            })
            .await
        }
    };
    let (described, early) = match &derived {
        Some(arn) => {
            let (described, early) =
                tokio::join!(describe(Some(arn.clone())), by_arn(elbv2, arn, deadline));
            (described, Some(early))
        }
        None => (describe(None).await, None),
    };
    // A derived ARN that names no load balancer (a wrong account in the alarm, say): by name.
    let (described, early) = match (&described, &derived) {
        (Some(Ok(pages)), Some(_)) if pages.iter().all(|p| p.load_balancers().is_empty()) => {
            (describe(None).await, None)
        }
        (Some(Err(_)), Some(_)) => (describe(None).await, None),
        _ => (described, early),
    };
    let described = match settle(described, GapFact::LoadBalancer, Some(&name)) {
        Err(gap) => return world.gaps.push(gap),
        Ok(pages) => match pages
            .iter()
            .flat_map(|p| p.load_balancers())
            .next()
            .cloned()
        {
            Some(described) => described,
            None => return world.gaps.push(not_found(&name)),
        },
    };
    let arn = described
        .load_balancer_arn()
        .unwrap_or_default()
        .to_string();
    let at_arn = Some(arn.as_str());
    let lb = &mut world.load_balancer;
    lb.arn = Some(arn.clone());
    lb.dns_name = described.dns_name().map(str::to_string);
    lb.scheme = described.scheme().map(|s| s.as_str().to_string());
    lb.vpc_id = described.vpc_id().unwrap_or_default().to_string();
    lb.subnets = described
        .availability_zones()
        .iter()
        .filter_map(|z| z.subnet_id().map(str::to_string))
        .collect();
    lb.security_groups = described.security_groups().to_vec();
    // Without the account (old alarm messages), what needs the ARN is a round of its own.
    let early = early.filter(|_| derived.as_deref() == Some(arn.as_str()));
    let (attributes, tags, listeners, groups) = match early {
        Some(early) => early,
        None => by_arn(elbv2, &arn, deadline).await,
    };
    match settle(attributes, GapFact::LbAttributes, at_arn) {
        Err(gap) => world.gaps.push(gap),
        Ok(out) => {
            // Unset means the AWS default (moto reports it only once set).
            let value = out
                .attributes()
                .iter()
                .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
                .and_then(|a| a.value());
            world.load_balancer.idle_timeout_seconds = Some(
                value
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_IDLE_TIMEOUT),
            );
        }
    }
    match settle(tags, GapFact::LoadBalancer, Some("tags")) {
        Err(gap) => world.gaps.push(gap),
        Ok(out) => {
            world.load_balancer.tags =
                convert::tags(out.tag_descriptions().iter().flat_map(|d| d.tags()))
        }
    }
    match settle(listeners, GapFact::Listeners, at_arn) {
        Err(gap) => world.gaps.push(gap),
        Ok(pages) => {
            world.load_balancer.listeners = pages
                .iter()
                .flat_map(|p| p.listeners())
                .map(|l| Listener {
                    protocol: l
                        .protocol()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default(),
                    port: convert::port(l.port()).unwrap_or(0),
                    instance_port: None,
                    instance_protocol: None,
                })
                .collect()
        }
    }
    let groups: Vec<aws_sdk_elasticloadbalancingv2::types::TargetGroup> =
        match settle(groups, GapFact::TargetGroups, at_arn) {
            Err(gap) => return world.gaps.push(gap),
            Ok(pages) => pages
                .iter()
                .flat_map(|p| p.target_groups())
                .cloned()
                .collect(),
        };

    // Round 2: the VPC, the LB's nodes and target health, with the cluster (needing only the
    // tags) as a leaf beside them and everything after.
    let cluster = world.load_balancer.cluster_from_tags();
    let (eks, ()) = tokio::join!(
        vpc::eks_cluster(clients, cluster.as_deref(), deadline),
        after_round_one(clients, deadline, &groups, world),
    );
    vpc::apply_eks(world, cluster, eks);
}

/// Rounds 2 and 3: the VPC, the nodes and per target group health and attributes; then where
/// the targets live, with the prefix lists (needing only the security groups) beside it.
async fn after_round_one(
    clients: &Clients,
    deadline: Instant,
    groups: &[aws_sdk_elasticloadbalancingv2::types::TargetGroup],
    world: &mut Snapshot,
) {
    let vpc_id = world.load_balancer.vpc_id.clone();
    let node_description = format!("ELB {}", world.load_balancer.id);
    let (network, nodes, ()) = tokio::join!(
        vpc::network(clients, &vpc_id, deadline),
        vpc::lb_nodes(clients, &node_description, deadline),
        target_groups(clients, deadline, groups, world),
    );
    vpc::apply_network(world, network);
    world.load_balancer.nodes = nodes;
    let prefix_ids = vpc::prefix_list_ids(world);
    let (lists, ()) = tokio::join!(
        vpc::fetch_prefix_lists(clients, prefix_ids, deadline),
        locate_targets(clients, deadline, world),
    );
    vpc::apply_prefix_lists(world, lists);
}

/// Per target group health and attributes, into the snapshot's target groups.
async fn target_groups(
    clients: &Clients,
    deadline: Instant,
    groups: &[aws_sdk_elasticloadbalancingv2::types::TargetGroup],
    world: &mut Snapshot,
) {
    let elbv2 = &clients.elbv2;
    let per_group = groups.iter().map(|g| {
        let tg_arn = g.target_group_arn().unwrap_or_default().to_string();
        async move {
            let (health, attributes) = tokio::join!(
                bounded(
                    deadline,
                    elbv2
                        .describe_target_health()
                        .target_group_arn(&tg_arn)
                        .send()
                ),
                bounded(
                    deadline,
                    elbv2
                        .describe_target_group_attributes()
                        .target_group_arn(&tg_arn)
                        .send()
                ),
            );
            let health = settle(health, GapFact::TargetHealth, Some(&tg_arn));
            let attributes = settle(attributes, GapFact::TargetGroups, Some(&tg_arn));
            (tg_arn, health, attributes)
        }
    });
    let per_group = join_all(per_group.collect()).await;
    for (group, (tg_arn, health, attributes)) in groups.iter().zip(per_group) {
        let mut target_group = TargetGroup {
            name: group.target_group_name().unwrap_or_default().to_string(),
            arn: Some(tg_arn),
            target_type: group
                .target_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| "instance".into()),
            protocol: group.protocol().map(|p| p.as_str().to_string()),
            port: convert::port(group.port()),
            health_check: Some(HealthCheck {
                protocol: group
                    .health_check_protocol()
                    .map(|p| p.as_str().to_string()),
                port: group.health_check_port().map(str::to_string),
                path: group.health_check_path().map(str::to_string),
                timeout_seconds: group
                    .health_check_timeout_seconds()
                    .and_then(|v| u32::try_from(v).ok()),
                interval_seconds: group
                    .health_check_interval_seconds()
                    .and_then(|v| u32::try_from(v).ok()),
            }),
            deregistration_delay_seconds: None,
            tags: BTreeMap::new(),
            targets: Vec::new(),
        };
        match attributes {
            Ok(out) => {
                target_group.deregistration_delay_seconds = out
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse().ok())
            }
            Err(gap) => world.gaps.push(gap),
        }
        match health {
            Ok(out) => {
                target_group.targets = out
                    .target_health_descriptions()
                    .iter()
                    .filter_map(|d| {
                        let target = d.target()?;
                        Some(Target {
                            id: target.id()?.to_string(),
                            port: convert::port(target.port())
                                .or(target_group.port)
                                .unwrap_or(0),
                            availability_zone: target.availability_zone().map(str::to_string),
                            health: convert::alb_health(d.target_health()),
                            placement: Placement::Unobserved,
                        })
                    })
                    .collect()
            }
            Err(gap) => world.gaps.push(gap),
        }
        world.target_groups.push(target_group);
    }
}

/// Where the targets live: instances, and the interfaces holding IP targets.
async fn locate_targets(clients: &Clients, deadline: Instant, world: &mut Snapshot) {
    let instance_ids = targets::of_type(world, "instance");
    let ips = targets::of_type(world, "ip");
    let (instances, enis) = tokio::join!(
        targets::instances(clients, &instance_ids, deadline),
        targets::ip_addresses(clients, &ips, deadline)
    );
    targets::apply(world, "instance", instances, Placement::Unobserved);
    // Not yet known to be stale: the fallback decides.
    targets::apply(world, "ip", enis, Placement::NoInterface);
    targets::prefix_delegation_fallback(clients, world, deadline).await;
}

//! An ALB, one function per round, each returning typed pieces that are applied to the
//! snapshot in one place. Its ARN is known from the alarm (the `LoadBalancer` dimension is its
//! resource part, the account and region are the alarm's), so round 1 reads the load balancer
//! and everything read by its ARN at once; round 2 the VPC, the LB's nodes and target health;
//! round 3 where the targets live. The EKS cluster (needing the tags) and the prefix lists (needing the
//! security groups) are leaves joined at the end, and metrics are a leaf of the whole gather
//! (`gather::gather`): the critical path is the API depth. Without the account (old alarm
//! messages) what needs the ARN takes a round of its own.

use std::collections::BTreeMap;

use elbmedic_engine::alarm::LbKind;
use elbmedic_engine::snapshot::{Gap, GapFact, Listener, Placement, Snapshot, TargetGroup};
use tokio::time::Instant;

use super::convert::{self, Described};
use super::{
    all_pages, bounded, cluster, join_all, metrics, not_found, settle, targets, vpc, GatherOptions,
    Piece,
};
use crate::clients::Clients;

/// The ALB's ARN, known before any call when the alarm names the account: the `LoadBalancer`
/// dimension is the ARN's resource part (`app/NAME/ID`).
pub(super) fn derived_arn(region: &str, account: Option<&str>, id: &str) -> Option<String> {
    let account = account.filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))?;
    let partition = elbmedic_engine::alarm::formats::partition_of(region);
    Some(format!(
        "arn:{partition}:elasticloadbalancing:{region}:{account}:loadbalancer/{id}"
    ))
}

/// What is read by the load balancer's ARN, converted: attributes, tags, listeners, groups.
struct ByArn {
    /// The idle timeout and the access-log settings.
    attributes: Piece<(
        u32,
        elbmedic_engine::snapshot::AccessLogConfig,
        std::collections::BTreeMap<String, String>,
    )>,
    tags: Piece<BTreeMap<String, String>>,
    listeners: Piece<Vec<Listener>>,
    groups: Piece<Vec<TargetGroup>>,
}

async fn by_arn(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
    deadline: Instant,
) -> ByArn {
    let at_arn = Some(arn);
    let (attributes, tags, listeners, groups) = tokio::join!(
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
    );
    ByArn {
        attributes: settle(attributes, GapFact::LbAttributes, at_arn).map(|out| {
            (
                convert::alb_idle_timeout(out.attributes()),
                convert::alb_access_log(out.attributes()),
                convert::alb_attributes(out.attributes()),
            )
        }),
        tags: settle(tags, GapFact::LoadBalancer, Some("tags"))
            .map(|out| convert::tags(out.tag_descriptions().iter().flat_map(|d| d.tags()))),
        listeners: settle(listeners, GapFact::Listeners, at_arn).map(|pages| {
            pages
                .iter()
                .flat_map(|p| p.listeners())
                .map(convert::alb_listener)
                .collect()
        }),
        groups: settle(groups, GapFact::TargetGroups, at_arn).map(|pages| {
            pages
                .iter()
                .flat_map(|p| p.target_groups())
                .map(convert::alb_target_group)
                .collect()
        }),
    }
}

/// The load balancer by its ARN, or by its name when the ARN is not known.
async fn describe(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    name: &str,
    arn: Option<&str>,
    deadline: Instant,
) -> Piece<Option<Described>> {
    let found = bounded(deadline, async {
        let request = match arn {
            Some(arn) => elbv2.describe_load_balancers().load_balancer_arns(arn),
            None => elbv2.describe_load_balancers().names(name),
        };
        all_pages!(request.into_paginator())
    })
    .await;
    settle(found, GapFact::LoadBalancer, Some(name)).map(|pages| {
        pages
            .iter()
            .flat_map(|p| p.load_balancers())
            .next()
            .map(convert::alb_described)
    })
}

/// Round 1: the load balancer (by the ARN derived from the alarm, else by name) and, beside
/// it, what is read by that ARN.
async fn round_one(
    clients: &Clients,
    deadline: Instant,
    world: &Snapshot,
) -> Result<(Described, ByArn), Gap> {
    let name = &world.load_balancer.name;
    let elbv2 = &clients.elbv2;
    let derived = derived_arn(
        &clients.region,
        world.account_id.as_deref(),
        &world.load_balancer.id,
    );
    let (described, early) = match &derived {
        Some(arn) => {
            let (described, early) = tokio::join!(
                describe(elbv2, name, Some(arn), deadline),
                by_arn(elbv2, arn, deadline)
            );
            (described, Some(early))
        }
        None => (describe(elbv2, name, None, deadline).await, None),
    };
    // A derived ARN that names no load balancer (a wrong account in the alarm, say): by name.
    let (described, early) = match (described, &derived) {
        (Ok(None) | Err(_), Some(_)) => (describe(elbv2, name, None, deadline).await, None),
        (described, _) => (described, early),
    };
    let described = described?.ok_or_else(|| not_found(name))?;
    let arn = described.arn.clone().unwrap_or_default();
    // Without the account (old alarm messages), what needs the ARN is a round of its own.
    let by_arn = match early.filter(|_| derived.as_deref() == Some(arn.as_str())) {
        Some(early) => early,
        None => by_arn(elbv2, &arn, deadline).await,
    };
    Ok((described, by_arn))
}

/// Puts round 1's pieces into the snapshot; false when the target groups could not be read
/// (nothing further can be).
fn apply_round_one(world: &mut Snapshot, described: Described, by_arn: ByArn) -> bool {
    let lb = &mut world.load_balancer;
    described.apply(lb);
    let gaps = &mut world.gaps;
    match by_arn.attributes {
        Ok((seconds, access_log, attributes)) => {
            // An NLB has no load-balancer idle timeout (its TCP listeners each have one).
            lb.idle_timeout_seconds = (lb.kind != LbKind::Network).then_some(seconds);
            if lb.kind == LbKind::Network {
                lb.cross_zone = attributes
                    .get("load_balancing.cross_zone.enabled")
                    .map(|v| v == "true");
            }
            lb.access_log = Some(access_log);
            lb.attributes = attributes;
        }
        Err(gap) => gaps.push(gap),
    }
    match by_arn.tags {
        Ok(tags) => lb.tags = tags,
        Err(gap) => gaps.push(gap),
    }
    match by_arn.listeners {
        Ok(listeners) => lb.listeners = listeners,
        Err(gap) => gaps.push(gap),
    }
    match by_arn.groups {
        Ok(groups) => world.target_groups = groups,
        Err(gap) => gaps.push(gap),
    }
    !world.gaps.iter().any(|g| g.fact == GapFact::TargetGroups)
}

pub async fn gather(
    clients: &Clients,
    deadline: Instant,
    options: &GatherOptions,
    world: &mut Snapshot,
) {
    let (described, by_arn) = match round_one(clients, deadline, world).await {
        Ok(pieces) => pieces,
        Err(gap) => return world.gaps.push(gap),
    };
    if !apply_round_one(world, described, by_arn) {
        return;
    }
    // Rounds 2 and 3, with the cluster (needing only the tags) as a branch beside them:
    // DescribeCluster, then the Kubernetes reads.
    let target = cluster::Target::of(world, options.window().0);
    let (eks, ()) = tokio::join!(
        Box::pin(cluster::read(clients, target, &options.cluster, deadline)),
        after_round_one(clients, deadline, options, world),
    );
    cluster::apply(world, eks);
}

/// Rounds 2 and 3: the VPC, the nodes and per target group health and attributes; then where
/// the targets live, with the prefix lists (needing only the security groups) beside it.
async fn after_round_one(
    clients: &Clients,
    deadline: Instant,
    options: &GatherOptions,
    world: &mut Snapshot,
) {
    let vpc_id = world.load_balancer.vpc_id.clone();
    let lb_id = world.load_balancer.id.clone();
    let node_description = format!("ELB {lb_id}");
    let group_ids: Vec<String> = world
        .target_groups
        .iter()
        .filter_map(|g| g.arn.as_deref().and_then(convert::target_group_dimension))
        .collect();
    // An NLB's listeners forward by port, with no rules to read, but each TCP one has its
    // own idle timeout; an ALB's have rules.
    let (alb_listeners, nlb_listeners) = match world.load_balancer.kind {
        LbKind::Network => (&[][..], &world.load_balancer.listeners[..]),
        _ => (&world.load_balancer.listeners[..], &[][..]),
    };
    let (network, nodes, health, healthy_hosts, rules, listener_attributes) = tokio::join!(
        vpc::network(clients, &vpc_id, deadline),
        vpc::lb_nodes(clients, &node_description, deadline),
        group_health(clients, deadline, &world.target_groups),
        metrics::healthy_hosts_per_group(clients, &lb_id, &group_ids, options, deadline),
        // Boxed: a join holds every branch's future inline, and these are large.
        Box::pin(listener_rules(clients, deadline, alb_listeners)),
        Box::pin(listener_attributes(clients, deadline, nlb_listeners)),
    );
    vpc::apply_network(world, network);
    world.load_balancer.nodes = nodes;
    apply_group_health(world, health);
    let read = rules
        .into_iter()
        .map(|r| r.map(|rules| (Some(rules), None)))
        .chain(
            listener_attributes
                .into_iter()
                .map(|a| a.map(|attributes| (None, Some(attributes)))),
        );
    for (listener, read) in world.load_balancer.listeners.iter_mut().zip(read) {
        match read {
            Ok((rules, attributes)) => {
                listener.rules = rules;
                listener.attributes = attributes;
            }
            Err(gap) => world.gaps.push(gap),
        }
    }
    match healthy_hosts {
        Ok(series) => world.metrics.extend(series),
        Err(gap) => world.gaps.push(gap),
    }
    let prefix_ids = vpc::prefix_list_ids(world);
    let (lists, ()) = tokio::join!(
        vpc::fetch_prefix_lists(clients, prefix_ids, deadline),
        locate_targets(clients, deadline, world),
    );
    vpc::apply_prefix_lists(world, lists);
}

/// Each listener's rules besides the default one: which of them forward to which group. Read
/// in round 2, beside target health (the listeners' ARNs come with round 1).
async fn listener_rules(
    clients: &Clients,
    deadline: Instant,
    listeners: &[Listener],
) -> Vec<Piece<Vec<elbmedic_engine::snapshot::ListenerRule>>> {
    let elbv2 = &clients.elbv2;
    let per_listener = listeners.iter().map(|listener| {
        let arn = listener.arn.clone().unwrap_or_default();
        async move {
            // A listener holds at most 100 rules besides the default one: one page of 400.
            let out = bounded(
                deadline,
                elbv2
                    .describe_rules()
                    .listener_arn(&arn)
                    .page_size(400)
                    .send(),
            )
            .await;
            settle(out, GapFact::Listeners, Some(&arn))
                .map(|out| out.rules().iter().filter_map(convert::alb_rule).collect())
        }
    });
    join_all(per_listener.collect()).await
}

/// Each NLB listener's attributes (its TCP idle timeout). Read in round 2, beside target
/// health; a UDP or TLS listener's timeout is fixed, so it is not read.
async fn listener_attributes(
    clients: &Clients,
    deadline: Instant,
    listeners: &[Listener],
) -> Vec<Piece<std::collections::BTreeMap<String, String>>> {
    let elbv2 = &clients.elbv2;
    let per_listener = listeners.iter().map(|listener| {
        let arn = listener.arn.clone().unwrap_or_default();
        let settable = listener.flow_idle_timeout().settable;
        async move {
            if !settable {
                return Ok(std::collections::BTreeMap::new());
            }
            let out = bounded(
                deadline,
                elbv2
                    .describe_listener_attributes()
                    .listener_arn(&arn)
                    .send(),
            )
            .await;
            settle(out, GapFact::Listeners, Some(&arn))
                .map(|out| convert::listener_attributes(out.attributes()))
        }
    });
    join_all(per_listener.collect()).await
}

/// One target group's registered targets with their health, and its attributes.
struct GroupHealth {
    targets: Piece<Vec<elbmedic_engine::snapshot::Target>>,
    attributes: Piece<convert::GroupAttributes>,
}

/// Round 2's per group reads, every group at once.
async fn group_health(
    clients: &Clients,
    deadline: Instant,
    groups: &[TargetGroup],
) -> Vec<GroupHealth> {
    let elbv2 = &clients.elbv2;
    let per_group = groups.iter().map(|group| {
        let tg_arn = group.arn.clone().unwrap_or_default();
        let group_port = group.port;
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
            GroupHealth {
                targets: settle(health, GapFact::TargetHealth, Some(&tg_arn)).map(|out| {
                    out.target_health_descriptions()
                        .iter()
                        .filter_map(|d| convert::alb_target(d, group_port))
                        .collect()
                }),
                attributes: settle(attributes, GapFact::TargetGroups, Some(&tg_arn))
                    .map(|out| convert::group_attributes(out.attributes())),
            }
        }
    });
    join_all(per_group.collect()).await
}

fn apply_group_health(world: &mut Snapshot, health: Vec<GroupHealth>) {
    for (group, health) in world.target_groups.iter_mut().zip(health) {
        match health.attributes {
            Ok(attributes) => {
                group.deregistration_delay_seconds = attributes.deregistration_delay_seconds;
                group.slow_start_seconds = attributes.slow_start_seconds;
                group.preserve_client_ip = attributes.preserve_client_ip;
            }
            Err(gap) => world.gaps.push(gap),
        }
        match health.targets {
            Ok(targets) => group.targets = targets,
            Err(gap) => world.gaps.push(gap),
        }
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

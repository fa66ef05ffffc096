//! A Classic LB, one function per round, each returning typed pieces applied to the snapshot
//! in one place: round 1 the load balancer, its attributes, tags and instance health; round 2
//! the instances and the VPC; round 3 prefix lists, only if rules name any. (Metrics are a
//! leaf of the whole gather: see `gather::gather`.)

use std::collections::BTreeMap;

use elbmedic_engine::snapshot::{
    Gap, GapFact, HealthCheck, Listener, Placement, Snapshot, Target, TargetGroup, TargetHealth,
};
use tokio::time::Instant;

use super::convert::{self, Described};
use super::{all_pages, bounded, cluster, not_found, settle, targets, vpc, GatherOptions, Piece};
use crate::clients::Clients;

/// What round 1 learns, converted.
struct RoundOne {
    described: Described,
    listeners: Vec<Listener>,
    instance_ids: Vec<String>,
    health_check: Option<HealthCheck>,
    attributes: Piece<convert::ClassicAttributes>,
    tags: Piece<BTreeMap<String, String>>,
    /// Each registered instance's state.
    states: Piece<BTreeMap<String, TargetHealth>>,
}

/// Round 1: everything read by the load balancer's name, at once.
async fn round_one(clients: &Clients, deadline: Instant, name: &str) -> Result<RoundOne, Gap> {
    let named = Some(name);
    let elb = &clients.elb;
    let (described, attributes, tags, health) = tokio::join!(
        bounded(deadline, async {
            all_pages!(elb
                .describe_load_balancers()
                .load_balancer_names(name)
                .into_paginator())
        }),
        bounded(
            deadline,
            elb.describe_load_balancer_attributes()
                .load_balancer_name(name)
                .send()
        ),
        bounded(
            deadline,
            elb.describe_tags().load_balancer_names(name).send()
        ),
        bounded(
            deadline,
            elb.describe_instance_health()
                .load_balancer_name(name)
                .send()
        ),
    );
    let pages = settle(described, GapFact::LoadBalancer, named)?;
    let description = pages
        .iter()
        .flat_map(|p| p.load_balancer_descriptions())
        .next()
        .ok_or_else(|| not_found(name))?;
    Ok(RoundOne {
        described: convert::classic_described(description),
        listeners: description
            .listener_descriptions()
            .iter()
            .filter_map(|d| d.listener())
            .map(convert::classic_listener)
            .collect(),
        instance_ids: description
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect(),
        health_check: description
            .health_check()
            .map(convert::classic_health_check),
        attributes: settle(attributes, GapFact::LbAttributes, named)
            .map(|out| convert::classic_attributes(out.load_balancer_attributes())),
        tags: settle(tags, GapFact::LoadBalancer, Some("tags"))
            .map(|out| convert::tags(out.tag_descriptions().iter().flat_map(|d| d.tags()))),
        states: settle(health, GapFact::TargetHealth, named).map(|out| {
            out.instance_states()
                .iter()
                .filter_map(|s| Some((s.instance_id()?.to_string(), convert::classic_health(s))))
                .collect()
        }),
    })
}

/// Puts round 1's pieces into the snapshot: the load balancer, and its instances as the one
/// target group a Classic LB has.
fn apply_round_one(world: &mut Snapshot, first: RoundOne) {
    let lb = &mut world.load_balancer;
    first.described.apply(lb);
    lb.listeners = first.listeners;
    match first.attributes {
        Ok(attributes) => {
            lb.idle_timeout_seconds = Some(attributes.idle_timeout);
            lb.cross_zone = attributes.cross_zone;
            lb.connection_draining_seconds = attributes.draining_seconds;
            lb.access_log = attributes.access_log;
        }
        Err(gap) => world.gaps.push(gap),
    }
    match first.tags {
        Ok(tags) => lb.tags = tags,
        Err(gap) => world.gaps.push(gap),
    }
    let states = first.states.unwrap_or_else(|gap| {
        world.gaps.push(gap);
        BTreeMap::new()
    });
    // The instance port: the first HTTP(S) listener's, else the first listener's.
    let listeners = &lb.listeners;
    let instance_port = listeners
        .iter()
        .find(|l| l.protocol.to_ascii_uppercase().starts_with("HTTP"))
        .or(listeners.first())
        .and_then(|l| l.instance_port)
        .unwrap_or(80);
    let unknown = || TargetHealth {
        state: "unknown".into(),
        reason: None,
        description: None,
    };
    world.target_groups = vec![TargetGroup {
        name: lb.name.clone(),
        arn: None,
        target_type: "instance".into(),
        protocol: listeners.first().and_then(|l| l.instance_protocol.clone()),
        port: Some(instance_port),
        health_check: first.health_check,
        deregistration_delay_seconds: None,
        slow_start_seconds: None,
        protocol_version: None,
        preserve_client_ip: None,
        ip_address_type: None,
        tags: BTreeMap::new(),
        targets: first
            .instance_ids
            .iter()
            .map(|id| Target {
                id: id.clone(),
                port: instance_port,
                availability_zone: None,
                health: states.get(id).cloned().unwrap_or_else(unknown),
                placement: Placement::Unobserved,
            })
            .collect(),
    }];
}

pub async fn gather(
    clients: &Clients,
    deadline: Instant,
    options: &GatherOptions,
    world: &mut Snapshot,
) {
    let name = world.load_balancer.name.clone();
    let first = match round_one(clients, deadline, &name).await {
        Ok(first) => first,
        Err(gap) => return world.gaps.push(gap),
    };
    let instance_ids = first.instance_ids.clone();
    apply_round_one(world, first);

    // The cluster (DescribeCluster, then the Kubernetes reads) as a branch beside rounds 2
    // and 3: it needs only the tags.
    let target = cluster::Target::of(world, options.window().0);
    let (eks, ()) = tokio::join!(
        Box::pin(cluster::read(clients, target, &options.cluster, deadline)),
        after_round_one(clients, deadline, &name, instance_ids, world),
    );
    cluster::apply(world, eks);
}

/// Round 2, everything that needs only the VPC or the instance ids; round 3, only when rules
/// name prefix lists.
async fn after_round_one(
    clients: &Clients,
    deadline: Instant,
    name: &str,
    instance_ids: Vec<String>,
    world: &mut Snapshot,
) {
    let vpc_id = world.load_balancer.vpc_id.clone();
    let node_description = format!("ELB {name}");
    let (network, instances, nodes) = tokio::join!(
        vpc::network(clients, &vpc_id, deadline),
        targets::instances(clients, &instance_ids, deadline),
        vpc::lb_nodes(clients, &node_description, deadline),
    );
    vpc::apply_network(world, network);
    // A terminated instance is not an interface problem: it stays unobserved.
    targets::apply(world, "instance", instances, Placement::Unobserved);
    world.load_balancer.nodes = nodes;
    vpc::resolve_prefix_lists(clients, world, deadline).await;
}

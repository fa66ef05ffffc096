//! A Classic LB: round 1 the load balancer, its attributes, tags and instance health; round 2
//! the instances and the VPC; round 3 prefix lists, only if rules name any. (Metrics are a
//! leaf of the whole gather: see `gather::gather`.)

use std::collections::BTreeMap;

use elbmedic_engine::snapshot::{
    GapFact, Listener, Placement, Snapshot, Target, TargetGroup, TargetHealth, DEFAULT_IDLE_TIMEOUT,
};
use tokio::time::Instant;

use super::{all_pages, bounded, not_found, settle, targets, vpc};
use crate::clients::Clients;
use crate::convert;

pub async fn gather(clients: &Clients, deadline: Instant, world: &mut Snapshot) {
    let name = world.load_balancer.name.clone();
    let named = Some(name.as_str());
    let elb = &clients.elb;
    let (described, attributes, tags, health) = tokio::join!(
        bounded(deadline, async {
            all_pages!(elb
                .describe_load_balancers()
                .load_balancer_names(&name)
                .into_paginator())
        }),
        bounded(
            deadline,
            elb.describe_load_balancer_attributes()
                .load_balancer_name(&name)
                .send()
        ),
        bounded(
            deadline,
            elb.describe_tags().load_balancer_names(&name).send()
        ),
        bounded(
            deadline,
            elb.describe_instance_health()
                .load_balancer_name(&name)
                .send()
        ),
    );
    let description = match settle(described, GapFact::LoadBalancer, named) {
        Err(gap) => return world.gaps.push(gap),
        Ok(pages) => match pages
            .iter()
            .flat_map(|p| p.load_balancer_descriptions())
            .next()
            .cloned()
        {
            Some(description) => description,
            None => return world.gaps.push(not_found(&name)),
        },
    };
    let lb = &mut world.load_balancer;
    lb.dns_name = description.dns_name().map(str::to_string);
    lb.scheme = description.scheme().map(str::to_string);
    lb.vpc_id = description.vpc_id().unwrap_or_default().to_string();
    lb.subnets = description.subnets().to_vec();
    lb.security_groups = description.security_groups().to_vec();
    lb.listeners = description
        .listener_descriptions()
        .iter()
        .filter_map(|d| d.listener())
        .map(|l| Listener {
            protocol: l.protocol().to_string(),
            port: convert::port(Some(l.load_balancer_port())).unwrap_or(0),
            instance_port: convert::port(Some(l.instance_port())),
            instance_protocol: l.instance_protocol().map(str::to_string),
        })
        .collect();
    match settle(attributes, GapFact::LbAttributes, named) {
        Err(gap) => world.gaps.push(gap),
        Ok(out) => {
            let attributes = out.load_balancer_attributes();
            world.load_balancer.idle_timeout_seconds = attributes
                .and_then(|a| a.connection_settings())
                .and_then(|c| u32::try_from(c.idle_timeout()).ok())
                .or(Some(DEFAULT_IDLE_TIMEOUT));
            world.load_balancer.cross_zone = attributes
                .and_then(|a| a.cross_zone_load_balancing())
                .map(|c| c.enabled());
        }
    }
    match settle(tags, GapFact::LoadBalancer, Some("tags")) {
        Err(gap) => world.gaps.push(gap),
        Ok(out) => {
            world.load_balancer.tags =
                convert::tags(out.tag_descriptions().iter().flat_map(|d| d.tags()))
        }
    }
    let states: BTreeMap<String, TargetHealth> = match settle(health, GapFact::TargetHealth, named)
    {
        Err(gap) => {
            world.gaps.push(gap);
            BTreeMap::new()
        }
        Ok(out) => out
            .instance_states()
            .iter()
            .filter_map(|s| Some((s.instance_id()?.to_string(), convert::classic_health(s))))
            .collect(),
    };
    // The instance port: the first HTTP(S) listener's, else the first listener's.
    let listeners = &world.load_balancer.listeners;
    let instance_port = listeners
        .iter()
        .find(|l| l.protocol.to_ascii_uppercase().starts_with("HTTP"))
        .or(listeners.first())
        .and_then(|l| l.instance_port)
        .unwrap_or(80);
    let instance_ids: Vec<String> = description
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    let unknown = || TargetHealth {
        state: "unknown".into(),
        reason: None,
        description: None,
    };
    world.target_groups = vec![TargetGroup {
        name: name.clone(),
        arn: None,
        target_type: "instance".into(),
        protocol: listeners.first().and_then(|l| l.instance_protocol.clone()),
        port: Some(instance_port),
        health_check: description
            .health_check()
            .map(convert::classic_health_check),
        deregistration_delay_seconds: None,
        tags: BTreeMap::new(),
        targets: instance_ids
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

    // Round 2: everything that needs only the VPC, the instance ids or the cluster name.
    let vpc_id = world.load_balancer.vpc_id.clone();
    let cluster = world.load_balancer.cluster_from_tags();
    let node_description = format!("ELB {name}");
    let (network, instances, nodes, eks) = tokio::join!(
        vpc::network(clients, &vpc_id, deadline),
        targets::instances(clients, &instance_ids, deadline),
        vpc::lb_nodes(clients, &node_description, deadline),
        vpc::eks_cluster(clients, cluster.as_deref(), deadline),
    );
    vpc::apply_network(world, network);
    // A terminated instance is not an interface problem: it stays unobserved.
    targets::apply(world, "instance", instances, Placement::Unobserved);
    world.load_balancer.nodes = nodes;
    vpc::apply_eks(world, cluster, eks);
    vpc::resolve_prefix_lists(clients, world, deadline).await;
}

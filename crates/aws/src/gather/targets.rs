//! Where the targets live: instance targets through DescribeInstances, IPv4 targets through
//! DescribeNetworkInterfaces by address in batches, then, for IPs found on no interface and
//! for every IPv6 target, the ENIs of their subnets (secondary and IPv6 addresses, delegated
//! IPv4 and IPv6 `/80` prefixes). What is still not found is stale.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use elbmedic_engine::netcheck::{AddrRange, Family};
use elbmedic_engine::snapshot::{Gap, GapFact, Interface, Placement, Snapshot};
use tokio::time::Instant;

use super::convert;
use super::{all_pages, bounded, join_all, settle, BATCH};
use crate::clients::Clients;

type Found = Result<BTreeMap<String, Interface>, Gap>;

/// Distinct target ids of the groups of one target type.
pub fn of_type(world: &Snapshot, target_type: &str) -> Vec<String> {
    let ids: BTreeSet<String> = world
        .target_groups
        .iter()
        .filter(|g| g.target_type == target_type)
        .flat_map(|g| g.targets.iter().map(|t| t.id.clone()))
        .collect();
    ids.into_iter().collect()
}

/// Instance id -> primary interface; `None` when there are no instance targets.
pub async fn instances(clients: &Clients, ids: &[String], deadline: Instant) -> Option<Found> {
    if ids.is_empty() {
        return None;
    }
    let batches = ids.chunks(BATCH).map(|batch| {
        let request = clients
            .ec2
            .describe_instances()
            .set_instance_ids(Some(batch.to_vec()));
        bounded(
            deadline,
            async move { all_pages!(request.into_paginator()) },
        )
    });
    let mut found = BTreeMap::new();
    for result in join_all(batches.collect()).await {
        let pages = match settle(result, GapFact::TargetPlacement, Some("instances")) {
            Ok(pages) => pages,
            Err(gap) => return Some(Err(gap)),
        };
        for instance in pages
            .iter()
            .flat_map(|p| p.reservations())
            .flat_map(|r| r.instances())
        {
            if let (Some(id), Some(interface)) = (
                instance.instance_id(),
                convert::instance_interface(instance),
            ) {
                found.insert(id.to_string(), interface);
            }
        }
    }
    Some(Ok(found))
}

/// IP -> the interface holding it as an address, looked up in concurrent batches.
pub async fn ip_addresses(clients: &Clients, ips: &[String], deadline: Instant) -> Option<Found> {
    if ips.is_empty() {
        return None;
    }
    // IPv6 targets are found by their subnets' ENIs (the fallback): a pod's IPv6 address
    // usually sits in a delegated /80, which no address filter matches.
    let ipv4: Vec<String> = ips
        .iter()
        .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .cloned()
        .collect();
    let batches = ipv4.chunks(BATCH).map(|batch| {
        let filter = Filter::builder()
            .name("addresses.private-ip-address")
            .set_values(Some(batch.to_vec()))
            .build();
        let request = clients.ec2.describe_network_interfaces().filters(filter);
        bounded(
            deadline,
            async move { all_pages!(request.into_paginator()) },
        )
    });
    let mut found = BTreeMap::new();
    for result in join_all(batches.collect()).await {
        let pages = match settle(result, GapFact::TargetPlacement, Some("network interfaces")) {
            Ok(pages) => pages,
            Err(gap) => return Some(Err(gap)),
        };
        for eni in pages.iter().flat_map(|p| p.network_interfaces()) {
            found.extend(convert::interface_addresses(eni));
        }
    }
    Some(Ok(found))
}

/// Places the targets of one type. A target not found is `missing` (unobserved for a gone
/// instance, not-yet-known for an IP until the fallback has looked).
pub fn apply(world: &mut Snapshot, target_type: &str, fetched: Option<Found>, missing: Placement) {
    match fetched {
        None => {}
        Some(Err(gap)) => world.gaps.push(gap),
        Some(Ok(found)) => {
            for group in world
                .target_groups
                .iter_mut()
                .filter(|g| g.target_type == target_type)
            {
                for target in &mut group.targets {
                    target.placement = match found.get(&target.id) {
                        Some(interface) => Placement::Interface(interface.clone()),
                        None => missing.clone(),
                    };
                }
            }
        }
    }
}

/// With prefix delegation a pod IP sits inside an `Ipv4Prefixes` entry of its node's ENI,
/// not as an address; and some filter implementations match primary addresses only. For IPs
/// found on no ENI, list the ENIs of the subnets that contain them and look at their
/// addresses and inside their prefixes; what is still not found is stale.
pub async fn prefix_delegation_fallback(
    clients: &Clients,
    world: &mut Snapshot,
    deadline: Instant,
) {
    let missing: Vec<AddrRange> = world
        .target_groups
        .iter()
        .flat_map(|g| g.targets.iter())
        .filter(|t| t.placement == Placement::NoInterface)
        .filter_map(|t| AddrRange::parse(&t.id))
        .collect();
    let containing = |addr: &AddrRange| {
        world
            .subnets
            .iter()
            .find(|s| {
                s.cidr_ipv4
                    .iter()
                    .chain(&s.cidr_ipv6)
                    .filter_map(|c| AddrRange::parse(c))
                    .any(|c| c.contains(addr))
            })
            .map(|s| s.id.clone())
    };
    let subnets: BTreeSet<String> = missing.iter().filter_map(containing).collect();
    // An IPv6 target is looked up only here: in no subnet that was read, it was not looked up
    // at all, so it is not known to be stale.
    let unsearched: BTreeSet<String> = world
        .target_groups
        .iter()
        .flat_map(|g| g.targets.iter())
        .filter(|t| t.placement == Placement::NoInterface)
        .filter(|t| {
            AddrRange::parse(&t.id)
                .is_some_and(|a| a.family == Family::Ipv6 && containing(&a).is_none())
        })
        .map(|t| t.id.clone())
        .collect();
    for target in world
        .target_groups
        .iter_mut()
        .flat_map(|g| g.targets.iter_mut())
        .filter(|t| unsearched.contains(&t.id))
    {
        target.placement = Placement::Unobserved;
    }
    if subnets.is_empty() {
        return;
    }
    let filter = Filter::builder()
        .name("subnet-id")
        .set_values(Some(subnets.into_iter().collect()))
        .build();
    let request = clients.ec2.describe_network_interfaces().filters(filter);
    let result = bounded(
        deadline,
        async move { all_pages!(request.into_paginator()) },
    )
    .await;
    let pages = match settle(result, GapFact::TargetPlacement, Some("delegated prefixes")) {
        Ok(pages) => pages,
        Err(gap) => return mark_unobserved(world, gap),
    };
    let enis: Vec<&aws_sdk_ec2::types::NetworkInterface> =
        pages.iter().flat_map(|p| p.network_interfaces()).collect();
    // Keyed by the parsed address: IPv6 has many spellings of one address.
    let addresses: BTreeMap<AddrRange, Interface> = enis
        .iter()
        .flat_map(|eni| convert::interface_addresses(eni))
        .filter_map(|(ip, interface)| AddrRange::parse(&ip).map(|a| (a, interface)))
        .collect();
    let prefixes: Vec<(AddrRange, Interface)> = enis
        .iter()
        .flat_map(|eni| convert::interface_prefixes(eni))
        .filter_map(|(prefix, interface)| AddrRange::parse(&prefix).map(|r| (r, interface)))
        .collect();
    for target in world
        .target_groups
        .iter_mut()
        .flat_map(|g| g.targets.iter_mut())
    {
        if target.placement != Placement::NoInterface {
            continue;
        }
        let Some(addr) = AddrRange::parse(&target.id) else {
            continue;
        };
        if let Some(interface) = addresses.get(&addr) {
            target.placement = Placement::Interface(interface.clone());
            continue;
        }
        if let Some((_, interface)) = prefixes.iter().find(|(prefix, _)| prefix.contains(&addr)) {
            target.placement = Placement::Interface(Interface {
                private_ip: target.id.clone(),
                ..interface.clone()
            });
        }
    }
}

/// When the fallback cannot run, "on no interface" is not proven: do not call it stale.
fn mark_unobserved(world: &mut Snapshot, gap: Gap) {
    for target in world
        .target_groups
        .iter_mut()
        .flat_map(|g| g.targets.iter_mut())
    {
        if target.placement == Placement::NoInterface {
            target.placement = Placement::Unobserved;
        }
    }
    world.gaps.push(gap);
}

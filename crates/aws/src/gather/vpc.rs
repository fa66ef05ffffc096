//! The network around the load balancer: the VPC's subnets, NACLs and security groups, the
//! load balancer's own node interfaces, the EKS cluster's security group, and the managed
//! prefix lists that rules reference.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;
use elbmedic_engine::snapshot::{Gap, GapFact, LbNode, PrefixList, Snapshot};
use tokio::time::Instant;

use super::convert;
use super::{all_pages, bounded, join_all, settle};
use crate::clients::Clients;

pub struct Network {
    cidrs: Result<Vec<String>, Gap>,
    subnets: Result<Vec<aws_sdk_ec2::types::Subnet>, Gap>,
    acls: Result<Vec<aws_sdk_ec2::types::NetworkAcl>, Gap>,
    groups: Result<Vec<aws_sdk_ec2::types::SecurityGroup>, Gap>,
}

fn vpc_filter(vpc: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc).build()
}

/// Subnets, NACLs and security groups of the whole VPC, concurrently.
pub async fn network(clients: &Clients, vpc: &str, deadline: Instant) -> Network {
    let ec2 = &clients.ec2;
    let (vpcs, subnets, acls, groups) = tokio::join!(
        bounded(deadline, ec2.describe_vpcs().vpc_ids(vpc).send()),
        bounded(deadline, async {
            all_pages!(ec2
                .describe_subnets()
                .filters(vpc_filter(vpc))
                .into_paginator())
        }),
        bounded(deadline, async {
            all_pages!(ec2
                .describe_network_acls()
                .filters(vpc_filter(vpc))
                .into_paginator())
        }),
        bounded(deadline, async {
            all_pages!(ec2
                .describe_security_groups()
                .filters(vpc_filter(vpc))
                .into_paginator())
        }),
    );
    Network {
        cidrs: settle(vpcs, GapFact::Subnets, Some(vpc)).map(|out| {
            out.vpcs()
                .iter()
                .flat_map(|v| {
                    let v4 = v
                        .cidr_block_association_set()
                        .iter()
                        .filter_map(|a| a.cidr_block().map(str::to_string));
                    let v6 = v
                        .ipv6_cidr_block_association_set()
                        .iter()
                        .filter(|a| {
                            convert::still_associated(
                                a.ipv6_cidr_block_state()
                                    .and_then(|s| s.state())
                                    .map(|s| s.as_str()),
                            )
                        })
                        .filter_map(|a| a.ipv6_cidr_block().map(str::to_string));
                    v.cidr_block()
                        .map(str::to_string)
                        .into_iter()
                        .chain(v4)
                        .chain(v6)
                        .collect::<Vec<_>>()
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        }),
        subnets: settle(subnets, GapFact::Subnets, Some(vpc))
            .map(|pages| pages.iter().flat_map(|p| p.subnets()).cloned().collect()),
        acls: settle(acls, GapFact::NetworkAcls, Some(vpc)).map(|pages| {
            pages
                .iter()
                .flat_map(|p| p.network_acls())
                .cloned()
                .collect()
        }),
        groups: settle(groups, GapFact::SecurityGroups, Some(vpc)).map(|pages| {
            pages
                .iter()
                .flat_map(|p| p.security_groups())
                .cloned()
                .collect()
        }),
    }
}

pub fn apply_network(world: &mut Snapshot, network: Network) {
    match network.cidrs {
        Ok(cidrs) => world.load_balancer.vpc_cidrs = cidrs,
        Err(gap) => world.gaps.push(gap),
    }
    let acls = network.acls.as_deref().unwrap_or_default();
    let associations = convert::nacl_associations(acls);
    // A subnet with no explicit association uses the VPC's default NACL.
    let default_acl = acls
        .iter()
        .find(|a| a.is_default().unwrap_or(false))
        .and_then(|a| a.network_acl_id().map(str::to_string));
    match network.subnets {
        Ok(subnets) => {
            world.subnets = subnets
                .iter()
                .filter_map(convert::subnet)
                .map(|mut s| {
                    s.network_acl_id = associations
                        .get(&s.id)
                        .cloned()
                        .or_else(|| default_acl.clone());
                    s
                })
                .collect()
        }
        Err(gap) => world.gaps.push(gap),
    }
    match network.acls {
        Ok(acls) => world.network_acls = acls.iter().filter_map(convert::network_acl).collect(),
        Err(gap) => world.gaps.push(gap),
    }
    match network.groups {
        Ok(groups) => {
            world.security_groups = groups.iter().filter_map(convert::security_group).collect()
        }
        Err(gap) => world.gaps.push(gap),
    }
}

/// The load balancer's own node interfaces (description `ELB NAME` or `ELB app/NAME/ID`).
/// Optional precision: on failure the engine assumes any address of the LB subnets.
pub async fn lb_nodes(clients: &Clients, description: &str, deadline: Instant) -> Vec<LbNode> {
    let filter = Filter::builder()
        .name("description")
        .values(description)
        .build();
    let request = clients.ec2.describe_network_interfaces().filters(filter);
    let Some(Ok(pages)) = bounded(
        deadline,
        async move { all_pages!(request.into_paginator()) },
    )
    .await
    else {
        return Vec::new();
    };
    pages
        .iter()
        .flat_map(|p| p.network_interfaces())
        .filter_map(|eni| {
            Some(LbNode {
                subnet_id: eni.subnet_id()?.to_string(),
                private_ip: eni.private_ip_address()?.to_string(),
            })
        })
        .collect()
}

/// The managed prefix lists the gathered security groups reference.
pub fn prefix_list_ids(world: &Snapshot) -> BTreeSet<String> {
    world
        .security_groups
        .iter()
        .flat_map(|g| g.ingress.iter().chain(&g.egress))
        .flat_map(|r| r.prefix_list_ids.iter().cloned())
        .collect()
}

/// Each prefix list's CIDRs, or the gap that stands for it. Borrows nothing of the snapshot,
/// so it runs beside the rounds that still fill it.
pub async fn fetch_prefix_lists(
    clients: &Clients,
    ids: BTreeSet<String>,
    deadline: Instant,
) -> Vec<Result<PrefixList, Gap>> {
    let lookups = ids.into_iter().map(|id| {
        let request = clients
            .ec2
            .get_managed_prefix_list_entries()
            .prefix_list_id(&id);
        async move {
            let result = bounded(
                deadline,
                async move { all_pages!(request.into_paginator()) },
            )
            .await;
            settle(result, GapFact::PrefixList, Some(&id)).map(|pages| PrefixList {
                cidrs: pages
                    .iter()
                    .flat_map(|p| p.entries())
                    .filter_map(|e| e.cidr().map(str::to_string))
                    .collect(),
                id,
            })
        }
    });
    join_all(lookups.collect()).await
}

pub fn apply_prefix_lists(world: &mut Snapshot, fetched: Vec<Result<PrefixList, Gap>>) {
    for result in fetched {
        match result {
            Ok(list) => world.prefix_lists.push(list),
            Err(gap) => world.gaps.push(gap),
        }
    }
}

/// Managed prefix lists referenced by the gathered security groups.
pub async fn resolve_prefix_lists(clients: &Clients, world: &mut Snapshot, deadline: Instant) {
    let fetched = fetch_prefix_lists(clients, prefix_list_ids(world), deadline).await;
    apply_prefix_lists(world, fetched);
}

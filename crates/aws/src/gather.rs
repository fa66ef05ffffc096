//! Gathers the snapshot of one load balancer, in as few sequential rounds as the data
//! dependencies allow. Independent calls in a round run concurrently; lists are fetched with
//! filters holding many values, and VPC-wide (subnets, NACLs, security groups) as soon as the
//! VPC is known, so no round waits for another's ids. Every failed call becomes a gap.
//!
//! Rounds (see the README for measured counts):
//! - Classic LB: (1) load balancer, attributes, tags, instance health, metrics;
//!   (2) instances, subnets, NACLs, SGs, LB interfaces, EKS cluster; (3) prefix lists, if any.
//! - ALB: (1) load balancer, metrics; (2) attributes, tags, listeners, target groups,
//!   subnets, NACLs, SGs, LB interfaces; (3) target health and group attributes, EKS cluster,
//!   prefix lists; (4) the targets' interfaces; (4b) only for IPs on no interface: the
//!   prefix-delegation fallback.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_ec2::types::Filter;
use aws_smithy_types::date_time::Format as DateFormat;
use aws_smithy_types::DateTime;
use elbmedic_engine::alarm::{LbKind, LbRef};
use elbmedic_engine::netcheck::AddrRange;
use elbmedic_engine::snapshot::{
    DataPoint, EksCluster, Gap, GapFact, GapReason, Interface, LbNode, Listener, LoadBalancer,
    MetricSeries, Placement, PrefixList, Snapshot, Target, TargetGroup, TargetHealth,
    SCHEMA_VERSION,
};
use tokio::time::Instant;

use crate::clients::Clients;
use crate::convert;
use crate::errors::{deadline_gap, gap};

/// The default bound on a whole gather, well below a Lambda timeout of 30 s or more.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(20);

/// DescribeNetworkInterfaces accepts about 200 filter values per call.
const ADDRESS_BATCH: usize = 199;

/// How to gather. The clock is read by the caller and passed in, so gathering is replayable.
#[derive(Debug, Clone)]
pub struct GatherOptions {
    /// The whole gather finishes within this, below the Lambda timeout.
    pub deadline: Duration,
    /// End of the metric window (epoch seconds): the alarm's state change, or now.
    pub window_end: i64,
    /// Metric period in seconds (the alarm's).
    pub period: u32,
    /// Number of periods fetched, ending at `window_end` (evaluation periods plus look-back).
    pub periods: u32,
    /// When the snapshot is taken (epoch seconds).
    pub now: i64,
    pub account_id: Option<String>,
}

impl GatherOptions {
    pub fn new(
        now: i64,
        window_end: Option<i64>,
        period: Option<u32>,
        evaluation_periods: Option<u32>,
    ) -> Self {
        let period = period.filter(|p| *p >= 60 && *p % 60 == 0).unwrap_or(60);
        Self {
            deadline: DEFAULT_DEADLINE,
            window_end: window_end.unwrap_or(now),
            period,
            // The evaluated periods plus five of look-back, at most a day.
            periods: (evaluation_periods.unwrap_or(1).clamp(1, 100) + 5).min(86_400 / period),
            now,
            account_id: None,
        }
    }
}

/// Runs `future` unless the deadline passed; a late call becomes `None`.
async fn bounded<T>(deadline: Instant, future: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(deadline, future).await.ok()
}

/// Collects the pages of a paginated call, or the first error.
macro_rules! all_pages {
    ($paginator:expr) => {{
        let pages: Vec<_> = $paginator.send().collect().await;
        pages.into_iter().collect::<Result<Vec<_>, _>>()
    }};
}

pub async fn gather(clients: &Clients, lb: &LbRef, options: &GatherOptions) -> Snapshot {
    let deadline = Instant::now() + options.deadline;
    let mut world = Snapshot {
        schema_version: SCHEMA_VERSION,
        captured_at: DateTime::from_secs(options.now)
            .fmt(DateFormat::DateTime)
            .ok(),
        region: clients.region.clone(),
        account_id: options.account_id.clone(),
        load_balancer: LoadBalancer {
            kind: lb.kind,
            name: lb.name.clone(),
            id: lb.id.clone(),
            arn: None,
            dns_name: None,
            scheme: None,
            vpc_id: String::new(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            idle_timeout_seconds: None,
            cross_zone: None,
            listeners: Vec::new(),
            tags: BTreeMap::new(),
            nodes: Vec::new(),
        },
        target_groups: Vec::new(),
        subnets: Vec::new(),
        network_acls: Vec::new(),
        security_groups: Vec::new(),
        prefix_lists: Vec::new(),
        metrics: Vec::new(),
        eks: None,
        gaps: Vec::new(),
    };
    match lb.kind {
        LbKind::Classic => gather_classic(clients, options, deadline, &mut world).await,
        LbKind::Application => gather_application(clients, options, deadline, &mut world).await,
    }
    world
}

// ---------------------------------------------------------------- Classic LB

async fn gather_classic(
    clients: &Clients,
    options: &GatherOptions,
    deadline: Instant,
    world: &mut Snapshot,
) {
    let name = world.load_balancer.name.clone();
    let elb = &clients.elb;
    let (described, attributes, tags, health, metrics) = tokio::join!(
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
        metrics(clients, LbKind::Classic, &name, options, deadline),
    );
    world.metrics = metrics.0;
    world.gaps.extend(metrics.1);
    let description = match described {
        None => {
            return world
                .gaps
                .push(deadline_gap(GapFact::LoadBalancer, Some(&name)))
        }
        Some(Err(e)) => return world.gaps.push(gap(GapFact::LoadBalancer, Some(&name), &e)),
        Some(Ok(pages)) => match pages
            .iter()
            .flat_map(|p| p.load_balancer_descriptions())
            .next()
            .cloned()
        {
            Some(d) => d,
            None => return world.gaps.push(not_found(GapFact::LoadBalancer, &name)),
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
    match attributes {
        None => world
            .gaps
            .push(deadline_gap(GapFact::LbAttributes, Some(&name))),
        Some(Err(e)) => world.gaps.push(gap(GapFact::LbAttributes, Some(&name), &e)),
        Some(Ok(out)) => {
            let attributes = out.load_balancer_attributes();
            world.load_balancer.idle_timeout_seconds = attributes
                .and_then(|a| a.connection_settings())
                .and_then(|c| u32::try_from(c.idle_timeout()).ok())
                .or(Some(elbmedic_engine::snapshot::DEFAULT_IDLE_TIMEOUT));
            world.load_balancer.cross_zone = attributes
                .and_then(|a| a.cross_zone_load_balancing())
                .map(|c| c.enabled());
        }
    }
    match tags {
        None => world
            .gaps
            .push(deadline_gap(GapFact::LoadBalancer, Some("tags"))),
        Some(Err(e)) => world
            .gaps
            .push(gap(GapFact::LoadBalancer, Some("tags"), &e)),
        Some(Ok(out)) => {
            world.load_balancer.tags = out
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .map(|t| {
                    (
                        t.key().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        }
    }
    let states: BTreeMap<String, TargetHealth> = match health {
        None => {
            world
                .gaps
                .push(deadline_gap(GapFact::TargetHealth, Some(&name)));
            BTreeMap::new()
        }
        Some(Err(e)) => {
            world.gaps.push(gap(GapFact::TargetHealth, Some(&name), &e));
            BTreeMap::new()
        }
        Some(Ok(out)) => out
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
                health: states.get(id).cloned().unwrap_or(TargetHealth {
                    state: "unknown".into(),
                    reason: None,
                    description: None,
                }),
                placement: Placement::Unobserved,
            })
            .collect(),
    }];

    // Round 2: everything that needs only the VPC, the instance ids or the cluster name.
    let vpc = world.load_balancer.vpc_id.clone();
    let cluster = cluster_from_tags(&world.load_balancer.tags);
    let node_description = format!("ELB {name}");
    let (network, instances, nodes, eks) = tokio::join!(
        vpc_network(clients, &vpc, deadline),
        instance_interfaces(clients, &instance_ids, deadline),
        lb_nodes(clients, &node_description, deadline),
        eks_cluster(clients, cluster.as_deref(), deadline),
    );
    apply_network(world, network);
    apply_instances(world, instances);
    apply_nodes(world, nodes);
    apply_eks(world, cluster, eks);
    resolve_prefix_lists(clients, world, deadline).await;
}

// ---------------------------------------------------------------- ALB

async fn gather_application(
    clients: &Clients,
    options: &GatherOptions,
    deadline: Instant,
    world: &mut Snapshot,
) {
    let name = world.load_balancer.name.clone();
    let elbv2 = &clients.elbv2;
    let id = world.load_balancer.id.clone();
    let (described, metrics) = tokio::join!(
        bounded(deadline, async {
            all_pages!(elbv2
                .describe_load_balancers()
                .names(&name)
                .into_paginator())
        }),
        metrics(clients, LbKind::Application, &id, options, deadline),
    );
    world.metrics = metrics.0;
    world.gaps.extend(metrics.1);
    let described = match described {
        None => {
            return world
                .gaps
                .push(deadline_gap(GapFact::LoadBalancer, Some(&name)))
        }
        Some(Err(e)) => return world.gaps.push(gap(GapFact::LoadBalancer, Some(&name), &e)),
        Some(Ok(pages)) => match pages
            .iter()
            .flat_map(|p| p.load_balancers())
            .next()
            .cloned()
        {
            Some(d) => d,
            None => return world.gaps.push(not_found(GapFact::LoadBalancer, &name)),
        },
    };
    let arn = described
        .load_balancer_arn()
        .unwrap_or_default()
        .to_string();
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

    // Round 2: what needs the ARN or the VPC.
    let vpc = lb.vpc_id.clone();
    let node_description = format!("ELB {}", lb.id);
    let (attributes, tags, listeners, groups, network, nodes) = tokio::join!(
        bounded(
            deadline,
            elbv2
                .describe_load_balancer_attributes()
                .load_balancer_arn(&arn)
                .send()
        ),
        bounded(deadline, elbv2.describe_tags().resource_arns(&arn).send()),
        bounded(deadline, async {
            all_pages!(elbv2
                .describe_listeners()
                .load_balancer_arn(&arn)
                .into_paginator())
        }),
        bounded(deadline, async {
            all_pages!(elbv2
                .describe_target_groups()
                .load_balancer_arn(&arn)
                .into_paginator())
        }),
        vpc_network(clients, &vpc, deadline),
        lb_nodes(clients, &node_description, deadline),
    );
    match attributes {
        None => world
            .gaps
            .push(deadline_gap(GapFact::LbAttributes, Some(&arn))),
        Some(Err(e)) => world.gaps.push(gap(GapFact::LbAttributes, Some(&arn), &e)),
        Some(Ok(out)) => {
            let value = out
                .attributes()
                .iter()
                .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
                .and_then(|a| a.value());
            // Unset means the AWS default (moto reports it only once set).
            world.load_balancer.idle_timeout_seconds = Some(
                value
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(elbmedic_engine::snapshot::DEFAULT_IDLE_TIMEOUT),
            );
        }
    }
    match tags {
        None => world
            .gaps
            .push(deadline_gap(GapFact::LoadBalancer, Some("tags"))),
        Some(Err(e)) => world
            .gaps
            .push(gap(GapFact::LoadBalancer, Some("tags"), &e)),
        Some(Ok(out)) => {
            world.load_balancer.tags = out
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        }
    }
    match listeners {
        None => world
            .gaps
            .push(deadline_gap(GapFact::Listeners, Some(&arn))),
        Some(Err(e)) => world.gaps.push(gap(GapFact::Listeners, Some(&arn), &e)),
        Some(Ok(pages)) => {
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
    apply_network(world, network);
    apply_nodes(world, nodes);
    let groups: Vec<aws_sdk_elasticloadbalancingv2::types::TargetGroup> = match groups {
        None => {
            world
                .gaps
                .push(deadline_gap(GapFact::TargetGroups, Some(&arn)));
            return;
        }
        Some(Err(e)) => {
            world.gaps.push(gap(GapFact::TargetGroups, Some(&arn), &e));
            return;
        }
        Some(Ok(pages)) => pages
            .iter()
            .flat_map(|p| p.target_groups())
            .cloned()
            .collect(),
    };

    // Round 3: per target group health and attributes; the cluster; prefix lists.
    let cluster = cluster_from_tags(&world.load_balancer.tags);
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
            (tg_arn, health, attributes)
        }
    });
    let (per_group, eks, ()) = tokio::join!(
        futures_join(per_group.collect()),
        eks_cluster(clients, cluster.as_deref(), deadline),
        resolve_prefix_lists(clients, world, deadline),
    );
    apply_eks(world, cluster, eks);
    for (group, (tg_arn, health, attributes)) in groups.iter().zip(per_group) {
        let mut target_group = TargetGroup {
            name: group.target_group_name().unwrap_or_default().to_string(),
            arn: Some(tg_arn.clone()),
            target_type: group
                .target_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| "instance".into()),
            protocol: group.protocol().map(|p| p.as_str().to_string()),
            port: convert::port(group.port()),
            health_check: Some(elbmedic_engine::snapshot::HealthCheck {
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
            Some(Ok(out)) => {
                target_group.deregistration_delay_seconds = out
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse().ok())
            }
            Some(Err(e)) => world
                .gaps
                .push(gap(GapFact::TargetGroups, Some(&tg_arn), &e)),
            None => world
                .gaps
                .push(deadline_gap(GapFact::TargetGroups, Some(&tg_arn))),
        }
        match health {
            Some(Ok(out)) => {
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
            Some(Err(e)) => world
                .gaps
                .push(gap(GapFact::TargetHealth, Some(&tg_arn), &e)),
            None => world
                .gaps
                .push(deadline_gap(GapFact::TargetHealth, Some(&tg_arn))),
        }
        world.target_groups.push(target_group);
    }

    // Round 4: where the targets live.
    let instance_ids: Vec<String> = targets_of_type(world, "instance");
    let ips: Vec<String> = targets_of_type(world, "ip");
    let (instances, enis) = tokio::join!(
        instance_interfaces(clients, &instance_ids, deadline),
        ip_interfaces(clients, &ips, deadline)
    );
    apply_instances(world, instances);
    apply_ip_interfaces(world, enis);
    prefix_delegation_fallback(clients, world, deadline).await;
}

fn targets_of_type(world: &Snapshot, target_type: &str) -> Vec<String> {
    let ids: BTreeSet<String> = world
        .target_groups
        .iter()
        .filter(|g| g.target_type == target_type)
        .flat_map(|g| g.targets.iter().map(|t| t.id.clone()))
        .collect();
    ids.into_iter().collect()
}

/// Polls every future concurrently on the current task and returns their outputs in order.
async fn futures_join<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut pinned: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(outputs.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}

// ---------------------------------------------------------------- shared pieces

fn not_found(fact: GapFact, name: &str) -> Gap {
    Gap {
        fact,
        resource: Some(name.to_string()),
        reason: GapReason::NotFound,
        detail: format!("no load balancer named {name} in this account and region"),
    }
}

/// The EKS cluster named by the controllers' tags.
fn cluster_from_tags(tags: &BTreeMap<String, String>) -> Option<String> {
    tags.get("elbv2.k8s.aws/cluster")
        .cloned()
        .or_else(|| {
            tags.keys()
                .find_map(|k| k.strip_prefix("kubernetes.io/cluster/").map(str::to_string))
        })
        .filter(|c| !c.is_empty())
}

type Fetched<T> = Result<T, Gap>;

struct Network {
    subnets: Fetched<Vec<aws_sdk_ec2::types::Subnet>>,
    acls: Fetched<Vec<aws_sdk_ec2::types::NetworkAcl>>,
    groups: Fetched<Vec<aws_sdk_ec2::types::SecurityGroup>>,
}

fn vpc_filter(vpc: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc).build()
}

/// Subnets, NACLs and security groups of the whole VPC, concurrently.
async fn vpc_network(clients: &Clients, vpc: &str, deadline: Instant) -> Network {
    let ec2 = &clients.ec2;
    let (subnets, acls, groups) = tokio::join!(
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
        subnets: match subnets {
            None => Err(deadline_gap(GapFact::Subnets, Some(vpc))),
            Some(Err(e)) => Err(gap(GapFact::Subnets, Some(vpc), &e)),
            Some(Ok(pages)) => Ok(pages.iter().flat_map(|p| p.subnets()).cloned().collect()),
        },
        acls: match acls {
            None => Err(deadline_gap(GapFact::NetworkAcls, Some(vpc))),
            Some(Err(e)) => Err(gap(GapFact::NetworkAcls, Some(vpc), &e)),
            Some(Ok(pages)) => Ok(pages
                .iter()
                .flat_map(|p| p.network_acls())
                .cloned()
                .collect()),
        },
        groups: match groups {
            None => Err(deadline_gap(GapFact::SecurityGroups, Some(vpc))),
            Some(Err(e)) => Err(gap(GapFact::SecurityGroups, Some(vpc), &e)),
            Some(Ok(pages)) => Ok(pages
                .iter()
                .flat_map(|p| p.security_groups())
                .cloned()
                .collect()),
        },
    }
}

fn apply_network(world: &mut Snapshot, network: Network) {
    let associations = match &network.acls {
        Ok(acls) => convert::nacl_associations(acls),
        Err(_) => BTreeMap::new(),
    };
    let default_acl = network
        .acls
        .as_ref()
        .ok()
        .and_then(|acls| acls.iter().find(|a| a.is_default().unwrap_or(false)))
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
async fn lb_nodes(clients: &Clients, description: &str, deadline: Instant) -> Option<Vec<LbNode>> {
    let filter = Filter::builder()
        .name("description")
        .values(description)
        .build();
    let pages = bounded(deadline, async {
        all_pages!(clients
            .ec2
            .describe_network_interfaces()
            .filters(filter)
            .into_paginator())
    })
    .await?;
    // Optional precision: on failure the engine assumes any address of the LB subnets.
    let pages = pages.ok()?;
    Some(
        pages
            .iter()
            .flat_map(|p| p.network_interfaces())
            .filter_map(|eni| {
                Some(LbNode {
                    subnet_id: eni.subnet_id()?.to_string(),
                    private_ip: eni.private_ip_address()?.to_string(),
                })
            })
            .collect(),
    )
}

fn apply_nodes(world: &mut Snapshot, nodes: Option<Vec<LbNode>>) {
    world.load_balancer.nodes = nodes.unwrap_or_default();
}

/// DescribeCluster for the cluster security group. moto omits it, so the SG tagged
/// `aws:eks:cluster-name` is the fallback (applied once SGs are known).
async fn eks_cluster(
    clients: &Clients,
    cluster: Option<&str>,
    deadline: Instant,
) -> Option<Fetched<Option<String>>> {
    let cluster = cluster?;
    Some(
        match bounded(
            deadline,
            clients.eks.describe_cluster().name(cluster).send(),
        )
        .await
        {
            None => Err(deadline_gap(GapFact::EksCluster, Some(cluster))),
            Some(Err(e)) => Err(gap(GapFact::EksCluster, Some(cluster), &e)),
            Some(Ok(out)) => Ok(out
                .cluster()
                .and_then(|c| c.resources_vpc_config())
                .and_then(|v| v.cluster_security_group_id())
                .map(str::to_string)),
        },
    )
}

fn apply_eks(
    world: &mut Snapshot,
    cluster: Option<String>,
    fetched: Option<Fetched<Option<String>>>,
) {
    let Some(name) = cluster else { return };
    let from_api = match fetched {
        Some(Ok(sg)) => sg,
        Some(Err(gap)) => {
            world.gaps.push(gap);
            None
        }
        None => None,
    };
    let from_tags = world
        .security_groups
        .iter()
        .find(|g| g.tags.get("aws:eks:cluster-name").map(String::as_str) == Some(name.as_str()))
        .map(|g| g.id.clone());
    world.eks = Some(EksCluster {
        name,
        cluster_security_group_id: from_api.or(from_tags),
    });
}

async fn instance_interfaces(
    clients: &Clients,
    ids: &[String],
    deadline: Instant,
) -> Option<Fetched<BTreeMap<String, Interface>>> {
    if ids.is_empty() {
        return None;
    }
    let batches = ids.chunks(ADDRESS_BATCH).map(|batch| {
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
    for result in futures_join(batches.collect()).await {
        match result {
            None => {
                return Some(Err(deadline_gap(
                    GapFact::TargetPlacement,
                    Some("instances"),
                )))
            }
            Some(Err(e)) => return Some(Err(gap(GapFact::TargetPlacement, Some("instances"), &e))),
            Some(Ok(pages)) => {
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
        }
    }
    Some(Ok(found))
}

fn apply_instances(world: &mut Snapshot, fetched: Option<Fetched<BTreeMap<String, Interface>>>) {
    match fetched {
        None => {}
        Some(Err(gap)) => world.gaps.push(gap),
        Some(Ok(found)) => {
            for group in world
                .target_groups
                .iter_mut()
                .filter(|g| g.target_type == "instance")
            {
                for target in &mut group.targets {
                    target.placement = match found.get(&target.id) {
                        Some(interface) => Placement::Interface(interface.clone()),
                        // A terminated instance is not an interface problem: leave it unobserved.
                        None => Placement::Unobserved,
                    };
                }
            }
        }
    }
}

/// The ENIs holding IP targets, looked up by address in batches, concurrently.
async fn ip_interfaces(
    clients: &Clients,
    ips: &[String],
    deadline: Instant,
) -> Option<Fetched<BTreeMap<String, Interface>>> {
    if ips.is_empty() {
        return None;
    }
    let batches = ips.chunks(ADDRESS_BATCH).map(|batch| {
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
    for result in futures_join(batches.collect()).await {
        match result {
            None => {
                return Some(Err(deadline_gap(
                    GapFact::TargetPlacement,
                    Some("network interfaces"),
                )))
            }
            Some(Err(e)) => {
                return Some(Err(gap(
                    GapFact::TargetPlacement,
                    Some("network interfaces"),
                    &e,
                )))
            }
            Some(Ok(pages)) => {
                for eni in pages.iter().flat_map(|p| p.network_interfaces()) {
                    found.extend(convert::interface_addresses(eni));
                }
            }
        }
    }
    Some(Ok(found))
}

fn apply_ip_interfaces(
    world: &mut Snapshot,
    fetched: Option<Fetched<BTreeMap<String, Interface>>>,
) {
    match fetched {
        None => {}
        Some(Err(gap)) => world.gaps.push(gap),
        Some(Ok(found)) => {
            for group in world
                .target_groups
                .iter_mut()
                .filter(|g| g.target_type == "ip")
            {
                for target in &mut group.targets {
                    target.placement = match found.get(&target.id) {
                        Some(interface) => Placement::Interface(interface.clone()),
                        // Not yet known to be stale: the prefix-delegation fallback decides.
                        None => Placement::NoInterface,
                    };
                }
            }
        }
    }
}

/// With prefix delegation a pod IP sits inside an `Ipv4Prefixes` entry of its node's ENI, not
/// as an address. For IPs found on no ENI, list the ENIs of the subnets that contain them and
/// look at their addresses and inside their prefixes; what is still not found is stale.
async fn prefix_delegation_fallback(clients: &Clients, world: &mut Snapshot, deadline: Instant) {
    let missing: Vec<(String, AddrRange)> = world
        .target_groups
        .iter()
        .flat_map(|g| g.targets.iter())
        .filter(|t| t.placement == Placement::NoInterface)
        .filter_map(|t| AddrRange::parse(&t.id).map(|a| (t.id.clone(), a)))
        .collect();
    if missing.is_empty() {
        return;
    }
    let subnets: BTreeSet<String> = missing
        .iter()
        .filter_map(|(_, addr)| {
            world
                .subnets
                .iter()
                .find(|s| {
                    s.cidr_ipv4
                        .as_deref()
                        .and_then(AddrRange::parse)
                        .is_some_and(|c| c.contains(addr))
                })
                .map(|s| s.id.clone())
        })
        .collect();
    if subnets.is_empty() {
        return;
    }
    let filter = Filter::builder()
        .name("subnet-id")
        .set_values(Some(subnets.into_iter().collect()))
        .build();
    let request = clients.ec2.describe_network_interfaces().filters(filter);
    let pages = match bounded(
        deadline,
        async move { all_pages!(request.into_paginator()) },
    )
    .await
    {
        None => {
            return mark_unobserved(
                world,
                deadline_gap(GapFact::TargetPlacement, Some("delegated prefixes")),
            )
        }
        Some(Err(e)) => {
            return mark_unobserved(
                world,
                gap(GapFact::TargetPlacement, Some("delegated prefixes"), &e),
            )
        }
        Some(Ok(pages)) => pages,
    };
    // Both secondary addresses (some filter implementations match only primary ones) and
    // delegated prefixes.
    let enis: Vec<&aws_sdk_ec2::types::NetworkInterface> =
        pages.iter().flat_map(|p| p.network_interfaces()).collect();
    let addresses: BTreeMap<String, Interface> = enis
        .iter()
        .flat_map(|eni| convert::interface_addresses(eni))
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
        if let Some(interface) = addresses.get(&target.id) {
            target.placement = Placement::Interface(interface.clone());
            continue;
        }
        let Some(addr) = AddrRange::parse(&target.id) else {
            continue;
        };
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

/// Managed prefix lists referenced by the gathered security groups.
async fn resolve_prefix_lists(clients: &Clients, world: &mut Snapshot, deadline: Instant) {
    let ids: BTreeSet<String> = world
        .security_groups
        .iter()
        .flat_map(|g| g.ingress.iter().chain(&g.egress))
        .flat_map(|r| r.prefix_list_ids.iter().cloned())
        .collect();
    if ids.is_empty() {
        return;
    }
    let lookups = ids.iter().map(|id| {
        let request = clients
            .ec2
            .get_managed_prefix_list_entries()
            .prefix_list_id(id);
        async move {
            (
                id.clone(),
                bounded(
                    deadline,
                    async move { all_pages!(request.into_paginator()) },
                )
                .await,
            )
        }
    });
    for (id, result) in futures_join(lookups.collect()).await {
        match result {
            None => world
                .gaps
                .push(deadline_gap(GapFact::PrefixList, Some(&id))),
            Some(Err(e)) => world.gaps.push(gap(GapFact::PrefixList, Some(&id), &e)),
            Some(Ok(pages)) => world.prefix_lists.push(PrefixList {
                id,
                cidrs: pages
                    .iter()
                    .flat_map(|p| p.entries())
                    .filter_map(|e| e.cidr().map(str::to_string))
                    .collect(),
            }),
        }
    }
}

// ---------------------------------------------------------------- metrics

/// (metric, statistic) per kind. Percentiles go in a call of their own: moto answers 500 to
/// any GetMetricData holding one, and AWS may throttle; their absence is a gap, not a failure.
/// (metric, statistic) pairs fetched in one GetMetricData call.
type MetricList = &'static [(&'static str, &'static str)];

fn wanted_metrics(kind: LbKind) -> (MetricList, MetricList) {
    match kind {
        LbKind::Application => (
            &[
                ("HTTPCode_ELB_5XX_Count", "Sum"),
                ("HTTPCode_ELB_502_Count", "Sum"),
                ("HTTPCode_ELB_503_Count", "Sum"),
                ("HTTPCode_ELB_504_Count", "Sum"),
                ("TargetConnectionErrorCount", "Sum"),
                ("TargetResponseTime", "Maximum"),
                ("RequestCount", "Sum"),
            ],
            &[("TargetResponseTime", "p99")],
        ),
        LbKind::Classic => (
            &[
                ("HTTPCode_ELB_5XX", "Sum"),
                ("Latency", "Maximum"),
                ("BackendConnectionErrors", "Sum"),
                ("RequestCount", "Sum"),
                ("SurgeQueueLength", "Maximum"),
            ],
            &[],
        ),
    }
}

async fn metrics(
    clients: &Clients,
    kind: LbKind,
    dimension_value: &str,
    options: &GatherOptions,
    deadline: Instant,
) -> (Vec<MetricSeries>, Vec<Gap>) {
    let (plain, percentiles) = wanted_metrics(kind);
    let (plain, percentiles) = tokio::join!(
        metric_call(clients, kind, dimension_value, options, plain, deadline),
        metric_call(
            clients,
            kind,
            dimension_value,
            options,
            percentiles,
            deadline
        ),
    );
    let mut series = Vec::new();
    let mut gaps = Vec::new();
    for result in [plain, percentiles] {
        match result {
            Ok(found) => series.extend(found),
            Err(gap) => gaps.push(gap),
        }
    }
    (series, gaps)
}

async fn metric_call(
    clients: &Clients,
    kind: LbKind,
    dimension_value: &str,
    options: &GatherOptions,
    wanted: &[(&str, &str)],
    deadline: Instant,
) -> Result<Vec<MetricSeries>, Gap> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let dimension = match kind {
        LbKind::Application => Dimension::builder()
            .name("LoadBalancer")
            .value(dimension_value)
            .build(),
        LbKind::Classic => Dimension::builder()
            .name("LoadBalancerName")
            .value(dimension_value)
            .build(),
    };
    let period = options.period as i32;
    let queries: Vec<MetricDataQuery> = wanted
        .iter()
        .enumerate()
        .map(|(i, (metric, stat))| {
            MetricDataQuery::builder()
                .id(format!("m{i}"))
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(kind.namespace())
                                .metric_name(*metric)
                                .dimensions(dimension.clone())
                                .build(),
                        )
                        .period(period)
                        .stat(*stat)
                        .build(),
                )
                .return_data(true)
                .build()
        })
        .collect();
    // Align the window to the period, ending just after the period holding the state change.
    let p = i64::from(options.period);
    let end = (options.window_end.div_euclid(p) + 1) * p;
    let start = end - p * i64::from(options.periods);
    let request = clients
        .cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(DateTime::from_secs(start))
        .end_time(DateTime::from_secs(end))
        .scan_by(ScanBy::TimestampAscending);
    let label = wanted
        .iter()
        .map(|(m, s)| format!("{m} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let pages = match bounded(
        deadline,
        async move { all_pages!(request.into_paginator()) },
    )
    .await
    {
        None => return Err(deadline_gap(GapFact::Metrics, Some(&label))),
        Some(Err(e)) => return Err(gap(GapFact::Metrics, Some(&label), &e)),
        Some(Ok(pages)) => pages,
    };
    let mut points: BTreeMap<usize, Vec<DataPoint>> = BTreeMap::new();
    for result in pages.iter().flat_map(|p| p.metric_data_results()) {
        let Some(index) = result
            .id()
            .and_then(|id| id.strip_prefix('m'))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let entry = points.entry(index).or_default();
        for (timestamp, value) in result.timestamps().iter().zip(result.values()) {
            entry.push(DataPoint {
                timestamp: timestamp.fmt(DateFormat::DateTime).unwrap_or_default(),
                value: *value,
            });
        }
    }
    Ok(wanted
        .iter()
        .enumerate()
        .map(|(i, (metric, stat))| {
            let mut series_points = points.remove(&i).unwrap_or_default();
            series_points.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
            MetricSeries {
                metric_name: metric.to_string(),
                statistic: stat.to_string(),
                target_group: None,
                period_seconds: Some(options.period),
                points: series_points,
            }
        })
        .collect())
}

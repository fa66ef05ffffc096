//! The EKS cluster behind the load balancer, as one branch beside the AWS rounds:
//! DescribeCluster (its security group, API endpoint and CA), then, when cluster reads are on,
//! the Kubernetes reads with a token minted from these clients' own credentials (a member
//! account's assumed role for a member's cluster). Nothing here fails the gather: each thing
//! not read is a gap that names why.

use std::time::SystemTime;

use elbmedic_engine::context::Owner;
use elbmedic_engine::kubernetes::Kubernetes;
use elbmedic_engine::snapshot::{EksCluster, Gap, GapFact, GapReason, Snapshot};
use elbmedic_kubernetes::client::{connect, Endpoint};
use elbmedic_kubernetes::read::{self, Scope};
use elbmedic_kubernetes::token::token;
use tokio::time::Instant;

use super::{bounded, settle};
use crate::clients::Clients;

/// Whether the gather reads the cluster's Kubernetes API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClusterReads {
    /// Remediation's re-gathers, and `KUBERNETES_READS=off`.
    #[default]
    Off,
    /// The diagnosis. `test_url` (`KUBERNETES_API_URL`, tests only) replaces every cluster's
    /// endpoint.
    On { test_url: Option<String> },
}

/// What the branch needs from round 1: the cluster the tags name, and whose objects to read.
#[derive(Debug, Clone)]
pub struct Target {
    name: String,
    owner: Option<read::Owner>,
    events_since: i64,
}

impl Target {
    /// The cluster and owner the load balancer's tags name; `None` without a cluster.
    pub fn of(world: &Snapshot, events_since: i64) -> Option<Self> {
        let owner = match Owner::from_tags(world) {
            Owner::Service { namespace, .. } => Some(read::Owner::Service(namespace)),
            Owner::Ingress { namespace, .. } => Some(read::Owner::Ingress(namespace)),
            Owner::IngressGroup { group } => Some(read::Owner::IngressGroup(group)),
            Owner::Unknown => None,
        };
        Some(Self {
            name: world.load_balancer.cluster_from_tags()?,
            owner,
            events_since,
        })
    }
}

/// The branch's outcome, applied to the snapshot in one place.
pub struct Pieces {
    name: String,
    security_group: Result<Option<String>, Gap>,
    /// What was read (`None` when nothing could be: no claim about the cluster is then made)
    /// and the gaps.
    kubernetes: Option<(Option<Kubernetes>, Vec<Gap>)>,
}

/// DescribeCluster and, after it, the Kubernetes reads.
pub async fn read(
    clients: &Clients,
    target: Option<Target>,
    reads: &ClusterReads,
    deadline: Instant,
) -> Option<Pieces> {
    let target = target?;
    let described = bounded(
        deadline,
        clients.eks.describe_cluster().name(&target.name).send(),
    )
    .await;
    let described = settle(described, GapFact::EksCluster, Some(&target.name));
    let cluster = described.as_ref().ok().and_then(|out| out.cluster());
    let security_group = cluster
        .and_then(|c| c.resources_vpc_config())
        .and_then(|v| v.cluster_security_group_id())
        .map(str::to_string);
    let endpoint = cluster.map(endpoint_of);
    let kubernetes = match (reads, &target.owner) {
        (ClusterReads::On { test_url }, Some(owner)) => {
            let endpoint = match endpoint {
                Some(endpoint) => Ok(endpoint.overridden(test_url.as_deref())),
                None => Err(()),
            };
            Some(kubernetes(clients, &target, owner, endpoint, deadline).await)
        }
        _ => None,
    };
    Some(Pieces {
        name: target.name,
        security_group: described.map(|_| security_group),
        kubernetes,
    })
}

/// The reads of one cluster, or the gap that says why none were made.
async fn kubernetes(
    clients: &Clients,
    target: &Target,
    owner: &read::Owner,
    endpoint: Result<Endpoint, ()>,
    deadline: Instant,
) -> (Option<Kubernetes>, Vec<Gap>) {
    let refused = |detail: String| {
        let gap = Gap {
            fact: GapFact::KubernetesApi,
            resource: Some(target.name.clone()),
            reason: GapReason::Error,
            detail,
        };
        (None, vec![gap])
    };
    let Ok(endpoint) = endpoint else {
        return refused("DescribeCluster was not read, so the API endpoint is not known".into());
    };
    let client = match client_for(clients, &target.name, &endpoint).await {
        Ok(client) => client,
        Err(reason) => return refused(reason.0),
    };
    let scope = Scope {
        cluster: target.name.clone(),
        owner: owner.clone(),
        events_since: Some(target.events_since),
    };
    tracing::info!(cluster = %target.name, owner = ?owner, "reading the cluster");
    let (mut cluster, gaps) = Box::pin(read::read(&client, &scope, deadline)).await;
    cluster.cluster = target.name.clone();
    (Some(cluster), gaps)
}

/// Why no client for a cluster could be made: said in a gap or a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoClient(pub String);

impl From<&str> for NoClient {
    fn from(reason: &str) -> Self {
        Self(reason.to_string())
    }
}

impl From<String> for NoClient {
    fn from(reason: String) -> Self {
        Self(reason)
    }
}

/// The API endpoint and CA DescribeCluster gives.
fn endpoint_of(cluster: &aws_sdk_eks::types::Cluster) -> Endpoint {
    Endpoint {
        url: cluster.endpoint().unwrap_or_default().to_string(),
        ca_base64: cluster
            .certificate_authority()
            .and_then(|a| a.data())
            .map(str::to_string),
        test_override: false,
    }
}

/// A client for the cluster `name` at `endpoint`, with a token minted from these clients'
/// credentials (never logged); the reason when there can be none.
async fn client_for(
    clients: &Clients,
    name: &str,
    endpoint: &Endpoint,
) -> Result<elbmedic_kubernetes::Client, NoClient> {
    let credentials = clients
        .credentials()
        .await
        .ok_or("no AWS credentials to sign the cluster token with")?;
    let bearer = token(&credentials, &clients.region, name, SystemTime::now())
        .map_err(|error| format!("no cluster token: {error}"))?;
    connect(endpoint, &bearer).map_err(|error| NoClient(error.to_string()))
}

/// A client for writing to cluster `name` (remediation's): DescribeCluster for the endpoint
/// and CA, then a fresh token. `test_url` replaces the endpoint, as for the reads.
pub async fn writer(
    clients: &Clients,
    name: &str,
    test_url: Option<&str>,
    deadline: Instant,
) -> Result<elbmedic_kubernetes::Client, NoClient> {
    let described = bounded(deadline, clients.eks.describe_cluster().name(name).send())
        .await
        .ok_or_else(|| format!("DescribeCluster {name} did not answer before the deadline"))?
        .map_err(|error| {
            format!(
                "DescribeCluster {name}: {}",
                crate::errors::classify(&error).1
            )
        })?;
    let cluster = described
        .cluster()
        .ok_or_else(|| format!("DescribeCluster {name} answered no cluster"))?;
    client_for(clients, name, &endpoint_of(cluster).overridden(test_url)).await
}

/// Records the cluster and what was read of it. moto's DescribeCluster omits the security
/// group, and so may a failed call: the SG tagged `aws:eks:cluster-name` is the fallback.
pub fn apply(world: &mut Snapshot, pieces: Option<Pieces>) {
    let Some(pieces) = pieces else { return };
    let from_api = match pieces.security_group {
        Ok(sg) => sg,
        Err(gap) => {
            world.gaps.push(gap);
            None
        }
    };
    let name = pieces.name;
    let from_tags = world
        .security_groups
        .iter()
        .find(|g| g.tags.get("aws:eks:cluster-name").map(String::as_str) == Some(name.as_str()))
        .map(|g| g.id.clone());
    world.eks = Some(EksCluster {
        name,
        cluster_security_group_id: from_api.or(from_tags),
    });
    if let Some((cluster, gaps)) = pieces.kubernetes {
        world.gaps.extend(gaps);
        world.kubernetes = cluster;
    }
}

//! elbmedic's Kubernetes shell: what it takes to read the cluster behind a load balancer.
//! The EKS bearer token ([`token`]), a client for the cluster's API server ([`client`]), and
//! the reads into the snapshot's `kubernetes` section ([`read`], [`workload`]). Like
//! `elbmedic-aws` for the SDK, it is the only crate that names the Kubernetes client's types:
//! the engine sees plain data.

pub mod client;
mod convert;
mod list;
pub mod read;
pub mod token;
pub mod workload;

/// Text from a cluster or a URL for an error or a report: at most `max` characters, one line.
pub(crate) fn clipped(text: &str, max: usize) -> String {
    elbmedic_engine::untrusted::one_line(&text.chars().take(max).collect::<String>())
}

//! elbmedic's Kubernetes shell: what it takes to read the cluster behind a load balancer.
//! The EKS bearer token ([`token`]), a client for the cluster's API server ([`client`]), and
//! the reads into the snapshot's `kubernetes` section ([`read`], [`workload`]), and the one
//! kind of change elbmedic makes there, a server-side apply ([`write`]). Like
//! `elbmedic-aws` for the SDK, it is the only crate that names the Kubernetes client's types:
//! the engine sees plain data.

pub mod client;
mod convert;
pub mod events;
mod list;
pub mod read;
pub mod token;
pub mod workload;
pub mod write;

pub(crate) use elbmedic_engine::untrusted::clipped;
/// The client the shells hand around; only this crate builds one.
pub use kube::Client;

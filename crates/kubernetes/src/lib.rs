//! elbmedic's Kubernetes shell: what it takes to read the cluster behind a load balancer.
//! Today the EKS bearer token ([`token`]); the cluster reads into the snapshot's `kubernetes`
//! section come next. Like `elbmedic-aws` for the SDK, it is the only crate that will name the
//! Kubernetes client's types: the engine sees plain data.

pub mod token;

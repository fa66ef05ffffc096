//! elbmedic's engine: from a CloudWatch alarm and a snapshot of what was observed about one
//! load balancer to a diagnosis and a report.
//!
//! Pure by design: no AWS SDK, no async, no clock, no I/O. The AWS shell gathers a
//! [`snapshot::Snapshot`]; everything here is a function of it, so any situation can be
//! replayed offline and tested in milliseconds.

pub mod access_log;
pub mod account;
pub mod action;
pub mod alarm;
pub mod changes;
pub mod churn;
pub mod follow_up;
pub mod incident;
pub mod netcheck;
pub mod picture;
pub mod plan;
pub mod snapshot;
pub mod stable_hash;
pub mod untrusted;
pub mod variables;
pub mod zones;

pub mod backends;
pub mod context;
pub mod diagnosis;
pub mod finding;
pub mod fixes;
pub mod kubernetes;
pub mod kubernetes_name;
pub mod ownership;
pub mod report;
pub mod rollout;
pub mod rules;
pub mod scenarios;
pub mod shell;
#[cfg(test)]
mod testkit;

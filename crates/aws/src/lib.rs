//! elbmedic's AWS shell: the only crate that names AWS SDK types. It gathers a
//! [`Snapshot`](elbmedic_engine::snapshot::Snapshot) of one load balancer and publishes
//! reports. Every failed call becomes a gap in the snapshot, never a panic or an abort: the
//! engine then says what could not be checked.
//!
//! Not for: deciding anything. That is the engine's job.

pub mod accounts;
pub mod clients;
pub mod concurrent;
pub mod edge;
pub mod environment;
pub mod follow_up;
pub mod gather;
pub mod incidents;
pub mod ledger;
pub mod pipeline;
pub mod publish;
pub mod recorder;
pub mod remediate;
pub mod settings;

pub mod errors;

pub use clients::Clients;
pub use gather::{gather, GatherOptions};
pub use recorder::{CallLog, Recorder};

//! Remediation against AWS, in the shape of diagnosis: a pipeline over an event's records
//! ([`pipeline`]), each plan's run under the lock ([`plan_run`]), and the changes themselves
//! ([`apply`]; those in the cluster, [`in_cluster`]). Shared by the `remediate` function and the CLI's `--mode auto`/`dry-run`, so
//! they cannot drift apart.

pub mod apply;
pub mod in_cluster;
pub mod pipeline;
pub mod plan_run;
pub mod undo;

pub use pipeline::{handle_one, records, remediate_plan, Handled, RecordRefusal, Remediated, Run};
pub use plan_run::{configured_ledger, remediate, reported, unreachable};

//! Network evaluation as AWS performs it: NACLs (stateless, ordered, first match, implicit
//! deny) and security groups (stateful, allow-only, union of groups), and the analysis of
//! every path between the load balancer's nodes and its targets. Every verdict names the
//! component that decided it. Not for: deciding what is a *cause*; the rules do that.

pub mod addr;
pub mod clients;
pub mod nacl;
pub mod paths;
pub mod sg;

pub use addr::{AddrRange, Family, FlowBox};
pub use nacl::{Direction, NaclOutcome, NaclRuleRef};
pub use paths::{
    analyse, Flow, Leg, NaclCheck, NetworkAnalysis, Purpose, SgCheck, SgSide, TargetId,
};
pub use sg::SgOutcome;

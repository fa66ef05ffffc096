//! Test fixtures: the committed scenario snapshots, so unit tests start from the same
//! realistic worlds as the golden tests and change one thing.

use crate::scenarios;
use crate::snapshot::{self, Snapshot};

pub fn scenario_snapshot(name: &str) -> Snapshot {
    let scenario = scenarios::find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    snapshot::from_json(scenario.snapshot).unwrap_or_else(|e| panic!("scenario {name}: {e}"))
}

/// A healthy ALB world: open paths, healthy targets, quiet metrics except a few 5xx.
pub fn healthy_alb() -> Snapshot {
    scenario_snapshot("no-known-cause")
}

/// A healthy Classic LB world with instance targets on a NodePort.
pub fn healthy_clb() -> Snapshot {
    let mut world = scenario_snapshot("clb-idle-timeout");
    world.metrics.clear();
    world
}

/// The load balancer of `world` as an alarm names it.
pub fn alarmed(world: &Snapshot) -> crate::alarm::LbRef {
    let lb = &world.load_balancer;
    crate::alarm::LbRef {
        kind: lb.kind,
        name: lb.name.clone(),
        id: lb.id.clone(),
        target_group: None,
    }
}

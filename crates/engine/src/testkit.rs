//! Test fixtures: the committed scenario snapshots, so unit tests start from the same
//! realistic worlds as the golden tests and change one thing.

use crate::snapshot::{self, Snapshot};

macro_rules! scenario_files {
    ($($name:literal),* $(,)?) => {
        /// (name, event JSON, snapshot JSON) of every committed scenario.
        pub const SCENARIOS: &[(&str, &str, &str)] = &[
            $(($name,
               include_str!(concat!("../../../events/scenarios/", $name, "/event.json")),
               include_str!(concat!("../../../events/scenarios/", $name, "/snapshot.json")))),*
        ];
    };
}

scenario_files!(
    "clb-idle-timeout",
    "alb-idle-timeout",
    "nacl-ephemeral-node-subnets",
    "nacl-ephemeral-lb-subnets",
    "nacl-blocks-target-port",
    "sg-node-missing-lb-rule",
    "unhealthy-targets",
    "stale-pod-ip",
    "targets-refuse-connections",
    "backend-keepalive-502",
    "no-known-cause",
    "check-incomplete",
);

pub fn scenario_snapshot(name: &str) -> Snapshot {
    let (_, _, text) = SCENARIOS
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    snapshot::from_json(text).unwrap_or_else(|e| panic!("scenario {name}: {e}"))
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

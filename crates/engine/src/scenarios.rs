//! The scenarios under `events/scenarios`, embedded so that `elbmedic demo` runs offline on a
//! fresh clone, and so that tests start from the same realistic worlds.

/// One recorded situation: the SNS event that fired and the snapshot of its load balancer.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub event: &'static str,
    pub snapshot: &'static str,
}

macro_rules! scenarios {
    ($($name:literal),* $(,)?) => {
        pub const SCENARIOS: &[Scenario] = &[
            $(Scenario {
                name: $name,
                event: include_str!(concat!("../../../events/scenarios/", $name, "/event.json")),
                snapshot: include_str!(concat!("../../../events/scenarios/", $name, "/snapshot.json")),
            }),*
        ];
    };
}

scenarios!(
    "clb-idle-timeout",
    "clb-idle-timeout-reverted",
    "alb-idle-timeout",
    "nacl-ephemeral-node-subnets",
    "nacl-ephemeral-lb-subnets",
    "ipv6-nacl-ephemeral-lb-subnets",
    "nacl-blocks-target-port",
    "sg-node-missing-lb-rule",
    "unhealthy-targets",
    "stale-pod-ip",
    "targets-refuse-connections",
    "alb-rolling-deploy",
    "eks-rolling-deploy-no-prestop",
    "eks-ingress-group-conflict",
    "eks-idle-timeout-class-params",
    "eks-no-ready-pods",
    "clb-node-scale-in",
    "alb-node-drain",
    "sg-egress-unrelated-revoke",
    "clb-cross-zone-off",
    "nacl-rule-added-recently",
    "unrelated-change",
    "one-zone-failure",
    "alb-empty-target-group",
    "alb-target-tls",
    "alb-grpc-to-http1-pods",
    "alb-connections-rejected",
    "clb-surge-queue-full",
    "nlb-idle-timeout-resets",
    "nlb-client-ip-not-admitted",
    "nlb-sg-blocks-clients",
    "nlb-port-allocation",
    "backend-keepalive-502",
    "no-known-cause",
    "check-incomplete",
);

/// The scenario `elbmedic demo` shows by default: the article's ephemeral-port trap.
pub const DEFAULT_DEMO: &str = "nacl-ephemeral-node-subnets";

/// One-line descriptions, from `events/scenarios/index.json`.
const INDEX: &str = include_str!("../../../events/scenarios/index.json");

impl Scenario {
    /// The alarm of the scenario's event and the load balancer it names, when the event is
    /// one to diagnose (every scenario's is).
    pub fn alarm(&self) -> Option<(crate::alarm::Alarm, crate::alarm::LbRef)> {
        match crate::alarm::parse_input(self.event.as_bytes())
            .ok()?
            .into_iter()
            .next()?
            .ok()?
        {
            crate::alarm::Intake::Diagnose {
                alarm,
                load_balancer,
            } => Some((alarm, load_balancer)),
            _ => None,
        }
    }

    /// The scenario's snapshot.
    pub fn world(&self) -> Option<crate::snapshot::Snapshot> {
        crate::snapshot::from_json(self.snapshot).ok()
    }
}

pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

pub fn title(name: &str) -> Option<String> {
    let index: serde_json::Value = serde_json::from_str(INDEX).ok()?;
    index
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name)
        .and_then(|entry| entry["title"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_indexed_scenario_is_embedded_with_a_title() {
        let index: serde_json::Value = serde_json::from_str(INDEX).unwrap();
        let names: Vec<&str> = index
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, SCENARIOS.iter().map(|s| s.name).collect::<Vec<_>>());
        assert!(find(DEFAULT_DEMO).is_some());
        assert!(title("stale-pod-ip").unwrap().contains("pod"));
    }
}

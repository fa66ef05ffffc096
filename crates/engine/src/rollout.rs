//! What in a workload's spec makes target churn hurt, and the patch that fixes it: a pod must
//! outlive its deregistration (a `preStop` sleep), its grace period must cover that sleep and
//! the slowest request, a rollout must not stop old pods before new ones are healthy in the
//! target group (`maxUnavailable`), and IP targets need the controller's readiness gate
//! (kubernetes-sigs/aws-load-balancer-controller #1064, #1719, #3097).
//!
//! Not for: deciding whether churn caused the 5xx (the `targets-churning` rule does that).

use crate::kubernetes::{Container, HookForm, Namespace, Pod, Service, Workload};
use crate::kubernetes_name::{is_label, is_subdomain};
use crate::shell::Script;

/// How long a `preStop` sleep should last: the deregistration must reach every load balancer
/// node first (commonly 5-15 s). Never longer than the deregistration delay, after which the
/// load balancer has closed the target's connections anyway.
pub const PRE_STOP_SECONDS: u32 = 20;
/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_SECONDS: u32 = 30;
/// What the controller's readiness gates are called on a pod.
const GATE_PREFIX: &str = "target-health.elbv2.k8s.aws/";
pub const READINESS_GATE_LABEL: &str = "elbv2.k8s.aws/pod-readiness-gate-inject";

/// What the load balancer side asks of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The longest deregistration delay of the target groups, if read.
    pub deregistration_delay: Option<u32>,
    /// The slowest request the window saw (`TargetResponseTime` or `Latency` max), seconds.
    pub longest_request: u32,
    /// Whether the targets are pod IPs (readiness gates matter then).
    pub ip_targets: bool,
}

impl Needs {
    /// The `preStop` sleep asked for.
    pub fn sleep(&self) -> u32 {
        self.deregistration_delay
            .map_or(PRE_STOP_SECONDS, |d| d.clamp(1, PRE_STOP_SECONDS))
    }

    /// The grace period asked for, given the sleep the pod will have.
    pub fn grace(&self, sleep: u32) -> u32 {
        sleep
            .saturating_add(self.longest_request.max(10))
            .saturating_add(5)
    }
}

/// One thing in the spec that lets churn cut requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoPreStop {
        container: String,
    },
    ShortPreStop {
        container: String,
        seconds: u32,
        needed: u32,
        /// The hook's kind: a patch replaces it with a longer one of the same kind, and
        /// leaves a hook that does more than wait to its owner.
        form: HookForm,
    },
    /// `strategy.type: Recreate`: every pod stops before any new one starts.
    Recreate,
    ShortGrace {
        grace: u32,
        needed: u32,
    },
    MaxUnavailable {
        written: String,
        pods: u32,
        replicas: u32,
    },
    /// IP targets, and the namespace does not inject readiness gates.
    NoReadinessGate {
        namespace: String,
    },
    /// The namespace injects gates, but these pods were created before it did.
    PodsWithoutGate {
        pods: usize,
    },
}

impl Problem {
    pub fn describe(&self, workload: &Workload) -> String {
        let grace_now = |grace: u32| {
            if workload.termination_grace_period_seconds.is_none() {
                format!("{grace} s (Kubernetes' default)")
            } else {
                format!("{grace} s")
            }
        };
        match self {
            Self::NoPreStop { container } => format!("container {container} has no preStop hook: the pod gets SIGTERM while the load balancer may still send it requests"),
            Self::ShortPreStop { container, seconds, needed, form } => format!(
                "container {container}'s preStop waits {seconds} s, less than the {needed} s the deregistration needs to reach every load balancer node{}",
                match form {
                    HookForm::Other => " (the hook does more than wait: lengthen its sleep in the manifest; no patch is offered, it would replace the whole hook)",
                    _ => "",
                }
            ),
            Self::Recreate => "strategy Recreate stops every pod before a new one starts: the target group is empty until the new pods pass their health checks".into(),
            Self::ShortGrace { grace, needed } => format!("terminationGracePeriodSeconds is {}, less than the preStop sleep plus the slowest request seen ({needed} s): the kubelet kills the pod mid-request", grace_now(*grace)),
            Self::MaxUnavailable { written, pods, replicas } => format!("maxUnavailable {written} lets a rollout stop {pods} of {replicas} pods before their replacements are healthy in the target group"),
            Self::NoReadinessGate { namespace } => format!("namespace {namespace} lacks the label {READINESS_GATE_LABEL}=enabled: with IP targets, a rollout does not wait for new pods to be healthy in the target group"),
            Self::PodsWithoutGate { pods } => format!("{} created before the readiness-gate label, so no gate holds {} (gates are injected only at pod creation)", crate::context::count(*pods, "pod was", "pods were"), if *pods == 1 { "it" } else { "them" }),
        }
    }
}

/// The containers that serve the Services (their ports match a target port), or the first.
pub fn serving<'w>(workload: &'w Workload, services: &[&Service]) -> Vec<&'w Container> {
    let serves = |c: &Container| {
        services.iter().flat_map(|s| &s.ports).any(|p| {
            let target = p.target_port.clone().unwrap_or_else(|| p.port.to_string());
            c.ports.iter().any(|(name, number)| {
                name.as_deref() == Some(target.as_str()) || number.to_string() == target
            })
        })
    };
    let found: Vec<&Container> = workload.containers.iter().filter(|c| serves(c)).collect();
    match found.is_empty() {
        true => workload.containers.iter().take(1).collect(),
        false => found,
    }
}

/// What in `workload`'s spec lets churn cut requests.
pub fn problems(
    workload: &Workload,
    services: &[&Service],
    pods: &[&Pod],
    namespace: Option<&Namespace>,
    needs: &Needs,
) -> Vec<Problem> {
    let mut found = Vec::new();
    let needed = needs.sleep();
    let mut sleep = u32::MAX;
    for container in serving(workload, services) {
        let name = container.name.clone();
        match container.pre_stop.as_ref().map(|p| p.sleep_seconds) {
            None => {
                sleep = 0;
                found.push(Problem::NoPreStop { container: name });
            }
            Some(Some(seconds)) if seconds < needed => {
                sleep = sleep.min(seconds);
                found.push(Problem::ShortPreStop {
                    container: name,
                    seconds,
                    needed,
                    form: container
                        .pre_stop
                        .as_ref()
                        .map(|p| p.form)
                        .unwrap_or_default(),
                });
            }
            // A hook elbmedic cannot time (a drain script) counts as the sleep asked for.
            Some(seconds) => sleep = sleep.min(seconds.unwrap_or(needed)),
        }
    }
    // The sleep the pod will have once the hooks above are fixed: the grace period must
    // cover it too.
    let sleep = match (sleep, found.is_empty()) {
        (u32::MAX, _) => needed,
        (_, false) => needed,
        (sleep, true) => sleep,
    };
    let grace = workload
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace < sleep.saturating_add(needs.longest_request) {
        found.push(Problem::ShortGrace {
            grace,
            needed: needs.grace(sleep),
        });
    }
    let gates = readiness_gates(pods, namespace, needs);
    let gated = gates.is_empty();
    found.extend(gates);
    match workload.strategy.as_deref() {
        Some("Recreate") => found.push(Problem::Recreate),
        // With working readiness gates, Ready means healthy in the target group, so a rollout
        // that stops old pods as new ones turn Ready already waits for the load balancer.
        _ if workload.kind == "Deployment" && !gated => {
            let replicas = workload.replicas.unwrap_or(1);
            let written = workload
                .max_unavailable
                .clone()
                .unwrap_or_else(|| "25%".into());
            let pods = unavailable(&written, replicas);
            if pods > 0 && replicas > 0 {
                found.push(Problem::MaxUnavailable {
                    written,
                    pods,
                    replicas,
                });
            }
        }
        _ => {}
    }
    found
}

/// What keeps IP targets' readiness gates from working: the namespace's label missing, or
/// pods created before it. Empty when gates work or do not apply (instance targets).
fn readiness_gates(pods: &[&Pod], namespace: Option<&Namespace>, needs: &Needs) -> Vec<Problem> {
    if !needs.ip_targets {
        return Vec::new();
    }
    match namespace {
        Some(ns) if ns.injects_readiness_gates() => {
            let ungated = pods
                .iter()
                .filter(|p| !p.readiness_gates.iter().any(|g| g.starts_with(GATE_PREFIX)))
                .count();
            match ungated {
                0 => Vec::new(),
                pods => vec![Problem::PodsWithoutGate { pods }],
            }
        }
        Some(ns) => vec![Problem::NoReadinessGate {
            namespace: ns.name.clone(),
        }],
        // The namespace was not read: nothing to say either way.
        None => Vec::new(),
    }
}

/// Pods a rollout may stop at once: `maxUnavailable` as written, a percentage rounded down.
fn unavailable(written: &str, replicas: u32) -> u32 {
    match written.trim().strip_suffix('%') {
        Some(percent) => percent
            .parse::<u64>()
            .map_or(0, |p| (u64::from(replicas) * p.min(100) / 100) as u32),
        None => written.trim().parse().unwrap_or(0),
    }
}

/// The strategic-merge patch that fixes the spec problems of a Deployment or StatefulSet, as
/// one `kubectl patch` line; `None` when nothing in the spec needs it, or a name is not one
/// the API server could hold (then no command is built from it).
pub fn patch(workload: &Workload, problems: &[Problem], needs: &Needs) -> Option<Script> {
    if !is_label(&workload.namespace) || !is_subdomain(&workload.name) {
        return None;
    }
    let sleep = needs.sleep();
    // Keys are inserted in alphabetical order: the text is then the same whether serde_json
    // keeps insertion order (a feature another crate may turn on) or sorts.
    let mut containers = Vec::new();
    let mut grace = None;
    let mut strategy = None;
    for problem in problems {
        match problem {
            Problem::NoPreStop { container } | Problem::ShortPreStop { container, .. } => {
                // The patch merges into the hook that is there: it must be the same kind of
                // handler (two are refused), and must not replace one that does more.
                let handler = match problem {
                    Problem::ShortPreStop {
                        form: HookForm::SleepAction,
                        ..
                    } => serde_json::json!({"sleep": {"seconds": sleep}}),
                    Problem::ShortPreStop {
                        form: HookForm::Other,
                        ..
                    } => return None,
                    _ => serde_json::json!({"exec": {"command": ["sleep", sleep.to_string()]}}),
                };
                if !is_label(container) {
                    return None;
                }
                containers.push(serde_json::json!({
                    "lifecycle": {"preStop": handler},
                    "name": container
                }));
            }
            Problem::ShortGrace { needed, .. } => grace = Some(*needed),
            Problem::MaxUnavailable { .. } | Problem::Recreate => {
                strategy = Some(rolling_update(workload, problem));
            }
            Problem::NoReadinessGate { .. } | Problem::PodsWithoutGate { .. } => {}
        }
    }
    let mut pod_spec = serde_json::Map::new();
    if !containers.is_empty() {
        pod_spec.insert("containers".into(), containers.into());
    }
    if let Some(grace) = grace {
        pod_spec.insert("terminationGracePeriodSeconds".into(), grace.into());
    }
    let mut spec = serde_json::Map::new();
    if let Some(strategy) = strategy {
        spec.insert("strategy".into(), strategy);
    }
    if !pod_spec.is_empty() {
        spec.insert("template".into(), serde_json::json!({"spec": pod_spec}));
    }
    if spec.is_empty() {
        return None;
    }
    let body = serde_json::json!({"spec": spec}).to_string();
    Some(Script::line(crate::argv![
        "kubectl",
        "-n",
        &workload.namespace,
        "patch",
        crate::shell::Word::Fixed(resource(&workload.kind)),
        &workload.name,
        "--type",
        "strategic",
        "-p",
        body
    ]))
}

/// The strategy that replaces pods one healthy pod at a time: `maxUnavailable: 0`, with a
/// surge (both 0 is invalid), and the type itself when it was Recreate. Keys in alphabetical
/// order.
fn rolling_update(workload: &Workload, problem: &Problem) -> serde_json::Value {
    let surge_zero = matches!(workload.max_surge.as_deref(), Some("0" | "0%"));
    let rolling = match surge_zero || *problem == Problem::Recreate {
        true => serde_json::json!({"maxSurge": "25%", "maxUnavailable": 0}),
        false => serde_json::json!({"maxUnavailable": 0}),
    };
    match problem {
        Problem::Recreate => serde_json::json!({"rollingUpdate": rolling, "type": "RollingUpdate"}),
        _ => serde_json::json!({"rollingUpdate": rolling}),
    }
}

/// A workload kind as kubectl's resource word, elbmedic's own (never the cluster's text).
pub fn resource(kind: &str) -> &'static str {
    crate::kubernetes::resource_of(kind)
        .filter(|r| matches!(*r, "statefulset" | "daemonset"))
        .unwrap_or("deployment")
}

/// The same change as manifest lines, for a workload another tool re-applies.
pub fn manifest(workload: &Workload, problems: &[Problem], needs: &Needs) -> String {
    let sleep = needs.sleep();
    let mut lines = vec!["spec:".to_string()];
    if let Some(problem) = problems
        .iter()
        .find(|p| matches!(p, Problem::MaxUnavailable { .. } | Problem::Recreate))
    {
        lines.push("  strategy:".into());
        if *problem == Problem::Recreate {
            lines.push("    type: RollingUpdate".into());
        }
        lines.extend(["    rollingUpdate:", "      maxUnavailable: 0"].map(String::from));
        let strategy = rolling_update(workload, problem);
        if strategy["rollingUpdate"].get("maxSurge").is_some() {
            lines.push("      maxSurge: 25%".into());
        }
    }
    lines.extend(["  template:", "    spec:"].map(String::from));
    for problem in problems {
        if let Problem::ShortGrace { needed, .. } = problem {
            lines.push(format!("      terminationGracePeriodSeconds: {needed}"));
        }
    }
    let hooks: Vec<(&String, HookForm)> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::NoPreStop { container } => Some((container, HookForm::ExecSleep)),
            Problem::ShortPreStop {
                container, form, ..
            } => Some((container, *form)),
            _ => None,
        })
        .collect();
    if !hooks.is_empty() {
        lines.push("      containers:".into());
        for (container, form) in hooks {
            let name = crate::shell::data(container).intended();
            lines.push(format!("        - name: {}", yaml_safe(&name)));
            lines.extend(["          lifecycle:", "            preStop:"].map(String::from));
            lines.extend(match form {
                HookForm::SleepAction => vec![
                    "              sleep:".to_string(),
                    format!("                seconds: {sleep}"),
                ],
                HookForm::ExecSleep => vec![
                    "              exec:".to_string(),
                    format!("                command: [\"sleep\", \"{sleep}\"]"),
                ],
                HookForm::Other => vec![format!(
                    "              # the hook as it is, with its wait made {sleep} s long"
                )],
            });
        }
    }
    lines.join("\n")
}

/// A container name as YAML: a valid name is plain; anything else is quoted as JSON (which
/// YAML reads as a double-quoted string).
fn yaml_safe(name: &str) -> String {
    match is_label(name) {
        true => name.to_string(),
        false => serde_json::Value::String(name.to_string()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::PreStop;

    fn web(pre_stop: Option<u32>, grace: Option<u32>, max_unavailable: Option<&str>) -> Workload {
        Workload {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            replicas: Some(4),
            max_unavailable: max_unavailable.map(String::from),
            termination_grace_period_seconds: grace,
            containers: vec![Container {
                name: "app".into(),
                pre_stop: pre_stop.map(|s| PreStop {
                    sleep_seconds: Some(s),
                    description: format!("sleep {s}"),
                    form: HookForm::ExecSleep,
                }),
                ..Container::default()
            }],
            ..Workload::default()
        }
    }

    const NEEDS: Needs = Needs {
        deregistration_delay: Some(300),
        longest_request: 12,
        ip_targets: false,
    };

    fn plain(name: &str) -> Namespace {
        Namespace {
            name: name.into(),
            ..Namespace::default()
        }
    }

    #[test]
    fn a_deployment_without_pre_stop_gets_one_grace_above_it_and_max_unavailable_zero() {
        let workload = web(None, None, None);
        let ip = Needs {
            ip_targets: true,
            ..NEEDS
        };
        let found = problems(&workload, &[], &[], Some(&plain("shop")), &ip);
        assert_eq!(
            found,
            [
                Problem::NoPreStop {
                    container: "app".into()
                },
                Problem::ShortGrace {
                    grace: 30,
                    needed: 37
                },
                Problem::NoReadinessGate {
                    namespace: "shop".into()
                },
                Problem::MaxUnavailable {
                    written: "25%".into(),
                    pods: 1,
                    replicas: 4
                }
            ]
        );
        let patch = patch(&workload, &found, &NEEDS).unwrap();
        assert_eq!(
            patch.as_str(),
            r#"kubectl -n shop patch deployment web --type strategic -p '{"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":0}},"template":{"spec":{"containers":[{"lifecycle":{"preStop":{"exec":{"command":["sleep","20"]}}},"name":"app"}],"terminationGracePeriodSeconds":37}}}}'"#
        );
    }

    #[test]
    fn a_short_sleep_and_a_short_grace_period_are_both_named() {
        let workload = web(Some(5), Some(10), Some("0"));
        let found = problems(&workload, &[], &[], None, &NEEDS);
        assert_eq!(
            found,
            [
                Problem::ShortPreStop {
                    container: "app".into(),
                    seconds: 5,
                    needed: 20,
                    form: HookForm::ExecSleep
                },
                Problem::ShortGrace {
                    grace: 10,
                    needed: 37
                }
            ]
        );
        assert!(patch(&workload, &found, &NEEDS)
            .unwrap()
            .as_str()
            .contains(r#""terminationGracePeriodSeconds":37"#));
        // A sound spec has nothing to patch.
        let sound = web(Some(20), Some(60), Some("0"));
        assert!(problems(&sound, &[], &[], None, &NEEDS).is_empty());
        // A short deregistration delay asks for no longer a sleep.
        let quick = Needs {
            deregistration_delay: Some(5),
            ..NEEDS
        };
        assert!(problems(&web(Some(5), Some(60), Some("0")), &[], &[], None, &quick).is_empty());
    }

    #[test]
    fn ip_targets_need_the_label_and_pods_created_after_it() {
        let needs = Needs {
            ip_targets: true,
            ..NEEDS
        };
        let workload = web(Some(20), Some(60), Some("0"));
        let plain = Namespace {
            name: "shop".into(),
            ..Namespace::default()
        };
        assert_eq!(
            problems(&workload, &[], &[], Some(&plain), &needs),
            [Problem::NoReadinessGate {
                namespace: "shop".into()
            }]
        );
        let labelled = Namespace {
            name: "shop".into(),
            labels: [(READINESS_GATE_LABEL.to_string(), "enabled".to_string())].into(),
            ..Namespace::default()
        };
        let old = Pod::default();
        let gated = Pod {
            readiness_gates: vec!["target-health.elbv2.k8s.aws/k8s-shop-web-abc".into()],
            ..Pod::default()
        };
        assert_eq!(
            problems(&workload, &[], &[&old, &gated], Some(&labelled), &needs),
            [Problem::PodsWithoutGate { pods: 1 }]
        );
    }

    /// The patch merges into the hook that is there: a sleep action is lengthened as a sleep
    /// action (a second handler would be refused), a hook that does more than wait gets no
    /// patch, and Recreate becomes a rolling update with a surge. Instance targets, or working
    /// gates, leave maxUnavailable alone.
    #[test]
    fn the_patch_keeps_the_hooks_kind_and_recreate_becomes_rolling() {
        let mut workload = web(Some(5), Some(60), None);
        workload.containers[0].pre_stop.as_mut().unwrap().form = HookForm::SleepAction;
        workload.strategy = Some("Recreate".into());
        let found = problems(&workload, &[], &[], None, &NEEDS);
        assert_eq!(found.last(), Some(&Problem::Recreate));
        assert!(!found
            .iter()
            .any(|p| matches!(p, Problem::MaxUnavailable { .. })));
        let patch = patch(&workload, &found, &NEEDS).unwrap();
        assert!(
            patch.as_str().contains(r#""strategy":{"rollingUpdate":{"maxSurge":"25%","maxUnavailable":0},"type":"RollingUpdate"}"#),
            "{}",
            patch.as_str()
        );
        assert!(patch
            .as_str()
            .contains(r#""preStop":{"sleep":{"seconds":20}}"#));
        assert!(manifest(&workload, &found, &NEEDS).contains("    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 25%"));
        workload.containers[0].pre_stop.as_mut().unwrap().form = HookForm::Other;
        let found = problems(&workload, &[], &[], None, &NEEDS);
        assert!(patch_none(&workload, &found));
        assert!(found[0].describe(&workload).contains("no patch is offered"));
        // A sleep too long to add to does not overflow.
        let long = web(Some(u32::MAX), Some(10), None);
        assert!(problems(&long, &[], &[], None, &NEEDS)
            .iter()
            .any(|p| matches!(p, Problem::ShortGrace { .. })));
    }

    fn patch_none(workload: &Workload, found: &[Problem]) -> bool {
        patch(workload, found, &NEEDS).is_none()
    }

    #[test]
    fn no_patch_is_built_from_a_name_the_api_server_could_not_hold() {
        let mut workload = web(None, None, Some("0"));
        workload.name = "web --server=https://evil.example".into();
        let found = problems(&workload, &[], &[], None, &NEEDS);
        assert!(patch(&workload, &found, &NEEDS).is_none());
        let mut workload = web(None, None, Some("0"));
        workload.containers[0].name = "app\"}]".into();
        let found = problems(&workload, &[], &[], None, &NEEDS);
        assert!(patch(&workload, &found, &NEEDS).is_none());
        assert!(manifest(&workload, &found, &NEEDS).contains(r#"- name: "app\"}]""#));
    }
}

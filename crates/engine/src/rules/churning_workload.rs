//! The cluster's side of `targets-churning`: which workload behind the load balancer was
//! replacing its pods, what in its spec lets that cut requests, and the patch for that exact
//! workload. Only when the snapshot holds the cluster (`kubernetes` section).

use crate::alarm::{parse_timestamp, LbKind};
use crate::backends::Backends;
use crate::context::Context;
use crate::finding::{Command, DurableFix, Evidence};
use crate::kubernetes::{Pod, Workload};
use crate::rollout::{self, Needs, Problem, READINESS_GATE_LABEL};
use crate::shell::{Script, Word};

/// At most this many workloads are named: the report is for one incident.
const MAX_NAMED: usize = 3;

/// A workload whose spec lets churn cut requests.
pub struct Culprit<'a> {
    pub workload: &'a Workload,
    pub problems: Vec<Problem>,
    /// Its pods were created, or its ReplicaSets scaled, in a period with churn and 5xx.
    pub rolled_during_churn: bool,
}

impl Culprit<'_> {
    /// Whether its spec lets a pod go, or all go, while the load balancer still sends them
    /// requests (as opposed to only not waiting for new pods to be healthy).
    pub fn cuts_requests(&self) -> bool {
        self.problems.iter().any(|p| {
            matches!(
                p,
                Problem::NoPreStop { .. }
                    | Problem::ShortPreStop { .. }
                    | Problem::ShortGrace { .. }
                    | Problem::Recreate
            )
        })
    }

    /// The title's words for it.
    pub fn headline(&self) -> String {
        let what = match (
            self.cuts_requests(),
            self.problems.contains(&Problem::Recreate),
        ) {
            (_, true) => "stops every pod at once (Recreate)",
            (true, false) => "lets its pods go before their deregistration",
            (false, false) => "rolls out without waiting for the target group",
        };
        format!("{} {what}", describe(self.workload))
    }
}

/// What the load balancer side asks of the pods.
pub fn needs(ctx: &Context<'_>, longest_request: u32) -> Needs {
    let groups = &ctx.snapshot.target_groups;
    Needs {
        deregistration_delay: groups
            .iter()
            .filter_map(|g| g.deregistration_delay_seconds)
            .max(),
        longest_request,
        ip_targets: ctx.kind() == LbKind::Application
            && groups.iter().any(|g| g.target_type == "ip"),
    }
}

/// The workloads behind the load balancer with something to fix, those that rolled out
/// during the churn first.
pub fn culprits<'a>(ctx: &Context<'a>, needs: &Needs) -> Vec<Culprit<'a>> {
    let Some(backends) = Backends::of(ctx.snapshot, &ctx.owner) else {
        return Vec::new();
    };
    let churn_times = churn_periods(ctx);
    let mut found: Vec<Culprit<'a>> = backends
        .workloads
        .iter()
        .map(|workload| {
            let pods = backends.pods_of(workload);
            let services = backends.services_of(workload);
            let namespace = backends.cluster.namespace(&workload.namespace);
            Culprit {
                workload,
                problems: rollout::problems(workload, &services, &pods, namespace, needs),
                rolled_during_churn: rolled_during(ctx, workload, &pods, &churn_times),
            }
        })
        .filter(|c| !c.problems.is_empty())
        .collect();
    found.sort_by_key(|c| (!c.cuts_requests(), !c.rolled_during_churn));
    found.truncate(MAX_NAMED);
    found
}

/// The periods with churn and 5xx, as (start, end) epoch seconds.
fn churn_periods(ctx: &Context<'_>) -> Vec<(i64, i64)> {
    let length = i64::from(ctx.alarm.period_seconds.unwrap_or(60).max(60));
    ctx.churn
        .error_periods()
        .filter(|p| p.churning)
        .filter_map(|p| parse_timestamp(&p.at))
        .map(|start| (start - length, start + 2 * length))
        .collect()
}

fn rolled_during(
    ctx: &Context<'_>,
    workload: &Workload,
    pods: &[&Pod],
    periods: &[(i64, i64)],
) -> bool {
    let within = |at: Option<&String>| {
        at.and_then(|t| parse_timestamp(t))
            .is_some_and(|t| periods.iter().any(|(from, to)| (*from..*to).contains(&t)))
    };
    let created = pods.iter().any(|p| within(p.created_at.as_ref()));
    let scaled = ctx
        .snapshot
        .kubernetes
        .iter()
        .flat_map(|k| &k.events)
        .any(|e| {
            e.reason == "ScalingReplicaSet"
                && e.object.as_ref().is_some_and(|o| {
                    o.kind == workload.kind
                        && o.name == workload.name
                        && o.namespace.as_deref() == Some(workload.namespace.as_str())
                })
                && within(e.last_at.as_ref())
        });
    created || scaled
}

pub fn describe(workload: &Workload) -> String {
    format!("{} {}/{}", workload.kind, workload.namespace, workload.name)
}

/// One line per problem, naming the workload.
pub fn evidence(culprits: &[Culprit<'_>]) -> Vec<Evidence> {
    let mut lines = Vec::new();
    for culprit in culprits {
        let name = describe(culprit.workload);
        if culprit.rolled_during_churn {
            lines.push(Evidence::observation(format!(
                "{name} replaced its pods in the periods with churn and 5xx"
            )));
        }
        for problem in &culprit.problems {
            lines.push(Evidence::observation(format!(
                "{name}: {}",
                problem.describe(culprit.workload)
            )));
        }
    }
    lines
}

/// The fix for the first culprit: the patch (the ownership pass drops it when a tool
/// re-applies the workload), the manifest lines, and the readiness-gate steps as commands.
pub fn durable(culprit: &Culprit<'_>, needs: &Needs) -> (DurableFix, Vec<Command>) {
    let workload = culprit.workload;
    let name = describe(workload);
    let what: Vec<String> = culprit
        .problems
        .iter()
        .filter(|p| {
            !matches!(
                p,
                Problem::NoReadinessGate { .. } | Problem::PodsWithoutGate { .. }
            )
        })
        .map(|p| p.describe(workload))
        .collect();
    let mut commands = Vec::new();
    let restart = crate::kubernetes_name::is_label(&workload.namespace)
        && crate::kubernetes_name::is_subdomain(&workload.name);
    for problem in &culprit.problems {
        match problem {
            Problem::NoReadinessGate { namespace }
                if crate::kubernetes_name::is_label(namespace) =>
            {
                commands.push(Command::new(
                    format!("Turn on the controller's pod readiness gates in namespace {namespace} (new pods only)"),
                    Script::line(crate::argv![
                        "kubectl", "label", "namespace", namespace,
                        format!("{READINESS_GATE_LABEL}=enabled")
                    ]),
                ));
            }
            _ => {}
        }
    }
    let gated_later = culprit.problems.iter().any(|p| {
        matches!(
            p,
            Problem::NoReadinessGate { .. } | Problem::PodsWithoutGate { .. }
        )
    });
    if gated_later && restart {
        commands.push(Command::new(
            format!("Restart {name} so that every pod is created with the readiness gate"),
            Script::line(crate::argv![
                "kubectl",
                "-n",
                &workload.namespace,
                "rollout",
                "restart",
                Word::Fixed(rollout::resource(&workload.kind)),
                &workload.name
            ]),
        ));
    }
    let description = match what.is_empty() {
        true => format!("{name}: let each rollout wait for the readiness gate (below)"),
        false => format!("Change {name}: {}", what.join("; ")),
    };
    let fix = DurableFix {
        description,
        command: rollout::patch(workload, &culprit.problems, needs),
        manifest: Some(rollout::manifest(workload, &culprit.problems, needs)),
        warning: "The patch changes the pod template, so the pods roll out again: apply it outside the incident's peak. A preStop exec of sleep needs a sleep binary in the image (or use the sleep action of Kubernetes 1.30+).".into(),
    };
    (fix, commands)
}

//! The durable half, applied: the setting kept in the cluster with a server-side apply under
//! the field manager `elbmedic` (a dry run first; forced only with `FORCE_CONFLICTS`). The
//! engine chose the object and computes the body from it as read just now; a refusal of the
//! API server (a conflict naming its manager, RBAC, an admission webhook) is the step's
//! reason, and nothing else is changed.

use elbmedic_engine::plan::durable::{field_before, idle_timeout_body, touches_grouping};
use elbmedic_engine::plan::outcome::{rollback, Step, StepStatus};
use elbmedic_engine::plan::{Action, PlanTarget, Policy};
use elbmedic_engine::snapshot::Snapshot;
use elbmedic_kubernetes::write;
use tokio::time::Instant;

use crate::clients::Clients;
use crate::gather::ClusterReads;
use crate::settings::Config;

/// How long a change in the cluster may take, dry run included.
const WRITE_SECONDS: u64 = 20;

/// A client for the plan's cluster, made once per run and only when a change there is to be
/// applied; or why there is none.
pub enum Writer {
    None,
    Ready(elbmedic_kubernetes::Client),
    Unavailable(String),
}

impl Writer {
    pub async fn for_actions(
        clients: &Clients,
        actions: &[Action],
        world: &Snapshot,
        config: &Config,
    ) -> Self {
        let Some((cluster, _)) = actions.iter().find_map(Action::place) else {
            return Self::None;
        };
        let ClusterReads::On { test_url } = &config.cluster_reads else {
            return Self::Unavailable(
                "KUBERNETES_READS=off: remediate does not reach the cluster".into(),
            );
        };
        if world.cluster_name().as_deref() != Some(cluster) {
            return Self::Unavailable(format!("cluster {cluster} is not this load balancer's"));
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(WRITE_SECONDS);
        match crate::gather::cluster::writer(clients, cluster, test_url.as_deref(), deadline).await
        {
            Ok(client) => Self::Ready(client),
            Err(reason) => Self::Unavailable(reason.0),
        }
    }
}

/// Keeps the idle timeout at the action's place: the body computed from `world` (read just
/// now, the guardrails passed on it), applied, and the step with the field before and after.
pub async fn keep_idle_timeout(
    writer: &Writer,
    action: &Action,
    world: &Snapshot,
    target: &PlanTarget,
    policy: &Policy,
    dry_run: bool,
) -> Step {
    let Action::KeepIdleTimeout { place, seconds, .. } = action else {
        return Step::new(action, StepStatus::Failed, "not a change in the cluster");
    };
    let Some(section) = world.kubernetes.as_ref() else {
        return Step::new(
            action,
            StepStatus::Refused,
            "the cluster could not be read now",
        );
    };
    let body = match idle_timeout_body(place, section, *seconds) {
        Some(body) if !touches_grouping(&body) => body,
        _ => {
            let reason = format!("{} was not read now", place.describe());
            return Step::new(action, StepStatus::Refused, reason);
        }
    };
    let client = match writer {
        Writer::Ready(client) => client,
        Writer::Unavailable(reason) => {
            let reason = format!("the cluster could not be reached to write: {reason}");
            return Step::new(action, StepStatus::Failed, reason);
        }
        Writer::None => return Step::new(action, StepStatus::Failed, "no client for the cluster"),
    };
    if policy.force_conflicts {
        tracing::warn!(object = %place.describe(), "FORCE_CONFLICTS: a field another manager owns is taken over");
    }
    if policy.override_gitops {
        tracing::warn!(object = %place.describe(), "OVERRIDE_GITOPS: an object Argo CD, Flux or Helm may re-apply is changed");
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(WRITE_SECONDS);
    let before = field_before(place, section);
    let result = match dry_run {
        true => write::dry_run(client, place, &body, policy.force_conflicts, deadline).await,
        false => write::apply(client, place, &body, policy.force_conflicts, deadline).await,
    };
    match result {
        Err(refusal) => Step::new(action, StepStatus::Refused, refusal.to_string()),
        Ok(_) if dry_run => Step::new(
            action,
            StepStatus::WouldApply,
            "the API server's dry run (dryRun=All) of the server-side apply passed",
        ),
        Ok(_) => {
            tracing::info!(object = %place.describe(), seconds, "kept the idle timeout in the cluster");
            let mut step = Step::new(
                action,
                StepStatus::Applied,
                format!(
                    "server-side apply as field manager elbmedic on {}",
                    place.describe()
                ),
            );
            step.rollback = rollback(action, target, before.as_deref());
            step.before = Some(before.unwrap_or_else(|| "(absent)".into()));
            step.after = Some(format!(
                "idle timeout {seconds} s kept on {}",
                place.describe()
            ));
            step
        }
    }
}

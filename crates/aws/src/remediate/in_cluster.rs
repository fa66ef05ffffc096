//! The durable half, applied: the setting kept in the cluster with a server-side apply under
//! the field manager `elbmedic` (a dry run first; forced only with `FORCE_CONFLICTS`). The
//! engine chose the object and computes the body from it as read just now; a refusal of the
//! API server (a conflict naming its manager, RBAC, an admission webhook) is the step's
//! reason, and nothing else is changed. After the change, the controller's Events are
//! watched (`KUBERNETES_WATCH_SECONDS`); a reconcile failure it reports puts the field back
//! as it was, and the step says so.

use std::time::Duration;

use elbmedic_engine::kubernetes::{Event, ObjectRef};
use elbmedic_engine::plan::durable::{
    after_text, body_for, field_before, field_in, restore_body, touches_grouping,
};
use elbmedic_engine::plan::outcome::{rollback, FieldChange, Step, StepStatus};
use elbmedic_engine::plan::watch::{self, Verdict};
use elbmedic_engine::plan::{Action, Place, PlanTarget, Policy};
use elbmedic_engine::snapshot::Snapshot;
use elbmedic_kubernetes::{events, write};
use tokio::time::Instant;

use crate::clients::Clients;
use crate::gather::ClusterReads;
use crate::settings::Config;

/// How long a change in the cluster may take, dry run included.
const WRITE_SECONDS: u64 = 20;
/// How often the Events are read again while watching.
const WATCH_POLL: Duration = Duration::from_secs(1);

/// A client for the plan's cluster, made once per run and only when a change there is to be
/// applied; or why there is none.
pub enum Writer {
    None,
    Ready {
        client: elbmedic_kubernetes::Client,
        /// How long the controller's Events are watched after a change.
        watch: Duration,
    },
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
        let deadline = Instant::now() + Duration::from_secs(WRITE_SECONDS);
        match crate::gather::cluster::writer(clients, cluster, test_url.as_deref(), deadline).await
        {
            Ok(client) => Self::Ready {
                client,
                watch: config.cluster_watch,
            },
            Err(reason) => Self::Unavailable(reason.0),
        }
    }
}

/// Makes the action's change in the cluster (the idle timeout kept at its place, or the
/// readiness-gate label): the body computed from `world` (read just now, the guardrails
/// passed on it), applied, watched, and the step with the field before and after.
pub async fn change(
    writer: &Writer,
    action: &Action,
    world: &Snapshot,
    target: &PlanTarget,
    policy: &Policy,
    dry_run: bool,
) -> Step {
    let Some((_, place)) = action.place() else {
        return Step::new(action, StepStatus::Failed, "not a change in the cluster");
    };
    let Some(section) = world.kubernetes.as_ref() else {
        return Step::new(
            action,
            StepStatus::Refused,
            "the cluster could not be read now",
        );
    };
    let body = match body_for(action, section) {
        Some(body) if !touches_grouping(&body) => body,
        _ => {
            let reason = format!("{} was not read now", place.describe());
            return Step::new(action, StepStatus::Refused, reason);
        }
    };
    let (client, watch_for) = match writer {
        Writer::Ready { client, watch } => (client, *watch),
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
    let deadline = Instant::now() + Duration::from_secs(WRITE_SECONDS);
    let before = field_before(place, section);
    if dry_run {
        return match write::dry_run(client, place, &body, policy.force_conflicts, deadline).await {
            Err(refusal) => Step::new(action, StepStatus::Refused, refusal.to_string()),
            Ok(_) => Step::new(
                action,
                StepStatus::WouldApply,
                "the API server's dry run (dryRun=All) of the server-side apply passed",
            ),
        };
    }
    if let Some(reason) = changed_since(client, place, before.as_deref(), deadline).await {
        return Step::new(action, StepStatus::Refused, reason);
    }
    let watched = watch::watched(place, section);
    let events_before = events::about(client, &watched, deadline).await;
    if let Err(refusal) = write::apply(client, place, &body, policy.force_conflicts, deadline).await
    {
        return Step::new(action, StepStatus::Refused, refusal.to_string());
    }
    tracing::info!(object = %place.describe(), action = %action.describe(), "changed in the cluster");
    let mut step = Step::new(
        action,
        StepStatus::Applied,
        format!(
            "server-side apply as field manager elbmedic on {}",
            place.describe()
        ),
    );
    step.rollback = rollback(action, target, before.as_deref());
    step.before = Some(before.clone().unwrap_or_else(|| "(absent)".into()));
    step.field = Some(FieldChange {
        before: before.clone(),
        after: field_in(place, &body),
    });
    step.after = Some(after_text(action));
    let verdict = match events_before {
        Err(unread) => Watched::Unread(unread.to_string()),
        Ok(_) if watched.is_empty() || watch_for.is_zero() => Watched::Skipped,
        Ok(before) => watch_events(client, &watched, &before, watch_for).await,
    };
    settle(
        client,
        &mut step,
        place,
        before.as_deref(),
        verdict,
        watch_for,
    )
    .await;
    step
}

/// Why the field at `place` is no longer the one read before the decision (`before`), if it
/// is not: under the object's lock now, what was decided on must still be what is there.
async fn changed_since(
    client: &elbmedic_kubernetes::Client,
    place: &Place,
    before: Option<&str>,
    deadline: Instant,
) -> Option<String> {
    match write::read(client, place, deadline).await {
        Ok(Some(now)) if field_in(place, &now).as_deref() == before => None,
        Ok(_) => Some(format!(
            "{} changed since it was read: nothing is applied, and the next alarm decides again",
            place.describe()
        )),
        Err(refusal) => Some(refusal.to_string()),
    }
}

/// How the watch after a change ended.
enum Watched {
    Verdict(Verdict),
    Unread(String),
    Skipped,
}

/// Reads the Events about `watched` every [`WATCH_POLL`] until the controller says
/// something new about the change, or `watch_for` has passed.
async fn watch_events(
    client: &elbmedic_kubernetes::Client,
    watched: &[ObjectRef],
    before: &[Event],
    watch_for: Duration,
) -> Watched {
    let until = Instant::now() + watch_for;
    loop {
        let next = (Instant::now() + WATCH_POLL).min(until);
        tokio::time::sleep_until(next).await;
        let now = match events::about(client, watched, until.max(Instant::now() + WATCH_POLL)).await
        {
            Ok(now) => now,
            Err(unread) => return Watched::Unread(unread.to_string()),
        };
        let verdict = watch::judge(watched, before, &now);
        if verdict != Verdict::Quiet || Instant::now() >= until {
            return Watched::Verdict(verdict);
        }
    }
}

/// The step after the watch: said as it ended, and on a reconcile failure, the field put
/// back as it was (a failed rollback is said too, with the command to do it by hand).
async fn settle(
    client: &elbmedic_kubernetes::Client,
    step: &mut Step,
    place: &Place,
    before: Option<&str>,
    watched: Watched,
    watch_for: Duration,
) {
    let heard = match watched {
        Watched::Skipped => return,
        Watched::Unread(reason) => {
            step.detail.push_str(&format!(
                "; the controller's Events were not watched ({reason})"
            ));
            return;
        }
        Watched::Verdict(Verdict::Quiet) => {
            step.detail.push_str(&format!(
                "; the controller reported no failure within {} s",
                watch_for.as_secs()
            ));
            return;
        }
        Watched::Verdict(Verdict::Reconciled { reasons }) => {
            step.detail.push_str(&format!(
                "; the controller reconciled it ({})",
                reasons.join(", ")
            ));
            return;
        }
        Watched::Verdict(Verdict::Failed {
            object,
            reason,
            message,
        }) => format!("the controller reported {reason} on {object} after the change: {message}"),
    };
    tracing::warn!(object = %place.describe(), "reconcile failure after the change: rolling it back");
    let deadline = Instant::now() + Duration::from_secs(WRITE_SECONDS);
    let restored = match restore_body(place, before) {
        Some(body) => write::apply(client, place, &body, false, deadline)
            .await
            .map_err(|refusal| refusal.to_string()),
        None => Err("the value before cannot be put back as kept".to_string()),
    };
    step.status = StepStatus::Failed;
    match restored {
        Ok(_) => {
            step.detail =
                format!("{heard}; elbmedic rolled its change back (the field is as it was before)");
            step.after = step.before.clone();
            step.rollback = None;
        }
        Err(reason) => {
            step.detail =
                format!("{heard}; the rollback failed ({reason}): run the rollback command");
        }
    }
}

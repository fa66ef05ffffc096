//! The durable half, applied: the setting kept in the cluster with a server-side apply under
//! the field manager `elbmedic` (a dry run first; forced only with `FORCE_CONFLICTS`). The
//! engine chose the object and computes the body from it as read just now; a refusal of the
//! API server (a conflict naming its manager, RBAC, an admission webhook) is the step's
//! reason, and nothing else is changed. After the change is audited, the controller's
//! Events are watched (`KUBERNETES_WATCH_SECONDS`); a reconcile failure it reports puts the
//! field back as it was, and the step says so.

use std::time::Duration;

use elbmedic_engine::kubernetes::{Event, ObjectRef};
use elbmedic_engine::plan::durable::{
    after_text, body_for, field_before, field_in, restore_body, touches_grouping,
};
use elbmedic_engine::plan::outcome::{rollback, FieldChange, Step, StepStatus};
use elbmedic_engine::plan::watch::{self, Verdict};
use elbmedic_engine::plan::{Action, Place, PlanTarget, Policy};
use elbmedic_engine::snapshot::Snapshot;
use elbmedic_kubernetes::write::WriteRefusal;
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
/// passed on it) and applied. The step, with the field before and after; and, when it
/// changed the cluster, what [`settle`] watches once the change is audited.
pub async fn change(
    writer: &Writer,
    action: &Action,
    world: &Snapshot,
    target: &PlanTarget,
    policy: &Policy,
    dry_run: bool,
) -> (Step, Option<Watch>) {
    let refused = |status, reason: String| (Step::new(action, status, reason), None);
    let Some((_, place)) = action.place() else {
        return refused(StepStatus::Failed, "not a change in the cluster".into());
    };
    let Some(section) = world.kubernetes.as_ref() else {
        return refused(
            StepStatus::Refused,
            "the cluster could not be read now".into(),
        );
    };
    let mut body = match body_for(action, section) {
        Some(body) if !touches_grouping(&body) => body,
        _ => {
            return refused(
                StepStatus::Refused,
                format!("{} was not read now", place.describe()),
            )
        }
    };
    let (client, watch_for) = match writer {
        Writer::Ready { client, watch } => (client, *watch),
        Writer::Unavailable(reason) => {
            let reason = format!("the cluster could not be reached to write: {reason}");
            return refused(StepStatus::Failed, reason);
        }
        Writer::None => return refused(StepStatus::Failed, "no client for the cluster".into()),
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
            Err(refusal) => refused(StepStatus::Refused, refusal.to_string()),
            Ok(_) => refused(
                StepStatus::WouldApply,
                "the API server's dry run (dryRun=All) of the server-side apply passed".into(),
            ),
        };
    }
    // The apply carries the version read under the lock: a change made in between is a 409.
    match unchanged_since(client, place, before.as_deref(), deadline).await {
        Ok(version) => body["metadata"]["resourceVersion"] = serde_json::json!(version),
        Err(reason) => return refused(StepStatus::Refused, reason.0),
    }
    let after = field_in(place, &body);
    let watched = watch::watched(place, section);
    let events_before = events::about(client, &watched, deadline).await;
    let applied = write::apply(client, place, &body, policy.force_conflicts, deadline).await;
    let detail = match applied {
        Ok(_) => format!(
            "server-side apply as field manager elbmedic on {}",
            place.describe()
        ),
        // The call may have reached the server: what counts is what the object says now.
        Err(refusal @ (WriteRefusal::Timeout | WriteRefusal::Unreachable(_))) => {
            match write::read(client, place, Instant::now() + Duration::from_secs(WRITE_SECONDS)).await {
                Ok(Some(now)) if field_in(place, &now) == after && after != before => format!(
                    "server-side apply as field manager elbmedic on {} ({refusal}, but the object read again holds the change)",
                    place.describe()
                ),
                _ => return refused(StepStatus::Refused, refusal.to_string()),
            }
        }
        Err(refusal) => return refused(StepStatus::Refused, refusal.to_string()),
    };
    tracing::info!(object = %place.describe(), action = %action.describe(), "changed in the cluster");
    let mut step = Step::new(action, StepStatus::Applied, detail);
    step.rollback = rollback(action, target, before.as_deref());
    step.before = Some(before.clone().unwrap_or_else(|| "(absent)".into()));
    step.field = Some(FieldChange {
        before: before.clone(),
        after,
    });
    step.after = Some(after_text(action));
    let watch = Watch {
        place: place.clone(),
        watched,
        events_before,
        before,
        watch_for,
    };
    (step, Some(watch))
}

/// The version of the object at `place` when its field is still `before` (what the decision
/// was made on), read under the object's lock; or why nothing is to be applied.
async fn unchanged_since(
    client: &elbmedic_kubernetes::Client,
    place: &Place,
    before: Option<&str>,
    deadline: Instant,
) -> Result<Option<String>, Stale> {
    match write::read(client, place, deadline).await {
        Ok(Some(now)) if field_in(place, &now).as_deref() == before => Ok(now
            .pointer("/metadata/resourceVersion")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)),
        Ok(_) => Err(Stale(format!(
            "{} changed since it was read: nothing is applied, and the next alarm decides again",
            place.describe()
        ))),
        Err(refusal) => Err(Stale(refusal.to_string())),
    }
}

/// Why a change decided on the state read before was not made (said in its step).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Stale(String);

/// What to watch after a change, and what to put back if the controller fails on it.
pub struct Watch {
    place: Place,
    watched: Vec<ObjectRef>,
    /// The Events about `watched` read before the change, or why they could not be.
    events_before: Result<Vec<Event>, events::EventsUnread>,
    before: Option<String>,
    watch_for: Duration,
}

/// After the change is audited: watches the controller's Events, and on a reconcile failure
/// puts the field back as it was; the step says how it ended.
pub async fn settle(writer: &Writer, step: &mut Step, watch: Watch) {
    let Writer::Ready { client, .. } = writer else {
        return;
    };
    let watched = match &watch.events_before {
        Err(unread) => Watched::Unread(unread.to_string()),
        Ok(_) if watch.watched.is_empty() || watch.watch_for.is_zero() => Watched::Skipped,
        Ok(before) => watch_events(client, &watch.watched, before, watch.watch_for).await,
    };
    conclude(client, step, &watch, watched).await;
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
/// back as it was and read back (a failed rollback is said too, with the command to do it
/// by hand).
async fn conclude(
    client: &elbmedic_kubernetes::Client,
    step: &mut Step,
    watch: &Watch,
    watched: Watched,
) {
    let said = match watched {
        Watched::Skipped => return,
        Watched::Unread(reason) => format!("the controller's Events were not watched ({reason})"),
        Watched::Verdict(Verdict::Quiet) => format!(
            "the controller reported no failure within {} s",
            watch.watch_for.as_secs()
        ),
        Watched::Verdict(Verdict::Reconciled { reasons }) => {
            format!("the controller reconciled it ({})", reasons.join(", "))
        }
        Watched::Verdict(Verdict::AlreadyFailing { object, reason }) => format!(
            "the controller was failing on {object} before the change ({reason}) and still is: the change stays; see the controller's findings"
        ),
        Watched::Verdict(Verdict::Failed {
            object,
            reason,
            message,
        }) => {
            let heard = format!("the controller reported {reason} on {object} after the change: {message}");
            return roll_back(client, step, watch, heard).await;
        }
    };
    step.detail.push_str(&format!("; {said}"));
}

/// Puts the field back after a reconcile failure, and checks that it is.
async fn roll_back(
    client: &elbmedic_kubernetes::Client,
    step: &mut Step,
    watch: &Watch,
    heard: String,
) {
    tracing::warn!(object = %watch.place.describe(), "reconcile failure after the change: rolling it back");
    let place = &watch.place;
    let deadline = Instant::now() + Duration::from_secs(WRITE_SECONDS);
    let restored = match restore_body(place, watch.before.as_deref()) {
        Some(body) => match write::apply(client, place, &body, false, deadline).await {
            Ok(answered) if field_in(place, &answered) == watch.before => Ok(()),
            Ok(answered) => Err(format!(
                "the field is {} after it: another field manager keeps it",
                field_in(place, &answered).map_or("absent".into(), |v| format!("{v:?}"))
            )),
            Err(refusal) => Err(refusal.to_string()),
        },
        None => Err("the value before cannot be put back as kept".to_string()),
    };
    step.status = StepStatus::Failed;
    match restored {
        Ok(()) => {
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

//! `elbmedic undo PLAN_ID`, against the ledger and the cluster: the plan's changes in the
//! cluster found from its id, each put back from the ledger's before value by a server-side
//! apply (a dry run first) under the same locks, policy and kill switch as the change. The
//! engine (`plan::undo`) decides each from the object as read under its lock; the undo is
//! audited in the ledger under `undo-PLAN_ID`.
//!
//! Not for: the AWS half (the outcome report gives its rollback command).

use std::time::Duration;

use elbmedic_engine::plan::durable::field_in;
use elbmedic_engine::plan::undo::{self, Undo, Verdict};
use elbmedic_engine::plan::PlanTarget;
use elbmedic_kubernetes::write;
use tokio::time::Instant;

use crate::clients::Clients;
use crate::gather::ClusterReads;
use crate::ledger::{AuditRecord, Ledger, LedgerError, LockOutcome};
use crate::settings::Config;

/// A plan holds at most this many actions: the audit trail is searched this far.
const MAX_AUDITED: usize = 64;
/// How long one object's undo may take, its read, dry run and apply included.
const UNDO_SECONDS: u64 = 20;

/// How one change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoStatus {
    Restored,
    /// `REMEDIATION_MODE=dry-run`: the API server's dry run of the restore passed.
    WouldRestore,
    InPlace,
    Refused,
    Failed,
}

impl UndoStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Restored => "restored",
            Self::WouldRestore => "would be restored (dry run)",
            Self::InPlace => "already as before",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// One change of the plan, and what undo did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoLine {
    pub object: String,
    pub status: UndoStatus,
    pub detail: String,
}

/// Why nothing could be undone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    #[error("the ledger holds no change in a cluster for plan {0}: check the id (it is in the outcome report), and LEDGER_TABLE")]
    NoRecord(String),
    #[error("the ledger {table} could not be read: {error}")]
    Ledger { table: String, error: LedgerError },
    #[error("plan {plan} changed load balancer {lb} in account {account}, and these credentials are account {caller}'s: run undo with that account's")]
    OtherAccount {
        plan: String,
        lb: String,
        account: String,
        caller: String,
    },
    #[error("plan {plan} changed load balancer {lb} in account {account}, and STS could not say which account these credentials are in: nothing is undone")]
    UnknownAccount {
        plan: String,
        lb: String,
        account: String,
    },
    #[error("another elbmedic run ({owner}) holds the lock of load balancer {lb} until {until} (epoch seconds): try again after it")]
    Locked {
        lb: String,
        owner: String,
        until: i64,
    },
}

/// Undoes the changes `plan_id` made in a cluster. `ledger` is the deployment's table;
/// `clients_for` gives clients in the load balancer's region (the cluster is found there).
pub async fn undo<F, Fut>(
    ledger: &Ledger,
    clients_for: F,
    config: &Config,
    plan_id: &str,
    run_id: &str,
    now: i64,
) -> Result<Vec<UndoLine>, UndoError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Clients>,
{
    let unread = |error| UndoError::Ledger {
        table: ledger.table().to_string(),
        error,
    };
    let target = ledger
        .cluster_change_target(plan_id)
        .await
        .map_err(unread)?
        .ok_or_else(|| UndoError::NoRecord(plan_id.to_string()))?;
    let audited = ledger
        .audited_changes(&target, plan_id, MAX_AUDITED)
        .await
        .map_err(unread)?;
    let changes = undo::changes(&audited);
    if changes.is_empty() {
        return Err(UndoError::NoRecord(plan_id.to_string()));
    }
    let clients = clients_for(target.region.clone()).await;
    if let Some(account) = &target.account {
        match clients.caller_account().await {
            Some(caller) if &caller == account => {}
            Some(caller) => {
                return Err(UndoError::OtherAccount {
                    plan: plan_id.to_string(),
                    lb: target.name.clone(),
                    account: account.clone(),
                    caller,
                })
            }
            None => {
                return Err(UndoError::UnknownAccount {
                    plan: plan_id.to_string(),
                    lb: target.name.clone(),
                    account: account.clone(),
                })
            }
        }
    }
    let lock = match ledger.lock(&target, run_id, now).await.map_err(unread)? {
        LockOutcome::Acquired(lock) => lock,
        LockOutcome::Held { owner, until } => {
            return Err(UndoError::Locked {
                lb: target.name.clone(),
                owner,
                until,
            })
        }
    };
    let mut lines = Vec::new();
    let mut client = None;
    for (index, change) in changes.into_iter().enumerate() {
        let line = match change {
            Err(reason) => UndoLine {
                object: "a change in the cluster".into(),
                status: UndoStatus::Refused,
                detail: reason.0,
            },
            Ok(change) => {
                let line = one(
                    ledger,
                    &clients,
                    &mut client,
                    config,
                    &target,
                    &change,
                    run_id,
                    now,
                )
                .await;
                if line.status == UndoStatus::Restored {
                    audit(ledger, &target, plan_id, index, &change, now).await;
                }
                line
            }
        };
        tracing::info!(object = %line.object, status = line.status.label(), detail = %line.detail, "undo");
        lines.push(line);
    }
    if let Err(error) = ledger.unlock(&lock).await {
        tracing::warn!(error = %error, "the load balancer's lock could not be released; its lease ends by itself");
    }
    Ok(lines)
}

/// One change undone, under its object's lock.
#[allow(clippy::too_many_arguments)]
async fn one(
    ledger: &Ledger,
    clients: &Clients,
    client: &mut Option<elbmedic_kubernetes::Client>,
    config: &Config,
    target: &PlanTarget,
    change: &Undo,
    run_id: &str,
    now: i64,
) -> UndoLine {
    let object = change.place.describe();
    let line = |status, detail: String| UndoLine {
        object: object.clone(),
        status,
        detail,
    };
    if let Some(reason) =
        undo::policy_refusal(change, &config.remediation.policy, config.remediation.mode)
    {
        return line(UndoStatus::Refused, reason);
    }
    let ClusterReads::On { test_url } = &config.cluster_reads else {
        return line(
            UndoStatus::Refused,
            "KUBERNETES_READS=off: undo does not reach the cluster".into(),
        );
    };
    let lock = match ledger
        .lock_object(target, &change.cluster, &change.place, run_id, now)
        .await
    {
        Ok(LockOutcome::Acquired(lock)) => lock,
        Ok(LockOutcome::Held { owner, until }) => {
            return line(
                UndoStatus::Refused,
                format!(
                    "another elbmedic run ({owner}) is changing it until {until} (epoch seconds)"
                ),
            )
        }
        Err(error) => {
            return line(
                UndoStatus::Failed,
                format!("its lock could not be taken: {error}"),
            )
        }
    };
    let deadline = Instant::now() + Duration::from_secs(UNDO_SECONDS);
    let dry_run = config.remediation.mode == elbmedic_engine::plan::message::Mode::DryRun;
    let result = restore(
        clients,
        client,
        test_url.as_deref(),
        change,
        dry_run,
        deadline,
    )
    .await;
    if let Err(error) = ledger.unlock(&lock).await {
        tracing::warn!(error = %error, "an object's lock could not be released; its lease ends by itself");
    }
    match result {
        Ok(status) => line(
            status,
            match status {
                UndoStatus::InPlace => "nothing to do".into(),
                UndoStatus::WouldRestore => format!(
                    "the API server's dry run of putting it back as it was ({}) passed; nothing changed",
                    change.field.before.as_deref().unwrap_or("absent")
                ),
                _ => format!(
                    "put back as it was ({}) by a server-side apply as field manager elbmedic",
                    change.field.before.as_deref().unwrap_or("absent")
                ),
            },
        ),
        Err((status, reason)) => line(status, reason),
    }
}

/// Reads the object, lets the engine decide, and applies what it says.
async fn restore(
    clients: &Clients,
    client: &mut Option<elbmedic_kubernetes::Client>,
    test_url: Option<&str>,
    change: &Undo,
    dry_run: bool,
    deadline: Instant,
) -> Result<UndoStatus, (UndoStatus, String)> {
    if client.is_none() {
        let made = crate::gather::cluster::writer(clients, &change.cluster, test_url, deadline)
            .await
            .map_err(|reason| {
                let reason = format!(
                    "cluster {} could not be reached: {}",
                    change.cluster, reason.0
                );
                (UndoStatus::Failed, reason)
            })?;
        *client = Some(made);
    }
    let Some(client) = client.as_ref() else {
        return Err((UndoStatus::Failed, "no client for the cluster".into()));
    };
    let refused = |refusal: write::WriteRefusal| (UndoStatus::Refused, refusal.to_string());
    let now = write::read(client, &change.place, deadline)
        .await
        .map_err(refused)?;
    match undo::verdict(change, now.as_ref()) {
        Verdict::InPlace => Ok(UndoStatus::InPlace),
        Verdict::Refused(reason) => Err((UndoStatus::Refused, reason)),
        Verdict::Restore(body) if dry_run => {
            write::dry_run(client, &change.place, &body, false, deadline)
                .await
                .map_err(refused)?;
            Ok(UndoStatus::WouldRestore)
        }
        Verdict::Restore(body) => {
            let answered = write::apply(client, &change.place, &body, false, deadline)
                .await
                .map_err(refused)?;
            // Released fields another manager also owns stay: said, not claimed restored.
            match field_in(&change.place, &answered) == change.field.before {
                true => Ok(UndoStatus::Restored),
                false => Err((
                    UndoStatus::Failed,
                    "another field manager keeps the field, so it is not as it was before: change it where that manager keeps it".into(),
                )),
            }
        }
    }
}

/// The undo in the audit trail, under `undo-PLAN_ID`; a failure to record is logged (the
/// change is made either way).
async fn audit(
    ledger: &Ledger,
    target: &PlanTarget,
    plan_id: &str,
    index: usize,
    change: &Undo,
    now: i64,
) {
    let reverse = elbmedic_engine::plan::outcome::FieldChange {
        before: change.field.after.clone(),
        after: change.field.before.clone(),
    };
    let record = AuditRecord {
        plan_id: &format!("undo-{plan_id}"),
        index,
        action: &format!("undo of plan {plan_id} on {}", change.place.describe()),
        before: change.field.after.as_deref().unwrap_or("(absent)"),
        after: change.field.before.as_deref().unwrap_or("(absent)"),
        at: now,
        action_json: "",
        field: Some(&reverse),
    };
    if let Err(error) = ledger.audit(target, &record).await {
        tracing::warn!(error = %error, "the ledger could not record the undo");
    }
}

//! Gathers the snapshot of one load balancer, in as few sequential rounds as the data
//! dependencies allow. Independent calls in a round run concurrently; lists are fetched with
//! filters holding many values, and VPC-wide (subnets, NACLs, security groups) as soon as the
//! VPC is known, so no round waits for another's ids. Every failed call becomes a gap.
//!
//! Rounds (docs/gathering.md has the measured counts):
//! - Classic LB: (1) load balancer, attributes, tags, instance health, metrics;
//!   (2) instances, subnets, NACLs, SGs, LB interfaces, EKS cluster; (3) prefix lists, if any.
//! - ALB: (1) load balancer, metrics; (2) attributes, tags, listeners, target groups,
//!   subnets, NACLs, SGs, LB interfaces; (3) target health and group attributes, EKS cluster,
//!   prefix lists; (4) the targets' interfaces; (4b) only for IPs on no interface: the
//!   prefix-delegation fallback.

pub mod access_logs;
mod application;
mod classic;
pub mod cluster;
pub(crate) mod convert;
mod metrics;
mod targets;
mod trail;
mod vpc;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::Format as DateFormat;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::DateTime;
use elbmedic_engine::alarm::{Alarm, LbKind, LbRef};
use elbmedic_engine::follow_up::LateEvidence;
use elbmedic_engine::snapshot::{
    Gap, GapFact, GapReason, History, LoadBalancer, Snapshot, SCHEMA_VERSION,
};
use tokio::time::Instant;

pub(crate) use crate::concurrent::join_all;

use crate::clients::Clients;
use crate::errors::{deadline_gap, gap, reason_of_code};
use crate::ledger::Ledger;

/// The default bound on a whole gather, well below a Lambda timeout of 30 s or more.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(20);

/// DescribeNetworkInterfaces and DescribeInstances accept about 200 filter values per call.
const BATCH: usize = 199;

pub use cluster::ClusterReads;
pub use trail::ChangeLookups;

/// The sources a gather reads beyond the load balancer's own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub recent_changes: ChangeLookups,
    pub cluster: ClusterReads,
}

impl Sources {
    /// Remediation's: what changed and the cluster are the diagnosis's questions; remediation
    /// decides from the state.
    pub const STATE_ONLY: Self = Self {
        recent_changes: ChangeLookups::Off,
        cluster: ClusterReads::Off,
    };
}

/// How to gather. The clock is read by the caller and passed in, so gathering is replayable.
#[derive(Debug, Clone)]
pub struct GatherOptions {
    /// The whole gather finishes within this, below the Lambda timeout.
    pub deadline: Duration,
    /// End of the metric window (epoch seconds): the alarm's state change, or now.
    pub window_end: i64,
    /// Metric period in seconds (the alarm's).
    pub period: u32,
    /// Number of periods fetched, ending at `window_end` (evaluation periods plus look-back).
    pub periods: u32,
    /// When the snapshot is taken (epoch seconds).
    pub now: i64,
    pub account_id: Option<String>,
    /// The remediation ledger to read elbmedic's own history of the LB from, if any.
    pub ledger_table: Option<String>,
    /// How far to look up recent changes in CloudTrail (the diagnosis does; remediation's
    /// re-gathers do not need them).
    pub recent_changes: ChangeLookups,
    /// Whether the cluster's Kubernetes API is read (the diagnosis does).
    pub cluster: ClusterReads,
}

impl GatherOptions {
    pub fn new(
        now: i64,
        window_end: Option<i64>,
        period: Option<u32>,
        evaluation_periods: Option<u32>,
    ) -> Self {
        let period = period.filter(|p| *p >= 60 && *p % 60 == 0).unwrap_or(60);
        Self {
            deadline: DEFAULT_DEADLINE,
            window_end: window_end.unwrap_or(now),
            period,
            // The evaluated periods plus five of look-back, at most a day.
            periods: (evaluation_periods.unwrap_or(1).clamp(1, 100) + 5).min(86_400 / period),
            now,
            account_id: None,
            ledger_table: None,
            recent_changes: ChangeLookups::Off,
            cluster: ClusterReads::Off,
        }
    }
}

/// A converted piece of a round, or the gap that explains why there is none.
type Piece<T> = Result<T, Gap>;

/// Runs `future` unless the deadline passes first.
async fn bounded<T>(deadline: Instant, future: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(deadline, future).await.ok()
}

/// A bounded call's outcome: its value, or the gap that explains why there is none.
fn settle<T, E>(
    result: Option<Result<T, SdkError<E, HttpResponse>>>,
    fact: GapFact,
    resource: Option<&str>,
) -> Result<T, Gap>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        None => Err(deadline_gap(fact, resource)),
        Some(Err(error)) => Err(gap(fact, resource, &error)),
        Some(Ok(value)) => Ok(value),
    }
}

/// Collects the pages of a paginated call, or the first error.
macro_rules! all_pages {
    ($paginator:expr) => {{
        let pages: Vec<_> = $paginator.send().collect().await;
        pages.into_iter().collect::<Result<Vec<_>, _>>()
    }};
}
pub(crate) use all_pages;

fn not_found(name: &str) -> Gap {
    Gap {
        fact: GapFact::LoadBalancer,
        resource: Some(name.to_string()),
        reason: GapReason::NotFound,
        detail: format!("no load balancer named {name} in this account and region"),
    }
}

/// The snapshot before any call: the load balancer as the alarm names it, the time and the
/// account; every round fills in its part.
fn nothing_read_yet(clients: &Clients, lb: &LbRef, options: &GatherOptions) -> Snapshot {
    Snapshot {
        schema_version: SCHEMA_VERSION,
        captured_at: DateTime::from_secs(options.now)
            .fmt(DateFormat::DateTime)
            .ok(),
        region: clients.region.clone(),
        account_id: options.account_id.clone(),
        account_alias: None,
        load_balancer: LoadBalancer {
            kind: lb.kind,
            name: lb.name.clone(),
            id: lb.id.clone(),
            arn: None,
            dns_name: None,
            scheme: None,
            vpc_id: String::new(),
            vpc_cidrs: Vec::new(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            ip_address_type: None,
            idle_timeout_seconds: None,
            cross_zone: None,
            connection_draining_seconds: None,
            access_log: None,
            attributes: BTreeMap::new(),
            listeners: Vec::new(),
            tags: BTreeMap::new(),
            nodes: Vec::new(),
        },
        target_groups: Vec::new(),
        subnets: Vec::new(),
        network_acls: Vec::new(),
        security_groups: Vec::new(),
        prefix_lists: Vec::new(),
        metrics: Vec::new(),
        eks: None,
        history: None,
        changes: None,
        access_logs: None,
        kubernetes: None,
        gaps: Vec::new(),
    }
}

pub async fn gather(clients: &Clients, lb: &LbRef, options: &GatherOptions) -> Snapshot {
    let deadline = Instant::now() + options.deadline;
    let mut world = nothing_read_yet(clients, lb, options);
    // Boxed, as the other leaves: a debug build's poll frames would hold them all in line.
    let state = Box::pin(async {
        match lb.kind {
            LbKind::Classic => classic::gather(clients, deadline, options, &mut world).await,
            // An NLB is read through the same ELBv2 calls (issue 26 adds its listeners'
            // attributes).
            LbKind::Application | LbKind::Network => {
                application::gather(clients, deadline, options, &mut world).await
            }
        }
    });
    let history = async {
        match &options.ledger_table {
            Some(table) => {
                Some(history(clients, options.account_id.as_deref(), table, lb, deadline).await)
            }
            None => None,
        }
    };
    // Leaves of the whole gather: nothing waits for the metrics or the ledger, so they run
    // beside every round and are joined only at the end.
    let metrics = Box::pin(metrics::gather(clients, lb.kind, &lb.id, options, deadline));
    let changes = async {
        if options.recent_changes == ChangeLookups::Off {
            return None;
        }
        let resource = trail_resource(clients, options, lb);
        let lookups = options.recent_changes;
        let window = options.window();
        Some(trail::look_up(clients, resource.as_deref(), window, lookups, deadline).await)
    };
    let alias = Box::pin(bounded(deadline, clients.account_alias()));
    let ((), history, (series, metric_gaps), changes, alias) =
        tokio::join!(state, history, metrics, changes, alias);
    world.account_alias = alias.flatten();
    if let Some((mut changes, gaps)) = changes {
        trail::on_the_path(&mut changes, &world);
        world.gaps.extend(gaps);
        world.changes = Some(changes);
    }
    // The late sources in one run (the CLI's --follow-up): the access logs, once the
    // attributes say where they are.
    if options.recent_changes == ChangeLookups::All {
        match Box::pin(access_logs::read(
            clients,
            &world,
            options.window(),
            deadline,
        ))
        .await
        {
            Some(Ok(logs)) => world.access_logs = Some(logs),
            Some(Err(gap)) => world.gaps.push(gap),
            None => {}
        }
    }
    // The load balancer's series first, then the per-target-group ones read in round 2.
    let per_group = std::mem::replace(&mut world.metrics, series);
    world.metrics.extend(per_group);
    world.gaps.extend(metric_gaps);
    match history {
        Some(Ok(history)) => world.history = Some(history),
        Some(Err(gap)) => world.gaps.push(gap),
        None => {}
    }
    world
}

/// The name CloudTrail's `Resources` list gives the load balancer: an ALB's ARN, a Classic
/// LB's name.
fn trail_resource(clients: &Clients, options: &GatherOptions, lb: &LbRef) -> Option<String> {
    match lb.kind {
        LbKind::Application | LbKind::Network => {
            application::derived_arn(&clients.region, options.account_id.as_deref(), &lb.id)
        }
        LbKind::Classic => Some(lb.name.clone()),
    }
}

impl GatherOptions {
    /// The options an alarm implies: its evaluated window, its account.
    pub fn for_alarm(alarm: &Alarm, now: i64) -> Self {
        let mut options = Self::new(
            now,
            alarm.state_change_epoch,
            alarm.period_seconds,
            alarm.evaluation_periods,
        );
        options.account_id = alarm.account_id.clone();
        options
    }

    /// The metric window (epoch seconds), which CloudTrail is asked about too.
    pub(crate) fn window(&self) -> (i64, i64) {
        let start = self.window_end - i64::from(self.period) * i64::from(self.periods);
        (start, self.window_end)
    }
}

/// The follow-up pass: every CloudTrail lookup over the window the first pass looked up (its
/// snapshot's capture time stands for "now" when the alarm has no time), kept to the first
/// snapshot's path, and, beside them, the window's access logs. Only the late sources are
/// read: nothing is described again.
pub async fn late_evidence(
    clients: &Clients,
    alarm: &Alarm,
    lb: &LbRef,
    first: &Snapshot,
    now: i64,
    deadline: Duration,
) -> LateEvidence {
    let captured = first
        .captured_at
        .as_deref()
        .and_then(elbmedic_engine::alarm::parse_timestamp)
        .unwrap_or(now);
    let options = GatherOptions::for_alarm(alarm, captured);
    let resource = trail_resource(clients, &options, lb);
    let deadline = Instant::now() + deadline;
    let ((mut changes, mut gaps), logs) = tokio::join!(
        trail::look_up(
            clients,
            resource.as_deref(),
            options.window(),
            ChangeLookups::All,
            deadline,
        ),
        Box::pin(access_logs::read(
            clients,
            first,
            options.window(),
            deadline
        )),
    );
    trail::on_the_path(&mut changes, first);
    let access_logs = match logs {
        Some(Ok(logs)) => Some(logs),
        Some(Err(gap)) => {
            gaps.push(gap);
            None
        }
        None => None,
    };
    LateEvidence {
        changes,
        access_logs,
        gaps,
    }
}

/// Gathers the snapshot of the alarm's load balancer, with the window the alarm evaluated,
/// and elbmedic's own history of it from `ledger_table` when one is given.
pub async fn for_alarm(
    clients: &Clients,
    alarm: &Alarm,
    lb: &LbRef,
    now: i64,
    deadline: Duration,
    ledger_table: Option<&str>,
    sources: Sources,
) -> Snapshot {
    let mut options = GatherOptions::for_alarm(alarm, now);
    options.deadline = deadline;
    options.ledger_table = ledger_table.map(str::to_string);
    options.recent_changes = sources.recent_changes;
    options.cluster = sources.cluster;
    gather(clients, lb, &options).await
}

/// elbmedic's own past changes to the LB, from the remediation ledger.
async fn history(
    clients: &Clients,
    account: Option<&str>,
    table: &str,
    lb: &LbRef,
    deadline: Instant,
) -> Result<History, Gap> {
    let ledger = Ledger::for_clients(clients, table);
    let read = bounded(
        deadline,
        ledger.last_idle_timeout_raise(account, &clients.region, &lb.id),
    )
    .await;
    match read {
        None => Err(deadline_gap(GapFact::RemediationHistory, Some(table))),
        Some(Err(error)) => Err(Gap {
            fact: GapFact::RemediationHistory,
            resource: Some(table.to_string()),
            reason: reason_of_code(&error.code),
            detail: error.to_string(),
        }),
        Some(Ok(raise)) => Ok(History {
            idle_timeout_raise: raise,
        }),
    }
}

//! An incident: one load balancer in one account, from its first ALARM until it has stayed OK
//! for the quiet period. Every alarm on that load balancer joins it (a 5XX alarm and a
//! TargetConnectionErrorCount alarm are one story), so a flapping alarm gives one full report,
//! then short updates in the same thread, a full report again only when the cause changes, and
//! one recovery.
//!
//! Pure: the ledger (`elbmedic_aws::incidents`) keeps the record and writes it conditionally;
//! [`step`] decides what one alarm becomes. Each event is claimed in the record before its
//! report goes out and marked delivered after, so a redelivered event is not sent twice and a
//! failed one is sent by the retry.

pub mod fingerprint;
pub mod listing;
pub mod note;
pub mod storm;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::alarm::{Alarm, AlarmState};
use crate::report::Report;
use crate::untrusted::clipped;

pub use fingerprint::Fingerprint;

/// How long a load balancer stays OK before its incident closes, by default.
pub const DEFAULT_QUIET_MINUTES: i64 = 30;
/// A claim not delivered after this long is a run that died: twice diagnose's timeout.
pub const CLAIM_LEASE_SECONDS: i64 = 120;
/// An incident is kept this long after its last event, for `elbmedic incidents`.
pub const KEPT_SECONDS: i64 = 7 * 24 * 3600;
/// An incident with no event for this long is over, OK or not (an OK lost on the way).
const MAX_SILENCE_SECONDS: i64 = 24 * 3600;
/// Events kept in the record; the oldest go first.
const MAX_TIMELINE: usize = 50;
/// Alarms tracked per load balancer; a forged flood cannot grow the record past it.
const MAX_ALARMS: usize = 20;
const MAX_PLANS: usize = 10;
/// CloudWatch's limit on an alarm name.
const MAX_ALARM_NAME: usize = 255;
/// An alarm time further than this from the clock is not believed: the clock is used.
const MAX_SKEW_SECONDS: i64 = 24 * 3600;

/// Which incident: the load balancer's account (`own` when the alarm names none), region and
/// id. The account comes from the alarm the pipeline already scoped, so an alarm of one
/// account can never reach another account's incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentKey {
    pub account: String,
    pub region: String,
    pub load_balancer: String,
}

impl IncidentKey {
    pub fn of(alarm: &Alarm, load_balancer_id: &str) -> Self {
        Self {
            account: alarm.account_id.clone().unwrap_or_else(|| "own".into()),
            region: alarm.region.clone(),
            load_balancer: load_balancer_id.to_string(),
        }
    }

    /// The ledger item's key.
    pub fn ledger_key(&self) -> String {
        format!(
            "{INCIDENT_PREFIX}{}#{}#{}",
            self.account, self.region, self.load_balancer
        )
    }
}

/// Every incident item's key starts with this.
pub const INCIDENT_PREFIX: &str = "incident#";

/// One alarm's state change, as the incident sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    pub alarm: String,
    pub state: EventState,
    /// When it changed state (the alarm's time, or the clock when that is missing or absurd).
    pub at: i64,
    /// The same for every delivery of the same state change.
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventState {
    Alarm,
    Ok,
}

impl AlarmEvent {
    /// The event of an ALARM or OK alarm; `None` for INSUFFICIENT_DATA.
    pub fn of(alarm: &Alarm, now: i64) -> Option<Self> {
        let state = match alarm.state {
            AlarmState::Alarm => EventState::Alarm,
            AlarmState::Ok => EventState::Ok,
            AlarmState::InsufficientData => return None,
        };
        let stated = alarm
            .state_change_time
            .as_deref()
            .and_then(crate::alarm::parse_timestamp);
        let at = stated
            .filter(|at| (now - MAX_SKEW_SECONDS..=now + 300).contains(at))
            .map_or(now, |at| at.min(now));
        let identity = format!(
            "{}|{}|{}|{:?}|{}",
            alarm.account_id.as_deref().unwrap_or_default(),
            alarm.region,
            alarm.alarm_name,
            state,
            // A redelivery carries the same time; without one, the clock's minute.
            stated.unwrap_or(now / 60 * 60)
        );
        Some(Self {
            alarm: clipped(&alarm.alarm_name, MAX_ALARM_NAME),
            state,
            at,
            id: format!("{:016x}", crate::stable_hash::stable_hash(&identity)),
        })
    }
}

/// The record the ledger keeps for one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub key: IncidentKey,
    pub load_balancer_name: String,
    #[serde(default)]
    pub vpc_id: Option<String>,
    pub opened_at: i64,
    pub last_event_at: i64,
    /// ALARMs received, the first included.
    pub alarms: u32,
    /// The alarms in ALARM now, with when they went there.
    pub firing: Vec<Firing>,
    /// Since when no alarm of the load balancer is in ALARM.
    #[serde(default)]
    pub ok_since: Option<i64>,
    /// Since when some alarm of the load balancer has been in ALARM without a break: the
    /// outage a recovery ends.
    #[serde(default)]
    pub outage_since: Option<i64>,
    /// The recovery is posted once per incident.
    #[serde(default)]
    pub recovery_posted: bool,
    /// The last full report's fingerprint: an update repeats it, a change sends a full report.
    pub fingerprint: Fingerprint,
    /// The last full report's first line.
    pub headline: String,
    pub last_full_at: i64,
    /// The first report's subject: every later message replies to it.
    pub subject: String,
    /// The chat thread every message of the incident goes to.
    pub thread: String,
    /// The last full report's page, once stored.
    #[serde(default)]
    pub full_report_url: Option<String>,
    /// Plans proposed in this incident: not proposed again.
    #[serde(default)]
    pub plans: Vec<PlanMark>,
    pub timeline: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub alarm: String,
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanMark {
    pub id: String,
    pub at: i64,
}

/// One event in the incident, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub event: String,
    pub at: i64,
    pub alarm: String,
    pub state: EventState,
    pub decision: Decision,
    /// The fingerprint's digest at this event.
    #[serde(default)]
    pub fingerprint: Option<String>,
    pub delivery: EntryDelivery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum EntryDelivery {
    /// A run is sending it.
    Claimed {
        by: String,
        at: i64,
    },
    Delivered {
        at: i64,
    },
    /// The run could not send it: a redelivery sends it again.
    Failed {
        at: i64,
    },
}

/// What one alarm event becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Decision {
    /// The first ALARM of an incident: the full report, which opens the thread.
    Opened,
    /// An ALARM with the same cause: a short update in the thread.
    Update {
        nth: u32,
        minutes: i64,
        /// When the load balancer had recovered, if it had in between.
        #[serde(default)]
        recovered_at: Option<i64>,
    },
    /// An ALARM whose cause changed: a full report that says what changed.
    Changed {
        nth: u32,
        minutes: i64,
        changes: Vec<String>,
        since: i64,
    },
    /// The last alarm in ALARM went OK: posted once per incident.
    Recovered { minutes: i64, alarms: u32 },
    /// No incident to join (an OK elbmedic saw no ALARM for): reported as without incidents.
    Standalone,
    /// Nothing goes out, and why.
    Quiet { reason: Quiet },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quiet {
    /// This very state change was delivered already (SNS delivers at least once).
    Duplicate,
    /// Another run claimed it and is sending it.
    InFlight,
    /// Older than what the incident already knows of this alarm.
    Stale,
    /// The recovery of this incident was posted already.
    RecoveredAlready,
    /// OK of an alarm the incident never saw in ALARM (forged, or from before elbmedic).
    NotFiring,
    /// Another alarm of the load balancer is still in ALARM.
    StillFiring,
}

impl Quiet {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "this state change was delivered already",
            Self::InFlight => "another run is sending this state change",
            Self::Stale => "older than what the incident knows of this alarm",
            Self::RecoveredAlready => "the incident's recovery was posted already",
            Self::NotFiring => "OK of an alarm the incident did not see in ALARM",
            Self::StillFiring => "another alarm of the load balancer is still in ALARM",
        }
    }
}

impl Decision {
    /// Whether anything goes out for it.
    pub fn sends(&self) -> bool {
        !matches!(self, Self::Quiet { .. })
    }

    /// A full report (not a short update or a recovery line).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Opened | Self::Changed { .. } | Self::Standalone)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Update { .. } => "update",
            Self::Changed { .. } => "changed",
            Self::Recovered { .. } => "recovered",
            Self::Standalone => "standalone",
            Self::Quiet { .. } => "quiet",
        }
    }
}

/// What [`step`] needs beyond the incident and the event.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub key: &'a IncidentKey,
    pub quiet_seconds: i64,
    /// The run claiming the event (the invocation's id).
    pub run: &'a str,
    pub now: i64,
}

/// The outcome of one event: what goes out, the record to write (`None`: nothing to write),
/// and whether the report's plan goes out too.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub decision: Decision,
    pub incident: Option<Incident>,
    pub send_plan: bool,
}

impl Step {
    /// Nothing goes out, and nothing is written.
    fn quiet(reason: Quiet) -> Self {
        Self {
            decision: Decision::Quiet { reason },
            incident: None,
            send_plan: false,
        }
    }
}

/// What one event becomes, given the incident record as read (`None`: no record).
/// `plan` is the id of the plan the report proposes, if any.
pub fn step(
    existing: Option<&Incident>,
    event: &AlarmEvent,
    report: &Report,
    plan: Option<&str>,
    context: Context<'_>,
) -> Step {
    if let Some(incident) = existing {
        if let Some(again) = redelivered(incident, event, context) {
            return again;
        }
    }
    let open = existing.filter(|i| {
        !i.is_closed(event.at, context.quiet_seconds)
            // An alarm in ALARM for longer than the silence limit still recovers in it.
            || (event.state == EventState::Ok && i.firing.iter().any(|f| f.alarm == event.alarm))
    });
    match (event.state, open) {
        (EventState::Alarm, None) => opened(event, report, plan, context),
        (EventState::Alarm, Some(incident)) => alarm_again(incident, event, report, plan, context),
        (EventState::Ok, None) if existing.is_some() => Step::quiet(Quiet::RecoveredAlready),
        (EventState::Ok, None) => Step {
            decision: Decision::Standalone,
            incident: None,
            send_plan: false,
        },
        (EventState::Ok, Some(incident)) => ok(incident, event, context),
    }
}

/// A state change the incident has seen already: sent, being sent, or to send again.
fn redelivered(incident: &Incident, event: &AlarmEvent, context: Context<'_>) -> Option<Step> {
    // The id, and what it stands for: a forged hash collision cannot pass for another alarm.
    let index = incident
        .timeline
        .iter()
        .position(|e| e.event == event.id && e.alarm == event.alarm && e.state == event.state)?;
    let entry = &incident.timeline[index];
    match &entry.delivery {
        EntryDelivery::Delivered { .. } => Some(Step::quiet(Quiet::Duplicate)),
        // Twice in one run: one batch of the alarm queue can hold both copies of a message.
        EntryDelivery::Claimed { by, .. } if by == context.run => {
            Some(Step::quiet(Quiet::Duplicate))
        }
        EntryDelivery::Claimed { at, .. } if context.now - at < CLAIM_LEASE_SECONDS => {
            Some(Step::quiet(Quiet::InFlight))
        }
        // Failed, or claimed by a run that died: this run sends what was decided then.
        _ => {
            let mut again = incident.clone();
            again.timeline[index].delivery = EntryDelivery::Claimed {
                by: context.run.to_string(),
                at: context.now,
            };
            let decision = entry.decision.clone();
            let send_plan = decision.is_full();
            Some(Step {
                decision,
                incident: Some(again),
                send_plan,
            })
        }
    }
}

fn opened(event: &AlarmEvent, report: &Report, plan: Option<&str>, context: Context<'_>) -> Step {
    let lb = report.load_balancer.as_ref();
    let key = context.key.clone();
    let fingerprint = Fingerprint::of(report);
    let mut incident = Incident {
        thread: thread_of(&key, event.at),
        key,
        load_balancer_name: lb.map(|lb| clipped(&lb.name, 64)).unwrap_or_default(),
        vpc_id: lb
            .and_then(|lb| lb.vpc_id.as_deref())
            .map(|v| clipped(v, 64)),
        opened_at: event.at,
        last_event_at: event.at,
        alarms: 1,
        firing: vec![Firing {
            alarm: event.alarm.clone(),
            since: event.at,
        }],
        ok_since: None,
        outage_since: Some(event.at),
        recovery_posted: false,
        headline: clipped(&report.verdict.headline, 300),
        last_full_at: event.at,
        subject: report.subject(),
        full_report_url: None,
        plans: Vec::new(),
        timeline: Vec::new(),
        fingerprint,
    };
    let send_plan = incident.propose(plan, event.at);
    incident.record(event, Decision::Opened, context);
    Step {
        decision: Decision::Opened,
        incident: Some(incident),
        send_plan,
    }
}

fn alarm_again(
    incident: &Incident,
    event: &AlarmEvent,
    report: &Report,
    plan: Option<&str>,
    context: Context<'_>,
) -> Step {
    if incident.is_stale(event) {
        return Step::quiet(Quiet::Stale);
    }
    let mut next = incident.clone();
    let recovered_at = next.firing.is_empty().then_some(next.ok_since).flatten();
    next.alarms = next.alarms.saturating_add(1);
    next.last_event_at = next.last_event_at.max(event.at);
    next.ok_since = None;
    next.fire(event);
    let minutes = (event.at - next.opened_at).max(0) / 60;
    let fingerprint = Fingerprint::of(report);
    let (decision, send_plan) = if fingerprint == next.fingerprint {
        let decision = Decision::Update {
            nth: next.alarms,
            minutes,
            recovered_at,
        };
        (decision, false)
    } else {
        let decision = Decision::Changed {
            nth: next.alarms,
            minutes,
            changes: bounded_changes(fingerprint.changes_since(&next.fingerprint)),
            since: next.last_full_at,
        };
        next.fingerprint = fingerprint;
        next.headline = clipped(&report.verdict.headline, 300);
        next.last_full_at = event.at;
        next.full_report_url = None;
        (decision, next.propose(plan, event.at))
    };
    next.record(event, decision.clone(), context);
    Step {
        decision,
        incident: Some(next),
        send_plan,
    }
}

fn ok(incident: &Incident, event: &AlarmEvent, context: Context<'_>) -> Step {
    if !incident.firing.iter().any(|f| f.alarm == event.alarm) {
        return Step::quiet(Quiet::NotFiring);
    }
    if incident.is_stale(event) {
        return Step::quiet(Quiet::Stale);
    }
    let mut next = incident.clone();
    let outage_began = next.outage_since.unwrap_or(next.opened_at);
    next.firing.retain(|f| f.alarm != event.alarm);
    next.last_event_at = next.last_event_at.max(event.at);
    // Flapping recovers once; an outage that lasted the quiet period gets its recovery too, or
    // the thread would end on "ALARM again".
    let long_outage = event.at - outage_began >= context.quiet_seconds;
    let decision = if !next.firing.is_empty() {
        Decision::Quiet {
            reason: Quiet::StillFiring,
        }
    } else {
        next.ok_since = Some(event.at);
        next.outage_since = None;
        if next.recovery_posted && !long_outage {
            Decision::Quiet {
                reason: Quiet::RecoveredAlready,
            }
        } else {
            next.recovery_posted = true;
            Decision::Recovered {
                minutes: (event.at - next.opened_at).max(0) / 60,
                alarms: next.alarms,
            }
        }
    };
    next.record(event, decision.clone(), context);
    Step {
        decision,
        incident: Some(next),
        send_plan: false,
    }
}

/// What changed, bounded for the record (each of its 50 events may hold it).
fn bounded_changes(mut changes: Vec<String>) -> Vec<String> {
    const MAX_CHANGES: usize = 8;
    let more = changes.len().saturating_sub(MAX_CHANGES);
    changes.truncate(MAX_CHANGES);
    let mut changes: Vec<String> = changes.iter().map(|c| clipped(c, 400)).collect();
    if more > 0 {
        changes.push(format!(
            "and {more} more changes (the full report has them)"
        ));
    }
    changes
}

/// The chat thread of an incident: its key and when it opened.
fn thread_of(key: &IncidentKey, opened_at: i64) -> String {
    let text = format!("{}|{opened_at}", key.ledger_key());
    format!("elbmedic-{:016x}", crate::stable_hash::stable_hash(&text))
}

impl Incident {
    /// Over: no alarm in ALARM for the quiet period, or nothing heard for a day.
    pub fn is_closed(&self, at: i64, quiet_seconds: i64) -> bool {
        let quiet = self.firing.is_empty()
            && self
                .ok_since
                .is_some_and(|since| at - since >= quiet_seconds);
        quiet || at - self.last_event_at > MAX_SILENCE_SECONDS
    }

    /// An event older than the last one the incident has of the same alarm.
    fn is_stale(&self, event: &AlarmEvent) -> bool {
        self.timeline
            .iter()
            .any(|e| e.alarm == event.alarm && e.at > event.at)
    }

    /// Notes the alarm as in ALARM. Past [`MAX_ALARMS`] a new name is not tracked: evicting
    /// one would let a flood of invented names push out the real alarm.
    fn fire(&mut self, event: &AlarmEvent) {
        if self.firing.is_empty() {
            self.outage_since = Some(event.at);
        }
        if !self.firing.iter().any(|f| f.alarm == event.alarm) && self.firing.len() < MAX_ALARMS {
            self.firing.push(Firing {
                alarm: event.alarm.clone(),
                since: event.at,
            });
        }
    }

    /// Notes a newly proposed plan; false when the incident proposed it already.
    fn propose(&mut self, plan: Option<&str>, at: i64) -> bool {
        let Some(id) = plan else { return false };
        if self.plans.iter().any(|p| p.id == id) {
            return false;
        }
        if self.plans.len() >= MAX_PLANS {
            self.plans.remove(0);
        }
        self.plans.push(PlanMark {
            id: clipped(id, 200),
            at,
        });
        true
    }

    fn record(&mut self, event: &AlarmEvent, decision: Decision, context: Context<'_>) {
        if self.timeline.len() >= MAX_TIMELINE {
            self.timeline.remove(0);
        }
        self.timeline.push(Entry {
            event: event.id.clone(),
            at: event.at,
            alarm: event.alarm.clone(),
            state: event.state,
            fingerprint: Some(self.fingerprint.digest()),
            delivery: match decision.sends() {
                true => EntryDelivery::Claimed {
                    by: context.run.to_string(),
                    at: context.now,
                },
                false => EntryDelivery::Delivered { at: context.now },
            },
            decision,
        });
    }

    /// The entry `run` claimed for `event`: settled only by the run that claimed it, so a
    /// forged event with a colliding id cannot settle another's claim.
    fn claimed_by(&mut self, event: &str, run: &str) -> Option<&mut Entry> {
        self.timeline.iter_mut().find(|e| {
            e.event == event
                && matches!(&e.delivery, EntryDelivery::Claimed { by, .. } if by == run)
        })
    }

    /// Marks the event's message as out; `url` is the full report's page, when one was stored
    /// for a full report.
    pub fn delivered(&mut self, event: &str, run: &str, url: Option<String>, now: i64) {
        if let Some(entry) = self.claimed_by(event, run) {
            entry.delivery = EntryDelivery::Delivered { at: now };
            if entry.decision.is_full() && url.is_some() {
                self.full_report_url = url;
            }
        }
    }

    /// Marks the event's message as not sent: the retry sends it.
    pub fn failed(&mut self, event: &str, run: &str, now: i64) {
        if let Some(entry) = self.claimed_by(event, run) {
            entry.delivery = EntryDelivery::Failed { at: now };
        }
    }

    /// When the ledger item may go (DynamoDB's TTL): a week after the last event.
    pub fn expires_at(&self) -> i64 {
        self.last_event_at + KEPT_SECONDS
    }

    /// Open at `now`.
    pub fn is_open(&self, now: i64, quiet_seconds: i64) -> bool {
        !self.is_closed(now, quiet_seconds)
    }
}

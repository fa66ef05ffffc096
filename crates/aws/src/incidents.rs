//! Incidents and storms in the ledger, around publishing: before a report goes out, its alarm
//! is claimed in its load balancer's incident (and, for a new incident, in its VPC's storm),
//! which decides what goes out (the full report, a short update, the recovery, the storm
//! summary, or nothing); after, the claim is marked delivered or failed. The decisions are the
//! engine's (`elbmedic_engine::incident`); this reads and writes the records, each with a
//! conditional put, so concurrent invocations agree.
//!
//! Never silence on a ledger failure: the report goes out in full, and says so.

use elbmedic_engine::alarm::Intake;
use elbmedic_engine::incident::note::note;
use elbmedic_engine::incident::storm::{self, Member, Outcome, Storm, StormKey};
use elbmedic_engine::incident::{
    self, AlarmEvent, Decision, Fingerprint, Incident, IncidentKey, Quiet, INCIDENT_PREFIX,
};
use elbmedic_engine::plan::reconcile::LedgerError;

use crate::ledger::Ledger;
use crate::pipeline::{Handled, Record};
use crate::settings::IncidentSettings;

/// Conditional puts tried before a record is given up on: concurrent runs on one incident
/// are few; a storm's record takes a dozen at once.
const ATTEMPTS: usize = 12;

/// What the publisher does with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Send {
    /// Its report (full, or short with the incident's note set on it).
    Report,
    /// The storm summary in its place (its own page is still stored).
    Storm(Box<Storm>),
    /// Its page only: a storm member whose summary is out.
    PageOnly,
    /// Nothing: a duplicate, an OK inside an incident, a record not for the topic.
    Nothing,
    /// Another invocation claimed this alarm moments ago and may yet fail: this one fails too,
    /// so that Lambda (or SQS) retries it, and the retry finds it sent or sends it.
    Retry,
}

/// A claim to settle once the record's message is out (or is not).
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    key: String,
    event: String,
    run: String,
}

/// Claims every record in its incident, sets the incident's note on its report (and takes
/// back a plan the incident proposed already), and says what goes out for each. `page_url`
/// gives the page a record's report will have, for the storm summary to link.
pub async fn claim_all(
    ledger: &Ledger,
    settings: IncidentSettings,
    handled: &mut [Handled],
    run: &str,
    now: i64,
    page_url: impl Fn(usize, &Record) -> Option<String>,
) -> Vec<(Send, Option<Claim>)> {
    let mut out = Vec::with_capacity(handled.len());
    for (index, handled) in handled.iter_mut().enumerate() {
        let claimed = match handled {
            Handled::Reported(record) if record.publish => {
                let url = page_url(index, record);
                Box::pin(claim(ledger, settings, record, run, now, url)).await
            }
            Handled::Reported(_) | Handled::Refused { .. } => (Send::Nothing, None),
        };
        out.push(claimed);
    }
    out
}

/// Sends for records when no incidents are kept: every report for the topic goes out.
pub fn unclaimed(handled: &[Handled]) -> Vec<(Send, Option<Claim>)> {
    handled
        .iter()
        .map(|h| match h {
            Handled::Reported(record) if record.publish => (Send::Report, None),
            _ => (Send::Nothing, None),
        })
        .collect()
}

async fn claim(
    ledger: &Ledger,
    settings: IncidentSettings,
    record: &mut Record,
    run: &str,
    now: i64,
    page_url: Option<String>,
) -> (Send, Option<Claim>) {
    let (alarm, lb) = match &record.intake {
        Intake::Diagnose {
            alarm,
            load_balancer,
        }
        | Intake::Recovered {
            alarm,
            load_balancer,
        } => (alarm.clone(), load_balancer.clone()),
        _ => return (Send::Report, None),
    };
    let Some(event) = AlarmEvent::of(&alarm, now) else {
        return (Send::Report, None);
    };
    let key = IncidentKey::of(&alarm, &lb.id);
    let context = incident::Context {
        key: &key,
        quiet_seconds: settings.quiet_minutes * 60,
        run,
        now,
    };
    let plan = record.plan.as_ref().map(|p| p.plan.id.clone());
    let ledger_key = key.ledger_key();
    let stepped = step_in_ledger(
        ledger,
        &ledger_key,
        &event,
        &record.report,
        plan.as_deref(),
        context,
    )
    .await;
    let step = match stepped {
        Ok(step) => step,
        Err(error) => {
            tracing::error!(incident = %ledger_key, error = %error, "the incident could not be kept; the full report goes out");
            record.report.next_steps.push(format!(
                "elbmedic could not keep this alarm's incident in its ledger ({}): this is a full report, and the next alarm may be one too.",
                elbmedic_engine::untrusted::clipped(&error.to_string(), 300)
            ));
            return (Send::Report, None);
        }
    };
    tracing::info!(incident = %ledger_key, alarm = %event.alarm, decision = step.decision.name(), "incident");
    if !step.send_plan && record.plan.take().is_some() {
        // Proposed already in this incident: not again, and approve mode does not ask twice.
        record.report.remediation = None;
    }
    let incident = match (&step.decision, step.incident) {
        (Decision::Standalone, _) => return (Send::Report, None),
        (Decision::Quiet { reason }, _) => {
            tracing::info!(incident = %ledger_key, reason = reason.as_str(), "nothing sent for this alarm");
            let send = match reason {
                Quiet::InFlight => Send::Retry,
                _ => Send::Nothing,
            };
            return (send, None);
        }
        (_, Some(incident)) => incident,
        // Not reached: every other decision writes the incident. Never silence.
        (_, None) => return (Send::Report, None),
    };
    let claim = Claim {
        key: ledger_key,
        event: event.id.clone(),
        run: run.to_string(),
    };
    record.report.incident = note(
        &incident,
        &step.decision,
        &record.report.verdict.headline,
        settings.quiet_minutes,
    );
    let send = match (&step.decision, incident.vpc_id.as_deref()) {
        (Decision::Opened, Some(vpc)) if settings.storm_threshold > 0 => {
            let member = Member {
                load_balancer: key.load_balancer.clone(),
                name: incident.load_balancer_name.clone(),
                opened_at: incident.opened_at,
                fingerprint: Fingerprint::of(&record.report),
                headline: incident.headline.clone(),
                report_url: page_url,
                outcome: Outcome::Alone,
                joined_at: now,
            };
            let storm_key = StormKey::of(&key, vpc);
            in_storm(ledger, &storm_key, member, settings.storm_threshold, now).await
        }
        _ => Send::Report,
    };
    (send, Some(claim))
}

/// What a new incident sends, given its VPC's storm: its report, the storm summary, or (the
/// summary being out) its page only. A storm that cannot be kept sends the report.
async fn in_storm(
    ledger: &Ledger,
    key: &StormKey,
    member: Member,
    threshold: usize,
    now: i64,
) -> Send {
    match join_storm(ledger, key, member, threshold, now).await {
        Ok((_, Outcome::Alone)) => Send::Report,
        Ok((storm, Outcome::Summary)) => Send::Storm(Box::new(storm)),
        Ok((_, Outcome::Joined)) => Send::PageOnly,
        Err(error) => {
            tracing::error!(storm = %key.ledger_key(), error = %error, "the storm could not be kept; this incident's report goes out");
            Send::Report
        }
    }
}

/// The incident's step for `event`, decided on the record as read and written if nobody
/// wrote it meanwhile.
async fn step_in_ledger(
    ledger: &Ledger,
    ledger_key: &str,
    event: &AlarmEvent,
    report: &elbmedic_engine::report::Report,
    plan: Option<&str>,
    context: incident::Context<'_>,
) -> Result<incident::Step, IncidentError> {
    read_decide_write(ledger, ledger_key, |existing: Option<Incident>| {
        let step = incident::step(existing.as_ref(), event, report, plan, context);
        match step.incident.clone() {
            Some(next) => Update::Write {
                expires_at: next.expires_at(),
                record: next,
                value: step,
            },
            None => Update::Keep(step),
        }
    })
    .await
}

async fn join_storm(
    ledger: &Ledger,
    key: &StormKey,
    member: Member,
    threshold: usize,
    now: i64,
) -> Result<(Storm, Outcome), IncidentError> {
    read_decide_write(ledger, &key.ledger_key(), |existing: Option<Storm>| {
        let (next, outcome) = storm::join(existing.as_ref(), key, member.clone(), threshold, now);
        match existing.as_ref() == Some(&next) {
            true => Update::Keep((next, outcome)),
            false => Update::Write {
                record: next.clone(),
                expires_at: now + incident::KEPT_SECONDS,
                value: (next, outcome),
            },
        }
    })
    .await
}

/// Marks the claim delivered (with the full report's page) or failed, so that a redelivery
/// is not sent twice and a failure is sent by the retry. A failure here is logged: the
/// message is out either way.
pub async fn settle(
    ledger: &Ledger,
    claim: &Claim,
    delivered: bool,
    url: Option<String>,
    now: i64,
) {
    let settled = read_decide_write(ledger, &claim.key, |existing: Option<Incident>| {
        let Some(mut incident) = existing else {
            return Update::Keep(());
        };
        match delivered {
            true => incident.delivered(&claim.event, &claim.run, url.clone(), now),
            false => incident.failed(&claim.event, &claim.run, now),
        }
        Update::Write {
            expires_at: incident.expires_at(),
            record: incident,
            value: (),
        }
    });
    if let Err(error) = settled.await {
        tracing::warn!(incident = %claim.key, error = %error, "the incident's delivery could not be noted; a redelivery of this alarm may be sent again");
    }
}

/// What one read of a versioned record decides: write `record` (kept until `expires_at`) and
/// answer `value`, or answer without writing.
enum Update<T, R> {
    Write {
        record: T,
        expires_at: i64,
        value: R,
    },
    Keep(R),
}

/// Reads the record at `key`, lets `decide` choose, and writes only if nobody wrote the record
/// since it was read; otherwise reads and decides again, a little later each time, so the
/// writers of one record (a storm's take a dozen at once) spread apart.
async fn read_decide_write<T, R>(
    ledger: &Ledger,
    key: &str,
    mut decide: impl FnMut(Option<T>) -> Update<T, R>,
) -> Result<R, IncidentError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    for attempt in 0..ATTEMPTS {
        let read = ledger.versioned(key).await?;
        let existing = read.as_ref().map(|r| parse::<T>(&r.json)).transpose()?;
        let (record, expires_at, value) = match decide(existing) {
            Update::Keep(value) => return Ok(value),
            Update::Write {
                record,
                expires_at,
                value,
            } => (record, expires_at, value),
        };
        let json = serde_json::to_string(&record).unwrap_or_default();
        if ledger
            .put_versioned(key, &json, read.map(|r| r.version), expires_at)
            .await?
        {
            return Ok(value);
        }
        tracing::info!(key, "another run wrote the record; reading it again");
        tokio::time::sleep(std::time::Duration::from_millis(20 * (attempt as u64 + 1))).await;
    }
    Err(IncidentError::Contended(key.to_string()))
}

/// Every incident the ledger keeps (the CLI's `incidents`), newest first; `lb` keeps those of
/// load balancers whose name or id contains it.
pub async fn list(ledger: &Ledger, lb: Option<&str>) -> Result<Vec<Incident>, IncidentError> {
    let records = ledger.scan_prefix(INCIDENT_PREFIX, 20).await?;
    let mut incidents: Vec<Incident> = records
        .iter()
        .filter_map(|json| serde_json::from_str(json).ok())
        .filter(|i: &Incident| {
            lb.is_none_or(|lb| {
                i.load_balancer_name.contains(lb) || i.key.load_balancer.contains(lb)
            })
        })
        .collect();
    incidents.sort_by_key(|i| std::cmp::Reverse(i.last_event_at));
    Ok(incidents)
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, IncidentError> {
    serde_json::from_str(json).map_err(|e| IncidentError::Unreadable(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("the ledger's record is not one elbmedic wrote: {0}")]
    Unreadable(String),
    #[error("{0} was written by other runs {ATTEMPTS} times in a row")]
    Contended(String),
}

//! What changed: CloudTrail `LookupEvents` over the alarm window and the two hours before it.
//! CloudTrail allows 2 lookups a second per account and region, and one lookup attribute per
//! call, so it is the slowest source elbmedic reads: the first pass spends at most one second
//! of that rate (two calls), beside the describe rounds, and names what it left for later.
//! Events for the path's NACLs and security groups are found by event name and kept only when
//! they touch the snapshot's resources (a `ResourceName` lookup finds only events whose
//! `Resources` list names the id, which EC2 does not promise).

use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_smithy_types::date_time::Format as DateFormat;
use aws_smithy_types::DateTime;
use elbmedic_engine::changes::touched;
use elbmedic_engine::snapshot::{ChangeEvent, Changes, Gap, GapFact, Snapshot};
use serde_json::Value;
use tokio::time::Instant;

use super::{bounded, join_all, settle};
use crate::clients::Clients;

/// Calls per second: CloudTrail's rate for LookupEvents, per account and region. The first
/// pass spends one second of it.
pub const FIRST_PASS_CALLS: usize = 2;

/// How far a gather looks up recent changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeLookups {
    Off,
    /// Two lookups, beside the describe rounds: the first report never waits for CloudTrail.
    FirstPass,
    /// Every lookup, paced at CloudTrail's rate (about 6 s): the CLI's `--follow-up`, for an
    /// engineer who can wait a few seconds longer.
    All,
}

/// The window before the alarm window that is looked up.
const LOOK_BACK_SECONDS: i64 = 2 * 3600;

/// Each first-pass lookup's own budget: CloudTrail answers in well under a second when it
/// answers.
const LOOKUP_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// A `CloudTrailEvent` larger than this is kept without its request parameters.
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// One lookup: one attribute, as the API takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub key: LookupAttributeKey,
    pub value: String,
}

impl Lookup {
    fn label(&self) -> String {
        format!("{}={}", self.key.as_str(), self.value)
    }
}

/// Every lookup that covers the path, most telling first: the load balancer itself, then the
/// NACL and security-group changes that break paths.
pub fn lookups(lb_resource: Option<&str>) -> Vec<Lookup> {
    let by_name = |name: &str| Lookup {
        key: LookupAttributeKey::EventName,
        value: name.into(),
    };
    let mut all: Vec<Lookup> = lb_resource
        .map(|resource| Lookup {
            key: LookupAttributeKey::ResourceName,
            value: resource.into(),
        })
        .into_iter()
        .collect();
    all.extend(
        [
            "CreateNetworkAclEntry",
            "ReplaceNetworkAclEntry",
            "RevokeSecurityGroupIngress",
            "DeleteNetworkAclEntry",
            "ReplaceNetworkAclAssociation",
            "RevokeSecurityGroupEgress",
            "ModifySecurityGroupRules",
            "ModifyTargetGroup",
            "ModifyTargetGroupAttributes",
            "DeregisterTargets",
            "RegisterTargets",
        ]
        .map(by_name),
    );
    all
}

/// The lookups `how` allows, [`FIRST_PASS_CALLS`] a second; the rest are named as not looked up.
pub async fn look_up(
    clients: &Clients,
    lb_resource: Option<&str>,
    window: (i64, i64),
    how: ChangeLookups,
    deadline: Instant,
) -> (Changes, Vec<Gap>) {
    let all = lookups(lb_resource);
    let allowed = match how {
        ChangeLookups::Off => 0,
        ChangeLookups::FirstPass => FIRST_PASS_CALLS,
        ChangeLookups::All => all.len(),
    };
    let (now, later) = all.split_at(allowed.min(all.len()));
    let since = window.0 - LOOK_BACK_SECONDS;
    let mut results = Vec::new();
    for (second, batch) in now.chunks(FIRST_PASS_CALLS).enumerate() {
        if second > 0 {
            // CloudTrail's rate: the next batch starts a second after this one.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        results.extend(
            join_all(
                batch
                    .iter()
                    .map(|lookup| one_lookup(clients, lookup, (since, window.1), how, deadline))
                    .collect(),
            )
            .await,
        );
    }
    let mut changes = Changes {
        since: rfc3339(since),
        until: rfc3339(window.1),
        events: Vec::new(),
        not_looked_up: later.iter().map(Lookup::label).collect(),
    };
    let mut gaps = Vec::new();
    for result in results {
        match result {
            Ok(events) => {
                for event in events {
                    if !changes.events.iter().any(|e| e.event_id == event.event_id) {
                        changes.events.push(event);
                    }
                }
            }
            Err(gap) => gaps.push(gap),
        }
    }
    (changes, gaps)
}

async fn one_lookup(
    clients: &Clients,
    lookup: &Lookup,
    (since, until): (i64, i64),
    how: ChangeLookups,
    deadline: Instant,
) -> Result<Vec<ChangeEvent>, Gap> {
    // The first pass makes one attempt: a throttled lookup is a gap named in the report,
    // never a wait (the SDK's back-off would hold the first report for CloudTrail). Later
    // passes have nobody waiting on them, and take the SDK's retries.
    let retries = if how == ChangeLookups::FirstPass {
        aws_config::retry::RetryConfig::disabled()
    } else {
        aws_config::retry::RetryConfig::standard()
    };
    let request = clients
        .cloudtrail
        .lookup_events()
        .lookup_attributes(
            LookupAttribute::builder()
                .attribute_key(lookup.key.clone())
                .attribute_value(&lookup.value)
                .build()
                .map_err(|e| Gap {
                    fact: GapFact::RecentChanges,
                    resource: Some(lookup.label()),
                    reason: elbmedic_engine::snapshot::GapReason::Error,
                    detail: e.to_string(),
                })?,
        )
        .start_time(DateTime::from_secs(since))
        .end_time(DateTime::from_secs(until))
        .max_results(50)
        .customize()
        .config_override(aws_sdk_cloudtrail::config::Builder::default().retry_config(retries))
        .send();
    let label = format!("cloudtrail:LookupEvents {}", lookup.label());
    let budget = match how {
        ChangeLookups::FirstPass => deadline.min(Instant::now() + LOOKUP_BUDGET),
        _ => deadline,
    };
    let out = settle(
        bounded(budget, request).await,
        GapFact::RecentChanges,
        Some(&label),
    )?;
    Ok(out.events().iter().filter_map(change_event).collect())
}

/// An error code is a short token (`Client.UnauthorizedOperation`); anything longer is cut.
const MAX_ERROR_CODE: usize = 100;

/// An event as the snapshot keeps it: who, when, what was asked.
fn change_event(event: &aws_sdk_cloudtrail::types::Event) -> Option<ChangeEvent> {
    let record: Value = event
        .cloud_trail_event()
        .filter(|text| text.len() <= MAX_EVENT_BYTES)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    Some(ChangeEvent {
        event_id: event.event_id()?.to_string(),
        event_name: event.event_name()?.to_string(),
        event_time: event
            .event_time()
            .and_then(|t| t.fmt(DateFormat::DateTime).ok())
            .unwrap_or_default(),
        actor: record
            .pointer("/userIdentity/arn")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| event.username().map(str::to_string)),
        resources: event
            .resources()
            .iter()
            .filter_map(|r| r.resource_name().map(str::to_string))
            .collect(),
        request: record
            .get("requestParameters")
            .cloned()
            .unwrap_or(Value::Null),
        // A denied or failed call is recorded too, with the code of its error: it changed
        // nothing, and the engine must know that before it ties it to a finding.
        error_code: record
            .get("errorCode")
            .and_then(Value::as_str)
            .map(|code| code.chars().take(MAX_ERROR_CODE).collect()),
        read_only: event.read_only() == Some("true")
            || record.get("readOnly").and_then(Value::as_bool) == Some(true),
    })
}

/// Keeps the events that touch the load balancer or a resource on its path (a NACL, a security
/// group or a target group of the snapshot): an event-name lookup returns the whole region's.
pub fn on_the_path(changes: &mut Changes, world: &Snapshot) {
    let lb = &world.load_balancer;
    let mut ours: Vec<&str> = vec![lb.name.as_str(), lb.id.as_str()];
    ours.extend(lb.arn.as_deref());
    ours.extend(world.network_acls.iter().map(|a| a.id.as_str()));
    ours.extend(world.security_groups.iter().map(|g| g.id.as_str()));
    ours.extend(world.target_groups.iter().filter_map(|g| g.arn.as_deref()));
    changes
        .events
        .retain(|event| touched(event).iter().any(|id| ours.contains(&id.as_str())));
    changes
        .events
        .sort_by(|a, b| a.event_time.cmp(&b.event_time));
}

fn rfc3339(secs: i64) -> String {
    DateTime::from_secs(secs)
        .fmt(DateFormat::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pass_asks_for_the_load_balancer_and_the_nacl_entries() {
        let all = lookups(Some(
            "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/a/1",
        ));
        assert_eq!(all[0].key, LookupAttributeKey::ResourceName);
        assert_eq!(all[1].value, "CreateNetworkAclEntry");
        assert!(
            all.len() > FIRST_PASS_CALLS,
            "the rest is named for the follow-up"
        );
    }

    #[test]
    fn an_event_of_another_vpc_is_not_kept() {
        let scenario = elbmedic_engine::scenarios::find("nacl-rule-added-recently").unwrap();
        let world = elbmedic_engine::snapshot::from_json(scenario.snapshot).unwrap();
        let mut changes = world.changes.clone().unwrap();
        let mut foreign = changes.events[1].clone();
        foreign.event_id = "other".into();
        foreign.request = serde_json::json!({"networkAclId": "acl-elsewhere", "ruleNumber": 5});
        changes.events.push(foreign);
        on_the_path(&mut changes, &world);
        assert!(changes.events.iter().all(|e| e.event_id != "other"));
        assert!(changes
            .events
            .iter()
            .any(|e| e.event_name == "CreateNetworkAclEntry"));
    }
}

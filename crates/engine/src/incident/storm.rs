//! Storms: many load balancers of one VPC opening incidents at once are likely one cause (a
//! NACL shared by many subnets, a zone's trouble). Past `STORM_THRESHOLD` incidents opened
//! within [`WINDOW_SECONDS`] in one VPC, one storm summary goes out, grouped by the resources
//! the diagnoses share, instead of one full report each. Pure, like the incident: the ledger
//! keeps one record per VPC and writes it conditionally.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Fingerprint, IncidentKey};
use crate::untrusted::clipped;

pub const WINDOW_SECONDS: i64 = 300;
pub const DEFAULT_THRESHOLD: usize = 3;
/// Members kept in one storm record: the summary names the first ones and counts the rest.
const MAX_MEMBERS: usize = 200;

/// Which storm: the account, region and VPC of the load balancers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StormKey {
    pub account: String,
    pub region: String,
    pub vpc: String,
}

impl StormKey {
    pub fn of(incident: &IncidentKey, vpc: &str) -> Self {
        Self {
            account: incident.account.clone(),
            region: incident.region.clone(),
            vpc: clipped(vpc, 64),
        }
    }

    pub fn ledger_key(&self) -> String {
        format!("storm#{}#{}#{}", self.account, self.region, self.vpc)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storm {
    pub key: StormKey,
    pub members: Vec<Member>,
    /// Members beyond [`MAX_MEMBERS`], counted only.
    #[serde(default)]
    pub more: usize,
    /// When the summary went out for the storm in progress.
    #[serde(default)]
    pub summary_at: Option<i64>,
}

/// One incident that opened in the storm's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub load_balancer: String,
    pub name: String,
    pub opened_at: i64,
    pub fingerprint: Fingerprint,
    pub headline: String,
    #[serde(default)]
    pub report_url: Option<String>,
    pub outcome: Outcome,
    /// When it joined (the clock): the window counts from here, so a backlog of queued alarms
    /// still forms its storm.
    #[serde(default)]
    pub joined_at: i64,
}

/// What one incident's opening became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// No storm (yet): its own full report.
    Alone,
    /// It tipped the VPC into a storm: the storm summary goes out in its place.
    Summary,
    /// The summary is out: its own report is kept (page, JSON), not sent.
    Joined,
}

/// The storm record after `member` opened, and what its report becomes. A member already in
/// the record (a redelivery) keeps the outcome it had.
pub fn join(
    existing: Option<&Storm>,
    key: &StormKey,
    member: Member,
    threshold: usize,
    now: i64,
) -> (Storm, Outcome) {
    let mut storm = existing.cloned().unwrap_or_else(|| Storm {
        key: key.clone(),
        members: Vec::new(),
        more: 0,
        summary_at: None,
    });
    if let Some(known) = storm
        .members
        .iter()
        .find(|m| m.load_balancer == member.load_balancer && m.opened_at == member.opened_at)
    {
        let outcome = known.outcome;
        return (storm, outcome);
    }
    storm
        .members
        .retain(|m| now - m.joined_at.max(m.opened_at) < WINDOW_SECONDS);
    // A storm ends a window after its summary: openings cannot keep it alive forever and
    // silence every later incident of the VPC.
    if storm.members.is_empty()
        || storm
            .summary_at
            .is_some_and(|at| now - at >= WINDOW_SECONDS)
    {
        storm.members.clear();
        storm.more = 0;
        storm.summary_at = None;
    }
    let count = storm.members.len() + storm.more + 1;
    let outcome = match (count > threshold.max(1), storm.summary_at) {
        (false, _) => Outcome::Alone,
        (true, None) => Outcome::Summary,
        (true, Some(_)) => Outcome::Joined,
    };
    if outcome == Outcome::Summary {
        storm.summary_at = Some(now);
    }
    if storm.members.len() >= MAX_MEMBERS {
        storm.more += 1;
    } else {
        storm.members.push(Member {
            outcome,
            joined_at: now,
            ..member
        });
    }
    (storm, outcome)
}

/// The storm's members grouped by the resources their diagnoses share.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouped<'a> {
    /// Resources that two or more members' causes name, with those causes' codes and the
    /// members; resources named by exactly the same members are one group (a NACL and its
    /// subnets). The most shared first.
    pub shared: Vec<SharedResources<'a>>,
    /// Members that share no deciding resource with another.
    pub alone: Vec<&'a Member>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SharedResources<'a> {
    pub resources: Vec<&'a str>,
    pub codes: Vec<&'a str>,
    pub members: Vec<&'a Member>,
}

pub fn group(storm: &Storm) -> Grouped<'_> {
    // resource -> (codes, member indexes)
    let mut by_resource: BTreeMap<&str, (Vec<&str>, Vec<usize>)> = BTreeMap::new();
    for (index, member) in storm.members.iter().enumerate() {
        for cause in &member.fingerprint.causes {
            for resource in &cause.resources {
                let (codes, members) = by_resource.entry(resource.as_str()).or_default();
                if !codes.contains(&cause.code.as_str()) {
                    codes.push(cause.code.as_str());
                }
                if !members.contains(&index) {
                    members.push(index);
                }
            }
        }
    }
    // member indexes -> (resources, codes)
    let mut by_members: BTreeMap<Vec<usize>, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for (resource, (codes, members)) in by_resource {
        if members.len() < 2 {
            continue;
        }
        let (resources, group_codes) = by_members.entry(members).or_default();
        resources.push(resource);
        for code in codes {
            if !group_codes.contains(&code) {
                group_codes.push(code);
            }
        }
    }
    let mut shared: Vec<SharedResources> = by_members
        .into_iter()
        .map(|(members, (resources, codes))| SharedResources {
            resources,
            codes,
            members: members.iter().map(|&i| &storm.members[i]).collect(),
        })
        .collect();
    shared.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(a.resources.cmp(&b.resources))
    });
    let alone = storm
        .members
        .iter()
        .filter(|m| {
            !shared
                .iter()
                .any(|s| s.members.iter().any(|x| std::ptr::eq(*x, *m)))
        })
        .collect();
    Grouped { shared, alone }
}

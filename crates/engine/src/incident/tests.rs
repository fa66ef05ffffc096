use super::note::{note, ordinal};
use super::storm::{group, join, Member, Outcome, StormKey};
use super::*;
use crate::alarm::AlarmState;
use crate::report::Report;

const QUIET: i64 = 30 * 60;
const T0: i64 = 1_796_000_000;

fn scenario_report(name: &str) -> (Alarm, Report, String) {
    let scenario = crate::scenarios::find(name).unwrap();
    let (alarm, lb) = scenario.alarm().unwrap();
    let world = scenario.world().unwrap();
    let report = Report::diagnosed(&alarm, &lb, &world);
    (alarm, report, lb.id)
}

fn event(alarm: &Alarm, state: AlarmState, at: i64) -> AlarmEvent {
    let mut alarm = alarm.clone();
    alarm.state = state;
    alarm.state_change_time = Some(
        chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string(),
    );
    AlarmEvent::of(&alarm, at + 5).unwrap()
}

/// One load balancer's incident record, as the ledger keeps it, fed alarm by alarm.
struct Flap {
    alarm: Alarm,
    report: Report,
    lb: String,
    key: IncidentKey,
    record: Option<Incident>,
}

impl Flap {
    fn new(scenario: &str) -> Self {
        let (alarm, report, lb) = scenario_report(scenario);
        let key = IncidentKey::of(&alarm, &lb);
        Self {
            alarm,
            report,
            lb,
            key,
            record: None,
        }
    }

    /// The scenario's alarm, report, load balancer id and incident key.
    fn parts(&self) -> (Alarm, Report, String, IncidentKey) {
        (
            self.alarm.clone(),
            self.report.clone(),
            self.lb.clone(),
            self.key.clone(),
        )
    }

    /// The scenario's alarm in `state` at `at`, with its report.
    fn send(&mut self, state: AlarmState, at: i64) -> Decision {
        let (alarm, report) = (self.alarm.clone(), self.report.clone());
        self.send_as(&alarm, &report, state, at)
    }

    fn send_as(&mut self, alarm: &Alarm, report: &Report, state: AlarmState, at: i64) -> Decision {
        apply(
            &mut self.record,
            &self.key,
            &event(alarm, state, at),
            report,
            "r",
        )
    }
}

/// Runs one event through [`step`] and [`Incident::delivered`], as the ledger would.
fn apply(
    record: &mut Option<Incident>,
    key: &IncidentKey,
    event: &AlarmEvent,
    report: &Report,
    run: &str,
) -> Decision {
    let context = Context {
        key,
        quiet_seconds: QUIET,
        run,
        now: event.at + 5,
    };
    let step = step(record.as_ref(), event, report, Some("plan-1"), context);
    if let Some(mut incident) = step.incident {
        incident.delivered(
            &event.id,
            run,
            Some("https://console.aws.amazon.com/s3/object/x".into()),
            event.at + 6,
        );
        *record = Some(incident);
    }
    step.decision
}

#[test]
fn a_flapping_alarm_is_one_full_report_then_short_updates_and_one_recovery() {
    let mut flap = Flap::new("alb-idle-timeout");
    let (_, report, _, _) = flap.parts();
    let mut decisions = Vec::new();
    for n in 0..5 {
        let at = T0 + n * 300;
        decisions.push(flap.send(AlarmState::Alarm, at));
        decisions.push(flap.send(AlarmState::Ok, at + 120));
    }
    let names: Vec<&str> = decisions.iter().map(Decision::name).collect();
    assert_eq!(
        names,
        [
            "opened",
            "recovered",
            "update",
            "quiet",
            "update",
            "quiet",
            "update",
            "quiet",
            "update",
            "quiet"
        ]
    );
    assert_eq!(
        decisions[8],
        Decision::Update {
            nth: 5,
            minutes: 20,
            recovered_at: Some(T0 + 3 * 300 + 120)
        }
    );
    let incident = flap.record.unwrap();
    assert_eq!(incident.alarms, 5);
    assert_eq!(incident.plans.len(), 1, "the plan is proposed once");
    let line = note(&incident, &decisions[8], &report.verdict.headline, 30)
        .unwrap()
        .line;
    assert!(
        line.starts_with("ALARM again (5th time in 20 min) (it had recovered at "),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("same cause: {}", report.verdict.headline)),
        "{line}"
    );
}

#[test]
fn a_changed_cause_is_a_full_report_that_names_the_change() {
    let (alarm, idle, lb) = scenario_report("alb-idle-timeout");
    let key = IncidentKey::of(&alarm, &lb);
    let mut record = None;
    apply(
        &mut record,
        &key,
        &event(&alarm, AlarmState::Alarm, T0),
        &idle,
        "r",
    );
    let mut changed = idle.clone();
    changed.findings[0].resources = vec!["acl-0123456789abcdef0".into()];
    changed.findings[0].code = crate::finding::FindingCode::NaclBlocksEphemeralPorts;
    let decision = apply(
        &mut record,
        &key,
        &event(&alarm, AlarmState::Alarm, T0 + 600),
        &changed,
        "r",
    );
    let Decision::Changed {
        nth,
        minutes,
        changes,
        since,
    } = &decision
    else {
        panic!("{decision:?}")
    };
    assert_eq!((*nth, *minutes, *since), (2, 10, T0));
    assert!(
        changes.contains(&"no longer found: idle-timeout-exceeded".to_string()),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c
                .starts_with("new cause: nacl-blocks-ephemeral-ports on acl-0123456789abcdef0")),
        "{changes:?}"
    );
    // The next alarm with the new cause is an update of the new cause.
    let again = apply(
        &mut record,
        &key,
        &event(&alarm, AlarmState::Alarm, T0 + 900),
        &changed,
        "r",
    );
    assert_eq!(again.name(), "update");
}

#[test]
fn another_alarm_of_the_same_load_balancer_joins_the_incident() {
    let (alarm, report, lb) = scenario_report("alb-idle-timeout");
    let key = IncidentKey::of(&alarm, &lb);
    let mut other = alarm.clone();
    other.alarm_name = "shop-target-connection-errors".into();
    let mut record = None;
    apply(
        &mut record,
        &key,
        &event(&alarm, AlarmState::Alarm, T0),
        &report,
        "r",
    );
    assert_eq!(
        apply(
            &mut record,
            &key,
            &event(&other, AlarmState::Alarm, T0 + 60),
            &report,
            "r"
        )
        .name(),
        "update"
    );
    // One alarm OK, the other still in ALARM: not a recovery.
    let first_ok = apply(
        &mut record,
        &key,
        &event(&alarm, AlarmState::Ok, T0 + 120),
        &report,
        "r",
    );
    assert_eq!(
        first_ok,
        Decision::Quiet {
            reason: Quiet::StillFiring
        }
    );
    let both_ok = apply(
        &mut record,
        &key,
        &event(&other, AlarmState::Ok, T0 + 180),
        &report,
        "r",
    );
    assert_eq!(
        both_ok,
        Decision::Recovered {
            minutes: 3,
            alarms: 2
        }
    );
}

#[test]
fn after_the_quiet_period_an_alarm_opens_a_new_incident_and_thread() {
    let mut flap = Flap::new("alb-idle-timeout");
    flap.send(AlarmState::Alarm, T0);
    flap.send(AlarmState::Ok, T0 + 60);
    let thread = flap.record.as_ref().unwrap().thread.clone();
    // 29 minutes OK: the same incident.
    assert_eq!(
        flap.send(AlarmState::Alarm, T0 + 60 + 29 * 60).name(),
        "update"
    );
    flap.send(AlarmState::Ok, T0 + 60 + 30 * 60);
    let reopened = flap.send(AlarmState::Alarm, T0 + 60 + 61 * 60);
    assert_eq!(reopened, Decision::Opened);
    assert_ne!(flap.record.unwrap().thread, thread);
}

/// SNS delivers at least once: a state change already delivered is not sent again; one a run
/// claimed and is sending is left to it; one that failed, or whose run died, is sent again
/// with the decision it had.
#[test]
fn redeliveries_are_sent_once_and_failures_are_sent_again() {
    let (alarm, report, lb) = scenario_report("alb-idle-timeout");
    let key = IncidentKey::of(&alarm, &lb);
    let first = event(&alarm, AlarmState::Alarm, T0);
    let context = |run, now| Context {
        key: &key,
        quiet_seconds: QUIET,
        run,
        now,
    };
    let claimed = step(None, &first, &report, None, context("a", T0 + 5));
    let incident = claimed.incident.unwrap();
    assert_eq!(claimed.decision, Decision::Opened);
    let twin = step(Some(&incident), &first, &report, None, context("b", T0 + 6));
    assert_eq!(
        twin.decision,
        Decision::Quiet {
            reason: Quiet::InFlight
        }
    );
    assert!(twin.incident.is_none(), "nothing to write");
    // Run a died: after the lease, b sends what a decided.
    let later = step(
        Some(&incident),
        &first,
        &report,
        None,
        context("b", T0 + 5 + CLAIM_LEASE_SECONDS),
    );
    assert_eq!(later.decision, Decision::Opened);
    let mut failed = incident.clone();
    failed.failed(&first.id, "a", T0 + 7);
    let retried = step(Some(&failed), &first, &report, None, context("c", T0 + 8));
    assert_eq!(retried.decision, Decision::Opened);
    let mut sent = retried.incident.unwrap();
    sent.delivered(&first.id, "c", None, T0 + 9);
    assert_eq!(sent.alarms, 1, "a retry does not count again");
    let duplicate = step(Some(&sent), &first, &report, None, context("d", T0 + 10));
    assert_eq!(
        duplicate.decision,
        Decision::Quiet {
            reason: Quiet::Duplicate
        }
    );
}

/// A forged OK naming an alarm the incident never saw firing closes nothing, and an alarm
/// from another account has another key.
#[test]
fn a_forged_ok_cannot_close_an_incident_nor_reach_another_account() {
    let mut flap = Flap::new("alb-idle-timeout");
    let (alarm, report, lb, key) = flap.parts();
    flap.send(AlarmState::Alarm, T0);
    let mut forged = alarm.clone();
    forged.alarm_name = "anything".into();
    let decision = flap.send_as(&forged, &report, AlarmState::Ok, T0 + 60);
    assert_eq!(
        decision,
        Decision::Quiet {
            reason: Quiet::NotFiring
        }
    );
    assert_eq!(flap.record.as_ref().unwrap().firing.len(), 1);
    let mut elsewhere = alarm.clone();
    elsewhere.account_id = Some("999988887777".into());
    assert_ne!(
        IncidentKey::of(&elsewhere, &lb).ledger_key(),
        key.ledger_key()
    );
    assert_eq!(IncidentKey::of(&alarm, &lb).ledger_key(), key.ledger_key());
}

#[test]
fn a_flood_of_alarm_names_and_events_keeps_the_record_bounded() {
    let mut flap = Flap::new("alb-idle-timeout");
    let (alarm, report, _, _) = flap.parts();
    for n in 0..500 {
        let mut a = alarm.clone();
        a.alarm_name = format!("{}-{n}", "x".repeat(400));
        flap.send_as(&a, &report, AlarmState::Alarm, T0 + n);
    }
    let incident = flap.record.unwrap();
    assert_eq!(incident.alarms, 500);
    assert!(incident.firing.len() <= 20 && incident.timeline.len() <= 50);
    assert!(
        serde_json::to_string(&incident).unwrap().len() < 100_000,
        "fits a DynamoDB item"
    );
}

#[test]
fn an_alarm_time_far_from_the_clock_is_not_believed() {
    let (mut alarm, _, _) = scenario_report("alb-idle-timeout");
    alarm.state_change_time = Some("2001-01-01T00:00:00Z".into());
    assert_eq!(AlarmEvent::of(&alarm, T0).unwrap().at, T0);
    alarm.state_change_time = None;
    assert_eq!(AlarmEvent::of(&alarm, T0).unwrap().at, T0);
    alarm.state = AlarmState::InsufficientData;
    assert!(AlarmEvent::of(&alarm, T0).is_none());
}

#[test]
fn ordinals_read_as_english() {
    let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
        .map(ordinal)
        .to_vec();
    assert_eq!(
        got,
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    );
}

fn member(name: &str, opened_at: i64, resources: &[&str]) -> Member {
    Member {
        load_balancer: format!("app/{name}/0123"),
        name: name.into(),
        opened_at,
        fingerprint: Fingerprint {
            verdict: "cause-found".into(),
            causes: vec![fingerprint::Cause {
                code: "nacl-blocks-ephemeral-ports".into(),
                resources: resources.iter().map(|r| r.to_string()).collect(),
            }],
        },
        headline: "h".into(),
        report_url: None,
        outcome: Outcome::Alone,
        joined_at: opened_at,
    }
}

#[test]
fn past_the_threshold_one_storm_summary_goes_out_and_later_ones_join_it() {
    let key = StormKey {
        account: "a".into(),
        region: "r".into(),
        vpc: "vpc-1".into(),
    };
    let mut storm = None;
    let mut outcomes = Vec::new();
    for n in 0..6 {
        let m = member(
            &format!("lb{n}"),
            T0 + n,
            &["acl-shared", "subnet-a", &format!("arn-{n}")],
        );
        let (next, outcome) = join(storm.as_ref(), &key, m, 3, T0 + n);
        storm = Some(next);
        outcomes.push(outcome);
    }
    use Outcome::*;
    assert_eq!(outcomes, [Alone, Alone, Alone, Summary, Joined, Joined]);
    // A redelivery keeps its outcome.
    let again = join(storm.as_ref(), &key, member("lb3", T0 + 3, &[]), 3, T0 + 10).1;
    assert_eq!(again, Summary);
    let storm = storm.unwrap();
    let grouped = group(&storm);
    assert_eq!(
        grouped.shared.len(),
        1,
        "the NACL and its subnet are one group"
    );
    assert_eq!(grouped.shared[0].resources, ["acl-shared", "subnet-a"]);
    assert_eq!(grouped.shared[0].members.len(), 6);
    // Five minutes later the window is empty: a new storm may start.
    let (_, later) = join(
        Some(&storm),
        &key,
        member("lb9", T0 + 400, &[]),
        3,
        T0 + 400,
    );
    assert_eq!(later, Alone);
}

#[test]
fn members_sharing_nothing_are_listed_apart() {
    let key = StormKey {
        account: "a".into(),
        region: "r".into(),
        vpc: "vpc-1".into(),
    };
    let mut storm = None;
    for (n, resources) in [["acl-1"], ["acl-1"], ["sg-9"]].iter().enumerate() {
        storm = Some(
            join(
                storm.as_ref(),
                &key,
                member(&format!("lb{n}"), T0, resources),
                3,
                T0,
            )
            .0,
        );
    }
    let storm = storm.unwrap();
    let grouped = group(&storm);
    assert_eq!(grouped.shared[0].resources, ["acl-1"]);
    assert_eq!(grouped.alone.len(), 1);
    assert_eq!(grouped.alone[0].name, "lb2");
}

/// A flood of invented alarm names cannot push the real alarm out: its OK still recovers, and
/// an OK of an invented name recovers nothing while the real one fires.
#[test]
fn invented_alarm_names_cannot_evict_the_real_one() {
    let mut flap = Flap::new("alb-idle-timeout");
    let (alarm, report, _, _) = flap.parts();
    flap.send(AlarmState::Alarm, T0);
    for n in 0..30 {
        let mut forged = alarm.clone();
        forged.alarm_name = format!("forged-{n}");
        flap.send_as(&forged, &report, AlarmState::Alarm, T0 + 1 + n);
    }
    let mut forged = alarm.clone();
    forged.alarm_name = "forged-29".into();
    assert_eq!(
        flap.send_as(&forged, &report, AlarmState::Ok, T0 + 60),
        Decision::Quiet {
            reason: Quiet::NotFiring
        }
    );
    assert!(flap
        .record
        .as_ref()
        .unwrap()
        .firing
        .iter()
        .any(|f| f.alarm == alarm.alarm_name));
}

/// Flapping recovers once; an outage that lasted the quiet period gets its own recovery, and
/// an alarm in ALARM for longer than a day still recovers.
#[test]
fn long_outages_get_their_recovery() {
    let mut flap = Flap::new("alb-idle-timeout");
    let (alarm, report, _, key) = flap.parts();
    flap.send(AlarmState::Alarm, T0);
    flap.send(AlarmState::Ok, T0 + 60);
    flap.send(AlarmState::Alarm, T0 + 120);
    let after_hours = flap.send(AlarmState::Ok, T0 + 120 + 2 * 3600);
    assert_eq!(after_hours.name(), "recovered");

    let mut stuck = None;
    apply(
        &mut stuck,
        &key,
        &event(&alarm, AlarmState::Alarm, T0),
        &report,
        "r",
    );
    let ok = event(&alarm, AlarmState::Ok, T0 + 30 * 3600);
    let context = Context {
        key: &key,
        quiet_seconds: QUIET,
        run: "r",
        now: ok.at,
    };
    let step = step(stuck.as_ref(), &ok, &report, None, context);
    assert_eq!(
        step.decision,
        Decision::Recovered {
            minutes: 30 * 60,
            alarms: 1
        }
    );
}

/// The outage is the load balancer's, not one alarm's: A fires for an hour, B joins near its
/// end, A recovers, then B. The hour-long outage gets its recovery, though B fired 4 minutes.
#[test]
fn a_long_outage_counts_from_its_first_alarm() {
    let mut flap = Flap::new("alb-idle-timeout");
    let (alarm, report, _, _) = flap.parts();
    let mut other = alarm.clone();
    other.alarm_name = "checkout-connection-errors".into();
    flap.send(AlarmState::Alarm, T0);
    flap.send(AlarmState::Ok, T0 + 60);
    flap.send(AlarmState::Alarm, T0 + 120);
    flap.send_as(&other, &report, AlarmState::Alarm, T0 + 120 + 58 * 60);
    flap.send(AlarmState::Ok, T0 + 120 + 60 * 60);
    let last = flap.send_as(&other, &report, AlarmState::Ok, T0 + 120 + 62 * 60);
    assert_eq!(last.name(), "recovered");
}

/// Both copies of one message in one batch: the second is a duplicate, not sent again.
#[test]
fn the_same_state_change_twice_in_one_run_is_sent_once() {
    let (alarm, report, lb) = scenario_report("alb-idle-timeout");
    let key = IncidentKey::of(&alarm, &lb);
    let first = event(&alarm, AlarmState::Alarm, T0);
    let context = Context {
        key: &key,
        quiet_seconds: QUIET,
        run: "batch",
        now: T0 + 5,
    };
    let claimed = step(None, &first, &report, None, context).incident.unwrap();
    let again = step(Some(&claimed), &first, &report, None, context);
    assert_eq!(
        again.decision,
        Decision::Quiet {
            reason: Quiet::Duplicate
        }
    );
}

/// Openings every few minutes do not keep a storm alive past a window after its summary.
#[test]
fn a_storm_ends_a_window_after_its_summary() {
    let key = StormKey {
        account: "a".into(),
        region: "r".into(),
        vpc: "vpc-1".into(),
    };
    let mut storm = None;
    let mut outcomes = Vec::new();
    for n in 0..12 {
        let at = T0 + n * 60;
        let (next, outcome) = join(
            storm.as_ref(),
            &key,
            member(&format!("lb{n}"), at, &["acl-1"]),
            3,
            at,
        );
        storm = Some(next);
        outcomes.push(outcome);
    }
    use Outcome::*;
    assert_eq!(outcomes[..4], [Alone, Alone, Alone, Summary]);
    assert!(outcomes[4..].contains(&Alone), "{outcomes:?}");
}

/// The largest storm (200 members over many groups, long names) still fits one SNS message.
#[test]
fn the_largest_storm_summary_fits_sns() {
    let key = StormKey {
        account: "123456789012".into(),
        region: "eu-west-1".into(),
        vpc: "vpc-1".into(),
    };
    let mut storm = None;
    for n in 0..260 {
        let resources = [
            format!("acl-{:0>60}", n % 40),
            format!("subnet-{:0>200}", n % 7),
        ];
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        let mut m = member(&format!("{}{n}", "k".repeat(60)), T0, &resources);
        m.headline = "h".repeat(300);
        m.report_url = Some(format!(
            "https://console.aws.amazon.com/s3/object/{}",
            "u".repeat(200)
        ));
        storm = Some(join(storm.as_ref(), &key, m, 3, T0).0);
    }
    let storm = storm.unwrap();
    let message = crate::report::storm::sns_message(&storm);
    assert!(
        message.message.len() + message.subject.len() <= crate::report::sns::SNS_MAX_BYTES,
        "{}",
        message.message.len()
    );
    let chat = crate::report::storm::render_chat(&storm);
    assert!(chat.len() < crate::report::sns::SNS_MAX_BYTES);
}

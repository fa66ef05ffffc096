//! Golden reports: every scenario under events/scenarios rendered as text and JSON, and every
//! plain alarm under events/alarms read by the intake. Review changes with `cargo insta review`.

use std::fs;
use std::path::{Path, PathBuf};

use elbmedic_engine::alarm::{parse_input, Intake};
use elbmedic_engine::report::{Format, Report};
use elbmedic_engine::snapshot;

fn events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn scenario_names() -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(events().join("scenarios/index.json")).unwrap())
            .unwrap();
    index
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scenario_reports() {
    let names = scenario_names();
    assert!(names.len() >= 12);
    for name in names {
        let dir = events().join("scenarios").join(&name);
        let event = fs::read(dir.join("event.json")).unwrap();
        let world =
            snapshot::from_json(&fs::read_to_string(dir.join("snapshot.json")).unwrap()).unwrap();
        let intake = parse_input(&event).unwrap().remove(0).unwrap();
        let Intake::Diagnose {
            alarm,
            load_balancer,
        } = intake
        else {
            panic!("{name}: not diagnosable")
        };
        assert_eq!(
            load_balancer.id, world.load_balancer.id,
            "{name}: event and snapshot name different load balancers"
        );
        let report = Report::diagnosed(&alarm, &load_balancer, &world);
        insta::assert_snapshot!(format!("{name}.text"), report.render(Format::Text));
        insta::assert_snapshot!(format!("{name}.json"), report.render(Format::Json));
    }
}

/// The follow-up of each scenario with an access-log sample (written by events/generate.py in
/// AWS's format): the sample counted over the alarm window as the follow-up pass counts a
/// delivered log object, and the follow-up report that results.
#[test]
fn access_log_follow_ups() {
    use elbmedic_engine::access_log::{AccessLogs, Tally};
    use elbmedic_engine::follow_up::{FollowUpMessage, LateEvidence};
    use elbmedic_engine::report::FirstReport;
    let dir = events().join("access-logs");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".log")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);
    for name in names {
        let scenario = elbmedic_engine::scenarios::find(&name).unwrap();
        let (alarm, lb) = scenario.alarm().unwrap();
        let world = scenario.world().unwrap();
        let end = alarm.state_change_epoch.unwrap();
        let idle = world.load_balancer.idle_timeout_seconds.unwrap();
        let mut tally = Tally::new(
            world.load_balancer.kind,
            idle,
            (end - 300, end),
            AccessLogs {
                bucket: "shop-prod-lb-logs".into(),
                objects_found: 1,
                objects_read: 1,
                ..AccessLogs::default()
            },
        );
        let text = fs::read_to_string(dir.join(format!("{name}.log"))).unwrap();
        tally.logs.bytes_read = text.len() as u64;
        tally.add_text(&text);
        assert_eq!(tally.logs.malformed, 0, "{name}: every sample line parses");
        let first = FirstReport {
            subject: Report::diagnosed(&alarm, &lb, &world).subject(),
            message_id: Some("5f2b1c9e-8d4a-5e3f-9b6c-1a2d3e4f5a6b".into()),
            thread: None,
        };
        let late = LateEvidence {
            access_logs: Some(tally.logs),
            ..LateEvidence::default()
        };
        let report = FollowUpMessage::new(&alarm, &lb, first, &world)
            .compose(late)
            .unwrap_or_else(|| panic!("{name}: the sample confirms the cause"));
        insta::assert_snapshot!(
            format!("{name}.follow-up.text"),
            report.render(Format::Text)
        );
    }
}

#[test]
fn plain_alarm_intake() {
    let mut files: Vec<PathBuf> = fs::read_dir(events().join("alarms"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let summary: Vec<String> = match parse_input(&fs::read(&path).unwrap()) {
            Err(e) => vec![format!("error: {e}")],
            Ok(records) => records
                .into_iter()
                .map(|r| match r {
                    Err(e) => format!("error: {e}"),
                    Ok(intake) => match Report::without_diagnosis(&intake) {
                        Some(report) => report.render(Format::Text),
                        None => format!(
                            "diagnose: {}",
                            serde_json::to_string(intake.load_balancer().unwrap()).unwrap()
                        ),
                    },
                })
                .collect(),
        };
        insta::assert_snapshot!(format!("alarm-{name}"), summary.join("\n---\n"));
    }
}

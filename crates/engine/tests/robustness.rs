//! No input makes the engine panic: scenario events and snapshots with random leaves replaced
//! by hostile values (empty strings, bad CIDRs, ports 0 and 65535, huge and negative numbers,
//! nulls, wrong types) go through intake, diagnosis and every renderer.

use elbmedic_engine::alarm::{composite, parse_input, Intake};
use elbmedic_engine::report::{Format, Report};
use elbmedic_engine::scenarios::SCENARIOS;
use elbmedic_engine::snapshot::Snapshot;
use proptest::prelude::*;
use serde_json::{json, Value};

const COMPOSITE: &str = include_str!("../../../events/alarms/composite-alb-5xx.json");

/// Values that have broken parsers before: boundaries, garbage, wrong types.
fn hostile(pick: u64) -> Value {
    let choices = [
        json!(""),
        json!("0.0.0.0/0"),
        json!("::/0"),
        json!("10.0.0.0/33"),
        json!("not-a-cidr"),
        json!("2001:db8::/200"),
        json!("-1"),
        json!("6"),
        json!("traffic-port"),
        json!("abc"),
        json!(0),
        json!(1),
        json!(65535),
        json!(65536),
        json!(32767),
        json!(-1),
        json!(4_294_967_296u64),
        json!(1e308),
        json!(-0.0),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!("ALARM"),
        json!("app/x/1"),
        json!("net/x/1"),
        json!("🙂".repeat(50)),
    ];
    choices[(pick % choices.len() as u64) as usize].clone()
}

/// Replaces the leaf at a pseudo-random path chosen by `seed`.
fn mutate(value: &mut Value, seed: &mut u64) {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let choice = *seed >> 33;
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth((choice % map.len() as u64) as usize)
                .cloned()
                .unwrap();
            if choice.is_multiple_of(7) {
                map.remove(&key);
            } else {
                mutate(map.get_mut(&key).unwrap(), seed);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let index = (choice % items.len() as u64) as usize;
            if choice.is_multiple_of(5) {
                let copy = items[index].clone();
                items.push(copy);
            } else {
                mutate(&mut items[index], seed);
            }
        }
        // Mostly keep the leaf's JSON type, so the mutant still deserializes and reaches the rules.
        leaf => {
            let same_type = |v: &Value| {
                std::mem::discriminant(v) == std::mem::discriminant(leaf)
                    || v.is_number() && leaf.is_number()
            };
            *leaf = (0..27)
                .map(|i| hostile(choice + i))
                .find(|v| choice.is_multiple_of(6) || same_type(v))
                .unwrap_or(Value::Null);
        }
    }
}

fn render_everything(report: &Report) {
    for format in [Format::Text, Format::Markdown, Format::Json] {
        let _ = report.render(format);
    }
    assert!(report.subject().chars().count() < 100);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_snapshots_never_panic(scenario in 0..SCENARIOS.len(), seed in any::<u64>(), mutations in 1usize..6) {
        let s = &SCENARIOS[scenario];
        let mut value: Value = serde_json::from_str(s.snapshot).unwrap();
        let mut seed = seed;
        for _ in 0..mutations {
            mutate(&mut value, &mut seed);
        }
        let intake = parse_input(s.event.as_bytes()).unwrap().remove(0).unwrap();
        let Intake::Diagnose { alarm, load_balancer } = intake else { unreachable!() };
        if let Ok(world) = serde_json::from_value::<Snapshot>(value) {
            render_everything(&Report::diagnosed(&alarm, &load_balancer, &world));
        }
    }

    #[test]
    fn mutated_alarm_messages_never_panic(scenario in 0..SCENARIOS.len(), seed in any::<u64>(), mutations in 1usize..6) {
        let s = &SCENARIOS[scenario];
        let event: Value = serde_json::from_str(s.event).unwrap();
        let mut message: Value = serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
        let mut seed = seed;
        for _ in 0..mutations {
            mutate(&mut message, &mut seed);
        }
        let world: Snapshot = serde_json::from_str(s.snapshot).unwrap();
        let mut wrapped = event.clone();
        wrapped["Records"][0]["Sns"]["Message"] = Value::String(message.to_string());
        for input in [serde_json::to_vec(&wrapped).unwrap(), serde_json::to_vec(&message).unwrap()] {
            if let Ok(records) = parse_input(&input) {
                for intake in records.into_iter().flatten() {
                    match &intake {
                        Intake::Diagnose { alarm, load_balancer } => render_everything(&Report::diagnosed(alarm, load_balancer, &world)),
                        other => render_everything(&Report::without_diagnosis(other).unwrap()),
                    }
                }
            }
        }
    }

    /// Composite alarms: a mutated message, any rule text, and mutated described children go
    /// through intake, child resolution and the choice of what to diagnose.
    #[test]
    fn composite_alarms_and_their_children_never_panic(seed in any::<u64>(), mutations in 0usize..6, rule in "\\PC{0,120}", use_rule in any::<bool>(), scenario in 0..SCENARIOS.len()) {
        let event: Value = serde_json::from_str(COMPOSITE).unwrap();
        let mut message: Value = serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
        let mut seed = seed;
        for _ in 0..mutations {
            mutate(&mut message, &mut seed);
        }
        if use_rule {
            message["AlarmRule"] = json!(rule);
            message["TriggeringChildren"] = json!([]);
        }
        let _ = composite::names_in_rule(&rule);
        let scenario_event: Value = serde_json::from_str(SCENARIOS[scenario].event).unwrap();
        let mut child: Value = serde_json::from_str(scenario_event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
        for _ in 0..mutations {
            mutate(&mut child, &mut seed);
        }
        if let Ok(records) = parse_input(message.to_string().as_bytes()) {
            for intake in records.into_iter().flatten() {
                render_everything(&Report::without_diagnosis(&intake).unwrap());
                if let Intake::Composite { alarm, children } = &intake {
                    let resolved = vec![composite::child_intake(alarm, &child)];
                    for chosen in composite::one_per_load_balancer(alarm, resolved, children, 5) {
                        if let Some(report) = Report::without_diagnosis(&chosen) {
                            render_everything(&report);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_input(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = elbmedic_engine::snapshot::from_json(text);
        }
    }
}

#[test]
fn most_mutants_reach_the_rules() {
    // Guards the fuzzer's strength: if mutants stopped deserializing, it would test nothing.
    let deserialized = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&(0..SCENARIOS.len(), any::<u64>()), |(scenario, seed)| {
            let mut value: Value = serde_json::from_str(SCENARIOS[scenario].snapshot).unwrap();
            let mut seed = seed;
            mutate(&mut value, &mut seed);
            if serde_json::from_value::<Snapshot>(value).is_ok() {
                deserialized.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let reached = deserialized.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        reached >= 100,
        "only {reached} of 200 single mutants deserialized"
    );
}

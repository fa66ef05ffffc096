//! No finding rests on a data point that contradicts it. Every scenario, and every scenario
//! with its latencies scaled, its CloudTrail calls failed or read-only, and its connection
//! errors thinned out, is diagnosed; then each finding is held against the snapshot's own data
//! points. A cause that the numbers rule out would send on-call after the wrong thing, and
//! in auto mode make a change that fixes nothing (trust round two, defect 7).

use elbmedic_engine::alarm::{parse_input, Intake, LbKind};
use elbmedic_engine::churn::Churn;
use elbmedic_engine::finding::{Finding, FindingCode};
use elbmedic_engine::report::Report;
use elbmedic_engine::scenarios::SCENARIOS;
use elbmedic_engine::snapshot::{HealthClass, Snapshot};
use proptest::prelude::*;

fn sum(world: &Snapshot, metric: &str) -> Option<f64> {
    world
        .metrics
        .iter()
        .find(|s| {
            s.metric_name == metric
                && s.statistic.eq_ignore_ascii_case("Sum")
                && s.target_group.is_none()
                && s.availability_zone.is_none()
        })
        .map(|s| s.points.iter().map(|p| p.value).sum())
}

fn max(world: &Snapshot, metric: &str, statistic: &str) -> Option<f64> {
    world
        .metrics
        .iter()
        .filter(|s| s.metric_name == metric && s.statistic.eq_ignore_ascii_case(statistic))
        .flat_map(|s| &s.points)
        .map(|p| p.value)
        .reduce(f64::max)
}

/// What in the snapshot contradicts `finding`, if anything.
fn contradiction(world: &Snapshot, finding: &Finding) -> Option<String> {
    let lb = &world.load_balancer;
    let timeout = lb.idle_timeout_seconds.map(f64::from);
    match finding.code {
        FindingCode::IdleTimeoutExceeded => {
            let timeout = timeout?;
            let (metric, floor) = match lb.kind {
                LbKind::Application => ("TargetResponseTime", 0.5),
                LbKind::Classic => ("Latency", 0.98),
                LbKind::Network => return Some("an NLB has no HTTP idle timeout finding".into()),
            };
            if let Some(peak) = max(world, metric, "Maximum") {
                if peak < timeout * floor {
                    return Some(format!(
                        "{metric} peaked at {peak} s against a {timeout} s idle timeout"
                    ));
                }
            }
            (lb.kind == LbKind::Application && Churn::of(world).explains_every_error())
                .then(|| "every 5xx period saw targets churn".into())
        }
        FindingCode::TargetsRefuseConnections => {
            let metric = match lb.kind {
                LbKind::Application => "TargetConnectionErrorCount",
                LbKind::Classic => "BackendConnectionErrors",
                LbKind::Network => {
                    return Some("an NLB has no HTTP connection-error finding".into())
                }
            };
            let errors = sum(world, metric).unwrap_or(0.0);
            let elb = sum(world, "HTTPCode_ELB_5XX_Count")
                .or_else(|| sum(world, "HTTPCode_ELB_5XX"))
                .unwrap_or(0.0);
            (errors < elb * 0.25).then(|| format!("{errors} {metric} against {elb} 5xx"))
        }
        FindingCode::BackendClosesConnections => {
            let e502 = sum(world, "HTTPCode_ELB_502_Count");
            (e502 == Some(0.0)).then(|| "no 502s".into())
        }
        FindingCode::TargetsUnhealthy => {
            let unhealthy = world
                .target_groups
                .iter()
                .flat_map(|g| &g.targets)
                .any(|t| t.health.class() != HealthClass::Healthy);
            (!unhealthy).then(|| "every target is healthy".into())
        }
        FindingCode::NoRegisteredTargets => {
            let empty = world.target_groups.iter().any(|g| g.targets.is_empty());
            (!empty).then(|| "every target group has targets".into())
        }
        FindingCode::RecentChange => {
            let events = &world.changes.as_ref()?.events;
            finding.resources.iter().find_map(|id| {
                let event = events.iter().find(|e| &e.event_id == id)?;
                (!event.changed_something())
                    .then(|| format!("event {id} changed nothing (failed or read-only)"))
            })
        }
        _ => None,
    }
}

fn diagnose(index: usize, world: &Snapshot) -> Report {
    let s = &SCENARIOS[index];
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = parse_input(s.event.as_bytes()).unwrap().remove(0).unwrap()
    else {
        panic!("{}: not diagnosable", s.name)
    };
    Report::diagnosed(&alarm, &load_balancer, world)
}

fn world(index: usize) -> Snapshot {
    elbmedic_engine::snapshot::from_json(SCENARIOS[index].snapshot).unwrap()
}

fn check(index: usize, world: &Snapshot) -> Result<(), TestCaseError> {
    let report = diagnose(index, world);
    for finding in &report.findings {
        if let Some(why) = contradiction(world, finding) {
            prop_assert!(
                false,
                "{}: {} ({}) rests on data that contradicts it: {}",
                SCENARIOS[index].name,
                finding.code,
                finding.title,
                why
            );
        }
    }
    Ok(())
}

#[test]
fn no_scenario_finding_is_contradicted_by_its_data() {
    for index in 0..SCENARIOS.len() {
        check(index, &world(index)).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_perturbed_finding_is_contradicted_by_its_data(
        index in 0..SCENARIOS.len(),
        latency in 0.01f64..1.2,
        connection_errors in 0.0f64..1.5,
        failed_calls in any::<bool>(),
        read_only_calls in any::<bool>(),
    ) {
        let mut world = world(index);
        for series in &mut world.metrics {
            let factor = match series.metric_name.as_str() {
                "TargetResponseTime" | "Latency" => latency,
                "TargetConnectionErrorCount" | "BackendConnectionErrors" => connection_errors,
                _ => continue,
            };
            series.points.iter_mut().for_each(|p| p.value = (p.value * factor * 100.0).round() / 100.0);
        }
        if let Some(changes) = &mut world.changes {
            for event in &mut changes.events {
                if failed_calls {
                    event.error_code = Some("Client.UnauthorizedOperation".into());
                }
                event.read_only |= read_only_calls;
            }
        }
        check(index, &world)?;
    }
}

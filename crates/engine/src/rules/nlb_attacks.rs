//! Attack tests for the NLB rules, from an outside review: inputs a real NLB produces that
//! must not become a cause (background resets, an allow-list, UDP, an internal NLB's peered
//! clients), and snapshot values that must not become a change (an unreadable timeout).

use super::testing::{codes, run};
use super::{client_ip, nlb_idle_timeout, nlb_security_groups, port_allocation, CheckStatus};
use crate::finding::{Confidence, FindingCode};
use crate::snapshot::{MetricSeries, Snapshot};
use crate::testkit::scenario_snapshot;

fn set_metric(world: &mut Snapshot, metric: &str, values: &[f64]) {
    let series: &mut MetricSeries = world
        .metrics
        .iter_mut()
        .find(|s| s.metric_name == metric)
        .unwrap_or_else(|| panic!("no {metric}"));
    for (point, value) in series.points.iter_mut().zip(values) {
        point.value = *value;
    }
}

#[test]
fn a_background_of_resets_is_not_an_idle_timeout() {
    let name = "nlb-idle-timeout-resets";
    let mut world = scenario_snapshot(name);
    set_metric(
        &mut world,
        "TCP_ELB_Reset_Count",
        &[0.0, 0.0, 1.0, 0.0, 0.0],
    );
    let out = run(nlb_idle_timeout::check, name, &world);
    assert!(out.findings.is_empty(), "{:?}", codes(&out.findings));
    assert!(out.checked[0].detail.contains("background"));
    // A few percent of the new flows is not background: the scenario's 1596 resets stay a cause.
    let out = run(nlb_idle_timeout::check, name, &scenario_snapshot(name));
    assert_eq!(codes(&out.findings), [FindingCode::NlbIdleTimeoutResets]);
}

#[test]
fn resets_beside_port_allocation_errors_are_those_errors() {
    let name = "nlb-port-allocation";
    let mut world = scenario_snapshot(name);
    set_metric(
        &mut world,
        "TCP_ELB_Reset_Count",
        &[0.0, 900.0, 1100.0, 1000.0, 950.0],
    );
    let out = run(nlb_idle_timeout::check, name, &world);
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    assert_eq!(
        codes(&run(port_allocation::check, name, &world).findings),
        [FindingCode::PortAllocationExhausted]
    );
}

#[test]
fn an_unreadable_or_unsettable_timeout_is_never_raised() {
    let name = "nlb-idle-timeout-resets";
    for (protocol, value) in [
        ("TCP", "abc"),
        ("TCP", "30"),
        ("TCP", "9999"),
        ("TCP", "-1"),
        ("TCP_UDP", "350"),
    ] {
        let mut world = scenario_snapshot(name);
        let listener = &mut world.load_balancer.listeners[0];
        listener.protocol = protocol.into();
        listener.attributes =
            Some([("tcp.idle_timeout.seconds".to_string(), value.to_string())].into());
        let out = run(nlb_idle_timeout::check, name, &world);
        let finding = &out.findings[0];
        assert!(
            finding.remedies.is_empty(),
            "{protocol} {value}: {:?}",
            finding.remedies
        );
        assert!(
            !finding
                .evidence
                .iter()
                .any(|e| e.summary().contains("(set)")),
            "{protocol} {value}: {:?}",
            finding.evidence
        );
    }
}

#[test]
fn udp_groups_are_not_judged_on_tcp_rules() {
    let name = "nlb-client-ip-not-admitted";
    let mut world = scenario_snapshot(name);
    world.target_groups[0].protocol = Some("UDP".into());
    world.target_groups[0].preserve_client_ip = None;
    let out = run(client_ip::check, name, &world);
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    assert_eq!(out.checked[0].status, CheckStatus::Incomplete);
    assert!(client_ip::preserves_client_ip(&world.target_groups[0]).0);
    // Nor does a UDP group count as translating the client's address.
    world.target_groups[0].protocol = Some("TCP_QUIC".into());
    world.target_groups[0].preserve_client_ip = Some(false);
    assert!(client_ip::preserves_client_ip(&world.target_groups[0]).0);
}

#[test]
fn an_internal_nlbs_finding_is_only_likely() {
    let name = "nlb-client-ip-not-admitted";
    let mut world = scenario_snapshot(name);
    world.load_balancer.scheme = Some("internal".into());
    // The node SG admits only the NLB's subnets: clients elsewhere in the VPC are stopped.
    for group in &mut world.security_groups {
        for rule in &mut group.ingress {
            if rule.ipv4_ranges == ["10.0.0.0/16"] {
                rule.ipv4_ranges = vec![
                    "10.0.0.0/24".into(),
                    "10.0.1.0/24".into(),
                    "10.0.2.0/24".into(),
                ];
            }
        }
    }
    let out = run(client_ip::check, name, &world);
    let finding = &out.findings[0];
    assert_eq!(finding.confidence, Some(Confidence::Likely));
    assert!(finding.fix.notes.iter().any(|n| n.contains("hairpin")));
}

#[test]
fn an_nlb_security_group_admitting_anyone_at_all_is_an_allow_list() {
    let name = "nlb-sg-blocks-clients";
    for admitted in ["10.1.0.0/16", "198.51.100.0/24"] {
        let mut world = scenario_snapshot(name);
        world.load_balancer.scheme = Some("internal".into());
        world.load_balancer.vpc_cidrs.clear();
        let group = world
            .security_groups
            .iter_mut()
            .find(|g| g.id == "sg-0f1e2d3c4b5a69781")
            .unwrap();
        group.ingress[0].from_port = Some(8883);
        group.ingress[0].to_port = Some(8883);
        group.ingress[0].ipv4_ranges = vec![admitted.into()];
        let out = run(nlb_security_groups::check, name, &world);
        assert!(out.findings.is_empty(), "{admitted}: {:?}", out.findings);
    }
}

#[test]
fn a_dual_stack_nlb_that_admits_only_ipv4_names_ipv6() {
    let name = "nlb-sg-blocks-clients";
    let mut world = scenario_snapshot(name);
    world.load_balancer.ip_address_type = Some("dualstack".into());
    let group = world
        .security_groups
        .iter_mut()
        .find(|g| g.id == "sg-0f1e2d3c4b5a69781")
        .unwrap();
    group.ingress[0].from_port = Some(8883);
    group.ingress[0].to_port = Some(8883);
    let out = run(nlb_security_groups::check, name, &world);
    let finding = &out.findings[0];
    assert!(
        finding.title.contains("8883 (IPv6)") && !finding.title.contains("(IPv4)"),
        "{}",
        finding.title
    );
}

/// An NLB's TLS access logs, read in the follow-up: their long-lived connections back the
/// idle-timeout finding as evidence (never as confirmation), and the check says what was read.
#[test]
fn tls_access_logs_back_the_idle_timeout_finding() {
    use crate::access_log::AccessLogs;
    use crate::diagnosis::diagnose;
    use crate::rules::testing::scenario_alarm;
    let name = "nlb-idle-timeout-resets";
    let mut world = scenario_snapshot(name);
    world.load_balancer.listeners[0].protocol = "TLS".into();
    world.access_logs = Some(AccessLogs {
        bucket: "iot-logs".into(),
        objects_found: 3,
        objects_read: 3,
        lines: 120,
        tls_connections: 120,
        tls_handshake_failures: 2,
        long_connections: 97,
        ..AccessLogs::default()
    });
    let diagnosis = diagnose(&scenario_alarm(name), &world);
    let finding = diagnosis
        .findings
        .iter()
        .find(|f| f.code == FindingCode::NlbIdleTimeoutResets)
        .unwrap();
    assert_eq!(finding.confidence, Some(Confidence::Likely));
    assert!(finding.evidence.iter().any(|e| e
        .summary()
        .contains("97 of 120 connections lasting at least 350 s")));
    let check = diagnosis
        .checked
        .iter()
        .find(|c| c.name == "access logs (S3)")
        .unwrap();
    assert!(
        check
            .detail
            .contains("120 TLS connections: 2 handshakes failed"),
        "{}",
        check.detail
    );
}

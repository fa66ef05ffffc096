//! The picture agrees with the findings: every NACL, security group or target a finding
//! blames is on a failing hop of the diagram, and a diagram without such findings has no
//! dropping NACL or security group hop. Checked over every scenario, so it holds for worlds
//! the picture was not written against.

use super::paths::{Column, Verdict};
use super::*;
use crate::finding::{Evidence, FindingCode};
use crate::report::{Format, Report};
use crate::scenarios::SCENARIOS;

fn reports() -> Vec<(&'static str, Report)> {
    SCENARIOS
        .iter()
        .map(|s| {
            let (alarm, lb) = s.alarm().expect("scenario alarm");
            let world = s.world().expect("scenario world");
            (s.name, Report::diagnosed(&alarm, &lb, &world))
        })
        .collect()
}

/// The ids on hops that do not let every packet through, per column.
fn failing(picture: &Picture, column: Column) -> Vec<String> {
    picture
        .paths
        .zones
        .iter()
        .flat_map(|z| &z.rows)
        .flat_map(|r| &r.lanes)
        .flat_map(|l| &l.hops)
        .filter(|h| h.column == column)
        .filter(|h| matches!(h.verdict, Verdict::Drop | Verdict::Degraded))
        .flat_map(|h| h.ids.clone())
        .collect()
}

#[test]
fn every_blamed_resource_is_on_a_failing_hop() {
    let mut blamed = 0;
    for (name, report) in reports() {
        let picture = report
            .picture
            .as_ref()
            .expect("a diagnosed report has a picture");
        for finding in &report.findings {
            for evidence in &finding.evidence {
                match evidence {
                    Evidence::NaclRule { nacl_id, leg, .. } => {
                        let column = if leg.on_lb_subnet() {
                            Column::LbSubnetNacl
                        } else {
                            Column::TargetSubnetNacl
                        };
                        assert!(
                            failing(picture, column).contains(nacl_id),
                            "{name}: {nacl_id} ({leg:?}) not on a failing hop"
                        );
                        blamed += 1;
                    }
                    Evidence::SecurityGroup { group_ids, .. }
                        if finding.code == FindingCode::SgBlocksTargetPort =>
                    {
                        let on_hops: Vec<String> =
                            [Column::LbSecurityGroups, Column::TargetSecurityGroups]
                                .into_iter()
                                .flat_map(|c| failing(picture, c))
                                .collect();
                        assert!(
                            group_ids.iter().any(|g| on_hops.contains(g)),
                            "{name}: none of {group_ids:?} on a failing hop ({on_hops:?})"
                        );
                        blamed += 1;
                    }
                    Evidence::TargetHealth { target, state, .. }
                        if finding.code == FindingCode::TargetsUnhealthy
                            && ["unhealthy", "outofservice"]
                                .contains(&state.to_ascii_lowercase().as_str()) =>
                    {
                        // A hop names a few of its failing targets and counts the rest.
                        let hops = failing(picture, Column::Targets);
                        let named = hops.contains(target) || hops.len() >= 3;
                        assert!(
                            named,
                            "{name}: {target} unhealthy, not on a failing hop: {hops:?}"
                        );
                        blamed += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(
        blamed >= 5,
        "the scenarios blame only {blamed} resources: the test checks little"
    );
}

#[test]
fn no_network_finding_no_dropping_hop() {
    for (name, report) in reports() {
        let network = report.findings.iter().any(|f| {
            matches!(
                f.code,
                FindingCode::NaclBlocksEphemeralPorts
                    | FindingCode::NaclBlocksTargetPort
                    | FindingCode::SgBlocksTargetPort
            )
        });
        if network {
            continue;
        }
        let picture = report.picture.as_ref().unwrap();
        for column in [
            Column::LbSecurityGroups,
            Column::LbSubnetNacl,
            Column::TargetSubnetNacl,
            Column::TargetSecurityGroups,
        ] {
            let hops = failing(picture, column);
            assert!(
                hops.is_empty(),
                "{name}: {column:?} drops at {hops:?} without a finding"
            );
        }
    }
}

#[test]
fn the_html_names_the_deciding_entry_on_the_hop_where_the_packet_dies() {
    let (_, report) = reports()
        .into_iter()
        .find(|(name, _)| *name == "nacl-ephemeral-node-subnets")
        .unwrap();
    let Some(Evidence::NaclRule { nacl_id, .. }) = report.findings[0]
        .evidence
        .iter()
        .find(|e| matches!(e, Evidence::NaclRule { .. }))
    else {
        panic!("the scenario's first finding has NACL evidence");
    };
    let html = report.render(Format::Html);
    let dropping: Vec<&str> = html
        .split("<g class=\"hop drop\"")
        .skip(1)
        .map(|rest| rest.split("</g>").next().unwrap_or_default())
        .collect();
    assert!(!dropping.is_empty(), "no dropping hop drawn");
    assert!(
        dropping
            .iter()
            .any(|g| g.contains(nacl_id.as_str()) && g.contains("egress")),
        "{nacl_id} not on a dropping hop: {dropping:?}"
    );
    assert!(
        html.contains("Replies on ports 1024-65535 die at the target subnet NACL"),
        "no sentence names the hop"
    );
}

#[test]
fn a_thousand_targets_in_twenty_subnets_stay_a_few_rows() {
    let mut world = crate::testkit::healthy_alb();
    let model = world.target_groups[0].targets[0].clone();
    let crate::snapshot::Placement::Interface(placed) = &model.placement else {
        panic!("the model target sits on an interface");
    };
    // A node subnet: its NACL is the targets' one.
    let template = world.subnet(&placed.subnet_id).unwrap().clone();
    let group = &mut world.target_groups[0];
    let lb_subnets = world.load_balancer.subnets.clone();
    group.targets.clear();
    for subnet in 0..20 {
        let mut s = template.clone();
        s.id = format!("subnet-big{subnet:02}");
        s.cidr_ipv4 = Some(format!("10.0.{}.0/24", 100 + subnet));
        world.subnets.push(s);
        for host in 0..50 {
            let mut target = model.clone();
            target.id = format!("10.0.{}.{}", 100 + subnet, host + 10);
            if let crate::snapshot::Placement::Interface(interface) = &mut target.placement {
                interface.private_ip = target.id.clone();
                interface.subnet_id = format!("subnet-big{subnet:02}");
            }
            group.targets.push(target);
        }
    }
    let alarm_world = world.clone();
    let scenario = crate::scenarios::find("no-known-cause").unwrap();
    let (alarm, lb) = scenario.alarm().unwrap();
    let report = Report::diagnosed(&alarm, &lb, &alarm_world);
    let picture = report.picture.as_ref().unwrap();
    assert_eq!(picture.paths.zones.len(), lb_subnets.len());
    for zone in &picture.paths.zones {
        assert!(
            zone.rows.len() <= 2,
            "{} rows in {}",
            zone.rows.len(),
            zone.lb_subnet
        );
        let targets: usize = zone.rows.iter().map(|r| r.targets).sum();
        assert_eq!(targets, 1000, "every target is drawn once per zone");
    }
    let html = report.render(Format::Html);
    assert!(html.len() < 200_000, "{} bytes", html.len());
}

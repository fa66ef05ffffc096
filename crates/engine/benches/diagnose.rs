//! How long a diagnosis takes on a large snapshot: 20 subnets, each with its own NACL of 40
//! entries per direction, 5 security groups of 60 rules each, and 1,000 IP targets (a quarter
//! of them with a separate health-check port). Decoy entries come first, so evaluation walks
//! deep into every NACL and SG before it finds the entry that decides.
//!
//! Run: `cargo bench -p elbmedic-engine --bench diagnose`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use elbmedic_engine::netcheck;
use elbmedic_engine::report::{Format, Report};
use elbmedic_engine::scenarios;
use elbmedic_engine::snapshot::{
    HealthCheck, Interface, NaclEntry, NetworkAcl, Placement, PortRange, SecurityGroup, SgRule,
    Snapshot, Subnet, Target, TargetHealth,
};

const LB_SUBNETS: usize = 3;
const TARGET_SUBNETS: usize = 17;
const TARGETS: usize = 1000;
const NACL_ENTRIES_PER_DIRECTION: u16 = 40;
const SG_COUNT: usize = 5;
const SG_RULES: usize = 60;

fn entry(
    rule_number: u16,
    egress: bool,
    protocol: &str,
    action: &str,
    cidr: &str,
    ports: Option<(u16, u16)>,
) -> NaclEntry {
    NaclEntry {
        rule_number,
        egress,
        protocol: protocol.into(),
        rule_action: action.into(),
        cidr_block: Some(cidr.into()),
        ipv6_cidr_block: None,
        port_range: ports.map(|(from, to)| PortRange { from, to }),
    }
}

fn nacl(id: String) -> NetworkAcl {
    let mut entries = Vec::new();
    for egress in [false, true] {
        // Decoys that never match the LB <-> target traffic.
        for n in 1..NACL_ENTRIES_PER_DIRECTION - 1 {
            let action = if n % 3 == 0 { "allow" } else { "deny" };
            entries.push(entry(
                n * 10,
                egress,
                "6",
                action,
                &format!("192.168.{n}.0/24"),
                Some((1, 1023)),
            ));
        }
        entries.push(entry(
            NACL_ENTRIES_PER_DIRECTION * 10 - 10,
            egress,
            "17",
            "deny",
            "10.0.0.0/8",
            Some((53, 53)),
        ));
        entries.push(entry(
            NACL_ENTRIES_PER_DIRECTION * 10,
            egress,
            "-1",
            "allow",
            "10.0.0.0/8",
            None,
        ));
        entries.push(entry(32767, egress, "-1", "deny", "0.0.0.0/0", None));
    }
    NetworkAcl {
        id,
        is_default: false,
        entries,
    }
}

fn security_group(id: String, lb_group: &str) -> SecurityGroup {
    let mut ingress: Vec<SgRule> = (0..SG_RULES - 1)
        .map(|i| SgRule {
            ip_protocol: "tcp".into(),
            from_port: Some(9000 + i as i32),
            to_port: Some(9000 + i as i32),
            ipv4_ranges: vec![format!("172.16.{i}.0/24")],
            ipv6_ranges: vec![],
            prefix_list_ids: vec![],
            security_groups: vec![],
            description: None,
        })
        .collect();
    ingress.push(SgRule {
        ip_protocol: "tcp".into(),
        from_port: Some(8000),
        to_port: Some(8100),
        ipv4_ranges: vec![],
        ipv6_ranges: vec![],
        prefix_list_ids: vec![],
        security_groups: vec![lb_group.to_string()],
        description: None,
    });
    let egress = ingress.iter().cloned().map(|mut r| {
        if !r.security_groups.is_empty() {
            r.security_groups = vec![];
            r.ipv4_ranges = vec!["10.0.0.0/8".into()];
        }
        r
    });
    SecurityGroup {
        id,
        name: "bench".into(),
        vpc_id: None,
        tags: Default::default(),
        ingress: ingress.clone(),
        egress: egress.collect(),
    }
}

fn large_snapshot() -> Snapshot {
    let mut world = snapshot_of("no-known-cause");
    world.subnets.clear();
    world.network_acls.clear();
    world.load_balancer.subnets.clear();
    for i in 0..LB_SUBNETS + TARGET_SUBNETS {
        let id = format!("subnet-{i:017x}");
        world.subnets.push(Subnet {
            id: id.clone(),
            availability_zone: Some(format!("eu-west-1{}", ['a', 'b', 'c'][i % 3])),
            cidr_ipv4: Some(format!("10.0.{}.0/24", i * 4)),
            cidr_ipv6: vec![],
            network_acl_id: Some(format!("acl-{i:017x}")),
            tags: Default::default(),
        });
        world.network_acls.push(nacl(format!("acl-{i:017x}")));
        if i < LB_SUBNETS {
            world.load_balancer.subnets.push(id);
        }
    }
    let lb_group = "sg-00000000000000000".to_string();
    world.load_balancer.security_groups = vec![lb_group.clone()];
    world.security_groups = (0..SG_COUNT)
        .map(|i| security_group(format!("sg-{i:017x}"), &lb_group))
        .collect();
    let group = &mut world.target_groups[0];
    group.health_check = Some(HealthCheck {
        protocol: Some("HTTP".into()),
        port: None,
        path: Some("/healthz".into()),
        timeout_seconds: None,
        interval_seconds: None,
        success_codes: None,
    });
    group.targets = (0..TARGETS)
        .map(|i| {
            let subnet = LB_SUBNETS + i % TARGET_SUBNETS;
            let ip = format!("10.0.{}.{}", subnet * 4, 10 + i / TARGET_SUBNETS);
            Target {
                id: ip.clone(),
                port: if i % 4 == 0 { 8081 } else { 8080 },
                availability_zone: None,
                health: TargetHealth {
                    state: "healthy".into(),
                    reason: None,
                    description: None,
                },
                placement: Placement::Interface(Interface {
                    private_ip: ip,
                    subnet_id: format!("subnet-{subnet:017x}"),
                    eni_id: None,
                    instance_id: None,
                    security_groups: vec![
                        format!("sg-{:017x}", 1 + i % (SG_COUNT - 1)),
                        format!("sg-{:017x}", 1 + (i + 1) % (SG_COUNT - 1)),
                    ],
                    via_prefix: false,
                }),
            }
        })
        .collect();
    world
}

fn snapshot_of(name: &str) -> Snapshot {
    scenarios::find(name).unwrap().world().unwrap()
}

fn bench(c: &mut Criterion) {
    let world = large_snapshot();
    let (alarm, load_balancer) = scenarios::find("no-known-cause").unwrap().alarm().unwrap();
    let analysis = netcheck::analyse(&world);
    assert_eq!(analysis.targets_checked, TARGETS);
    assert!(
        analysis.nacl_checks.iter().all(|c| c.outcome.allowed()),
        "the large world is healthy"
    );
    let report = Report::diagnosed(&alarm, &load_balancer, &world);
    eprintln!(
        "large snapshot: {} subnets, {} NACL entries, {} SG rules, {} targets -> {} NACL evaluations, {} SG evaluations; verdict: {}",
        world.subnets.len(),
        world.network_acls.iter().map(|a| a.entries.len()).sum::<usize>(),
        world.security_groups.iter().map(|g| g.ingress.len() + g.egress.len()).sum::<usize>(),
        TARGETS,
        analysis.nacl_checks.len(),
        analysis.sg_checks.len(),
        report.verdict.headline
    );
    let mut group = c.benchmark_group("large-snapshot");
    group.sample_size(30);
    group.bench_function("diagnose", |b| {
        b.iter(|| elbmedic_engine::diagnosis::diagnose(black_box(&alarm), black_box(&world)))
    });
    group.bench_function("diagnose+render-text", |b| {
        b.iter(|| {
            Report::diagnosed(
                black_box(&alarm),
                black_box(&load_balancer),
                black_box(&world),
            )
            .render(Format::Text)
        })
    });
    // Worst case for reporting: every target subnet's NACL drops the replies (implicit deny).
    let mut blocked = world.clone();
    for acl in blocked.network_acls.iter_mut().skip(LB_SUBNETS) {
        acl.entries
            .retain(|e| !(e.egress && e.protocol == "-1" && e.rule_action == "allow"));
    }
    let blocked_report = Report::diagnosed(&alarm, &load_balancer, &blocked);
    assert_eq!(
        blocked_report.findings[0].code.as_str(),
        "nacl-blocks-ephemeral-ports"
    );
    group.bench_function("diagnose+render-text, every reply dropped", |b| {
        b.iter(|| {
            Report::diagnosed(
                black_box(&alarm),
                black_box(&load_balancer),
                black_box(&blocked),
            )
            .render(Format::Text)
        })
    });
    // The HTML page of the worst case: every zone's rows, lanes and hops drawn.
    let page = blocked_report.render(Format::Html);
    eprintln!("HTML page, every reply dropped: {} bytes", page.len());
    group.bench_function("render-html, every reply dropped", |b| {
        b.iter(|| black_box(&blocked_report).render(Format::Html))
    });
    let text = serde_json::to_string(&world).unwrap();
    group.bench_function("parse-snapshot-json", |b| {
        b.iter(|| elbmedic_engine::snapshot::from_json(black_box(&text)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

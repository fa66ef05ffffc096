//! End to end against a real moto server: scenarios built through the SDK, the real
//! `elbmedic` binary gathering live (`AWS_ENDPOINT_URL`), diagnosing, and publishing to SNS;
//! the report read back from an SQS queue subscribed to the report topic.

mod support;

use elbmedic_aws::accounts::Accounts;
use elbmedic_aws::clients::{CallLimits, Clients, Regions};
use elbmedic_aws::pipeline::{self, Facts, Handled, OwnAccount, Run};
use elbmedic_aws::settings::{Config, Role};
use elbmedic_engine::alarm::{parse_input, Intake};
use elbmedic_engine::plan::proposal::Handoff;
use support::moto::{use_moto, Moto};
use support::*;

/// Runs the real `elbmedic` binary against moto.
fn elbmedic(moto: &Moto, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_elbmedic"))
        .args(args)
        .envs(moto.env())
        .output()
        .expect("run elbmedic")
}

const CLB: &str = "a3f1c2e4b5d6978812345678abcdef01";

/// `elbmedic diagnose --format json --publish TOPIC` on the event file at `path`.
fn diagnose_publishing(moto: &Moto, path: &str, topic: &str) -> std::process::Output {
    let args = [
        "diagnose",
        "--event",
        path,
        "--format",
        "json",
        "--publish",
        topic,
    ];
    elbmedic(moto, &args)
}

/// Runs `elbmedic diagnose --publish` on `event` and returns (stdout report, published report).
async fn diagnose_and_publish(
    moto: &Moto,
    aws: &Aws,
    test: &str,
    event: &str,
) -> (serde_json::Value, serde_json::Value) {
    let (topic, queue) = report_topic(aws).await;
    let path = scratch(test, "event.json", event);
    let output = diagnose_publishing(moto, &path, &topic);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "elbmedic failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON report on stdout");
    let published = published_report(aws, &queue).await;
    assert_eq!(
        printed["verdict"], published["verdict"],
        "the published report is the printed one"
    );
    (printed, published)
}

#[tokio::test]
async fn clb_idle_timeout() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (_, event) = clb_idle_scenario(&aws, CLB).await;
    let (report, _) = diagnose_and_publish(&moto, &aws, "clb_idle_timeout", &event).await;
    assert_eq!(codes(&report), ["idle-timeout-exceeded"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(finding["confidence"], "confirmed");
    assert!(finding["fix"]["commands"][0]["command"]
        .as_str()
        .unwrap()
        .contains("\"IdleTimeout\":120"));
    assert!(finding["fix"]["durable"]["command"]
        .as_str()
        .unwrap()
        .contains("-n shop annotate service orders"));
    assert_eq!(report["load_balancer"]["cluster"], CLUSTER);
}

#[tokio::test]
async fn alb_idle_timeout() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let now = now();
    let id = alb_idle_world(&aws, now).await;
    let (report, published) = diagnose_and_publish(
        &moto,
        &aws,
        "alb_idle_timeout",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    )
    .await;
    let causes: Vec<String> = codes(&report)
        .into_iter()
        .filter(|c| c != "check-incomplete")
        .collect();
    assert_eq!(causes, ["idle-timeout-exceeded"], "{report:#}");
    assert_eq!(report["findings"][0]["confidence"], "confirmed");
    let command = report["findings"][0]["fix"]["durable"]["command"]
        .as_str()
        .unwrap();
    assert!(
        command.contains("-n shop get ingress checkout"),
        "{command}"
    );
    assert!(published["findings"][0]["fix"]["commands"][0]["command"]
        .as_str()
        .unwrap()
        .contains("idle_timeout.timeout_seconds,Value=120"));
}

/// A composite alarm names no metric: elbmedic reads the child that fired it from CloudWatch
/// and diagnoses that child's load balancer, saying which composite it came through.
#[tokio::test]
async fn a_composite_alarm_is_diagnosed_through_the_child_that_fired_it() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (_, child_event) = clb_idle_scenario(&aws, CLB).await;
    let event = composite_of(&aws, &child_event).await;
    let (report, published) = diagnose_and_publish(&moto, &aws, "composite_alarm", &event).await;
    assert_eq!(codes(&report), ["idle-timeout-exceeded"], "{report:#}");
    assert_eq!(report["alarm"]["name"], "e2e-HTTPCode_ELB_5XX");
    assert_eq!(report["alarm"]["via_composite"], "e2e-ingress-composite");
    assert_eq!(report["load_balancer"]["name"], CLB);
    assert_eq!(published["alarm"]["via_composite"], "e2e-ingress-composite");
}

/// A child that is back to OK when elbmedic reads it did not keep the composite firing: it is
/// reported as recovered, and nothing is planned for it.
#[tokio::test]
async fn a_composite_child_that_is_ok_is_reported_recovered() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (_, child_event) = clb_idle_scenario(&aws, CLB).await;
    let event = composite_of(&aws, &child_event).await;
    aws.cloudwatch
        .set_alarm_state()
        .alarm_name("e2e-HTTPCode_ELB_5XX")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("back below the threshold")
        .send()
        .await
        .unwrap();
    let path = scratch("composite_ok_child", "event.json", &event);
    let output = elbmedic(
        &moto,
        &[
            "diagnose", "--event", &path, "--format", "json", "--mode", "auto",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"]["status"], "recovered", "{report:#}");
    assert_eq!(report["alarm"]["via_composite"], "e2e-ingress-composite");
    assert!(report.get("remediation").is_none(), "{report:#}");
}

/// A composite alarm whose children are gone says so, with exit 3, instead of failing.
#[tokio::test]
async fn a_composite_alarm_without_readable_children_is_reported_unsupported() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (_, child_event) = clb_idle_scenario(&aws, CLB).await;
    let event = composite_of(&aws, &child_event).await;
    aws.cloudwatch
        .delete_alarms()
        .alarm_names("e2e-HTTPCode_ELB_5XX")
        .send()
        .await
        .unwrap();
    let path = scratch("composite_gone", "event.json", &event);
    let output = elbmedic(&moto, &["diagnose", "--event", &path, "--format", "json"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"]["status"], "unsupported");
    let headline = report["verdict"]["headline"].as_str().unwrap();
    assert!(
        headline.contains("e2e-HTTPCode_ELB_5XX: no such alarm in eu-west-1"),
        "{headline}"
    );
}

#[tokio::test]
async fn nacl_denies_ephemeral_replies_on_the_node_subnets() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (net, id, now) = ephemeral_replies_denied(&aws).await;
    let (report, _) = diagnose_and_publish(
        &moto,
        &aws,
        "nacl_ephemeral",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    )
    .await;
    assert_eq!(
        codes(&report)[0],
        "nacl-blocks-ephemeral-ports",
        "{report:#}"
    );
    let finding = &report["findings"][0];
    assert!(finding["title"]
        .as_str()
        .unwrap()
        .contains(&net.private_acl));
    assert!(finding["title"].as_str().unwrap().contains("1024-32767"));
    let commands: Vec<&str> = finding["fix"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands.len(), 2, "one per LB subnet: {commands:?}");
    for subnet in &net.public {
        let command = commands
            .iter()
            .find(|c| c.contains(&format!("--cidr-block {} ", subnet.cidr)))
            .expect("an entry per LB subnet CIDR");
        assert!(
            command.contains("--egress") && command.contains("From=1024,To=65535"),
            "{command}"
        );
        assert!(!command.contains("0.0.0.0/0"));
    }
}

#[tokio::test]
async fn node_security_group_missing_the_lb_rule() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[]).await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    alb_metrics(
        &aws,
        &id,
        now,
        &[0.0, 60.0, 64.0],
        &[0.0, 0.0, 0.0],
        &[0.0, 60.0, 64.0],
        &[0.0, 60.0, 64.0],
    )
    .await;
    let (report, _) = diagnose_and_publish(
        &moto,
        &aws,
        "sg_missing",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    )
    .await;
    assert_eq!(codes(&report)[0], "sg-blocks-target-port", "{report:#}");
    let command = report["findings"][0]["fix"]["commands"][0]["command"]
        .as_str()
        .unwrap();
    assert!(
        command.contains(&format!("--group-id {}", net.node_sg)),
        "{command}"
    );
    assert!(
        command.contains(&format!("GroupId={}", net.lb_sg)),
        "{command}"
    );
    assert!(command.contains("FromPort=8080,ToPort=8080"));
}

#[tokio::test]
async fn ip_targets_on_enis_and_a_stale_one() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let id = alb(&aws, &net, ALB, &PODS, &["10.0.35.77"]).await;
    // A pod IP held as a secondary address of a node ENI is not stale.
    let eni = aws
        .ec2
        .create_network_interface()
        .subnet_id(&net.private[0].id)
        .private_ip_address("10.0.20.5")
        .groups(&net.node_sg)
        .send()
        .await
        .unwrap();
    let eni_id = eni
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string();
    aws.ec2
        .assign_private_ip_addresses()
        .network_interface_id(&eni_id)
        .private_ip_addresses("10.0.20.6")
        .send()
        .await
        .unwrap();
    let tg = first_target_group(&aws).await;
    aws.elbv2
        .register_targets()
        .target_group_arn(&tg)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id("10.0.20.6")
                .port(8080)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let now = now();
    alb_metrics(
        &aws,
        &id,
        now,
        &[0.0, 6.0, 8.0],
        &[0.4, 0.5, 0.4],
        &[0.0, 6.0, 8.0],
        &[0.0, 6.0, 8.0],
    )
    .await;
    let (report, _) = diagnose_and_publish(
        &moto,
        &aws,
        "stale",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    )
    .await;
    let stale = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "stale-targets")
        .expect("stale-targets");
    assert_eq!(
        stale["resources"],
        serde_json::json!(["10.0.35.77"]),
        "{report:#}"
    );
    let placement = checked(&report, "target placement");
    assert!(
        placement["detail"]
            .as_str()
            .unwrap()
            .starts_with("3 of 4 targets found on an interface, 1 on none"),
        "{placement}"
    );
}

/// An NLB alarm (issue 26) is diagnosed live, by the real CLI against moto: its targets are
/// read through the same calls as an ALB's and the stale pod IP is named; the checks built on
/// HTTP stand aside and say why, and nothing claims an HTTP cause.
#[tokio::test]
async fn an_nlb_alarm_is_diagnosed_by_the_checks_that_apply() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let id = nlb(
        &aws,
        &net,
        "k8s-shop-mqtt-5e4d3c2b1a",
        &PODS,
        &["10.0.35.77"],
    )
    .await;
    let now = now();
    let event = nlb_event("TCP_Target_Reset_Count", &id, now);
    let (report, _) = diagnose_and_publish(&moto, &aws, "nlb", &event).await;
    assert_eq!(report["load_balancer"]["kind"], "network", "{report:#}");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"stale-targets"), "{codes:?}\n{report:#}");
    assert!(
        !codes
            .iter()
            .any(|c| c.contains("idle-timeout") || c.contains("refuse")),
        "{codes:?}"
    );
    let idle = report["checked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "idle timeout vs. latency")
        .expect("the idle-timeout check");
    assert_eq!(idle["status"], "not-applicable", "{idle}");
    assert!(idle["detail"]
        .as_str()
        .unwrap()
        .contains("Network Load Balancer"));
}

/// An IPv6 cluster behind a dual-stack ALB, on moto: the pods' IPv6 addresses are found on
/// their ENIs (not called stale), the public NACL got IPv6 twins of its allows except rule
/// 120's (the ephemeral ports), and the finding names the family and the private subnets'
/// IPv6 blocks; the IPv4 paths, all open, raise nothing.
#[tokio::test]
async fn an_ipv6_cluster_behind_a_dual_stack_alb_without_the_ipv6_ephemeral_allow() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let blocks = dual_stack(&aws, &net, &[(net.public_acl.as_str(), 120)]).await;
    let private_blocks = &blocks[net.public.len()..];
    let (id, pods) = ipv6_alb(&aws, &net, "k8s-shop-checkout-6f1e2d3c4b", private_blocks).await;
    let now = now();
    let errors = [0.0, 38.0, 44.0];
    alb_metrics(&aws, &id, now, &errors, &[10.0; 3], &errors, &errors).await;
    let event = alb_event("HTTPCode_ELB_504_Count", &id, now);
    let (report, _) = diagnose_and_publish(&moto, &aws, "ipv6", &event).await;
    let findings = report["findings"].as_array().unwrap();
    // moto answers 500 to the percentile query: a check-incomplete of its own.
    let codes: Vec<&str> = findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .filter(|c| *c != "check-incomplete")
        .collect();
    assert_eq!(codes, ["nacl-blocks-ephemeral-ports"], "{report:#}");
    let finding = &findings[0];
    let title = finding["title"].as_str().unwrap();
    assert!(
        title.contains("IPv6 replies") && title.contains(&net.public_acl),
        "{title}"
    );
    let commands: Vec<&str> = finding["fix"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands.len(), private_blocks.len(), "{commands:#?}");
    // One entry per private subnet's IPv6 block, in the order of the subnets' ids.
    for block in private_blocks {
        assert!(
            commands
                .iter()
                .any(|c| c.contains(&format!("--ipv6-cidr-block {block} "))),
            "{block}: {commands:#?}"
        );
    }
    for command in &commands {
        assert!(
            command.contains("--ingress") && command.contains("From=1024,To=65535"),
            "{command}"
        );
    }
    let placement = checked(&report, "target placement");
    assert!(
        placement["detail"].as_str().unwrap().starts_with(&format!(
            "{} of {} targets found",
            pods.len(),
            pods.len()
        )),
        "{placement}"
    );
}

/// The report's check whose name starts with `name`.
fn checked<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

fn codes_of(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        // moto answers 500 to the percentile query: a check-incomplete of its own.
        .filter(|c| c != "check-incomplete")
        .collect()
}

/// An NLB with security groups whose outbound rules were emptied: health checks obey them,
/// so the NLB reaches no target, and the path check names the NLB's own group.
#[tokio::test]
async fn an_nlb_whose_security_group_lets_nothing_out_fails_its_health_checks() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let id = nlb(&aws, &net, NLB, &PODS, &[]).await;
    aws.ec2
        .revoke_security_group_egress()
        .group_id(&net.lb_sg)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let event = nlb_event("TCP_Target_Reset_Count", &id, now());
    let (report, _) = diagnose_and_publish(&moto, &aws, "nlb-sg-egress", &event).await;
    assert_eq!(codes_of(&report), ["sg-blocks-target-port"], "{report:#}");
    let title = report["findings"][0]["title"].as_str().unwrap();
    assert!(
        title.contains(&net.lb_sg) && title.contains("of the load balancer"),
        "{title}"
    );
}

/// An NLB without security groups whose target group preserves the client's address: the
/// node SG admits port 8080 from the VPC (the NLB's subnets, so health checks pass) and from
/// nobody else, so every internet client is dropped at the pods.
#[tokio::test]
async fn client_ip_preservation_without_the_clients_in_the_target_sg() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[]).await;
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&net.node_sg)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(8080)
                .to_port(8080)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("10.0.0.0/16")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = nlb_preserving_client_ip(&aws, &net, NLB, &PODS).await;
    let event = nlb_event("TCP_Client_Reset_Count", &id, now());
    let (report, _) = diagnose_and_publish(&moto, &aws, "nlb-client-ip", &event).await;
    assert_eq!(codes_of(&report), ["client-ip-not-admitted"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(finding["confidence"], "confirmed", "{finding:#}");
    assert!(finding["title"].as_str().unwrap().contains(&net.node_sg));
    let commands = finding["fix"]["commands"].to_string();
    assert!(
        commands.contains("Key=preserve_client_ip.enabled,Value=false"),
        "{commands}"
    );
    assert!(!commands.contains("0.0.0.0/0"), "{commands}");
}

#[tokio::test]
async fn healthy_setup_has_no_false_positives() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (_, id, now) = open_alb(&aws, &[0.0, 3.0, 6.0]).await;
    let (report, _) = diagnose_and_publish(
        &moto,
        &aws,
        "healthy",
        &alb_event("HTTPCode_ELB_5XX_Count", &id, now),
    )
    .await;
    assert_eq!(report["verdict"]["status"], "no-known-cause", "{report:#}");
    let causes: Vec<String> = codes(&report)
        .into_iter()
        .filter(|c| c != "check-incomplete")
        .collect();
    assert!(causes.is_empty(), "false positives: {causes:?}");
    let checked = report["checked"].as_array().unwrap();
    for name in [
        "NACLs: target and health-check ports",
        "NACLs: replies on ephemeral ports 1024-65535",
        "security groups: load balancer to targets",
    ] {
        let check = checked.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(check["status"], "ok", "{check}");
    }
}

#[tokio::test]
async fn a_failing_call_leaves_a_gap_and_the_report_still_arrives() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    // The tags name a cluster that does not exist: DescribeCluster fails with NotFound.
    let arn = alb_arn(&aws, ALB).await;
    aws.elbv2
        .add_tags()
        .resource_arns(&arn)
        .tags(
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key("elbv2.k8s.aws/cluster")
                .value("ghost")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let now = now();
    alb_metrics(
        &aws,
        &id,
        now,
        &[0.0, 4.0, 9.0],
        &[8.1, 57.9, 59.4],
        &[0.0, 0.0, 0.0],
        &[0.0, 4.0, 9.0],
    )
    .await;
    let (_, published) = diagnose_and_publish(
        &moto,
        &aws,
        "gap",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    )
    .await;
    let gaps = published["gaps"].as_array().unwrap();
    let eks = gaps
        .iter()
        .find(|g| g["fact"] == "eks-cluster")
        .expect("EKS gap");
    assert_eq!(eks["reason"], "not-found", "{eks}");
    // moto answers 500 to any percentile query: the p99 series is a gap, the rest arrives.
    assert!(
        gaps.iter()
            .any(|g| g["fact"] == "metrics" && g["resource"].as_str().unwrap().contains("p99")),
        "{gaps:?}"
    );
    assert!(codes(&published).contains(&"idle-timeout-exceeded".to_string()));
    assert!(published["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "check-incomplete"
            && f["title"].as_str().unwrap().contains("EKS cluster")));
}

/// Sequential rounds and calls, measured by the SDK interceptor, per load balancer kind.
#[tokio::test]
async fn round_trips_are_within_budget() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080, 31380]).await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    clb(&aws, &net, CLB, 2).await;
    let nlb_id = nlb(&aws, &net, NLB, &["10.0.20.5", "10.0.36.9"], &[]).await;
    let now = now();
    let mut table = Vec::new();
    for (kind, event, budget) in [
        ("ALB", alb_event("HTTPCode_ELB_504_Count", &id, now), 3),
        // The listener attributes are read beside target health: no round of their own. But
        // moto writes app/ into an NLB's ARN, so the ARN derived from the alarm (net/) misses
        // and the name lookup adds two rounds (as for an ALB alarmed from another account);
        // on AWS the derived ARN is the NLB's, and its budget is the ALB's.
        ("NLB", nlb_event("TCP_ELB_Reset_Count", &nlb_id, now), 5),
        (
            "Classic LB",
            alarm_event(
                "AWS/ELB",
                "HTTPCode_ELB_5XX",
                ("LoadBalancerName", CLB),
                "SUM",
                now,
            ),
            3,
        ),
    ] {
        let Intake::Diagnose {
            alarm,
            load_balancer,
        } = parse_input(event.as_bytes()).unwrap().remove(0).unwrap()
        else {
            panic!()
        };
        // The environment's configuration, as the function loads it: moto, and the CloudTrail
        // stand-in beside it (AWS_ENDPOINT_URL_CLOUDTRAIL).
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .load()
            .await;
        let clients = Clients::from_config(&config, REGION);
        let world = elbmedic_aws::gather::for_alarm(
            &clients,
            &alarm,
            &load_balancer,
            now,
            elbmedic_aws::gather::DEFAULT_DEADLINE,
            None,
            elbmedic_aws::gather::Sources {
                recent_changes: elbmedic_aws::gather::ChangeLookups::FirstPass,
                cluster: elbmedic_aws::gather::ClusterReads::Off,
            },
        )
        .await;
        assert!(
            world
                .gaps
                .iter()
                .all(|g| g.fact == elbmedic_engine::snapshot::GapFact::Metrics),
            "{:?}",
            world.gaps
        );
        let rounds = clients.log.rounds();
        let calls = clients.log.calls().len();
        if std::env::var("ELBMEDIC_SHOW_CALLS").is_ok() {
            for call in clients.log.calls() {
                let took = call.ended.map(|e| e.duration_since(call.started));
                eprintln!("{kind} {} {took:?}", call.action());
            }
        }
        table.push(format!(
            "{kind}: {calls} calls in {rounds} sequential rounds (+1 for the publish)"
        ));
        assert!(
            rounds <= budget,
            "{kind}: {rounds} rounds > {budget}: {:#?}",
            clients.log.calls()
        );
    }
    println!("{}", table.join("\n"));
}

#[tokio::test]
async fn a_recorded_snapshot_replays_to_the_same_report() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let id = alb(&aws, &net, ALB, &PODS, &["10.0.35.77"]).await;
    let now = now();
    alb_metrics(
        &aws,
        &id,
        now,
        &[0.0, 6.0, 8.0],
        &[0.4, 0.5, 0.4],
        &[0.0, 6.0, 8.0],
        &[0.0, 6.0, 8.0],
    )
    .await;
    let event = scratch(
        "replay",
        "event.json",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    );
    let recorded = elbmedic(&moto, &["snapshot", "--event", &event]);
    assert_eq!(
        recorded.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let snapshot = scratch(
        "replay",
        "snapshot.json",
        &String::from_utf8_lossy(&recorded.stdout),
    );
    let live = elbmedic(&moto, &["diagnose", "--event", &event, "--format", "json"]);
    let replayed = elbmedic(
        &moto,
        &[
            "diagnose",
            "--event",
            &event,
            "--snapshot",
            &snapshot,
            "--format",
            "json",
        ],
    );
    let live: serde_json::Value = serde_json::from_slice(&live.stdout).unwrap();
    let replayed: serde_json::Value = serde_json::from_slice(&replayed.stdout).unwrap();
    assert_eq!(codes(&live), codes(&replayed));
    assert_eq!(live["findings"], replayed["findings"]);
    assert_eq!(live["verdict"], replayed["verdict"]);
    assert!(codes(&replayed).contains(&"stale-targets".to_string()));
}

#[tokio::test]
async fn ledger_create_makes_the_table_once() {
    let moto = Moto::start();
    let first = elbmedic(&moto, &["ledger", "create", "--table", "elbmedic-ledger"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("created"));
    let second = elbmedic(&moto, &["ledger", "create", "--table", "elbmedic-ledger"]);
    assert_eq!(second.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&second.stdout).contains("already exists"));
    let bad = elbmedic(&moto, &["diagnose", "--event", "-", "--mode", "yolo"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("off, dry-run, approve, auto"));
}

/// Defect 4 as reported: a report over SNS's 256 KiB limit (3,000 unhealthy instances whose
/// descriptions hold multibyte text) panicked while being trimmed, and the report was lost.
/// `diagnose --snapshot BIG --publish TOPIC` must deliver a trimmed report that moto's SNS
/// (which enforces the size) accepts.
#[tokio::test]
async fn an_oversized_multibyte_report_is_trimmed_and_delivered() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (topic, queue) = report_topic(&aws).await;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/scenarios/unhealthy-targets");
    let mut world: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("snapshot.json")).unwrap()).unwrap();
    let template = world["target_groups"][0]["targets"][0].clone();
    let description = "Échec de la vérification de l’état : délai dépassé ✗ ".repeat(6);
    world["target_groups"][0]["targets"] = (0..3_000)
        .map(|i| {
            let mut target = template.clone();
            target["id"] = serde_json::json!(format!("i-{i:017x}"));
            target["health"] = serde_json::json!({
                "state": "unhealthy",
                "reason": "Target.FailedHealthChecks",
                "description": format!("{i} {description}"),
            });
            target
        })
        .collect();
    // A multibyte character straddles byte 200, where the trim cuts details: the old panic.
    world["gaps"] = serde_json::json!([{
        "fact": "metrics", "reason": "error",
        "detail": format!("{}{}", "x".repeat(199), description.repeat(10)),
    }]);
    let snapshot = scratch("oversized", "snapshot.json", &world.to_string());
    let event = dir.join("event.json");
    let output = elbmedic(
        &moto,
        &[
            "diagnose",
            "--event",
            event.to_str().unwrap(),
            "--snapshot",
            &snapshot,
            "--publish",
            &topic,
            "--format",
            "json",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let published = published_report(&aws, &queue).await;
    assert_eq!(
        published["findings"][0]["code"], "targets-unhealthy",
        "{published:#}"
    );
    assert!(
        published["next_steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("trimmed")),
        "{published:#}"
    );
}

/// The ALB's ARN is derived from the alarm; when that ARN names no load balancer (an alarm
/// whose account is wrong, say), the gather falls back to the name and still diagnoses. That
/// serves a caller that does not know its own account; the CLI knows it (STS), and says the
/// alarm is of another account instead of reading this one.
#[tokio::test]
async fn an_alb_is_found_by_name_when_the_derived_arn_misses() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let now = now();
    let id = alb_idle_world(&aws, now).await;
    let event =
        alb_event("HTTPCode_ELB_504_Count", &id, now).replace("123456789012", "210987654321");
    assert!(event.contains("210987654321"));
    let config = Config::from_env(Role::Cli, |_| None).unwrap();
    let accounts = Accounts::new(Regions::new(CallLimits::default()), Default::default());
    let run = Run {
        config: &config,
        facts: Facts::Live(&accounts),
        handoff: Handoff::Topic,
        own_account: OwnAccount::known(None),
        now,
        run_id: "test",
    };
    let handled = pipeline::handle(&run, parse_input(event.as_bytes()).unwrap()).await;
    let [Handled::Reported(record)] = handled.as_slice() else {
        panic!("{handled:?}")
    };
    let report = serde_json::to_value(&record.report).unwrap();
    let causes: Vec<String> = codes(&report)
        .into_iter()
        .filter(|c| c != "check-incomplete")
        .collect();
    assert_eq!(causes, ["idle-timeout-exceeded"], "{report:#}");
    assert!(report["load_balancer"]["arn"]
        .as_str()
        .unwrap()
        .contains(":123456789012:loadbalancer/app/"));

    let path = scratch("alb_derived_arn_misses", "event.json", &event);
    let output = elbmedic(&moto, &["diagnose", "--event", &path, "--format", "json"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let headline = printed["verdict"]["headline"].as_str().unwrap();
    assert!(
        headline.contains("account 210987654321 is not one this deployment serves"),
        "{headline}"
    );
    assert!(printed["next_steps"][0]
        .as_str()
        .unwrap()
        .contains("runs in account 123456789012"));
}

/// An ALB whose paths are open and targets healthy, with `e5xx` as its 5xx over the last
/// minutes (no 504s, no connection errors, fast responses). Returns (network, `app/NAME/ID`,
/// now).
async fn open_alb(aws: &Aws, e5xx: &[f64]) -> (Network, String, i64) {
    let net = network(aws, &[8080]).await;
    let id = alb(aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    let none = vec![0.0; e5xx.len()];
    alb_metrics(aws, &id, now, &none, &[0.4, 0.5, 0.4], &none, e5xx).await;
    (net, id, now)
}

/// The ALB idle-timeout world: 504s with a TargetResponseTime near 60 s. Returns the ALB's
/// `app/NAME/ID`.
async fn alb_idle_world(aws: &Aws, now: i64) -> String {
    let net = network(aws, &[8080]).await;
    let id = alb(aws, &net, ALB, &PODS, &[]).await;
    alb_metrics(
        aws,
        &id,
        now,
        &[0.0, 4.0, 9.0],
        &[8.1, 57.9, 59.4],
        &[0.0, 0.0, 0.0],
        &[0.0, 4.0, 9.0],
    )
    .await;
    id
}

/// The CLI and the `diagnose` function share one pipeline: for the same composite alarm, and
/// the same alarms of another account (metric and composite), they publish the same report.
#[tokio::test]
async fn the_cli_and_the_function_publish_the_same_reports() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let (_, child_event) = clb_idle_scenario(&aws, CLB).await;
    let composite = composite_of(&aws, &child_event).await;
    // Every account id in the event (the alarm's, its ARN's, the topic's) becomes another.
    let foreign = |event: &str| event.replace("123456789012", "210987654321");
    let (topic, queue) = report_topic(&aws).await;
    // As the CLI runs here (moto.env()): moto's clusters have no API server to read.
    let config = Config::from_env(Role::Diagnose, |k| match k {
        "REPORT_TOPIC_ARN" => Some(topic.clone()),
        "KUBERNETES_READS" => Some("off".into()),
        _ => None,
    })
    .unwrap();
    let function = elbmedic_diagnose::Handler::new(config);
    let cases = [
        ("composite", composite.clone(), "cause-found"),
        ("foreign_metric", foreign(&child_event), "unsupported"),
        ("foreign_composite", foreign(&composite), "unsupported"),
    ];
    for (name, event, verdict) in cases {
        let path = scratch("same_reports", &format!("{name}.json"), &event);
        let output = diagnose_publishing(&moto, &path, &topic);
        assert!(
            output.status.code().is_some_and(|c| c == 0 || c == 3),
            "{name}: {output:?}"
        );
        let from_cli = published_report(&aws, &queue).await;
        let payload: serde_json::Value = serde_json::from_str(&event).unwrap();
        function
            .handle(&payload, Some("123456789012"), now())
            .await
            .unwrap();
        let from_function = published_report(&aws, &queue).await;
        assert_eq!(
            from_cli["verdict"]["status"], verdict,
            "{name}: {from_cli:#}"
        );
        assert_eq!(from_cli, from_function, "{name}");
    }
}

/// A rolling deploy on an ALB: the healthy-host count of its target group (read per target
/// group, in round 2) moves in every minute with 5xx, and the report says so, confirmed.
#[tokio::test]
async fn a_rolling_deploy_is_found_from_the_healthy_host_counts() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (_, id, now) = open_alb(&aws, &[0.0, 18.0, 25.0]).await;
    healthy_hosts_moving(&aws, &id, now).await;
    let event = alb_event("HTTPCode_ELB_5XX_Count", &id, now);
    let (report, _) = diagnose_and_publish(&moto, &aws, "rolling_deploy", &event).await;
    let causes: Vec<String> = codes(&report)
        .into_iter()
        .filter(|c| c != "check-incomplete")
        .collect();
    assert_eq!(causes, ["targets-churning"], "{report:#}");
    assert_eq!(report["findings"][0]["confidence"], "confirmed");
    assert!(report["findings"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["summary"]
            .as_str()
            .unwrap()
            .contains("healthy hosts between 1 and 2")));
}

/// The request parameters of a NACL entry allowing replies on 32768-65535 out of `acl`, as
/// CloudTrail records them (rule 110, the one `ephemeral_replies_denied` creates).
/// Denies replies on the low ephemeral ports in `acl` (rule 105, egress): the entry that then
/// decides, which [`low_ports_denied`] records in CloudTrail.
async fn deny_low_ports(aws: &Aws, acl: &str) {
    nacl_entry(
        aws,
        acl,
        105,
        true,
        "6",
        false,
        "0.0.0.0/0",
        Some((1024, 32767)),
    )
    .await;
}

/// The request of a `CreateNetworkAclEntry` that denies replies on the low ephemeral ports
/// (rule 105, egress), as CloudTrail records it.
fn low_ports_denied(acl: &str) -> serde_json::Value {
    serde_json::json!({"networkAclId": acl, "ruleNumber": 105, "egress": true, "ruleAction": "deny",
        "aclProtocol": "6", "portRange": {"from": 1024, "to": 32767}, "cidrBlock": "0.0.0.0/0"})
}

fn egress_entry(acl: &str) -> serde_json::Value {
    serde_json::json!({"networkAclId": acl, "ruleNumber": 110, "egress": true, "ruleAction": "allow",
        "aclProtocol": "6", "portRange": {"from": 32768, "to": 65535}, "cidrBlock": "0.0.0.0/0"})
}

/// What changed: CloudTrail (a local stand-in serving LookupEvents, which moto lacks) holds the
/// NACL deny that broke the replies (and an allow beside it that decides nothing), an unrelated change on the ALB and an entry in another
/// VPC's NACL. The report ties the first to the NACL finding, lists the second under recent
/// changes, leaves the third out, and the first pass makes exactly two lookups.
#[tokio::test]
async fn the_change_that_broke_the_path_is_named_from_cloudtrail() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (net, id, now) = ephemeral_replies_denied(&aws).await;
    let alb_arn = format!("arn:aws:elasticloadbalancing:{REGION}:123456789012:loadbalancer/{id}");
    let terraform = "arn:aws:sts::123456789012:assumed-role/terraform-ci/1732384331";
    let entry = egress_entry;
    // Terraform denied the low ephemeral ports outright: the entry that now decides, and the
    // one CloudTrail recorded. (Its allow entries for other ports touch nothing that decides.)
    deny_low_ports(&aws, &net.private_acl).await;
    let mut deny = entry(&net.private_acl);
    deny["ruleNumber"] = serde_json::json!(105);
    deny["ruleAction"] = serde_json::json!("deny");
    deny["portRange"] = serde_json::json!({"from": 1024, "to": 32767});
    moto.trail.add(
        "ev-nacl",
        "CreateNetworkAclEntry",
        now - 480,
        terraform,
        &[],
        deny,
    );
    moto.trail.add(
        "ev-allow",
        "CreateNetworkAclEntry",
        now - 470,
        terraform,
        &[],
        entry(&net.private_acl),
    );
    // A later call that IAM denied: recorded with its errorCode, it changed nothing, so it is
    // listed as a failed attempt and never blamed (trust round two, defect 2).
    let mut denied = entry(&net.private_acl);
    denied["ruleNumber"] = serde_json::json!(90);
    moto.trail.add_denied(
        "ev-denied",
        "CreateNetworkAclEntry",
        now - 420,
        "arn:aws:sts::123456789012:assumed-role/readonly/intern",
        denied,
    );
    moto.trail.add(
        "ev-elsewhere",
        "CreateNetworkAclEntry",
        now - 300,
        terraform,
        &[],
        entry("acl-0000000000elsewhere"),
    );
    moto.trail.add(
        "ev-listener",
        "ModifyLoadBalancerAttributes",
        now - 3000,
        "arn:aws:sts::123456789012:assumed-role/oncall/jane",
        &[&alb_arn],
        serde_json::json!({"loadBalancerArn": alb_arn, "attributes": [{"key": "deletion_protection.enabled", "value": "true"}]}),
    );
    let (report, _) = diagnose_and_publish(
        &moto,
        &aws,
        "recent_change",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    )
    .await;
    let codes = codes(&report);
    assert_eq!(
        codes[..2],
        ["nacl-blocks-ephemeral-ports", "recent-change"],
        "{report:#}"
    );
    let change = &report["findings"][1];
    let title = change["title"].as_str().unwrap();
    assert!(
        title.contains("rule 105") && title.contains("terraform-ci"),
        "{title}"
    );
    assert!(title.contains("8 min before the alarm"), "{title}");
    let unlinked = report["recent_changes"].to_string();
    assert!(
        unlinked.contains("deletion_protection.enabled=true"),
        "{unlinked}"
    );
    assert!(
        !report.to_string().contains("elsewhere"),
        "another VPC's change is not ours"
    );
    assert!(
        unlinked.contains("FAILED (Client.UnauthorizedOperation), so it changed nothing")
            && unlinked.contains("intern"),
        "{unlinked}"
    );
    let blamed = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.to_string().contains("ev-denied"));
    assert!(
        !blamed,
        "a denied call is never tied to a finding: {report:#}"
    );
    assert_eq!(
        moto.trail.requests().len(),
        2,
        "the first pass spends one second of CloudTrail's rate"
    );
}

/// The 5xx per zone come in the same GetMetricData call as the rest (the zones named by the
/// region's letters, the LB's own returning data): nearly all from the node in eu-west-1b
/// point at that zone's LB subnet.
#[tokio::test]
async fn the_zone_of_the_failing_load_balancer_node_is_named() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (net, id, now) = open_alb(&aws, &[0.0, 21.0, 27.0]).await;
    for (zone, errors) in [
        ("eu-west-1a", [0.0, 1.0, 0.0]),
        ("eu-west-1b", [0.0, 20.0, 27.0]),
    ] {
        let minutes: Vec<&[f64]> = errors.iter().map(std::slice::from_ref).collect();
        let dims = [("LoadBalancer", id.as_str()), ("AvailabilityZone", zone)];
        put_samples(
            &aws,
            "AWS/ApplicationELB",
            &dims,
            "HTTPCode_ELB_5XX_Count",
            &minutes,
            now,
        )
        .await;
    }
    let event = alb_event("HTTPCode_ELB_5XX_Count", &id, now);
    let (report, _) = diagnose_and_publish(&moto, &aws, "one_zone", &event).await;
    let zone = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "zone-concentrated")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(zone["title"].as_str().unwrap().contains("eu-west-1b"));
    assert_eq!(zone["resources"], serde_json::json!([net.public[1].id]));
}

/// A listener rule sends /api/* to a target group with no registered target: the live
/// diagnosis reads the rule (DescribeRules, in round 2) and names it with the empty group, from
/// the 503s.
#[tokio::test]
async fn a_rule_forwarding_to_an_empty_target_group_is_named() {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, PathPatternConditionConfig, ProtocolEnum, RuleCondition,
    };
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (net, id, now) = open_alb(&aws, &[0.0, 14.0, 19.0]).await;
    put_samples(
        &aws,
        "AWS/ApplicationELB",
        &[("LoadBalancer", &id)],
        "HTTPCode_ELB_503_Count",
        &[&[0.0], &[14.0], &[19.0]],
        now,
    )
    .await;
    let empty = aws
        .elbv2
        .create_target_group()
        .name("k8s-shop-checkout-api")
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id(&net.vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let alb_arn = format!("arn:aws:elasticloadbalancing:{REGION}:123456789012:loadbalancer/{id}");
    let listener = aws
        .elbv2
        .describe_listeners()
        .load_balancer_arn(&alb_arn)
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .listener_arn()
        .unwrap()
        .to_string();
    aws.elbv2
        .create_rule()
        .listener_arn(&listener)
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(
                    PathPatternConditionConfig::builder()
                        .values("/api/*")
                        .build(),
                )
                .build(),
        )
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&empty)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let event = alb_event("HTTPCode_ELB_5XX_Count", &id, now);
    let (report, _) = diagnose_and_publish(&moto, &aws, "empty_group", &event).await;
    assert_eq!(codes(&report)[0], "no-registered-targets", "{report:#}");
    let finding = &report["findings"][0];
    assert!(finding["title"]
        .as_str()
        .unwrap()
        .contains("k8s-shop-checkout-api"));
    assert!(
        finding["evidence"]
            .to_string()
            .contains("rule 10 of listener HTTP:80 (path-pattern /api/*)"),
        "{finding:#}"
    );
    assert_eq!(finding["confidence"], "confirmed");
}

/// `--follow-up` does the function's follow-up pass in the same run: every CloudTrail lookup,
/// at CloudTrail's rate. The replaced NACL entry that the first pass does not look up (it is
/// named as not looked up) is then found and tied to the NACL finding.
#[tokio::test]
async fn the_follow_up_finds_what_the_first_pass_left() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (net, id, now) = ephemeral_replies_denied(&aws).await;
    moto.trail.add(
        "ev-replace",
        "ReplaceNetworkAclEntry",
        now - 600,
        "arn:aws:sts::123456789012:assumed-role/oncall/jane",
        &[],
        egress_entry(&net.private_acl),
    );
    let path = scratch(
        "follow_up",
        "event.json",
        &alb_event("HTTPCode_ELB_504_Count", &id, now),
    );
    let first = elbmedic(&moto, &["diagnose", "--event", &path, "--format", "json"]);
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(
        !codes(&first).contains(&"recent-change".to_string()),
        "{first:#}"
    );
    assert!(first["checked"]
        .to_string()
        .contains("EventName=ReplaceNetworkAclEntry"));
    let lookups_before = moto.trail.requests().len();
    let both = elbmedic(
        &moto,
        &[
            "diagnose",
            "--event",
            &path,
            "--format",
            "json",
            "--follow-up",
        ],
    );
    assert_eq!(both.status.code(), Some(0), "{both:?}");
    let both: serde_json::Value = serde_json::from_slice(&both.stdout).unwrap();
    assert_eq!(
        codes(&both)[..2],
        ["nacl-blocks-ephemeral-ports", "recent-change"],
        "{both:#}"
    );
    assert!(both["findings"][1]["title"]
        .as_str()
        .unwrap()
        .contains("replaced"));
    assert_eq!(
        moto.trail.requests().len() - lookups_before,
        12,
        "every lookup, once"
    );
}

/// `diagnose` in-process with a report topic (its queue subscribed) and a follow-up queue of
/// `delay` seconds: (handler, report queue, follow-up queue URL, its ARN).
async fn follow_up_function(
    aws: &Aws,
    delay: &str,
) -> (elbmedic_diagnose::Handler, String, String, String) {
    let (topic, reports) = report_topic(aws).await;
    let (follow_ups, follow_ups_arn) = queue(aws, "elbmedic-follow-up").await;
    let env = [
        ("REPORT_TOPIC_ARN", topic.as_str()),
        ("FOLLOW_UP_QUEUE_URL", follow_ups.as_str()),
        ("FOLLOW_UP_DELAY", delay),
    ];
    let config = Config::from_env(Role::Diagnose, |k| {
        env.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let handler = elbmedic_diagnose::Handler::new(config);
    (handler, reports, follow_ups, follow_ups_arn)
}

/// The follow-up pass, end to end on moto's SQS. `diagnose` publishes the first report and
/// queues the follow-up with the queue's delay; CloudTrail then delivers the NACL change; the
/// queued message, handed back as Lambda delivers SQS records, makes `diagnose` publish a
/// follow-up threaded under the first report that ties the change to the NACL finding. The
/// same message again has nothing new and publishes nothing; a record from another queue is
/// dropped, not retried.
#[tokio::test]
async fn the_follow_up_pass_publishes_what_cloudtrail_delivered_late() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let (net, id, now) = ephemeral_replies_denied(&aws).await;
    deny_low_ports(&aws, &net.private_acl).await;
    let (function, reports, follow_ups, follow_ups_arn) = follow_up_function(&aws, "2").await;
    let event = alb_event("HTTPCode_ELB_504_Count", &id, now);
    let payload: serde_json::Value = serde_json::from_str(&event).unwrap();
    let summary = function
        .handle(&payload, Some("123456789012"), now)
        .await
        .unwrap();
    assert_eq!(summary["follow_ups_queued"], 1, "{summary:#}");
    let first = published_envelope(&aws, &reports).await;
    let first_report: serde_json::Value =
        serde_json::from_str(first["Message"].as_str().unwrap()).unwrap();
    assert!(!codes(&first_report).contains(&"recent-change".to_string()));
    assert_eq!(
        next_message(&aws, &follow_ups, 0).await,
        None,
        "the follow-up waits out its delay"
    );
    // Created 10 minutes before the alarm, delivered by CloudTrail only now.
    moto.trail.add(
        "ev-late",
        "CreateNetworkAclEntry",
        now - 600,
        "arn:aws:sts::123456789012:assumed-role/oncall/jane",
        &[],
        low_ports_denied(&net.private_acl),
    );
    let queued = queued_follow_up(&aws, &follow_ups, &follow_ups_arn).await;
    let lookups_before = moto.trail.requests().len();
    let response = function
        .handle(&queued, Some("123456789012"), now + 600)
        .await
        .unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(
        moto.trail.requests().len() - lookups_before,
        12,
        "every lookup"
    );
    let follow_up = published_envelope(&aws, &reports).await;
    // The first subject, as a reply, cut to leave room for the marker (SNS allows 99).
    let (first_subject, subject) = (
        first["Subject"].as_str().unwrap(),
        follow_up["Subject"].as_str().unwrap(),
    );
    assert!(
        subject.starts_with(&format!("Re: {}", &first_subject[..80]))
            && subject.ends_with("... (follow-up)")
            && subject.len() <= 99,
        "{subject}"
    );
    let report: serde_json::Value =
        serde_json::from_str(follow_up["Message"].as_str().unwrap()).unwrap();
    assert_eq!(codes(&report), ["recent-change"], "{report:#}");
    assert!(report["findings"][0]["title"]
        .as_str()
        .unwrap()
        .contains("created"));
    assert!(report["findings"][0]["evidence"]
        .to_string()
        .contains("explains nacl-blocks-ephemeral-ports"));
    assert_eq!(report["follow_up_of"]["message_id"], first["MessageId"]);

    // A record of another queue is not read at all.
    let mut foreign = queued.clone();
    foreign["Records"][0]["eventSourceARN"] =
        "arn:aws:sqs:eu-west-1:123456789012:someone-elses".into();
    let response = function
        .handle(&foreign, Some("123456789012"), now + 900)
        .await
        .unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(next_message(&aws, &reports, 1).await, None);

    // The alarm again, now that CloudTrail has the change: the first report names it, and
    // its follow-up has nothing new to say, so it publishes nothing.
    function
        .handle(&payload, Some("123456789012"), now)
        .await
        .unwrap();
    let again = published_report(&aws, &reports).await;
    assert!(codes(&again).contains(&"recent-change".to_string()));
    let record = queued_follow_up(&aws, &follow_ups, &follow_ups_arn).await;
    let response = function
        .handle(&record, Some("123456789012"), now + 600)
        .await
        .unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(next_message(&aws, &reports, 1).await, None, "nothing new");
}

/// An open ALB with 502s in two periods, healthy targets and no connection errors: the
/// keep-alive race, *likely* until the access logs say more. Returns its id and the alarm time.
async fn keepalive_502s(aws: &Aws) -> (String, i64) {
    let (_, id, now) = open_alb(aws, &[0.0, 6.0, 9.0]).await;
    put_samples(
        aws,
        "AWS/ApplicationELB",
        &[("LoadBalancer", &id)],
        "HTTPCode_ELB_502_Count",
        &[&[0.0], &[6.0], &[9.0]],
        now,
    )
    .await;
    (id, now)
}

/// `n` access-log lines of 502s whose connection the target closed (`target_status_code` `-`),
/// one a second from 100 s before `now`.
fn closed_502s(id: &str, now: i64, n: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            alb_log_line(
                id,
                now - 100 + i,
                now - 100 + i,
                "10.0.37.152:8080",
                "502",
                "-",
            )
        })
        .collect()
}

/// The access logs turn "likely" into "confirmed", in the follow-up. 502s with healthy
/// targets and no connection errors are likely keep-alive races in the first report, which
/// says the logs are read later; the follow-up reads the window's log object from moto's S3
/// (gzipped in two members, under AWS's key layout), finds the 502s with target status "-",
/// and publishes the finding confirmed.
#[tokio::test]
async fn the_access_logs_confirm_the_cause_in_the_follow_up() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let (id, now) = keepalive_502s(&aws).await;
    let lines: Vec<String> = closed_502s(&id, now, 15)
        .into_iter()
        .chain((0..40).map(|i| {
            alb_log_line(
                &id,
                now - 90 + i,
                now - 90 + i,
                "10.0.18.41:8080",
                "200",
                "200",
            )
        }))
        .collect();
    access_logs(
        &aws,
        &id,
        "elbmedic-access-logs",
        "shop",
        now - 60,
        &lines,
        17,
    )
    .await;
    let (function, reports, follow_ups, follow_ups_arn) = follow_up_function(&aws, "1").await;
    let payload: serde_json::Value =
        serde_json::from_str(&alb_event("HTTPCode_ELB_502_Count", &id, now)).unwrap();
    function
        .handle(&payload, Some("123456789012"), now)
        .await
        .unwrap();
    let first = published_report(&aws, &reports).await;
    // moto answers 500 to the p99 query: a check-incomplete beside the cause.
    assert_eq!(codes(&first)[0], "backend-closes-connections", "{first:#}");
    assert_eq!(first["findings"][0]["confidence"], "likely");
    assert!(first["checked"]
        .to_string()
        .contains("the follow-up reads them"));
    let queued = queued_follow_up(&aws, &follow_ups, &follow_ups_arn).await;
    let response = function
        .handle(&queued, Some("123456789012"), now + 600)
        .await
        .unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    let report = published_report(&aws, &reports).await;
    assert_eq!(codes(&report), ["backend-closes-connections"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(finding["confidence"], "confirmed");
    assert!(
        finding["confidence_reason"]
            .as_str()
            .unwrap()
            .contains("15 of 15 502s with target_status_code \"-\""),
        "{finding:#}"
    );
    assert!(report["verdict"]["headline"]
        .as_str()
        .unwrap()
        .starts_with("confirmed by the access logs"));
    assert!(report["checked"]
        .to_string()
        .contains("55 lines in 1 of 1 log objects"));
}

/// `elbmedic diagnose --follow-up` reads the access logs in the same run: the keep-alive 502s
/// are confirmed in one report, from the log object on moto's S3.
#[tokio::test]
async fn the_cli_follow_up_reads_the_access_logs_too() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (id, now) = keepalive_502s(&aws).await;
    let lines = closed_502s(&id, now, 9);
    access_logs(
        &aws,
        &id,
        "elbmedic-access-logs",
        "shop",
        now - 60,
        &lines,
        17,
    )
    .await;
    let report = diagnose_with_follow_up(
        &moto,
        "cli_access_logs",
        &alb_event("HTTPCode_ELB_502_Count", &id, now),
    );
    assert_eq!(
        codes(&report)[0],
        "backend-closes-connections",
        "{report:#}"
    );
    assert_eq!(report["findings"][0]["confidence"], "confirmed");
    assert!(report["checked"]
        .to_string()
        .contains("9 lines in 1 of 1 log objects"));
}

/// `elbmedic diagnose --follow-up` on `event`: the JSON report, the run having succeeded.
fn diagnose_with_follow_up(moto: &Moto, test: &str, event: &str) -> serde_json::Value {
    let path = scratch(test, "event.json", event);
    let output = elbmedic(
        moto,
        &[
            "diagnose",
            "--event",
            &path,
            "--format",
            "json",
            "--follow-up",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// An NLB's TLS listener logs, read by the CLI's follow-up on moto's S3: the long-lived
/// connections back the idle-timeout finding, the failed handshakes are counted.
#[tokio::test]
async fn the_follow_up_reads_an_nlbs_tls_access_logs() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let id = nlb(&aws, &net, NLB, &PODS, &[]).await;
    let now = now();
    nlb_idle_resets(&aws, &id, now).await;
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let line = |t: i64, ms: &str, handshake: &str| {
        format!(
            "tls 2.0 {} {id} 4c3b2a1908f7e6d5 198.51.100.23:51341 10.0.0.77:8883 {ms} {handshake} 98 246 - arn:aws:acm:{REGION}:{}:certificate/2a3b4c5d - ECDHE-RSA-AES128-SHA tlsv12 - mqtt.example.com - - - {}",
            at(t),
            aws.account,
            at(t - 400)
        )
    };
    let lines = vec![
        line(now - 90, "400112", "14"),
        line(now - 80, "351002", "11"),
        line(now - 70, "1200", "-"),
    ];
    enable_access_logs(&aws, &alb_arn(&aws, NLB).await, "iot-access-logs", "mqtt").await;
    put_access_log(&aws, &id, "iot-access-logs", "mqtt", now - 60, &lines, 21).await;
    let report = diagnose_with_follow_up(
        &moto,
        "nlb_tls_logs",
        &nlb_event("TCP_ELB_Reset_Count", &id, now),
    );
    assert_eq!(codes_of(&report), ["nlb-idle-timeout-resets"], "{report:#}");
    let logs = checked(&report, "access logs");
    assert!(
        logs["detail"].as_str().unwrap().contains(
            "3 TLS connections: 1 handshakes failed, 2 lasted at least the 350 s idle timeout"
        ),
        "{logs}"
    );
    assert!(report["findings"][0]["evidence"]
        .to_string()
        .contains("2 of 3 connections lasting at least 350 s"));
}

/// The read of the access logs is bounded: five log objects against a budget of two, then a
/// byte budget smaller than one object. What was read is counted, and marked as cut short.
#[tokio::test]
async fn the_access_log_read_stops_at_its_budget() {
    use elbmedic_aws::gather::access_logs::{read_within, Budget};
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let (_, id, now) = open_alb(&aws, &[0.0, 6.0, 9.0]).await;
    let lines = closed_502s(&id, now, 20);
    for node in 1..=5 {
        access_logs(
            &aws,
            &id,
            "elbmedic-access-logs",
            "shop",
            now - 60,
            &lines,
            node,
        )
        .await;
    }
    let clients = Clients::load(REGION, CallLimits::default()).await;
    let alarm = match parse_input(alb_event("HTTPCode_ELB_502_Count", &id, now).as_bytes())
        .unwrap()
        .remove(0)
        .unwrap()
    {
        Intake::Diagnose {
            alarm,
            load_balancer,
        } => (alarm, load_balancer),
        other => panic!("{other:?}"),
    };
    let world = elbmedic_aws::gather::for_alarm(
        &clients,
        &alarm.0,
        &alarm.1,
        now,
        std::time::Duration::from_secs(20),
        None,
        elbmedic_aws::gather::Sources::STATE_ONLY,
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let window = (now - 360, now);
    let two = Budget {
        objects: 2,
        bytes: 1 << 20,
    };
    let logs = read_within(&clients, &world, window, deadline, two)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((logs.objects_found, logs.objects_read), (5, 2));
    assert!(logs.truncated);
    assert_eq!(logs.lines, 40);
    let small = Budget {
        objects: 200,
        bytes: 1000,
    };
    let logs = read_within(&clients, &world, window, deadline, small)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logs.objects_read, 1);
    assert!(logs.truncated && logs.bytes_read <= 1000, "{logs:?}");
    assert!(logs.read_summary().contains("stopped at the read budget"));
}

/// A throttled CloudTrail is one attempt per lookup, never a wait: the report arrives with a
/// gap that names cloudtrail:LookupEvents, and the SDK's retries are not spent on it.
#[tokio::test]
async fn a_throttled_cloudtrail_is_a_gap_not_a_wait() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (_, id, now) = ephemeral_replies_denied(&aws).await;
    moto.trail.throttle();
    let event = alb_event("HTTPCode_ELB_504_Count", &id, now);
    let (report, _) = diagnose_and_publish(&moto, &aws, "trail_throttled", &event).await;
    assert_eq!(
        codes(&report)[0],
        "nacl-blocks-ephemeral-ports",
        "{report:#}"
    );
    let gaps = report["gaps"].to_string();
    assert!(
        gaps.contains("cloudtrail:LookupEvents") && gaps.contains("throttled"),
        "{gaps}"
    );
    assert_eq!(moto.trail.requests().len(), 2, "one attempt per lookup");
}

/// `elbmedic incidents` reads what the `diagnose` function kept: the incident of a flapping
/// alarm, its five alarms, the recovery posted once, and the updates; `--lb` filters.
#[tokio::test]
async fn incidents_lists_what_diagnose_kept_of_a_flapping_alarm() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let ledger = elbmedic(&moto, &["ledger", "create", "--table", "elbmedic-ledger"]);
    assert_eq!(ledger.status.code(), Some(0));
    let start = now() - 20 * 60;
    let id = alb_idle_world(&aws, start).await;
    let (topic, _) = report_topic(&aws).await;
    let env = [
        ("REPORT_TOPIC_ARN", topic.as_str()),
        ("LEDGER_TABLE", "elbmedic-ledger"),
    ];
    let config = Config::from_env(Role::Diagnose, |k| {
        env.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let function = elbmedic_diagnose::Handler::new(config);
    for n in 0..5 {
        let at = start + n * 300;
        // The same 504s before each alarm: the same cause every time.
        let idle = [8.1, 57.9, 59.4];
        alb_metrics(
            &aws,
            &id,
            at,
            &[0.0, 4.0, 9.0],
            &idle,
            &[0.0; 3],
            &[0.0, 4.0, 9.0],
        )
        .await;
        let alarm = alb_event("HTTPCode_ELB_504_Count", &id, at);
        let ok = alarm.replace(
            "\\\"NewStateValue\\\":\\\"ALARM\\\"",
            "\\\"NewStateValue\\\":\\\"OK\\\"",
        );
        assert_ne!(ok, alarm);
        for (event, t) in [(alarm, at), (ok, at + 120)] {
            if n == 4 && t != at {
                continue;
            }
            let payload: serde_json::Value = serde_json::from_str(&event).unwrap();
            function
                .handle(&payload, Some("123456789012"), t + 5)
                .await
                .unwrap();
        }
    }
    let listed = elbmedic(
        &moto,
        &["incidents", "--table", "elbmedic-ledger", "--lb", ALB],
    );
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(
        listed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    println!("{text}");
    assert!(text.starts_with("INCIDENTS (1)"), "{text}");
    assert!(
        text.contains("OPEN, in ALARM; opened ") && text.contains(", 5 alarms, "),
        "{text}"
    );
    assert!(
        text.contains("cause (cause-found): idle-timeout-exceeded"),
        "{text}"
    );
    assert_eq!(text.matches(": opened\n").count(), 1, "{text}");
    assert_eq!(text.matches(": update\n").count(), 4, "{text}");
    assert_eq!(text.matches(": recovered\n").count(), 1, "{text}");
    assert_eq!(
        text.matches("nothing sent (the incident's recovery was posted already)")
            .count(),
        3,
        "{text}"
    );
    let other = elbmedic(
        &moto,
        &[
            "incidents",
            "--table",
            "elbmedic-ledger",
            "--lb",
            "no-such-lb",
        ],
    );
    assert!(String::from_utf8_lossy(&other.stdout).starts_with("No incidents"));
    let json = elbmedic(
        &moto,
        &["incidents", "--table", "elbmedic-ledger", "--json"],
    );
    let records: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(records[0]["alarms"], 5);
}

/// After a fix: the node subnets' NACL dropped the replies, and on-call has just allowed
/// 1024-65535. An alarm that fires on the minutes before that still sees the connection
/// errors; with the paths open they would read as targets refusing connections. CloudTrail's
/// record of the fix puts them before it, and no target is blamed.
#[tokio::test]
async fn connection_errors_from_before_a_nacl_fix_blame_no_target() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let (net, id, now) = ephemeral_replies_denied(&aws).await;
    nacl_entry(
        &aws,
        &net.private_acl,
        120,
        true,
        "6",
        true,
        "0.0.0.0/0",
        Some((1024, 65535)),
    )
    .await;
    let path = scratch(
        "after_a_nacl_fix",
        "event.json",
        &alb_event("TargetConnectionErrorCount", &id, now),
    );
    let diagnose = || {
        let out = elbmedic(
            &moto,
            &[
                "diagnose",
                "--event",
                &path,
                "--format",
                "json",
                "--follow-up",
            ],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let without_the_record = diagnose();
    assert!(
        codes(&without_the_record).contains(&"targets-refuse-connections".to_string()),
        "{without_the_record:#}"
    );
    let fixed = serde_json::json!({"networkAclId": net.private_acl, "ruleNumber": 120, "egress": true,
        "ruleAction": "allow", "aclProtocol": "6", "portRange": {"from": 1024, "to": 65535}, "cidrBlock": "0.0.0.0/0"});
    // At the end of the last minute with errors (a minute still under way may hold errors
    // after the fix), and before the alarm.
    let fixed_at = now.div_euclid(60) * 60;
    moto.trail.add(
        "ev-fix",
        "CreateNetworkAclEntry",
        fixed_at,
        "arn:aws:sts::123456789012:assumed-role/oncall/jane",
        &[],
        fixed,
    );
    let report = diagnose();
    assert!(
        !codes(&report).contains(&"targets-refuse-connections".to_string()),
        "{report:#}"
    );
    assert!(
        report["checked"]
            .to_string()
            .contains("all before the fix at "),
        "{report:#}"
    );
}

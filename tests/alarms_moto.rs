//! `elbmedic alarms` and infra/alarms.yaml together. On a real moto server the command looks
//! the load balancer up and prints the deploy command. Its parameters are then checked against
//! the template's own constraints, and the alarms the template declares for that kind of LB are
//! read from it: each watches the right metric and dimension, notifies the topic on ALARM and
//! OK, and an alarm message built from it is understood by elbmedic as being about that load
//! balancer. (moto's CloudFormation cannot create AWS::CloudWatch::Alarm, so the stack itself
//! is checked by cfn-lint and checkov in scripts/test.sh, not deployed here.)

mod support;

use elbmedic_engine::alarm::{parse_input, Intake};
use serde_yaml::Value as Yaml;
use support::moto::Moto;
use support::*;

const ALB: &str = "k8s-shop-checkout-6f1e2d3c4b";
const CLB: &str = "a3f1c2e4b5d6978812345678abcdef01";
const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:elbmedic-AlarmTopic-1A2B3C";

fn elbmedic(moto: &Moto, args: &[&str]) -> std::process::Output {
    elbmedic_as(moto, args, &[])
}

/// `elbmedic` with `credentials` on top of moto's environment (another account's).
fn elbmedic_as(moto: &Moto, args: &[&str], credentials: &[(&str, String)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_elbmedic"))
        .args(args)
        .envs(moto.env())
        .envs(credentials.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run elbmedic")
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/alarms.yaml"))
        .expect("infra/alarms.yaml");
    serde_yaml::from_str(&text).expect("YAML")
}

/// What a run that exited 0 printed.
fn succeeded(out: std::process::Output) -> String {
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
}

/// Runs `elbmedic alarms` for `lb` and returns the `KEY=VALUE` pairs of the printed command,
/// after checking each against the template's AllowedPattern or AllowedValues.
fn printed_parameters(moto: &Moto, template: &Yaml, lb: &str) -> Vec<(String, String)> {
    let printed = succeeded(elbmedic(moto, &["alarms", "--lb", lb, "--topic", TOPIC]));
    assert!(
        printed.contains("--template-file infra/alarms.yaml"),
        "{printed}"
    );
    let (_, overrides) = printed.split_once("--parameter-overrides ").unwrap();
    let params: Vec<(String, String)> = overrides
        .split_whitespace()
        .map(|pair| {
            let (key, value) = pair.split_once('=').expect("KEY=VALUE");
            (key.to_string(), value.to_string())
        })
        .collect();
    for (key, value) in &params {
        let declared = &template["Parameters"][key.as_str()];
        assert!(
            declared.is_mapping(),
            "{key} is not a parameter of alarms.yaml"
        );
        if let Some(pattern) = declared["AllowedPattern"].as_str() {
            let pattern = regex::Regex::new(pattern).unwrap();
            assert!(pattern.is_match(value), "{key}={value} breaks {pattern}");
        }
        if let Some(allowed) = declared["AllowedValues"].as_sequence() {
            assert!(
                allowed.iter().any(|a| a.as_str() == Some(value)),
                "{key}={value}"
            );
        }
    }
    params
}

/// The SNS event CloudWatch sends when an alarm on this metric and dimension fires.
fn fired(namespace: &str, metric: &str, dimension: (&str, &str)) -> String {
    let message = serde_json::json!({
        "AlarmName": format!("elbmedic-x-{metric}"),
        "AlarmDescription": "from infra/alarms.yaml",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 3 out of the last 5 datapoints [12.0 (24/11/26 03:11:00), 15.0 (24/11/26 03:10:00), 11.0 (24/11/26 03:09:00)] were greater than or equal to the threshold (10.0) (minimum 3 datapoints for OK -> ALARM transition).",
        "StateChangeTime": "2026-11-24T03:12:44.120+0000",
        "Region": "EU (Ireland)",
        "AlarmArn": format!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:elbmedic-x-{metric}"),
        "OldStateValue": "OK",
        "OKActions": [TOPIC],
        "AlarmActions": [TOPIC],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": metric, "Namespace": namespace, "StatisticType": "Statistic",
            "Statistic": "SUM", "Unit": null,
            "Dimensions": [{"value": dimension.1, "name": dimension.0}],
            "Period": 60, "EvaluationPeriods": 5, "DatapointsToAlarm": 3,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 10.0,
            "TreatMissingData": "notBreaching", "EvaluateLowSampleCountPercentile": ""
        }
    });
    serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification", "TopicArn": TOPIC, "Subject": "ALARM", "Message": message.to_string()
    }}]})
    .to_string()
}

/// The `!Ref` target of a tagged value, or of the single item of a list.
fn reference(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_string),
        Yaml::Sequence(items) if items.len() == 1 => reference(&items[0]),
        _ => None,
    }
}

/// The alarms the template makes under `condition`: each checked, and its metric returned.
fn check_alarms(template: &Yaml, condition: &str, lb_name: &str, dimension: &str) -> Vec<String> {
    let mut metrics = Vec::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Condition"].as_str() != Some(condition) {
            continue;
        }
        let p = &resource["Properties"];
        assert_eq!(resource["Type"].as_str(), Some("AWS::CloudWatch::Alarm"));
        assert_eq!(p["TreatMissingData"].as_str(), Some("notBreaching"));
        assert_eq!(p["Statistic"].as_str(), Some("Sum"));
        assert_eq!(p["Period"].as_u64(), Some(60));
        assert_eq!(
            reference(&p["AlarmActions"]).as_deref(),
            Some("AlarmTopicArn")
        );
        assert_eq!(reference(&p["OKActions"]).as_deref(), Some("AlarmTopicArn"));
        let dimensions = p["Dimensions"].as_sequence().unwrap();
        assert_eq!(dimensions.len(), 1);
        assert_eq!(
            reference(&dimensions[0]["Value"]).as_deref(),
            Some("LoadBalancer")
        );
        let namespace = p["Namespace"].as_str().unwrap();
        let metric = p["MetricName"].as_str().unwrap();
        let name = dimensions[0]["Name"].as_str().unwrap();
        let event = fired(namespace, metric, (name, dimension));
        let Intake::Diagnose { load_balancer, .. } =
            parse_input(event.as_bytes()).unwrap().remove(0).unwrap()
        else {
            panic!("an alarm on {namespace} {metric} is not understood as a load balancer alarm");
        };
        assert_eq!(
            (load_balancer.name.as_str(), load_balancer.id.as_str()),
            (lb_name, dimension)
        );
        metrics.push(metric.to_string());
    }
    metrics.sort();
    metrics
}

#[tokio::test]
async fn alarms_for_an_alb_watch_it_and_are_understood() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    alb(&aws, &net, ALB, &["10.0.18.41"], &[]).await;
    let arn = alb_arn(&aws, ALB).await;
    let dimension = arn.split_once(":loadbalancer/").unwrap().1.to_string();
    let template = template();

    let params = printed_parameters(&moto, &template, ALB);
    assert!(params.contains(&("LoadBalancerType".into(), "application".into())));
    assert!(params.contains(&("LoadBalancer".into(), dimension.clone())));
    assert!(params.contains(&("AlarmTopicArn".into(), TOPIC.into())));
    assert_eq!(
        check_alarms(&template, "IsApplication", ALB, &dimension),
        [
            "HTTPCode_ELB_504_Count",
            "HTTPCode_ELB_5XX_Count",
            "TargetConnectionErrorCount"
        ]
    );
}

/// An NLB (issue 26) is alarmed on its resets, by its `net/NAME/ID` dimension: moto writes
/// `app/` into every ELBv2 ARN, so the type DescribeLoadBalancers gives decides.
#[tokio::test]
async fn alarms_for_an_nlb_watch_it_and_are_understood() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let name = "k8s-shop-mqtt-5e4d3c2b1a";
    let dimension = nlb(&aws, &net, name, &["10.0.18.41"], &[]).await;
    assert!(dimension.starts_with("net/"), "{dimension}");
    let template = template();

    let params = printed_parameters(&moto, &template, name);
    assert!(params.contains(&("LoadBalancerType".into(), "network".into())));
    assert!(params.contains(&("LoadBalancer".into(), dimension.clone())));
    assert_eq!(
        check_alarms(&template, "IsNetwork", name, &dimension),
        [
            "PortAllocationErrorCount",
            "TCP_ELB_Reset_Count",
            "TCP_Target_Reset_Count"
        ]
    );
}

#[tokio::test]
async fn alarms_for_a_classic_lb_watch_it_and_are_understood() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[31380]).await;
    clb(&aws, &net, CLB, 1).await;
    let template = template();

    let params = printed_parameters(&moto, &template, CLB);
    assert!(params.contains(&("LoadBalancerType".into(), "classic".into())));
    assert!(params.contains(&("LoadBalancer".into(), CLB.into())));
    assert_eq!(
        check_alarms(&template, "IsClassic", CLB, CLB),
        ["BackendConnectionErrors", "HTTPCode_ELB_5XX"]
    );
}

#[tokio::test]
async fn an_unknown_load_balancer_or_a_topic_elsewhere_is_a_clear_error() {
    let moto = Moto::start();
    let missing = elbmedic(&moto, &["alarms", "--lb", "nope", "--topic", TOPIC]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("no ALB or Classic LB named nope in eu-west-1"),
        "{stderr}"
    );

    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[31380]).await;
    clb(&aws, &net, CLB, 1).await;
    let elsewhere = "arn:aws:sns:us-east-1:123456789012:elbmedic-alarms";
    let out = elbmedic(&moto, &["alarms", "--lb", CLB, "--topic", elsewhere]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notify topics in their own region"));
}

/// In a member account, with the central deployment's topic: the same deploy command, run
/// with that account's credentials, and what the central side needs for it to work.
#[tokio::test]
async fn a_member_accounts_alb_is_alarmed_to_the_central_topic() {
    let moto = Moto::start();
    let member = Aws::in_account(&moto.url, "210987654321").await;
    let net = network(&member, &[8080]).await;
    alb(&member, &net, ALB, &["10.0.18.41"], &[]).await;
    let credentials = account_credentials(&moto.url, "210987654321").await;
    let out = elbmedic_as(
        &moto,
        &["alarms", "--lb", ALB, "--topic", TOPIC],
        &credentials,
    );
    let printed = succeeded(out);
    assert!(
        printed.contains("credentials for account 210987654321"),
        "{printed}"
    );
    assert!(
        printed.contains("AllowedAccounts must list 210987654321"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("AlarmTopicArn={TOPIC}")),
        "{printed}"
    );
    assert!(
        printed.contains("LoadBalancer=app/k8s-shop-checkout-6f1e2d3c4b/"),
        "{printed}"
    );
}

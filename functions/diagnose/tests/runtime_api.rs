//! The built `diagnose` binary through the real Lambda runtime loop: a local Runtime API on
//! 127.0.0.1 hands it an events/ file, moto stands in for AWS, and the report is read back
//! from an SQS queue subscribed to the report topic. Also measures the cold-start init time:
//! process start to the first poll of the Runtime API.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::process::Command;

use support::moto::{use_moto, Moto};
use support::runtime_api::invoke;
use support::*;

#[tokio::test]
async fn the_binary_answers_through_the_runtime_api() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    // The Classic LB named by events/alarms/clb-http-5xx.json, with NodePorts denied on the
    // node subnets' NACL.
    let net = network(&aws, &[31380]).await;
    nacl_entry(
        &aws,
        &net.private_acl,
        90,
        false,
        "6",
        false,
        "0.0.0.0/0",
        Some((30000, 32767)),
    )
    .await;
    clb(&aws, &net, "a3f1c2e4b5d6978812345678abcdef01", 2).await;
    let (topic, queue) = report_topic(&aws).await;
    let (follow_ups, follow_ups_arn) = support::queue(&aws, "elbmedic-follow-up").await;
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/alarms/clb-http-5xx.json"
    ))
    .unwrap();
    let config = [
        ("REPORT_TOPIC_ARN", topic.clone()),
        ("FOLLOW_UP_QUEUE_URL", follow_ups.clone()),
        ("FOLLOW_UP_DELAY", "1".to_string()),
    ];

    let invocation = invoke(
        env!("CARGO_BIN_EXE_diagnose"),
        "111122223333",
        &moto,
        &config,
        event,
    );
    let logs = invocation.logs.clone();
    let body = invocation
        .response
        .unwrap_or_else(|e| panic!("invocation error: {e}\n{logs}"));
    println!(
        "cold start: process start to first Runtime API poll: {:?}",
        invocation.init.unwrap()
    );

    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    let record = &summary["records"][0];
    assert_eq!(record["verdict"], "cause-found", "{summary:#}\n{logs}");
    assert!(
        record["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "nacl-blocks-target-port"),
        "{summary:#}"
    );
    assert!(record["message_id"].is_string());
    let published = published_report(&aws, &queue).await;
    assert_eq!(published["findings"][0]["code"], "nacl-blocks-target-port");
    // Structured logs: every line the function printed is JSON.
    let log_lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!log_lines.is_empty());
    for line in log_lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }

    // The follow-up it queued comes back from the queue as an SQS event: the binary answers
    // with SQS's partial-batch response (nothing new in CloudTrail, nothing to retry).
    assert_eq!(summary["follow_ups_queued"], 1, "{summary:#}");
    let record = queued_follow_up(&aws, &follow_ups, &follow_ups_arn).await;
    let invocation = invoke(
        env!("CARGO_BIN_EXE_diagnose"),
        "111122223333",
        &moto,
        &config,
        record.to_string(),
    );
    let logs = invocation.logs.clone();
    let body = invocation
        .response
        .unwrap_or_else(|e| panic!("invocation error: {e}\n{logs}"));
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": []}),
        "{logs}"
    );
    assert!(logs.contains("follow-up done"), "{logs}");
}

#[tokio::test]
async fn invalid_configuration_is_refused_at_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_diagnose"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("REPORT_TOPIC_ARN", "not-an-arn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("REPORT_TOPIC_ARN \\\"not-an-arn\\\" is not an SNS topic ARN")
            || logs.contains("is not an SNS topic ARN"),
        "{logs}"
    );
}

fn scenario_event(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../events/scenarios/{name}/event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn an_alarm_of_an_account_not_served_gets_a_report_not_a_failure() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let (topic, queue) = report_topic(&aws).await;
    let handler = elbmedic_diagnose::Handler::new(
        elbmedic_diagnose::Config::from_env(elbmedic_diagnose::Role::Diagnose, |k| {
            (k == "REPORT_TOPIC_ARN").then(|| topic.clone())
        })
        .unwrap(),
    );
    // The scenario's alarm comes from account 111122223333; the function runs in another.
    let summary = handler
        .handle(
            &scenario_event("alb-idle-timeout"),
            Some("999999999999"),
            now(),
        )
        .await
        .expect("not a failed invocation");
    assert_eq!(
        summary["records"][0]["verdict"], "unsupported",
        "{summary:#}"
    );
    let published = published_report(&aws, &queue).await;
    assert!(published["verdict"]["headline"]
        .as_str()
        .unwrap()
        .contains("account 111122223333 is not one this deployment serves (ALLOWED_ACCOUNTS)"));
    assert!(published["next_steps"][0]
        .as_str()
        .unwrap()
        .contains("elbmedic-member-roles"));

    // A composite alarm of that account: its children cannot be read from here either.
    let composite = format!(
        "{}/../../events/alarms/composite-alb-5xx.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(composite).unwrap()).unwrap();
    let summary = handler
        .handle(&event, Some("999999999999"), now())
        .await
        .expect("not a failed invocation");
    assert_eq!(
        summary["records"][0]["verdict"], "unsupported",
        "{summary:#}"
    );
    let published = published_report(&aws, &queue).await;
    let headline = published["verdict"]["headline"].as_str().unwrap();
    assert!(
        headline.contains("composite alarm whose child alarms cannot be read: account 111122223333 is not one this deployment serves"),
        "{headline}"
    );
}

#[tokio::test]
async fn an_unpublishable_report_fails_the_invocation_so_lambda_retries() {
    let moto = Moto::start();
    use_moto(&moto);
    let missing = "arn:aws:sns:eu-west-1:123456789012:no-such-topic".to_string();
    let handler = elbmedic_diagnose::Handler::new(
        elbmedic_diagnose::Config::from_env(elbmedic_diagnose::Role::Diagnose, |k| {
            (k == "REPORT_TOPIC_ARN").then(|| missing.clone())
        })
        .unwrap(),
    );
    let error = handler
        .handle(
            &scenario_event("alb-idle-timeout"),
            Some("111122223333"),
            now(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.failed, 1);
    assert!(error.to_string().contains("no-such-topic"), "{error}");
}

/// Issue 24's end to end: a rolling deploy behind an ALB on moto (the healthy-host count moves
/// in every minute with 5xx), the cluster behind it served by the Kubernetes API stand-in, and
/// the built `diagnose` binary under the Runtime API. The report names the Deployment, that it
/// has no preStop hook, and the exact `kubectl patch` for it; the stand-in saw a token it
/// verified, and only reads.
#[tokio::test]
async fn the_binary_names_the_deployment_without_a_pre_stop_hook() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    let net = network(&aws, &[8080]).await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    let none = [0.0, 0.0, 0.0];
    alb_metrics(
        &aws,
        &id,
        now,
        &none,
        &[0.4, 0.5, 0.4],
        &none,
        &[0.0, 18.0, 25.0],
    )
    .await;
    let group = healthy_hosts_moving(&aws, &id, now).await;
    let world = rolling_world(&group);
    let cluster = moto_cluster("kube-rolling-deploy", &world);
    let (topic, queue) = report_topic(&aws).await;
    let config = [
        ("REPORT_TOPIC_ARN", topic.clone()),
        ("KUBERNETES_READS", "on".to_string()),
        ("KUBERNETES_API_URL", cluster.url()),
    ];
    let event = alb_event("HTTPCode_ELB_5XX_Count", &id, now);
    let invocation = invoke(
        env!("CARGO_BIN_EXE_diagnose"),
        "123456789012",
        &moto,
        &config,
        event,
    );
    let logs = invocation.logs.clone();
    invocation
        .response
        .unwrap_or_else(|e| panic!("invocation error: {e}\n{logs}"));
    let report = published_report(&aws, &queue).await;
    let churn = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "targets-churning")
        .unwrap_or_else(|| panic!("no churn finding: {report:#}\n{logs}"));
    assert!(
        churn["title"]
            .as_str()
            .unwrap()
            .contains("Deployment shop/checkout"),
        "{}\ngaps: {:#}\nrequests: {:?}\n{logs}",
        churn["title"],
        report["gaps"],
        cluster.requests()
    );
    let said: Vec<&str> = churn["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert!(
        said.iter().any(|s| s.contains("Deployment shop/checkout: container checkout has no preStop hook")),
        "{said:#?}"
    );
    let patch = churn["fix"]["durable"]["command"]
        .as_str()
        .unwrap_or_default();
    assert!(
        patch.starts_with("kubectl -n shop patch deployment checkout --type strategic -p "),
        "{churn:#}"
    );
    assert!(
        patch.contains(r#""preStop":{"exec":{"command":["sleep","20"]}}"#),
        "{patch}"
    );
    // No gap about the cluster: every read was allowed and answered.
    assert!(!report.to_string().contains("kubernetes-api"), "{report:#}");
    // The token was accepted (no 401), and the reads were only reads.
    let requests = cluster.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r["status"] == 200 && r["method"] == "GET"),
        "{requests:#?}"
    );
    assert!(!logs.contains("k8s-aws-v1."), "the token was logged");
}

/// The shop namespace as the API server holds it: the checkout Ingress, Service, Deployment
/// (no preStop, the default grace period) and its two pods on the ALB's target IPs.
fn rolling_world(target_group: &str) -> serde_json::Value {
    use serde_json::json;
    let pod = |name: &str, ip: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "shop", "labels": {"app": "checkout"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-5d8f7c9b6d", "uid": "u"}]},
               "spec": {"nodeName": "ip-10-0-21-17.eu-west-1.compute.internal", "containers": [{"name": "checkout"}],
                        "readinessGates": [{"conditionType": "target-health.elbv2.k8s.aws/k8s-shop-checkout"}]},
               "status": {"phase": "Running", "podIP": ip,
                          "conditions": [{"type": "Ready", "status": "True"}],
                          "containerStatuses": [{"name": "checkout", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                                                 "state": {"running": {}}}]}})
    };
    json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "shop", "labels": {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "checkout", "namespace": "shop"},
         "spec": {"ingressClassName": "alb",
                  "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                 "backend": {"service": {"name": "checkout", "port": {"number": 8080}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "checkout", "namespace": "shop"},
         "spec": {"selector": {"app": "checkout"}, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "checkout", "namespace": "shop"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "checkout"}},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "template": {"metadata": {"labels": {"app": "checkout"}},
                               "spec": {"containers": [{"name": "checkout", "ports": [{"name": "http", "containerPort": 8080}]}]}}},
         "status": {"readyReplicas": 2}},
        pod("checkout-5d8f7c9b6d-x7k2p", PODS[0]),
        pod("checkout-5d8f7c9b6d-q9w4r", PODS[1]),
        {"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding",
         "metadata": {"name": "k8s-shop-checkout", "namespace": "shop"},
         "spec": {"targetGroupARN": target_group, "targetType": "ip", "serviceRef": {"name": "checkout", "port": 8080}}},
    ]})
}

/// Issue 26: the built binary on an NLB alarm (`AWS/NetworkELB`, `TCP_Target_Reset_Count`),
/// through the real runtime loop against moto: a report, not a refusal, naming the stale pod
/// IP behind the NLB, published to the report topic as a Network Load Balancer's.
#[tokio::test]
async fn the_binary_diagnoses_an_nlb_alarm() {
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
    let (topic, queue) = report_topic(&aws).await;
    let event = nlb_event("TCP_Target_Reset_Count", &id, now());
    let invocation = invoke(
        env!("CARGO_BIN_EXE_diagnose"),
        "123456789012",
        &moto,
        &[("REPORT_TOPIC_ARN", topic)],
        event,
    );
    let logs = invocation.logs.clone();
    let body = invocation
        .response
        .unwrap_or_else(|e| panic!("invocation error: {e}\n{logs}"));
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    let record = &summary["records"][0];
    assert_eq!(record["verdict"], "cause-found", "{summary:#}\n{logs}");
    assert!(
        record["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "stale-targets"),
        "{summary:#}"
    );
    let published = published_report(&aws, &queue).await;
    assert_eq!(
        published["load_balancer"]["kind"], "network",
        "{published:#}"
    );
}

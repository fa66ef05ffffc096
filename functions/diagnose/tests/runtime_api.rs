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

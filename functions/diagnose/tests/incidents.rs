//! Incidents and storms, end to end: the built `diagnose` binary through the Lambda Runtime
//! API, moto for AWS (the ledger in its DynamoDB), every message read back from queues
//! subscribed to the report and chat topics. What on-call receives during a flapping alarm, a
//! changed cause, a storm across a VPC, concurrent invocations and a ledger outage.

#[path = "../../../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use support::moto::{use_moto, Moto};
use support::runtime_api::invoke;
use support::*;

const ACCOUNT: &str = "123456789012";
const TABLE: &str = "elbmedic-ledger";

/// The ledger table, as `elbmedic ledger create` makes it.
async fn ledger_table(aws: &Aws) {
    let client = aws_sdk_dynamodb::Client::new(&aws.config);
    elbmedic_aws::ledger::Ledger::new(client, TABLE)
        .create_table()
        .await
        .unwrap();
}

/// The report topic and the chat topic, each with a queue subscribed: (env, reports, chats).
async fn topics(aws: &Aws, table: &str) -> (Vec<(&'static str, String)>, String, String) {
    let (topic, reports) = report_topic(aws).await;
    let (chat_topic, chats) = subscribed_topic(aws, "elbmedic-chat", "chat-messages").await;
    let env = vec![
        ("REPORT_TOPIC_ARN", topic),
        ("CHAT_TOPIC_ARN", chat_topic),
        ("LEDGER_TABLE", table.to_string()),
    ];
    (env, reports, chats)
}

/// One deployment on moto: the ALB of the scenarios in its network, and the function's
/// topics (with their queues) and ledger `table` (created when it is [`TABLE`]).
struct Deployment {
    moto: Moto,
    aws: Aws,
    net: Network,
    id: String,
    env: Vec<(&'static str, String)>,
    reports: String,
    chats: String,
}

async fn deployment(table: &str) -> Deployment {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    if table == TABLE {
        ledger_table(&aws).await;
    }
    let net = network(&aws, &[8080]).await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    let (env, reports, chats) = topics(&aws, table).await;
    Deployment {
        moto,
        aws,
        net,
        id,
        env,
        reports,
        chats,
    }
}

/// One invocation of the binary with `event`; its answer.
fn diagnose(moto: &Moto, env: &[(&str, String)], event: String) -> Value {
    try_diagnose(moto, env, event).unwrap_or_else(|e| panic!("invocation error: {e}"))
}

/// One invocation; its answer, or the error it reported (with its logs).
fn try_diagnose(moto: &Moto, env: &[(&str, String)], event: String) -> Result<Value, String> {
    let invocation = invoke(env!("CARGO_BIN_EXE_diagnose"), ACCOUNT, moto, env, event);
    let logs = invocation.logs.clone();
    assert!(!logs.contains("panicked"), "{logs}");
    match invocation.response {
        Ok(body) => Ok(serde_json::from_str(&body).unwrap()),
        Err(error) => Err(format!("{error}\n{logs}")),
    }
}

/// `event` (an alarm's SNS event) with the alarm in `state` and named `name`.
fn alarm_as(event: &str, state: &str, name: Option<&str>) -> String {
    let mut event: Value = serde_json::from_str(event).unwrap();
    let sns = &mut event["Records"][0]["Sns"];
    let mut message: Value = serde_json::from_str(sns["Message"].as_str().unwrap()).unwrap();
    message["NewStateValue"] = state.into();
    message["OldStateValue"] = if state == "OK" { "ALARM" } else { "OK" }.into();
    if let Some(name) = name {
        message["AlarmName"] = name.into();
        message["AlarmArn"] = format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}").into();
    }
    sns["Message"] = message.to_string().into();
    event.to_string()
}

/// Every SNS notification waiting on `queue`.
async fn drain(aws: &Aws, queue: &str) -> Vec<Value> {
    let mut all = Vec::new();
    while let Some(body) = next_message(aws, queue, 1).await {
        all.push(serde_json::from_str(&body).unwrap());
    }
    all
}

fn report_of(envelope: &Value) -> Value {
    serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap()
}

fn thread_of(chat: &Value) -> String {
    let message: Value = serde_json::from_str(chat["Message"].as_str().unwrap()).unwrap();
    message["metadata"]["threadId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The ALB idle-timeout world's metrics in the minutes before `at`: 504s with a target
/// response time near the 60 s timeout.
async fn idle_504s_before(aws: &Aws, id: &str, at: i64) {
    alb_metrics(
        aws,
        id,
        at,
        &[0.0, 4.0, 9.0],
        &[8.1, 57.9, 59.4],
        &[0.0; 3],
        &[0.0, 4.0, 9.0],
    )
    .await;
}

/// A 504 alarm that flaps for 20 minutes: ALARM, OK, ALARM, ... five ALARMs. On-call gets one
/// full report, the recovery once, and four short updates, all in one email thread (the
/// updates reply to the first subject) and one chat thread; the plan is not proposed again.
#[tokio::test]
async fn a_flapping_alarm_is_one_full_report_four_updates_and_one_recovery_in_one_thread() {
    let Deployment {
        moto,
        aws,
        id,
        env,
        reports,
        chats,
        ..
    } = deployment(TABLE).await;
    let start = now() - 20 * 60;
    for n in 0..5 {
        let at = start + n * 300;
        idle_504s_before(&aws, &id, at).await;
        let event = alb_event("HTTPCode_ELB_504_Count", &id, at);
        diagnose(&moto, &env, event.clone());
        if n < 4 {
            let ok = alb_event("HTTPCode_ELB_504_Count", &id, at + 120);
            diagnose(&moto, &env, alarm_as(&ok, "OK", None));
        }
    }
    let published = drain(&aws, &reports).await;
    let decisions: Vec<String> = published
        .iter()
        .map(|e| {
            report_of(e)["incident"]["decision"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect();
    assert_eq!(
        decisions,
        [
            "opened",
            "recovered",
            "update",
            "update",
            "update",
            "update"
        ],
        "{published:#?}"
    );
    let first_subject = published[0]["Subject"].as_str().unwrap();
    assert!(first_subject.contains("CAUSE FOUND"), "{first_subject}");
    for later in &published[1..] {
        let subject = later["Subject"].as_str().unwrap();
        assert!(
            subject.starts_with("Re: ")
                && first_subject.starts_with(&subject[4..subject.len().min(90)]),
            "{subject}"
        );
    }
    let last = report_of(&published[5]);
    let line = last["incident"]["line"].as_str().unwrap();
    assert!(
        line.starts_with("ALARM again (5th time in 20 min)"),
        "{line}"
    );
    assert!(line.contains("same cause: "), "{line}");
    // The JSON copy still carries the full report.
    assert_eq!(
        last["findings"][0]["code"], "idle-timeout-exceeded",
        "{last:#}"
    );
    let chat = drain(&aws, &chats).await;
    assert_eq!(chat.len(), 6);
    let threads: std::collections::BTreeSet<String> = chat.iter().map(thread_of).collect();
    assert_eq!(threads.len(), 1, "one chat thread: {threads:?}");
    let update: Value = serde_json::from_str(chat[5]["Message"].as_str().unwrap()).unwrap();
    assert!(
        update["content"]["title"]
            .as_str()
            .unwrap()
            .starts_with(":repeat: ALARM again (5th time"),
        "{update:#}"
    );
}

/// Mid-incident the node subnets' NACL starts dropping replies: the next ALARM is a full
/// report again, and it says what changed.
#[tokio::test]
async fn a_cause_that_changes_mid_incident_gets_a_full_report_naming_the_change() {
    let Deployment {
        moto,
        aws,
        net,
        id,
        env,
        reports,
        ..
    } = deployment(TABLE).await;
    let first = now() - 600;
    idle_504s_before(&aws, &id, first).await;
    diagnose(&moto, &env, alb_event("HTTPCode_ELB_504_Count", &id, first));
    deny_low_ephemeral_egress(&aws, &net).await;
    let errors = [0.0, 31.0, 40.0];
    let second = now();
    alb_metrics(
        &aws,
        &id,
        second,
        &errors,
        &[0.4, 0.5, 0.4],
        &errors,
        &errors,
    )
    .await;
    diagnose(
        &moto,
        &env,
        alb_event("HTTPCode_ELB_504_Count", &id, second),
    );
    let published = drain(&aws, &reports).await;
    assert_eq!(published.len(), 2);
    let changed = report_of(&published[1]);
    assert_eq!(changed["incident"]["decision"], "changed", "{changed:#}");
    let changes = changed["incident"]["changes"].to_string();
    assert!(
        changes.contains("new cause: nacl-blocks-ephemeral-ports on "),
        "{changes}"
    );
    assert!(changes.contains(&net.private_acl), "{changes}");
    assert!(
        !published[1]["Subject"]
            .as_str()
            .unwrap()
            .starts_with("Re: "),
        "a full report keeps its own subject"
    );
}

/// Two alarms of the same load balancer at once (its 504s and its connection errors), each a
/// process of its own: they agree on one incident, one full report and one update, in one
/// chat thread.
#[tokio::test]
async fn concurrent_invocations_agree_on_one_incident() {
    let Deployment {
        moto,
        aws,
        id,
        env,
        reports,
        chats,
        ..
    } = deployment(TABLE).await;
    let at = now();
    idle_504s_before(&aws, &id, at).await;
    let events = [
        alb_event("HTTPCode_ELB_504_Count", &id, at),
        alarm_as(
            &alb_event("HTTPCode_ELB_504_Count", &id, at),
            "ALARM",
            Some("checkout-5xx"),
        ),
        // The very same notification twice (SNS delivers at least once).
        alb_event("HTTPCode_ELB_504_Count", &id, at),
    ];
    let answers: Vec<Result<Value, String>> = std::thread::scope(|scope| {
        let running: Vec<_> = events
            .iter()
            .map(|event| {
                let (moto, env) = (&moto, &env);
                scope.spawn(move || try_diagnose(moto, env, event.clone()))
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    // The duplicate finds the first copy sent (and succeeds), or still being sent: then it
    // fails, so that Lambda retries it, and the retry finds it sent.
    for answer in &answers {
        if let Err(error) = answer {
            assert!(
                error.contains("another invocation claimed this alarm's message"),
                "{error}"
            );
        }
    }
    assert!(
        answers.iter().filter(|a| a.is_ok()).count() >= 2,
        "{answers:#?}"
    );
    let published = drain(&aws, &reports).await;
    let mut decisions: Vec<String> = published
        .iter()
        .map(|e| {
            report_of(e)["incident"]["decision"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect();
    decisions.sort();
    assert_eq!(decisions, ["opened", "update"], "{published:#?}");
    let threads: std::collections::BTreeSet<String> =
        drain(&aws, &chats).await.iter().map(thread_of).collect();
    assert_eq!(threads.len(), 1);
}

/// The ledger is out (its table does not exist): every alarm gets its full report, which says
/// why it is not an update.
#[tokio::test]
async fn a_ledger_outage_gives_full_reports_that_say_so() {
    let Deployment {
        moto,
        aws,
        id,
        env,
        reports,
        ..
    } = deployment("no-such-table").await;
    for at in [now() - 300, now()] {
        idle_504s_before(&aws, &id, at).await;
        diagnose(&moto, &env, alb_event("HTTPCode_ELB_504_Count", &id, at));
    }
    let published = drain(&aws, &reports).await;
    assert_eq!(published.len(), 2);
    for envelope in &published {
        let report = report_of(envelope);
        assert!(report.get("incident").is_none());
        assert_eq!(report["findings"][0]["code"], "idle-timeout-exceeded");
        assert!(
            report["next_steps"].to_string().contains(
                "could not keep this alarm's incident in its ledger (ResourceNotFoundException"
            ),
            "{report:#}"
        );
    }
}

/// An SQS record of the alarm queue, as Lambda delivers it, whose body is what SNS sends to a
/// queue (`raw` false) or the alarm itself (raw delivery).
fn queued_alarm(id: &str, queue_arn: &str, event: &str, raw: bool) -> Value {
    let event: Value = serde_json::from_str(event).unwrap();
    let sns = &event["Records"][0]["Sns"];
    let body = match raw {
        true => sns["Message"].as_str().unwrap().to_string(),
        false => json!({
            "Type": "Notification", "MessageId": id, "TopicArn": sns["TopicArn"],
            "Subject": "ALARM", "Message": sns["Message"], "Timestamp": "2026-12-06T03:14:07.281Z",
            "SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/x.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        })
        .to_string(),
    };
    json!({
        "messageId": id, "receiptHandle": "AQEB", "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    })
}

/// Twelve ALBs behind one node-subnet NACL that drops their replies alarm within a minute,
/// through the alarm queue in two batches (SNS envelopes and raw messages). Past the storm
/// threshold (3), one storm summary names the NACL in place of the other reports; a record
/// that is not an alarm fails alone.
#[tokio::test]
async fn twelve_load_balancers_behind_one_nacl_are_one_storm_summary() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    ledger_table(&aws).await;
    let net = network(&aws, &[8080]).await;
    deny_low_ephemeral_egress(&aws, &net).await;
    let at = now();
    let errors = [0.0, 31.0, 40.0];
    let mut ids = Vec::new();
    for n in 0..12 {
        let pods = [format!("10.0.18.{}", 50 + n), format!("10.0.37.{}", 50 + n)];
        let pods: Vec<&str> = pods.iter().map(String::as_str).collect();
        let id = alb(
            &aws,
            &net,
            &format!("k8s-shop-svc{n:02}-6f1e2d3c4b"),
            &pods,
            &[],
        )
        .await;
        alb_metrics(&aws, &id, at, &errors, &[0.4, 0.5, 0.4], &errors, &errors).await;
        ids.push(id);
    }
    let (mut env, reports, chats) = topics(&aws, TABLE).await;
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:elbmedic-alarms");
    env.push(("ALARM_QUEUE_ARN", queue_arn.clone()));
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let event = alarm_as(
                &alb_event("HTTPCode_ELB_504_Count", id, at),
                "ALARM",
                Some(&format!("svc{n:02}-504")),
            );
            queued_alarm(&format!("m{n:02}"), &queue_arn, &event, n % 2 == 1)
        })
        .collect();
    let first = diagnose(&moto, &env, json!({"Records": records[..10]}).to_string());
    assert_eq!(first, json!({"batchItemFailures": []}));
    let mut second: Vec<Value> = records[10..].to_vec();
    second.push(json!({
        "messageId": "bad", "receiptHandle": "AQEB", "body": "{\"Type\":\"Notification\",\"Message\":\"not json\"}",
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    }));
    let answer = diagnose(&moto, &env, json!({"Records": second}).to_string());
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "bad"}]})
    );

    let published = drain(&aws, &reports).await;
    assert_eq!(
        published.len(),
        4,
        "3 full reports, then the storm summary: {published:#?}"
    );
    for full in &published[..3] {
        assert_eq!(
            report_of(full)["findings"][0]["code"],
            "nacl-blocks-ephemeral-ports"
        );
    }
    let storm = &published[3];
    let subject = storm["Subject"].as_str().unwrap();
    assert!(
        subject.contains("STORM: 4 load balancers in ") && subject.contains(&net.vpc),
        "{subject}"
    );
    let summary = report_of(storm);
    assert_eq!(summary["kind"], "elbmedic-storm");
    assert!(
        summary["shared"][0]["resources"]
            .as_array()
            .unwrap()
            .contains(&json!(net.private_acl)),
        "{summary:#}"
    );
    assert_eq!(
        summary["shared"][0]["load_balancers"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        drain(&aws, &chats).await.len(),
        4,
        "the chat too: 3 reports and the storm"
    );
}

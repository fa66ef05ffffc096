//! Reports where on-call looks, end to end on a real moto server: `diagnose` stores the HTML
//! report in the report bucket, links it from the on-call report, and publishes the chat
//! message as a plain body, which an SQS subscriber with raw message delivery receives as the
//! custom-notification JSON itself. In approve mode the chat message carries the plan id, and
//! `remediate` applies the plan `diagnose` kept in the ledger when it gets `approve:PLAN_ID`.

mod flows;
#[path = "../../../tests/support/mod.rs"]
mod support;

use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::ledger::Ledger;
use flows::*;
use serde_json::Value;
use support::moto::{use_moto, Moto};
use support::*;

const BUCKET: &str = "elbmedic-reports-123456789012";
const LEDGER: &str = "elbmedic-ledger";

/// The chat topic, with a queue subscribed with raw message delivery, as a test stands in
/// for Amazon Q Developer: (topic ARN, queue URL).
async fn chat_topic(aws: &Aws) -> (String, String) {
    let (topic, queue) = subscribed_topic(aws, "elbmedic-chat", "chat").await;
    let subscriptions = aws
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    let subscription = subscriptions.subscriptions()[0]
        .subscription_arn()
        .unwrap()
        .to_string();
    aws.sns
        .set_subscription_attributes()
        .subscription_arn(subscription)
        .attribute_name("RawMessageDelivery")
        .attribute_value("true")
        .send()
        .await
        .unwrap();
    (topic, queue)
}

async fn chat_message(aws: &Aws, queue: &str) -> Value {
    for _ in 0..20 {
        if let Some(body) = next_message(aws, queue, 1).await {
            return serde_json::from_str(&body).expect("the raw body is the notification's JSON");
        }
    }
    panic!("no chat message arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_reaches_chat_and_its_page_the_bucket() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (chat, chat_queue) = chat_topic(&aws).await;
    create_bucket(&aws, BUCKET).await;
    let (_net, event) = nacl_scenario(&aws).await;
    let diagnose = diagnose_handler(
        &t,
        &[
            ("REMEDIATION_MODE", "off"),
            ("CHAT_TOPIC_ARN", chat.as_str()),
            ("REPORT_BUCKET", BUCKET),
        ],
    );
    let payload: Value = serde_json::from_str(&event).unwrap();
    let summary = diagnose
        .handle(&payload, Some(ACCOUNT), now())
        .await
        .unwrap();
    policy::assert_granted("DiagnoseRole", &diagnose.accounts.actions().await);
    let record = &summary["records"][0];
    let key = record["page_key"]
        .as_str()
        .expect("the page was stored")
        .to_string();
    assert!(record["chat_message_id"].is_string(), "{summary:#}");

    // The page: the HTML report, as S3 keeps it.
    let page = aws
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(page.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(
        page.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
    let html = String::from_utf8(page.body.collect().await.unwrap().to_vec()).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..200.min(html.len())]
    );
    assert!(html.contains("default-src 'none'"));
    assert!(
        html.contains("<g class=\"hop drop\""),
        "the page shows where the packet dies"
    );

    // The on-call report links the page in the S3 console, never publicly.
    let report = published_report(&aws, &t.reports_queue).await;
    let url = report["full_report_url"]
        .as_str()
        .expect("the report links its page");
    assert!(
        url.starts_with("https://console.aws.amazon.com/s3/object/"),
        "{url}"
    );
    assert!(url.contains(&key.replace('/', "%2F")), "{url} names {key}");

    // The chat message: the custom notification itself (raw delivery), linking the page.
    let message = chat_message(&aws, &chat_queue).await;
    assert_eq!(message["version"], "1.0");
    assert_eq!(message["source"], "custom");
    assert_eq!(message["content"]["textType"], "client-markdown");
    let description = message["content"]["description"].as_str().unwrap();
    assert!(description.contains(url), "{description}");
    assert!(
        message["metadata"]["threadId"]
            .as_str()
            .unwrap()
            .starts_with("elbmedic-"),
        "{message:#}"
    );
    assert!(message["content"]["title"]
        .as_str()
        .unwrap()
        .contains("CAUSE FOUND"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_by_id_applies_the_plan_kept_in_the_ledger() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (chat, chat_queue) = chat_topic(&aws).await;
    let clients = Clients::load(REGION, CallLimits::default()).await;
    Ledger::new(clients.dynamodb.clone(), LEDGER)
        .create_table()
        .await
        .unwrap();
    let (net, event) = nacl_scenario(&aws).await;
    let diagnose = diagnose_handler(
        &t,
        &[
            ("REMEDIATION_MODE", "approve"),
            ("LEDGER_TABLE", LEDGER),
            ("CHAT_TOPIC_ARN", chat.as_str()),
        ],
    );
    let payload: Value = serde_json::from_str(&event).unwrap();
    diagnose
        .handle(&payload, Some(ACCOUNT), now())
        .await
        .unwrap();
    policy::assert_granted("DiagnoseRole", &diagnose.accounts.actions().await);
    let message = chat_message(&aws, &chat_queue).await;
    assert_eq!(
        message["metadata"]["eventType"],
        "elbmedic-plan-awaiting-approval"
    );
    let context = &message["metadata"]["additionalContext"];
    let plan_id = context["planId"]
        .as_str()
        .expect("the plan id travels")
        .to_string();
    assert_eq!(context["approvalTopic"], t.plans.as_str(), "{message:#}");

    let remediate = remediate_handler(
        &t.reports,
        &[("REMEDIATION_MODE", "approve"), ("LEDGER_TABLE", LEDGER)],
    );
    // An id nobody proposed is refused, and nothing changes.
    let forged = run_plan(&remediate, "approve:plan-0000000000000000", "forged").await;
    let error = forged["records"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no such plan awaits approval"), "{forged:#}");
    let before = egress_entries(&aws, &net.private_acl).await.len();

    let summary = run_plan(&remediate, &format!("approve:{plan_id}"), "chat").await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    assert_eq!(summary["records"][0]["plan"], plan_id.as_str());
    assert!(egress_entries(&aws, &net.private_acl).await.len() > before);
}

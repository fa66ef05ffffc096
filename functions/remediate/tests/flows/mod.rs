//! The flows the remediation tests share: topics, handlers configured as the template
//! configures the functions, and the scenarios that need a fix. Each test crate uses a part.

#![allow(dead_code)]

pub mod policy;

use elbmedic_aws::settings::{Config, Role};
use serde_json::{json, Value};

use crate::support::*;

/// The account of the alarms `alarm_event` builds, and of the functions.
pub const ACCOUNT: &str = "123456789012";

/// The `diagnose` binary, built next to `remediate` by the workspace's test build.
pub fn diagnose_binary() -> String {
    let remediate = std::path::Path::new(env!("CARGO_BIN_EXE_remediate"));
    let diagnose = remediate.with_file_name("diagnose");
    assert!(
        diagnose.exists(),
        "{} is missing: build it with `cargo build -p elbmedic-diagnose` (scripts/test.sh does)",
        diagnose.display()
    );
    diagnose.display().to_string()
}

/// An SNS event from `topic` carrying `message`, as Lambda delivers it.
pub fn sns_event(topic: &str, message: &str) -> String {
    json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "TopicArn": topic, "Message": message}}]})
        .to_string()
}

/// Runs one plan through `handler` as an SNS record; the invocation's summary.
pub async fn run_plan(handler: &elbmedic_remediate::Handler, plan: &str, run: &str) -> Value {
    let topic = handler.remediation_topic().unwrap_or_default();
    let payload: Value = serde_json::from_str(&sns_event(topic, plan)).unwrap();
    let summary = handler
        .handle(&payload, now(), run)
        .await
        .expect("no failed invocation");
    policy::assert_granted("RemediateRole", &handler.accounts.actions().await);
    summary
}

pub struct Topics {
    pub reports: String,
    pub reports_queue: String,
    pub plans: String,
    pub plans_queue: String,
}

pub async fn topics(aws: &Aws) -> Topics {
    let (reports, reports_queue) = report_topic(aws).await;
    let (plans, plans_queue) = subscribed_topic(aws, "elbmedic-plans", "plans").await;
    Topics {
        reports,
        reports_queue,
        plans,
        plans_queue,
    }
}

pub fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The last pair of a name wins, so a test's pairs override a handler's defaults.
    move |key| {
        owned
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

pub fn remediate_handler(
    report_topic: &str,
    pairs: &[(&str, &str)],
) -> elbmedic_remediate::Handler {
    // remediate takes plans only from its remediation topic: the one `topics` creates.
    let plans = plans_topic_beside(report_topic);
    let mut all = vec![
        ("REPORT_TOPIC_ARN", report_topic),
        ("REMEDIATION_TOPIC_ARN", plans.as_str()),
    ];
    all.extend_from_slice(pairs);
    elbmedic_remediate::Handler::new(Config::from_env(Role::Remediate, env(&all)).unwrap())
}

/// The `elbmedic-plans` topic of `topics`, in the report topic's region and account.
pub fn plans_topic_beside(report_topic: &str) -> String {
    let prefix = report_topic.rsplit_once(':').map_or("", |(p, _)| p);
    format!("{prefix}:elbmedic-plans")
}

/// `diagnose` in-process, in auto and publishing plans to `t.plans`, with `pairs` on top.
pub fn diagnose_handler(t: &Topics, pairs: &[(&str, &str)]) -> elbmedic_diagnose::Handler {
    let mut all = vec![
        ("REPORT_TOPIC_ARN", t.reports.as_str()),
        ("REMEDIATION_MODE", "auto"),
        ("REMEDIATION_TOPIC_ARN", t.plans.as_str()),
    ];
    all.extend_from_slice(pairs);
    elbmedic_diagnose::Handler::new(Config::from_env(Role::Diagnose, env(&all)).unwrap())
}

/// Runs `event` through `handler` and returns the plan it published.
pub async fn planned_by(
    handler: &elbmedic_diagnose::Handler,
    aws: &Aws,
    t: &Topics,
    event: &str,
) -> String {
    let payload: Value = serde_json::from_str(event).unwrap();
    handler
        .handle(&payload, Some(ACCOUNT), now())
        .await
        .unwrap();
    policy::assert_granted("DiagnoseRole", &handler.accounts.actions().await);
    let _diagnosis = published_report(aws, &t.reports_queue).await;
    published_report(aws, &t.plans_queue).await.to_string()
}

/// Runs `diagnose` in-process in auto and returns the plan it published.
pub async fn planned(aws: &Aws, t: &Topics, event: &str, pairs: &[(&str, &str)]) -> String {
    planned_by(&diagnose_handler(t, pairs), aws, t, event).await
}

/// The ALB behind the node NACL that drops replies on 1024-32767, alarmed on 504s.
pub async fn nacl_scenario(aws: &Aws) -> (Network, String) {
    let (net, id, now) = ephemeral_replies_denied(aws).await;
    (net, alb_event("HTTPCode_ELB_504_Count", &id, now))
}

pub async fn idle_scenario(aws: &Aws) -> (Network, String) {
    let net = network(aws, &[8080]).await;
    let id = alb(aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    let errors = [0.0, 4.0, 9.0];
    alb_metrics(
        aws,
        &id,
        now,
        &errors,
        &[8.1, 57.9, 59.4],
        &[0.0; 3],
        &errors,
    )
    .await;
    (net, alb_event("HTTPCode_ELB_504_Count", &id, now))
}

/// The NLB of Service shop/mqtt whose devices idle past its TCP listener's 350 s: the NLB
/// resets their flows itself (TCP_ELB_Reset_Count), alarmed on those resets.
pub async fn nlb_idle_scenario(aws: &Aws) -> (Network, String) {
    let net = network(aws, &[8080]).await;
    let id = nlb(aws, &net, NLB, &PODS, &[]).await;
    let now = now();
    nlb_idle_resets(aws, &id, now).await;
    (net, nlb_event("TCP_ELB_Reset_Count", &id, now))
}

//! The chat message of every scenario validates against the documented schema of custom
//! notifications (docs/schemas/chat-notification.schema.json) and stays within SNS's limit;
//! text from alarms and AWS neither pings nor links; one alarm episode is one thread.

use elbmedic_engine::alarm::{parse_input, Intake};
use elbmedic_engine::report::chat::{render_chat, thread_id, ChatContext, MAX_SNS_MESSAGE_BYTES};
use elbmedic_engine::report::Report;
use elbmedic_engine::scenarios::SCENARIOS;
use serde_json::Value;

const SCHEMA: &str = include_str!("../../../docs/schemas/chat-notification.schema.json");

/// The subset of JSON Schema the schema file uses; any other keyword fails the test, so the
/// validator cannot silently ignore a rule added to the file.
fn validate(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    let Value::Object(rules) = schema else {
        return Err(format!("{path}: schema is not an object"));
    };
    for (keyword, rule) in rules {
        match keyword.as_str() {
            "$schema" | "title" | "description" => {}
            "const" if value != rule => return Err(format!("{path}: {value} is not {rule}")),
            "const" => {}
            "type" => {
                let ok = match rule.as_str() {
                    Some("object") => value.is_object(),
                    Some("array") => value.is_array(),
                    Some("string") => value.is_string(),
                    other => return Err(format!("{path}: unknown type {other:?}")),
                };
                if !ok {
                    return Err(format!("{path}: {value} is not of type {rule}"));
                }
            }
            "required" => {
                for key in rule.as_array().into_iter().flatten() {
                    let key = key.as_str().unwrap_or_default();
                    if value.get(key).is_none() {
                        return Err(format!("{path}: {key} is required"));
                    }
                }
            }
            "properties" => {
                for (key, sub) in rule.as_object().into_iter().flatten() {
                    if let Some(v) = value.get(key) {
                        validate(v, sub, &format!("{path}.{key}"))?;
                    }
                }
            }
            "additionalProperties" => {
                let known = rules.get("properties").and_then(Value::as_object);
                for (key, v) in value.as_object().into_iter().flatten() {
                    if known.is_some_and(|k| k.contains_key(key)) {
                        continue;
                    }
                    match rule {
                        Value::Bool(false) => {
                            return Err(format!("{path}: {key} is not in the schema"))
                        }
                        Value::Object(_) => validate(v, rule, &format!("{path}.{key}"))?,
                        _ => {}
                    }
                }
            }
            "items" => {
                for (index, item) in value.as_array().into_iter().flatten().enumerate() {
                    validate(item, rule, &format!("{path}[{index}]"))?;
                }
            }
            other => return Err(format!("{path}: the validator does not know {other:?}")),
        }
    }
    Ok(())
}

fn scenario_reports() -> Vec<(&'static str, Report)> {
    SCENARIOS
        .iter()
        .map(|s| {
            let (alarm, lb) = s.alarm().unwrap();
            let mut report = Report::diagnosed(&alarm, &lb, &s.world().unwrap());
            report.full_report_url = Some(LINK.into());
            (s.name, report)
        })
        .collect()
}

fn context() -> ChatContext<'static> {
    ChatContext {
        id: "req-1#1",
        episode_began: None,
    }
}

const LINK: &str = "https://console.aws.amazon.com/s3/object/reports-bucket?region=eu-west-1&prefix=reports%2Fx.html";

#[test]
fn every_scenario_validates_against_the_documented_schema() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let mut largest = 0;
    for (name, report) in scenario_reports() {
        let text = render_chat(&report, &context());
        largest = largest.max(text.len());
        let message: Value = serde_json::from_str(&text).unwrap();
        validate(&message, &schema, "$").unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert!(
            message["content"]["title"]
                .as_str()
                .unwrap()
                .contains(report.headline().0),
            "{name}: the title names the verdict"
        );
        assert!(
            message["content"]["description"]
                .as_str()
                .unwrap()
                .contains("s3/object/reports-bucket"),
            "{name}: the description links the full report"
        );
    }
    assert!(largest <= MAX_SNS_MESSAGE_BYTES, "{largest} bytes");
}

#[test]
fn the_validator_refuses_an_off_schema_message() {
    // Guards the test above: the validator must be able to say no.
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    for bad in [
        r#"{"version":"1.0","source":"custom"}"#,
        r#"{"version":"2.0","source":"custom","content":{"description":"x"}}"#,
        r#"{"version":"1.0","source":"custom","content":{"description":"x","markdown":true}}"#,
        r#"{"version":"1.0","source":"custom","content":{"description":"x"},"metadata":{"additionalContext":{"n":1}}}"#,
    ] {
        let value: Value = serde_json::from_str(bad).unwrap();
        assert!(validate(&value, &schema, "$").is_err(), "accepted {bad}");
    }
}

#[test]
fn a_huge_report_is_cut_to_the_sns_limit_and_says_so() {
    let (_, mut report) = scenario_reports()
        .into_iter()
        .find(|(name, _)| *name == "nacl-ephemeral-node-subnets")
        .unwrap();
    let finding = report.findings[0].clone();
    for index in 0..400 {
        let mut more = finding.clone();
        more.title = format!("{} {index} {}", finding.title, "x".repeat(1000));
        report.findings.push(more);
    }
    let text = render_chat(&report, &context());
    assert!(text.len() <= MAX_SNS_MESSAGE_BYTES, "{} bytes", text.len());
    let message: Value = serde_json::from_str(&text).unwrap();
    let description = message["content"]["description"].as_str().unwrap();
    assert!(
        description.contains("more in the full report"),
        "{description}"
    );
}

#[test]
fn alarm_text_neither_pings_nor_links() {
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.name == "alb-idle-timeout")
        .unwrap();
    let mut event: Value = serde_json::from_str(scenario.event).unwrap();
    let hostile =
        "<!channel> <!here> @channel <https://evil.example|click> [fix](https://evil.example) `x`";
    // The alarm's name reaches the title, the summary and the description; the reason too.
    let envelope = event["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap()
        .to_string();
    let mut message: Value = serde_json::from_str(&envelope).unwrap();
    message["NewStateReason"] = Value::String(hostile.into());
    let name = message["AlarmName"].as_str().unwrap().to_string();
    message["AlarmName"] = Value::String(format!("{name} {hostile}"));
    event["Records"][0]["Sns"]["Message"] = Value::String(message.to_string());
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = parse_input(event.to_string().as_bytes())
        .unwrap()
        .remove(0)
        .unwrap()
    else {
        panic!("the hostile alarm is still one to diagnose");
    };
    let report = Report::diagnosed(&alarm, &load_balancer, &scenario.world().unwrap());
    let text = render_chat(&report, &context());
    let chat: Value = serde_json::from_str(&text).unwrap();
    let mut strings = Vec::new();
    collect_strings(&chat, &mut strings);
    assert!(
        strings.iter().any(|s| s.contains("channel")),
        "the hostile name is shown"
    );
    for s in &strings {
        for raw in [
            "<!",
            "<http",
            "@channel",
            "@here",
            "](https://evil",
            "https://evil",
        ] {
            assert!(!s.contains(raw), "{raw:?} in {s:?}");
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[test]
fn one_alarm_episode_is_one_thread() {
    let (_, report) = scenario_reports()
        .into_iter()
        .find(|(name, _)| *name == "alb-idle-timeout")
        .unwrap();
    let began = report
        .alarm
        .state_change_time
        .clone()
        .expect("the ALARM's time");
    let first = thread_id(&report, None);
    // Its recovery: the OK message knows the ALARM's time from the alarm's history.
    let mut recovered = report.clone();
    recovered.alarm.state = "OK".into();
    recovered.alarm.state_change_time = Some("2099-01-01T00:00:00Z".into());
    assert_eq!(thread_id(&recovered, Some(&began)), first);
    // The history writes the same moment another way.
    let at = elbmedic_engine::alarm::parse_timestamp(&began).unwrap();
    let from_history = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_eq!(thread_id(&recovered, Some(&from_history)), first);
    // The next time the alarm fires is another thread.
    let mut next = report.clone();
    next.alarm.state_change_time = Some("2099-01-02T00:00:00Z".into());
    assert_ne!(thread_id(&next, None), first);
    // Another alarm at the same moment too.
    let mut other = report;
    other.alarm.name.push_str("-other");
    assert_ne!(thread_id(&other, None), first);
}

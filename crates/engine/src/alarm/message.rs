//! The CloudWatch alarm message and its SNS envelope as they arrive, modelled tolerantly:
//! every field optional, numbers accepted as numbers or strings, unknown fields ignored.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::IntakeError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawAlarm {
    pub alarm_name: Option<String>,
    pub alarm_description: Option<String>,
    pub alarm_arn: Option<String>,
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: Option<String>,
    pub new_state_value: Option<String>,
    pub new_state_reason: Option<String>,
    pub old_state_value: Option<String>,
    pub state_change_time: Option<String>,
    pub region: Option<String>,
    pub trigger: Option<RawTrigger>,
    /// A composite alarm's rule, e.g. `ALARM("alb-504") OR ALARM("alb-5xx")`.
    pub alarm_rule: Option<String>,
    /// The children whose state change fired a composite alarm.
    #[serde(default, deserialize_with = "lenient_list")]
    pub triggering_children: Vec<RawChild>,
}

/// One entry of a composite alarm's `TriggeringChildren`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawChild {
    pub arn: Option<String>,
    pub state: Option<RawChildState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawChildState {
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawTrigger {
    pub metric_name: Option<String>,
    pub namespace: Option<String>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub dimensions: Vec<RawDimension>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub period: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub evaluation_periods: Option<u32>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub threshold: Option<f64>,
    pub comparison_operator: Option<String>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub metrics: Vec<RawMetricDataQuery>,
}

impl RawTrigger {
    /// A metric-math alarm has no top-level period; its metrics carry one each.
    pub fn metric_period(&self) -> Option<u32> {
        self.metrics
            .iter()
            .find_map(|query| query.metric_stat.as_ref().and_then(|stat| stat.period))
    }
}

/// CloudWatch sends dimensions as `{"value": ..., "name": ...}`; the API uses capitals.
#[derive(Debug, Clone, Deserialize)]
pub struct RawDimension {
    #[serde(alias = "Name")]
    pub name: String,
    #[serde(alias = "Value")]
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawMetricDataQuery {
    #[serde(alias = "Id")]
    pub id: Option<String>,
    #[serde(alias = "Expression")]
    pub expression: Option<String>,
    #[serde(alias = "MetricStat")]
    pub metric_stat: Option<RawMetricStat>,
    #[serde(alias = "ReturnData")]
    pub return_data: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawMetricStat {
    #[serde(alias = "Metric")]
    pub metric: RawMetric,
    #[serde(alias = "Period", default, deserialize_with = "lenient_u32")]
    pub period: Option<u32>,
    #[serde(alias = "Stat")]
    pub stat: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawMetric {
    #[serde(alias = "MetricName")]
    pub metric_name: Option<String>,
    #[serde(alias = "Namespace")]
    pub namespace: Option<String>,
    #[serde(alias = "Dimensions", default, deserialize_with = "lenient_list")]
    pub dimensions: Vec<RawDimension>,
}

/// One alarm message with what its envelope says about it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Where this alarm came from, for error messages: `record 2`, `alarm message`.
    pub context: String,
    pub topic_arn: Option<String>,
    pub alarm: RawAlarm,
}

/// Splits the input into alarm messages: every record of an SNS event, or the bare alarm.
pub fn envelopes(value: &Value) -> Result<Vec<Result<Envelope, IntakeError>>, IntakeError> {
    let object = value.as_object().ok_or_else(|| IntakeError::NotAnAlarm {
        context: "input".into(),
        reason: format!(
            "expected a JSON object (an SNS event or an alarm message), found {}",
            kind_of(value)
        ),
    })?;
    if let Some(records) = object.get("Records") {
        let records = records.as_array().ok_or_else(|| IntakeError::NotAnAlarm {
            context: "input".into(),
            reason: "Records is not an array".into(),
        })?;
        if records.is_empty() {
            return Err(IntakeError::NotAnAlarm {
                context: "input".into(),
                reason: "the SNS event has no records".into(),
            });
        }
        return Ok(records
            .iter()
            .enumerate()
            .map(|(index, record)| record_envelope(index + 1, record))
            .collect());
    }
    if object.contains_key("AlarmName") {
        return Ok(vec![alarm_envelope("alarm message".into(), None, value)]);
    }
    // The envelope SNS delivers to SQS and HTTPS subscribers (raw delivery off), and what a
    // notification's JSON shows: the record's `Sns` object on its own.
    if object.get("Type").and_then(Value::as_str) == Some("Notification")
        && object.contains_key("Message")
    {
        return Ok(vec![sns_envelope(1, "SNS notification".into(), value)]);
    }
    Err(IntakeError::NotAnAlarm {
        context: "input".into(),
        reason: "neither an SNS event (no \"Records\") nor a CloudWatch alarm message (no \"AlarmName\")".into(),
    })
}

/// The body of an SQS record from the alarm queue: the envelope SNS sends to queues, or the
/// alarm message itself when raw delivery is on. Nothing else (not an SNS event with Records).
pub fn queued_envelope(number: usize, body: &Value) -> Result<Envelope, IntakeError> {
    let context = format!("record {number}");
    match body {
        Value::Object(object) if object.get("Type").and_then(Value::as_str) == Some("Notification") => {
            sns_envelope(number, context, body)
        }
        Value::Object(object) if object.contains_key("AlarmName") => {
            alarm_envelope(context, None, body)
        }
        other => Err(IntakeError::NotAnAlarm {
            context,
            reason: format!(
                "the queued message is {}: neither the notification SNS sends to a queue ({{\"Type\": \"Notification\", ...}}) nor an alarm message (raw delivery)",
                match other {
                    Value::Object(_) => "an object of another kind",
                    other => kind_of(other),
                }
            ),
        }),
    }
}

fn record_envelope(number: usize, record: &Value) -> Result<Envelope, IntakeError> {
    let context = format!("record {number}");
    let sns = record
        .get("Sns")
        .or_else(|| record.get("sns"))
        .ok_or_else(|| IntakeError::NotAnAlarm {
            context: context.clone(),
            reason: "the record has no \"Sns\" object; is this an SNS-triggered Lambda event?"
                .into(),
        })?;
    sns_envelope(number, context, sns)
}

/// An SNS notification (`TopicArn`, `Message`): a Lambda record's `Sns`, or the envelope SNS
/// sends to queues and HTTPS endpoints.
fn sns_envelope(number: usize, context: String, sns: &Value) -> Result<Envelope, IntakeError> {
    let topic_arn = sns
        .get("TopicArn")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = sns.get("Message").ok_or_else(|| IntakeError::NotAnAlarm {
        context: context.clone(),
        reason: "Sns has no \"Message\"".into(),
    })?;
    match message {
        Value::String(text) => {
            let parsed: Value =
                serde_json::from_str(text).map_err(|e| IntakeError::InvalidMessage {
                    record: number,
                    message: e.to_string(),
                })?;
            alarm_envelope(context, topic_arn, &parsed)
        }
        // Hand-written test events sometimes embed the alarm as an object: accept it.
        Value::Object(_) => alarm_envelope(context, topic_arn, message),
        other => Err(IntakeError::NotAnAlarm {
            context,
            reason: format!("Sns.Message is {}, expected a JSON string", kind_of(other)),
        }),
    }
}

fn alarm_envelope(
    context: String,
    topic_arn: Option<String>,
    value: &Value,
) -> Result<Envelope, IntakeError> {
    if !value.is_object() {
        return Err(IntakeError::NotAnAlarm {
            context,
            reason: format!("the message is {}, expected a JSON object", kind_of(value)),
        });
    }
    let alarm = RawAlarm::deserialize(value).map_err(|e| IntakeError::NotAnAlarm {
        context: context.clone(),
        reason: e.to_string(),
    })?;
    Ok(Envelope {
        context,
        topic_arn,
        alarm,
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Numbers sometimes arrive as strings (`"Period": "60"`); a value that is neither is ignored.
fn lenient_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Ok(lenient_f64(deserializer)?
        .filter(|v| v.is_finite() && *v >= 0.0 && *v <= f64::from(u32::MAX))
        .map(|v| v as u32))
}

/// A list whose entries do not parse (or a `null` list) is read as empty, not as an error.
fn lenient_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

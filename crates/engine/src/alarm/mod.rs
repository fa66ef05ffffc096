//! Alarm intake: from the bytes SNS hands to Lambda (or a bare CloudWatch alarm message) to a
//! decision about what to do with each alarm.
//!
//! Real alarm messages are messier than the SDK types assume (`null` descriptions, no
//! `AlarmArn` in old messages, a region *display name*, upper-case statistics, dimensions in
//! any order), so the message is modelled here with `Option`s everywhere and interpreted in a
//! second step. Not for: fetching anything, or deciding causes.

pub mod composite;
pub mod formats;
mod message;
mod region;

use serde::Serialize;

pub use message::{RawAlarm, RawChild, RawDimension, RawMetricDataQuery, RawTrigger};
pub use region::region_from_display_name;

/// Upper bound on the input we accept: real SNS events are at most a few hundred KiB.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// Why an input cannot be read as an alarm at all (exit code 2 territory). Its text names
/// where (the input, or which record) and then what; [`IntakeError::detail`] is the what
/// alone, for a caller that names the record itself.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeError {
    TooLarge(usize),
    NotUtf8(usize),
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    InvalidMessage {
        record: usize,
        message: String,
    },
    NotAnAlarm {
        context: String,
        reason: String,
    },
    InvalidField {
        context: String,
        field: String,
        value: String,
        expected: String,
    },
    UnknownRegion {
        context: String,
        display: String,
    },
}

impl IntakeError {
    /// Where the error is: `input`, `record N`, a composite's child; `None` for the input as
    /// a whole.
    pub fn context(&self) -> Option<String> {
        match self {
            Self::TooLarge(_) | Self::NotUtf8(_) | Self::InvalidJson { .. } => None,
            Self::InvalidMessage { record, .. } => Some(format!("record {record}")),
            Self::NotAnAlarm { context, .. }
            | Self::InvalidField { context, .. }
            | Self::UnknownRegion { context, .. } => Some(context.clone()),
        }
    }

    /// The error for a caller that names the record itself: without the record's own
    /// context (`record N`, or `input`), with any finer one (`alarm message`, a composite's
    /// child) kept.
    pub fn within_record(&self) -> String {
        let own = |context: &str| {
            context == "input"
                || context
                    .strip_prefix("record ")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        match self.context() {
            Some(context) if !own(&context) => format!("{context}: {}", self.detail()),
            _ => self.detail(),
        }
    }

    /// What is wrong, without where.
    pub fn detail(&self) -> String {
        match self {
            Self::TooLarge(size) => format!("input is {size} bytes, more than the {MAX_INPUT_BYTES}-byte limit; is this really an SNS event or alarm JSON?"),
            Self::NotUtf8(at) => format!("input is not UTF-8 text (first bad byte at offset {at}); expected an SNS event or CloudWatch alarm JSON"),
            Self::InvalidJson { line, column, message } => format!("invalid JSON at line {line}, column {column}: {message}"),
            Self::InvalidMessage { message, .. } => format!("Sns.Message is not valid JSON ({message}); expected the CloudWatch alarm as a JSON string"),
            Self::NotAnAlarm { reason, .. } => format!("not a CloudWatch alarm: {reason}"),
            Self::InvalidField { field, value, expected, .. } => format!("{field} {value:?} is not {expected}; the message was forged or garbled, so it is not acted on"),
            Self::UnknownRegion { display, .. } => format!("cannot tell the region: no AlarmArn, no SNS TopicArn, and the Region {display:?} is not a known region name; add \"AlarmArn\" to the message"),
        }
    }
}

impl std::fmt::Display for IntakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.context() {
            Some(context) => write!(f, "{context}: {}", self.detail()),
            None => f.write_str(&self.detail()),
        }
    }
}

impl std::error::Error for IntakeError {}

/// The alarm's state after the change that triggered this message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum AlarmState {
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "ALARM" => Some(Self::Alarm),
            "OK" => Some(Self::Ok),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alarm => "ALARM",
            Self::Ok => "OK",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// Which family of load balancer; they differ in metrics, APIs and controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbKind {
    /// Classic Load Balancer (`AWS/ELB`), created by the in-tree / cloud-provider-aws Service controller.
    Classic,
    /// Application Load Balancer (`AWS/ApplicationELB`), created by the AWS Load Balancer Controller.
    Application,
    /// Network Load Balancer (`AWS/NetworkELB`): TCP, UDP and TLS passed through, so no HTTP
    /// 5xx of its own; created for a `type: LoadBalancer` Service by the AWS Load Balancer
    /// Controller (issue 26: diagnosis is being built).
    Network,
}

impl LbKind {
    pub fn namespace(self) -> &'static str {
        match self {
            Self::Classic => "AWS/ELB",
            Self::Application => "AWS/ApplicationELB",
            Self::Network => "AWS/NetworkELB",
        }
    }
    /// The CloudWatch dimension that names the load balancer.
    pub fn dimension_name(self) -> &'static str {
        match self {
            Self::Classic => "LoadBalancerName",
            Self::Application | Self::Network => "LoadBalancer",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::Classic => "Classic Load Balancer",
            Self::Application => "Application Load Balancer",
            Self::Network => "Network Load Balancer",
        }
    }
}

/// The load balancer an alarm is about, as named by its metric dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct LbRef {
    pub kind: LbKind,
    /// The load balancer's name.
    pub name: String,
    /// The dimension value: `app/NAME/ID` for an ALB, the name for a Classic LB.
    pub id: String,
    /// `targetgroup/NAME/ID` when the alarm is scoped to one target group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
}

/// One metric the alarm watches.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AlarmMetric {
    pub namespace: String,
    pub metric_name: String,
    /// Normalised statistic: `Sum`, `Maximum`, `Average`, `p99`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    pub dimensions: Vec<(String, String)>,
}

impl AlarmMetric {
    fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An alarm message, understood.
/// Serialized into remediation plans, so `remediate` reports against the same alarm.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Alarm {
    pub alarm_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub state: AlarmState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<AlarmState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// As sent, e.g. `2026-11-23T18:00:00.000+0000`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_change_time: Option<String>,
    /// Seconds since the epoch, when `state_change_time` could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_change_epoch: Option<i64>,
    /// Always a region code such as `eu-west-1`.
    pub region: String,
    /// Period of the alarm's metric(s) in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_periods: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<String>,
    /// The metric(s) the alarm watches: one for a plain alarm, several for metric math.
    pub metrics: Vec<AlarmMetric>,
    /// The metric-math expression that returns data, for a metric-math alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// A composite alarm's rule (`ALARM("a") OR ALARM("b")`); it then watches no metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The composite alarm that notified, when this child alarm was resolved from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_composite: Option<String>,
}

impl Alarm {
    /// The metric that best names what fired: the first one elbmedic knows, else the first.
    pub fn primary_metric(&self) -> Option<&AlarmMetric> {
        self.metrics
            .iter()
            .find(|metric| is_supported_metric(&metric.metric_name))
            .or_else(|| self.metrics.first())
    }
}

/// What to do with one alarm record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Intake {
    /// State ALARM on a supported load-balancer metric: diagnose it.
    Diagnose { alarm: Alarm, load_balancer: LbRef },
    /// State OK: the load balancer recovered; a short notice is enough.
    Recovered { alarm: Alarm, load_balancer: LbRef },
    /// INSUFFICIENT_DATA: acknowledged, nothing to diagnose.
    Skipped {
        alarm: Alarm,
        load_balancer: LbRef,
        reason: String,
    },
    /// A valid alarm elbmedic does not handle (another namespace, several LBs, SEARCH, ...).
    Unsupported { alarm: Alarm, reason: String },
    /// A composite alarm: it names no metric, so the child alarms that fired it (`children`,
    /// alarm names) are read from CloudWatch and diagnosed instead ([`composite`]).
    Composite { alarm: Alarm, children: Vec<String> },
}

impl Intake {
    pub fn alarm(&self) -> &Alarm {
        match self {
            Self::Diagnose { alarm, .. }
            | Self::Recovered { alarm, .. }
            | Self::Skipped { alarm, .. }
            | Self::Unsupported { alarm, .. }
            | Self::Composite { alarm, .. } => alarm,
        }
    }

    fn alarm_mut(&mut self) -> &mut Alarm {
        match self {
            Self::Diagnose { alarm, .. }
            | Self::Recovered { alarm, .. }
            | Self::Skipped { alarm, .. }
            | Self::Unsupported { alarm, .. }
            | Self::Composite { alarm, .. } => alarm,
        }
    }

    pub fn load_balancer(&self) -> Option<&LbRef> {
        match self {
            Self::Diagnose { load_balancer, .. }
            | Self::Recovered { load_balancer, .. }
            | Self::Skipped { load_balancer, .. } => Some(load_balancer),
            Self::Unsupported { .. } | Self::Composite { .. } => None,
        }
    }
}

/// Metrics whose alarms elbmedic diagnoses. 5xx generated by the LB, connection errors,
/// latency, and target health: all of them are explained by the checks the engine runs.
pub const SUPPORTED_METRICS: &[&str] = &[
    "HTTPCode_ELB_5XX",
    "HTTPCode_ELB_5XX_Count",
    "HTTPCode_ELB_502_Count",
    "HTTPCode_ELB_503_Count",
    "HTTPCode_ELB_504_Count",
    "TargetConnectionErrorCount",
    "BackendConnectionErrors",
    "Latency",
    "TargetResponseTime",
    "UnHealthyHostCount",
    "HealthyHostCount",
    // A Network Load Balancer's: the resets its flows end with, the flows it could not
    // place or route, and what its security groups dropped.
    "TCP_ELB_Reset_Count",
    "TCP_Target_Reset_Count",
    "TCP_Client_Reset_Count",
    "PortAllocationErrorCount",
    "RejectedFlowCount",
    "UnhealthyRoutingFlowCount",
    "TargetTLSNegotiationErrorCount",
    "ClientTLSNegotiationErrorCount",
    "SecurityGroupBlockedFlowCount_Inbound_TCP",
    "SecurityGroupBlockedFlowCount_Inbound_UDP",
    "SecurityGroupBlockedFlowCount_Inbound_ICMP",
    "SecurityGroupBlockedFlowCount_Outbound_TCP",
    "SecurityGroupBlockedFlowCount_Outbound_UDP",
    "SecurityGroupBlockedFlowCount_Outbound_ICMP",
];

pub fn is_supported_metric(name: &str) -> bool {
    SUPPORTED_METRICS.contains(&name)
}

/// Reads a Lambda SNS event (`{"Records":[{"Sns":{"Message": "..."}}]}`) or a bare CloudWatch
/// alarm message. Returns one result per record, so one bad record does not hide the others.
/// The outer `Err` means the input as a whole is unreadable.
pub fn parse_input(bytes: &[u8]) -> Result<Vec<Result<Intake, IntakeError>>, IntakeError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(IntakeError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| IntakeError::NotUtf8(e.valid_up_to()))?;
    let text = text.trim_start_matches('\u{feff}');
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    parse_value(&value)
}

/// As [`parse_input`], for an event already parsed as JSON (the Lambda runtime's payload,
/// which Lambda bounds at 6 MB).
pub fn parse_value(
    value: &serde_json::Value,
) -> Result<Vec<Result<Intake, IntakeError>>, IntakeError> {
    let envelopes = message::envelopes(value)?;
    Ok(envelopes
        .into_iter()
        .map(|envelope| envelope.and_then(|e| interpret(&e)))
        .collect())
}

/// One SQS record's body from the alarm queue (SNS → SQS → Lambda): the notification SNS
/// sends to a queue, or the alarm itself under raw delivery. `number` names it in errors.
pub fn parse_queued(number: usize, body: &str) -> Result<Intake, IntakeError> {
    if body.len() > MAX_INPUT_BYTES {
        return Err(IntakeError::TooLarge(body.len()));
    }
    let value: serde_json::Value = serde_json::from_str(body.trim_start_matches('\u{feff}'))
        .map_err(|e| IntakeError::InvalidMessage {
            record: number,
            message: e.to_string(),
        })?;
    message::queued_envelope(number, &value).and_then(|e| interpret(&e))
}

fn json_error(error: &serde_json::Error) -> IntakeError {
    IntakeError::InvalidJson {
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    }
}

/// Turns one raw alarm (with the SNS context around it) into an [`Intake`].
fn interpret(envelope: &message::Envelope) -> Result<Intake, IntakeError> {
    let raw = &envelope.alarm;
    let context = envelope.context.clone();
    let mut alarm = validated(envelope)?;
    let Some(trigger) = raw.trigger.as_ref() else {
        let children = composite::children_to_resolve(raw, alarm.state);
        alarm.rule = raw.alarm_rule.clone();
        return Ok(Intake::Composite { alarm, children });
    };
    let (metrics, expression, search) = trigger_metrics(trigger);
    alarm.period_seconds = trigger.period.or_else(|| trigger.metric_period());
    alarm.evaluation_periods = trigger.evaluation_periods;
    alarm.threshold = trigger.threshold;
    alarm.comparison = trigger.comparison_operator.clone();
    alarm.metrics = metrics;
    alarm.expression = expression;
    let unsupported = |alarm: Alarm, reason: String| Ok(Intake::Unsupported { alarm, reason });
    if let Some(search) = search {
        return unsupported(
            alarm,
            format!("the alarm uses a SEARCH expression ({search}); it can match any number of load balancers, so elbmedic cannot tell which one fired. Alarm on one load balancer's metrics instead"),
        );
    }
    let load_balancer = match identify_load_balancer(&alarm.metrics) {
        Ok(lb) => lb,
        Err(Rejection::Unsupported(reason)) => return unsupported(alarm, reason),
        Err(Rejection::Invalid {
            field,
            value,
            expected,
        }) => {
            return Err(IntakeError::InvalidField {
                context,
                field,
                value,
                expected: expected.into(),
            })
        }
    };
    if let Some(metric) = alarm.primary_metric() {
        if !is_supported_metric(&metric.metric_name) {
            let reason = format!(
                "metric {} is not one elbmedic diagnoses (supported: {})",
                metric.metric_name,
                SUPPORTED_METRICS.join(", ")
            );
            return unsupported(alarm, reason);
        }
    }
    Ok(match alarm.state {
        AlarmState::Alarm => Intake::Diagnose {
            alarm,
            load_balancer,
        },
        AlarmState::Ok => Intake::Recovered {
            alarm,
            load_balancer,
        },
        AlarmState::InsufficientData => Intake::Skipped {
            alarm,
            load_balancer,
            reason: "the alarm has insufficient data; there is nothing to diagnose".to_string(),
        },
    })
}

/// The alarm's own fields, checked: a name, a state, well-formed and agreeing ARN and
/// account, a trigger or a rule, a region. The trigger's metrics are read by the caller.
fn validated(envelope: &message::Envelope) -> Result<Alarm, IntakeError> {
    let raw = &envelope.alarm;
    let context = envelope.context.clone();
    let not_alarm = |reason: &str| IntakeError::NotAnAlarm {
        context: context.clone(),
        reason: reason.to_string(),
    };
    let alarm_name = raw
        .alarm_name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| not_alarm("no AlarmName"))?;
    let state_text = raw
        .new_state_value
        .as_deref()
        .ok_or_else(|| not_alarm("no NewStateValue"))?;
    let state = AlarmState::parse(state_text).ok_or_else(|| {
        not_alarm(&format!(
            "NewStateValue {state_text:?} is not ALARM, OK or INSUFFICIENT_DATA"
        ))
    })?;
    let malformed = |field: &str, value: &str, expected: &str| IntakeError::InvalidField {
        context: context.clone(),
        field: field.to_string(),
        value: value.chars().take(200).collect(),
        expected: expected.to_string(),
    };
    if let Some(arn) = raw.alarm_arn.as_deref().filter(|a| !formats::is_arn(a)) {
        return Err(malformed(
            "AlarmArn",
            arn,
            "an ARN (arn:PARTITION:cloudwatch:REGION:ACCOUNT:alarm:NAME)",
        ));
    }
    if let Some(account) = raw
        .aws_account_id
        .as_deref()
        .filter(|a| !formats::is_account_id(a))
    {
        return Err(malformed("AWSAccountId", account, "a 12-digit account id"));
    }
    // The account decides whose role is assumed: a record whose two account fields disagree
    // is forged or corrupt, and reading either account for it would be a guess.
    let arn_account = raw
        .alarm_arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(4));
    if let (Some(account), Some(in_arn)) = (raw.aws_account_id.as_deref(), arn_account) {
        if !in_arn.is_empty() && in_arn != account {
            return Err(malformed(
                "AWSAccountId",
                account,
                &format!("the account of the AlarmArn ({in_arn})"),
            ));
        }
    }
    if raw.trigger.is_none() && raw.alarm_rule.is_none() {
        return Err(not_alarm(
            "no Trigger, and no AlarmRule (so not a composite alarm either)",
        ));
    }
    let region = region::resolve(
        raw.alarm_arn.as_deref(),
        envelope.topic_arn.as_deref(),
        raw.region.as_deref(),
    )
    .ok_or_else(|| IntakeError::UnknownRegion {
        context: context.clone(),
        display: raw.region.clone().unwrap_or_default(),
    })?;
    Ok(Alarm {
        alarm_name,
        alarm_arn: raw.alarm_arn.clone(),
        description: raw.alarm_description.clone(),
        // The AlarmArn names the account too, when an older message lacks AWSAccountId.
        account_id: raw.aws_account_id.clone().or_else(|| {
            let arn = raw.alarm_arn.as_deref()?;
            arn.split(':')
                .nth(4)
                .filter(|a| formats::is_account_id(a))
                .map(str::to_string)
        }),
        state,
        previous_state: raw.old_state_value.as_deref().and_then(AlarmState::parse),
        reason: raw.new_state_reason.clone(),
        state_change_time: raw.state_change_time.clone(),
        state_change_epoch: raw.state_change_time.as_deref().and_then(parse_timestamp),
        region,
        period_seconds: None,
        evaluation_periods: None,
        threshold: None,
        comparison: None,
        metrics: Vec::new(),
        expression: None,
        rule: None,
        via_composite: None,
    })
}

/// The metrics of a plain or metric-math trigger, the returned expression, and the first
/// `SEARCH` expression if any.
fn trigger_metrics(trigger: &RawTrigger) -> (Vec<AlarmMetric>, Option<String>, Option<String>) {
    if trigger.metrics.is_empty() {
        let metric = AlarmMetric {
            namespace: trigger.namespace.clone().unwrap_or_default(),
            metric_name: trigger.metric_name.clone().unwrap_or_default(),
            statistic: trigger
                .statistic
                .as_deref()
                .or(trigger.extended_statistic.as_deref())
                .map(normalise_statistic),
            dimensions: trigger
                .dimensions
                .iter()
                .map(|d| (d.name.clone(), d.value.clone()))
                .collect(),
        };
        return (vec![metric], None, None);
    }
    let mut metrics = Vec::new();
    let mut expression = None;
    let mut search = None;
    for query in &trigger.metrics {
        if let Some(text) = query.expression.as_deref() {
            if text.to_ascii_uppercase().contains("SEARCH(") && search.is_none() {
                search = Some(text.to_string());
            }
            if query.return_data.unwrap_or(false) || expression.is_none() {
                expression = Some(text.to_string());
            }
        }
        if let Some(stat) = &query.metric_stat {
            metrics.push(AlarmMetric {
                namespace: stat.metric.namespace.clone().unwrap_or_default(),
                metric_name: stat.metric.metric_name.clone().unwrap_or_default(),
                statistic: stat.stat.as_deref().map(normalise_statistic),
                dimensions: stat
                    .metric
                    .dimensions
                    .iter()
                    .map(|d| (d.name.clone(), d.value.clone()))
                    .collect(),
            });
        }
    }
    (metrics, expression, search)
}

/// `SUM` -> `Sum`, `MAXIMUM` -> `Maximum`, `P99` -> `p99`; percentiles and others kept.
fn normalise_statistic(raw: &str) -> String {
    let trimmed = raw.trim();
    match trimmed.to_ascii_lowercase().as_str() {
        "sum" => "Sum".into(),
        "maximum" => "Maximum".into(),
        "minimum" => "Minimum".into(),
        "average" => "Average".into(),
        "samplecount" => "SampleCount".into(),
        lower if lower.starts_with('p') || lower.starts_with("tm") => lower.to_string(),
        _ => trimmed.to_string(),
    }
}

/// Why an alarm names no load balancer elbmedic can diagnose.
enum Rejection {
    /// A real alarm of a kind elbmedic does not diagnose.
    Unsupported(String),
    /// A value that fits no AWS format: bad input.
    Invalid {
        field: String,
        value: String,
        expected: &'static str,
    },
}

impl From<String> for Rejection {
    fn from(reason: String) -> Self {
        Self::Unsupported(reason)
    }
}

/// Finds the one load balancer the alarm's metrics name, or says why there is none.
fn identify_load_balancer(metrics: &[AlarmMetric]) -> Result<LbRef, Rejection> {
    if metrics.is_empty() {
        return Err("the alarm watches no metric".to_string().into());
    }
    let mut found: Vec<LbRef> = Vec::new();
    for metric in metrics {
        let lb = lb_of_metric(metric)?;
        if !found.iter().any(|known| same_lb(known, &lb)) {
            found.push(lb);
        }
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|lb| lb.id.as_str()).collect();
        return Err(format!(
            "the alarm's metrics name {} load balancers ({}); elbmedic diagnoses one load balancer per alarm",
            found.len(),
            names.join(", ")
        )
        .into());
    }
    // A target group named by any of the metrics narrows the alarm.
    let target_group = metrics
        .iter()
        .find_map(|m| m.dimension("TargetGroup").map(str::to_string));
    if let Some(group) = target_group
        .as_deref()
        .filter(|g| !formats::is_target_group_dimension(g))
    {
        return Err(invalid(
            "TargetGroup dimension",
            group,
            "targetgroup/NAME/ID with a 16-digit hexadecimal ID",
        ));
    }
    let mut lb = found.remove(0);
    lb.target_group = target_group;
    Ok(lb)
}

fn same_lb(a: &LbRef, b: &LbRef) -> bool {
    a.kind == b.kind && a.id == b.id
}

fn invalid(field: &str, value: &str, expected: &'static str) -> Rejection {
    Rejection::Invalid {
        field: field.to_string(),
        value: value.chars().take(200).collect(),
        expected,
    }
}

fn lb_of_metric(metric: &AlarmMetric) -> Result<LbRef, Rejection> {
    match metric.namespace.as_str() {
        "AWS/ELB" => {
            let name = metric.dimension("LoadBalancerName").ok_or_else(|| {
                format!(
                    "the AWS/ELB metric {} has no LoadBalancerName dimension, so it aggregates several load balancers; alarm on one load balancer",
                    metric.metric_name
                )
            })?;
            if !formats::is_lb_name(name) {
                return Err(invalid("LoadBalancerName dimension", name, "a load balancer name (1-32 letters, digits and hyphens)"));
            }
            Ok(LbRef {
                kind: LbKind::Classic,
                name: name.to_string(),
                id: name.to_string(),
                target_group: None,
            })
        }
        "AWS/ApplicationELB" => elbv2_lb(
            metric,
            LbKind::Application,
            formats::is_alb_dimension,
            "of the form app/NAME/ID with a 16-digit hexadecimal ID",
        ),
        "AWS/NetworkELB" => elbv2_lb(
            metric,
            LbKind::Network,
            formats::is_nlb_dimension,
            "of the form net/NAME/ID with a 16-digit hexadecimal ID",
        ),
        "" => Err("the alarm names no metric namespace".to_string().into()),
        other => Err(format!(
            "namespace {other} is not a load balancer namespace elbmedic supports (AWS/ELB, AWS/ApplicationELB, AWS/NetworkELB)"
        )
        .into()),
    }
}

/// An ALB or NLB named by its `LoadBalancer` dimension (`app/NAME/ID`, `net/NAME/ID`):
/// refused unless `is_dimension` holds, so nothing else is ever looked up.
fn elbv2_lb(
    metric: &AlarmMetric,
    kind: LbKind,
    is_dimension: fn(&str) -> bool,
    expected: &'static str,
) -> Result<LbRef, Rejection> {
    let id = metric.dimension("LoadBalancer").ok_or_else(|| {
        format!(
            "the {} metric {} has no LoadBalancer dimension; alarm on one load balancer",
            kind.namespace(),
            metric.metric_name
        )
    })?;
    if !is_dimension(id) {
        return Err(invalid("LoadBalancer dimension", id, expected));
    }
    let name = id.split('/').nth(1).unwrap_or_default();
    Ok(LbRef {
        kind,
        name: name.to_string(),
        id: id.to_string(),
        target_group: None,
    })
}

/// Reads CloudWatch's `2026-11-23T18:00:00.000+0000` and RFC 3339 (`...Z`, `+00:00`).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp());
    }
    ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"]
        .iter()
        .find_map(|format| chrono::DateTime::parse_from_str(text, format).ok())
        .map(|time| time.timestamp())
}

#[cfg(test)]
mod tests;

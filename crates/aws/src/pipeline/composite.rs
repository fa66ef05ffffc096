//! Reads the children of a composite alarm from CloudWatch (`DescribeAlarms`), so that what a
//! composite alarm notifies is diagnosed through the metric alarms that fired it. The choice
//! of children and of what to diagnose is the engine's (`elbmedic_engine::alarm::composite`).

use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, MetricAlarm};
use elbmedic_engine::alarm::composite::{
    alarm_name_of, child_intake, names_in_rule, one_per_load_balancer, MAX_CHILDREN,
};
use elbmedic_engine::alarm::{AlarmState, Intake};
use serde_json::{json, Value};

use crate::clients::Clients;
use crate::errors::CallFailed;

/// A composite alarm can name composites; following them is bounded, since CloudWatch
/// itself allows cycles.
const MAX_DEPTH: usize = 3;

/// The intakes to handle for one record: a composite alarm in ALARM becomes one diagnosis per
/// load balancer its fired children name (or an unsupported notice saying why none); any
/// other intake is returned as it is. `clients` must be in the alarm's region.
pub async fn expand(clients: &Clients, intake: Intake, max_load_balancers: usize) -> Vec<Intake> {
    let Intake::Composite { alarm, children } = &intake else {
        return vec![intake];
    };
    if alarm.state != AlarmState::Alarm {
        return vec![intake];
    }
    let mut pending: Vec<String> = children.clone();
    let mut seen: Vec<String> = Vec::new();
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    for _ in 0..MAX_DEPTH {
        pending.retain(|name| !seen.contains(name));
        if pending.is_empty() {
            break;
        }
        pending.truncate(MAX_CHILDREN);
        seen.extend(pending.iter().cloned());
        let (metric_alarms, composites) = match describe_alarms(clients, &pending).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(composite = %alarm.alarm_name, error = %error, "child alarms not readable");
                return vec![Intake::Unsupported {
                    alarm: alarm.clone(),
                    reason: format!(
                        "composite alarm whose child alarms ({}) could not be read from CloudWatch: {error}. elbmedic needs cloudwatch:DescribeAlarms to follow a composite alarm",
                        pending.join(", ")
                    ),
                }];
            }
        };
        let found: Vec<&str> = metric_alarms
            .iter()
            .filter_map(|a| a.alarm_name())
            .chain(
                composites
                    .iter()
                    .map(|c| c.alarm_name().unwrap_or_default()),
            )
            .collect();
        missing.extend(
            pending
                .iter()
                .filter(|name| !found.contains(&name.as_str()))
                .cloned(),
        );
        resolved.extend(
            metric_alarms
                .iter()
                .map(|child| child_intake(alarm, &message_of(child))),
        );
        // A nested composite in ALARM: its own children that the rule needs in ALARM.
        pending = composites
            .iter()
            .filter(|c| c.state_value().map(|s| s.as_str()) == Some("ALARM"))
            .flat_map(|c| names_in_rule(c.alarm_rule().unwrap_or_default()))
            .map(|name| alarm_name_of(&name))
            .collect();
    }
    tracing::info!(
        composite = %alarm.alarm_name,
        children = resolved.len(),
        missing = missing.len(),
        "composite alarm followed to its children"
    );
    one_per_load_balancer(alarm, resolved, &missing, max_load_balancers)
}

async fn describe_alarms(
    clients: &Clients,
    names: &[String],
) -> Result<(Vec<MetricAlarm>, Vec<CompositeAlarm>), CallFailed> {
    let out = clients
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .max_records(100)
        .send()
        .await
        .map_err(|e| CallFailed::of(&e))?;
    Ok((
        out.metric_alarms.unwrap_or_default(),
        out.composite_alarms.unwrap_or_default(),
    ))
}

/// A described metric alarm in the shape of the alarm message CloudWatch sends to SNS, which
/// the engine already reads; the state and time come from the composite.
fn message_of(alarm: &MetricAlarm) -> Value {
    let dimensions = |dims: &[aws_sdk_cloudwatch::types::Dimension]| -> Vec<Value> {
        dims.iter()
            .map(|d| json!({"name": d.name(), "value": d.value()}))
            .collect()
    };
    let metrics: Vec<Value> = alarm
        .metrics()
        .iter()
        .map(|query| {
            let stat = query.metric_stat().map(|stat| {
                let metric = stat.metric();
                json!({
                    "Metric": {
                        "MetricName": metric.and_then(|m| m.metric_name()),
                        "Namespace": metric.and_then(|m| m.namespace()),
                        "Dimensions": dimensions(metric.map(|m| m.dimensions()).unwrap_or_default()),
                    },
                    "Period": stat.period(),
                    "Stat": stat.stat(),
                })
            });
            json!({
                "Id": query.id(),
                "Expression": query.expression(),
                "ReturnData": query.return_data(),
                "MetricStat": stat,
            })
        })
        .collect();
    json!({
        "AlarmName": alarm.alarm_name(),
        "AlarmArn": alarm.alarm_arn(),
        "AlarmDescription": alarm.alarm_description(),
        "NewStateReason": alarm.state_reason(),
        // The child's own state: one that is OK did not fire the composite.
        "NewStateValue": alarm.state_value().map(|s| s.as_str()),
        "Trigger": {
            "MetricName": alarm.metric_name(),
            "Namespace": alarm.namespace(),
            "Statistic": alarm.statistic().map(|s| s.as_str()),
            "ExtendedStatistic": alarm.extended_statistic(),
            "Dimensions": dimensions(alarm.dimensions()),
            "Period": alarm.period(),
            "EvaluationPeriods": alarm.evaluation_periods(),
            "Threshold": alarm.threshold(),
            "ComparisonOperator": alarm.comparison_operator().map(|c| c.as_str()),
            "Metrics": metrics,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};

    /// The described alarm reads as the message CloudWatch would have sent for it.
    #[test]
    fn a_described_alarm_reads_as_its_alarm_message() {
        let described = MetricAlarm::builder()
            .alarm_name("alb-504")
            .alarm_arn("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:alb-504")
            .metric_name("HTTPCode_ELB_504_Count")
            .namespace("AWS/ApplicationELB")
            .statistic(Statistic::Sum)
            .dimensions(
                Dimension::builder()
                    .name("LoadBalancer")
                    .value("app/web/0123456789abcdef")
                    .build(),
            )
            .period(60)
            .evaluation_periods(5)
            .threshold(5.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .build();
        let message = message_of(&described);
        assert_eq!(message["Trigger"]["Statistic"], "Sum");
        assert_eq!(
            message["Trigger"]["Dimensions"][0]["value"],
            "app/web/0123456789abcdef"
        );
        assert_eq!(message["Trigger"]["Period"], 60);
        assert_eq!(message["Trigger"]["Metrics"], json!([]));
    }
}

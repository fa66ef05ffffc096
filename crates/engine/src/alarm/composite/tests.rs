use super::*;
use crate::alarm::{parse_input, LbKind};
use serde_json::json;

/// A composite alarm's SNS message as CloudWatch sends it: no Trigger; AlarmRule and
/// TriggeringChildren instead.
fn composite_message(rule: &str, children: serde_json::Value) -> serde_json::Value {
    json!({
        "AlarmName": "ingress-5xx-composite",
        "AlarmDescription": "5xx on the ingress ALB",
        "AWSAccountId": "123456789012",
        "AlarmConfigurationUpdatedTimestamp": "2026-11-20T10:00:00.000+0000",
        "NewStateValue": "ALARM",
        "NewStateReason": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:alb-504 transitioned to ALARM at Tuesday 24 November, 2026 10:00:00 UTC",
        "StateChangeTime": "2026-11-24T10:00:05.123+0000",
        "Region": "EU (Ireland)",
        "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:ingress-5xx-composite",
        "OldStateValue": "OK",
        "OKActions": [],
        "AlarmActions": ["arn:aws:sns:eu-west-1:123456789012:elbmedic-alarms"],
        "InsufficientDataActions": [],
        "AlarmRule": rule,
        "TriggeringChildren": children,
    })
}

fn intake_of(message: &serde_json::Value) -> Intake {
    let bytes = serde_json::to_vec(message).unwrap();
    parse_input(&bytes).unwrap().remove(0).unwrap()
}

fn composite(message: &serde_json::Value) -> (crate::alarm::Alarm, Vec<String>) {
    match intake_of(message) {
        Intake::Composite { alarm, children } => (alarm, children),
        other => panic!("expected a composite intake, got {other:?}"),
    }
}

fn alb_child(name: &str, lb: &str, metric: &str) -> serde_json::Value {
    json!({
        "AlarmName": name,
        "AlarmArn": format!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"),
        "NewStateReason": "Threshold Crossed: 5 out of the last 5 datapoints were greater than or equal to the threshold (5.0).",
        "Trigger": {
            "MetricName": metric,
            "Namespace": "AWS/ApplicationELB",
            "Statistic": "Sum",
            "Dimensions": [{"name": "LoadBalancer", "value": lb}],
            "Period": 60,
            "EvaluationPeriods": 5,
            "Threshold": 5.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Metrics": []
        }
    })
}

#[test]
fn a_composite_alarm_names_the_children_that_fired_it() {
    let (alarm, children) = composite(&composite_message(
        r#"ALARM("alb-504") OR ALARM("alb-5xx")"#,
        json!([
            {"Arn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:alb-504",
             "State": {"Value": "ALARM", "Timestamp": "2026-11-24T10:00:00.000+0000"}},
            {"Arn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:alb-5xx",
             "State": {"Value": "OK", "Timestamp": "2026-11-24T09:00:00.000+0000"}}
        ]),
    ));
    assert_eq!(
        children,
        ["alb-504"],
        "the child back in OK did not fire it"
    );
    assert_eq!(alarm.region, "eu-west-1");
    assert_eq!(alarm.state, AlarmState::Alarm);
    assert!(alarm.metrics.is_empty());
    assert_eq!(
        alarm.rule.as_deref(),
        Some(r#"ALARM("alb-504") OR ALARM("alb-5xx")"#)
    );
    assert_eq!(alarm.expression, None);
}

#[test]
fn without_triggering_children_the_rule_names_them() {
    let (_, children) = composite(&composite_message(
        r#"(ALARM("alb-504") OR ALARM(arn:aws:cloudwatch:eu-west-1:123456789012:alarm:clb-5xx)) AND NOT OK(deploys) AND ALARM(alb-504)"#,
        json!(null),
    ));
    assert_eq!(children, ["alb-504", "clb-5xx"]);
}

#[test]
fn at_least_in_alarm_names_its_list_and_other_states_name_nothing() {
    assert_eq!(
        names_in_rule(r#"AT_LEAST(2, ALARM, ("a-5xx", "b-5xx", c-5xx))"#),
        ["a-5xx", "b-5xx", "c-5xx"]
    );
    assert_eq!(
        names_in_rule(r#"AT_LEAST(50%, OK, ("a", "b")) AND ALARM("c")"#),
        ["c"]
    );
    assert!(names_in_rule(r#"INSUFFICIENT_DATA("a") OR OK("b") OR TRUE"#).is_empty());
    assert!(names_in_rule("ALARM(").is_empty(), "a cut rule is no panic");
    assert_eq!(
        names_in_rule(r#"ALARM("with \"quote\"")"#),
        [r#"with "quote""#]
    );
}

#[test]
fn a_message_with_neither_trigger_nor_rule_is_not_an_alarm() {
    let mut message = composite_message("TRUE", json!([]));
    message.as_object_mut().unwrap().remove("AlarmRule");
    let bytes = serde_json::to_vec(&message).unwrap();
    let error = parse_input(&bytes).unwrap().remove(0).unwrap_err();
    assert!(error.to_string().contains("no AlarmRule"), "{error}");
}

#[test]
fn a_child_fires_with_its_composite_and_says_so() {
    let (parent, _) = composite(&composite_message(r#"ALARM("alb-504")"#, json!([])));
    let child = child_intake(
        &parent,
        &alb_child(
            "alb-504",
            "app/k8s-shop-web/0123456789abcdef",
            "HTTPCode_ELB_504_Count",
        ),
    )
    .unwrap();
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = child
    else {
        panic!("expected a diagnosis, got {child:?}");
    };
    assert_eq!(alarm.alarm_name, "alb-504");
    assert_eq!(
        alarm.via_composite.as_deref(),
        Some("ingress-5xx-composite")
    );
    assert_eq!(alarm.state, AlarmState::Alarm);
    assert_eq!(alarm.state_change_epoch, parent.state_change_epoch);
    assert_eq!(alarm.account_id.as_deref(), Some("123456789012"));
    assert_eq!(alarm.period_seconds, Some(60));
    assert_eq!(alarm.evaluation_periods, Some(5));
    assert_eq!(load_balancer.kind, LbKind::Application);
    assert_eq!(load_balancer.name, "k8s-shop-web");
}

#[test]
fn two_children_on_one_load_balancer_are_one_diagnosis() {
    let (parent, _) = composite(&composite_message("TRUE", json!([])));
    let lb = "app/k8s-shop-web/0123456789abcdef";
    let other = "app/k8s-shop-api/fedcba9876543210";
    let children = vec![
        child_intake(&parent, &alb_child("a", lb, "HTTPCode_ELB_504_Count")),
        child_intake(&parent, &alb_child("b", lb, "HTTPCode_ELB_5XX_Count")),
        child_intake(&parent, &alb_child("c", other, "HTTPCode_ELB_5XX_Count")),
    ];
    let chosen = one_per_load_balancer(&parent, children, &["gone".into()], 5);
    let names: Vec<&str> = chosen
        .iter()
        .map(|i| i.alarm().alarm_name.as_str())
        .collect();
    assert_eq!(names, ["a", "c"]);
}

#[test]
fn no_diagnosable_child_makes_the_composite_unsupported_with_every_reason() {
    let (parent, _) = composite(&composite_message("TRUE", json!([])));
    let mut rds = alb_child("db-cpu", "x", "CPUUtilization");
    rds["Trigger"]["Namespace"] = json!("AWS/RDS");
    let children = vec![child_intake(&parent, &rds)];
    let chosen = one_per_load_balancer(&parent, children, &["deleted-alarm".into()], 5);
    let [Intake::Unsupported { alarm, reason }] = chosen.as_slice() else {
        panic!("expected one unsupported notice, got {chosen:?}");
    };
    assert_eq!(alarm.alarm_name, "ingress-5xx-composite");
    assert!(reason.contains("db-cpu: namespace AWS/RDS"), "{reason}");
    assert!(
        reason.contains("deleted-alarm: no such alarm in eu-west-1"),
        "{reason}"
    );
}

/// At most MAX_COMPOSITE_CHILDREN load balancers are diagnosed; the rest are named in a
/// notice, and a child whose own state is OK is reported recovered, with no plan.
#[test]
fn composites_are_bounded_and_ok_children_are_recoveries() {
    let (parent, _) = composite(&composite_message("TRUE", json!([])));
    let mut children: Vec<_> = (0..8)
        .map(|i| {
            let lb = format!("app/k8s-lb-{i}/0123456789abcde{i}");
            child_intake(
                &parent,
                &alb_child(&format!("c{i}"), &lb, "HTTPCode_ELB_5XX_Count"),
            )
        })
        .collect();
    let mut ok = alb_child(
        "calm",
        "app/k8s-calm/0123456789abcdef",
        "HTTPCode_ELB_5XX_Count",
    );
    ok["NewStateValue"] = json!("OK");
    children.push(child_intake(&parent, &ok));
    let chosen = one_per_load_balancer(&parent, children, &[], 3);
    let diagnosed: Vec<&str> = chosen
        .iter()
        .filter(|i| matches!(i, Intake::Diagnose { .. }))
        .map(|i| i.alarm().alarm_name.as_str())
        .collect();
    assert_eq!(diagnosed, ["c0", "c1", "c2"]);
    let notice = chosen
        .iter()
        .find_map(|i| match i {
            Intake::Unsupported { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .expect("a notice names the rest");
    assert!(notice.contains("MAX_COMPOSITE_CHILDREN (3)"), "{notice}");
    for rest in ["k8s-lb-3 (child c3)", "k8s-lb-7 (child c7)"] {
        assert!(notice.contains(rest), "{notice}");
    }
    assert!(
        chosen
            .iter()
            .any(|i| matches!(i, Intake::Recovered { alarm, .. } if alarm.alarm_name == "calm")),
        "{chosen:?}"
    );
}

#[test]
fn alarm_names_come_out_of_arns_whole() {
    assert_eq!(
        alarm_name_of("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a:b c"),
        "a:b c"
    );
    assert_eq!(alarm_name_of(" plain "), "plain");
}

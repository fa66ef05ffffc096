use super::*;
use serde_json::json;

fn clb_alarm() -> serde_json::Value {
    json!({
        "AlarmName": "orders-clb-5xx",
        "AlarmDescription": null,
        "AWSAccountId": "111122223333",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [12.0 (23/11/26 17:59:00)] was greater than the threshold (5.0).",
        "StateChangeTime": "2026-11-23T18:00:00.000+0000",
        "Region": "EU (Ireland)",
        "AlarmArn": "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:orders-clb-5xx",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "HTTPCode_ELB_5XX",
            "Namespace": "AWS/ELB",
            "StatisticType": "Statistic",
            "Statistic": "SUM",
            "Unit": null,
            "Dimensions": [{"value": "a1b2c3d4e5f6", "name": "LoadBalancerName"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 5.0,
            "TreatMissingData": "- TreatMissingData:                    missing",
            "EvaluateLowSampleCountPercentile": ""
        }
    })
}

fn sns_event(messages: &[serde_json::Value]) -> Vec<u8> {
    let records: Vec<_> = messages
        .iter()
        .map(|m| {
            json!({
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {
                    "Type": "Notification",
                    "TopicArn": "arn:aws:sns:ap-southeast-2:111122223333:elbmedic-alarms",
                    "Subject": "ALARM: \"x\" in Asia Pacific (Sydney)",
                    "Message": m.to_string(),
                }
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

fn single(bytes: &[u8]) -> Result<Intake, IntakeError> {
    let mut all = parse_input(bytes).expect("input readable");
    assert_eq!(all.len(), 1);
    all.remove(0)
}

#[test]
fn classic_alarm_in_sns_event_is_diagnosed() {
    let intake = single(&sns_event(&[clb_alarm()])).unwrap();
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = intake
    else {
        panic!("expected diagnose, got {intake:?}")
    };
    assert_eq!(load_balancer.kind, LbKind::Classic);
    assert_eq!(load_balancer.name, "a1b2c3d4e5f6");
    assert_eq!(load_balancer.id, "a1b2c3d4e5f6");
    assert_eq!(alarm.region, "eu-west-1", "AlarmArn wins over topic ARN");
    assert_eq!(alarm.metrics[0].statistic.as_deref(), Some("Sum"));
    assert_eq!(alarm.description, None);
    assert_eq!(alarm.state_change_epoch, Some(1_795_456_800));
    assert_eq!(alarm.period_seconds, Some(60));
}

/// The SNS envelope as SNS delivers it to SQS and HTTPS subscribers (and as a notification's
/// JSON shows it): read like a Lambda record, its topic feeding the region as there.
#[test]
fn an_sns_envelope_is_read_like_a_record() {
    let mut alarm = clb_alarm();
    alarm.as_object_mut().unwrap().remove("AlarmArn");
    let envelope = json!({
        "Type": "Notification",
        "MessageId": "5f0e1d2c-3b4a-5968-7a8b-9c0d1e2f3a40",
        "TopicArn": "arn:aws:sns:ap-southeast-2:111122223333:elbmedic-alarms",
        "Subject": "ALARM: \"orders-clb-5xx\" in Asia Pacific (Sydney)",
        "Message": alarm.to_string(),
        "Timestamp": "2026-11-23T18:00:00.512Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.ap-southeast-2.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.ap-southeast-2.amazonaws.com/?Action=Unsubscribe"
    });
    let intake = single(&serde_json::to_vec(&envelope).unwrap()).unwrap();
    assert!(matches!(intake, Intake::Diagnose { .. }), "{intake:?}");
    assert_eq!(intake.alarm().region, "ap-southeast-2");
    // Another Type, or no Message, is still not an alarm.
    for forged in [
        json!({"Type": "SubscriptionConfirmation", "Message": alarm.to_string()}),
        json!({"Type": "Notification"}),
    ] {
        assert!(
            parse_input(&serde_json::to_vec(&forged).unwrap()).is_err(),
            "{forged}"
        );
    }
}

#[test]
fn bare_alarm_message_is_accepted() {
    let bytes = serde_json::to_vec(&clb_alarm()).unwrap();
    assert!(matches!(single(&bytes).unwrap(), Intake::Diagnose { .. }));
}

#[test]
fn region_falls_back_to_topic_then_display_name() {
    let mut alarm = clb_alarm();
    alarm.as_object_mut().unwrap().remove("AlarmArn");
    let from_topic = single(&sns_event(&[alarm.clone()])).unwrap();
    assert_eq!(from_topic.alarm().region, "ap-southeast-2");
    let bare = single(&serde_json::to_vec(&alarm).unwrap()).unwrap();
    assert_eq!(bare.alarm().region, "eu-west-1");
    alarm["Region"] = json!("Europe (Frankfurt)");
    assert_eq!(
        single(&serde_json::to_vec(&alarm).unwrap())
            .unwrap()
            .alarm()
            .region,
        "eu-central-1"
    );
    alarm["Region"] = json!("South America (São Paulo)");
    assert_eq!(
        single(&serde_json::to_vec(&alarm).unwrap())
            .unwrap()
            .alarm()
            .region,
        "sa-east-1"
    );
    alarm["Region"] = json!("Atlantis (Central)");
    let err = single(&serde_json::to_vec(&alarm).unwrap()).unwrap_err();
    assert!(matches!(err, IntakeError::UnknownRegion { .. }), "{err:?}");
}

#[test]
fn alb_alarm_with_dimensions_in_any_order_and_availability_zone() {
    let message = json!({
        "AlarmName": "checkout-504",
        "AWSAccountId": "111122223333",
        "NewStateValue": "ALARM",
        "StateChangeTime": "2026-11-23T18:00:00.000+0000",
        "Region": "US East (N. Virginia)",
        "Trigger": {
            "MetricName": "HTTPCode_ELB_504_Count",
            "Namespace": "AWS/ApplicationELB",
            "Statistic": "SUM",
            "Dimensions": [
                {"value": "us-east-1a", "name": "AvailabilityZone"},
                {"value": "targetgroup/k8s-shop-checkout-0a1b2c3d4e/0123456789abcdef", "name": "TargetGroup"},
                {"value": "app/k8s-shop-checkout-1a2b3c4d5e/50dc6c495c0c9188", "name": "LoadBalancer"}
            ],
            "Period": 300,
            "EvaluationPeriods": 2
        }
    });
    let intake = single(&serde_json::to_vec(&message).unwrap()).unwrap();
    let lb = intake.load_balancer().unwrap();
    assert_eq!(lb.kind, LbKind::Application);
    assert_eq!(lb.name, "k8s-shop-checkout-1a2b3c4d5e");
    assert_eq!(lb.id, "app/k8s-shop-checkout-1a2b3c4d5e/50dc6c495c0c9188");
    assert_eq!(
        lb.target_group.as_deref(),
        Some("targetgroup/k8s-shop-checkout-0a1b2c3d4e/0123456789abcdef")
    );
    assert_eq!(intake.alarm().region, "us-east-1");
}

#[test]
fn ok_and_insufficient_data_are_not_diagnosed() {
    let mut alarm = clb_alarm();
    alarm["NewStateValue"] = json!("OK");
    assert!(matches!(
        single(&serde_json::to_vec(&alarm).unwrap()).unwrap(),
        Intake::Recovered { .. }
    ));
    alarm["NewStateValue"] = json!("INSUFFICIENT_DATA");
    assert!(matches!(
        single(&serde_json::to_vec(&alarm).unwrap()).unwrap(),
        Intake::Skipped { .. }
    ));
}

#[test]
fn metric_math_alarm_on_one_lb_is_diagnosed() {
    let message = json!({
        "AlarmName": "orders-5xx-rate",
        "NewStateValue": "ALARM",
        "AlarmArn": "arn:aws:cloudwatch:us-west-2:111122223333:alarm:orders-5xx-rate",
        "Trigger": {
            "Period": 60, "EvaluationPeriods": 3, "Threshold": 5.0,
            "Metrics": [
                {"Id": "e1", "Expression": "100 * m1 / m2", "Label": "5xx rate", "ReturnData": true},
                {"Id": "m1", "ReturnData": false, "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_ELB_5XX_Count",
                    "Dimensions": [{"value": "app/orders/0123456789abcdef", "name": "LoadBalancer"}]}, "Period": 60, "Stat": "Sum"}},
                {"Id": "m2", "ReturnData": false, "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                    "Dimensions": [{"value": "app/orders/0123456789abcdef", "name": "LoadBalancer"}]}, "Period": 60, "Stat": "Sum"}}
            ]
        }
    });
    let intake = single(&serde_json::to_vec(&message).unwrap()).unwrap();
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = intake
    else {
        panic!("{intake:?}")
    };
    assert_eq!(load_balancer.name, "orders");
    assert_eq!(alarm.expression.as_deref(), Some("100 * m1 / m2"));
    assert_eq!(
        alarm.primary_metric().unwrap().metric_name,
        "HTTPCode_ELB_5XX_Count"
    );
    assert_eq!(alarm.period_seconds, Some(60));
}

/// An NLB alarm names its load balancer by `net/NAME/ID`; anything else in that dimension is
/// refused as invalid, never looked up.
#[test]
fn a_network_load_balancer_alarm_is_diagnosed() {
    let mut nlb = clb_alarm();
    nlb["Trigger"]["Namespace"] = json!("AWS/NetworkELB");
    nlb["Trigger"]["MetricName"] = json!("TCP_Target_Reset_Count");
    nlb["Trigger"]["Dimensions"] =
        json!([{"name": "LoadBalancer", "value": "net/k8s-iot-mqtt-1a2b3c4d5e/9f8e7d6c5b4a3921"}]);
    let intake = single(&serde_json::to_vec(&nlb).unwrap()).unwrap();
    let lb = intake
        .load_balancer()
        .unwrap_or_else(|| panic!("{intake:?}"));
    assert_eq!(lb.kind, LbKind::Network);
    assert_eq!(lb.name, "k8s-iot-mqtt-1a2b3c4d5e");
    assert_eq!(lb.id, "net/k8s-iot-mqtt-1a2b3c4d5e/9f8e7d6c5b4a3921");
    for forged in [
        "app/x/9f8e7d6c5b4a3921",
        "net/x/1",
        "net/../9f8e7d6c5b4a3921",
        "net/x/9f8e7d6c5b4a3921/extra",
    ] {
        nlb["Trigger"]["Dimensions"] = json!([{"name": "LoadBalancer", "value": forged}]);
        assert!(
            single(&serde_json::to_vec(&nlb).unwrap()).is_err(),
            "{forged}"
        );
    }
}

#[test]
fn unsupported_alarms_say_why() {
    let base = clb_alarm();
    let mut gateway = base.clone();
    gateway["Trigger"]["Namespace"] = json!("AWS/GatewayELB");
    gateway["Trigger"]["Dimensions"] = json!([{"name": "LoadBalancer", "value": "gwy/x/1"}]);
    let mut ec2 = base.clone();
    ec2["Trigger"]["Namespace"] = json!("AWS/EC2");
    let mut no_lb = base.clone();
    no_lb["Trigger"]["Dimensions"] = json!([{"name": "AvailabilityZone", "value": "eu-west-1a"}]);
    let mut other_metric = base.clone();
    other_metric["Trigger"]["MetricName"] = json!("HTTPCode_Backend_5XX");
    let mut search = base.clone();
    search["Trigger"] = json!({"Metrics": [{"Id": "e1", "ReturnData": true,
        "Expression": "MAX(SEARCH('{AWS/ApplicationELB,LoadBalancer} MetricName=\"HTTPCode_ELB_5XX_Count\"', 'Sum', 60))"}]});
    let mut two_lbs = base.clone();
    two_lbs["Trigger"] = json!({"Metrics": [
        {"Id": "e1", "Expression": "m1 + m2", "ReturnData": true},
        {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "AWS/ELB", "MetricName": "HTTPCode_ELB_5XX", "Dimensions": [{"name": "LoadBalancerName", "value": "one"}]}, "Period": 60, "Stat": "Sum"}},
        {"Id": "m2", "MetricStat": {"Metric": {"Namespace": "AWS/ELB", "MetricName": "HTTPCode_ELB_5XX", "Dimensions": [{"name": "LoadBalancerName", "value": "two"}]}, "Period": 60, "Stat": "Sum"}}
    ]});
    for (message, expected) in [
        (gateway, "AWS/GatewayELB"),
        (ec2, "AWS/EC2"),
        (no_lb, "no LoadBalancerName"),
        (other_metric, "HTTPCode_Backend_5XX"),
        (search, "SEARCH"),
        (two_lbs, "2 load balancers"),
    ] {
        let intake = single(&serde_json::to_vec(&message).unwrap()).unwrap();
        let Intake::Unsupported { reason, .. } = &intake else {
            panic!("{intake:?}")
        };
        assert!(
            reason.contains(expected),
            "{reason:?} should mention {expected:?}"
        );
    }
}

#[test]
fn every_record_is_handled_even_when_one_is_bad() {
    let mut ok = clb_alarm();
    ok["NewStateValue"] = json!("OK");
    let mut bytes: serde_json::Value =
        serde_json::from_slice(&sns_event(&[clb_alarm(), ok])).unwrap();
    bytes["Records"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Sns": {"Message": "{not json"}}));
    let results = parse_input(&serde_json::to_vec(&bytes).unwrap()).unwrap();
    assert_eq!(results.len(), 3);
    assert!(matches!(results[0], Ok(Intake::Diagnose { .. })));
    assert!(matches!(results[1], Ok(Intake::Recovered { .. })));
    assert!(matches!(
        results[2],
        Err(IntakeError::InvalidMessage { record: 3, .. })
    ));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "invalid JSON"),
        (b"{\"Records\": [", "invalid JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b"{\"hello\": 1}", "neither an SNS event"),
        (b"{\"Records\": []}", "no records"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"{\"AlarmName\": \"x\"}", "no NewStateValue"),
        (b"{\"AlarmName\": 5}", "not a CloudWatch alarm"),
        (
            b"{\"AlarmName\": \"x\", \"NewStateValue\": \"WEIRD\", \"Trigger\": {}}",
            "WEIRD",
        ),
    ];
    for (input, expected) in cases {
        let message = match parse_input(input) {
            Err(e) => e.to_string(),
            Ok(mut records) => records.remove(0).unwrap_err().to_string(),
        };
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
    }
    let big = vec![b' '; MAX_INPUT_BYTES + 1];
    assert!(matches!(parse_input(&big), Err(IntakeError::TooLarge(_))));
}

#[test]
fn invalid_json_reports_line_and_column() {
    let err = parse_input(b"{\n  \"AlarmName\": \"x\",\n  oops\n}").unwrap_err();
    let IntakeError::InvalidJson { line, column, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!((line, column), (3, 3));
}

#[test]
fn hostile_numbers_and_types_do_not_panic() {
    let mut alarm = clb_alarm();
    alarm["Trigger"]["Period"] = json!("300");
    alarm["Trigger"]["EvaluationPeriods"] = json!(-4);
    alarm["Trigger"]["Threshold"] = json!({"x": 1});
    alarm["Trigger"]["Dimensions"] =
        json!([{"value": 1}, {"name": "LoadBalancerName", "value": "ok"}]);
    alarm["StateChangeTime"] = json!("yesterday");
    let intake = single(&serde_json::to_vec(&alarm).unwrap()).unwrap();
    assert_eq!(intake.alarm().period_seconds, Some(300));
    assert_eq!(intake.alarm().evaluation_periods, None);
    assert_eq!(intake.alarm().state_change_epoch, None);
    assert_eq!(intake.load_balancer().unwrap().name, "ok");
}

#[test]
fn timestamps_in_cloudwatch_and_rfc3339_forms() {
    assert_eq!(
        parse_timestamp("2026-11-23T18:00:00.000+0000"),
        Some(1_795_456_800)
    );
    assert_eq!(parse_timestamp("2026-11-23T18:00:00Z"), Some(1_795_456_800));
    assert_eq!(
        parse_timestamp("2026-11-23T19:00:00+01:00"),
        Some(1_795_456_800)
    );
    assert_eq!(parse_timestamp("not a time"), None);
}

/// The account picks the role that is assumed: an alarm whose AWSAccountId and AlarmArn name
/// different accounts is refused, not diagnosed in either.
#[test]
fn an_alarm_whose_two_accounts_disagree_is_refused() {
    let mut forged = clb_alarm();
    forged["AWSAccountId"] = json!("210987654321");
    let error = single(&sns_event(&[forged])).unwrap_err().to_string();
    assert!(error.contains("AWSAccountId"), "{error}");
    assert!(error.contains("111122223333"), "{error}");
    // An older message without AWSAccountId takes the AlarmArn's.
    let mut older = clb_alarm();
    older.as_object_mut().unwrap().remove("AWSAccountId");
    let intake = single(&sns_event(&[older])).unwrap();
    assert_eq!(intake.alarm().account_id.as_deref(), Some("111122223333"));
}

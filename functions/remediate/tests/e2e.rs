//! Remediation end to end on a real moto server. In auto, the built `diagnose` binary
//! publishes a plan to the remediation topic, the built `remediate` binary consumes it through
//! the Lambda Runtime API, and moto's state is checked for exactly the change specified; a
//! second run changes nothing. In-process handlers cover the rest: off and dry-run, 20
//! concurrent runs, explicit denies, forged plans, the ledger's cooldown and lock.

mod flows;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use aws_sdk_ec2::types::NetworkAclEntry;
use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::ledger::Ledger;
use elbmedic_aws::settings::{Config, Role};
use elbmedic_engine::plan::message::PlanMessage;
use elbmedic_engine::plan::Action;
use elbmedic_engine::snapshot::PortRange;
use flows::*;
use serde_json::{json, Value};
use support::moto::{use_moto, Moto};
use support::runtime_api::invoke;
use support::*;

/// The entries elbmedic added: allow TCP 1024-65535 to one of the LB subnets.
fn ephemeral_allows<'a>(entries: &'a [NetworkAclEntry], net: &Network) -> Vec<&'a NetworkAclEntry> {
    entries
        .iter()
        .filter(|e| {
            net.public
                .iter()
                .any(|s| e.cidr_block() == Some(s.cidr.as_str()))
        })
        .collect()
}

async fn node_sg_rules(aws: &Aws, group: &str) -> Vec<aws_sdk_ec2::types::IpPermission> {
    aws.ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .ip_permissions()
        .to_vec()
}

async fn idle_timeout(aws: &Aws, arn: &str) -> String {
    aws.elbv2
        .describe_load_balancer_attributes()
        .load_balancer_arn(arn)
        .send()
        .await
        .unwrap()
        .attributes()
        .iter()
        .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
        .and_then(|a| a.value().map(str::to_string))
        // moto reports the attribute only once it is set; AWS's default is 60 s.
        .unwrap_or_else(|| "60".into())
}

/// Auto, through both binaries: diagnose's plan, remediate's outcome summary and report.
async fn auto_round_trip(
    moto: &Moto,
    aws: &Aws,
    t: &Topics,
    event: String,
) -> (Value, String, Value, Value) {
    let diagnosed = invoke(
        &diagnose_binary(),
        ACCOUNT,
        moto,
        &[
            ("REPORT_TOPIC_ARN", t.reports.clone()),
            ("REMEDIATION_MODE", "auto".into()),
            ("REMEDIATION_TOPIC_ARN", t.plans.clone()),
        ],
        event,
    );
    diagnosed
        .response
        .unwrap_or_else(|e| panic!("diagnose failed: {e}\n{}", diagnosed.logs));
    let diagnosis = published_report(aws, &t.reports_queue).await;
    assert_eq!(
        diagnosis["remediation"]["stage"], "planned",
        "{diagnosis:#}"
    );
    let plan = published_report(aws, &t.plans_queue).await.to_string();
    let applied = invoke(
        env!("CARGO_BIN_EXE_remediate"),
        ACCOUNT,
        moto,
        &[
            ("REPORT_TOPIC_ARN", t.reports.clone()),
            ("REMEDIATION_MODE", "auto".into()),
            ("REMEDIATION_TOPIC_ARN", t.plans.clone()),
        ],
        sns_event(&t.plans, &plan),
    );
    let logs = applied.logs.clone();
    let summary: Value = serde_json::from_str(
        &applied
            .response
            .unwrap_or_else(|e| panic!("remediate failed: {e}\n{logs}")),
    )
    .unwrap();
    let outcome = published_report(aws, &t.reports_queue).await;
    (diagnosis, plan, summary, outcome)
}

#[tokio::test]
async fn auto_adds_exactly_the_ephemeral_entries_and_a_second_run_changes_nothing() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (net, event) = nacl_scenario(&aws).await;
    let before = egress_entries(&aws, &net.private_acl).await;

    let (_, plan, summary, outcome) = auto_round_trip(&moto, &aws, &t, event).await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let after = egress_entries(&aws, &net.private_acl).await;
    assert_eq!(after.len(), before.len() + 2, "one entry per LB subnet");
    let added = ephemeral_allows(&after, &net);
    assert_eq!(added.len(), 2);
    for entry in &added {
        assert_eq!(entry.protocol(), Some("6"));
        assert_eq!(entry.rule_action().map(|a| a.as_str()), Some("allow"));
        let ports = entry.port_range().unwrap();
        assert_eq!((ports.from(), ports.to()), (Some(1024), Some(65535)));
        // Before 110 (the 32768-65535 allow) is irrelevant; it must come before the implicit
        // deny and win: the verification below proves that.
    }
    let remediation = &outcome["remediation"];
    assert_eq!(remediation["status"], "applied", "{outcome:#}");
    for check in remediation["verification"].as_array().unwrap() {
        assert_eq!(check["open"], true, "{check:#}");
    }
    for step in remediation["steps"].as_array().unwrap() {
        assert!(step["rollback"]
            .as_str()
            .unwrap()
            .starts_with("aws ec2 delete-network-acl-entry"));
    }
    assert!(
        !outcome["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "nacl-blocks-ephemeral-ports"),
        "the re-diagnosis no longer finds the drop: {outcome:#}"
    );

    // The same plan again: nothing to do, nothing changed.
    let again = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "auto")]);
    let summary = run_plan(&again, &plan, "second").await;
    assert_eq!(
        summary["records"][0]["status"], "nothing-to-do",
        "{summary:#}"
    );
    assert_eq!(
        egress_entries(&aws, &net.private_acl).await.len(),
        after.len()
    );
}

#[tokio::test]
async fn auto_adds_the_sg_rule_by_group_reference() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let net = network(&aws, &[]).await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    let errors = [0.0, 60.0, 64.0];
    alb_metrics(&aws, &id, now, &errors, &[0.0; 3], &errors, &errors).await;
    let before = node_sg_rules(&aws, &net.node_sg).await;

    let event = alb_event("HTTPCode_ELB_504_Count", &id, now);
    let (_, plan, summary, outcome) = auto_round_trip(&moto, &aws, &t, event).await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let after = node_sg_rules(&aws, &net.node_sg).await;
    assert_eq!(after.len(), before.len() + 1, "{after:#?}");
    let rule = after
        .iter()
        .find(|p| p.from_port() == Some(8080))
        .expect("a rule on the target port");
    assert_eq!(
        (rule.to_port(), rule.ip_protocol()),
        (Some(8080), Some("tcp"))
    );
    assert_eq!(
        rule.user_id_group_pairs()[0].group_id(),
        Some(net.lb_sg.as_str())
    );
    assert!(rule.ip_ranges().is_empty(), "never a CIDR");
    assert!(rule.user_id_group_pairs()[0]
        .description()
        .unwrap()
        .contains("elbmedic"));
    assert_eq!(
        outcome["remediation"]["verification"][0]["open"], true,
        "{outcome:#}"
    );

    let again = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "auto")]);
    let summary = run_plan(&again, &plan, "second").await;
    assert_eq!(
        summary["records"][0]["status"], "nothing-to-do",
        "{summary:#}"
    );
    assert_eq!(node_sg_rules(&aws, &net.node_sg).await.len(), after.len());
}

#[tokio::test]
async fn auto_raises_the_idle_timeout_within_the_cap_with_rollback_and_annotation() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (_, event) = idle_scenario(&aws).await;
    let arn = alb_arn(&aws, ALB).await;
    assert_eq!(idle_timeout(&aws, &arn).await, "60");

    let (_, plan, summary, outcome) = auto_round_trip(&moto, &aws, &t, event).await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let message = PlanMessage::parse(&plan).unwrap();
    let Some(Action::RaiseIdleTimeout { from: 60, to }) = message.plan.actions.first().cloned()
    else {
        panic!("{:?}", message.plan.actions)
    };
    assert!((61..=300).contains(&to), "{to}");
    assert_eq!(idle_timeout(&aws, &arn).await, to.to_string());
    let remediation = &outcome["remediation"];
    let step = &remediation["steps"][0];
    assert!(step["rollback"]
        .as_str()
        .unwrap()
        .contains("Key=idle_timeout.timeout_seconds,Value=60"));
    assert!(remediation["durable"][0]["command"]
        .as_str()
        .unwrap()
        .contains("kubectl -n shop"));
    assert!(remediation["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("keep-alive")));

    let again = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "auto")]);
    let summary = run_plan(&again, &plan, "second").await;
    assert_eq!(
        summary["records"][0]["status"], "nothing-to-do",
        "{summary:#}"
    );
}

/// An NLB listener's `tcp.idle_timeout.seconds`, as moto holds it.
async fn listener_idle_timeout(aws: &Aws, listener_arn: &str) -> String {
    aws.elbv2
        .describe_listener_attributes()
        .listener_arn(listener_arn)
        .send()
        .await
        .unwrap()
        .attributes()
        .iter()
        .find(|a| a.key() == Some("tcp.idle_timeout.seconds"))
        .and_then(|a| a.value().map(str::to_string))
        .unwrap_or_default()
}

async fn first_listener(aws: &Aws, lb_name: &str) -> String {
    let lb_arn = alb_arn(aws, lb_name).await;
    aws.elbv2
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .listener_arn()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn auto_raises_an_nlb_listeners_idle_timeout_and_refuses_forged_listeners() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (net, event) = nlb_idle_scenario(&aws).await;
    let listener = first_listener(&aws, NLB).await;
    assert_eq!(listener_idle_timeout(&aws, &listener).await, "350");

    let (diagnosis, plan, summary, outcome) = auto_round_trip(&moto, &aws, &t, event).await;
    let codes: Vec<&str> = diagnosis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["nlb-idle-timeout-resets"], "{diagnosis:#}");
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let genuine = PlanMessage::parse(&plan).unwrap();
    let [Action::RaiseListenerIdleTimeout {
        listener_arn,
        port: 1883,
        from: 350,
        to: 700,
    }] = genuine.plan.actions.as_slice()
    else {
        panic!("{:?}", genuine.plan.actions)
    };
    assert_eq!(listener_arn, &listener);
    assert_eq!(listener_idle_timeout(&aws, &listener).await, "700");
    let step = &outcome["remediation"]["steps"][0];
    let rollback = step["rollback"].as_str().unwrap();
    assert!(
        rollback.contains("modify-listener-attributes")
            && rollback.contains("Key=tcp.idle_timeout.seconds,Value=350"),
        "{rollback}"
    );

    let again = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "auto")]);
    let summary = run_plan(&again, &plan, "second").await;
    assert_eq!(
        summary["records"][0]["status"], "nothing-to-do",
        "{summary:#}"
    );

    // Another NLB's listener, a timeout out of range, and the ALB's kind of raise.
    let other = nlb(&aws, &net, "k8s-shop-other-0a1b2c3d4e", &PODS, &[]).await;
    assert!(other.starts_with("net/"));
    let foreign = first_listener(&aws, "k8s-shop-other-0a1b2c3d4e").await;
    let forged: Vec<(&str, Action)> = vec![
        (
            "another NLB's listener",
            Action::RaiseListenerIdleTimeout {
                listener_arn: foreign.clone(),
                port: 1883,
                from: 350,
                to: 900,
            },
        ),
        (
            "a listener ARN under this NLB's name that it does not have",
            Action::RaiseListenerIdleTimeout {
                listener_arn: format!("{listener}0"),
                port: 1883,
                from: 700,
                to: 900,
            },
        ),
        (
            "above AWS's 6000 s",
            Action::RaiseListenerIdleTimeout {
                listener_arn: listener.clone(),
                port: 1883,
                from: 700,
                to: 7000,
            },
        ),
        (
            "the wrong port",
            Action::RaiseListenerIdleTimeout {
                listener_arn: listener.clone(),
                port: 22,
                from: 700,
                to: 900,
            },
        ),
        (
            "a load-balancer idle timeout on an NLB",
            Action::RaiseIdleTimeout { from: 60, to: 120 },
        ),
    ];
    for (name, action) in forged {
        let mut message = genuine.clone();
        message.plan.actions = vec![action];
        message.plan.id = message.plan.content_id();
        let handler = remediate_handler(
            &t.reports,
            &[
                ("REMEDIATION_MODE", "auto"),
                ("MAX_NLB_IDLE_TIMEOUT", "6000"),
            ],
        );
        let summary = run_plan(&handler, &message.to_json(), name).await;
        assert_eq!(
            summary["records"][0]["status"], "refused",
            "{name}: {summary:#}"
        );
    }
    assert_eq!(listener_idle_timeout(&aws, &listener).await, "700");
    assert_eq!(listener_idle_timeout(&aws, &foreign).await, "350");
}

#[tokio::test]
async fn off_and_dry_run_change_nothing() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (net, event) = nacl_scenario(&aws).await;
    let plan = planned(&aws, &t, &event, &[]).await;
    let before = egress_entries(&aws, &net.private_acl).await;
    let payload: Value = serde_json::from_str(&sns_event(&t.plans, &plan)).unwrap();

    let off = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "off")]);
    let summary = off.handle(&payload, now(), "off").await.unwrap();
    assert_eq!(summary["records"][0]["status"], "refused");
    assert!(summary["records"][0]["headline"]
        .as_str()
        .unwrap()
        .contains("kill switch"));

    let dry = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "dry-run")]);
    let summary = dry.handle(&payload, now(), "dry").await.unwrap();
    assert_eq!(summary["records"][0]["status"], "dry-run", "{summary:#}");
    assert_eq!(egress_entries(&aws, &net.private_acl).await, before);

    // A plan sent by diagnose in approve mode is not applied by an approve-mode remediate
    // until a human approves it.
    let approve = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "approve")]);
    let summary = approve.handle(&payload, now(), "approve").await.unwrap();
    assert_eq!(summary["records"][0]["status"], "refused");
    assert_eq!(egress_entries(&aws, &net.private_acl).await, before);
}

#[tokio::test]
async fn a_dry_run_probes_the_sg_rule_with_ec2_dry_run_and_adds_nothing() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let net = network(&aws, &[]).await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    let errors = [0.0, 60.0, 64.0];
    alb_metrics(&aws, &id, now, &errors, &[0.0; 3], &errors, &errors).await;
    let event = alb_event("HTTPCode_ELB_504_Count", &id, now);
    let plan = planned(&aws, &t, &event, &[]).await;
    let before = node_sg_rules(&aws, &net.node_sg).await;
    let dry = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "dry-run")]);
    let summary = run_plan(&dry, &plan, "dry").await;
    assert_eq!(summary["records"][0]["status"], "dry-run", "{summary:#}");
    let outcome = published_report(&aws, &t.reports_queue).await;
    assert!(
        outcome["remediation"]["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("DryRun"),
        "{outcome:#}"
    );
    assert_eq!(node_sg_rules(&aws, &net.node_sg).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_runs_without_the_ledger_leave_one_entry_per_need() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (net, event) = nacl_scenario(&aws).await;
    let plan = planned(&aws, &t, &event, &[]).await;
    let before = egress_entries(&aws, &net.private_acl).await;
    let handler = Arc::new(remediate_handler(
        &t.reports,
        &[("REMEDIATION_MODE", "auto")],
    ));
    let payload: Value = serde_json::from_str(&sns_event(&t.plans, &plan)).unwrap();
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let handler = handler.clone();
            let payload = payload.clone();
            tokio::spawn(async move { handler.handle(&payload, now(), &format!("run-{i}")).await })
        })
        .collect();
    for run in runs {
        let summary = run.await.unwrap().expect("no failed invocation");
        let status = summary["records"][0]["status"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            ["applied", "nothing-to-do"].contains(&status.as_str()),
            "{summary:#}"
        );
        for step in summary["records"][0]["steps"].as_array().unwrap() {
            assert_ne!(step["status"], "failed", "{summary:#}");
        }
    }
    let after = egress_entries(&aws, &net.private_acl).await;
    assert_eq!(after.len(), before.len() + 2, "{after:#?}");
    assert_eq!(ephemeral_allows(&after, &net).len(), 2);
}

#[tokio::test]
async fn an_explicit_deny_is_refused_unless_overridden() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let net = network(&aws, &[8080]).await;
    // Someone denied the low ephemeral ports explicitly, in front of the allow-all 100.
    nacl_entry(
        &aws,
        &net.private_acl,
        90,
        true,
        "6",
        false,
        "0.0.0.0/0",
        Some((1024, 32767)),
    )
    .await;
    let id = alb(&aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    let errors = [0.0, 31.0, 40.0];
    alb_metrics(&aws, &id, now, &errors, &[0.4; 3], &errors, &errors).await;
    let event = alb_event("HTTPCode_ELB_504_Count", &id, now);
    let before = egress_entries(&aws, &net.private_acl).await;

    // By default the plan refuses it, and there is nothing to send.
    let handler = elbmedic_diagnose::Handler::new(
        Config::from_env(
            Role::Diagnose,
            env(&[
                ("REPORT_TOPIC_ARN", &t.reports),
                ("REMEDIATION_MODE", "auto"),
                ("REMEDIATION_TOPIC_ARN", &t.plans),
            ]),
        )
        .unwrap(),
    );
    handler
        .handle(&serde_json::from_str(&event).unwrap(), Some(ACCOUNT), now)
        .await
        .unwrap();
    let report = published_report(&aws, &t.reports_queue).await;
    let section = &report["remediation"];
    assert!(
        section["plan"]["actions"].as_array().unwrap().is_empty(),
        "{section:#}"
    );
    assert!(section["plan"]["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("OVERRIDE_EXPLICIT_DENY"));
    assert_eq!(egress_entries(&aws, &net.private_acl).await, before);

    // With the override, the allow goes in just below the deny.
    let plan = planned(&aws, &t, &event, &[("OVERRIDE_EXPLICIT_DENY", "true")]).await;
    let remediate = remediate_handler(
        &t.reports,
        &[
            ("REMEDIATION_MODE", "auto"),
            ("OVERRIDE_EXPLICIT_DENY", "true"),
        ],
    );
    let summary = run_plan(&remediate, &plan, "override").await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let after = egress_entries(&aws, &net.private_acl).await;
    let added = ephemeral_allows(&after, &net);
    assert_eq!(added.len(), 2);
    assert!(
        added.iter().all(|e| e.rule_number().unwrap() < 90),
        "{added:#?}"
    );

    // The same plan, to a remediate without the override: refused whole.
    let strict = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "auto")]);
    let mut message = PlanMessage::parse(&plan).unwrap();
    message.plan.expires_at += 1; // a distinct plan, same actions
    let summary = run_plan(&strict, &message.to_json(), "strict").await;
    assert_eq!(summary["records"][0]["status"], "refused", "{summary:#}");
}

#[tokio::test]
async fn forged_plans_change_nothing() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (net, event) = nacl_scenario(&aws).await;
    let genuine = PlanMessage::parse(&planned(&aws, &t, &event, &[]).await).unwrap();
    let arn = alb_arn(&aws, ALB).await;

    // An SG in another VPC, and a NACL of a subnet that is not on the LB's paths.
    let other_vpc = aws
        .ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap();
    let other_vpc = other_vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let foreign_sg = aws
        .ec2
        .create_security_group()
        .group_name("foreign")
        .description("another VPC")
        .vpc_id(&other_vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let unrelated_acl = new_network_acl(&aws, &net.vpc).await;

    let first = genuine.plan.actions[0].clone();
    let with_nacl = |edit: &dyn Fn(&mut Action)| {
        let mut action = first.clone();
        edit(&mut action);
        action
    };
    type Forged<'a> = (&'a str, Vec<Action>, Vec<(&'a str, &'a str)>);
    let forged: Vec<Forged> = vec![
        (
            "0.0.0.0/0",
            vec![with_nacl(&|a| {
                if let Action::AllowNaclEntry { cidr, .. } = a {
                    *cidr = "0.0.0.0/0".into()
                }
            })],
            vec![],
        ),
        (
            "port 22",
            vec![with_nacl(&|a| {
                if let Action::AllowNaclEntry { ports, kind, .. } = a {
                    *ports = PortRange { from: 22, to: 22 };
                    *kind = elbmedic_engine::plan::NaclActionKind::TargetPort;
                }
            })],
            vec![],
        ),
        (
            "an SG in another VPC",
            vec![Action::AllowSgIngress {
                group_id: foreign_sg.clone(),
                source_group_id: net.lb_sg.clone(),
                port: 8080,
                description: "elbmedic".into(),
            }],
            vec![],
        ),
        (
            "a NACL of an unrelated subnet",
            vec![with_nacl(&|a| {
                if let Action::AllowNaclEntry { nacl_id, .. } = a {
                    *nacl_id = unrelated_acl.clone()
                }
            })],
            vec![],
        ),
        (
            "a timeout above the cap",
            vec![Action::RaiseIdleTimeout { from: 60, to: 3600 }],
            vec![],
        ),
        (
            "an action off the allowlist",
            vec![first.clone()],
            vec![("ALLOWED_ACTIONS", "raise-idle-timeout")],
        ),
        (
            "a genuine action next to a forged one",
            vec![
                first.clone(),
                with_nacl(&|a| {
                    if let Action::AllowNaclEntry { cidr, .. } = a {
                        *cidr = "10.9.0.0/16".into()
                    }
                }),
            ],
            vec![],
        ),
    ];
    let entries = egress_entries(&aws, &net.private_acl).await;
    let unrelated = egress_entries(&aws, &unrelated_acl).await;
    let sg = node_sg_rules(&aws, &foreign_sg).await;
    for (name, actions, extra) in forged {
        let mut message = genuine.clone();
        message.plan.actions = actions;
        // The id is a digest, not a secret: a forger computes it, so the guardrails must
        // refuse the content on their own.
        message.plan.id = message.plan.content_id();
        let mut pairs = vec![("REMEDIATION_MODE", "auto")];
        pairs.extend(extra);
        let handler = remediate_handler(&t.reports, &pairs);
        let summary = run_plan(&handler, &message.to_json(), name).await;
        assert_eq!(
            summary["records"][0]["status"], "refused",
            "{name}: {summary:#}"
        );
        assert!(
            !summary.to_string().contains("is not the id of its content"),
            "{name}: the guardrails, not the id, refuse it: {summary:#}"
        );
    }
    let mut expired = genuine.clone();
    expired.plan.created_at = now() - 3700;
    expired.plan.expires_at = expired.plan.created_at + 3600;
    let handler = remediate_handler(&t.reports, &[("REMEDIATION_MODE", "auto")]);
    let summary = run_plan(&handler, &expired.to_json(), "expired").await;
    assert!(summary["records"][0]["headline"]
        .as_str()
        .unwrap()
        .contains("expired"));

    assert_eq!(egress_entries(&aws, &net.private_acl).await, entries);
    assert_eq!(egress_entries(&aws, &unrelated_acl).await, unrelated);
    assert_eq!(node_sg_rules(&aws, &foreign_sg).await, sg);
    assert_eq!(idle_timeout(&aws, &arn).await, "60");
}

/// The ALB idle-timeout scenario on a fresh moto, with the ledger table created.
struct LedgerScenario {
    _moto: Moto,
    aws: Aws,
    t: Topics,
    event: String,
    arn: String,
    clients: Clients,
    ledger: Ledger,
}

async fn idle_scenario_with_ledger() -> LedgerScenario {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (_, event) = idle_scenario(&aws).await;
    let arn = alb_arn(&aws, ALB).await;
    let clients = Clients::load(REGION, CallLimits::default()).await;
    let ledger = Ledger::new(clients.dynamodb.clone(), "elbmedic-ledger");
    assert_eq!(ledger.create_table().await.unwrap(), "created");
    LedgerScenario {
        _moto: moto,
        aws,
        t,
        event,
        arn,
        clients,
        ledger,
    }
}

#[tokio::test]
async fn the_ledger_holds_the_cooldown_the_lock_and_the_audit_trail() {
    let LedgerScenario {
        _moto,
        aws,
        t,
        event,
        arn,
        clients,
        ledger,
    } = idle_scenario_with_ledger().await;
    assert_eq!(ledger.create_table().await.unwrap(), "already exists");
    let with_ledger = [
        ("REMEDIATION_MODE", "auto"),
        ("LEDGER_TABLE", "elbmedic-ledger"),
    ];

    let plan = PlanMessage::parse(&planned(&aws, &t, &event, &[]).await).unwrap();
    let handler = remediate_handler(&t.reports, &with_ledger);
    // Trust round two, defect 5, as reproduced: other actions under the real plan's id are
    // refused before anything is read, and do not take its replay record.
    let mut squatter = plan.clone();
    squatter.plan.actions = vec![Action::RaiseIdleTimeout { from: 60, to: 61 }];
    let summary = run_plan(&handler, &squatter.to_json(), "squatter").await;
    assert_eq!(summary["records"][0]["status"], "refused", "{summary:#}");
    assert!(
        summary.to_string().contains("is not the id of its content"),
        "{summary:#}"
    );
    assert_eq!(idle_timeout(&aws, &arn).await, "60");
    let summary = run_plan(&handler, &plan.to_json(), "first").await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let raised = idle_timeout(&aws, &arn).await;

    // A replay of the applied (and reported) plan is refused, and changes nothing.
    let summary = run_plan(&handler, &plan.to_json(), "replay").await;
    assert_eq!(summary["records"][0]["status"], "refused", "{summary:#}");
    assert!(
        summary["records"][0]["headline"]
            .as_str()
            .unwrap()
            .contains("a replay of an applied plan is refused"),
        "{summary:#}"
    );

    // A second raise within the cooldown is refused; the timeout stays.
    let mut higher = plan.clone();
    let Action::RaiseIdleTimeout { to, .. } = higher.plan.actions[0] else {
        panic!()
    };
    higher.plan.actions = vec![Action::RaiseIdleTimeout {
        from: to,
        to: to + 60,
    }];
    higher.plan.id = higher.plan.content_id();
    let summary = run_plan(&handler, &higher.to_json(), "second").await;
    assert_eq!(summary["records"][0]["status"], "refused", "{summary:#}");
    assert_eq!(summary["records"][0]["steps"][0]["status"], "refused");
    assert_eq!(idle_timeout(&aws, &arn).await, raised);

    // Trust round two, defect 3, as reproduced: the same raise claiming another account (or
    // none), with the alarm's account removed, would miss the cooldown, the lock and the
    // replay keys. It is refused before anything is read, and leaves no ledger item.
    for claimed in [Some("000000000000"), None] {
        let mut forged = higher.clone();
        forged.alarm.account_id = None;
        forged.plan.load_balancer.account = claimed.map(str::to_string);
        // A forger computes the id of what they send.
        forged.plan.id = forged.plan.content_id();
        let summary = run_plan(&handler, &forged.to_json(), "forged-account").await;
        let record = &summary["records"][0];
        let refused = record["status"] == "refused"
            || record["error"]
                .as_str()
                .is_some_and(|e| e.contains("account"));
        assert!(refused, "{claimed:?}: {summary:#}");
        assert_eq!(idle_timeout(&aws, &arn).await, raised, "{claimed:?}");
    }

    // The audit trail has the applied action with before and after.
    let items = clients
        .dynamodb
        .scan()
        .table_name("elbmedic-ledger")
        .send()
        .await
        .unwrap();
    let audit: Vec<_> = items
        .items()
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("audit#"))
        .collect();
    assert_eq!(audit.len(), 1, "{items:#?}");
    assert_eq!(audit[0]["before"].as_s().unwrap(), "idle timeout 60 s");
    assert!(
        !items
            .items()
            .iter()
            .any(|i| i["pk"].as_s().unwrap().contains("000000000000")),
        "no item under a claimed account: {items:#?}"
    );

    // A live lock held by another run: skipped, "remediation in progress".
    let target = &plan.plan.load_balancer;
    let elbmedic_aws::ledger::LockOutcome::Acquired(_) =
        ledger.lock(target, "someone-else", now()).await.unwrap()
    else {
        panic!("the lock was free")
    };
    let mut later = higher.clone();
    later.plan.actions = vec![Action::RaiseIdleTimeout {
        from: to,
        to: to + 1,
    }];
    later.plan.id = later.plan.content_id();
    let no_cooldown = remediate_handler(
        &t.reports,
        &[
            ("REMEDIATION_MODE", "auto"),
            ("LEDGER_TABLE", "elbmedic-ledger"),
            ("COOLDOWN", "0"),
        ],
    );
    let summary = run_plan(&no_cooldown, &later.to_json(), "third").await;
    assert_eq!(summary["records"][0]["status"], "skipped", "{summary:#}");
    assert!(summary["records"][0]["headline"]
        .as_str()
        .unwrap()
        .contains("remediation in progress"));
    assert_eq!(idle_timeout(&aws, &arn).await, raised);
}

/// The controller puts an applied raise back: the next diagnosis, reading the ledger, names
/// elbmedic's raise and the revert, withdraws the raise from the plan (it would be reverted
/// again), and points at the durable annotation.
/// Each outcome is published, and its plan marked reported, before the next record of the
/// event runs: the same plan twice in one event is applied once, and the second record is
/// refused as a replay, not re-sent as an outcome "whose report could not be published".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_with_the_same_plan_twice_applies_it_once() {
    let LedgerScenario {
        _moto,
        aws,
        t,
        event,
        arn,
        ..
    } = idle_scenario_with_ledger().await;
    let with_ledger = [
        ("REMEDIATION_MODE", "auto"),
        ("LEDGER_TABLE", "elbmedic-ledger"),
    ];
    let plan = planned(&aws, &t, &event, &[]).await;
    let handler = remediate_handler(&t.reports, &with_ledger);
    let topic = handler.remediation_topic().unwrap().to_string();
    let record = |message: &str| json!({"EventSource": "aws:sns", "Sns": {"Type": "Notification", "TopicArn": topic, "Message": message}});
    let payload = json!({"Records": [record(&plan), record(&plan)]});
    let summary = handler
        .handle(&payload, now(), "twice")
        .await
        .expect("no failed invocation");
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    assert_eq!(summary["records"][1]["status"], "refused", "{summary:#}");
    assert!(
        summary["records"][1]["headline"]
            .as_str()
            .unwrap()
            .contains("a replay of an applied plan is refused"),
        "{summary:#}"
    );
    assert_ne!(idle_timeout(&aws, &arn).await, "60");
}

#[tokio::test]
async fn a_raise_that_was_put_back_is_reported_and_not_made_again() {
    let LedgerScenario {
        _moto,
        aws,
        t,
        event,
        arn,
        ..
    } = idle_scenario_with_ledger().await;
    // The same alarm is diagnosed twice on purpose: without incidents, since inside one the
    // same state change again is a duplicate and sends nothing (docs/incidents.md).
    let with_ledger = [
        ("LEDGER_TABLE", "elbmedic-ledger"),
        ("INCIDENT_QUIET_MINUTES", "0"),
    ];

    let plan = raise_applied(&aws, &t, &event, &with_ledger).await;
    let Action::RaiseIdleTimeout { from: 60, to } = plan.plan.actions[0] else {
        panic!("{:?}", plan.plan.actions)
    };

    // The Ingress's annotation still says 60 s: the controller writes it back.
    aws.elbv2
        .modify_load_balancer_attributes()
        .load_balancer_arn(&arn)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
                .key("idle_timeout.timeout_seconds")
                .value("60")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let diagnose = diagnose_handler(&t, &with_ledger);
    let payload: Value = serde_json::from_str(&event).unwrap();
    diagnose
        .handle(&payload, Some(ACCOUNT), now())
        .await
        .unwrap();
    let report = published_report(&aws, &t.reports_queue).await;
    let finding = &report["findings"][0];
    assert_eq!(finding["code"], "idle-timeout-exceeded", "{report:#}");
    let evidence: Vec<&str> = finding["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    let expected = format!(
        "from 60 s to {to} s at {}",
        chrono::DateTime::from_timestamp(now(), 0)
            .unwrap()
            .format("%Y-%m-%d")
    );
    assert!(
        evidence.iter().any(|e| e.contains(&expected)
            && e.contains(&format!("(plan {})", plan.plan.id))
            && e.contains("and it is 60 s again")),
        "{evidence:#?}"
    );
    assert!(
        finding["remedies"].as_array().is_none_or(|r| r.is_empty()),
        "{finding:#}"
    );
    assert!(finding["fix"]["notes"][0]
        .as_str()
        .unwrap()
        .contains("reverted before"));
    assert_ne!(report["remediation"]["stage"], "planned", "{report:#}");
}

/// The plan diagnose makes for `event` (with `env`), applied by remediate in auto mode with
/// the ledger; its outcome read off the report queue.
async fn raise_applied(aws: &Aws, t: &Topics, event: &str, env: &[(&str, &str)]) -> PlanMessage {
    let plan = PlanMessage::parse(&planned(aws, t, event, env).await).unwrap();
    let handler = remediate_handler(
        &t.reports,
        &[
            ("REMEDIATION_MODE", "auto"),
            ("LEDGER_TABLE", "elbmedic-ledger"),
        ],
    );
    let summary = run_plan(&handler, &plan.to_json(), "first").await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let _outcome = published_report(aws, &t.reports_queue).await;
    plan
}

/// Right after the report's own raise (60 to 90 s) is applied, the same window read again
/// still holds the old 504s: they are before the fix, and no second raise is proposed.
#[tokio::test]
async fn a_rediagnosis_right_after_an_applied_raise_proposes_no_second_raise() {
    let LedgerScenario {
        _moto,
        aws,
        t,
        event,
        arn,
        ..
    } = idle_scenario_with_ledger().await;
    // Streamed requests that ran past the 60 s timeout (up to 71 s): the raise goes to 90 s,
    // and the same window read again would argue for more (71 s is near 90 s).
    let id = arn.split_once(":loadbalancer/").unwrap().1;
    let dimension = ("LoadBalancer", id);
    put_metric(
        &aws,
        "AWS/ApplicationELB",
        dimension,
        "TargetResponseTime",
        &[8.1, 64.0, 71.0],
        now(),
    )
    .await;
    // Every alarm a full report: this is about the rule, not the incident.
    let with_ledger = [
        ("LEDGER_TABLE", "elbmedic-ledger"),
        ("INCIDENT_QUIET_MINUTES", "0"),
    ];
    let plan = raise_applied(&aws, &t, &event, &with_ledger).await;
    assert!(
        matches!(
            plan.plan.actions[0],
            Action::RaiseIdleTimeout { from: 60, to: 90 }
        ),
        "{:?}",
        plan.plan.actions
    );

    let diagnose = diagnose_handler(&t, &with_ledger);
    let payload: Value = serde_json::from_str(&event).unwrap();
    let answer = diagnose
        .handle(&payload, Some(ACCOUNT), now())
        .await
        .unwrap();
    let report = published_report(&aws, &t.reports_queue).await;
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(!codes.contains(&"idle-timeout-exceeded"), "{report:#}");
    assert!(report.get("remediation").is_none(), "no plan: {report:#}");
    assert!(
        report["checked"].to_string().contains("before the fix at "),
        "{report:#}"
    );
    assert!(answer["records"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c != "idle-timeout-exceeded"));
}

/// The first publish of an outcome fails: Lambda's retry sends the same outcome again,
/// rendered from the ledger, instead of "nothing to do"; once it is out, a replay is refused.
#[tokio::test]
async fn a_retry_after_a_failed_publish_sends_the_outcome_again() {
    let LedgerScenario {
        _moto,
        aws,
        t,
        event,
        arn,
        ..
    } = idle_scenario_with_ledger().await;
    let with_ledger = [
        ("REMEDIATION_MODE", "auto"),
        ("LEDGER_TABLE", "elbmedic-ledger"),
    ];
    let plan = planned(&aws, &t, &event, &[]).await;
    let payload: Value = serde_json::from_str(&sns_event(&t.plans, &plan)).unwrap();
    let gone = format!("{}-gone", t.reports);
    let failing = remediate_handler(&gone, &with_ledger);
    let error = failing.handle(&payload, now(), "first").await.unwrap_err();
    assert_eq!(error.failed, 1, "{error}");
    let raised = idle_timeout(&aws, &arn).await;
    assert_ne!(raised, "60");

    let retry = remediate_handler(&t.reports, &with_ledger);
    let summary = retry.handle(&payload, now(), "retry").await.unwrap();
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let report = published_report(&aws, &t.reports_queue).await;
    let outcome = &report["remediation"];
    assert_eq!(outcome["steps"][0]["status"], "applied", "{report:#}");
    assert!(outcome["steps"][0]["rollback"]
        .as_str()
        .unwrap()
        .contains("Value=60"));
    assert!(
        outcome["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("sent again")),
        "{outcome:#}"
    );
    assert_eq!(
        idle_timeout(&aws, &arn).await,
        raised,
        "nothing changed on the retry"
    );

    let summary = retry.handle(&payload, now(), "replay").await.unwrap();
    assert_eq!(summary["records"][0]["status"], "refused", "{summary:#}");
}

/// `COOLDOWN=0` means no cooldown (documented): a second raise right after the first is made.
#[tokio::test]
async fn cooldown_zero_means_no_cooldown() {
    let LedgerScenario {
        _moto,
        aws,
        t,
        event,
        arn,
        ..
    } = idle_scenario_with_ledger().await;
    let pairs = [
        ("REMEDIATION_MODE", "auto"),
        ("LEDGER_TABLE", "elbmedic-ledger"),
        ("COOLDOWN", "0"),
        ("MAX_IDLE_TIMEOUT", "4000"),
    ];
    let plan = PlanMessage::parse(&planned(&aws, &t, &event, &[]).await).unwrap();
    let handler = remediate_handler(&t.reports, &pairs);
    let summary = run_plan(&handler, &plan.to_json(), "first").await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    let Action::RaiseIdleTimeout { to, .. } = plan.plan.actions[0] else {
        panic!()
    };
    let mut again = plan.clone();
    again.plan.actions = vec![Action::RaiseIdleTimeout {
        from: to,
        to: to + 30,
    }];
    again.plan.id = again.plan.content_id();
    let summary = run_plan(&handler, &again.to_json(), "second").await;
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    assert_eq!(idle_timeout(&aws, &arn).await, (to + 30).to_string());
}

/// A report that cannot be published fails the invocation, and the plan is held back: Lambda's
/// retry sends it, once, with the report.
#[tokio::test]
async fn a_failed_report_holds_its_plan_back() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (_, event) = nacl_scenario(&aws).await;
    let broken = Topics {
        reports: format!("{}-gone", t.reports),
        reports_queue: t.reports_queue.clone(),
        plans: t.plans.clone(),
        plans_queue: t.plans_queue.clone(),
    };
    let payload: Value = serde_json::from_str(&event).unwrap();
    let failing = diagnose_handler(&broken, &[]);
    let error = failing
        .handle(&payload, Some(ACCOUNT), now())
        .await
        .unwrap_err();
    assert_eq!(error.failed, 1, "{error}");
    let held = aws
        .sqs
        .receive_message()
        .queue_url(&t.plans_queue)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    assert!(
        held.messages().is_empty(),
        "a plan was sent although its report failed"
    );
    // The retry publishes the report and then the plan.
    let plan = planned(&aws, &t, &event, &[]).await;
    assert!(PlanMessage::parse(&plan).is_ok());
}

/// What both binaries run with when a plan may change the cluster behind `cluster`.
fn cluster_env(t: &Topics, cluster: &support::kube_api::KubeApi) -> [(&'static str, String); 7] {
    [
        ("REPORT_TOPIC_ARN", t.reports.clone()),
        ("REMEDIATION_MODE", "auto".to_string()),
        ("REMEDIATION_TOPIC_ARN", t.plans.clone()),
        (
            "ALLOWED_ACTIONS",
            "raise-idle-timeout,keep-idle-timeout".to_string(),
        ),
        ("KUBERNETES_READS", "on".to_string()),
        ("KUBERNETES_API_URL", cluster.url()),
        ("KUBERNETES_WATCH_SECONDS", "3".to_string()),
    ]
}

/// What the legacy cloud provider does at a Service sync: it sets the Classic LB's idle
/// timeout from the Service's annotation, or back to its default of 60 s without one. The
/// LB's idle timeout after the sync.
async fn sync_service(aws: &Aws, service: &Value, lb_name: &str) -> i32 {
    use aws_sdk_elasticloadbalancing::types::{ConnectionSettings, LoadBalancerAttributes};
    use elbmedic_engine::plan::durable::CLB_IDLE;
    let seconds = service["metadata"]["annotations"][CLB_IDLE]
        .as_str()
        .map_or(60, |s| s.parse().unwrap());
    let settings = ConnectionSettings::builder()
        .idle_timeout(seconds)
        .build()
        .unwrap();
    aws.elb
        .modify_load_balancer_attributes()
        .load_balancer_name(lb_name)
        .load_balancer_attributes(
            LoadBalancerAttributes::builder()
                .connection_settings(settings)
                .build(),
        )
        .send()
        .await
        .unwrap();
    clb_idle_timeout(aws, lb_name).await
}

async fn clb_idle_timeout(aws: &Aws, lb_name: &str) -> i32 {
    aws.elb
        .describe_load_balancer_attributes()
        .load_balancer_name(lb_name)
        .send()
        .await
        .unwrap()
        .load_balancer_attributes()
        .and_then(|a| a.connection_settings())
        .map(|c| c.idle_timeout())
        .unwrap()
}

/// The built `diagnose` on `event`, reading `cluster`: the plan it sent.
async fn diagnose_in_cluster(
    moto: &Moto,
    aws: &Aws,
    t: &Topics,
    cluster: &support::kube_api::KubeApi,
    event: String,
) -> String {
    let diagnosed = invoke(
        &diagnose_binary(),
        ACCOUNT,
        moto,
        &cluster_env(t, cluster),
        event,
    );
    diagnosed
        .response
        .unwrap_or_else(|e| panic!("diagnose failed: {e}\n{}", diagnosed.logs));
    let _diagnosis = published_report(aws, &t.reports_queue).await;
    published_report(aws, &t.plans_queue).await.to_string()
}

/// The built `remediate` on `plan`: its summary, the outcome report and its logs.
async fn remediate_in_cluster(
    moto: &Moto,
    aws: &Aws,
    t: &Topics,
    cluster: &support::kube_api::KubeApi,
    plan: &str,
    extra: &[(&'static str, String)],
) -> (Value, Value, String) {
    let mut env = cluster_env(t, cluster).to_vec();
    env.extend_from_slice(extra);
    let applied = invoke(
        env!("CARGO_BIN_EXE_remediate"),
        ACCOUNT,
        moto,
        &env,
        sns_event(&t.plans, plan),
    );
    let logs = applied.logs.clone();
    let summary: Value = serde_json::from_str(
        &applied
            .response
            .unwrap_or_else(|e| panic!("remediate failed: {e}\n{logs}")),
    )
    .unwrap();
    let outcome = published_report(aws, &t.reports_queue).await;
    (summary, outcome, logs)
}

/// Issue 25's end: a Classic LB idle-timeout incident, in auto with the durable half allowed,
/// ends with both halves applied through both binaries: moto's load balancer at the new
/// timeout, and the owning Service's annotation set by a server-side apply (a dry run first)
/// that the stand-in records as elbmedic's field, beside the fields other managers keep.
#[tokio::test]
async fn auto_applies_both_halves_of_a_classic_idle_timeout_fix() {
    use elbmedic_engine::plan::durable::CLB_IDLE;
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let name = "a3f1c2e4b5d6978812345678abcdef01";
    let (_, event) = clb_idle_scenario(&aws, name).await;
    let world = json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "orders", "namespace": "shop", "resourceVersion": "7",
                      "annotations": {"team": "orders"},
                      "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                                         "apiVersion": "v1", "fieldsType": "FieldsV1",
                                         "fieldsV1": {"f:metadata": {"f:annotations": {"f:team": {}}},
                                                      "f:spec": {"f:type": {}}}}]},
         "spec": {"type": "LoadBalancer", "selector": {"app": "orders"},
                  "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
    ],
    "on_change": [{"kind": "Service", "namespace": "shop", "name": "orders",
                   "events": [{"reason": "EnsuredLoadBalancer", "message": "Ensured load balancer"}]}]});
    let cluster = moto_cluster("kube-both-halves", &world);
    let plan = diagnose_in_cluster(&moto, &aws, &t, &cluster, event).await;
    let message = PlanMessage::parse(&plan).unwrap();
    let kinds: Vec<&str> = message
        .plan
        .actions
        .iter()
        .map(|a| a.kind().as_str())
        .collect();
    assert_eq!(kinds, ["raise-idle-timeout", "keep-idle-timeout"], "{plan}");
    let (summary, outcome, logs) =
        remediate_in_cluster(&moto, &aws, &t, &cluster, &plan, &[]).await;
    let steps = outcome["remediation"]["steps"].as_array().unwrap();
    assert_eq!(
        summary["records"][0]["status"], "applied",
        "{outcome:#}\n{logs}"
    );
    assert!(
        steps.iter().all(|s| s["status"] == "applied"),
        "{steps:#?}\n{logs}"
    );
    let headline = outcome["remediation"]["headline"].as_str().unwrap();
    assert!(
        headline.contains("both halves: the idle timeout raised on the load balancer and kept at"),
        "{headline}"
    );
    // The AWS half.
    let seconds = clb_idle_timeout(&aws, name).await;
    assert!((61..=300).contains(&seconds), "{seconds}");
    // Verified: the provider's Event after the change ended the watch.
    let keep = steps
        .iter()
        .find(|s| s["action"]["action"] == "keep-idle-timeout")
        .unwrap();
    assert!(
        keep["detail"]
            .as_str()
            .unwrap()
            .ends_with("the controller reconciled it (EnsuredLoadBalancer)"),
        "{keep:#}"
    );
    // The durable half: the annotation, owned by elbmedic; the other managers' fields kept.
    let service = cluster.world()["objects"][1].clone();
    assert_eq!(
        service["metadata"]["annotations"][CLB_IDLE],
        seconds.to_string()
    );
    assert_eq!(service["metadata"]["annotations"]["team"], "orders");
    let managers: Vec<&str> = service["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["kubectl-client-side-apply", "elbmedic"]);
    let patches: Vec<Value> = cluster
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2, "a dry run, then the apply: {patches:#?}");
    assert_eq!(patches[0]["query"]["dryRun"], "All");
    // The next Service sync leaves the fix standing: the annotation holds the new value.
    assert_eq!(sync_service(&aws, &service, name).await, seconds);
    // The rollback puts back what was there: no annotation.
    assert_eq!(
        keep["rollback"],
        format!("kubectl -n shop annotate service orders {CLB_IDLE}-")
    );
}

/// The durable half refused by a conflict: another field manager (here kubectl's client-side
/// apply, which owns every annotation a `kubectl apply` wrote) owns the annotation with
/// another value. The dry run's 409 names it, nothing in the cluster changes, the AWS half
/// still applies, and the outcome warns that the raise will be written back, and when.
#[tokio::test]
async fn a_conflict_names_the_manager_and_the_outcome_warns_that_only_aws_changed() {
    use elbmedic_engine::plan::durable::CLB_IDLE;
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let name = "a3f1c2e4b5d6978812345678abcdef02";
    let (_, event) = clb_idle_scenario(&aws, name).await;
    let world = json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "orders", "namespace": "shop", "resourceVersion": "3",
                      "annotations": {CLB_IDLE: "60"},
                      "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                                         "apiVersion": "v1", "fieldsType": "FieldsV1",
                                         "fieldsV1": {"f:metadata": {"f:annotations": {format!("f:{CLB_IDLE}"): {}}}}}]},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
    ]});
    let cluster = moto_cluster("kube-conflict", &world);
    let plan = diagnose_in_cluster(&moto, &aws, &t, &cluster, event).await;
    let (_, outcome, _) = remediate_in_cluster(&moto, &aws, &t, &cluster, &plan, &[]).await;
    let remediation = &outcome["remediation"];
    let steps = remediation["steps"].as_array().unwrap();
    let keep = steps
        .iter()
        .find(|s| s["action"]["action"] == "keep-idle-timeout")
        .unwrap_or_else(|| panic!("{remediation:#}"));
    assert_eq!(keep["status"], "refused", "{keep:#}");
    let detail = keep["detail"].as_str().unwrap();
    assert!(
        detail.contains("kubectl-client-side-apply") && detail.contains("(409)"),
        "{detail}"
    );
    assert!(steps
        .iter()
        .any(|s| s["action"]["action"] == "raise-idle-timeout" && s["status"] == "applied"));
    let first_note = remediation["notes"][0].as_str().unwrap();
    assert!(
        first_note.starts_with("WARNING: only the AWS half applied")
            && first_note.contains("next sync of its Service"),
        "{first_note}"
    );
    // Nothing changed in the cluster: only the dry run was sent.
    let service = cluster.world()["objects"][1].clone();
    assert_eq!(service["metadata"]["annotations"][CLB_IDLE], "60");
    let patches: Vec<Value> = cluster
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:#?}");
    assert_eq!(patches[0]["query"]["dryRun"], "All");
    // And the warning is true: the next Service sync writes the raise back.
    assert_eq!(sync_service(&aws, &service, name).await, 60);
}

/// The controller fails to reconcile after the durable half applied (its Event comes after
/// the change): elbmedic puts the field back as it was (here: no annotation, so its fields
/// are released), the step says why, and the outcome warns that only the AWS half stands.
#[tokio::test]
async fn a_reconcile_failure_after_the_change_rolls_the_durable_half_back() {
    use elbmedic_engine::plan::durable::CLB_IDLE;
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (_, event) = clb_idle_scenario(&aws, "a3f1c2e4b5d6978812345678abcdef03").await;
    let failure = "Error syncing load balancer: failed to ensure load balancer: AccessDenied";
    let world = json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "orders", "namespace": "shop", "resourceVersion": "3",
                      "annotations": {"team": "orders"}},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
    ],
    "on_change": [{"kind": "Service", "namespace": "shop", "name": "orders",
                   "events": [{"reason": "SyncLoadBalancerFailed", "type": "Warning", "message": failure}]}]});
    let cluster = moto_cluster("kube-rollback", &world);
    let plan = diagnose_in_cluster(&moto, &aws, &t, &cluster, event).await;
    let (_, outcome, logs) = remediate_in_cluster(&moto, &aws, &t, &cluster, &plan, &[]).await;
    let remediation = &outcome["remediation"];
    let keep = remediation["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"]["action"] == "keep-idle-timeout")
        .unwrap_or_else(|| panic!("{remediation:#}"));
    assert_eq!(keep["status"], "failed", "{keep:#}\n{logs}");
    let detail = keep["detail"].as_str().unwrap();
    assert!(
        detail.contains("SyncLoadBalancerFailed on Service shop/orders")
            && detail.contains(failure)
            && detail.ends_with("elbmedic rolled its change back (the field is as it was before)"),
        "{detail}"
    );
    let service = cluster.world()["objects"][1].clone();
    assert_eq!(service["metadata"]["annotations"][CLB_IDLE], Value::Null);
    assert_eq!(service["metadata"]["annotations"]["team"], "orders");
    let patches: Vec<Value> = cluster
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect();
    assert_eq!(
        patches.len(),
        4,
        "a dry run and the apply, then the same for the rollback: {patches:#?}"
    );
    let released: Value = serde_json::from_str(patches[3]["body"].as_str().unwrap()).unwrap();
    assert_eq!(released["metadata"].get("annotations"), None, "{released}");
    assert!(remediation["notes"][0]
        .as_str()
        .unwrap()
        .starts_with("WARNING: only the AWS half applied"));
}

/// The Service of the undo and lock tests: its annotation at 60 s, written by `kubectl apply`
/// (so taking it needs FORCE_CONFLICTS), beside an annotation of its team.
fn service_kept_at_60() -> Value {
    use elbmedic_engine::plan::durable::CLB_IDLE;
    json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "orders", "namespace": "shop", "resourceVersion": "3",
                      "annotations": {CLB_IDLE: "60", "team": "orders"},
                      "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                                         "apiVersion": "v1", "fieldsType": "FieldsV1",
                                         "fieldsV1": {"f:metadata": {"f:annotations": {format!("f:{CLB_IDLE}"): {}, "f:team": {}}}}}]},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
    ]})
}

/// `elbmedic undo PLAN_ID`, the built CLI, with the functions' guardrail variables.
fn undo_cli(
    moto: &Moto,
    cluster: &support::kube_api::KubeApi,
    plan_id: &str,
    extra: &[(&str, &str)],
) -> std::process::Output {
    let cli = std::path::Path::new(env!("CARGO_BIN_EXE_remediate")).with_file_name("elbmedic");
    assert!(
        cli.exists(),
        "{} is missing: build it with `cargo build -p elbmedic`",
        cli.display()
    );
    std::process::Command::new(cli)
        .envs(moto.env())
        .env("AWS_REGION", REGION)
        .env("LEDGER_TABLE", "elbmedic-ledger")
        .env("REMEDIATION_MODE", "auto")
        .env("ALLOWED_ACTIONS", "raise-idle-timeout,keep-idle-timeout")
        .env("KUBERNETES_READS", "on")
        .env("KUBERNETES_API_URL", cluster.url())
        .envs(extra.iter().copied())
        .args(["undo", plan_id])
        .output()
        .unwrap()
}

/// Undo restores the before values: the durable half took the annotation over from
/// `kubectl apply` (FORCE_CONFLICTS), and `elbmedic undo PLAN_ID` puts 60 back from the
/// ledger alone, audited; a second undo finds it as it was. Before that, the kill switch and
/// ALLOWED_NAMESPACES refuse it, and a field someone changed since is left as theirs.
#[tokio::test]
async fn undo_puts_back_the_before_values_from_the_ledger() {
    use elbmedic_engine::plan::durable::CLB_IDLE;
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let clients = Clients::load(REGION, CallLimits::default()).await;
    let ledger = Ledger::new(clients.dynamodb.clone(), "elbmedic-ledger");
    ledger.create_table().await.unwrap();
    let (_, event) = clb_idle_scenario(&aws, "a3f1c2e4b5d6978812345678abcdef04").await;
    let cluster = moto_cluster("kube-undo", &service_kept_at_60());
    let plan = diagnose_in_cluster(&moto, &aws, &t, &cluster, event).await;
    let plan_id = PlanMessage::parse(&plan).unwrap().plan.id;
    let forced = [
        ("LEDGER_TABLE", "elbmedic-ledger".to_string()),
        ("FORCE_CONFLICTS", "true".to_string()),
    ];
    let (_, outcome, logs) = remediate_in_cluster(&moto, &aws, &t, &cluster, &plan, &forced).await;
    let annotation = |cluster: &support::kube_api::KubeApi| {
        cluster.world()["objects"][1]["metadata"]["annotations"][CLB_IDLE].clone()
    };
    let raised = annotation(&cluster);
    assert_ne!(raised, "60", "{outcome:#}\n{logs}");
    assert!(logs.contains("FORCE_CONFLICTS"), "the take-over is logged");

    // The kill switch and the namespace list hold for undo too.
    let off = undo_cli(&moto, &cluster, &plan_id, &[("REMEDIATION_MODE", "off")]);
    let text = String::from_utf8_lossy(&off.stdout);
    assert_eq!(
        off.status.code(),
        Some(4),
        "{text}{}",
        String::from_utf8_lossy(&off.stderr)
    );
    assert!(text.contains("refused: REMEDIATION_MODE is off"), "{text}");
    let dry = undo_cli(
        &moto,
        &cluster,
        &plan_id,
        &[("REMEDIATION_MODE", "dry-run")],
    );
    let text = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{text}");
    assert!(text.contains("would be restored (dry run)"), "{text}");
    assert_eq!(annotation(&cluster), raised, "a dry run changes nothing");
    let elsewhere = undo_cli(&moto, &cluster, &plan_id, &[("ALLOWED_NAMESPACES", "web")]);
    assert!(String::from_utf8_lossy(&elsewhere.stdout).contains("ALLOWED_NAMESPACES"));
    assert_eq!(annotation(&cluster), raised);

    let undone = undo_cli(&moto, &cluster, &plan_id, &[]);
    let text = String::from_utf8_lossy(&undone.stdout);
    assert_eq!(
        undone.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&undone.stderr)
    );
    assert!(
        text.contains("Service shop/orders: restored: put back as it was (60)"),
        "{text}"
    );
    assert_eq!(annotation(&cluster), "60");
    assert_eq!(
        cluster.world()["objects"][1]["metadata"]["annotations"]["team"],
        "orders"
    );
    let target = ledger
        .cluster_change_target(&plan_id)
        .await
        .unwrap()
        .unwrap();
    let audited = ledger
        .audited_changes(&target, &format!("undo-{plan_id}"), 4)
        .await
        .unwrap();
    assert_eq!(audited.len(), 1, "the undo is audited");
    // Again: already as before.
    let again = undo_cli(&moto, &cluster, &plan_id, &[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already as before"));

    // A plan the ledger does not know is a clear error, not a silent success.
    let unknown = undo_cli(&moto, &cluster, "plan-00ff", &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("holds no change in a cluster for plan plan-00ff"));
    let forged = undo_cli(&moto, &cluster, "--table=x", &[]);
    assert_ne!(forged.status.code(), Some(0));
}

/// Someone changed the field after elbmedic: undo leaves it, and says so. And an object
/// another run holds the lock of is not changed by the durable half (its step is refused,
/// naming the holder) while the AWS half still applies.
#[tokio::test]
async fn undo_leaves_a_later_change_and_a_locked_object_is_not_changed() {
    use elbmedic_engine::plan::durable::CLB_IDLE;
    use elbmedic_engine::plan::Place;
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let clients = Clients::load(REGION, CallLimits::default()).await;
    let ledger = Ledger::new(clients.dynamodb.clone(), "elbmedic-ledger");
    ledger.create_table().await.unwrap();
    let (_, event) = clb_idle_scenario(&aws, "a3f1c2e4b5d6978812345678abcdef05").await;
    let cluster = moto_cluster("kube-undo-later", &service_kept_at_60());
    let plan = diagnose_in_cluster(&moto, &aws, &t, &cluster, event).await;
    let message = PlanMessage::parse(&plan).unwrap();
    let forced = [
        ("LEDGER_TABLE", "elbmedic-ledger".to_string()),
        ("FORCE_CONFLICTS", "true".to_string()),
    ];
    // Another run holds the Service's lock: the durable half waits, the AWS half applies.
    let service = Place::Service {
        namespace: "shop".into(),
        name: "orders".into(),
    };
    let cluster_name = message
        .plan
        .actions
        .iter()
        .find_map(Action::place)
        .unwrap()
        .0
        .to_string();
    let held = ledger
        .lock_object(
            &message.plan.load_balancer,
            &cluster_name,
            &service,
            "another-run",
            now(),
        )
        .await
        .unwrap();
    let (_, outcome, _) = remediate_in_cluster(&moto, &aws, &t, &cluster, &plan, &forced).await;
    let steps = outcome["remediation"]["steps"].as_array().unwrap();
    let keep = steps
        .iter()
        .find(|s| s["action"]["action"] == "keep-idle-timeout")
        .unwrap();
    assert_eq!(keep["status"], "refused", "{keep:#}");
    assert!(keep["detail"]
        .as_str()
        .unwrap()
        .contains("another elbmedic run (another-run)"));
    assert!(steps
        .iter()
        .any(|s| s["action"]["action"] == "raise-idle-timeout" && s["status"] == "applied"));
    assert_eq!(
        cluster.world()["objects"][1]["metadata"]["annotations"][CLB_IDLE],
        "60"
    );
    let elbmedic_aws::ledger::LockOutcome::Acquired(lock) = held else {
        panic!("{held:?}")
    };
    ledger.unlock(&lock).await.unwrap();

    // The next alarm's plan (another episode: the raise is in place now) applies the durable
    // half; then someone sets 240 by hand.
    let mut message = message;
    message.plan.episode += 1;
    message.plan.id = message.plan.content_id();
    let (_, outcome, logs) =
        remediate_in_cluster(&moto, &aws, &t, &cluster, &message.to_json(), &forced).await;
    let steps = outcome["remediation"]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["status"], "in-place", "{outcome:#}\n{logs}");
    assert_eq!(steps[1]["status"], "applied", "{outcome:#}\n{logs}");
    let mut world = cluster.world();
    world["objects"][1]["metadata"]["annotations"][CLB_IDLE] = json!("240");
    cluster.set_world(&world);
    let undone = undo_cli(&moto, &cluster, &message.plan.id, &[]);
    let text = String::from_utf8_lossy(&undone.stdout);
    assert_eq!(undone.status.code(), Some(4), "{text}");
    assert!(
        text.contains("changed since elbmedic's change (now \"240\")"),
        "{text}"
    );
    assert_eq!(
        cluster.world()["objects"][1]["metadata"]["annotations"][CLB_IDLE],
        "240"
    );
}

/// The lone Ingress of the idle-timeout ALB (shop/checkout), its attributes as given, with
/// `extra` metadata (annotations, labels) merged in.
fn checkout_ingress(name: &str, attributes: &str, extra: Value) -> Value {
    use elbmedic_engine::plan::durable::ALB_ATTRIBUTES;
    let mut ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "5",
                     "annotations": {ALB_ATTRIBUTES: attributes}},
        "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "checkout", "port": {"number": 80}}}}]}}]}});
    for (section, values) in extra.as_object().unwrap() {
        for (key, value) in values.as_object().unwrap() {
            ingress["metadata"][section][key] = value.clone();
        }
    }
    ingress
}

/// An Ingress Argo CD tracks is not changed in the cluster: the plan refuses the durable
/// half and names the application (the change belongs in its Git source); the AWS half
/// applies, and the outcome warns that it will be written back.
#[tokio::test]
async fn an_argo_cd_tracked_ingress_is_refused_with_its_application_named() {
    use elbmedic_engine::plan::durable::ALB_ATTRIBUTES;
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (_, event) = idle_scenario(&aws).await;
    let tracked = checkout_ingress(
        "checkout",
        "idle_timeout.timeout_seconds=60",
        json!({"annotations": {"argocd.argoproj.io/tracking-id": "shop-app:networking.k8s.io/Ingress:shop/checkout"}}),
    );
    let world = json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        tracked,
    ]});
    let cluster = moto_cluster("kube-argo", &world);
    let plan = diagnose_in_cluster(&moto, &aws, &t, &cluster, event).await;
    let message = PlanMessage::parse(&plan).unwrap();
    assert!(
        message.plan.actions.iter().all(|a| a.place().is_none()),
        "{plan}"
    );
    let refusal = message
        .plan
        .refused
        .iter()
        .find(|r| r.action.place().is_some())
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        refusal
            .reason
            .contains("Argo CD application shop-app re-applies Ingress shop/checkout")
            && refusal.reason.contains("Git source")
            && refusal.reason.contains("OVERRIDE_GITOPS"),
        "{}",
        refusal.reason
    );
    let (_, outcome, logs) = remediate_in_cluster(&moto, &aws, &t, &cluster, &plan, &[]).await;
    let remediation = &outcome["remediation"];
    assert!(
        remediation["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["action"]["action"] == "raise-idle-timeout" && s["status"] == "applied"),
        "{remediation:#}\n{logs}"
    );
    // The exact lines for the Git source: the durable fix the outcome carries.
    let durable = remediation["durable"].to_string();
    assert!(durable.contains(ALB_ATTRIBUTES), "{durable}");
    assert!(
        cluster.requests().iter().all(|r| r["method"] != "PATCH"),
        "nothing is sent to the cluster"
    );
    let ingress = &cluster.world()["objects"][1];
    assert_eq!(
        ingress["metadata"]["annotations"][ALB_ATTRIBUTES],
        "idle_timeout.timeout_seconds=60"
    );
}

/// Two members of an Ingress group declare the idle timeout: no single place is right, so the
/// plan keeps nothing in the cluster, and a forged plan that names one member anyway (its id
/// recomputed, so it passes as genuine) is refused whole, saying why; nothing changes.
#[tokio::test]
async fn a_group_whose_members_disagree_is_refused_and_a_forged_plan_for_one_member_too() {
    use elbmedic_engine::plan::durable::ALB_ATTRIBUTES;
    use elbmedic_engine::plan::Place;
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let (_, event) = idle_scenario(&aws).await;
    // The ALB is the group's: the controller tags it with the group's name.
    let arn = alb_arn(&aws, ALB).await;
    tag_load_balancer(&aws, &arn, &[("ingress.k8s.aws/stack", "shop-group")]).await;
    let member = |name: &str, seconds: u32| {
        checkout_ingress(
            name,
            &format!("idle_timeout.timeout_seconds={seconds}"),
            json!({"annotations": {"alb.ingress.kubernetes.io/group.name": "shop-group"}}),
        )
    };
    let world = json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        member("checkout", 60),
        member("payments", 60),
    ]});
    let cluster = moto_cluster("kube-group", &world);
    let plan = diagnose_in_cluster(&moto, &aws, &t, &cluster, event).await;
    let mut message = PlanMessage::parse(&plan).unwrap();
    assert!(
        message.plan.actions.iter().all(|a| a.place().is_none()),
        "no member is chosen: {plan}"
    );
    let seconds = message
        .plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::RaiseIdleTimeout { to, .. } => Some(*to),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{plan}"));
    message.plan.actions.push(Action::KeepIdleTimeout {
        cluster: CLUSTER.into(),
        place: Place::Ingress {
            namespace: "shop".into(),
            name: "checkout".into(),
        },
        seconds,
    });
    message.plan.id = message.plan.content_id();
    let (_, outcome, logs) =
        remediate_in_cluster(&moto, &aws, &t, &cluster, &message.to_json(), &[]).await;
    let remediation = &outcome["remediation"];
    assert_eq!(remediation["status"], "refused", "{remediation:#}\n{logs}");
    assert!(
        remediation
            .to_string()
            .contains("2 Ingresses of the group declare idle_timeout.timeout_seconds"),
        "{remediation:#}"
    );
    assert!(cluster.requests().iter().all(|r| r["method"] != "PATCH"));
    for at in [1, 2] {
        assert_eq!(
            cluster.world()["objects"][at]["metadata"]["annotations"][ALB_ATTRIBUTES],
            "idle_timeout.timeout_seconds=60"
        );
    }
}

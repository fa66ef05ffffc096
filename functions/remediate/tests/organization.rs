//! One central deployment serving a member account, end to end on one moto server with two
//! accounts (moto gives an assumed role's credentials that role's account). The functions run
//! in account A, moto's default; the broken ALB is in account B. The built `diagnose` binary
//! takes B's alarm through the Lambda Runtime API and reports to A's topic; the built
//! `remediate` binary fixes B's NACL. In-process: an account outside ALLOWED_ACCOUNTS.

mod flows;
#[path = "../../../tests/support/mod.rs"]
mod support;

use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::ledger::Ledger;
use flows::*;
use serde_json::Value;
use support::moto::{use_moto, Moto};
use support::runtime_api::invoke;
use support::*;

const MEMBER: &str = "210987654321";
const EXTERNAL_ID: &str = "elbmedic-e2e-3f2a9c";
const LEDGER: &str = "elbmedic-ledger";

/// The central functions' configuration, as the template sets it with AllowedAccounts.
fn central(t: &Topics, member_role: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REPORT_TOPIC_ARN", t.reports.clone()),
        ("REMEDIATION_MODE", "auto".into()),
        ("REMEDIATION_TOPIC_ARN", t.plans.clone()),
        ("LEDGER_TABLE", LEDGER.into()),
        ("ALLOWED_ACCOUNTS", MEMBER.into()),
        ("MEMBER_ROLE_NAME", member_role.into()),
        ("MEMBER_EXTERNAL_ID", EXTERNAL_ID.into()),
    ]
}

/// How many egress allows of 1024-65535 (or up to 65535) `acl` has to the `cidrs`.
async fn egress_allows_to(aws: &Aws, acl: &str, cidrs: &[&str]) -> usize {
    egress_entries(aws, acl)
        .await
        .iter()
        .filter(|e| e.rule_action().map(|a| a.as_str()) == Some("allow"))
        .filter(|e| cidrs.contains(&e.cidr_block().unwrap_or_default()))
        .filter(|e| e.port_range().and_then(|p| p.to()) == Some(65535))
        .count()
}

#[tokio::test]
async fn a_member_accounts_alb_is_diagnosed_and_fixed_from_the_central_account() {
    let moto = Moto::start();
    use_moto(&moto);
    let central_aws = Aws::new(&moto.url).await;
    let member = Aws::in_account(&moto.url, MEMBER).await;
    account_alias(&member, "prod-payments").await;
    let t = topics(&central_aws).await;
    let clients = Clients::load(REGION, CallLimits::default()).await;
    Ledger::new(clients.dynamodb.clone(), LEDGER)
        .create_table()
        .await
        .unwrap();
    // B's ALB, its node subnets' NACL dropping replies on 1024-32767; B's alarm.
    let (net, id, at) = ephemeral_replies_denied(&member).await;
    let event = in_member_account(&alb_event("HTTPCode_ELB_504_Count", &id, at), MEMBER);
    let lb_cidrs: Vec<&str> = net.public.iter().map(|s| s.cidr.as_str()).collect();
    assert_eq!(
        egress_allows_to(&member, &net.private_acl, &lb_cidrs).await,
        0
    );

    let diagnosed = invoke(
        &diagnose_binary(),
        ACCOUNT,
        &moto,
        &central(&t, "elbmedic-member-read"),
        event,
    );
    let summary: Value = serde_json::from_str(
        &diagnosed
            .response
            .unwrap_or_else(|e| panic!("diagnose failed: {e}\n{}", diagnosed.logs)),
    )
    .unwrap();
    assert_eq!(
        summary["records"][0]["verdict"], "cause-found",
        "{summary:#}"
    );
    let envelope = published_envelope(&central_aws, &t.reports_queue).await;
    let subject = envelope["Subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[elbmedic prod-payments] CAUSE FOUND: "),
        "{subject}"
    );
    let report: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(report["alarm"]["account_id"], MEMBER);
    assert_eq!(report["alarm"]["account_alias"], "prod-payments");
    assert!(
        report.to_string().contains(&net.private_acl),
        "the report names B's NACL: {report:#}"
    );
    assert!(
        !report
            .to_string()
            .contains("not one this deployment serves"),
        "{report:#}"
    );
    // The NACL is B's alone: A's credentials cannot see it, so it was read through B's role.
    let from_central = central_aws
        .ec2
        .describe_network_acls()
        .network_acl_ids(&net.private_acl)
        .send()
        .await;
    assert!(from_central.is_err(), "{from_central:?}");

    let plan = published_report(&central_aws, &t.plans_queue)
        .await
        .to_string();
    let applied = invoke(
        env!("CARGO_BIN_EXE_remediate"),
        ACCOUNT,
        &moto,
        &central(&t, "elbmedic-member-remediate"),
        sns_event(&t.plans, &plan),
    );
    let summary: Value = serde_json::from_str(
        &applied
            .response
            .unwrap_or_else(|e| panic!("remediate failed: {e}\n{}", applied.logs)),
    )
    .unwrap();
    assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
    assert_eq!(
        egress_allows_to(&member, &net.private_acl, &lb_cidrs).await,
        lb_cidrs.len(),
        "one ephemeral-port allow per LB subnet, in B's NACL"
    );
    let outcome = published_report(&central_aws, &t.reports_queue).await;
    assert_eq!(outcome["alarm"]["account_id"], MEMBER);

    // The ledger keys name B's account, so an LB of the same id in another account never
    // shares its lock, cooldown or audit trail.
    let items = clients
        .dynamodb
        .scan()
        .table_name(LEDGER)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| i.get("pk")?.as_s().ok().cloned())
        .collect();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.contains(&format!("#{MEMBER}#"))),
        "{keys:?}"
    );
    for logs in [&diagnosed.logs, &applied.logs] {
        assert!(!logs.contains(EXTERNAL_ID), "the external id is not logged");
        assert!(logs.contains("member role assumed"), "{logs}");
    }
}

/// ALLOWED_ACCOUNTS names another account: B's alarm is refused with a report that says
/// which accounts are served and how to add B, and nothing is read or assumed in B.
#[tokio::test]
async fn an_account_outside_allowed_accounts_is_refused_and_nothing_is_read_there() {
    let moto = Moto::start();
    use_moto(&moto);
    let central_aws = Aws::new(&moto.url).await;
    let member = Aws::in_account(&moto.url, MEMBER).await;
    let t = topics(&central_aws).await;
    let (_, id, at) = ephemeral_replies_denied(&member).await;
    let event = in_member_account(&alb_event("HTTPCode_ELB_504_Count", &id, at), MEMBER);
    let handler = diagnose_handler(
        &t,
        &[
            ("ALLOWED_ACCOUNTS", "444455556666"),
            ("MEMBER_ROLE_NAME", "elbmedic-member-read"),
        ],
    );
    let payload: Value = serde_json::from_str(&event).unwrap();
    let summary = handler
        .handle(&payload, Some(ACCOUNT), now())
        .await
        .expect("a refusal is not a failed invocation");
    assert_eq!(summary["records"][0]["verdict"], "unsupported");
    let report = published_report(&central_aws, &t.reports_queue).await;
    let headline = report["verdict"]["headline"].as_str().unwrap();
    assert!(
        headline.contains(&format!(
            "account {MEMBER} is not one this deployment serves"
        )),
        "{headline}"
    );
    assert!(report["next_steps"][0]
        .as_str()
        .unwrap()
        .contains("elbmedic-member-roles"));
    assert_eq!(report["findings"], serde_json::json!([]));
    assert!(handler.accounts.member_actions().await.is_empty());
    let central_calls = handler.accounts.actions().await;
    assert!(
        !central_calls.contains("sts:AssumeRole"),
        "{central_calls:?}"
    );
    assert!(
        !central_calls.iter().any(|a| a.starts_with("ec2:")),
        "nothing about the load balancer is read: {central_calls:?}"
    );
}

/// Ledger items written before keys named the account (no account in the key) still count
/// for the deployment's own account, so a cooldown started before the upgrade holds; a member
/// account never reads them.
#[tokio::test]
async fn a_cooldown_written_before_keys_named_the_account_still_holds_for_the_own_account() {
    use elbmedic_engine::alarm::LbKind;
    use elbmedic_engine::plan::PlanTarget;
    use elbmedic_engine::snapshot::IdleTimeoutRaise;
    let moto = Moto::start();
    use_moto(&moto);
    let clients = Clients::load(REGION, CallLimits::default()).await;
    let ledger = Ledger::new(clients.dynamodb.clone(), LEDGER);
    ledger.create_table().await.unwrap();
    let id = "app/k8s-shop-checkout/50dc6c495c0c9188";
    let mut target = PlanTarget {
        kind: LbKind::Application,
        name: "k8s-shop-checkout".into(),
        id: id.into(),
        arn: None,
        region: REGION.into(),
        vpc_id: "vpc-1".into(),
        // As a plan made before the organization deployment: no account.
        account: None,
    };
    let raise = IdleTimeoutRaise {
        at: now() - 60,
        from_seconds: Some(60),
        to_seconds: Some(120),
        plan_id: Some("p-old".into()),
    };
    ledger
        .record_idle_timeout_raise(&target, &raise)
        .await
        .unwrap();
    let own = ledger
        .last_idle_timeout_raise(Some(ACCOUNT), REGION, id)
        .await
        .unwrap();
    assert_eq!(
        own,
        Some(raise.clone()),
        "the old key is read for the own account"
    );
    let member = Ledger::new(clients.dynamodb.clone(), LEDGER).for_member_account();
    assert_eq!(
        member
            .last_idle_timeout_raise(Some(MEMBER), REGION, id)
            .await
            .unwrap(),
        None,
        "a member account's LB of the same id does not share it"
    );
    // A raise recorded now is keyed by the account, and read back under it.
    target.account = Some(MEMBER.into());
    let newer = IdleTimeoutRaise {
        plan_id: Some("p-new".into()),
        ..raise
    };
    member
        .record_idle_timeout_raise(&target, &newer)
        .await
        .unwrap();
    assert_eq!(
        member
            .last_idle_timeout_raise(Some(MEMBER), REGION, id)
            .await
            .unwrap(),
        Some(newer)
    );
    assert_eq!(
        ledger
            .last_idle_timeout_raise(Some(ACCOUNT), REGION, id)
            .await
            .unwrap()
            .and_then(|r| r.plan_id)
            .as_deref(),
        Some("p-old")
    );
}

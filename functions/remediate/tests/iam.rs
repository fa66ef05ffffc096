//! The IAM policy in `infra/template.yaml`, proven against the code rather than asserted.
//!
//! Both functions run in-process on a real moto server through every path that calls AWS: an
//! ALB with a NACL dropping replies (and a prefix-list rule), an ALB missing its SG rule, an
//! ALB (alarmed through a composite alarm), a Classic LB timing out and an NLB resetting idle
//! flows, each diagnosed, planned and remediated in auto with the ledger. Every operation their SDK clients perform is recorded by the call recorder. Then,
//! for each function's role in the template:
//! - every action called is granted;
//! - every write granted is called (a write nobody calls is a permission nobody needs);
//! - every read granted but never called is on [`UNSEEN_READS`], with the reason;
//! - what Lambda, SNS, SQS and DynamoDB use on the function's behalf is on [`PLATFORM`] (and
//!   [`DIAGNOSE_PLATFORM`], [`REMEDIATE_PLATFORM`], and [`VPC_PLATFORM`] for the functions in
//!   a VPC), and granted.
//!
//! The unit tests below feed the same audit a policy with each kind of fault.

mod flows;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::ledger::Ledger;
use flows::policy::{granted, is_read, member_template, template, Grant};
use flows::*;
use support::moto::{use_moto, Moto};
use support::*;

/// Permissions the platform uses with the function's role; the code never calls them.
const PLATFORM: &[(&str, &str)] = &[
    (
        "logs:CreateLogStream",
        "Lambda writes the function's logs to its log group as the role",
    ),
    (
        "logs:PutLogEvents",
        "Lambda writes the function's logs to its log group as the role",
    ),
    (
        "sqs:SendMessage",
        "Lambda sends an event that failed after its retries to the dead-letter queue as the role",
    ),
    (
        "kms:GenerateDataKey*",
        "SNS and SQS encrypt what the function publishes with the stack's key, as the caller",
    ),
    (
        "kms:Decrypt",
        "SNS and SQS need it beside GenerateDataKey to use the stack's key for the caller; DynamoDB to read the ledger encrypted with it",
    ),
    (
        "kms:DescribeKey",
        "DynamoDB reads the ledger under the stack's key as the caller",
    ),
];

/// What Lambda does as `diagnose`'s role, beyond [`PLATFORM`]: it polls the follow-up queue.
const DIAGNOSE_PLATFORM: &[(&str, &str)] = &[
    (
        "sqs:ReceiveMessage",
        "Lambda's event source mapping polls the follow-up queue as the role",
    ),
    (
        "sqs:DeleteMessage",
        "Lambda's event source mapping deletes each handled follow-up as the role",
    ),
    (
        "sqs:GetQueueAttributes",
        "Lambda reads the follow-up queue's attributes when it maps it to the function",
    ),
];

/// What Lambda does as either function's role when `FunctionSubnetIds` puts the functions in a
/// VPC: the role policy `vpc-network-interfaces`, which exists only then
/// (`!If [FunctionsInVpc, ...]`; the audit counts it as held). The code never calls the writes;
/// the two reads are ones the gather makes too.
const VPC_PLATFORM: &[(&str, &str)] = &[
    (
        "ec2:CreateNetworkInterface",
        "Lambda creates the function's network interfaces in the VPC as the role",
    ),
    (
        "ec2:DeleteNetworkInterface",
        "Lambda deletes the function's network interfaces it no longer uses as the role",
    ),
    (
        "ec2:AssignPrivateIpAddresses",
        "Lambda assigns the addresses of the function's network interfaces as the role",
    ),
    (
        "ec2:UnassignPrivateIpAddresses",
        "Lambda releases the addresses of the function's network interfaces as the role",
    ),
    (
        "ec2:DescribeNetworkInterfaces",
        "Lambda reads the function's network interfaces as the role (only on every resource)",
    ),
    (
        "ec2:DescribeSubnets",
        "AWSLambdaVPCAccessExecutionRole, AWS's minimum for a function in a VPC, holds it",
    ),
];

/// What DynamoDB needs, beyond [`PLATFORM`], to write the ledger under the stack's key as
/// `remediate` (the actions AWS's own key policy for DynamoDB allows callers).
const REMEDIATE_PLATFORM: &[(&str, &str)] = &[
    (
        "kms:Encrypt",
        "DynamoDB writes the ledger under the stack's key as the caller",
    ),
    (
        "kms:ReEncrypt*",
        "DynamoDB writes the ledger under the stack's key as the caller",
    ),
];

/// Reads granted that the end-to-end runs below do not reach, and why. Keep it short: every
/// entry is a permission that no test proves is needed.
const UNSEEN_READS: &[(&str, &str)] = &[];

const LEDGER: &str = "elbmedic-ledger";

/// Everything wrong between what `role` is granted and what its function was seen calling.
fn audit(
    role: &str,
    granted: &BTreeMap<String, Grant>,
    used: &BTreeSet<String>,
    platform: &[(&str, &str)],
    unseen_reads: &[(&str, &str)],
) -> Vec<String> {
    let platform: BTreeSet<&str> = platform.iter().map(|(a, _)| *a).collect();
    let unseen: BTreeSet<&str> = unseen_reads.iter().map(|(a, _)| *a).collect();
    let mut problems = Vec::new();
    for action in used {
        if !granted.contains_key(action) {
            problems.push(format!(
                "{role}: the code calls {action}, which is not granted"
            ));
        }
    }
    for (action, grant) in granted {
        let action = action.as_str();
        if used.contains(action) {
            if unseen.contains(action) {
                problems.push(format!(
                    "{role}: {action} is called now; take it off UNSEEN_READS"
                ));
            }
            if !is_read(action) && grant.any_resource {
                problems.push(format!(
                    "{role}: the write {action} ({}) is granted on every resource",
                    grant.sid
                ));
            }
        } else if platform.contains(action) {
            continue;
        } else if !is_read(action) {
            problems.push(format!(
                "{role}: the write {action} ({}) is granted but never called",
                grant.sid
            ));
        } else if !unseen.contains(action) {
            problems.push(format!(
                "{role}: the read {action} ({}) is granted, never called and not on UNSEEN_READS",
                grant.sid
            ));
        }
    }
    for action in platform {
        if !granted.contains_key(action) {
            problems.push(format!(
                "{role}: {action} is missing; the platform needs it"
            ));
        }
    }
    problems
}

/// The member account of the organization runs: each scenario is built there too, and its
/// alarm diagnosed and remediated from the central account through the member roles.
const MEMBER: &str = "210987654321";

/// The handlers' actions after each scenario, diagnosed and remediated: with the functions'
/// own roles, and with the member roles.
#[derive(Default)]
struct Seen {
    diagnose: BTreeSet<String>,
    remediate: BTreeSet<String>,
    member_read: BTreeSet<String>,
    member_remediate: BTreeSet<String>,
}

/// Which account a scenario's load balancer is in.
#[derive(Clone, Copy, PartialEq)]
enum In {
    Central,
    Member,
}

impl Seen {
    async fn run(&mut self, aws: &Aws, t: &Topics, event: &str, account: In) {
        self.run_with(aws, t, event, false, account).await
    }

    /// As `run`; with `follow_up`, `diagnose` queues the follow-up and then runs that pass.
    /// `aws` is the central account's; the event names the scenario's account.
    async fn run_with(&mut self, aws: &Aws, t: &Topics, event: &str, follow_up: bool, account: In) {
        let (queue, queue_arn) = queue(aws, "elbmedic-follow-up").await;
        let organization = |role| {
            [
                ("ALLOWED_ACCOUNTS", MEMBER),
                ("MEMBER_ROLE_NAME", role),
                ("MEMBER_EXTERNAL_ID", "elbmedic-iam-proof"),
            ]
        };
        let mut pairs = vec![("LEDGER_TABLE", LEDGER)];
        if account == In::Member {
            pairs.extend(organization("elbmedic-member-read"));
        }
        if follow_up {
            pairs.extend([
                ("FOLLOW_UP_QUEUE_URL", queue.as_str()),
                ("FOLLOW_UP_DELAY", "1"),
            ]);
        }
        let diagnose = diagnose_handler(t, &pairs);
        let plan = planned_by(&diagnose, aws, t, event).await;
        if follow_up {
            let record = queued_follow_up(aws, &queue, &queue_arn).await;
            let response = diagnose
                .handle(&record, Some(ACCOUNT), now())
                .await
                .unwrap();
            assert_eq!(response["batchItemFailures"], serde_json::json!([]));
        }
        let mut pairs = vec![("REMEDIATION_MODE", "auto"), ("LEDGER_TABLE", LEDGER)];
        if account == In::Member {
            pairs.extend(organization("elbmedic-member-remediate"));
        }
        let remediate = remediate_handler(&t.reports, &pairs);
        let summary = run_plan(&remediate, &plan, "iam").await;
        assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
        self.diagnose.extend(diagnose.accounts.actions().await);
        self.remediate.extend(remediate.accounts.actions().await);
        let read = diagnose.accounts.member_actions().await;
        let written = remediate.accounts.member_actions().await;
        assert_eq!(read.len(), usize::from(account == In::Member));
        self.member_read.extend(read.into_values().flatten());
        self.member_remediate
            .extend(written.into_values().flatten());
    }
}

impl Seen {
    /// `event` diagnosed in approve mode with the chat topic and the report bucket, approved
    /// by id from "chat", then recovered.
    async fn run_on_call(&mut self, aws: &Aws, t: &Topics, event: &str, account: In) {
        let (chat, _) = subscribed_topic(aws, "elbmedic-chat", "chat").await;
        create_bucket(aws, PAGES).await;
        // Both functions alike; in a member account each with its own member role.
        let pairs = |member_role: &'static str| {
            let mut pairs = vec![
                ("LEDGER_TABLE", LEDGER),
                ("REMEDIATION_MODE", "approve"),
                ("CHAT_TOPIC_ARN", chat.as_str()),
                ("REPORT_BUCKET", PAGES),
            ];
            if account == In::Member {
                pairs.extend([
                    ("ALLOWED_ACCOUNTS", MEMBER),
                    ("MEMBER_EXTERNAL_ID", "elbmedic-iam-proof"),
                    ("MEMBER_ROLE_NAME", member_role),
                ]);
            }
            pairs
        };
        let diagnose = diagnose_handler(t, &pairs("elbmedic-member-read"));
        let payload: serde_json::Value = serde_json::from_str(event).unwrap();
        diagnose
            .handle(&payload, Some(ACCOUNT), now())
            .await
            .unwrap();
        let report = published_report(aws, &t.reports_queue).await;
        let plan = report["remediation"]["plan"]["id"]
            .as_str()
            .expect("a plan")
            .to_string();
        // The recovery: the same alarm back to OK.
        let mut recovered: serde_json::Value = serde_json::from_str(event).unwrap();
        let sns = &mut recovered["Records"][0]["Sns"];
        let mut message: serde_json::Value =
            serde_json::from_str(sns["Message"].as_str().unwrap()).unwrap();
        message["NewStateValue"] = "OK".into();
        message["OldStateValue"] = "ALARM".into();
        sns["Message"] = message.to_string().into();
        let payload = recovered;
        diagnose
            .handle(&payload, Some(ACCOUNT), now())
            .await
            .unwrap();

        let remediate = remediate_handler(&t.reports, &pairs("elbmedic-member-remediate"));
        let summary = run_plan(&remediate, &format!("approve:{plan}"), "chat").await;
        assert_eq!(summary["records"][0]["status"], "applied", "{summary:#}");
        self.diagnose.extend(diagnose.accounts.actions().await);
        self.remediate.extend(remediate.accounts.actions().await);
        self.member_read.extend(
            diagnose
                .accounts
                .member_actions()
                .await
                .into_values()
                .flatten(),
        );
        self.member_remediate.extend(
            remediate
                .accounts
                .member_actions()
                .await
                .into_values()
                .flatten(),
        );
    }
}

/// The report bucket of the on-call run.
const PAGES: &str = "elbmedic-pages-123456789012";

/// A fresh moto with the topics and the ledger table.
async fn fresh() -> (Moto, Aws, Topics) {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let t = topics(&aws).await;
    let clients = Clients::load(REGION, CallLimits::default()).await;
    Ledger::new(clients.dynamodb.clone(), LEDGER)
        .create_table()
        .await
        .unwrap();
    (moto, aws, t)
}

/// A rule on the node SG from a managed prefix list, so the gather resolves one.
async fn prefix_list_rule(aws: &Aws, net: &Network) {
    let list = aws
        .ec2
        .create_managed_prefix_list()
        .prefix_list_name("office")
        .address_family("IPv4")
        .max_entries(5)
        .entries(
            aws_sdk_ec2::types::AddPrefixListEntry::builder()
                .cidr("192.0.2.0/24")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = list.prefix_list().unwrap().prefix_list_id().unwrap();
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&net.node_sg)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .prefix_list_ids(
                    aws_sdk_ec2::types::PrefixListId::builder()
                        .prefix_list_id(id)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_template_grants_exactly_what_the_functions_call() {
    let mut seen = Seen::default();
    // Every scenario twice: in the functions' own account, then in a member account.
    for account in [In::Central, In::Member] {
        Box::pin(scenarios(&mut seen, account)).await;
    }

    let template = template();
    let diagnose_platform: Vec<(&str, &str)> = PLATFORM
        .iter()
        .chain(DIAGNOSE_PLATFORM)
        .chain(VPC_PLATFORM)
        .copied()
        .collect();
    let mut problems = audit(
        "DiagnoseRole",
        &granted(&template, "DiagnoseRole"),
        &seen.diagnose,
        &diagnose_platform,
        UNSEEN_READS,
    );
    let remediate_platform: Vec<(&str, &str)> = PLATFORM
        .iter()
        .chain(REMEDIATE_PLATFORM)
        .chain(VPC_PLATFORM)
        .copied()
        .collect();
    problems.extend(audit(
        "RemediateRole",
        &granted(&template, "RemediateRole"),
        &seen.remediate,
        &remediate_platform,
        UNSEEN_READS,
    ));
    // The member roles: exactly what the functions call in a member account, nothing for
    // the platform (Lambda, SNS, SQS and DynamoDB act in the central account).
    let member = member_template();
    problems.extend(audit(
        "MemberReadRole",
        &granted(&member, "MemberReadRole"),
        &seen.member_read,
        &[],
        UNSEEN_READS,
    ));
    problems.extend(audit(
        "MemberRemediateRole",
        &granted(&member, "MemberRemediateRole"),
        &seen.member_remediate,
        &[],
        UNSEEN_READS,
    ));
    assert!(
        problems.is_empty(),
        "the templates' IAM and the code disagree:\n  {}\n\ndiagnose called: {:?}\nremediate called: {:?}\nmember read: {:?}\nmember remediate: {:?}",
        problems.join("\n  "),
        seen.diagnose,
        seen.remediate,
        seen.member_read,
        seen.member_remediate,
    );
    // diagnose writes nothing but its plans kept for approval, its pages, reports, plans and
    // follow-ups; it assumes only the member read role, and writes nothing in a member account.
    let writes: Vec<&String> = seen.diagnose.iter().filter(|a| !is_read(a)).collect();
    assert_eq!(
        writes,
        [
            "dynamodb:PutItem",
            "s3:PutObject",
            "sns:Publish",
            "sqs:SendMessage",
            "sts:AssumeRole"
        ]
    );
    assert!(
        seen.member_read.iter().all(|a| is_read(a)),
        "{:?}",
        seen.member_read
    );
}

/// The scenarios, with their load balancers in `account`: each one's moto is fresh.
async fn scenarios(seen: &mut Seen, account: In) {
    // The account the load balancer is built in, and its alarm as raised there.
    async fn target(moto: &Moto, account: In) -> Aws {
        match account {
            In::Central => Aws::new(&moto.url).await,
            In::Member => {
                let member = Aws::in_account(&moto.url, MEMBER).await;
                account_alias(&member, "prod-payments").await;
                member
            }
        }
    }
    let raised = |event: String| match account {
        In::Central => event,
        In::Member => in_member_account(&event, MEMBER),
    };

    // NACL: CreateNetworkAclEntry; a prefix-list rule on the node SG.
    let (moto, aws, t) = fresh().await;
    let lb_aws = target(&moto, account).await;
    // The follow-up pass: SendMessage, then every CloudTrail lookup and the access logs.
    let (net, id, at) = ephemeral_replies_denied(&lb_aws).await;
    let line = alb_log_line(&id, at - 60, at - 61, "10.0.1.10:8080", "504", "-");
    access_logs(
        &lb_aws,
        &id,
        "elbmedic-access-logs",
        "shop",
        at - 60,
        &[line],
        17,
    )
    .await;
    prefix_list_rule(&lb_aws, &net).await;
    let event = raised(alb_event("HTTPCode_ELB_504_Count", &id, at));
    Box::pin(seen.run_with(&aws, &t, &event, true, account)).await;

    // SG: AuthorizeSecurityGroupIngress by group reference.
    let (moto, aws, t) = fresh().await;
    let lb_aws = target(&moto, account).await;
    let net = network(&lb_aws, &[]).await;
    let id = alb(&lb_aws, &net, ALB, &PODS, &[]).await;
    let at = now();
    let errors = [0.0, 60.0, 64.0];
    alb_metrics(&lb_aws, &id, at, &errors, &[0.0; 3], &errors, &errors).await;
    let event = raised(alb_event("HTTPCode_ELB_504_Count", &id, at));
    Box::pin(seen.run(&aws, &t, &event, account)).await;

    // ALB idle timeout, alarmed through a composite alarm: DescribeAlarms (diagnose follows
    // the composite to its child), ModifyLoadBalancerAttributes, the ledger's cooldown.
    let (moto, aws, t) = fresh().await;
    let lb_aws = target(&moto, account).await;
    let (_, event) = idle_scenario(&lb_aws).await;
    let composite = raised(composite_of(&lb_aws, &event).await);
    Box::pin(seen.run(&aws, &t, &composite, account)).await;

    // Classic LB idle timeout: instance targets, DescribeInstanceHealth.
    let (moto, aws, t) = fresh().await;
    let lb_aws = target(&moto, account).await;
    let (_, event) = clb_idle_scenario(&lb_aws, "a1b2c3d4e5f6").await;
    Box::pin(seen.run(&aws, &t, &raised(event), account)).await;

    Box::pin(nlb_listener_scenario(seen, account)).await;

    // Reports where on-call looks: in approve mode with a chat topic and a report bucket, the
    // plan kept in the ledger (PutItem) and approved by id, each page stored (PutObject), and
    // the recovery reading the alarm's history (DescribeAlarmHistory).
    let (moto, aws, t) = fresh().await;
    let lb_aws = target(&moto, account).await;
    let (_, event) = idle_scenario(&lb_aws).await;
    Box::pin(seen.run_on_call(&aws, &t, &raised(event), account)).await;
}

/// NLB listener idle timeout: DescribeListenerAttributes (diagnose, and remediate's gather
/// again), ModifyListenerAttributes. A function of its own: debug builds give every await of
/// `scenarios` its own stack slots, and the test thread's stack is 2 MiB.
async fn nlb_listener_scenario(seen: &mut Seen, account: In) {
    let (moto, aws, t) = fresh().await;
    let lb_aws = match account {
        In::Central => Aws::new(&moto.url).await,
        In::Member => Aws::in_account(&moto.url, MEMBER).await,
    };
    let (_, event) = nlb_idle_scenario(&lb_aws).await;
    let event = match account {
        In::Central => event,
        In::Member => in_member_account(&event, MEMBER),
    };
    Box::pin(seen.run(&aws, &t, &event, account)).await;
}

fn grants(pairs: &[(&str, bool)]) -> BTreeMap<String, Grant> {
    pairs
        .iter()
        .map(|(action, any)| {
            (
                action.to_string(),
                Grant {
                    sid: "Test".into(),
                    any_resource: *any,
                },
            )
        })
        .collect()
}

fn used(actions: &[&str]) -> BTreeSet<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

const PLATFORM_FOR_TESTS: &[(&str, &str)] = &[("logs:PutLogEvents", "logs")];

#[test]
fn a_matching_policy_passes() {
    let granted = grants(&[
        ("ec2:DescribeSubnets", true),
        ("ec2:CreateNetworkAclEntry", false),
        ("logs:PutLogEvents", false),
    ]);
    let used = used(&["ec2:DescribeSubnets", "ec2:CreateNetworkAclEntry"]);
    assert_eq!(
        audit("R", &granted, &used, PLATFORM_FOR_TESTS, &[]),
        Vec::<String>::new()
    );
}

#[test]
fn an_unused_write_fails() {
    let granted = grants(&[
        ("ec2:DescribeSubnets", true),
        ("ec2:CreateNetworkAclEntry", false),
        ("ec2:DeleteNetworkAclEntry", false),
        ("logs:PutLogEvents", false),
    ]);
    let used = used(&["ec2:DescribeSubnets", "ec2:CreateNetworkAclEntry"]);
    let problems = audit("R", &granted, &used, PLATFORM_FOR_TESTS, &[]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("write ec2:DeleteNetworkAclEntry"),
        "{problems:?}"
    );
}

#[test]
fn an_unused_read_fails_unless_documented() {
    let granted = grants(&[
        ("ec2:DescribeSubnets", true),
        ("ec2:DescribeRouteTables", true),
        ("logs:PutLogEvents", false),
    ]);
    let used = used(&["ec2:DescribeSubnets"]);
    let problems = audit("R", &granted, &used, PLATFORM_FOR_TESTS, &[]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("read ec2:DescribeRouteTables"),
        "{problems:?}"
    );
    let documented = [("ec2:DescribeRouteTables", "a path moto cannot reach")];
    assert!(audit("R", &granted, &used, PLATFORM_FOR_TESTS, &documented).is_empty());
}

#[test]
fn a_used_action_not_granted_fails() {
    let granted = grants(&[("ec2:DescribeSubnets", true), ("logs:PutLogEvents", false)]);
    let used = used(&["ec2:DescribeSubnets", "ec2:AuthorizeSecurityGroupIngress"]);
    let problems = audit("R", &granted, &used, PLATFORM_FOR_TESTS, &[]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("calls ec2:AuthorizeSecurityGroupIngress, which is not granted"));
}

#[test]
fn a_write_on_every_resource_and_a_missing_platform_permission_fail() {
    let granted = grants(&[("ec2:CreateNetworkAclEntry", true)]);
    let used = used(&["ec2:CreateNetworkAclEntry"]);
    let problems = audit("R", &granted, &used, PLATFORM_FOR_TESTS, &[]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("granted on every resource"));
    assert!(problems[1].contains("logs:PutLogEvents is missing"));
}

#[test]
fn the_template_is_read_as_iam_reads_it() {
    let template = template();
    let diagnose = granted(&template, "DiagnoseRole");
    let remediate = granted(&template, "RemediateRole");
    assert_eq!(diagnose["sns:Publish"].sid, "PublishReportsAndPlans");
    assert!(diagnose["ec2:DescribeSubnets"].any_resource);
    assert!(!remediate["ec2:CreateNetworkAclEntry"].any_resource);
    let ledger: Vec<&String> = diagnose
        .keys()
        .filter(|a| a.starts_with("dynamodb:"))
        .collect();
    assert_eq!(
        ledger,
        ["dynamodb:GetItem", "dynamodb:PutItem"],
        "diagnose reads the ledger and keeps plans for approval"
    );
    let keeps = &template["Resources"]["DiagnoseRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["Sid"].as_str() == Some("KeepPlansForApproval"))
        .unwrap()["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
    assert_eq!(
        format!("{keeps:?}"),
        format!(
            "{:?}",
            serde_yaml::from_str::<serde_yaml::Value>(
                "[\"proposal#*\", \"incident#*\", \"storm#*\"]"
            )
            .unwrap()
        ),
        "diagnose writes only proposals, incidents and storms, never locks or cooldowns"
    );
    // Both roles read the same state: remediate gathers exactly as diagnose does. Only
    // diagnose follows composite alarms (a plan names the child alarm already) and asks
    // CloudTrail what changed and reads the access logs (remediation decides from the state,
    // not from history). The
    // ledger and the follow-up queue are plumbing, not state.
    let reads = |g: &BTreeMap<String, Grant>| -> BTreeSet<String> {
        g.keys()
            .filter(|a| is_read(a) && !a.starts_with("dynamodb:") && !a.starts_with("sqs:"))
            .cloned()
            .collect()
    };
    let diagnose_only: Vec<String> = reads(&diagnose)
        .difference(&reads(&remediate))
        .cloned()
        .collect();
    assert_eq!(
        diagnose_only,
        [
            "cloudtrail:LookupEvents",
            "cloudwatch:DescribeAlarmHistory",
            "cloudwatch:DescribeAlarms",
            "s3:GetObject",
            "s3:ListBucket"
        ]
    );
    assert!(reads(&remediate).is_subset(&reads(&diagnose)));
}

/// The Classic LB statement (`loadbalancer/*`, and IAM's `*` crosses `/`) must not reach ALBs
/// outside the clusters or any NLB: evaluated as IAM evaluates the role, Denies included.
#[test]
fn the_idle_timeout_write_reaches_only_cluster_albs_and_service_clbs() {
    const MODIFY: &str = "elasticloadbalancing:ModifyLoadBalancerAttributes";
    let arn = |rest: &str| {
        format!("arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/{rest}")
    };
    let service = ("kubernetes.io/service-name", "shop/web");
    let cluster = ("elbv2.k8s.aws/cluster", "shop-prod");
    for allowed_clusters in ["", "shop-prod", "shop-prod,staging"] {
        let may = |rest: &str, tags: &[(&str, &str)]| {
            flows::policy::allows("RemediateRole", MODIFY, &arn(rest), tags, allowed_clusters)
        };
        assert!(
            may("web", &[service]),
            "a Service's Classic LB ({allowed_clusters:?})"
        );
        assert!(!may("web", &[]), "a Classic LB of no Service");
        assert!(
            may("app/k8s-shop/50dc6c495c0c9188", &[cluster]),
            "a cluster's ALB"
        );
        assert!(
            !may("app/k8s-shop/50dc6c495c0c9188", &[service]),
            "an ALB tagged like a Service but not by the controller ({allowed_clusters:?})"
        );
        assert!(
            !may("net/k8s-shop/50dc6c495c0c9188", &[service, cluster]),
            "an NLB"
        );
        assert!(
            !may("gwy/k8s-shop/50dc6c495c0c9188", &[service, cluster]),
            "a GWLB"
        );
    }
    let other = ("elbv2.k8s.aws/cluster", "other");
    assert!(!flows::policy::allows(
        "RemediateRole",
        MODIFY,
        &arn("app/x/50dc6c495c0c9188"),
        &[other],
        "shop-prod"
    ));
    assert!(flows::policy::allows(
        "RemediateRole",
        MODIFY,
        &arn("app/x/50dc6c495c0c9188"),
        &[other],
        ""
    ));
}

/// The listener write reaches only the listeners of NLBs the controller made for an allowed
/// cluster: never an ALB's listener, an untagged one, or another cluster's.
#[test]
fn the_listener_idle_timeout_write_reaches_only_cluster_nlb_listeners() {
    const MODIFY: &str = "elasticloadbalancing:ModifyListenerAttributes";
    let arn =
        |rest: &str| format!("arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/{rest}");
    let nlb = "net/k8s-shop-mqtt/50dc6c495c0c9188/4c3b2a1908f7e6d5";
    let alb = "app/k8s-shop/50dc6c495c0c9188/4c3b2a1908f7e6d5";
    let cluster = ("elbv2.k8s.aws/cluster", "shop-prod");
    let service = ("kubernetes.io/service-name", "shop/mqtt");
    for allowed_clusters in ["", "shop-prod", "shop-prod,staging"] {
        let may = |rest: &str, tags: &[(&str, &str)]| {
            flows::policy::allows("RemediateRole", MODIFY, &arn(rest), tags, allowed_clusters)
        };
        assert!(
            may(nlb, &[cluster]),
            "a cluster NLB's listener ({allowed_clusters:?})"
        );
        assert!(
            !may(nlb, &[service]),
            "an untagged listener ({allowed_clusters:?})"
        );
        assert!(
            !may(alb, &[cluster]),
            "an ALB's listener ({allowed_clusters:?})"
        );
    }
    let other = ("elbv2.k8s.aws/cluster", "other");
    assert!(!flows::policy::allows(
        "RemediateRole",
        MODIFY,
        &arn(nlb),
        &[other],
        "shop-prod"
    ));
}

/// A lock's lease must outlive the run that took it, or a slow run could lose it midway
/// and a second run would change the same load balancer.
#[test]
fn the_lock_lease_outlives_the_function_timeout() {
    let timeout = template()["Resources"]["RemediateFunction"]["Properties"]["Timeout"]
        .as_i64()
        .expect("RemediateFunction has a Timeout");
    assert!(
        elbmedic_aws::ledger::LOCK_LEASE_SECONDS > timeout,
        "lease {} s, timeout {timeout} s",
        elbmedic_aws::ledger::LOCK_LEASE_SECONDS
    );
}

/// remediate takes plans only from `REMEDIATION_TOPIC_ARN`: the template must set it to the
/// topic that invokes the function, or every plan would be refused.
#[test]
fn remediate_knows_the_topic_it_is_invoked_from() {
    let template = template();
    let function = &template["Resources"]["RemediateFunction"]["Properties"];
    let variable = &function["Environment"]["Variables"]["REMEDIATION_TOPIC_ARN"];
    let event_topic = &function["Events"]["Plan"]["Properties"]["Topic"];
    assert!(
        !variable.is_null(),
        "RemediateFunction has no REMEDIATION_TOPIC_ARN"
    );
    assert_eq!(variable, event_topic);
}

/// diagnose sends follow-ups to the queue that invokes it, and Lambda can poll that queue: its
/// visibility timeout is at least six times the function's timeout (Lambda's rule for SQS).
#[test]
fn the_follow_up_queue_is_the_one_that_invokes_diagnose() {
    let template = template();
    let function = &template["Resources"]["DiagnoseFunction"]["Properties"];
    let variable = &function["Environment"]["Variables"]["FOLLOW_UP_QUEUE_URL"];
    assert!(
        format!("{variable:?}").contains("FollowUpQueue"),
        "{variable:?}"
    );
    let source = &function["Events"]["FollowUp"]["Properties"]["Queue"];
    assert!(
        format!("{source:?}").contains("FollowUpQueue"),
        "{source:?}"
    );
    let timeout = function["Timeout"].as_i64().unwrap();
    let queue = &template["Resources"]["FollowUpQueue"]["Properties"];
    assert!(queue["VisibilityTimeout"].as_i64().unwrap() >= 6 * timeout);
    assert!(!queue["KmsMasterKeyId"].is_null(), "the queue is encrypted");
    assert!(!queue["RedrivePolicy"]["deadLetterTargetArn"].is_null());
}

/// A `!Sub` string with the central stack's region filled in; any other value as YAML text.
fn text(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Tagged(tagged) if tagged.tag == "!Sub" => tagged
            .value
            .as_str()
            .unwrap_or_default()
            .replace("${AWS::Partition}", "aws")
            .replace("${AWS::Region}", "eu-west-1")
            .replace("${CentralAccountId}", "123456789012")
            .replace("${AWS::AccountId}", "123456789012"),
        other => serde_yaml::to_string(other).unwrap().trim().to_string(),
    }
}

/// The statement inside `!If [CONDITION, STATEMENT, !Ref AWS::NoValue]`, when it is one.
fn conditional<'a>(
    statement: &'a serde_yaml::Value,
    condition: &str,
) -> Option<&'a serde_yaml::Value> {
    let serde_yaml::Value::Tagged(tagged) = statement else {
        return None;
    };
    let parts = tagged.value.as_sequence()?;
    (tagged.tag == "!If" && parts[0].as_str() == Some(condition)).then(|| &parts[1])
}

/// CloudWatch in a member account may publish to the central alarm topic (same region) and
/// use its key, for the accounts of AllowedAccounts only: the publisher is the CloudWatch
/// service, so the scope is aws:SourceAccount, not aws:PrincipalOrgID.
#[test]
fn member_accounts_alarms_may_publish_to_the_alarm_topic_and_use_its_key() {
    let template = template();
    let resources = &template["Resources"];
    let topic = resources["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    let key = resources["EncryptionKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap();
    for (statements, actions) in [
        (topic, vec!["sns:Publish"]),
        (key, vec!["kms:Decrypt", "kms:GenerateDataKey*"]),
    ] {
        let members: Vec<&serde_yaml::Value> = statements
            .iter()
            .filter_map(|s| conditional(s, "HasMemberAccounts"))
            .collect();
        assert_eq!(members.len(), 1, "{statements:?}");
        let s = members[0];
        assert_eq!(s["Effect"].as_str(), Some("Allow"));
        assert_eq!(
            s["Principal"]["Service"].as_str(),
            Some("cloudwatch.amazonaws.com")
        );
        let granted: Vec<String> = match &s["Action"] {
            serde_yaml::Value::String(one) => vec![one.clone()],
            many => many
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
        };
        assert_eq!(granted, actions);
        assert_eq!(
            text(&s["Condition"]["StringEquals"]["aws:SourceAccount"]),
            "!Ref AllowedAccounts"
        );
        let source = text(&s["Condition"]["ArnLike"]["aws:SourceArn"]);
        assert_eq!(
            source, "arn:aws:cloudwatch:eu-west-1:*:alarm:*",
            "same region only"
        );
        assert!(!format!("{s:?}").contains("PrincipalOrgID"));
    }
    // No statement of either policy opens them to everyone.
    for s in topic.iter().chain(key) {
        assert_ne!(s["Principal"].as_str(), Some("*"), "{s:?}");
        assert_ne!(s["Principal"]["AWS"].as_str(), Some("*"), "{s:?}");
    }
}

/// Each member role trusts only its central role (by aws:PrincipalArn, through the central
/// account's root, so the trust holds before the role exists and after it is recreated), and
/// only with the external id: diagnose cannot take the write role.
#[test]
fn member_roles_trust_only_their_central_role_with_the_external_id() {
    let central = template();
    let member = member_template();
    let central_arn = |role: &str| {
        format!(
            "arn:aws:iam::123456789012:role/{}",
            text(&central["Resources"][role]["Properties"]["RoleName"])
        )
    };
    for (role, trusted, untrusted) in [
        ("MemberReadRole", "DiagnoseRole", "RemediateRole"),
        ("MemberRemediateRole", "RemediateRole", "DiagnoseRole"),
    ] {
        let statements = member["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]
            ["Statement"]
            .as_sequence()
            .unwrap();
        assert_eq!(statements.len(), 1, "{role}");
        let s = &statements[0];
        assert_eq!(s["Action"].as_str(), Some("sts:AssumeRole"));
        assert_eq!(
            text(&s["Principal"]["AWS"]),
            "arn:aws:iam::123456789012:root",
            "{role}"
        );
        assert_eq!(
            text(&s["Condition"]["StringEquals"]["sts:ExternalId"]),
            "!Ref ExternalId"
        );
        let pattern = text(&s["Condition"]["ArnLike"]["aws:PrincipalArn"]);
        assert!(
            flows::policy::glob(&pattern, &central_arn(trusted)),
            "{role}: {pattern} must match {}",
            central_arn(trusted)
        );
        assert!(
            !flows::policy::glob(&pattern, &central_arn(untrusted)),
            "{role}: {pattern} must not match {}",
            central_arn(untrusted)
        );
    }
    assert_eq!(
        member["Resources"]["MemberRemediateRole"]["Condition"].as_str(),
        Some("Remediates"),
        "the write role exists only where the StackSet enables remediation"
    );
}

/// The central roles hold sts:AssumeRole on their member role in AllowedAccounts' accounts,
/// nothing else in other accounts; the functions assume exactly the roles the StackSet makes.
#[test]
fn the_central_roles_assume_only_their_member_role() {
    let central = template();
    let member = member_template();
    for (policy, function, member_role) in [
        (
            "DiagnoseAssumesMemberRoles",
            "DiagnoseFunction",
            "MemberReadRole",
        ),
        (
            "RemediateAssumesMemberRoles",
            "RemediateFunction",
            "MemberRemediateRole",
        ),
    ] {
        let resource = &central["Resources"][policy];
        assert_eq!(resource["Condition"].as_str(), Some("HasMemberAccounts"));
        let statements = resource["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap();
        assert_eq!(statements.len(), 1);
        let s = &statements[0];
        assert_eq!(s["Action"].as_str(), Some("sts:AssumeRole"));
        let name = member["Resources"][member_role]["Properties"]["RoleName"]
            .as_str()
            .unwrap();
        assert_eq!(text(&s["Resource"]), format!("arn:aws:iam::*:role/{name}"));
        assert_eq!(
            text(&s["Condition"]["StringEquals"]["aws:ResourceAccount"]),
            "!Ref AllowedAccounts"
        );
        let variables = &central["Resources"][function]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            variables["MEMBER_ROLE_NAME"].as_str(),
            Some(name),
            "{function}"
        );
        assert_eq!(
            text(&variables["MEMBER_EXTERNAL_ID"]),
            "!Ref MemberExternalId"
        );
    }
}

/// The member write role writes as RemediateRole does in its own account: the same
/// statements, conditions and denies, in any region of the member account (IAM is global).
#[test]
fn the_member_write_role_keeps_the_central_guardrails() {
    let statements = |template: &serde_yaml::Value, role: &str| -> BTreeMap<String, String> {
        template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| {
                let yaml = serde_yaml::to_string(s)
                    .unwrap()
                    .replace("${AWS::Region}", "*");
                (s["Sid"].as_str().unwrap().to_string(), yaml)
            })
            .collect()
    };
    let central = statements(&template(), "RemediateRole");
    let member = statements(&member_template(), "MemberRemediateRole");
    for sid in [
        "AddNaclEntries",
        "AddSecurityGroupRules",
        "RaiseIdleTimeoutOfClusterAlbs",
        "RaiseIdleTimeoutOfServiceClbs",
        "NeverNetworkOrGatewayLoadBalancers",
        "NeverAlbsOutsideTheClusters",
    ] {
        assert_eq!(member.get(sid), central.get(sid), "{sid}");
    }
}

/// The network-interface writes Lambda needs in a VPC come only with `FunctionSubnetIds`: one
/// policy per role under `FunctionsInVpc`, holding exactly them, none on every resource, and
/// no other policy grants them. Both functions get their `VpcConfig` under the same condition,
/// with the one security group.
#[test]
fn the_network_interface_writes_come_only_with_the_vpc() {
    let template = template();
    let lambda_writes: BTreeSet<&str> = VPC_PLATFORM
        .iter()
        .map(|(a, _)| *a)
        .filter(|a| !is_read(a))
        .collect();
    for (role, function) in [
        ("DiagnoseRole", "DiagnoseFunction"),
        ("RemediateRole", "RemediateFunction"),
    ] {
        let policies = template["Resources"][role]["Properties"]["Policies"]
            .as_sequence()
            .unwrap();
        let vpc: Vec<&serde_yaml::Value> = policies
            .iter()
            .filter_map(|p| conditional(p, "FunctionsInVpc"))
            .collect();
        assert_eq!(vpc.len(), 1, "{role}: one policy under FunctionsInVpc");
        let mut actions: BTreeSet<String> = BTreeSet::new();
        let mut sids: BTreeSet<String> = BTreeSet::new();
        for s in vpc[0]["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{role}: {s:?}");
            assert_ne!(s["Resource"].as_str(), Some("*"), "{role}: {s:?}");
            sids.insert(s["Sid"].as_str().unwrap().to_string());
            match &s["Action"] {
                serde_yaml::Value::String(one) => {
                    actions.insert(one.clone());
                }
                many => actions.extend(
                    many.as_sequence()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string()),
                ),
            }
        }
        let held: BTreeSet<&str> = actions.iter().map(String::as_str).collect();
        assert_eq!(held, lambda_writes, "{role}");
        // Granted by that policy alone (the first statement granting an action names it).
        let grants = granted(&template, role);
        for action in &lambda_writes {
            let grant = &grants[*action];
            assert!(
                sids.contains(&grant.sid),
                "{role}: {action} by {}",
                grant.sid
            );
            assert!(!grant.any_resource, "{role}: {action} on every resource");
        }
        let config = &template["Resources"][function]["Properties"]["VpcConfig"];
        let config = conditional(config, "FunctionsInVpc").expect("VpcConfig under FunctionsInVpc");
        assert_eq!(text(&config["SubnetIds"]), "!Ref FunctionSubnetIds");
        assert_eq!(
            text(&config["SecurityGroupIds"][0]),
            "!Ref FunctionSecurityGroupId"
        );
    }
    assert!(
        !template["Rules"]["FunctionSubnetsNeedTheSecurityGroup"].is_null(),
        "subnets without the security group are refused before anything is deployed"
    );
}

/// diagnose's role, and the member read role, enter a cluster only in the Kubernetes group that
/// `infra/kubernetes/elbmedic-read.yaml` binds to a ClusterRole that gets, lists and watches,
/// never Secrets or ConfigMaps; no access policy is associated. Only diagnose reads clusters.
#[test]
fn the_access_entries_read_the_cluster_through_the_read_only_group() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/kubernetes/elbmedic-read.yaml"
    );
    let text_of_rbac = std::fs::read_to_string(path).expect("infra/kubernetes/elbmedic-read.yaml");
    let documents: Vec<serde_yaml::Value> = text_of_rbac
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).expect("a YAML document"))
        .collect();
    let of_kind = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let binding = of_kind("ClusterRoleBinding");
    let group = binding["subjects"][0]["name"].as_str().unwrap();
    assert_eq!(binding["subjects"][0]["kind"].as_str(), Some("Group"));
    assert_eq!(
        binding["roleRef"]["name"].as_str(),
        of_kind("ClusterRole")["metadata"]["name"].as_str()
    );
    for rule in of_kind("ClusterRole")["rules"].as_sequence().unwrap() {
        for verb in rule["verbs"].as_sequence().unwrap() {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                "{rule:?}"
            );
        }
        for resource in rule["resources"].as_sequence().unwrap() {
            assert!(
                !["secrets", "configmaps", "*"].contains(&resource.as_str().unwrap()),
                "{rule:?}"
            );
        }
    }

    let central = template();
    let member = member_template();
    for (template, entry, condition, role) in [
        (
            &central,
            "DiagnoseReadsTheCluster",
            "ReadsTheCluster",
            "DiagnoseRole",
        ),
        (
            &member,
            "MemberReadsTheCluster",
            "HasEksCluster",
            "MemberReadRole",
        ),
    ] {
        let resource = &template["Resources"][entry];
        assert_eq!(resource["Type"].as_str(), Some("AWS::EKS::AccessEntry"));
        assert_eq!(resource["Condition"].as_str(), Some(condition), "{entry}");
        let properties = &resource["Properties"];
        assert_eq!(
            text(&properties["PrincipalArn"]),
            format!("!GetAtt {role}.Arn"),
            "{entry}"
        );
        assert_eq!(properties["Type"].as_str(), Some("STANDARD"));
        let groups: Vec<&str> = properties["KubernetesGroups"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert_eq!(groups, [group], "{entry}");
        assert!(
            properties["AccessPolicies"].is_null(),
            "{entry}: no access policy"
        );
    }
    let variables = |function: &str| {
        central["Resources"][function]["Properties"]["Environment"]["Variables"].clone()
    };
    assert_eq!(
        text(&variables("DiagnoseFunction")["KUBERNETES_READS"]),
        "!Ref ReadKubernetes"
    );
    // remediate reaches a cluster only with WriteKubernetes=on, in the read group and the
    // write group that infra/kubernetes/elbmedic-remediate.yaml binds.
    assert_eq!(
        text(&variables("RemediateFunction")["KUBERNETES_READS"]),
        "!Ref WriteKubernetes"
    );
    let entry = &central["Resources"]["RemediateWritesTheCluster"];
    assert_eq!(entry["Type"].as_str(), Some("AWS::EKS::AccessEntry"));
    assert_eq!(entry["Condition"].as_str(), Some("WritesTheCluster"));
    assert_eq!(
        text(&entry["Properties"]["PrincipalArn"]),
        "!GetAtt RemediateRole.Arn"
    );
    let groups: Vec<&str> = entry["Properties"]["KubernetesGroups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(groups, [group, "elbmedic-remediate"]);
    assert!(entry["Properties"]["AccessPolicies"].is_null());
    let write_rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/kubernetes/elbmedic-remediate.yaml"
    ))
    .expect("infra/kubernetes/elbmedic-remediate.yaml");
    assert!(write_rbac.contains("--group=elbmedic-remediate"));
    assert!(
        write_rbac.contains("--clusterrole=elbmedic-remediate-cluster --group=elbmedic-remediate")
    );
    assert!(
        !write_rbac.contains("kind: ClusterRoleBinding"),
        "a cluster-wide binding is an opt-in, not applied with the file"
    );
    // The write variables come from the stack's parameters, and the default writes nothing.
    let parameters = &central["Parameters"];
    assert_eq!(
        parameters["WriteKubernetes"]["Default"].as_str(),
        Some("off")
    );
    assert!(!parameters["AllowedActions"]["Default"]
        .as_str()
        .unwrap()
        .contains("keep-idle-timeout"));
    for (variable, parameter) in [
        ("ALLOWED_NAMESPACES", "AllowedNamespaces"),
        ("OVERRIDE_GITOPS", "OverrideGitops"),
        ("FORCE_CONFLICTS", "ForceConflicts"),
    ] {
        assert_eq!(
            text(&variables("RemediateFunction")[variable]),
            format!("!Ref {parameter}")
        );
    }
    assert!(variables("DiagnoseFunction")["FORCE_CONFLICTS"].is_null());
}

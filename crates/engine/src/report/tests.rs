use super::*;
use crate::alarm::parse_input;
use crate::scenarios::SCENARIOS;
use crate::testkit::scenario_snapshot;

fn report_of(name: &str) -> Report {
    let event = crate::scenarios::find(name).unwrap().event;
    let intake = parse_input(event.as_bytes()).unwrap().remove(0).unwrap();
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = intake
    else {
        panic!()
    };
    Report::diagnosed(&alarm, &load_balancer, &scenario_snapshot(name))
}

#[test]
fn json_has_the_contract_fields() {
    let json: serde_json::Value =
        serde_json::from_str(&report_of("nacl-ephemeral-node-subnets").render(Format::Json))
            .unwrap();
    for key in [
        "alarm",
        "load_balancer",
        "verdict",
        "findings",
        "checked",
        "gaps",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    let finding = &json["findings"][0];
    for key in ["code", "severity", "title", "evidence", "fix"] {
        assert!(finding.get(key).is_some(), "finding lacks {key}");
    }
    assert_eq!(finding["code"], "nacl-blocks-ephemeral-ports");
    assert_eq!(json["verdict"]["status"], "cause-found");
    assert_eq!(json["load_balancer"]["kind"], "application");
    let nacl = finding["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "nacl-rule")
        .unwrap();
    assert_eq!(nacl["rule"]["kind"], "implicit-deny");
    assert_eq!(nacl["direction"], "egress");
}

#[test]
fn text_starts_with_the_verdict_and_wraps_prose_at_100() {
    for name in SCENARIOS.iter().map(|s| s.name) {
        let text = report_of(name).render(Format::Text);
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("CAUSE FOUND: ") || first.starts_with("NO KNOWN CAUSE FOUND: "),
            "{name}: {first}"
        );
        for line in text.lines().skip(1) {
            let is_command = line.trim_start().starts_with("$ ")
                || line.trim_start().starts_with("# ")
                || line.starts_with("     ");
            let long_token = line.split_whitespace().count() == 1;
            assert!(
                line.chars().count() <= 100 || is_command || long_token,
                "{name}: line too long: {line}"
            );
        }
    }
}

#[test]
fn subject_is_short_single_line_and_starts_with_the_verdict() {
    for name in SCENARIOS.iter().map(|s| s.name) {
        let subject = report_of(name).subject();
        assert!(subject.chars().count() < 100, "{subject}");
        assert!(!subject.chars().any(char::is_control));
        assert!(
            subject.starts_with("[elbmedic 111122223333] CAUSE FOUND: ")
                || subject.starts_with("[elbmedic 111122223333] NO KNOWN CAUSE FOUND: "),
            "{subject}"
        );
    }
    let mut report = report_of("no-known-cause");
    report.verdict.headline = "line\nbreak ".repeat(40);
    let subject = report.subject();
    assert!(subject.chars().count() < 100 && !subject.contains('\n') && subject.ends_with("..."));
}

#[test]
fn the_email_links_the_page_whole_on_a_line_of_its_own() {
    let mut report = report_of("nacl-ephemeral-node-subnets");
    let url = format!(
        "https://console.aws.amazon.com/s3/object/elbmedic-reports?region=eu-west-1&prefix={}",
        "reports%2F2026%2F11%2F30%2F".repeat(8)
    );
    report.full_report_url = Some(url.clone());
    let text = report.render(Format::Text);
    // Mail clients link a URL only unbroken, so it is never wrapped, whatever its length.
    assert!(
        text.lines().any(|line| line.trim() == url),
        "no line holds the whole link:\n{text}"
    );
    assert!(report.render(Format::Markdown).contains(&url));
    let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    assert_eq!(json["full_report_url"], url.as_str());
    // Without a bucket there is no link, and the JSON has no such field.
    let plain = report_of("nacl-ephemeral-node-subnets");
    assert!(!plain.render(Format::Text).contains("Full report"));
    assert!(!plain.render(Format::Json).contains("full_report_url"));
}

#[test]
fn markdown_carries_commands_in_code_blocks() {
    let md = report_of("alb-idle-timeout").render(Format::Markdown);
    assert!(md.starts_with("# CAUSE FOUND: "));
    assert!(md.contains(
        "```sh\n# Set the idle timeout to 120 s now\naws elbv2 modify-load-balancer-attributes"
    ));
}

#[test]
fn not_diagnosed_alarms_get_short_reports() {
    let ok = parse_input(include_bytes!("../../../../events/alarms/alb-ok.json"))
        .unwrap()
        .remove(0)
        .unwrap();
    let report = Report::without_diagnosis(&ok).unwrap();
    assert_eq!(report.verdict.status, VerdictStatus::Recovered);
    assert!(report.render(Format::Text).starts_with("RECOVERED: "));
    let diagnose = parse_input(include_bytes!(
        "../../../../events/alarms/alb-504-count.json"
    ))
    .unwrap()
    .remove(0)
    .unwrap();
    assert!(Report::without_diagnosis(&diagnose).is_none());
}

#[test]
fn an_unreachable_account_gets_a_report_that_claims_no_check() {
    let event = crate::scenarios::find("alb-idle-timeout").unwrap().event;
    let Intake::Diagnose {
        alarm,
        load_balancer,
    } = parse_input(event.as_bytes()).unwrap().remove(0).unwrap()
    else {
        panic!()
    };
    let refusal = crate::account::AccountRefusal::NotAllowed {
        account: "111122223333".into(),
        own: "999999999999".into(),
    };
    let report = Report::account_refused(&alarm, &load_balancer, &refusal);
    assert_eq!(report.verdict.status, VerdictStatus::Unsupported);
    assert!(report.verdict.headline.contains("account 111122223333"));
    assert!(report.next_steps[0].contains("999999999999"));
    assert!(report.checked.is_empty() && report.findings.is_empty());
    assert!(report
        .subject()
        .starts_with("[elbmedic 111122223333] UNSUPPORTED: "));
    let text = super::text::render_text(&report);
    assert!(
        text.lines().next().unwrap().chars().count() <= 100,
        "{text}"
    );
    assert!(
        text.lines()
            .take(4)
            .any(|l| l.starts_with("Account: 111122223333")),
        "{text}"
    );
    assert!(!text.contains("rule out"), "{text}");
}

/// The alias names the account in the subject (shorter, and what people call it); the id
/// stays on the first lines. An alias that IAM could not have produced is dropped.
#[test]
fn reports_name_the_account_by_alias_and_id() {
    let scenario = crate::scenarios::find("alb-idle-timeout").unwrap();
    let mut world = scenario.world().unwrap();
    world.account_alias = Some("prod-payments".into());
    let (alarm, lb) = scenario.alarm().unwrap();
    let report = Report::diagnosed(&alarm, &lb, &world);
    assert!(
        report.subject().starts_with("[elbmedic prod-payments] "),
        "{}",
        report.subject()
    );
    assert!(super::text::render_text(&report).contains("Account: 111122223333 (prod-payments)"));
    world.account_alias = Some("<!channel>".into());
    let report = Report::diagnosed(&alarm, &lb, &world);
    assert!(report.subject().starts_with("[elbmedic 111122223333] "));
    assert!(!super::text::render_text(&report).contains("channel"));
}

/// The verdict's first line fits 100 columns in every scenario, like the subject; the detail
/// follows on indented lines.
#[test]
fn the_first_line_is_the_verdict_in_at_most_100_columns() {
    for name in SCENARIOS.iter().map(|s| s.name) {
        let report = report_of(name);
        let text = super::text::render_text(&report);
        let first = text.lines().next().unwrap();
        assert!(first.chars().count() <= 100, "{name}: {first}");
        assert!(
            first.starts_with(report.verdict.status.label()),
            "{name}: {first}"
        );
    }
}

/// A load balancer that could not be read (deleted, another region or account): the first
/// line says so and where it was looked for; nothing claims a check that did not run.
#[test]
fn a_load_balancer_that_could_not_be_read_is_named_and_nothing_is_claimed() {
    use crate::snapshot::{Gap, GapFact, GapReason};
    let scenario = crate::scenarios::find("alb-idle-timeout").unwrap();
    let (alarm, lb) = scenario.alarm().unwrap();
    let mut world = scenario.world().unwrap();
    world.load_balancer.vpc_id.clear();
    world.load_balancer.subnets.clear();
    world.target_groups.clear();
    world.subnets.clear();
    world.network_acls.clear();
    world.security_groups.clear();
    world.gaps = vec![Gap {
        fact: GapFact::LoadBalancer,
        resource: Some(lb.name.clone()),
        reason: GapReason::NotFound,
        detail: format!(
            "no load balancer named {} in this account and region",
            lb.name
        ),
    }];
    let report = Report::diagnosed(&alarm, &lb, &world);
    assert_eq!(
        report.verdict.status,
        crate::diagnosis::VerdictStatus::LoadBalancerNotRead
    );
    let text = super::text::render_text(&report);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("LOAD BALANCER NOT READ: "), "{first}");
    assert!(first.chars().count() <= 100, "{first}");
    assert!(
        report
            .verdict
            .headline
            .contains("was not found in eu-west-1 of account 111122223333"),
        "{}",
        report.verdict.headline
    );
    assert!(report.findings.is_empty());
    for claim in ["rule out", "no registered targets", "[ok]", "[problem]"] {
        assert!(!text.contains(claim), "{claim}: {text}");
    }
    assert!(text.contains("nothing is ruled out"), "{text}");
    assert!(text.contains("describe-load-balancers"), "{text}");
    // A tag read that failed alone is not an unread load balancer.
    let mut tags_only = scenario.world().unwrap();
    tags_only.gaps.push(Gap {
        fact: GapFact::LoadBalancer,
        resource: Some("tags".into()),
        reason: GapReason::AccessDenied,
        detail: "denied".into(),
    });
    assert_eq!(
        Report::diagnosed(&alarm, &lb, &tags_only).verdict.status,
        crate::diagnosis::VerdictStatus::CauseFound
    );
}

/// An update in an incident: a short email that replies to the first subject, leads with
/// "ALARM again", shows the new evidence and not the findings' fixes again; machines still
/// get the full report in the JSON copy; chat joins the incident's thread.
#[test]
fn an_update_is_a_short_reply_and_the_json_keeps_the_full_report() {
    use crate::incident::note::IncidentNote;
    let mut report = report_of("alb-idle-timeout");
    let first = report.subject();
    report.incident = Some(IncidentNote {
        thread: "elbmedic-00000000000000aa".into(),
        opened_at: 1_796_000_000,
        alarms: 4,
        decision: "update".into(),
        line: format!(
            "ALARM again (4th time in 22 min), same cause: {}",
            report.verdict.headline
        ),
        changes: vec![],
        first_subject: first.clone(),
        last_full_report_url: Some(
            "https://console.aws.amazon.com/s3/object/b?region=eu-west-1&prefix=reports/x.html"
                .into(),
        ),
        plans_proposed: vec!["plan-0123abcd at 02:52 UTC".into()],
        quiet_minutes: 30,
    });
    let subject = report.subject();
    assert!(
        subject.starts_with(&format!("Re: {}", &first[..80])) && subject.chars().count() <= 99,
        "{subject}"
    );
    let message = sns::sns_message(&report, sns::SNS_MAX_BYTES);
    let body: serde_json::Value = serde_json::from_str(&message.message).unwrap();
    let email = body["email"].as_str().unwrap();
    println!("{email}");
    assert!(
        email.starts_with("ALARM again (4th time in 22 min), same cause: "),
        "{email}"
    );
    assert!(
        email.contains("LATEST EVIDENCE") && !email.contains("FINDINGS ("),
        "{email}"
    );
    assert!(
        email.contains("The last full report (S3 console):"),
        "{email}"
    );
    assert!(
        email.contains("Plan plan-0123abcd at 02:52 UTC was proposed in this incident"),
        "{email}"
    );
    assert!(
        email.len() < report.render(Format::Text).len() / 2,
        "short: {} bytes",
        email.len()
    );
    let json: serde_json::Value = serde_json::from_str(body["sqs"].as_str().unwrap()).unwrap();
    assert_eq!(json["findings"][0]["code"], "idle-timeout-exceeded");
    assert_eq!(json["incident"]["decision"], "update");
    let chat: serde_json::Value = serde_json::from_str(&chat::render_chat(
        &report,
        &chat::ChatContext {
            id: "x",
            episode_began: None,
        },
    ))
    .unwrap();
    assert_eq!(chat["metadata"]["threadId"], "elbmedic-00000000000000aa");
    assert!(chat["content"]["title"]
        .as_str()
        .unwrap()
        .starts_with(":repeat: ALARM again"));
    assert!(
        chat["content"].get("nextSteps").is_none(),
        "no fix repeated"
    );
}

/// A changed cause is a full report that says first what changed.
#[test]
fn a_changed_cause_leads_the_full_report_with_the_change() {
    use crate::incident::note::IncidentNote;
    let mut report = report_of("nacl-ephemeral-node-subnets");
    report.incident = Some(IncidentNote {
        thread: "t".into(),
        opened_at: 0,
        alarms: 3,
        decision: "changed".into(),
        line:
            "ALARM again (3rd time in 12 min), and the cause changed since the report at 02:52 UTC."
                .into(),
        changes: vec![
            "no longer found: idle-timeout-exceeded".into(),
            "new cause: nacl-blocks-ephemeral-ports on acl-1".into(),
        ],
        first_subject: "[elbmedic] CAUSE FOUND: x".into(),
        last_full_report_url: None,
        plans_proposed: vec![],
        quiet_minutes: 30,
    });
    assert!(!report.subject().starts_with("Re: "));
    let text = report.render(Format::Text);
    let lead: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("ALARM again"))
        .take(3)
        .collect();
    assert_eq!(
        lead[1], "  - no longer found: idle-timeout-exceeded",
        "{text}"
    );
    assert!(text.contains("FINDINGS ("));
}

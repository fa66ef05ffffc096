//! A local Lambda Runtime API on 127.0.0.1: it hands a built function binary one event and
//! collects its answer, so tests run the real runtime loop, not a handler call.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::moto::Moto;
use super::now;

/// What the function sent back to the Runtime API.
#[derive(Debug)]
pub enum Outcome {
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
pub fn runtime_api(event: String, account: &str, outcomes: mpsc::Sender<Outcome>) -> u16 {
    let function_arn = format!("arn:aws:lambda:eu-west-1:{account}:function:elbmedic");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut served = false;
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { break };
            let outcomes = outcomes.clone();
            let event = event.clone();
            let function_arn = function_arn.clone();
            let serve_event = !served;
            served = true;
            std::thread::spawn(move || {
                handle_connection(stream, event, &function_arn, serve_event, outcomes)
            });
        }
    });
    port
}

fn handle_connection(
    stream: TcpStream,
    event: String,
    function_arn: &str,
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
                    "Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: {function_arn}\r\nLambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
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

/// What one invocation of a function binary gave.
pub struct Invocation {
    /// The response body, or the error the function reported.
    pub response: Result<String, String>,
    /// Everything the process printed.
    pub logs: String,
    /// Process start to the first poll of the Runtime API: the cold-start init time.
    pub init: Option<Duration>,
}

/// Runs the function binary `exe`, deployed in `account`, for one `event`, against moto, with
/// `env` on top of the Lambda environment; bounded to 60 s.
pub fn invoke(
    exe: &str,
    account: &str,
    moto: &Moto,
    env: &[(&str, String)],
    event: String,
) -> Invocation {
    let (sender, outcomes) = mpsc::channel();
    let port = runtime_api(event, account, sender);
    let started = Instant::now();
    let mut child = Command::new(exe)
        .envs(moto.env())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "elbmedic")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]abc")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/elbmedic")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {exe}: {e}"));
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
    Invocation {
        response: response.unwrap_or_else(|| Err(format!("no answer within 60 s\n{logs}"))),
        logs,
        init,
    }
}

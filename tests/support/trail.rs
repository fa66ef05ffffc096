//! A local stand-in for CloudTrail's `LookupEvents`, which moto does not implement: the JSON
//! 1.1 protocol (`X-Amz-Target: CloudTrail_20131101.LookupEvents`) on a free 127.0.0.1 port,
//! serving the events a test gives it in the API's own shape (`CloudTrailEvent` is a JSON
//! string), filtered by the one lookup attribute and the time range, as AWS does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

#[derive(Clone, Default)]
pub struct FakeTrail {
    pub url: String,
    events: Arc<Mutex<Vec<Value>>>,
    /// The body of every request, in order.
    requests: Arc<Mutex<Vec<Value>>>,
    /// Answer every lookup as CloudTrail does past its rate.
    throttled: Arc<Mutex<bool>>,
}

impl FakeTrail {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let trail = Self {
            url: format!("http://127.0.0.1:{port}"),
            ..Self::default()
        };
        let serving = trail.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serving.answer(stream);
            }
        });
        trail
    }

    /// A management event as LookupEvents returns it.
    pub fn add(
        &self,
        id: &str,
        name: &str,
        at: i64,
        actor: &str,
        resources: &[&str],
        request: Value,
    ) {
        self.add_record(id, name, at, actor, resources, request, json!({}));
    }

    /// A call that IAM denied, as CloudTrail records it: with its request, an `errorCode`
    /// and `errorMessage`, and no response.
    pub fn add_denied(&self, id: &str, name: &str, at: i64, actor: &str, request: Value) {
        let action = format!("ec2:{name}");
        self.add_record(
            id,
            name,
            at,
            actor,
            &[],
            request,
            json!({
                "errorCode": "Client.UnauthorizedOperation",
                "errorMessage": format!("You are not authorized to perform this operation. User: {actor} is not authorized to perform: {action} because no identity-based policy allows the {action} action."),
                "responseElements": null,
                "readOnly": false,
            }),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn add_record(
        &self,
        id: &str,
        name: &str,
        at: i64,
        actor: &str,
        resources: &[&str],
        request: Value,
        extra: Value,
    ) {
        let mut record = json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "AssumedRole", "arn": actor},
            "eventTime": aws_smithy_types::DateTime::from_secs(at)
                .fmt(aws_smithy_types::date_time::Format::DateTime).unwrap(),
            "eventSource": "ec2.amazonaws.com",
            "eventName": name,
            "awsRegion": super::REGION,
            "requestParameters": request,
            "eventID": id,
        });
        if let (Some(record), Value::Object(extra)) = (record.as_object_mut(), extra) {
            record.extend(extra);
        }
        self.events.lock().unwrap().push(json!({
            "EventId": id,
            "EventName": name,
            "ReadOnly": "false",
            "EventTime": at,
            "EventSource": "ec2.amazonaws.com",
            "Username": actor.rsplit('/').next().unwrap_or(actor),
            "Resources": resources.iter().map(|r| json!({"ResourceName": r})).collect::<Vec<_>>(),
            "CloudTrailEvent": record.to_string(),
        }));
    }

    /// From now on, every lookup is throttled (`ThrottlingException`, HTTP 400).
    pub fn throttle(&self) {
        *self.throttled.lock().unwrap() = true;
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    fn answer(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("the stream"));
        let (mut length, mut target) = (0usize, String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if let Some(value) = lower.strip_prefix("x-amz-target:") {
                target = value.trim().to_string();
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        let _ = reader.read_exact(&mut body);
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.requests.lock().unwrap().push(request.clone());
        let (status, reply) = if *self.throttled.lock().unwrap() {
            (
                "400 Bad Request",
                json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
            )
        } else if target == "cloudtrail_20131101.lookupevents" {
            ("200 OK", json!({"Events": self.matching(&request)}))
        } else {
            (
                "400 Bad Request",
                json!({"__type": "UnknownOperationException"}),
            )
        };
        let text = reply.to_string();
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    }

    fn matching(&self, request: &Value) -> Vec<Value> {
        let attribute = &request["LookupAttributes"][0];
        let (key, value) = (
            attribute["AttributeKey"].as_str().unwrap_or_default(),
            attribute["AttributeValue"].as_str().unwrap_or_default(),
        );
        let start = request["StartTime"].as_f64().unwrap_or(f64::MIN);
        let end = request["EndTime"].as_f64().unwrap_or(f64::MAX);
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                let at = e["EventTime"].as_f64().unwrap_or_default();
                let found = match key {
                    "EventName" => e["EventName"] == value,
                    "ResourceName" => e["Resources"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r["ResourceName"] == value)),
                    _ => false,
                };
                found && start <= at && at <= end
            })
            .cloned()
            .collect()
    }
}

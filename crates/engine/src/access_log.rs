//! Access-log lines as evidence: each line is parsed in the field order AWS documents for its
//! kind of load balancer, and counted into an [`AccessLogs`] summary that the snapshot keeps
//! (never the lines: they hold client addresses and URLs). Lines are untrusted: a short,
//! unterminated or binary one is counted as malformed, never a panic.
//!
//! - ALB (`type time elb client:port target:port request_processing_time
//!   target_processing_time response_processing_time elb_status_code target_status_code ...
//!   "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
//!   "chosen_cert_arn" matched_rule_priority request_creation_time "actions_executed"
//!   "redirect_url" "error_reason" "target:port_list" "target_status_code_list"
//!   "classification" "classification_reason" ...`).
//! - Classic LB (`time elb client:port backend:port request_processing_time
//!   backend_processing_time response_processing_time elb_status_code backend_status_code ...`):
//!   no `request_creation_time`, no classification.
//! - NLB, TLS listeners only (`type version time elb listener client:port destination:port
//!   connection_time tls_handshake_time received_bytes sent_bytes incoming_tls_alert ...`):
//!   one line per TLS connection, times in milliseconds, `-` for a handshake that failed. The
//!   destination is the listener, never the target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alarm::{parse_timestamp, LbKind};

/// Lines longer than this are not parsed (a URL is at most 8 KB in an ALB log).
const MAX_LINE: usize = 64 * 1024;

/// At most this many targets are kept in the per-target counts; the rest are summed.
const MAX_TARGETS: usize = 50;

/// What the access logs of the alarm window said, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessLogs {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    /// Log objects whose names fall in the window, and how many of them were read.
    pub objects_found: u32,
    pub objects_read: u32,
    /// Decompressed bytes read, and whether the budget stopped the reading.
    pub bytes_read: u64,
    #[serde(default)]
    pub truncated: bool,
    /// Lines in the window, and lines that could not be parsed.
    pub lines: u64,
    #[serde(default)]
    pub malformed: u64,
    /// Responses by the load balancer's status code, 5xx only (`"502"`: 12).
    #[serde(default)]
    pub elb_5xx: BTreeMap<String, u64>,
    /// ELB 502s with `target_status_code` `-`: the target closed or reset the connection.
    #[serde(default)]
    pub closed_by_target: u64,
    /// ELB 504s with no target response that lasted the idle timeout (ALB: `time` minus
    /// `request_creation_time`; Classic LB: the processing times).
    #[serde(default)]
    pub idle_timeouts: u64,
    /// ELB 5xx by `target:port` (the busiest [`MAX_TARGETS`]).
    #[serde(default)]
    pub by_target: BTreeMap<String, u64>,
    /// `classification` counts where set (ALB desync mitigation).
    #[serde(default)]
    pub classifications: BTreeMap<String, u64>,
    /// NLB: TLS connections in the window, those whose handshake failed, and those that
    /// lasted at least the listener's idle timeout (long-lived: what an idle timeout cuts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls_connections: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls_handshake_failures: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub long_connections: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The bucket of the targets seen after the first [`MAX_TARGETS`].
pub const OTHER_TARGETS: &str = "others";

impl AccessLogs {
    pub fn total_5xx(&self) -> u64 {
        self.elb_5xx.values().sum()
    }

    /// The target with the most 5xx, and its share of them.
    pub fn top_target(&self) -> Option<(&str, u64, f64)> {
        // Past the first targets seen, the rest share one bucket: never "one bad target".
        let (target, count) = self
            .by_target
            .iter()
            .filter(|(t, _)| t.as_str() != OTHER_TARGETS)
            .max_by_key(|(_, c)| **c)?;
        let total: u64 = self.by_target.values().sum();
        Some((target.as_str(), *count, *count as f64 / total.max(1) as f64))
    }

    /// "4,812 lines in 12 of 12 objects": what was read, for the reader to weigh.
    pub fn read_summary(&self) -> String {
        format!(
            "{} lines in {} of {} log objects ({} KiB){}{}",
            self.lines,
            self.objects_read,
            self.objects_found,
            self.bytes_read / 1024,
            if self.malformed > 0 {
                format!(", {} malformed", self.malformed)
            } else {
                String::new()
            },
            if self.truncated {
                ", stopped at the read budget"
            } else {
                ""
            }
        )
    }
}

/// Counts lines into an [`AccessLogs`], keeping those of the window only.
#[derive(Debug)]
pub struct Tally {
    kind: LbKind,
    idle_timeout: f64,
    window: (i64, i64),
    pub logs: AccessLogs,
}

impl Tally {
    /// `window` in epoch seconds; `idle_timeout` in seconds.
    pub fn new(kind: LbKind, idle_timeout: u32, window: (i64, i64), logs: AccessLogs) -> Self {
        Self {
            kind,
            idle_timeout: f64::from(idle_timeout),
            window,
            logs,
        }
    }

    /// Every line of a decompressed log object.
    pub fn add_text(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.add_line(line);
        }
    }

    pub fn add_line(&mut self, line: &str) {
        if self.kind == LbKind::Network {
            return self.add_tls_line(line);
        }
        let Some(entry) = (line.len() <= MAX_LINE)
            .then(|| Entry::parse(self.kind, line))
            .flatten()
        else {
            self.logs.malformed += 1;
            return;
        };
        if entry.time < self.window.0 || entry.time > self.window.1 {
            return;
        }
        self.logs.lines += 1;
        if let Some(class) = entry.classification.filter(|c| *c != "-" && !c.is_empty()) {
            *self
                .logs
                .classifications
                .entry(class.to_string())
                .or_default() += 1;
        }
        if !entry.elb_status.starts_with('5') || entry.elb_status.len() != 3 {
            return;
        }
        *self
            .logs
            .elb_5xx
            .entry(entry.elb_status.to_string())
            .or_default() += 1;
        let no_target_answer = entry.target_status == "-";
        if entry.elb_status == "502" && no_target_answer {
            self.logs.closed_by_target += 1;
        }
        if entry.elb_status == "504" && no_target_answer && self.lasted_idle_timeout(&entry) {
            self.logs.idle_timeouts += 1;
        }
        if entry.target != "-" {
            let targets = &mut self.logs.by_target;
            if targets.len() < MAX_TARGETS || targets.contains_key(entry.target) {
                *targets.entry(entry.target.to_string()).or_default() += 1;
            } else {
                *targets.entry(OTHER_TARGETS.into()).or_default() += 1;
            }
        }
    }

    /// One NLB TLS connection: counted, its handshake judged, its length held against the
    /// listener's idle timeout.
    fn add_tls_line(&mut self, line: &str) {
        let Some(connection) = (line.len() <= MAX_LINE)
            .then(|| TlsConnection::parse(line))
            .flatten()
        else {
            self.logs.malformed += 1;
            return;
        };
        if connection.time < self.window.0 || connection.time > self.window.1 {
            return;
        }
        self.logs.lines += 1;
        self.logs.tls_connections += 1;
        if !connection.handshake_completed {
            self.logs.tls_handshake_failures += 1;
        }
        if connection.milliseconds >= self.idle_timeout * 1000.0 {
            self.logs.long_connections += 1;
        }
    }

    /// Whether a 504 lasted the idle timeout: from the request's arrival to the response.
    fn lasted_idle_timeout(&self, entry: &Entry<'_>) -> bool {
        let lasted = match entry.created {
            Some(created) => (entry.time - created) as f64,
            // A Classic LB logs the processing times instead; -1 marks a missing one.
            None => [entry.request_time, entry.target_time, entry.response_time]
                .iter()
                .filter(|t| **t >= 0.0)
                .sum(),
        };
        (lasted - self.idle_timeout).abs() <= 1.5
    }
}

/// The fields elbmedic reads from one line.
struct Entry<'a> {
    /// When the response was sent (whole seconds, as the creation time: their difference is
    /// what is compared).
    time: i64,
    created: Option<i64>,
    target: &'a str,
    request_time: f64,
    target_time: f64,
    response_time: f64,
    elb_status: &'a str,
    target_status: &'a str,
    classification: Option<&'a str>,
}

impl<'a> Entry<'a> {
    fn parse(kind: LbKind, line: &'a str) -> Option<Self> {
        let fields = split(line)?;
        // The Classic LB's line has no leading type field.
        let at = match kind {
            LbKind::Application => 1,
            LbKind::Classic => 0,
            // An NLB logs TLS connections only, in a format of its own (not read yet).
            LbKind::Network => return None,
        };
        let field = |i: usize| fields.get(at + i).copied();
        let time = parse_timestamp(field(0)?)?;
        let number = |i: usize| field(i).and_then(|t| t.parse::<f64>().ok());
        let status = |i: usize| {
            field(i)
                .filter(|s| *s == "-" || (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())))
        };
        let (created, classification) = match kind {
            LbKind::Application => (
                fields.get(21).and_then(|t| parse_timestamp(t)),
                fields.get(27).copied(),
            ),
            LbKind::Classic | LbKind::Network => (None, None),
        };
        Some(Self {
            time,
            created,
            target: field(3)?,
            request_time: number(4)?,
            target_time: number(5)?,
            response_time: number(6)?,
            elb_status: status(7)?,
            target_status: status(8)?,
            classification,
        })
    }
}

/// The fields elbmedic reads from an NLB TLS log line.
struct TlsConnection {
    /// When the connection closed.
    time: i64,
    milliseconds: f64,
    handshake_completed: bool,
}

impl TlsConnection {
    fn parse(line: &str) -> Option<Self> {
        let fields = split(line)?;
        if fields.first() != Some(&"tls") {
            return None;
        }
        // The NLB writes its times without a zone (`2020-04-01T08:51:42`): they are UTC.
        let time = fields
            .get(2)
            .and_then(|t| parse_timestamp(t).or_else(|| parse_timestamp(&format!("{t}Z"))))?;
        let milliseconds = fields
            .get(7)?
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m >= 0.0)?;
        let handshake = *fields.get(8)?;
        let handshake_completed = match handshake {
            "-" => false,
            ms => ms.parse::<f64>().ok().is_some_and(f64::is_finite),
        };
        Some(Self {
            time,
            milliseconds,
            handshake_completed,
        })
    }
}

/// Splits a line on spaces, a double-quoted field being one field (a backslash escapes the
/// next character inside it). `None` for an unterminated quote.
fn split(line: &str) -> Option<Vec<&str>> {
    let mut fields = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' => i += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                loop {
                    match bytes.get(j)? {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                fields.push(line.get(start..j)?);
                i = j + 1;
            }
            _ => {
                let start = i;
                while i < bytes.len() && bytes[i] != b' ' {
                    i += 1;
                }
                fields.push(line.get(start..i)?);
            }
        }
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ALB line as AWS documents it, with the fields that matter set.
    fn alb_line(
        time: &str,
        target: &str,
        elb: &str,
        target_status: &str,
        tpt: &str,
        created: &str,
    ) -> String {
        format!(
            "https {time} app/k8s-shop-checkout-6f1e2d3c4b/50dc6c495c0c9188 192.0.2.10:51234 {target} 0.000 {tpt} 0.000 {elb} {target_status} 312 0 \"GET https://shop.example.com:443/checkout HTTP/1.1\" \"curl/8.4.0\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/k8s-shop-checkout-0a1b2c3d4e/0123456789abcdef \"Root=1-6561a0b2-0a1b2c3d4e5f60718293a4b5\" \"shop.example.com\" \"arn:aws:acm:eu-west-1:111122223333:certificate/1b2c3d4e\" 0 {created} \"forward\" \"-\" \"-\" \"{target}\" \"{target_status}\" \"-\" \"-\" TID_0a1b2c3d4e5f"
        )
    }

    fn window() -> (i64, i64) {
        let t = |s| parse_timestamp(s).unwrap();
        (t("2026-11-23T17:55:00Z"), t("2026-11-23T18:00:00Z"))
    }

    #[test]
    fn alb_lines_are_counted_by_what_they_prove() {
        let mut tally = Tally::new(LbKind::Application, 60, window(), AccessLogs::default());
        // A 504 that lasted the idle timeout; a 502 from a closed connection; a 200.
        tally.add_line(&alb_line(
            "2026-11-23T17:58:01.123456Z",
            "10.0.37.152:8080",
            "504",
            "-",
            "-1",
            "2026-11-23T17:57:01.120000Z",
        ));
        tally.add_line(&alb_line(
            "2026-11-23T17:58:02.000000Z",
            "10.0.37.152:8080",
            "502",
            "-",
            "-1",
            "2026-11-23T17:58:01.990000Z",
        ));
        tally.add_line(&alb_line(
            "2026-11-23T17:58:03.000000Z",
            "10.0.18.41:8080",
            "200",
            "200",
            "0.012",
            "2026-11-23T17:58:02.980000Z",
        ));
        // Outside the window: not counted.
        tally.add_line(&alb_line(
            "2026-11-23T17:40:00.000000Z",
            "10.0.18.41:8080",
            "502",
            "-",
            "-1",
            "2026-11-23T17:40:00.000000Z",
        ));
        let logs = tally.logs;
        assert_eq!(logs.lines, 3);
        assert_eq!(
            logs.elb_5xx,
            BTreeMap::from([("502".into(), 1), ("504".into(), 1)])
        );
        assert_eq!(logs.idle_timeouts, 1);
        assert_eq!(logs.closed_by_target, 1);
        assert_eq!(logs.top_target().unwrap().0, "10.0.37.152:8080");
        assert_eq!(logs.malformed, 0);
    }

    #[test]
    fn classic_lines_use_the_processing_times() {
        let mut tally = Tally::new(LbKind::Classic, 60, window(), AccessLogs::default());
        tally.add_line("2026-11-23T17:58:01.123456Z a3f1c2e4b5d6978812345678abcdef01 192.0.2.10:51234 10.0.21.17:31380 0.000021 -1 -1 504 - 57 0 \"GET http://orders.example.com:80/export HTTP/1.1\" \"curl/8.4.0\" - -");
        tally.add_line("2026-11-23T17:58:01.123456Z a3f1c2e4b5d6978812345678abcdef01 192.0.2.10:51234 10.0.21.17:31380 0.000021 60.000412 -1 504 - 57 0 \"GET http://orders.example.com:80/export HTTP/1.1\" \"curl/8.4.0\" - -");
        assert_eq!(tally.logs.lines, 2);
        assert_eq!(tally.logs.idle_timeouts, 1);
    }

    #[test]
    fn hostile_lines_are_malformed_not_panics() {
        let mut tally = Tally::new(LbKind::Application, 60, window(), AccessLogs::default());
        for line in [
            "https",
            "https 2026-11-23T17:58:01Z \"unterminated",
            "\u{0}\u{1}\u{ff}",
            "x \"a\\\"",
            &"a ".repeat(40_000),
        ] {
            tally.add_line(line);
        }
        assert_eq!(tally.logs.malformed, 5);
        assert_eq!(tally.logs.lines, 0);
    }

    /// An NLB TLS line in AWS's documented field order (the guide's example, times moved into
    /// the window): `connection_time` and `tls_handshake_time` in milliseconds.
    fn tls_line(time: &str, connection_ms: &str, handshake_ms: &str) -> String {
        format!(
            "tls 2.0 {time} net/k8s-iot-mqtt-1a2b3c4d5e/9f8e7d6c5b4a3921 4c3b2a1908f7e6d5 198.51.100.23:51341 10.0.0.77:8883 {connection_ms} {handshake_ms} 98 246 - arn:aws:acm:eu-west-1:111122223333:certificate/2a3b4c5d - ECDHE-RSA-AES128-SHA tlsv12 - mqtt.example.com - - - 2026-11-23T17:50:02"
        )
    }

    #[test]
    fn nlb_tls_lines_count_connections_failed_handshakes_and_long_ones() {
        let mut tally = Tally::new(LbKind::Network, 350, window(), AccessLogs::default());
        tally.add_line(&tls_line("2026-11-23T17:58:01", "412877", "12"));
        tally.add_line(&tls_line("2026-11-23T17:58:02", "35", "-"));
        tally.add_line(&tls_line("2026-11-23T17:58:03", "1200", "9"));
        tally.add_line(&tls_line("2026-11-23T18:30:00", "999999", "9"));
        tally.add_line("https 2026-11-23T17:58:01 an ALB line");
        let logs = &tally.logs;
        assert_eq!((logs.lines, logs.malformed), (3, 1));
        assert_eq!(logs.tls_connections, 3);
        assert_eq!(logs.tls_handshake_failures, 1);
        assert_eq!(logs.long_connections, 1);
        assert_eq!(logs.total_5xx(), 0);
    }

    proptest! {
        #[test]
        fn any_line_parses_or_is_malformed(line in "\\PC{0,300}", kind in prop_oneof![Just(LbKind::Application), Just(LbKind::Classic), Just(LbKind::Network)]) {
            let mut tally = Tally::new(kind, 60, window(), AccessLogs::default());
            tally.add_line(&line);
            prop_assert!(tally.logs.lines + tally.logs.malformed <= 1);
        }

        #[test]
        fn mutated_real_lines_never_panic(cut in 0usize..600, byte in any::<u8>(), at in 0usize..600) {
            let mut line = alb_line("2026-11-23T17:58:01.123456Z", "10.0.37.152:8080", "504", "-", "-1", "2026-11-23T17:57:01.120000Z").into_bytes();
            if at < line.len() { line[at] = byte; }
            line.truncate(cut.min(line.len()));
            let text = String::from_utf8_lossy(&line);
            let mut tally = Tally::new(LbKind::Application, 60, window(), AccessLogs::default());
            tally.add_line(&text);
        }
    }
}

//! The report as an SNS message: `MessageStructure=json`, so email and email-json subscribers
//! get the plain text and SQS, Lambda and HTTPS subscribers the JSON report. SNS counts the
//! whole published message (every per-protocol copy, escaped) against its 256 KiB limit, so a
//! report that does not fit is trimmed, evidence first, and re-rendered: never cut mid-JSON.

use serde::Serialize;

use super::{Format, Report};

/// SNS's limit for one published message, subject included.
pub const SNS_MAX_BYTES: usize = 262_144;

/// Room left for the subject and request overhead.
const MARGIN: usize = 2_048;

#[derive(Debug, Clone, PartialEq)]
pub struct SnsMessage {
    pub subject: String,
    /// The JSON object to publish with `MessageStructure=json`.
    pub message: String,
    /// True when evidence had to be left out to fit.
    pub trimmed: bool,
}

#[derive(Serialize)]
struct PerProtocol<'a> {
    default: &'a str,
    email: &'a str,
    #[serde(rename = "email-json")]
    email_json: &'a str,
    sqs: &'a str,
    lambda: &'a str,
    https: &'a str,
    http: &'a str,
}

fn encode(report: &Report) -> String {
    let text = report.render(Format::Text);
    let json = serde_json::to_string(report).unwrap_or_default();
    let body = PerProtocol {
        default: &text,
        email: &text,
        email_json: &text,
        sqs: &json,
        lambda: &json,
        https: &json,
        http: &json,
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// Ever harsher cuts, each keeping the verdict, every finding's code, title and fix.
fn trim(report: &Report, level: usize) -> Report {
    let mut cut = report.clone();
    let keep_evidence = [usize::MAX, 5, 2, 0, 0, 0][level.min(5)];
    for finding in &mut cut.findings {
        finding.evidence.truncate(keep_evidence);
    }
    if level >= 2 {
        cut.checked.iter_mut().for_each(|c| c.detail.truncate(200));
        cut.gaps.iter_mut().for_each(|g| g.detail.truncate(200));
    }
    if level >= 4 {
        for finding in &mut cut.findings {
            finding.explanation.truncate(600);
            finding.fix.commands.truncate(5);
        }
    }
    if level >= 5 {
        let dropped = cut.findings.len().saturating_sub(5);
        cut.findings.truncate(5);
        if dropped > 0 {
            cut.next_steps.push(format!(
                "{dropped} more findings were left out of this message to fit SNS's size limit."
            ));
        }
    }
    if level > 0 {
        cut.next_steps.push("Evidence was trimmed to fit SNS's 256 KiB limit: run `elbmedic diagnose` for the full report.".into());
    }
    cut
}

/// The report as one SNS message, trimmed until it fits `limit` bytes (default [`SNS_MAX_BYTES`]).
pub fn sns_message(report: &Report, limit: usize) -> SnsMessage {
    let subject = report.subject();
    let budget = limit.saturating_sub(MARGIN + subject.len());
    for level in 0..=5 {
        let candidate = if level == 0 {
            report.clone()
        } else {
            trim(report, level)
        };
        let message = encode(&candidate);
        if message.len() <= budget || level == 5 {
            return SnsMessage {
                subject: subject.clone(),
                message,
                trimmed: level > 0,
            };
        }
    }
    unreachable!("the loop returns at level 5")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{parse_input, Intake};
    use crate::finding::Evidence;
    use crate::scenarios;

    fn report(name: &str) -> Report {
        let s = scenarios::find(name).unwrap();
        let Intake::Diagnose {
            alarm,
            load_balancer,
        } = parse_input(s.event.as_bytes()).unwrap().remove(0).unwrap()
        else {
            panic!()
        };
        Report::diagnosed(
            &alarm,
            &load_balancer,
            &crate::snapshot::from_json(s.snapshot).unwrap(),
        )
    }

    #[test]
    fn every_protocol_gets_its_format() {
        let m = sns_message(&report("alb-idle-timeout"), SNS_MAX_BYTES);
        assert!(!m.trimmed);
        let body: serde_json::Value = serde_json::from_str(&m.message).unwrap();
        assert!(body["default"]
            .as_str()
            .unwrap()
            .starts_with("CAUSE FOUND: "));
        assert_eq!(body["email"], body["default"]);
        let sqs: serde_json::Value = serde_json::from_str(body["sqs"].as_str().unwrap()).unwrap();
        assert_eq!(sqs["findings"][0]["code"], "idle-timeout-exceeded");
        assert_eq!(body["lambda"], body["sqs"]);
        assert!(
            m.subject.starts_with("[elbmedic] CAUSE FOUND: ") && m.subject.chars().count() < 100
        );
    }

    #[test]
    fn an_oversized_report_is_trimmed_to_fit_and_stays_valid_json() {
        let mut big = report("nacl-ephemeral-node-subnets");
        let filler = "x".repeat(2_000);
        for finding in &mut big.findings {
            finding
                .evidence
                .extend((0..200).map(|i| Evidence::observation(format!("{i} {filler}"))));
        }
        let m = sns_message(&big, SNS_MAX_BYTES);
        assert!(m.trimmed);
        assert!(
            m.message.len() + m.subject.len() <= SNS_MAX_BYTES,
            "{}",
            m.message.len()
        );
        let body: serde_json::Value = serde_json::from_str(&m.message).unwrap();
        let sqs: serde_json::Value = serde_json::from_str(body["sqs"].as_str().unwrap()).unwrap();
        assert_eq!(sqs["findings"][0]["code"], "nacl-blocks-ephemeral-ports");
        assert!(body["default"]
            .as_str()
            .unwrap()
            .contains("Evidence was trimmed"));
    }

    #[test]
    fn a_small_limit_still_gives_valid_json() {
        let m = sns_message(&report("nacl-ephemeral-node-subnets"), 20_000);
        assert!(m.trimmed);
        assert!(serde_json::from_str::<serde_json::Value>(&m.message).is_ok());
    }
}

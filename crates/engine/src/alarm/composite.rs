//! Composite alarms: they name no metric, only other alarms (`AlarmRule`), so elbmedic
//! diagnoses the child alarms that fired them. This module holds the pure part: which children
//! to read, how a child's description becomes an [`Intake`], and which of them to diagnose.
//! Reading the children from CloudWatch is the edge's job (`elbmedic_aws::pipeline::composite`).

use serde_json::Value;

use super::message::{Envelope, RawAlarm};
use super::{AlarmState, Intake, IntakeError};

/// DescribeAlarms accepts at most 100 names per call; a rule naming more is cut there.
pub const MAX_CHILDREN: usize = 100;

/// Load balancers diagnosed for one composite alarm in one invocation (**contract**:
/// `MAX_COMPOSITE_CHILDREN`): each is a gather, and all must finish within the function's
/// timeout; the rest are named in a notice.
pub const DEFAULT_MAX_COMPOSITE_LOAD_BALANCERS: usize = 5;

/// The names of the child alarms to diagnose: those `TriggeringChildren` lists in ALARM (the
/// ones that fired it), else every alarm the rule requires in ALARM. Order kept, no repeats.
pub fn children_to_resolve(raw: &RawAlarm, state: AlarmState) -> Vec<String> {
    let fired: Vec<String> = raw
        .triggering_children
        .iter()
        .filter(|child| {
            state != AlarmState::Alarm
                || child
                    .state
                    .as_ref()
                    .and_then(|s| s.value.as_deref())
                    .and_then(AlarmState::parse)
                    .is_none_or(|s| s == AlarmState::Alarm)
        })
        .filter_map(|child| child.arn.as_deref())
        .map(alarm_name_of)
        .collect();
    let names = if fired.is_empty() {
        raw.alarm_rule
            .as_deref()
            .map(names_in_rule)
            .unwrap_or_default()
    } else {
        fired
    };
    let mut unique: Vec<String> = Vec::new();
    for name in names {
        if !name.is_empty() && !unique.contains(&name) && unique.len() < MAX_CHILDREN {
            unique.push(name);
        }
    }
    unique
}

/// `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME` -> `NAME`; a bare name is kept as it is.
pub fn alarm_name_of(reference: &str) -> String {
    let reference = reference.trim();
    if reference.starts_with("arn:") {
        if let Some((_, name)) = reference.split_once(":alarm:") {
            return name.to_string();
        }
    }
    reference.to_string()
}

/// The alarms a rule needs in ALARM: the arguments of `ALARM(...)` and of
/// `AT_LEAST(M, ALARM, (...))`, quoted or bare, by name or ARN.
pub fn names_in_rule(rule: &str) -> Vec<String> {
    let tokens = tokenize(rule);
    let mut names = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        let is_call = |name: &str| {
            matches!(&tokens[index], Token::Word(w) if w.eq_ignore_ascii_case(name))
                && tokens.get(index + 1) == Some(&Token::Open)
        };
        if is_call("ALARM") {
            if let Some(Token::Word(name) | Token::Quoted(name)) = tokens.get(index + 2) {
                names.push(alarm_name_of(name));
            }
            index += 2;
        } else if is_call("AT_LEAST") {
            // AT_LEAST(M, STATE, (a, b, ...)): only a STATE of ALARM makes children fire it.
            let state = tokens[index + 2..]
                .iter()
                .take_while(|t| **t != Token::Open)
                .find_map(|t| match t {
                    Token::Word(w) if !w.chars().all(|c| c.is_ascii_digit() || c == '%') => {
                        Some(w.to_ascii_uppercase())
                    }
                    _ => None,
                });
            let list_start = tokens[index + 2..]
                .iter()
                .position(|t| *t == Token::Open)
                .map(|p| index + 2 + p + 1);
            if let (Some("ALARM"), Some(start)) = (state.as_deref(), list_start) {
                for token in tokens[start..].iter().take_while(|t| **t != Token::Close) {
                    if let Token::Word(name) | Token::Quoted(name) = token {
                        names.push(alarm_name_of(name));
                    }
                }
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    names
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Quoted(String),
    Word(String),
}

fn tokenize(rule: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = rule.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => text.extend(chars.next()),
                        other => text.push(other),
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, '(' | ')' | ',' | '"') || c.is_whitespace() {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    tokens
}

/// Reads one child alarm, described by CloudWatch in the shape of an alarm message
/// (`AlarmName`, `AlarmArn`, `Trigger`, ...), as if it had fired with its composite: the
/// composite's state and time, so the gather window is the one that alarmed.
pub fn child_intake(composite: &super::Alarm, child: &Value) -> Result<Intake, IntakeError> {
    let name = child
        .get("AlarmName")
        .and_then(Value::as_str)
        .unwrap_or("unnamed");
    let context = format!(
        "child alarm {name} of composite alarm {}",
        composite.alarm_name
    );
    let mut raw: RawAlarm =
        serde::Deserialize::deserialize(child).map_err(|e: serde_json::Error| {
            IntakeError::NotAnAlarm {
                context: context.clone(),
                reason: e.to_string(),
            }
        })?;
    // The child's own state when CloudWatch gave it: a child that is OK did not fire the
    // composite, so it is reported as recovered and gets no plan.
    if raw.new_state_value.is_none() {
        raw.new_state_value = Some(composite.state.as_str().to_string());
        raw.old_state_value = composite.previous_state.map(|s| s.as_str().to_string());
    }
    raw.state_change_time = composite.state_change_time.clone();
    raw.aws_account_id = raw.aws_account_id.or(composite.account_id.clone());
    if raw.alarm_arn.is_none() {
        raw.region = Some(composite.region.clone());
    }
    let mut intake = super::interpret(&Envelope {
        context,
        topic_arn: None,
        alarm: raw,
    })?;
    intake.alarm_mut().via_composite = Some(composite.alarm_name.clone());
    Ok(intake)
}

/// What to handle for a composite alarm, given its children read as intakes (`Err` for a
/// child that could not be read) and the names CloudWatch did not know: one diagnosis per load
/// balancer (two children on one ALB are one cause), at most `max_load_balancers` of them,
/// with a notice naming the rest; a child whose own state is OK as a recovery notice (no
/// plan). When nothing is diagnosable, the composite itself as unsupported, with each child's
/// reason.
pub fn one_per_load_balancer(
    composite: &super::Alarm,
    children: Vec<Result<Intake, IntakeError>>,
    missing: &[String],
    max_load_balancers: usize,
) -> Vec<Intake> {
    let lb_of = |intake: &Intake| intake.load_balancer().map(|lb| (lb.kind, lb.id.clone()));
    let mut chosen: Vec<Intake> = Vec::new();
    let mut recovered: Vec<Intake> = Vec::new();
    let mut beyond: Vec<String> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    for child in children {
        match child {
            Ok(intake @ Intake::Diagnose { .. }) => {
                if chosen.iter().any(|c| lb_of(c) == lb_of(&intake)) {
                    continue;
                }
                if chosen.len() < max_load_balancers {
                    chosen.push(intake);
                } else {
                    let lb = intake
                        .load_balancer()
                        .map(|lb| lb.name.clone())
                        .unwrap_or_default();
                    beyond.push(format!("{lb} (child {})", intake.alarm().alarm_name));
                }
            }
            Ok(intake @ Intake::Recovered { .. }) => recovered.push(intake),
            Ok(Intake::Unsupported { alarm, reason }) => {
                reasons.push(format!("{}: {reason}", alarm.alarm_name));
            }
            Ok(other) => reasons.push(format!(
                "{}: not in ALARM with its composite",
                other.alarm().alarm_name
            )),
            Err(error) => reasons.push(error.to_string()),
        }
    }
    reasons.extend(
        missing
            .iter()
            .map(|name| format!("{name}: no such alarm in {}", composite.region)),
    );
    // A recovered child on a load balancer that is diagnosed anyway says nothing new.
    recovered.retain(|r| !chosen.iter().any(|c| lb_of(c) == lb_of(r)));
    if chosen.is_empty() && recovered.is_empty() {
        let detail = if reasons.is_empty() {
            "its rule names no child alarm in ALARM".to_string()
        } else {
            reasons.join("; ")
        };
        return vec![Intake::Unsupported {
            alarm: composite.clone(),
            reason: format!(
                "composite alarm whose children elbmedic cannot diagnose ({detail}). Attach elbmedic to a load balancer's 5xx alarm, or make one a child of this composite"
            ),
        }];
    }
    if !beyond.is_empty() {
        chosen.push(Intake::Unsupported {
            alarm: composite.clone(),
            reason: format!(
                "composite alarm naming more load balancers than MAX_COMPOSITE_CHILDREN ({max_load_balancers}) diagnoses in one invocation; not diagnosed: {}. Raise MAX_COMPOSITE_CHILDREN (within the function's timeout), or give each load balancer its own alarm",
                beyond.join(", ")
            ),
        });
    }
    chosen.extend(recovered);
    chosen
}

#[cfg(test)]
mod tests;

//! The storm summary: one message in place of N full reports when many load balancers of one
//! VPC open incidents at once, grouped by the resources their diagnoses share (the NACL that
//! every one of them names comes first). Email text, the JSON for machines, and the chat
//! notification; each bounded like every SNS message.

use serde::Serialize;

use super::escape::{chat, chat_code};
use super::sns::{truncate_chars, SnsMessage, SNS_MAX_BYTES};
use super::wrap::wrap;
use crate::incident::note::clock;
use crate::incident::storm::{group, Member, Storm, WINDOW_SECONDS};
use crate::untrusted::one_line;

/// Members listed by name per group; the rest are counted.
const NAMED_PER_GROUP: usize = 25;
/// The text part is cut to this, leaving room for the JSON part in one SNS message.
const MAX_TEXT_BYTES: usize = 40 * 1024;
/// Groups the JSON lists, and names per group.
const MAX_GROUPS: usize = 20;
const WIDTH: usize = 100;

/// How many incidents the storm holds.
fn count(storm: &Storm) -> usize {
    storm.members.len() + storm.more
}

pub fn subject(storm: &Storm) -> String {
    let account = match storm.key.account.as_str() {
        "own" => String::new(),
        account => format!(" {}", one_line(account)),
    };
    let text = format!(
        "[elbmedic{account}] STORM: {} load balancers in {} alarmed within {} min",
        count(storm),
        one_line(&storm.key.vpc),
        WINDOW_SECONDS / 60
    );
    text.chars().take(super::MAX_SUBJECT_CHARS).collect()
}

pub fn render_text(storm: &Storm) -> String {
    let grouped = group(storm);
    let mut out = wrap(
        &format!(
            "STORM: {} load balancers in {} ({}, account {}) opened incidents within {} min: likely one cause.",
            count(storm),
            one_line(&storm.key.vpc),
            one_line(&storm.key.region),
            one_line(&storm.key.account),
            WINDOW_SECONDS / 60
        ),
        WIDTH,
        "",
    );
    if grouped.shared.is_empty() {
        out.push_str("\nTheir diagnoses share no deciding resource: look for a zone or a service in common.\n");
    }
    for shared in &grouped.shared {
        out.push('\n');
        out.push_str(&wrap(
            &format!(
                "SHARED BY {} OF THEM: {} ({})",
                shared.members.len(),
                shared
                    .resources
                    .iter()
                    .map(|r| one_line(r))
                    .collect::<Vec<_>>()
                    .join(", "),
                shared.codes.join(", ")
            ),
            WIDTH,
            "",
        ));
        members(&shared.members, &mut out);
    }
    if !grouped.alone.is_empty() && !grouped.shared.is_empty() {
        out.push_str("\nSHARING NO DECIDING RESOURCE WITH THE OTHERS\n");
        members(&grouped.alone, &mut out);
    } else if !grouped.alone.is_empty() {
        members(&grouped.alone, &mut out);
    }
    if storm.more > 0 {
        out.push_str(&format!(
            "\n{} more load balancers joined; `elbmedic incidents` lists them.\n",
            storm.more
        ));
    }
    out.push('\n');
    out.push_str(&wrap(
        &format!(
            "Each load balancer's full report is kept (its S3 page, linked above when stored, and the JSON of this message). Load balancers of this VPC that alarm in the next {} min join this storm without a message of their own; `elbmedic incidents` lists every one.",
            WINDOW_SECONDS / 60
        ),
        WIDTH,
        "",
    ));
    truncate_chars(&mut out, MAX_TEXT_BYTES);
    out
}

fn members(list: &[&Member], out: &mut String) {
    for member in list.iter().take(NAMED_PER_GROUP) {
        out.push_str(&wrap(
            &format!(
                "- {} (opened {}): {}",
                one_line(&member.name),
                clock(member.opened_at),
                one_line(&member.headline)
            ),
            WIDTH,
            "    ",
        ));
        if let Some(url) = &member.report_url {
            out.push_str(&format!("    {}\n", one_line(url)));
        }
    }
    if list.len() > NAMED_PER_GROUP {
        out.push_str(&format!("- and {} more\n", list.len() - NAMED_PER_GROUP));
    }
}

#[derive(Serialize)]
struct StormJson<'a> {
    kind: &'static str,
    account: &'a str,
    region: &'a str,
    vpc: &'a str,
    load_balancers: usize,
    shared: Vec<SharedJson<'a>>,
    members: Vec<MemberJson<'a>>,
}

#[derive(Serialize)]
struct SharedJson<'a> {
    resources: &'a [&'a str],
    codes: &'a [&'a str],
    load_balancers: Vec<&'a str>,
}

#[derive(Serialize)]
struct MemberJson<'a> {
    load_balancer: &'a str,
    name: &'a str,
    opened_at: i64,
    headline: &'a str,
    causes: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report_url: Option<&'a str>,
}

fn render_json(storm: &Storm, members_kept: usize, groups_kept: usize) -> String {
    let grouped = group(storm);
    let json = StormJson {
        kind: "elbmedic-storm",
        account: &storm.key.account,
        region: &storm.key.region,
        vpc: &storm.key.vpc,
        load_balancers: count(storm),
        shared: grouped
            .shared
            .iter()
            .take(groups_kept)
            .map(|s| SharedJson {
                resources: &s.resources[..s.resources.len().min(NAMED_PER_GROUP)],
                codes: &s.codes,
                load_balancers: s
                    .members
                    .iter()
                    .take(NAMED_PER_GROUP)
                    .map(|m| m.name.as_str())
                    .collect(),
            })
            .collect(),
        members: storm
            .members
            .iter()
            .take(members_kept)
            .map(|m| MemberJson {
                load_balancer: &m.load_balancer,
                name: &m.name,
                opened_at: m.opened_at,
                headline: &m.headline,
                causes: m
                    .fingerprint
                    .causes
                    .iter()
                    .map(|c| c.code.as_str())
                    .collect(),
                report_url: m.report_url.as_deref(),
            })
            .collect(),
    };
    serde_json::to_string(&json).unwrap_or_default()
}

/// The summary as one SNS message (`MessageStructure=json`): text for email, JSON for
/// machines, within SNS's limit.
pub fn sns_message(storm: &Storm) -> SnsMessage {
    let text = render_text(storm);
    let mut kept = storm.members.len();
    let mut groups = MAX_GROUPS;
    loop {
        let json = render_json(storm, kept, groups);
        let body = serde_json::json!({
            "default": text, "email": text, "email-json": text,
            "sqs": json, "lambda": json, "https": json, "http": json,
        })
        .to_string();
        // The text is at most 40 KiB (three copies), so with no members and no groups the
        // message always fits.
        if body.len() + 2_048 <= SNS_MAX_BYTES || (kept == 0 && groups == 0) {
            return SnsMessage {
                subject: subject(storm),
                message: body,
                trimmed: kept < storm.members.len(),
            };
        }
        if kept > 0 {
            kept /= 2;
        } else {
            groups /= 2;
        }
    }
}

/// The summary as a chat custom notification, in a thread of its own.
pub fn render_chat(storm: &Storm) -> String {
    let grouped = group(storm);
    let mut lines = vec![format!(
        "*{} load balancers* in {} opened incidents within {} min: likely one cause.",
        count(storm),
        chat_code(&storm.key.vpc),
        WINDOW_SECONDS / 60
    )];
    for shared in grouped.shared.iter().take(5) {
        lines.push(format!(
            "• *Shared by {}:* {} ({})",
            shared.members.len(),
            shared
                .resources
                .iter()
                .take(5)
                .map(|r| chat_code(r))
                .collect::<Vec<_>>()
                .join(", "),
            chat(&shared.codes.join(", "))
        ));
    }
    let names: Vec<String> = storm
        .members
        .iter()
        .take(10)
        .map(|m| chat_code(&m.name))
        .collect();
    lines.push(format!(
        "Load balancers: {}{}",
        names.join(", "),
        if count(storm) > 10 { ", ..." } else { "" }
    ));
    let mut description = lines.join("\n");
    truncate_chars(&mut description, 8 * 1024);
    let thread = format!(
        "elbmedic-storm-{:016x}",
        crate::stable_hash::stable_hash(&format!(
            "{}|{}",
            storm.key.ledger_key(),
            storm.summary_at.unwrap_or_default()
        ))
    );
    serde_json::json!({
        "version": "1.0",
        "source": "custom",
        "id": chat(&thread),
        "content": {
            "textType": "client-markdown",
            "title": format!(":cyclone: {}", chat(&subject(storm))),
            "description": description,
            "keywords": ["STORM", chat(&storm.key.vpc)],
        },
        "metadata": {
            "threadId": thread,
            "summary": chat(&subject(storm)),
            "eventType": "elbmedic-storm",
            "relatedResources": grouped.shared.iter().flat_map(|s| s.resources.iter().map(|r| chat(r))).take(20).collect::<Vec<_>>(),
            "additionalContext": {"vpc": chat(&storm.key.vpc).replace(' ', "_"), "region": chat(&storm.key.region).replace(' ', "_")},
        }
    })
    .to_string()
}

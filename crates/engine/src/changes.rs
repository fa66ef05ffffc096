//! CloudTrail events read as changes to the path: what each one did, in a sentence, and which
//! resources it touched, so the diagnosis can tie a change to the finding it explains ("rule 90
//! was created by … at 17:52, 8 minutes before the alarm"). Everything in an event is
//! untrusted: it is rendered escaped, on one line, and bounded.

use serde_json::Value;

use crate::alarm::parse_timestamp;
use crate::snapshot::ChangeEvent;
use crate::untrusted::one_line;

/// A sentence is cut here: an event's parameters are whatever the caller sent.
const MAX_TEXT: usize = 200;

/// The request parameters that name a resource on the path.
const RESOURCE_KEYS: [&str; 9] = [
    "networkAclId",
    "groupId",
    "GroupId",
    "loadBalancerArn",
    "loadBalancerName",
    "targetGroupArn",
    "listenerArn",
    "id",
    "instanceId",
];

/// Every resource an event names: its `Resources`, and the ids in its request parameters
/// (with an ARN's short forms too: `app/NAME/ID` and `NAME`, `targetgroup/NAME/ID`).
pub fn touched(event: &ChangeEvent) -> Vec<String> {
    let mut ids: Vec<String> = event.resources.clone();
    collect(&event.request, 0, &mut ids);
    let mut all = Vec::new();
    for id in ids {
        for form in forms(&id) {
            if !all.contains(&form) {
                all.push(form);
            }
        }
    }
    all
}

fn collect(value: &Value, depth: usize, ids: &mut Vec<String>) {
    if depth > 6 || ids.len() > 200 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match inner {
                    Value::String(text) if RESOURCE_KEYS.contains(&key.as_str()) => {
                        ids.push(text.clone())
                    }
                    _ => collect(inner, depth + 1, ids),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, depth + 1, ids)),
        _ => {}
    }
}

/// An id and the short forms of an ELB ARN.
fn forms(id: &str) -> Vec<String> {
    let mut forms = vec![id.to_string()];
    for marker in [":loadbalancer/", ":targetgroup/"] {
        if let Some((_, rest)) = id.split_once(marker) {
            let resource = if marker == ":targetgroup/" {
                format!("targetgroup/{rest}")
            } else {
                rest.to_string()
            };
            let name = resource
                .split('/')
                .rev()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            forms.push(resource);
            if !name.is_empty() {
                forms.push(name);
            }
        }
    }
    forms
}

fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether an event registers or deregisters targets.
pub fn is_registration(event: &ChangeEvent) -> bool {
    matches!(
        event.event_name.as_str(),
        "RegisterTargets"
            | "DeregisterTargets"
            | "RegisterInstancesWithLoadBalancer"
            | "DeregisterInstancesFromLoadBalancer"
    )
}

/// What a NACL or security-group event did to which entry or rule, read from its request:
/// enough to tell whether it touched the entry that decides a finding.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkChange {
    /// `CreateNetworkAclEntry`, `ReplaceNetworkAclEntry`, `DeleteNetworkAclEntry`. `None`
    /// where the request does not say (a deletion names only the rule number).
    NaclEntry {
        nacl_id: String,
        egress: bool,
        deny: Option<bool>,
        protocol: Option<String>,
        ports: Option<(u16, u16)>,
        cidr: Option<String>,
        /// The entry the call deleted or replaced is not in the event: what it allowed before
        /// is unknown, so it may have been the one that let the path through.
        previous_unknown: bool,
    },
    /// `ReplaceNetworkAclAssociation`: a subnet moved to `nacl_id`.
    NaclAssociation { nacl_id: String },
    /// `Authorize`/`RevokeSecurityGroupIngress`/`Egress`. `permissions` is empty when the
    /// rules are named by id only (`securityGroupRuleIds`): then what they allowed is unknown.
    SgRules {
        group_id: String,
        egress: bool,
        revoked: bool,
        permissions: Vec<Permission>,
    },
}

/// One `IpPermission` of a security-group event.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, `-1` or a number, as sent.
    pub protocol: String,
    /// `None`: every port (no range, or `-1`).
    pub ports: Option<(u16, u16)>,
    pub cidrs: Vec<String>,
    pub groups: Vec<String>,
}

impl NetworkChange {
    /// A change that removed or denied access (or may have: a deletion, a moved subnet). Such
    /// a change is never offered for undoing: it may have removed more than the path needs,
    /// and restoring that (an SSH rule open to the world) is no fix.
    pub fn tightens(&self) -> bool {
        match self {
            Self::NaclEntry {
                deny,
                previous_unknown,
                ..
            } => *previous_unknown || *deny != Some(false),
            Self::NaclAssociation { .. } => true,
            Self::SgRules { revoked, .. } => *revoked,
        }
    }
}

/// The NACL or security-group change an event made, if it is one.
pub fn network_change(event: &ChangeEvent) -> Option<NetworkChange> {
    let r = &event.request;
    let name = event.event_name.as_str();
    let egress = direction(r) == "egress";
    match name {
        "CreateNetworkAclEntry" | "ReplaceNetworkAclEntry" | "DeleteNetworkAclEntry" => {
            let deleted = name == "DeleteNetworkAclEntry";
            let port = |key: &str| {
                r.pointer(&format!("/portRange/{key}"))
                    .and_then(|v| match v {
                        Value::Number(n) => n.as_u64(),
                        Value::String(s) => s.parse().ok(),
                        _ => None,
                    })
                    .and_then(|n| u16::try_from(n).ok())
            };
            Some(NetworkChange::NaclEntry {
                nacl_id: text(r, "networkAclId")?,
                egress,
                deny: (!deleted)
                    .then(|| text(r, "ruleAction").map(|a| a.eq_ignore_ascii_case("deny")))
                    .flatten(),
                protocol: text(r, "aclProtocol").or_else(|| text(r, "protocol")),
                ports: port("from").zip(port("to")),
                cidr: text(r, "cidrBlock").or_else(|| text(r, "ipv6CidrBlock")),
                previous_unknown: name != "CreateNetworkAclEntry",
            })
        }
        "ReplaceNetworkAclAssociation" => Some(NetworkChange::NaclAssociation {
            nacl_id: text(r, "networkAclId")?,
        }),
        "AuthorizeSecurityGroupIngress"
        | "AuthorizeSecurityGroupEgress"
        | "RevokeSecurityGroupIngress"
        | "RevokeSecurityGroupEgress" => Some(NetworkChange::SgRules {
            group_id: text(r, "groupId")?,
            egress: name.ends_with("Egress"),
            revoked: name.starts_with("Revoke"),
            permissions: items(r.pointer("/ipPermissions/items"))
                .iter()
                .map(permission)
                .collect(),
        }),
        _ => None,
    }
}

/// The `items` of a CloudTrail list (`{"items": [...]}`), or none.
fn items(value: Option<&Value>) -> Vec<Value> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().take(50).cloned().collect())
        .unwrap_or_default()
}

fn permission(p: &Value) -> Permission {
    let number = |key: &str| match p.get(key) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let ports = match (number("fromPort"), number("toPort")) {
        (Some(from), Some(to)) if from >= 0 && to >= 0 => {
            u16::try_from(from).ok().zip(u16::try_from(to).ok())
        }
        _ => None,
    };
    let collect = |list: &str, key: &str| -> Vec<String> {
        items(p.pointer(&format!("/{list}/items")))
            .iter()
            .filter_map(|item| text(item, key))
            .collect()
    };
    let mut cidrs = collect("ipRanges", "cidrIp");
    cidrs.extend(collect("ipv6Ranges", "cidrIpv6"));
    Permission {
        protocol: text(p, "ipProtocol").unwrap_or_else(|| "-1".into()),
        ports,
        cidrs,
        groups: collect("groups", "groupId"),
    }
}

/// What the event did, in one bounded line.
pub fn describe(event: &ChangeEvent) -> String {
    let r = &event.request;
    let name = event.event_name.as_str();
    let sentence = match name {
        "CreateNetworkAclEntry" | "ReplaceNetworkAclEntry" => nacl_entry(name, r),
        "DeleteNetworkAclEntry" => format!(
            "rule {} ({}) deleted from {}",
            text(r, "ruleNumber").unwrap_or_else(|| "?".into()),
            direction(r),
            text(r, "networkAclId").unwrap_or_else(|| "a NACL".into())
        ),
        "ReplaceNetworkAclAssociation" => format!(
            "a subnet was moved to NACL {}",
            text(r, "networkAclId").unwrap_or_else(|| "?".into())
        ),
        "AuthorizeSecurityGroupIngress"
        | "AuthorizeSecurityGroupEgress"
        | "RevokeSecurityGroupIngress"
        | "RevokeSecurityGroupEgress" => {
            let verb = if name.starts_with("Authorize") {
                "added to"
            } else {
                "removed from"
            };
            let way = if name.ends_with("Ingress") {
                "inbound"
            } else {
                "outbound"
            };
            let group = text(r, "groupId").unwrap_or_else(|| "a security group".into());
            format!("{way} rules{} {verb} {group}", sg_ports(r))
        }
        "ModifyLoadBalancerAttributes" | "ModifyTargetGroupAttributes" => attributes(name, r),
        "RegisterTargets"
        | "DeregisterTargets"
        | "RegisterInstancesWithLoadBalancer"
        | "DeregisterInstancesFromLoadBalancer" => {
            let count = r
                .get("targets")
                .or_else(|| r.get("instances"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let verb = if name.starts_with("Register") {
                "registered"
            } else {
                "deregistered"
            };
            format!(
                "{} {verb}",
                crate::context::count(count, "target", "targets")
            )
        }
        _ => {
            let ids = touched(event);
            if ids.is_empty() {
                name.to_string()
            } else {
                format!("{name} on {}", ids[0])
            }
        }
    };
    bounded(&sentence)
}

/// A NACL entry created or replaced: its number, action, direction, protocol, ports, CIDR.
fn nacl_entry(name: &str, r: &Value) -> String {
    let ports = match (r.pointer("/portRange/from"), r.pointer("/portRange/to")) {
        (Some(from), Some(to)) => format!(" ports {from}-{to}"),
        _ => String::new(),
    };
    format!(
        "rule {} ({} {}, protocol {}{ports}, {}) {} on {}",
        text(r, "ruleNumber").unwrap_or_else(|| "?".into()),
        text(r, "ruleAction").unwrap_or_else(|| "?".into()),
        direction(r),
        text(r, "aclProtocol").unwrap_or_else(|| "?".into()),
        text(r, "cidrBlock")
            .or_else(|| text(r, "ipv6CidrBlock"))
            .unwrap_or_else(|| "?".into()),
        if name == "CreateNetworkAclEntry" {
            "created"
        } else {
            "replaced"
        },
        text(r, "networkAclId").unwrap_or_else(|| "a NACL".into()),
    )
}

/// The attributes a load balancer or target group change set.
fn attributes(name: &str, r: &Value) -> String {
    let changed: Vec<String> = match r.get("attributes") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|a| Some(format!("{}={}", text(a, "key")?, text(a, "value")?)))
            .collect(),
        _ => r
            .pointer("/loadBalancerAttributes/connectionSettings/idleTimeout")
            .map(|t| vec![format!("idle timeout={t}")])
            .unwrap_or_default(),
    };
    let what = if name == "ModifyTargetGroupAttributes" {
        "target group"
    } else {
        "load balancer"
    };
    let changed = if changed.is_empty() {
        "see the event".to_string()
    } else {
        changed.join(", ")
    };
    format!("{what} attributes changed ({changed})")
}

fn direction(r: &Value) -> &'static str {
    match r.get("egress") {
        Some(Value::Bool(true)) => "egress",
        Some(Value::String(s)) if s == "true" => "egress",
        _ => "ingress",
    }
}

fn sg_ports(r: &Value) -> String {
    let items = r
        .pointer("/ipPermissions/items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ports: Vec<String> = items
        .iter()
        .filter_map(|p| {
            let protocol = text(p, "ipProtocol")?;
            match (text(p, "fromPort"), text(p, "toPort")) {
                (Some(from), Some(to)) if from == to => Some(format!("{protocol} {from}")),
                (Some(from), Some(to)) => Some(format!("{protocol} {from}-{to}")),
                _ => Some(protocol),
            }
        })
        .take(3)
        .collect();
    if ports.is_empty() {
        String::new()
    } else {
        format!(" ({})", ports.join(", "))
    }
}

/// One line of free text from an event, safe to render.
pub fn bounded(text: &str) -> String {
    let line = one_line(text);
    if line.chars().count() <= MAX_TEXT {
        return line;
    }
    let cut: String = line.chars().take(MAX_TEXT - 3).collect();
    cut + "..."
}

/// The event's time as `HH:MM` (UTC) and its epoch seconds.
pub fn when(event: &ChangeEvent) -> (String, Option<i64>) {
    let at = parse_timestamp(&event.event_time);
    let clock = at
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_else(|| bounded(&event.event_time));
    (clock, at)
}

/// Who made the call, bounded.
pub fn actor(event: &ChangeEvent) -> String {
    event
        .actor
        .as_deref()
        .map(bounded)
        .unwrap_or_else(|| "an unknown caller".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, request: Value) -> ChangeEvent {
        ChangeEvent {
            event_id: "e1".into(),
            event_name: name.into(),
            event_time: "2026-11-23T17:52:11Z".into(),
            actor: Some("arn:aws:sts::111122223333:assumed-role/terraform/ci".into()),
            resources: Vec::new(),
            request,
            error_code: None,
            read_only: false,
        }
    }

    #[test]
    fn a_nacl_entry_reads_as_the_rule_it_made() {
        let e = event(
            "CreateNetworkAclEntry",
            json!({"networkAclId": "acl-1", "ruleNumber": 90, "egress": false,
            "ruleAction": "deny", "aclProtocol": "6", "portRange": {"from": 1024, "to": 65535}, "cidrBlock": "10.0.48.0/20"}),
        );
        assert_eq!(
            describe(&e),
            "rule 90 (deny ingress, protocol 6 ports 1024-65535, 10.0.48.0/20) created on acl-1"
        );
        assert_eq!(touched(&e), ["acl-1"]);
        assert_eq!(when(&e).0, "17:52");
    }

    #[test]
    fn elb_arns_are_matched_by_their_short_forms_too() {
        let e = event(
            "ModifyLoadBalancerAttributes",
            json!({
            "loadBalancerArn": "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/web/0123456789abcdef",
            "attributes": [{"key": "idle_timeout.timeout_seconds", "value": "30"}]}),
        );
        let ids = touched(&e);
        assert!(
            ids.contains(&"app/web/0123456789abcdef".to_string()),
            "{ids:?}"
        );
        assert!(ids.contains(&"web".to_string()));
        assert_eq!(
            describe(&e),
            "load balancer attributes changed (idle_timeout.timeout_seconds=30)"
        );
    }

    #[test]
    fn hostile_parameters_stay_one_bounded_line() {
        let e = event(
            "CreateNetworkAclEntry",
            json!({"networkAclId": format!("acl-1\n$(reboot){}", "x".repeat(5000))}),
        );
        let line = describe(&e);
        assert!(!line.contains('\n'));
        assert!(line.chars().count() <= MAX_TEXT);
        let deep = (0..100).fold(json!("acl-deep"), |v, _| json!({"a": v}));
        assert!(touched(&event("X", deep)).is_empty());
    }
}

//! The SAM template's roles as IAM reads them, so every end-to-end flow can check that what a
//! function called is granted to it (tests/iam.rs checks the converse too).

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value as Yaml;

pub fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    serde_yaml::from_str(&text).expect("infra/template.yaml is YAML")
}

/// The member accounts' roles, rolled out by the StackSet.
pub fn member_template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/member-role.yaml");
    let text = std::fs::read_to_string(path).expect("infra/member-role.yaml");
    serde_yaml::from_str(&text).expect("infra/member-role.yaml is YAML")
}

/// An `Action` element: one string or a list of them.
fn actions_of(statement: &Yaml) -> Vec<String> {
    match &statement["Action"] {
        Yaml::String(one) => vec![one.clone()],
        Yaml::Sequence(many) => many
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// A granted action and the statement (`Sid`) granting it, with whether its resource is `*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub sid: String,
    pub any_resource: bool,
}

/// A role's inline policies. One that exists only under a condition,
/// `!If [CONDITION, POLICY, !Ref AWS::NoValue]` (the network-interface grants with
/// `FunctionSubnetIds`), counts as held, as the conditional role policies below do: the
/// audit covers the role with every option on.
pub fn inline_policies(role: &Yaml) -> Vec<&Yaml> {
    role["Properties"]["Policies"]
        .as_sequence()
        .expect("the role has inline policies")
        .iter()
        .map(|policy| match policy {
            Yaml::Tagged(tagged) if tagged.tag == "!If" => {
                let parts = tagged
                    .value
                    .as_sequence()
                    .expect("!If [CONDITION, POLICY, !Ref AWS::NoValue]");
                assert_eq!(parts.len(), 3, "!If [CONDITION, POLICY, !Ref AWS::NoValue]");
                &parts[1]
            }
            other => other,
        })
        .collect()
}

/// The actions the role's inline policies allow.
pub fn granted(template: &Yaml, role: &str) -> BTreeMap<String, Grant> {
    let resource = &template["Resources"][role];
    assert_eq!(
        resource["Type"].as_str(),
        Some("AWS::IAM::Role"),
        "{role} is not a role in the template"
    );
    let mut grants = BTreeMap::new();
    let mut policies: Vec<&Yaml> = inline_policies(resource);
    // Policies attached to the role by resources of their own (conditional ones, such as the
    // access-log buckets'), by `RoleName: !Ref ROLE`.
    let attached = template["Resources"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(_, r)| r)
        .filter(|r| {
            r["Type"].as_str() == Some("AWS::IAM::RolePolicy")
                && format!("{:?}", r["Properties"]["RoleName"]).contains(&format!("\"{role}\""))
        });
    policies.extend(attached.map(|r| &r["Properties"]));
    for policy in policies {
        let statements = policy["PolicyDocument"]["Statement"]
            .as_sequence()
            .expect("a policy has statements");
        for statement in statements {
            // Deny statements grant nothing; `allows` evaluates them.
            if statement["Effect"].as_str() == Some("Deny") {
                continue;
            }
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{statement:?}");
            let sid = statement["Sid"].as_str().unwrap_or("(no Sid)").to_string();
            let any_resource = statement["Resource"].as_str() == Some("*");
            // The first statement granting an action names it; a grant on "*" anywhere counts.
            for action in actions_of(statement) {
                grants
                    .entry(action)
                    .and_modify(|g: &mut Grant| g.any_resource |= any_resource)
                    .or_insert(Grant {
                        sid: sid.clone(),
                        any_resource,
                    });
            }
        }
    }
    grants
}

/// Read-only by IAM's naming: Describe, Get and List calls.
pub fn is_read(action: &str) -> bool {
    let name = action.split_once(':').map_or(action, |(_, n)| n);
    ["Describe", "Get", "List", "Lookup"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Panics naming every action `role` called that the template does not grant it.
pub fn assert_granted(role: &str, called: &BTreeSet<String>) {
    let grants = granted(&template(), role);
    let missing: Vec<&String> = called.iter().filter(|a| !grants.contains_key(*a)).collect();
    assert!(
        missing.is_empty(),
        "{role} in infra/template.yaml does not grant {missing:?}, which the code called"
    );
}

/// The intrinsics the roles use, resolved for an `AllowedClusters` parameter value, in
/// eu-west-1 of account 111122223333 (partition aws).
fn resolve(value: &Yaml, allowed_clusters: &str) -> Yaml {
    match value {
        Yaml::Tagged(tagged) => {
            let inner = resolve(&tagged.value, allowed_clusters);
            match tagged.tag.to_string().as_str() {
                "!Sub" => Yaml::String(
                    inner
                        .as_str()
                        .expect("a !Sub of one string")
                        .replace("${AWS::Partition}", "aws")
                        .replace("${AWS::Region}", "eu-west-1")
                        .replace("${AWS::AccountId}", "111122223333"),
                ),
                "!Ref" => match inner.as_str() {
                    Some("AllowedClusters") => Yaml::String(allowed_clusters.into()),
                    Some("AWS::NoValue") => Yaml::Null,
                    other => panic!("unexpected !Ref {other:?}"),
                },
                "!Split" => {
                    let parts = inner.as_sequence().expect("!Split [SEP, TEXT]");
                    let (sep, text) = (parts[0].as_str().unwrap(), parts[1].as_str().unwrap());
                    Yaml::Sequence(text.split(sep).map(|p| Yaml::String(p.into())).collect())
                }
                "!If" => {
                    let parts = inner.as_sequence().expect("!If [COND, A, B]");
                    let holds = match parts[0].as_str() {
                        Some("HasAllowedClusters") => !allowed_clusters.is_empty(),
                        other => panic!("unexpected condition {other:?}"),
                    };
                    parts[if holds { 1 } else { 2 }].clone()
                }
                other => panic!("unexpected intrinsic {other}"),
            }
        }
        Yaml::Mapping(map) => Yaml::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve(v, allowed_clusters)))
                .collect(),
        ),
        Yaml::Sequence(items) => Yaml::Sequence(
            items
                .iter()
                .map(|v| resolve(v, allowed_clusters))
                .filter(|v| !v.is_null())
                .collect(),
        ),
        other => other.clone(),
    }
}

/// IAM's ARN glob: `*` matches any run of characters, `/` included.
pub fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (head.len()..=text.len())
                    .any(|at| text.is_char_boundary(at) && glob(rest, &text[at..]))
        }
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(one) => vec![one.clone()],
        Yaml::Sequence(many) => many
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a statement's conditions hold for a resource with `tags` (the operators the
/// roles use on aws:ResourceTag; any other panics, so the evaluator cannot silently pass).
fn conditions_hold(conditions: &Yaml, tags: &[(&str, &str)]) -> bool {
    let Some(map) = conditions.as_mapping() else {
        return true;
    };
    map.iter().all(|(operator, keys)| {
        keys.as_mapping().unwrap().iter().all(|(key, wanted)| {
            let key = key.as_str().unwrap();
            let tag = key
                .strip_prefix("aws:ResourceTag/")
                .unwrap_or_else(|| panic!("condition key {key}"));
            let value = tags.iter().find(|(k, _)| *k == tag).map(|(_, v)| *v);
            let wanted = strings(wanted);
            match operator.as_str().unwrap() {
                "Null" => (value.is_none()) == (wanted == ["true"]),
                "StringEquals" => value.is_some_and(|v| wanted.iter().any(|w| w == v)),
                "StringNotEquals" => !value.is_some_and(|v| wanted.iter().any(|w| w == v)),
                other => panic!("condition operator {other}"),
            }
        })
    })
}

/// Whether `role` may call `action` on `arn` (a resource with `tags`), as IAM decides: an
/// explicit Deny wins, then any Allow.
pub fn allows(
    role: &str,
    action: &str,
    arn: &str,
    tags: &[(&str, &str)],
    allowed_clusters: &str,
) -> bool {
    let template = template();
    // Only the statements naming the action are resolved: the others use intrinsics this
    // evaluator does not model.
    let statements: Vec<Yaml> = inline_policies(&template["Resources"][role])
        .into_iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap())
        .filter(|s| actions_of(s).iter().any(|a| glob(a, action)))
        .map(|s| resolve(s, allowed_clusters))
        .collect();
    let matches = |s: &Yaml| {
        strings(&s["Resource"]).iter().any(|r| glob(r, arn))
            && conditions_hold(&s["Condition"], tags)
    };
    let denied = statements
        .iter()
        .filter(|s| s["Effect"].as_str() == Some("Deny"))
        .any(matches);
    let allowed = statements
        .iter()
        .filter(|s| s["Effect"].as_str() == Some("Allow"))
        .any(matches);
    allowed && !denied
}

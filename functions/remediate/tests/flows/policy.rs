//! The SAM template's roles as IAM reads them, so every end-to-end flow can check that what a
//! function called is granted to it (tests/iam.rs checks the converse too).

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value as Yaml;

pub fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    serde_yaml::from_str(&text).expect("infra/template.yaml is YAML")
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

/// The actions the role's inline policies allow.
pub fn granted(template: &Yaml, role: &str) -> BTreeMap<String, Grant> {
    let resource = &template["Resources"][role];
    assert_eq!(
        resource["Type"].as_str(),
        Some("AWS::IAM::Role"),
        "{role} is not a role in the template"
    );
    let mut grants = BTreeMap::new();
    let policies = resource["Properties"]["Policies"]
        .as_sequence()
        .expect("the role has inline policies");
    for policy in policies {
        let statements = policy["PolicyDocument"]["Statement"]
            .as_sequence()
            .expect("a policy has statements");
        for statement in statements {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{statement:?}");
            let sid = statement["Sid"].as_str().unwrap_or("(no Sid)").to_string();
            let any_resource = statement["Resource"].as_str() == Some("*");
            for action in actions_of(statement) {
                grants.insert(
                    action,
                    Grant {
                        sid: sid.clone(),
                        any_resource,
                    },
                );
            }
        }
    }
    grants
}

/// Read-only by IAM's naming: Describe, Get and List calls.
pub fn is_read(action: &str) -> bool {
    let name = action.split_once(':').map_or(action, |(_, n)| n);
    ["Describe", "Get", "List"]
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

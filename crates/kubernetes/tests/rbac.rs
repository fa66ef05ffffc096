//! The ClusterRole elbmedic asks a cluster for (`infra/kubernetes/elbmedic-read.yaml`) grants
//! every read the code makes, and nothing it does not need: read verbs only, never Secrets or
//! ConfigMaps.

use std::collections::BTreeSet;

use elbmedic_kubernetes::read::READS;
use serde::Deserialize;
use serde_yaml::Value;

fn cluster_role() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/kubernetes/elbmedic-read.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let documents: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .collect();
    documents
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("a ClusterRole")
}

#[test]
fn the_cluster_role_grants_every_read_and_only_reads() {
    let role = cluster_role();
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        let verbs: BTreeSet<&str> = rule["verbs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            verbs.is_subset(&BTreeSet::from(["get", "list", "watch"])),
            "{verbs:?}"
        );
        for group in rule["apiGroups"].as_sequence().unwrap() {
            for resource in rule["resources"].as_sequence().unwrap() {
                let (group, resource) = (group.as_str().unwrap(), resource.as_str().unwrap());
                assert!(
                    !["secrets", "configmaps", "*"].contains(&resource) && group != "*",
                    "{group}/{resource}"
                );
                if verbs.contains("get") && verbs.contains("list") {
                    granted.insert((group.to_string(), resource.to_string()));
                }
            }
        }
    }
    for (group, resource) in READS {
        assert!(
            granted.contains(&(group.to_string(), resource.to_string())),
            "the reads call {group}/{resource}, which the ClusterRole does not grant"
        );
    }
}

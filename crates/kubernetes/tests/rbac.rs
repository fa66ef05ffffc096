//! The ClusterRole elbmedic asks a cluster for (`infra/kubernetes/elbmedic-read.yaml`) grants
//! every read the code makes, and nothing it does not need: read verbs only, never Secrets or
//! ConfigMaps.

use std::collections::BTreeSet;

use elbmedic_kubernetes::read::READS;
use serde::Deserialize;
use serde_yaml::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../infra/kubernetes/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .collect()
}

fn cluster_role() -> Value {
    documents("elbmedic-read.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("a ClusterRole")
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// The write roles grant `patch` of exactly what elbmedic patches, and nothing else. The
/// namespaced kinds (Services, Ingresses) are in a role no ClusterRoleBinding binds: they
/// are bound per namespace. Only the cluster-scoped kinds are bound cluster-wide.
#[test]
fn the_write_roles_grant_only_the_patches_elbmedic_makes_and_bind_namespaced_ones_per_namespace() {
    use elbmedic_kubernetes::write::WRITES;
    let docs = documents("elbmedic-remediate.yaml");
    let mut granted = BTreeSet::new();
    let mut namespaced_roles = BTreeSet::new();
    for role in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
        let name = role["metadata"]["name"].as_str().unwrap();
        for rule in role["rules"].as_sequence().unwrap() {
            assert_eq!(strings(&rule["verbs"]), ["patch"], "{name}: {rule:?}");
            assert!(rule["resourceNames"].is_null() || rule["resourceNames"].is_sequence());
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    assert!(
                        WRITES.contains(&(group, resource)),
                        "{name} grants {group}/{resource}, which elbmedic never patches"
                    );
                    granted.insert((group, resource));
                    if ["services", "ingresses"].contains(&resource) {
                        namespaced_roles.insert(name.to_string());
                    }
                }
            }
        }
    }
    assert_eq!(
        granted.len(),
        WRITES.len(),
        "every write is granted: {granted:?}"
    );
    for binding in docs.iter().filter(|d| d["kind"] == "ClusterRoleBinding") {
        let role = binding["roleRef"]["name"].as_str().unwrap();
        assert!(
            !namespaced_roles.contains(role),
            "{role} grants namespaced patches and must be bound per namespace, not cluster-wide"
        );
        assert_eq!(binding["subjects"][0]["name"], "elbmedic-remediate");
        assert_eq!(binding["subjects"][0]["kind"], "Group");
    }
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

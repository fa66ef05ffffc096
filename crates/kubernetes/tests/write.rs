//! The one change elbmedic makes in a cluster, server-side apply, with the real client against
//! the API stand-in (`tests/support/kube_api.py`, whose apply keeps `managedFields` as the API
//! server does, proven with the real kubectl in `standin.rs`): a dry run first, then the
//! change; every refusal names its reason, and a refused change leaves the object untouched.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use elbmedic_engine::kubernetes::{Kubernetes, Service};
use elbmedic_engine::plan::durable::{idle_timeout_body, release_body, CLB_IDLE};
use elbmedic_engine::plan::Place;
use elbmedic_kubernetes::client::{connect, Endpoint};
use elbmedic_kubernetes::token::token;
use elbmedic_kubernetes::write::{apply, read, WriteRefusal};
use serde_json::{json, Value};

#[path = "../../../tests/support/kube_api.rs"]
#[allow(dead_code)]
mod kube_api;

use kube_api::{Identity, KubeApi};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn service(name: &str, owner: Option<&str>) -> Value {
    let mut object = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1",
                     "annotations": {"team": "checkout"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    if let Some(manager) = owner {
        // The annotation the fix sets is already someone else's.
        object["metadata"]["annotations"][CLB_IDLE] = json!("60");
        object["metadata"]["managedFields"] = json!([{"manager": manager, "operation": "Apply",
            "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {format!("f:{CLB_IDLE}"): {}, "f:team": {}}}}}]);
    }
    object
}

fn start(name: &str, world: &Value) -> (KubeApi, kube::Client) {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "elbmedic-write-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let who = Identity {
        cluster: "shop-prod",
        region: "eu-west-1",
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
    };
    let server = KubeApi::start(&dir, world, &who, None);
    let credentials = Credentials::new(KEY_ID, SECRET, None, None, "test");
    let bearer = token(&credentials, "eu-west-1", "shop-prod", SystemTime::now()).unwrap();
    let endpoint = Endpoint {
        url: server.url(),
        ca_base64: None,
        test_override: true,
    };
    let client = connect(&endpoint, &bearer).unwrap();
    (server, client)
}

fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(20)
}

fn place(name: &str) -> Place {
    Place::Service {
        namespace: "shop".into(),
        name: name.into(),
    }
}

/// The body the engine computes for 120 s on the Service as read.
fn body(name: &str) -> Value {
    let cluster = Kubernetes {
        services: vec![Service {
            namespace: "shop".into(),
            name: name.into(),
            ..Service::default()
        }],
        ..Kubernetes::default()
    };
    idle_timeout_body(&place(name), &cluster, 120).unwrap()
}

fn stored(server: &KubeApi, name: &str) -> Value {
    server.world()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap()
        .clone()
}

fn patches(server: &KubeApi) -> Vec<Value> {
    server
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect()
}

#[tokio::test]
async fn the_annotation_is_applied_after_a_dry_run_and_owned_by_elbmedic_alone() {
    let (server, client) = start("applied", &json!({"objects": [service("orders", None)]}));
    let after = apply(&client, &place("orders"), &body("orders"), false, soon())
        .await
        .unwrap();
    assert_eq!(after["metadata"]["annotations"][CLB_IDLE], "120");
    let object = stored(&server, "orders");
    assert_eq!(object["metadata"]["annotations"][CLB_IDLE], "120");
    assert_eq!(object["metadata"]["annotations"]["team"], "checkout");
    let managers: Vec<&str> = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["elbmedic"]);
    let sent = patches(&server);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["query"]["dryRun"], "All");
    assert!(sent[1]["query"].get("dryRun").is_none());
    for patch in &sent {
        assert_eq!(patch["query"]["fieldManager"], "elbmedic");
        assert!(patch["content_type"]
            .as_str()
            .unwrap()
            .starts_with("application/apply-patch+yaml"));
    }
    // The rollback: applying nothing removes what only elbmedic set, and nothing else.
    apply(
        &client,
        &place("orders"),
        &release_body(&place("orders")),
        false,
        soon(),
    )
    .await
    .unwrap();
    let object = stored(&server, "orders");
    assert!(object["metadata"]["annotations"].get(CLB_IDLE).is_none());
    assert_eq!(object["metadata"]["annotations"]["team"], "checkout");
    let now = read(&client, &place("orders"), soon())
        .await
        .unwrap()
        .unwrap();
    assert!(now["metadata"]["annotations"].get(CLB_IDLE).is_none());
}

/// A field another manager owns: the dry run already answers 409, which names the manager,
/// and nothing is changed; `force` (FORCE_CONFLICTS) takes it over.
#[tokio::test]
async fn a_conflict_names_the_manager_and_changes_nothing_unless_forced() {
    let world = json!({"objects": [service("orders", Some("argocd-controller"))]});
    let (server, client) = start("conflict", &world);
    let refusal = apply(&client, &place("orders"), &body("orders"), false, soon())
        .await
        .unwrap_err();
    assert_eq!(
        refusal,
        WriteRefusal::Conflict {
            managers: vec!["argocd-controller".into()],
            fields: vec![format!(".metadata.annotations.{CLB_IDLE}")],
        }
    );
    assert!(
        refusal.to_string().contains("argocd-controller"),
        "{refusal}"
    );
    assert_eq!(patches(&server).len(), 1, "only the dry run was sent");
    assert_eq!(
        stored(&server, "orders")["metadata"]["annotations"][CLB_IDLE],
        "60"
    );
    apply(&client, &place("orders"), &body("orders"), true, soon())
        .await
        .unwrap();
    let object = stored(&server, "orders");
    assert_eq!(object["metadata"]["annotations"][CLB_IDLE], "120");
    assert!(patches(&server)
        .iter()
        .all(|p| p["query"]["force"] == "true" || p["status"] == 409));
}

/// Admission and RBAC: each a refusal with the API server's own words, nothing changed.
#[tokio::test]
async fn admission_rbac_and_a_missing_object_are_refusals_with_their_reason() {
    let world = json!({
        "objects": [service("orders", None), service("denied", None), service("invalid", None)],
        "admission": [
            {"webhook": "vservice.elbv2.k8s.aws", "kind": "Service", "name": "denied",
             "message": "the idle timeout is managed by the platform team"},
            {"kind": "Service", "name": "invalid", "code": 422,
             "message": "metadata.annotations: Invalid value"},
        ],
    });
    let (server, client) = start("refusals", &world);
    match apply(&client, &place("denied"), &body("denied"), false, soon()).await {
        Err(WriteRefusal::Denied { message }) => assert!(
            message.contains("vservice.elbv2.k8s.aws") && message.contains("platform team"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        apply(&client, &place("invalid"), &body("invalid"), false, soon()).await,
        Err(WriteRefusal::Invalid { .. })
    ));
    assert!(matches!(
        apply(&client, &place("gone"), &body("orders"), false, soon()).await,
        Err(WriteRefusal::NotFound(_))
    ));
    for name in ["denied", "invalid"] {
        assert!(stored(&server, name)["metadata"]["annotations"]
            .get(CLB_IDLE)
            .is_none());
    }
    let mut world = server.world();
    world["deny"] = json!([["patch", "", "services"]]);
    let (denied, client) = start("rbac", &world);
    match apply(&client, &place("orders"), &body("orders"), false, soon()).await {
        Err(refusal @ WriteRefusal::Forbidden { .. }) => {
            let text = refusal.to_string();
            assert!(
                text.contains("cannot patch resource \"services\"")
                    && text.contains("elbmedic-remediate"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(stored(&denied, "orders")["metadata"]["annotations"]
        .get(CLB_IDLE)
        .is_none());

    // A token the API server does not take: a 401 that says which access entry is missing.
    let mut world = server.world();
    world["unauthorized"] = json!(true);
    let (_refused, client) = start("unauthorized", &world);
    match apply(&client, &place("orders"), &body("orders"), false, soon()).await {
        Err(refusal @ WriteRefusal::Unauthorized) => {
            assert!(refusal.to_string().contains("access entry"), "{refusal}")
        }
        other => panic!("{other:?}"),
    }
    // An API server slower than the deadline: a timeout, and nothing applied.
    let mut world = server.world();
    world["delay_seconds"] = json!(1.5);
    let (slow, client) = start("slow", &world);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    assert_eq!(
        apply(&client, &place("orders"), &body("orders"), false, deadline).await,
        Err(WriteRefusal::Timeout)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(stored(&slow, "orders")["metadata"]["annotations"]
        .get(CLB_IDLE)
        .is_none());
    assert!(
        patches(&slow).iter().all(|p| p["query"]["dryRun"] == "All"),
        "only the dry run reached the server: {:?}",
        patches(&slow)
    );
}

/// The readiness-gate label, as the namespace change applies it and its rollback or undo
/// takes it off: only elbmedic's label comes and goes; the namespace's own labels stay.
#[tokio::test]
async fn the_readiness_gate_label_is_applied_and_released_alone() {
    use elbmedic_engine::plan::durable::{readiness_gate_body, restore_body, READINESS_GATE_LABEL};
    let world = json!({"objects": [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "shop", "resourceVersion": "4", "labels": {"team": "checkout"}}},
    ]});
    let (server, client) = start("gate", &world);
    let namespace = Place::Namespace {
        name: "shop".into(),
    };
    apply(
        &client,
        &namespace,
        &readiness_gate_body("shop"),
        false,
        soon(),
    )
    .await
    .unwrap();
    let labels = |server: &KubeApi| stored(server, "shop")["metadata"]["labels"].clone();
    assert_eq!(labels(&server)[READINESS_GATE_LABEL], "enabled");
    assert_eq!(labels(&server)["team"], "checkout");
    let release = restore_body(&namespace, None).unwrap();
    apply(&client, &namespace, &release, false, soon())
        .await
        .unwrap();
    assert_eq!(labels(&server).get(READINESS_GATE_LABEL), None);
    assert_eq!(labels(&server)["team"], "checkout");
}

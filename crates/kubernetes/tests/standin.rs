//! The EKS token against the Kubernetes API stand-in (`tests/support/kube_api.py`), whose
//! token check is its own SigV4 implementation; and the stand-in itself proven with the real
//! clients: a token from `aws eks get-token`, and `kubectl` reading through it over TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use elbmedic_engine::kubernetes::Manager;
use elbmedic_engine::snapshot::{GapFact, GapReason};
use elbmedic_kubernetes::client::{connect, Endpoint};
use elbmedic_kubernetes::read::{read, Owner, Scope};
use elbmedic_kubernetes::token::{token, LIFETIME};
use serde_json::{json, Value};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "eu-west-1";
const CLUSTER: &str = "prod";

#[path = "../../../tests/support/kube_api.rs"]
#[allow(dead_code)]
mod kube_api;

use kube_api::{Identity, KubeApi as StandIn};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "elbmedic-kube-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn world() -> Value {
    let pod = |name: &str, app: &str, phase: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "shop", "labels": {"app": app},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d9f8"), "uid": "u"}]},
               "spec": {"nodeName": "ip-10-0-1-10.eu-west-1.compute.internal", "containers": [{"name": "app"}]},
               "status": {"phase": phase, "podIP": "10.0.1.20",
                          "conditions": [{"type": "Ready", "status": if phase == "Running" { "True" } else { "False" }}],
                          "containerStatuses": [{"name": "app", "ready": phase == "Running", "restartCount": 3, "image": "i", "imageID": "",
                                                 "state": if phase == "Running" { json!({"running": {}}) } else { json!({"waiting": {"reason": "CrashLoopBackOff"}}) }}]}})
    };
    json!({
        "objects": [
            pod("web-1", "web", "Running"),
            pod("web-2", "web", "Pending"),
            pod("db-1", "db", "Running"),
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "shop", "labels": {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "shop",
                          "annotations": {"argocd.argoproj.io/tracking-id": "shop-app:apps/Deployment:shop/web"}},
             "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                      "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%", "maxSurge": 1}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"terminationGracePeriodSeconds": 10,
                                            "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}],
                                                            "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}}}}]}}},
             "status": {"readyReplicas": 1}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
             "metadata": {"name": "web", "namespace": "shop",
                          "annotations": {"alb.ingress.kubernetes.io/group.name": "shop",
                                          "alb.ingress.kubernetes.io/load-balancer-attributes": "idle_timeout.timeout_seconds=60",
                                          "unrelated.example.com/secret-ish": "not kept"},
                          // Argo CD applied the attributes: a server-side apply that changes
                          // them conflicts with it.
                          "managedFields": [{"manager": "argocd-controller", "operation": "Apply",
                                             "apiVersion": "networking.k8s.io/v1", "fieldsType": "FieldsV1",
                                             "fieldsV1": {"f:metadata": {"f:annotations": {
                                                 "f:alb.ingress.kubernetes.io/load-balancer-attributes": {}}}}}]},
             "spec": {"ingressClassName": "alb",
                      "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                     "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
            {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "web.1", "namespace": "shop"},
             "involvedObject": {"kind": "Ingress", "namespace": "shop", "name": "web"},
             "type": "Warning", "reason": "FailedDeployModel",
             "message": "Failed deploy model due to AccessDenied",
             "source": {"component": "ingress"}, "count": 4,
             "firstTimestamp": "2026-12-06T00:00:00Z", "lastTimestamp": "2026-12-06T00:05:00Z"},
            {"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding",
             "metadata": {"name": "k8s-shop-web", "namespace": "shop"},
             "spec": {"targetGroupARN": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/k8s-shop-web/abc",
                      "targetType": "ip", "serviceRef": {"name": "web", "port": 80}}},
        ],
        "deny": [["list", "", "services"]],
        "admission": [{"webhook": "vdeployment.example.com", "kind": "Deployment", "name": "web",
                       "message": "shop is frozen for the sale"}],
    })
}

fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> StandIn {
    start_with(dir, &world(), tls)
}

fn start_with(dir: &Path, world: &Value, tls: Option<(&Path, &Path)>) -> StandIn {
    let who = Identity {
        cluster: CLUSTER,
        region: REGION,
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
    };
    StandIn::start(dir, world, &who, tls)
}

/// One GET over plain HTTP on the loopback, as the function does with `KUBERNETES_API_URL`.
fn get(port: u16, path: &str, bearer: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn credentials(secret: &str) -> Credentials {
    Credentials::new(KEY_ID, secret, None, None, "test")
}

#[test]
fn the_api_server_takes_our_token_for_its_cluster_only() {
    let server = start(&scratch("token"), None);
    let now = SystemTime::now();
    let good = token(&credentials(SECRET), REGION, CLUSTER, now).unwrap();
    let (status, pods) = get(
        server.port,
        "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb",
        good.expose(),
    );
    assert_eq!(status, 200, "{pods}");
    let names: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);
    // Another cluster's token, a wrong secret, an expired one, a tampered one: 401.
    let other = token(&credentials(SECRET), REGION, "staging", now).unwrap();
    let forged = token(&credentials("not-the-secret"), REGION, CLUSTER, now).unwrap();
    let old = token(
        &credentials(SECRET),
        REGION,
        CLUSTER,
        now - LIFETIME - Duration::from_secs(60),
    )
    .unwrap();
    let tampered = format!("{}A", good.expose());
    for (what, bearer) in [
        ("another cluster", other.expose()),
        ("a wrong secret", forged.expose()),
        ("expired", old.expose()),
        ("tampered", tampered.as_str()),
        ("none", ""),
    ] {
        let (status, body) = get(server.port, "/api/v1/namespaces/shop/pods", bearer);
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["reason"], "Unauthorized", "{what}");
    }
    // RBAC: a resource the role may not list is a 403 naming the verb and resource.
    let (status, body) = get(
        server.port,
        "/api/v1/namespaces/shop/services",
        good.expose(),
    );
    assert_eq!(status, 403);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("cannot list resource \"services\""));
}

#[test]
fn lists_page_with_limit_and_continue() {
    let server = start(&scratch("pages"), None);
    let bearer = token(&credentials(SECRET), REGION, CLUSTER, SystemTime::now()).unwrap();
    let mut names = Vec::new();
    let mut next = String::new();
    for _ in 0..5 {
        let path = format!("/api/v1/pods?limit=2&continue={next}");
        let (status, page) = get(server.port, &path, bearer.expose());
        assert_eq!(status, 200, "{page}");
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(token) => next = token.to_string(),
            None => break,
        }
    }
    assert_eq!(names, ["db-1", "web-1", "web-2"]);
}

fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(20)
}

fn scope() -> Scope {
    Scope {
        cluster: CLUSTER.into(),
        owner: Owner::IngressGroup("shop".into()),
        events_since: None,
    }
}

/// A 429 is retried as the SDK retries (three attempts, backing off): two in a row are
/// absorbed, and a list throttled past the attempts is a `throttled` gap while the rest is
/// still read. Counted by the stand-in's request log.
#[tokio::test]
async fn a_throttled_list_is_retried_and_then_a_gap() {
    for (throttled, pods_read) in [(2, true), (10, false)] {
        let mut world = world();
        world["throttle"] = json!({"pods": throttled});
        let server = start_with(&scratch(&format!("throttle-{throttled}")), &world, None);
        let bearer = token(&credentials(SECRET), REGION, CLUSTER, SystemTime::now()).unwrap();
        let endpoint = Endpoint {
            url: format!("http://127.0.0.1:{}", server.port),
            ca_base64: None,
            test_override: true,
        };
        let (cluster, gaps) = read(&connect(&endpoint, &bearer).unwrap(), &scope(), soon()).await;
        let pod_calls = server
            .requests()
            .iter()
            .filter(|r| r["path"] == "/api/v1/namespaces/shop/pods")
            .count();
        let throttled_gap = gaps.iter().find(|g| g.resource.as_deref() == Some("pods"));
        match pods_read {
            true => {
                assert_eq!(cluster.pods.len(), 3, "{gaps:?}");
                assert!(throttled_gap.is_none(), "{gaps:?}");
                assert_eq!(pod_calls, 3);
            }
            false => {
                assert!(cluster.pods.is_empty());
                assert_eq!(throttled_gap.unwrap().reason, GapReason::Throttled);
                assert_eq!(pod_calls, 3, "three attempts, no more");
                assert!(!cluster.workloads.is_empty(), "the other reads still ran");
            }
        }
    }
}

/// The reads, with the real client, into the snapshot's section; what the role may not list
/// is a gap that names the ClusterRole, and the rest is still read.
#[tokio::test]
async fn the_reads_fill_the_kubernetes_section_and_a_denied_list_is_a_gap() {
    let server = start(&scratch("reads"), None);
    let bearer = token(&credentials(SECRET), REGION, CLUSTER, SystemTime::now()).unwrap();
    let endpoint = Endpoint {
        url: format!("http://127.0.0.1:{}", server.port),
        ca_base64: None,
        test_override: true,
    };
    let client = connect(&endpoint, &bearer).unwrap();
    let (cluster, gaps) = read(&client, &scope(), soon()).await;
    let pods: Vec<(&str, bool, u32, Option<&str>)> = cluster
        .pods
        .iter()
        .map(|p| (p.name.as_str(), p.ready, p.restarts, p.reason.as_deref()))
        .collect();
    assert_eq!(
        pods,
        [
            ("db-1", true, 3, None),
            ("web-1", true, 3, None),
            ("web-2", false, 3, Some("CrashLoopBackOff"))
        ]
    );
    assert_eq!(cluster.pods[1].owner.as_ref().unwrap().kind, "ReplicaSet");
    let web = &cluster.workloads[0];
    assert_eq!(
        (web.kind.as_str(), web.name.as_str()),
        ("Deployment", "web")
    );
    assert_eq!(web.termination_grace_period_seconds, Some(10));
    assert_eq!(web.max_unavailable.as_deref(), Some("50%"));
    assert_eq!(
        web.containers[0].pre_stop.as_ref().unwrap().sleep_seconds,
        Some(5)
    );
    assert_eq!(
        web.managed_by,
        Some(Manager::ArgoCd {
            application: "shop-app".into()
        })
    );
    assert!(cluster.namespaces[0].injects_readiness_gates());
    let ingress = &cluster.ingresses[0];
    assert_eq!(ingress.group(), Some("shop"));
    assert_eq!(ingress.backends[0].service, "web");
    assert!(!ingress
        .annotations
        .contains_key("unrelated.example.com/secret-ish"));
    assert_eq!(cluster.events[0].reason, "FailedDeployModel");
    assert_eq!(cluster.events[0].count, 4);
    assert_eq!(
        cluster.target_group_bindings[0].target_type.as_deref(),
        Some("ip")
    );
    // Services are denied by the stand-in's RBAC: one gap, naming the role to bind.
    assert!(cluster.services.is_empty());
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].fact, GapFact::KubernetesApi);
    assert_eq!(gaps[0].reason, GapReason::AccessDenied);
    assert!(
        gaps[0].detail.contains("cannot list resource \"services\""),
        "{}",
        gaps[0].detail
    );
    assert!(gaps[0].detail.contains("ClusterRole"), "{}", gaps[0].detail);
}

/// An Ingress group as the controller forms it: an IngressClassParams' `spec.group.name`
/// puts every Ingress of its class in the group and wins over their annotations, across
/// namespaces; only the load balancer controller's classes, and the params they name, are
/// kept.
#[tokio::test]
async fn the_group_is_read_as_the_controller_forms_it() {
    let mut world = world();
    let ingress = |namespace: &str, name: &str, class: &str, group: Option<&str>| {
        let annotations = match group {
            Some(group) => json!({"alb.ingress.kubernetes.io/group.name": group}),
            None => json!({}),
        };
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
               "spec": {"ingressClassName": class}})
    };
    let class = |name: &str, controller: &str, params: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": name},
               "spec": {"controller": controller,
                        "parameters": {"apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": params}}})
    };
    let params = |name: &str, group: &str, idle: &str| {
        json!({"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "IngressClassParams",
               "metadata": {"name": name},
               "spec": {"group": {"name": group},
                        "loadBalancerAttributes": [{"key": "idle_timeout.timeout_seconds", "value": idle},
                                                   {"key": "broken"}]}})
    };
    let objects = world["objects"].as_array_mut().unwrap();
    objects.extend([
        // In the group by its class's params, with no annotation, in another namespace.
        ingress("billing", "api", "shared", None),
        // Annotated into the group, but its class's params name another group, which wins.
        ingress("billing", "admin", "private", Some("shop")),
        class("shared", "ingress.k8s.aws/alb", "shared-params"),
        class("private", "ingress.k8s.aws/alb", "private-params"),
        class("nginx", "k8s.io/ingress-nginx", "unrelated-params"),
        // Another controller's default class is kept, without params: the controller counts
        // every default class (two defaults: it picks none).
        {
            let mut default = class("nginx-default", "k8s.io/ingress-nginx", "unrelated-params");
            default["metadata"]["annotations"] =
                json!({"ingressclass.kubernetes.io/is-default-class": "true"});
            default
        },
        params("shared-params", "shop", "120"),
        params("private-params", "admin", "60"),
        params("unrelated-params", "shop", "1"),
        params("unnamed-params", "shop", "1"),
    ]);
    let server = start_with(&scratch("classes"), &world, None);
    let bearer = token(&credentials(SECRET), REGION, CLUSTER, SystemTime::now()).unwrap();
    let endpoint = Endpoint {
        url: format!("http://127.0.0.1:{}", server.port),
        ca_base64: None,
        test_override: true,
    };
    let client = connect(&endpoint, &bearer).unwrap();
    let (cluster, _) = read(&client, &scope(), soon()).await;
    let members: Vec<(&str, &str)> = cluster
        .ingresses
        .iter()
        .map(|i| (i.namespace.as_str(), i.name.as_str()))
        .collect();
    assert_eq!(members, [("billing", "api"), ("shop", "web")]);
    let classes: Vec<(&str, Option<&str>)> = cluster
        .ingress_classes
        .iter()
        .map(|c| (c.name.as_str(), c.params.as_deref()))
        .collect();
    assert_eq!(
        classes,
        [
            ("nginx-default", None),
            ("private", Some("private-params")),
            ("shared", Some("shared-params"))
        ]
    );
    assert!(cluster.ingress_classes[0].default);
    let kept: Vec<&str> = cluster
        .ingress_class_params
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(kept, ["private-params", "shared-params"]);
    let api = &cluster.ingresses[0];
    let shared = cluster.params_of(api).unwrap();
    assert_eq!(cluster.group_of(api), Some("shop"));
    assert_eq!(
        shared.attribute("idle_timeout.timeout_seconds"),
        Some((0, "120"))
    );
    // The list ends at the malformed entry: every kept index is the object's.
    assert_eq!(shared.load_balancer_attributes.len(), 1);
    // The billing namespace was read for its member.
    let read_billing = server
        .requests()
        .iter()
        .any(|r| r["path"] == "/api/v1/namespaces/billing/pods");
    assert!(read_billing);
}

/// A token the cluster refuses (here: signed for another cluster) is one kind of gap per
/// read, each naming the access entry; an unreachable endpoint names the VPC.
#[tokio::test]
async fn a_refused_token_and_an_unreachable_endpoint_are_gaps_that_name_the_fix() {
    let server = start(&scratch("refused"), None);
    let other = token(&credentials(SECRET), REGION, "staging", SystemTime::now()).unwrap();
    let endpoint = Endpoint {
        url: format!("http://127.0.0.1:{}", server.port),
        ca_base64: None,
        test_override: true,
    };
    let (cluster, gaps) = read(&connect(&endpoint, &other).unwrap(), &scope(), soon()).await;
    assert!(cluster.pods.is_empty());
    assert!(!gaps.is_empty());
    assert!(gaps
        .iter()
        .all(|g| g.reason == GapReason::AccessDenied && g.detail.contains("access entry")));
    drop(server);
    let (_, gaps) = read(&connect(&endpoint, &other).unwrap(), &scope(), soon()).await;
    assert!(
        gaps.iter()
            .all(|g| g.detail.contains("could not be reached")),
        "{gaps:?}"
    );
}

/// A CA, and a server certificate for 127.0.0.1 that it signed (as EKS serves its API: a
/// CA is never accepted as the server's own certificate).
/// The stand-in's server-side apply, as the real kubectl sees it: a conflict names the
/// manager and the field, a forced server dry run changes nothing, a forced apply takes the
/// field over; an admission webhook's denial comes back in the API server's words.
/// (`--validate=false`: the stand-in serves no OpenAPI document.)
fn server_side_apply_as_kubectl_sees_it(
    kubectl: &dyn Fn(&[&str]) -> std::process::Output,
    dir: &Path,
) {
    const KEY: &str = "alb.ingress.kubernetes.io/load-balancer-attributes";
    let manifest = dir.join("ingress.json");
    std::fs::write(
        &manifest,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "web", "namespace": "shop",
                            "annotations": {KEY: "idle_timeout.timeout_seconds=120"}}})
        .to_string(),
    )
    .unwrap();
    let file = manifest.to_str().unwrap();
    let apply = [
        "apply",
        "--server-side",
        "--validate=false",
        "--field-manager=elbmedic",
        "-f",
        file,
    ];
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let attributes = || {
        let got = kubectl(&["-n", "shop", "get", "ingress", "web", "-o", "jsonpath={.metadata.annotations.alb\\.ingress\\.kubernetes\\.io/load-balancer-attributes}"]);
        String::from_utf8_lossy(&got.stdout).to_string()
    };
    let conflict = kubectl(&apply);
    assert!(!conflict.status.success());
    assert!(
        text(&conflict).contains(&format!("Apply failed with 1 conflict: conflict with \"argocd-controller\" using networking.k8s.io/v1: .metadata.annotations.{KEY}")),
        "{}",
        text(&conflict)
    );
    let dry = kubectl(&[&apply[..], &["--force-conflicts", "--dry-run=server"]].concat());
    assert!(
        text(&dry).contains("serverside-applied (server dry run)"),
        "{}",
        text(&dry)
    );
    assert_eq!(attributes(), "idle_timeout.timeout_seconds=60");
    let forced = kubectl(&[&apply[..], &["--force-conflicts"]].concat());
    assert!(forced.status.success(), "{}", text(&forced));
    assert_eq!(attributes(), "idle_timeout.timeout_seconds=120");
    let managers = kubectl(&[
        "-n",
        "shop",
        "get",
        "ingress",
        "web",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(String::from_utf8_lossy(&managers.stdout), "elbmedic");
    let frozen = kubectl(&["-n", "shop", "annotate", "deployment", "web", "note=x"]);
    assert!(!frozen.status.success());
    assert!(
        text(&frozen).contains("admission webhook \"vdeployment.example.com\" denied the request: shop is frozen for the sale"),
        "{}",
        text(&frozen)
    );
}

/// The rollback commands an outcome report prints for a change in the cluster, run as
/// pasted (by `sh`) with the real kubectl: each puts the field back as it was, a hostile
/// value included, and leaves the rest of the object alone.
fn rollbacks_as_kubectl_runs_them(
    kubectl: &dyn Fn(&[&str]) -> std::process::Output,
    shell: &dyn Fn(&str) -> std::process::Output,
    dir: &Path,
) {
    use elbmedic_engine::fixes::put_back;
    use elbmedic_engine::plan::durable::CLB_IDLE;
    use elbmedic_engine::plan::Place;
    let path = dir.join("world.json");
    let mut world: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let objects = world["objects"].as_array_mut().unwrap();
    objects.push(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "orders", "namespace": "shop",
                     "annotations": {CLB_IDLE: "120", "team": "orders"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}));
    objects.push(
        json!({"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "IngressClassParams",
        "metadata": {"name": "web"},
        "spec": {"group": {"name": "shop"}, "loadBalancerAttributes": [
            {"key": "idle_timeout.timeout_seconds", "value": "120"}]}}),
    );
    std::fs::write(&path, world.to_string()).unwrap();
    let jsonpath = |kind: &str, namespace: Option<&str>, name: &str, path: &str| {
        let field = format!("jsonpath={path}");
        let mut args = vec!["get", kind, name, "-o", field.as_str()];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        let got = kubectl(&args);
        String::from_utf8_lossy(&got.stdout).to_string()
    };
    let run = |place: &Place, before: Option<&str>| {
        let script = put_back(place, before).expect("a rollback command");
        let ran = shell(&script);
        assert!(
            ran.status.success(),
            "{script}: {}{}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        );
    };
    let service = Place::Service {
        namespace: "shop".into(),
        name: "orders".into(),
    };
    let clb = "{.metadata.annotations.service\\.beta\\.kubernetes\\.io/aws-load-balancer-connection-idle-timeout}";
    run(&service, Some("60"));
    assert_eq!(jsonpath("service", Some("shop"), "orders", clb), "60");
    run(&service, None);
    assert_eq!(jsonpath("service", Some("shop"), "orders", clb), "");
    assert_eq!(
        jsonpath(
            "service",
            Some("shop"),
            "orders",
            "{.metadata.annotations.team}"
        ),
        "orders"
    );
    let ingress = Place::Ingress {
        namespace: "shop".into(),
        name: "web".into(),
    };
    let hostile =
        "access_logs.s3.prefix=a b;$(touch /tmp/elbmedic-pwned),idle_timeout.timeout_seconds=60";
    run(&ingress, Some(hostile));
    let alb = "{.metadata.annotations.alb\\.ingress\\.kubernetes\\.io/load-balancer-attributes}";
    assert_eq!(jsonpath("ingress", Some("shop"), "web", alb), hostile);
    assert!(!Path::new("/tmp/elbmedic-pwned").exists());
    let params = Place::IngressClassParams { name: "web".into() };
    let list = r#"[{"key":"idle_timeout.timeout_seconds","value":"60"},{"key":"routing.http2.enabled","value":"true"}]"#;
    run(&params, Some(list));
    assert_eq!(
        jsonpath(
            "ingressclassparams",
            None,
            "web",
            "{.spec.loadBalancerAttributes[*].value}"
        ),
        "60 true"
    );
    assert_eq!(
        jsonpath("ingressclassparams", None, "web", "{.spec.group.name}"),
        "shop"
    );
    let namespace = Place::Namespace {
        name: "shop".into(),
    };
    let gate = "{.metadata.labels.elbv2\\.k8s\\.aws/pod-readiness-gate-inject}";
    run(&namespace, None);
    assert_eq!(jsonpath("namespace", None, "shop", gate), "");
    run(&namespace, Some("enabled"));
    assert_eq!(jsonpath("namespace", None, "shop", gate), "enabled");
}

fn certificates(openssl: &Path, dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let file = |suffix: &str| dir.join(format!("{name}-{suffix}"));
    let (ca, ca_key, cert, key, csr, ext) = (
        file("ca.pem"),
        file("ca-key.pem"),
        file("cert.pem"),
        file("key.pem"),
        file("server.csr"),
        file("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(openssl).args(args).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    run(&[
        os("req"),
        os("-x509"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-days"),
        os("1"),
        os("-subj"),
        os("/CN=elbmedic-test-ca"),
        os("-keyout"),
        ca_key.as_os_str(),
        os("-out"),
        ca.as_os_str(),
    ]);
    run(&[
        os("req"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-subj"),
        os("/CN=127.0.0.1"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ]);
    run(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-days"),
        os("1"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    (ca, cert, key)
}

/// Where a real client is, or `None` (then the test says so, and fails under CI).
fn real_client(name: &str, variable: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is needed (scripts/test.sh installs it)"
        );
        eprintln!("skipped: no {name} on PATH");
    }
    found
}

#[tokio::test]
async fn kubectl_reads_the_stand_in_with_a_token_from_the_aws_cli() {
    let (Some(aws), Some(kubectl), Some(openssl)) = (
        real_client("aws", "ELBMEDIC_AWS_CLI"),
        real_client("kubectl", "ELBMEDIC_KUBECTL"),
        real_client("openssl", "ELBMEDIC_OPENSSL"),
    ) else {
        return;
    };
    let dir = scratch("kubectl");
    let (ca_pem, cert, key) = certificates(&openssl, &dir, "cluster");
    let server = start(&dir, Some((&cert, &key)));
    let ca = aws_smithy_types::base64::encode(std::fs::read(&ca_pem).unwrap());
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\ncontexts:\n- name: prod\n  context: {{cluster: prod, user: elbmedic}}\ncurrent-context: prod\nusers:\n- name: elbmedic\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {aws}\n      args: [eks, get-token, --cluster-name, {CLUSTER}, --region, {REGION}]\n      interactiveMode: Never\n",
            port = server.port,
            aws = aws.display()
        ),
    )
    .unwrap();
    // Every client runs with the kubeconfig and the AWS CLI's credentials, and nothing else.
    let configured = |mut command: Command| {
        command
            .env("KUBECONFIG", &kubeconfig)
            .env("KUBECACHEDIR", dir.join("cache"))
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    let kubectl_path = kubectl.clone();
    let kubectl = |args: &[&str]| {
        let mut command = Command::new(&kubectl);
        command.args(args);
        configured(command)
    };
    let pods = kubectl(&["get", "pods", "-n", "shop", "-l", "app=web", "-o", "name"]);
    assert!(pods.status.success(), "{pods:?}");
    assert_eq!(
        String::from_utf8_lossy(&pods.stdout),
        "pod/web-1\npod/web-2\n"
    );
    let running = kubectl(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "status.phase=Running",
        "--chunk-size=1",
        "-o",
        "name",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&running.stdout),
        "pod/db-1\npod/web-1\n"
    );
    let deployments = kubectl(&["get", "deploy", "-n", "shop", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&deployments.stdout),
        "deployment.apps/web\n"
    );
    let denied = kubectl(&["get", "svc", "-n", "shop"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Forbidden"));
    server_side_apply_as_kubectl_sees_it(&kubectl, &dir);
    let shell = |script: &str| {
        let path = format!(
            "{}:{}",
            kubectl_path.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("sh");
        command.args(["-c", script]).env("PATH", path);
        configured(command)
    };
    rollbacks_as_kubectl_runs_them(&kubectl, &shell, &dir);

    // The same server over TLS with elbmedic's own client, trusting only the cluster's CA.
    let bearer = token(&credentials(SECRET), REGION, CLUSTER, SystemTime::now()).unwrap();
    let endpoint = Endpoint {
        url: format!("https://127.0.0.1:{}", server.port),
        ca_base64: Some(ca.clone()),
        test_override: true,
    };
    let (cluster, gaps) = read(&connect(&endpoint, &bearer).unwrap(), &scope(), soon()).await;
    assert_eq!(cluster.pods.len(), 3, "{gaps:?}");
    // A CA that did not sign the server's certificate: no call gets through.
    let (other_ca, _, _) = certificates(&openssl, &dir, "other");
    let wrong_ca = Endpoint {
        ca_base64: Some(aws_smithy_types::base64::encode(
            std::fs::read(&other_ca).unwrap(),
        )),
        ..endpoint
    };
    let (cluster, gaps) = read(&connect(&wrong_ca, &bearer).unwrap(), &scope(), soon()).await;
    assert!(cluster.pods.is_empty());
    assert!(
        gaps.iter()
            .all(|g| g.detail.contains("not one the cluster's CA signed")),
        "{gaps:?}"
    );
}

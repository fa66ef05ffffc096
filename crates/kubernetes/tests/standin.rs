//! The EKS token against the Kubernetes API stand-in (`tests/support/kube_api.py`), whose
//! token check is its own SigV4 implementation; and the stand-in itself proven with the real
//! clients: a token from `aws eks get-token`, and `kubectl` reading through it over TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use elbmedic_kubernetes::token::{token, LIFETIME};
use serde_json::{json, Value};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "eu-west-1";
const CLUSTER: &str = "prod";

struct StandIn {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
               "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
               "spec": {"nodeName": "ip-10-0-1-10.eu-west-1.compute.internal"},
               "status": {"phase": phase}})
    };
    json!({
        "objects": [
            pod("web-1", "web", "Running"),
            pod("web-2", "web", "Pending"),
            pod("db-1", "db", "Running"),
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 2}},
        ],
        "deny": [["list", "", "services"]],
    })
}

fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> StandIn {
    let world_file = dir.join("world.json");
    std::fs::write(&world_file, world().to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/kube_api.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["--world", world_file.to_str().unwrap()])
        .args(["--cluster", CLUSTER, "--region", REGION])
        .args(["--access-key-id", KEY_ID, "--secret-access-key", SECRET])
        .stdout(Stdio::piped());
    if let Some((cert, key)) = tls {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let mut child = command.spawn().expect("python3 runs the stand-in");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the stand-in did not start: {line:?}"));
    StandIn {
        child,
        port,
        dir: dir.to_path_buf(),
    }
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

#[test]
fn kubectl_reads_the_stand_in_with_a_token_from_the_aws_cli() {
    let (Some(aws), Some(kubectl), Some(openssl)) = (
        real_client("aws", "ELBMEDIC_AWS_CLI"),
        real_client("kubectl", "ELBMEDIC_KUBECTL"),
        real_client("openssl", "ELBMEDIC_OPENSSL"),
    ) else {
        return;
    };
    let dir = scratch("kubectl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let server = start(&dir, Some((&cert, &key)));
    let ca = aws_smithy_types::base64::encode(std::fs::read(&cert).unwrap());
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
    let kubectl = |args: &[&str]| {
        Command::new(&kubectl)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("KUBECACHEDIR", dir.join("cache"))
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
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
}

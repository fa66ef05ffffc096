//! Starts the Kubernetes API stand-in (`tests/support/kube_api.py`) on a free 127.0.0.1 port
//! with a world of objects, for any test crate: it serves the API's real JSON shapes and checks
//! each bearer token's SigV4 signature with the credentials it is given.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running stand-in; stopped, and its files removed, when dropped.
pub struct KubeApi {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Who the stand-in is: the cluster and region a token must be signed for, and the
/// credentials it checks signatures with.
pub struct Identity<'a> {
    pub cluster: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

impl KubeApi {
    /// Serves `world` (`{"objects": [...], "deny": [[verb, group, resource], ...]}`), over
    /// TLS when `tls` gives a certificate and key.
    pub fn start(
        dir: &Path,
        world: &serde_json::Value,
        who: &Identity<'_>,
        tls: Option<(&Path, &Path)>,
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let world_file = dir.join("world.json");
        std::fs::write(&world_file, world.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|p| p.join("tests/support/kube_api.py"))
            .find(|p| p.exists())
            .expect("tests/support/kube_api.py above the crate");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .args(["--world", world_file.to_str().unwrap()])
            .args(["--cluster", who.cluster, "--region", who.region])
            .args(["--access-key-id", who.access_key_id])
            .args(["--secret-access-key", who.secret_access_key])
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
        Self {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The world as it is now: what the writes made of it.
    pub fn world(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join("world.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Replaces the world, as a change someone else made in the cluster would.
    pub fn set_world(&self, world: &serde_json::Value) {
        let scratch = self.dir.join("world.json.next");
        std::fs::write(&scratch, world.to_string()).unwrap();
        std::fs::rename(scratch, self.dir.join("world.json")).unwrap();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request log the stand-in keeps (one JSON object per request), if any.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("world.json.requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

//! A real moto server for one test: started on a free 127.0.0.1 port from the project's
//! virtualenv (`scripts/test.sh` installs it), stopped when the value is dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub url: String,
    /// CloudTrail's `LookupEvents`, which moto lacks, served beside it.
    pub trail: super::trail::FakeTrail,
}

/// `ELBMEDIC_MOTO_SERVER` (set by scripts/test.sh), else the usual virtualenvs.
fn moto_server() -> PathBuf {
    if let Ok(path) = std::env::var("ELBMEDIC_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let in_clone = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    let shared = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cache/elbmedic-venv/bin/moto_server"));
    match shared {
        Ok(shared) if !in_clone.exists() => shared,
        _ => in_clone,
    }
}

impl Moto {
    pub fn start() -> Self {
        let exe = moto_server();
        assert!(
            exe.exists(),
            "moto is not installed at {}: run scripts/test.sh, which installs it into .venv",
            exe.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            trail: super::trail::FakeTrail::start(),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if ready(port) {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto did not answer on port {port} within 30 s");
    }

    /// Environment for a child process (the CLI or the Lambda binary) to use this moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ENDPOINT_URL_CLOUDTRAIL", self.trail.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", super::REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            // moto's clusters have no API server: a test that reads one starts the stand-in
            // and sets KUBERNETES_READS=on with KUBERNETES_API_URL.
            ("KUBERNETES_READS", "off".into()),
        ]
    }
}

fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points this process's SDK configuration at moto, as the function's environment would.
pub fn use_moto(moto: &Moto) {
    for (key, value) in moto.env() {
        // Tests of this file that touch the environment all set the same values.
        unsafe { std::env::set_var(key, value) };
    }
}

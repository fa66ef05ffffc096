//! Calls that never answer: each is cut by its timeout, the whole gather by its deadline, and
//! what was not observed becomes a "timeout" gap. The silent server listens on 127.0.0.1 only.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::gather::{gather, GatherOptions};
use elbmedic_engine::alarm::{LbKind, LbRef};
use elbmedic_engine::snapshot::{GapFact, GapReason};

#[tokio::test]
async fn a_silent_endpoint_is_cut_off_and_becomes_timeout_gaps() {
    // Accepts connections and never answers; bounded to the test's life.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    // This test file is its own process: setting its environment affects nothing else.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let limits = CallLimits {
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_millis(600),
        max_attempts: 2,
    };
    let clients = Clients::load("eu-west-1", limits).await;
    let lb = LbRef {
        kind: LbKind::Application,
        name: "checkout".into(),
        id: "app/checkout/1".into(),
        target_group: None,
    };
    let mut options = GatherOptions::new(1_795_456_800, None, Some(60), Some(1));
    options.deadline = Duration::from_secs(3);
    let started = Instant::now();
    let world = gather(&clients, &lb, &options).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the per-call timeout ends it well before the deadline: {took:?}"
    );
    let lb_gap = world
        .gaps
        .iter()
        .find(|g| g.fact == GapFact::LoadBalancer)
        .expect("a gap for the load balancer");
    assert_eq!(lb_gap.reason, GapReason::Timeout, "{lb_gap:?}");
    assert!(world
        .gaps
        .iter()
        .filter(|g| g.fact == GapFact::Metrics)
        .all(|g| g.reason == GapReason::Timeout));

    // With per-call timeouts longer than the deadline, the deadline cuts the gather.
    let slow = CallLimits {
        attempt_timeout: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(60),
        max_attempts: 1,
    };
    let clients = Clients::load("eu-west-1", slow).await;
    options.deadline = Duration::from_millis(800);
    let started = Instant::now();
    let world = gather(&clients, &lb, &options).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let lb_gap = world
        .gaps
        .iter()
        .find(|g| g.fact == GapFact::LoadBalancer)
        .unwrap();
    assert_eq!(lb_gap.reason, GapReason::Timeout);
    assert!(lb_gap.detail.contains("deadline"), "{lb_gap:?}");
}

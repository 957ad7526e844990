//! End-to-end: the `llm_ab_vm_memory_bytes` gauge reports the linear memory
//! of the filter's live VMs, and configuration reloads do not inflate it.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};
use support::{Envoy, MockBackend};

const CONFIG: &str = r#"{
  "default_cluster": "model_a",
  "experiments": [{
    "id": "chat-q4", "enabled": true,
    "sticky_keys": ["x-user-id"],
    "variants": [
      {"name": "control",   "weight": 50, "cluster": "model_a"},
      {"name": "candidate", "weight": 50, "cluster": "model_b"}
    ]
  }]
}"#;

const BODY: &str = r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
const PAGE: u64 = 65_536;

fn gauge(envoy: &Envoy) -> u64 {
    envoy.metric("llm_ab_vm_memory_bytes{}")
}

/// Waits until the gauge has a value that stays put for two readings
/// 6 s apart (the VMs refresh it every 5 s).
fn settled(envoy: &Envoy) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = gauge(envoy);
    loop {
        std::thread::sleep(Duration::from_secs(6));
        let now = gauge(envoy);
        if now == last && now > 0 {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "gauge never settled ({last} -> {now})"
        );
        last = now;
    }
}

#[test]
fn vm_memory_gauge_sums_the_vms_and_survives_reloads() {
    let a = MockBackend::start("model_a", 0).unwrap();
    let b = MockBackend::start("model_b", 0).unwrap();
    let envoy = Envoy::start_ecds(CONFIG, &[("model_a", a.port()), ("model_b", b.port())]);
    for i in 0..20 {
        assert_eq!(
            envoy.chat(&[("x-user-id", &format!("u{i}"))], BODY).status,
            200
        );
    }
    let before = settled(&envoy);
    // Whole pages, at least one VM per worker (two workers).
    assert_eq!(before % PAGE, 0, "{before}");
    assert!(before >= 2 * 16 * PAGE, "{before} bytes for two VMs");

    // Envoy replaces VMs on a reload without telling them; the gauge must
    // count only the live ones (measured: 68 pages for four VMs before, 54
    // for three after, each VM one page larger from holding two
    // configurations for a moment), never every VM that ever existed.
    for i in 0..20 {
        let enabled = if i % 2 == 0 { "false" } else { "true" };
        envoy.set_filter_config(
            &CONFIG.replace("\"enabled\": true", &format!("\"enabled\": {enabled}")),
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            envoy.chat(&[("x-user-id", &format!("r{i}"))], BODY).status,
            200
        );
    }
    let after = settled(&envoy);
    println!("vm memory: {before} bytes before, {after} after 20 reloads");
    assert!(
        after <= before + before / 2,
        "20 reloads grew the gauge from {before} to {after}: replaced VMs are still counted"
    );
}

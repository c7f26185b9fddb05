//! Issue 4 acceptance, with real processes: the mock upstream, the operator in local mode and a
//! data plane following it over the TLS channel, each its own OS process.
//! - editing a manifest changes routing within one second;
//! - killing the operator leaves the data plane serving the last snapshot;
//! - restarting it (new CA, same store) resumes streaming;
//! - every request made appears exactly once in the record store and in the aggregated usage.

// Test helpers fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_operator::store::{Filter, Store};
use switchyard_tests::harness::TempDir;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(bin: &str, name: &'static str, args: &[String], log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    Proc(child)
}

fn mock() -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--no-record"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (Proc(child), addr)
}

async fn wait_ready(client: &reqwest::Client, url: &str, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn manifests(mock: SocketAddr, model: &str) -> String {
    format!(
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec: {{type: openai, endpoint: "http://{mock}/v1", models: [{{name: demo-fast}}, {{name: demo-smart}}, {{name: mock-model}}]}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {{name: default}}
spec: {{default: true}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {{name: all}}
spec: {{workspaceRef: default, matcher: {{type: catch_all}}, target: {{providerRef: mock, model: {model}}}}}
"#
    )
}

/// Sends a chat request; returns the model the upstream was asked for.
async fn chat(client: &reqwest::Client, gw: &str) -> String {
    let r = client
        .post(format!("{gw}/v1/chat/completions"))
        .json(&serde_json::json!({"model": "anything", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let v: serde_json::Value = r.json().await.unwrap();
    v["model"].as_str().unwrap().to_owned()
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_data_plane_as_processes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new("switchyard-procs").unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("manifests")).unwrap();
    std::fs::write(d.join("token"), "process-test-token-0123456789").unwrap();
    let (_mock, mock_addr) = mock();
    let manifest = d.join("manifests/all.yaml");
    write_atomically(&manifest, &manifests(mock_addr, "demo-fast"));

    let (op_http, op_channel, gw_port) = (free_port(), free_port(), free_port());
    let db = d.join("records.db");
    let op_args: Vec<String> = [
        "--manifests",
        &d.join("manifests").display().to_string(),
        "--local-token-file",
        &d.join("token").display().to_string(),
        "--store",
        &format!("sqlite://{}", db.display()),
        "--http-listen",
        &format!("127.0.0.1:{op_http}"),
        "--channel-listen",
        &format!("127.0.0.1:{op_channel}"),
        "--ca-out",
        &d.join("ca.crt").display().to_string(),
        "--watch-interval-ms",
        "50",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let op_log = d.join("operator.log");
    let operator = spawn(
        env!("CARGO_BIN_EXE_run-operator"),
        "operator",
        &op_args,
        &op_log,
    );
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{op_http}/readyz"),
        "operator",
        &op_log,
    )
    .await;

    let gw = format!("http://127.0.0.1:{gw_port}");
    let dp_log = d.join("dataplane.log");
    let _dataplane = spawn(
        env!("CARGO_BIN_EXE_run-dataplane"),
        "dataplane",
        &[
            "--listen".into(),
            format!("127.0.0.1:{gw_port}"),
            "--operator".into(),
            format!("https://127.0.0.1:{op_channel}"),
            "--operator-token-file".into(),
            d.join("token").display().to_string(),
            "--operator-ca-file".into(),
            d.join("ca.crt").display().to_string(),
            "--spool-dir".into(),
            d.join("spool").display().to_string(),
        ],
        &dp_log,
    );
    wait_ready(&client, &format!("{gw}/readyz"), "data plane", &dp_log).await;
    let mut requests = 0usize;
    assert_eq!(chat(&client, &gw).await, "demo-fast");
    requests += 1;

    // An edit reaches the data plane within a second.
    let edited = Instant::now();
    write_atomically(&manifest, &manifests(mock_addr, "demo-smart"));
    loop {
        let model = chat(&client, &gw).await;
        requests += 1;
        if model == "demo-smart" {
            break;
        }
        assert!(
            edited.elapsed() < Duration::from_secs(1),
            "route not changed within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "manifest edit to new route served: {} ms",
        edited.elapsed().as_millis()
    );

    // The operator dies: the data plane keeps serving its last snapshot.
    drop(operator);
    for _ in 0..5 {
        assert_eq!(chat(&client, &gw).await, "demo-smart");
        requests += 1;
    }

    // It comes back (a new self-signed CA, the same store): streaming resumes, so a new edit
    // is served again.
    write_atomically(&manifest, &manifests(mock_addr, "mock-model"));
    let op_log2 = d.join("operator2.log");
    let _operator = spawn(
        env!("CARGO_BIN_EXE_run-operator"),
        "operator",
        &op_args,
        &op_log2,
    );
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{op_http}/readyz"),
        "restarted operator",
        &op_log2,
    )
    .await;
    let back = Instant::now();
    loop {
        let model = chat(&client, &gw).await;
        requests += 1;
        if model == "mock-model" {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "streaming did not resume: {}",
            std::fs::read_to_string(&dp_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every request exactly once in the store, and in the aggregated usage.
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = store.count(&Filter::default()).await.unwrap() as usize;
        if n >= requests {
            assert_eq!(n, requests, "each request stored exactly once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {requests} records stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let usage = store
        .workspace_usage_top("default/default", 10)
        .await
        .unwrap();
    assert_eq!(
        usage.totals.requests as usize, requests,
        "aggregated usage counts every request once"
    );
    let by_model: u64 = usage.models.iter().map(|m| m.counters.requests).sum();
    assert_eq!(by_model as usize, requests);
}

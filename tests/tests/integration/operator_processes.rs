//! Issue 4 acceptance, with real processes: the mock upstream, the operator in local mode and a
//! data plane following it over the TLS channel, each its own OS process.
//! - editing a manifest changes routing within one second;
//! - killing the operator leaves the data plane serving the last snapshot;
//! - restarting it (new CA, same store) resumes streaming;
//! - every request made appears exactly once in the record store and in the aggregated usage.
//!
//! And the REST facade's acceptance (`facade_reports_what_the_data_plane_did`), with the same
//! processes: requests made through the data plane appear in the facade's interceptions,
//! summary, sessions, workspace usage and messages, clients and models, with the token counts
//! the data plane reported and the costs the prices give; test-match agrees with the route the
//! data plane reported in `x-switchyard-route` (and, for an AffinityGroup, with the member the
//! data plane picked).

// Test helpers fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
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

/// Waits until the process logging (JSON) to `log` says `message` and returns the addresses
/// in its fields `keys`: processes bind port 0 and say where, so no port picked by a test can be
/// taken by another test before the process binds it.
async fn logged<const N: usize>(
    proc: &mut Proc,
    log: &Path,
    message: &str,
    keys: [&str; N],
) -> [SocketAddr; N] {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(found) = switchyard_tests::harness::logged_addrs(&text, message, keys) {
            return found;
        }
        if let Some(status) = proc.0.try_wait().unwrap() {
            panic!("exited ({status}) before {message:?}: {text}");
        }
        assert!(Instant::now() < deadline, "no {message:?} in 20 s: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let (child, url) = switchyard_tests::harness::spawn_mock_upstream(
        env!("CARGO_BIN_EXE_run-mock-upstream"),
        &["--no-record"],
    );
    let addr = url.trim_start_matches("http://").parse().unwrap();
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

/// Starts a data plane following the operator's channel at `op_channel` (token `d/token`, CA
/// `d/ca.crt`) and waits until it is ready; returns it, its URL and its log.
async fn data_plane(
    client: &reqwest::Client,
    d: &Path,
    op_channel: SocketAddr,
) -> (Proc, String, std::path::PathBuf) {
    let dp_log = d.join("dataplane.log");
    let mut proc = spawn(
        env!("CARGO_BIN_EXE_run-dataplane"),
        "dataplane",
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
            "--log-format".into(),
            "json".into(),
            "--operator".into(),
            format!("https://{op_channel}"),
            "--operator-token-file".into(),
            d.join("token").display().to_string(),
            "--operator-ca-file".into(),
            d.join("ca.crt").display().to_string(),
            "--spool-dir".into(),
            d.join("spool").display().to_string(),
        ],
        &dp_log,
    );
    let [addr, admin] = logged(
        &mut proc,
        &dp_log,
        "data plane listening",
        ["addr", "admin_addr"],
    )
    .await;
    wait_ready(
        client,
        &format!("http://{admin}/readyz"),
        "data plane",
        &dp_log,
    )
    .await;
    (proc, format!("http://{addr}"), dp_log)
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

    let db = d.join("records.db");
    let op_args = |http: &str, channel: &str| -> Vec<String> {
        [
            "--manifests",
            &d.join("manifests").display().to_string(),
            "--local-token-file",
            &d.join("token").display().to_string(),
            "--store",
            &format!("sqlite://{}", db.display()),
            "--http-listen",
            http,
            "--channel-listen",
            channel,
            "--ca-out",
            &d.join("ca.crt").display().to_string(),
            "--watch-interval-ms",
            "50",
            "--log-format",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let op_log = d.join("operator.log");
    let mut operator = spawn(
        env!("CARGO_BIN_EXE_run-operator"),
        "operator",
        &op_args("127.0.0.1:0", "127.0.0.1:0"),
        &op_log,
    );
    let [op_channel] = logged(
        &mut operator,
        &op_log,
        "data-plane channel listening",
        ["addr"],
    )
    .await;
    let [op_http] = logged(
        &mut operator,
        &op_log,
        "health and metrics listening",
        ["addr"],
    )
    .await;
    wait_ready(
        &client,
        &format!("http://{op_http}/readyz"),
        "operator",
        &op_log,
    )
    .await;

    let (_dataplane, gw, dp_log) = data_plane(&client, d, op_channel).await;
    let mut requests = 0usize;
    assert_eq!(chat(&client, &gw).await, "demo-fast");
    requests += 1;

    // An edit reaches the data plane (the benchmarks measure how fast: the bound here only
    // guards against a hang on a loaded machine).
    let edited = Instant::now();
    write_atomically(&manifest, &manifests(mock_addr, "demo-smart"));
    loop {
        let model = chat(&client, &gw).await;
        requests += 1;
        if model == "demo-smart" {
            break;
        }
        assert!(
            edited.elapsed() < Duration::from_secs(10),
            "route not changed within 10 s"
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
    // On the same addresses (the data plane follows that one; a restart in place).
    let _operator = spawn(
        env!("CARGO_BIN_EXE_run-operator"),
        "operator",
        &op_args(&op_http.to_string(), &op_channel.to_string()),
        &op_log2,
    );
    wait_ready(
        &client,
        &format!("http://{op_http}/readyz"),
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

// ---------------------------------------------------------------------------------------------
// REST facade

const FACADE_TOKEN: &str = "facade-admin-token-0123456789";

/// Prices per 1M tokens (input, output) of the models in `facade_manifests`.
fn price(model: &str) -> (f64, f64) {
    match model {
        "demo-fast" => (1.5, 6.0),
        "demo-smart" => (3.0, 15.0),
        "local-model" => (0.5, 0.25),
        other => panic!("no price for {other}"),
    }
}

fn facade_manifests(mock: SocketAddr) -> String {
    format!(
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec:
  type: openai
  endpoint: "http://{mock}/v1"
  models:
    - {{name: demo-fast, pricing: {{input: 1.5, output: 6}}}}
    - {{name: demo-smart, pricing: {{input: 3, output: 15}}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {{name: b1}}
spec: {{type: openai_compatible, baseUrl: "http://{mock}/v1", models: [{{name: local-model, pricing: {{input: 0.5, output: 0.25}}}}]}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Backend
metadata: {{name: b2}}
spec: {{type: openai_compatible, baseUrl: "http://{mock}/v1", models: [{{name: local-model, pricing: {{input: 0.5, output: 0.25}}}}]}}
---
apiVersion: switchyard.dev/v1alpha1
kind: AffinityGroup
metadata: {{name: pool}}
spec: {{purpose: chat, backends: [b1, b2], models: [local-model], loadBalancing: {{strategy: session_affinity}}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {{name: default}}
spec: {{default: true}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {{name: py}}
spec: {{workspaceRef: default, priority: 10, matcher: {{type: filename_match, pattern: "*.py"}}, target: {{providerRef: mock, model: demo-smart}}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {{name: all}}
spec: {{workspaceRef: default, priority: 100, matcher: {{type: catch_all}}, target: {{providerRef: mock}}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: RouterPolicy
metadata: {{name: local}}
spec: {{priority: 10, match: {{model: "local-*"}}, routeTo: {{affinityGroupRef: pool}}}}
"#
    )
}

/// One request through the data plane and what it answered.
#[derive(Debug)]
struct Sent {
    request_id: String,
    route: String,
    session: &'static str,
    /// (prompt tokens incl. cached, completion tokens) as reported to the client.
    usage: (u64, u64),
    /// The test-match context describing the same request.
    context: serde_json::Value,
}

async fn send(
    client: &reqwest::Client,
    gw: &str,
    model: &str,
    prompt: &str,
    session: &'static str,
    agent: &str,
    stream: bool,
) -> Sent {
    let mut body =
        serde_json::json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
    if stream {
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    let r = client
        .post(format!("{gw}/v1/chat/completions"))
        .header("x-session-id", session)
        .header("user-agent", agent)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
    let (request_id, route) = (header("x-request-id"), header("x-switchyard-route"));
    let text = r.text().await.unwrap();
    let usage_of = |v: &serde_json::Value| {
        (
            v["usage"]["prompt_tokens"].as_u64().unwrap(),
            v["usage"]["completion_tokens"].as_u64().unwrap(),
        )
    };
    let usage = if stream {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
            .find(|v| v["usage"].is_object())
            .map(|v| usage_of(&v))
            .expect("a usage chunk")
    } else {
        usage_of(&serde_json::from_str(&text).unwrap())
    };
    let filenames: Vec<&str> = prompt
        .split_whitespace()
        .filter(|w| w.ends_with(".py"))
        .collect();
    Sent {
        request_id,
        route,
        session,
        usage,
        context: serde_json::json!({
            "model": model, "streaming": stream, "session_id": session, "filenames": filenames
        }),
    }
}

/// A facade client: HTTPS with the operator's CA, the admin token.
struct FacadeClient {
    client: reqwest::Client,
    base: String,
}

impl FacadeClient {
    async fn get(&self, path: &str) -> serde_json::Value {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(FACADE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    async fn test_match(&self, context: &serde_json::Value) -> serde_json::Value {
        let r = self
            .client
            .post(format!("{}/api/v1/routerpolicies/test-match", self.base))
            .bearer_auth(FACADE_TOKEN)
            .json(&serde_json::json!({ "context": context }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_reports_what_the_data_plane_did() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new("switchyard-facade").unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("manifests")).unwrap();
    std::fs::write(d.join("token"), "process-test-token-0123456789").unwrap();
    std::fs::write(d.join("facade-token"), format!("{FACADE_TOKEN}\n")).unwrap();
    let (_mock, mock_addr) = mock();
    write_atomically(&d.join("manifests/all.yaml"), &facade_manifests(mock_addr));

    let op_args: Vec<String> = [
        "--manifests",
        &d.join("manifests").display().to_string(),
        "--local-token-file",
        &d.join("token").display().to_string(),
        "--facade-token-file",
        &d.join("facade-token").display().to_string(),
        "--facade-listen",
        "127.0.0.1:0",
        "--store",
        &format!("sqlite://{}", d.join("records.db").display()),
        "--http-listen",
        "127.0.0.1:0",
        "--channel-listen",
        "127.0.0.1:0",
        "--ca-out",
        &d.join("ca.crt").display().to_string(),
        "--aggregate-interval-ms",
        "500",
        "--log-format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let op_log = d.join("operator.log");
    let mut operator = spawn(
        env!("CARGO_BIN_EXE_run-operator"),
        "operator",
        &op_args,
        &op_log,
    );
    let [op_channel] = logged(
        &mut operator,
        &op_log,
        "data-plane channel listening",
        ["addr"],
    )
    .await;
    let [op_http] = logged(
        &mut operator,
        &op_log,
        "health and metrics listening",
        ["addr"],
    )
    .await;
    let [op_facade] = logged(&mut operator, &op_log, "REST facade listening", ["addr"]).await;
    wait_ready(
        &client,
        &format!("http://{op_http}/readyz"),
        "operator",
        &op_log,
    )
    .await;
    let (_dataplane, gw, _) = data_plane(&client, d, op_channel).await;

    // The facade: TLS with the operator's CA, the static admin token of local mode.
    let ca = std::fs::read(d.join("ca.crt")).unwrap();
    let facade = FacadeClient {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .build()
            .unwrap(),
        base: format!("https://{op_facade}"),
    };
    let r = facade
        .client
        .get(format!("{}/api/v1/interceptions", facade.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token");
    let r = facade
        .client
        .get(format!("{}/api/v1/interceptions", facade.base))
        .bearer_auth("process-test-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the data planes' token is not the admin token"
    );

    let sent = vec![
        send(
            &client,
            &gw,
            "demo-fast",
            "hello there",
            "sess-a",
            "cursor/1.2",
            false,
        )
        .await,
        send(
            &client,
            &gw,
            "demo-fast",
            "please fix main.py now",
            "sess-a",
            "cursor/1.2",
            false,
        )
        .await,
        send(
            &client,
            &gw,
            "demo-fast",
            "stream a few words back",
            "sess-b",
            "claude-cli/2.0",
            true,
        )
        .await,
        send(
            &client,
            &gw,
            "local-model",
            "summarise this for me",
            "sess-b",
            "claude-cli/2.0",
            false,
        )
        .await,
        send(
            &client,
            &gw,
            "local-model",
            "and this one too",
            "sess-c",
            "cursor/1.2",
            false,
        )
        .await,
    ];
    assert!(
        sent[1].route.contains("muxrule=default/py"),
        "{}",
        sent[1].route
    );
    assert!(
        sent[3].route.contains("policy=default/local"),
        "{}",
        sent[3].route
    );

    // Every request arrives, once.
    // (Waits for the ids themselves, not a count: the check below says what else is listed.)
    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = facade.get("/api/v1/interceptions?limit=1000").await;
        let listed = |id: &str| {
            list["results"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["request_id"] == id))
        };
        if sent.iter().all(|s| listed(&s.request_id)) {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "not all of {sent:?} listed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        list["count"].as_u64(),
        Some(sent.len() as u64),
        "every request once, nothing else: {list}"
    );
    let results = list["results"].as_array().unwrap();
    let mut expected_cost = 0.0;
    let (mut expected_in, mut expected_out) = (0, 0);
    for s in &sent {
        let rec = results
            .iter()
            .find(|r| r["request_id"] == s.request_id.as_str())
            .unwrap_or_else(|| panic!("{} not listed: {list}", s.request_id));
        let tu = &rec["token_usages"][0];
        let prompt = tu["input_tokens"].as_u64().unwrap()
            + tu["cache_read_input_tokens"].as_u64().unwrap()
            + tu["cache_write_input_tokens"].as_u64().unwrap();
        let output = tu["output_tokens"].as_u64().unwrap();
        assert_eq!((prompt, output), s.usage, "{}: {rec}", s.request_id);
        let served = rec["model_served"].as_str().unwrap();
        let (p_in, p_out) = price(served);
        let cost_in = prompt as f64 * p_in / 1e6;
        let cost_out = output as f64 * p_out / 1e6;
        assert!(close(tu["input_cost"].as_f64().unwrap(), cost_in), "{rec}");
        assert!(
            close(tu["output_cost"].as_f64().unwrap(), cost_out),
            "{rec}"
        );
        assert_eq!(rec["session_id"], s.session);
        assert_eq!(rec["workspace"], "default/default");
        expected_cost += cost_in + cost_out;
        expected_in += prompt;
        expected_out += output;

        // test-match agrees with the data plane on the same request.
        let m = facade.test_match(&s.context).await;
        assert_eq!(m["route_header"], s.route.as_str(), "{m}");
        if s.route.contains("target=affinitygroup/") {
            // Session affinity with a session id: the member is deterministic.
            let member = m["target"]["group"]["selected_member"]
                .as_str()
                .unwrap_or_else(|| panic!("no member picked: {m}"));
            assert_eq!(rec["attempts"][0]["backend"], member, "{m} vs {rec}");
        }
    }
    assert!(
        sent[3..]
            .iter()
            .all(|s| s.route.contains("target=affinitygroup/pool"))
    );

    // Summary.
    let summary = facade.get("/api/v1/interceptions/summary").await;
    assert_eq!(summary["total_calls"], sent.len());
    assert_eq!(summary["success_rate"], 1.0);
    assert!(close(
        summary["total_cost"].as_f64().unwrap(),
        expected_cost
    ));
    assert_eq!(
        summary["input_tokens"].as_u64().unwrap()
            + summary["cache_read_input_tokens"].as_u64().unwrap()
            + summary["cache_write_input_tokens"].as_u64().unwrap(),
        expected_in
    );
    assert_eq!(summary["output_tokens"], expected_out);
    let by_model: BTreeSet<&str> = summary["model_usage"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        by_model,
        BTreeSet::from(["demo-fast", "demo-smart", "local-model"])
    );

    // Sessions.
    let sessions = facade.get("/api/v1/sessions").await;
    let count_of = |id: &str| {
        sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["interceptions"].as_u64().unwrap())
    };
    assert_eq!(
        (count_of("sess-a"), count_of("sess-b"), count_of("sess-c")),
        (Some(2), Some(2), Some(1))
    );
    let a = facade.get("/api/v1/sessions/sess-a").await;
    let prompts: Vec<&str> = a["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, ["hello there", "please fix main.py now"]);
    let a_tokens: u64 = sent[..2].iter().map(|s| s.usage.1).sum();
    assert_eq!(a["token_usage_summary"]["output_tokens"], a_tokens);
    assert_eq!(a["clients"], serde_json::json!(["cursor"]));

    // Workspace usage (rollups), messages, clients, models.
    let usage = facade
        .get("/api/v1/namespaces/default/workspaces/default/usage")
        .await;
    assert_eq!(usage["token_usage"]["requests"], sent.len());
    assert_eq!(usage["token_usage"]["output_tokens"], expected_out);
    assert!(close(
        usage["token_usage"]["total_cost"].as_f64().unwrap(),
        expected_cost
    ));
    assert_eq!(
        usage["tokens_by_model"]["local-model"]["token_usage"]["requests"],
        2
    );
    assert_eq!(
        usage["tokens_by_model"]["demo-smart"]["provider_type"],
        "openai"
    );
    let messages = facade
        .get("/api/v1/namespaces/default/workspaces/default/messages?limit=2")
        .await;
    assert_eq!(messages["total"], sent.len());
    assert_eq!(messages["data"][0]["prompt"]["message"], "and this one too");
    assert_eq!(
        facade.get("/api/v1/clients").await,
        serde_json::json!(["claude-code", "cursor"])
    );
    let models = facade.get("/api/v1/models").await;
    for m in ["demo-fast", "demo-smart", "local-model"] {
        assert!(models.as_array().unwrap().contains(&m.into()), "{models}");
    }

    // CR views in local mode carry the status the operator computes, usage included.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ws = facade
            .get("/api/v1/namespaces/default/workspaces/default")
            .await;
        let ready = ws["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        assert!(ready, "{ws}");
        if ws["status"]["usage"]["totals"]["requests"] == sent.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "usage never reached status: {ws}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = facade.get("/api/v1/state").await;
    let keys: Vec<&str> = state["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["default/b1", "default/b2"]);
    let muxes = facade
        .get("/api/v1/namespaces/default/workspaces/default/muxes")
        .await;
    assert_eq!(muxes["items"][0]["name"], "py");
    assert_eq!(muxes["items"][0]["match_count"], 1);
}

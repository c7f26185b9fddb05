//! End-to-end tests against a real Kubernetes API server (issue 8). The operator and data plane
//! run as local processes against it; the upstream is the mock.
//!
//! The cluster comes from the environment: `SWITCHYARD_E2E_KUBECONFIG` (an admin kubeconfig),
//! `SWITCHYARD_E2E_OPERATOR_KUBECONFIG` (the operator's identity, bound by `config/rbac`; the
//! admin one when unset) and `SWITCHYARD_E2E_DATAPLANE_TOKEN_FILE` (a token of the ServiceAccount
//! `switchyard-system/switchyard-dataplane`). `e2e/run.sh` starts a loopback control plane and
//! sets them; against another cluster set them yourself (see docs/testing.md).
//! The tests are `#[ignore]`d so that `cargo test --workspace` reports them as not run (ignored)
//! instead of passing without a cluster; `e2e/run.sh` runs them with `--include-ignored`. Run
//! by hand without the environment above, each fails saying what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::TempDir;

const SYSTEM_NS: &str = "switchyard-system";

struct Env {
    admin: PathBuf,
    operator: PathBuf,
    dataplane_token: PathBuf,
    repo: PathBuf,
}

fn env() -> Option<Env> {
    let admin = PathBuf::from(std::env::var_os("SWITCHYARD_E2E_KUBECONFIG")?);
    let operator = std::env::var_os("SWITCHYARD_E2E_OPERATOR_KUBECONFIG")
        .map_or_else(|| admin.clone(), PathBuf::from);
    let dataplane_token = PathBuf::from(
        std::env::var_os("SWITCHYARD_E2E_DATAPLANE_TOKEN_FILE").expect(
            "SWITCHYARD_E2E_DATAPLANE_TOKEN_FILE is required with SWITCHYARD_E2E_KUBECONFIG",
        ),
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    Some(Env {
        admin,
        operator,
        dataplane_token,
        repo,
    })
}

/// The cluster of the environment; a test run without one fails (it would test nothing).
fn cluster() -> Env {
    env().expect(
        "no cluster: set SWITCHYARD_E2E_KUBECONFIG (and the other SWITCHYARD_E2E_* variables) \
         or run e2e/run.sh",
    )
}

impl Env {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.admin).args(args);
        cmd.current_dir(&self.repo);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl, failing the test with its stderr when it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args, None);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, ns: &str, yaml: &str) {
        let out = self.kubectl(&["apply", "-n", ns, "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "apply: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn get_json(&self, ns: &str, what: &str) -> Option<Value> {
        let out = self.kubectl(&["get", "-n", ns, what, "-o", "json"], None);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn namespace(&self, ns: &str) {
        let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
        let out = self.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// CRDs (server-side apply: they are too large for the last-applied annotation), RBAC and
    /// the system namespace.
    fn install(&self) {
        self.namespace(SYSTEM_NS);
        self.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            "config/crd",
        ]);
        let mut wait = vec!["wait", "--for", "condition=established", "--timeout", "60s"];
        wait.extend([
            "crd/providers.switchyard.dev",
            "crd/backends.switchyard.dev",
            "crd/affinitygroups.switchyard.dev",
            "crd/workspaces.switchyard.dev",
            "crd/muxrules.switchyard.dev",
            "crd/routerpolicies.switchyard.dev",
            "crd/taskchains.switchyard.dev",
        ]);
        self.ok(&wait);
        self.ok(&["apply", "-k", "config/rbac"]);
    }

    /// Waits until `check` holds for the object, returning it.
    fn wait_for(
        &self,
        ns: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.get_json(ns, what);
            if let Some(v) = &v
                && check(v)
            {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{ns}/{what} did not converge within {within:?}: {}",
                v.map(|v| serde_json::to_string_pretty(&v["status"]).unwrap())
                    .unwrap_or_else(|| "not found".into())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn condition_is(obj: &Value, type_: &str, status: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c["status"] == status)
}

/// Ready=True for the current generation.
fn ready_now(obj: &Value) -> bool {
    condition_is(obj, "Ready", "True")
        && obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
}

struct Proc(Child, PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct OperatorPorts {
    http: u16,
    channel: u16,
}

/// The Lease all e2e operators compete for: the one `config/rbac` lets the operator use.
const LEASE: &str = "switchyard-operator";

fn start_operator(env: &Env, dir: &Path, name: &str, ports: &OperatorPorts) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_run-operator"))
        .args([
            "--store",
            &format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
            "--http-listen",
            &format!("127.0.0.1:{}", ports.http),
            "--channel-listen",
            &format!("127.0.0.1:{}", ports.channel),
            "--facade-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--ca-out",
            &dir.join(format!("{name}-ca.crt")).display().to_string(),
            "--pod-namespace",
            SYSTEM_NS,
            "--lease-name",
            LEASE,
            "--dataplane-service-accounts",
            "switchyard-system/switchyard-dataplane",
            "--aggregate-interval-ms",
            "1000",
        ])
        .env("KUBECONFIG", &env.operator)
        .env("POD_NAME", name)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    Proc(child, log)
}

fn start_dataplane(
    env: &Env,
    dir: &Path,
    channel: u16,
    ca: &Path,
    (port, admin_port): (u16, u16),
) -> Proc {
    let log = dir.join("dataplane.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_run-dataplane"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
            "--operator",
            &format!("https://127.0.0.1:{channel}"),
            "--operator-token-file",
            &env.dataplane_token.display().to_string(),
            "--operator-ca-file",
            &ca.display().to_string(),
            "--spool-dir",
            &dir.join("spool").display().to_string(),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    Proc(child, log)
}

async fn wait_http(url: &str, proc_: &Proc, within: Duration) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready within {within:?}:\n{}",
            proc_.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metric(port: u16, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
fn manifests_crds_and_schema_validation() {
    let env = cluster();
    env.install();

    // The whole kustomize tree renders and the API server accepts every object.
    let rendered = env.ok(&["kustomize", "config/default"]);
    let out = env.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
    assert!(
        out.status.success(),
        "config/default refused by the API server: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The samples install and `kubectl get switchyard` lists them with their columns.
    let ns = "e2e-samples";
    env.namespace(ns);
    env.ok(&["apply", "-n", ns, "-k", "config/samples/quickstart"]);
    let listed = env.ok(&["get", "switchyard", "-n", ns]);
    for name in [
        "provider.switchyard.dev/demo",
        "workspace.switchyard.dev/default",
        "muxrule.switchyard.dev/catch-all",
    ] {
        assert!(listed.contains(name), "{name} missing from:\n{listed}");
    }
    let providers = env.ok(&["get", "providers", "-n", ns]);
    let header = providers.lines().next().unwrap();
    for column in ["NAME", "TYPE", "ENDPOINT", "READY", "AGE"] {
        assert!(header.contains(column), "{column} not in {header}");
    }
    let policies = env.ok(&["get", "swrp", "-n", ns]);
    for column in ["PRIORITY", "ROUTE", "STATE"] {
        assert!(
            policies.lines().next().unwrap().contains(column),
            "{policies}"
        );
    }

    // Invalid objects are refused by the API server's schema validation, with its message
    // (`--validate=false`: not kubectl's client-side check).
    let cases = [
        (
            "apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {name: bad-type}\nspec: {type: bogus}\n",
            "Unsupported value: \"bogus\"",
        ),
        (
            "apiVersion: switchyard.dev/v1alpha1\nkind: RouterPolicy\nmetadata: {name: bad-percent}\nspec: {priority: 1, routeTo: {providerRef: demo}, circuitBreaker: {errorThresholdPercent: 150}}\n",
            "less than or equal to 100",
        ),
        (
            "apiVersion: switchyard.dev/v1alpha1\nkind: MuxRule\nmetadata: {name: no-matcher}\nspec: {workspaceRef: default, target: {providerRef: demo}}\n",
            "Required value",
        ),
    ];
    for (yaml, message) in cases {
        let out = env.kubectl(
            &["apply", "--validate=false", "-n", ns, "-f", "-"],
            Some(yaml),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{yaml}");
        assert!(err.contains(message), "{message:?} not in: {err}");
    }
}

fn flow_manifests(mock: &MockUpstream, model: &str) -> String {
    let base = mock.base_url();
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: upstream-key
  labels: {{switchyard.dev/secret: "true"}}
stringData: {{key: sk-e2e-0123456789abcdef}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec:
  type: openai
  endpoint: {base}/v1
  auth: {{type: api_key, secretRef: {{name: upstream-key, key: key}}}}
  models:
  - name: mock-a
    pricing: {{input: 1.0, output: 2.0}}
  - name: mock-b
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {{name: team}}
spec:
  default: true
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {{name: all}}
spec:
  workspaceRef: team
  priority: 10
  matcher: {{type: catch_all}}
  target: {{providerRef: mock, model: {model}}}
"#
    )
}

/// Sends a chat; returns (status, the model the upstream was asked for).
async fn chat(client: &reqwest::Client, gw: &str) -> (u16, String) {
    match client
        .post(format!("{gw}/v1/chat/completions"))
        // Other tests' namespaces hold default Workspaces too: name ours.
        .header("x-switchyard-workspace", "e2e-flow/team")
        .json(&json!({"model": "anything", "messages": [{"role": "user", "content": "hello e2e"}]}))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match v["model"].as_str() {
                Some(m) if status == 200 => (status, m.to_owned()),
                _ => (status, text),
            }
        }
        Err(_) => (0, String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn operator_and_data_plane_on_a_real_api_server() {
    let env = cluster();
    let _ = rustls::crypto::ring::default_provider().install_default();
    env.install();
    let ns = "e2e-flow";
    env.namespace(ns);
    // Objects a previous run on the same cluster may have left.
    env.ok(&[
        "delete",
        "-n",
        ns,
        "--ignore-not-found",
        "muxrule/dangling",
        "provider/later",
    ]);
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    env.apply(ns, &flow_manifests(&mock, "mock-a"));

    let dir = TempDir::new("switchyard-e2e").unwrap();
    let d = dir.path();
    let ports = OperatorPorts {
        http: free_port(),
        channel: free_port(),
    };
    let mut operator = start_operator(&env, d, "op", &ports);
    wait_http(
        &format!("http://127.0.0.1:{}/readyz", ports.http),
        &operator,
        Duration::from_secs(60),
    )
    .await;

    // Statuses converge to Ready for the current generation.
    for what in ["provider/mock", "workspace/team", "muxrule/all"] {
        env.wait_for(ns, what, Duration::from_secs(30), ready_now);
    }

    // A MuxRule pointing at a missing Provider names it, and recovers when it appears.
    env.apply(
        ns,
        "apiVersion: switchyard.dev/v1alpha1\nkind: MuxRule\nmetadata: {name: dangling}\nspec: {workspaceRef: team, priority: 20, matcher: {type: model, pattern: 'later-*'}, target: {providerRef: later}}\n",
    );
    let r = env.wait_for(ns, "muxrule/dangling", Duration::from_secs(30), |o| {
        condition_is(o, "ResolvedRefs", "False")
    });
    let message = condition(&r, "ResolvedRefs").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("later"), "{message}");
    env.apply(
        ns,
        &format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: later}}\nspec: {{type: openai, endpoint: '{}/v1', models: [{{name: later-1}}]}}\n",
            mock.base_url()
        ),
    );
    env.wait_for(ns, "muxrule/dangling", Duration::from_secs(30), ready_now);

    // Deleting the key's Secret flips the Provider; recreating it recovers, no restart.
    env.ok(&["delete", "secret", "-n", ns, "upstream-key"]);
    env.wait_for(ns, "provider/mock", Duration::from_secs(30), |o| {
        condition_is(o, "SecretResolved", "False")
    });
    env.apply(ns, &flow_manifests(&mock, "mock-a"));
    env.wait_for(ns, "provider/mock", Duration::from_secs(30), |o| {
        condition_is(o, "SecretResolved", "True") && ready_now(o)
    });

    // The data plane follows the operator and routes as the CRs say.
    let ca = d.join("op-ca.crt");
    let (gw_port, admin_port) = (free_port(), free_port());
    let dataplane = start_dataplane(&env, d, ports.channel, &ca, (gw_port, admin_port));
    let gw = format!("http://127.0.0.1:{gw_port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    wait_http(
        &format!("{admin}/readyz"),
        &dataplane,
        Duration::from_secs(30),
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut sent = 0u64;
    assert_eq!(chat(&client, &gw).await, (200, "mock-a".to_owned()));
    sent += 1;
    let auth = mock
        .requests()
        .last()
        .unwrap()
        .header("authorization")
        .map(str::to_owned);
    assert_eq!(auth.as_deref(), Some("Bearer sk-e2e-0123456789abcdef"));

    // An edit is served (printed: how long it took; the benchmarks hold the target of a second,
    // the bound here only guards against a hang on a loaded machine).
    let edited = Instant::now();
    env.apply(ns, &flow_manifests(&mock, "mock-b"));
    loop {
        let (status, model) = chat(&client, &gw).await;
        assert_eq!(status, 200);
        sent += 1;
        if model == "mock-b" {
            break;
        }
        assert!(
            edited.elapsed() < Duration::from_secs(10),
            "still routed to {model} {:?} after the edit",
            edited.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("edit to new route: {:?}", edited.elapsed());

    // Usage reaches the Workspace status.
    env.wait_for(ns, "workspace/team", Duration::from_secs(30), |o| {
        o["status"]["usage"]["totals"]["requests"].as_u64() >= Some(sent)
    });

    // The operator goes away: the data plane keeps serving the last snapshot.
    drop(operator);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let (status, model) = chat(&client, &gw).await;
        assert_eq!((status, model.as_str()), (200, "mock-b"), "traffic dropped");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It comes back on the same address (new CA): streaming resumes and edits flow again.
    operator = start_operator(&env, d, "op", &ports);
    wait_http(
        &format!("http://127.0.0.1:{}/readyz", ports.http),
        &operator,
        Duration::from_secs(60),
    )
    .await;
    env.apply(ns, &flow_manifests(&mock, "mock-a"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, model) = chat(&client, &gw).await;
        assert_eq!(status, 200, "traffic dropped while the operator restarted");
        sent += 1;
        if model == "mock-a" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the data plane did not resume following the operator:\n{}",
            dataplane.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.wait_for(ns, "workspace/team", Duration::from_secs(30), |o| {
        o["status"]["usage"]["totals"]["requests"].as_u64() >= Some(sent)
    });
    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn two_operators_elect_one_leader() {
    let env = cluster();
    let _ = rustls::crypto::ring::default_provider().install_default();
    env.install();
    let dir = TempDir::new("switchyard-e2e-lease").unwrap();
    let d = dir.path();
    let a_ports = OperatorPorts {
        http: free_port(),
        channel: free_port(),
    };
    let b_ports = OperatorPorts {
        http: free_port(),
        channel: free_port(),
    };
    let a = start_operator(&env, d, "op-a", &a_ports);
    let b = start_operator(&env, d, "op-b", &b_ports);
    for (p, ports) in [(&a, &a_ports), (&b, &b_ports)] {
        wait_http(
            &format!("http://127.0.0.1:{}/readyz", ports.http),
            p,
            Duration::from_secs(60),
        )
        .await;
    }
    // Exactly one leader, and the Lease names it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (leader, follower) = loop {
        let la = metric(a_ports.http, "switchyard_operator_leader").await;
        let lb = metric(b_ports.http, "switchyard_operator_leader").await;
        match (la, lb) {
            (Some(x), Some(y)) if x + y == 1.0 => {
                break if x == 1.0 {
                    ("op-a", "op-b")
                } else {
                    ("op-b", "op-a")
                };
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "no single leader: {la:?} {lb:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let holder = env.ok(&[
        "get",
        "lease",
        "-n",
        SYSTEM_NS,
        LEASE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.trim().is_empty(), "the Lease names no holder");

    // The leader goes away: the other one takes over.
    let (survivor_port, survivor) = if leader == "op-a" {
        drop(a);
        (b_ports.http, b)
    } else {
        drop(b);
        (a_ports.http, a)
    };
    let _ = leader;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(survivor_port, "switchyard_operator_leader").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "{follower} did not take over:\n{}",
            survivor.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new_holder = env.ok(&[
        "get",
        "lease",
        "-n",
        SYSTEM_NS,
        LEASE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_ne!(new_holder, holder, "the Lease changed hands");
}

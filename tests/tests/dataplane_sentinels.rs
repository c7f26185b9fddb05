//! Acceptance point 11: credentials never leak. Recognisable fake keys (provider keys in
//! Secrets, a header from a Secret, a backend token, a gateway client key, callers' own keys)
//! go through a broad scenario — api_key and passthrough auth, both dialects, streamed and
//! not, upstream errors that echo a key (whole or masked) in a response and in a stream,
//! every fault mode of an upstream answer (a 200 with an error body, a 200 that is not an answer,
//! an error event first in a stream, a malformed stream line, a body reset after its head, a
//! silent head, a large answer), guardrail findings of key-shaped secrets — while every log line of every crate is captured
//! at TRACE. Then no sentinel may appear in a log line, a response body or header, `/metrics`,
//! the record store or the spool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use switchyard_mock::{Behavior, MockConfig, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{
    affinity_group, api_key, backend, client_key, guardrails, mux_rule, passthrough, provider,
    router_policy, secret, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, Gateway};

const OPENAI_KEY: &str = "sk-SENTINEL-provider-openai-7f3a9c2e5b";
const ANTHROPIC_KEY: &str = "sk-ant-SENTINEL-provider-4b8d1e6f0a";
const FAILING_KEY: &str = "sk-SENTINEL-provider-failing-2c5b7f3a9e";
const HEADER_SECRET: &str = "SENTINEL-header-secret-1e6f4b8d0a";
const BACKEND_TOKEN: &str = "SENTINEL-backend-token-9c2e7f3a5b";
const CLIENT_KEY: &str = "sy-SENTINEL-client-3a9c2e7f5b";
const CALLER_KEY: &str = "sk-SENTINEL-caller-8d1e6f4b0a";
const CALLER_ANTHROPIC_KEY: &str = "sk-ant-SENTINEL-caller-6f4b8d1e0a";
/// How upstreams print a key they refuse.
const MASKED: &str = "sk-SEN****ntel";
/// Key-shaped secrets pasted into prompts (found by the guardrails).
const PROMPT_ANTHROPIC_KEY: &str = "sk-ant-api03-SENTINELguardrailFinding0123456789abcdef";
const PROMPT_GITHUB_TOKEN: &str = "ghp_SENTINEL0guardrail0token000000000000";

const SENTINELS: [&str; 11] = [
    OPENAI_KEY,
    ANTHROPIC_KEY,
    FAILING_KEY,
    HEADER_SECRET,
    BACKEND_TOKEN,
    CLIENT_KEY,
    CALLER_KEY,
    CALLER_ANTHROPIC_KEY,
    MASKED,
    PROMPT_ANTHROPIC_KEY,
    PROMPT_GITHUB_TOKEN,
];

/// Every line any crate logs, at every level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .try_init()
            .expect("the only subscriber of this test binary");
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the client saw: status, every header and the body.
fn seen_by_client(a: &Answer) -> String {
    let mut out = format!("{}\n", a.status);
    for (n, v) in &a.headers {
        out.push_str(&format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    out.push_str(&a.text);
    out
}

fn assert_clean(place: &str, text: &str) {
    for s in SENTINELS.iter().chain(&["SENTINEL"]) {
        if let Some(at) = text.find(s) {
            let mut from = at.saturating_sub(600);
            while !text.is_char_boundary(from) {
                from -= 1;
            }
            let mut to = (at + 300).min(text.len());
            while !text.is_char_boundary(to) {
                to += 1;
            }
            panic!("{s} leaked into {place}: …{}…", &text[from..to]);
        }
    }
}

fn echo(message: String) -> Behavior {
    Behavior {
        status: Some(401),
        message: Some(message),
        ..Default::default()
    }
}

fn stream_echo(message: String) -> Behavior {
    Behavior {
        error_event: Some(true),
        cut_after_chunks: Some(2),
        message: Some(message),
        ..Default::default()
    }
}

/// A RouterPolicy sending `model` to `provider` with a breaker that does not open here.
fn quiet_policy(model: &str, provider: &str) -> serde_json::Value {
    let mut p = router_policy(
        &format!("quiet-{model}"),
        10,
        json!({"model": model}),
        to_provider(provider, None),
        vec![],
    );
    p["spec"]["circuitBreaker"] =
        json!({"consecutiveFailures": 100000, "minRequestsThreshold": 1000000});
    p
}

/// A provider with a 300 ms idle timeout (for the silent-head fault).
fn idle(mut provider: serde_json::Value) -> serde_json::Value {
    provider["spec"]["timeouts"] = json!({"idle": "300ms"});
    provider
}

#[tokio::test]
async fn no_credential_reaches_logs_responses_metrics_records_or_the_spool() {
    let logs = logs();
    // The keyed mock refuses anything but the configured provider keys.
    let keyed = MockUpstream::start_with(
        "127.0.0.1:0".parse().unwrap(),
        MockConfig {
            require_key: Some(OPENAI_KEY.into()),
            anthropic_key: Some(ANTHROPIC_KEY.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let open = MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (k, o) = (keyed.base_url(), open.base_url());

    let mut openai = api_key(
        provider("openai", "openai", &format!("{k}/v1"), &["gpt-mock"]),
        "llm",
        "openai",
    );
    openai["spec"]["headers"] =
        json!([{"name": "x-org-token", "valueFrom": {"name": "llm", "key": "header"}}]);
    let mut failing = api_key(
        provider("failing", "openai", &format!("{o}/v1"), &["fail-gpt"]),
        "llm",
        "failing",
    );
    failing["spec"]["headers"] =
        json!([{"name": "x-org-token", "valueFrom": {"name": "llm", "key": "header"}}]);
    // Short idle timeouts on the failing providers, for the silent-head fault.
    let failing = idle(failing);
    let mut local = backend("local", "vllm", &format!("{o}/v1"), &["llama"]);
    local["spec"]["auth"] = json!({"secretRef": {"name": "llm", "key": "backend"}});
    let gw = Gateway::start_objects(&[
        secret(
            "llm",
            &[
                ("openai", OPENAI_KEY),
                ("anthropic", ANTHROPIC_KEY),
                ("failing", FAILING_KEY),
                ("header", HEADER_SECRET),
                ("backend", BACKEND_TOKEN),
            ],
        ),
        secret("clients", &[("team", CLIENT_KEY)]),
        guardrails(workspace("default", true), "redact", "alert"),
        guardrails(
            client_key(workspace("team", false), "team-bot", "clients", "team"),
            "alert",
            "alert",
        ),
        guardrails(workspace("strict", false), "block", "block"),
        openai,
        api_key(
            provider("claude", "anthropic", &k, &["claude-mock"]),
            "llm",
            "anthropic",
        ),
        failing,
        idle(api_key(
            provider("failing-claude", "anthropic", &o, &["fail-claude"]),
            "llm",
            "anthropic",
        )),
        idle(passthrough(provider(
            "pass",
            "openrouter",
            &format!("{o}/v1"),
            &["pass-gpt"],
        ))),
        idle(passthrough(provider(
            "pass-claude",
            "anthropic",
            &o,
            &["pass-claude"],
        ))),
        api_key(
            provider("nowhere", "openai", "http://127.0.0.1:9/v1", &["down-gpt"]),
            "llm",
            "failing",
        ),
        local,
        affinity_group("pool", "round_robin", &["local"], &[]),
        // The fault modes below fail these targets many times: breakers that stay closed.
        quiet_policy("fail-gpt", "failing"),
        quiet_policy("fail-claude", "failing-claude"),
        quiet_policy("pass-gpt", "pass"),
        quiet_policy("pass-claude", "pass-claude"),
        mux_rule(
            "team-all",
            "team",
            100,
            "catch_all",
            None,
            to_provider("openai", Some("gpt-mock")),
        ),
    ])
    .await
    .unwrap();

    // Spool segments live until the next shipping round: sample them all along.
    let spool_dir = gw.spool_dir();
    let spooled = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, String>::new(),
    ));
    let sampler = {
        let spooled = spooled.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(entries) = std::fs::read_dir(&spool_dir) {
                    for e in entries.flatten() {
                        if let Ok(t) = std::fs::read_to_string(e.path()) {
                            spooled
                                .lock()
                                .unwrap()
                                .insert(e.file_name().to_string_lossy().into_owned(), t);
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };

    let mut answers: Vec<Answer> = Vec::new();
    let caller_bearer = format!("Bearer {CALLER_KEY}");
    let client_bearer = format!("Bearer {CLIENT_KEY}");
    let ant = ("anthropic-version", "2023-06-01");
    // After eight words, so the mock's echo of the prompt does not repeat it.
    let prompt = format!(
        "one two three four five six seven eight: use {PROMPT_ANTHROPIC_KEY} and {PROMPT_GITHUB_TOKEN}"
    );
    let chat = |model: &str, stream: bool| json!({"model": model, "stream": stream, "max_tokens": 40, "messages": [{"role": "user", "content": prompt}]});

    for stream in [false, true] {
        // api_key providers, OpenAI and Anthropic callers, own keys that must not be forwarded.
        for (path, model) in [
            ("/v1/chat/completions", "gpt-mock"),
            ("/v1/chat/completions", "claude-mock"),
            ("/v1/messages", "claude-mock"),
            ("/v1/messages", "gpt-mock"),
            ("/v1/chat/completions", "llama"),
        ] {
            let a = gw
                .post_with(
                    path,
                    &chat(model, stream),
                    &[ant, ("authorization", &caller_bearer)],
                )
                .await
                .unwrap();
            assert_eq!(a.status, 200, "{path} {model}: {}", a.text);
            answers.push(a);
        }
        // A gateway client key (the team workspace only alerts: the prompt goes up as is).
        let a = gw
            .post_with(
                "/v1/chat/completions",
                &chat("anything", stream),
                &[("authorization", &client_bearer)],
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        answers.push(a);
        let a = gw
            .post_with(
                "/v1/messages",
                &chat("anything", stream),
                &[ant, ("x-api-key", CLIENT_KEY)],
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        answers.push(a);
        // Passthrough with the callers' own keys.
        let a = gw
            .post_with(
                "/v1/chat/completions",
                &chat("gpt-mock", stream),
                &[("authorization", &caller_bearer)],
            )
            .await
            .unwrap();
        answers.push(a);
        // Upstream errors that echo the credential they were given, whole and masked: as an
        // error response (non-streamed) and as an error event inside a stream.
        // (Only `failing` sends the header from the Secret, so only it can echo it.)
        for (path, model, key, headers) in [
            ("/v1/chat/completions", "fail-gpt", FAILING_KEY, vec![]),
            ("/v1/messages", "fail-gpt", FAILING_KEY, vec![ant]),
            ("/v1/chat/completions", "fail-claude", ANTHROPIC_KEY, vec![]),
            ("/v1/messages", "fail-claude", ANTHROPIC_KEY, vec![ant]),
            (
                "/v1/chat/completions",
                "pass-gpt",
                CALLER_KEY,
                vec![("authorization", caller_bearer.as_str())],
            ),
            (
                "/v1/messages",
                "pass-claude",
                CALLER_ANTHROPIC_KEY,
                vec![ant, ("x-api-key", CALLER_ANTHROPIC_KEY)],
            ),
        ] {
            let header = if model == "fail-gpt" {
                HEADER_SECRET
            } else {
                "(none)"
            };
            // Every fault mode of the upstream answers too, the key inside each (the mock's
            // `echo_key` quotes the credential it actually received).
            let echoed = Behavior {
                echo_key: Some(true),
                message: Some(format!("org {header}.")),
                ..Default::default()
            };
            let faults = vec![
                // 200 with an error body.
                (
                    Behavior {
                        error_body: Some(true),
                        ..echoed.clone()
                    },
                    502,
                ),
                // 200 that is not an answer of the dialect, quoting the key.
                (
                    Behavior {
                        raw_body: Some(format!(r#"{{"choices":"nope","key":"{key}","type":"x"}}"#)),
                        ..Default::default()
                    },
                    502,
                ),
                // An error event first thing in the stream (non-stream: a body cut at once).
                (
                    Behavior {
                        error_event: Some(true),
                        cut_after_chunks: Some(0),
                        ..echoed.clone()
                    },
                    502,
                ),
                // A malformed stream line quoting the key (non-stream: ignored).
                (
                    Behavior {
                        inject: Some(format!("data: not json {key} {header}\n\n")),
                        ..Default::default()
                    },
                    200,
                ),
                // A body reset after its head, a silent head (idle timeout 300 ms), a large answer.
                (
                    Behavior {
                        cut_after_chunks: Some(1),
                        ..Default::default()
                    },
                    if stream { 200 } else { 502 },
                ),
                (
                    Behavior {
                        stall: Some(true),
                        ..Default::default()
                    },
                    504,
                ),
                (
                    Behavior {
                        bytes: Some(3 << 20),
                        ..Default::default()
                    },
                    200,
                ),
            ];
            let echoes = if stream {
                vec![
                    stream_echo(format!("key {key} was revoked ({MASKED})")),
                    stream_echo(format!("Incorrect API key provided: {key}; org {header}")),
                ]
            } else {
                vec![
                    echo(format!("Incorrect API key provided: {key}")),
                    echo(format!("Incorrect API key provided: {MASKED}")),
                    echo(format!("org token {header} is not valid for {key}")),
                ]
            };
            let behaviors = echoes
                .into_iter()
                .map(|b| (b, if stream { 200 } else { 401 }))
                .chain(faults);
            for (b, want) in behaviors {
                let what = format!("{b:?}");
                open.script(ScriptRule::new(b).model(model).times(1));
                let a = gw
                    .post_with(path, &chat(model, stream), &headers)
                    .await
                    .unwrap();
                assert_eq!(a.status, want, "{path} {model} {what}: {}", a.text);
                answers.push(a);
            }
        }
        // Connect errors, gateway-key misuse, guardrail blocks, unknown models, bad JSON.
        for (path, body, headers) in [
            ("/v1/chat/completions", chat("down-gpt", stream), vec![]),
            ("/v1/messages", chat("down-gpt", stream), vec![ant]),
            (
                "/v1/chat/completions",
                chat("gpt-mock", stream),
                vec![
                    ("authorization", client_bearer.as_str()),
                    ("x-switchyard-workspace", "default"),
                ],
            ),
            (
                "/v1/chat/completions",
                chat("gpt-mock", stream),
                vec![("x-switchyard-workspace", "strict")],
            ),
            (
                "/v1/messages",
                chat("claude-mock", stream),
                vec![ant, ("x-switchyard-workspace", "strict")],
            ),
            (
                "/v1/chat/completions",
                chat("no-such-model", stream),
                vec![("authorization", caller_bearer.as_str())],
            ),
            ("/v1/chat/completions", chat("pass-gpt", stream), vec![]),
        ] {
            answers.push(gw.post_with(path, &body, &headers).await.unwrap());
        }
        let bad = format!("{{\"model\": \"gpt-mock\", \"key\": \"{CALLER_KEY}\", ");
        answers.push(
            gw.post_raw(
                "/v1/chat/completions",
                bad.into_bytes(),
                &[("authorization", &caller_bearer)],
            )
            .await
            .unwrap(),
        );
    }
    answers.push(
        gw.get("/v1/models", &[("authorization", &client_bearer)])
            .await
            .unwrap(),
    );
    answers.push(
        gw.get("/v1/models", &[("x-api-key", CALLER_ANTHROPIC_KEY), ant])
            .await
            .unwrap(),
    );
    let metrics = gw.get_admin("/metrics").await.unwrap();

    // The scenario did what it says.
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(
        statuses.iter().filter(|s| **s == 401).count() >= 18,
        "{statuses:?}"
    );
    let error_streams = answers
        .iter()
        .filter(|a| {
            a.status == 200 && (a.text.contains("revoked") || a.text.contains("Incorrect API key"))
        })
        .count();
    assert!(
        error_streams >= 12,
        "the upstream error events reached the callers: {statuses:?}"
    );
    assert!(
        keyed
            .requests()
            .iter()
            .all(|r| r.header("x-org-token") == Some(HEADER_SECRET) || r.path == "/v1/messages")
    );
    assert!(
        open.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(format!("Bearer {BACKEND_TOKEN}").as_str()))
    );
    assert!(
        open.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(caller_bearer.as_str()))
    );
    assert!(
        keyed.requests().iter().any(|r| r
            .raw_body
            .windows(PROMPT_GITHUB_TOKEN.len())
            .any(|w| w == PROMPT_GITHUB_TOKEN.as_bytes())),
        "alert mode sent the finding upstream as is"
    );
    let records = gw.wait_records(answers.len() - 2).await.unwrap();
    assert!(records.iter().any(|r| !r.alerts.is_empty()));

    for a in &answers {
        assert_clean(
            &format!("a response to {}", a.request_id()),
            &seen_by_client(a),
        );
    }
    assert_clean("GET /metrics", &seen_by_client(&metrics));
    assert_clean("the metrics registry", &gw.metrics_text());
    sampler.abort();
    let spooled: String = spooled.lock().unwrap().values().cloned().collect();
    assert!(
        spooled.contains("\"request_id\""),
        "spool segments were seen"
    );
    assert_clean("the spool", &(spooled + &gw.spool_text()));
    assert_clean(
        "the record store",
        &std::fs::read_to_string(gw.records_path()).unwrap(),
    );
    gw.stop().await;
    let log = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(log.contains("snapshot applied"), "logs were captured");
    assert!(
        log.lines().count() > 50,
        "TRACE logs of every crate were captured"
    );
    assert_clean("the logs", &log);
}

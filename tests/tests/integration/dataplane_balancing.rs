//! Acceptance point 5: every load-balancing strategy of an AffinityGroup of Backends, each
//! Backend on its own mock upstream (so where a request went is what each mock received), and
//! the eligibility rule: a backend that does not serve the requested model is never picked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{affinity_group, backend, workspace};
use switchyard_tests::harness::{Answer, Gateway};

async fn mocks(n: usize) -> Vec<MockUpstream> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            MockUpstream::start("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
    }
    out
}

const NAMES: [&str; 3] = ["b-one", "b-two", "b-three"];

/// Backends `b-one`.. on the mocks (all serving `llama`), grouped with `strategy`.
async fn pool(
    mocks: &[MockUpstream],
    strategy: &str,
    tweak: impl Fn(usize, &mut Value),
) -> Gateway {
    let mut objects = vec![workspace("default", true)];
    for (i, m) in mocks.iter().enumerate() {
        let mut b = backend(
            NAMES[i],
            "vllm",
            &format!("{}/v1", m.base_url()),
            &["llama"],
        );
        tweak(i, &mut b);
        objects.push(b);
    }
    objects.push(affinity_group("pool", strategy, &NAMES[..mocks.len()], &[]));
    Gateway::start_objects(&objects).await.unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "balance me"}]})
}

async fn ask(gw: &Gateway, headers: &[(&str, &str)]) -> Answer {
    let a = gw
        .post_with("/v1/chat/completions", &chat("llama"), headers)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    a
}

fn counts(mocks: &[MockUpstream]) -> Vec<usize> {
    mocks.iter().map(|m| m.requests().len()).collect()
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let mocks = mocks(3).await;
    let gw = pool(&mocks, "round_robin", |_, _| {}).await;
    for _ in 0..9 {
        let a = ask(&gw, &[]).await;
        assert_eq!(a.route(), "model; target=affinitygroup/pool; model=llama");
    }
    assert_eq!(counts(&mocks), [3, 3, 3]);
    let recs = gw.wait_records(9).await.unwrap();
    let backends: BTreeMap<String, usize> = recs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.attempts[0].backend.clone().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        backends.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{backends:?}"
    );
    assert!(recs.iter().all(|r| r.provider.as_deref() == Some("vllm")));
    assert!(
        recs.iter()
            .all(|r| r.provider_name == r.attempts[0].backend)
    );
}

/// Scripts `slow` once on every mock: whichever backend gets the next request is slow.
fn slow_next(mocks: &[MockUpstream], slow: &Behavior) {
    for m in mocks {
        m.script(ScriptRule::new(slow.clone()).times(1));
    }
}

/// The mock that got the slow request; the others forget their script.
fn busy_index(mocks: &[MockUpstream]) -> usize {
    let busy: Vec<usize> = (0..mocks.len())
        .filter(|i| !mocks[*i].requests().is_empty())
        .collect();
    assert_eq!(busy.len(), 1, "{busy:?}");
    for (i, m) in mocks.iter().enumerate() {
        if i != busy[0] {
            m.clear_scripts();
        }
    }
    busy[0]
}

#[tokio::test]
async fn least_outstanding_avoids_a_backend_with_a_slow_request() {
    let mocks = mocks(3).await;
    let gw = pool(&mocks, "least_outstanding", |_, _| {}).await;
    slow_next(
        &mocks,
        &Behavior {
            latency_ms: Some(300),
            ..Default::default()
        },
    );
    let url = gw.url("/v1/chat/completions");
    let slow = tokio::spawn(async move {
        switchyard_tests::harness::client()
            .post(url)
            .json(&chat("llama"))
            .send()
            .await
            .unwrap()
            .status()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counts(&mocks).iter().sum::<usize>() == 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let busy = busy_index(&mocks);
    for _ in 0..4 {
        ask(&gw, &[]).await;
    }
    assert!(!slow.is_finished(), "the slow request is still in flight");
    assert_eq!(
        mocks[busy].requests().len(),
        1,
        "nothing more for the busy backend: {:?}",
        counts(&mocks)
    );
    assert_eq!(counts(&mocks).iter().sum::<usize>(), 5);
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test]
async fn least_outstanding_counts_an_open_stream_as_outstanding() {
    let mocks = mocks(3).await;
    let gw = pool(&mocks, "least_outstanding", |_, _| {}).await;
    slow_next(
        &mocks,
        &Behavior {
            chunks: Some(20),
            chunk_delay_ms: Some(25),
            ..Default::default()
        },
    );
    let mut stream = gw
        .open("/v1/chat/completions", &json!({"model": "llama", "stream": true, "messages": [{"role": "user", "content": "long"}]}), &[])
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let busy = busy_index(&mocks);
    for _ in 0..4 {
        ask(&gw, &[]).await;
    }
    let mut rest = String::from_utf8_lossy(&first).into_owned();
    let still_open = !rest.contains("[DONE]");
    assert!(
        still_open,
        "the stream is still open while the other requests are placed"
    );
    assert_eq!(
        mocks[busy].requests().len(),
        1,
        "a backend streaming a long answer is busy until the stream ends: {:?}",
        counts(&mocks)
    );
    while let Some(c) = stream.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&c));
    }
    assert!(rest.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn weighted_follows_the_weights() {
    let mocks = mocks(2).await;
    let gw = pool(&mocks, "weighted", |i, b| {
        b["spec"]["weight"] = json!(if i == 0 { 3 } else { 1 })
    })
    .await;
    let n = 160;
    for _ in 0..n {
        ask(&gw, &[]).await;
    }
    let c = counts(&mocks);
    assert_eq!(c.iter().sum::<usize>(), n);
    let share = c[0] as f64 / n as f64;
    assert!(
        (0.62..0.88).contains(&share),
        "weight 3:1 gives about 75 %: {c:?}"
    );
}

#[tokio::test]
async fn session_affinity_keeps_a_session_on_one_backend() {
    let mocks = mocks(3).await;
    let gw = pool(&mocks, "session_affinity", |_, _| {}).await;
    let mut sent = Vec::new();
    for _round in 0..3 {
        for s in 0..8 {
            let session = format!("session-{s}");
            let a = ask(&gw, &[("x-session-id", session.as_str())]).await;
            sent.push((session, a.request_id()));
        }
    }
    let recs = gw.wait_records(24).await.unwrap();
    let mut by_session: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (session, id) in sent {
        let r = recs.iter().find(|r| r.request_id == id).unwrap();
        assert_eq!(r.session_id.as_deref(), Some(session.as_str()));
        by_session
            .entry(session)
            .or_default()
            .insert(r.attempts[0].backend.clone().unwrap());
    }
    assert!(
        by_session.values().all(|b| b.len() == 1),
        "each session stays on one backend: {by_session:?}"
    );
    let used: BTreeSet<&String> = by_session.values().flatten().collect();
    assert!(
        used.len() >= 2,
        "sessions spread over the backends: {by_session:?}"
    );
    assert_eq!(counts(&mocks).iter().sum::<usize>(), 24);
}

#[tokio::test]
async fn a_backend_without_the_model_is_never_picked() {
    let mocks = mocks(3).await;
    // b-three serves only qwen; the group serves both models.
    let mut objects = vec![workspace("default", true)];
    for (i, m) in mocks.iter().enumerate() {
        let served: &[&str] = if i == 2 { &["qwen"] } else { &["llama"] };
        objects.push(backend(
            NAMES[i],
            "ollama",
            &format!("{}/v1", m.base_url()),
            served,
        ));
    }
    objects.push(affinity_group(
        "pool",
        "round_robin",
        &NAMES,
        &["llama", "qwen"],
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for _ in 0..6 {
        ask(&gw, &[]).await;
    }
    assert_eq!(
        counts(&mocks),
        [3, 3, 0],
        "llama never goes to the qwen-only backend"
    );
    for _ in 0..3 {
        let a = gw
            .post("/v1/chat/completions", &chat("qwen"))
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
    }
    assert_eq!(counts(&mocks), [3, 3, 3], "qwen only goes there");
    assert!(
        mocks[2]
            .requests()
            .iter()
            .all(|r| r.model() == Some("qwen"))
    );
    let recs = gw.wait_records(9).await.unwrap();
    assert!(recs.iter().all(|r| r.provider.as_deref() == Some("ollama")));
}
